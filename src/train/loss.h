/* loss.h - GRU4Rec's ranking losses over a block of sampled scores.
 *
 * O is (B, C) with C = B + S: column j < B holds the score of row j's target
 * (so row i's own target is on the diagonal, column i) and every other column
 * is a negative for row i: the other rows' targets plus S shared sampled
 * items (GRU4Rec's session-parallel negative sampling).  The loss is summed
 * over rows and divided by cfg->norm (the configured batch size; 0 means B);
 * dO receives d(loss)/dO.  Below o = O, t = O_ii (the row's target score),
 * s = softmax over the non-target columns only, sg = logistic sigmoid.
 *
 *   cross-entropy: -log(softmax(O')_ii + 1e-24), O'_ij = O_ij - logq_col_j
 *   bpr-max:  -log(sum_{j!=i} s_j sg(t - o_j) + 1e-24) + bpreg * sum_{j!=i} s_j o_j^2
 *             with o = ELU(O, cfg->elu) first when cfg->elu > 0
 *   top1-max: sum_{j!=i} s_j (sg(o_j - t) + sg(o_j^2))
 *   bpr:      sum_{j=0..C-1} -log sg(t - o_j)          (j = i adds log 2)
 *   top1:     (1/C) sum_{j} (sg(o_j - t) + sg(o_j^2)) - sg(t^2)/C
 *
 * Fidelity to the official implementations (read, not copied):
 *  - hidasib/GRU4Rec_PyTorch_Official, gru4rec_pytorch.py:
 *    GRU4Rec.xe_loss_with_softmax: max subtraction, softmax, then
 *      -sum log(diag + 1e-24); we keep the 1e-24 inside the log and its exact
 *      gradient factor p/(p + 1e-24).
 *    logQ (same function): O - logq * log(cat(P0[Y[:M]], P0[Y[M:]]**alpha)),
 *      P0 = raw item supports (GRU4Rec.fit), i.e. the in-batch target columns
 *      get log(count) and the sampled columns log(count^alpha) -- not the
 *      normalised sampling probability (normalisation is a per-row constant
 *      and cancels in the softmax anyway).  rr_loss_logq_fill builds that.
 *    GRU4Rec.bpr_max_loss_with_elu: ELU(elu_param) on O, then softmax_neg
 *      (softmax with the diagonal masked out, so the target is NOT inside
 *      the softmax), -log(sum sg(t - O) * s + 1e-24) + bpreg * sum O^2 s.
 *      softmax_neg takes its max over the masked row (which contains the
 *      zeroed diagonal); we take it over the non-target columns: the same
 *      value mathematically, and no underflow when every negative is << 0.
 *    GRU4Rec.fit: L = loss_function(R, Y, n_valid) / self.batch_size -- the
 *      divisor is the configured batch size even when fewer rows are left
 *      at the end of an epoch: hence cfg->norm.
 *    Duplicates of the target among the negatives (another row with the
 *      same next item, or a sampled copy) are NOT masked in any loss.
 *  - hidasib/GRU4Rec (Theano), gru4rec.py at commit 1088282 (the last
 *    one, whose sum-then-divide convention the PyTorch port follows):
 *    top1_max, bpr (T.sum over every element of -log sg(diag - yhat),
 *    diagonal included) and top1 (row mean over all C columns minus
 *    sg(diag^2)/(M + n_sample)); we reproduce those values including the
 *    constant diagonal terms (log 2 for bpr, 0.5/C for top1).  Older Theano
 *    versions averaged bpr over columns instead of summing.  -log sg(x) is
 *    computed as softplus(-x) (stable for large |x|).
 *
 * Both float and double versions are built from one source (loss_impl.inc);
 * the double one serves the finite-difference gradient checks.  The float
 * one uses a vectorisable exp (relative error ~1e-7). */
#ifndef RR_LOSS_H
#define RR_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"

typedef struct rr_loss_cfg {
    rr_loss kind;
    double bpreg;   /* bpr-max score regularisation weight */
    double elu;     /* bpr-max only: ELU(alpha) applied to O inside the loss
                     * when > 0 (GRU4Rec's elu_param); 0: scores used as is */
    size_t norm;    /* divisor of the summed row losses; 0 means B */
} rr_loss_cfg;

/* Returns the loss (sum over rows / norm).  dO (B, C) is overwritten.
 * logq_col (C) may be NULL (cross-entropy only; ignored otherwise).
 * scratch: rr_loss_scratch_floats(B, C) elements of the same type (one
 * slice of C per row, so rows may run on any thread; only bpr-max with
 * elu > 0 touches it).  Rows are processed in parallel with OpenMP when
 * B*C is large. */
size_t rr_loss_scratch_floats(size_t B, size_t C);
double rr_loss_f32(const rr_loss_cfg *cfg, size_t B, size_t C, const float *O,
                   const float *logq_col, float *dO, float *scratch);
double rr_loss_f64(const rr_loss_cfg *cfg, size_t B, size_t C, const double *O,
                   const double *logq_col, double *dO, double *scratch);

/* logq_col (C) for cross-entropy with logQ, as GRU4Rec does it:
 * logq * log(count[items[j]]) for the B target columns j < B and
 * logq * alpha * log(count[items[j]]) for the sampled columns j >= B.
 * items (C): the item index of every column; counts: training supports.
 * A count below 1 is treated as 1 (GRU4Rec never sees unseen items). */
void rr_loss_logq_fill(float *logq_col, size_t B, size_t C, const int32_t *items,
                       const double *counts, double logq, double alpha);

/* The float exp the losses use (vectorisable, ~1 ulp; 0 below -87.3). */
float rr_loss_expf(float x);
/* The float log1p the losses use, for e in [0, 1] only (~1 ulp). */
float rr_loss_log1pf(float e);

#endif
