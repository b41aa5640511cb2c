/* sampler.c - GRU4Rec's negative sampler (see sampler.h).
 *
 * As in hidasib/GRU4Rec_PyTorch_Official gru4rec_pytorch.py
 * (SessionDataIterator.__init__ and SampleCache):
 *  - weights are item supports to the power alpha, normalised into a
 *    cumulative distribution whose last entry is forced to exactly 1;
 *  - one refill draws (cache_draws / n_sample) batches of n_sample items
 *    at once (SampleCache.generate_length), with replacement, each item
 *    the first index whose cumulative value exceeds a uniform number
 *    (SampleCache._bin_search moves its lower bound while val <= x: an
 *    upper bound);
 *  - a batch is handed out per mini-batch and the cache is refilled when
 *    all its batches are used (SampleCache.get_sample).
 * Differences, all deliberate: the CDF and the uniforms are double (the
 * official code uses float32 for both), a refill smaller than one batch is
 * rounded up to one batch (the official code would then index an empty
 * cache), and a support of 0 gets weight 0 whatever alpha is (0^0 = 1 would
 * make unseen items samplable with alpha = 0; GRU4Rec never has any).
 *
 * The search: a guide table (Chen & Asau 1974; Devroye, "Non-Uniform Random
 * Variate Generation", 1986, sec. III.2.4) of n_items buckets maps u to the
 * first CDF index above floor(u K)/K, from where a short walk finds the
 * same upper bound a binary search over the whole CDF would (the walk
 * fixes the rare bucket-boundary rounding both ways, so the result is the
 * binary search's exactly; test_sampler checks that).  Expected cost is
 * under two comparisons per draw instead of log2(n_items). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/sampler.h"

struct rr_sampler {
    size_t n_items, n_sample, n_batches; /* cache holds n_batches * n_sample */
    double *q;        /* (n_items) sampling probabilities */
    double *cdf;      /* (n_items) cumulative q, cdf[n_items - 1] == 1 */
    uint32_t *guide;  /* (n_items + 1) first index with cdf > b / n_items */
    int32_t *cache;   /* (n_batches, n_sample) drawn items */
    rr_rng rng;       /* live generator */
    rr_rng rng_start; /* generator state when the current cache was drawn */
    uint64_t refills, cursor;
};

/* First j with cdf[j] > u, starting the walk at the guide entry. */
static inline size_t draw_one(const rr_sampler *s, double u) {
    size_t j = s->guide[(size_t)(u * (double)s->n_items)];
    while (j > 0 && s->cdf[j - 1] > u) j--;
    while (s->cdf[j] <= u) j++;
    return j;
}

static void refill(rr_sampler *s) {
    s->rng_start = s->rng;
    size_t n = s->n_batches * s->n_sample;
    for (size_t i = 0; i < n; i++) s->cache[i] = (int32_t)draw_one(s, rr_rng_uniform(&s->rng));
    s->refills++;
    s->cursor = 0;
}

rr_status rr_sampler_new(rr_sampler **out, const double *counts, size_t n_items, double alpha,
                         size_t n_sample, size_t cache_draws, uint64_t seed, rr_error *err) {
    *out = NULL;
    if (n_items == 0) return rr_err(err, RR_ERR_EMPTY, "sampler: no items");
    if (n_items > (size_t)INT32_MAX)
        return rr_err(err, RR_ERR_RANGE, "sampler: %zu items, at most %d supported", n_items,
                      INT32_MAX);
    if (n_sample == 0) return rr_err(err, RR_ERR_ARG, "sampler: n_sample must be >= 1");
    if (!(alpha >= 0 && isfinite(alpha)))
        return rr_err(err, RR_ERR_ARG, "sampler: alpha must be finite and >= 0, got %g", alpha);
    size_t n_batches = cache_draws / n_sample;
    if (n_batches == 0) n_batches = 1;
    size_t n_cache;
    if (!rr_mul_size(n_batches, n_sample, &n_cache))
        return rr_err(err, RR_ERR_NOMEM, "sampler: cache of %zu x %zu draws overflows", n_batches,
                      n_sample);

    rr_sampler *s = calloc(1, sizeof *s);
    if (!s) return rr_err(err, RR_ERR_NOMEM, "sampler: out of memory");
    s->n_items = n_items;
    s->n_sample = n_sample;
    s->n_batches = n_batches;
    s->q = rr_malloc_n(n_items, sizeof *s->q);
    s->cdf = rr_malloc_n(n_items, sizeof *s->cdf);
    s->guide = rr_malloc_n(n_items + 1, sizeof *s->guide);
    s->cache = rr_malloc_n(n_cache, sizeof *s->cache);
    if (!s->q || !s->cdf || !s->guide || !s->cache) {
        rr_sampler_free(s);
        return rr_err(err, RR_ERR_NOMEM, "sampler: out of memory for %zu items, %zu cached draws",
                      n_items, n_cache);
    }

    /* q_j = count_j^alpha / sum (count 0: weight 0) */
    double total = 0;
    for (size_t j = 0; j < n_items; j++) {
        double c = counts[j];
        if (!(c >= 0 && isfinite(c))) {
            rr_sampler_free(s);
            return rr_err(err, RR_ERR_NUMERIC, "sampler: count of item %zu is %g", j, c);
        }
        s->q[j] = c > 0 ? pow(c, alpha) : 0.0;
        total += s->q[j];
    }
    if (!(total > 0 && isfinite(total))) {
        rr_sampler_free(s);
        return rr_err(err, RR_ERR_NUMERIC, "sampler: total weight %g (all counts zero?)", total);
    }
    double acc = 0;
    for (size_t j = 0; j < n_items; j++) {
        acc += s->q[j];
        s->q[j] /= total;
        s->cdf[j] = acc / total;
    }
    s->cdf[n_items - 1] = 1.0;
    /* the last item with weight > 0 must absorb the rounding, not a
     * trailing weightless one: force 1 from the last positive item on */
    for (size_t j = n_items; j-- > 0;) {
        s->cdf[j] = 1.0;
        if (s->q[j] > 0) break;
    }

    /* guide[b] = first j with cdf[j] > b / K (K = n_items) */
    size_t j = 0;
    for (size_t b = 0; b <= n_items; b++) {
        double edge = (double)b / (double)n_items;
        while (j < n_items - 1 && s->cdf[j] <= edge) j++;
        s->guide[b] = (uint32_t)j;
    }

    rr_rng_seed(&s->rng, seed);
    s->refills = 0;
    refill(s);
    *out = s;
    return RR_OK;
}

void rr_sampler_free(rr_sampler *s) {
    if (!s) return;
    free(s->q);
    free(s->cdf);
    free(s->guide);
    free(s->cache);
    free(s);
}

const int32_t *rr_sampler_next(rr_sampler *s) {
    if (s->cursor >= s->n_batches) refill(s);
    return s->cache + (size_t)(s->cursor++) * s->n_sample;
}

const double *rr_sampler_probs(const rr_sampler *s) { return s->q; }

void rr_sampler_get_pos(const rr_sampler *s, rr_sampler_pos *pos) {
    pos->rng = s->rng_start;
    pos->refills = s->refills;
    pos->cursor = s->cursor;
}

rr_status rr_sampler_set_pos(rr_sampler *s, const rr_sampler_pos *pos, rr_error *err) {
    if (pos->refills == 0)
        return rr_err(err, RR_ERR_RANGE, "sampler position: refill count 0 (at least 1 expected)");
    if (pos->cursor > s->n_batches)
        return rr_err(err, RR_ERR_RANGE,
                      "sampler position: cursor %llu beyond the %zu batches of a cache (saved with "
                      "another n_sample or cache size?)",
                      (unsigned long long)pos->cursor, s->n_batches);
    if (!(pos->rng.s[0] | pos->rng.s[1] | pos->rng.s[2] | pos->rng.s[3]))
        return rr_err(err, RR_ERR_RANGE, "sampler position: all-zero generator state");
    s->rng = pos->rng;
    refill(s); /* redraws the cache the position was taken in */
    s->refills = pos->refills;
    s->cursor = pos->cursor;
    return RR_OK;
}

size_t rr_sampler_draw_for(const rr_sampler *s, double u) { return draw_one(s, u); }
