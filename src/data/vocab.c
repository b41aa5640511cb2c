/* vocab.c - open-addressing hash map of ids to dense indices (see vocab.h).
 * Linear probing over a power-of-two table kept at most half full; each slot
 * stores the index and 32 hash bits so most probes never touch the pool. */
#include "vocab.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define HASH_SEED 0x5eed0f1dULL

void rr_vocab_init(rr_vocab *v) { memset(v, 0, sizeof *v); }

void rr_vocab_clear(rr_vocab *v) {
    free(v->pool);
    free(v->off);
    free(v->slots);
    free(v->slot_tag);
    memset(v, 0, sizeof *v);
}

static rr_status rehash(rr_vocab *v, size_t n_slots, rr_error *err) {
    int32_t *slots = rr_malloc_n(n_slots, sizeof *slots);
    uint32_t *tags = rr_malloc_n(n_slots, sizeof *tags);
    if (!slots || !tags) {
        free(slots);
        free(tags);
        return rr_err(err, RR_ERR_NOMEM, "vocabulary: out of memory for %zu slots", n_slots);
    }
    memset(slots, 0xff, n_slots * sizeof *slots);
    size_t mask = n_slots - 1;
    for (size_t i = 0; i < v->n; i++) {
        uint64_t h = rr_hash_bytes(v->pool + v->off[i], (size_t)(v->off[i + 1] - v->off[i]), HASH_SEED);
        size_t s = (size_t)h & mask;
        while (slots[s] >= 0) s = (s + 1) & mask;
        slots[s] = (int32_t)i;
        tags[s] = (uint32_t)(h >> 32);
    }
    free(v->slots);
    free(v->slot_tag);
    v->slots = slots;
    v->slot_tag = tags;
    v->n_slots = n_slots;
    return RR_OK;
}

static rr_status grow_off(rr_vocab *v, size_t need, rr_error *err) {
    if (need <= v->off_cap) return RR_OK;
    size_t cap = v->off_cap ? v->off_cap : 64;
    while (cap < need) cap *= 2;
    uint64_t *o = rr_realloc_n(v->off, cap, sizeof *o);
    if (!o) return rr_err(err, RR_ERR_NOMEM, "vocabulary: out of memory");
    v->off = o;
    v->off_cap = cap;
    return RR_OK;
}

rr_status rr_vocab_reserve(rr_vocab *v, size_t n, rr_error *err) {
    rr_status s = grow_off(v, n + 1, err);
    if (s) return s;
    if (!v->off[0] && v->n == 0) v->off[0] = 0;
    size_t want = 16;
    while (want < 2 * n) want *= 2;
    if (want > v->n_slots) return rehash(v, want, err);
    return RR_OK;
}

int32_t rr_vocab_find(const rr_vocab *v, const char *id, size_t len) {
    if (!v->n_slots) return -1;
    uint64_t h = rr_hash_bytes(id, len, HASH_SEED);
    uint32_t tag = (uint32_t)(h >> 32);
    size_t mask = v->n_slots - 1, s = (size_t)h & mask;
    for (;;) {
        int32_t i = v->slots[s];
        if (i < 0) return -1;
        if (v->slot_tag[s] == tag && v->off[i + 1] - v->off[i] == len &&
            memcmp(v->pool + v->off[i], id, len) == 0)
            return i;
        s = (s + 1) & mask;
    }
}

rr_status rr_vocab_add(rr_vocab *v, const char *id, size_t len, int32_t *idx, rr_error *err) {
    if (len > RR_ID_MAX)
        return rr_err(err, RR_ERR_RANGE, "id of %zu bytes is longer than the limit of %d", len, RR_ID_MAX);
    if (2 * (v->n + 1) > v->n_slots) {
        rr_status s = rehash(v, v->n_slots ? 2 * v->n_slots : 1024, err);
        if (s) return s;
    }
    uint64_t h = rr_hash_bytes(id, len, HASH_SEED);
    uint32_t tag = (uint32_t)(h >> 32);
    size_t mask = v->n_slots - 1, s = (size_t)h & mask;
    for (;;) {
        int32_t i = v->slots[s];
        if (i < 0) break;
        if (v->slot_tag[s] == tag && v->off[i + 1] - v->off[i] == len &&
            memcmp(v->pool + v->off[i], id, len) == 0) {
            *idx = i;
            return RR_OK;
        }
        s = (s + 1) & mask;
    }
    if (v->n >= (size_t)INT32_MAX) return rr_err(err, RR_ERR_RANGE, "more than %d distinct ids", INT32_MAX);
    rr_status st = grow_off(v, v->n + 2, err);
    if (st) return st;
    if (v->n == 0) v->off[0] = 0;
    if (v->pool_len + len > v->pool_cap) {
        size_t cap = v->pool_cap ? v->pool_cap : 4096;
        while (cap < v->pool_len + len) cap *= 2;
        char *p = realloc(v->pool, cap);
        if (!p) return rr_err(err, RR_ERR_NOMEM, "vocabulary: out of memory");
        v->pool = p;
        v->pool_cap = cap;
    }
    if (len) memcpy(v->pool + v->pool_len, id, len);
    v->pool_len += len;
    v->off[v->n + 1] = v->pool_len;
    v->slots[s] = (int32_t)v->n;
    v->slot_tag[s] = tag;
    *idx = (int32_t)v->n;
    v->n++;
    return RR_OK;
}

rr_status rr_vocab_copy(rr_vocab *dst, const rr_vocab *src, rr_error *err) {
    rr_vocab_init(dst);
    rr_status s = rr_vocab_reserve(dst, src->n, err);
    for (size_t i = 0; s == RR_OK && i < src->n; i++) {
        size_t len;
        const char *id = rr_vocab_id(src, (int32_t)i, &len);
        int32_t idx;
        s = rr_vocab_add(dst, id, len, &idx, err);
    }
    if (s) rr_vocab_clear(dst);
    return s;
}
