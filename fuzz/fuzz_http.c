/* fuzz_http.c - libFuzzer harness for the HTTP recommendation service.
 *
 * src/serve/ has no function that turns request bytes into a response
 * without a running daemon: routing, body handling and the handlers live
 * in libmicrohttpd callbacks in http.c (static, tied to MHD_Connection).
 * So the harness starts one real server (port 0, loopback, a tiny GRU
 * model trained at start-up) and sends every input over a socket, and in
 * the same iteration drives the JSON request layer of request.c directly
 * on the body, which is where the untrusted structure is decoded.
 *
 * Input: if byte 0 is 'R' the rest is sent raw and the write side shut
 * (the HTTP parser's own paths; an incomplete request may get no answer,
 * so the harness waits at most 0.2 s for one).  Otherwise line 1 is the method, line 2
 * the URL with query string, the rest the body; the harness frames it as
 * a complete HTTP/1.1 request with Content-Length and "Connection: close",
 * so every input gets an answer without waiting for a deadline.
 *
 * Oracle, besides "no crash, leak, hang or sanitizer report":
 *   - an answer arrives within 5 s of a complete request and starts with
 *     "HTTP/1.x NNN" where NNN is one the API documents (docs/serve.md);
 *   - a JSON answer parses as JSON; errors carry {"error":{"code":..}};
 *   - request.c: a parsed request has in-range item indices, k in 1..1000,
 *     sorted unique excludes, and rr_recommend accepts it. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "fuzz_common.h"
#include "serve/request.h"
#include "serve/serve.h"
#include "util/util.h"

static rr_server *g_srv;
static rr_model *g_model;
static unsigned g_port;
static char g_model_path[64];

static void remove_model(void) { unlink(g_model_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(g_model_path, sizeof g_model_path, "/dev/shm/rr_fuzz_http_%d.rrm", (int)getpid());
    g_model = fuzz_tiny_model("gru", g_model_path, 300, 20);
    atexit(remove_model); /* the server reloads from it: kept until exit */
    rr_server_opts o;
    rr_server_opts_default(&o);
    o.model_path = g_model_path;
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.batchers = 1;
    o.max_body = 4096;
    o.max_sessions = 64;
    o.max_session_events = 50;
    o.session_memory = (size_t)1 << 20;
    o.read_timeout = 2;
    o.idle_timeout = 2;
    rr_error err;
    if (rr_server_start(&g_srv, &o, &err) != RR_OK) {
        fprintf(stderr, "server: %s\n", err.msg);
        abort();
    }
    g_port = rr_server_port(g_srv);
    return 0;
}

/* Sends req and reads the whole answer (until the server closes or `wait`
 * seconds pass: an error when `must`).  Returns the number of bytes read
 * into resp (NUL-terminated, capped at cap-1). */
static size_t exchange(const char *req, size_t len, int shut, char *resp, size_t cap, double wait,
                       int must) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    FUZZ_ASSERT(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_ASSERT(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may answer and close early (413) */
        off += (size_t)w;
    }
    if (shut) shutdown(fd, SHUT_WR);
    size_t got = 0;
    double t0 = rr_now();
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)((wait - (rr_now() - t0)) * 1000);
        int pr = left > 0 ? poll(&p, 1, left) : 0;
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0 && !must) break;
        FUZZ_ASSERT(pr > 0, "no complete answer within %g s (%zu bytes so far)", wait, got);
        char tmp[4096];
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r <= 0) break;
        size_t n = (size_t)r;
        if (got + n > cap - 1) n = cap - 1 - got;
        memcpy(resp + got, tmp, n);
        got += n;
    }
    close(fd);
    resp[got] = 0;
    return got;
}

static void check_answer(const char *resp, size_t n) {
    if (n == 0) return; /* the parser may drop a malformed request without a word */
    FUZZ_ASSERT(n >= 12 && !strncmp(resp, "HTTP/1.", 7), "not an HTTP answer: %.40s", resp);
    int status = atoi(resp + 9);
    static const int ok[] = {200, 400, 403, 404, 405, 413, 414, 422, 431, 501, 503, 505};
    int known = 0;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) known |= status == ok[i];
    FUZZ_ASSERT(known, "unexpected status %d: %.300s", status, resp);
    const char *body = strstr(resp, "\r\n\r\n");
    if (!body || !strstr(resp, "application/json")) return;
    body += 4;
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    FUZZ_ASSERT(j, "answer %d is not JSON (%s): %.200s", status, je.text, body);
    if (status >= 400) FUZZ_ASSERT(json_object_get(json_object_get(j, "error"), "code"), "error without code");
    json_decref(j);
}

/* The request layer on its own: body -> rr_rec_req -> recommendation. */
static void direct(const char *body, size_t n, int allow_k, const char *query_k) {
    rr_http_err e;
    json_t *root = rr_json_parse_object(body, n, &e);
    if (!root) {
        FUZZ_ASSERT(e.status == 400 && e.code, "parse error status %d", e.status);
        return;
    }
    rr_rec_req r;
    memset(&r, 0, sizeof r);
    r.k = RR_SERVE_DEFAULT_K;
    if (rr_rec_req_parse(root, "", g_model, allow_k, &r, &e)) {
        size_t ni = rr_model_n_items(g_model);
        FUZZ_ASSERT(r.k >= 1 && r.k <= RR_SERVE_MAX_K, "k %zu", r.k);
        for (size_t i = 0; i < r.n_items; i++) FUZZ_ASSERT(r.items[i] >= 0 && (size_t)r.items[i] < ni, "item");
        for (size_t i = 0; i < r.n_exclude; i++)
            FUZZ_ASSERT(r.exclude[i] >= 0 && (size_t)r.exclude[i] < ni && (i == 0 || r.exclude[i] > r.exclude[i - 1]),
                        "exclude list not sorted/unique");
        FUZZ_ASSERT(r.unknown_json.len >= 2, "unknown_json");
        json_error_t je;
        json_t *u = json_loadb(r.unknown_json.p, r.unknown_json.len, 0, &je);
        FUZZ_ASSERT(u && json_is_array(u) && json_array_size(u) == r.n_unknown, "unknown ids not a JSON array of %zu: %s",
                    r.n_unknown, je.text);
        json_decref(u);
        rr_state *st = rr_state_new(g_model);
        for (size_t i = 0; i < r.n_items; i++) FUZZ_ASSERT(rr_state_feed(st, r.items[i]) == RR_OK, "feed");
        int32_t *top = malloc(r.k * sizeof *top);
        float *sc = malloc(r.k * sizeof *sc);
        rr_error err;
        FUZZ_ASSERT(rr_recommend(g_model, &st, 1, r.k, r.exclude_seen, top, sc, &err) == RR_OK, "%s", err.msg);
        free(top);
        free(sc);
        rr_state_free(st);
    } else {
        FUZZ_ASSERT((e.status == 400 || e.status == 422 || e.status == 500) && e.code, "status %d", e.status);
    }
    rr_rec_req_free(&r);
    json_decref(root);
    size_t k = 7;
    if (!rr_query_k(query_k, &k, &e)) FUZZ_ASSERT(e.status == 400 || e.status == 422, "query k status");
    else FUZZ_ASSERT(k >= 1 && k <= RR_SERVE_MAX_K, "query k %zu", k);
}

/* Copies a header-safe token of at most cap-1 bytes (no CR, LF, space or
 * control bytes) from [p, e). */
static void token(const char *p, const char *e, char *out, size_t cap) {
    size_t o = 0;
    for (; p < e && o + 1 < cap; p++)
        if ((unsigned char)*p > 0x20 && *p != 0x7f) out[o++] = *p;
    out[o] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char resp[1 << 16];
    if (size > 0 && data[0] == 'R') {
        size_t n = exchange((const char *)data + 1, size - 1, 1, resp, sizeof resp, 0.2, 0);
        if (n) FUZZ_ASSERT(!strncmp(resp, "HTTP/1.", 7), "not an HTTP answer: %.40s", resp);
        return 0;
    }
    const char *p = (const char *)data, *e = p + size;
    const char *l1 = memchr(p, '\n', size);
    const char *m_end = l1 ? l1 : e;
    const char *u = l1 ? l1 + 1 : e;
    const char *l2 = memchr(u, '\n', (size_t)(e - u));
    const char *u_end = l2 ? l2 : e;
    const char *body = l2 ? l2 + 1 : e;
    size_t blen = (size_t)(e - body);
    char method[17], url[513];
    token(p, m_end, method, sizeof method);
    token(u, u_end, url + 1, sizeof url - 1);
    if (!method[0]) strcpy(method, "GET");
    url[0] = '/';
    const char *path = url[1] == '/' ? url + 1 : url;
    char *req = malloc(blen + 700);
    int h = snprintf(req, 700,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     method, path, blen);
    memcpy(req + h, body, blen);
    size_t n = exchange(req, (size_t)h + blen, 0, resp, sizeof resp, 5.0, 1);
    free(req);
    check_answer(resp, n);
    const char *q = strstr(path, "k=");
    char kbuf[40] = "";
    if (q) token(q + 2, q + 2 + strcspn(q + 2, "&"), kbuf, sizeof kbuf);
    direct(body, blen, (int)(size & 1), q ? kbuf : NULL);
    return 0;
}
