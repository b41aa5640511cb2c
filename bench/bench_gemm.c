/* bench_gemm.c - sustained cblas_sgemm throughput (through rr_sgemm) on the
 * shapes that dominate training and evaluation, with 1 and 2 BLAS threads,
 * and the read bandwidth of streaming a 17 MB table.  These are the speed
 * floor: a training step cannot beat its scoring GEMMs, a full-catalogue
 * evaluation cannot beat one pass over the item table.
 *
 * Also one GRU/LSTM/RNN cell step (forward, backward) at B = 32, H = 100.
 *
 * usage: bench_gemm [SECONDS_PER_MEASUREMENT]   (default 0.5)
 * Output: one "name: value unit" line per measurement; rates are the best of
 * five windows with the median beside it (the machine may be shared). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/cell.h"
#include "nn/gemm.h"
#include "util/util.h"

typedef struct shape {
    const char *name;
    bool ta, tb;
    size_t M, N, K;
    float beta;
} shape;

/* C (M, N) = op(A) op(B): scores = H (B, K) O^T with O (N, K) item rows;
 * the backward shapes of the training step: dH = dS (B, N) O (N, K) and
 * dO = dS^T (N, B) H (B, K). */
static const shape shapes[] = {
    /* the GRU recurrent projection h_prev Whh^T at B = 32, H = 100 */
    {"rec_proj_32x100x300", false, true, 32, 300, 100, 0.0f},
    {"score_train_32x100x2080", false, true, 32, 2080, 100, 0.0f},
    {"score_train_bwd_dH_32x2080x100", false, false, 32, 100, 2080, 0.0f},
    {"score_train_bwd_dO_2080x32x100", true, false, 2080, 100, 32, 0.0f},
    {"score_train_128x512x2176", false, true, 128, 2176, 512, 0.0f},
    {"score_eval_512x100x43000", false, true, 512, 43000, 100, 0.0f},
    {"score_eval_256x512x43000", false, true, 256, 43000, 512, 0.0f},
    /* the eval shape in item blocks whose score block stays in cache */
    {"score_eval_block_512x100x4096", false, true, 512, 4096, 100, 0.0f},
};

static float *rand_buf(size_t n, rr_rng *r) {
    float *p = rr_alloc_aligned(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = rr_rng_uniformf(r) - 0.5f;
    return p;
}

/* The rate of each of WINDOWS back-to-back windows of min_s / WINDOWS
 * seconds; best and median are reported, as the machine may be shared. */
enum { WINDOWS = 5 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench_shape(const shape *s, int threads, double min_s, rr_rng *r) {
    const size_t ar = s->ta ? s->K : s->M, ac = s->ta ? s->M : s->K;
    const size_t br = s->tb ? s->N : s->K, bc = s->tb ? s->K : s->N;
    float *A = rand_buf(ar * ac, r), *B = rand_buf(br * bc, r), *C = rand_buf(s->M * s->N, r);
    const double flop = 2.0 * (double)s->M * (double)s->N * (double)s->K;
    double rate[WINDOWS];
    rr_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, ac, B, bc, s->beta, C, s->N); /* warm */
    for (int w = 0; w < WINDOWS; w++) {
        size_t reps = 0;
        double t0 = rr_now(), t;
        do {
            rr_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, ac, B, bc, s->beta, C, s->N);
            reps++;
            t = rr_now() - t0;
        } while (t < min_s / WINDOWS);
        rate[w] = flop * (double)reps / t * 1e-9;
    }
    qsort(rate, WINDOWS, sizeof rate[0], cmp_double);
    printf("sgemm_%s_t%d: %.1f GFLOP/s (median %.1f)\n", s->name, threads, rate[WINDOWS - 1],
           rate[WINDOWS / 2]);
    rr_free_aligned(A), rr_free_aligned(B), rr_free_aligned(C);
}

/* Read rate of a (rows, cols) float table, summed row by row as a scorer
 * would stream it; best and median window as above. */
static void bench_stream(size_t rows, size_t cols, int threads, double min_s, rr_rng *r,
                         double *sink) {
    float *tab = rand_buf(rows * cols, r);
    const double bytes = (double)(rows * cols * sizeof(float));
    double rate[WINDOWS], acc = 0;
    for (int w = 0; w < WINDOWS; w++) {
        size_t reps = 0;
        double t0 = rr_now(), t;
        do {
            double s = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : s) schedule(static)
            for (size_t i = 0; i < rows; i++) {
                const float *row = tab + i * cols;
                float rs = 0;
#pragma omp simd reduction(+ : rs)
                for (size_t j = 0; j < cols; j++) rs += row[j];
                s += rs;
            }
            acc += s;
            reps++;
            t = rr_now() - t0;
        } while (t < min_s / WINDOWS);
        rate[w] = bytes * (double)reps / t * 1e-9;
    }
    *sink += acc;
    qsort(rate, WINDOWS, sizeof rate[0], cmp_double);
    printf("stream_read_%zux%zu_%.0fMB_t%d: %.2f GB/s (median %.2f)\n", rows, cols, bytes * 1e-6,
           threads, rate[WINDOWS - 1], rate[WINDOWS / 2]);
    rr_free_aligned(tab);
}

/* One cell step, forward then backward, at the GRU4Rec training shape:
 * microseconds per step, best window. */
static void bench_cell(rr_cell_kind kind, size_t B, size_t H, double min_s, rr_rng *r) {
    const rr_cell_ops *o = rr_cell_get(kind);
    const size_t GH = o->gates * H, sH = o->state_mult * H, cH = o->cache_mult * H;
    float *gi = rand_buf(B * GH, r), *sp = rand_buf(B * sH, r), *sn = rand_buf(B * sH, r);
    float *cache = rand_buf(B * cH, r), *scr = rand_buf(B * GH, r), *W = rand_buf(GH * H, r);
    float *bh = rand_buf(GH, r), *dW = rand_buf(GH * H, r), *db = rand_buf(GH, r);
    float *dh = rand_buf(B * H, r), *dgi = rand_buf(B * GH, r);
    double best_f = INFINITY, best_b = INFINITY;
    for (int w = 0; w < WINDOWS; w++) {
        size_t reps = 0;
        double tf = 0, tb = 0, t0 = rr_now();
        do {
            double a = rr_now();
            o->forward(sn, cache, B, H, gi, sp, W, bh, scr);
            double b = rr_now();
            o->backward(dgi, dW, db, B, H, dh, sp, cache, W, scr);
            tb += rr_now() - b;
            tf += b - a;
            reps++;
        } while (rr_now() - t0 < min_s / WINDOWS);
        best_f = fmin(best_f, tf / (double)reps);
        best_b = fmin(best_b, tb / (double)reps);
    }
    static const char *names[] = {"gru", "lstm", "rnn_tanh", "rnn_relu"};
    printf("cell_%s_%zux%zu_fwd_t1: %.1f us\n", names[kind], B, H, best_f * 1e6);
    printf("cell_%s_%zux%zu_bwd_t1: %.1f us\n", names[kind], B, H, best_b * 1e6);
    float *bufs[] = {gi, sp, sn, cache, scr, W, bh, dW, db, dh, dgi};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) rr_free_aligned(bufs[i]);
}

int main(int argc, char **argv) {
    double min_s = argc > 1 ? atof(argv[1]) : 0.5;
    if (!(min_s > 0)) min_s = 0.5;
    rr_rng r;
    rr_rng_seed(&r, 1);
    int old = rr_blas_get_threads();
    for (int th = 1; th <= 2; th++) {
        rr_blas_set_threads(th);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            bench_shape(&shapes[i], th, min_s, &r);
        fflush(stdout);
    }
    rr_blas_set_threads(1);
    for (int k = 0; k < 4; k++) bench_cell((rr_cell_kind)k, 32, 100, min_s, &r);
    rr_blas_set_threads(old);
    double sink = 0;
    /* 43000 x 100 floats = 17.2 MB: an item table of the eval catalogue;
     * 4x that (69 MB) no longer fits a 32 MB L3: the DRAM rate. */
    for (int th = 1; th <= 2; th++) bench_stream(43000, 100, th, min_s, &r, &sink);
    for (int th = 1; th <= 2; th++) bench_stream(172000, 100, th, min_s, &r, &sink);
    if (!isfinite(sink)) printf("(sink %g)\n", sink);
    return 0;
}
