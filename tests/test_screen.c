/* test_screen.c - the quantised screen (nn/screen.h) and the screened
 * ranking engine (rr_fused_rank_screened) against exact fp32 references.
 *
 * 1. Bound: on random and adversarial heads (huge and tiny norms, large
 *    biases, zero rows and vectors, D odd and not a multiple of 32, N not
 *    a multiple of the 12-item step), every (session, item) pair obeys
 *    |x - Y| <= Delta in double, fma(-2, Delta, Y) <= x, and the float
 *    decisions of fused.c (fl(Y - t) > Delta => x > t, fl(Y - t) < -Delta
 *    => x < t) hold against every target score t of the session; the VNNI
 *    kernel and its plain twin give the same bits, and so do the batched
 *    exact scorers (rr_head_score_items / _pairs) and rr_head_score_one.
 * 2. Engine: rr_fused_rank_screened gives exactly the rank counts, target
 *    scores and top lists (items and score bits) of a reference built here
 *    from ordered fp32 fma chains and rr_rank_scan, on heads with exact ties
 *    (duplicated rows, quantised weights), near-ties (rows one ulp apart),
 *    wide dynamic range, non-finite and huge session vectors, exclusions,
 *    k from 1 to 256, 1..3 threads, the AVX-512 and portable scans.
 * 3. Serving: rr_head_topk_screened gives rr_topk's list (items, score bits)
 *    on the exact row with the seen items at -inf, for k = 1 .. N, and the
 *    item-major kernel (rr_screen_items) gives the tile kernel's bits.
 * 4. rr_evaluate with the screen and without it (and unfused) gives the
 *    same metrics to the bit on a trained GRU and on a linear-head GRU with
 *    a quantised output table and duplicated rows (exact score ties), for
 *    every tie mode, exclude_seen, target_last, 1 and 2 threads.
 * 5. A table with a non-finite weight is not screened (rr_screen_new gives
 *    NULL), and the engine then still answers exactly.
 * Prints the share of pairs the screen left to the exact path. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "eval_equal.h"
#include "data/dataset.h"
#include "eval/eval.h"
#include "models/head.h"
#include "models/model.h"
#include "models/rnn.h"
#include "nn/screen.h"
#include "util/util.h"

/* The screen's integer width under test (main runs every part for 16 and 8). */
static int g_bits = 16;

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

typedef struct thead {
    rr_head h;
    float *W, *b;
} thead;

/* kind 0 uniform, 1 quantised + duplicated rows, 2 near-ties (rows one ulp
 * from an earlier one), 3 wide dynamic range and large biases, 4 zero rows. */
static void head_make(thead *t, rr_rng *g, size_t N, size_t D, int kind) {
    t->W = rr_alloc_aligned(N * D * sizeof(float));
    t->b = rr_alloc_aligned(N * sizeof(float));
    for (size_t j = 0; j < N; j++) {
        float sc = kind == 3 ? ldexpf(1.0f, (int)rr_rng_below(g, 100) - 60) : 1.0f;
        for (size_t k = 0; k < D; k++) {
            float u = rr_rng_uniformf(g) - 0.5f;
            t->W[j * D + k] = kind == 1 ? floorf(u * 4.0f) * 0.25f : u * sc;
        }
        t->b[j] = kind == 1 ? 0.0f : kind == 3 ? (rr_rng_uniformf(g) - 0.5f) * ldexpf(1.0f, 30) : 0.1f * (rr_rng_uniformf(g) - 0.5f);
        if (kind == 4 && j % 5 == 0) {
            memset(t->W + j * D, 0, D * sizeof(float));
            t->b[j] = 0.0f;
        }
    }
    if (kind == 1 || kind == 2)
        for (size_t j = 3; j < N; j += 3) {
            size_t src = (size_t)rr_rng_below(g, j);
            memcpy(t->W + j * D, t->W + src * D, D * sizeof(float));
            t->b[j] = t->b[src];
            if (kind == 2) {
                size_t k = (size_t)rr_rng_below(g, D);
                t->W[j * D + k] = nextafterf(t->W[j * D + k], rr_rng_below(g, 2) ? INFINITY : -INFINITY);
            }
        }
    t->h.W = t->W;
    t->h.b = t->b;
    t->h.N = N;
    t->h.D = D;
    t->h.off = 0;
    t->h.act = RR_ACT_LINEAR;
    t->h.act_param = 0.0;
}

static void head_free(thead *t) {
    rr_free_aligned(t->W);
    rr_free_aligned(t->b);
}

/* n vectors of D: uniform, quantised when kind 1, scaled when kind 3; with
 * specials, vector 0 is zero, 1 has a NaN, 2 an inf, 3 a norm of 2^70. */
static float *vectors(rr_rng *g, size_t n, size_t D, int kind, int specials) {
    float *v = rr_alloc_aligned(n * D * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++) {
        float sc = kind == 3 ? ldexpf(1.0f, (int)rr_rng_below(g, 80) - 40) : 1.0f;
        for (size_t k = 0; k < D; k++) {
            float u = 2.0f * rr_rng_uniformf(g) - 1.0f;
            v[i * D + k] = kind == 1 ? floorf(u * 2.0f) * 0.5f : u * sc;
        }
    }
    if (specials && n > 4) {
        memset(v, 0, D * sizeof(float));
        v[1 * D] = NAN;
        v[2 * D + D / 2] = INFINITY;
        for (size_t k = 0; k < D; k++) v[3 * D + k] = ldexpf(v[3 * D + k], 70);
    }
    return v;
}

/* The exact score by its definition (head.h): ordered fma chain, + b. */
static float ref_score(const thead *t, const float *v, size_t j) {
    float acc = 0.0f;
    for (size_t k = 0; k < t->h.D; k++) acc = fmaf(v[k], t->W[j * t->h.D + k], acc);
    return acc + t->b[j];
}

/* ------------------------------------------------------------- bound */

static void test_bound(void) {
    rr_rng g;
    rr_rng_seed(&g, 5);
    size_t pairs = 0, bad_bound = 0, bad_lb = 0, bad_dec = 0, bad_bits = 0, decided = 0, bad_batch = 0;
    const int trials = check_small() ? 6 : 15;
    for (int trial = 0; trial < trials; trial++) {
        size_t N = 1 + (size_t)rr_rng_below(&g, 400), D = 1 + (size_t)rr_rng_below(&g, 140);
        if (trial == 0) D = 1;
        if (trial == 1) D = 33;
        int kind = trial % 5;
        thead t;
        head_make(&t, &g, N, D, kind);
        size_t n = 1 + (size_t)rr_rng_below(&g, 16);
        float *v = vectors(&g, n, D, kind, trial % 2);
        const float *vecs[16];
        for (size_t i = 0; i < n; i++) vecs[i] = v + i * D;
        rr_screen *sc = NULL;
        rr_error err;
        CHECK_OK(rr_screen_new(&sc, t.W, t.b, N, D, g_bits, &err), &err);
        CHECK(sc != NULL);
        if (!sc) {
            head_free(&t);
            rr_free_aligned(v);
            continue;
        }
        int32_t *hq = rr_alloc_aligned(sc->nw * RR_SCREEN_TILE * sizeof(int32_t));
        rr_screen_lanes ln;
        rr_screen_pack(sc, hq, &ln, vecs, n);
        float *y = rr_alloc_aligned(N * RR_SCREEN_TILE * sizeof(float)), *y2 = rr_alloc_aligned(N * RR_SCREEN_TILE * sizeof(float));
        rr_screen_tile(sc, hq, &ln, 0, N, y);
        rr_screen_force_off(1);
        rr_screen_tile(sc, hq, &ln, 0, N, y2);
        rr_screen_force_off(0);
        for (size_t x = 0; x < N * RR_SCREEN_TILE; x++) bad_bits += !same_bits(y[x], y2[x]);
        /* the batched exact scorers of the rescoring give rr_head_score_one's bits */
        int32_t *js = malloc(N * sizeof *js);
        float *xs1 = malloc(N * sizeof *xs1), *xs2 = malloc(N * sizeof *xs2);
        const float **vv = malloc(N * sizeof *vv);
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < N; j++) {
                js[j] = (int32_t)rr_rng_below(&g, N);
                vv[j] = vecs[(i + j) % n];
            }
            rr_head_score_items(&t.h, vecs[i], js, N, xs1);
            rr_head_score_pairs(&t.h, vv, js, N, xs2);
            for (size_t j = 0; j < N; j++) {
                bad_batch += !same_bits(xs1[j], rr_head_score_one(&t.h, vecs[i], js[j]));
                bad_batch += !same_bits(xs2[j], rr_head_score_one(&t.h, vv[j], js[j]));
            }
        }
        free(js);
        free(xs1);
        free(xs2);
        free(vv);
        for (size_t i = 0; i < n; i++) {
            float ts[8];
            for (int q = 0; q < 8; q++) ts[q] = ref_score(&t, vecs[i], (size_t)rr_rng_below(&g, N));
            for (size_t j = 0; j < N; j++) {
                float Y = y[j * RR_SCREEN_TILE + i], dl = rr_screen_delta(sc, &ln, i, j);
                float xs = ref_score(&t, vecs[i], j);
                CHECK(same_bits(xs, rr_head_score_one(&t.h, vecs[i], (int32_t)j)));
                pairs++;
                if (ln.a[i] == INFINITY) continue; /* unscreened lane: nothing is claimed */
                if (!(fabs((double)xs - (double)Y) <= (double)dl)) bad_bound++;
                if (!(fmaf(-2.0f, dl, Y) <= xs)) bad_lb++;
                for (int q = 0; q < 8; q++) {
                    float d = Y - ts[q];
                    if (d > dl) {
                        decided++;
                        bad_dec += !(xs > ts[q]);
                    } else if (ts[q] - Y > dl) {
                        decided++;
                        bad_dec += !(xs < ts[q]);
                    }
                }
            }
        }
        rr_free_aligned(hq);
        rr_free_aligned(y);
        rr_free_aligned(y2);
        rr_screen_free(sc);
        head_free(&t);
        rr_free_aligned(v);
    }
    printf("  bound: %zu pairs, %zu decisions\n", pairs, decided);
    CHECK_MSG(bad_bound == 0, "%zu of %zu pairs outside |x - Y| <= Delta", bad_bound, pairs);
    CHECK_MSG(bad_lb == 0, "%zu lower bounds above the exact score", bad_lb);
    CHECK_MSG(bad_dec == 0, "%zu of %zu screen decisions wrong", bad_dec, decided);
    CHECK_MSG(bad_bits == 0, "%zu screen scores differ between the VNNI and plain kernels", bad_bits);
    CHECK(decided > pairs); /* the screen decides most comparisons */
    CHECK_MSG(bad_batch == 0, "%zu batched exact scores differ from rr_head_score_one", bad_batch);
}

/* ------------------------------------------------------------- engine */

/* One scratch kept across every case (other N, D, n, k): growth and reuse. */
static rr_fused_scratch *shared_fz;

static size_t engine_case(thead *t, rr_rng *g, size_t n, int kind, int specials, size_t *bad_out) {
    const size_t N = t->h.N, D = t->h.D;
    float *v = vectors(g, n, D, kind, specials);
    const float **vecs = malloc(n * sizeof *vecs);
    int32_t *target = malloc(n * sizeof *target), *seenbuf = malloc(n * 8 * sizeof *seenbuf);
    const int32_t **seen = malloc(n * sizeof *seen);
    size_t *n_seen = malloc(n * sizeof *n_seen);
    for (size_t i = 0; i < n; i++) {
        vecs[i] = v + i * D;
        target[i] = (int32_t)rr_rng_below(g, N);
        n_seen[i] = (size_t)rr_rng_below(g, 8);
        for (size_t q = 0; q < n_seen[i]; q++)
            seenbuf[i * 8 + q] = q == 0 && i % 5 == 0 ? target[i] : (int32_t)rr_rng_below(g, N);
        seen[i] = seenbuf + i * 8;
    }
    float *rows = malloc(n * N * sizeof *rows);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < N; j++) rows[i * N + j] = ref_score(t, vecs[i], j);
    rr_screen *sc = NULL;
    rr_error err;
    CHECK_OK(rr_screen_new(&sc, t->W, t->b, N, D, g_bits, &err), &err);
    size_t cases = 0, bad = 0;
    const size_t ks[] = {1, 7, 20, 256};
    for (int excl = 0; excl < 2; excl++) {
        float *rr = malloc(n * N * sizeof *rr);
        memcpy(rr, rows, n * N * sizeof *rr);
        for (size_t i = 0; excl && i < n; i++)
            for (size_t q = 0; q < n_seen[i]; q++) rr[i * N + (size_t)seen[i][q]] = -INFINITY;
        for (size_t ik = 0; ik < 4; ik++) {
            size_t k = ks[ik] < N ? ks[ik] : N;
            int32_t *rt = malloc(n * k * sizeof *rt), *ft = malloc(n * k * sizeof *ft);
            float *rs = malloc(n * k * sizeof *rs), *fs = malloc(n * k * sizeof *fs), *tsc = malloc(n * sizeof *tsc);
            size_t *rg = malloc(n * sizeof *rg), *re = malloc(n * sizeof *re), *rn = malloc(n * sizeof *rn);
            size_t *fg = malloc(n * sizeof *fg), *fe = malloc(n * sizeof *fe), *fn = malloc(n * sizeof *fn);
            for (size_t i = 0; i < n; i++)
                rn[i] = rr_rank_scan(rr + i * N, N, rr[i * N + (size_t)target[i]], k, &rg[i], &re[i], rt + i * k,
                                     rs + i * k);
            for (int var = 0; var < 5; var++) {
                int nt = var < 3 ? var + 1 : var == 4 ? 2 : 1;
                rr_rank_force_portable(var == 3);
                rr_fused_scratch *fz = var == 4 ? shared_fz : NULL;
                rr_fused_job job = {&t->h, vecs, n, target, excl ? seen : NULL, n_seen, k, nt};
                rr_fused_out out = {tsc, fg, fe, ft, fs, fn};
                CHECK_OK(rr_fused_rank_screened(&job, sc, &fz, &out, &err), &err);
                for (size_t i = 0; i < n; i++) {
                    int ok = fg[i] == rg[i] && fe[i] == re[i] && fn[i] == rn[i] &&
                             same_bits(tsc[i], rr[i * N + (size_t)target[i]]);
                    for (size_t q = 0; ok && q < rn[i]; q++)
                        ok = ft[i * k + q] == rt[i * k + q] && same_bits(fs[i * k + q], rs[i * k + q]);
                    if (!ok && bad < 5)
                        fprintf(stderr, "screened mismatch: kind %d N %zu D %zu n %zu k %zu excl %d threads %d "
                                        "portable %d row %zu: ng %zu/%zu ne %zu/%zu ntop %zu/%zu\n",
                                kind, N, D, n, k, excl, nt, var == 3, i, fg[i], rg[i], fe[i], re[i], fn[i], rn[i]);
                    bad += !ok;
                    cases++;
                }
                /* top lists only, the same scratch */
                job.target = NULL;
                CHECK_OK(rr_fused_rank_screened(&job, sc, &fz, &out, &err), &err);
                for (size_t i = 0; i < n; i++) {
                    int ok = fn[i] == rn[i];
                    for (size_t q = 0; ok && q < rn[i]; q++) ok = ft[i * k + q] == rt[i * k + q];
                    bad += !ok;
                    cases++;
                }
                if (var == 4) shared_fz = fz;
                else rr_fused_scratch_free(fz);
                rr_rank_force_portable(0);
            }
            free(rt);
            free(ft);
            free(rs);
            free(fs);
            free(tsc);
            free(rg);
            free(re);
            free(rn);
            free(fg);
            free(fe);
            free(fn);
        }
        free(rr);
    }
    rr_screen_free(sc);
    free(rows);
    free(vecs);
    free(target);
    free(seenbuf);
    free(seen);
    free(n_seen);
    rr_free_aligned(v);
    *bad_out += bad;
    return cases;
}

static void test_engine(void) {
    rr_rng g;
    rr_rng_seed(&g, 11);
    const int small = check_small();
    size_t cases = 0, bad = 0;
    rr_fused_screen_stats(NULL, NULL, NULL, 1);
    for (int trial = 0; trial < (small ? 5 : 12); trial++) {
        int kind = trial % 5;
        size_t N = 1 + (size_t)rr_rng_below(&g, trial < 3 ? 50 : (small ? 1200 : 3000));
        size_t D = 1 + (size_t)rr_rng_below(&g, 100), n = 1 + (size_t)rr_rng_below(&g, small ? 40 : 70);
        thead t;
        head_make(&t, &g, N, D, kind);
        cases += engine_case(&t, &g, n, kind, trial % 2, &bad);
        head_free(&t);
    }
    rr_fused_scratch_free(shared_fz);
    shared_fz = NULL;
    size_t pairs, nr, ntop;
    rr_fused_screen_stats(&pairs, &nr, &ntop, 1);
    printf("  engine: %zu cases; %zu pairs screened, %.2f%% rescored for ranks, %.2f%% for top lists\n", cases,
           pairs, pairs ? 100.0 * (double)nr / (double)pairs : 0.0, pairs ? 100.0 * (double)ntop / (double)pairs : 0.0);
    CHECK(pairs > 0);
    CHECK_MSG(bad == 0, "%zu of %zu screened rankings differ from the exact reference", bad, cases);
}

/* ------------------------------------------------------------- serving */

/* rr_head_topk_screened against rr_topk on the exact row; rr_screen_items
 * against lane 0 of rr_screen_tile. */
static void test_serving(void) {
    rr_rng g;
    rr_rng_seed(&g, 17);
    size_t cases = 0, bad = 0, bad_bits = 0;
    for (int trial = 0; trial < (check_small() ? 5 : 15); trial++) {
        int kind = trial % 5;
        size_t N = 1 + (size_t)rr_rng_below(&g, trial < 3 ? 40 : 2500), D = 1 + (size_t)rr_rng_below(&g, 90);
        thead t;
        head_make(&t, &g, N, D, kind);
        rr_screen *sc = NULL;
        rr_error err;
        CHECK_OK(rr_screen_new(&sc, t.W, t.b, N, D, g_bits, &err), &err);
        CHECK(sc && rr_screen_add_blocks(sc, &err) == RR_OK);
        if (!sc) {
            head_free(&t);
            continue;
        }
        const size_t n = 8;
        float *v = vectors(&g, n, D, kind, trial % 2);
        size_t nb = (N + 15) / 16;
        float *y1 = rr_alloc_aligned(nb * 16 * sizeof(float)), *yt = rr_alloc_aligned(N * 16 * sizeof(float));
        float *row = malloc(N * sizeof *row), *rs = malloc(N * sizeof *rs), *fs = malloc(N * sizeof *fs);
        int32_t *rt = malloc(N * sizeof *rt), *ft = malloc(N * sizeof *ft);
        int32_t *hq = rr_alloc_aligned(sc->nw * 16 * sizeof(int32_t));
        rr_head_screen_scratch *hs = NULL;
        for (size_t i = 0; i < n; i++) {
            const float *vi = v + i * D;
            rr_screen_lanes ln;
            rr_screen_pack(sc, hq, &ln, &vi, 1);
            rr_screen_items(sc, hq, &ln, 0, nb, y1);
            rr_screen_tile(sc, hq, &ln, 0, N, yt);
            for (size_t j = 0; j < N; j++) bad_bits += !same_bits(y1[j], yt[j * 16]);
            int32_t seen[6];
            size_t n_seen = (size_t)rr_rng_below(&g, 7);
            for (size_t q = 0; q < n_seen; q++) seen[q] = (int32_t)rr_rng_below(&g, N);
            for (size_t j = 0; j < N; j++) row[j] = ref_score(&t, vi, j);
            for (size_t q = 0; q < n_seen; q++) row[seen[q]] = -INFINITY;
            const size_t ks[] = {1, 7, 20, N};
            for (size_t ik = 0; ik < 4; ik++) {
                size_t k = ks[ik] < N ? ks[ik] : N, fn = 0;
                rr_topk(row, N, k, rt, rs);
                size_t rn = 0;
                while (rn < k && rt[rn] >= 0) rn++;
                CHECK_OK(rr_head_topk_screened(&t.h, sc, vi, seen, n_seen, k, ft, fs, &fn, &hs, &err), &err);
                int ok = fn == rn;
                for (size_t q = 0; ok && q < rn; q++) ok = ft[q] == rt[q] && same_bits(fs[q], rs[q]);
                if (!ok && bad < 5)
                    fprintf(stderr, "serving mismatch: kind %d N %zu D %zu k %zu vector %zu: %zu / %zu entries\n",
                            kind, N, D, k, i, fn, rn);
                bad += !ok;
                cases++;
            }
        }
        rr_head_screen_scratch_free(hs);
        rr_free_aligned(hq);
        rr_free_aligned(y1);
        rr_free_aligned(yt);
        free(row);
        free(rs);
        free(fs);
        free(rt);
        free(ft);
        rr_free_aligned(v);
        rr_screen_free(sc);
        head_free(&t);
    }
    printf("  serving: %zu top lists\n", cases);
    CHECK_MSG(bad == 0, "%zu of %zu screened top lists differ from rr_topk", bad, cases);
    CHECK_MSG(bad_bits == 0, "%zu item-major screen scores differ from the tile kernel's", bad_bits);
}

/* ------------------------------------------------------------ evaluate */

static void eval_model(const rr_model *m, const rr_dataset *test, const char *label) {
    rr_error err;
    size_t runs = 0, bad = 0;
    for (int ties = 0; ties < 3; ties++)
        for (int mode = 0; mode < 3; mode++) {
            rr_eval_params p;
            rr_eval_params_default(&p);
            p.ties = (rr_ties)ties;
            p.exclude_seen = mode == 1;
            p.target_last = mode == 2;
            rr_eval_result ref, got;
            p.threads = 1;
            rr_eval_force_unfused(1);
            CHECK_OK(rr_evaluate(m, test, &p, &ref, &err), &err);
            rr_eval_force_unfused(0);
            for (int nt = 1; nt <= 2; nt++)
                for (int off = 0; off < 2; off++) {
                    p.threads = nt;
                    rr_screen_force_off(off);
                    rr_fused_screen_stats(NULL, NULL, NULL, 1);
                    CHECK_OK(rr_evaluate(m, test, &p, &got, &err), &err);
                    size_t pairs;
                    rr_fused_screen_stats(&pairs, NULL, NULL, 1);
                    rr_screen_force_off(0);
                    CHECK(off ? pairs == 0 : pairs > 0); /* the screen ran exactly when on */
                    int ok = results_equal(&ref, &got, p.n_cutoffs);
                    if (!ok)
                        fprintf(stderr, "%s: ties %d mode %d threads %d screen %s: recall@20 %.9f vs %.9f\n", label,
                                ties, mode, nt, off ? "off" : "on", got.recall[3], ref.recall[3]);
                    bad += !ok;
                    runs++;
                }
        }
    CHECK_MSG(bad == 0, "%s: %zu of %zu evaluations differ from the unfused exact one", label, bad, runs);
}

/* rr_recommend through rr_model_use_screen (8 and 16 bits) against the
 * same model without it: batches of 1 to 37 sessions (whole tiles, a
 * remainder of up to 4 ranked one at a time, larger remainders), empty
 * sessions mixed in, both exclude_seen values, k short, 20, long (a
 * session's own items are then often among the best) and past the
 * merge limit; items and score bits must be equal. */
static void recommend_model(rr_model *m, const char *label) {
    static const size_t ns[] = {1, 2, 4, 5, 16, 17, 20, 21, 37};
    static const size_t ks[] = {1, 20, 200, RR_FUSED_MERGE_MAX + 44};
    rr_error err;
    rr_rng g;
    rr_rng_seed(&g, 21);
    size_t ni = rr_model_n_items(m), calls = 0, bad = 0;
    enum { NMAX = 37, KMAX = RR_FUSED_MERGE_MAX + 44 };
    rr_state *st[NMAX];
    for (size_t i = 0; i < NMAX; i++) {
        st[i] = rr_state_new(m);
        size_t len = i % 9 == 4 ? 0 : 1 + (size_t)rr_rng_below(&g, 8);
        for (size_t t = 0; t < len; t++) CHECK_OK(rr_state_feed(st[i], (int32_t)rr_rng_below(&g, ni)), &err);
    }
    int32_t *ti = malloc(NMAX * KMAX * sizeof *ti), *ri = malloc(NMAX * KMAX * sizeof *ri);
    float *ts = malloc(NMAX * KMAX * sizeof *ts), *rs = malloc(NMAX * KMAX * sizeof *rs);
    for (int bits = 8; bits <= 16; bits += 8)
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof ks / sizeof *ks; b++)
                for (int excl = 0; excl < 2; excl++) {
                    size_t n = ns[a], k = ks[b];
                    CHECK_OK(rr_model_use_screen(m, 0, &err), &err);
                    CHECK_OK(rr_recommend(m, st, n, k, excl, ri, rs, &err), &err);
                    CHECK_OK(rr_model_use_screen(m, bits, &err), &err);
                    CHECK(rr_model_screen_bits(m) == bits);
                    rr_fused_screen_stats(NULL, NULL, NULL, 1);
                    CHECK_OK(rr_recommend(m, st, n, k, excl, ti, ts, &err), &err);
                    size_t pairs;
                    rr_fused_screen_stats(&pairs, NULL, NULL, 1);
                    calls++;
                    size_t n_live = 0;
                    for (size_t i = 0; i < n; i++) n_live += rr_state_len(st[i]) > 0;
                    /* the tile engine ran unless every live session went
                     * the one-at-a-time way or k is past its merge limit */
                    int ok = pairs > 0 || n_live <= 4 || k > RR_FUSED_MERGE_MAX;
                    for (size_t i = 0; i < n * k; i++)
                        ok &= ti[i] == ri[i] && same_bits(ts[i], rs[i]);
                    if (!ok) fprintf(stderr, "%s: bits %d n %zu k %zu excl %d differ\n", label, bits, n, k, excl);
                    bad += !ok;
                }
    CHECK_OK(rr_model_use_screen(m, 0, &err), &err);
    CHECK(rr_model_screen_bits(m) == 0);
    CHECK(rr_model_use_screen(m, 12, &err) == RR_ERR_ARG);
    CHECK_MSG(bad == 0, "%s: %zu of %zu screened rr_recommend calls differ from the exact ones", label, bad, calls);
    for (size_t i = 0; i < NMAX; i++) rr_state_free(st[i]);
    free(ti);
    free(ri);
    free(ts);
    free(rs);
}

static void test_evaluate(void) {
    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.seed = 4;
    sp.n_events = check_small() ? 3000 : 12000;
    sp.n_items = 700;
    sp.n_topics = 8;
    rr_dataset *d = NULL;
    rr_error err;
    CHECK_OK(rr_synth_generate(&sp, &d, &err), &err);
    if (!d) return;
    rr_train_params tp;
    rr_train_params_default(&tp);
    tp.kind = "gru";
    tp.layers[0] = 24;
    tp.epochs = 1;
    tp.threads = 1;
    tp.seed = 5;
    rr_model *m = NULL;
    CHECK_OK(rr_model_train(&m, d, NULL, &tp, &err), &err);
    if (m) eval_model(m, d, "trained gru");
    if (m) recommend_model(m, "trained gru");
    rr_model_free(m);
    /* linear head with ties: quantised Wy, every 5th row a copy */
    m = NULL;
    CHECK_OK(rr_model_new_common(&m, &rr_gru_ops, d, &err), &err);
    rr_rnn_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.cell = RR_CELL_GRU;
    sh.n_items = m ? m->n_items : 0;
    sh.n_layers = 1;
    sh.layers[0] = 20;
    sh.embedding = -1;
    sh.final_act = RR_ACT_LINEAR;
    rr_rnn *r = NULL;
    if (m) CHECK_OK(rr_rnn_new(&r, &sh, &err), &err);
    if (m && r) {
        rr_rng g;
        rr_rng_seed(&g, 77);
        rr_rnn_init(r, &g);
        float *Wy = r->params + r->lay.Wy;
        for (size_t i = 0; i < m->n_items * 20; i++) Wy[i] = roundf(Wy[i] * 64.0f) / 16.0f;
        for (size_t j = 5; j < m->n_items; j += 5) memcpy(Wy + j * 20, Wy + (j - 5) * 20, 20 * sizeof *Wy);
        m->impl = r;
        eval_model(m, d, "linear gru with ties");
        recommend_model(m, "linear gru with ties");
    }
    rr_model_free(m);
    rr_dataset_free(d);
}

/* A non-finite weight: no screen, and the engine stays exact. */
static void test_unscreenable(void) {
    rr_rng g;
    rr_rng_seed(&g, 3);
    thead t;
    head_make(&t, &g, 300, 20, 0);
    t.W[17 * 20 + 3] = INFINITY;
    rr_screen dummy;
    rr_screen *sc = &dummy; /* must be overwritten */
    rr_error err;
    CHECK_OK(rr_screen_new(&sc, t.W, t.b, 300, 20, g_bits, &err), &err);
    CHECK(sc == NULL);
    size_t bad = 0;
    engine_case(&t, &g, 9, 0, 0, &bad);
    rr_fused_scratch_free(shared_fz);
    shared_fz = NULL;
    CHECK(bad == 0);
    head_free(&t);
}

/* 8 bits are refused above D = 1040 (the int32 sums could overflow):
 * the table is built with 16. */
static void test_wide(void) {
    rr_rng g;
    rr_rng_seed(&g, 8);
    thead t;
    head_make(&t, &g, 20, 1100, 0);
    rr_screen *sc = NULL;
    rr_error err;
    CHECK_OK(rr_screen_new(&sc, t.W, t.b, 20, 1100, 8, &err), &err);
    CHECK(sc && sc->bits == 16 && sc->nw == 550);
    rr_screen_free(sc);
    CHECK_OK(rr_screen_new(&sc, t.W, t.b, 20, 1040, 8, &err), &err);
    CHECK(sc && sc->bits == 8 && sc->nw == 260);
    rr_screen_free(sc);
    head_free(&t);
}

int main(void) {
    if (!rr_screen_supported()) {
        printf("SKIP: this CPU lacks AVX-512 VNNI: the screen is off and evaluation uses the exact engine\n");
        return 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        g_bits = pass ? 8 : 16;
        printf("%d-bit screen\n", g_bits);
        test_bound();
        test_engine();
        test_serving();
        if (g_bits == 16) test_evaluate(); /* rr_evaluate builds a 16-bit screen */
        test_unscreenable();
    }
    test_wide();
    return check_summary("test_screen");
}
