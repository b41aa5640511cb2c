/* loss.h - GRU4Rec's ranking losses over a block of sampled scores.
 *
 * O is (B, C) with C = B + S: column j < B holds the score of row j's target
 * (so row i's own target is on the diagonal, column i) and every other column
 * is a negative for row i: the other rows' targets plus S shared sampled
 * items (GRU4Rec's session-parallel negative sampling).  The loss is summed
 * over rows and divided by B; dO receives d(loss)/dO.
 *
 *   cross-entropy: -log softmax(O' )_ii with O'_ij = O_ij - logq * log q_j
 *                  (logQ correction; pass logq_col = logq * log q_j or NULL)
 *   bpr-max:  -log sum_{j!=i} s_j sigmoid(O_ii - O_ij) + bpreg * sum_{j!=i} s_j O_ij^2,
 *             s = softmax over the non-target columns only (Hidasi &
 *             Karatzoglou, "Recurrent neural networks with top-k gains", 2018)
 *   top1-max: sum_{j!=i} s_j (sigmoid(O_ij - O_ii) + sigmoid(O_ij^2))
 *   bpr:      -mean_{j!=i} log sigmoid(O_ii - O_ij)
 *   top1:     mean_{j!=i} (sigmoid(O_ij - O_ii) + sigmoid(O_ij^2))
 *
 * Both float and double versions are built from one source; the double one
 * serves the finite-difference gradient checks. */
#ifndef RR_LOSS_H
#define RR_LOSS_H

#include <stddef.h>

#include "rnnrec.h"

typedef struct rr_loss_cfg {
    rr_loss kind;
    double bpreg;   /* bpr-max regularisation weight */
} rr_loss_cfg;

/* Returns the loss (sum over rows / B).  dO (B, C) is overwritten.
 * logq_col (C) may be NULL (cross-entropy only; ignored otherwise).
 * scratch needs at least C floats per row of the calling thread; pass
 * rr_loss_scratch_floats(B, C) floats. */
size_t rr_loss_scratch_floats(size_t B, size_t C);
double rr_loss_f32(const rr_loss_cfg *cfg, size_t B, size_t C, const float *O,
                   const float *logq_col, float *dO, float *scratch);
double rr_loss_f64(const rr_loss_cfg *cfg, size_t B, size_t C, const double *O,
                   const double *logq_col, double *dO, double *scratch);

#endif
