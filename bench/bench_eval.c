/* bench_eval.c - evaluation throughput (targets per second) of the
 * full-catalogue engine.
 *
 * 1. Synthetic: POP on 43,097 items (diginetica-srgnn's catalogue size) with
 *    Zipf counts, ~60k targets, 1 and 2 threads.
 * 2. Synthetic GRU (one layer of H units, tied embedding, GRU4Rec's random
 *    initialisation) on the same 43,097 items, H = 100 and H = 512, 1 and 2
 *    threads, with the FLOP floor per target (2 H N multiply-adds).
 * 3. diginetica-srgnn from $RR_SHARED_DATA when present: train = sessions
 *    1..186,670, test = 186,671.. (the SR-GNN split, 60,858 targets), for
 *    POP and, when built in, spop and markov; then GRUs of H = 100 and 512
 *    trained for one epoch (GRU4Rec's diginetica preset otherwise), exact
 *    and screened: the band on a trained model.
 *    Each GRU run is made twice, with the exact engine (screen off) and
 *    with the quantised screen (nn/screen.h), on the same model and data:
 *    targets/s of both, their ratio, and the share of (session, item)
 *    pairs the screen could not decide and rescored exactly.
 * Usage: bench_eval [threads] [part] [H]
 *   part 1: only part 2; part 2: only the GRUs of part 3;  H: only that
 *   width (100 or 512) in the GRU runs */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/dataset.h"
#include "eval/eval.h"
#include "models/head.h"
#include "models/model.h"
#include "models/rnn.h"
#include "nn/screen.h"
#include "rnnrec.h"
#include "util/util.h"

static int die(const rr_error *err) {
    fprintf(stderr, "bench_eval: %s\n", err->msg);
    return 1;
}

/* A dataset with items "0".."ni-1" and the given sessions. */
static rr_dataset *synth(rr_rng *rng, size_t ni, size_t n_sess, size_t mean_len, const double *cdf) {
    rr_dataset *d = rr_dataset_new();
    size_t *len = malloc(n_sess * sizeof *len), ne = 0;
    for (size_t s = 0; s < n_sess; s++) {
        len[s] = 2 + (size_t)rr_rng_below(rng, 2 * mean_len - 3);
        ne += len[s];
    }
    rr_sessions_alloc(&d->s, n_sess, ne, NULL);
    d->sess_id = malloc(n_sess * sizeof *d->sess_id);
    rr_vocab_reserve(&d->items, ni, NULL);
    char id[32];
    for (size_t i = 0; i < ni; i++) {
        int32_t idx;
        snprintf(id, sizeof id, "%zu", i);
        rr_vocab_add(&d->items, id, strlen(id), &idx, NULL);
    }
    size_t e = 0;
    for (size_t s = 0; s < n_sess; s++) {
        snprintf(id, sizeof id, "%zu", s);
        rr_vocab_add(&d->sessions, id, strlen(id), &d->sess_id[s], NULL);
        for (size_t j = 0; j < len[s]; j++, e++) {
            double u = rr_rng_uniform(rng);
            size_t lo = 0, hi = ni - 1;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (cdf[mid] < u) lo = mid + 1;
                else hi = mid;
            }
            d->s.items[e] = (int32_t)lo;
            d->s.times[e] = (double)e;
        }
        d->s.offsets[s + 1] = (int64_t)e;
    }
    free(len);
    return d;
}

/* The sessions of d whose numeric id is (>= cut) == want_test, with their
 * own item vocabulary. */
static rr_dataset *subset(const rr_dataset *d, long cut, int want_test) {
    rr_dataset *o = rr_dataset_new();
    size_t ns = 0, ne = 0;
    for (size_t s = 0; s < d->s.n_sessions; s++) {
        size_t l;
        const char *id = rr_vocab_id(&d->sessions, d->sess_id[s], &l);
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)l, id);
        if ((atol(buf) >= cut) == want_test) {
            ns++;
            ne += rr_session_len(&d->s, s);
        }
    }
    rr_sessions_alloc(&o->s, ns, ne, NULL);
    o->sess_id = malloc((ns ? ns : 1) * sizeof *o->sess_id);
    size_t w = 0, e = 0;
    for (size_t s = 0; s < d->s.n_sessions; s++) {
        size_t l;
        const char *id = rr_vocab_id(&d->sessions, d->sess_id[s], &l);
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)l, id);
        if ((atol(buf) >= cut) != want_test) continue;
        rr_vocab_add(&o->sessions, id, l, &o->sess_id[w], NULL);
        for (int64_t k = d->s.offsets[s]; k < d->s.offsets[s + 1]; k++, e++) {
            size_t il;
            const char *iid = rr_vocab_id(&d->items, d->s.items[k], &il);
            rr_vocab_add(&o->items, iid, il, &o->s.items[e], NULL);
            o->s.times[e] = d->s.times[k];
        }
        o->s.offsets[++w] = (int64_t)e;
    }
    return o;
}

static int run(const char *label, const rr_model *m, const rr_dataset *test, int threads) {
    rr_eval_params p;
    rr_eval_params_default(&p);
    p.threads = threads;
    rr_eval_result r;
    rr_error err;
    if (rr_evaluate(m, test, &p, &r, &err)) return die(&err);
    printf("%-28s threads %d: %zu targets, %zu items, %.3f s, %.0f targets/s, Recall@20 %.6f MRR@20 %.6f\n", label,
           threads, r.n_targets, r.n_items, r.seconds, (double)r.n_targets / r.seconds, r.recall[3], r.mrr[3]);
    return 0;
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the floor: one core's peak multiply-add rate for fp32 FMA,
 * vdpbf16ps (bf16 pairs into fp32) and vpdpwssd (int16 pairs into int32),
 * 12 independent zmm accumulators each, a broadcast operand as in the
 * kernels.  Rates in G multiply-adds x 2 per second, per CPU second. */
static double peak_fp32, peak_int16;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PK_REP(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define PK_SUM(i) s = PK_ADD(s, a##i);
#define PK_DECL(i) PK_T a##i = PK_ZERO;
#define PK_T __m512
#define PK_ZERO _mm512_setzero_ps()
#define PK_ADD _mm512_add_ps
#define PK_FMA(i) a##i = _mm512_fmadd_ps(h, _mm512_set1_ps(w[i]), a##i);
#define PK_BF(i) a##i = _mm512_dpbf16_ps(a##i, (__m512bh)h, (__m512bh)_mm512_set1_epi32(wi[i]));
__attribute__((target("avx512f"))) static float pk_fma(long n, const float *w) {
    PK_REP(PK_DECL)
    __m512 h = _mm512_set1_ps(1.0f);
    for (long it = 0; it < n; it++) {
        PK_REP(PK_FMA)
        __asm__ volatile("" : : "r"(w) : "memory");
    }
    __m512 s = PK_ZERO;
    PK_REP(PK_SUM)
    return _mm512_reduce_add_ps(s);
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static float pk_bf16(long n, const float *w) {
    const int *wi = (const int *)w;
    PK_REP(PK_DECL)
    __m512 h = _mm512_castsi512_ps(_mm512_set1_epi32(0x3f803f80));
    for (long it = 0; it < n; it++) {
        PK_REP(PK_BF)
        __asm__ volatile("" : : "r"(w) : "memory");
    }
    __m512 s = PK_ZERO;
    PK_REP(PK_SUM)
    return _mm512_reduce_add_ps(s);
}
#undef PK_T
#undef PK_ZERO
#undef PK_ADD
#define PK_T __m512i
#define PK_ZERO _mm512_setzero_si512()
#define PK_ADD _mm512_add_epi32
#define PK_DP(i) a##i = _mm512_dpwssd_epi32(a##i, h, _mm512_set1_epi32(wi[i]));
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int pk_int16(long n, const float *w) {
    const int *wi = (const int *)w;
    PK_REP(PK_DECL)
    __m512i h = _mm512_set1_epi32(0x00010001);
    for (long it = 0; it < n; it++) {
        PK_REP(PK_DP)
        __asm__ volatile("" : : "r"(w) : "memory");
    }
    __m512i s = PK_ZERO;
    PK_REP(PK_SUM)
    return _mm512_reduce_add_epi32(s);
}

static double thread_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void measure_peaks(void) {
    float w[16] = {0};
    const long n = 20000000;
    volatile float sink = 0;
    double best[3] = {0, 0, 0};
    for (int rep = 0; rep < 3; rep++) {
        double t = thread_seconds();
        sink += pk_fma(n, w);
        t = thread_seconds() - t;
        if (2.0 * 16 * 12 * (double)n / t > best[0]) best[0] = 2.0 * 16 * 12 * (double)n / t;
        if (__builtin_cpu_supports("avx512bf16")) {
            t = thread_seconds();
            sink += pk_bf16(n, w);
            t = thread_seconds() - t;
            if (4.0 * 16 * 12 * (double)n / t > best[1]) best[1] = 4.0 * 16 * 12 * (double)n / t;
        }
        if (__builtin_cpu_supports("avx512vnni")) {
            t = thread_seconds();
            sink += (float)pk_int16(n, w);
            t = thread_seconds() - t;
            if (4.0 * 16 * 12 * (double)n / t > best[2]) best[2] = 4.0 * 16 * 12 * (double)n / t;
        }
    }
    (void)sink;
    peak_fp32 = best[0] * 1e-9;
    peak_int16 = best[2] * 1e-9;
    printf("peak per core (G ops/s, a multiply-add = 2): fp32 FMA %.1f, vdpbf16ps %.1f, vpdpwssd %.1f\n", peak_fp32,
           best[1] * 1e-9, peak_int16);
}
#else
static void measure_peaks(void) { printf("peak: not measured on this architecture\n"); }
#endif

/* A GRU model on train's items with GRU4Rec's initialisation, untrained:
 * the scoring cost does not depend on what the weights learned. */
static rr_model *gru_model(const rr_dataset *train, size_t H, rr_rng *rng, rr_error *err) {
    rr_model *m = NULL;
    if (rr_model_new_common(&m, &rr_gru_ops, train, err)) return NULL;
    rr_rnn_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.cell = RR_CELL_GRU;
    sh.n_items = m->n_items;
    sh.n_layers = 1;
    sh.layers[0] = H;
    sh.embedding = -1;
    sh.final_act = RR_ACT_LINEAR;
    rr_rnn *r = NULL;
    if (rr_rnn_new(&r, &sh, err)) {
        rr_model_free(m);
        return NULL;
    }
    rr_rnn_init(r, rng);
    m->impl = r;
    return m;
}

/* Evaluates m with the exact engine and with the screen, 1..max_threads. */
static int compare_paths(const char *label, size_t H, const rr_model *m, const rr_dataset *test, int max_threads) {
    rr_error err;
    for (int t = 1; t <= max_threads; t++) {
        double base = 0;
        for (int screened = 0; screened <= 1; screened++) {
            rr_eval_params p;
            rr_eval_params_default(&p);
            p.threads = t;
            rr_eval_result r;
            rr_screen_force_off(!screened);
            rr_fused_screen_stats(NULL, NULL, NULL, 1);
            double c0 = cpu_seconds();
            if (rr_evaluate(m, test, &p, &r, &err)) return die(&err);
            double cpu = cpu_seconds() - c0;
            double tps = (double)r.n_targets / r.seconds, flop = 2.0 * (double)H * (double)r.n_items;
            /* On a shared machine the wall clock says how much CPU we got;
             * the process CPU time (spin-waits included) says what the work
             * cost. */
            printf("%s H %-4zu threads %d %s: %zu targets, %zu items, %.3f s (cpu %.3f s), %.0f targets/s, "
                   "%.0f targets/cpu-s, %.1f GFLOP/s of the 2HN floor, Recall@20 %.6f MRR@20 %.6f\n",
                   label, H, t, screened ? "screen" : "exact ", r.n_targets, r.n_items, r.seconds, cpu, tps,
                   (double)r.n_targets / cpu, tps * flop * 1e-9, r.recall[3], r.mrr[3]);
            {
                /* per CPU second, the 2HN floor against one core's peak */
                double g = (double)r.n_targets / cpu * flop * 1e-9;
                printf("  %.1f G floor-ops per cpu-s: %.0f%% of the fp32 FMA peak, %.0f%% of the int16 peak\n", g,
                       peak_fp32 > 0 ? 100.0 * g / peak_fp32 : 0.0, peak_int16 > 0 ? 100.0 * g / peak_int16 : 0.0);
            }
            if (screened) {
                size_t pairs, nr, ntop;
                rr_fused_screen_stats(&pairs, &nr, &ntop, 1);
                printf("  screen: %.3f%% of pairs rescored for ranks, %.3f%% for top-20 (%.1f + %.1f per target); "
                       "speed-up %.2fx (cpu time)\n",
                       pairs ? 100.0 * (double)nr / (double)pairs : 0.0,
                       pairs ? 100.0 * (double)ntop / (double)pairs : 0.0, (double)nr / (double)r.n_targets,
                       (double)ntop / (double)r.n_targets, base > 0 ? base / cpu : 0.0);
            } else {
                base = cpu;
            }
            fflush(stdout);
        }
        rr_screen_force_off(0);
    }
    return 0;
}

/* The public API on Q sessions of 5 random items, top-20 each:
 * rr_recommend on the model as loaded, then after rr_model_use_screen
 * (its one-off cost printed too), the lists compared. */
static int bench_recommend_api(const char *label, size_t H, rr_model *m, rr_rng *rng, int bits) {
    enum { Q = 300, K = 20, L = 5 };
    rr_error err;
    size_t ni = rr_model_n_items(m), same = 0;
    int32_t *top = malloc(2 * Q * K * sizeof *top);
    float *sc = malloc(2 * Q * K * sizeof *sc);
    rr_state **st = calloc(Q, sizeof *st);
    for (int q = 0; q < Q; q++) {
        st[q] = rr_state_new(m);
        for (int t = 0; t < L; t++)
            if (rr_state_feed(st[q], (int32_t)rr_rng_below(rng, ni))) return die(&err);
    }
    double tq[2] = {0, 0}, tb = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass) {
            double c0 = cpu_seconds();
            if (rr_model_use_screen(m, bits, &err)) return die(&err);
            tb = cpu_seconds() - c0;
            if (!rr_model_screen_bits(m)) {
                printf("%s H %zu rr_recommend: no screen on this CPU\n", label, H);
                break;
            }
        }
        for (int q = 0; q < Q; q++) {
            double c0 = cpu_seconds();
            size_t o = ((size_t)pass * Q + (size_t)q) * K;
            if (rr_recommend(m, &st[q], 1, K, 1, top + o, sc + o, &err)) return die(&err);
            tq[pass] += cpu_seconds() - c0;
        }
    }
    for (int q = 0; q < Q; q++)
        same += !memcmp(top + (size_t)q * K, top + ((size_t)Q + (size_t)q) * K, K * sizeof *top) &&
                !memcmp(sc + (size_t)q * K, sc + ((size_t)Q + (size_t)q) * K, K * sizeof *sc);
    if (rr_model_screen_bits(m))
        printf("%s H %-4zu rr_recommend, one session of %d items, top-%d: %.0f us, with rr_model_use_screen(%d) "
               "%.0f us (cpu per query), %.2fx; the screen took %.1f ms to build; %zu of %d lists identical\n",
               label, H, L, K, tq[0] / Q * 1e6, bits, tq[1] / Q * 1e6, tq[1] > 0 ? tq[0] / tq[1] : 0.0, tb * 1e3,
               same, Q);
    fflush(stdout);
    if (rr_model_use_screen(m, 0, &err)) return die(&err);
    for (int q = 0; q < Q; q++) rr_state_free(st[q]);
    free(st);
    free(top);
    free(sc);
    return 0;
}

/* Serving: the top-20 of one session at a time (rr_recommend's shape for a
 * single request), the fused engine (n = 1, one thread) against the
 * screened one-session path of head.c.  Vectors uniform in (-1, 1).  Then
 * the same through the public API (bench_recommend_api). */
static int bench_serving(const char *label, size_t H, rr_model *m, rr_rng *rng, int bits) {
    rr_error err;
    rr_head hd;
    if (!rr_model_head(m, &hd)) return 0;
    rr_screen *sc = NULL;
    if (rr_screen_new(&sc, hd.W, hd.b, hd.N, hd.D, bits, &err) || (sc && rr_screen_add_blocks(sc, &err))) return die(&err);
    if (!sc) {
        printf("%s H %zu serving: no screen on this CPU\n", label, H);
        return 0;
    }
    enum { Q = 300, K = 20 };
    float *v = malloc((size_t)Q * hd.D * sizeof *v);
    for (size_t i = 0; i < (size_t)Q * hd.D; i++) v[i] = 2.0f * rr_rng_uniformf(rng) - 1.0f;
    int32_t top[K], top2[K];
    float tops[K], tops2[K];
    size_t nt = 0, nt2 = 0, same = 0;
    rr_fused_scratch *fz = NULL;
    rr_head_screen_scratch *hs = NULL;
    double te = 0, ts = 0;
    for (int q = 0; q < Q; q++) {
        const float *vq = v + (size_t)q * hd.D;
        rr_fused_job job = {&hd, &vq, 1, NULL, NULL, NULL, K, 1};
        rr_fused_out out = {NULL, NULL, NULL, top, tops, &nt};
        double c0 = cpu_seconds();
        if (rr_fused_rank(&job, &fz, &out, &err)) return die(&err);
        double c1 = cpu_seconds();
        if (rr_head_topk_screened(&hd, sc, vq, NULL, 0, K, top2, tops2, &nt2, &hs, &err)) return die(&err);
        double c2 = cpu_seconds();
        te += c1 - c0;
        ts += c2 - c1;
        same += nt == nt2 && !memcmp(top, top2, nt * sizeof *top) && !memcmp(tops, tops2, nt * sizeof *tops);
    }
    printf("%s H %-4zu serving one session, top-%d: exact %.0f us, %d-bit screen %.0f us (cpu per query), %.2fx; "
           "%zu of %d lists identical\n",
           label, H, K, bits, te / Q * 1e6, ts / Q * 1e6, ts > 0 ? te / ts : 0.0, same, Q);
    fflush(stdout);
    rr_fused_scratch_free(fz);
    rr_head_screen_scratch_free(hs);
    rr_screen_free(sc);
    free(v);
    return bench_recommend_api(label, H, m, rng, bits);
}

static int run_gru(size_t H, const rr_dataset *train, const rr_dataset *test, int max_threads, rr_rng *rng) {
    rr_error err;
    rr_model *m = gru_model(train, H, rng, &err);
    if (!m) return die(&err);
    int rc = compare_paths("synthetic gru", H, m, test, max_threads) || bench_serving("synthetic gru", H, m, rng, 16) ||
             bench_serving("synthetic gru", H, m, rng, 8);
    rr_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    int max_threads = argc > 1 ? atoi(argv[1]) : 2;
    if (max_threads < 1) max_threads = 1;
    int part = argc > 2 ? atoi(argv[2]) : 0, gru_only = part == 1;
    rr_error err;
    rr_rng rng;
    rr_rng_seed(&rng, 1);
    measure_peaks();
    const size_t ni = 43097;
    double *cdf = malloc(ni * sizeof *cdf), z = 0;
    for (size_t i = 0; i < ni; i++) z += 1.0 / pow((double)(i + 1), 0.8);
    for (size_t i = 0; i < ni; i++) {
        cdf[i] = (i ? cdf[i - 1] : 0) + 1.0 / pow((double)(i + 1), 0.8) / z;
    }
    cdf[ni - 1] = 1.0;
    rr_dataset *train = synth(&rng, ni, 180000, 5, cdf);
    rr_dataset *test = synth(&rng, ni, 16000, 5, cdf);
    rr_train_params tp;
    rr_train_params_default(&tp);
    tp.kind = "pop";
    rr_model *m = NULL;
    if (part == 0) {
        if (rr_model_train(&m, train, NULL, &tp, &err)) return die(&err);
        for (int t = 1; t <= max_threads; t++)
            if (run("synthetic pop (43,097 items)", m, test, t)) return 1;
        rr_model_free(m);
    }
    /* a quarter of the test sessions (~16k targets) keeps H 512 short */
    rr_dataset *gtest = synth(&rng, ni, 4000, 5, cdf);
    free(cdf);
    size_t only_h = argc > 3 ? (size_t)atoi(argv[3]) : 0;
    if (part != 2 && ((only_h != 512 && run_gru(100, train, gtest, max_threads, &rng)) ||
                      (only_h != 100 && run_gru(512, train, gtest, max_threads, &rng))))
        return 1;
    rr_dataset_free(gtest);
    rr_dataset_free(train);
    rr_dataset_free(test);
    if (gru_only) return 0;

    const char *dir = getenv("RR_SHARED_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/diginetica-srgnn/events.tsv.gz", dir ? dir : "../shared/data");
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("SKIP: %s not found (set RR_SHARED_DATA)\n", path);
        return 0;
    }
    fclose(f);
    rr_read_opts ro;
    rr_read_opts_default(&ro);
    rr_dataset *all = NULL;
    double t0 = rr_now();
    if (rr_dataset_read(path, &ro, &all, &err)) return die(&err);
    train = subset(all, 186671, 0);
    test = subset(all, 186671, 1);
    printf("diginetica-srgnn: read in %.2f s; train %zu events / %zu items, test %zu events / %zu sessions\n",
           rr_now() - t0, train->s.n_events, train->items.n, test->s.n_events, test->s.n_sessions);
    rr_dataset_free(all);
    static const char *kinds[] = {"pop", "spop", "markov"};
    for (size_t k = 0; k < 3 && part != 2; k++) {
        if (!rr_model_fit_find(kinds[k])) {
            printf("%s: kind not built in, skipped\n", kinds[k]);
            continue;
        }
        tp.kind = kinds[k];
        m = NULL;
        if (rr_model_train(&m, train, NULL, &tp, &err)) return die(&err);
        char label[64];
        snprintf(label, sizeof label, "diginetica %s", kinds[k]);
        for (int t = 1; t <= max_threads; t++)
            if (run(label, m, test, t)) return 1;
        rr_model_free(m);
    }
    for (size_t H = 100; H <= 512; H += 412) {
        if (only_h && H != only_h) continue;
        rr_train_params gp;
        rr_train_params_default(&gp);
        if (rr_train_params_preset(&gp, "diginetica", &err)) return die(&err);
        gp.kind = "gru";
        gp.layers[0] = H;
        gp.epochs = 1;
        gp.threads = max_threads;
        m = NULL;
        t0 = rr_now();
        if (rr_model_train(&m, train, NULL, &gp, &err)) return die(&err);
        printf("diginetica gru H %zu: one epoch trained in %.1f s\n", H, rr_now() - t0);
        fflush(stdout);
        if (compare_paths("diginetica gru", H, m, test, max_threads)) return 1;
        if (bench_serving("diginetica gru", H, m, &rng, 16) || bench_serving("diginetica gru", H, m, &rng, 8)) return 1;
        rr_model_free(m);
    }
    rr_dataset_free(train);
    rr_dataset_free(test);
    return 0;
}
