/* fuzz_http.c - libFuzzer harness for the HTTP recommendation service.
 *
 * By default every input goes through the server's request seam,
 * srv_handle (src/serve/handle.c), in process: routing, the Content-Length
 * check, body limits, JSON decoding, the handlers, the batcher and the
 * session cache all run as they do behind libmicrohttpd, without a socket,
 * so an iteration costs tens of microseconds instead of a TCP connection.
 * The server runs without a listening socket (srv_server_start with
 * with_socket 0; a tiny GRU trained at start-up).  The same iteration also
 * drives request.c's JSON layer directly on the body.
 *
 * With RR_FUZZ_HTTP_SOCKET=1 in the environment the harness starts a real
 * listening server instead (port 0, loopback) and sends every input over a
 * socket, which also covers libmicrohttpd's parser and the glue in http.c
 * (slower: one connection per input).
 *
 * Input: if byte 0 is 'R' the rest is a raw request.  In socket mode it is
 * sent as it is and the write side shut (an incomplete request may get no
 * answer, so the harness waits at most 0.2 s for one).  In process, the
 * harness takes its request line ("METHOD TARGET ..."), its Content-Length
 * header (verbatim, whatever it says) and the bytes after the blank line
 * as the body.  Otherwise line 1 is the method, line 2 the URL with query
 * string, the rest the body (sent framed with a matching Content-Length).
 *
 * Oracle, besides "no crash, leak, hang or sanitizer report":
 *   - every complete request gets an answer (in process: within the call;
 *     over a socket: within 5 s) with a status the API documents
 *     (docs/serve.md);
 *   - a JSON answer parses as JSON; errors carry {"error":{"code":..}};
 *     a 200 with "items" lists at most k of them, each an id string and a
 *     number (or null) score;
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
#include "serve/internal.h"
#include "serve/request.h"
#include "serve/serve.h"
#include "util/util.h"

static rr_server *g_srv;
static rr_model *g_model;
static unsigned g_port;
static int g_socket;
static char g_model_path[64];

static void remove_model(void) { unlink(g_model_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *sm = getenv("RR_FUZZ_HTTP_SOCKET");
    g_socket = sm && *sm == '1';
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
    if (srv_server_start(&g_srv, &o, g_socket, &err) != RR_OK) {
        fprintf(stderr, "server: %s\n", err.msg);
        abort();
    }
    g_port = rr_server_port(g_srv);
    return 0;
}

/* ------------------------------------------------------------ the oracle */

static const int documented[] = {200, 400, 403, 404, 405, 413, 414, 422, 431, 501, 503, 505};

static int status_known(int status) {
    for (size_t i = 0; i < sizeof documented / sizeof documented[0]; i++)
        if (status == documented[i]) return 1;
    return 0;
}

/* A JSON answer body of `status`; k_max bounds a 200's item list (0: not
 * an answer that recommends). */
static void check_json(int status, const char *body, size_t len, size_t k_max) {
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    FUZZ_ASSERT(j, "answer %d is not JSON (%s): %.200s", status, je.text, body);
    if (status >= 400) FUZZ_ASSERT(json_object_get(json_object_get(j, "error"), "code"), "error without code");
    json_t *items = json_object_get(j, "items");
    if (status == 200 && k_max && items) {
        FUZZ_ASSERT(json_is_array(items) && json_array_size(items) <= k_max, "items: %zu > k %zu",
                    json_array_size(items), k_max);
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) {
            json_t *sc = json_object_get(it, "score");
            FUZZ_ASSERT(json_is_string(json_object_get(it, "id")) && (json_is_number(sc) || json_is_null(sc)),
                        "item %zu is not {id, score}", i);
        }
    }
    json_decref(j);
}

/* ---------------------------------------------------------- socket mode */

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
    FUZZ_ASSERT(status_known(status), "unexpected status %d: %.300s", status, resp);
    const char *body = strstr(resp, "\r\n\r\n");
    if (!body || !strstr(resp, "application/json")) return;
    body += 4;
    check_json(status, body, strlen(body), 0);
}

/* ---------------------------------------------------- in-process mode */

/* The query string's arguments, decoded as libmicrohttpd decodes them
 * (%XX and '+' for a space); a key without '=' has the value "". */
#define QMAX 16
typedef struct query {
    char buf[600];
    const char *key[QMAX], *val[QMAX];
    size_t n;
} query;

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes s in place; returns s. */
static char *unescape(char *s) {
    char *o = s;
    for (const char *p = s; *p; p++) {
        if (*p == '+') *o++ = ' ';
        else if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            *o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
            p += 2;
        } else *o++ = *p;
    }
    *o = 0;
    return s;
}

static void query_parse(query *q, const char *qs) {
    q->n = 0;
    snprintf(q->buf, sizeof q->buf, "%s", qs);
    char *p = q->buf;
    while (*p && q->n < QMAX) {
        char *amp = strchr(p, '&');
        if (amp) *amp = 0;
        char *eq = strchr(p, '=');
        if (eq) *eq = 0;
        if (*p) {
            q->key[q->n] = unescape(p);
            q->val[q->n] = eq ? unescape(eq + 1) : "";
            q->n++;
        }
        if (!amp) break;
        p = amp + 1;
    }
}

static const char *query_arg(void *ctx, const char *key) {
    const query *q = ctx;
    for (size_t i = 0; i < q->n; i++)
        if (!strcmp(q->key[i], key)) return q->val[i];
    return NULL;
}

/* One request through srv_handle; target is the path with its query. */
static void in_process(const char *method, const char *target, const char *content_length, const char *body,
                       size_t blen) {
    char path[520];
    snprintf(path, sizeof path, "%s", target);
    query q;
    char *qm = strchr(path, '?');
    query_parse(&q, qm ? qm + 1 : "");
    if (qm) *qm = 0;
    srv_in in = {method, path, content_length, query_arg, &q, 1};
    srv_out out;
    srv_next nx = srv_handle(g_srv, &in, body, blen, &out);
    FUZZ_ASSERT(nx == SRV_ANSWER, "no answer (%d) to %s %s", (int)nx, method, target);
    FUZZ_ASSERT(status_known(out.status), "unexpected status %d: %.300s", out.status, out.body);
    FUZZ_ASSERT(out.ctype && out.body, "answer without a type or body");
    FUZZ_ASSERT((out.status == 405) == (out.allow != NULL), "Allow header on status %d", out.status);
    if (!strcmp(out.ctype, "application/json")) {
        const char *ks = query_arg(&q, "k");
        size_t k_max = 0;
        if (!strcmp(path, "/v1/recommend")) k_max = RR_SERVE_MAX_K;
        else if (!strncmp(path, "/v1/sessions/", 13))
            k_max = ks ? (size_t)strtoul(ks, NULL, 10) : RR_SERVE_DEFAULT_K;
        check_json(out.status, out.body, out.len, k_max);
    }
    free(out.body);
}

/* A raw request in process: "METHOD TARGET VERSION\r\n", headers, a blank
 * line, the body.  Only Content-Length is taken from the headers. */
static void in_process_raw(const char *p, size_t n) {
    const char *e = p + n;
    const char *eol = memchr(p, '\n', n);
    if (!eol) return; /* no request line: a socket would wait for more */
    char line[600];
    size_t ll = (size_t)(eol - p) < sizeof line - 1 ? (size_t)(eol - p) : sizeof line - 1;
    memcpy(line, p, ll);
    line[ll] = 0;
    char method[17] = "", target[520] = "";
    if (sscanf(line, "%16s %519s", method, target) != 2 || target[0] != '/') return;
    char cl[64];
    const char *clp = NULL;
    const char *h = eol + 1, *body = e;
    while (h < e) {
        const char *he = memchr(h, '\n', (size_t)(e - h));
        if (!he) he = e;
        size_t hl = (size_t)(he - h);
        if (hl && h[hl - 1] == '\r') hl--;
        if (hl == 0) {
            body = he < e ? he + 1 : e;
            break;
        }
        if (hl > 15 && !strncasecmp(h, "content-length:", 15)) {
            const char *v = h + 15;
            while (v < h + hl && (*v == ' ' || *v == '\t')) v++;
            size_t vl = (size_t)(h + hl - v) < sizeof cl - 1 ? (size_t)(h + hl - v) : sizeof cl - 1;
            memcpy(cl, v, vl);
            cl[vl] = 0;
            clp = cl;
        }
        h = he + 1;
    }
    in_process(method, target, clp, body, (size_t)(e - body));
}

/* ------------------------------------------------- request.c on its own */

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
        if (!g_socket) {
            in_process_raw((const char *)data + 1, size - 1);
            return 0;
        }
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
    if (g_socket) {
        char *req = malloc(blen + 700);
        int h = snprintf(req, 700,
                         "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                         method, path, blen);
        memcpy(req + h, body, blen);
        size_t n = exchange(req, (size_t)h + blen, 0, resp, sizeof resp, 5.0, 1);
        free(req);
        check_answer(resp, n);
    } else {
        char cl[24];
        snprintf(cl, sizeof cl, "%zu", blen);
        in_process(method, path, cl, body, blen);
    }
    const char *q = strstr(path, "k=");
    char kbuf[40] = "";
    if (q) token(q + 2, q + 2 + strcspn(q + 2, "&"), kbuf, sizeof kbuf);
    direct(body, blen, (int)(size & 1), q ? kbuf : NULL);
    return 0;
}
