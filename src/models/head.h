/* head.h - the linear scoring head of recurrent models and the kernels that
 * score it in cache-sized pieces.
 *
 * A model has a linear head when every item's score is
 *
 *   s_j = act(v . W[j, :] + b[j])         j = 0 .. N-1
 *
 * for a D-vector v held in the session state (rr_state.h + off): the RNN
 * kinds' output layer.  The evaluation engine and rr_recommend score such
 * models a tile of sessions by a slice of items at a time (eval/fused.c)
 * instead of writing whole (n, N) score rows to memory.
 *
 * One arithmetic for every path.  Each score is computed as
 *   acc = 0;  acc = fma(v[k], W[j, k], acc) for k = 0 .. D-1 in order;
 *   s = act(acc + b[j])
 * with one correctly rounded fused multiply-add per step, whatever the
 * kernel (AVX2 tiles, the portable loops, the single-score function), the
 * tile, the slice or the thread.  So a score does not depend on which other
 * sessions or items were scored with it: the fused engine, the full rows of
 * ops->score and a single target score agree bit for bit, which is what
 * makes ranks (ties included) identical between them.  The scores differ
 * from a BLAS GEMM's by rounding only (BLAS sums in its own order). */
#ifndef RR_HEAD_H
#define RR_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"

typedef struct rr_head {
    const float *W;   /* (N, D) item table, row-major */
    const float *b;   /* (N) item biases */
    size_t N, D;
    size_t off;       /* where v starts in a state's h */
    rr_act act;       /* applied after the bias */
    double act_param; /* elu alpha */
} rr_head;

/* Sessions per tile: the kernels hold a tile's D-vectors transposed, one
 * session per float lane. */
#define RR_HEAD_TILE 16

struct rr_model;
/* Fills h when the model's scores are a linear head (RNN kinds), else
 * returns false. */
bool rr_model_head(const struct rr_model *m, rr_head *h);

/* hp (D, RR_HEAD_TILE) = the n <= RR_HEAD_TILE vectors vecs[i] (each D
 * floats) as columns; the columns from n on are zero. */
void rr_head_pack(const rr_head *h, float *hp, const float *const *vecs, size_t n);

/* Scores of items j0 .. j1-1 (j1 <= N) for a packed tile of n sessions
 * (n <= RR_HEAD_TILE; lanes from n on hold scores of a zero vector, which
 * callers ignore): out (j1 - j0, RR_HEAD_TILE), item-major, out[(j - j0) *
 * RR_HEAD_TILE + i] = s_j of session i, activation applied. */
void rr_head_score_tile(const rr_head *h, const float *hp, size_t n, size_t j0, size_t j1, float *out);

/* s_j for one vector v, bit-identical to the tile kernels' value. */
float rr_head_score_one(const rr_head *h, const float *v, int32_t j);

/* out[p] = s_{j[p]} of vector v[p], p < n: rr_head_score_one's bits, with
 * eight chains in flight (the screened ranking's exact rescoring). */
void rr_head_score_pairs(const rr_head *h, const float *const *v, const int32_t *j, size_t n, float *out);

/* out[p] = s_{j[p]} of one vector v, p < n: rr_head_score_one's bits, 32
 * items at a time with the rows transposed into 8-lane fmas. */
void rr_head_score_items(const rr_head *h, const float *v, const int32_t *j, size_t n, float *out);

/* Full rows: scores (n, N) = s_j of vecs[i], for ops->score.  scratch holds
 * rr_head_rows_scratch_floats(h) floats, 64-byte aligned. */
size_t rr_head_rows_scratch_floats(const rr_head *h);
void rr_head_score_rows(const rr_head *h, const float *const *vecs, size_t n, float *scores, size_t lds,
                        float *scratch);

/* The same for rr_states (vectors at state->h + off): what the RNN kinds'
 * ops->score does.  Allocates its scratch. */
struct rr_state;
rr_status rr_head_score_states(const rr_head *h, struct rr_state *const *states, size_t n, float *scores,
                               rr_error *err);

/* Top-k of one session through the screen of nn/screen.h (serving): the
 * list rr_topk gives on the session's exact score row with the n_seen items
 * of seen set to -inf (k items at most, best first, ties by lower index, no
 * -inf entries; *ntop of them), items and score bits.  s must be built from
 * this head's W and b (rr_screen_new, then rr_screen_add_blocks) and the
 * head linear; otherwise RR_ERR_ARG.  *scratch (NULL at first) is reused
 * across calls; free it with rr_head_screen_scratch_free.  For one session
 * it reads the quantised table once, 32 multiply-adds per instruction,
 * where the fp32 tile kernels fill 1 lane of 8. */
struct rr_screen;
typedef struct rr_head_screen_scratch rr_head_screen_scratch;
rr_status rr_head_topk_screened(const rr_head *h, const struct rr_screen *s, const float *v, const int32_t *seen,
                                size_t n_seen, size_t k, int32_t *top, float *tops, size_t *ntop,
                                rr_head_screen_scratch **scratch, rr_error *err);
void rr_head_screen_scratch_free(rr_head_screen_scratch *sc);

/* Testing hook: 1 forces the portable kernels (not thread-safe: set it
 * before scoring starts). */
void rr_head_force_portable(int on);
/* Testing hook: 1 keeps to the AVX2 kernels where AVX-512 is available. */
void rr_head_force_avx2(int on);

#endif /* RR_HEAD_H */
