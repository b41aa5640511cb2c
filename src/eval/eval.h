/* eval.h - the full-catalogue ranking engine and top-k selection. */
#ifndef RR_EVAL_H
#define RR_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
int rr_rank_portable_forced(void);

/* ---- fused scoring and ranking for models with a linear head (fused.c).
 * For each of n sessions: the scores of all N items (models/head.h), the
 * session's `seen` items set to -inf, then the rank counts of its target
 * (when target is not NULL) and its top-k, exactly as rr_rank_scan gives
 * them on the full score row, without the row ever being stored. */
struct rr_head;
typedef struct rr_fused_job {
    const struct rr_head *h;
    const float *const *vecs;    /* (n) the sessions' D-vectors */
    size_t n;
    const int32_t *target;       /* (n) items to rank, or NULL */
    const int32_t *const *seen;  /* (n) items excluded per session, or NULL */
    const size_t *n_seen;        /* (n) lengths of the seen lists */
    size_t k;                    /* top-k length, 1 <= k <= N */
    int threads;                 /* threads splitting the items (>= 1) */
} rr_fused_job;

typedef struct rr_fused_out {
    float *tscore;               /* (n) target scores (-inf when seen); with target */
    size_t *ng, *ne;             /* (n) items above / equal to the target; with target */
    int32_t *top;                /* (n, k) top items, best first, ties by lower index */
    float *tops;                 /* (n, k) their scores */
    size_t *ntop;                /* (n) entries written (< k when fewer items beat -inf) */
} rr_fused_out;

/* Reusable buffers of the engine: *scratch may be NULL (allocated here) and
 * only grows, so calls with the same shapes do not allocate. */
typedef struct rr_fused_scratch rr_fused_scratch;
void rr_fused_scratch_free(rr_fused_scratch *s);

/* Testing hook: 1 makes rr_evaluate score models with a linear head through
 * ops->score into full rows, as for every other kind (not thread-safe). */
void rr_eval_force_unfused(int on);

/* Testing hook: 1 keeps the fused scan to AVX2 where AVX-512 is available
 * (rr_rank_force_portable forces the portable one). */
void rr_fused_force_avx2(int on);

#define RR_FUSED_MERGE_MAX 256   /* top lists up to this long merge on the stack */

rr_status rr_fused_rank(const rr_fused_job *job, rr_fused_scratch **scratch, rr_fused_out *out,
                        rr_error *err);

/* The same results (bit for bit) with the screen of nn/screen.h: scr built
 * by rr_screen_new from the head's W and b (NULL, a non-linear head, k above
 * RR_FUSED_MERGE_MAX or a CPU without the screen's instructions: the plain
 * engine).  Items are first scored approximately with a rigorous error
 * bound; only those the bound cannot place get their exact score. */
struct rr_screen;
rr_status rr_fused_rank_screened(const rr_fused_job *job, const struct rr_screen *scr, rr_fused_scratch **scratch,
                                 rr_fused_out *out, rr_error *err);

/* Testing / benchmark hook: (session, item) pairs screened, and how many
 * were rescored exactly for the rank counts and for the top lists, over all
 * screened calls since the last reset (reset != 0 clears them). */
void rr_fused_screen_stats(size_t *pairs, size_t *rank_rescored, size_t *top_rescored, int reset);

/* Inserts (v, j) into a top list sorted best first, of *cnt entries and
 * capacity k; v is known to beat the list's threshold.  Equal scores stay
 * in arrival order (so ties keep the lower index when items arrive in
 * index order). */
static inline void rr_top_insert(float *ts, int32_t *ti, size_t *cnt, size_t k, float v, int32_t j) {
    size_t p = *cnt < k ? *cnt : k;
    while (p > 0 && ts[p - 1] < v) p--;
    if (*cnt < k) (*cnt)++;
    size_t move = *cnt - 1 - p;
    if (move) {
        memmove(ts + p + 1, ts + p, move * sizeof *ts);
        memmove(ti + p + 1, ti + p, move * sizeof *ti);
    }
    ts[p] = v;
    ti[p] = j;
}

#endif
