/* gemm.c - OpenBLAS dispatch, reference GEMM kernels and row kernels.
 *
 * The reference kernels are deliberately plain: for each row of C they
 * either stream rows of B (B not transposed: c[i,:] += a_ik * b[k,:], a loop
 * the compiler vectorises) or take dot products (B transposed: rows of B are
 * the columns of op(B)).  They are the yardstick for the BLAS path and the
 * double-precision engine of the gradient checks, not a fast path; only the
 * row update is vectorised (it does not reorder any sum). */
#include "nn/gemm.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>

#include "util/util.h"

static bool force_ref;

bool rr_gemm_force_ref(bool on) {
    bool old = force_ref;
    force_ref = on;
    return old;
}

void rr_blas_set_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

int rr_blas_get_threads(void) { return openblas_get_num_threads(); }

/* Shape checks shared by every GEMM: leading dimensions must cover a row. */
static void gemm_check(bool transA, bool transB, size_t M, size_t N, size_t K, size_t lda,
                       size_t ldb, size_t ldc) {
    RR_ASSERT(lda >= (transA ? M : K));
    RR_ASSERT(ldb >= (transB ? K : N));
    RR_ASSERT(ldc >= N);
}

/* One reference kernel body for float and double. */
#define RR_GEMM_REF(T, NAME)                                                                 \
    void NAME(bool transA, bool transB, size_t M, size_t N, size_t K, T alpha, const T *A,    \
              size_t lda, const T *B, size_t ldb, T beta, T *C, size_t ldc) {                 \
        gemm_check(transA, transB, M, N, K, lda, ldb, ldc);                                   \
        for (size_t i = 0; i < M; i++) {                                                      \
            T *c = C + i * ldc; /* (N) row i of C */                                          \
            if (beta == 0)                                                                    \
                for (size_t j = 0; j < N; j++) c[j] = 0;                                      \
            else if (beta != 1)                                                               \
                for (size_t j = 0; j < N; j++) c[j] *= beta;                                  \
            if (alpha == 0 || K == 0) continue;                                               \
            if (!transB) {                                                                    \
                /* c[i,:] += alpha * a_ik * B[k,:] */                                         \
                for (size_t k = 0; k < K; k++) {                                              \
                    T a = alpha * (transA ? A[k * lda + i] : A[i * lda + k]);                 \
                    const T *b = B + k * ldb;                                                 \
                    _Pragma("omp simd") for (size_t j = 0; j < N; j++) c[j] += a * b[j];      \
                }                                                                             \
            } else {                                                                          \
                /* c[i,j] += alpha * <op(A)[i,:], B[j,:]> */                                  \
                for (size_t j = 0; j < N; j++) {                                              \
                    const T *b = B + j * ldb;                                                 \
                    T s = 0;                                                                  \
                    if (!transA) {                                                            \
                        const T *a = A + i * lda;                                             \
                        for (size_t k = 0; k < K; k++) s += a[k] * b[k];                      \
                    } else {                                                                  \
                        for (size_t k = 0; k < K; k++) s += A[k * lda + i] * b[k];            \
                    }                                                                         \
                    c[j] += alpha * s;                                                        \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }

RR_GEMM_REF(float, rr_sgemm_ref)
RR_GEMM_REF(double, rr_dgemm_ref)

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_SMALL_M 1
#define SMALL_M_MAX 8

/* C = beta C + alpha A B^T for at most SMALL_M_MAX rows of A: the RNN step
 * of one or a few sessions (serving, and a training batch's tail).  OpenBLAS
 * gives such products different kernels for different M, so a session
 * stepped alone and the same session stepped with others would differ in
 * the last bits; here every entry is the same fp32 FMA chain over 16-wide
 * chunks of K (the tail chunk masked), then the same tree sum of the 16
 * lanes, whatever M is and whichever rows share a pass.  A pass takes 4
 * rows of B against na (1..4) rows of A, so B, the weights, is read once
 * per 4 rows of A instead of once per row. */
/* One pass of 4 rows of B (b0..b3) against 4 rows of A (MA = 4) or 1
 * (MA = 1), K in 16-wide chunks; s<i><r> accumulates row i of A times row r
 * of B. */
#define SM_CHUNK(LOAD, o)                                                                      \
    do {                                                                                       \
        __m512 v0 = LOAD(b0 + (o)), v1 = LOAD(b1 + (o)), v2 = LOAD(b2 + (o)), v3 = LOAD(b3 + (o)); \
        __m512 x = LOAD(a0 + (o));                                                             \
        s00 = _mm512_fmadd_ps(x, v0, s00);                                                     \
        s01 = _mm512_fmadd_ps(x, v1, s01);                                                     \
        s02 = _mm512_fmadd_ps(x, v2, s02), s03 = _mm512_fmadd_ps(x, v3, s03);                  \
        if (MA == 4) {                                                                         \
            x = LOAD(a1 + (o));                                                                \
            s10 = _mm512_fmadd_ps(x, v0, s10), s11 = _mm512_fmadd_ps(x, v1, s11);              \
            s12 = _mm512_fmadd_ps(x, v2, s12), s13 = _mm512_fmadd_ps(x, v3, s13);              \
            x = LOAD(a2 + (o));                                                                \
            s20 = _mm512_fmadd_ps(x, v0, s20), s21 = _mm512_fmadd_ps(x, v1, s21);              \
            s22 = _mm512_fmadd_ps(x, v2, s22), s23 = _mm512_fmadd_ps(x, v3, s23);              \
            x = LOAD(a3 + (o));                                                                \
            s30 = _mm512_fmadd_ps(x, v0, s30), s31 = _mm512_fmadd_ps(x, v1, s31);              \
            s32 = _mm512_fmadd_ps(x, v2, s32), s33 = _mm512_fmadd_ps(x, v3, s33);              \
        }                                                                                      \
    } while (0)
#define SM_LOAD(p) _mm512_loadu_ps(p)
#define SM_LOADM(p) _mm512_maskz_loadu_ps(mt, p)
#define SM_OUT(i, r, acc)                                                                      \
    do {                                                                                       \
        if ((r) < nb) {                                                                        \
            float d_ = _mm512_reduce_add_ps(acc), *c_ = C + (i) * ldc + (r);                   \
            *c_ = beta == 0.0f ? alpha * d_ : beta * *c_ + alpha * d_;                         \
        }                                                                                      \
    } while (0)

__attribute__((target("avx512f"), always_inline)) static inline void
small_m_block(const int MA, size_t nb, size_t K, float alpha, const float *a0, const float *a1, const float *a2,
              const float *a3, const float *b0, const float *b1, const float *b2, const float *b3, float beta,
              float *C, size_t ldc) {
    const size_t nk = K / 16, rem = K % 16;
    const __mmask16 mt = (__mmask16)((1u << rem) - 1u);
    __m512 s00 = _mm512_setzero_ps(), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00, s13 = s00,
           s20 = s00, s21 = s00, s22 = s00, s23 = s00, s30 = s00, s31 = s00, s32 = s00, s33 = s00;
    for (size_t k = 0; k < nk; k++) SM_CHUNK(SM_LOAD, 16 * k);
    if (rem) SM_CHUNK(SM_LOADM, 16 * nk);
    SM_OUT(0, 0, s00);
    SM_OUT(0, 1, s01);
    SM_OUT(0, 2, s02);
    SM_OUT(0, 3, s03);
    if (MA == 4) {
        SM_OUT(1, 0, s10);
        SM_OUT(1, 1, s11);
        SM_OUT(1, 2, s12);
        SM_OUT(1, 3, s13);
        SM_OUT(2, 0, s20);
        SM_OUT(2, 1, s21);
        SM_OUT(2, 2, s22);
        SM_OUT(2, 3, s23);
        SM_OUT(3, 0, s30);
        SM_OUT(3, 1, s31);
        SM_OUT(3, 2, s32);
        SM_OUT(3, 3, s33);
    }
}

__attribute__((target("avx512f"))) static void small_m_gemm(size_t M, size_t N, size_t K, float alpha,
                                                            const float *A, size_t lda, const float *B,
                                                            size_t ldb, float beta, float *C, size_t ldc) {
    for (size_t j0 = 0; j0 < N; j0 += 4) {
        const size_t nb = N - j0 < 4 ? N - j0 : 4;
        const float *b[4]; /* pad rows repeat the last and are not stored */
        for (size_t r = 0; r < 4; r++) b[r] = B + (j0 + (r < nb ? r : nb - 1)) * ldb;
        size_t i = 0;
        for (; i + 4 <= M; i += 4)
            small_m_block(4, nb, K, alpha, A + i * lda, A + (i + 1) * lda, A + (i + 2) * lda, A + (i + 3) * lda, b[0],
                          b[1], b[2], b[3], beta, C + i * ldc + j0, ldc);
        for (; i < M; i++)
            small_m_block(1, nb, K, alpha, A + i * lda, NULL, NULL, NULL, b[0], b[1], b[2], b[3], beta,
                          C + i * ldc + j0, ldc);
    }
}

static int cpu_avx512(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512f");
    return cached;
}
#endif

void rr_sgemm(bool transA, bool transB, size_t M, size_t N, size_t K, float alpha,
              const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
              size_t ldc) {
    /* Degenerate shapes go to the reference loop: CBLAS rejects lda = 0
     * and K = 0 would still have to scale C by beta. */
    if (force_ref || M == 0 || N == 0 || K == 0) {
        rr_sgemm_ref(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    gemm_check(transA, transB, M, N, K, lda, ldb, ldc);
#ifdef HAVE_SMALL_M
    if (M <= SMALL_M_MAX && !transA && transB && cpu_avx512()) {
        small_m_gemm(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* The packed AVX-512 kernel (sgemm_avx512.c) wherever OpenBLAS would run
     * on this thread alone: inside a parallel region (the trainer's threads),
     * with OpenBLAS set to one thread, or for products too small to split,
 * and with at least 32 rows: packing op(B) costs about as much as M rows
 * of the product, so fewer rows are left to OpenBLAS.
     * Bigger products asked for by one thread still go to OpenBLAS and its
     * thread pool.  On this project's machine OpenBLAS is pinned to its AVX2
     * kernels and the packed kernel runs the training shapes 1.5 to 2x as
     * fast (bench_gemm). */
    if (M >= 32 && alpha != 0.0f && cpu_avx512() &&
        (omp_in_parallel() || openblas_get_num_threads() == 1 || (double)M * (double)N * (double)K < 4.0e6) &&
        rr_sgemm_avx512(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
        return;
#endif
    RR_ASSERT(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX);
    RR_ASSERT(lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX);
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, alpha, A,
                (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

/* ---- row kernels */

void rr_rows_gather(float *out, const float *table, size_t cols, const int32_t *idx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float *src = table + (size_t)idx[i] * cols;
        float *dst = out + i * cols;
#pragma omp simd
        for (size_t j = 0; j < cols; j++) dst[j] = src[j];
    }
}

void rr_rows_scatter_add(float *table, size_t cols, const int32_t *idx, size_t n, float alpha,
                         const float *g) {
    for (size_t i = 0; i < n; i++) {
        float *dst = table + (size_t)idx[i] * cols;
        const float *src = g + i * cols;
#pragma omp simd
        for (size_t j = 0; j < cols; j++) dst[j] += alpha * src[j];
    }
}

void rr_rows_add_bias(float *out, size_t rows, size_t cols, const float *bias) {
    for (size_t i = 0; i < rows; i++) {
        float *o = out + i * cols;
#pragma omp simd
        for (size_t j = 0; j < cols; j++) o[j] += bias[j];
    }
}

void rr_rows_sum_add(float *acc, const float *x, size_t rows, size_t cols) {
    for (size_t i = 0; i < rows; i++) {
        const float *r = x + i * cols;
#pragma omp simd
        for (size_t j = 0; j < cols; j++) acc[j] += r[j];
    }
}

void rr_saxpy(size_t n, float a, const float *x, float *y) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

void rr_daxpy(size_t n, double a, const double *x, double *y) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

float rr_sdot(size_t n, const float *x, const float *y) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

double rr_ddot(size_t n, const double *x, const double *y) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

void rr_sscal(size_t n, float a, float *x) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) x[i] *= a;
}
