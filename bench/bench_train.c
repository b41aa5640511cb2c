/* bench_train.c - training throughput of the RNN trainer on a synthetic
 * log, and how close it gets to the FLOP floor set by this machine's GEMM
 * rate.
 *
 *   bench_train [--shape rsc15|diginetica] [--events N] [--items N]
 *               [--epochs E] [--threads T] [--eval]
 *
 * rsc15 shape: GRU 100, batch 32, 2048 samples, cross-entropy with logQ
 * (GRU4Rec's rsc15 preset); diginetica shape: GRU 512, batch 128, bpr-max
 * with ELU (its diginetica preset).  Defaults: 1M events over 40k items.
 * FLOPs per training event (one target): the three score GEMMs
 * 6 * (B + S) * H plus, per layer, 2 * G*H * (3 * in + 2 * H) for the input
 * projection (forward, dW, dx) and the recurrent one (forward, dW).  The
 * floor is that count divided by T times the rate of one (B, B + S, H)
 * GEMM on one thread (OpenBLAS runs single-threaded inside the trainer's
 * T threads).  The profile splits the training wall time into the
 * trainer's stages (train/trainer.h), as its first thread sees them.
 * --eval also times rr_evaluate of the trained model over a 50k-event
 * held-out log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "nn/gemm.h"
#include "train/trainer.h"
#include "rnnrec.h"
#include "util/util.h"

static void log_sink(int level, const char *msg, void *user) {
    (void)user;
    if (level <= 1) fprintf(stderr, "%s\n", msg);
}

/* GFLOP/s of C (M, N) = A (M, K) B (N, K)^T, the scoring shape. */
static double gemm_rate(size_t M, size_t N, size_t K) {
    float *A = rr_alloc_aligned(M * K * sizeof(float)), *B = rr_alloc_aligned(N * K * sizeof(float)),
          *C = rr_alloc_aligned(M * N * sizeof(float));
    for (size_t i = 0; i < M * K; i++) A[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < N * K; i++) B[i] = (float)(i % 5) * 0.1f;
    rr_sgemm(false, true, M, N, K, 1, A, K, B, K, 0, C, N);
    size_t reps = 0;
    double t0 = rr_now(), t;
    do {
        for (int r = 0; r < 10; r++) rr_sgemm(false, true, M, N, K, 1, A, K, B, K, 0, C, N);
        reps += 10;
        t = rr_now() - t0;
    } while (t < 1.0);
    rr_free_aligned(A);
    rr_free_aligned(B);
    rr_free_aligned(C);
    return 2.0 * (double)M * (double)N * (double)K * (double)reps / t / 1e9;
}

int main(int argc, char **argv) {
    const char *shape = "rsc15";
    size_t events = 1000000, items = 40000, epochs = 1;
    int threads = 2, do_eval = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape = argv[++i];
        else if (!strcmp(argv[i], "--events") && i + 1 < argc) events = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--items") && i + 1 < argc) items = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--eval")) do_eval = 1;
        else {
            fprintf(stderr, "usage: bench_train [--shape rsc15|diginetica] [--events N] [--items N] "
                            "[--epochs E] [--threads T] [--eval]\n");
            return 2;
        }
    }
    rr_log_set(log_sink, NULL, 1);
    rr_error err;
    rr_train_params p;
    rr_train_params_default(&p);
    if (rr_train_params_preset(&p, shape, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    p.epochs = epochs;
    p.threads = threads;
    p.verbose = 0;

    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.n_events = events;
    sp.n_items = items;
    sp.seed = 7;
    rr_dataset *d = NULL;
    if (rr_synth_generate(&sp, &d, &err)) {
        fprintf(stderr, "synth: %s\n", err.msg);
        return 1;
    }
    size_t n_items = rr_dataset_n_items(d);
    const size_t B = p.batch_size, S = p.n_sample, H = p.layers[0], G = 3;
    double flops_ev = 6.0 * (double)(B + S) * (double)H + 2.0 * (double)(G * H) * (3.0 * (double)H + 2.0 * (double)H);
    rr_blas_set_threads(1);
    double rate1 = gemm_rate(B, B + S, H), rate = rate1 * (double)threads;

    double t0 = rr_now();
    rr_model *m = NULL;
    rr_train_prof prof;
    memset(&prof, 0, sizeof prof);
    if (rr_rnn_fit_prof(&m, d, NULL, &p, &prof, &err)) {
        fprintf(stderr, "train: %s\n", err.msg);
        return 1;
    }
    double secs = rr_now() - t0;
    size_t n_ev = 0, n_sess = rr_dataset_n_sessions(d);
    for (size_t s = 0; s < n_sess; s++) {
        size_t len = (size_t)(d->s.offsets[s + 1] - d->s.offsets[s]);
        if (len >= 2) n_ev += len - 1;
    }
    n_ev *= epochs;
    double eps = (double)n_ev / secs;
    double floor_eps = rate * 1e9 / flops_ev;
    printf("bench_train shape=%s threads=%d events=%zu items=%zu sessions=%zu epochs=%zu\n", shape, threads,
           events, n_items, n_sess, epochs);
    printf("  train: %zu target events in %.2f s = %.0f events/s  (%.2f MFLOP/event, %.1f GFLOP/s)\n", n_ev, secs,
           eps, flops_ev / 1e6, eps * flops_ev / 1e9);
    printf("  gemm (%zu x %zu x %zu): %.1f GFLOP/s on one thread, x %d -> floor %.0f events/s; achieved %.1f%% "
           "of floor\n",
           B, B + S, H, rate1, threads, floor_eps, 100.0 * eps / floor_eps);
    double tot = 0;
    for (int k = 0; k < RR_TS_N; k++) tot += prof.sec[k];
    printf("  profile (%llu steps, %.1f us/step):", (unsigned long long)prof.steps,
           prof.steps ? 1e6 * tot / (double)prof.steps : 0.0);
    for (int k = 0; k < RR_TS_N; k++)
        printf("%s %s %.1f us (%.0f%%)", k ? "," : "", rr_train_stage_name((rr_train_stage)k),
               prof.steps ? 1e6 * prof.sec[k] / (double)prof.steps : 0.0, tot > 0 ? 100.0 * prof.sec[k] / tot : 0.0);
    printf("\n");
    printf("  peak RSS %.1f MB\n", (double)rr_peak_rss_kb() / 1024.0);
    if (do_eval) {
        rr_eval_params ep;
        rr_eval_params_default(&ep);
        ep.threads = threads;
        ep.n_cutoffs = 1;
        ep.cutoffs[0] = 20;
        rr_eval_result res;
        rr_dataset *te = NULL;
        sp.seed = 8; /* a held-out log from the same generator: same item ids */
        sp.n_events = 50000;
        if (rr_synth_generate(&sp, &te, &err)) {
            fprintf(stderr, "synth: %s\n", err.msg);
            return 1;
        }
        if (rr_evaluate(m, te, &ep, &res, &err)) {
            fprintf(stderr, "eval: %s\n", err.msg);
            return 1;
        }
        printf("  eval: %zu targets over %zu items in %.2f s = %.0f targets/s (recall@20 %.4f)\n", res.n_targets,
               res.n_items, res.seconds, (double)res.n_targets / res.seconds, res.recall[0]);
        rr_dataset_free(te);
    }
    rr_model_free(m);
    rr_dataset_free(d);
    return 0;
}
