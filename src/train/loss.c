/* loss.c - GRU4Rec's losses (see loss.h for the formulas and where each
 * detail comes from) in float and double, from loss_impl.inc, and the logQ
 * column builder. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "train/loss.h"
#include "util/util.h"

/* exp for float without a libm call, so loops over it vectorise.
 * x = k ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), exp(r) by its
 * degree-7 Taylor polynomial (truncation < 6e-9 relative), 2^k put into
 * the exponent bits.  Relative error about 1 ulp (checked against exp() in
 * test_loss_grad).  Inputs below -87.3 give 0 (where expf() would go
 * subnormal), inputs above 88 give exp(88) (2^128 would overflow the
 * exponent bits). */
static inline float rr_expf_fast(float x) {
    const float hi = 88.0f, lo = -87.33654f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    /* round-to-nearest of x / ln2 by the 1.5 * 2^23 trick (no SSE4.1 needed) */
    float kf = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = xc - kf * 0.693359375f;     /* ln2 high part, exact product */
    r = r - kf * -2.12194440e-4f;         /* ln2 low part */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t k = (int32_t)kf;
    int32_t bits = (k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    return x < lo ? 0.0f : y;
}

float rr_loss_expf(float x) { return rr_expf_fast(x); }

#define T float
#define SFX f32
#define EXP rr_expf_fast
#define LOG1P log1pf
#include "train/loss_impl.inc"
#undef T
#undef SFX
#undef EXP
#undef LOG1P

#define T double
#define SFX f64
#define EXP exp
#define LOG1P log1p
#include "train/loss_impl.inc"
#undef T
#undef SFX
#undef EXP
#undef LOG1P

size_t rr_loss_scratch_floats(size_t B, size_t C) {
    size_t n = 0;
    bool ok = rr_mul_size(B, C, &n);
    RR_ASSERT(ok);
    return n;
}

void rr_loss_logq_fill(float *logq_col, size_t B, size_t C, const int32_t *items,
                       const double *counts, double logq, double alpha) {
    for (size_t j = 0; j < C; j++) {
        double c = counts[items[j]];
        double l = log(c < 1 ? 1.0 : c);
        logq_col[j] = (float)(logq * (j < B ? l : alpha * l));
    }
}
