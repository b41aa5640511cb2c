/* eval.h - the full-catalogue ranking engine and top-k selection. */
#ifndef RR_EVAL_H
#define RR_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"

/* Rank counts of a target score in a row of n scores: n_greater items score
 * strictly higher, n_equal score equal (the target included). */
void rr_rank_count(const float *scores, size_t n, float target, size_t *n_greater,
                   size_t *n_equal);

/* Top-k of a score row (k <= n): indices into out_idx (and their scores into
 * out_score if not NULL), best first; ties by lower index.  Entries whose
 * score is -INFINITY are never returned: the tail is padded with -1. */
void rr_topk(const float *scores, size_t n, size_t k, int32_t *out_idx, float *out_score);

/* Both at once in one pass over a row, as the evaluation engine needs them:
 * the rank counts of target score `target` and the top-k (k >= 1, k <= n)
 * as in rr_topk.  Returns how many top entries were written (fewer than k
 * when fewer items score above -INFINITY); the rest are left untouched. */
size_t rr_rank_scan(const float *scores, size_t n, float target, size_t k, size_t *n_greater,
                    size_t *n_equal, int32_t *top_idx, float *top_score);

/* Testing hook: 1 forces the portable kernels even where AVX2 is available
 * (not thread-safe; set it before ranking starts). */
void rr_rank_force_portable(int on);

#endif
