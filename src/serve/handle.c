/* handle.c - the request seam: one HTTP request in (method, path, the
 * Content-Length header, query arguments, body bytes), one answer out
 * (status, content type, body), with no socket and no libmicrohttpd in
 * sight.  http.c drives it from MHD's callbacks; fuzz/fuzz_http.c and the
 * tests call srv_handle directly.
 *
 * A request's life in four calls (see internal.h): srv_req_begin routes it
 * and refuses a body whose Content-Length is over --max-body before any of
 * it is read; srv_req_body appends upload bytes to a buffer capped at
 * --max-body; srv_req_end validates and either answers at once (errors,
 * health, metrics) or hands a job to the batcher and returns SRV_PENDING;
 * the batcher calls the waiter's resume when the job is scored, and
 * srv_req_result writes the JSON answer. */
#include <stdlib.h>
#include <string.h>

#include "serve/internal.h"
#include "util/util.h"

/* ------------------------------------------------------------ answers */

static const char ctype_json[] = "application/json";

/* Moves a finished buffer into out; SRV_FAIL when it ran out of memory. */
static srv_next answer_sbuf(srv_req *rq, srv_out *out, int status, rr_sbuf *b, const char *ctype) {
    size_t len;
    char *body = rr_sbuf_take(b, &len);
    if (!body) return SRV_FAIL;
    out->status = status;
    out->ctype = ctype;
    out->allow = NULL;
    out->body = body;
    out->len = len;
    rq->answered = 1;
    rq->status = status;
    return SRV_ANSWER;
}

static srv_next answer_error_allow(srv_req *rq, srv_out *out, const rr_http_err *e, const char *allow) {
    rr_sbuf b;
    rr_sbuf_init(&b);
    rr_sbuf_adds(&b, "{\"error\":{\"code\":");
    rr_sbuf_json_str(&b, e->code, strlen(e->code));
    rr_sbuf_adds(&b, ",\"message\":");
    rr_sbuf_json_str(&b, e->msg, strlen(e->msg));
    rr_sbuf_adds(&b, "}}\n");
    srv_next nx = answer_sbuf(rq, out, e->status, &b, ctype_json);
    out->allow = allow;
    return nx;
}

static srv_next answer_error(srv_req *rq, srv_out *out, const rr_http_err *e) {
    return answer_error_allow(rq, out, e, NULL);
}

static srv_next answer_err(srv_req *rq, srv_out *out, int status, const char *code, const char *msg) {
    rr_http_err e;
    rr_http_err_set(&e, status, code, "%s", msg);
    return answer_error(rq, out, &e);
}

/* Appends [{"id":..,"score":..},...] for a row's results. */
static void items_json(rr_sbuf *b, const srv_model *sm, const srv_row *row) {
    rr_sbuf_add(b, "[", 1);
    for (size_t i = 0; i < row->req.k && row->top[i] >= 0; i++) {
        size_t t = (size_t)row->top[i];
        rr_sbuf_add(b, i ? ",{\"id\":" : "{\"id\":", i ? 7 : 6);
        rr_sbuf_add(b, sm->ids_json + sm->ids_off[t], sm->ids_off[t + 1] - sm->ids_off[t]);
        rr_sbuf_add(b, ",\"score\":", 9);
        rr_sbuf_json_num(b, row->score[i]);
        rr_sbuf_add(b, "}", 1);
    }
    rr_sbuf_add(b, "]", 1);
}

static void row_json(rr_sbuf *b, const srv_model *sm, const srv_row *row) {
    rr_sbuf_adds(b, "\"items\":");
    items_json(b, sm, row);
    rr_sbuf_adds(b, ",\"unknown_items\":");
    rr_sbuf_add(b, row->req.unknown_json.p, row->req.unknown_json.len);
}

/* The answer to a finished job. */
srv_next srv_req_result(struct rr_server *s, srv_req *rq, srv_out *out) {
    (void)s;
    srv_job *j = rq->job;
    if (!j || !atomic_load_explicit(&j->done, memory_order_acquire)) return SRV_PENDING;
    if (j->failed) return answer_error(rq, out, &j->err);
    const srv_model *sm = j->model;
    rr_sbuf b;
    rr_sbuf_init(&b);
    /* About 50 bytes per recommended item: one allocation for the answer. */
    size_t est = 256;
    for (size_t i = 0; i < j->n_rows; i++) est += 56 * j->rows[i].req.k + j->rows[i].req.unknown_json.len;
    rr_sbuf_reserve(&b, est);
    rr_sbuf_add(&b, "{", 1);
    if (j->kind == JOB_ROWS && rq->batch) {
        rr_sbuf_adds(&b, "\"results\":[");
        for (size_t i = 0; i < j->n_rows; i++) {
            rr_sbuf_adds(&b, i ? ",{" : "{");
            row_json(&b, sm, &j->rows[i]);
            rr_sbuf_add(&b, "}", 1);
        }
        rr_sbuf_add(&b, "]", 1);
    } else if (j->kind == JOB_ROWS) {
        row_json(&b, sm, &j->rows[0]);
    } else {
        rr_sbuf_adds(&b, "\"session\":");
        rr_sbuf_json_str(&b, j->sid, j->sid_len);
        rr_sbuf_printf(&b, ",\"length\":%zu", j->sess_len);
        if (j->kind == JOB_SESSION_DELETE) {
            rr_sbuf_adds(&b, ",\"deleted\":true");
        } else {
            if (j->kind == JOB_EVENTS) rr_sbuf_adds(&b, j->sess_created ? ",\"created\":true" : ",\"created\":false");
            rr_sbuf_add(&b, ",", 1);
            row_json(&b, sm, &j->rows[0]);
        }
    }
    rr_sbuf_adds(&b, ",\"model\":");
    rr_sbuf_add(&b, sm->brief, sm->brief_len);
    rr_sbuf_adds(&b, "}\n");
    return answer_sbuf(rq, out, 200, &b, ctype_json);
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
        {"/v1/recommend", EP_RECOMMEND, M_POST},  {"/healthz", EP_HEALTHZ, M_GET},
        {"/readyz", EP_READYZ, M_GET},            {"/metrics", EP_METRICS, M_GET},
        {"/v1/model", EP_MODEL, M_GET},           {"/v1/recommend/batch", EP_BATCH, M_POST},
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

/* Hands the job to the batcher.  The waiter's suspend runs first, so its
 * resume (from the batcher) can never come before it; a job the queue
 * refuses is finished at once with its error. */
static srv_next submit(struct rr_server *s, srv_req *rq, srv_job *j, const srv_waiter *w) {
    rq->job = j;
    j->waiter = *w;
    if (w->suspend) w->suspend(w->arg);
    if (!srv_submit(s, j)) {
        j->failed = 1;
        atomic_store_explicit(&j->done, 1, memory_order_release);
        if (w->resume) w->resume(w->arg);
    }
    return SRV_PENDING;
}

/* Builds and submits a stateless job from a parsed request object (or, for
 * a batch, the "requests" array). */
static srv_next do_recommend(struct rr_server *s, srv_req *rq, srv_out *out, srv_model *sm, json_t *root,
                             const srv_waiter *w) {
    rr_http_err e;
    const json_t *list = root;
    size_t n = 1;
    if (rq->batch) {
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
            if (strcmp(key, "requests")) {
                rr_http_err_set(&e, 400, "bad_field", "unknown field '%.64s'", key);
                return answer_error(rq, out, &e);
            }
        }
        list = json_object_get(root, "requests");
        if (!json_is_array(list)) return answer_err(rq, out, 400, "bad_field", "requests must be an array");
        n = json_array_size(list);
        if (n > RR_SERVE_MAX_BATCH) {
            rr_http_err_set(&e, 422, "limit_exceeded", "requests has %zu entries; at most %d are allowed",
                            n, RR_SERVE_MAX_BATCH);
            return answer_error(rq, out, &e);
        }
        if (n == 0) {
            rr_sbuf b;
            rr_sbuf_init(&b);
            rr_sbuf_adds(&b, "{\"results\":[],\"model\":");
            rr_sbuf_add(&b, sm->brief, sm->brief_len);
            rr_sbuf_adds(&b, "}\n");
            return answer_sbuf(rq, out, 200, &b, ctype_json);
        }
    }
    srv_job *j = job_new(JOB_ROWS, sm, n);
    if (!j) return answer_err(rq, out, 500, "internal", "out of memory");
    for (size_t i = 0; i < n; i++) {
        srv_row *r = &j->rows[i];
        char where[32] = "";
        const json_t *o = rq->batch ? json_array_get(list, i) : list;
        if (rq->batch) snprintf(where, sizeof where, "requests[%zu].", i);
        if (!rr_rec_req_parse(o, where, sm->m, 1, &r->req, &e)) {
            srv_job_free(j);
            return answer_error(rq, out, &e);
        }
        r->st = rr_state_new(sm->m);
        int ok = r->st && row_alloc(r);
        if (ok) ok = rr_state_feed_items(r->st, r->req.items, r->req.n_items) == RR_OK;
        if (!ok) {
            srv_job_free(j);
            return answer_err(rq, out, 500, "internal", "out of memory");
        }
    }
    return submit(s, rq, j, w);
}

static const char *in_arg(const srv_in *in, const char *key) {
    return in->arg ? in->arg(in->arg_ctx, key) : NULL;
}

static srv_next do_session(struct rr_server *s, srv_req *rq, srv_out *out, srv_model *sm, json_t *root,
                           const srv_in *in, const srv_waiter *w) {
    rr_http_err e;
    srv_job_kind kind = rq->ep == EP_EVENTS ? JOB_EVENTS
                      : rq->ep == EP_SESSION_GET ? JOB_SESSION_GET : JOB_SESSION_DELETE;
    srv_job *j = job_new(kind, sm, kind == JOB_SESSION_DELETE ? 0 : 1);
    if (!j) return answer_err(rq, out, 500, "internal", "out of memory");
    memcpy(j->sid, rq->sid, rq->sid_len + 1);
    j->sid_len = rq->sid_len;
    if (kind != JOB_SESSION_DELETE) {
        srv_row *r = &j->rows[0];
        r->req.k = RR_SERVE_DEFAULT_K;
        if (kind == JOB_EVENTS) {
            if (!rr_rec_req_parse(root, "", sm->m, 0, &r->req, &e)) {
                srv_job_free(j);
                return answer_error(rq, out, &e);
            }
        } else {
            rr_sbuf_init(&r->req.unknown_json);
            rr_sbuf_adds(&r->req.unknown_json, "[]");
        }
        const char *ks = in_arg(in, "k"), *xs = in_arg(in, "exclude_seen");
        if (!rr_query_k(ks, &r->req.k, &e) || !rr_query_bool(xs, "exclude_seen", &r->req.exclude_seen, &e)) {
            srv_job_free(j);
            return answer_error(rq, out, &e);
        }
        if (!row_alloc(r)) {
            srv_job_free(j);
            return answer_err(rq, out, 500, "internal", "out of memory");
        }
    }
    return submit(s, rq, j, w);
}

static srv_next do_reload(struct rr_server *s, srv_req *rq, srv_out *out, const srv_in *in) {
    if (!in->loopback) return answer_err(rq, out, 403, "forbidden", "reload is only accepted from loopback");
    rr_error err;
    if (rr_server_reload(s, &err) != RR_OK) {
        rr_http_err e;
        rr_http_err_set(&e, 500, "reload_failed", "%s; the previous model keeps serving", err.msg);
        return answer_error(rq, out, &e);
    }
    srv_model *sm = srv_model_acquire(s);
    rr_sbuf b;
    rr_sbuf_init(&b);
    rr_sbuf_adds(&b, "{\"status\":\"reloaded\",\"model\":");
    if (sm) rr_sbuf_add(&b, sm->brief, sm->brief_len);
    else rr_sbuf_adds(&b, "null");
    rr_sbuf_adds(&b, "}\n");
    srv_model_unref(sm);
    return answer_sbuf(rq, out, 200, &b, ctype_json);
}

/* ------------------------------------------------------- the four calls */

srv_req *srv_req_new(struct rr_server *s) {
    srv_req *rq = calloc(1, sizeof *rq);
    if (!rq) return NULL;
    rq->t0 = rr_now();
    atomic_fetch_add(&s->metrics.in_flight, 1);
    return rq;
}

srv_next srv_req_begin(struct rr_server *s, srv_req *rq, const srv_in *in, srv_out *out) {
    snprintf(rq->method, sizeof rq->method, "%s", in->method);
    snprintf(rq->path, sizeof rq->path, "%s", in->url);
    srv_method want = M_OTHER, got = method_of(in->method);
    int bad_sid;
    rq->ep = route(in->url, &want, rq, &bad_sid);
    rq->batch = rq->ep == EP_BATCH;
    if (rq->ep == EP_OTHER) {
        rr_http_err e;
        rr_http_err_set(&e, 404, "not_found", "no route for %.100s", in->url);
        return answer_error(rq, out, &e);
    }
    if (got != want) {
        rr_http_err e;
        rr_http_err_set(&e, 405, "method_not_allowed", "%.100s takes %s, not %.16s", in->url, method_name(want),
                        in->method);
        return answer_error_allow(rq, out, &e, method_name(want));
    }
    if (bad_sid)
        return answer_err(rq, out, 400, "bad_session_id",
                          "a session id is 1..128 characters of A-Z a-z 0-9 . _ : -");
    if (in->content_length) {
        /* Refused from the header alone, before any of the body is read. */
        char *end;
        unsigned long long v = strtoull(in->content_length, &end, 10);
        if (*end || v > s->o.max_body) {
            rr_http_err e;
            rr_http_err_set(&e, 413, "body_too_large", "request body of %.24s bytes exceeds the limit of %zu",
                            in->content_length, s->o.max_body);
            return answer_error(rq, out, &e);
        }
        /* The body in one allocation (it is at most max_body). */
        if (v > 0 && !rq->body) {
            rq->body = malloc((size_t)v + 1);
            if (rq->body) rq->cap = (size_t)v + 1;
        }
    }
    return SRV_MORE;
}

srv_next srv_req_body(struct rr_server *s, srv_req *rq, const char *data, size_t n) {
    if (rq->answered || rq->too_large || n == 0) return SRV_MORE;
    if (rr_now() - rq->t0 > s->o.read_timeout) {
        /* A body trickled in too slowly: drop the connection. */
        atomic_fetch_add(&s->metrics.conn_dropped_deadline, 1);
        return SRV_DROP;
    }
    if (rq->len + n > s->o.max_body) {
        /* Chunked or lying about its length: stop keeping it. */
        rq->too_large = 1;
        free(rq->body);
        rq->body = NULL;
        rq->len = rq->cap = 0;
        return SRV_MORE;
    }
    if (rq->len + n + 1 > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 1024;
        while (cap < rq->len + n + 1) cap *= 2;
        char *p = realloc(rq->body, cap);
        if (!p) return SRV_DROP;
        rq->body = p;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    rq->body[rq->len] = 0;
    return SRV_MORE;
}

srv_next srv_req_end(struct rr_server *s, srv_req *rq, const srv_in *in, srv_out *out, const srv_waiter *w) {
    /* Answered already: the transports never call end then (internal.h);
     * out is not filled, so the caller must not send it. */
    if (rq->answered) return SRV_DROP;
    if (rq->job) return srv_req_result(s, rq, out);
    if (rq->too_large) {
        rr_http_err e;
        rr_http_err_set(&e, 413, "body_too_large", "request body exceeds the limit of %zu bytes", s->o.max_body);
        return answer_error(rq, out, &e);
    }
    rr_sbuf b;
    switch (rq->ep) {
    case EP_HEALTHZ:
        rr_sbuf_init(&b);
        rr_sbuf_adds(&b, "{\"status\":\"ok\"}\n");
        return answer_sbuf(rq, out, 200, &b, ctype_json);
    case EP_METRICS: {
        size_t len;
        char *body = srv_metrics_render(s, &len);
        if (!body) return answer_err(rq, out, 500, "internal", "out of memory");
        out->status = 200;
        out->ctype = "text/plain; version=0.0.4; charset=utf-8";
        out->allow = NULL;
        out->body = body;
        out->len = len;
        rq->answered = 1;
        rq->status = 200;
        return SRV_ANSWER;
    }
    case EP_RELOAD:
        return do_reload(s, rq, out, in);
    default:
        break;
    }
    srv_model *sm = srv_model_acquire(s);
    if (!sm) {
        char m[sizeof s->reload_error];
        pthread_mutex_lock(&s->model_mu);
        snprintf(m, sizeof m, "%s", s->reload_error[0] ? s->reload_error : "no model is loaded yet");
        pthread_mutex_unlock(&s->model_mu);
        return answer_err(rq, out, 503, "not_ready", m);
    }
    srv_next ret;
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
        ret = answer_sbuf(rq, out, 200, &b, ctype_json);
    } else {
        json_t *root = NULL;
        rr_http_err e;
        int needs_body = rq->ep == EP_RECOMMEND || rq->ep == EP_BATCH || rq->ep == EP_EVENTS;
        if (needs_body) root = rr_json_parse_object(rq->body ? rq->body : "", rq->len, &e);
        if (needs_body && !root) ret = answer_error(rq, out, &e);
        else if (rq->ep == EP_RECOMMEND || rq->ep == EP_BATCH) ret = do_recommend(s, rq, out, sm, root, w);
        else ret = do_session(s, rq, out, sm, root, in, w);
        json_decref(root);
    }
    srv_model_unref(sm);
    free(rq->body);
    rq->body = NULL;
    rq->len = rq->cap = 0;
    return ret;
}

int srv_req_pending(const srv_req *rq) {
    return rq->job && !atomic_load_explicit(&rq->job->done, memory_order_acquire);
}

void srv_req_free(struct rr_server *s, srv_req *rq) {
    if (!rq) return;
    double dt = rr_now() - rq->t0;
    srv_metrics_request(&s->metrics, rq->ep, rq->answered ? rq->status : 0, dt);
    if (s->o.log_requests)
        rr_log(2, "%s %s %d %.0fus", rq->method, rq->path, rq->answered ? rq->status : 0, dt * 1e6);
    /* A job still queued (only possible if the daemon is torn down under
     * it) belongs to its shard; it is left, not freed. */
    if (rq->job && atomic_load(&rq->job->done)) srv_job_free(rq->job);
    free(rq->body);
    free(rq);
    atomic_fetch_sub(&s->metrics.in_flight, 1);
}

/* ------------------------------------------------------ one call, in full */

typedef struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} sync_wait;

static void sync_resume(void *arg) {
    sync_wait *sw = arg;
    pthread_mutex_lock(&sw->mu);
    sw->done = 1;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
}

srv_next srv_handle(struct rr_server *s, const srv_in *in, const char *body, size_t len, srv_out *out) {
    memset(out, 0, sizeof *out);
    srv_req *rq = srv_req_new(s);
    if (!rq) return SRV_FAIL;
    srv_next nx = srv_req_begin(s, rq, in, out);
    if (nx == SRV_MORE) {
        /* In pieces, as a socket would deliver it. */
        for (size_t off = 0; off < len && nx == SRV_MORE;) {
            size_t n = len - off < 4096 ? len - off : 4096;
            nx = srv_req_body(s, rq, body + off, n);
            off += n;
        }
    }
    if (nx == SRV_MORE) {
        sync_wait sw;
        pthread_mutex_init(&sw.mu, NULL);
        pthread_cond_init(&sw.cv, NULL);
        sw.done = 0;
        srv_waiter w = {NULL, sync_resume, &sw};
        nx = srv_req_end(s, rq, in, out, &w);
        if (nx == SRV_PENDING) {
            pthread_mutex_lock(&sw.mu);
            while (!sw.done) pthread_cond_wait(&sw.cv, &sw.mu);
            pthread_mutex_unlock(&sw.mu);
            nx = srv_req_result(s, rq, out);
        }
        pthread_mutex_destroy(&sw.mu);
        pthread_cond_destroy(&sw.cv);
    }
    srv_req_free(s, rq);
    return nx;
}
