/* step_f32.h - the float instance of the training step (step_impl.inc
 * with T = float over rr_sgemm), for the trainer and for the tests that
 * drive the step directly.  tests/test_rnn_grad.c also builds a double
 * instance of the same source. */
#ifndef RR_STEP_F32_H
#define RR_STEP_F32_H

#include "nn/act.h"
#include "nn/gemm.h"
#include "train/loss.h"

#define T float
#define SFX f32
#define GEMM rr_sgemm
#define LOSS rr_loss_f32
#define ACT_FWD rr_act_forward_f32
#define ACT_BWD rr_act_backward_f32
#define CELL_FWD forward
#define CELL_BWD backward
#include "train/step_impl.inc"
#undef T
#undef SFX
#undef GEMM
#undef LOSS
#undef ACT_FWD
#undef ACT_BWD
#undef CELL_FWD
#undef CELL_BWD

#endif /* RR_STEP_F32_H */
