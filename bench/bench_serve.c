/* bench_serve.c - the scoring floor under the server: time of one
 * rr_recommend call for n sessions of 5 items (n = 1, 8, 16, 32, 64), on
 * the model given, single caller thread, and of the same ranking through
 * the quantised screens, 16 and 8 bits (rr_model_use_screen, what the
 * server's batcher runs for a linear head; identical results, checked here).
 * Requests per second at batch n is n / time; the HTTP numbers of bench_serve.sh sit
 * above this floor.
 * Best and median of REPEATS calls, wall clock, and the calling thread's
 * CPU time per call (on a shared machine the wall clock also says how
 * much CPU the process got).  Threads that split one call: OMP_NUM_THREADS.
 *
 *   bench_serve [MODEL [REPEATS]]
 * Without MODEL: an untrained GRU (100 units, tied embedding, GRU4Rec's
 * initialisation) over 43,000 items, built in memory. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <string.h>

#include "data/dataset.h"
#include "models/model.h"
#include "models/rnn.h"
#include "rnnrec.h"
#include "util/util.h"

/* The in-memory GRU: items "1".."N", three events per item for counts. */
static rr_model *random_gru(size_t H, size_t N, rr_error *err) {
    rr_rng rng;
    rr_rng_seed(&rng, 7);
    rr_dataset *d = rr_dataset_new();
    if (!d || rr_sessions_alloc(&d->s, N, 3 * N, err)) return NULL;
    d->sess_id = malloc(N * sizeof *d->sess_id);
    char id[32];
    for (size_t i = 0; i < N; i++) {
        int32_t ix;
        snprintf(id, sizeof id, "%zu", i + 1);
        rr_vocab_add(&d->items, id, strlen(id), &ix, NULL);
    }
    size_t e = 0;
    for (size_t s = 0; s < N; s++) {
        snprintf(id, sizeof id, "s%zu", s);
        rr_vocab_add(&d->sessions, id, strlen(id), &d->sess_id[s], NULL);
        for (int j = 0; j < 3; j++, e++) {
            d->s.items[e] = j == 0 ? (int32_t)s : (int32_t)rr_rng_below(&rng, N);
            d->s.times[e] = (double)e;
        }
        d->s.offsets[s + 1] = (int64_t)e;
    }
    rr_model *m = NULL;
    rr_status st = rr_model_new_common(&m, &rr_gru_ops, d, err);
    rr_dataset_free(d);
    if (st) return NULL;
    rr_rnn_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.cell = RR_CELL_GRU;
    sh.n_items = N;
    sh.n_layers = 1;
    sh.layers[0] = H;
    sh.embedding = -1;
    sh.final_act = RR_ACT_LINEAR;
    rr_rnn *r = NULL;
    if (rr_rnn_new(&r, &sh, err)) {
        rr_model_free(m);
        return NULL;
    }
    rr_rnn_init(r, &rng);
    m->impl = r;
    return m;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    if (reps < 1) reps = 1;
    double *times = malloc((size_t)reps * sizeof *times);
    rr_error err;
    rr_model *m = NULL;
    if (argc < 2) m = random_gru(100, 43000, &err);
    else rr_model_load(argv[1], &m, &err);
    if (!m) {
        fprintf(stderr, "bench_serve: %s\n", err.msg);
        return 1;
    }
    size_t ni = rr_model_n_items(m);
    enum { NMAX = 64, K = 20 };
    rr_state *st[NMAX];
    rr_rng r;
    rr_rng_seed(&r, 3);
    for (int i = 0; i < NMAX; i++) {
        st[i] = rr_state_new(m);
        for (int t = 0; t < 5; t++) rr_state_feed(st[i], (int32_t)rr_rng_below(&r, ni));
    }
    {
        /* What an HTTP worker does per stateless request before scoring. */
        double t0 = rr_now();
        int nrep = 2000;
        for (int i = 0; i < nrep; i++) {
            rr_state *x = rr_state_new(m);
            for (int t = 0; t < 5; t++) rr_state_feed(x, (int32_t)rr_rng_below(&r, ni));
            rr_state_free(x);
        }
        printf("rr_state_new + 5 x rr_state_feed: %.1f us\n", (rr_now() - t0) / nrep * 1e6);
    }
    static int32_t top[NMAX * K], top2[NMAX * K];
    static float sc[NMAX * K], sc2[NMAX * K];
    printf("model %s, %zu items\n", rr_model_kind(m), ni);
    /* pass 0: the exact engine; 1 and 2: rr_model_use_screen(16 / 8), as
     * the server's batcher runs it (tiles of 16 by the fused engine, a
     * remainder of up to 4 sessions one at a time) */
    static const int bits[3] = {0, 16, 8};
    int passes = 3;
    if (rr_model_use_screen(m, 16, &err)) {
        fprintf(stderr, "bench_serve: %s\n", err.msg);
        return 1;
    }
    if (!rr_model_screen_bits(m)) {
        printf("(no screen: a non-linear head or no AVX-512 VNNI; the exact engine only)\n");
        passes = 1;
    }
    const size_t ns[] = {1, 4, 8, 16, 20, 32, 64};
    for (size_t q = 0; q < sizeof ns / sizeof ns[0]; q++) {
        size_t n = ns[q];
        for (int pass = 0; pass < passes; pass++) {
            if (rr_model_use_screen(m, bits[pass], &err)) {
                fprintf(stderr, "bench_serve: %s\n", err.msg);
                return 1;
            }
            int32_t *tp = pass ? top2 : top;
            float *sp = pass ? sc2 : sc;
            double c0 = thread_cpu();
            for (int rep = 0; rep < reps; rep++) {
                double t0 = rr_now();
                if (rr_recommend(m, st, n, K, 0, tp, sp, &err)) {
                    fprintf(stderr, "%s\n", err.msg);
                    return 1;
                }
                times[rep] = rr_now() - t0;
            }
            double cpu = (thread_cpu() - c0) / reps;
            qsort(times, (size_t)reps, sizeof *times, cmp_d);
            double best = times[0], med = times[reps / 2];
            printf("n=%2zu %-9s best %.3f ms, median %.3f ms per call (caller cpu %.3f ms), %.0f sessions/s at best\n",
                   n, pass == 0 ? "exact" : pass == 1 ? "screen16" : "screen8", best * 1e3, med * 1e3, cpu * 1e3, (double)n / best);
            if (pass && (memcmp(top, top2, n * K * sizeof *top) || memcmp(sc, sc2, n * K * sizeof *sc))) {
                fprintf(stderr, "bench_serve: the screened ranking differs from the exact one at n=%zu\n", n);
                return 1;
            }
        }
    }
    for (int i = 0; i < NMAX; i++) rr_state_free(st[i]);
    rr_model_free(m);
    free(times);
    return 0;
}
