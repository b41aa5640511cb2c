/* sampler.h - GRU4Rec's negative sampler: items drawn with probability
 * q_j proportional to count_j ^ alpha, with replacement, from a precomputed
 * cache of draws that is refilled when used up (one refill draws many
 * mini-batches' worth at once). */
#ifndef RR_SAMPLER_H
#define RR_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"
#include "util/util.h"

typedef struct rr_sampler rr_sampler;

/* cache_draws: items drawn per refill, rounded down to whole batches of
 * n_sample (at least one batch), as GRU4Rec's sample_cache_max_size.
 * counts (n_items): item supports, finite and >= 0, not all 0; an item with
 * count 0 is never drawn.  The first cache is drawn here.  Deterministic
 * for a seed. */
rr_status rr_sampler_new(rr_sampler **out, const double *counts, size_t n_items, double alpha,
                         size_t n_sample, size_t cache_draws, uint64_t seed, rr_error *err);
void rr_sampler_free(rr_sampler *s);
/* The next n_sample items; valid until the next call. */
const int32_t *rr_sampler_next(rr_sampler *s);
/* Sampling probabilities q (n_items), summing to 1. */
const double *rr_sampler_probs(const rr_sampler *s);
/* The item a uniform u in [0, 1) maps to: the first j with CDF_j > u
 * (what every draw does; exposed for the tests). */
size_t rr_sampler_draw_for(const rr_sampler *s, double u);

/* Exact position (RNG state + cache cursor) for checkpoints. */
typedef struct rr_sampler_pos {
    rr_rng rng;          /* generator state at the start of the current cache */
    uint64_t refills;    /* caches drawn so far */
    uint64_t cursor;     /* batches (next() calls) served from the current cache */
} rr_sampler_pos;
void rr_sampler_get_pos(const rr_sampler *s, rr_sampler_pos *pos);
rr_status rr_sampler_set_pos(rr_sampler *s, const rr_sampler_pos *pos, rr_error *err);

#endif
