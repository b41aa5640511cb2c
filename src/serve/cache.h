/* cache.h - one shard of the live-session cache: a hash map from session
 * id to the session's recurrent state and item history, with LRU order,
 * an idle TTL, and caps on the number of sessions and on their memory.
 *
 * A shard is owned by one batcher thread and is not locked; the owner
 * publishes its counters for /metrics.  The item history is kept so a
 * session survives a reload to a compatible model: its state is rebuilt on
 * the new model by replaying the items (rr_state belongs to one model). */
#ifndef RR_SERVE_CACHE_H
#define RR_SERVE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"
#include "serve/request.h"

typedef struct rr_sess {
    char id[RR_SID_MAX + 1];
    size_t id_len;
    uint64_t hash;
    rr_state *st;         /* state on the model of generation `gen`, or NULL */
    uint64_t gen;         /* model generation st was built on */
    uint64_t epoch;       /* compatibility epoch of that model */
    int32_t *items;       /* (cap) the session's known items, in order */
    size_t n, cap;
    double last_used;     /* rr_now() seconds */
    size_t bytes;         /* accounted memory */
    int pinned;           /* in a batch being scored: never evicted */
    struct rr_sess *prev, *next; /* LRU list, most recent first */
    struct rr_sess *hnext;       /* hash chain */
} rr_sess;

typedef struct rr_cache {
    rr_sess **buckets;    /* (n_buckets) hash chains */
    size_t n_buckets;     /* a power of two */
    rr_sess *head, *tail; /* LRU order */
    size_t n, max_n;
    size_t bytes, max_bytes;
    double ttl;
    size_t state_bytes;   /* estimated bytes of one rr_state (per model) */
    uint64_t evicted_lru, evicted_ttl, evicted_memory, dropped_reload;
} rr_cache;

rr_status rr_cache_init(rr_cache *c, size_t max_n, size_t max_bytes, double ttl, rr_error *err);
void rr_cache_clear(rr_cache *c);   /* frees every session and the table */

/* The session, moved to the front; NULL when absent or idle past the TTL
 * (then it is removed). */
rr_sess *rr_cache_get(rr_cache *c, const char *id, size_t len, double now);
/* A new empty session (no state yet); evicts the least recently used
 * unpinned session when the count cap is reached.  NULL when out of memory
 * or when every session is pinned. */
rr_sess *rr_cache_put(rr_cache *c, const char *id, size_t len, double now);
void rr_cache_remove(rr_cache *c, rr_sess *s);
/* Appends an item to the history (growing it); false when out of memory. */
int rr_cache_push(rr_cache *c, rr_sess *s, int32_t item);
/* Recomputes s's accounted bytes and evicts unpinned LRU sessions while
 * over the memory cap. */
void rr_cache_account(rr_cache *c, rr_sess *s);
/* Removes sessions idle longer than the TTL; returns how many. */
size_t rr_cache_expire(rr_cache *c, double now);
/* Drops every session whose epoch differs (an incompatible model). */
size_t rr_cache_drop_epoch(rr_cache *c, uint64_t keep_epoch);

#endif
