/* bench_loss.c - time of the training-loop pieces owned by train/: every
 * loss on GRU4Rec-sized score blocks, the sampler refill, the optimisers'
 * sparse and dense updates.  Threads follow OMP_NUM_THREADS.
 * Usage: bench_loss [B] [S] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "train/loss.h"
#include "train/optim.h"
#include "train/sampler.h"
#include "util/util.h"

/* CPU time of the calling thread: the build machine is shared, and wall
 * time there mostly measures the neighbours. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double best_of(int reps, double (*fn)(void *), void *arg) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = fn(arg);
        if (t < best) best = t;
    }
    return best;
}

typedef struct loss_arg {
    rr_loss_cfg cfg;
    size_t B, C;
    const float *O, *lq;
    float *dO, *sc;
    int iters;
} loss_arg;

static double run_loss(void *p) {
    loss_arg *a = p;
    double t0 = cpu_now(), sink = 0;
    for (int i = 0; i < a->iters; i++) sink += rr_loss_f32(&a->cfg, a->B, a->C, a->O, a->lq, a->dO, a->sc);
    double t = (cpu_now() - t0) / a->iters;
    if (sink == 12345.678) printf("!");
    return t;
}

int main(int argc, char **argv) {
    size_t B = argc > 1 ? (size_t)atol(argv[1]) : 256, S = argc > 2 ? (size_t)atol(argv[2]) : 2048;
    size_t C = B + S, n = B * C;
    float *O = malloc(n * sizeof *O), *dO = malloc(n * sizeof *dO);
    float *sc = malloc(rr_loss_scratch_floats(B, C) * sizeof *sc), *lq = malloc(C * sizeof *lq);
    rr_rng r;
    rr_rng_seed(&r, 1);
    for (size_t k = 0; k < n; k++) O[k] = (float)(rr_rng_normal(&r) * 2.0);
    for (size_t j = 0; j < C; j++) lq[j] = (float)(rr_rng_uniform(&r) * 5);
    struct {
        const char *name;
        rr_loss kind;
        double elu;
        int logq;
    } ls[] = {{"cross-entropy", RR_LOSS_CROSS_ENTROPY, 0, 0},
              {"xe+logq", RR_LOSS_CROSS_ENTROPY, 0, 1},
              {"bpr-max", RR_LOSS_BPR_MAX, 0, 0},
              {"bpr-max+elu", RR_LOSS_BPR_MAX, 0.5, 0},
              {"top1-max", RR_LOSS_TOP1_MAX, 0, 0},
              {"bpr", RR_LOSS_BPR, 0, 0},
              {"top1", RR_LOSS_TOP1, 0, 0}};
    printf("loss on (B=%zu, C=%zu) float scores (thread CPU time, best of 5; run with\n"
           "OMP_NUM_THREADS=1, else only the calling thread's share is counted)\n", B, C);
    for (size_t k = 0; k < sizeof ls / sizeof ls[0]; k++) {
        loss_arg a;
        memset(&a, 0, sizeof a);
        a.cfg.kind = ls[k].kind;
        a.cfg.bpreg = 1.0;
        a.cfg.elu = ls[k].elu;
        a.B = B;
        a.C = C;
        a.O = O;
        a.lq = ls[k].logq ? lq : NULL;
        a.dO = dO;
        a.sc = sc;
        a.iters = 20;
        double t = best_of(5, run_loss, &a);
        printf("  %-14s %8.1f us/call  %6.2f ns/score\n", ls[k].name, t * 1e6, t * 1e9 / (double)n);
    }

    /* sampler: GRU4Rec's default cache of 10M draws */
    size_t items = 50000;
    double *counts = malloc(items * sizeof *counts);
    for (size_t j = 0; j < items; j++) counts[j] = 1.0 + (double)(rr_rng_below(&r, 1000) * rr_rng_below(&r, 1000));
    const size_t catalog[] = {1000, 50000};
    for (size_t ci = 0; ci < 2; ci++) {
        rr_sampler *s;
        rr_error err;
        double t0 = cpu_now();
        if (rr_sampler_new(&s, counts, catalog[ci], 0.5, 2048, 10000000, 7, &err) != RR_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double t1 = cpu_now();
        printf("sampler: %zu items, 10M draws (one refill) in %.3f s\n", catalog[ci], t1 - t0);
        rr_sampler_free(s);
    }

    /* optimiser: a sparse update of C rows of a (50000, 100) table */
    size_t H = 100, rows_n = C < items ? C : items;
    float *w = calloc(items * H, sizeof *w), *s1 = calloc(items * H, sizeof *s1);
    float *s2 = calloc(items * H, sizeof *s2), *g = malloc(rows_n * H * sizeof *g);
    int32_t *rows = malloc(rows_n * sizeof *rows);
    for (size_t k = 0; k < rows_n; k++) rows[k] = (int32_t)(k * (items / rows_n));
    for (size_t k = 0; k < rows_n * H; k++) g[k] = (float)rr_rng_normal(&r);
    rr_optim_cfg oc = {RR_OPT_ADAGRAD, 0.05, 0.3, 0.9, 0.999, 1e-8};
    float *gd = malloc(items * H * sizeof *gd);
    for (size_t k = 0; k < items * H; k++) gd[k] = (float)rr_rng_normal(&r);
    rr_optim_dense(&oc, 1, items * H, w, gd, s1, s2); /* touch every page once */
    double t0 = cpu_now();
    for (int i = 1; i <= 50; i++) rr_optim_sparse(&oc, (uint64_t)i, H, rows_n, rows, g, w, s1, s2);
    double ts = (cpu_now() - t0) / 50;
    printf("adagrad+momentum sparse: %zu rows x %zu in %.1f us (%.2f ns/element)\n", rows_n, H,
           ts * 1e6, ts * 1e9 / (double)(rows_n * H));
    t0 = cpu_now();
    for (int i = 1; i <= 20; i++) rr_optim_dense(&oc, (uint64_t)i, items * H, w, gd, s1, s2);
    double td = (cpu_now() - t0) / 20;
    printf("adagrad+momentum dense: %zu floats in %.1f us (%.2f ns/element)\n", items * H, td * 1e6,
           td * 1e9 / (double)(items * H));
    free(gd);
    free(O);
    free(dO);
    free(sc);
    free(lq);
    free(counts);
    free(w);
    free(s1);
    free(s2);
    free(g);
    free(rows);
    return 0;
}
