/* test_gemm.c - the BLAS GEMM path and the packed AVX-512 kernel against
 * the plain reference kernels
 * (float and double) on random shapes with every transpose combination,
 * odd sizes, padded leading dimensions and alpha/beta cases; the row
 * kernels (gather, scatter-add with repeated rows, bias, column sums, axpy,
 * dot, scal) against naive loops; BLAS thread control. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn/gemm.h"
#include "util/util.h"

static size_t g_avx512_cases; /* gemm_case calls the AVX-512 kernel ran */

static size_t rnd_size(rr_rng *r, size_t lo, size_t hi) {
    return lo + (size_t)rr_rng_below(r, (uint64_t)(hi - lo + 1));
}

/* One GEMM case: C = alpha op(A) op(B) + beta C through rr_sgemm (BLAS),
 * rr_sgemm_ref and rr_dgemm_ref (the ground truth); returns the number of
 * elements out of tolerance. */
static int gemm_case(rr_rng *r, bool ta, bool tb, size_t M, size_t N, size_t K, float alpha,
                     float beta, size_t pad) {
    const size_t ar = ta ? K : M, ac = ta ? M : K; /* A stored (ar, ac) */
    const size_t br = tb ? N : K, bc = tb ? K : N; /* B stored (br, bc) */
    const size_t lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    float *A = malloc((ar * lda + 1) * sizeof(float)), *B = malloc((br * ldb + 1) * sizeof(float));
    float *C0 = malloc((M * ldc + 1) * sizeof(float)), *C1 = malloc((M * ldc + 1) * sizeof(float));
    float *C2 = malloc((M * ldc + 1) * sizeof(float));
    double *dA = malloc((ar * lda + 1) * sizeof(double)), *dB = malloc((br * ldb + 1) * sizeof(double));
    double *dC = malloc((M * ldc + 1) * sizeof(double));
    for (size_t i = 0; i < ar * lda; i++) dA[i] = A[i] = 2 * rr_rng_uniformf(r) - 1;
    for (size_t i = 0; i < br * ldb; i++) dB[i] = B[i] = 2 * rr_rng_uniformf(r) - 1;
    for (size_t i = 0; i < M * ldc; i++) {
        /* With beta == 0 the old C must be ignored, NaN included. */
        C0[i] = beta == 0 ? NAN : 2 * rr_rng_uniformf(r) - 1;
        dC[i] = C0[i];
    }
    memcpy(C1, C0, M * ldc * sizeof(float));
    memcpy(C2, C0, M * ldc * sizeof(float));
    bool old = rr_gemm_force_ref(false);
    rr_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
    rr_gemm_force_ref(true);
    rr_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc); /* routed to ref */
    rr_gemm_force_ref(old);
    rr_dgemm_ref(ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc);
    float *C3 = malloc((M * ldc + 1) * sizeof(float));
    memcpy(C3, C0, M * ldc * sizeof(float));
    rr_sgemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C3, ldc);
    /* the packed AVX-512 kernel by itself (C4 = C0 where the CPU lacks it) */
    float *C4 = malloc((M * ldc + 1) * sizeof(float));
    memcpy(C4, C0, M * ldc * sizeof(float));
    if (M && N && K && rr_sgemm_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C4, ldc)) g_avx512_cases++;
    else memcpy(C4, C1, M * ldc * sizeof(float));

    /* |entries| <= K |alpha| + |beta|: float error bound with headroom. */
    const double tol = 4.0 * FLT_EPSILON * ((double)K * fabs((double)alpha) + fabs((double)beta) + 1);
    int bad = 0;
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < ldc; j++) {
            size_t k = i * ldc + j;
            if (j >= N) { /* padding is never written */
                bad += !(memcmp(&C1[k], &C0[k], sizeof(float)) == 0);
                bad += !(memcmp(&C2[k], &C0[k], sizeof(float)) == 0);
                bad += !(memcmp(&C4[k], &C0[k], sizeof(float)) == 0);
                continue;
            }
            bad += !(fabs((double)C1[k] - dC[k]) <= tol);
            bad += !(fabs((double)C4[k] - dC[k]) <= tol);
            bad += !(fabs((double)C2[k] - dC[k]) <= tol);
            bad += !(memcmp(&C2[k], &C3[k], sizeof(float)) == 0); /* same kernel */
        }
    if (bad)
        fprintf(stderr, "gemm ta=%d tb=%d M=%zu N=%zu K=%zu alpha=%g beta=%g pad=%zu: %d bad\n", ta,
                tb, M, N, K, alpha, beta, pad, bad);
    free(A), free(B), free(C0), free(C1), free(C2), free(C3), free(C4), free(dA), free(dB), free(dC);
    return bad;
}

static void check_gemm(void) {
    rr_rng r;
    rr_rng_seed(&r, 11);
    const float alphas[] = {1.0f, -0.5f, 2.0f, 0.0f}, betas[] = {0.0f, 1.0f, 0.3f};
    int bad = 0, n = check_small() ? 40 : 200;
    for (int it = 0; it < n; it++) {
        bool ta = it & 1, tb = (it >> 1) & 1;
        size_t M = rnd_size(&r, 1, 37), N = rnd_size(&r, 1, 41), K = rnd_size(&r, 1, 67);
        bad += gemm_case(&r, ta, tb, M, N, K, alphas[it % 4], betas[(it / 4) % 3], (size_t)it % 3);
    }
    /* Degenerate shapes: K = 0 scales C by beta; empty outputs. */
    bad += gemm_case(&r, false, true, 5, 7, 0, 1.0f, 0.5f, 0);
    bad += gemm_case(&r, true, false, 5, 7, 0, 1.0f, 0.0f, 1);
    bad += gemm_case(&r, false, false, 0, 7, 3, 1.0f, 1.0f, 0);
    /* The training shapes: h (32, 100) Whh^T, scores (32, 100) x (2080, 100)^T,
     * the weight gradient dgh^T h. */
    bad += gemm_case(&r, false, true, 32, 300, 100, 1.0f, 0.0f, 0);
    bad += gemm_case(&r, true, false, 300, 100, 32, 1.0f, 1.0f, 0);
    if (!check_small()) bad += gemm_case(&r, false, true, 32, 2080, 100, 1.0f, 0.0f, 0);
    /* Past the AVX-512 kernel's blocks: K beyond one 256 slice, M beyond
     * 128 rows, N beyond 2048 columns, ragged edges, every transpose. */
    for (int it = 0; it < (check_small() ? 4 : 12); it++) {
        bool ta = it & 1, tb = (it >> 1) & 1;
        size_t M = rnd_size(&r, 9, 150), N = rnd_size(&r, 1, 90), K = rnd_size(&r, 200, 600);
        bad += gemm_case(&r, ta, tb, M, N, K, alphas[it % 4], betas[it % 3], (size_t)it % 3);
    }
    bad += gemm_case(&r, false, true, 11, 2100, 40, 1.0f, 0.3f, 1);
    CHECK_MSG(bad == 0, "%d GEMM elements out of tolerance", bad);
    if (rr_sgemm_avx512(false, false, 1, 1, 1, 1.0f, alphas, 1, alphas, 1, 0.0f, &(float){0}, 1))
        CHECK(g_avx512_cases > 40); /* the kernel ran in the cases above */
    else
        printf("note: no AVX-512: the packed kernel is not tested here\n");

    /* An entry of the AVX-512 kernel depends on its row, column and K only:
     * the same rows computed among 150 and alone give the same bits. */
    if (rr_sgemm_avx512(false, false, 1, 1, 1, 1.0f, alphas, 1, alphas, 1, 0.0f, &(float){0}, 1)) {
        enum { MM = 150, NN = 70, KK = 530 };
        float *A = malloc(MM * KK * sizeof(float)), *B = malloc(NN * KK * sizeof(float));
        float *Cm = malloc(MM * NN * sizeof(float)), *Ci = malloc(NN * sizeof(float));
        for (size_t i = 0; i < (size_t)MM * KK; i++) A[i] = 2 * rr_rng_uniformf(&r) - 1;
        for (size_t i = 0; i < (size_t)NN * KK; i++) B[i] = 2 * rr_rng_uniformf(&r) - 1;
        CHECK(rr_sgemm_avx512(false, true, MM, NN, KK, 1.0f, A, KK, B, KK, 0.0f, Cm, NN));
        size_t diff = 0;
        for (size_t i = 0; i < MM; i += 7) {
            CHECK(rr_sgemm_avx512(false, true, 1, NN - 3, KK, 1.0f, A + i * KK, KK, B + 3 * KK, KK, 0.0f, Ci, NN));
            diff += memcmp(Ci, Cm + i * NN + 3, (NN - 3) * sizeof(float)) != 0;
        }
        CHECK_MSG(diff == 0, "%zu rows differ between M = %d and M = 1", diff, MM);
        free(A), free(B), free(Cm), free(Ci);
    }

    /* A planted error must be seen: the kernels are not trivially equal. */
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {0};
    rr_sgemm(false, false, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    CHECK(c[0] == 19 && c[1] == 22 && c[2] == 43 && c[3] == 50);
    rr_sgemm(true, true, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2); /* A^T B^T */
    CHECK(c[0] == 23 && c[1] == 31 && c[2] == 34 && c[3] == 46);
}

static void check_rows(void) {
    rr_rng r;
    rr_rng_seed(&r, 5);
    enum { ROWS = 13, COLS = 37, N = 50 };
    float table[ROWS * COLS], ref[ROWS * COLS], g[N * COLS], out[N * COLS];
    int32_t idx[N];
    for (size_t i = 0; i < ROWS * COLS; i++) ref[i] = table[i] = rr_rng_uniformf(&r);
    for (size_t i = 0; i < N * COLS; i++) g[i] = rr_rng_uniformf(&r) - 0.5f;
    for (size_t i = 0; i < N; i++) idx[i] = (int32_t)rr_rng_below(&r, ROWS); /* repeats */

    rr_rows_gather(out, table, COLS, idx, N);
    int ok = 1;
    for (size_t i = 0; i < N; i++)
        ok &= memcmp(out + i * COLS, table + (size_t)idx[i] * COLS, COLS * sizeof(float)) == 0;
    CHECK(ok);

    rr_rows_scatter_add(table, COLS, idx, N, -0.25f, g);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < COLS; j++) ref[(size_t)idx[i] * COLS + j] += -0.25f * g[i * COLS + j];
    double e = 0;
    for (size_t i = 0; i < ROWS * COLS; i++) e = fmax(e, fabs((double)table[i] - ref[i]));
    CHECK_MSG(e < 1e-6, "scatter-add diff %g", e);

    float bias[COLS], acc[COLS], acc_ref[COLS];
    for (size_t j = 0; j < COLS; j++) bias[j] = (float)j, acc[j] = acc_ref[j] = 1.0f;
    memcpy(out, g, sizeof g);
    rr_rows_add_bias(out, N, COLS, bias);
    ok = 1;
    for (size_t i = 0; i < N * COLS; i++) ok &= out[i] == g[i] + bias[i % COLS];
    CHECK(ok);
    rr_rows_sum_add(acc, g, N, COLS);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < COLS; j++) acc_ref[j] += g[i * COLS + j];
    e = 0;
    for (size_t j = 0; j < COLS; j++) e = fmax(e, fabs((double)acc[j] - acc_ref[j]));
    CHECK_MSG(e < 1e-5, "column sums diff %g", e);

    /* axpy / dot / scal on an odd length */
    enum { L = 1001 };
    float x[L], y[L], y0[L];
    double dx[L], dy[L], sd = 0;
    for (size_t i = 0; i < L; i++) {
        x[i] = rr_rng_uniformf(&r) - 0.5f;
        y[i] = y0[i] = rr_rng_uniformf(&r);
        dx[i] = x[i], dy[i] = y[i];
        sd += (double)x[i] * (double)y[i];
    }
    CHECK_NEAR(rr_sdot(L, x, y), sd, 1e-4);
    CHECK_NEAR(rr_ddot(L, dx, dy), sd, 1e-12);
    rr_saxpy(L, 3.0f, x, y);
    rr_daxpy(L, 3.0, dx, dy);
    ok = 1;
    for (size_t i = 0; i < L; i++) ok &= fabs((double)y[i] - (y0[i] + 3.0 * x[i])) < 1e-6 &&
                                       fabs(dy[i] - ((double)y0[i] + 3.0 * (double)x[i])) < 1e-12;
    CHECK(ok);
    rr_sscal(L, 0.5f, y);
    CHECK_NEAR(y[7], (y0[7] + 3.0 * x[7]) * 0.5, 1e-6);
}

static void check_threads(void) {
    int old = rr_blas_get_threads();
    CHECK(old >= 1);
    rr_blas_set_threads(1);
    CHECK(rr_blas_get_threads() == 1);
    rr_blas_set_threads(0); /* clamped to 1 */
    CHECK(rr_blas_get_threads() == 1);
    rr_blas_set_threads(old);
    CHECK(rr_blas_get_threads() == old);
}

int main(void) {
    check_gemm();
    check_rows();
    check_threads();
    return check_summary("test_gemm");
}
