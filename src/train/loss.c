/* loss.c - GRU4Rec's losses (see loss.h for the formulas and where each
 * detail comes from) in float and double, from loss_impl.inc, and the logQ
 * column builder. */
/* The row loops must vectorise: GCC at -O2 uses its "very cheap" cost
 * model, and with trapping math it will not if-convert the selects in the
 * exp and the sigmoid.  Neither option changes a single result here (no
 * reassociation, no FP exceptions are ever inspected). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "vect-cost-model=dynamic")
#endif

#include <float.h>
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

/* log1p(e) for e in [0, 1] (all the losses need: e = exp(-|x|)), without a
 * libm call: log1p(e) = 2 atanh(s), s = e / (2 + e) in [0, 1/3], by its odd
 * series to s^19 (truncation < 4e-10 relative).  Relative error ~1 ulp, also
 * for tiny e, where log1p(e) ~ e. */
static inline float rr_log1pf_unit(float e) {
    float s = e / (2.0f + e), s2 = s * s;
    float p = 1.0f / 19.0f;
    p = p * s2 + 1.0f / 17.0f;
    p = p * s2 + 1.0f / 15.0f;
    p = p * s2 + 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p;
}

float rr_loss_log1pf(float e) { return rr_log1pf_unit(e); }

/* The row kernels are inlined into one per-row function; for float that
 * function is also built for AVX2 and picked at load time (GCC target
 * clones).  Results do not depend on the clone: the lanes of every sum are
 * fixed by the source (LANES) and -std=c11 forbids contracting a*b+c into
 * an fma, so the wider vectors compute exactly the same operations. */
#if defined(__GNUC__)
#define RR_INL inline __attribute__((always_inline))
#else
#define RR_INL inline
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(RR_NO_CLONES)
#define ROW_ATTR __attribute__((target_clones("avx2", "default")))
#else
#define ROW_ATTR
#endif

#define T float
#define SFX f32
#define EXP rr_expf_fast
#define LOG1P rr_log1pf_unit
#define TMAX FLT_MAX
#include "train/loss_impl.inc"
#undef T
#undef SFX
#undef EXP
#undef LOG1P
#undef TMAX

#undef ROW_ATTR
#define ROW_ATTR

#define T double
#define SFX f64
#define EXP exp
#define LOG1P log1p
#define TMAX DBL_MAX
#include "train/loss_impl.inc"
#undef T
#undef SFX
#undef EXP
#undef LOG1P
#undef TMAX

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
