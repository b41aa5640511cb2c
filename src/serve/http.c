/* http.c - the libmicrohttpd front: routing, request bodies, limits,
 * responses, the connection read deadline, start/reload/drain/stop.
 *
 * A request's life: the first handler call routes it and refuses a body
 * whose Content-Length is over --max-body before any of it is read; the
 * upload calls append to a buffer capped at --max-body; the final call
 * validates and either answers at once (errors, health, metrics) or
 * suspends the connection and hands a job to the batcher, which resumes it
 * when the job is scored; the handler then writes the JSON answer. */
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

typedef struct srv_req {
    srv_endpoint ep;
    double t0;
    char method[8];
    char path[160];         /* for the log line */
    char sid[RR_SID_MAX + 1];
    size_t sid_len;
    char *body;             /* (cap) request body so far */
    size_t len, cap;
    int too_large;
    int answered;           /* a response has been queued */
    int status;
    int batch;              /* EP_BATCH: answer {"results": [...]} */
    srv_job *job;
    srv_conn *tc;           /* connection tracking entry */
} srv_req;

/* ------------------------------------------------------------ responses */

static enum MHD_Result send_raw(struct rr_server *s, struct MHD_Connection *c, srv_req *rq,
                                int status, char *body, size_t len, const char *ctype,
                                const char *allow) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (atomic_load(&s->draining)) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    rq->answered = 1;
    rq->status = status;
    return ret;
}

static enum MHD_Result send_sbuf(struct rr_server *s, struct MHD_Connection *c, srv_req *rq,
                                 int status, rr_sbuf *b) {
    size_t len;
    char *body = rr_sbuf_take(b, &len);
    if (!body) return MHD_NO;
    return send_raw(s, c, rq, status, body, len, "application/json", NULL);
}

static enum MHD_Result send_error_allow(struct rr_server *s, struct MHD_Connection *c,
                                        srv_req *rq, const rr_http_err *e, const char *allow) {
    rr_sbuf b;
    rr_sbuf_init(&b);
    rr_sbuf_adds(&b, "{\"error\":{\"code\":");
    rr_sbuf_json_str(&b, e->code, strlen(e->code));
    rr_sbuf_adds(&b, ",\"message\":");
    rr_sbuf_json_str(&b, e->msg, strlen(e->msg));
    rr_sbuf_adds(&b, "}}\n");
    size_t len;
    char *body = rr_sbuf_take(&b, &len);
    if (!body) return MHD_NO;
    return send_raw(s, c, rq, e->status, body, len, "application/json", allow);
}

static enum MHD_Result send_error(struct rr_server *s, struct MHD_Connection *c, srv_req *rq,
                                  const rr_http_err *e) {
    return send_error_allow(s, c, rq, e, NULL);
}

static enum MHD_Result send_err(struct rr_server *s, struct MHD_Connection *c, srv_req *rq,
                                int status, const char *code, const char *msg) {
    rr_http_err e;
    rr_http_err_set(&e, status, code, "%s", msg);
    return send_error(s, c, rq, &e);
}

/* Appends [{"id":..,"score":..},...] for a row's results. */
static void items_json(rr_sbuf *b, const rr_model *m, const srv_row *row) {
    rr_sbuf_add(b, "[", 1);
    for (size_t i = 0; i < row->req.k && row->top[i] >= 0; i++) {
        size_t len;
        const char *id = rr_model_item_id(m, row->top[i], &len);
        rr_sbuf_adds(b, i ? ",{\"id\":" : "{\"id\":");
        rr_sbuf_json_str(b, id, len);
        rr_sbuf_adds(b, ",\"score\":");
        rr_sbuf_json_num(b, row->score[i]);
        rr_sbuf_add(b, "}", 1);
    }
    rr_sbuf_add(b, "]", 1);
}

static void row_json(rr_sbuf *b, const rr_model *m, const srv_row *row) {
    rr_sbuf_adds(b, "\"items\":");
    items_json(b, m, row);
    rr_sbuf_adds(b, ",\"unknown_items\":");
    rr_sbuf_add(b, row->req.unknown_json.p, row->req.unknown_json.len);
}

/* The answer to a finished job. */
static enum MHD_Result send_job(struct rr_server *s, struct MHD_Connection *c, srv_req *rq) {
    srv_job *j = rq->job;
    if (j->failed) return send_error(s, c, rq, &j->err);
    const srv_model *sm = j->model;
    rr_sbuf b;
    rr_sbuf_init(&b);
    rr_sbuf_add(&b, "{", 1);
    if (j->kind == JOB_ROWS && rq->batch) {
        rr_sbuf_adds(&b, "\"results\":[");
        for (size_t i = 0; i < j->n_rows; i++) {
            rr_sbuf_adds(&b, i ? ",{" : "{");
            row_json(&b, sm->m, &j->rows[i]);
            rr_sbuf_add(&b, "}", 1);
        }
        rr_sbuf_add(&b, "]", 1);
    } else if (j->kind == JOB_ROWS) {
        row_json(&b, sm->m, &j->rows[0]);
    } else {
        rr_sbuf_adds(&b, "\"session\":");
        rr_sbuf_json_str(&b, j->sid, j->sid_len);
        rr_sbuf_printf(&b, ",\"length\":%zu", j->sess_len);
        if (j->kind == JOB_SESSION_DELETE) {
            rr_sbuf_adds(&b, ",\"deleted\":true");
        } else {
            if (j->kind == JOB_EVENTS) rr_sbuf_printf(&b, ",\"created\":%s", j->sess_created ? "true" : "false");
            rr_sbuf_add(&b, ",", 1);
            row_json(&b, sm->m, &j->rows[0]);
        }
    }
    rr_sbuf_adds(&b, ",\"model\":");
    rr_sbuf_add(&b, sm->brief, sm->brief_len);
    rr_sbuf_adds(&b, "}\n");
    return send_sbuf(s, c, rq, 200, &b);
}

/* -------------------------------------------------------------- routing */

typedef enum { M_GET, M_POST, M_DELETE, M_OTHER } srv_method;

static srv_method method_of(const char *m) {
    if (!strcmp(m, "GET")) return M_GET;
    if (!strcmp(m, "POST")) return M_POST;
    if (!strcmp(m, "DELETE")) return M_DELETE;
    return M_OTHER;
}

/* Finds the endpoint of a path: EP_OTHER when unknown.  *want is the
 * method it takes; sid gets the session id of /v1/sessions/{id}/... */
static srv_endpoint route(const char *url, srv_method *want, srv_req *rq, int *bad_sid) {
    static const struct {
        const char *path;
        srv_endpoint ep;
        srv_method m;
    } fixed[] = {
        {"/healthz", EP_HEALTHZ, M_GET},          {"/readyz", EP_READYZ, M_GET},
        {"/metrics", EP_METRICS, M_GET},          {"/v1/model", EP_MODEL, M_GET},
        {"/v1/recommend", EP_RECOMMEND, M_POST},  {"/v1/recommend/batch", EP_BATCH, M_POST},
        {"/admin/reload", EP_RELOAD, M_POST},
    };
    *bad_sid = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(url, fixed[i].path)) {
            *want = fixed[i].m;
            return fixed[i].ep;
        }
    static const char pre[] = "/v1/sessions/";
    if (strncmp(url, pre, sizeof pre - 1)) return EP_OTHER;
    const char *id = url + sizeof pre - 1;
    const char *slash = strchr(id, '/');
    size_t n = slash ? (size_t)(slash - id) : strlen(id);
    srv_endpoint ep;
    if (!slash) ep = EP_SESSION_DELETE, *want = M_DELETE;
    else if (!strcmp(slash, "/events")) ep = EP_EVENTS, *want = M_POST;
    else if (!strcmp(slash, "/recommend")) ep = EP_SESSION_GET, *want = M_GET;
    else return EP_OTHER;
    if (!rr_session_id_ok(id, n)) {
        *bad_sid = 1;
        return ep;
    }
    memcpy(rq->sid, id, n);
    rq->sid[n] = 0;
    rq->sid_len = n;
    return ep;
}

static const char *method_name(srv_method m) {
    return m == M_GET ? "GET" : m == M_POST ? "POST" : "DELETE";
}

/* ------------------------------------------------------------- handlers */

srv_model *srv_model_acquire(struct rr_server *s) {
    pthread_mutex_lock(&s->model_mu);
    srv_model *sm = s->cur;
    if (sm) srv_model_ref(sm);
    pthread_mutex_unlock(&s->model_mu);
    return sm;
}

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

/* A job with n rows for model sm (reference taken). */
static srv_job *job_new(srv_job_kind kind, srv_model *sm, size_t n_rows) {
    srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->kind = kind;
    srv_model_ref(sm);
    j->model = sm;
    if (n_rows) {
        j->rows = rr_calloc_n(n_rows, sizeof *j->rows);
        if (!j->rows) {
            srv_job_free(j);
            return NULL;
        }
    }
    j->n_rows = n_rows;
    return j;
}

static int row_alloc(srv_row *r) {
    r->top = rr_malloc_n(r->req.k, sizeof *r->top);
    r->score = rr_malloc_n(r->req.k, sizeof *r->score);
    return r->top && r->score;
}

/* Hands the job to the batcher and suspends the connection until it is
 * scored.  Suspending first means the batcher's resume can never come
 * before the suspend. */
static enum MHD_Result submit(struct rr_server *s, struct MHD_Connection *c, srv_req *rq, srv_job *j) {
    rq->job = j;
    j->conn = c;
    MHD_suspend_connection(c);
    if (!srv_submit(s, j)) {
        j->failed = 1;
        atomic_store(&j->done, 1);
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

/* Builds and submits a stateless job from a parsed request object (or, for
 * a batch, the "requests" array). */
static enum MHD_Result do_recommend(struct rr_server *s, struct MHD_Connection *c, srv_req *rq,
                                    srv_model *sm, json_t *root) {
    rr_http_err e;
    const json_t *list = root;
    size_t n = 1;
    if (rq->batch) {
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
            if (strcmp(key, "requests")) {
                rr_http_err_set(&e, 400, "bad_field", "unknown field '%.64s'", key);
                return send_error(s, c, rq, &e);
            }
        }
        list = json_object_get(root, "requests");
        if (!json_is_array(list)) return send_err(s, c, rq, 400, "bad_field", "requests must be an array");
        n = json_array_size(list);
        if (n > RR_SERVE_MAX_BATCH) {
            rr_http_err_set(&e, 422, "limit_exceeded", "requests has %zu entries; at most %d are allowed",
                            n, RR_SERVE_MAX_BATCH);
            return send_error(s, c, rq, &e);
        }
        if (n == 0) {
            rr_sbuf b;
            rr_sbuf_init(&b);
            rr_sbuf_adds(&b, "{\"results\":[],\"model\":");
            rr_sbuf_add(&b, sm->brief, sm->brief_len);
            rr_sbuf_adds(&b, "}\n");
            return send_sbuf(s, c, rq, 200, &b);
        }
    }
    srv_job *j = job_new(JOB_ROWS, sm, n);
    if (!j) return send_err(s, c, rq, 500, "internal", "out of memory");
    for (size_t i = 0; i < n; i++) {
        srv_row *r = &j->rows[i];
        char where[32] = "";
        const json_t *o = rq->batch ? json_array_get(list, i) : list;
        if (rq->batch) snprintf(where, sizeof where, "requests[%zu].", i);
        if (!rr_rec_req_parse(o, where, sm->m, 1, &r->req, &e)) {
            srv_job_free(j);
            return send_error(s, c, rq, &e);
        }
        r->st = rr_state_new(sm->m);
        int ok = r->st && row_alloc(r);
        for (size_t t = 0; ok && t < r->req.n_items; t++) ok = rr_state_feed(r->st, r->req.items[t]) == RR_OK;
        if (!ok) {
            srv_job_free(j);
            return send_err(s, c, rq, 500, "internal", "out of memory");
        }
    }
    return submit(s, c, rq, j);
}

static enum MHD_Result do_session(struct rr_server *s, struct MHD_Connection *c, srv_req *rq,
                                  srv_model *sm, json_t *root) {
    rr_http_err e;
    srv_job_kind kind = rq->ep == EP_EVENTS ? JOB_EVENTS
                      : rq->ep == EP_SESSION_GET ? JOB_SESSION_GET : JOB_SESSION_DELETE;
    srv_job *j = job_new(kind, sm, kind == JOB_SESSION_DELETE ? 0 : 1);
    if (!j) return send_err(s, c, rq, 500, "internal", "out of memory");
    memcpy(j->sid, rq->sid, rq->sid_len + 1);
    j->sid_len = rq->sid_len;
    if (kind != JOB_SESSION_DELETE) {
        srv_row *r = &j->rows[0];
        r->req.k = RR_SERVE_DEFAULT_K;
        if (kind == JOB_EVENTS) {
            if (!rr_rec_req_parse(root, "", sm->m, 0, &r->req, &e)) {
                srv_job_free(j);
                return send_error(s, c, rq, &e);
            }
        } else {
            rr_sbuf_init(&r->req.unknown_json);
            rr_sbuf_adds(&r->req.unknown_json, "[]");
        }
        const char *ks = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "k");
        const char *xs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "exclude_seen");
        if (!rr_query_k(ks, &r->req.k, &e) || !rr_query_bool(xs, "exclude_seen", &r->req.exclude_seen, &e)) {
            srv_job_free(j);
            return send_error(s, c, rq, &e);
        }
        if (!row_alloc(r)) {
            srv_job_free(j);
            return send_err(s, c, rq, 500, "internal", "out of memory");
        }
    }
    return submit(s, c, rq, j);
}

static enum MHD_Result do_reload(struct rr_server *s, struct MHD_Connection *c, srv_req *rq) {
    if (!is_loopback(c)) return send_err(s, c, rq, 403, "forbidden", "reload is only accepted from loopback");
    rr_error err;
    if (rr_server_reload(s, &err) != RR_OK) {
        rr_http_err e;
        rr_http_err_set(&e, 500, "reload_failed", "%s; the previous model keeps serving", err.msg);
        return send_error(s, c, rq, &e);
    }
    srv_model *sm = srv_model_acquire(s);
    rr_sbuf b;
    rr_sbuf_init(&b);
    rr_sbuf_adds(&b, "{\"status\":\"reloaded\",\"model\":");
    if (sm) rr_sbuf_add(&b, sm->brief, sm->brief_len);
    else rr_sbuf_adds(&b, "null");
    rr_sbuf_adds(&b, "}\n");
    srv_model_unref(sm);
    return send_sbuf(s, c, rq, 200, &b);
}

/* The final call: the whole body is here. */
static enum MHD_Result dispatch(struct rr_server *s, struct MHD_Connection *c, srv_req *rq) {
    rr_sbuf b;
    switch (rq->ep) {
    case EP_HEALTHZ: {
        char *body = strdup("{\"status\":\"ok\"}\n");
        return body ? send_raw(s, c, rq, 200, body, strlen(body), "application/json", NULL) : MHD_NO;
    }
    case EP_METRICS: {
        size_t len;
        char *body = srv_metrics_render(s, &len);
        if (!body) return send_err(s, c, rq, 500, "internal", "out of memory");
        return send_raw(s, c, rq, 200, body, len, "text/plain; version=0.0.4; charset=utf-8", NULL);
    }
    case EP_RELOAD:
        return do_reload(s, c, rq);
    default:
        break;
    }
    srv_model *sm = srv_model_acquire(s);
    if (!sm) {
        char m[sizeof s->reload_error];
        pthread_mutex_lock(&s->model_mu);
        snprintf(m, sizeof m, "%s", s->reload_error[0] ? s->reload_error : "no model is loaded yet");
        pthread_mutex_unlock(&s->model_mu);
        return send_err(s, c, rq, 503, "not_ready", m);
    }
    enum MHD_Result ret;
    if (rq->ep == EP_READYZ || rq->ep == EP_MODEL) {
        rr_sbuf_init(&b);
        if (rq->ep == EP_READYZ) {
            rr_sbuf_adds(&b, "{\"status\":\"ready\",\"model\":");
            rr_sbuf_add(&b, sm->brief, sm->brief_len);
            rr_sbuf_adds(&b, "}\n");
        } else {
            rr_sbuf_add(&b, sm->info, sm->info_len);
            rr_sbuf_adds(&b, "\n");
        }
        ret = send_sbuf(s, c, rq, 200, &b);
    } else {
        json_t *root = NULL;
        rr_http_err e;
        int needs_body = rq->ep == EP_RECOMMEND || rq->ep == EP_BATCH || rq->ep == EP_EVENTS;
        if (needs_body) root = rr_json_parse_object(rq->body ? rq->body : "", rq->len, &e);
        if (needs_body && !root) ret = send_error(s, c, rq, &e);
        else if (rq->ep == EP_RECOMMEND || rq->ep == EP_BATCH) ret = do_recommend(s, c, rq, sm, root);
        else ret = do_session(s, c, rq, sm, root);
        json_decref(root);
    }
    srv_model_unref(sm);
    free(rq->body);
    rq->body = NULL;
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    struct rr_server *s = cls;
    srv_req *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        rq->t0 = rr_now();
        atomic_fetch_add(&s->metrics.in_flight, 1);
        snprintf(rq->method, sizeof rq->method, "%s", method);
        snprintf(rq->path, sizeof rq->path, "%s", url);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (ci && ci->socket_context) {
            rq->tc = ci->socket_context;
            pthread_mutex_lock(&s->conn_mu);
            rq->tc->in_request = 1;
            pthread_mutex_unlock(&s->conn_mu);
        }
        srv_method want = M_OTHER, got = method_of(method);
        int bad_sid;
        rq->ep = route(url, &want, rq, &bad_sid);
        rq->batch = rq->ep == EP_BATCH;
        if (rq->ep == EP_OTHER) {
            rr_http_err e;
            rr_http_err_set(&e, 404, "not_found", "no route for %.100s", url);
            return send_error(s, c, rq, &e);
        }
        if (got != want) {
            rr_http_err e;
            rr_http_err_set(&e, 405, "method_not_allowed", "%.100s takes %s, not %.16s", url,
                            method_name(want), method);
            return send_error_allow(s, c, rq, &e, method_name(want));
        }
        if (bad_sid)
            return send_err(s, c, rq, 400, "bad_session_id",
                            "a session id is 1..128 characters of A-Z a-z 0-9 . _ : -");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            /* Refused from the header alone, before any of the body is read. */
            char *end;
            unsigned long long v = strtoull(cl, &end, 10);
            if (*end || v > s->o.max_body) {
                rr_http_err e;
                rr_http_err_set(&e, 413, "body_too_large", "request body of %.24s bytes exceeds the limit of %zu",
                                cl, s->o.max_body);
                return send_error(s, c, rq, &e);
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rq->answered || rq->too_large) return MHD_YES;
        if (rr_now() - rq->t0 > s->o.read_timeout) {
            /* A body trickled in too slowly: drop the connection. */
            atomic_fetch_add(&s->metrics.conn_dropped_deadline, 1);
            return MHD_NO;
        }
        if (rq->len + n > s->o.max_body) {
            /* Chunked or lying about its length: stop keeping it. */
            rq->too_large = 1;
            free(rq->body);
            rq->body = NULL;
            return MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 1024;
            while (cap < rq->len + n + 1) cap *= 2;
            char *p = realloc(rq->body, cap);
            if (!p) return MHD_NO;
            rq->body = p;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload, n);
        rq->len += n;
        rq->body[rq->len] = 0;
        return MHD_YES;
    }
    if (rq->answered) return MHD_YES;
    if (rq->too_large) {
        rr_http_err e;
        rr_http_err_set(&e, 413, "body_too_large", "request body exceeds the limit of %zu bytes", s->o.max_body);
        return send_error(s, c, rq, &e);
    }
    if (rq->job) {
        if (!atomic_load_explicit(&rq->job->done, memory_order_acquire)) {
            MHD_suspend_connection(c);
            return MHD_YES;
        }
        return send_job(s, c, rq);
    }
    return dispatch(s, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    struct rr_server *s = cls;
    srv_req *rq = *con_cls;
    if (!rq) return;
    *con_cls = NULL;
    double dt = rr_now() - rq->t0;
    srv_metrics_request(&s->metrics, rq->ep, rq->answered ? rq->status : 0, dt);
    if (s->o.log_requests)
        rr_log(2, "%s %s %d %.0fus", rq->method, rq->path, rq->answered ? rq->status : 0, dt * 1e6);
    if (rq->tc) {
        pthread_mutex_lock(&s->conn_mu);
        rq->tc->in_request = 0;
        rq->tc->phase_start = rr_now();
        pthread_mutex_unlock(&s->conn_mu);
    }
    /* A job still queued (only possible if the daemon is torn down under
     * it) belongs to its shard; it is left, not freed. */
    if (rq->job && atomic_load(&rq->job->done)) srv_job_free(rq->job);
    free(rq->body);
    free(rq);
    atomic_fetch_sub(&s->metrics.in_flight, 1);
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
    return NULL;
}

unsigned rr_server_port(const rr_server *s) { return s->port; }

rr_status rr_server_reload(rr_server *s, rr_error *err) {
    rr_error local;
    if (!err) err = &local;
    pthread_mutex_lock(&s->reload_mu);
    srv_model *nm = NULL;
    rr_status st = srv_model_load(s->model_path, &nm, err);
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
    if (!st) st = bind_addr(s->host, o->port, &ss, &v6, err);
    if (!st) {
        unsigned threads = (unsigned)rr_threads(o->threads);
        unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        if (v6) flags |= MHD_USE_IPv6;
        struct MHD_OptionItem ops[] = {
            {MHD_OPTION_SOCK_ADDR, 0, &ss},
            {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o->max_connections, NULL},
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
    if (!st) {
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
