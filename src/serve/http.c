/* http.c - the libmicrohttpd front: MHD's callbacks feed the request seam
 * (handle.c) and turn its answers into responses; the connection read
 * deadline; start/reload/drain/stop.
 *
 * A request's life: the first handler call hands the method, path and
 * Content-Length to srv_req_begin; upload calls go to srv_req_body; the
 * final call goes to srv_req_end, which either answers at once or queues a
 * job with the batcher.  Then the connection is suspended, and the batcher
 * resumes it when the job is scored; MHD calls the handler again and
 * srv_req_result gives the answer. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve/internal.h"
#include "util/util.h"

#define SRV_CONN_MEMORY ((size_t)16 << 10) /* bytes of MHD memory per connection */

/* ------------------------------------------------------------ responses */

static enum MHD_Result queue_answer(struct rr_server *s, struct MHD_Connection *c, srv_out *out) {
    struct MHD_Response *r = MHD_create_response_from_buffer(out->len, out->body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(out->body);
        out->body = NULL;
        return MHD_NO;
    }
    out->body = NULL; /* the response owns it */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, out->ctype);
    if (out->allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, out->allow);
    if (atomic_load_explicit(&s->draining, memory_order_relaxed))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)out->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* What the handler returns for a step of the seam. */
static enum MHD_Result after(struct rr_server *s, struct MHD_Connection *c, srv_next nx, srv_out *out) {
    switch (nx) {
    case SRV_ANSWER: return queue_answer(s, c, out);
    case SRV_MORE:
    case SRV_PENDING: return MHD_YES;
    case SRV_DROP:
    case SRV_FAIL: break;
    }
    return MHD_NO;
}

/* ------------------------------------------------------------- handlers */

static int is_loopback(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return 0;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return 1;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return 0;
}

static const char *mhd_arg(void *ctx, const char *key) {
    return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, key);
}

static void mhd_suspend(void *arg) { MHD_suspend_connection(arg); }
static void mhd_resume(void *arg) { MHD_resume_connection(arg); }

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    struct rr_server *s = cls;
    srv_req *rq = *con_cls;
    srv_out out;
    srv_in in = {method, url, NULL, mhd_arg, c, 0};
    if (!rq) {
        rq = srv_req_new(s);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (ci && ci->socket_context) {
            rq->tc = ci->socket_context;
            pthread_mutex_lock(&s->conn_mu);
            rq->tc->in_request = 1;
            pthread_mutex_unlock(&s->conn_mu);
        }
        in.content_length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        return after(s, c, srv_req_begin(s, rq, &in, &out), &out);
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return after(s, c, srv_req_body(s, rq, upload, n), &out);
    }
    if (rq->answered) return MHD_YES;
    if (rq->job) {
        if (srv_req_pending(rq)) {
            MHD_suspend_connection(c); /* woken early: wait for the batcher */
            return MHD_YES;
        }
        return after(s, c, srv_req_result(s, rq, &out), &out);
    }
    if (rq->ep == EP_RELOAD) in.loopback = is_loopback(c);
    srv_waiter w = {mhd_suspend, mhd_resume, c};
    return after(s, c, srv_req_end(s, rq, &in, &out, &w), &out);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    struct rr_server *s = cls;
    srv_req *rq = *con_cls;
    if (!rq) return;
    *con_cls = NULL;
    if (rq->tc) {
        pthread_mutex_lock(&s->conn_mu);
        rq->tc->in_request = 0;
        rq->tc->phase_start = rr_now();
        pthread_mutex_unlock(&s->conn_mu);
    }
    srv_req_free(s, rq);
}

/* --------------------------------------------- connections and deadline */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    struct rr_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        srv_conn *tc = calloc(1, sizeof *tc);
        if (!tc) return;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        tc->fd = ci ? ci->connect_fd : -1;
        tc->phase_start = rr_now();
        pthread_mutex_lock(&s->conn_mu);
        tc->next = s->conns;
        if (s->conns) s->conns->prev = tc;
        s->conns = tc;
        s->n_conns++;
        pthread_mutex_unlock(&s->conn_mu);
        *socket_context = tc;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        srv_conn *tc = *socket_context;
        if (!tc) return;
        /* Called before MHD closes the socket, so the reaper, which holds
         * conn_mu, never shuts down a descriptor that was reused. */
        pthread_mutex_lock(&s->conn_mu);
        if (tc->prev) tc->prev->next = tc->next;
        else s->conns = tc->next;
        if (tc->next) tc->next->prev = tc->prev;
        s->n_conns--;
        pthread_mutex_unlock(&s->conn_mu);
        free(tc);
        *socket_context = NULL;
    }
}

/* Closes connections that have not delivered a request's headers within
 * read_timeout of opening (or of their previous response): a slowloris
 * client that trickles header bytes keeps MHD's idle timer fresh, so the
 * idle timeout alone would never drop it. */
static void *reaper_main(void *arg) {
    struct rr_server *s = arg;
    pthread_mutex_lock(&s->reaper_mu);
    while (!s->reaper_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->reaper_cv, &s->reaper_mu, &ts);
        if (s->reaper_stop) break;
        double now = rr_now();
        pthread_mutex_lock(&s->conn_mu);
        for (srv_conn *tc = s->conns; tc; tc = tc->next) {
            if (tc->in_request || tc->fd < 0 || now - tc->phase_start <= s->o.read_timeout) continue;
            shutdown(tc->fd, SHUT_RDWR);
            tc->phase_start = now + 1e9; /* once */
            atomic_fetch_add(&s->metrics.conn_dropped_deadline, 1);
        }
        pthread_mutex_unlock(&s->conn_mu);
    }
    pthread_mutex_unlock(&s->reaper_mu);
    return NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    rr_log(3, "http: %s", buf);
}

/* ------------------------------------------------------------ lifecycle */

void rr_server_opts_default(rr_server_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->threads = 0;
    o->batchers = 1;
    o->max_batch = 64;
    o->batch_align = 1;
    o->screen_bits = 8;
    o->max_queue = 4096;
    o->max_sessions = 100000;
    o->session_ttl = 1800;
    o->session_memory = (size_t)256 << 20;
    o->max_session_events = 1000;
    o->max_body = (size_t)64 << 10;
    o->max_connections = 1024;
    o->read_timeout = 10;
    o->idle_timeout = 30;
    o->log_requests = 0;
}

const char *rr_server_opts_check(const rr_server_opts *o) {
    if (!o->model_path || !*o->model_path) return "a model file is required";
    if (!o->host || !*o->host) return "host must not be empty";
    if (o->port > 65535) return "port must be in 0..65535";
    if (o->threads < 0 || o->threads > 256) return "threads must be in 0..256";
    if (o->batchers < 0 || o->batchers > 64) return "batchers must be in 0..64";
    if (o->max_batch < 1 || o->max_batch > 1024) return "max-batch must be in 1..1024";
    if (o->max_queue < RR_SERVE_MAX_BATCH) return "max-queue must be at least 1000 (one full batch request)";
    if (o->max_sessions < 1) return "max-sessions must be at least 1";
    if (!(o->session_ttl >= 0)) return "session-ttl must be >= 0 (0: no expiry)";
    if (o->session_memory < 4096) return "session-memory must be at least 4096 bytes";
    if (o->max_session_events < 1) return "max-session-events must be at least 1";
    if (o->max_body < 64 || o->max_body > ((size_t)64 << 20)) return "max-body must be in 64..64 MiB";
    if (o->max_connections < 1 || o->max_connections > 65536) return "max-connections must be in 1..65536";
    if (!(o->read_timeout > 0)) return "read-timeout must be > 0";
    if (!(o->idle_timeout >= 1) || o->idle_timeout > 86400) return "idle-timeout must be in 1..86400";
    if (o->screen_bits != 0 && o->screen_bits != 8 && o->screen_bits != 16) return "screen-bits must be 8, 16 or 0";
    return NULL;
}

unsigned rr_server_port(const rr_server *s) { return s->port; }

rr_status rr_server_reload(rr_server *s, rr_error *err) {
    rr_error local;
    if (!err) err = &local;
    pthread_mutex_lock(&s->reload_mu);
    srv_model *nm = NULL;
    rr_status st = srv_model_load(s->model_path, s->o.screen_bits, &nm, err);
    srv_model *old = srv_model_acquire(s);
    if (!st) {
        nm->gen = s->next_gen + 1;
        nm->epoch = old ? (srv_model_compatible(old, nm) ? old->epoch : old->epoch + 1) : 1;
        st = srv_model_describe(nm, s->model_path, err);
    }
    if (st) {
        srv_model_unref(nm);
        atomic_fetch_add(&s->metrics.reloads_failed, 1);
        pthread_mutex_lock(&s->model_mu);
        snprintf(s->reload_error, sizeof s->reload_error, "last load failed: %.400s", err->msg);
        pthread_mutex_unlock(&s->model_mu);
        rr_log(1, "model reload failed: %s", err->msg);
    } else {
        s->next_gen = nm->gen;
        pthread_mutex_lock(&s->model_mu);
        srv_model *prev = s->cur;
        s->cur = nm;
        s->reload_error[0] = 0;
        pthread_mutex_unlock(&s->model_mu);
        /* Requests in flight hold their own references to prev. */
        srv_model_unref(prev);
        atomic_fetch_add(&s->metrics.reloads_ok, 1);
        rr_log(2, "model generation %llu loaded from %s in %.3f s (%s sessions)",
               (unsigned long long)nm->gen, s->model_path, nm->load_seconds,
               !old ? "no" : old->epoch == nm->epoch ? "compatible: keeping" : "incompatible: dropping");
    }
    srv_model_unref(old);
    pthread_mutex_unlock(&s->reload_mu);
    return st;
}

static rr_status bind_addr(const char *host, unsigned port, struct sockaddr_storage *ss,
                           int *v6, rr_error *err) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc || !res) return rr_err(err, RR_ERR_ARG, "cannot resolve host '%s': %s", host, gai_strerror(rc));
    memset(ss, 0, sizeof *ss);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return RR_OK;
}

rr_status rr_server_start(rr_server **out, const rr_server_opts *o, rr_error *err) {
    return srv_server_start(out, o, 1, err);
}

rr_status srv_server_start(rr_server **out, const rr_server_opts *o, int with_socket, rr_error *err) {
    *out = NULL;
    const char *msg = rr_server_opts_check(o);
    if (msg) return rr_err(err, RR_ERR_ARG, "%s", msg);
    rr_server *s = calloc(1, sizeof *s);
    if (!s) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    s->o = *o;
    s->model_path = strdup(o->model_path);
    s->host = strdup(o->host);
    s->o.model_path = s->model_path;
    s->o.host = s->host;
    srv_metrics_init(&s->metrics);
    pthread_mutex_init(&s->model_mu, NULL);
    pthread_mutex_init(&s->reload_mu, NULL);
    pthread_mutex_init(&s->conn_mu, NULL);
    pthread_mutex_init(&s->reaper_mu, NULL);
    pthread_cond_init(&s->reaper_cv, NULL);
    rr_status st = s->model_path && s->host ? RR_OK : rr_err(err, RR_ERR_NOMEM, "out of memory");
    /* The model first: a server that cannot load its model does not start,
     * unless told to wait for a good file (then it answers 503 until a
     * reload succeeds). */
    if (!st) {
        st = rr_server_reload(s, err);
        if (st && o->allow_no_model) {
            rr_log(1, "starting without a model: %s", err ? err->msg : "");
            st = RR_OK;
        }
    }
    if (!st) st = srv_shards_start(s, err);
    struct sockaddr_storage ss;
    int v6 = 0;
    if (!st && with_socket) st = bind_addr(s->host, o->port, &ss, &v6, err);
    if (!st && with_socket) {
        unsigned threads = (unsigned)rr_threads(o->threads);
        unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        if (v6) flags |= MHD_USE_IPv6;
        struct MHD_OptionItem ops[] = {
            {MHD_OPTION_SOCK_ADDR, 0, &ss},
            {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o->max_connections, NULL},
            /* MHD zeroes a connection's whole memory pool between requests on
             * it (32 KiB by default: 3% of the server's CPU under wrk); 16 KiB
             * holds any sane request head, and bodies stream through it. */
            {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)SRV_CONN_MEMORY, NULL},
            {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)(unsigned)o->idle_timeout, NULL},
            {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
            {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
            {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, s},
            {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
            {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
            {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
            {MHD_OPTION_END, 0, NULL},
        };
        s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s,
                                MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
        if (!s->d) st = rr_err(err, RR_ERR_IO, "cannot listen on %s:%u (address in use or not permitted?)",
                               s->host, o->port);
    }
    if (!st && with_socket) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
        s->port = di ? di->port : o->port;
        if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0)
            st = rr_err(err, RR_ERR_INTERNAL, "cannot start the connection reaper");
        else s->reaper_started = 1;
    }
    if (st) {
        rr_server_free(s);
        return st;
    }
    *out = s;
    return RR_OK;
}

size_t rr_server_drain(rr_server *s, double seconds) {
    if (!s->d) return 0;
    if (!atomic_exchange(&s->draining, 1)) {
        MHD_socket fd = MHD_quiesce_daemon(s->d);
        if (fd != MHD_INVALID_SOCKET) close(fd);
    }
    double end = rr_now() + seconds;
    while (atomic_load(&s->metrics.in_flight) > 0 && rr_now() < end) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return (size_t)atomic_load(&s->metrics.in_flight);
}

void rr_server_free(rr_server *s) {
    if (!s) return;
    if (s->reaper_started) {
        pthread_mutex_lock(&s->reaper_mu);
        s->reaper_stop = 1;
        pthread_cond_signal(&s->reaper_cv);
        pthread_mutex_unlock(&s->reaper_mu);
        pthread_join(s->reaper, NULL);
    }
    /* The shards finish every queued job (resuming its connection) before
     * they exit, so no connection is left suspended when the daemon stops. */
    srv_shards_stop(s);
    if (s->d) MHD_stop_daemon(s->d);
    srv_shards_free(s);
    srv_model_unref(s->cur);
    pthread_mutex_destroy(&s->model_mu);
    pthread_mutex_destroy(&s->reload_mu);
    pthread_mutex_destroy(&s->conn_mu);
    pthread_mutex_destroy(&s->reaper_mu);
    pthread_cond_destroy(&s->reaper_cv);
    free(s->model_path);
    free(s->host);
    free(s);
}
