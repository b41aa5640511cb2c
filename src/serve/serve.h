/* serve.h - the HTTP recommendation service behind `rnnrec serve`.
 *
 * One rr_server owns a libmicrohttpd daemon (thread pool, epoll), the model
 * currently served (reference-counted, swapped atomically by a reload), a
 * set of batcher threads that score the states of many requests with one
 * rr_recommend call, the live-session cache, and the /metrics counters.
 * The HTTP API is documented in docs/serve.md.
 *
 * Threads: HTTP workers parse requests, build states for stateless
 * requests and suspend the connection while the batcher scores; batcher
 * shard i owns the sessions whose id hashes to i, so every change to a
 * session happens on one thread, in arrival order.  Nothing here prints or
 * handles signals: the caller (cli/cmd_serve.c) does, and calls
 * rr_server_reload / rr_server_drain. */
#ifndef RR_SERVE_H
#define RR_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"

typedef struct rr_server_opts {
    const char *model_path;
    const char *host;           /* address to bind ("127.0.0.1") */
    unsigned port;              /* 0: an ephemeral port (see rr_server_port) */
    int threads;                /* HTTP worker threads (0: all cores) */
    int batchers;               /* scoring threads = session shards (1; 0: all cores) */
    size_t max_batch;           /* states per rr_recommend call (64) */
    int batch_align;            /* 1: take whole scoring tiles when more than one is queued (1) */
    int screen_bits;            /* integer width of the quantised screen the batcher ranks
                                   through: 8 (the default) or 16; 0: the exact fp32 engine
                                   only.  Results are the same bits in every case */
    size_t max_queue;           /* queued states before 503 overloaded (4096) */
    size_t max_sessions;        /* live sessions kept (100000) */
    double session_ttl;         /* seconds a session may stay idle (1800) */
    size_t session_memory;      /* bytes of session state kept (256 MiB) */
    size_t max_session_events;  /* events one live session may hold (1000) */
    size_t max_body;            /* request body bytes (64 KiB) */
    size_t max_connections;     /* open connections (1024) */
    double read_timeout;        /* seconds to receive one request (10) */
    double idle_timeout;        /* seconds a connection may stay silent (30) */
    int log_requests;           /* 1: one rr_log info line per request */
    int allow_no_model;         /* 1: start even if the model fails to load; answer
                                   503 until a reload succeeds */
} rr_server_opts;

typedef struct rr_server rr_server;

void rr_server_opts_default(rr_server_opts *o);
/* NULL when o is valid, else a message naming the bad field. */
const char *rr_server_opts_check(const rr_server_opts *o);

/* Loads and validates the model, binds the socket and starts serving. */
rr_status rr_server_start(rr_server **out, const rr_server_opts *o, rr_error *err);
/* The bound port (useful with port 0). */
unsigned rr_server_port(const rr_server *s);
/* Loads the model file again and swaps it in; on failure the old model
 * keeps serving and err says why.  Thread-safe; reloads are serialised. */
rr_status rr_server_reload(rr_server *s, rr_error *err);
/* Stops accepting connections and waits up to `seconds` for requests in
 * flight to finish.  Returns the number still in flight at the end. */
size_t rr_server_drain(rr_server *s, double seconds);
/* Stops everything and frees the server (accepts NULL). */
void rr_server_free(rr_server *s);

#endif
