/* model.c - the part of a model every kind shares: the common fields, the
 * save/load framing around a kind's own sections, live session states and
 * top-k recommendation.  Kinds plug in through rr_model_ops (model.h) and
 * the registry (registry.c). */
#include "models/model.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "eval/eval.h"
#include "models/head.h"
#include "nn/screen.h"
#include "util/util.h"

rr_status rr_model_new_common(rr_model **out, const rr_model_ops *ops, const rr_dataset *train,
                              rr_error *err) {
    *out = NULL;
    if (!train || train->items.n == 0) return rr_err(err, RR_ERR_EMPTY, "training data has no items");
    rr_model *m = calloc(1, sizeof *m);
    if (!m) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    m->ops = ops;
    rr_status s = rr_vocab_copy(&m->items, &train->items, err);
    if (s == RR_OK) s = rr_dataset_item_counts(train, &m->counts, err);
    if (s) {
        rr_vocab_clear(&m->items);
        free(m->counts);
        free(m);
        return s;
    }
    m->n_items = m->items.n;
    *out = m;
    return RR_OK;
}

rr_status rr_model_set_meta(rr_model *m, const char *key, const char *value, rr_error *err) {
    if (!key || !*key || strlen(key) > RR_ID_MAX)
        return rr_err(err, RR_ERR_ARG, "metadata key must be 1..%d bytes", RR_ID_MAX);
    char *v = strdup(value);
    if (!v) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m->n_meta; i++)
        if (!strcmp(m->meta_keys[i], key)) {
            free(m->meta_vals[i]);
            m->meta_vals[i] = v;
            return RR_OK;
        }
    char *k = strdup(key);
    char **k2 = rr_realloc_n(m->meta_keys, m->n_meta + 1, sizeof *k2);
    if (k2) m->meta_keys = k2;
    char **v2 = k2 ? rr_realloc_n(m->meta_vals, m->n_meta + 1, sizeof *v2) : NULL;
    if (v2) m->meta_vals = v2;
    if (!k || !k2 || !v2) {
        free(k);
        free(v);
        return rr_err(err, RR_ERR_NOMEM, "out of memory");
    }
    m->meta_keys[m->n_meta] = k;
    m->meta_vals[m->n_meta] = v;
    m->n_meta++;
    return RR_OK;
}

void rr_model_free(rr_model *m) {
    if (!m) return;
    if (m->ops && m->ops->destroy) m->ops->destroy(m);
    rr_screen_free(m->screen);
    rr_vocab_clear(&m->items);
    free(m->counts);
    for (size_t i = 0; i < m->n_meta; i++) {
        free(m->meta_keys[i]);
        free(m->meta_vals[i]);
    }
    free(m->meta_keys);
    free(m->meta_vals);
    free(m);
}

static void kinds_list(char *buf, size_t cap) {
    size_t p = 0;
    buf[0] = 0;
    for (size_t i = 0; i < rr_model_kind_count() && p + 1 < cap; i++) {
        int w = snprintf(buf + p, cap - p, "%s%s", i ? ", " : "", rr_model_kind_name(i));
        if (w < 0) break;
        p += (size_t)w;
    }
}

rr_status rr_model_train(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                         const rr_train_params *p, rr_error *err) {
    *out = NULL;
    if (!train || !p) return rr_err(err, RR_ERR_ARG, "rr_model_train: no training data or parameters");
    const char *msg = rr_train_params_check(p);
    if (msg) return rr_err(err, RR_ERR_ARG, "%s", msg);
    rr_fit_fn fit = rr_model_fit_find(p->kind);
    if (!fit) {
        char known[256];
        kinds_list(known, sizeof known);
        return rr_err(err, RR_ERR_ARG, "unknown model kind '%s' (known: %s)", p->kind, known);
    }
    if (train->s.n_events == 0) return rr_err(err, RR_ERR_EMPTY, "training data has no events");
    rr_model *m = NULL;
    rr_status s = fit(&m, train, valid, p, err);
    /* A diverged run (RR_ERR_NUMERIC) may still hand back its last good
     * model; pass it on with the status so the caller can keep it. */
    rr_status fit_status = s;
    if (s && !(s == RR_ERR_NUMERIC && m)) {
        rr_model_free(m);
        return s;
    }
    rr_error meta_err;
    rr_error *merr = fit_status ? &meta_err : err;
    char buf[32];
    s = rr_model_set_meta(m, "rnnrec_version", rr_version(), merr);
    snprintf(buf, sizeof buf, "%zu", train->s.n_events);
    if (!s && !rr_model_meta(m, "train_events")) s = rr_model_set_meta(m, "train_events", buf, merr);
    snprintf(buf, sizeof buf, "%zu", train->s.n_sessions);
    if (!s && !rr_model_meta(m, "train_sessions")) s = rr_model_set_meta(m, "train_sessions", buf, merr);
    if (s) {
        rr_model_free(m);
        return fit_status ? fit_status : s;
    }
    *out = m;
    return fit_status;
}

rr_status rr_model_save(const rr_model *m, const char *path, rr_error *err) {
    rr_fwriter *w = NULL;
    size_t bytes;
    if (!rr_mul_size(m->n_items, sizeof *m->counts, &bytes)) return rr_err(err, RR_ERR_NOMEM, "model too large");
    rr_status s = rr_fw_new(&w, m->ops->kind, err);
    if (!s) s = rr_fw_vocab(w, &m->items, err);
    if (!s) s = rr_fw_section(w, "counts", RR_DT_F64, m->counts, bytes, err);
    for (size_t i = 0; !s && i < m->n_meta; i++) s = rr_fw_kv(w, m->meta_keys[i], m->meta_vals[i], err);
    if (!s) s = rr_fw_kv_int(w, "n_items", (int64_t)m->n_items, err);
    if (!s && m->ops->save) s = m->ops->save(m, w, err);
    if (!s) s = rr_fw_commit(w, path, err);
    rr_fw_free(w);
    return s;
}

static rr_status load_common(rr_model *m, const rr_freader *r, rr_error *err) {
    rr_status s = rr_fr_vocab(r, &m->items, err);
    if (s) return s;
    m->n_items = m->items.n;
    if (m->n_items == 0) return rr_err(err, RR_ERR_FORMAT, "model has an empty item vocabulary");
    const char *nk = rr_fr_kv(r, "n_items");
    if (nk) {
        int64_t n;
        s = rr_fr_kv_int(r, "n_items", &n, err);
        if (s) return s;
        if (n < 0 || (uint64_t)n != (uint64_t)m->n_items)
            return rr_err(err, RR_ERR_FORMAT, "metadata says %s items, the vocabulary holds %zu", nk, m->n_items);
    }
    const void *cp;
    s = rr_fr_array(r, "counts", RR_DT_F64, m->n_items, &cp, err);
    if (s) return s;
    m->counts = rr_malloc_n(m->n_items, sizeof *m->counts);
    if (!m->counts) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    memcpy(m->counts, cp, m->n_items * sizeof *m->counts);
    for (size_t i = 0; i < m->n_items; i++)
        if (!(m->counts[i] >= 0) || !isfinite(m->counts[i]))
            return rr_err(err, RR_ERR_FORMAT, "item count %zu is negative or not finite", i);
    for (size_t i = 0; i < rr_fr_n_kv(r); i++) {
        const char *k, *v;
        rr_fr_kv_at(r, i, &k, &v);
        s = rr_model_set_meta(m, k, v, err);
        if (s) return s;
    }
    return RR_OK;
}

rr_status rr_model_load(const char *path, rr_model **out, rr_error *err) {
    *out = NULL;
    rr_freader *r = NULL;
    rr_status s = rr_fr_open(path, &r, err);
    if (s) return s;
    const rr_model_ops *ops = rr_model_ops_find(rr_fr_kind(r));
    if (!ops) {
        s = rr_err(err, RR_ERR_UNSUPPORTED, "%s: model kind '%s' is not built into this rnnrec", path, rr_fr_kind(r));
        rr_fr_free(r);
        return s;
    }
    rr_model *m = calloc(1, sizeof *m);
    if (!m) {
        rr_fr_free(r);
        return rr_err(err, RR_ERR_NOMEM, "out of memory");
    }
    /* On failure rr_model_free calls ops->destroy, which accepts a NULL or
     * half-built impl (model.h). */
    m->ops = ops;
    s = load_common(m, r, err);
    if (!s && ops->load) s = ops->load(m, r, err);
    rr_fr_free(r);
    if (s) {
        rr_err_prefix(err, "%s", path);
        rr_model_free(m);
        return s;
    }
    *out = m;
    return RR_OK;
}

const char *rr_model_kind(const rr_model *m) { return m->ops->kind; }
size_t rr_model_n_items(const rr_model *m) { return m->n_items; }

int32_t rr_model_item_index(const rr_model *m, const char *id, size_t len) {
    if (len > RR_ID_MAX) return -1;
    return rr_vocab_find(&m->items, id, len);
}

const char *rr_model_item_id(const rr_model *m, int32_t idx, size_t *len) {
    if (idx < 0 || (size_t)idx >= m->n_items) {
        *len = 0;
        return NULL;
    }
    return rr_vocab_id(&m->items, idx, len);
}

const char *rr_model_meta(const rr_model *m, const char *key) {
    for (size_t i = 0; i < m->n_meta; i++)
        if (!strcmp(m->meta_keys[i], key)) return m->meta_vals[i];
    return NULL;
}

/* ------------------------------------------------------------------ states */

static size_t state_floats(const rr_model *m) {
    return m->ops->state_floats ? m->ops->state_floats(m) : 0;
}

static void state_init(rr_state *s) {
    if (!s->h) return;
    if (s->model->ops->state_init) s->model->ops->state_init(s->model, s->h);
    else memset(s->h, 0, state_floats(s->model) * sizeof *s->h);
}

rr_state *rr_state_new(const rr_model *m) {
    rr_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->model = m;
    s->cap = 16;
    s->items = malloc(s->cap * sizeof *s->items);
    size_t sf = state_floats(m), bytes = 0;
    if (sf) {
        if (rr_mul_size(sf, sizeof(float), &bytes)) s->h = rr_alloc_aligned(bytes);
        if (!s->h) {
            free(s->items);
            free(s);
            return NULL;
        }
    }
    if (!s->items) {
        rr_free_aligned(s->h);
        free(s);
        return NULL;
    }
    state_init(s);
    return s;
}

void rr_state_free(rr_state *s) {
    if (!s) return;
    free(s->items);
    rr_free_aligned(s->h);
    free(s);
}

void rr_state_reset(rr_state *s) {
    s->n = 0;
    state_init(s);
}

rr_status rr_state_push(rr_state *s, int32_t item) {
    if (item < 0 || (size_t)item >= s->model->n_items) return RR_ERR_RANGE;
    if (s->n == s->cap) {
        size_t cap;
        if (!rr_mul_size(s->cap, 2, &cap)) return RR_ERR_NOMEM;
        int32_t *p = rr_realloc_n(s->items, cap, sizeof *p);
        if (!p) return RR_ERR_NOMEM;
        s->items = p;
        s->cap = cap;
    }
    s->items[s->n++] = item;
    return RR_OK;
}

rr_status rr_state_feed(rr_state *s, int32_t item) {
    rr_status st = rr_state_push(s, item);
    if (st) return st;
    if (s->h && s->model->ops->step) s->model->ops->step(s->model, &s->h, &item, 1);
    return RR_OK;
}

rr_status rr_state_feed_items(rr_state *s, const int32_t *items, size_t n) {
    if (n == 0) return RR_OK; /* items may then be NULL (a new session's empty history) */
    for (size_t i = 0; i < n; i++)
        if (items[i] < 0 || (size_t)items[i] >= s->model->n_items) return RR_ERR_RANGE;
    /* room for all first, so the history and the state stay in step */
    size_t need;
    if (!rr_add_size(s->n, n, &need)) return RR_ERR_NOMEM;
    if (need > s->cap) {
        size_t cap = s->cap;
        while (cap < need)
            if (!rr_mul_size(cap, 2, &cap)) return RR_ERR_NOMEM;
        int32_t *p = rr_realloc_n(s->items, cap, sizeof *p);
        if (!p) return RR_ERR_NOMEM;
        s->items = p;
        s->cap = cap;
    }
    memcpy(s->items + s->n, items, n * sizeof *items);
    s->n += n;
    if (!s->h) return RR_OK;
    const rr_model_ops *o = s->model->ops;
    if (o->step_seq) o->step_seq(s->model, s->h, items, n);
    else if (o->step)
        for (size_t i = 0; i < n; i++) o->step(s->model, &s->h, &items[i], 1);
    return RR_OK;
}

size_t rr_state_len(const rr_state *s) { return s->n; }

/* --------------------------------------------------------------- recommend */

/* Per-thread scratch of rr_recommend: buffers only grow, so steady-state
 * calls (a server's batcher asking for up to its batch size) allocate
 * nothing.  Freed when the thread exits (pthread key destructor). */
typedef struct rec_ctx {
    size_t cap_n, cap_nk, cap_ni, cap_rows;
    rr_state **live;        /* (cap_n) sessions with items */
    const float **vecs;     /* (cap_n) their head vectors */
    const int32_t **seen;   /* (cap_n) their items */
    size_t *n_seen, *ntop;  /* (cap_n) */
    int32_t *top;           /* (cap_nk) (n_live, kk) */
    float *tops;            /* (cap_nk) */
    float *pop;             /* (cap_ni) popularity row */
    float *block;           /* (cap_rows) unfused score rows, 64-byte aligned */
    rr_fused_scratch *fz;
    rr_head_screen_scratch *hs; /* the one-session screened path's */
} rec_ctx;

static pthread_key_t rec_key;
static pthread_once_t rec_once = PTHREAD_ONCE_INIT;

static void rec_ctx_free(void *p) {
    rec_ctx *c = p;
    if (!c) return;
    free(c->live);
    free(c->vecs);
    free(c->seen);
    free(c->n_seen);
    free(c->ntop);
    free(c->top);
    free(c->tops);
    free(c->pop);
    rr_free_aligned(c->block);
    rr_fused_scratch_free(c->fz);
    rr_head_screen_scratch_free(c->hs);
    free(c);
}

static void rec_key_make(void) { (void)pthread_key_create(&rec_key, rec_ctx_free); }

static rec_ctx *rec_ctx_get(void) {
    pthread_once(&rec_once, rec_key_make);
    rec_ctx *c = pthread_getspecific(rec_key);
    if (c) return c;
    c = calloc(1, sizeof *c);
    if (c && pthread_setspecific(rec_key, c) != 0) {
        free(c);
        c = NULL;
    }
    return c;
}

/* Grows the per-session arrays to n and the top buffers to nk entries. */
static bool rec_ctx_reserve(rec_ctx *c, size_t n, size_t nk, size_t ni) {
    if (n > c->cap_n) {
        rr_state **l = rr_realloc_n(c->live, n, sizeof *l);
        if (l) c->live = l;
        const float **v = rr_realloc_n(c->vecs, n, sizeof *v);
        if (v) c->vecs = v;
        const int32_t **sv = rr_realloc_n(c->seen, n, sizeof *sv);
        if (sv) c->seen = sv;
        size_t *ns = rr_realloc_n(c->n_seen, n, sizeof *ns);
        if (ns) c->n_seen = ns;
        size_t *nt = rr_realloc_n(c->ntop, n, sizeof *nt);
        if (nt) c->ntop = nt;
        if (!l || !v || !sv || !ns || !nt) return false;
        c->cap_n = n;
    }
    if (nk > c->cap_nk) {
        int32_t *t = rr_realloc_n(c->top, nk, sizeof *t);
        if (t) c->top = t;
        float *ts = rr_realloc_n(c->tops, nk, sizeof *ts);
        if (ts) c->tops = ts;
        if (!t || !ts) return false;
        c->cap_nk = nk;
    }
    if (ni > c->cap_ni) {
        float *p = rr_realloc_n(c->pop, ni, sizeof *p);
        if (!p) return false;
        c->pop = p;
        c->cap_ni = ni;
    }
    return true;
}

/* Threads that may split one call's items: the caller's OpenMP setting
 * (omp_set_num_threads / OMP_NUM_THREADS), 1 inside a parallel region. */
static int rec_threads(void) {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

/* Sessions past the last whole tile that are ranked one at a time. */
#define SMALL_REST 4

/* The n_live sessions in c->vecs/seen/n_seen ranked into c->top/tops/ntop
 * (kk each) through the model's screen: the exact engine's lists, bit for
 * bit (eval.h, head.h).  Whole tiles of 16 go through the fused engine; a
 * remainder of up to SMALL_REST sessions goes one at a time through the
 * item-major kernel (16 items per instruction instead of 16 sessions),
 * which costs about a sixth of a tile per session: a lone session is
 * ranked in ~50 us instead of ~330 (H 100, 43,000 items, 8 bits;
 * bench/bench_serve in docs/serve.md). */
static rr_status rank_screened(const rr_model *m, const rr_head *hd, rec_ctx *c, size_t n_live, size_t kk,
                               int exclude_seen, rr_error *err) {
    const rr_screen *scr = m->screen;
    size_t n_tiled = n_live, rest = n_live % RR_HEAD_TILE;
    if (scr->wt && rest <= SMALL_REST && kk <= RR_FUSED_MERGE_MAX) n_tiled = n_live - rest;
    if (n_tiled) {
        rr_fused_job job = {hd, c->vecs, n_tiled, NULL, exclude_seen ? c->seen : NULL, c->n_seen, kk, rec_threads()};
        rr_fused_out out = {NULL, NULL, NULL, c->top, c->tops, c->ntop};
        rr_status s = rr_fused_rank_screened(&job, scr, &c->fz, &out, err);
        if (s) return s;
    }
    for (size_t j = n_tiled; j < n_live; j++) {
        rr_status s = rr_head_topk_screened(hd, scr, c->vecs[j], exclude_seen ? c->seen[j] : NULL,
                                            exclude_seen ? c->n_seen[j] : 0, kk, c->top + j * kk,
                                            c->tops + j * kk, &c->ntop[j], &c->hs, err);
        if (s) return s;
    }
    return RR_OK;
}

rr_status rr_model_use_screen(rr_model *m, int bits, rr_error *err) {
    if (bits != 0 && bits != 8 && bits != 16)
        return rr_err(err, RR_ERR_ARG, "rr_model_use_screen: bits must be 8, 16 or 0, not %d", bits);
    rr_screen_free(m->screen);
    m->screen = NULL;
    rr_head hd;
    if (!bits || !rr_model_head(m, &hd) || hd.act != RR_ACT_LINEAR) return RR_OK;
    rr_screen *scr = NULL;
    rr_status s = rr_screen_new(&scr, hd.W, hd.b, hd.N, hd.D, bits, err);
    /* the item-major blocks too, for a few sessions at a time */
    if (!s && scr) s = rr_screen_add_blocks(scr, err);
    if (s) {
        rr_screen_free(scr);
        return s;
    }
    m->screen = scr;
    return RR_OK;
}

int rr_model_screen_bits(const rr_model *m) { return m->screen ? m->screen->bits : 0; }

rr_status rr_recommend(const rr_model *m, rr_state *const *states, size_t n, size_t k, int exclude_seen,
                       int32_t *items, float *scores, rr_error *err) {
    if (n == 0 || k == 0) return RR_OK;
    for (size_t i = 0; i < n; i++)
        if (!states[i] || states[i]->model != m)
            return rr_err(err, RR_ERR_ARG, "rr_recommend: state %zu does not belong to this model", i);
    size_t ni = m->n_items, kk = k < ni ? k : ni, nk;
    rec_ctx *c = rec_ctx_get();
    if (!c || !rr_mul_size(n, kk, &nk) || !rec_ctx_reserve(c, n, nk, ni))
        return rr_err(err, RR_ERR_NOMEM, "rr_recommend: out of memory for %zu sessions", n);
    /* Sessions with no items yet have no meaningful model score: they get
     * the training popularity (the counts every model keeps). */
    size_t n_live = 0;
    for (size_t i = 0; i < n; i++)
        if (states[i]->n > 0) c->live[n_live++] = states[i];
    rr_status s = RR_OK;
    rr_head hd;
    if (n_live && rr_model_head(m, &hd)) {
        /* Linear head: fused scoring and top-k (eval/fused.c), no rows. */
        for (size_t j = 0; j < n_live; j++) {
            c->vecs[j] = c->live[j]->h + hd.off;
            c->seen[j] = c->live[j]->items;
            c->n_seen[j] = c->live[j]->n;
        }
        if (m->screen) {
            s = rank_screened(m, &hd, c, n_live, kk, exclude_seen, err);
        } else {
            rr_fused_job job = {&hd, c->vecs, n_live, NULL, exclude_seen ? c->seen : NULL, c->n_seen, kk,
                                rec_threads()};
            rr_fused_out out = {NULL, NULL, NULL, c->top, c->tops, c->ntop};
            s = rr_fused_rank(&job, &c->fz, &out, err);
        }
    } else if (n_live) {
        /* Any other kind: full score rows, then a top-k per row. */
        size_t cells;
        if (!rr_mul_size(n_live, ni, &cells) || !rr_mul_size(cells, sizeof(float), &cells))
            return rr_err(err, RR_ERR_NOMEM, "rr_recommend: %zu sessions x %zu items is too large", n, ni);
        if (cells > c->cap_rows) {
            rr_free_aligned(c->block);
            c->block = rr_alloc_aligned(cells);
            c->cap_rows = c->block ? cells : 0;
            if (!c->block) return rr_err(err, RR_ERR_NOMEM, "rr_recommend: out of memory");
        }
        s = m->ops->score(m, c->live, n_live, c->block, err);
        for (size_t j = 0; s == RR_OK && j < n_live; j++) {
            const rr_state *st = c->live[j];
            float *row = c->block + j * ni;
            if (exclude_seen)
                for (size_t t = 0; t < st->n; t++) row[st->items[t]] = -INFINITY;
            rr_topk(row, ni, kk, c->top + j * kk, c->tops + j * kk);
            size_t q = kk;
            while (q > 0 && c->top[j * kk + q - 1] < 0) q--;
            c->ntop[j] = q;
        }
    }
    if (s) return s;
    int32_t *pop_top = NULL;
    float *pop_sc = NULL;
    if (n_live < n) {
        /* One popularity list serves every empty session (none has items
         * to exclude); it goes in the first empty session's output row. */
        for (size_t j = 0; j < ni; j++) c->pop[j] = (float)m->counts[j];
        for (size_t i = 0; i < n && !pop_top; i++)
            if (states[i]->n == 0) {
                pop_top = items + i * k;
                pop_sc = scores + i * k;
            }
        rr_topk(c->pop, ni, kk, pop_top, pop_sc);
    }
    for (size_t i = 0, j = 0; i < n; i++) {
        int32_t *ti = items + i * k;
        float *ts = scores + i * k;
        if (states[i]->n > 0) {
            size_t q = c->ntop[j];
            memcpy(ti, c->top + j * kk, q * sizeof *ti);
            memcpy(ts, c->tops + j * kk, q * sizeof *ts);
            for (; q < kk; q++) {
                ti[q] = -1;
                ts[q] = -INFINITY;
            }
            j++;
        } else if (ti != pop_top) {
            memcpy(ti, pop_top, kk * sizeof *ti);
            memcpy(ts, pop_sc, kk * sizeof *ts);
        }
        for (size_t t = kk; t < k; t++) {
            ti[t] = -1;
            ts[t] = -INFINITY;
        }
    }
    return RR_OK;
}
