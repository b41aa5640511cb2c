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
