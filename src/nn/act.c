/* act.c - final activations, one body per element type (see act.h).  The
 * float versions use act.h's vectorisable exp/tanh; double uses libm, as the
 * gradient checks need full precision. */
#include "nn/act.h"

#include <math.h>

#define RR_SIMD _Pragma("omp simd")

#define RR_ACT_IMPL(T, SFX, EXPM1, TANH, SEL)                                           \
    void rr_act_forward_##SFX(rr_act act, double param, T *y, const T *x, size_t n) {   \
        const T alpha = (T)param;                                                       \
        switch (act) {                                                                  \
        case RR_ACT_LINEAR:                                                             \
            if (y != x) RR_SIMD for (size_t i = 0; i < n; i++) y[i] = x[i];             \
            break;                                                                      \
        case RR_ACT_ELU: /* y = x > 0 ? x : alpha (e^x - 1) */                          \
            RR_SIMD for (size_t i = 0; i < n; i++) {                                    \
                T v = x[i];                                                             \
                y[i] = SEL(v > 0, v, alpha * EXPM1(v));                                 \
            }                                                                           \
            break;                                                                      \
        case RR_ACT_TANH:                                                               \
            RR_SIMD for (size_t i = 0; i < n; i++) y[i] = TANH(x[i]);                   \
            break;                                                                      \
        case RR_ACT_RELU:                                                               \
            RR_SIMD for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : (T)0;       \
            break;                                                                      \
        }                                                                               \
    }                                                                                   \
    void rr_act_backward_##SFX(rr_act act, double param, T *dx, const T *dy, const T *y, \
                               size_t n) {                                              \
        const T alpha = (T)param;                                                       \
        switch (act) {                                                                  \
        case RR_ACT_LINEAR:                                                             \
            if (dx != dy) RR_SIMD for (size_t i = 0; i < n; i++) dx[i] = dy[i];         \
            break;                                                                      \
        case RR_ACT_ELU: /* elu' = 1 for y > 0, alpha e^x = y + alpha else */           \
            RR_SIMD for (size_t i = 0; i < n; i++) {                                    \
                T v = y[i];                                                             \
                dx[i] = SEL(v > 0, dy[i], dy[i] * (v + alpha));                         \
            }                                                                           \
            break;                                                                      \
        case RR_ACT_TANH: /* tanh' = 1 - y^2 */                                         \
            RR_SIMD for (size_t i = 0; i < n; i++) dx[i] = dy[i] * ((T)1 - y[i] * y[i]); \
            break;                                                                      \
        case RR_ACT_RELU:                                                               \
            RR_SIMD for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : (T)0;     \
            break;                                                                      \
        }                                                                               \
    }

RR_ACT_IMPL(float, f32, rr_fast_expm1f, rr_fast_tanhf, rr_fast_selectf)
static inline double sel_f64(int c, double a, double b) { return c ? a : b; }
RR_ACT_IMPL(double, f64, expm1, tanh, sel_f64)
