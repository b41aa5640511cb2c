/* test_train_threads.c - the threaded training step (train/step_impl.inc
 * with step_ws_set_threads): on shapes large enough to take the parallel
 * passes, two threads give the same gradients as one thread up to float
 * rounding (the W_hh partials and split GEMMs may round differently), the
 * same row sets in the same order, and the same bits on every repeat; and a
 * non-finite score is caught by whichever thread scores it.  Cases: GRU and
 * LSTM, constrained and one-hot input, two layers, cross-entropy with logQ
 * and bpr-max with ELU, dropout masks. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "models/rnn.h"
#include "nn/act.h"
#include "nn/gemm.h"
#include "train/loss.h"

#include "train/step_f32.h"

typedef struct tcase {
    const char *name;
    rr_cell_kind cell;
    size_t n_layers, layers[2];
    long embedding;
    rr_loss loss;
    double logq, elu;
} tcase;

static const tcase cases[] = {
    {"gru xe+logq constrained", RR_CELL_GRU, 1, {48, 0}, -1, RR_LOSS_CROSS_ENTROPY, 1.0, 0},
    {"gru bpr-max+elu constrained", RR_CELL_GRU, 1, {48, 0}, -1, RR_LOSS_BPR_MAX, 0, 1.0},
    {"gru xe one-hot 2 layers", RR_CELL_GRU, 2, {40, 32}, 0, RR_LOSS_CROSS_ENTROPY, 1.0, 0},
    {"lstm bpr-max separate", RR_CELL_LSTM, 1, {32, 0}, 24, RR_LOSS_BPR_MAX, 0, 0.5},
};

enum { N_ITEMS = 700, B = 40, S = 600 };

/* One step with nt threads from the same inputs; the copies it returns:
 * gdense, gU (nU rows), gB, gE and the row lists. */
typedef struct result {
    double loss;
    float *gdense, *gU, *gB, *gE;
    int32_t *urows, *erows;
    size_t nU, nUb, nE;
} result;

static void result_free(result *r) {
    free(r->gdense);
    free(r->gU);
    free(r->gB);
    free(r->gE);
    free(r->urows);
    free(r->erows);
}

static float *dup(const float *x, size_t n) {
    float *y = malloc((n ? n : 1) * sizeof *y);
    if (y && n) memcpy(y, x, n * sizeof *y);
    return y;
}

static void run(const tcase *c, const rr_rnn_layout *lay, float *P, const float *logcnt, int nt, size_t n,
                const int32_t *in, const int32_t *tgt, const int32_t *smp, float poison, result *out) {
    rr_error err;
    const rr_cell_ops *cell = rr_cell_get(c->cell);
    bool drop_h[RR_MAX_LAYERS] = {true, true};
    bool drop_e = lay->input != RR_IN_ONEHOT;
    rr_step_ws_f32 w;
    CHECK_OK(step_ws_alloc_f32(&w, lay, cell, N_ITEMS, B, S, drop_e, drop_h, &err), &err);
    CHECK_OK(step_ws_set_threads_f32(&w, lay, nt, &err), &err);
    rr_rng g;
    rr_rng_seed(&g, 99);
    if (w.mask_e)
        for (size_t i = 0; i < n * lay->in_width; i++) w.mask_e[i] = rr_rng_uniform(&g) < 0.2 ? 0.0f : 1.25f;
    for (size_t l = 0; l < lay->L; l++) {
        if (w.mask_h[l])
            for (size_t i = 0; i < n * lay->H[l]; i++) w.mask_h[l][i] = rr_rng_uniform(&g) < 0.2 ? 0.0f : 1.25f;
        for (size_t i = 0; i < n * lay->smult * lay->H[l]; i++)
            w.st_prev[l][i] = (float)(2.0 * rr_rng_uniform(&g) - 1.0) * 0.5f;
    }
    rr_step_ctx_f32 ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.lay = lay;
    ctx.cell = cell;
    ctx.n_items = N_ITEMS;
    ctx.P = P;
    ctx.loss.kind = c->loss;
    ctx.loss.bpreg = 0.9;
    ctx.loss.elu = c->elu;
    ctx.loss.norm = B;
    ctx.act = RR_ACT_LINEAR;
    ctx.logcnt = c->logq > 0 ? logcnt : NULL;
    ctx.logq = c->logq;
    ctx.alpha = 0.5;
    float keep = 0;
    size_t at = lay->By + (size_t)smp[S - 3]; /* a sampled column near the end: the last thread's */
    if (poison != 0) {
        keep = P[at];
        P[at] = poison;
    }
    out->loss = step_run_f32(&ctx, &w, n, in, tgt, smp);
    if (poison != 0) P[at] = keep;
    const size_t ew = lay->input == RR_IN_ONEHOT ? lay->G * lay->H[0] : lay->in_width;
    out->nU = w.nU;
    out->nUb = w.nUb;
    out->nE = w.nE;
    out->gdense = dup(w.gdense, lay->n_dense);
    out->gU = dup(w.gU, w.nU * lay->H_last);
    out->gB = dup(w.gB, w.nUb);
    out->gE = dup(w.gE, w.nE * ew);
    out->urows = malloc((w.nU + 1) * sizeof(int32_t));
    out->erows = malloc((w.nE + 1) * sizeof(int32_t));
    if (out->urows) memcpy(out->urows, w.urows, w.nU * sizeof(int32_t));
    if (out->erows) memcpy(out->erows, w.erows, w.nE * sizeof(int32_t));
    step_ws_free_f32(&w);
}

static double max_rel(const float *a, const float *b, size_t n) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)a[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
    return scale > 0 ? worst / scale : worst;
}

static void run_case(const tcase *c) {
    rr_error err;
    rr_rnn_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.cell = c->cell;
    sh.n_items = N_ITEMS;
    sh.n_layers = c->n_layers;
    for (size_t l = 0; l < c->n_layers; l++) sh.layers[l] = c->layers[l];
    sh.embedding = c->embedding;
    sh.final_act = RR_ACT_LINEAR;
    rr_rnn_layout lay;
    CHECK_OK(rr_rnn_layout_compute(&sh, &lay, &err), &err);
    float *P = malloc(lay.n_params * sizeof *P), logcnt[N_ITEMS];
    rr_rng g;
    rr_rng_seed(&g, 7 + (uint64_t)c->cell);
    for (size_t i = 0; i < lay.n_params; i++) P[i] = (float)(2.0 * rr_rng_uniform(&g) - 1.0) * 0.3f;
    for (size_t i = 0; i < N_ITEMS; i++) logcnt[i] = (float)log(1.0 + (double)(i % 13));
    int32_t in[B], tgt[B], smp[S];
    for (size_t i = 0; i < B; i++) {
        in[i] = (int32_t)((i * 37) % 90);   /* repeats */
        tgt[i] = (int32_t)((i * 53) % 120); /* repeats, overlap with the inputs */
    }
    for (size_t j = 0; j < S; j++) smp[j] = (int32_t)((j * 7919) % N_ITEMS);
    /* full batch and a shrunk one (odd row count, uneven row parts) */
    const size_t rows[2] = {B, 29};
    for (int k = 0; k < 2; k++) {
        const size_t n = rows[k];
        result r1, r2, r2b;
        run(c, &lay, P, logcnt, 1, n, in, tgt, smp, 0, &r1);
        run(c, &lay, P, logcnt, 2, n, in, tgt, smp, 0, &r2);
        run(c, &lay, P, logcnt, 2, n, in, tgt, smp, 0, &r2b);
        const size_t ew = lay.input == RR_IN_ONEHOT ? lay.G * lay.H[0] : lay.in_width;
        CHECK_MSG(isfinite(r1.loss) && r1.loss > 0, "%s n %zu: loss %g", c->name, n, r1.loss);
        CHECK_MSG(fabs(r1.loss - r2.loss) <= 1e-6 * fabs(r1.loss), "%s n %zu: loss %.9g vs %.9g", c->name, n,
                  r1.loss, r2.loss);
        CHECK_MSG(r1.nU == r2.nU && r1.nUb == r2.nUb && r1.nE == r2.nE, "%s n %zu: row counts differ", c->name, n);
        if (r1.nU == r2.nU && r1.nUb == r2.nUb && r1.nE == r2.nE) {
            CHECK_MSG(!memcmp(r1.urows, r2.urows, r1.nU * sizeof(int32_t)) &&
                          !memcmp(r1.erows, r2.erows, r1.nE * sizeof(int32_t)),
                      "%s n %zu: row order differs", c->name, n);
            double e = fmax(max_rel(r1.gdense, r2.gdense, lay.n_dense), max_rel(r1.gU, r2.gU, r1.nU * lay.H_last));
            e = fmax(e, fmax(max_rel(r1.gB, r2.gB, r1.nUb), max_rel(r1.gE, r2.gE, r1.nE * ew)));
            CHECK_MSG(e < 1e-5, "%s n %zu: 2-thread gradients differ by %.3g (relative to the largest)", c->name, n,
                      e);
            printf("  %-30s n %2zu  loss %.6f  rows %zu  1 vs 2 threads: max rel diff %.2e\n", c->name, n, r1.loss,
                   r1.nU, e);
        }
        /* repeats are bit-identical */
        CHECK(r2.loss == r2b.loss && r2.nU == r2b.nU);
        if (r2.nU == r2b.nU && r2.nE == r2b.nE)
            CHECK_MSG(!memcmp(r2.gdense, r2b.gdense, lay.n_dense * sizeof(float)) &&
                          !memcmp(r2.gU, r2b.gU, r2.nU * lay.H_last * sizeof(float)) &&
                          !memcmp(r2.gE, r2b.gE, r2.nE * ew * sizeof(float)),
                      "%s n %zu: two 2-thread runs differ", c->name, n);
        result_free(&r1);
        result_free(&r2);
        result_free(&r2b);
        /* an infinite score in the last thread's columns stops the step */
        result rn;
        run(c, &lay, P, logcnt, 2, n, in, tgt, smp, INFINITY, &rn);
        CHECK_MSG(isnan(rn.loss), "%s n %zu: non-finite score not caught (loss %g)", c->name, n, rn.loss);
        result_free(&rn);
    }
    free(P);
}

int main(void) {
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) run_case(&cases[k]);
    return check_summary("test_train_threads");
}
