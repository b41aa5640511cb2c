/* internal.h - the pieces of the server shared by its files: metrics, the
 * reference-counted served model, scoring jobs, batcher shards and the
 * server itself.  Not installed; only src/serve/ and tests include it. */
#ifndef RR_SERVE_INTERNAL_H
#define RR_SERVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"
#include "serve/cache.h"
#include "serve/request.h"
#include "serve/sbuf.h"
#include "serve/serve.h"

struct MHD_Daemon;
struct MHD_Connection;

/* ------------------------------------------------------------- metrics */

typedef enum srv_endpoint {
    EP_HEALTHZ, EP_READYZ, EP_METRICS, EP_MODEL, EP_RECOMMEND, EP_BATCH, EP_EVENTS,
    EP_SESSION_GET, EP_SESSION_DELETE, EP_RELOAD, EP_OTHER, EP_COUNT
} srv_endpoint;

extern const char *const srv_endpoint_names[EP_COUNT];

#define SRV_N_STATUS 11 /* the statuses we answer with, plus "other" */
#define SRV_HIST_MAX 16

typedef struct srv_hist {
    size_t n_bounds;
    const double *bounds;              /* (n_bounds) upper bounds, ascending */
    atomic_ullong bucket[SRV_HIST_MAX + 1]; /* (n_bounds + 1) counts, last +Inf */
    atomic_ullong count;
    atomic_ullong sum_ns;              /* sum of observations x 1e9 */
} srv_hist;

typedef struct srv_metrics {
    atomic_ullong requests[EP_COUNT][SRV_N_STATUS];
    srv_hist latency[EP_COUNT];        /* seconds, request start to completion */
    srv_hist batch_size;               /* states per rr_recommend call */
    srv_hist batch_wait;               /* seconds from enqueue to scoring start */
    srv_hist batch_score;              /* seconds per rr_recommend call */
    atomic_ullong reloads_ok, reloads_failed;
    atomic_ullong conn_dropped_deadline;
    atomic_ullong overloaded;
    atomic_ullong in_flight;           /* requests begun and not completed */
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_hist_observe(srv_hist *h, double v);
int srv_status_index(int status);
void srv_metrics_request(srv_metrics *m, srv_endpoint ep, int status, double seconds);

/* -------------------------------------------------------- served model */

typedef struct srv_model {
    rr_model *m;            /* with its screen (rr_model_use_screen) when it has one */
    char *ids_json;        /* the item ids as quoted JSON strings, back to back */
    size_t *ids_off;       /* (n_items + 1) where id i starts in ids_json */
    atomic_long refs;
    uint64_t gen;          /* 1, 2, ... one per successful (re)load */
    uint64_t epoch;        /* bumps when a reload is incompatible */
    uint64_t arch_sig;     /* hash of kind and every section's name/type/size */
    size_t state_bytes;    /* estimated bytes of one rr_state */
    double load_seconds;
    double loaded_at;      /* wall-clock seconds since the epoch */
    long long file_bytes;
    uint32_t format_version;
    char *meta_json;       /* "hyperparameters":{...},"training":{...} */
    char *info;            /* JSON object for GET /v1/model */
    size_t info_len;
    char *brief;           /* {"kind":...,"generation":N} for every answer */
    size_t brief_len;
} srv_model;

/* Loads and validates path (and reads its container for the metadata
 * listing and shape fingerprint), with a screen_bits screen (0: none);
 * gen/epoch are set by the caller. */
rr_status srv_model_load(const char *path, int screen_bits, srv_model **out, rr_error *err);
/* Builds info/brief once gen is known. */
rr_status srv_model_describe(srv_model *sm, const char *path, rr_error *err);
/* 1 when sessions built on a can be replayed on b (same kind, items and
 * state shape). */
int srv_model_compatible(const srv_model *a, const srv_model *b);
void srv_model_ref(srv_model *sm);
void srv_model_unref(srv_model *sm);

/* ----------------------------------------------------------------- jobs */

typedef enum srv_job_kind { JOB_ROWS, JOB_EVENTS, JOB_SESSION_GET, JOB_SESSION_DELETE } srv_job_kind;

/* How the submitter of a job hears that it is done: suspend runs just
 * before the job is queued (may be NULL), resume on the batcher's thread
 * once the job is finished (its last touch of the job). */
typedef struct srv_waiter {
    void (*suspend)(void *arg);
    void (*resume)(void *arg);
    void *arg;
} srv_waiter;

typedef struct srv_row {
    rr_state *st;      /* owned for JOB_ROWS, borrowed from the session otherwise */
    rr_rec_req req;
    int32_t *top;      /* (req.k) recommended item indices, -1 padded */
    float *score;      /* (req.k) their scores */
} srv_row;

typedef struct srv_job {
    srv_job_kind kind;
    srv_model *model;       /* reference held until the job is freed */
    srv_row *rows;          /* (n_rows) */
    size_t n_rows;
    size_t next_row;        /* first row not yet taken into a batch */
    size_t rows_left;       /* rows not yet scored */
    char sid[RR_SID_MAX + 1];
    size_t sid_len;
    size_t sess_len;        /* session length after the job */
    int sess_created;
    int failed;
    rr_http_err err;
    double t_enqueue;
    srv_waiter waiter;
    struct srv_job *next;   /* queue link */
    atomic_int done;
} srv_job;

void srv_job_free(srv_job *j);

/* --------------------------------------------------------------- shards */

/* Scoring scratch of one batcher; every buffer only grows. */
typedef struct srv_scorer {
    size_t cap_n, cap_nk;
    rr_state **states;              /* (cap_n) the states of one call */
    int32_t *top;                   /* (cap_nk) (n, kq) ranked items */
    float *score;                   /* (cap_nk) their scores */
} srv_scorer;

void srv_scorer_free(srv_scorer *sc);

typedef struct srv_shard {
    struct rr_server *srv;
    size_t index;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_job *head, *tail;   /* queue */
    atomic_size_t queued_rows;
    int stop;
    rr_cache cache;         /* touched only by this shard's thread */
    /* published for /metrics */
    atomic_size_t live, bytes;
    atomic_ullong ev_lru, ev_ttl, ev_memory, ev_reload;
    uint64_t epoch_seen;
    /* scratch, (max_batch) */
    srv_row **batch_rows;
    srv_job **batch_jobs;
    rr_sess **pinned;
    srv_row **live_rows;
    srv_scorer scorer;
} srv_shard;

/* ------------------------------------------------------ the request seam */

/* One HTTP request as the transport hands it over. */
typedef struct srv_in {
    const char *method;           /* "GET", "POST", ... */
    const char *url;              /* the path, without the query string */
    const char *content_length;   /* the Content-Length header, or NULL */
    /* The decoded query argument `key`, or NULL; arg may be NULL (none). */
    const char *(*arg)(void *ctx, const char *key);
    void *arg_ctx;
    int loopback;                 /* the client is on a loopback address */
} srv_in;

/* One answer. */
typedef struct srv_out {
    int status;
    const char *ctype;            /* Content-Type (a static string) */
    const char *allow;            /* the Allow header of a 405, else NULL */
    char *body;                   /* (len) bytes, malloc'd: the caller frees */
    size_t len;
} srv_out;

typedef enum srv_next {
    SRV_ANSWER,   /* out holds the answer */
    SRV_MORE,     /* deliver the body with srv_req_body, then call srv_req_end */
    SRV_PENDING,  /* a job is with the batcher: the waiter's resume runs when it
                     is done, then srv_req_result gives the answer */
    SRV_DROP,     /* close the connection without an answer (read deadline) */
    SRV_FAIL      /* out of memory for the answer itself: close */
} srv_next;

typedef struct srv_conn srv_conn;

typedef struct srv_req {
    srv_endpoint ep;
    double t0;
    char method[8];
    char path[160];         /* for the log line */
    char sid[RR_SID_MAX + 1];
    size_t sid_len;
    char *body;             /* (cap) request body so far, NUL-terminated */
    size_t len, cap;
    int too_large;
    int answered;           /* an answer has been produced */
    int status;
    int batch;              /* EP_BATCH: answer {"results": [...]} */
    srv_job *job;
    srv_conn *tc;           /* the transport's connection entry (http.c) */
} srv_req;

/* The calls of one request, in order: new, begin, body (0 or more times),
 * end, result (after a SRV_PENDING, once resumed), free.  begin and end
 * may answer at once; after an answer only free is called.  Thread-safe
 * for different requests. */
srv_req *srv_req_new(struct rr_server *s);  /* NULL when out of memory */
srv_next srv_req_begin(struct rr_server *s, srv_req *rq, const srv_in *in, srv_out *out);
srv_next srv_req_body(struct rr_server *s, srv_req *rq, const char *data, size_t n);
srv_next srv_req_end(struct rr_server *s, srv_req *rq, const srv_in *in, srv_out *out, const srv_waiter *w);
/* SRV_PENDING while the job is not done. */
srv_next srv_req_result(struct rr_server *s, srv_req *rq, srv_out *out);
int srv_req_pending(const srv_req *rq);
/* Counts the request in /metrics, logs it, frees it (accepts NULL). */
void srv_req_free(struct rr_server *s, srv_req *rq);

/* The whole of one request, blocking until it is answered: what a
 * transport does, without one.  Returns SRV_ANSWER (out filled; free
 * out->body), SRV_DROP or SRV_FAIL. */
srv_next srv_handle(struct rr_server *s, const srv_in *in, const char *body, size_t len, srv_out *out);

/* rr_server_start without the listening socket when with_socket is 0: the
 * model, the batchers and the cache run, and requests come in through
 * srv_handle only (the fuzz harness, tests).  rr_server_free stops it. */
rr_status srv_server_start(rr_server **out, const rr_server_opts *o, int with_socket, rr_error *err);

/* --------------------------------------------------------------- server */

struct srv_conn {
    int fd;
    double phase_start;     /* connection open or previous request done */
    int in_request;         /* headers received: the handler owns it now */
    struct srv_conn *prev, *next;
};

struct rr_server {
    rr_server_opts o;
    char *model_path, *host;
    srv_metrics metrics;
    pthread_mutex_t model_mu;   /* guards cur */
    srv_model *cur;
    pthread_mutex_t reload_mu;  /* serialises reloads */
    uint64_t next_gen;
    char reload_error[512];     /* last failure, "" when the last reload worked */
    srv_shard *shards;
    size_t n_shards;
    atomic_size_t rr_next;      /* round robin for stateless jobs */
    struct MHD_Daemon *d;
    unsigned port;
    atomic_int draining;
    /* connection tracking for the read deadline */
    pthread_mutex_t conn_mu;
    srv_conn *conns;
    size_t n_conns;
    pthread_t reaper;
    int reaper_started;
    pthread_mutex_t reaper_mu;
    pthread_cond_t reaper_cv;
    int reaper_stop;
};

/* The model now served, with a reference the caller must drop; NULL while
 * none is ready. */
srv_model *srv_model_acquire(struct rr_server *s);

/* Batcher: start/stop the shard threads, enqueue a job (false with
 * j->err set when the queue is full). */
rr_status srv_shards_start(struct rr_server *s, rr_error *err);
void srv_shards_stop(struct rr_server *s);  /* joins; submits are refused after */
void srv_shards_free(struct rr_server *s);  /* after the daemon has stopped */
bool srv_submit(struct rr_server *s, srv_job *j);
size_t srv_shard_of(const struct rr_server *s, const char *sid, size_t len);
/* Sum of the shards' cache counters. */
void srv_sessions_totals(struct rr_server *s, size_t *live, size_t *bytes, uint64_t ev[4]);

/* Prometheus text for GET /metrics. */
char *srv_metrics_render(struct rr_server *s, size_t *len);

/* Scores one batch of rows on a model with one rr_recommend call per
 * exclude_seen group, applying each row's exclude list (exposed for
 * tests). */
rr_status srv_score_rows(const srv_model *sm, srv_row *const *rows, size_t n, srv_scorer *sc, rr_error *err);

#endif
