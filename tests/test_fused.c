/* test_fused.c - the linear-head kernels and the fused scoring + ranking
 * engine against the unfused paths, bit for bit.
 *
 * 1. Kernels: every score of the tile kernels (8- and 16-session tiles, any
 *    slice, every activation) equals rr_head_score_one's, and the portable,
 *    AVX2 and AVX-512 kernels give the same bits.
 * 2. rr_fused_rank against full score rows + exclusions + rr_rank_scan, on
 *    random heads with exact ties (duplicated item rows, quantised weights,
 *    ReLU's zeros), for 1..3 threads, k from 1 to N, AVX-512 / AVX2 /
 *    portable scans: the same rank counts, target scores and top lists.
 * 3. rr_evaluate on RNN models (a GRU trained in-process, a GRU crafted
 *    with ties, a 2-layer LSTM with ELU scores): fused and unfused (rr_eval_force_unfused) give identical
 *    results for every tie mode, exclude_seen, target_last, 1 and 2 threads
 *    and several block sizes.
 * 4. rr_recommend: the same lists as a reference built from ops->score and
 *    rr_topk, with empty sessions, exclude_seen, k above the catalogue, and
 *    for 1 and 2 OpenMP threads; repeated calls give the same answer. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "check.h"
#include "eval_equal.h"
#include "data/dataset.h"
#include "eval/eval.h"
#include "models/head.h"
#include "models/model.h"
#include "models/rnn.h"
#include "util/util.h"

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* A random head (N, D): quantised weights when quant (many exact ties),
 * and every 7th item a copy of an earlier one (identical scores). */
typedef struct test_head {
    rr_head h;
    float *W, *b;
} test_head;

static void head_make(test_head *t, rr_rng *rng, size_t N, size_t D, int quant, rr_act act) {
    t->W = rr_alloc_aligned(N * D * sizeof(float));
    t->b = rr_alloc_aligned(N * sizeof(float));
    for (size_t i = 0; i < N * D; i++) {
        float u = rr_rng_uniformf(rng) - 0.5f;
        t->W[i] = quant ? floorf(u * 4.0f) * 0.25f : u;
    }
    for (size_t j = 0; j < N; j++) t->b[j] = quant ? 0.0f : 0.1f * (rr_rng_uniformf(rng) - 0.5f);
    for (size_t j = 7; j < N; j += 7) {
        size_t src = (size_t)rr_rng_below(rng, j);
        memcpy(t->W + j * D, t->W + src * D, D * sizeof(float));
        t->b[j] = t->b[src];
    }
    t->h.W = t->W;
    t->h.b = t->b;
    t->h.N = N;
    t->h.D = D;
    t->h.off = 0;
    t->h.act = act;
    t->h.act_param = 1.0;
}

static void head_free(test_head *t) {
    rr_free_aligned(t->W);
    rr_free_aligned(t->b);
}

static float *vectors(rr_rng *rng, size_t n, size_t D, int quant) {
    float *v = rr_alloc_aligned(n * D * sizeof(float) + 64);
    for (size_t i = 0; i < n * D; i++) {
        float u = 2.0f * rr_rng_uniformf(rng) - 1.0f;
        v[i] = quant ? floorf(u * 2.0f) * 0.5f : u;
    }
    return v;
}

/* ------------------------------------------------------------- kernels */

static void test_kernels(void) {
    rr_rng rng;
    rr_rng_seed(&rng, 5);
    const size_t Ns[] = {1, 13, 250}, Ds[] = {1, 7, 33, 100};
    const rr_act acts[] = {RR_ACT_LINEAR, RR_ACT_ELU, RR_ACT_TANH, RR_ACT_RELU};
    const size_t ns[] = {1, 5, 8, 9, 16};
    size_t bad_one = 0, bad_port = 0, total = 0;
    for (size_t a = 0; a < 4; a++)
        for (size_t in = 0; in < 3; in++)
            for (size_t id = 0; id < 4; id++) {
                test_head th;
                size_t N = Ns[in], D = Ds[id];
                head_make(&th, &rng, N, D, 0, acts[a]);
                float *v = vectors(&rng, 16, D, 0);
                const float *vecs[16];
                for (size_t i = 0; i < 16; i++) vecs[i] = v + i * D;
                float *scr = rr_alloc_aligned(rr_head_rows_scratch_floats(&th.h) * sizeof(float));
                float *rows = malloc(16 * N * sizeof *rows), *rows_p = malloc(16 * N * sizeof *rows_p);
                for (size_t q = 0; q < 5; q++) {
                    size_t n = ns[q];
                    rr_head_score_rows(&th.h, vecs, n, rows, N, scr);
                    rr_head_force_portable(1);
                    rr_head_score_rows(&th.h, vecs, n, rows_p, N, scr);
                    for (size_t i = 0; i < n; i++)
                        for (size_t j = 0; j < N; j++) {
                            float one = rr_head_score_one(&th.h, vecs[i], (int32_t)j);
                            bad_port += !same_bits(rows_p[i * N + j], rows[i * N + j]);
                            bad_one += !same_bits(one, rows_p[i * N + j]);
                            total++;
                        }
                    rr_head_force_portable(0);
                    for (size_t i = 0; i < n; i++)
                        for (size_t j = 0; j < N; j++)
                            bad_one += !same_bits(rr_head_score_one(&th.h, vecs[i], (int32_t)j), rows[i * N + j]);
                    rr_head_force_avx2(1); /* the AVX2 tiles where AVX-512 is the default */
                    rr_head_score_rows(&th.h, vecs, n, rows_p, N, scr);
                    rr_head_force_avx2(0);
                    for (size_t i = 0; i < n * N; i++) bad_port += !same_bits(rows_p[i], rows[i]);
                }
                /* a slice that does not start at 0 */
                if (N > 5) {
                    float *hp = rr_alloc_aligned(D * RR_HEAD_TILE * sizeof(float));
                    float *out = rr_alloc_aligned((N - 3) * RR_HEAD_TILE * sizeof(float));
                    rr_head_pack(&th.h, hp, vecs, 11);
                    rr_head_score_tile(&th.h, hp, 11, 3, N - 1, out);
                    for (size_t j = 3; j < N - 1; j++)
                        for (size_t i = 0; i < 11; i++)
                            bad_one += !same_bits(out[(j - 3) * RR_HEAD_TILE + i],
                                                  rr_head_score_one(&th.h, vecs[i], (int32_t)j));
                    rr_free_aligned(hp);
                    rr_free_aligned(out);
                }
                free(rows);
                free(rows_p);
                rr_free_aligned(scr);
                rr_free_aligned(v);
                head_free(&th);
            }
    CHECK_MSG(bad_one == 0, "%zu of %zu tile scores differ from rr_head_score_one", bad_one, total);
    CHECK_MSG(bad_port == 0, "%zu of %zu portable scores differ from the AVX2 ones", bad_port, total);
    /* the kernel really is the fma chain: one value by hand */
    test_head th;
    head_make(&th, &rng, 3, 5, 0, RR_ACT_LINEAR);
    float v[5] = {0.5f, -1.25f, 3.0f, 0.1f, -0.7f}, acc = 0.0f;
    for (size_t k = 0; k < 5; k++) acc = fmaf(v[k], th.W[5 + k], acc);
    CHECK(same_bits(rr_head_score_one(&th.h, v, 1), acc + th.b[1]));
    head_free(&th);
}

/* ------------------------------------------------------- fused vs rows */

static void test_fused_rank(void) {
    rr_rng rng;
    rr_rng_seed(&rng, 9);
    const int small = check_small();
    size_t cases = 0, bad = 0;
    for (int trial = 0; trial < (small ? 6 : 16); trial++) {
        size_t N = 1 + (size_t)rr_rng_below(&rng, trial < 4 ? 40 : 3000);
        size_t D = 1 + (size_t)rr_rng_below(&rng, 48);
        size_t n = 1 + (size_t)rr_rng_below(&rng, 70);
        int quant = trial % 3 != 0;
        rr_act act = (rr_act)(trial % 4);
        test_head th;
        head_make(&th, &rng, N, D, quant, act);
        float *v = vectors(&rng, n, D, quant);
        const float **vecs = malloc(n * sizeof *vecs);
        int32_t *target = malloc(n * sizeof *target), *seenbuf = malloc(n * 8 * sizeof *seenbuf);
        const int32_t **seen = malloc(n * sizeof *seen);
        size_t *n_seen = malloc(n * sizeof *n_seen);
        for (size_t i = 0; i < n; i++) {
            vecs[i] = v + i * D;
            target[i] = (int32_t)rr_rng_below(&rng, N);
            n_seen[i] = (size_t)rr_rng_below(&rng, 8);
            for (size_t q = 0; q < n_seen[i]; q++)
                seenbuf[i * 8 + q] = q == 0 && i % 5 == 0 ? target[i] : (int32_t)rr_rng_below(&rng, N);
            seen[i] = seenbuf + i * 8;
        }
        float *rows = malloc(n * N * sizeof *rows);
        float *scr = rr_alloc_aligned(rr_head_rows_scratch_floats(&th.h) * sizeof(float));
        rr_head_score_rows(&th.h, vecs, n, rows, N, scr);
        const size_t ks[] = {1, 5, 20, N};
        for (int excl = 0; excl < 2; excl++) {
            /* reference: the unfused path on full rows */
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
                /* variants: threads 1..3 with the default scan, then one
                 * thread with the AVX2 and the portable scans */
                for (int var = 0; var < 5; var++) {
                    int nt = var < 3 ? var + 1 : 1;
                    rr_fused_force_avx2(var == 3);
                    rr_rank_force_portable(var == 4);
                    rr_fused_scratch *fz = NULL;
                    rr_fused_job job = {&th.h, vecs, n, target, excl ? seen : NULL, n_seen, k, nt};
                    rr_fused_out out = {tsc, fg, fe, ft, fs, fn};
                    rr_error err;
                    CHECK_OK(rr_fused_rank(&job, &fz, &out, &err), &err);
                    for (size_t i = 0; i < n; i++) {
                        int ok = fg[i] == rg[i] && fe[i] == re[i] && fn[i] == rn[i] &&
                                 same_bits(tsc[i], rr[i * N + (size_t)target[i]]);
                        for (size_t q = 0; ok && q < rn[i]; q++)
                            ok = ft[i * k + q] == rt[i * k + q] && same_bits(fs[i * k + q], rs[i * k + q]);
                        if (!ok && bad < 5)
                            fprintf(stderr, "fused mismatch: N %zu D %zu n %zu k %zu excl %d threads %d row %zu: "
                                            "ng %zu/%zu ne %zu/%zu ntop %zu/%zu\n",
                                    N, D, n, k, excl, nt, i, fg[i], rg[i], fe[i], re[i], fn[i], rn[i]);
                        bad += !ok;
                        cases++;
                    }
                    /* top-k only (no targets) through the same scratch */
                    job.target = NULL;
                    CHECK_OK(rr_fused_rank(&job, &fz, &out, &err), &err);
                    for (size_t i = 0; i < n; i++) {
                        int ok = fn[i] == rn[i];
                        for (size_t q = 0; ok && q < rn[i]; q++) ok = ft[i * k + q] == rt[i * k + q];
                        bad += !ok;
                    }
                    rr_fused_scratch_free(fz);
                    rr_fused_force_avx2(0);
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
        free(rows);
        rr_free_aligned(scr);
        free(vecs);
        free(target);
        free(seenbuf);
        free(seen);
        free(n_seen);
        rr_free_aligned(v);
        head_free(&th);
    }
    CHECK_MSG(bad == 0, "%zu of %zu fused rows differ from the full-row ranking", bad, cases);
    CHECK(cases > 0);
}

/* ------------------------------------------------------- whole models */

static rr_dataset *synth(uint64_t seed, size_t events, size_t items) {
    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.seed = seed;
    sp.n_events = events;
    sp.n_items = items;
    sp.n_topics = 8;
    rr_dataset *d = NULL;
    rr_error err;
    CHECK_OK(rr_synth_generate(&sp, &d, &err), &err);
    return d;
}

/* A GRU with GRU4Rec's initialisation, ReLU final activation, quantised
 * output table and duplicated rows: many exact score ties. */
static rr_model *tie_model(const rr_dataset *train, rr_cell_kind cell, size_t H0, size_t H, rr_act act) {
    rr_model *m = NULL;
    rr_error err;
    CHECK_OK(rr_model_new_common(&m, rr_rnn_ops_for(cell), train, &err), &err);
    if (!m) return NULL;
    rr_rnn_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.cell = cell;
    sh.n_items = m->n_items;
    sh.n_layers = H0 ? 2 : 1;
    sh.layers[0] = H0 ? H0 : H;
    sh.layers[1] = H;
    sh.embedding = -1;
    sh.final_act = act;
    sh.final_act_param = 0.5;
    rr_rnn *r = NULL;
    CHECK_OK(rr_rnn_new(&r, &sh, &err), &err);
    rr_rng rng;
    rr_rng_seed(&rng, 77);
    rr_rnn_init(r, &rng);
    float *Wy = r->params + r->lay.Wy;
    for (size_t i = 0; i < m->n_items * H; i++) Wy[i] = roundf(Wy[i] * 64.0f) / 16.0f;
    for (size_t j = 5; j < m->n_items; j += 5) memcpy(Wy + j * H, Wy + (j - 5) * H, H * sizeof *Wy);
    m->impl = r;
    return m;
}

static void test_evaluate(const rr_model *m, const rr_dataset *test, const char *label) {
    rr_error err;
    size_t runs = 0, bad = 0;
    for (int ties = 0; ties < 3; ties++)
        for (int mode = 0; mode < 3; mode++) {
            rr_eval_params p;
            rr_eval_params_default(&p);
            p.ties = (rr_ties)ties;
            p.exclude_seen = mode == 1;
            p.target_last = mode == 2;
            p.threads = 1;
            rr_eval_result ref, got;
            rr_eval_force_unfused(1);
            CHECK_OK(rr_evaluate(m, test, &p, &ref, &err), &err);
            rr_eval_force_unfused(0);
            const size_t blocks[] = {0, 7};
            for (int nt = 1; nt <= 2; nt++)
                for (size_t b = 0; b < 2; b++) {
                    p.threads = nt;
                    p.block = blocks[b];
                    CHECK_OK(rr_evaluate(m, test, &p, &got, &err), &err);
                    int ok = results_equal(&ref, &got, p.n_cutoffs);
                    if (!ok)
                        fprintf(stderr, "%s: ties %d mode %d threads %d block %zu: recall@20 %.9f vs %.9f, "
                                        "mrr@20 %.9f vs %.9f\n",
                                label, ties, mode, nt, blocks[b], got.recall[3], ref.recall[3], got.mrr[3],
                                ref.mrr[3]);
                    bad += !ok;
                    runs++;
                }
            if (ties == 0 && mode == 0)
                printf("  %s: %zu targets, recall@20 %.4f mrr@20 %.4f\n", label, ref.n_targets, ref.recall[3],
                       ref.mrr[3]);
        }
    CHECK_MSG(bad == 0, "%s: %zu of %zu fused evaluations differ from the unfused one", label, bad, runs);
}

/* rr_recommend against ops->score + exclusions + rr_topk. */
static void test_recommend(const rr_model *m, const rr_dataset *test, const char *label) {
    rr_error err;
    const size_t ni = m->n_items, n = 37;
    rr_state *st[37];
    rr_rng rng;
    rr_rng_seed(&rng, 21);
    for (size_t i = 0; i < n; i++) {
        st[i] = rr_state_new(m);
        size_t len = i % 9 == 0 ? 0 : 1 + (size_t)rr_rng_below(&rng, 6);
        for (size_t t = 0; t < len; t++) {
            size_t e = (size_t)rr_rng_below(&rng, test->s.n_events);
            size_t l;
            const char *id = rr_vocab_id(&test->items, test->s.items[e], &l);
            int32_t it = rr_model_item_index(m, id, l);
            if (it >= 0) CHECK_OK(rr_state_feed(st[i], it), NULL);
        }
    }
    const size_t ks[] = {1, 20, ni + 3};
    float *row = malloc(ni * sizeof *row);
    size_t bad = 0, rows = 0;
    for (size_t ik = 0; ik < 3; ik++)
        for (int excl = 0; excl < 2; excl++) {
            size_t k = ks[ik], kk = k < ni ? k : ni;
            int32_t *ri = malloc(n * k * sizeof *ri), *gi = malloc(n * k * sizeof *gi);
            float *rs = malloc(n * k * sizeof *rs), *gs = malloc(n * k * sizeof *gs);
            for (size_t i = 0; i < n; i++) {
                if (st[i]->n) CHECK_OK(m->ops->score(m, &st[i], 1, row, &err), &err);
                else
                    for (size_t j = 0; j < ni; j++) row[j] = (float)m->counts[j];
                if (excl)
                    for (size_t t = 0; t < st[i]->n; t++) row[st[i]->items[t]] = -INFINITY;
                rr_topk(row, ni, kk, ri + i * k, rs + i * k);
                for (size_t t = kk; t < k; t++) {
                    ri[i * k + t] = -1;
                    rs[i * k + t] = -INFINITY;
                }
            }
            for (int nt = 1; nt <= 2; nt++)
                for (int rep = 0; rep < 2; rep++) {
#ifdef _OPENMP
                    omp_set_num_threads(nt);
#endif
                    CHECK_OK(rr_recommend(m, st, n, k, excl, gi, gs, &err), &err);
                    for (size_t i = 0; i < n; i++) {
                        int ok = 1;
                        for (size_t t = 0; ok && t < k; t++)
                            ok = gi[i * k + t] == ri[i * k + t] && same_bits(gs[i * k + t], rs[i * k + t]);
                        bad += !ok;
                        rows++;
                    }
                    /* one session alone gets the same list as in the batch */
                    CHECK_OK(rr_recommend(m, &st[n - 1], 1, k, excl, gi, gs, &err), &err);
                    int ok = 1;
                    for (size_t t = 0; ok && t < k; t++) ok = gi[t] == ri[(n - 1) * k + t];
                    bad += !ok;
                    rows++;
                }
            free(ri);
            free(gi);
            free(rs);
            free(gs);
        }
#ifdef _OPENMP
    omp_set_num_threads(rr_threads(0));
#endif
    CHECK_MSG(bad == 0, "%s: %zu of %zu rr_recommend lists differ from the reference", label, bad, rows);
    free(row);
    for (size_t i = 0; i < n; i++) rr_state_free(st[i]);
}

static void test_models(void) {
    const int small = check_small();
    rr_dataset *d = synth(3, small ? 3000 : 8000, small ? 150 : 600);
    rr_train_params p;
    rr_train_params_default(&p);
    p.kind = "gru";
    p.layers[0] = 24;
    p.batch_size = 16;
    p.n_sample = 32;
    p.epochs = 1;
    p.threads = 1;
    p.seed = 4;
    rr_model *m = NULL;
    rr_error err;
    CHECK_OK(rr_model_train(&m, d, NULL, &p, &err), &err);
    if (m) {
        test_evaluate(m, d, "trained gru");
        test_recommend(m, d, "trained gru");
        rr_model_free(m);
    }
    rr_model *t = tie_model(d, RR_CELL_GRU, 0, 20, RR_ACT_RELU);
    if (t) {
        test_evaluate(t, d, "gru with ties");
        test_recommend(t, d, "gru with ties");
        rr_model_free(t);
    }
    /* the head vector of a second layer of an LSTM state (h, c per layer) */
    rr_model *l = tie_model(d, RR_CELL_LSTM, 12, 18, RR_ACT_ELU);
    if (l) {
        rr_head hd;
        CHECK(rr_model_head(l, &hd) && hd.off == 2 * 12 && hd.D == 18);
        test_evaluate(l, d, "2-layer lstm, elu");
        test_recommend(l, d, "2-layer lstm, elu");
        rr_model_free(l);
    }
    rr_dataset_free(d);
}

int main(void) {
    test_kernels();
    test_fused_rank();
    test_models();
    return check_summary("test_fused");
}
