/* test_serve.c - the HTTP service, end to end: a real server on an
 * ephemeral loopback port, driven by a small HTTP/1.1 client over sockets.
 *
 * Covers every endpoint, a malformed-request suite with pinned statuses and
 * error codes, live sessions against an offline replay with rr_recommend,
 * hot reload while a client loops (zero failures; a corrupt file keeps the
 * old model; sessions kept across a compatible swap and dropped across an
 * incompatible one), the slow-client read deadline, graceful drain, and
 * the pieces below HTTP (JSON escaping, depth guard, session cache). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "rnnrec.h"
#include "models/model.h"
#include "nn/screen.h"
#include "serve/cache.h"
#include "serve/internal.h"
#include "serve/request.h"
#include "serve/sbuf.h"
#include "serve/serve.h"
#include "util/util.h"

static char tmpdir[256];
static char model_a[320], model_b[320], model_c[320], model_live[320];
static const char *kind_used;

/* ------------------------------------------------------------ HTTP client */

typedef struct resp {
    int status;
    char *body;   /* NUL-terminated */
    size_t len;
    char head[2048];
} resp;

static void resp_free(resp *r) {
    free(r->body);
    r->body = NULL;
}

static int dial(unsigned port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads a whole response (the server closes: we send Connection: close). */
static int read_resp(int fd, resp *r) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1024 > cap) buf = realloc(buf, cap *= 2);
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0) break;
        len += (size_t)n;
    }
    buf[len] = 0;
    r->status = 0;
    r->body = NULL;
    r->len = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (len < 12 || !sep) {
        free(buf);
        return -1;
    }
    r->status = atoi(buf + 9);
    size_t hl = (size_t)(sep - buf);
    snprintf(r->head, sizeof r->head, "%.*s", (int)(hl < sizeof r->head - 1 ? hl : sizeof r->head - 1), buf);
    r->len = len - hl - 4;
    r->body = malloc(r->len + 1);
    memcpy(r->body, sep + 4, r->len);
    r->body[r->len] = 0;
    free(buf);
    return 0;
}

/* One request on a fresh connection.  body may be NULL. */
static int http(unsigned port, const char *method, const char *path, const char *body, resp *r) {
    memset(r, 0, sizeof *r);
    int fd = dial(port);
    if (fd < 0) return -1;
    size_t bl = body ? strlen(body) : 0;
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      method, path, bl);
    int rc = send_all(fd, head, (size_t)hn);
    if (!rc && bl) rc = send_all(fd, body, bl);
    if (!rc) rc = read_resp(fd, r);
    close(fd);
    return rc;
}

/* The error code of an error body, or "" */
static const char *err_code(const resp *r, char *buf, size_t cap) {
    buf[0] = 0;
    json_t *j = json_loads(r->body ? r->body : "", 0, NULL);
    const char *c = j ? json_string_value(json_object_get(json_object_get(j, "error"), "code")) : NULL;
    if (c) snprintf(buf, cap, "%s", c);
    json_decref(j);
    return buf;
}

/* ------------------------------------------------------------ test models */

static void write_events(const char *path, unsigned seed, size_t n_items, size_t n_sessions) {
    FILE *f = fopen(path, "w");
    fprintf(f, "session_id\titem_id\ttimestamp\n");
    rr_rng r;
    rr_rng_seed(&r, seed);
    long t = 1000;
    for (size_t s = 0; s < n_sessions; s++) {
        size_t len = 2 + (size_t)rr_rng_below(&r, 6);
        size_t it = (size_t)rr_rng_below(&r, n_items);
        for (size_t i = 0; i < len; i++) {
            fprintf(f, "%zu\t%zu\t%ld\n", s + 1, 100 + it, t++);
            /* Mostly a fixed successor: something for a sequence model to learn. */
            it = rr_rng_below(&r, 4) ? (it * 7 + 3) % n_items : (size_t)rr_rng_below(&r, n_items);
        }
    }
    fclose(f);
}

static int train_to(const char *events, const char *kind, const char *out) {
    rr_error err;
    rr_read_opts ro;
    rr_read_opts_default(&ro);
    rr_dataset *d = NULL;
    if (rr_dataset_read(events, &ro, &d, &err) != RR_OK) {
        fprintf(stderr, "read %s: %s\n", events, err.msg);
        return -1;
    }
    rr_train_params tp;
    rr_train_params_default(&tp);
    tp.kind = kind;
    tp.threads = 1;
    tp.verbose = 0;
    if (!strcmp(kind, "gru")) {
        tp.n_layers = 1;
        tp.layers[0] = 16;
        tp.epochs = 1;
        tp.batch_size = 16;
        tp.n_sample = 16;
    }
    rr_model *m = NULL;
    rr_status s = rr_model_train(&m, d, NULL, &tp, &err);
    if (!s) s = rr_model_save(m, out, &err);
    if (s) fprintf(stderr, "train %s: %s\n", kind, err.msg);
    rr_model_free(m);
    rr_dataset_free(d);
    return s ? -1 : 0;
}

static void copy_file(const char *from, const char *to) {
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    FILE *a = fopen(from, "rb"), *b = fopen(tmp, "wb");
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
    rename(tmp, to); /* atomic, as a deployment would do it */
}

/* ------------------------------------------------------- offline reference */

/* Top-k ids and scores of a session replayed in-process. */
static size_t offline_topk(const char *model_path, const char *const *ids, size_t n, size_t k,
                           int exclude_seen, char out_ids[][32], float *out_sc) {
    rr_error err;
    rr_model *m = NULL;
    if (rr_model_load(model_path, &m, &err)) return 0;
    rr_state *st = rr_state_new(m);
    for (size_t i = 0; i < n; i++) {
        int32_t ix = rr_model_item_index(m, ids[i], strlen(ids[i]));
        if (ix >= 0) rr_state_feed(st, ix);
    }
    int32_t top[64];
    float sc[64];
    size_t got = 0;
    if (rr_recommend(m, &st, 1, k, exclude_seen, top, sc, &err) == RR_OK)
        for (; got < k && top[got] >= 0; got++) {
            size_t len;
            const char *id = rr_model_item_id(m, top[got], &len);
            snprintf(out_ids[got], 32, "%.*s", (int)len, id);
            out_sc[got] = sc[got];
        }
    rr_state_free(st);
    rr_model_free(m);
    return got;
}

/* Checks that a response's "items" equal the offline top-k. */
static int items_match(const json_t *items, const char *model_path, const char *const *ids, size_t n,
                       size_t k, int exclude_seen) {
    char want[64][32];
    float wsc[64];
    size_t nw = offline_topk(model_path, ids, n, k, exclude_seen, want, wsc);
    if (!json_is_array(items) || json_array_size(items) != nw || nw == 0) {
        fprintf(stderr, "items: got %zu, want %zu\n", json_is_array(items) ? json_array_size(items) : 0, nw);
        return 0;
    }
    for (size_t i = 0; i < nw; i++) {
        const json_t *o = json_array_get(items, i);
        const char *id = json_string_value(json_object_get(o, "id"));
        double sc = json_number_value(json_object_get(o, "score"));
        if (!id || strcmp(id, want[i]) || fabs(sc - wsc[i]) > 1e-5 * (1 + fabs(wsc[i]))) {
            fprintf(stderr, "item %zu: got %s %.9g, want %s %.9g\n", i, id ? id : "?", sc, want[i],
                    (double)wsc[i]);
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------- the server */

static rr_server *start(const char *model, double read_timeout, int allow_no_model) {
    rr_server_opts o;
    rr_server_opts_default(&o);
    o.model_path = model;
    o.port = 0;
    o.threads = 2;
    o.batchers = 2;
    o.read_timeout = read_timeout;
    o.idle_timeout = 5;
    o.allow_no_model = allow_no_model;
    o.max_sessions = 1000;
    rr_error err;
    rr_server *s = NULL;
    if (rr_server_start(&s, &o, &err) != RR_OK) {
        fprintf(stderr, "server start: %s\n", err.msg);
        return NULL;
    }
    return s;
}

static void test_endpoints(unsigned port) {
    resp r;
    CHECK(http(port, "GET", "/healthz", NULL, &r) == 0 && r.status == 200);
    resp_free(&r);
    CHECK(http(port, "GET", "/readyz", NULL, &r) == 0 && r.status == 200 && strstr(r.body, "\"ready\""));
    resp_free(&r);
    CHECK(http(port, "GET", "/v1/model", NULL, &r) == 0 && r.status == 200);
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    CHECK(j && !strcmp(json_string_value(json_object_get(j, "kind")), kind_used));
    CHECK(j && json_integer_value(json_object_get(j, "items")) > 0);
    /* the ranking screen: 8 bits (the default) for a GRU on a CPU that runs it */
    CHECK(j && json_integer_value(json_object_get(j, "screen_bits")) ==
                   (!strcmp(kind_used, "gru") && rr_screen_supported() ? 8 : 0));
    CHECK(j && json_is_object(json_object_get(j, "hyperparameters")));
    CHECK(j && json_is_string(json_object_get(json_object_get(j, "training"), "train_events")));
    json_decref(j);
    resp_free(&r);

    /* Stateless: ids as strings and as numbers, an unknown id reported. */
    const char *ids[] = {"103", "124", "117"};
    CHECK(http(port, "POST", "/v1/recommend", "{\"items\": [\"103\", 124, \"117\", \"nope\"], \"k\": 10}", &r) == 0);
    CHECK_MSG(r.status == 200, "status %d body %s", r.status, r.body);
    j = json_loads(r.body ? r.body : "", 0, NULL);
    CHECK(j && items_match(json_object_get(j, "items"), model_live, ids, 3, 10, 0));
    const json_t *unk = json_object_get(j, "unknown_items");
    CHECK(json_array_size(unk) == 1 && !strcmp(json_string_value(json_array_get(unk, 0)), "nope"));
    CHECK(json_integer_value(json_object_get(json_object_get(j, "model"), "generation")) >= 1);
    json_decref(j);
    resp_free(&r);

    /* exclude_seen and an explicit exclude list. */
    CHECK(http(port, "POST", "/v1/recommend",
               "{\"items\": [\"103\", \"124\"], \"k\": 30, \"exclude_seen\": true, \"exclude\": [\"110\", 111]}", &r) == 0);
    CHECK(r.status == 200);
    j = json_loads(r.body ? r.body : "", 0, NULL);
    const json_t *items = json_object_get(j, "items");
    CHECK(json_array_size(items) == 30);
    int bad = 0;
    for (size_t i = 0; i < json_array_size(items); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(items, i), "id"));
        if (!id || !strcmp(id, "103") || !strcmp(id, "124") || !strcmp(id, "110") || !strcmp(id, "111")) bad++;
    }
    CHECK(bad == 0);
    json_decref(j);
    resp_free(&r);

    /* Empty and all-unknown sessions fall back to popularity. */
    CHECK(http(port, "POST", "/v1/recommend", "{\"items\": [\"zz\"], \"k\": 5}", &r) == 0 && r.status == 200);
    j = json_loads(r.body ? r.body : "", 0, NULL);
    CHECK(j && items_match(json_object_get(j, "items"), model_live, NULL, 0, 5, 0));
    json_decref(j);
    resp_free(&r);

    /* Batch: results in order, each equal to its single answer. */
    CHECK(http(port, "POST", "/v1/recommend/batch",
               "{\"requests\": [{\"items\": [\"103\"], \"k\": 3}, {\"items\": []}, {\"items\": [\"124\", \"117\"], \"k\": 4}]}",
               &r) == 0);
    CHECK_MSG(r.status == 200, "batch status %d %s", r.status, r.body);
    j = json_loads(r.body ? r.body : "", 0, NULL);
    const json_t *res = json_object_get(j, "results");
    CHECK(json_array_size(res) == 3);
    const char *b0[] = {"103"}, *b2[] = {"124", "117"};
    CHECK(items_match(json_object_get(json_array_get(res, 0), "items"), model_live, b0, 1, 3, 0));
    CHECK(items_match(json_object_get(json_array_get(res, 1), "items"), model_live, NULL, 0, 20, 0));
    CHECK(items_match(json_object_get(json_array_get(res, 2), "items"), model_live, b2, 2, 4, 0));
    json_decref(j);
    resp_free(&r);
    CHECK(http(port, "POST", "/v1/recommend/batch", "{\"requests\": []}", &r) == 0 && r.status == 200 &&
          strstr(r.body, "\"results\":[]"));
    resp_free(&r);

    /* A batch larger than one scoring call (64) is split and reassembled. */
    {
        rr_sbuf b;
        rr_sbuf_init(&b);
        rr_sbuf_adds(&b, "{\"requests\": [");
        for (int i = 0; i < 150; i++) rr_sbuf_printf(&b, "%s{\"items\": [\"%d\"], \"k\": 2}", i ? "," : "", 100 + i % 60);
        rr_sbuf_adds(&b, "]}");
        CHECK(http(port, "POST", "/v1/recommend/batch", b.p, &r) == 0 && r.status == 200);
        j = json_loads(r.body ? r.body : "", 0, NULL);
        res = json_object_get(j, "results");
        CHECK(json_array_size(res) == 150);
        char id[16];
        snprintf(id, sizeof id, "%d", 100 + 77 % 60);
        const char *one[] = {id};
        CHECK(items_match(json_object_get(json_array_get(res, 77), "items"), model_live, one, 1, 2, 0));
        json_decref(j);
        resp_free(&r);
        rr_sbuf_free(&b);
    }
}

static void test_sessions(unsigned port) {
    resp r;
    json_t *j;
    CHECK(http(port, "POST", "/v1/sessions/u-1/events?k=8", "{\"items\": [\"103\", \"unk\", \"124\"]}", &r) == 0);
    CHECK_MSG(r.status == 200, "events %d %s", r.status, r.body);
    j = json_loads(r.body ? r.body : "", 0, NULL);
    CHECK(json_integer_value(json_object_get(j, "length")) == 2);
    CHECK(json_is_true(json_object_get(j, "created")));
    const char *s1[] = {"103", "124"};
    CHECK(items_match(json_object_get(j, "items"), model_live, s1, 2, 8, 0));
    json_decref(j);
    resp_free(&r);
    CHECK(http(port, "POST", "/v1/sessions/u-1/events?k=8&exclude_seen=true", "{\"items\": [117]}", &r) == 0 && r.status == 200);
    j = json_loads(r.body ? r.body : "", 0, NULL);
    const char *s2[] = {"103", "124", "117"};
    CHECK(json_integer_value(json_object_get(j, "length")) == 3);
    CHECK(json_is_false(json_object_get(j, "created")));
    CHECK(items_match(json_object_get(j, "items"), model_live, s2, 3, 8, 1));
    json_decref(j);
    resp_free(&r);
    CHECK(http(port, "GET", "/v1/sessions/u-1/recommend?k=12", NULL, &r) == 0 && r.status == 200);
    j = json_loads(r.body ? r.body : "", 0, NULL);
    CHECK(items_match(json_object_get(j, "items"), model_live, s2, 3, 12, 0));
    json_decref(j);
    resp_free(&r);
    /* Another session does not disturb the first. */
    CHECK(http(port, "POST", "/v1/sessions/u-2/events", "{\"items\": [\"140\"]}", &r) == 0 && r.status == 200);
    resp_free(&r);
    CHECK(http(port, "GET", "/v1/sessions/u-1/recommend?k=12", NULL, &r) == 0 && r.status == 200);
    j = json_loads(r.body ? r.body : "", 0, NULL);
    CHECK(items_match(json_object_get(j, "items"), model_live, s2, 3, 12, 0));
    json_decref(j);
    resp_free(&r);
    CHECK(http(port, "DELETE", "/v1/sessions/u-2", NULL, &r) == 0 && r.status == 200 && strstr(r.body, "\"deleted\":true"));
    resp_free(&r);
    char code[64];
    CHECK(http(port, "GET", "/v1/sessions/u-2/recommend", NULL, &r) == 0 && r.status == 404 &&
          !strcmp(err_code(&r, code, sizeof code), "session_not_found"));
    resp_free(&r);
    CHECK(http(port, "DELETE", "/v1/sessions/u-2", NULL, &r) == 0 && r.status == 404);
    resp_free(&r);
    CHECK(http(port, "GET", "/metrics", NULL, &r) == 0 && r.status == 200);
    CHECK(r.body && strstr(r.body, "rnnrec_sessions_live 1\n"));
    CHECK(r.body && strstr(r.body, "rnnrec_http_requests_total{endpoint=\"session_events\",code=\"200\"} 3"));
    CHECK(r.body && strstr(r.body, "rnnrec_http_request_duration_seconds_bucket{endpoint=\"recommend\",le=\"+Inf\"}"));
    CHECK(r.body && strstr(r.body, "rnnrec_model_generation "));
    CHECK(r.body && strstr(r.body, "rnnrec_session_evictions_total{reason=\"lru\"}"));
    CHECK(r.body && strstr(r.body, "rnnrec_batch_size_count"));
    resp_free(&r);
}

/* One malformed request: status and error code pinned. */
static void bad(unsigned port, const char *method, const char *path, const char *body, int status,
                const char *code) {
    resp r;
    char got[64];
    int rc = http(port, method, path, body, &r);
    CHECK_MSG(rc == 0 && r.status == status && !strcmp(err_code(&r, got, sizeof got), code),
              "%s %s %.60s: got %d %s, want %d %s", method, path, body ? body : "", r.status, got, status, code);
    resp_free(&r);
}

static void test_malformed(unsigned port) {
    const char *rec = "/v1/recommend";
    bad(port, "POST", rec, "{", 400, "bad_json");
    bad(port, "POST", rec, "", 400, "bad_json");
    bad(port, "POST", rec, "[1, 2]", 400, "bad_json");
    bad(port, "POST", rec, "\"items\"", 400, "bad_json");
    bad(port, "POST", rec, "{\"items\": [\"a\"]} trailing", 400, "bad_json");
    bad(port, "POST", rec, "{\"items\": [\"a\\u0000b\"]}", 400, "bad_json");
    bad(port, "POST", rec, "{\"items\": [\"\xff\xfe\"]}", 400, "bad_json");
    bad(port, "POST", rec, "{\"items\": [], \"items\": []}", 400, "bad_json");
    bad(port, "POST", rec, "{\"k\": 5}", 400, "bad_field");
    bad(port, "POST", rec, "{\"items\": \"103\"}", 400, "bad_field");
    bad(port, "POST", rec, "{\"items\": [1.5]}", 400, "bad_field");
    bad(port, "POST", rec, "{\"items\": [[\"103\"]]}", 400, "bad_field");
    bad(port, "POST", rec, "{\"items\": [null]}", 400, "bad_field");
    bad(port, "POST", rec, "{\"items\": [], \"k\": \"5\"}", 400, "bad_field");
    bad(port, "POST", rec, "{\"items\": [], \"k\": 5.0}", 400, "bad_field");
    bad(port, "POST", rec, "{\"items\": [], \"k\": 0}", 422, "limit_exceeded");
    bad(port, "POST", rec, "{\"items\": [], \"k\": -3}", 422, "limit_exceeded");
    bad(port, "POST", rec, "{\"items\": [], \"k\": 1001}", 422, "limit_exceeded");
    bad(port, "POST", rec, "{\"items\": [], \"k\": 99999999999999999999999999}", 400, "bad_json");
    bad(port, "POST", rec, "{\"items\": [], \"k\": 1e400}", 400, "bad_json");
    bad(port, "POST", rec, "{\"items\": [], \"exclude_seen\": 1}", 400, "bad_field");
    bad(port, "POST", rec, "{\"items\": [], \"exclude\": {}}", 400, "bad_field");
    bad(port, "POST", rec, "{\"items\": [], \"colour\": 1}", 400, "bad_field");
    {
        /* Deep nesting, refused before jansson parses it. */
        size_t depth = 5000;
        char *deep = malloc(2 * depth + 32);
        size_t p = (size_t)sprintf(deep, "{\"items\": ");
        for (size_t i = 0; i < depth; i++) deep[p++] = '[';
        for (size_t i = 0; i < depth; i++) deep[p++] = ']';
        deep[p++] = '}';
        deep[p] = 0;
        bad(port, "POST", rec, deep, 400, "too_deep");
        free(deep);
    }
    {
        /* Too many items, and a body over --max-body (64 KiB). */
        rr_sbuf b;
        rr_sbuf_init(&b);
        rr_sbuf_adds(&b, "{\"items\": [");
        for (int i = 0; i < 1001; i++) rr_sbuf_printf(&b, "%s\"%d\"", i ? "," : "", i);
        rr_sbuf_adds(&b, "]}");
        bad(port, "POST", rec, b.p, 422, "limit_exceeded");
        rr_sbuf_free(&b);
        rr_sbuf_init(&b);
        rr_sbuf_adds(&b, "{\"items\": [");
        for (int i = 0; i < 9000; i++) rr_sbuf_printf(&b, "%s\"%06d\"", i ? "," : "", i);
        rr_sbuf_adds(&b, "]}");
        CHECK(b.len > 65536);
        bad(port, "POST", rec, b.p, 413, "body_too_large");
        rr_sbuf_free(&b);
    }
    {
        /* A chunked body has no Content-Length: refused while streaming. */
        int fd = dial(port);
        const char *h = "POST /v1/recommend HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
        int ok = fd >= 0 && send_all(fd, h, strlen(h)) == 0;
        char chunk[8192 + 16];
        int n = snprintf(chunk, sizeof chunk, "2000\r\n");
        memset(chunk + n, ' ', 8192);
        memcpy(chunk + n + 8192, "\r\n", 2);
        for (int i = 0; ok && i < 10; i++) ok = send_all(fd, chunk, (size_t)n + 8194) == 0;
        if (ok) ok = send_all(fd, "0\r\n\r\n", 5) == 0;
        resp r;
        char got[64];
        CHECK(ok && read_resp(fd, &r) == 0 && r.status == 413 &&
              !strcmp(err_code(&r, got, sizeof got), "body_too_large"));
        resp_free(&r);
        if (fd >= 0) close(fd);
    }
    bad(port, "GET", "/nope", NULL, 404, "not_found");
    bad(port, "GET", "/v1/recommend/", NULL, 404, "not_found");
    bad(port, "GET", "/v1/sessions/a/b", NULL, 404, "not_found");
    bad(port, "GET", rec, NULL, 405, "method_not_allowed");
    bad(port, "DELETE", "/v1/model", NULL, 405, "method_not_allowed");
    bad(port, "PUT", "/healthz", NULL, 405, "method_not_allowed");
    bad(port, "POST", "/v1/sessions/a/recommend", "{}", 405, "method_not_allowed");
    bad(port, "GET", "/admin/reload", NULL, 405, "method_not_allowed");
    bad(port, "POST", "/v1/sessions/a%24b/events", "{\"items\": []}", 400, "bad_session_id");
    {
        char path[300] = "/v1/sessions/";
        memset(path + 13, 'x', 200);
        strcpy(path + 213, "/events");
        bad(port, "POST", path, "{\"items\": []}", 400, "bad_session_id");
    }
    bad(port, "POST", "/v1/sessions/s/events", "{\"items\": [], \"k\": 3}", 400, "bad_field");
    bad(port, "POST", "/v1/sessions/s/events?k=abc", "{\"items\": []}", 400, "bad_field");
    bad(port, "POST", "/v1/sessions/s/events?k=0", "{\"items\": []}", 422, "limit_exceeded");
    bad(port, "POST", "/v1/sessions/s/events?k=99999999999999999999", "{\"items\": []}", 422, "limit_exceeded");
    bad(port, "GET", "/v1/sessions/s/recommend?exclude_seen=maybe", NULL, 400, "bad_field");
    bad(port, "POST", "/v1/recommend/batch", "{\"requests\": 5}", 400, "bad_field");
    bad(port, "POST", "/v1/recommend/batch", "{\"requests\": [], \"x\": 1}", 400, "bad_field");
    bad(port, "POST", "/v1/recommend/batch", "{\"requests\": [{\"items\": []}, 7]}", 400, "bad_field");
    {
        resp r;
        char got[64];
        CHECK(http(port, "POST", "/v1/recommend/batch", "{\"requests\": [{\"items\": []}, {\"items\": [], \"k\": 0}]}", &r) == 0 &&
              r.status == 422 && !strcmp(err_code(&r, got, sizeof got), "limit_exceeded") &&
              strstr(r.body, "requests[1].k"));
        resp_free(&r);
    }
    /* The session length cap. */
    {
        rr_sbuf b;
        rr_sbuf_init(&b);
        rr_sbuf_adds(&b, "{\"items\": [");
        for (int i = 0; i < 600; i++) rr_sbuf_printf(&b, "%s\"%d\"", i ? "," : "", 100 + i % 60);
        rr_sbuf_adds(&b, "]}");
        resp r;
        CHECK(http(port, "POST", "/v1/sessions/long/events", b.p, &r) == 0 && r.status == 200);
        resp_free(&r);
        bad(port, "POST", "/v1/sessions/long/events", b.p, 422, "limit_exceeded");
        rr_sbuf_free(&b);
    }
    /* Garbage that is not HTTP at all, then the server still answers. */
    {
        int fd = dial(port);
        const char junk[] = "\x01\x02 GARBAGE \r\n\r\n";
        if (fd >= 0) {
            send_all(fd, junk, sizeof junk - 1);
            resp r;
            read_resp(fd, &r);
            resp_free(&r);
            close(fd);
        }
    }
    resp r;
    CHECK(http(port, "GET", "/healthz", NULL, &r) == 0 && r.status == 200);
    resp_free(&r);
}

/* ------------------------------------------------ reload under requests */

typedef struct looper {
    unsigned port;
    atomic_int stop;
    int ok, fail;
    char last_err[256];
} looper;

static void *loop_main(void *arg) {
    looper *l = arg;
    for (int i = 0; i < 100000 && !atomic_load(&l->stop); i++) {
        resp r;
        int rc = http(l->port, "POST", "/v1/recommend", "{\"items\": [\"103\", \"124\"], \"k\": 5}", &r);
        if (rc == 0 && r.status == 200 && strstr(r.body, "\"items\":[{")) l->ok++;
        else {
            l->fail++;
            snprintf(l->last_err, sizeof l->last_err, "rc %d status %d %.200s", rc, r.status, r.body ? r.body : "");
        }
        resp_free(&r);
    }
    return NULL;
}

static long long json_gen(unsigned port) {
    resp r;
    long long g = -1;
    if (http(port, "GET", "/v1/model", NULL, &r) == 0 && r.status == 200) {
        json_t *j = json_loads(r.body, 0, NULL);
        g = json_integer_value(json_object_get(j, "generation"));
        json_decref(j);
    }
    resp_free(&r);
    return g;
}

static void test_reload(rr_server *s, unsigned port) {
    resp r;
    /* A live session to watch across the swaps. */
    CHECK(http(port, "POST", "/v1/sessions/keep/events", "{\"items\": [\"103\", \"124\"]}", &r) == 0 && r.status == 200);
    resp_free(&r);
    long long g0 = json_gen(port);
    looper l;
    memset(&l, 0, sizeof l);
    l.port = port;
    pthread_t th;
    pthread_create(&th, NULL, loop_main, &l);
    rr_error err;
    int reloads_ok = 0;
    for (int i = 0; i < 4; i++) {
        /* The same file: compatible, sessions kept. */
        reloads_ok += rr_server_reload(s, &err) == RR_OK;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK(reloads_ok == 4);
    CHECK(http(port, "POST", "/admin/reload", NULL, &r) == 0 && r.status == 200 && strstr(r.body, "reloaded"));
    resp_free(&r);
    CHECK(json_gen(port) == g0 + 5);
    CHECK(http(port, "GET", "/v1/sessions/keep/recommend?k=6", NULL, &r) == 0 && r.status == 200);
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    const char *ks[] = {"103", "124"};
    CHECK(json_integer_value(json_object_get(j, "length")) == 2);
    CHECK(items_match(json_object_get(j, "items"), model_live, ks, 2, 6, 0));
    json_decref(j);
    resp_free(&r);

    /* A corrupt file: the reload fails and the old model keeps serving. */
    {
        char tmp[400];
        snprintf(tmp, sizeof tmp, "%s.tmp", model_live);
        FILE *f = fopen(model_a, "rb"), *o = fopen(tmp, "wb");
        char buf[65536];
        size_t n, tot = 0;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
            if (tot == 0 && n > 200) buf[n / 2] ^= 0x5A; /* flip bits mid-file */
            fwrite(buf, 1, n, o);
            tot += n;
        }
        fclose(f);
        fclose(o);
        rename(tmp, model_live);
    }
    CHECK(rr_server_reload(s, &err) != RR_OK);
    char code[64];
    CHECK(http(port, "POST", "/admin/reload", NULL, &r) == 0 && r.status == 500 &&
          !strcmp(err_code(&r, code, sizeof code), "reload_failed"));
    resp_free(&r);
    CHECK(json_gen(port) == g0 + 5);
    FILE *f = fopen(model_live, "wb");
    fputs("not a model", f);
    fclose(f);
    CHECK(rr_server_reload(s, &err) != RR_OK);
    CHECK(http(port, "GET", "/readyz", NULL, &r) == 0 && r.status == 200);
    resp_free(&r);

    /* A model on other items: incompatible, live sessions dropped. */
    copy_file(model_c, model_live);
    CHECK(rr_server_reload(s, &err) == RR_OK);
    CHECK(json_gen(port) == g0 + 6);
    CHECK(http(port, "GET", "/v1/sessions/keep/recommend", NULL, &r) == 0 && r.status == 404);
    resp_free(&r);

    /* Back to the first model while the client still loops. */
    copy_file(model_a, model_live);
    CHECK(rr_server_reload(s, &err) == RR_OK);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_store(&l.stop, 1);
    pthread_join(th, NULL);
    CHECK_MSG(l.fail == 0 && l.ok > 10, "loop: %d ok, %d failed (last: %s)", l.ok, l.fail, l.last_err);
    printf("reload under load: %d requests, %d failures\n", l.ok + l.fail, l.fail);
    CHECK(http(port, "GET", "/metrics", NULL, &r) == 0 && r.body && strstr(r.body, "rnnrec_model_reloads_total{result=\"failed\"} 3"));
    CHECK(r.body && strstr(r.body, "rnnrec_session_evictions_total{reason=\"reload\"} "));
    resp_free(&r);
}

/* ----------------------------------------------- slow clients and drain */

static void test_slowloris(rr_server *s, unsigned port) {
    (void)s;
    enum { N = 40 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = dial(port);
        if (fds[i] >= 0) send_all(fds[i], "POST /v1/recommend HTTP/1.1\r\nHo", 31);
    }
    /* The others are served promptly meanwhile. */
    double t0 = rr_now(), worst = 0;
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        resp r;
        double a = rr_now();
        if (http(port, "POST", "/v1/recommend", "{\"items\": [\"103\"]}", &r) == 0 && r.status == 200) ok++;
        double d = rr_now() - a;
        if (d > worst) worst = d;
        resp_free(&r);
        for (int k = 0; k < N; k++)
            if (fds[k] >= 0) send(fds[k], "s", 1, MSG_NOSIGNAL); /* a byte now and then */
    }
    CHECK(ok == 20);
    CHECK_MSG(worst < 0.5, "worst latency with slow clients: %.3f s", worst);
    /* Past the read deadline (1 s here) they are closed, although they kept
     * sending bytes. */
    int closed = 0;
    for (int round = 0; round < 40 && closed < N; round++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        closed = 0;
        for (int k = 0; k < N; k++) {
            if (fds[k] < 0) {
                closed++;
                continue;
            }
            send(fds[k], "t", 1, MSG_NOSIGNAL);
            char c;
            struct timeval tv = {0, 1000};
            setsockopt(fds[k], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            ssize_t n = recv(fds[k], &c, 1, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                close(fds[k]);
                fds[k] = -1;
                closed++;
            }
        }
    }
    CHECK_MSG(closed == N, "%d of %d slow connections closed after %.1f s", closed, N, rr_now() - t0);
    for (int k = 0; k < N; k++)
        if (fds[k] >= 0) close(fds[k]);
    resp r;
    CHECK(http(port, "GET", "/metrics", NULL, &r) == 0 && r.body);
    const char *p = r.body ? strstr(r.body, "\nrnnrec_connections_dropped_total ") : NULL;
    CHECK(p && atoi(p + strlen("\nrnnrec_connections_dropped_total ")) >= N);
    resp_free(&r);
}

typedef struct drainer {
    rr_server *s;
    size_t left;
} drainer;

static void *drain_main(void *arg) {
    drainer *d = arg;
    d->left = rr_server_drain(d->s, 5.0);
    return NULL;
}

static void test_drain(rr_server *s, unsigned port) {
    /* A request whose body is still arriving when the drain starts. */
    int fd = dial(port);
    const char *body = "{\"items\": [\"103\", \"124\"], \"k\": 3}";
    char head[256];
    int hn = snprintf(head, sizeof head, "POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", strlen(body));
    CHECK(fd >= 0 && send_all(fd, head, (size_t)hn) == 0 && send_all(fd, body, 10) == 0);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    drainer d = {s, 99};
    pthread_t th;
    pthread_create(&th, NULL, drain_main, &d);
    nanosleep(&ts, NULL);
    /* New connections are refused now. */
    int fd2 = dial(port);
    CHECK(fd2 < 0);
    if (fd2 >= 0) close(fd2);
    CHECK(send_all(fd, body + 10, strlen(body) - 10) == 0);
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = 0;
        if (strstr(buf, "\r\n\r\n") && strstr(buf, "}\n")) break;
    }
    buf[len] = 0;
    CHECK_MSG(len > 12 && atoi(buf + 9) == 200, "in-flight answer during drain: %.100s", buf);
    close(fd);
    pthread_join(th, NULL);
    CHECK(d.left == 0);
}

static void test_no_model(void) {
    char missing[400];
    snprintf(missing, sizeof missing, "%s/later.rr", tmpdir);
    rr_server *s = start(missing, 5, 1);
    CHECK(s != NULL);
    if (!s) return;
    unsigned port = rr_server_port(s);
    resp r;
    char code[64];
    CHECK(http(port, "GET", "/healthz", NULL, &r) == 0 && r.status == 200);
    resp_free(&r);
    CHECK(http(port, "GET", "/readyz", NULL, &r) == 0 && r.status == 503 && !strcmp(err_code(&r, code, sizeof code), "not_ready"));
    resp_free(&r);
    CHECK(http(port, "POST", "/v1/recommend", "{\"items\": []}", &r) == 0 && r.status == 503);
    resp_free(&r);
    CHECK(http(port, "GET", "/v1/model", NULL, &r) == 0 && r.status == 503);
    resp_free(&r);
    copy_file(model_a, missing);
    CHECK(http(port, "POST", "/admin/reload", NULL, &r) == 0 && r.status == 200);
    resp_free(&r);
    CHECK(http(port, "POST", "/v1/recommend", "{\"items\": []}", &r) == 0 && r.status == 200);
    resp_free(&r);
    CHECK(rr_server_drain(s, 2) == 0);
    rr_server_free(s);
}

/* ------------------------------------------------------- below the HTTP */

/* The response's number formatting against printf's %.9g: random float
 * bit patterns (every exponent), the edges of the fast path and of the
 * fixed/exponential switch, carries into a tenth digit, signs. */
static void test_format_float(void) {
    static const float edge[] = {1e-20f, 1e21f, 9.99999999e20f, 1.17549435e-38f, 1e-45f, 3.40282347e38f,
                                 999999999.5f, 999999940.0f, 1e9f, 1e8f, 99999999.5f, 0.0001f, 0.00009999999f,
                                 123456789.0f, 1.5f, 0.1f, 0.3f, 16777216.0f, 16777217.0f, 2.5e-5f, 7.0f,
                                 1e-5f, 1e-4f, 0.00012345678f, 8388608.5f, 4.2949673e9f};
    char got[32], want[40];
    size_t bad = 0, n = 0;
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        for (int sg = 0; sg < 2; sg++) {
            float f = sg ? -edge[i] : edge[i];
            rr_format_float(f, got);
            snprintf(want, sizeof want, "%.9g", (double)f);
            if (strcmp(got, want) && bad++ < 5) fprintf(stderr, "format %.9g: got %s\n", (double)f, got);
            n++;
        }
    rr_rng r;
    rr_rng_seed(&r, 5);
    size_t reps = check_small() ? 100000 : 1000000;
    for (size_t i = 0; i < reps; i++) {
        uint32_t u = (uint32_t)rr_rng_next(&r);
        float f;
        memcpy(&f, &u, sizeof f);
        if (!isfinite(f)) continue;
        if (i & 1) f = (float)ldexp((double)f, -(int)(rr_rng_below(&r, 60))); /* more near the usual range */
        size_t len = rr_format_float(f, got);
        snprintf(want, sizeof want, "%.9g", (double)f);
        if ((strcmp(got, want) || len != strlen(want)) && bad++ < 5) fprintf(stderr, "format %.9g: got %s\n", (double)f, got);
        n++;
    }
    CHECK_MSG(bad == 0, "%zu of %zu floats formatted unlike %%.9g", bad, n);
    rr_sbuf b;
    rr_sbuf_init(&b);
    rr_sbuf_json_num(&b, (double)0.1f);
    rr_sbuf_add(&b, ",", 1);
    rr_sbuf_json_num(&b, 0.1); /* a double that is not a float: printf */
    rr_sbuf_add(&b, ",", 1);
    rr_sbuf_json_num(&b, -INFINITY);
    CHECK_MSG(b.p && !strcmp(b.p, "0.100000001,0.1,null"), "%s", b.p ? b.p : "");
    rr_sbuf_free(&b);
}

static void test_units(void) {
    test_format_float();
    rr_sbuf b;
    rr_sbuf_init(&b);
    rr_sbuf_json_str(&b, "a\"b\\c\n\x01\xe2\x82\xac\xff", 11);
    CHECK(b.p && !strcmp(b.p, "\"a\\\"b\\\\c\\n\\u0001\xe2\x82\xac\xef\xbf\xbd\""));
    rr_sbuf_free(&b);
    rr_sbuf_init(&b);
    rr_sbuf_json_num(&b, NAN);
    rr_sbuf_add(&b, ",", 1);
    rr_sbuf_json_num(&b, 0.25);
    CHECK(b.p && !strcmp(b.p, "null,0.25"));
    rr_sbuf_free(&b);

    CHECK(rr_json_depth("{\"a\": \"[[[[\", \"b\": [[1]]}", 26) == 3);
    CHECK(rr_json_depth("\"\\\"[\"", 5) == 0);
    CHECK(rr_session_id_ok("abc-1_2.3:x", 11));
    CHECK(!rr_session_id_ok("a/b", 3));
    CHECK(!rr_session_id_ok("", 0));
    size_t k = 7;
    rr_http_err e;
    CHECK(rr_query_k("25", &k, &e) && k == 25);
    CHECK(!rr_query_k("2x", &k, &e) && e.status == 400);
    CHECK(!rr_query_k("-1", &k, &e) && e.status == 422);
    CHECK(!rr_query_k("", &k, &e) && e.status == 400);

    /* Session cache: LRU order, count cap, memory cap, TTL. */
    rr_error err;
    rr_cache c;
    CHECK_OK(rr_cache_init(&c, 3, 1 << 20, 10.0, &err), &err);
    rr_cache_put(&c, "a", 1, 0.0);
    rr_cache_put(&c, "b", 1, 1.0);
    rr_cache_put(&c, "c", 1, 2.0);
    CHECK(rr_cache_get(&c, "a", 1, 3.0) != NULL); /* a is now the most recent */
    rr_cache_put(&c, "d", 1, 4.0);                /* evicts b */
    CHECK(c.n == 3 && c.evicted_lru == 1);
    CHECK(rr_cache_get(&c, "b", 1, 4.0) == NULL);
    CHECK(rr_cache_get(&c, "c", 1, 4.0) != NULL);
    rr_sess *d = rr_cache_get(&c, "d", 1, 4.0);
    d->pinned = 1;
    CHECK(rr_cache_expire(&c, 100.0) == 2 && c.n == 1); /* a, c expired; d pinned */
    d->pinned = 0;
    CHECK(rr_cache_get(&c, "d", 1, 100.0) == NULL && c.evicted_ttl == 3);
    size_t before = c.bytes;
    CHECK(before == 0);
    rr_cache_clear(&c);

    CHECK_OK(rr_cache_init(&c, 100, 4096, 0, &err), &err);
    for (int i = 0; i < 50; i++) {
        char id[8];
        int n = snprintf(id, sizeof id, "s%d", i);
        rr_sess *se = rr_cache_put(&c, id, (size_t)n, (double)i);
        for (int t = 0; t < 20; t++) rr_cache_push(&c, se, t);
        rr_cache_account(&c, se);
    }
    CHECK_MSG(c.bytes <= 4096 && c.evicted_memory > 0 && c.n < 50, "bytes %zu n %zu", c.bytes, c.n);
    CHECK(rr_cache_get(&c, "s49", 3, 60.0) != NULL); /* the newest survive */
    CHECK(rr_cache_get(&c, "s0", 2, 60.0) == NULL);
    rr_cache_clear(&c);
}

/* ------------------------------------------------- below the transport */

/* Query arguments for srv_handle: "k=3&exclude_seen=1" style pairs. */
typedef struct qargs {
    const char *k, *exclude_seen;
} qargs;

static const char *qarg(void *ctx, const char *key) {
    const qargs *q = ctx;
    return !strcmp(key, "k") ? q->k : !strcmp(key, "exclude_seen") ? q->exclude_seen : NULL;
}

/* One request through the seam; returns the status (-1: no answer) and
 * the parsed JSON body in *j (caller decrefs). */
static int seam(rr_server *s, const char *method, const char *url, const char *cl, const char *body,
                const qargs *q, json_t **j, const char **allow) {
    srv_in in = {method, url, cl, q ? qarg : NULL, (void *)q, 1};
    srv_out out;
    srv_next nx = srv_handle(s, &in, body, body ? strlen(body) : 0, &out);
    if (nx != SRV_ANSWER) return -1;
    if (j) *j = json_loadb(out.body, out.len, 0, NULL);
    if (allow) *allow = out.allow;
    int st = out.status;
    CHECK(out.ctype && out.body && out.len == strlen(out.body));
    free(out.body);
    return st;
}

/* The request seam (handle.c) without a socket: what fuzz/fuzz_http.c
 * drives.  Every endpoint kind, errors from the header alone, the body
 * limit, query arguments, and recommendations equal to the offline
 * replay. */
static void test_seam(void) {
    rr_server_opts o;
    rr_server_opts_default(&o);
    o.model_path = model_live;
    o.threads = 1;
    o.batchers = 1;
    o.max_body = 256;
    rr_server *s = NULL;
    rr_error err;
    CHECK_OK(srv_server_start(&s, &o, 0, &err), &err);
    if (!s) return;
    CHECK(rr_server_port(s) == 0);
    json_t *j = NULL;
    const char *allow = NULL;
    CHECK(seam(s, "GET", "/healthz", NULL, NULL, NULL, &j, NULL) == 200 &&
          !strcmp(json_string_value(json_object_get(j, "status")), "ok"));
    json_decref(j);
    CHECK(seam(s, "GET", "/nope", NULL, NULL, NULL, &j, NULL) == 404 &&
          !strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "not_found"));
    json_decref(j);
    CHECK(seam(s, "GET", "/v1/recommend", NULL, NULL, NULL, NULL, &allow) == 405 && allow && !strcmp(allow, "POST"));
    CHECK(seam(s, "POST", "/v1/recommend", "100000", "{}", NULL, NULL, NULL) == 413); /* from the header */
    CHECK(seam(s, "POST", "/v1/recommend", "12x", "{}", NULL, NULL, NULL) == 413);
    char big[600];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK(seam(s, "POST", "/v1/recommend", NULL, big, NULL, NULL, NULL) == 413); /* no header: by the bytes */
    CHECK(seam(s, "POST", "/v1/recommend", NULL, "{\"items\": [", NULL, NULL, NULL) == 400);
    const char *ids[] = {"104", "111"};
    CHECK(seam(s, "POST", "/v1/recommend", NULL, "{\"items\": [\"104\", \"111\"], \"k\": 6}", NULL, &j, NULL) == 200);
    CHECK(j && items_match(json_object_get(j, "items"), model_live, ids, 2, 6, 0));
    json_decref(j);
    qargs q = {"3", "1"};
    CHECK(seam(s, "POST", "/v1/sessions/seam-1/events", NULL, "{\"items\": [\"104\"]}", &q, &j, NULL) == 200);
    CHECK(j && json_is_true(json_object_get(j, "created")));
    json_decref(j);
    CHECK(seam(s, "POST", "/v1/sessions/seam-1/events", NULL, "{\"items\": [\"111\"]}", &q, &j, NULL) == 200);
    CHECK(j && json_integer_value(json_object_get(j, "length")) == 2 &&
          items_match(json_object_get(j, "items"), model_live, ids, 2, 3, 1));
    json_decref(j);
    qargs q5 = {"5", NULL};
    CHECK(seam(s, "GET", "/v1/sessions/seam-1/recommend", NULL, NULL, &q5, &j, NULL) == 200 &&
          items_match(json_object_get(j, "items"), model_live, ids, 2, 5, 0));
    json_decref(j);
    qargs q0 = {"0", NULL};
    CHECK(seam(s, "GET", "/v1/sessions/seam-1/recommend", NULL, NULL, &q0, NULL, NULL) == 422);
    CHECK(seam(s, "DELETE", "/v1/sessions/seam-1", NULL, NULL, NULL, NULL, NULL) == 200);
    CHECK(seam(s, "GET", "/v1/sessions/seam-1/recommend", NULL, NULL, NULL, NULL, NULL) == 404);
    CHECK(seam(s, "GET", "/v1/sessions/bad%20id/recommend", NULL, NULL, NULL, NULL, NULL) == 400);
    CHECK(seam(s, "GET", "/metrics", NULL, NULL, NULL, NULL, NULL) == 200);
    rr_server_free(s);
}

/* The batcher's ranking (srv_score_rows: the screened fused engine where
 * the model has a screen) against rr_recommend one state at a time, with
 * empty sessions mixed in, both exclude_seen values, several k and
 * explicit exclude lists. */
static void test_score_rows(void) {
    srv_model *sm = NULL;
    rr_model *m = NULL; /* the same file without a screen: the exact engine */
    rr_error err;
    CHECK_OK(srv_model_load(model_a, 8, &sm, &err), &err);
    CHECK_OK(rr_model_load(model_a, &m, &err), &err);
    if (!sm || !m) return;
    CHECK(rr_model_screen_bits(m) == 0);
    if (!strcmp(kind_used, "gru") && rr_screen_supported()) CHECK(rr_model_screen_bits(sm->m) == 8);
    else printf("note: no screen for this model or CPU: the exact engine is compared\n");
    size_t ni = rr_model_n_items(m);
    enum { NR = 40 };
    srv_row rows[NR], *rp[NR];
    rr_state *ref[NR]; /* the rows' sessions on the exact model */
    memset(rows, 0, sizeof rows);
    rr_rng r;
    rr_rng_seed(&r, 11);
    for (size_t i = 0; i < NR; i++) {
        srv_row *row = &rows[i];
        rp[i] = row;
        row->st = rr_state_new(sm->m);
        ref[i] = rr_state_new(m);
        size_t len = i % 7 == 3 ? 0 : 1 + (size_t)rr_rng_below(&r, 6);
        for (size_t t = 0; t < len; t++) {
            int32_t it = (int32_t)rr_rng_below(&r, ni);
            CHECK_OK(rr_state_feed(row->st, it), &err);
            CHECK_OK(rr_state_feed(ref[i], it), &err);
        }
        row->req.k = 1 + (size_t)rr_rng_below(&r, 12);
        row->req.exclude_seen = (int)(i % 3 == 0);
        if (i % 4 == 1) {
            /* Two sorted, unique excludes. */
            row->req.n_exclude = 2;
            row->req.exclude = malloc(2 * sizeof(int32_t));
            row->req.exclude[0] = (int32_t)(i % ni);
            row->req.exclude[1] = (int32_t)((i % ni) + 1 < ni ? (i % ni) + 1 : i % ni);
            if (row->req.exclude[1] == row->req.exclude[0]) row->req.n_exclude = 1;
        }
        row->top = malloc(row->req.k * sizeof *row->top);
        row->score = malloc(row->req.k * sizeof *row->score);
    }
    srv_scorer sc;
    memset(&sc, 0, sizeof sc);
    for (int rep = 0; rep < 2; rep++) { /* the second time on grown buffers */
        CHECK_OK(srv_score_rows(sm, rp, NR, &sc, &err), &err);
        size_t bad = 0;
        for (size_t i = 0; i < NR; i++) {
            srv_row *row = &rows[i];
            size_t kq = row->req.k + row->req.n_exclude;
            int32_t want[32];
            float wsc[32];
            CHECK_OK(rr_recommend(m, &ref[i], 1, kq, row->req.exclude_seen, want, wsc, &err), &err);
            size_t o = 0;
            for (size_t t = 0; t < kq && o < row->req.k; t++) {
                int ex = 0;
                for (size_t e = 0; e < row->req.n_exclude; e++) ex |= want[t] == row->req.exclude[e];
                if (ex || want[t] < 0) continue;
                if (row->top[o] != want[t] || memcmp(&row->score[o], &wsc[t], sizeof(float))) bad++;
                o++;
            }
            for (; o < row->req.k; o++)
                if (row->top[o] != -1) bad++;
        }
        CHECK_MSG(bad == 0, "%zu ranked entries differ from rr_recommend", bad);
    }
    for (size_t i = 0; i < NR; i++) {
        rr_state_free(rows[i].st);
        rr_state_free(ref[i]);
        free(rows[i].req.exclude);
        free(rows[i].top);
        free(rows[i].score);
    }
    srv_scorer_free(&sc);
    srv_model_unref(sm);
    rr_model_free(m);
}

int main(void) {
    test_units();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rr_test_serve_%d", (int)getpid());
    mkdir(tmpdir, 0700);
    char ev_a[300], ev_c[300];
    snprintf(ev_a, sizeof ev_a, "%s/a.tsv", tmpdir);
    snprintf(ev_c, sizeof ev_c, "%s/c.tsv", tmpdir);
    snprintf(model_a, sizeof model_a, "%s/a.rr", tmpdir);
    snprintf(model_b, sizeof model_b, "%s/b.rr", tmpdir);
    snprintf(model_c, sizeof model_c, "%s/c.rr", tmpdir);
    snprintf(model_live, sizeof model_live, "%s/live.rr", tmpdir);
    size_t n_sess = check_small() ? 300 : 800;
    write_events(ev_a, 7, 60, n_sess);
    write_events(ev_c, 9, 45, n_sess); /* other items: an incompatible model */
    /* The richest kind this build can train: a GRU when it is there. */
    const char *kinds[] = {"gru", "spop", "pop"};
    for (size_t i = 0; i < 3 && !kind_used; i++)
        if (train_to(ev_a, kinds[i], model_a) == 0) kind_used = kinds[i];
    CHECK(kind_used != NULL);
    if (!kind_used) return check_summary("test_serve");
    printf("serving a %s model\n", kind_used);
    CHECK(train_to(ev_c, "pop", model_c) == 0);
    copy_file(model_a, model_live);

    rr_server *s = start(model_live, 1.0, 0);
    CHECK(s != NULL);
    if (s) {
        unsigned port = rr_server_port(s);
        CHECK(port > 0);
        test_endpoints(port);
        test_sessions(port);
        test_malformed(port);
        test_reload(s, port);
        test_slowloris(s, port);
        test_drain(s, port);
        rr_server_free(s);
    }
    test_seam();
    test_score_rows();
    test_no_model();
    /* A server refuses to start on a missing model unless told to wait. */
    {
        rr_server_opts o;
        rr_server_opts_default(&o);
        o.model_path = "/nonexistent/model.rr";
        o.port = 0;
        rr_server *x = NULL;
        rr_error err;
        CHECK(rr_server_start(&x, &o, &err) != RR_OK && x == NULL);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    CHECK(system(cmd) == 0);
    return check_summary("test_serve");
}
