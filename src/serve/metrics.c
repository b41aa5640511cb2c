/* metrics.c - request counters, histograms and the Prometheus text
 * exposition (format 0.0.4) served at GET /metrics. */
#include <math.h>
#include <string.h>

#include "serve/internal.h"
#include "util/util.h"

const char *const srv_endpoint_names[EP_COUNT] = {
    "healthz", "readyz", "metrics", "model", "recommend", "recommend_batch",
    "session_events", "session_recommend", "session_delete", "admin_reload", "other"};

static const int statuses[SRV_N_STATUS - 1] = {200, 400, 403, 404, 405, 408, 413, 422, 500, 503};

/* Latency buckets from 100 us to 2.5 s: the batcher adds well under a
 * millisecond, so the low end needs resolution. */
static const double lat_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01,
                                    0.025,  0.05,    0.1,    0.25,  0.5,   1.0,   2.5};
static const double size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

static void hist_init(srv_hist *h, const double *b, size_t n) {
    RR_ASSERT(n <= SRV_HIST_MAX);
    memset(h, 0, sizeof *h);
    h->bounds = b;
    h->n_bounds = n;
}

void srv_metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    size_t nl = sizeof lat_bounds / sizeof lat_bounds[0];
    for (int e = 0; e < EP_COUNT; e++) hist_init(&m->latency[e], lat_bounds, nl);
    hist_init(&m->batch_size, size_bounds, sizeof size_bounds / sizeof size_bounds[0]);
    hist_init(&m->batch_wait, lat_bounds, nl);
    hist_init(&m->batch_score, lat_bounds, nl);
}

void srv_hist_observe(srv_hist *h, double v) {
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    double ns = v > 0 ? v * 1e9 : 0;
    atomic_fetch_add_explicit(&h->sum_ns, (unsigned long long)ns, memory_order_relaxed);
}

int srv_status_index(int status) {
    for (int i = 0; i < SRV_N_STATUS - 1; i++)
        if (statuses[i] == status) return i;
    return SRV_N_STATUS - 1;
}

void srv_metrics_request(srv_metrics *m, srv_endpoint ep, int status, double seconds) {
    atomic_fetch_add_explicit(&m->requests[ep][srv_status_index(status)], 1, memory_order_relaxed);
    srv_hist_observe(&m->latency[ep], seconds);
}

static void hist_render(rr_sbuf *b, const char *name, const char *labels, const srv_hist *h) {
    unsigned long long cum = 0;
    const char *sep = *labels ? "," : "";
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i < h->n_bounds)
            rr_sbuf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i], cum);
        else
            rr_sbuf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, cum);
    }
    unsigned long long cnt = atomic_load_explicit(&h->count, memory_order_relaxed);
    double sum = (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
    if (*labels) {
        rr_sbuf_printf(b, "%s_sum{%s} %.9g\n", name, labels, sum);
        rr_sbuf_printf(b, "%s_count{%s} %llu\n", name, labels, cnt);
    } else {
        rr_sbuf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, sum, name, cnt);
    }
}

char *srv_metrics_render(struct rr_server *s, size_t *len) {
    srv_metrics *m = &s->metrics;
    rr_sbuf b;
    rr_sbuf_init(&b);
    rr_sbuf_adds(&b, "# HELP rnnrec_http_requests_total HTTP requests answered, by endpoint and status.\n"
                     "# TYPE rnnrec_http_requests_total counter\n");
    for (int e = 0; e < EP_COUNT; e++)
        for (int i = 0; i < SRV_N_STATUS; i++) {
            unsigned long long v = atomic_load_explicit(&m->requests[e][i], memory_order_relaxed);
            if (!v) continue;
            if (i < SRV_N_STATUS - 1)
                rr_sbuf_printf(&b, "rnnrec_http_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n",
                               srv_endpoint_names[e], statuses[i], v);
            else
                rr_sbuf_printf(&b, "rnnrec_http_requests_total{endpoint=\"%s\",code=\"other\"} %llu\n",
                               srv_endpoint_names[e], v);
        }
    rr_sbuf_adds(&b, "# HELP rnnrec_http_request_duration_seconds Time from request headers to response completion.\n"
                     "# TYPE rnnrec_http_request_duration_seconds histogram\n");
    for (int e = 0; e < EP_COUNT; e++) {
        if (!atomic_load_explicit(&m->latency[e].count, memory_order_relaxed)) continue;
        char lab[64];
        snprintf(lab, sizeof lab, "endpoint=\"%s\"", srv_endpoint_names[e]);
        hist_render(&b, "rnnrec_http_request_duration_seconds", lab, &m->latency[e]);
    }
    rr_sbuf_adds(&b, "# HELP rnnrec_http_in_flight Requests begun and not yet completed.\n"
                     "# TYPE rnnrec_http_in_flight gauge\n");
    rr_sbuf_printf(&b, "rnnrec_http_in_flight %llu\n",
                   (unsigned long long)atomic_load(&m->in_flight));
    rr_sbuf_adds(&b, "# HELP rnnrec_batch_size States scored per rr_recommend call.\n"
                     "# TYPE rnnrec_batch_size histogram\n");
    hist_render(&b, "rnnrec_batch_size", "", &m->batch_size);
    rr_sbuf_adds(&b, "# HELP rnnrec_batch_wait_seconds Time a request waits in the batcher queue.\n"
                     "# TYPE rnnrec_batch_wait_seconds histogram\n");
    hist_render(&b, "rnnrec_batch_wait_seconds", "", &m->batch_wait);
    rr_sbuf_adds(&b, "# HELP rnnrec_batch_score_seconds Time of one batched rr_recommend call.\n"
                     "# TYPE rnnrec_batch_score_seconds histogram\n");
    hist_render(&b, "rnnrec_batch_score_seconds", "", &m->batch_score);

    size_t live = 0, bytes = 0;
    uint64_t ev[4] = {0, 0, 0, 0};
    srv_sessions_totals(s, &live, &bytes, ev);
    rr_sbuf_printf(&b,
                   "# HELP rnnrec_sessions_live Live sessions held in the cache.\n"
                   "# TYPE rnnrec_sessions_live gauge\nrnnrec_sessions_live %zu\n"
                   "# HELP rnnrec_sessions_max Cap on live sessions.\n"
                   "# TYPE rnnrec_sessions_max gauge\nrnnrec_sessions_max %zu\n"
                   "# HELP rnnrec_session_memory_bytes Estimated memory of the live sessions.\n"
                   "# TYPE rnnrec_session_memory_bytes gauge\nrnnrec_session_memory_bytes %zu\n"
                   "# HELP rnnrec_session_memory_limit_bytes Cap on session memory.\n"
                   "# TYPE rnnrec_session_memory_limit_bytes gauge\nrnnrec_session_memory_limit_bytes %zu\n"
                   "# HELP rnnrec_session_evictions_total Sessions removed by the cache, by reason.\n"
                   "# TYPE rnnrec_session_evictions_total counter\n"
                   "rnnrec_session_evictions_total{reason=\"lru\"} %llu\n"
                   "rnnrec_session_evictions_total{reason=\"ttl\"} %llu\n"
                   "rnnrec_session_evictions_total{reason=\"memory\"} %llu\n"
                   "rnnrec_session_evictions_total{reason=\"reload\"} %llu\n",
                   live, s->o.max_sessions, bytes, s->o.session_memory, (unsigned long long)ev[0],
                   (unsigned long long)ev[1], (unsigned long long)ev[2], (unsigned long long)ev[3]);
    rr_sbuf_printf(&b,
                   "# HELP rnnrec_connections_dropped_total Connections closed for missing the read deadline.\n"
                   "# TYPE rnnrec_connections_dropped_total counter\nrnnrec_connections_dropped_total %llu\n"
                   "# HELP rnnrec_overloaded_total Requests refused because the batcher queue was full.\n"
                   "# TYPE rnnrec_overloaded_total counter\nrnnrec_overloaded_total %llu\n",
                   (unsigned long long)atomic_load(&m->conn_dropped_deadline),
                   (unsigned long long)atomic_load(&m->overloaded));
    rr_sbuf_printf(&b,
                   "# HELP rnnrec_model_reloads_total Model reloads, by result.\n"
                   "# TYPE rnnrec_model_reloads_total counter\n"
                   "rnnrec_model_reloads_total{result=\"ok\"} %llu\n"
                   "rnnrec_model_reloads_total{result=\"failed\"} %llu\n",
                   (unsigned long long)atomic_load(&m->reloads_ok),
                   (unsigned long long)atomic_load(&m->reloads_failed));
    srv_model *sm = srv_model_acquire(s);
    rr_sbuf_printf(&b,
                   "# HELP rnnrec_model_ready 1 when a validated model is loaded.\n"
                   "# TYPE rnnrec_model_ready gauge\nrnnrec_model_ready %d\n",
                   sm ? 1 : 0);
    if (sm) {
        rr_sbuf_printf(&b,
                       "# HELP rnnrec_model_generation Generation of the model served (1 = first load).\n"
                       "# TYPE rnnrec_model_generation gauge\nrnnrec_model_generation %llu\n"
                       "# HELP rnnrec_model_load_seconds Time the served model took to load and validate.\n"
                       "# TYPE rnnrec_model_load_seconds gauge\nrnnrec_model_load_seconds %.6f\n"
                       "# HELP rnnrec_model_items Items in the served model's catalogue.\n"
                       "# TYPE rnnrec_model_items gauge\nrnnrec_model_items %zu\n",
                       (unsigned long long)sm->gen, sm->load_seconds, rr_model_n_items(sm->m));
        srv_model_unref(sm);
    }
    rr_sbuf_printf(&b,
                   "# HELP rnnrec_process_peak_rss_bytes Peak resident set size of the server.\n"
                   "# TYPE rnnrec_process_peak_rss_bytes gauge\nrnnrec_process_peak_rss_bytes %zu\n",
                   rr_peak_rss_kb() * (size_t)1024);
    return rr_sbuf_take(&b, len);
}
