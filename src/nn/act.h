/* act.h - the final activations the RNN model applies to its output hidden
 * state or its scores: linear, ELU (with alpha), tanh, ReLU.  Forward and
 * backward in float and double, elementwise over n values.
 *
 * Forward may run in place (y == x).  Backward needs only the forward
 * output y (every derivative here is a function of y), so in-place forwards
 * keep enough for it; it overwrites dx, which may alias dy. */
#ifndef RR_ACT_H
#define RR_ACT_H

#include <stddef.h>

#include "rnnrec.h"

/* y = act(x);  elu: y = x > 0 ? x : alpha (e^x - 1)  (alpha = param >= 0) */
void rr_act_forward_f32(rr_act act, double param, float *y, const float *x, size_t n);
void rr_act_forward_f64(rr_act act, double param, double *y, const double *x, size_t n);
/* dx = dy * act'(x) written from y:  linear 1, tanh 1 - y^2, relu [y > 0],
 * elu  y > 0 ? 1 : y + alpha  (PyTorch's convention at the kinks) */
void rr_act_backward_f32(rr_act act, double param, float *dx, const float *dy, const float *y,
                         size_t n);
void rr_act_backward_f64(rr_act act, double param, double *dx, const double *dy,
                         const double *y, size_t n);

#endif /* RR_ACT_H */
