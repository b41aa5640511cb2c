/* cache.c - session cache shard: chained hash map + LRU list (cache.h). */
#include "serve/cache.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

rr_status rr_cache_init(rr_cache *c, size_t max_n, size_t max_bytes, double ttl, rr_error *err) {
    memset(c, 0, sizeof *c);
    size_t nb = 16;
    /* About one bucket per session, capped so a huge --max-sessions does not
     * allocate a huge table up front (chains just get longer). */
    while (nb < max_n && nb < ((size_t)1 << 20)) nb *= 2;
    c->buckets = rr_calloc_n(nb, sizeof *c->buckets);
    if (!c->buckets) return rr_err(err, RR_ERR_NOMEM, "session cache: out of memory");
    c->n_buckets = nb;
    c->max_n = max_n;
    c->max_bytes = max_bytes;
    c->ttl = ttl;
    return RR_OK;
}

static void sess_free(rr_sess *s) {
    rr_state_free(s->st);
    free(s->items);
    free(s);
}

void rr_cache_clear(rr_cache *c) {
    rr_sess *s = c->head;
    while (s) {
        rr_sess *nx = s->next;
        sess_free(s);
        s = nx;
    }
    free(c->buckets);
    memset(c, 0, sizeof *c);
}

static void lru_unlink(rr_cache *c, rr_sess *s) {
    if (s->prev) s->prev->next = s->next;
    else c->head = s->next;
    if (s->next) s->next->prev = s->prev;
    else c->tail = s->prev;
    s->prev = s->next = NULL;
}

static void lru_front(rr_cache *c, rr_sess *s) {
    s->prev = NULL;
    s->next = c->head;
    if (c->head) c->head->prev = s;
    c->head = s;
    if (!c->tail) c->tail = s;
}

void rr_cache_remove(rr_cache *c, rr_sess *s) {
    rr_sess **pp = &c->buckets[s->hash & (c->n_buckets - 1)];
    while (*pp && *pp != s) pp = &(*pp)->hnext;
    if (*pp) *pp = s->hnext;
    lru_unlink(c, s);
    c->n--;
    c->bytes -= s->bytes;
    sess_free(s);
}

rr_sess *rr_cache_get(rr_cache *c, const char *id, size_t len, double now) {
    uint64_t h = rr_hash_bytes(id, len, 0x5e55);
    for (rr_sess *s = c->buckets[h & (c->n_buckets - 1)]; s; s = s->hnext) {
        if (s->hash != h || s->id_len != len || memcmp(s->id, id, len)) continue;
        if (c->ttl > 0 && now - s->last_used > c->ttl && !s->pinned) {
            rr_cache_remove(c, s);
            c->evicted_ttl++;
            return NULL;
        }
        s->last_used = now;
        lru_unlink(c, s);
        lru_front(c, s);
        return s;
    }
    return NULL;
}

/* Evicts the least recently used unpinned session; false if none. */
static int evict_one(rr_cache *c, const rr_sess *keep) {
    for (rr_sess *s = c->tail; s; s = s->prev) {
        if (s->pinned || s == keep) continue;
        rr_cache_remove(c, s);
        return 1;
    }
    return 0;
}

rr_sess *rr_cache_put(rr_cache *c, const char *id, size_t len, double now) {
    if (len > RR_SID_MAX) return NULL;
    while (c->n >= c->max_n) {
        if (!evict_one(c, NULL)) return NULL;
        c->evicted_lru++;
    }
    rr_sess *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    memcpy(s->id, id, len);
    s->id[len] = 0;
    s->id_len = len;
    s->hash = rr_hash_bytes(id, len, 0x5e55);
    s->last_used = now;
    size_t b = s->hash & (c->n_buckets - 1);
    s->hnext = c->buckets[b];
    c->buckets[b] = s;
    lru_front(c, s);
    c->n++;
    rr_cache_account(c, s);
    return s;
}

int rr_cache_push(rr_cache *c, rr_sess *s, int32_t item) {
    (void)c;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        int32_t *p = rr_realloc_n(s->items, cap, sizeof *p);
        if (!p) return 0;
        s->items = p;
        s->cap = cap;
    }
    s->items[s->n++] = item;
    return 1;
}

void rr_cache_account(rr_cache *c, rr_sess *s) {
    /* The history twice (ours and the rr_state's own copy), the state's
     * recurrent floats, and the entry. */
    size_t b = sizeof *s + (s->st ? c->state_bytes : 0) + 2 * s->cap * sizeof(int32_t);
    c->bytes = c->bytes - s->bytes + b;
    s->bytes = b;
    while (c->bytes > c->max_bytes && evict_one(c, s)) c->evicted_memory++;
}

size_t rr_cache_expire(rr_cache *c, double now) {
    if (c->ttl <= 0) return 0;
    size_t n = 0;
    rr_sess *s = c->tail;
    while (s && now - s->last_used > c->ttl) {
        rr_sess *pv = s->prev;
        if (!s->pinned) {
            rr_cache_remove(c, s);
            n++;
        }
        s = pv;
    }
    c->evicted_ttl += n;
    return n;
}

size_t rr_cache_drop_epoch(rr_cache *c, uint64_t keep_epoch) {
    size_t n = 0;
    rr_sess *s = c->head;
    while (s) {
        rr_sess *nx = s->next;
        if (s->epoch != keep_epoch && !s->pinned) {
            rr_cache_remove(c, s);
            n++;
        }
        s = nx;
    }
    c->dropped_reload += n;
    return n;
}
