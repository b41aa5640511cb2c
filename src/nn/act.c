/* act.c - final activations, one body per element type (see act.h). */
#include "nn/act.h"

#include <math.h>

#define RR_ACT_IMPL(T, SFX, EXPM1, TANH)                                                     \
    void rr_act_forward_##SFX(rr_act act, double param, T *y, const T *x, size_t n) {         \
        const T alpha = (T)param;                                                             \
        switch (act) {                                                                        \
        case RR_ACT_LINEAR:                                                                   \
            if (y != x)                                                                       \
                for (size_t i = 0; i < n; i++) y[i] = x[i];                                   \
            break;                                                                            \
        case RR_ACT_ELU:                                                                      \
            for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : alpha * EXPM1(x[i]);      \
            break;                                                                            \
        case RR_ACT_TANH:                                                                     \
            for (size_t i = 0; i < n; i++) y[i] = TANH(x[i]);                                 \
            break;                                                                            \
        case RR_ACT_RELU:                                                                     \
            for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : (T)0;                     \
            break;                                                                            \
        }                                                                                     \
    }                                                                                         \
    void rr_act_backward_##SFX(rr_act act, double param, T *dx, const T *dy, const T *y,      \
                               size_t n) {                                                    \
        const T alpha = (T)param;                                                             \
        switch (act) {                                                                        \
        case RR_ACT_LINEAR:                                                                   \
            if (dx != dy)                                                                     \
                for (size_t i = 0; i < n; i++) dx[i] = dy[i];                                 \
            break;                                                                            \
        case RR_ACT_ELU:                                                                      \
            for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : dy[i] * (y[i] + alpha); \
            break;                                                                            \
        case RR_ACT_TANH:                                                                     \
            for (size_t i = 0; i < n; i++) dx[i] = dy[i] * ((T)1 - y[i] * y[i]);              \
            break;                                                                            \
        case RR_ACT_RELU:                                                                     \
            for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : (T)0;                   \
            break;                                                                            \
        }                                                                                     \
    }

RR_ACT_IMPL(float, f32, expm1f, tanhf)
RR_ACT_IMPL(double, f64, expm1, tanh)
