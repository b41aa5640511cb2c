/* screen.c - the quantised screen of a linear head (screen.h): table and
 * session quantisation, the AVX-512 VNNI tile kernel with a plain twin that
 * gives the same bits, and the scalar bound.
 *
 * The tile kernel has the layout of head.c's fp32 kernels: a tile's 16
 * session vectors transposed (hq (nw, 16), one session per int32 lane, two
 * int16 components per lane), the table walked in its natural (N, nw)
 * layout, one item's int16 pair broadcast per step into 12 accumulators
 * (12 items at a time).  One vpdpwssd does 32 multiply-adds, twice an fp32
 * FMA's 16 at the same issue rate. */
#include "nn/screen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define T RR_SCREEN_TILE
#define NORM_CAP 46340.0   /* 46340^2 < 2^31: |p . q| fits an int32 */
#define NORM_AIM 46000.0   /* scale target, room for the rounding of components */
#define MAG_MAX 0x1p60     /* largest norm / bias screened */
#define MARGIN (1.0 + 0x1p-16)
#define SIGMA 0x1p-110
#define U 0x1p-24

static int force_off;

void rr_screen_force_off(int on) { force_off = on; }

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_VNNI_PATH 1
#endif

static int cpu_vnni(void) {
#ifdef HAVE_VNNI_PATH
    static int cached = -1;
    if (cached < 0)
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vnni");
    return cached;
#else
    return 0;
#endif
}

bool rr_screen_supported(void) { return !force_off && cpu_vnni(); }

/* AVX-512VL as well: the 8-lane (ymm) form of the tile kernel. */
static int cpu_vl(void) {
#ifdef HAVE_VNNI_PATH
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512vl");
    return cached;
#else
    return 0;
#endif
}

/* The smallest float >= x (x finite, >= 0). */
static float float_up(double x) {
    float f = (float)x;
    if ((double)f < x) f = nextafterf(f, INFINITY);
    return f;
}

/* Quantises v (D floats) to q (D int16) with scale *scale: ||q|| <= NORM_CAP,
 * |q_k| <= 32767.  Returns false when v is not screenable (non-finite or
 * ||v|| > MAG_MAX).  *norm = ||v||, *qnorm = ||scale q||, *resid =
 * ||v - scale q||, all in double (their relative errors, ~D 2^-53, are far
 * inside MARGIN). */
static bool quantise(const float *v, size_t D, int16_t *q, float *scale, double *norm, double *qnorm,
                     double *resid) {
    double ss = 0.0, mx = 0.0;
    for (size_t k = 0; k < D; k++) {
        double x = (double)v[k];
        if (!isfinite(x)) return false;
        ss += x * x;
        if (fabs(x) > mx) mx = fabs(x);
    }
    double n = sqrt(ss);
    if (!(n <= MAG_MAX)) return false;
    *norm = n;
    double s = fmax(n / NORM_AIM, mx / 32767.0);
    if (s < 0x1p-126) s = 0x1p-126; /* a normal scale; tiny vectors end up mostly in the rest */
    for (;;) {
        float sf = float_up(s);
        int64_t q2 = 0;
        bool ok = true;
        for (size_t k = 0; k < D && ok; k++) {
            long r = lrint((double)v[k] / (double)sf);
            if (r > 32767 || r < -32767) ok = false;
            else {
                q[k] = (int16_t)r;
                q2 += (int64_t)r * r;
            }
        }
        if (ok && (double)q2 <= NORM_CAP * NORM_CAP) {
            double rs = 0.0;
            for (size_t k = 0; k < D; k++) {
                double e = (double)v[k] - (double)sf * (double)q[k]; /* the product is exact */
                rs += e * e;
            }
            *scale = sf;
            *qnorm = (double)sf * sqrt((double)q2);
            *resid = sqrt(rs);
            return true;
        }
        s *= 1.001;
    }
}

/* The 8-bit twin of quantise: |q_k| <= 127 by the largest component (the
 * int32 sums are exact for D <= 1040 whatever the norms). */
static bool quantise8(const float *v, size_t D, int8_t *q, float *scale, double *norm, double *qnorm,
                      double *resid) {
    double ss = 0.0, mx = 0.0;
    for (size_t k = 0; k < D; k++) {
        double x = (double)v[k];
        if (!isfinite(x)) return false;
        ss += x * x;
        if (fabs(x) > mx) mx = fabs(x);
    }
    double n = sqrt(ss);
    if (!(n <= MAG_MAX)) return false;
    *norm = n;
    double s = mx / 127.0;
    if (s < 0x1p-126) s = 0x1p-126;
    for (;;) {
        float sf = float_up(s);
        int64_t q2 = 0;
        bool ok = true;
        for (size_t k = 0; k < D && ok; k++) {
            long r = lrint((double)v[k] / (double)sf);
            if (r > 127 || r < -127) ok = false;
            else {
                q[k] = (int8_t)r;
                q2 += (int64_t)r * r;
            }
        }
        if (ok) {
            double rs = 0.0;
            for (size_t k = 0; k < D; k++) {
                double e = (double)v[k] - (double)sf * (double)q[k];
                rs += e * e;
            }
            *scale = sf;
            *qnorm = (double)sf * sqrt((double)q2);
            *resid = sqrt(rs);
            return true;
        }
        s *= 1.001;
    }
}

/* Word k4 of an 8-bit vector: components 4 k4 .. 4 k4 + 3 from the low
 * byte up, offset by off (128 for sessions, 0 for items); pad components
 * are 0 (items) or 128 (sessions: times an item's pad 0). */
static inline int32_t quad(const int8_t *q, size_t D, size_t k4, int off) {
    uint32_t w = 0;
    for (size_t b = 0; b < 4; b++) {
        size_t k = 4 * k4 + b;
        int v = (k < D ? q[k] : 0) + off;
        w |= (uint32_t)(uint8_t)v << (8 * b);
    }
    return (int32_t)w;
}

static inline int32_t pair(const int16_t *q, size_t D, size_t k2) {
    uint32_t lo = (uint16_t)q[2 * k2], hi = 2 * k2 + 1 < D ? (uint16_t)q[2 * k2 + 1] : 0u;
    return (int32_t)(lo | hi << 16);
}

void rr_screen_free(rr_screen *s) {
    if (!s) return;
    rr_free_aligned(s->wq);
    rr_free_aligned(s->wt);
    free(s->cq);
    free(s->ws);
    free(s->rho);
    free(s->rn);
    free(s->beta);
    free(s);
}

rr_status rr_screen_new(rr_screen **out, const float *W, const float *b, size_t N, size_t D, int bits,
                        rr_error *err) {
    *out = NULL;
    if (!rr_screen_supported() || N == 0 || D == 0) return RR_OK;
    if (bits != 8 || D > 1040) bits = 16;
    rr_screen *s = calloc(1, sizeof *s);
    size_t nw = bits == 8 ? (D + 3) / 4 : (D + 1) / 2, cells, bytes;
    if (!s || !rr_mul_size(N, nw, &cells) || !rr_mul_size(cells, sizeof(int32_t), &bytes)) {
        free(s);
        return rr_err(err, RR_ERR_NOMEM, "screen: %zu items x %zu is too large", N, D);
    }
    s->N = N;
    s->D = D;
    s->nw = nw;
    s->bits = bits;
    s->b = b;
    s->gamma = (double)D * U / (1.0 - (double)D * U);
    s->wq = rr_alloc_aligned(bytes);
    s->ws = rr_malloc_n(N, sizeof *s->ws);
    s->rho = rr_malloc_n(N, sizeof *s->rho);
    s->rn = rr_malloc_n(N, sizeof *s->rn);
    s->beta = rr_malloc_n(N, sizeof *s->beta);
    if (bits == 8) s->cq = rr_malloc_n(N, sizeof *s->cq);
    int16_t *q = rr_malloc_n(D, sizeof *q);
    int8_t *q8 = rr_malloc_n(D, sizeof *q8);
    if (!s->wq || !s->ws || !s->rho || !s->rn || !s->beta || (bits == 8 && !s->cq) || !q || !q8) {
        free(q);
        free(q8);
        rr_screen_free(s);
        return rr_err(err, RR_ERR_NOMEM, "screen: out of memory for %zu items x %zu", N, D);
    }
    bool ok = true;
    for (size_t j = 0; j < N && ok; j++) {
        double n, qn, rs;
        ok = isfinite(b[j]) && fabs((double)b[j]) <= MAG_MAX;
        if (ok && bits == 8) {
            ok = quantise8(W + j * D, D, q8, &s->ws[j], &n, &qn, &rs);
            if (ok) {
                int32_t sum = 0;
                for (size_t k = 0; k < D; k++) sum += q8[k];
                s->cq[j] = 128 * sum;
                for (size_t k4 = 0; k4 < nw; k4++) s->wq[j * nw + k4] = quad(q8, D, k4, 0);
            }
        } else if (ok) {
            ok = quantise(W + j * D, D, q, &s->ws[j], &n, &qn, &rs);
            if (ok)
                for (size_t k2 = 0; k2 < nw; k2++) s->wq[j * nw + k2] = pair(q, D, k2);
        }
        if (!ok) break;
        s->rho[j] = float_up(MARGIN * rs);
        s->rn[j] = float_up(MARGIN * n);
        s->beta[j] = float_up(MARGIN * (11.0 * U * fabs((double)b[j]) + SIGMA));
    }
    free(q);
    free(q8);
    if (!ok) {
        rr_screen_free(s); /* not screenable: the caller keeps to the exact path */
        return RR_OK;
    }
    *out = s;
    return RR_OK;
}

rr_status rr_screen_add_blocks(rr_screen *s, rr_error *err) {
    if (s->wt) return RR_OK;
    const size_t nb = (s->N + T - 1) / T, nw = s->nw;
    size_t cells, bytes;
    if (!rr_mul_size(nb, nw * T, &cells) || !rr_mul_size(cells, sizeof(int32_t), &bytes))
        return rr_err(err, RR_ERR_NOMEM, "screen: %zu items x %zu is too large", s->N, s->D);
    s->wt = rr_alloc_aligned(bytes); /* zeroed: the pad items */
    if (!s->wt) return rr_err(err, RR_ERR_NOMEM, "screen: out of memory for %zu items x %zu", s->N, s->D);
    for (size_t j = 0; j < s->N; j++)
        for (size_t k2 = 0; k2 < nw; k2++) s->wt[((j / T) * nw + k2) * T + j % T] = s->wq[j * nw + k2];
    return RR_OK;
}

void rr_screen_pack(const rr_screen *s, int32_t *hq, rr_screen_lanes *ln, const float *const *vecs, size_t n) {
    const size_t D = s->D, nw = s->nw;
    int16_t q[2 * 1024];
    int16_t *qb = D <= 2 * 1024 ? q : rr_malloc_n(D, sizeof *qb);
    int8_t *q8 = (int8_t *)qb; /* bits 8: D <= 1040 bytes */
    memset(hq, 0, nw * T * sizeof *hq);
    for (size_t i = 0; i < T; i++) {
        ln->sh[i] = 0.0f;
        ln->a[i] = 0.0f;
        ln->c[i] = 0.0f;
    }
    for (size_t i = 0; i < n; i++) {
        double nn, qn, rs;
        float sc;
        bool ok = qb && (s->bits == 8 ? quantise8(vecs[i], D, q8, &sc, &nn, &qn, &rs)
                                      : quantise(vecs[i], D, qb, &sc, &nn, &qn, &rs));
        if (!ok) {
            ln->a[i] = INFINITY; /* never decided by the screen */
            continue;
        }
        for (size_t k = 0; k < nw; k++) hq[k * T + i] = s->bits == 8 ? quad(q8, D, k, 128) : pair(qb, D, k);
        ln->sh[i] = sc;
        ln->a[i] = float_up(MARGIN * (1.0 + 7.0 * U) * qn);
        ln->c[i] = float_up(MARGIN * (rs + s->gamma * nn + 7.0 * U * qn));
    }
    if (qb != q) free(qb);
}

float rr_screen_delta(const rr_screen *s, const rr_screen_lanes *ln, size_t i, size_t j) {
    return fmaf(ln->a[i], s->rho[j], fmaf(ln->c[i], s->rn[j], s->beta[j]));
}

/* ---------------------------------------------------------------- kernels */

/* The exact integer P of session word x and item word y (one int32 of each):
 * the sum of the component products, as the instruction computes it. */
static inline int64_t word_dot(int32_t x, int32_t y, int bits) {
    if (bits == 8) {
        int64_t acc = 0;
        for (int b = 0; b < 4; b++)
            acc += (int64_t)(uint8_t)((uint32_t)x >> (8 * b)) * (int8_t)(uint8_t)((uint32_t)y >> (8 * b));
        return acc;
    }
    return (int64_t)(int16_t)(x & 0xffff) * (int16_t)(y & 0xffff) +
           (int64_t)(int16_t)((uint32_t)x >> 16) * (int16_t)((uint32_t)y >> 16);
}

/* P from the instruction's sum: minus the 128 offset of 8-bit sessions. */
static inline int32_t word_fix(const rr_screen *s, size_t j, int64_t acc) {
    return (int32_t)(s->bits == 8 ? acc - s->cq[j] : acc);
}

/* Y = fma(float(P), sh sw_j, b_j): one rounding fewer than screen.h counts. */
static void tile_plain(const rr_screen *s, const int32_t *hq, const rr_screen_lanes *ln, size_t j0, size_t j1,
                       float *out) {
    const size_t nw = s->nw;
    for (size_t j = j0; j < j1; j++) {
        const int32_t *w = s->wq + j * nw;
        for (size_t i = 0; i < T; i++) {
            int64_t acc = 0;
            for (size_t k = 0; k < nw; k++) acc += word_dot(hq[k * T + i], w[k], s->bits);
            out[(j - j0) * T + i] = fmaf((float)word_fix(s, j, acc), ln->sh[i] * s->ws[j], s->b[j]);
        }
    }
}

#ifdef HAVE_VNNI_PATH
#define WP(q) *w##q = W + (j + q < j1 ? j + q : j1 - 1) * nw
/* vpdpwssd / vpdpbusd with the item's word as an embedded {1to16} broadcast
 * operand: one instruction (gcc 12 emits a separate vpbroadcastd for the
 * intrinsic form). */
#define DP(q)                                                                        \
    do {                                                                             \
        if (i8) __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(a##q) : "v"(hv), "m"(w##q[k])); \
        else __asm__("vpdpwssd %2%{1to16%}, %1, %0" : "+v"(a##q) : "v"(hv), "m"(w##q[k]));    \
    } while (0)
#define ST(q)                                                                                        \
    do {                                                                                             \
        if (j + q < j1) {                                                                            \
            __m512i pq = i8 ? _mm512_sub_epi32(a##q, _mm512_set1_epi32(cq[j + q])) : a##q;           \
            _mm512_store_ps(o + q * T, _mm512_fmadd_ps(_mm512_cvtepi32_ps(pq),                       \
                                                       _mm512_mul_ps(shv, _mm512_set1_ps(ws[j + q])), \
                                                       _mm512_set1_ps(b[j + q])));                   \
        }                                                                                            \
    } while (0)

/* 16 sessions x 12 items per step.  As in head.c, each k step prefetches
 * one cache line of the next group's rows (nw lines of 64 bytes >= the 48
 * nw bytes of 12 rows); items past j1 re-read row j1-1 and are not stored.
 * i8 is a constant in each instance below. */
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
tile_vnni_body(const rr_screen *s, const int32_t *hq, const rr_screen_lanes *ln, size_t j0, size_t j1, float *out,
               const int i8) {
    const size_t nw = s->nw;
    const int32_t *W = s->wq, *cq = s->cq;
    const float *ws = s->ws, *b = s->b;
    const __m512 shv = _mm512_loadu_ps(ln->sh);
    for (size_t j = j0; j < j1; j += 12) {
        const int32_t WP(0), WP(1), WP(2), WP(3), WP(4), WP(5), WP(6), WP(7), WP(8), WP(9), WP(10), WP(11);
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
                a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        size_t nx = j + 12 < s->N ? j + 12 : s->N - 1;
        const uintptr_t pf = (uintptr_t)(W + nx * nw);
        const int32_t *p = hq;
        for (size_t k = 0; k < nw; k++, p += T) {
            _mm_prefetch((const char *)(pf + 64 * k), _MM_HINT_T0);
            __m512i hv = _mm512_load_si512((const void *)p);
            DP(0);
            DP(1);
            DP(2);
            DP(3);
            DP(4);
            DP(5);
            DP(6);
            DP(7);
            DP(8);
            DP(9);
            DP(10);
            DP(11);
        }
        float *o = out + (j - j0) * T;
        ST(0);
        ST(1);
        ST(2);
        ST(3);
        ST(4);
        ST(5);
        ST(6);
        ST(7);
        ST(8);
        ST(9);
        ST(10);
        ST(11);
    }
}

/* Tiles whose lanes 8..15 are all pad or unscreened (sh = 0, hq lanes 0):
 * the 8 live lanes in ymm registers, which Zen 4 issues twice as fast as
 * zmm, so half the cycles.  The other lanes are what the full kernel gives
 * them, fma(float(P), +0, b_j) with P = 0 - cq_j (or 0): the same bits. */
#define DP8(q)                                                                          \
    do {                                                                                \
        if (i8) __asm__("vpdpbusd %2%{1to8%}, %1, %0" : "+v"(a##q) : "v"(hv), "m"(w##q[k])); \
        else __asm__("vpdpwssd %2%{1to8%}, %1, %0" : "+v"(a##q) : "v"(hv), "m"(w##q[k]));    \
    } while (0)
#define ST8(q)                                                                                       \
    do {                                                                                             \
        if (j + q < j1) {                                                                            \
            __m256i pq = i8 ? _mm256_sub_epi32(a##q, _mm256_set1_epi32(cq[j + q])) : a##q;           \
            _mm256_store_ps(o + q * T, _mm256_fmadd_ps(_mm256_cvtepi32_ps(pq),                       \
                                                       _mm256_mul_ps(shv, _mm256_set1_ps(ws[j + q])), \
                                                       _mm256_set1_ps(b[j + q])));                   \
            float up = fmaf((float)(i8 ? -cq[j + q] : 0), 0.0f, b[j + q]);                           \
            _mm256_store_ps(o + q * T + 8, _mm256_set1_ps(up));                                      \
        }                                                                                            \
    } while (0)

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma"), always_inline)) static inline void
tile_vnni_narrow_body(const rr_screen *s, const int32_t *hq, const rr_screen_lanes *ln, size_t j0, size_t j1,
                      float *out, const int i8) {
    const size_t nw = s->nw;
    const int32_t *W = s->wq, *cq = s->cq;
    const float *ws = s->ws, *b = s->b;
    const __m256 shv = _mm256_loadu_ps(ln->sh);
    for (size_t j = j0; j < j1; j += 12) {
        const int32_t WP(0), WP(1), WP(2), WP(3), WP(4), WP(5), WP(6), WP(7), WP(8), WP(9), WP(10), WP(11);
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
                a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        size_t nx = j + 12 < s->N ? j + 12 : s->N - 1;
        const uintptr_t pf = (uintptr_t)(W + nx * nw);
        const int32_t *p = hq;
        for (size_t k = 0; k < nw; k++, p += T) {
            _mm_prefetch((const char *)(pf + 64 * k), _MM_HINT_T0);
            __m256i hv = _mm256_load_si256((const void *)p);
            DP8(0);
            DP8(1);
            DP8(2);
            DP8(3);
            DP8(4);
            DP8(5);
            DP8(6);
            DP8(7);
            DP8(8);
            DP8(9);
            DP8(10);
            DP8(11);
        }
        float *o = out + (j - j0) * T;
        ST8(0);
        ST8(1);
        ST8(2);
        ST8(3);
        ST8(4);
        ST8(5);
        ST8(6);
        ST8(7);
        ST8(8);
        ST8(9);
        ST8(10);
        ST8(11);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma"))) static void
tile_narrow16(const rr_screen *s, const int32_t *hq, const rr_screen_lanes *ln, size_t j0, size_t j1, float *out) {
    tile_vnni_narrow_body(s, hq, ln, j0, j1, out, 0);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma"))) static void
tile_narrow8(const rr_screen *s, const int32_t *hq, const rr_screen_lanes *ln, size_t j0, size_t j1, float *out) {
    tile_vnni_narrow_body(s, hq, ln, j0, j1, out, 1);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void tile_vnni16(const rr_screen *s, const int32_t *hq,
                                                                            const rr_screen_lanes *ln, size_t j0,
                                                                            size_t j1, float *out) {
    tile_vnni_body(s, hq, ln, j0, j1, out, 0);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void tile_vnni8(const rr_screen *s, const int32_t *hq,
                                                                           const rr_screen_lanes *ln, size_t j0,
                                                                           size_t j1, float *out) {
    tile_vnni_body(s, hq, ln, j0, j1, out, 1);
}
#endif

/* One session against 16-item blocks: lane = item.  Y = fma(float(P),
 * sh sw_j, b_j) as in the tile kernels. */
static void items_plain(const rr_screen *s, const int32_t *hq, const rr_screen_lanes *ln, size_t b0, size_t b1,
                        float *out) {
    const size_t nw = s->nw;
    for (size_t bl = b0; bl < b1; bl++)
        for (size_t i = 0; i < T; i++) {
            size_t j = bl * T + i;
            float *o = out + (bl - b0) * T + i;
            if (j >= s->N) {
                *o = 0.0f;
                continue;
            }
            int64_t acc = 0;
            for (size_t k = 0; k < nw; k++) acc += word_dot(hq[k * T], s->wt[(bl * nw + k) * T + i], s->bits);
            *o = fmaf((float)word_fix(s, j, acc), ln->sh[0] * s->ws[j], s->b[j]);
        }
}

#ifdef HAVE_VNNI_PATH
#define BD(q)                                                                                       \
    do {                                                                                            \
        __m512i wv = _mm512_load_si512((const void *)(w + (q) * nw * T + k * T));                   \
        a##q = i8 ? _mm512_dpbusd_epi32(a##q, hv, wv) : _mm512_dpwssd_epi32(a##q, hv, wv);          \
    } while (0)
#define BS(q)                                                                                      \
    do {                                                                                           \
        if (bl + q < b1) {                                                                         \
            size_t j = (bl + q) * T;                                                               \
            __m512 sw, bb;                                                                         \
            __m512i p = a##q;                                                                      \
            if (j + T <= s->N) {                                                                   \
                sw = _mm512_loadu_ps(s->ws + j);                                                   \
                bb = _mm512_loadu_ps(s->b + j);                                                    \
                if (i8) p = _mm512_sub_epi32(p, _mm512_loadu_si512((const void *)(s->cq + j)));    \
            } else {                                                                               \
                __mmask16 m = (__mmask16)((1u << (s->N - j)) - 1u);                                \
                sw = _mm512_maskz_loadu_ps(m, s->ws + j);                                          \
                bb = _mm512_maskz_loadu_ps(m, s->b + j);                                           \
                if (i8) p = _mm512_sub_epi32(p, _mm512_maskz_loadu_epi32(m, s->cq + j));           \
            }                                                                                      \
            _mm512_storeu_ps(out + (bl + q - b0) * T,                                              \
                             _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(shv, sw), bb));  \
        }                                                                                          \
    } while (0)

/* 6 blocks (96 items) per step: six independent accumulator chains, the
 * session's word broadcast once per k step. */
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
items_vnni_body(const rr_screen *s, const int32_t *hq, const rr_screen_lanes *ln, size_t b0, size_t b1, float *out,
                const int i8) {
    const size_t nw = s->nw, nb = (s->N + T - 1) / T;
    const __m512 shv = _mm512_set1_ps(ln->sh[0]);
    for (size_t bl = b0; bl < b1; bl += 6) {
        /* blocks past b1 re-read block nb-1 and are not stored */
        const int32_t *w = s->wt + bl * nw * T;
        size_t last = nb - 1 - bl; /* blocks from bl that exist */
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
        if (last >= 5) {
            for (size_t k = 0; k < nw; k++) {
                __m512i hv = _mm512_set1_epi32(hq[k * T]);
                BD(0);
                BD(1);
                BD(2);
                BD(3);
                BD(4);
                BD(5);
            }
        } else {
            for (size_t k = 0; k < nw; k++) {
                __m512i hv = _mm512_set1_epi32(hq[k * T]);
                BD(0);
                if (last >= 1) BD(1);
                if (last >= 2) BD(2);
                if (last >= 3) BD(3);
                if (last >= 4) BD(4);
            }
        }
        BS(0);
        BS(1);
        BS(2);
        BS(3);
        BS(4);
        BS(5);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void items_vnni16(const rr_screen *s, const int32_t *hq,
                                                                             const rr_screen_lanes *ln, size_t b0,
                                                                             size_t b1, float *out) {
    items_vnni_body(s, hq, ln, b0, b1, out, 0);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void items_vnni8(const rr_screen *s, const int32_t *hq,
                                                                            const rr_screen_lanes *ln, size_t b0,
                                                                            size_t b1, float *out) {
    items_vnni_body(s, hq, ln, b0, b1, out, 1);
}
#endif

void rr_screen_items(const rr_screen *s, const int32_t *hq, const rr_screen_lanes *ln, size_t b0, size_t b1,
                     float *out) {
    if (b1 <= b0) return;
#ifdef HAVE_VNNI_PATH
    if (cpu_vnni() && !force_off) {
        if (s->bits == 8) items_vnni8(s, hq, ln, b0, b1, out);
        else items_vnni16(s, hq, ln, b0, b1, out);
        return;
    }
#endif
    items_plain(s, hq, ln, b0, b1, out);
}

void rr_screen_tile(const rr_screen *s, const int32_t *hq, const rr_screen_lanes *ln, size_t j0, size_t j1,
                    float *out) {
    if (j1 <= j0) return;
#ifdef HAVE_VNNI_PATH
    if (cpu_vnni() && !force_off) {
        int narrow = cpu_vl();
        for (size_t i = T / 2; i < T && narrow; i++) narrow = ln->sh[i] == 0.0f;
        if (narrow) {
            if (s->bits == 8) tile_narrow8(s, hq, ln, j0, j1, out);
            else tile_narrow16(s, hq, ln, j0, j1, out);
        } else if (s->bits == 8) {
            tile_vnni8(s, hq, ln, j0, j1, out);
        } else {
            tile_vnni16(s, hq, ln, j0, j1, out);
        }
        return;
    }
#endif
    tile_plain(s, hq, ln, j0, j1, out);
}
