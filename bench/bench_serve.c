/* bench_serve.c - the scoring floor under the server: time of one
 * rr_recommend call for n sessions of 5 items (n = 1, 8, 16, 32, 64), on
 * the model given, single caller thread.  Requests per second at batch n
 * is n / time; the HTTP numbers of bench_serve.sh sit above this floor.
 *
 *   bench_serve MODEL [REPEATS] */
#include <stdio.h>
#include <stdlib.h>

#include "rnnrec.h"
#include "util/util.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_serve MODEL [REPEATS]\n");
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    rr_error err;
    rr_model *m = NULL;
    if (rr_model_load(argv[1], &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
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
    static int32_t top[NMAX * K];
    static float sc[NMAX * K];
    printf("model %s, %zu items\n", rr_model_kind(m), ni);
    const size_t ns[] = {1, 8, 16, 32, 64};
    for (size_t q = 0; q < sizeof ns / sizeof ns[0]; q++) {
        size_t n = ns[q];
        double best = 1e9;
        for (int rep = 0; rep < reps; rep++) {
            double t0 = rr_now();
            if (rr_recommend(m, st, n, K, 0, top, sc, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            double dt = rr_now() - t0;
            if (dt < best) best = dt;
        }
        printf("n=%2zu: best %.3f ms per call, %.0f sessions/s\n", n, best * 1e3, (double)n / best);
    }
    for (int i = 0; i < NMAX; i++) rr_state_free(st[i]);
    rr_model_free(m);
    return 0;
}
