/* optim.h - optimisers over flat parameter blobs (the optimiser never knows
 * which tensor it updates).  Dense blocks are updated whole; the large item
 * tables (N x H) are updated sparsely: only the rows touched by the mini-
 * batch, with duplicate rows already summed by the caller.
 *
 *   adagrad (GRU4Rec's, with momentum):
 *       acc += g^2;  v = mu * v - lr * g / sqrt(acc + 1e-6);  w += v
 *       (with mu = 0 there is no v state: w -= lr * g / sqrt(acc + 1e-6))
 *   adam:  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *          w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 *   sgd:   v = mu * v - lr * g;  w += v   (plain w -= lr g when mu = 0)
 *
 * State vectors s1/s2 have the parameter's shape: adagrad s1 = acc, s2 = v
 * (only when momentum > 0); adam s1 = m, s2 = v; sgd s1 = v (momentum > 0).
 * s1 is always float.  s2 is float, except Adagrad's velocity with
 * vel_bf16 set: then it is bfloat16 (uint16_t, the top half of a float).
 * The step computes v in float, adds that float to w, and stores v
 * rounded to the nearest bfloat16 (ties to even, NaN stays NaN,
 * subnormals kept: rr_bf16_from_f32); the next step reads the rounded
 * value.  This halves the largest state table (docs/rnn.md, deviations).
 *
 * Adagrad is GRU4Rec's IndexedAdagradM (hidasib/GRU4Rec_PyTorch_Official,
 * gru4rec_pytorch.py): eps inside the root, after the accumulator update;
 * sparse rows keep their state untouched until they are in a batch again
 * (lazy momentum).  A sparse update equals the dense update of the same
 * rows bit for bit.  States start at zero (calloc). */
#ifndef RR_OPTIM_H
#define RR_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"

typedef struct rr_optim_cfg {
    rr_optim kind;
    double lr, momentum;
    double beta1, beta2, eps;  /* adam */
    int vel_bf16;              /* adagrad with momentum: s2 holds bfloat16 */
} rr_optim_cfg;

/* float -> bfloat16, round to nearest, ties to even; a NaN stays a (quiet)
 * NaN, infinities and subnormals are rounded like any other value.  The
 * reverse is exact. */
static inline uint16_t rr_bf16_from_f32(float f) {
    union { float f; uint32_t u; } x = {f};
    uint32_t u = x.u;
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    uint32_t q = (u >> 16) | 0x40u; /* NaN: keep sign and payload top, set the quiet bit */
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? q : r);
}
static inline float rr_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } x = {(uint32_t)h << 16};
    return x.f;
}

/* How many state vectors (0, 1 or 2) the configuration needs. */
int rr_optim_n_states(const rr_optim_cfg *c);
/* Bytes per element of s2: 2 for Adagrad's bfloat16 velocity, else 4. */
size_t rr_optim_s2_size(const rr_optim_cfg *c);

/* t is the 1-based step count (used by adam's bias correction). */
void rr_optim_dense(const rr_optim_cfg *c, uint64_t t, size_t n, float *w, const float *g,
                    float *s1, void *s2);

/* rows: n_rows distinct row indices; g: (n_rows, row_len) their gradients;
 * w/s1/s2: (N, row_len) full tables (s2 of rr_optim_s2_size elements). */
void rr_optim_sparse(const rr_optim_cfg *c, uint64_t t, size_t row_len, size_t n_rows,
                     const int32_t *rows, const float *g, float *w, float *s1, void *s2);

/* The same two updates on the calling thread only, for callers that share
 * the work out among their own threads (an element range of the dense
 * blob, a share of the rows): the same bits as the calls above. */
void rr_optim_dense_span(const rr_optim_cfg *c, uint64_t t, size_t n, float *w, const float *g,
                         float *s1, void *s2);
void rr_optim_sparse_rows(const rr_optim_cfg *c, uint64_t t, size_t row_len, size_t n_rows,
                          const int32_t *rows, const float *g, float *w, float *s1, void *s2);

#endif
