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
#include <stdint.h>
#include <string.h>
#include <math.h>

#include "rnnrec.h"

/* ---- float exp, expm1, tanh and the logistic sigmoid as branch-free
 * inline code that vectorises inside `#pragma omp simd` loops (libm's
 * scalar calls do not).  Errors against libm, measured in test_cells_grad:
 * exp and sigmoid within a few float ulps, tanh and expm1 within 2e-7
 * absolute and a few ulps relative.  Arguments are clamped to [-87, 88]
 * (results stay normal floats: exp(-inf) gives 1.6e-38, exp(inf) 1.7e38);
 * NaN propagates. */
#if defined(__GNUC__)
#define RR_VINLINE static inline __attribute__((always_inline))
#else
#define RR_VINLINE static inline
#endif

/* c ? a : b, as a bit blend: GCC (with its default -ftrapping-math) will
 * not if-convert a float select whose arms hold arithmetic, and the loop
 * then stays scalar. */
RR_VINLINE float rr_fast_selectf(int c, float a, float b) {
    int32_t ia, ib, m = -(int32_t)(c != 0);
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    int32_t ir = (ia & m) | (ib & ~m);
    float r;
    memcpy(&r, &ir, sizeof r);
    return r;
}

/* e^x = 2^n e^r with n = round(x / ln 2), r = x - n ln 2 (ln 2 split into
 * 355/512, exact for |n| < 2^15, plus the remainder), |r| <= 0.347, e^r by
 * its Taylor polynomial to degree 7 (truncation < 6e-9 relative). */
RR_VINLINE float rr_fast_expf(float x) {
    float xc = rr_fast_selectf(x > -87.0f, x, -87.0f); /* NaN goes to -87 here ... */
    xc = rr_fast_selectf(xc < 88.0f, xc, 88.0f);
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* 1.5 * 2^23 rounds */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440054690583e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * 8388608; /* 2^n as float bits: (n + 127) << 23 */
    float s;
    memcpy(&s, &bits, sizeof s);
    return rr_fast_selectf(x == x, p * s, x); /* ... and comes back out here */
}

/* e^x - 1 without cancellation near 0: Taylor to degree 8 for |x| < 0.25
 * (truncation < 1e-10 relative), else exp - 1 (exact subtraction then). */
RR_VINLINE float rr_fast_expm1f(float x) {
    float big = rr_fast_expf(x) - 1.0f;
    float p = 1.0f / 40320.0f;
    p = p * x + 1.0f / 5040.0f;
    p = p * x + 1.0f / 720.0f;
    p = p * x + 1.0f / 120.0f;
    p = p * x + 1.0f / 24.0f;
    p = p * x + 1.0f / 6.0f;
    p = p * x + 0.5f;
    float small = x + x * x * p;
    return rr_fast_selectf(fabsf(x) < 0.25f, small, big);
}

/* tanh x = sign(x) (1 - e) / (1 + e), e = e^(-2|x|); for |x| < 0.25 its odd
 * Taylor series to x^13 (truncation < 1e-10 relative), where 1 - e would
 * lose relative precision. */
RR_VINLINE float rr_fast_tanhf(float x) {
    float a = fabsf(x);
    float e = rr_fast_expf(-2.0f * a);
    float big = copysignf((1.0f - e) / (1.0f + e), x);
    float x2 = x * x;
    float p = 21844.0f / 6081075.0f;
    p = p * x2 - 1382.0f / 155925.0f;
    p = p * x2 + 62.0f / 2835.0f;
    p = p * x2 - 17.0f / 315.0f;
    p = p * x2 + 2.0f / 15.0f;
    p = p * x2 - 1.0f / 3.0f;
    float small = x + x * x2 * p;
    return rr_fast_selectf(a < 0.25f, small, big);
}

/* s(x) = 1 / (1 + e^-x) */
RR_VINLINE float rr_fast_sigmf(float x) { return 1.0f / (1.0f + rr_fast_expf(-x)); }

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
