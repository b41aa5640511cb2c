/* vocab.h - a string -> dense int32 index map that keeps the original ids.
 * Used for item ids and session ids.  Ids are arbitrary byte strings of at
 * most RR_ID_MAX bytes; index i is the i-th distinct id added. */
#ifndef RR_VOCAB_H
#define RR_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"

#define RR_ID_MAX 255

typedef struct rr_vocab {
    size_t n;          /* number of ids */
    char *pool;        /* (pool_len) id bytes, back to back, no separators */
    size_t pool_len, pool_cap;
    uint64_t *off;     /* (n + 1) start of id i in pool; off[n] = pool_len */
    size_t off_cap;
    int32_t *slots;    /* (n_slots) open-addressing table of indices, -1 empty */
    uint32_t *slot_tag;/* (n_slots) low 32 bits of the hash, to skip memcmp */
    size_t n_slots;    /* power of two */
} rr_vocab;

void rr_vocab_init(rr_vocab *v);
void rr_vocab_clear(rr_vocab *v);   /* frees; v may be reused after init */
/* Pre-sizes for about n ids. */
rr_status rr_vocab_reserve(rr_vocab *v, size_t n, rr_error *err);
/* Index of id, or -1. */
int32_t rr_vocab_find(const rr_vocab *v, const char *id, size_t len);
/* Index of id, adding it when new.  RR_ERR_RANGE when len > RR_ID_MAX or the
 * vocabulary is full (INT32_MAX ids). */
rr_status rr_vocab_add(rr_vocab *v, const char *id, size_t len, int32_t *idx,
                       rr_error *err);
/* Id of index i (not NUL-terminated). */
static inline const char *rr_vocab_id(const rr_vocab *v, int32_t i, size_t *len) {
    *len = (size_t)(v->off[i + 1] - v->off[i]);
    return v->pool + v->off[i];
}
/* Deep copy. */
rr_status rr_vocab_copy(rr_vocab *dst, const rr_vocab *src, rr_error *err);

#endif
