/* test_optim.c - every optimiser against a hand-written double-precision
 * reference over several steps, sparse == dense restricted to the touched
 * rows (bit for bit), untouched rows and their state unchanged. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train/optim.h"
#include "util/util.h"

typedef struct ocase {
    const char *name;
    rr_optim_cfg c;
} ocase;

static const ocase cases[] = {
    {"adagrad", {RR_OPT_ADAGRAD, 0.05, 0.0, 0, 0, 0, 0}},
    {"adagrad-mom", {RR_OPT_ADAGRAD, 0.05, 0.4, 0, 0, 0, 0}},
    {"adam", {RR_OPT_ADAM, 0.01, 0.0, 0.9, 0.999, 1e-8, 0}},
    {"adam-b", {RR_OPT_ADAM, 0.003, 0.0, 0.8, 0.95, 1e-6, 0}},
    {"sgd", {RR_OPT_SGD, 0.1, 0.0, 0, 0, 0, 0}},
    {"sgd-mom", {RR_OPT_SGD, 0.1, 0.9, 0, 0, 0, 0}},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* The reference: the formulas of optim.h, in double, element by element. */
static void ref_step(const rr_optim_cfg *c, uint64_t t, size_t n, double *w, const double *g,
                     double *s1, double *s2) {
    for (size_t i = 0; i < n; i++) {
        switch (c->kind) {
        case RR_OPT_ADAGRAD:
            s1[i] += g[i] * g[i];
            if (c->momentum > 0) {
                s2[i] = c->momentum * s2[i] - c->lr * g[i] / sqrt(s1[i] + 1e-6);
                w[i] += s2[i];
            } else {
                w[i] -= c->lr * g[i] / sqrt(s1[i] + 1e-6);
            }
            break;
        case RR_OPT_ADAM: {
            s1[i] = c->beta1 * s1[i] + (1 - c->beta1) * g[i];
            s2[i] = c->beta2 * s2[i] + (1 - c->beta2) * g[i] * g[i];
            double mh = s1[i] / (1 - pow(c->beta1, (double)t));
            double vh = s2[i] / (1 - pow(c->beta2, (double)t));
            w[i] -= c->lr * mh / (sqrt(vh) + c->eps);
            break;
        }
        case RR_OPT_SGD:
            if (c->momentum > 0) {
                s1[i] = c->momentum * s1[i] - c->lr * g[i];
                w[i] += s1[i];
            } else {
                w[i] -= c->lr * g[i];
            }
            break;
        }
    }
}

static void against_reference(const ocase *oc, size_t n, int steps) {
    const rr_optim_cfg *c = &oc->c;
    rr_rng r;
    rr_rng_seed(&r, 99);
    float *w = malloc(n * sizeof *w), *g = malloc(n * sizeof *g);
    float *s1 = calloc(n, sizeof *s1), *s2 = calloc(n, sizeof *s2);
    double *wd = malloc(n * sizeof *wd), *gd = malloc(n * sizeof *gd);
    double *d1 = calloc(n, sizeof *d1), *d2 = calloc(n, sizeof *d2);
    for (size_t i = 0; i < n; i++) {
        w[i] = (float)(rr_rng_uniform(&r) * 2 - 1);
        wd[i] = w[i];
    }
    int ns = rr_optim_n_states(c);
    double worst = 0;
    for (int t = 1; t <= steps; t++) {
        for (size_t i = 0; i < n; i++) {
            /* gradients of mixed sign and scale, some exactly zero */
            double x = rr_rng_uniform(&r);
            g[i] = (float)(i % 7 == 3 ? 0.0 : (x * 2 - 1) * (i % 3 == 0 ? 10.0 : 0.1));
            gd[i] = g[i];
        }
        rr_optim_dense(c, (uint64_t)t, n, w, g, ns >= 1 ? s1 : NULL, ns >= 2 ? s2 : NULL);
        ref_step(c, (uint64_t)t, n, wd, gd, d1, d2);
        for (size_t i = 0; i < n; i++) {
            double e = fabs(w[i] - wd[i]) / fmax(1.0, fabs(wd[i]));
            if (e > worst) worst = e;
        }
    }
    printf("%-12s n=%zu steps=%d: max rel deviation from the double reference %.3g\n", oc->name, n,
           steps, worst);
    CHECK_MSG(worst < 2e-6, "%s: deviation %.3g", oc->name, worst);
    /* the state itself follows the reference too (norm-wise: the states
     * of cancelling gradients sit near zero) */
    double e1 = 0, e2 = 0, m1 = 0, m2 = 0;
    for (size_t i = 0; i < n; i++) {
        e1 = fmax(e1, fabs(s1[i] - d1[i]));
        e2 = fmax(e2, fabs(s2[i] - d2[i]));
        m1 = fmax(m1, fabs(d1[i]));
        m2 = fmax(m2, fabs(d2[i]));
    }
    if (ns >= 1) CHECK_MSG(e1 <= 1e-6 * m1, "%s: state 1 deviation %.3g (max %.3g)", oc->name, e1, m1);
    if (ns >= 2) CHECK_MSG(e2 <= 1e-6 * m2, "%s: state 2 deviation %.3g (max %.3g)", oc->name, e2, m2);
    free(w);
    free(g);
    free(s1);
    free(s2);
    free(wd);
    free(gd);
    free(d1);
    free(d2);
}

/* A table of N rows; a sparse update of some rows must equal a dense update
 * of those rows' slices and leave every other row (and its state) alone. */
static void sparse_vs_dense(const ocase *oc) {
    const rr_optim_cfg *c = &oc->c;
    enum { N = 13, L = 37 };
    const int32_t rows[] = {11, 2, 5, 0, 12};
    const size_t nr = sizeof rows / sizeof rows[0];
    rr_rng r;
    rr_rng_seed(&r, 7);
    static float w[N * L], s1[N * L], s2[N * L], w0[N * L], s10[N * L], s20[N * L];
    static float g[5 * L], dw[5 * L], d1[5 * L], d2[5 * L];
    for (size_t i = 0; i < N * L; i++) {
        w[i] = (float)rr_rng_uniform(&r);
        s1[i] = c->kind == RR_OPT_SGD ? (float)(rr_rng_uniform(&r) - 0.5) : (float)rr_rng_uniform(&r);
        s2[i] = c->kind == RR_OPT_ADAM ? (float)rr_rng_uniform(&r) * 0.01f : (float)(rr_rng_uniform(&r) - 0.5);
    }
    memcpy(w0, w, sizeof w);
    memcpy(s10, s1, sizeof s1);
    memcpy(s20, s2, sizeof s2);
    int ns = rr_optim_n_states(c);
    int same = 1, untouched = 1;
    for (uint64_t t = 1; t <= 4; t++) {
        for (size_t i = 0; i < nr * L; i++) g[i] = (float)(rr_rng_uniform(&r) * 2 - 1);
        /* dense reference on gathered copies of the rows */
        for (size_t k = 0; k < nr; k++) {
            memcpy(dw + k * L, w + (size_t)rows[k] * L, L * sizeof(float));
            memcpy(d1 + k * L, s1 + (size_t)rows[k] * L, L * sizeof(float));
            memcpy(d2 + k * L, s2 + (size_t)rows[k] * L, L * sizeof(float));
        }
        rr_optim_dense(c, t, nr * L, dw, g, ns >= 1 ? d1 : NULL, ns >= 2 ? d2 : NULL);
        rr_optim_sparse(c, t, L, nr, rows, g, w, ns >= 1 ? s1 : NULL, ns >= 2 ? s2 : NULL);
        for (size_t k = 0; k < nr; k++) {
            same &= !memcmp(dw + k * L, w + (size_t)rows[k] * L, L * sizeof(float));
            if (ns >= 1) same &= !memcmp(d1 + k * L, s1 + (size_t)rows[k] * L, L * sizeof(float));
            if (ns >= 2) same &= !memcmp(d2 + k * L, s2 + (size_t)rows[k] * L, L * sizeof(float));
        }
    }
    for (int32_t row = 0; row < N; row++) {
        int touched = 0;
        for (size_t k = 0; k < nr; k++) touched |= rows[k] == row;
        size_t o = (size_t)row * L;
        if (touched) {
            /* and it did change */
            untouched &= memcmp(w + o, w0 + o, L * sizeof(float)) != 0;
            continue;
        }
        untouched &= !memcmp(w + o, w0 + o, L * sizeof(float));
        untouched &= !memcmp(s1 + o, s10 + o, L * sizeof(float));
        untouched &= !memcmp(s2 + o, s20 + o, L * sizeof(float));
    }
    CHECK_MSG(same, "%s: sparse update differs from the dense one on its rows", oc->name);
    CHECK_MSG(untouched, "%s: rows outside the update changed (or touched rows did not)", oc->name);
}

int main(void) {
    CHECK(rr_optim_n_states(&cases[0].c) == 1);
    CHECK(rr_optim_n_states(&cases[1].c) == 2);
    CHECK(rr_optim_n_states(&cases[2].c) == 2);
    CHECK(rr_optim_n_states(&cases[4].c) == 0);
    CHECK(rr_optim_n_states(&cases[5].c) == 1);
    size_t big = check_small() ? 70000 : 300000; /* > the threading threshold */
    for (size_t k = 0; k < NCASES; k++) {
        against_reference(&cases[k], 1000, 12);
        against_reference(&cases[k], big, 3);
        sparse_vs_dense(&cases[k]);
    }
    /* one adagrad step by hand: acc = 0.25, w = 1 - 0.1 * 0.5 / sqrt(0.25 + 1e-6) */
    {
        rr_optim_cfg c = {RR_OPT_ADAGRAD, 0.1, 0.0, 0, 0, 0, 0};
        float w = 1.0f, g = 0.5f, acc = 0.0f;
        rr_optim_dense(&c, 1, 1, &w, &g, &acc, NULL);
        CHECK_NEAR(acc, 0.25, 1e-7);
        CHECK_NEAR(w, 1.0 - 0.1 * 0.5 / sqrt(0.25 + 1e-6), 1e-7);
        /* eps inside the root: a tiny gradient is damped by sqrt(g^2 + 1e-6) */
        float w2 = 0.0f, g2 = 1e-4f, acc2 = 0.0f;
        rr_optim_dense(&c, 1, 1, &w2, &g2, &acc2, NULL);
        CHECK_NEAR(w2, -0.1 * 1e-4 / sqrt(1e-8 + 1e-6), 1e-9);
    }
    /* adam's first step moves every weight by about lr * sign(g) */
    {
        rr_optim_cfg c = {RR_OPT_ADAM, 0.01, 0.0, 0.9, 0.999, 1e-8, 0};
        float w[2] = {0, 0}, g[2] = {3.0f, -0.002f}, m[2] = {0}, v[2] = {0};
        rr_optim_dense(&c, 1, 2, w, g, m, v);
        CHECK_NEAR(w[0], -0.01, 1e-6);
        CHECK_NEAR(w[1], 0.01, 1e-6);
    }
    return check_summary("test_optim");
}
