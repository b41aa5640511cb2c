/* test_eval.c - the evaluation engine and the ranking kernels.
 *
 * 1. A tiny crafted model (scores = a table row per last item) and test
 *    sessions whose ranks and metrics were worked out by hand, for every
 *    tie mode, exclude_seen, target_last, coverage and popularity.
 * 2. rr_topk / rr_rank_count / rr_rank_scan against a brute-force sort on
 *    random rows with many ties and -inf entries.
 * 3. The engine against a plain reference evaluator (one session at a time,
 *    sorting) on random table and recurrent models; and the same results,
 *    bit for bit, for 1 and 2 threads and for every block size. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/dataset.h"
#include "eval/eval.h"
#include "models/model.h"
#include "util/util.h"

/* ------------------------------------------------------------- fixtures */

/* Sessions given as space-separated item ids. */
static rr_dataset *make_dataset(const char *const *sessions, size_t n) {
    rr_dataset *d = rr_dataset_new();
    size_t ne = 0;
    for (size_t i = 0; i < n; i++)
        for (const char *p = sessions[i]; *p;) {
            while (*p == ' ') p++;
            if (!*p) break;
            ne++;
            while (*p && *p != ' ') p++;
        }
    rr_sessions_alloc(&d->s, n, ne, NULL);
    d->sess_id = malloc((n ? n : 1) * sizeof *d->sess_id);
    size_t e = 0;
    for (size_t i = 0; i < n; i++) {
        char sid[32];
        snprintf(sid, sizeof sid, "s%zu", i);
        rr_vocab_add(&d->sessions, sid, strlen(sid), &d->sess_id[i], NULL);
        for (const char *p = sessions[i]; *p;) {
            while (*p == ' ') p++;
            if (!*p) break;
            const char *q = p;
            while (*q && *q != ' ') q++;
            rr_vocab_add(&d->items, p, (size_t)(q - p), &d->s.items[e], NULL);
            d->s.times[e] = (double)e;
            e++;
            p = q;
        }
        d->s.offsets[i + 1] = (int64_t)e;
    }
    return d;
}

/* Random sessions over items "i0".."i{ni-1}" (some ids unknown: "u*"). */
static rr_dataset *random_dataset(rr_rng *rng, size_t n_sess, size_t ni, size_t max_len, double p_unknown) {
    size_t cap = n_sess * (max_len * 8 + 2) + 1;
    char *buf = malloc(cap);
    char **ss = malloc(n_sess * sizeof *ss);
    size_t w = 0;
    for (size_t i = 0; i < n_sess; i++) {
        ss[i] = buf + w;
        size_t len = 1 + (size_t)rr_rng_below(rng, max_len);
        for (size_t j = 0; j < len; j++) {
            if (rr_rng_uniform(rng) < p_unknown)
                w += (size_t)snprintf(buf + w, cap - w, "u%u ", (unsigned)rr_rng_below(rng, 5));
            else
                w += (size_t)snprintf(buf + w, cap - w, "i%u ", (unsigned)rr_rng_below(rng, ni));
        }
        buf[w++] = 0;
    }
    rr_dataset *d = make_dataset((const char *const *)ss, n_sess);
    free(ss);
    free(buf);
    return d;
}

/* Table model: the score row of a session is table[last item]. */
typedef struct table_impl {
    float *table; /* (n_items, n_items) */
} table_impl;

static size_t table_floats(const rr_model *m) {
    (void)m;
    return 0;
}

static rr_status table_score(const rr_model *m, rr_state *const *states, size_t n, float *scores, rr_error *err) {
    (void)err;
    const table_impl *t = m->impl;
    for (size_t i = 0; i < n; i++) {
        int32_t last = states[i]->items[states[i]->n - 1];
        memcpy(scores + i * m->n_items, t->table + (size_t)last * m->n_items, m->n_items * sizeof(float));
    }
    return RR_OK;
}

static void table_destroy(rr_model *m) {
    table_impl *t = m->impl;
    if (t) free(t->table);
    free(t);
}

static const rr_model_ops table_ops = {"table", table_floats, NULL, NULL, table_score, NULL, NULL, table_destroy, NULL};

static rr_model *table_model(const rr_dataset *train, const float *table) {
    rr_model *m = NULL;
    rr_error err;
    CHECK_OK(rr_model_new_common(&m, &table_ops, train, &err), &err);
    table_impl *t = calloc(1, sizeof *t);
    size_t ni = m->n_items;
    t->table = malloc(ni * ni * sizeof(float));
    memcpy(t->table, table, ni * ni * sizeof(float));
    m->impl = t;
    return m;
}

/* Recurrent model: h = (0.5 h0 + item + 1, h1 + 1); scores are coarse
 * (many ties) and a few items score -inf.  It checks that the engine's
 * batched step equals one step per state. */
static size_t rec_floats(const rr_model *m) {
    (void)m;
    return 2;
}
static void rec_init(const rr_model *m, float *h) {
    (void)m;
    h[0] = 0.25f;
    h[1] = 0;
}
static void rec_step(const rr_model *m, float *const *h, const int32_t *items, size_t n) {
    (void)m;
    for (size_t i = 0; i < n; i++) {
        h[i][0] = 0.5f * h[i][0] + (float)items[i] + 1.0f;
        h[i][1] += 1.0f;
    }
}
static rr_status rec_score(const rr_model *m, rr_state *const *states, size_t n, float *scores, rr_error *err) {
    (void)err;
    size_t ni = m->n_items;
    for (size_t i = 0; i < n; i++) {
        const float *h = states[i]->h;
        for (size_t j = 0; j < ni; j++) {
            float v = floorf(4.0f * sinf(h[0] * (float)(j + 1) * 0.37f + h[1])) * 0.25f;
            if ((j * 7 + (size_t)h[1]) % 11 == 0) v = -INFINITY;
            scores[i * ni + j] = v;
        }
    }
    return RR_OK;
}
static const rr_model_ops rec_ops = {"rec", rec_floats, rec_init, rec_step, rec_score, NULL, NULL, NULL, NULL};

/* ------------------------------------------------------ reference evaluator */

typedef struct ref_result {
    size_t n_targets, n_sessions, n_dropped;
    double recall[RR_MAX_CUTOFFS], mrr[RR_MAX_CUTOFFS], ndcg[RR_MAX_CUTOFFS];
    double coverage[RR_MAX_CUTOFFS], popularity[RR_MAX_CUTOFFS];
} ref_result;

static const float *sort_row;
static int by_score(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (sort_row[i] != sort_row[j]) return sort_row[i] > sort_row[j] ? -1 : 1;
    return i < j ? -1 : 1;
}

static void ref_eval(const rr_model *m, const rr_dataset *test, const rr_eval_params *p, ref_result *out) {
    memset(out, 0, sizeof *out);
    size_t ni = m->n_items;
    int32_t *map = NULL;
    rr_dataset_map_items(test, &m->items, &map, NULL);
    float *row = malloc(ni * sizeof *row);
    int32_t *idx = malloc(ni * sizeof *idx), *seq = malloc((test->s.n_events + 1) * sizeof *seq);
    unsigned char *covered = calloc(ni * p->n_cutoffs, 1);
    double maxc = 0;
    for (size_t i = 0; i < ni; i++) maxc = m->counts[i] > maxc ? m->counts[i] : maxc;
    for (size_t s = 0; s < test->s.n_sessions; s++) {
        size_t L = 0;
        for (int64_t e = test->s.offsets[s]; e < test->s.offsets[s + 1]; e++) {
            if (map[test->s.items[e]] < 0) out->n_dropped++;
            else seq[L++] = map[test->s.items[e]];
        }
        if (L < 2) continue;
        out->n_sessions++;
        rr_state *st = rr_state_new(m);
        rr_state_feed(st, seq[0]);
        for (size_t pos = 1; pos < L; pos++) {
            int32_t target = seq[pos];
            if (!p->target_last || pos == L - 1) {
                m->ops->score(m, &st, 1, row, NULL);
                if (p->exclude_seen)
                    for (size_t q = 0; q < pos; q++) row[seq[q]] = -INFINITY;
                float t = row[target];
                size_t g = 0, eq = 0;
                for (size_t j = 0; j < ni; j++) {
                    if (row[j] > t) g++;
                    if (row[j] == t) eq++;
                }
                double rank = 0;
                if (t != -INFINITY)
                    rank = p->ties == RR_TIES_CONSERVATIVE ? (double)(g + eq)
                           : p->ties == RR_TIES_STANDARD   ? (double)g + 1
                                                           : ((double)(g + eq) + (double)g + 1) / 2;
                size_t nfin = 0;
                for (size_t j = 0; j < ni; j++)
                    if (row[j] != -INFINITY) idx[nfin++] = (int32_t)j;
                sort_row = row;
                qsort(idx, nfin, sizeof *idx, by_score);
                for (size_t c = 0; c < p->n_cutoffs; c++) {
                    double K = (double)p->cutoffs[c];
                    if (rank > 0 && rank <= K) {
                        out->recall[c] += 1;
                        out->mrr[c] += 1 / rank;
                        out->ndcg[c] += 1 / log2(1 + rank);
                    }
                    size_t n_list = p->cutoffs[c] < nfin ? p->cutoffs[c] : nfin;
                    double share = 0;
                    for (size_t j = 0; j < n_list; j++) {
                        covered[c * ni + (size_t)idx[j]] = 1;
                        share += m->counts[idx[j]] / maxc;
                    }
                    if (n_list) out->popularity[c] += share / (double)n_list;
                }
                out->n_targets++;
            }
            rr_state_feed(st, target);
        }
        rr_state_free(st);
    }
    for (size_t c = 0; c < p->n_cutoffs; c++) {
        double n = (double)out->n_targets;
        out->recall[c] /= n;
        out->mrr[c] /= n;
        out->ndcg[c] /= n;
        out->popularity[c] /= n;
        size_t cov = 0;
        for (size_t i = 0; i < ni; i++) cov += covered[c * ni + i];
        out->coverage[c] = (double)cov / (double)ni;
    }
    free(map);
    free(row);
    free(idx);
    free(seq);
    free(covered);
}

static int same_result(const rr_eval_result *a, const rr_eval_result *b, size_t nc) {
    size_t bytes = nc * sizeof(double);
    return a->n_targets == b->n_targets && a->n_sessions == b->n_sessions && a->n_dropped == b->n_dropped &&
           !memcmp(a->recall, b->recall, bytes) && !memcmp(a->mrr, b->mrr, bytes) &&
           !memcmp(a->ndcg, b->ndcg, bytes) && !memcmp(a->coverage, b->coverage, bytes) &&
           !memcmp(a->popularity, b->popularity, bytes);
}

static void check_against_ref(const rr_model *m, const rr_dataset *test, const rr_eval_params *p,
                              const char *what) {
    rr_eval_result r;
    ref_result ref;
    rr_error err;
    CHECK_OK(rr_evaluate(m, test, p, &r, &err), &err);
    ref_eval(m, test, p, &ref);
    CHECK_MSG(r.n_targets == ref.n_targets && r.n_sessions == ref.n_sessions && r.n_dropped == ref.n_dropped,
              "%s: targets %zu/%zu sessions %zu/%zu dropped %zu/%zu", what, r.n_targets, ref.n_targets,
              r.n_sessions, ref.n_sessions, r.n_dropped, ref.n_dropped);
    for (size_t c = 0; c < p->n_cutoffs; c++) {
        CHECK_MSG(fabs(r.recall[c] - ref.recall[c]) < 1e-12, "%s recall@%zu %.15g vs %.15g", what, p->cutoffs[c],
                  r.recall[c], ref.recall[c]);
        CHECK_MSG(fabs(r.mrr[c] - ref.mrr[c]) < 1e-12, "%s mrr@%zu %.15g vs %.15g", what, p->cutoffs[c], r.mrr[c],
                  ref.mrr[c]);
        CHECK_MSG(fabs(r.ndcg[c] - ref.ndcg[c]) < 1e-12, "%s ndcg@%zu", what, p->cutoffs[c]);
        CHECK_MSG(r.coverage[c] == ref.coverage[c], "%s coverage@%zu %.9g vs %.9g", what, p->cutoffs[c],
                  r.coverage[c], ref.coverage[c]);
        CHECK_MSG(fabs(r.popularity[c] - ref.popularity[c]) < 1e-12, "%s popularity@%zu %.15g vs %.15g", what,
                  p->cutoffs[c], r.popularity[c], ref.popularity[c]);
    }
    /* thread count and block size change nothing, to the last bit */
    static const size_t blocks[] = {1, 2, 3, 7, 64, 0};
    for (int th = 1; th <= 2; th++)
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
            rr_eval_params q = *p;
            q.threads = th;
            q.block = blocks[b];
            rr_eval_result r2;
            CHECK_OK(rr_evaluate(m, test, &q, &r2, &err), &err);
            CHECK_MSG(same_result(&r, &r2, p->n_cutoffs), "%s: threads %d block %zu differ", what, th, blocks[b]);
        }
}

/* ------------------------------------------------------------ hand cases */

static void hand_case(void) {
    /* counts A 4, B 2, C 1, D 1: shares 1, .5, .25, .25 */
    const char *train_s[] = {"A A A A B B C D"};
    rr_dataset *train = make_dataset(train_s, 1);
    const float T[16] = {
        0.1f, 0.9f, 0.5f, 0.5f, /* after A */
        0.3f, 0.3f, 0.3f, 0.2f, /* after B */
        -1.f, 2.f,  2.f,  2.f,  /* after C */
        0.f,  0.f,  0.f,  0.f,  /* after D */
    };
    rr_model *m = table_model(train, T);
    const char *test_s[] = {"A B C D", "C A", "X A B", "D", "X D"};
    rr_dataset *test = make_dataset(test_s, 5);
    rr_eval_params p;
    rr_eval_params_default(&p);
    CHECK(p.n_cutoffs == 4 && p.cutoffs[0] == 1 && p.cutoffs[3] == 20 && p.ties == RR_TIES_CONSERVATIVE);
    p.n_cutoffs = 2;
    p.cutoffs[0] = 1;
    p.cutoffs[1] = 3;
    rr_eval_result r;
    rr_error err;
    /* Targets: B after A (row A: rank 1), C after B (row B: 3 equal), D after
     * C (row C: 3 equal), A after C (3 above), B after A (1).
     * conservative ranks 1 3 3 4 1 */
    CHECK_OK(rr_evaluate(m, test, &p, &r, &err), &err);
    CHECK(r.n_targets == 5 && r.n_sessions == 3 && r.n_dropped == 2 && r.n_items == 4);
    CHECK_NEAR(r.recall[0], 0.4, 1e-15);
    CHECK_NEAR(r.recall[1], 0.8, 1e-15);
    CHECK_NEAR(r.mrr[0], 0.4, 1e-15);
    CHECK_NEAR(r.mrr[1], (1 + 1 / 3.0 + 1 / 3.0 + 1) / 5, 1e-15);
    CHECK_NEAR(r.ndcg[1], 0.6, 1e-15); /* (1 + 2 * 1/log2(4) + 1) / 5 */
    /* top-1 lists: B A B B B; top-3: {B C D} {A B C} {B C D} {B C D} {B C D} */
    CHECK_NEAR(r.coverage[0], 0.5, 0);
    CHECK_NEAR(r.coverage[1], 1.0, 0);
    CHECK_NEAR(r.popularity[0], 0.6, 1e-15);
    CHECK_NEAR(r.popularity[1], (4 / 3.0 + 1.75 / 3.0) / 5, 1e-15);
    check_against_ref(m, test, &p, "hand conservative");

    p.ties = RR_TIES_STANDARD; /* ranks 1 1 1 4 1 */
    CHECK_OK(rr_evaluate(m, test, &p, &r, &err), &err);
    CHECK_NEAR(r.recall[0], 0.8, 1e-15);
    CHECK_NEAR(r.recall[1], 0.8, 1e-15);
    CHECK_NEAR(r.mrr[1], 0.8, 1e-15);
    check_against_ref(m, test, &p, "hand standard");

    p.ties = RR_TIES_MEDIAN; /* ranks 1 2 2 4 1 */
    CHECK_OK(rr_evaluate(m, test, &p, &r, &err), &err);
    CHECK_NEAR(r.recall[0], 0.4, 1e-15);
    CHECK_NEAR(r.recall[1], 0.8, 1e-15);
    CHECK_NEAR(r.mrr[1], 0.6, 1e-15);
    CHECK_NEAR(r.ndcg[1], (2 + 2 / log2(3.0)) / 5, 1e-15);
    check_against_ref(m, test, &p, "hand median");

    /* exclude_seen: rows lose the session's items -> ranks 1 1 1 3 1 */
    p.ties = RR_TIES_CONSERVATIVE;
    p.exclude_seen = 1;
    CHECK_OK(rr_evaluate(m, test, &p, &r, &err), &err);
    CHECK_NEAR(r.recall[0], 0.8, 1e-15);
    CHECK_NEAR(r.recall[1], 1.0, 1e-15);
    CHECK_NEAR(r.mrr[1], (4 + 1 / 3.0) / 5, 1e-15);
    /* top-1 after exclusion: B C D B B -> coverage 3/4 */
    CHECK_NEAR(r.coverage[0], 0.75, 0);
    check_against_ref(m, test, &p, "hand exclude");

    /* target_last: only D (rank 3), A (4), B (1) */
    p.exclude_seen = 0;
    p.target_last = 1;
    CHECK_OK(rr_evaluate(m, test, &p, &r, &err), &err);
    CHECK(r.n_targets == 3 && r.n_sessions == 3);
    CHECK_NEAR(r.recall[0], 1 / 3.0, 1e-15);
    CHECK_NEAR(r.recall[1], 2 / 3.0, 1e-15);
    CHECK_NEAR(r.mrr[1], (1 / 3.0 + 1) / 3, 1e-15);
    check_against_ref(m, test, &p, "hand last");

    /* a target among the session's own items is a miss under exclude_seen */
    const char *rep_s[] = {"A B A"};
    rr_dataset *rep = make_dataset(rep_s, 1);
    p.target_last = 0;
    p.exclude_seen = 1;
    CHECK_OK(rr_evaluate(m, rep, &p, &r, &err), &err);
    CHECK(r.n_targets == 2);
    CHECK_NEAR(r.recall[1], 0.5, 1e-15);
    CHECK_NEAR(r.mrr[1], 0.5, 1e-15);
    p.exclude_seen = 0; /* without: A after B ties with 3 -> rank 3 */
    CHECK_OK(rr_evaluate(m, rep, &p, &r, &err), &err);
    CHECK_NEAR(r.recall[1], 1.0, 1e-15);
    CHECK_NEAR(r.mrr[1], (1 + 1 / 3.0) / 2, 1e-15);

    /* cutoffs beyond the catalogue: lists are the 4 items */
    p.n_cutoffs = 1;
    p.cutoffs[0] = 10;
    CHECK_OK(rr_evaluate(m, test, &p, &r, &err), &err);
    CHECK_NEAR(r.recall[0], 1.0, 0);
    CHECK_NEAR(r.coverage[0], 1.0, 0);
    CHECK_NEAR(r.popularity[0], 0.5, 1e-15); /* (1 + .5 + .25 + .25) / 4 */

    /* bad parameters and empty inputs */
    p.n_cutoffs = 2;
    p.cutoffs[0] = 5;
    p.cutoffs[1] = 5;
    CHECK(rr_evaluate(m, test, &p, &r, &err) == RR_ERR_ARG);
    p.cutoffs[0] = 0;
    CHECK(rr_evaluate(m, test, &p, &r, &err) == RR_ERR_ARG);
    rr_eval_params_default(&p);
    p.ties = (rr_ties)7;
    CHECK(rr_evaluate(m, test, &p, &r, &err) == RR_ERR_ARG);
    rr_eval_params_default(&p);
    const char *none_s[] = {"X Y Z", "A"};
    rr_dataset *none = make_dataset(none_s, 2);
    CHECK(rr_evaluate(m, none, &p, &r, &err) == RR_ERR_EMPTY);

    rr_dataset_free(none);
    rr_dataset_free(rep);
    rr_dataset_free(test);
    rr_dataset_free(train);
    rr_model_free(m);
}

/* -------------------------------------------------------- top-k and ranks */

static void kernels_vs_brute(void) {
    rr_rng rng;
    rr_rng_seed(&rng, 7);
    static const size_t ns[] = {1, 2, 5, 63, 64, 65, 129, 300, 1000};
    static const size_t ks[] = {1, 2, 3, 20, 64, 100, 300};
    size_t bad_top = 0, bad_rank = 0, cases = 0;
    float *row = malloc(1000 * sizeof *row), *ts = malloc(1000 * sizeof *ts);
    int32_t *ti = malloc(1000 * sizeof *ti), *idx = malloc(1000 * sizeof *idx);
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (int rep = 0; rep < 30; rep++) {
            size_t n = ns[a];
            int levels = 1 + (int)rr_rng_below(&rng, rep < 10 ? 4 : 1000);
            double p_inf = rep % 3 == 0 ? 0.0 : 0.3;
            for (size_t j = 0; j < n; j++) {
                row[j] = (float)rr_rng_below(&rng, (uint64_t)levels) * 0.5f - 3.0f;
                if (rr_rng_uniform(&rng) < p_inf) row[j] = -INFINITY;
            }
            if (rep == 5) /* ascending: the worst case for the threshold */
                for (size_t j = 0; j < n; j++) row[j] = (float)j;
            size_t nfin = 0;
            for (size_t j = 0; j < n; j++)
                if (row[j] != -INFINITY) idx[nfin++] = (int32_t)j;
            sort_row = row;
            qsort(idx, nfin, sizeof *idx, by_score);
            for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++) {
                size_t k = ks[b];
                if (k > n) continue;
                cases++;
                rr_topk(row, n, k, ti, ts);
                for (size_t j = 0; j < k; j++) {
                    int32_t want = j < nfin ? idx[j] : -1;
                    if (ti[j] != want) bad_top++;
                    if (want >= 0 && ts[j] != row[want]) bad_top++;
                    if (want < 0 && ts[j] != -INFINITY) bad_top++;
                }
                rr_topk(row, n, k, ti, NULL); /* no score output */
                for (size_t j = 0; j < k; j++)
                    if (ti[j] != (j < nfin ? idx[j] : -1)) bad_top++;
                /* rank counts of a few targets, incl. -inf and absent values */
                for (int q = 0; q < 4; q++) {
                    float t = q == 3 ? -INFINITY : q == 2 ? 0.25f : row[rr_rng_below(&rng, n)];
                    size_t g0 = 0, e0 = 0, g1, e1, g2, e2;
                    for (size_t j = 0; j < n; j++) {
                        g0 += row[j] > t;
                        e0 += row[j] == t;
                    }
                    rr_rank_count(row, n, t, &g1, &e1);
                    size_t c = rr_rank_scan(row, n, t, k, &g2, &e2, ti, ts);
                    if (g1 != g0 || e1 != e0 || g2 != g0 || e2 != e0) bad_rank++;
                    if (c != (k < nfin ? k : nfin)) bad_rank++;
                    for (size_t j = 0; j < c; j++)
                        if (ti[j] != idx[j]) bad_rank++;
                }
            }
        }
    CHECK_MSG(bad_top == 0, "%zu top-k mismatches in %zu cases", bad_top, cases);
    CHECK_MSG(bad_rank == 0, "%zu rank-count mismatches", bad_rank);
    /* NaN never enters a top list and never counts */
    float nr[5] = {1.0f, NAN, 3.0f, NAN, 2.0f};
    int32_t o[5];
    rr_topk(nr, 5, 5, o, NULL);
    CHECK(o[0] == 2 && o[1] == 4 && o[2] == 0 && o[3] == -1 && o[4] == -1);
    size_t g, e;
    rr_rank_count(nr, 5, 2.0f, &g, &e);
    CHECK(g == 1 && e == 1);
    free(row);
    free(ts);
    free(ti);
    free(idx);
}

/* ----------------------------------------------------------- random models */

static void random_models(void) {
    rr_rng rng;
    rr_rng_seed(&rng, 11);
    int small = check_small();
    size_t ni = small ? 40 : 150, n_sess = small ? 60 : 400;
    /* train data covering every item, with skewed counts */
    rr_dataset *train = random_dataset(&rng, 50, ni, 30, 0.0);
    ni = train->items.n;
    float *T = malloc(ni * ni * sizeof *T);
    for (size_t i = 0; i < ni * ni; i++) {
        T[i] = (float)rr_rng_below(&rng, 6) * 0.5f;
        if (rr_rng_uniform(&rng) < 0.05) T[i] = -INFINITY;
    }
    rr_model *m = table_model(train, T);
    rr_dataset *test = random_dataset(&rng, n_sess, ni + 5, 12, 0.1);
    rr_eval_params p;
    rr_eval_params_default(&p);
    p.n_cutoffs = 5;
    size_t cuts[5] = {1, 3, 10, 20, 64};
    memcpy(p.cutoffs, cuts, sizeof cuts);
    for (int ties = 0; ties < 3; ties++)
        for (int ex = 0; ex < 2; ex++)
            for (int last = 0; last < 2; last++) {
                p.ties = (rr_ties)ties;
                p.exclude_seen = ex;
                p.target_last = last;
                char what[64];
                snprintf(what, sizeof what, "table ties=%d ex=%d last=%d", ties, ex, last);
                check_against_ref(m, test, &p, what);
            }
    /* the recurrent model: batched steps over blocks */
    rr_model *mr = NULL;
    rr_error err;
    CHECK_OK(rr_model_new_common(&mr, &rec_ops, train, &err), &err);
    for (int ties = 0; ties < 3; ties++)
        for (int ex = 0; ex < 2; ex++) {
            p.ties = (rr_ties)ties;
            p.exclude_seen = ex;
            p.target_last = ties == 1;
            char what[64];
            snprintf(what, sizeof what, "recurrent ties=%d ex=%d", ties, ex);
            check_against_ref(mr, test, &p, what);
        }
    rr_model_free(mr);
    rr_model_free(m);
    rr_dataset_free(test);
    rr_dataset_free(train);
    free(T);
}

int main(void) {
    hand_case();
    kernels_vs_brute();
    rr_rank_force_portable(1); /* both kernel paths against the brute force */
    kernels_vs_brute();
    rr_rank_force_portable(0);
    random_models();
    return check_summary("test_eval");
}
