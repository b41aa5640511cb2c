/* test_loss_grad.c - GRU4Rec losses: central finite-difference gradient
 * checks in double for every loss, float against double, values and
 * gradients against PyTorch autograd fixtures (scripts/gen_loss_fixtures.py),
 * stability for large scores, the float exp, and the logQ column builder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "check.h"
#include "train/loss.h"
#include "util/util.h"

typedef struct gcase {
    const char *name;
    rr_loss kind;
    double bpreg, elu;
    size_t norm;
    int logq;
} gcase;

static const gcase cases[] = {
    {"xe", RR_LOSS_CROSS_ENTROPY, 0, 0, 0, 0},
    {"xe-logq", RR_LOSS_CROSS_ENTROPY, 0, 0, 0, 1},
    {"xe-norm", RR_LOSS_CROSS_ENTROPY, 0, 0, 7, 0},
    {"bpr-max-reg0", RR_LOSS_BPR_MAX, 0, 0, 0, 0},
    {"bpr-max-reg", RR_LOSS_BPR_MAX, 1.5, 0, 0, 0},
    {"bpr-max-elu", RR_LOSS_BPR_MAX, 0.9, 0.5, 0, 0},
    {"top1-max", RR_LOSS_TOP1_MAX, 0, 0, 0, 0},
    {"bpr", RR_LOSS_BPR, 0, 0, 0, 0},
    {"top1", RR_LOSS_TOP1, 0, 0, 0, 0},
};
#define NCASES (sizeof cases / sizeof cases[0])

static rr_loss_cfg cfg_of(const gcase *g) {
    rr_loss_cfg c;
    memset(&c, 0, sizeof c);
    c.kind = g->kind;
    c.bpreg = g->bpreg;
    c.elu = g->elu;
    c.norm = g->norm;
    return c;
}

static void fill_uniform(rr_rng *r, double *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rr_rng_uniform(r);
}

/* Central differences of the double loss; returns the largest relative error
 * |num - ana| / max(|num|, |ana|, floor) over all entries of O. */
static double fd_check(const gcase *g, size_t B, size_t S, uint64_t seed) {
    size_t C = B + S, n = B * C;
    rr_rng r;
    rr_rng_seed(&r, seed);
    double *O = malloc(n * sizeof *O), *d = malloc(n * sizeof *d), *tmp = malloc(n * sizeof *tmp);
    double *sc = malloc(rr_loss_scratch_floats(B, C) * sizeof *sc);
    double *lq = malloc(C * sizeof *lq);
    fill_uniform(&r, O, n, -2.5, 2.5);
    fill_uniform(&r, lq, C, 0, 3);
    rr_loss_cfg c = cfg_of(g);
    const double *q = g->logq ? lq : NULL;
    rr_loss_f64(&c, B, C, O, q, d, sc);
    double gmax = 0;
    for (size_t k = 0; k < n; k++) gmax = fmax(gmax, fabs(d[k]));
    double worst = 0;
    const double h = 1e-5;
    for (size_t k = 0; k < n; k++) {
        double o = O[k];
        O[k] = o + h;
        double lp = rr_loss_f64(&c, B, C, O, q, tmp, sc);
        O[k] = o - h;
        double lm = rr_loss_f64(&c, B, C, O, q, tmp, sc);
        O[k] = o;
        double num = (lp - lm) / (2 * h);
        /* floor: entries far below the row's scale are compared absolutely */
        double den = fmax(fmax(fabs(num), fabs(d[k])), 1e-3 * gmax);
        double e = fabs(num - d[k]) / den;
        if (e > worst) worst = e;
    }
    free(O);
    free(d);
    free(tmp);
    free(sc);
    free(lq);
    return worst;
}

/* Float and double on the same (float-representable) scores. */
static void float_vs_double(const gcase *g, size_t B, size_t S, double lo, double hi,
                            double tol, double abs_floor, uint64_t seed, int *nonfinite) {
    size_t C = B + S, n = B * C;
    rr_rng r;
    rr_rng_seed(&r, seed);
    float *Of = malloc(n * sizeof *Of), *df = malloc(n * sizeof *df);
    double *Od = malloc(n * sizeof *Od), *dd = malloc(n * sizeof *dd);
    float *scf = malloc(rr_loss_scratch_floats(B, C) * sizeof *scf);
    double *scd = malloc(rr_loss_scratch_floats(B, C) * sizeof *scd);
    float *lqf = malloc(C * sizeof *lqf);
    double *lqd = malloc(C * sizeof *lqd);
    for (size_t k = 0; k < n; k++) {
        Of[k] = (float)(lo + (hi - lo) * rr_rng_uniform(&r));
        Od[k] = Of[k];
    }
    for (size_t j = 0; j < C; j++) {
        lqf[j] = (float)(3 * rr_rng_uniform(&r));
        lqd[j] = lqf[j];
    }
    rr_loss_cfg c = cfg_of(g);
    double Lf = rr_loss_f32(&c, B, C, Of, g->logq ? lqf : NULL, df, scf);
    double Ld = rr_loss_f64(&c, B, C, Od, g->logq ? lqd : NULL, dd, scd);
    int finite = isfinite(Lf) && isfinite(Ld);
    double gmax = 0, derr = 0;
    for (size_t k = 0; k < n; k++) {
        finite &= isfinite(df[k]) && isfinite(dd[k]);
        gmax = fmax(gmax, fabs(dd[k]));
    }
    for (size_t k = 0; k < n; k++) derr = fmax(derr, fabs(df[k] - dd[k]));
    if (!finite) (*nonfinite)++;
    CHECK_MSG(finite, "%s B=%zu S=%zu range [%g,%g]: non-finite output", g->name, B, S, lo, hi);
    double lerr = fabs(Lf - Ld) / fmax(fabs(Ld), 1e-3);
    CHECK_MSG(lerr < tol, "%s B=%zu S=%zu: float loss %.9g vs double %.9g (rel %.3g)", g->name, B,
              S, Lf, Ld, lerr);
    CHECK_MSG(derr <= tol * gmax + abs_floor, "%s B=%zu S=%zu: float dO off by %.3g (max |dO| %.3g)",
              g->name, B, S, derr, gmax);
    free(Of);
    free(df);
    free(Od);
    free(dd);
    free(scf);
    free(scd);
    free(lqf);
    free(lqd);
}

/* ---- PyTorch fixtures */
static int read_doubles(FILE *f, double *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fscanf(f, "%lf", &x[i]) != 1) return 0;
    return 1;
}

static void fixture(const char *dir, const char *name) {
    char path[2048];
    snprintf(path, sizeof path, "%s/loss_%s.txt", dir, name);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return;
    int kind, has_lq;
    double bpreg, elu;
    size_t norm, B, C;
    int ok = fscanf(f, "%d %lf %lf %zu %zu %zu %d", &kind, &bpreg, &elu, &norm, &B, &C, &has_lq) == 7;
    ok = ok && B >= 1 && B <= 64 && C >= B && C <= 256;
    CHECK_MSG(ok, "%s: bad header", path);
    if (!ok) {
        fclose(f);
        return;
    }
    size_t n = B * C;
    double *O = malloc(n * sizeof *O), *dref = malloc(n * sizeof *dref), *d = malloc(n * sizeof *d);
    double *lq = malloc(C * sizeof *lq), *sc = malloc(n * sizeof *sc), Lref = 0;
    ok = read_doubles(f, O, n);
    if (ok && has_lq) ok = read_doubles(f, lq, C);
    else if (ok) {
        char word[16];
        ok = fscanf(f, "%15s", word) == 1 && !strcmp(word, "none");
    }
    ok = ok && fscanf(f, "%lf", &Lref) == 1 && read_doubles(f, dref, n);
    fclose(f);
    CHECK_MSG(ok, "%s: truncated", path);
    if (ok) {
        rr_loss_cfg c;
        memset(&c, 0, sizeof c);
        c.kind = (rr_loss)kind;
        c.bpreg = bpreg;
        c.elu = elu;
        c.norm = norm;
        double L = rr_loss_f64(&c, B, C, O, has_lq ? lq : NULL, d, sc);
        double gmax = 0, derr = 0;
        for (size_t k = 0; k < n; k++) {
            gmax = fmax(gmax, fabs(dref[k]));
            derr = fmax(derr, fabs(d[k] - dref[k]));
        }
        CHECK_MSG(fabs(L - Lref) <= 1e-12 * fmax(1, fabs(Lref)), "%s: loss %.17g, torch %.17g", name,
                  L, Lref);
        CHECK_MSG(derr <= 1e-12 * fmax(gmax, 1e-300), "%s: dO off by %.3g (max %.3g)", name, derr,
                  gmax);
        /* the float kernels against the same reference */
        float *Of = malloc(n * sizeof *Of), *df = malloc(n * sizeof *df), *lqf = malloc(C * sizeof *lqf);
        float *scf = malloc(n * sizeof *scf);
        for (size_t k = 0; k < n; k++) Of[k] = (float)O[k];
        for (size_t j = 0; j < C; j++) lqf[j] = (float)lq[j];
        /* float inputs are rounded: compare with a tolerance that covers it */
        double Lf = rr_loss_f32(&c, B, C, Of, has_lq ? lqf : NULL, df, scf);
        double ferr = 0;
        for (size_t k = 0; k < n; k++) ferr = fmax(ferr, fabs(df[k] - dref[k]));
        double omax = 0;
        for (size_t k = 0; k < n; k++) omax = fmax(omax, fabs(O[k]));
        double tol = 1e-5 * fmax(1, omax);
        CHECK_MSG(fabs(Lf - Lref) <= tol * fmax(1, fabs(Lref)), "%s: float loss %.9g, torch %.9g",
                  name, Lf, Lref);
        CHECK_MSG(ferr <= tol * fmax(gmax, 1e-30), "%s: float dO off by %.3g (max %.3g)", name, ferr,
                  gmax);
        free(Of);
        free(df);
        free(lqf);
        free(scf);
    }
    free(O);
    free(dref);
    free(d);
    free(lq);
    free(sc);
}

static void check_expf(void) {
    double worst = 0;
    int n = check_small() ? 200000 : 2000000;
    for (int i = 0; i <= n; i++) {
        float x = (float)(-87.0 + 175.0 * i / n);
        double ref = exp((double)x);
        double e = fabs((double)rr_loss_expf(x) - ref) / ref;
        if (e > worst) worst = e;
    }
    printf("fast expf: max relative error %.3g over [-87, 88]\n", worst);
    CHECK_MSG(worst < 2.5e-7, "fast expf relative error %.3g", worst);
    double lw = 0;
    for (int i = 0; i <= n; i++) {
        /* e = exp(-|x|) spans [1e-38, 1]: sample it log-uniformly and linearly */
        float e = i % 2 ? (float)exp(-87.0 * i / n) : (float)((double)i / n);
        double ref = log1p((double)e);
        double er = ref > 0 ? fabs((double)rr_loss_log1pf(e) - ref) / ref : fabs((double)rr_loss_log1pf(e));
        if (er > lw) lw = er;
    }
    printf("fast log1pf: max relative error %.3g over [0, 1]\n", lw);
    CHECK_MSG(lw < 3e-7, "fast log1pf relative error %.3g", lw);
    CHECK(rr_loss_expf(-100.0f) == 0.0f);
    CHECK(rr_loss_expf(-1e30f) == 0.0f);
    CHECK(isfinite(rr_loss_expf(1e30f)));
    CHECK(rr_loss_expf(0.0f) == 1.0f);
}

static void check_properties(void) {
    /* norm: dividing by 2B halves the loss and the gradient */
    size_t B = 4, S = 9, C = B + S, n = B * C;
    rr_rng r;
    rr_rng_seed(&r, 77);
    double O[4 * 13], d1[4 * 13], d2[4 * 13], sc[4 * 13], lq[13], lq2[13];
    fill_uniform(&r, O, n, -2, 2);
    fill_uniform(&r, lq, C, 0, 2);
    for (size_t j = 0; j < C; j++) lq2[j] = lq[j] + 5.0;
    for (size_t k = 0; k < NCASES; k++) {
        rr_loss_cfg c = cfg_of(&cases[k]);
        c.norm = 0;
        double L1 = rr_loss_f64(&c, B, C, O, NULL, d1, sc);
        c.norm = 2 * B;
        double L2 = rr_loss_f64(&c, B, C, O, NULL, d2, sc);
        CHECK_MSG(fabs(L1 - 2 * L2) <= 1e-12 * fabs(L1), "%s: norm scaling", cases[k].name);
        double e = 0;
        for (size_t i = 0; i < n; i++) e = fmax(e, fabs(d1[i] - 2 * d2[i]));
        CHECK_MSG(e < 1e-14, "%s: norm scaling of dO", cases[k].name);
    }
    /* logQ: a constant shift of every column cancels in the softmax, a
     * non-constant one changes the loss */
    rr_loss_cfg c;
    memset(&c, 0, sizeof c);
    c.kind = RR_LOSS_CROSS_ENTROPY;
    double La = rr_loss_f64(&c, B, C, O, lq, d1, sc);
    double Lb = rr_loss_f64(&c, B, C, O, lq2, d2, sc);
    double Lc = rr_loss_f64(&c, B, C, O, NULL, d2, sc);
    CHECK(fabs(La - Lb) < 1e-12);
    CHECK(fabs(La - Lc) > 1e-3);
    /* cross-entropy rows of dO sum to zero (softmax minus one-hot) */
    rr_loss_f64(&c, B, C, O, lq, d1, sc);
    for (size_t i = 0; i < B; i++) {
        double s = 0;
        for (size_t j = 0; j < C; j++) s += d1[i * C + j];
        CHECK(fabs(s) < 1e-14);
    }
    /* bpr-max: the target is outside the softmax, so the target column's
     * gradient is -G/(A+eps) <= 0 and raising a far-away negative lowers
     * nothing: a classic port bug puts the target inside the softmax, which
     * makes the loss depend on it through s.  Here: moving the target score
     * changes the loss only through sg(t - o_j), so with every negative at
     * the same score o, L = -log(sg(t - o) + eps) + bpreg o^2 exactly. */
    {
        double Ob[2 * 5], db[2 * 5], sb[2 * 5];
        for (int k = 0; k < 10; k++) Ob[k] = 0.3;
        Ob[0] = 1.7;      /* row 0 target */
        Ob[5 + 1] = -0.4; /* row 1 target */
        rr_loss_cfg cb;
        memset(&cb, 0, sizeof cb);
        cb.kind = RR_LOSS_BPR_MAX;
        cb.bpreg = 0.7;
        cb.norm = 1;
        double L = rr_loss_f64(&cb, 2, 5, Ob, NULL, db, sb);
        double sg0 = 1 / (1 + exp(-(1.7 - 0.3))), sg1 = 1 / (1 + exp(-(-0.4 - 0.3)));
        double ref = -log(sg0 + 1e-24) + 0.7 * 0.09 - log(sg1 + 1e-24) + 0.7 * 0.09;
        CHECK_NEAR(L, ref, 1e-12);
    }
    /* duplicates of the target among the negatives are not masked (as in
     * GRU4Rec): a negative column equal to the target's score still counts */
    {
        double Ox[1 * 3] = {1.0, 1.0, -5.0}, dx[3], sx[3];
        memset(&c, 0, sizeof c);
        c.kind = RR_LOSS_CROSS_ENTROPY;
        double L = rr_loss_f64(&c, 1, 3, Ox, NULL, dx, sx);
        double ref = -log(exp(1.0) / (2 * exp(1.0) + exp(-5.0)) + 1e-24);
        CHECK_NEAR(L, ref, 1e-12);
    }
    /* the 1e-24 inside the log: a target far below the rest gives
     * -log(1e-24) and (almost) no gradient, as torch does */
    {
        double Ox[1 * 3] = {-200.0, 0.0, 0.0}, dx[3], sx[3];
        double L = rr_loss_f64(&c, 1, 3, Ox, NULL, dx, sx);
        CHECK_NEAR(L, -log(1e-24), 1e-9);
        CHECK(fabs(dx[0]) < 1e-60 && fabs(dx[1]) < 1e-60);
    }
}

/* The same bits for every thread count: dO rows are independent and the
 * loss is summed in fixed blocks. */
static void check_threads(void) {
#ifdef _OPENMP
    size_t B = 96, C = 96 + 700, n = B * C;
    float *O = malloc(n * sizeof *O), *d1 = malloc(n * sizeof *d1), *d2 = malloc(n * sizeof *d2);
    float *sc = malloc(n * sizeof *sc);
    rr_rng r;
    rr_rng_seed(&r, 12);
    for (size_t k = 0; k < n; k++) O[k] = (float)(rr_rng_normal(&r) * 2);
    int keep = omp_get_max_threads();
    for (size_t k = 0; k < NCASES; k++) {
        rr_loss_cfg c = cfg_of(&cases[k]);
        omp_set_num_threads(1);
        double L1 = rr_loss_f32(&c, B, C, O, NULL, d1, sc);
        omp_set_num_threads(3);
        double L2 = rr_loss_f32(&c, B, C, O, NULL, d2, sc);
        CHECK_MSG(L1 == L2 && !memcmp(d1, d2, n * sizeof *d1), "%s: 1 and 3 threads differ",
                  cases[k].name);
    }
    omp_set_num_threads(keep);
    free(O);
    free(d1);
    free(d2);
    free(sc);
#endif
}

static void check_logq_fill(void) {
    double counts[4] = {1, 10, 100, 0};
    int32_t items[5] = {1, 2, 2, 3, 1};
    float out[5];
    rr_loss_logq_fill(out, 2, 5, items, counts, 0.8, 0.5);
    CHECK_NEAR(out[0], 0.8 * log(10.0), 1e-6);
    CHECK_NEAR(out[1], 0.8 * log(100.0), 1e-6);
    CHECK_NEAR(out[2], 0.8 * 0.5 * log(100.0), 1e-6);
    CHECK_NEAR(out[3], 0.0, 1e-12); /* count 0 treated as 1 */
    CHECK_NEAR(out[4], 0.8 * 0.5 * log(10.0), 1e-6);
}

int main(void) {
    /* 1. finite differences in double: a tiny shape (no full lane block)
     * and one with full 8-lane blocks and tails on both sides of the
     * diagonal */
    const size_t shapes[][2] = {{3, 4}, {4, 21}, {1, 0}, {1, 5}};
    for (size_t k = 0; k < NCASES; k++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            size_t B = shapes[s][0], S = shapes[s][1];
            double e = fd_check(&cases[k], B, S, 1000 + 17 * k + s);
            printf("gradcheck %-13s B=%zu S=%-3zu max rel err %.3g\n", cases[k].name, B, S, e);
            CHECK_MSG(e < 1e-6, "%s B=%zu S=%zu: finite-difference rel err %.3g", cases[k].name, B, S,
                      e);
        }
    }

    /* 2. float against double: moderate scores, a training-sized block
     * (takes the OpenMP path), and large scores (stability, |O| ~ 80) */
    int nonfinite = 0;
    size_t bigB = check_small() ? 32 : 128, bigS = check_small() ? 300 : 2048;
    for (size_t k = 0; k < NCASES; k++) {
        float_vs_double(&cases[k], 5, 27, -3, 3, 2e-5, 0, 500 + k, &nonfinite);
        float_vs_double(&cases[k], bigB, bigS, -3, 3, 2e-5, 0, 600 + k, &nonfinite);
        /* large scores: the loss is ill-conditioned there (saturated
         * sigmoids, float-rounded scores), so only loose agreement is asked
         * for, with an absolute floor, but nothing may overflow */
        float_vs_double(&cases[k], 8, 64, -80, 80, 1e-3, 1e-7, 700 + k, &nonfinite);
        float_vs_double(&cases[k], 8, 64, 60, 80, 1e-3, 1e-7, 800 + k, &nonfinite);
    }
    CHECK(nonfinite == 0);

    /* targets far above every negative: the non-target softmax must take its
     * max over the negatives only, or exp underflows (float) and gives 0/0 */
    {
        size_t B = 3, C = 3 + 20;
        float Of[3 * 23], df[3 * 23], sf[3 * 23];
        double Od[3 * 23], dd[3 * 23], sd[3 * 23];
        rr_rng r;
        rr_rng_seed(&r, 4242);
        for (size_t k = 0; k < B * C; k++) Of[k] = (float)(-20 + 10 * rr_rng_uniform(&r));
        for (size_t i = 0; i < B; i++) Of[i * C + i] = 80.0f;
        for (size_t k = 0; k < B * C; k++) Od[k] = Of[k];
        const rr_loss kinds[] = {RR_LOSS_BPR_MAX, RR_LOSS_TOP1_MAX};
        for (int q = 0; q < 2; q++) {
            rr_loss_cfg c;
            memset(&c, 0, sizeof c);
            c.kind = kinds[q];
            c.bpreg = 0.5;
            double Lf = rr_loss_f32(&c, B, C, Of, NULL, df, sf);
            double Ld = rr_loss_f64(&c, B, C, Od, NULL, dd, sd);
            int fin = isfinite(Lf);
            double e = 0, gmax = 0;
            for (size_t k = 0; k < B * C; k++) {
                fin &= isfinite(df[k]);
                e = fmax(e, fabs(df[k] - dd[k]));
                gmax = fmax(gmax, fabs(dd[k]));
            }
            CHECK_MSG(fin, "kind %d: non-finite with a dominant target", (int)kinds[q]);
            CHECK_MSG(fabs(Lf - Ld) <= 1e-5 * fmax(1, fabs(Ld)), "kind %d: %.9g vs %.9g", (int)kinds[q],
                      Lf, Ld);
            CHECK(e <= 1e-5 * gmax + 1e-12);
        }
    }

    /* 3. PyTorch autograd fixtures */
    const char *src = getenv("RR_SRC");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fixtures", src ? src : ".");
    const char *fx[] = {"xe",      "xe_logq", "xe_norm", "bprmax_reg0", "bprmax_reg", "bprmax_elu",
                        "top1max", "bpr",     "top1",    "xe_big",      "bprmax_big"};
    for (size_t k = 0; k < sizeof fx / sizeof fx[0]; k++) fixture(dir, fx[k]);

    check_expf();
    check_properties();
    check_logq_fill();
    check_threads();
    return check_summary("test_loss_grad");
}
