/* test_cells_grad.c - finite-difference gradient checks of every cell (GRU,
 * LSTM, RNN tanh/relu) and every final activation in double precision, and
 * agreement of the float kernels (BLAS and reference GEMM) with the double
 * ones.
 *
 * Loss of one step: L = sum(dh_given * h_out).  Central differences with
 * eps = 1e-6 against the analytic dL/dgi, dL/dWhh, dL/dbhh from backward.
 * The cells truncate gradients at one step, so state_prev is a constant. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn/act.h"
#include "nn/cell.h"
#include "nn/gemm.h"
#include "util/util.h"

static double urand(rr_rng *r, double lo, double hi) { return lo + (hi - lo) * rr_rng_uniform(r); }

static void fill(double *x, size_t n, rr_rng *r, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = urand(r, lo, hi);
}

/* |a - n| scaled by the larger magnitude, with a floor so that gradients
 * near zero are judged by absolute error. */
static double rel_err(double a, double n) {
    double d = fmax(fmax(fabs(a), fabs(n)), 1e-3);
    return fabs(a - n) / d;
}

typedef struct cell_case {
    const rr_cell_ops *ops;
    size_t B, H, G, sH, cH, GH;
    double *gi, *sp, *Whh, *bhh, *dh;   /* inputs */
    double *sn, *cache, *scratch;       /* forward outputs and work */
    double *dgi, *dWhh, *dbhh;          /* backward outputs */
} cell_case;

static void case_alloc(cell_case *c, const rr_cell_ops *ops, size_t B, size_t H) {
    c->ops = ops;
    c->B = B;
    c->H = H;
    c->G = ops->gates;
    c->GH = c->G * H;
    c->sH = ops->state_mult * H;
    c->cH = ops->cache_mult * H;
    c->gi = calloc(B * c->GH, sizeof(double));
    c->sp = calloc(B * c->sH, sizeof(double));
    c->Whh = calloc(c->GH * H, sizeof(double));
    c->bhh = calloc(c->GH, sizeof(double));
    c->dh = calloc(B * H, sizeof(double));
    c->sn = calloc(B * c->sH, sizeof(double));
    c->cache = calloc(B * c->cH, sizeof(double));
    c->scratch = calloc(B * c->GH, sizeof(double));
    c->dgi = calloc(B * c->GH, sizeof(double));
    c->dWhh = calloc(c->GH * H, sizeof(double));
    c->dbhh = calloc(c->GH, sizeof(double));
}

static void case_free(cell_case *c) {
    free(c->gi), free(c->sp), free(c->Whh), free(c->bhh), free(c->dh);
    free(c->sn), free(c->cache), free(c->scratch);
    free(c->dgi), free(c->dWhh), free(c->dbhh);
}

/* Pre-activation of the recurrent sum gi + h_prev Whh^T + bhh, computed
 * naively here (independent of the kernels). */
static double preact(const cell_case *c, size_t b, size_t k) {
    double s = c->gi[b * c->GH + k] + c->bhh[k];
    for (size_t j = 0; j < c->H; j++) s += c->sp[b * c->sH + j] * c->Whh[k * c->H + j];
    return s;
}

static void case_randomize(cell_case *c, rr_rng *r) {
    fill(c->gi, c->B * c->GH, r, -1, 1);
    fill(c->sp, c->B * c->sH, r, -1, 1);
    fill(c->Whh, c->GH * c->H, r, -0.8, 0.8);
    fill(c->bhh, c->GH, r, -0.5, 0.5);
    fill(c->dh, c->B * c->H, r, -1, 1);
    /* Keep relu pre-activations away from the kink so that central
     * differences see one side only. */
    if (c->ops->kind == RR_CELL_RNN_RELU)
        for (size_t b = 0; b < c->B; b++)
            for (size_t k = 0; k < c->GH; k++) {
                double a = preact(c, b, k);
                if (fabs(a) < 1e-2) c->gi[b * c->GH + k] += a >= 0 ? 0.05 : -0.05;
            }
}

static double case_loss(cell_case *c) {
    c->ops->forward_f64(c->sn, c->cache, c->B, c->H, c->gi, c->sp, c->Whh, c->bhh, c->scratch);
    double L = 0;
    for (size_t b = 0; b < c->B; b++)
        for (size_t j = 0; j < c->H; j++) L += c->dh[b * c->H + j] * c->sn[b * c->sH + j];
    return L;
}

/* Central difference of the loss in one coordinate. */
static double fd(cell_case *c, double *x, double eps) {
    double x0 = *x;
    *x = x0 + eps;
    double lp = case_loss(c);
    *x = x0 - eps;
    double lm = case_loss(c);
    *x = x0;
    return (lp - lm) / (2 * eps);
}

static const char *kind_name(rr_cell_kind k) {
    static const char *n[] = {"gru", "lstm", "rnn-tanh", "rnn-relu"};
    return n[k];
}

static void check_cell_grad(rr_cell_kind kind, size_t B, size_t H, uint64_t seed) {
    const rr_cell_ops *ops = rr_cell_get(kind);
    CHECK(ops != NULL);
    if (!ops) return;
    CHECK(ops->kind == kind);
    cell_case c;
    case_alloc(&c, ops, B, H);
    rr_rng r;
    rr_rng_seed(&r, seed);
    case_randomize(&c, &r);

    /* Analytic gradients; parameter gradients start nonzero to check that
     * backward accumulates (+=) rather than overwrites. */
    double *W0 = calloc(c.GH * H, sizeof(double)), *b0 = calloc(c.GH, sizeof(double));
    fill(W0, c.GH * H, &r, -1, 1);
    fill(b0, c.GH, &r, -1, 1);
    memcpy(c.dWhh, W0, c.GH * H * sizeof(double));
    memcpy(c.dbhh, b0, c.GH * sizeof(double));
    fill(c.dgi, B * c.GH, &r, 5, 6); /* must be overwritten */
    case_loss(&c);
    ops->backward_f64(c.dgi, c.dWhh, c.dbhh, B, H, c.dh, c.sp, c.cache, c.Whh, c.scratch);
    double *agi = malloc(B * c.GH * sizeof(double));
    memcpy(agi, c.dgi, B * c.GH * sizeof(double));
    for (size_t i = 0; i < c.GH * H; i++) c.dWhh[i] -= W0[i];
    for (size_t i = 0; i < c.GH; i++) c.dbhh[i] -= b0[i];

    const double eps = 1e-6;
    double e_gi = 0, e_W = 0, e_b = 0, gmax = 0;
    for (size_t i = 0; i < B * c.GH; i++) {
        double n = fd(&c, &c.gi[i], eps);
        e_gi = fmax(e_gi, rel_err(agi[i], n));
        gmax = fmax(gmax, fabs(n));
    }
    for (size_t i = 0; i < c.GH * H; i++) e_W = fmax(e_W, rel_err(c.dWhh[i], fd(&c, &c.Whh[i], eps)));
    for (size_t i = 0; i < c.GH; i++) e_b = fmax(e_b, rel_err(c.dbhh[i], fd(&c, &c.bhh[i], eps)));
    printf("%-8s B=%zu H=%zu  max rel err: dgi %.2e  dWhh %.2e  dbhh %.2e  (max |dgi| %.3f)\n",
           kind_name(kind), B, H, e_gi, e_W, e_b, gmax);
    CHECK_MSG(e_gi < 1e-6, "%s dgi rel err %g", kind_name(kind), e_gi);
    CHECK_MSG(e_W < 1e-6, "%s dWhh rel err %g", kind_name(kind), e_W);
    CHECK_MSG(e_b < 1e-6, "%s dbhh rel err %g", kind_name(kind), e_b);
    CHECK(gmax > 1e-2); /* the check saw real gradients */

    free(agi), free(W0), free(b0);
    case_free(&c);
}

static float *to_f32(const double *x, size_t n) {
    float *y = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

static double max_diff(const float *a, const double *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* The float kernels (through BLAS, and through the reference GEMM) agree
 * with the double ones; forward without a cache and in place gives the same
 * state. */
static void check_float_vs_double(rr_cell_kind kind, size_t B, size_t H, uint64_t seed) {
    const rr_cell_ops *ops = rr_cell_get(kind);
    cell_case c;
    case_alloc(&c, ops, B, H);
    rr_rng r;
    rr_rng_seed(&r, seed);
    case_randomize(&c, &r);
    case_loss(&c);
    ops->backward_f64(c.dgi, c.dWhh, c.dbhh, B, H, c.dh, c.sp, c.cache, c.Whh, c.scratch);

    float *gi = to_f32(c.gi, B * c.GH), *sp = to_f32(c.sp, B * c.sH);
    float *Whh = to_f32(c.Whh, c.GH * H), *bhh = to_f32(c.bhh, c.GH), *dh = to_f32(c.dh, B * H);
    float *sn = calloc(B * c.sH, sizeof(float)), *cache = calloc(B * c.cH, sizeof(float));
    float *scratch = calloc(B * c.GH, sizeof(float)), *dgi = calloc(B * c.GH, sizeof(float));
    float *dW = calloc(c.GH * H, sizeof(float)), *db = calloc(c.GH, sizeof(float));
    float *sn2 = calloc(B * c.sH, sizeof(float));
    /* Tolerance: float rounding over sums of H terms of O(1). */
    const double tol = 1e-5 * (1.0 + (double)H / 16.0);
    const double tolW = tol * (1.0 + (double)B / 8.0);

    for (int ref = 0; ref < 2; ref++) {
        bool old = rr_gemm_force_ref(ref != 0);
        memset(dW, 0, c.GH * H * sizeof(float));
        memset(db, 0, c.GH * sizeof(float));
        ops->forward(sn, cache, B, H, gi, sp, Whh, bhh, scratch);
        ops->backward(dgi, dW, db, B, H, dh, sp, cache, Whh, scratch);
        double es = max_diff(sn, c.sn, B * c.sH), eg = max_diff(dgi, c.dgi, B * c.GH);
        double eW = max_diff(dW, c.dWhh, c.GH * H), eb = max_diff(db, c.dbhh, c.GH);
        CHECK_MSG(es < tol, "%s B=%zu H=%zu ref=%d state diff %g", kind_name(kind), B, H, ref, es);
        CHECK_MSG(eg < tol, "%s B=%zu H=%zu ref=%d dgi diff %g", kind_name(kind), B, H, ref, eg);
        CHECK_MSG(eW < tolW, "%s B=%zu H=%zu ref=%d dWhh diff %g", kind_name(kind), B, H, ref, eW);
        CHECK_MSG(eb < tolW, "%s B=%zu H=%zu ref=%d dbhh diff %g", kind_name(kind), B, H, ref, eb);

        /* No cache: same state. */
        ops->forward(sn2, NULL, B, H, gi, sp, Whh, bhh, scratch);
        CHECK(memcmp(sn2, sn, B * c.sH * sizeof(float)) == 0);
        /* In place: the state buffer is both input and output. */
        memcpy(sn2, sp, B * c.sH * sizeof(float));
        ops->forward(sn2, NULL, B, H, gi, sn2, Whh, bhh, scratch);
        CHECK(memcmp(sn2, sn, B * c.sH * sizeof(float)) == 0);
        rr_gemm_force_ref(old);
    }

    free(gi), free(sp), free(Whh), free(bhh), free(dh), free(sn), free(cache), free(scratch);
    free(dgi), free(dW), free(db), free(sn2);
    case_free(&c);
}

/* d/dx sum(w * act(x)) by central differences, against act backward. */
static void check_act(rr_act act, double param) {
    enum { N = 64 };
    double x[N], y[N], w[N], dx[N];
    rr_rng r;
    rr_rng_seed(&r, 7 + (uint64_t)act);
    for (int i = 0; i < N; i++) {
        x[i] = urand(&r, -3, 3);
        if (fabs(x[i]) < 1e-2) x[i] = 0.5;
        w[i] = urand(&r, -1, 1);
    }
    rr_act_forward_f64(act, param, y, x, N);
    rr_act_backward_f64(act, param, dx, w, y, N);
    double e = 0;
    for (int i = 0; i < N; i++) {
        double xp = x[i] + 1e-6, xm = x[i] - 1e-6, yp, ym;
        rr_act_forward_f64(act, param, &yp, &xp, 1);
        rr_act_forward_f64(act, param, &ym, &xm, 1);
        e = fmax(e, rel_err(dx[i], w[i] * (yp - ym) / 2e-6));
    }
    CHECK_MSG(e < 1e-6, "act %d rel err %g", (int)act, e);
    /* Float agrees with double, in place. */
    float xf[N], wf[N];
    for (int i = 0; i < N; i++) xf[i] = (float)x[i], wf[i] = (float)w[i];
    rr_act_forward_f32(act, param, xf, xf, N);
    double ef = 0;
    for (int i = 0; i < N; i++) ef = fmax(ef, fabs((double)xf[i] - y[i]));
    rr_act_backward_f32(act, param, wf, wf, xf, N);
    for (int i = 0; i < N; i++) ef = fmax(ef, fabs((double)wf[i] - dx[i]));
    CHECK_MSG(ef < 1e-5, "act %d float vs double %g", (int)act, ef);
}

/* act.h's vectorisable float exp/expm1/tanh/sigmoid against libm in double
 * over a fine sweep, the special values included. */
static void check_fast_math(void) {
    double e_exp = 0, e_em1 = 0, e_tanh = 0, e_sig = 0, a_tanh = 0, a_em1 = 0;
    for (int i = -200000; i <= 200000; i++) {
        float x = (float)i * 4.3e-4f; /* [-86, 86] */
        double xd = (double)x;
        double ex = exp(xd);
        e_exp = fmax(e_exp, fabs((double)rr_fast_expf(x) - ex) / ex);
        double em = expm1(xd), tn = tanh(xd), sg = 1.0 / (1.0 + exp(-xd));
        double fm = (double)rr_fast_expm1f(x), ft = (double)rr_fast_tanhf(x);
        a_em1 = fmax(a_em1, fabs(fm - em) / fmax(1.0, fabs(em)));
        if (xd != 0) e_em1 = fmax(e_em1, fabs(fm - em) / fabs(em));
        a_tanh = fmax(a_tanh, fabs(ft - tn));
        if (xd != 0) e_tanh = fmax(e_tanh, fabs(ft - tn) / fabs(tn));
        e_sig = fmax(e_sig, fabs((double)rr_fast_sigmf(x) - sg) / sg);
    }
    /* tiny arguments: tanh x ~ x, expm1 x ~ x to full relative precision */
    for (float x = 1e-30f; x < 0.3f; x *= 1.37f) {
        e_tanh = fmax(e_tanh, fabs((double)rr_fast_tanhf(-x) - tanh(-(double)x)) / tanh((double)x));
        e_em1 = fmax(e_em1, fabs((double)rr_fast_expm1f(x) - expm1((double)x)) / expm1((double)x));
    }
    printf("fast float math max rel err: exp %.2e  expm1 %.2e  tanh %.2e  sigmoid %.2e\n", e_exp,
           e_em1, e_tanh, e_sig);
    CHECK_MSG(e_exp < 5e-7, "exp rel err %g", e_exp);
    CHECK_MSG(e_sig < 5e-7, "sigmoid rel err %g", e_sig);
    CHECK_MSG(e_tanh < 5e-7 && a_tanh < 2e-7, "tanh err rel %g abs %g", e_tanh, a_tanh);
    CHECK_MSG(e_em1 < 5e-7 && a_em1 < 2e-7, "expm1 err rel %g abs %g", e_em1, a_em1);
    CHECK(rr_fast_tanhf(0.0f) == 0.0f && rr_fast_expf(0.0f) == 1.0f && rr_fast_sigmf(0.0f) == 0.5f);
    CHECK(rr_fast_tanhf(1e4f) == 1.0f && rr_fast_tanhf(-1e4f) == -1.0f);
    CHECK(rr_fast_tanhf((float)INFINITY) == 1.0f && rr_fast_sigmf(-(float)INFINITY) < 1e-37f);
    CHECK(rr_fast_sigmf(100.0f) == 1.0f && rr_fast_sigmf(-100.0f) >= 0.0f);
    CHECK(isnan(rr_fast_expf(NAN)) && isnan(rr_fast_tanhf(NAN)) && isnan(rr_fast_sigmf(NAN)));
    CHECK(isnan(rr_fast_expm1f(NAN)));
}

static void check_init(void) {
    rr_rng r;
    rr_rng_seed(&r, 3);
    const size_t H = 50, rows = 3 * H, cols = 20;
    float *w = malloc(rows * cols * sizeof(float));
    rr_init_uniform_blocks(w, rows, cols, 3, &r);
    double sigma = sqrt(6.0 / (double)(cols + H)), mx = 0, sum = 0;
    for (size_t i = 0; i < rows * cols; i++) {
        mx = fmax(mx, fabs((double)w[i]));
        sum += w[i];
    }
    CHECK(mx <= sigma);
    CHECK(mx > 0.98 * sigma); /* 3000 draws reach the edge */
    CHECK(fabs(sum / (double)(rows * cols)) < 0.05 * sigma);
    /* One block: fan_out = rows. */
    rr_init_uniform_blocks(w, rows, cols, 1, &r);
    mx = 0;
    for (size_t i = 0; i < rows * cols; i++) mx = fmax(mx, fabs((double)w[i]));
    double s1 = sqrt(6.0 / (double)(cols + rows));
    CHECK(mx <= s1 && mx > 0.98 * s1);
    free(w);
}

int main(void) {
    const rr_cell_kind kinds[] = {RR_CELL_GRU, RR_CELL_LSTM, RR_CELL_RNN_TANH, RR_CELL_RNN_RELU};
    CHECK(rr_cell_get((rr_cell_kind)99) == NULL);
    CHECK(rr_cell_get(RR_CELL_GRU)->gates == 3 && rr_cell_get(RR_CELL_LSTM)->gates == 4);
    CHECK(rr_cell_get(RR_CELL_LSTM)->state_mult == 2);
    for (size_t k = 0; k < 4; k++) {
        check_cell_grad(kinds[k], 3, 4, 100 + k);
        check_cell_grad(kinds[k], 1, 7, 200 + k);
        check_float_vs_double(kinds[k], 3, 4, 300 + k);
        check_float_vs_double(kinds[k], 5, 33, 400 + k);
        if (!check_small()) check_float_vs_double(kinds[k], 32, 100, 500 + k);
    }
    check_act(RR_ACT_LINEAR, 0);
    check_act(RR_ACT_ELU, 1.0);
    check_act(RR_ACT_ELU, 0.5);
    check_act(RR_ACT_TANH, 0);
    check_act(RR_ACT_RELU, 0);
    check_fast_math();
    check_init();
    return check_summary("test_cells_grad");
}
