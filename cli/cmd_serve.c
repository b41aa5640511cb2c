/* cmd_serve.c - `rnnrec serve MODEL`: the HTTP recommendation service
 * (src/serve/, docs/serve.md).  This file parses options, owns the
 * signals and prints the listening line; the library does the rest.
 *
 * Signals are blocked in every thread and taken synchronously here with
 * sigwait: SIGHUP reloads the model, SIGTERM/SIGINT stop accepting, wait
 * for requests in flight (at most --drain-seconds) and exit 0. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util/util.h"

#ifdef RR_HAVE_SERVER
#include "serve/serve.h"

static int parse_level(const char *s, int *out) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    return -1;
}

int cmd_serve(int argc, char **argv) {
    rr_server_opts o;
    rr_server_opts_default(&o);
    size_t port = o.port, mem_mb = o.session_memory >> 20;
    long threads = 0, batchers = 1, screen_bits = o.screen_bits;
    int no_align = 0;
    double drain = 10;
    const char *level = "warn";
    const cli_opt opts[] = {
        {"host", 0, OPT_STR, &o.host, "ADDR", "address to bind (loopback unless told otherwise)", NULL, 0},
        {"port", 'p', OPT_SIZE, &port, "N", "TCP port; 0 picks a free one (printed on stderr)", NULL, 0},
        {"threads", 't', OPT_LONG, &threads, "N", "HTTP worker threads (0: all cores)", NULL, 0},
        {"batchers", 0, OPT_LONG, &batchers, "N", "scoring threads / session shards (0: all cores)", NULL, 0},
        {"max-batch", 0, OPT_SIZE, &o.max_batch, "N", "sessions scored per rr_recommend call", NULL, 0},
        {"no-batch-align", 0, OPT_FLAG, &no_align, NULL, "score whatever is queued, not whole 16-session tiles", NULL, 0},
        {"screen-bits", 0, OPT_LONG, &screen_bits, "N", "quantised screen ahead of exact scoring: 8 or 16 bits, 0 off (same results)", NULL, 0},
        {"max-queue", 0, OPT_SIZE, &o.max_queue, "N", "sessions waiting to be scored before 503", NULL, 0},
        {"max-sessions", 0, OPT_SIZE, &o.max_sessions, "N", "live sessions kept (LRU eviction)", NULL, 0},
        {"session-ttl", 0, OPT_DOUBLE, &o.session_ttl, "SEC", "idle seconds before a session expires (0: never)", NULL, 0},
        {"session-memory", 0, OPT_SIZE, &mem_mb, "MIB", "memory cap of the live sessions, MiB", NULL, 0},
        {"max-session-events", 0, OPT_SIZE, &o.max_session_events, "N", "events one live session may hold", NULL, 0},
        {"max-body", 0, OPT_SIZE, &o.max_body, "BYTES", "largest request body", NULL, 0},
        {"max-connections", 0, OPT_SIZE, &o.max_connections, "N", "open connections accepted", NULL, 0},
        {"read-timeout", 0, OPT_DOUBLE, &o.read_timeout, "SEC", "time to receive a request (slow clients are dropped)", NULL, 0},
        {"idle-timeout", 0, OPT_DOUBLE, &o.idle_timeout, "SEC", "time a connection may stay silent", NULL, 0},
        {"drain-seconds", 0, OPT_DOUBLE, &drain, "SEC", "on SIGTERM, wait this long for requests in flight", NULL, 0},
        {"allow-no-model", 0, OPT_FLAG, &o.allow_no_model, NULL, "start even if MODEL cannot be loaded yet (503 until a reload works)", NULL, 0},
        {"log-level", 0, OPT_STR, &level, "LEVEL", "error, warn, info (one line per request) or debug", NULL, 0},
        {NULL, 0, OPT_FLAG, NULL, NULL, NULL, NULL, 0},
    };
    const char *pos[1];
    size_t npos = 0;
    int rc = cli_parse(argc, argv, opts, "rnnrec serve [options] MODEL",
                       "HTTP recommendation service that keeps each live session's RNN state.\n"
                       "Endpoints: POST /v1/recommend, POST /v1/recommend/batch,\n"
                       "POST /v1/sessions/ID/events, GET /v1/sessions/ID/recommend, DELETE /v1/sessions/ID,\n"
                       "GET /v1/model, /healthz, /readyz, /metrics, POST /admin/reload (loopback only).\n"
                       "SIGHUP reloads the model; SIGTERM/SIGINT drain and exit.",
                       pos, 1, &npos);
    if (rc == -1) return RR_EXIT_OK;
    if (rc) return rc;
    if (npos != 1) {
        cli_error("serve", "expected one MODEL file (see --help)");
        return RR_EXIT_USAGE;
    }
    int lv;
    if (parse_level(level, &lv)) {
        cli_error("serve", "--log-level must be error, warn, info or debug, not '%s'", level);
        return RR_EXIT_USAGE;
    }
    if (port > 65535 || threads < 0 || threads > 256 || batchers < 0 || batchers > 64 || !(drain >= 0) ||
        mem_mb > ((size_t)1 << 30)) {
        cli_error("serve", "--port, --threads, --batchers, --session-memory or --drain-seconds out of range");
        return RR_EXIT_USAGE;
    }
    o.model_path = pos[0];
    o.port = (unsigned)port;
    o.threads = (int)threads;
    o.batchers = (int)batchers;
    o.batch_align = !no_align;
    o.screen_bits = screen_bits == 8 || screen_bits == 16 ? (int)screen_bits : screen_bits == 0 ? 0 : -1;
    o.session_memory = mem_mb << 20;
    o.log_requests = lv >= 2;
    const char *bad = rr_server_opts_check(&o);
    if (bad) {
        cli_error("serve", "%s", bad);
        return RR_EXIT_USAGE;
    }
    cli_log_init(lv);

    /* Block the signals before any thread starts, so every thread inherits
     * the mask and only sigwait below sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    rr_error err;
    rr_server *srv = NULL;
    if (rr_server_start(&srv, &o, &err) != RR_OK) return cli_fail("serve", &err);
    fprintf(stderr, "rnnrec serve: listening on %s:%u\n", o.host, rr_server_port(srv));
    fflush(stderr);

    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            if (rr_server_reload(srv, &err) != RR_OK)
                fprintf(stderr, "rnnrec serve: reload failed, previous model kept: %s\n", err.msg);
            else
                fprintf(stderr, "rnnrec serve: model reloaded\n");
            continue;
        }
        break;
    }
    fprintf(stderr, "rnnrec serve: draining (up to %g s)\n", drain);
    size_t left = rr_server_drain(srv, drain);
    if (left) fprintf(stderr, "rnnrec serve: %zu requests still in flight at the drain deadline\n", left);
    rr_server_free(srv);
    fprintf(stderr, "rnnrec serve: stopped\n");
    return RR_EXIT_OK;
}

#else
int cmd_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "rnnrec serve: this rnnrec was built without the server (-DRR_SERVER=OFF)\n");
    return RR_EXIT_RUNTIME;
}
#endif
