/* test_baselines.c - the baseline models (spop, markov, iknn, sknn, vsknn)
 * against hand-computed scores on a tiny dataset, against brute-force
 * reference implementations on a random one, save/load round trips, the
 * empty-session fallback, and bad parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "models/model.h"
#include "util/util.h"

/* ---- datasets built in memory */

/* Sessions of item indices (ids "i0", "i1", ...), times = a global event
 * counter, so a later session in the list ends later. */
static rr_dataset *make_dataset(size_t n_items, const int32_t *const *sess, const size_t *lens,
                                size_t n_sess) {
    rr_error err;
    rr_dataset *d = rr_dataset_new();
    if (!d) return NULL;
    for (size_t j = 0; j < n_items; j++) {
        char id[32];
        int32_t idx;
        snprintf(id, sizeof id, "i%zu", j);
        if (rr_vocab_add(&d->items, id, strlen(id), &idx, &err) != RR_OK) return NULL;
    }
    size_t ne = 0;
    for (size_t s = 0; s < n_sess; s++) ne += lens[s];
    if (rr_sessions_alloc(&d->s, n_sess, ne, &err) != RR_OK) return NULL;
    d->sess_id = malloc((n_sess ? n_sess : 1) * sizeof *d->sess_id);
    size_t e = 0;
    for (size_t s = 0; s < n_sess; s++) {
        char id[32];
        snprintf(id, sizeof id, "s%zu", s);
        if (rr_vocab_add(&d->sessions, id, strlen(id), &d->sess_id[s], &err) != RR_OK) return NULL;
        for (size_t t = 0; t < lens[s]; t++, e++) {
            d->s.items[e] = sess[s][t];
            d->s.times[e] = (double)e;
        }
        d->s.offsets[s + 1] = (int64_t)e;
    }
    return d;
}

/* a=0 b=1 c=2 d=3 e=4:  S0 a b c | S1 a b | S2 b c d | S3 a c a | S4 e
 * counts a4 b3 c3 d1 e1, max 4, so pop/(max+1) = .8 .6 .6 .2 .2 */
static rr_dataset *tiny(void) {
    static const int32_t s0[] = {0, 1, 2}, s1[] = {0, 1}, s2[] = {1, 2, 3}, s3[] = {0, 2, 0},
                         s4[] = {4};
    static const int32_t *const ss[] = {s0, s1, s2, s3, s4};
    static const size_t lens[] = {3, 2, 3, 3, 1};
    return make_dataset(5, ss, lens, 5);
}

static const double POPF[5] = {0.8, 0.6, 0.6, 0.2, 0.2};

static rr_model *train_kind(const rr_dataset *d, const char *kind, size_t k, size_t sample,
                            double lambda, double alpha) {
    rr_train_params p;
    rr_train_params_default(&p);
    p.kind = kind;
    p.threads = 2;
    if (k) p.knn_k = k;
    if (sample) p.sknn_sample = sample;
    if (lambda >= 0) p.iknn_lambda = lambda;
    if (alpha >= 0) p.iknn_alpha = alpha;
    rr_model *m = NULL;
    rr_error err;
    rr_status st = rr_model_train(&m, d, NULL, &p, &err);
    CHECK_MSG(st == RR_OK, "train %s: %s", kind, err.msg);
    if (m) CHECK(!strcmp(rr_model_kind(m), kind));
    return m;
}

/* Scores of one session (items given) into row (n_items). */
static int score_session(const rr_model *m, const int32_t *items, size_t n, float *row) {
    rr_state *s = rr_state_new(m);
    if (!s) return -1;
    for (size_t t = 0; t < n; t++)
        if (rr_state_feed(s, items[t]) != RR_OK) {
            rr_state_free(s);
            return -1;
        }
    rr_error err;
    rr_status st = m->ops->score(m, &s, 1, row, &err);
    rr_state_free(s);
    if (st != RR_OK) fprintf(stderr, "score: %s\n", err.msg);
    return st == RR_OK ? 0 : -1;
}

static void expect_row(const rr_model *m, const int32_t *items, size_t n, const double *want,
                       const char *what) {
    float row[16];
    CHECK(rr_model_n_items(m) <= 16);
    CHECK_MSG(score_session(m, items, n, row) == 0, "%s", what);
    for (size_t j = 0; j < rr_model_n_items(m); j++)
        CHECK_MSG(fabs(row[j] - want[j]) <= 1e-6 * (1 + fabs(want[j])), "%s: item %zu: %.9g vs %.9g",
                  what, j, (double)row[j], want[j]);
}

/* ---- hand-computed cases */

static void test_spop(const rr_dataset *d) {
    rr_model *m = train_kind(d, "spop", 0, 0, -1, -1);
    if (!m) return;
    /* session c b c: counts c2 b1 plus popularity */
    static const int32_t s[] = {2, 1, 2};
    double want[5] = {0.8, 1.6, 2.6, 0.2, 0.2};
    expect_row(m, s, 3, want, "spop c b c");
    expect_row(m, NULL, 0, POPF, "spop empty");
    rr_model_free(m);
}

static void test_markov(const rr_dataset *d) {
    rr_model *m = train_kind(d, "markov", 0, 0, -1, -1);
    if (!m) return;
    /* transitions a->b 2, a->c 1, b->c 2, c->d 1, c->a 1 */
    static const int32_t s1[] = {3, 0};
    double w1[5] = {0.8, 2.6, 1.6, 0.2, 0.2};
    expect_row(m, s1, 2, w1, "markov last a");
    static const int32_t s2[] = {2};
    double w2[5] = {1.8, 0.6, 0.6, 1.2, 0.2};
    expect_row(m, s2, 1, w2, "markov last c");
    static const int32_t s3[] = {0, 4};
    expect_row(m, s3, 2, POPF, "markov last e (no successor)");
    expect_row(m, NULL, 0, POPF, "markov empty");
    rr_model_free(m);
}

static void test_iknn(const rr_dataset *d) {
    /* cooc ab 2, ac 1 + 2*1 = 3, bc 2, bd 1, cd 1; supp a4 b3 c3 d1 e1 */
    rr_model *m = train_kind(d, "iknn", 100, 0, 20, 0.5);
    if (m) {
        double ab = 2 / sqrt(24.0 * 23), ac = 3 / sqrt(24.0 * 23);
        static const int32_t s[] = {0};
        double fw = 0.5 * ab;
        double want[5] = {fw * 0.8, ab, ac, fw * 0.2, fw * 0.2};
        expect_row(m, s, 1, want, "iknn last a");
        static const int32_t s2[] = {0, 2}; /* last c: a 3, b 2, d 1 */
        double ca = 3 / sqrt(23.0 * 24), cb = 2 / 23.0, cd = 1 / sqrt(23.0 * 21);
        double want2[5] = {ca, cb, 0.5 * cd * 0.6, cd, 0.5 * cd * 0.2};
        expect_row(m, s2, 2, want2, "iknn last c");
        static const int32_t s3[] = {4}; /* e co-occurs with nothing: popularity */
        expect_row(m, s3, 1, POPF, "iknn last e");
        expect_row(m, NULL, 0, POPF, "iknn empty");
        rr_model_free(m);
    }
    /* k = 1 keeps only the best neighbour */
    m = train_kind(d, "iknn", 1, 0, 20, 0.5);
    if (m) {
        double ac = 3 / sqrt(24.0 * 23), fw = 0.5 * ac;
        static const int32_t s[] = {0};
        double want[5] = {fw * 0.8, fw * 0.6, ac, fw * 0.2, fw * 0.2};
        expect_row(m, s, 1, want, "iknn k=1");
        rr_model_free(m);
    }
    /* alpha = 1, lambda = 0: sim(i, j) = cooc / supp_i (confidence), asymmetric */
    m = train_kind(d, "iknn", 100, 0, 0, 1.0);
    if (m) {
        static const int32_t sa[] = {0}, sb[] = {1};
        double fa = 0.5 * 0.5, fb = 0.5 * (1.0 / 3);
        double wa[5] = {fa * 0.8, 2.0 / 4, 3.0 / 4, fa * 0.2, fa * 0.2};
        double wb[5] = {2.0 / 3, fb * 0.6, 2.0 / 3, 1.0 / 3, fb * 0.2};
        expect_row(m, sa, 1, wa, "iknn alpha=1 last a");
        expect_row(m, sb, 1, wb, "iknn alpha=1 last b");
        rr_model_free(m);
    }
}

static void test_sknn(const rr_dataset *d) {
    /* item sets S0 {a b c} S1 {a b} S2 {b c d} S3 {a c} S4 {e}, ranked by end
     * time 0..4.  Session a b: cosines S0 2/sqrt6, S1 1, S2 1/sqrt6, S3 1/2. */
    double c0 = 2 / sqrt(6.0), c1 = 1, c2 = 1 / sqrt(6.0), c3 = 0.5;
    static const int32_t s[] = {0, 1};
    rr_model *m = train_kind(d, "sknn", 100, 500, -1, -1);
    if (m) {
        double want[5] = {c0 + c1 + c3, c0 + c1 + c2, c0 + c2 + c3, c2, 0.5 * c2 * 0.2};
        expect_row(m, s, 2, want, "sknn a b");
        static const int32_t se[] = {4}; /* only S4 holds e: cosine 1 */
        double we[5] = {0.5 * 0.8, 0.5 * 0.6, 0.5 * 0.6, 0.5 * 0.2, 1.0};
        expect_row(m, se, 1, we, "sknn e");
        expect_row(m, NULL, 0, POPF, "sknn empty");
        rr_model_free(m);
    }
    /* sample 2: only the two most recent sharing sessions, S3 and S2 */
    m = train_kind(d, "sknn", 100, 2, -1, -1);
    if (m) {
        double want[5] = {c3, c2, c3 + c2, c2, 0.5 * c2 * 0.2};
        expect_row(m, s, 2, want, "sknn sample=2");
        rr_model_free(m);
    }
    /* k 2: the two most similar, S1 and S0 */
    m = train_kind(d, "sknn", 2, 500, -1, -1);
    if (m) {
        double want[5] = {c1 + c0, c1 + c0, c0, 0.5 * c0 * 0.2, 0.5 * c0 * 0.2};
        expect_row(m, s, 2, want, "sknn k=2");
        rr_model_free(m);
    }
}

static void test_vsknn(const rr_dataset *d) {
    rr_model *m = train_kind(d, "vsknn", 100, 500, -1, -1);
    if (!m) return;
    /* a b: weights a 1/2, b 1; sims S0 .75 S1 .75 S2 .5 S3 .25; the
     * decay 1/(L+1-maxpos) is 1 except S3 (matched via a only): 1/2 */
    static const int32_t s[] = {0, 1};
    double want[5] = {0.75 + 0.75 + 0.125, 0.75 + 0.75 + 0.5, 0.75 + 0.5 + 0.125, 0.5,
                      0.5 * 0.5 * 0.2};
    expect_row(m, s, 2, want, "vsknn a b");
    /* a b a: last positions a 3, b 2 -> weights 1, 2/3; sims S0 5/6 S1 5/6
     * S2 1/3 (decay 1/2) S3 1/2 */
    static const int32_t s2[] = {0, 1, 0};
    double want2[5] = {5.0 / 6 + 5.0 / 6 + 0.5, 5.0 / 6 + 5.0 / 6 + 1.0 / 6, 5.0 / 6 + 1.0 / 6 + 0.5,
                       1.0 / 6, 0.5 * (1.0 / 6) * 0.2};
    expect_row(m, s2, 3, want2, "vsknn a b a");
    expect_row(m, NULL, 0, POPF, "vsknn empty");
    rr_model_free(m);
}

/* ---- brute-force references on random data */

static int contains(const int32_t *v, size_t n, int32_t x) {
    for (size_t i = 0; i < n; i++)
        if (v[i] == x) return 1;
    return 0;
}

/* Reference S(V)-KNN over dataset d for session q (length L): straight from
 * the definitions, O(sessions * length^2). */
static void ref_sknn(const rr_dataset *d, const int32_t *q, size_t L, size_t k, size_t sample,
                     int weighted, double *out /* (n_items) */) {
    const rr_sessions *s = &d->s;
    size_t ni = d->items.n, ns = s->n_sessions;
    double *sim = calloc(ns, sizeof *sim), *wt = calloc(ns, sizeof *wt);
    int *cand = calloc(ns, sizeof *cand);
    int32_t dist[256];
    size_t nd = 0;
    for (size_t t = 0; t < L; t++)
        if (!contains(dist, nd, q[t])) dist[nd++] = q[t];
    /* sessions are in end-time order already (times = event counter) */
    size_t taken = 0;
    for (size_t r = ns; r-- > 0 && taken < sample;) {
        const int32_t *it = s->items + s->offsets[r];
        size_t len = rr_session_len(s, r);
        int32_t bset[256];
        size_t nb = 0;
        for (size_t t = 0; t < len; t++)
            if (!contains(bset, nb, it[t])) bset[nb++] = it[t];
        size_t inter = 0, psum = 0, maxpos = 0;
        for (size_t a = 0; a < nd; a++) {
            if (!contains(bset, nb, dist[a])) continue;
            inter++;
            size_t lp = 0;
            for (size_t t = 0; t < L; t++)
                if (q[t] == dist[a]) lp = t + 1;
            psum += lp;
            if (lp > maxpos) maxpos = lp;
        }
        if (!inter) continue;
        cand[r] = 1;
        taken++;
        sim[r] = weighted ? (double)psum / ((double)L * (double)nd)
                          : (double)inter / sqrt((double)nd * (double)nb);
        wt[r] = weighted ? sim[r] / (double)(L + 1 - maxpos) : sim[r];
    }
    for (size_t j = 0; j < ni; j++) out[j] = 0;
    for (size_t kk = 0; kk < k; kk++) { /* selection of the best remaining */
        long best = -1;
        for (size_t r = ns; r-- > 0;)
            if (cand[r] && (best < 0 || sim[r] > sim[best])) best = (long)r;
        if (best < 0) break;
        cand[best] = 0;
        const int32_t *it = s->items + s->offsets[best];
        size_t len = rr_session_len(s, (size_t)best);
        int32_t bset[256];
        size_t nb = 0;
        for (size_t t = 0; t < len; t++)
            if (!contains(bset, nb, it[t])) bset[nb++] = it[t];
        for (size_t t = 0; t < nb; t++) out[bset[t]] += wt[best];
    }
    free(sim);
    free(wt);
    free(cand);
}

/* Reference item-kNN similarity row of item i. */
static void ref_iknn_row(const rr_dataset *d, int32_t i, double lambda, double alpha,
                         double *out /* (n_items) */) {
    const rr_sessions *s = &d->s;
    size_t ni = d->items.n;
    double *supp = calloc(ni, sizeof *supp);
    for (size_t e = 0; e < s->n_events; e++) supp[s->items[e]] += 1;
    for (size_t j = 0; j < ni; j++) out[j] = 0;
    for (size_t r = 0; r < s->n_sessions; r++) {
        double ci = 0;
        for (int64_t e = s->offsets[r]; e < s->offsets[r + 1]; e++) ci += s->items[e] == i;
        if (ci == 0) continue;
        for (int64_t e = s->offsets[r]; e < s->offsets[r + 1]; e++)
            if (s->items[e] != i) out[s->items[e]] += ci;
    }
    for (size_t j = 0; j < ni; j++)
        out[j] /= pow(supp[i] + lambda, alpha) * pow(supp[j] + lambda, 1 - alpha);
    free(supp);
}

static rr_dataset *random_dataset(size_t n_items, size_t n_sess, uint64_t seed) {
    rr_rng rng;
    rr_rng_seed(&rng, seed);
    int32_t **ss = calloc(n_sess, sizeof *ss);
    size_t *lens = calloc(n_sess, sizeof *lens);
    for (size_t s = 0; s < n_sess; s++) {
        lens[s] = 1 + (size_t)rr_rng_below(&rng, 8);
        ss[s] = malloc(lens[s] * sizeof **ss);
        for (size_t t = 0; t < lens[s]; t++) {
            /* skewed: low indices are popular */
            double u = rr_rng_uniform(&rng);
            ss[s][t] = (int32_t)((double)n_items * u * u);
        }
    }
    rr_dataset *d = make_dataset(n_items, (const int32_t *const *)ss, lens, n_sess);
    for (size_t s = 0; s < n_sess; s++) free(ss[s]);
    free(ss);
    free(lens);
    return d;
}

/* Checks a model row against a reference score row: items the reference
 * scores must match it; the rest must fall below its smallest score. */
static int compare_rows(const float *row, const double *ref, size_t ni) {
    double mn = INFINITY;
    for (size_t j = 0; j < ni; j++)
        if (ref[j] > 0 && ref[j] < mn) mn = ref[j];
    int bad = 0;
    for (size_t j = 0; j < ni; j++) {
        if (ref[j] > 0) bad |= fabs(row[j] - ref[j]) > 1e-5 * (1 + ref[j]);
        else bad |= !(row[j] >= 0 && (double)row[j] < mn);
    }
    return bad;
}

static void test_random_refs(void) {
    size_t ni = 60, ns = check_small() ? 150 : 400, nq = check_small() ? 15 : 60;
    rr_dataset *d = random_dataset(ni, ns, 7);
    CHECK(d != NULL);
    if (!d) return;
    rr_rng rng;
    rr_rng_seed(&rng, 99);
    double *ref = malloc(ni * sizeof *ref);
    float *row = malloc(ni * sizeof *row);
    static const struct {
        const char *kind;
        size_t k, sample;
        int weighted;
    } cfg[] = {{"sknn", 100, 500, 0}, {"sknn", 10, 40, 0}, {"vsknn", 100, 500, 1}, {"vsknn", 7, 25, 1}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        rr_model *m = train_kind(d, cfg[c].kind, cfg[c].k, cfg[c].sample, -1, -1);
        if (!m) continue;
        size_t bad = 0;
        for (size_t q = 0; q < nq; q++) {
            int32_t items[12];
            size_t L = 1 + (size_t)rr_rng_below(&rng, 10);
            for (size_t t = 0; t < L; t++) items[t] = (int32_t)rr_rng_below(&rng, ni);
            ref_sknn(d, items, L, cfg[c].k, cfg[c].sample, cfg[c].weighted, ref);
            if (score_session(m, items, L, row) != 0 || compare_rows(row, ref, ni)) bad++;
        }
        CHECK_MSG(bad == 0, "%s k=%zu sample=%zu: %zu of %zu sessions differ from the reference",
                  cfg[c].kind, cfg[c].k, cfg[c].sample, bad, nq);
        rr_model_free(m);
    }
    /* iknn: full lists (k > n_items) must equal the reference similarities;
     * with k = 5 the kept entries must be the 5 largest */
    for (int pass = 0; pass < 2; pass++) {
        size_t k = pass ? 5 : 100;
        double lambda = pass ? 3.0 : 20.0, alpha = pass ? 0.8 : 0.5;
        rr_model *m = train_kind(d, "iknn", k, 0, lambda, alpha);
        if (!m) continue;
        size_t bad = 0;
        for (int32_t i = 0; i < (int32_t)ni; i++) {
            ref_iknn_row(d, i, lambda, alpha, ref);
            if (score_session(m, &i, 1, row) != 0) {
                bad++;
                continue;
            }
            if (pass == 0) {
                bad += compare_rows(row, ref, ni) != 0;
                continue;
            }
            /* k-th largest reference similarity */
            double *sorted = malloc(ni * sizeof *sorted);
            memcpy(sorted, ref, ni * sizeof *sorted);
            for (size_t a = 0; a < ni; a++)
                for (size_t b = a + 1; b < ni; b++)
                    if (sorted[b] > sorted[a]) {
                        double t = sorted[a];
                        sorted[a] = sorted[b];
                        sorted[b] = t;
                    }
            double kth = sorted[k - 1];
            size_t n_pos = 0;
            for (size_t j = 0; j < ni; j++) n_pos += ref[j] > 0;
            size_t n_kept = 0;
            for (size_t j = 0; j < ni; j++) {
                int kept = ref[j] > 0 && fabs(row[j] - ref[j]) <= 1e-5 * (1 + ref[j]);
                if (kept) {
                    n_kept++;
                    if (ref[j] < kth - 1e-12) bad++;
                }
            }
            if (n_kept != (n_pos < k ? n_pos : k)) bad++;
            free(sorted);
        }
        CHECK_MSG(bad == 0, "iknn k=%zu: %zu of %zu items differ from the reference", k, bad, ni);
        rr_model_free(m);
    }
    free(ref);
    free(row);
    rr_dataset_free(d);
}

/* Scores nq random sessions of m in one block call into rows (nq, n_items). */
static int score_block(const rr_model *m, rr_state **st, size_t nq, float *rows) {
    rr_error err;
    rr_status s = m->ops->score(m, st, nq, rows, &err);
    if (s != RR_OK) fprintf(stderr, "score: %s\n", err.msg);
    return s == RR_OK ? 0 : -1;
}

/* Save/load gives bit-identical scores; a block call equals one call per
 * session; calls from several threads at once agree with the serial ones. */
static void test_roundtrip(void) {
    size_t ni = 80, nq = 24;
    rr_dataset *d = random_dataset(ni, 300, 11);
    CHECK(d != NULL);
    if (!d) return;
    static const char *kinds[] = {"spop", "markov", "iknn", "sknn", "vsknn"};
    char path[256];
    snprintf(path, sizeof path, "/tmp/rr_test_baselines_%ld.rr", (long)getpid());
    rr_rng rng;
    rr_rng_seed(&rng, 5);
    for (size_t c = 0; c < sizeof kinds / sizeof kinds[0]; c++) {
        rr_model *m = train_kind(d, kinds[c], 20, 50, 20, 0.5);
        if (!m) continue;
        rr_state *st[24];
        for (size_t q = 0; q < nq; q++) {
            st[q] = rr_state_new(m);
            size_t L = q % 7; /* includes empty sessions */
            for (size_t t = 0; t < L; t++) rr_state_feed(st[q], (int32_t)rr_rng_below(&rng, ni));
        }
        float *a = malloc(nq * ni * sizeof *a), *b = malloc(nq * ni * sizeof *b);
        CHECK(score_block(m, st, nq, a) == 0);
        /* one at a time */
        int same = 1;
        for (size_t q = 0; q < nq; q++) {
            CHECK(score_block(m, &st[q], 1, b + q * ni) == 0);
        }
        same = !memcmp(a, b, nq * ni * sizeof *a);
        CHECK_MSG(same, "%s: block scores differ from single-session scores", kinds[c]);
        /* concurrently, each thread its own sessions */
        memset(b, 0, nq * ni * sizeof *b);
        int fails = 0;
#pragma omp parallel for num_threads(4) reduction(+ : fails)
        for (long q = 0; q < (long)nq; q++) fails += score_block(m, &st[q], 1, b + (size_t)q * ni) != 0;
        CHECK(fails == 0);
        CHECK_MSG(!memcmp(a, b, nq * ni * sizeof *a), "%s: threaded scores differ", kinds[c]);
        /* round trip */
        rr_error err;
        CHECK_OK(rr_model_save(m, path, &err), &err);
        rr_model *m2 = NULL;
        CHECK_OK(rr_model_load(path, &m2, &err), &err);
        if (m2) {
            CHECK(!strcmp(rr_model_kind(m2), kinds[c]));
            CHECK(rr_model_n_items(m2) == ni);
            rr_state *st2[24];
            for (size_t q = 0; q < nq; q++) {
                st2[q] = rr_state_new(m2);
                for (size_t t = 0; t < rr_state_len(st[q]); t++) rr_state_feed(st2[q], st[q]->items[t]);
            }
            memset(b, 0, nq * ni * sizeof *b);
            CHECK(score_block(m2, st2, nq, b) == 0);
            CHECK_MSG(!memcmp(a, b, nq * ni * sizeof *a), "%s: scores differ after save/load", kinds[c]);
            for (size_t q = 0; q < nq; q++) rr_state_free(st2[q]);
            rr_model_free(m2);
        }
        for (size_t q = 0; q < nq; q++) rr_state_free(st[q]);
        free(a);
        free(b);
        rr_model_free(m);
    }
    unlink(path);
    rr_dataset_free(d);
}

/* Bad parameters and empty data fail with a message, never a crash. */
static void test_errors(const rr_dataset *tinyd) {
    static const char *kinds[] = {"iknn", "sknn", "vsknn"};
    for (size_t c = 0; c < 3; c++) {
        rr_train_params p;
        rr_train_params_default(&p);
        p.kind = kinds[c];
        p.knn_k = 0;
        rr_model *m = NULL;
        rr_error err;
        err.msg[0] = 0;
        CHECK(rr_model_train(&m, tinyd, NULL, &p, &err) != RR_OK);
        CHECK(m == NULL);
        CHECK(err.msg[0] != 0);
    }
    rr_train_params p;
    rr_train_params_default(&p);
    p.kind = "iknn";
    p.iknn_alpha = 1.5;
    rr_model *m = NULL;
    rr_error err;
    CHECK(rr_model_train(&m, tinyd, NULL, &p, &err) != RR_OK);
    CHECK(m == NULL);
    rr_dataset *empty = make_dataset(0, NULL, NULL, 0);
    CHECK(empty != NULL);
    static const char *all[] = {"spop", "markov", "iknn", "sknn", "vsknn"};
    for (size_t c = 0; empty && c < 5; c++) {
        rr_train_params_default(&p);
        p.kind = all[c];
        m = NULL;
        CHECK_MSG(rr_model_train(&m, empty, NULL, &p, &err) != RR_OK, "%s on empty data", all[c]);
        CHECK(m == NULL);
    }
    rr_dataset_free(empty);
}

/* Writes a model file with m's valid common part (vocabulary, counts) and
 * the given kind-specific sections, then loads it. */
typedef struct sec {
    const char *name;
    rr_dtype dt;
    const void *data;
    size_t bytes;
} sec;

static rr_status load_crafted(const rr_model *m, const char *kind, const sec *secs, size_t n_secs,
                              const char *path, rr_error *err) {
    rr_fwriter *w = NULL;
    rr_status st = rr_fw_new(&w, kind, err);
    if (!st) st = rr_fw_vocab(w, &m->items, err);
    if (!st) st = rr_fw_section(w, "counts", RR_DT_F64, m->counts, m->n_items * sizeof(double), err);
    if (!st) st = rr_fw_kv_int(w, "sknn.k", 10, err);
    if (!st) st = rr_fw_kv_int(w, "sknn.sample", 10, err);
    if (!st) st = rr_fw_kv_int(w, "iknn.k", 2, err);
    if (!st) st = rr_fw_kv_double(w, "iknn.lambda", 20, err);
    if (!st) st = rr_fw_kv_double(w, "iknn.alpha", 0.5, err);
    for (size_t i = 0; !st && i < n_secs; i++)
        st = rr_fw_section(w, secs[i].name, secs[i].dt, secs[i].data, secs[i].bytes, err);
    if (!st) st = rr_fw_commit(w, path, err);
    rr_fw_free(w);
    if (st) return RR_ERR_INTERNAL; /* writing must work: report as a test failure */
    rr_model *out = NULL;
    st = rr_model_load(path, &out, err);
    rr_model_free(out);
    return st;
}

/* Structurally wrong kind sections (valid checksums) are rejected with a
 * message; the well-formed variant of each loads. */
static void test_bad_files(const rr_dataset *tinyd) {
    rr_model *m = train_kind(tinyd, "pop", 0, 0, -1, -1);
    if (!m) return;
    char path[256];
    snprintf(path, sizeof path, "/tmp/rr_test_baselines_bad_%ld.rr", (long)getpid());
    rr_error err;
    /* markov: 5 items -> off has 6 entries */
    int64_t off_ok[6] = {0, 1, 1, 2, 2, 2}, off_dec[6] = {0, 2, 1, 2, 2, 2};
    int32_t succ_ok[2] = {1, 3}, succ_bad[2] = {1, 7}, cnt_ok[2] = {2, 1}, cnt_bad[2] = {0, 1};
    float sim_ok[2] = {0.5f, 0.25f}, sim_nan[2] = {NAN, 0.25f};
    struct {
        const char *kind;
        sec s[3];
        rr_status want;
    } cases[] = {
        {"markov", {{"markov.off", RR_DT_I64, off_ok, sizeof off_ok}, {"markov.succ", RR_DT_I32, succ_ok, 8}, {"markov.count", RR_DT_I32, cnt_ok, 8}}, RR_OK},
        {"markov", {{"markov.off", RR_DT_I64, off_ok, sizeof off_ok}, {"markov.succ", RR_DT_I32, succ_bad, 8}, {"markov.count", RR_DT_I32, cnt_ok, 8}}, RR_ERR_FORMAT},
        {"markov", {{"markov.off", RR_DT_I64, off_dec, sizeof off_dec}, {"markov.succ", RR_DT_I32, succ_ok, 8}, {"markov.count", RR_DT_I32, cnt_ok, 8}}, RR_ERR_FORMAT},
        {"markov", {{"markov.off", RR_DT_I64, off_ok, sizeof off_ok}, {"markov.succ", RR_DT_I32, succ_ok, 8}, {"markov.count", RR_DT_I32, cnt_bad, 8}}, RR_ERR_FORMAT},
        {"markov", {{"markov.off", RR_DT_I64, off_ok, 40}, {"markov.succ", RR_DT_I32, succ_ok, 8}, {"markov.count", RR_DT_I32, cnt_ok, 8}}, RR_ERR_FORMAT},
        {"iknn", {{"iknn.off", RR_DT_I64, off_ok, sizeof off_ok}, {"iknn.nb", RR_DT_I32, succ_ok, 8}, {"iknn.sim", RR_DT_F32, sim_ok, 8}}, RR_OK},
        {"iknn", {{"iknn.off", RR_DT_I64, off_ok, sizeof off_ok}, {"iknn.nb", RR_DT_I32, succ_bad, 8}, {"iknn.sim", RR_DT_F32, sim_ok, 8}}, RR_ERR_FORMAT},
        {"iknn", {{"iknn.off", RR_DT_I64, off_ok, sizeof off_ok}, {"iknn.nb", RR_DT_I32, succ_ok, 8}, {"iknn.sim", RR_DT_F32, sim_nan, 8}}, RR_ERR_FORMAT},
        {"iknn", {{"iknn.off", RR_DT_I64, off_ok, sizeof off_ok}, {"iknn.nb", RR_DT_I32, succ_ok, 8}, {"iknn.sim", RR_DT_F32, sim_ok, 4}}, RR_ERR_FORMAT},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        err.msg[0] = 0;
        rr_status st = load_crafted(m, cases[c].kind, cases[c].s, 3, path, &err);
        CHECK_MSG(st == cases[c].want, "%s case %zu: status %d (%s)", cases[c].kind, c, (int)st, err.msg);
        if (cases[c].want != RR_OK) CHECK(err.msg[0] != 0);
    }
    /* sknn / vsknn: sessions {1 3} {0} {2 4} */
    int64_t soff_ok[4] = {0, 2, 3, 5}, soff_empty[4] = {0, 2, 2, 5}, soff_short[4] = {0, 2, 3, 4};
    int32_t sit_ok[5] = {1, 3, 0, 2, 4}, sit_unsorted[5] = {3, 1, 0, 2, 4}, sit_neg[5] = {1, 3, -1, 2, 4};
    static const char *sk[] = {"sknn", "vsknn"};
    for (size_t v = 0; v < 2; v++) {
        struct {
            sec s[2];
            rr_status want;
        } sc[] = {
            {{{"sknn.off", RR_DT_I64, soff_ok, sizeof soff_ok}, {"sknn.items", RR_DT_I32, sit_ok, 20}}, RR_OK},
            {{{"sknn.off", RR_DT_I64, soff_empty, sizeof soff_empty}, {"sknn.items", RR_DT_I32, sit_ok, 20}}, RR_ERR_FORMAT},
            {{{"sknn.off", RR_DT_I64, soff_short, sizeof soff_short}, {"sknn.items", RR_DT_I32, sit_ok, 20}}, RR_ERR_FORMAT},
            {{{"sknn.off", RR_DT_I64, soff_ok, sizeof soff_ok}, {"sknn.items", RR_DT_I32, sit_unsorted, 20}}, RR_ERR_FORMAT},
            {{{"sknn.off", RR_DT_I64, soff_ok, sizeof soff_ok}, {"sknn.items", RR_DT_I32, sit_neg, 20}}, RR_ERR_FORMAT},
            {{{"sknn.off", RR_DT_I64, soff_ok, 0}, {"sknn.items", RR_DT_I32, sit_ok, 20}}, RR_ERR_FORMAT},
        };
        for (size_t c = 0; c < sizeof sc / sizeof sc[0]; c++) {
            err.msg[0] = 0;
            rr_status st = load_crafted(m, sk[v], sc[c].s, 2, path, &err);
            CHECK_MSG(st == sc[c].want, "%s case %zu: status %d (%s)", sk[v], c, (int)st, err.msg);
            if (sc[c].want != RR_OK) CHECK(err.msg[0] != 0);
        }
    }
    /* a missing section */
    sec only_off[1] = {{"sknn.off", RR_DT_I64, soff_ok, sizeof soff_ok}};
    CHECK(load_crafted(m, "sknn", only_off, 1, path, &err) == RR_ERR_FORMAT);
    unlink(path);
    rr_model_free(m);
}

int main(void) {
    rr_dataset *d = tiny();
    CHECK(d != NULL);
    if (!d) return check_summary("test_baselines");
    test_spop(d);
    test_markov(d);
    test_iknn(d);
    test_sknn(d);
    test_vsknn(d);
    test_random_refs();
    test_roundtrip();
    test_errors(d);
    test_bad_files(d);
    rr_dataset_free(d);
    return check_summary("test_baselines");
}
