/* test_rnn_grad.c - finite-difference check, in double precision, of the
 * gradients of one whole training step (train/step_impl.inc): every
 * parameter, dense and item-table rows, for each cell, each input mode
 * (constrained, separate, one-hot), stacked layers of different sizes,
 * fixed dropout masks, cross-entropy with logQ and bpr-max with ELU.
 * Then the float instance of the same source (BLAS and reference GEMM) is
 * checked against the double one, and the model's inference step against
 * the training forward pass. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "models/rnn.h"
#include "nn/act.h"
#include "nn/gemm.h"
#include "train/loss.h"

#define T double
#define SFX f64
#define GEMM rr_dgemm_ref
#define LOSS rr_loss_f64
#define ACT_FWD rr_act_forward_f64
#define ACT_BWD rr_act_backward_f64
#define CELL_FWD forward_f64
#define CELL_BWD backward_f64
#include "train/step_impl.inc"
#undef T
#undef SFX
#undef GEMM
#undef LOSS
#undef ACT_FWD
#undef ACT_BWD
#undef CELL_FWD
#undef CELL_BWD

#include "train/step_f32.h"

typedef struct gcase {
    const char *name;
    rr_cell_kind cell;
    size_t n_layers, layers[3];
    long embedding;
    rr_loss loss;
    double logq, elu;
    rr_act act;
    double p_e, p_h;
} gcase;

enum { N_ITEMS = 9, B_FULL = 5, N_ROWS = 4, N_SAMPLE = 4 };

static const int32_t in_items[N_ROWS] = {3, 1, 3, 7};   /* duplicate input */
static const int32_t tgt_items[N_ROWS] = {2, 5, 6, 2};  /* duplicate target */
static const int32_t samples[N_SAMPLE] = {5, 0, 3, 0};  /* duplicates, overlap with targets and inputs */

static double urand(rr_rng *g, double a) { return (2.0 * rr_rng_uniform(g) - 1.0) * a; }

static void fill_masks(rr_step_ws_f64 *w, const rr_rnn_layout *lay, const gcase *c, rr_rng *g) {
    if (w->mask_e)
        for (size_t i = 0; i < N_ROWS * lay->in_width; i++)
            w->mask_e[i] = rr_rng_uniform(g) < c->p_e ? 0.0 : 1.0 / (1.0 - c->p_e);
    for (size_t l = 0; l < lay->L; l++) {
        double p = (l == 0 && lay->input == RR_IN_ONEHOT) ? c->p_e : c->p_h;
        if (w->mask_h[l])
            for (size_t i = 0; i < N_ROWS * lay->H[l]; i++)
                w->mask_h[l][i] = rr_rng_uniform(g) < p ? 0.0 : 1.0 / (1.0 - p);
    }
}

/* Dense + row gradients of a step, scattered into one blob-shaped vector. */
static void full_grad(double *g, const rr_step_ws_f64 *w, const rr_rnn_layout *lay) {
    memset(g, 0, lay->n_params * sizeof *g);
    memcpy(g, w->gdense, lay->n_dense * sizeof *g);
    const size_t HL = lay->H_last;
    for (size_t u = 0; u < w->nU; u++)
        for (size_t j = 0; j < HL; j++) g[lay->Wy + (size_t)w->urows[u] * HL + j] += w->gU[u * HL + j];
    for (size_t u = 0; u < w->nUb; u++) g[lay->By + (size_t)w->urows[u]] += w->gB[u];
    if (lay->input != RR_IN_CONSTRAINED) {
        size_t off = lay->input == RR_IN_ONEHOT ? lay->X1 : lay->E;
        size_t ew = lay->input == RR_IN_ONEHOT ? lay->G * lay->H[0] : lay->in_width;
        for (size_t u = 0; u < w->nE; u++)
            for (size_t j = 0; j < ew; j++) g[off + (size_t)w->erows[u] * ew + j] += w->gE[u * ew + j];
    }
}

static void run_case(const gcase *c) {
    rr_error err;
    rr_rnn_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.cell = c->cell;
    sh.n_items = N_ITEMS;
    sh.n_layers = c->n_layers;
    for (size_t l = 0; l < c->n_layers; l++) sh.layers[l] = c->layers[l];
    sh.embedding = c->embedding;
    sh.final_act = c->act;
    sh.final_act_param = 1.0;
    rr_rnn_layout lay;
    CHECK_OK(rr_rnn_layout_compute(&sh, &lay, &err), &err);
    const rr_cell_ops *cell = rr_cell_get(c->cell);
    bool drop_h[RR_MAX_LAYERS] = {0};
    for (size_t l = 0; l < lay.L; l++) drop_h[l] = ((l == 0 && lay.input == RR_IN_ONEHOT) ? c->p_e : c->p_h) > 0;
    bool drop_e = lay.input != RR_IN_ONEHOT && c->p_e > 0;
    rr_step_ws_f64 w;
    CHECK_OK(step_ws_alloc_f64(&w, &lay, cell, N_ITEMS, B_FULL, N_SAMPLE, drop_e, drop_h, &err), &err);
    rr_rng g;
    rr_rng_seed(&g, 1234 + (uint64_t)c->cell * 17 + (uint64_t)c->n_layers);
    double *P = calloc(lay.n_params, sizeof *P), *ga = calloc(lay.n_params, sizeof *ga);
    double logcnt[N_ITEMS];
    for (size_t i = 0; i < lay.n_params; i++) P[i] = urand(&g, 0.6);
    for (size_t i = 0; i < N_ITEMS; i++) logcnt[i] = log(1.0 + (double)((i * 7) % 11));
    fill_masks(&w, &lay, c, &g);
    for (size_t l = 0; l < lay.L; l++)
        for (size_t i = 0; i < N_ROWS * lay.smult * lay.H[l]; i++) w.st_prev[l][i] = urand(&g, 0.8);

    rr_step_ctx_f64 ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.lay = &lay;
    ctx.cell = cell;
    ctx.n_items = N_ITEMS;
    ctx.P = P;
    ctx.loss.kind = c->loss;
    ctx.loss.bpreg = 0.9;
    ctx.loss.elu = c->elu;
    ctx.loss.norm = B_FULL;
    ctx.act = c->act;
    ctx.act_param = 1.0;
    ctx.logcnt = c->logq > 0 ? logcnt : NULL;
    ctx.logq = c->logq;
    ctx.alpha = 0.5;

    double L0 = step_run_f64(&ctx, &w, N_ROWS, in_items, tgt_items, samples);
    CHECK_MSG(isfinite(L0) && L0 > 0, "%s: loss %g", c->name, L0);
    full_grad(ga, &w, &lay);
    /* Structure of the sparse part: distinct rows, output rows first. */
    int ok_rows = 1;
    for (size_t a = 0; a < w.nU; a++)
        for (size_t b = a + 1; b < w.nU; b++) ok_rows &= w.urows[a] != w.urows[b];
    CHECK_MSG(ok_rows, "%s: repeated Wy rows", c->name);
    CHECK_MSG(w.nUb == 5 /* {2,5,6,0,3} */, "%s: %zu output rows", c->name, w.nUb);
    CHECK_MSG(w.nU == (lay.input == RR_IN_CONSTRAINED ? 7u : 5u), "%s: %zu Wy rows", c->name, w.nU);
    CHECK_MSG(lay.input == RR_IN_CONSTRAINED || w.nE == 3, "%s: %zu input rows", c->name, w.nE);

    /* Central differences over every element of the blob. */
    const double h = 1e-6;
    double worst = 0;
    size_t worst_i = 0, n_checked = 0;
    for (size_t i = 0; i < lay.n_params; i++) {
        double keep = P[i];
        P[i] = keep + h;
        double lp = step_run_f64(&ctx, &w, N_ROWS, in_items, tgt_items, samples);
        P[i] = keep - h;
        double lm = step_run_f64(&ctx, &w, N_ROWS, in_items, tgt_items, samples);
        P[i] = keep;
        double fd = (lp - lm) / (2 * h);
        double e = fabs(fd - ga[i]) / fmax(1e-3, fabs(fd) + fabs(ga[i]));
        if (e > worst) {
            worst = e;
            worst_i = i;
        }
        n_checked++;
    }
    /* recompute analytic grads (the FD calls overwrote the workspace) */
    step_run_f64(&ctx, &w, N_ROWS, in_items, tgt_items, samples);
    full_grad(ga, &w, &lay);
    const char *tname = "?";
    for (size_t t = 0; t < lay.n_tensors; t++)
        if (worst_i >= lay.t[t].off && worst_i < lay.t[t].off + lay.t[t].rows * lay.t[t].cols) tname = lay.t[t].name;
    CHECK_MSG(worst < 1e-5, "%s: FD mismatch %.3g at %zu (%s) of %zu", c->name, worst, worst_i, tname, n_checked);
    printf("  %-34s loss %.6f  %zu params  worst rel err %.2e\n", c->name, L0, n_checked, worst);

    /* The float instance (BLAS, then the reference GEMM) against double. */
    for (int ref = 0; ref < 2; ref++) {
        bool old = rr_gemm_force_ref(ref != 0);
        rr_step_ws_f32 wf;
        CHECK_OK(step_ws_alloc_f32(&wf, &lay, cell, N_ITEMS, B_FULL, N_SAMPLE, drop_e, drop_h, &err), &err);
        float *Pf = malloc(lay.n_params * sizeof *Pf);
        float logcf[N_ITEMS];
        for (size_t i = 0; i < lay.n_params; i++) Pf[i] = (float)P[i];
        for (size_t i = 0; i < N_ITEMS; i++) logcf[i] = (float)logcnt[i];
        if (wf.mask_e)
            for (size_t i = 0; i < N_ROWS * lay.in_width; i++) wf.mask_e[i] = (float)w.mask_e[i];
        for (size_t l = 0; l < lay.L; l++) {
            if (wf.mask_h[l])
                for (size_t i = 0; i < N_ROWS * lay.H[l]; i++) wf.mask_h[l][i] = (float)w.mask_h[l][i];
            for (size_t i = 0; i < N_ROWS * lay.smult * lay.H[l]; i++) wf.st_prev[l][i] = (float)w.st_prev[l][i];
        }
        rr_step_ctx_f32 cf;
        memset(&cf, 0, sizeof cf);
        cf.lay = &lay;
        cf.cell = cell;
        cf.n_items = N_ITEMS;
        cf.P = Pf;
        cf.loss = ctx.loss;
        cf.act = c->act;
        cf.act_param = 1.0;
        cf.logcnt = c->logq > 0 ? logcf : NULL;
        cf.logq = c->logq;
        cf.alpha = 0.5;
        double Lf = step_run_f32(&cf, &wf, N_ROWS, in_items, tgt_items, samples);
        CHECK_NEAR(Lf, L0, 1e-5 * fmax(1.0, fabs(L0)));
        double wmax = 0;
        for (size_t i = 0; i < lay.n_dense; i++) wmax = fmax(wmax, fabs(wf.gdense[i] - w.gdense[i]));
        CHECK_MSG(wf.nU == w.nU && wf.nUb == w.nUb && wf.nE == w.nE, "%s: f32 row sets differ", c->name);
        for (size_t i = 0; i < w.nU * lay.H_last; i++) wmax = fmax(wmax, fabs(wf.gU[i] - w.gU[i]));
        for (size_t i = 0; i < w.nUb; i++) wmax = fmax(wmax, fabs(wf.gB[i] - w.gB[i]));
        CHECK_MSG(wmax < 2e-5, "%s (%s GEMM): float grads differ from double by %.3g", c->name,
                  ref ? "reference" : "BLAS", wmax);
        /* The inference step (rnn.c) reproduces the training forward pass
         * when no dropout is active. */
        if (c->p_e == 0 && c->p_h == 0) {
            rr_rnn rr;
            memset(&rr, 0, sizeof rr);
            rr.shape = sh;
            rr.lay = lay;
            rr.cell = cell;
            rr.params = Pf;
            float st[N_ROWS][64];
            float *hp[N_ROWS];
            for (size_t i = 0; i < N_ROWS; i++) {
                hp[i] = st[i];
                for (size_t l = 0; l < lay.L; l++)
                    memcpy(st[i] + lay.st_off[l], wf.st_prev[l] + i * lay.smult * lay.H[l],
                           lay.smult * lay.H[l] * sizeof(float));
            }
            float *scr = malloc(rr_rnn_step_scratch_floats(&lay, N_ROWS) * sizeof *scr);
            rr_rnn_step_into(&rr, hp, in_items, N_ROWS, scr);
            double d = 0;
            for (size_t i = 0; i < N_ROWS; i++)
                for (size_t l = 0; l < lay.L; l++)
                    for (size_t j = 0; j < lay.smult * lay.H[l]; j++)
                        d = fmax(d, fabs(st[i][lay.st_off[l] + j] - wf.st_new[l][i * lay.smult * lay.H[l] + j]));
            CHECK_MSG(d < 1e-6, "%s: inference step differs from training forward by %.3g", c->name, d);
            /* score rows equal the training scores of the same columns */
            float sc[N_ROWS * N_ITEMS], hl[N_ROWS * 8];
            for (size_t i = 0; i < N_ROWS; i++)
                memcpy(hl + i * lay.H_last, st[i] + lay.st_off[lay.L - 1], lay.H_last * sizeof(float));
            rr_rnn_score_rows(&rr, hl, lay.H_last, N_ROWS, sc);
            double ds = 0;
            const size_t C = N_ROWS + N_SAMPLE;
            for (size_t i = 0; i < N_ROWS; i++)
                for (size_t j = 0; j < C; j++) ds = fmax(ds, fabs(sc[i * N_ITEMS + wf.cols[j]] - wf.O[i * C + j]));
            CHECK_MSG(ds < 1e-5, "%s: score rows differ from training scores by %.3g", c->name, ds);
            free(scr);
        }
        step_ws_free_f32(&wf);
        free(Pf);
        rr_gemm_force_ref(old);
    }
    step_ws_free_f64(&w);
    free(P);
    free(ga);
}

int main(void) {
    static const gcase cases[] = {
        {"gru constrained xe+logq", RR_CELL_GRU, 1, {4}, -1, RR_LOSS_CROSS_ENTROPY, 1.0, 0, RR_ACT_LINEAR, 0.3, 0.4},
        {"gru 4,3 constrained bpr-max elu", RR_CELL_GRU, 2, {4, 3}, -1, RR_LOSS_BPR_MAX, 0, 1.0, RR_ACT_LINEAR, 0.5, 0.3},
        {"gru 3 separate(5) xe+logq", RR_CELL_GRU, 1, {3}, 5, RR_LOSS_CROSS_ENTROPY, 0.7, 0, RR_ACT_LINEAR, 0.25, 0.2},
        {"gru 4 one-hot bpr-max elu", RR_CELL_GRU, 1, {4}, 0, RR_LOSS_BPR_MAX, 0, 0.5, RR_ACT_LINEAR, 0.3, 0.0},
        {"gru 3,4 one-hot xe+logq", RR_CELL_GRU, 2, {3, 4}, 0, RR_LOSS_CROSS_ENTROPY, 1.0, 0, RR_ACT_LINEAR, 0.2, 0.4},
        {"gru 4 constrained, no dropout", RR_CELL_GRU, 1, {4}, -1, RR_LOSS_CROSS_ENTROPY, 1.0, 0, RR_ACT_LINEAR, 0, 0},
        {"gru 3,2 separate(4), tanh scores", RR_CELL_GRU, 2, {3, 2}, 4, RR_LOSS_CROSS_ENTROPY, 0, 0, RR_ACT_TANH, 0, 0},
        {"lstm 4,3 constrained xe+logq", RR_CELL_LSTM, 2, {4, 3}, -1, RR_LOSS_CROSS_ENTROPY, 1.0, 0, RR_ACT_LINEAR, 0.3, 0.3},
        {"lstm 3 separate(4) bpr-max elu", RR_CELL_LSTM, 1, {3}, 4, RR_LOSS_BPR_MAX, 0, 1.0, RR_ACT_LINEAR, 0.2, 0.2},
        {"lstm 4 one-hot xe", RR_CELL_LSTM, 1, {4}, 0, RR_LOSS_CROSS_ENTROPY, 0, 0, RR_ACT_LINEAR, 0, 0},
        {"rnn-tanh 4,3 constrained bpr-max", RR_CELL_RNN_TANH, 2, {4, 3}, -1, RR_LOSS_BPR_MAX, 0, 1.0, RR_ACT_LINEAR, 0.3, 0.3},
        {"rnn-relu 4 separate(3) xe+logq", RR_CELL_RNN_RELU, 1, {4}, 3, RR_LOSS_CROSS_ENTROPY, 1.0, 0, RR_ACT_LINEAR, 0.2, 0.2},
        {"rnn-tanh 3 one-hot bpr-max elu", RR_CELL_RNN_TANH, 1, {3}, 0, RR_LOSS_BPR_MAX, 0, 1.0, RR_ACT_LINEAR, 0.25, 0},
        {"gru 4 constrained, elu scores", RR_CELL_GRU, 1, {4}, -1, RR_LOSS_TOP1_MAX, 0, 0, RR_ACT_ELU, 0, 0.2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    return check_summary("test_rnn_grad");
}
