/* gemm.h - the dense linear algebra rnnrec needs: a row-major GEMM that goes
 * to OpenBLAS (cblas_sgemm) with plain reference kernels beside it, BLAS
 * thread control, and the small row kernels of embedding tables (gather,
 * scatter-add, axpy, dot).
 *
 * All matrices are row-major with an explicit leading dimension (the
 * distance in elements between consecutive rows).  op(X) is X or X^T:
 *   C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C
 * where A is stored (M, K) when !transA and (K, M) when transA, and B is
 * stored (K, N) when !transB and (N, K) when transB.  beta == 0 ignores the
 * old contents of C (NaN included), as BLAS does. */
#ifndef RR_GEMM_H
#define RR_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Float GEMM: OpenBLAS unless the reference path is forced. */
void rr_sgemm(bool transA, bool transB, size_t M, size_t N, size_t K, float alpha,
              const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
              size_t ldc);
/* Plain loops, no BLAS: the reference the BLAS path is tested against. */
void rr_sgemm_ref(bool transA, bool transB, size_t M, size_t N, size_t K, float alpha,
                  const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                  size_t ldc);
/* Double precision reference kernel (the gradient-check paths). */
void rr_dgemm_ref(bool transA, bool transB, size_t M, size_t N, size_t K, double alpha,
                  const double *A, size_t lda, const double *B, size_t ldb, double beta,
                  double *C, size_t ldc);

/* The packed AVX-512 kernel of sgemm_avx512.c on the calling thread
 * (false, nothing done, when the CPU lacks AVX-512F at build or run time
 * or its buffers cannot be had); rr_sgemm picks it itself. */
bool rr_sgemm_avx512(bool transA, bool transB, size_t M, size_t N, size_t K, float alpha, const float *A,
                     size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);

/* Routes rr_sgemm to rr_sgemm_ref (tests).  Process-wide; set it before any
 * thread calls rr_sgemm.  Returns the previous setting. */
bool rr_gemm_force_ref(bool on);

/* OpenBLAS's own thread pool.  A caller that runs its own OpenMP threads
 * around GEMMs should set 1 here to avoid oversubscription. */
void rr_blas_set_threads(int n);
int rr_blas_get_threads(void);

/* ---- row kernels.  Rows are `cols` wide and contiguous (row stride cols);
 * indices must be valid rows of the table (checked by the caller). */

/* out[i, :] = table[idx[i], :]  for i < n.  out (n, cols). */
void rr_rows_gather(float *out, const float *table, size_t cols, const int32_t *idx, size_t n);
/* table[idx[i], :] += alpha * g[i, :]  for i < n, in order, so repeated
 * indices accumulate.  g (n, cols). */
void rr_rows_scatter_add(float *table, size_t cols, const int32_t *idx, size_t n, float alpha,
                         const float *g);
/* out[i, :] += bias  for every row of out (rows, cols). */
void rr_rows_add_bias(float *out, size_t rows, size_t cols, const float *bias);
/* acc[:] += sum over rows of x (rows, cols). */
void rr_rows_sum_add(float *acc, const float *x, size_t rows, size_t cols);

/* y += a * x */
void rr_saxpy(size_t n, float a, const float *x, float *y);
void rr_daxpy(size_t n, double a, const double *x, double *y);
/* sum x[i] * y[i]; the float version accumulates in float lanes. */
float rr_sdot(size_t n, const float *x, const float *y);
double rr_ddot(size_t n, const double *x, const double *y);
/* x *= a */
void rr_sscal(size_t n, float a, float *x);

#endif /* RR_GEMM_H */
