/* sgemm_avx512.c - a single-threaded fp32 GEMM for AVX-512 CPUs, the shape
 * of BLIS: op(B) is packed into panels of NR columns and op(A) into panels
 * of MR rows, both k-major, and an MR x NR register-blocked micro-kernel
 * (16 zmm accumulators) runs over them.  rr_sgemm (gemm.c) calls it where
 * OpenBLAS would run single-threaded anyway; it exists because OpenBLAS may
 * be pinned to narrower kernels than the CPU has (OPENBLAS_CORETYPE).
 *
 * Arithmetic: every C entry is, per KC-long slice of k in order, an fp32
 * FMA chain from 0 over the slice; the first slice's sum s gives
 * C = alpha s (beta 0, old C ignored) or beta C + alpha s, each later one
 * C += alpha s.  The blocking is fixed, so an entry's value depends only on
 * its row of op(A), its column of op(B) and K: not on M, N, the position
 * or the thread. */
#include "nn/gemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define MR 8
#define NR 32
#define KC 256
#define MC 128
#define NC 2048

/* Packing buffers of one thread, grown on demand; freed at thread exit. */
typedef struct pack_bufs {
    float *a; /* (MC / MR panels, KC, MR) */
    float *b; /* (NC / NR panels, KC, NR) */
} pack_bufs;

static pthread_key_t pack_key;
static pthread_once_t pack_once = PTHREAD_ONCE_INIT;

static void pack_bufs_free(void *p) {
    pack_bufs *pb = p;
    if (!pb) return;
    rr_free_aligned(pb->a);
    rr_free_aligned(pb->b);
    free(pb);
}

static void pack_key_make(void) { (void)pthread_key_create(&pack_key, pack_bufs_free); }

static pack_bufs *pack_bufs_get(void) {
    pthread_once(&pack_once, pack_key_make);
    pack_bufs *pb = pthread_getspecific(pack_key);
    if (pb) return pb;
    pb = calloc(1, sizeof *pb);
    if (!pb) return NULL;
    pb->a = rr_alloc_aligned((size_t)MC * KC * sizeof(float));
    pb->b = rr_alloc_aligned((size_t)NC * KC * sizeof(float));
    if (!pb->a || !pb->b || pthread_setspecific(pack_key, pb) != 0) {
        pack_bufs_free(pb);
        return NULL;
    }
    return pb;
}

/* r[k][i] <- r[i][k] for a 16 x 16 block: pairs of rows interleaved, then
 * 4 x 4 blocks within each 128-bit lane, then the lanes themselves. */
__attribute__((target("avx512f"), always_inline)) static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);     /* per lane: a0 b0 a1 b1 */
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]); /* per lane: a2 b2 a3 b3 */
    }
    /* u[4g + c]: lane L holds column 4L + c of rows 4g .. 4g + 3 */
    for (int g = 0; g < 4; g++) {
        const __m512 *q = t + 4 * g;
        u[4 * g + 0] = _mm512_shuffle_ps(q[0], q[2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(q[0], q[2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(q[1], q[3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(q[1], q[3], 0xEE);
    }
    /* output row 4L + c = lane L of u[c], u[4 + c], u[8 + c], u[12 + c] */
    for (int c = 0; c < 4; c++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
        const __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

/* bp (ceil(nc / NR), kc, NR) = op(B)[pc .. pc+kc, jc .. jc+nc], zero padded. */
__attribute__((target("avx512f"))) static void pack_b(bool tB, const float *B, size_t ldb, size_t pc, size_t kc,
                                                      size_t jc, size_t nc, float *bp) {
    for (size_t j0 = 0; j0 < nc; j0 += NR, bp += kc * NR) {
        const size_t nr = nc - j0 < NR ? nc - j0 : NR;
        if (!tB) {
            /* op(B)(k, j) = B[k, j]: NR contiguous floats per k */
            const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffffu : (1u << nr) - 1u);
            const __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffffu : nr > 16 ? (1u << (nr - 16)) - 1u : 0u);
            const float *src = B + pc * ldb + jc + j0;
            for (size_t k = 0; k < kc; k++, src += ldb) {
                _mm512_store_ps(bp + k * NR, _mm512_maskz_loadu_ps(m0, src));
                _mm512_store_ps(bp + k * NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
            }
        } else {
            /* op(B)(k, j) = B[j, k]: row j of B becomes column j of the
             * panel, 16 rows by 16 k at a time through a register transpose */
            for (size_t jb = 0; jb < NR; jb += 16) {
                const size_t rows = nr > jb ? (nr - jb < 16 ? nr - jb : 16) : 0;
                for (size_t k0 = 0; k0 < kc; k0 += 16) {
                    const size_t kn = kc - k0 < 16 ? kc - k0 : 16;
                    const __mmask16 mk = (__mmask16)(kn == 16 ? 0xffffu : (1u << kn) - 1u);
                    __m512 r[16];
                    for (size_t i = 0; i < 16; i++)
                        r[i] = i < rows ? _mm512_maskz_loadu_ps(mk, B + (jc + j0 + jb + i) * ldb + pc + k0)
                                        : _mm512_setzero_ps();
                    transpose16(r);
                    for (size_t t = 0; t < kn; t++) _mm512_store_ps(bp + (k0 + t) * NR + jb, r[t]);
                }
            }
        }
    }
}

/* ap (ceil(mc / MR), kc, MR) = op(A)[ic .. ic+mc, pc .. pc+kc], zero padded. */
static void pack_a(bool tA, const float *A, size_t lda, size_t ic, size_t mc, size_t pc, size_t kc, float *ap) {
    for (size_t i0 = 0; i0 < mc; i0 += MR, ap += kc * MR) {
        const size_t mr = mc - i0 < MR ? mc - i0 : MR;
        if (tA) {
            /* op(A)(i, k) = A[k, i]: MR contiguous floats per k */
            const float *src = A + pc * lda + ic + i0;
            for (size_t k = 0; k < kc; k++, src += lda) {
                size_t i = 0;
                for (; i < mr; i++) ap[k * MR + i] = src[i];
                for (; i < MR; i++) ap[k * MR + i] = 0.0f;
            }
        } else {
            for (size_t i = 0; i < MR; i++) {
                if (i < mr) {
                    const float *row = A + (ic + i0 + i) * lda + pc;
                    for (size_t k = 0; k < kc; k++) ap[k * MR + i] = row[k];
                } else {
                    for (size_t k = 0; k < kc; k++) ap[k * MR + i] = 0.0f;
                }
            }
        }
    }
}

/* C (mr, nr) (=|+=) alpha * ap (kc, MR)^T bp (kc, NR): first says whether
 * this is the first k slice (then beta applies). */
__attribute__((target("avx512f"))) static void kernel(size_t kc, const float *ap, const float *bp, float *C,
                                                      size_t ldc, size_t mr, size_t nr, float alpha, float beta,
                                                      int first) {
    __m512 acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (size_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(bp + k * NR), b1 = _mm512_load_ps(bp + k * NR + 16);
        const float *a = ap + k * MR;
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            const __m512 x = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
        }
    }
    const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffffu : (1u << nr) - 1u);
    const __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffffu : nr > 16 ? (1u << (nr - 16)) - 1u : 0u);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        if ((size_t)i >= mr) break;
        float *c = C + (size_t)i * ldc;
        for (int h = 0; h < 2; h++) {
            const __mmask16 m = h ? m1 : m0;
            if (!m) continue;
            __m512 s = _mm512_mul_ps(va, acc[i][h]);
            if (!first) s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c + 16 * h), s);
            else if (beta != 0.0f) s = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, c + 16 * h), s);
            _mm512_mask_storeu_ps(c + 16 * h, m, s);
        }
    }
}

bool rr_sgemm_avx512(bool tA, bool tB, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                     const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    pack_bufs *pb = pack_bufs_get();
    if (!pb) return false;
    for (size_t jc = 0; jc < N; jc += NC) {
        const size_t nc = N - jc < NC ? N - jc : NC;
        for (size_t pc = 0; pc < K; pc += KC) {
            const size_t kc = K - pc < KC ? K - pc : KC;
            pack_b(tB, B, ldb, pc, kc, jc, nc, pb->b);
            for (size_t ic = 0; ic < M; ic += MC) {
                const size_t mc = M - ic < MC ? M - ic : MC;
                pack_a(tA, A, lda, ic, mc, pc, kc, pb->a);
                for (size_t jr = 0; jr < nc; jr += NR)
                    for (size_t ir = 0; ir < mc; ir += MR)
                        kernel(kc, pb->a + ir * kc, pb->b + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc,
                               mc - ir < MR ? mc - ir : MR, nc - jr < NR ? nc - jr : NR, alpha, beta, pc == 0);
            }
        }
    }
    return true;
}

#else
bool rr_sgemm_avx512(bool tA, bool tB, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                     const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    (void)tA, (void)tB, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta,
        (void)C, (void)ldc;
    return false;
}
#endif
