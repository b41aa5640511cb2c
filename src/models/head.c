/* head.c - scoring kernels of the linear head (head.h): a tile of up to 16
 * sessions against a slice of items, one score at a time, and full rows.
 *
 * The tile kernel holds the sessions' vectors transposed (hp, (D, 16): one
 * session per float lane) and walks the item table in its natural (N, D)
 * layout: for a group of items it broadcasts W[j, k] and multiplies it into
 * all 16 lanes, k = 0 .. D-1, keeping 12 accumulators in registers (16
 * sessions x 6 items, or 8 x 12 when a tile has at most 8 sessions).  No
 * packed copy of the table is needed, and each accumulator is exactly the
 * ordered fma chain of head.h.  On x86-64 CPUs with AVX2 and FMA (checked at
 * run time) the kernels use 8-wide intrinsics, and 16-wide ones for full
 * tiles where AVX-512F is there; elsewhere plain loops with fmaf, which
 * give the same bits (fmaf is correctly rounded everywhere). */
#include "models/head.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "models/rnn.h"
#include "nn/act.h"
#include "nn/screen.h"
#include "util/util.h"

#define T RR_HEAD_TILE
#define ROWS_SLICE 512 /* items per slice in rr_head_score_rows */

bool rr_model_head(const rr_model *m, rr_head *h) {
    const rr_rnn *r = rr_rnn_of(m);
    if (!r || !r->params) return false;
    const rr_rnn_layout *lay = &r->lay;
    h->W = r->params + lay->Wy;
    h->b = r->params + lay->By;
    h->N = r->shape.n_items;
    h->D = lay->H_last;
    h->off = lay->st_off[lay->L - 1];
    h->act = r->shape.final_act;
    h->act_param = r->shape.final_act_param;
    return true;
}

void rr_head_pack(const rr_head *h, float *hp, const float *const *vecs, size_t n) {
    const size_t D = h->D;
    memset(hp, 0, D * T * sizeof *hp);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < D; k++) hp[k * T + i] = vecs[i][k];
}

/* ---------------------------------------------------------------- portable */

static void tile_plain(const rr_head *h, const float *hp, size_t n, size_t j0, size_t j1, float *out) {
    const size_t D = h->D;
    for (size_t j = j0; j < j1; j++) {
        const float *w = h->W + j * D;
        float *o = out + (j - j0) * T;
        for (size_t i = 0; i < T; i++) {
            if (i >= n) {
                o[i] = 0.0f;
                continue;
            }
            float acc = 0.0f;
            for (size_t k = 0; k < D; k++) acc = fmaf(hp[k * T + i], w[k], acc);
            o[i] = acc + h->b[j];
        }
    }
}

static float one_plain(const rr_head *h, const float *v, int32_t j) {
    const float *w = h->W + (size_t)j * h->D;
    float acc = 0.0f;
    for (size_t k = 0; k < h->D; k++) acc = fmaf(v[k], w[k], acc);
    return acc + h->b[j];
}

/* ------------------------------------------------------------------- AVX2 */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1

/* The item rows of a kernel step are contiguous (NJ * D floats), but read
 * as NJ interleaved streams a float at a time, which the hardware
 * prefetchers do not follow: tables past the caches were read at a third of
 * the memory bandwidth.  So each k step also prefetches one cache line of
 * the rows from `first` on (the next step's), D lines = 16 D floats >= NJ D
 * in all.  Addresses are integers: prefetching past the table is harmless,
 * forming such a pointer would not be. */
static inline uintptr_t prefetch_base(const rr_head *h, size_t first) {
    size_t row = first < h->N ? first : h->N - 1;
    return (uintptr_t)(h->W + row * h->D);
}
#define PREFETCH(base, k) _mm_prefetch((const char *)((base) + 64 * (k)), _MM_HINT_T0)

#define FMA2(q)                                                                                    \
    do {                                                                                           \
        __m256 x = _mm256_broadcast_ss(w##q + k);                                                  \
        a##q##0 = _mm256_fmadd_ps(h0, x, a##q##0);                                                 \
        a##q##1 = _mm256_fmadd_ps(h1, x, a##q##1);                                                 \
    } while (0)
#define STORE2(q)                                                                                  \
    do {                                                                                           \
        if (j + q < j1) {                                                                          \
            __m256 bb = _mm256_broadcast_ss(b + j + q);                                            \
            _mm256_store_ps(o + q * T, _mm256_add_ps(a##q##0, bb));                                \
            _mm256_store_ps(o + q * T + 8, _mm256_add_ps(a##q##1, bb));                            \
        }                                                                                          \
    } while (0)

/* 16 sessions (two 8-lane halves) x 6 items per step.  Items past j1 in the
 * last group read row j1-1 again and are not stored. */
__attribute__((target("avx2,fma"))) static void tile16_avx2(const rr_head *h, const float *hp, size_t j0,
                                                            size_t j1, float *out) {
    const size_t D = h->D;
    const float *W = h->W, *b = h->b;
    for (size_t j = j0; j < j1; j += 6) {
        const float *w0 = W + j * D, *w1 = W + (j + 1 < j1 ? j + 1 : j1 - 1) * D,
                    *w2 = W + (j + 2 < j1 ? j + 2 : j1 - 1) * D, *w3 = W + (j + 3 < j1 ? j + 3 : j1 - 1) * D,
                    *w4 = W + (j + 4 < j1 ? j + 4 : j1 - 1) * D, *w5 = W + (j + 5 < j1 ? j + 5 : j1 - 1) * D;
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00,
               a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
        const uintptr_t pf = prefetch_base(h, j + 6);
        const float *p = hp;
        for (size_t k = 0; k < D; k++, p += T) {
            PREFETCH(pf, k);
            __m256 h0 = _mm256_load_ps(p), h1 = _mm256_load_ps(p + 8);
            FMA2(0);
            FMA2(1);
            FMA2(2);
            FMA2(3);
            FMA2(4);
            FMA2(5);
        }
        float *o = out + (j - j0) * T;
        STORE2(0);
        STORE2(1);
        STORE2(2);
        STORE2(3);
        STORE2(4);
        STORE2(5);
    }
}

#define FMA1(q) a##q = _mm256_fmadd_ps(h0, _mm256_broadcast_ss(w##q + k), a##q)
#define STORE1(q)                                                                                  \
    do {                                                                                           \
        if (j + q < j1) {                                                                          \
            _mm256_store_ps(o + q * T, _mm256_add_ps(a##q, _mm256_broadcast_ss(b + j + q)));        \
            _mm256_store_ps(o + q * T + 8, z);                                                     \
        }                                                                                          \
    } while (0)
#define WP(q) *w##q = W + (j + q < j1 ? j + q : j1 - 1) * D

/* At most 8 sessions: one 8-lane half x 12 items per step; lanes 8..15 of
 * out are written as zeros. */
__attribute__((target("avx2,fma"))) static void tile8_avx2(const rr_head *h, const float *hp, size_t j0,
                                                           size_t j1, float *out) {
    const size_t D = h->D;
    const float *W = h->W, *b = h->b;
    const __m256 z = _mm256_setzero_ps();
    for (size_t j = j0; j < j1; j += 12) {
        const float WP(0), WP(1), WP(2), WP(3), WP(4), WP(5), WP(6), WP(7), WP(8), WP(9), WP(10), WP(11);
        __m256 a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z, a8 = z, a9 = z, a10 = z, a11 = z;
        const uintptr_t pf = prefetch_base(h, j + 12);
        const float *p = hp;
        for (size_t k = 0; k < D; k++, p += T) {
            PREFETCH(pf, k);
            __m256 h0 = _mm256_load_ps(p);
            FMA1(0);
            FMA1(1);
            FMA1(2);
            FMA1(3);
            FMA1(4);
            FMA1(5);
            FMA1(6);
            FMA1(7);
            FMA1(8);
            FMA1(9);
            FMA1(10);
            FMA1(11);
        }
        float *o = out + (j - j0) * T;
        STORE1(0);
        STORE1(1);
        STORE1(2);
        STORE1(3);
        STORE1(4);
        STORE1(5);
        STORE1(6);
        STORE1(7);
        STORE1(8);
        STORE1(9);
        STORE1(10);
        STORE1(11);
    }
}

#define FMA16(q) a##q = _mm512_fmadd_ps(h0, _mm512_set1_ps(w##q[k]), a##q)
#define STORE16(q)                                                                                 \
    do {                                                                                           \
        if (j + q < j1) _mm512_store_ps(o + q * T, _mm512_add_ps(a##q, _mm512_set1_ps(b[j + q]))); \
    } while (0)

/* AVX-512: all 16 sessions in one register x 12 items per step.  On CPUs
 * that split 512-bit operations in two (Zen 4) this is still ~8% faster
 * than tile16_avx2: half the instructions for the same multiply-adds. */
__attribute__((target("avx512f"))) static void tile16_avx512(const rr_head *h, const float *hp, size_t j0,
                                                             size_t j1, float *out) {
    const size_t D = h->D;
    const float *W = h->W, *b = h->b;
    for (size_t j = j0; j < j1; j += 12) {
        const float WP(0), WP(1), WP(2), WP(3), WP(4), WP(5), WP(6), WP(7), WP(8), WP(9), WP(10), WP(11);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
               a9 = a0, a10 = a0, a11 = a0;
        const uintptr_t pf = prefetch_base(h, j + 12);
        const float *p = hp;
        for (size_t k = 0; k < D; k++, p += T) {
            PREFETCH(pf, k);
            __m512 h0 = _mm512_load_ps(p);
            FMA16(0);
            FMA16(1);
            FMA16(2);
            FMA16(3);
            FMA16(4);
            FMA16(5);
            FMA16(6);
            FMA16(7);
            FMA16(8);
            FMA16(9);
            FMA16(10);
            FMA16(11);
        }
        float *o = out + (j - j0) * T;
        STORE16(0);
        STORE16(1);
        STORE16(2);
        STORE16(3);
        STORE16(4);
        STORE16(5);
        STORE16(6);
        STORE16(7);
        STORE16(8);
        STORE16(9);
        STORE16(10);
        STORE16(11);
    }
}

/* Eight (vector, item) scores at once: eight independent fma chains in
 * flight instead of one (a chain is bound by the FMA latency, so this is
 * several times quicker per score), each the ordered chain of head.h. */
__attribute__((target("avx2,fma"))) static void pairs8_fma(const rr_head *h, const float *const *v,
                                                          const int32_t *j, float *out) {
    const size_t D = h->D;
    const float *x0 = v[0], *x1 = v[1], *x2 = v[2], *x3 = v[3], *x4 = v[4], *x5 = v[5], *x6 = v[6], *x7 = v[7];
    const float *w0 = h->W + (size_t)j[0] * D, *w1 = h->W + (size_t)j[1] * D, *w2 = h->W + (size_t)j[2] * D,
                *w3 = h->W + (size_t)j[3] * D, *w4 = h->W + (size_t)j[4] * D, *w5 = h->W + (size_t)j[5] * D,
                *w6 = h->W + (size_t)j[6] * D, *w7 = h->W + (size_t)j[7] * D;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f, a7 = 0.0f;
    for (size_t k = 0; k < D; k++) {
        a0 = fmaf(x0[k], w0[k], a0);
        a1 = fmaf(x1[k], w1[k], a1);
        a2 = fmaf(x2[k], w2[k], a2);
        a3 = fmaf(x3[k], w3[k], a3);
        a4 = fmaf(x4[k], w4[k], a4);
        a5 = fmaf(x5[k], w5[k], a5);
        a6 = fmaf(x6[k], w6[k], a6);
        a7 = fmaf(x7[k], w7[k], a7);
    }
    out[0] = a0 + h->b[j[0]];
    out[1] = a1 + h->b[j[1]];
    out[2] = a2 + h->b[j[2]];
    out[3] = a3 + h->b[j[3]];
    out[4] = a4 + h->b[j[4]];
    out[5] = a5 + h->b[j[5]];
    out[6] = a6 + h->b[j[6]];
    out[7] = a7 + h->b[j[7]];
}

/* One group of 8 items (rows w[8g] .. w[8g+7]) over components k .. k+7:
 * the 8x8 block is transposed so that column m holds W[j, k+m] of the 8
 * items, then acc_g = fma(v[k+m], column m, acc_g) for m = 0..7 in order. */
#define ITEM_GROUP(g)                                                                              \
    do {                                                                                           \
        __m256 r0 = _mm256_loadu_ps(w[8 * g + 0] + k), r1 = _mm256_loadu_ps(w[8 * g + 1] + k);     \
        __m256 r2 = _mm256_loadu_ps(w[8 * g + 2] + k), r3 = _mm256_loadu_ps(w[8 * g + 3] + k);     \
        __m256 r4 = _mm256_loadu_ps(w[8 * g + 4] + k), r5 = _mm256_loadu_ps(w[8 * g + 5] + k);     \
        __m256 r6 = _mm256_loadu_ps(w[8 * g + 6] + k), r7 = _mm256_loadu_ps(w[8 * g + 7] + k);     \
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);                   \
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);                   \
        __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);                   \
        __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);                   \
        __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);         \
        __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);         \
        __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);         \
        __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);         \
        acc##g = _mm256_fmadd_ps(x0, _mm256_permute2f128_ps(u0, u4, 0x20), acc##g);                \
        acc##g = _mm256_fmadd_ps(x1, _mm256_permute2f128_ps(u1, u5, 0x20), acc##g);                \
        acc##g = _mm256_fmadd_ps(x2, _mm256_permute2f128_ps(u2, u6, 0x20), acc##g);                \
        acc##g = _mm256_fmadd_ps(x3, _mm256_permute2f128_ps(u3, u7, 0x20), acc##g);                \
        acc##g = _mm256_fmadd_ps(x4, _mm256_permute2f128_ps(u0, u4, 0x31), acc##g);                \
        acc##g = _mm256_fmadd_ps(x5, _mm256_permute2f128_ps(u1, u5, 0x31), acc##g);                \
        acc##g = _mm256_fmadd_ps(x6, _mm256_permute2f128_ps(u2, u6, 0x31), acc##g);                \
        acc##g = _mm256_fmadd_ps(x7, _mm256_permute2f128_ps(u3, u7, 0x31), acc##g);                \
    } while (0)

/* Up to 32 items (8 G of them, G = 1..4 groups) for one vector: one item
 * per lane of G 8-lane accumulators, each lane the ordered chain of head.h
 * (fma(v[k], W[j, k], acc)); the G chains in flight hide the FMA latency. */
__attribute__((target("avx2,fma"))) static void items_avx2(const rr_head *h, const float *v, const int32_t *j,
                                                          int G, float *out) {
    const size_t D = h->D, m = 8 * (size_t)G;
    const float *w[32];
    for (size_t q = 0; q < 32; q++) w[q] = h->W + (size_t)j[q < m ? q : m - 1] * D;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    size_t k = 0;
    for (; k + 8 <= D; k += 8) {
        const __m256 x0 = _mm256_broadcast_ss(v + k), x1 = _mm256_broadcast_ss(v + k + 1),
                     x2 = _mm256_broadcast_ss(v + k + 2), x3 = _mm256_broadcast_ss(v + k + 3),
                     x4 = _mm256_broadcast_ss(v + k + 4), x5 = _mm256_broadcast_ss(v + k + 5),
                     x6 = _mm256_broadcast_ss(v + k + 6), x7 = _mm256_broadcast_ss(v + k + 7);
        ITEM_GROUP(0);
        if (G > 1) ITEM_GROUP(1);
        if (G > 2) ITEM_GROUP(2);
        if (G > 3) ITEM_GROUP(3);
    }
    float a[32];
    _mm256_storeu_ps(a, acc0);
    _mm256_storeu_ps(a + 8, acc1);
    _mm256_storeu_ps(a + 16, acc2);
    _mm256_storeu_ps(a + 24, acc3);
    for (; k < D; k++)
        for (size_t q = 0; q < m; q++) a[q] = fmaf(v[k], w[q][k], a[q]);
    for (size_t q = 0; q < m; q++) out[q] = a[q] + h->b[j[q < m ? q : m - 1]];
}

/* fmaf here compiles to one vfmadd231ss: the same rounding as the lanes. */
__attribute__((target("avx2,fma"))) static float one_fma(const rr_head *h, const float *v, int32_t j) {
    const float *w = h->W + (size_t)j * h->D;
    float acc = 0.0f;
    for (size_t k = 0; k < h->D; k++) acc = fmaf(v[k], w[k], acc);
    return acc + h->b[j];
}
#endif

static int force_portable;

static int force_avx2;

void rr_head_force_portable(int on) { force_portable = on; }
void rr_head_force_avx2(int on) { force_avx2 = on; }

/* 0 portable, 1 AVX2 + FMA, 2 AVX2 + FMA + AVX-512F */
static int isa_level(void) {
#ifdef HAVE_AVX2_PATH
    static int cached = -1;
    if (cached < 0) {
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
        if (cached && __builtin_cpu_supports("avx512f")) cached = 2;
    }
    return force_portable ? 0 : force_avx2 && cached ? 1 : cached;
#else
    return 0;
#endif
}

static int use_avx2(void) { return isa_level() >= 1; }

void rr_head_score_tile(const rr_head *h, const float *hp, size_t n, size_t j0, size_t j1, float *out) {
    if (j1 <= j0) return;
#ifdef HAVE_AVX2_PATH
    int isa = isa_level();
    if (isa) {
        if (n <= 8) tile8_avx2(h, hp, j0, j1, out);
        else if (isa == 2) tile16_avx512(h, hp, j0, j1, out);
        else tile16_avx2(h, hp, j0, j1, out);
    } else
#endif
        tile_plain(h, hp, n, j0, j1, out);
    /* The activation is elementwise code without contraction: the same
     * bits for a value whether it sits in a slice or alone. */
    if (h->act != RR_ACT_LINEAR) rr_act_forward_f32(h->act, h->act_param, out, out, (j1 - j0) * T);
}

float rr_head_score_one(const rr_head *h, const float *v, int32_t j) {
    float s;
#ifdef HAVE_AVX2_PATH
    if (use_avx2()) s = one_fma(h, v, j);
    else
#endif
        s = one_plain(h, v, j);
    if (h->act != RR_ACT_LINEAR) rr_act_forward_f32(h->act, h->act_param, &s, &s, 1);
    return s;
}

void rr_head_score_pairs(const rr_head *h, const float *const *v, const int32_t *j, size_t n, float *out) {
    size_t p = 0;
#ifdef HAVE_AVX2_PATH
    if (use_avx2()) {
        for (; p + 8 <= n; p += 8) pairs8_fma(h, v + p, j + p, out + p);
        if (p < n) {
            /* the tail: pad with the last pair, keep what was asked */
            const float *vv[8];
            int32_t jj[8];
            float o[8];
            for (size_t q = 0; q < 8; q++) {
                vv[q] = v[p + q < n ? p + q : n - 1];
                jj[q] = j[p + q < n ? p + q : n - 1];
            }
            pairs8_fma(h, vv, jj, o);
            memcpy(out + p, o, (n - p) * sizeof *out);
            p = n;
        }
    }
#endif
    for (; p < n; p++) out[p] = one_plain(h, v[p], j[p]);
    if (h->act != RR_ACT_LINEAR) rr_act_forward_f32(h->act, h->act_param, out, out, n);
}

void rr_head_score_items(const rr_head *h, const float *v, const int32_t *j, size_t n, float *out) {
    size_t p = 0;
#ifdef HAVE_AVX2_PATH
    if (use_avx2()) {
        for (; p + 32 <= n; p += 32) items_avx2(h, v, j + p, 4, out + p);
        if (p < n) {
            /* the tail: as many groups of 8 as it needs, the last padded */
            int32_t jj[32];
            float o[32];
            size_t m = n - p, G = (m + 7) / 8;
            for (size_t q = 0; q < 8 * G; q++) jj[q] = j[p + (q < m ? q : m - 1)];
            items_avx2(h, v, jj, (int)G, o);
            memcpy(out + p, o, m * sizeof *out);
            p = n;
        }
    }
#endif
    for (; p < n; p++) out[p] = one_plain(h, v, j[p]);
    if (h->act != RR_ACT_LINEAR) rr_act_forward_f32(h->act, h->act_param, out, out, n);
}

size_t rr_head_rows_scratch_floats(const rr_head *h) { return h->D * T + (size_t)ROWS_SLICE * T; }

void rr_head_score_rows(const rr_head *h, const float *const *vecs, size_t n, float *scores, size_t lds,
                        float *scratch) {
    float *hp = scratch;               /* (D, T) packed tile */
    float *buf = scratch + h->D * T;   /* (ROWS_SLICE, T) item-major slice */
    for (size_t i0 = 0; i0 < n; i0 += T) {
        size_t nt = n - i0 < T ? n - i0 : T;
        rr_head_pack(h, hp, vecs + i0, nt);
        for (size_t j0 = 0; j0 < h->N; j0 += ROWS_SLICE) {
            size_t j1 = h->N - j0 < ROWS_SLICE ? h->N : j0 + ROWS_SLICE;
            rr_head_score_tile(h, hp, nt, j0, j1, buf);
            for (size_t i = 0; i < nt; i++) {
                float *row = scores + (i0 + i) * lds;
                for (size_t j = j0; j < j1; j++) row[j] = buf[(j - j0) * T + i];
            }
        }
    }
}

rr_status rr_head_score_states(const rr_head *h, rr_state *const *states, size_t n, float *scores,
                               rr_error *err) {
    float *scratch = rr_alloc_aligned(rr_head_rows_scratch_floats(h) * sizeof(float));
    if (!scratch) return rr_err(err, RR_ERR_NOMEM, "out of memory scoring %zu sessions", n);
    const float *vecs[T];
    for (size_t i0 = 0; i0 < n; i0 += T) {
        size_t nt = n - i0 < T ? n - i0 : T;
        for (size_t i = 0; i < nt; i++) vecs[i] = states[i0 + i]->h + h->off;
        rr_head_score_rows(h, vecs, nt, scores + i0 * h->N, h->N, scratch);
    }
    rr_free_aligned(scratch);
    return RR_OK;
}

/* ------------------------------------------------- screened top-k, serving
 * One session's top-k through the screen (nn/screen.h): screen scores of
 * all items (rr_screen_items, 32 multiply-adds per instruction with the
 * items in the lanes), L = the k-th best lower bound fma(-2, Delta, Y) over
 * all items (k items score at least L exactly), then the exact scores of
 * the items whose bound reaches L, in item order, through the strict
 * insertion of rr_topk: the list of rr_topk on the exact row. */

struct rr_head_screen_scratch {
    size_t N, nw, k;
    int32_t *hq;     /* (nw, 16) the packed session, lane 0 */
    float *y;        /* (16 ceil(N / 16)) screen scores */
    int32_t *cand;   /* (N) candidates */
    float *lbs;      /* (k) best lower bounds, best first */
};

void rr_head_screen_scratch_free(rr_head_screen_scratch *sc) {
    if (!sc) return;
    rr_free_aligned(sc->hq);
    rr_free_aligned(sc->y);
    free(sc->cand);
    free(sc->lbs);
    free(sc);
}

static rr_status screen_scratch(rr_head_screen_scratch **sp, const rr_screen *s, size_t k, rr_error *err) {
    rr_head_screen_scratch *sc = *sp;
    if (sc && sc->N == s->N && sc->nw == s->nw && sc->k >= k) return RR_OK;
    rr_head_screen_scratch_free(sc);
    *sp = sc = calloc(1, sizeof *sc);
    if (sc) {
        size_t nb = (s->N + RR_SCREEN_TILE - 1) / RR_SCREEN_TILE;
        sc->N = s->N;
        sc->nw = s->nw;
        sc->k = k;
        sc->hq = rr_alloc_aligned(s->nw * RR_SCREEN_TILE * sizeof(int32_t));
        sc->y = rr_alloc_aligned(nb * RR_SCREEN_TILE * sizeof(float));
        sc->cand = rr_malloc_n(s->N, sizeof *sc->cand);
        sc->lbs = rr_malloc_n(k, sizeof *sc->lbs);
        if (sc->hq && sc->y && sc->cand && sc->lbs) return RR_OK;
    }
    rr_head_screen_scratch_free(sc);
    *sp = NULL;
    return rr_err(err, RR_ERR_NOMEM, "screened top-k: out of memory for %zu items", s->N);
}

/* Inserts v (known to beat the list's k-th entry) into a list sorted best
 * first; equal scores stay in arrival order. */
static void list_insert(float *ls, int32_t *li, size_t *cnt, size_t k, float v, int32_t j) {
    size_t p = *cnt < k ? *cnt : k;
    while (p > 0 && ls[p - 1] < v) p--;
    if (*cnt < k) (*cnt)++;
    size_t move = *cnt - 1 - p;
    if (move) {
        memmove(ls + p + 1, ls + p, move * sizeof *ls);
        if (li) memmove(li + p + 1, li + p, move * sizeof *li);
    }
    ls[p] = v;
    if (li) li[p] = j;
}

/* L and the candidates, portable: returns the number of candidates. */
static size_t screen_select_plain(const rr_screen *s, const rr_screen_lanes *ln, const float *y, size_t k,
                                  float *lbs, int32_t *cand) {
    size_t nl = 0;
    for (size_t j = 0; j < s->N; j++) {
        float lb = fmaf(-2.0f, rr_screen_delta(s, ln, 0, j), y[j]);
        if (lb > (nl == k ? lbs[k - 1] : -INFINITY)) list_insert(lbs, NULL, &nl, k, lb, 0);
    }
    const float L = nl == k ? lbs[k - 1] : -INFINITY;
    size_t nc = 0;
    for (size_t j = 0; j < s->N; j++)
        if (!(L - y[j] > rr_screen_delta(s, ln, 0, j))) cand[nc++] = (int32_t)j;
    return nc;
}

#ifdef HAVE_AVX2_PATH
/* The same, 16 items per register (the bound's per-item factors are
 * contiguous arrays). */
__attribute__((target("avx512f"))) static size_t screen_select_avx512(const rr_screen *s, const rr_screen_lanes *ln,
                                                                     const float *y, size_t k, float *lbs,
                                                                     int32_t *cand) {
    const size_t N = s->N;
    const __m512 av = _mm512_set1_ps(ln->a[0]), cv = _mm512_set1_ps(ln->c[0]);
    const __m512 m2 = _mm512_set1_ps(-2.0f);
    size_t nl = 0;
    __m512 lbk = _mm512_set1_ps(-INFINITY);
#define SCREEN_DELTA(j, m, yv)                                                                     \
    _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, s->rho + (j)),                                    \
                    _mm512_fmadd_ps(cv, _mm512_maskz_loadu_ps(m, s->rn + (j)), _mm512_maskz_loadu_ps(m, s->beta + (j))))
    for (size_t j = 0; j < N; j += 16) {
        __mmask16 m = (__mmask16)(N - j >= 16 ? 0xffffu : (1u << (N - j)) - 1u);
        __m512 yv = _mm512_loadu_ps(y + j), dl = SCREEN_DELTA(j, m, yv);
        __m512 lb = _mm512_fmadd_ps(m2, dl, yv);
        unsigned hit = _mm512_mask_cmp_ps_mask(m, lb, lbk, _CMP_GT_OQ);
        if (hit) {
            float l[16];
            _mm512_storeu_ps(l, lb);
            while (hit) {
                unsigned i = (unsigned)__builtin_ctz(hit);
                hit &= hit - 1;
                if (l[i] > (nl == k ? lbs[k - 1] : -INFINITY)) list_insert(lbs, NULL, &nl, k, l[i], 0);
            }
            if (nl == k) lbk = _mm512_set1_ps(lbs[k - 1]);
        }
    }
    const __m512 Lv = _mm512_set1_ps(nl == k ? lbs[k - 1] : -INFINITY);
    size_t nc = 0;
    for (size_t j = 0; j < N; j += 16) {
        __mmask16 m = (__mmask16)(N - j >= 16 ? 0xffffu : (1u << (N - j)) - 1u);
        __m512 yv = _mm512_loadu_ps(y + j), dl = SCREEN_DELTA(j, m, yv);
        unsigned keep = _mm512_mask_cmp_ps_mask(m, _mm512_sub_ps(Lv, yv), dl, _CMP_NGT_UQ);
        while (keep) {
            unsigned i = (unsigned)__builtin_ctz(keep);
            keep &= keep - 1;
            cand[nc++] = (int32_t)(j + i);
        }
    }
#undef SCREEN_DELTA
    return nc;
}
#endif

rr_status rr_head_topk_screened(const rr_head *h, const rr_screen *s, const float *v, const int32_t *seen,
                                size_t n_seen, size_t k, int32_t *top, float *tops, size_t *ntop,
                                rr_head_screen_scratch **scratch, rr_error *err) {
    *ntop = 0;
    if (k > h->N) k = h->N;
    if (k == 0) return RR_OK;
    if (!s || !s->wt || s->N != h->N || s->D != h->D || s->b != h->b || h->act != RR_ACT_LINEAR)
        return rr_err(err, RR_ERR_ARG, "screened top-k: the screen does not belong to this linear head");
    rr_status st = screen_scratch(scratch, s, k, err);
    if (st) return st;
    rr_head_screen_scratch *sc = *scratch;
    rr_screen_lanes ln;
    rr_screen_pack(s, sc->hq, &ln, &v, 1);
    rr_screen_items(s, sc->hq, &ln, 0, (s->N + RR_SCREEN_TILE - 1) / RR_SCREEN_TILE, sc->y);
    for (size_t q = 0; q < n_seen; q++)
        if (seen[q] >= 0 && (size_t)seen[q] < h->N) sc->y[seen[q]] = -INFINITY;
    size_t nc;
#ifdef HAVE_AVX2_PATH
    if (isa_level() >= 2) nc = screen_select_avx512(s, &ln, sc->y, k, sc->lbs, sc->cand);
    else
#endif
        nc = screen_select_plain(s, &ln, sc->y, k, sc->lbs, sc->cand);
    /* exact scores of the candidates, in item order, 32 at a time */
    size_t cnt = 0;
    float thr = -INFINITY, x[32];
    for (size_t p = 0; p < nc; p += 32) {
        size_t m = nc - p < 32 ? nc - p : 32;
        rr_head_score_items(h, v, sc->cand + p, m, x);
        for (size_t i = 0; i < m; i++) {
            int32_t j = sc->cand[p + i];
            float xi = sc->y[j] == -INFINITY ? -INFINITY : x[i]; /* excluded */
            if (xi > thr) {
                list_insert(tops, top, &cnt, k, xi, j);
                if (cnt == k) thr = tops[k - 1];
            }
        }
    }
    *ntop = cnt;
    return RR_OK;
}
