/* rnn.c - the recurrent recommender model: parameter layout, GRU4Rec's
 * initialisation, batched inference (step, score) and the model file
 * sections.  Training lives in train/trainer.c.
 *
 * Model file (inside the container of io/container.h), besides the common
 * vocabulary / counts / metadata that model.c writes:
 *   kv  rnn.cell            gru | lstm | rnn_tanh | rnn_relu
 *   kv  rnn.layers          hidden sizes, comma separated ("100" or "64,32")
 *   kv  rnn.embedding       -1 constrained, 0 one-hot, K separate
 *   kv  rnn.final_act       0 linear, 1 elu, 2 tanh, 3 relu (rr_act)
 *   kv  rnn.final_act_param the ELU alpha
 *   kv  rnn.n_params        elements of the blob (a cross-check)
 *   F32 rnn.params          the blob, laid out by rr_rnn_layout_compute
 * A reader recomputes the layout from the kv pairs and requires the blob to
 * have exactly that many elements, all finite. */
#include "models/rnn.h"
#include "models/head.h"

#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/act.h"
#include "nn/gemm.h"

/* ------------------------------------------------------------------ layout */

/* Tensors start on 16-float (64-byte) boundaries. */
static bool align16(size_t *x) {
    size_t r;
    if (!rr_add_size(*x, 15, &r)) return false;
    *x = r & ~(size_t)15;
    return true;
}

/* Appends a (rows, cols) tensor at the cursor; false on overflow. */
static bool add_tensor(rr_rnn_layout *lay, size_t *cur, size_t *off, const char *name,
                       size_t rows, size_t cols, bool sparse) {
    size_t n, end;
    if (!align16(cur) || !rr_mul_size(rows, cols, &n) || !rr_add_size(*cur, n, &end)) return false;
    rr_rnn_tensor *t = &lay->t[lay->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->off = *cur;
    t->rows = rows;
    t->cols = cols;
    t->sparse = sparse;
    *off = *cur;
    *cur = end;
    return true;
}

rr_status rr_rnn_layout_compute(const rr_rnn_shape *s, rr_rnn_layout *lay, rr_error *err) {
    memset(lay, 0, sizeof *lay);
    const rr_cell_ops *cell = rr_cell_get(s->cell);
    if (!cell) return rr_err(err, RR_ERR_ARG, "rnn: unknown cell kind %d", (int)s->cell);
    if (s->n_layers < 1 || s->n_layers > RR_MAX_LAYERS)
        return rr_err(err, RR_ERR_ARG, "rnn: %zu layers (1..%d)", s->n_layers, RR_MAX_LAYERS);
    if (s->n_items < 1 || s->n_items > (size_t)INT32_MAX)
        return rr_err(err, RR_ERR_ARG, "rnn: %zu items", s->n_items);
    if (s->embedding < -1 || s->embedding > 65536)
        return rr_err(err, RR_ERR_ARG, "rnn: embedding %ld (-1, 0 or 1..65536)", s->embedding);
    if ((unsigned)s->final_act > RR_ACT_RELU || !isfinite(s->final_act_param))
        return rr_err(err, RR_ERR_ARG, "rnn: bad final activation");
    for (size_t l = 0; l < s->n_layers; l++)
        if (s->layers[l] < 1 || s->layers[l] > 65536)
            return rr_err(err, RR_ERR_ARG, "rnn: layer %zu has size %zu (1..65536)", l, s->layers[l]);
    const size_t N = s->n_items, L = s->n_layers;
    lay->G = cell->gates;
    lay->smult = cell->state_mult;
    lay->L = L;
    lay->H_last = s->layers[L - 1];
    lay->input = s->embedding < 0 ? RR_IN_CONSTRAINED : s->embedding == 0 ? RR_IN_ONEHOT : RR_IN_SEPARATE;
    lay->in_width = lay->input == RR_IN_CONSTRAINED ? lay->H_last
                    : lay->input == RR_IN_SEPARATE  ? (size_t)s->embedding
                                                    : 0;
    size_t st = 0;
    for (size_t l = 0; l < L; l++) {
        lay->H[l] = s->layers[l];
        lay->in[l] = l == 0 ? lay->in_width : s->layers[l - 1];
        lay->st_off[l] = st;
        st += lay->smult * lay->H[l]; /* <= 8 * 2 * 65536: no overflow */
    }
    lay->state_floats = st;
    lay->E = lay->X1 = SIZE_MAX;
    size_t cur = 0;
    bool ok = true;
    char name[16];
    for (size_t l = 0; l < L && ok; l++) {
        const size_t GH = lay->G * lay->H[l];
        lay->Wih[l] = SIZE_MAX;
        if (!(l == 0 && lay->input == RR_IN_ONEHOT)) {
            snprintf(name, sizeof name, "W_ih.%zu", l);
            ok = ok && add_tensor(lay, &cur, &lay->Wih[l], name, GH, lay->in[l], false);
        }
        snprintf(name, sizeof name, "W_hh.%zu", l);
        ok = ok && add_tensor(lay, &cur, &lay->Whh[l], name, GH, lay->H[l], false);
        snprintf(name, sizeof name, "b_ih.%zu", l);
        ok = ok && add_tensor(lay, &cur, &lay->bih[l], name, 1, GH, false);
        snprintf(name, sizeof name, "b_hh.%zu", l);
        ok = ok && add_tensor(lay, &cur, &lay->bhh[l], name, 1, GH, false);
    }
    ok = ok && align16(&cur);
    lay->n_dense = cur;
    if (ok && lay->input == RR_IN_SEPARATE)
        ok = add_tensor(lay, &cur, &lay->E, "E", N, lay->in_width, true);
    if (ok && lay->input == RR_IN_ONEHOT)
        ok = add_tensor(lay, &cur, &lay->X1, "X1", N, lay->G * lay->H[0], true);
    ok = ok && add_tensor(lay, &cur, &lay->Wy, "Wy", N, lay->H_last, true);
    ok = ok && add_tensor(lay, &cur, &lay->By, "By", N, 1, true);
    ok = ok && align16(&cur);
    size_t bytes;
    if (!ok || !rr_mul_size(cur, sizeof(double), &bytes))
        return rr_err(err, RR_ERR_NOMEM, "rnn: %zu items x layers %zu..: parameter count overflows", N,
                      s->layers[0]);
    lay->n_params = cur;
    return RR_OK;
}

rr_status rr_rnn_shape_from_params(rr_rnn_shape *s, const rr_train_params *p, size_t n_items,
                                   rr_error *err) {
    memset(s, 0, sizeof *s);
    if (!strcmp(p->kind, "gru")) s->cell = RR_CELL_GRU;
    else if (!strcmp(p->kind, "lstm")) s->cell = RR_CELL_LSTM;
    else if (!strcmp(p->kind, "rnn")) s->cell = p->rnn_relu ? RR_CELL_RNN_RELU : RR_CELL_RNN_TANH;
    else return rr_err(err, RR_ERR_ARG, "rnn: kind '%s' is not gru, lstm or rnn", p->kind);
    s->n_items = n_items;
    s->n_layers = p->n_layers;
    if (s->n_layers > RR_MAX_LAYERS) return rr_err(err, RR_ERR_ARG, "rnn: too many layers");
    memcpy(s->layers, p->layers, sizeof s->layers);
    s->embedding = p->embedding;
    s->final_act = p->final_act;
    s->final_act_param = p->final_act_param;
    rr_rnn_layout lay;
    return rr_rnn_layout_compute(s, &lay, err);
}

rr_status rr_rnn_new(rr_rnn **out, const rr_rnn_shape *s, rr_error *err) {
    *out = NULL;
    rr_rnn *r = calloc(1, sizeof *r);
    if (!r) return rr_err(err, RR_ERR_NOMEM, "rnn: out of memory");
    r->shape = *s;
    rr_status st = rr_rnn_layout_compute(s, &r->lay, err);
    if (st) {
        free(r);
        return st;
    }
    r->cell = rr_cell_get(s->cell);
    r->params = rr_alloc_aligned(r->lay.n_params * sizeof(float));
    if (!r->params) {
        size_t np = r->lay.n_params;
        free(r);
        return rr_err(err, RR_ERR_NOMEM, "rnn: out of memory for %zu parameters", np);
    }
    *out = r;
    return RR_OK;
}

void rr_rnn_free(rr_rnn *r) {
    if (!r) return;
    rr_free_aligned(r->params);
    free(r);
}

void rr_rnn_init(rr_rnn *r, rr_rng *rng) {
    const rr_rnn_layout *lay = &r->lay;
    float *P = r->params;
    memset(P, 0, lay->n_params * sizeof *P);
    /* Item tables first, then the layers, then Wy: GRU4Rec's order. */
    if (lay->E != SIZE_MAX) rr_init_uniform_blocks(P + lay->E, r->shape.n_items, lay->in_width, 1, rng);
    if (lay->X1 != SIZE_MAX)
        /* The one-hot table is W_ih^T of an N-wide input: its range is that
         * of G blocks of (H_0, N), sqrt(6 / (N + H_0)). */
        rr_init_uniform_blocks(P + lay->X1, lay->G * lay->H[0], r->shape.n_items, lay->G, rng);
    for (size_t l = 0; l < lay->L; l++) {
        const size_t GH = lay->G * lay->H[l];
        if (lay->Wih[l] != SIZE_MAX) rr_init_uniform_blocks(P + lay->Wih[l], GH, lay->in[l], lay->G, rng);
        rr_init_uniform_blocks(P + lay->Whh[l], GH, lay->H[l], lay->G, rng);
    }
    rr_init_uniform_blocks(P + lay->Wy, r->shape.n_items, lay->H_last, 1, rng);
}

/* --------------------------------------------------------------- inference */

size_t rr_rnn_step_scratch_floats(const rr_rnn_layout *lay, size_t n) {
    size_t w = lay->in_width;
    for (size_t l = 0; l < lay->L; l++) {
        const size_t GH = lay->G * lay->H[l];
        if (GH > w) w = GH;
        if (lay->smult * lay->H[l] > w) w = lay->smult * lay->H[l];
    }
    /* x, gi, prev, new, cell scratch: five (n, w) buffers */
    return 5 * n * w;
}

void rr_rnn_step_into(const rr_rnn *r, float *const *h, const int32_t *items, size_t n,
                      float *scratch) {
    const rr_rnn_layout *lay = &r->lay;
    const float *P = r->params;
    size_t w = rr_rnn_step_scratch_floats(lay, 1) / 5;
    float *x = scratch;             /* (n, in_width) input vectors */
    float *gi = x + n * w;          /* (n, G*H) input projections */
    float *sp = gi + n * w;         /* (n, sH) previous states, gathered */
    float *sn = sp + n * w;         /* (n, sH) new states */
    float *cs = sn + n * w;         /* (n, G*H) cell scratch */
    for (size_t l = 0; l < lay->L; l++) {
        const size_t H = lay->H[l], GH = lay->G * H, sH = lay->smult * H;
        const float *bih = P + lay->bih[l];
        if (l == 0 && lay->input == RR_IN_ONEHOT) {
            rr_rows_gather(gi, P + lay->X1, GH, items, n);
            rr_rows_add_bias(gi, n, GH, bih);
        } else {
            const float *xin;
            size_t ldx;
            if (l == 0) {
                rr_rows_gather(x, P + (lay->input == RR_IN_CONSTRAINED ? lay->Wy : lay->E), lay->in_width,
                               items, n);
                xin = x;
                ldx = lay->in_width;
            } else {
                xin = sn; /* the previous layer's new state: h is its first H_{l-1} */
                ldx = lay->smult * lay->H[l - 1];
            }
            for (size_t i = 0; i < n; i++) memcpy(gi + i * GH, bih, GH * sizeof *gi);
            rr_sgemm(false, true, n, GH, lay->in[l], 1.0f, xin, ldx, P + lay->Wih[l], lay->in[l], 1.0f, gi,
                     GH);
        }
        for (size_t i = 0; i < n; i++) memcpy(sp + i * sH, h[i] + lay->st_off[l], sH * sizeof *sp);
        r->cell->forward(sn, NULL, n, H, gi, sp, P + lay->Whh[l], P + lay->bhh[l], cs);
        for (size_t i = 0; i < n; i++) memcpy(h[i] + lay->st_off[l], sn + i * sH, sH * sizeof *sn);
    }
}

void rr_rnn_score_rows(const rr_rnn *r, const float *hl, size_t ldh, size_t n, float *scores) {
    const rr_rnn_layout *lay = &r->lay;
    const size_t N = r->shape.n_items;
    const float *By = r->params + lay->By;
    /* scores = By (broadcast) + hl Wy^T: the bias rows first, then one GEMM
     * accumulating into them. */
    for (size_t i = 0; i < n; i++) memcpy(scores + i * N, By, N * sizeof *scores);
    rr_sgemm(false, true, n, N, lay->H_last, 1.0f, hl, ldh, r->params + lay->Wy, lay->H_last, 1.0f, scores,
             N);
    if (r->shape.final_act != RR_ACT_LINEAR) {
        size_t total = n * N;
        rr_act_forward_f32(r->shape.final_act, r->shape.final_act_param, scores, scores, total);
    }
}

/* ---------------------------------------------------------------- model ops */

rr_rnn *rr_rnn_of(const rr_model *m) {
    if (!m || (m->ops != &rr_gru_ops && m->ops != &rr_lstm_ops && m->ops != &rr_rnn_ops)) return NULL;
    return m->impl;
}

static size_t rnn_state_floats(const rr_model *m) { return ((const rr_rnn *)m->impl)->lay.state_floats; }

static void rnn_state_init(const rr_model *m, float *h) {
    memset(h, 0, rnn_state_floats(m) * sizeof *h);
}

/* Per-thread scratch of rnn_step: rr_state_feed steps one session at a
 * time, and a server worker does that for every item of every request, so
 * the buffers are kept and only grow.  Freed when the thread exits
 * (pthread key destructor).  The arithmetic does not depend on it. */
typedef struct step_ctx {
    float *scratch;         /* (cap) rr_rnn_step_scratch_floats, 64-byte aligned */
    size_t cap;
    float **hv;             /* (cap_n) states of the sessions stepped */
    int32_t *iv;            /* (cap_n) their items */
    size_t cap_n;
} step_ctx;

static pthread_key_t step_key;
static pthread_once_t step_once = PTHREAD_ONCE_INIT;

static void step_ctx_free(void *p) {
    step_ctx *c = p;
    if (!c) return;
    rr_free_aligned(c->scratch);
    free(c->hv);
    free(c->iv);
    free(c);
}

static void step_key_make(void) { (void)pthread_key_create(&step_key, step_ctx_free); }

/* This thread's scratch with room for n sessions of nf floats, or NULL. */
static step_ctx *step_ctx_get(size_t nf, size_t n) {
    pthread_once(&step_once, step_key_make);
    step_ctx *c = pthread_getspecific(step_key);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return NULL;
        if (pthread_setspecific(step_key, c) != 0) {
            free(c);
            return NULL;
        }
    }
    if (nf > c->cap) {
        size_t bytes;
        if (!rr_mul_size(nf, sizeof(float), &bytes)) return NULL;
        float *p = rr_alloc_aligned(bytes);
        if (!p) return NULL;
        rr_free_aligned(c->scratch);
        c->scratch = p;
        c->cap = nf;
    }
    if (n > c->cap_n) {
        float **hv = rr_realloc_n(c->hv, n, sizeof *hv);
        if (hv) c->hv = hv;
        int32_t *iv = hv ? rr_realloc_n(c->iv, n, sizeof *iv) : NULL;
        if (iv) c->iv = iv;
        if (!hv || !iv) return NULL;
        c->cap_n = n;
    }
    return c;
}

/* Sessions with an out-of-range item are left as they are (the public API
 * validates items before they get here; this guards the rest). */
static void rnn_step(const rr_model *m, float *const *h, const int32_t *items, size_t n) {
    const rr_rnn *r = m->impl;
    if (n == 0) return;
    step_ctx *c = step_ctx_get(rr_rnn_step_scratch_floats(&r->lay, n), n);
    if (!c) {
        /* No memory for scratch: there is no allocation-free path, so the
         * sessions are left as they are. */
        rr_log(1, "rnn: out of memory in step for %zu sessions; states not advanced", n);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i] >= 0 && (size_t)items[i] < r->shape.n_items) {
            c->hv[k] = h[i];
            c->iv[k++] = items[i];
        }
    if (k) rr_rnn_step_into(r, c->hv, c->iv, k, c->scratch);
}

/* One session, items in order, SEQ_CHUNK at a time: each layer's input
 * products of the chunk's items in one GEMM (the weights read once, not
 * once per item), then the recurrent steps one by one.  rr_sgemm gives a
 * product of at most 8 rows the same bits whatever the row count
 * (nn/gemm.c), so this is rnn_step's arithmetic exactly. */
#define SEQ_CHUNK 8

static void rnn_step_seq(const rr_model *m, float *h, const int32_t *items, size_t n) {
    const rr_rnn *r = m->impl;
    const rr_rnn_layout *lay = &r->lay;
    const float *P = r->params;
    if (n == 0) return;
    for (size_t i = 0; i < n; i++)
        if (items[i] < 0 || (size_t)items[i] >= r->shape.n_items) {
            rr_log(1, "rnn: item %d out of range in a sequence step; state not advanced", (int)items[i]);
            return;
        }
    step_ctx *c = step_ctx_get(rr_rnn_step_scratch_floats(lay, SEQ_CHUNK), SEQ_CHUNK);
    if (!c) {
        rr_log(1, "rnn: out of memory in a sequence step of %zu items; state not advanced", n);
        return;
    }
    const size_t w = rr_rnn_step_scratch_floats(lay, 1) / 5;
    float *x = c->scratch;                /* (SEQ_CHUNK, in_width) layer 0 inputs */
    float *gi = x + SEQ_CHUNK * w;        /* (SEQ_CHUNK, G*H) input products */
    float *outs[2] = {gi + SEQ_CHUNK * w, gi + 2 * SEQ_CHUNK * w}; /* (SEQ_CHUNK, sH) a layer's new states */
    float *cs = gi + 3 * SEQ_CHUNK * w;   /* (1, G*H) cell scratch */
    for (size_t c0 = 0; c0 < n; c0 += SEQ_CHUNK) {
        const size_t nc = n - c0 < SEQ_CHUNK ? n - c0 : SEQ_CHUNK;
        const int32_t *it = items + c0;
        for (size_t l = 0; l < lay->L; l++) {
            const size_t H = lay->H[l], GH = lay->G * H, sH = lay->smult * H;
            const float *bih = P + lay->bih[l];
            float *out = outs[l % 2];
            if (l == 0 && lay->input == RR_IN_ONEHOT) {
                rr_rows_gather(gi, P + lay->X1, GH, it, nc);
                rr_rows_add_bias(gi, nc, GH, bih);
            } else {
                const float *xin;
                size_t ldx;
                if (l == 0) {
                    rr_rows_gather(x, P + (lay->input == RR_IN_CONSTRAINED ? lay->Wy : lay->E), lay->in_width, it,
                                   nc);
                    xin = x;
                    ldx = lay->in_width;
                } else {
                    xin = outs[(l - 1) % 2]; /* the layer below, step by step: h is its first H_{l-1} */
                    ldx = lay->smult * lay->H[l - 1];
                }
                for (size_t t = 0; t < nc; t++) memcpy(gi + t * GH, bih, GH * sizeof *gi);
                rr_sgemm(false, true, nc, GH, lay->in[l], 1.0f, xin, ldx, P + lay->Wih[l], lay->in[l], 1.0f, gi, GH);
            }
            float *hs = h + lay->st_off[l];
            for (size_t t = 0; t < nc; t++) {
                r->cell->forward(out + t * sH, NULL, 1, H, gi + t * GH, hs, P + lay->Whh[l], P + lay->bhh[l], cs);
                memcpy(hs, out + t * sH, sH * sizeof *hs);
            }
        }
    }
}

static rr_status rnn_score(const rr_model *m, rr_state *const *states, size_t n, float *scores,
                           rr_error *err) {
    /* The linear head's kernels (models/head.h), not rr_rnn_score_rows's
     * GEMM: the evaluation engine and rr_recommend score the same head
     * slice by slice, and every path must give the same bits. */
    rr_head hd;
    if (!rr_model_head(m, &hd)) return rr_err(err, RR_ERR_INTERNAL, "rnn: model without a head");
    rr_status hs = rr_head_score_states(&hd, states, n, scores, err);
    if (hs) return hs;
    return RR_OK;
}

static const char *cell_name(rr_cell_kind k) {
    switch (k) {
    case RR_CELL_GRU: return "gru";
    case RR_CELL_LSTM: return "lstm";
    case RR_CELL_RNN_TANH: return "rnn_tanh";
    case RR_CELL_RNN_RELU: return "rnn_relu";
    }
    return "?";
}

static rr_status rnn_save(const rr_model *m, rr_fwriter *w, rr_error *err) {
    const rr_rnn *r = m->impl;
    char layers[RR_MAX_LAYERS * 8 + 1];
    size_t p = 0;
    layers[0] = 0;
    for (size_t l = 0; l < r->shape.n_layers; l++)
        p += (size_t)snprintf(layers + p, sizeof layers - p, "%s%zu", l ? "," : "", r->shape.layers[l]);
    rr_status s = rr_fw_kv(w, "rnn.cell", cell_name(r->shape.cell), err);
    if (!s) s = rr_fw_kv(w, "rnn.layers", layers, err);
    if (!s) s = rr_fw_kv_int(w, "rnn.embedding", r->shape.embedding, err);
    if (!s) s = rr_fw_kv_int(w, "rnn.final_act", (int64_t)r->shape.final_act, err);
    if (!s) s = rr_fw_kv_double(w, "rnn.final_act_param", r->shape.final_act_param, err);
    if (!s) s = rr_fw_kv_int(w, "rnn.n_params", (int64_t)r->lay.n_params, err);
    if (!s) s = rr_fw_section(w, "rnn.params", RR_DT_F32, r->params, r->lay.n_params * sizeof(float), err);
    return s;
}

/* "100" or "64,32" into sizes; false on anything else. */
static bool parse_layers(const char *s, size_t *out, size_t *n) {
    *n = 0;
    while (*s) {
        if (*n == RR_MAX_LAYERS || *s < '0' || *s > '9') return false;
        errno = 0;
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || v < 1 || v > 65536) return false;
        out[(*n)++] = (size_t)v;
        s = end;
        if (*s == ',') {
            s++;
            if (!*s) return false;
        } else if (*s) return false;
    }
    return *n > 0;
}

static rr_status rnn_load(rr_model *m, const rr_freader *fr, rr_error *err) {
    rr_rnn_shape sh;
    memset(&sh, 0, sizeof sh);
    const char *cell = rr_fr_kv(fr, "rnn.cell"), *layers = rr_fr_kv(fr, "rnn.layers");
    if (!cell || !layers) return rr_err(err, RR_ERR_FORMAT, "rnn model without rnn.cell / rnn.layers");
    if (!strcmp(cell, "gru")) sh.cell = RR_CELL_GRU;
    else if (!strcmp(cell, "lstm")) sh.cell = RR_CELL_LSTM;
    else if (!strcmp(cell, "rnn_tanh")) sh.cell = RR_CELL_RNN_TANH;
    else if (!strcmp(cell, "rnn_relu")) sh.cell = RR_CELL_RNN_RELU;
    else return rr_err(err, RR_ERR_FORMAT, "rnn.cell '%s' is not gru, lstm, rnn_tanh or rnn_relu", cell);
    if (rr_rnn_ops_for(sh.cell) != m->ops)
        return rr_err(err, RR_ERR_FORMAT, "rnn.cell '%s' does not match the model kind '%s'", cell, m->ops->kind);
    if (!parse_layers(layers, sh.layers, &sh.n_layers))
        return rr_err(err, RR_ERR_FORMAT, "rnn.layers '%s': expected 1..8 sizes in 1..65536, comma separated",
                      layers);
    int64_t emb, act, np;
    double act_param;
    rr_status s = rr_fr_kv_int(fr, "rnn.embedding", &emb, err);
    if (!s) s = rr_fr_kv_int(fr, "rnn.final_act", &act, err);
    if (!s) s = rr_fr_kv_double(fr, "rnn.final_act_param", &act_param, err);
    if (!s) s = rr_fr_kv_int(fr, "rnn.n_params", &np, err);
    if (s) return s;
    if (emb < -1 || emb > 65536) return rr_err(err, RR_ERR_FORMAT, "rnn.embedding %lld out of range", (long long)emb);
    if (act < 0 || act > RR_ACT_RELU) return rr_err(err, RR_ERR_FORMAT, "rnn.final_act %lld unknown", (long long)act);
    sh.embedding = (long)emb;
    sh.final_act = (rr_act)act;
    sh.final_act_param = act_param;
    sh.n_items = m->n_items;
    /* Everything is checked against the bytes actually present before the
     * parameter blob is allocated: the shape's layout, the stored count and
     * the section's length must all agree. */
    rr_rnn_layout lay;
    s = rr_rnn_layout_compute(&sh, &lay, err);
    if (s) {
        if (s != RR_ERR_NOMEM) {
            rr_err_prefix(err, "invalid shape in model file");
            if (err) err->status = RR_ERR_FORMAT;
            s = RR_ERR_FORMAT;
        }
        return s;
    }
    if (np < 0 || (uint64_t)np != (uint64_t)lay.n_params)
        return rr_err(err, RR_ERR_FORMAT, "rnn.n_params %lld, the shape needs %zu", (long long)np, lay.n_params);
    const void *data;
    s = rr_fr_array(fr, "rnn.params", RR_DT_F32, lay.n_params, &data, err);
    if (s) return s;
    rr_rnn *r = NULL;
    s = rr_rnn_new(&r, &sh, err);
    if (s) return s;
    memcpy(r->params, data, r->lay.n_params * sizeof(float));
    for (size_t i = 0; i < r->lay.n_params; i++)
        if (!isfinite(r->params[i])) {
            rr_rnn_free(r);
            return rr_err(err, RR_ERR_NUMERIC, "rnn.params[%zu] is not finite", i);
        }
    m->impl = r;
    return RR_OK;
}

static void rnn_destroy(rr_model *m) {
    rr_rnn_free(m->impl);
    m->impl = NULL;
}

#define RNN_OPS(NAME, KIND)                                                                         \
    const rr_model_ops NAME = {KIND,     rnn_state_floats, rnn_state_init, rnn_step, rnn_score, rnn_save, \
                               rnn_load, rnn_destroy, rnn_step_seq}

RNN_OPS(rr_gru_ops, "gru");
RNN_OPS(rr_lstm_ops, "lstm");
RNN_OPS(rr_rnn_ops, "rnn");

const rr_model_ops *rr_rnn_ops_for(rr_cell_kind cell) {
    switch (cell) {
    case RR_CELL_GRU: return &rr_gru_ops;
    case RR_CELL_LSTM: return &rr_lstm_ops;
    default: return &rr_rnn_ops;
    }
}
