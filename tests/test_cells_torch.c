/* test_cells_torch.c - the cells against PyTorch: forward states and
 * backward gradients of nn.GRUCell / nn.LSTMCell / nn.RNNCell (tanh, relu)
 * over two steps with one-step truncation, from the fixtures that
 * scripts/gen_cell_fixtures.py wrote into tests/fixtures/ (float64 torch).
 *
 * Each fixture is replayed three ways: double kernels (must match to
 * ~1e-12), float kernels through BLAS, and float kernels through the
 * reference GEMM (both ~1e-5).  The input projection gi = x W_ih^T + b_ih,
 * its weight gradients dW_ih = sum_t dgi_t^T x_t, db_ih and the input
 * gradient dx = dgi W_ih are computed here from the cell's dgi, so torch's
 * weight_ih/bias_ih/x gradients check dgi independently. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn/cell.h"
#include "nn/gemm.h"
#include "util/util.h"

/* ---- fixture reader */

enum { MAX_ARRAYS = 64 };

typedef struct fixture {
    size_t B, H, I, T;
    size_t n;
    char name[MAX_ARRAYS][32];
    size_t len[MAX_ARRAYS];
    double *val[MAX_ARRAYS];
} fixture;

static void fixture_free(fixture *f) {
    for (size_t i = 0; i < f->n; i++) free(f->val[i]);
    f->n = 0;
}

/* Returns 0 on success; prints what was wrong otherwise. */
static int fixture_read(fixture *f, const char *path) {
    memset(f, 0, sizeof *f);
    char *data = NULL;
    size_t len = 0;
    rr_error err;
    if (rr_read_file(path, 1 << 24, &data, &len, &err) != RR_OK) {
        fprintf(stderr, "cannot read fixture %s: %s\n", path, err.msg);
        return -1;
    }
    char *p = data;
    int rc = 0;
    while (*p) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        if (*p == '#') {
            while (*p && *p != '\n') p++;
            continue;
        }
        char kw[16], nm[32];
        int used = 0;
        if (sscanf(p, "%15s %31s%n", kw, nm, &used) != 2) {
            rc = -1;
            break;
        }
        p += used;
        char *end;
        unsigned long long cnt = strtoull(p, &end, 10);
        if (end == p) {
            rc = -1;
            break;
        }
        p = end;
        if (!strcmp(kw, "dim")) {
            size_t *d = !strcmp(nm, "B") ? &f->B : !strcmp(nm, "H") ? &f->H
                        : !strcmp(nm, "I") ? &f->I : !strcmp(nm, "T") ? &f->T : NULL;
            if (!d) {
                rc = -1;
                break;
            }
            *d = (size_t)cnt;
        } else if (!strcmp(kw, "array") && f->n < MAX_ARRAYS && cnt < (1u << 20)) {
            double *v = malloc((size_t)cnt * sizeof(double) + 1);
            for (size_t i = 0; i < cnt && rc == 0; i++) {
                v[i] = strtod(p, &end);
                if (end == p) rc = -1;
                p = end;
            }
            snprintf(f->name[f->n], sizeof f->name[0], "%s", nm);
            f->len[f->n] = (size_t)cnt;
            f->val[f->n++] = v;
            if (rc) break;
        } else {
            rc = -1;
            break;
        }
    }
    if (rc) fprintf(stderr, "%s: malformed fixture near offset %zu\n", path, (size_t)(p - data));
    free(data);
    return rc;
}

/* The named array, which must have exactly n values (NULL and a failed
 * check otherwise). */
static const double *fx(const fixture *f, const char *name, size_t n) {
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->name[i], name)) {
            CHECK_MSG(f->len[i] == n, "array %s has %zu values, expected %zu", name, f->len[i], n);
            return f->len[i] == n ? f->val[i] : NULL;
        }
    CHECK_MSG(0, "array %s missing", name);
    return NULL;
}

/* ---- replay, once per element type */

static double g_maxerr; /* largest deviation seen in the current replay */

#define MAXDIFF(T)                                                                      \
    static int maxdiff_##T(const char *what, const T *a, size_t lda, const double *ref, \
                           size_t rows, size_t cols, double tol) {                      \
        double m = 0;                                                                   \
        for (size_t i = 0; i < rows; i++)                                               \
            for (size_t j = 0; j < cols; j++)                                           \
                m = fmax(m, fabs((double)a[i * lda + j] - ref[i * cols + j]));          \
        g_maxerr = fmax(g_maxerr, m);                                                   \
        CHECK_MSG(m <= tol, "%s: max diff %.3g > %.3g", what, m, tol);                  \
        return m <= tol;                                                                \
    }
MAXDIFF(float)
MAXDIFF(double)

#define REPLAY(TY, SFX, GEMMF)                                                                 \
    static void replay_##SFX(const fixture *f, const rr_cell_ops *ops, const char *label,      \
                             double tol) {                                                     \
        const size_t B = f->B, H = f->H, I = f->I, G = ops->gates, GH = G * H;                 \
        const size_t sH = ops->state_mult * H, cH = ops->cache_mult * H;                       \
        const double *Wih = fx(f, "weight_ih", GH * I), *bih = fx(f, "bias_ih", GH);           \
        const double *Whh = fx(f, "weight_hh", GH * H), *bhh = fx(f, "bias_hh", GH);           \
        const double *h0 = fx(f, "h0", B * H);                                                 \
        const double *c0 = ops->state_mult == 2 ? fx(f, "c0", B * H) : h0;                     \
        if (!Wih || !bih || !Whh || !bhh || !h0 || !c0) return;                                \
        TY *wih = malloc(GH * I * sizeof(TY)), *b_ih = malloc(GH * sizeof(TY));                \
        TY *whh = malloc(GH * H * sizeof(TY)), *b_hh = malloc(GH * sizeof(TY));                \
        TY *sp = calloc(B * sH, sizeof(TY)), *sn = calloc(B * sH, sizeof(TY));                 \
        TY *cache = calloc(B * cH, sizeof(TY)), *scr = calloc(B * GH, sizeof(TY));             \
        TY *gi = calloc(B * GH, sizeof(TY)), *dgi = calloc(B * GH, sizeof(TY));                \
        TY *x = calloc(B * I, sizeof(TY)), *dh = calloc(B * H, sizeof(TY));                    \
        TY *dx = calloc(B * I, sizeof(TY));                                                    \
        TY *gWih = calloc(GH * I, sizeof(TY)), *gbih = calloc(GH, sizeof(TY));                 \
        TY *gWhh = calloc(GH * H, sizeof(TY)), *gbhh = calloc(GH, sizeof(TY));                 \
        for (size_t i = 0; i < GH * I; i++) wih[i] = (TY)Wih[i];                               \
        for (size_t i = 0; i < GH * H; i++) whh[i] = (TY)Whh[i];                               \
        for (size_t i = 0; i < GH; i++) b_ih[i] = (TY)bih[i], b_hh[i] = (TY)bhh[i];            \
        for (size_t b = 0; b < B; b++)                                                         \
            for (size_t j = 0; j < H; j++) {                                                   \
                sp[b * sH + j] = (TY)h0[b * H + j];                                            \
                if (sH == 2 * H) sp[b * sH + H + j] = (TY)c0[b * H + j];                       \
            }                                                                                  \
        char key[32], what[96];                                                                \
        for (size_t t = 0; t < f->T; t++) {                                                    \
            snprintf(key, sizeof key, "x%zu", t);                                              \
            const double *xt = fx(f, key, B * I);                                              \
            snprintf(key, sizeof key, "dh%zu", t + 1);                                         \
            const double *dht = fx(f, key, B * H);                                             \
            snprintf(key, sizeof key, "h%zu", t + 1);                                          \
            const double *ht = fx(f, key, B * H);                                              \
            snprintf(key, sizeof key, "c%zu", t + 1);                                          \
            const double *ct = sH == 2 * H ? fx(f, key, B * H) : ht;                           \
            snprintf(key, sizeof key, "grad_x%zu", t);                                         \
            const double *gxt = fx(f, key, B * I);                                             \
            if (!xt || !dht || !ht || !ct || !gxt) break;                                      \
            for (size_t i = 0; i < B * I; i++) x[i] = (TY)xt[i];                               \
            for (size_t i = 0; i < B * H; i++) dh[i] = (TY)dht[i];                             \
            /* gi (B, GH) = x W_ih^TY + b_ih */                                                \
            GEMMF(false, true, B, GH, I, (TY)1, x, I, wih, I, (TY)0, gi, GH);                  \
            for (size_t b = 0; b < B; b++)                                                     \
                for (size_t k = 0; k < GH; k++) gi[b * GH + k] += b_ih[k];                     \
            ops->forward_##SFX##_(sn, cache, B, H, gi, sp, whh, b_hh, scr);                    \
            snprintf(what, sizeof what, "%s %s h%zu", ops->name, label, t + 1);                \
            maxdiff_##TY(what, sn, sH, ht, B, H, tol);                                         \
            if (sH == 2 * H) {                                                                 \
                snprintf(what, sizeof what, "%s %s c%zu", ops->name, label, t + 1);            \
                maxdiff_##TY(what, sn + H, sH, ct, B, H, tol);                                 \
            }                                                                                  \
            ops->backward_##SFX##_(dgi, gWhh, gbhh, B, H, dh, sp, cache, whh, scr);            \
            /* dW_ih += dgi^TY x, db_ih += colsum dgi, dx = dgi W_ih */                        \
            GEMMF(true, false, GH, I, B, (TY)1, dgi, GH, x, I, (TY)1, gWih, I);                \
            for (size_t b = 0; b < B; b++)                                                     \
                for (size_t k = 0; k < GH; k++) gbih[k] += dgi[b * GH + k];                    \
            GEMMF(false, false, B, I, GH, (TY)1, dgi, GH, wih, I, (TY)0, dx, I);               \
            snprintf(what, sizeof what, "%s %s grad_x%zu", ops->name, label, t);               \
            maxdiff_##TY(what, dx, I, gxt, B, I, tol);                                         \
            memcpy(sp, sn, B * sH * sizeof(TY));                                               \
        }                                                                                      \
        const double *r;                                                                       \
        snprintf(what, sizeof what, "%s %s grad_weight_ih", ops->name, label);                 \
        if ((r = fx(f, "grad_weight_ih", GH * I))) maxdiff_##TY(what, gWih, I, r, GH, I, tol); \
        snprintf(what, sizeof what, "%s %s grad_bias_ih", ops->name, label);                   \
        if ((r = fx(f, "grad_bias_ih", GH))) maxdiff_##TY(what, gbih, GH, r, 1, GH, tol);      \
        snprintf(what, sizeof what, "%s %s grad_weight_hh", ops->name, label);                 \
        if ((r = fx(f, "grad_weight_hh", GH * H))) maxdiff_##TY(what, gWhh, H, r, GH, H, tol); \
        snprintf(what, sizeof what, "%s %s grad_bias_hh", ops->name, label);                   \
        if ((r = fx(f, "grad_bias_hh", GH))) maxdiff_##TY(what, gbhh, GH, r, 1, GH, tol);      \
        free(wih), free(b_ih), free(whh), free(b_hh), free(sp), free(sn), free(cache);         \
        free(scr), free(gi), free(dgi), free(x), free(dh), free(dx);                           \
        free(gWih), free(gbih), free(gWhh), free(gbhh);                                        \
    }

/* The ops table names the float kernels forward/backward; give both types
 * one spelling for the macro. */
#define forward_f32_ forward
#define backward_f32_ backward
#define forward_f64_ forward_f64
#define backward_f64_ backward_f64
REPLAY(float, f32, rr_sgemm)
REPLAY(double, f64, rr_dgemm_ref)

int main(void) {
    const char *src = getenv("RR_SRC");
    if (!src) src = ".";
    const struct {
        const char *file;
        rr_cell_kind kind;
    } cases[] = {{"cell_gru.txt", RR_CELL_GRU},
                 {"cell_lstm.txt", RR_CELL_LSTM},
                 {"cell_rnn_tanh.txt", RR_CELL_RNN_TANH},
                 {"cell_rnn_relu.txt", RR_CELL_RNN_RELU}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tests/fixtures/%s", src, cases[k].file);
        fixture f;
        int rc = fixture_read(&f, path);
        CHECK_MSG(rc == 0, "reading %s", path);
        if (rc) continue;
        CHECK(f.B > 0 && f.H > 0 && f.I > 0 && f.T > 0);
        const rr_cell_ops *ops = rr_cell_get(cases[k].kind);
        g_maxerr = 0;
        replay_f64(&f, ops, "f64", 1e-12);
        double e64 = g_maxerr;
        g_maxerr = 0;
        bool old = rr_gemm_force_ref(false);
        replay_f32(&f, ops, "f32-blas", 2e-5);
        double eb = g_maxerr;
        g_maxerr = 0;
        rr_gemm_force_ref(true);
        replay_f32(&f, ops, "f32-ref", 2e-5);
        double er = g_maxerr;
        rr_gemm_force_ref(old);
        printf("%-18s max |diff| vs torch: f64 %.2e  f32-blas %.2e  f32-ref %.2e\n",
               cases[k].file, e64, eb, er);
        fixture_free(&f);
    }
    return check_summary("test_cells_torch");
}
