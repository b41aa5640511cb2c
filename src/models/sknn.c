/* sknn.c - session-based kNN: SKNN and its sequence-aware variant V-SKNN,
 * after Ludewig & Jannach, "Evaluation of session-based recommendation
 * algorithms" (UMUAI 2018), and the session-rec framework
 * (rn5l/session-rec, algorithms/knn/sknn.py and vsknn.py).
 *
 * Training keeps, for every training session, its set of distinct items,
 * with the sessions numbered by end time (rank 0 = the session whose last
 * event is oldest; ties by file order), and an inverted index item ->
 * sessions holding it, most recent first.
 *
 * Scoring a session s with items x_1..x_L (A = their distinct set):
 *  1. candidates: the `sample` (500) most recent training sessions that
 *     share at least one item with A (a k-way merge of the index lists of
 *     A's items, which are sorted by recency);
 *  2. similarity of a candidate n with item set B:
 *       sknn:  sim = |A & B| / sqrt(|A| |B|)            (binary cosine)
 *       vsknn: sim = sum_{i in A & B} w_i / |A|,  w_i = p_i / L
 *     where p_i is the (1-based) position of the last occurrence of i in s,
 *     so the most recent item weighs 1 and weights fall linearly towards
 *     the start (session-rec's `weighting='div'`);
 *  3. neighbours: the k (100) candidates of largest sim (ties: more recent);
 *  4. score(j) = sum over neighbours n containing j of
 *       sknn:  sim(n)
 *       vsknn: sim(n) / d(n),  d(n) = L + 1 - max_{i in A & B} p_i
 *     (session-rec's `weighting_score='div'`: a neighbour matched only
 *     through older items of s counts less).
 * Items no neighbour holds fall back to popularity scaled below the
 * smallest neighbour score; an empty session scores by popularity.
 *
 * Note: session-rec's cosine() computes li / sqrt(la) * sqrt(lb) (operator
 * precedence); here it is the cosine li / sqrt(la * lb).
 *
 * Sections: "sknn.off" (i64, n_sessions + 1) and "sknn.items" (i32): each
 * training session's distinct items, ascending, sessions in rank order.
 * The inverted index is rebuilt on load. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "util/util.h"

typedef struct sknn_impl {
    int weighted;       /* 0 sknn, 1 vsknn */
    size_t k, sample;
    size_t n_sess;
    int64_t *soff;      /* (n_sess + 1) starts into sitems */
    int32_t *sitems;    /* (n_entries) distinct items per session, ascending */
    size_t n_entries;
    int64_t *ioff;      /* (n_items + 1) starts into isess */
    int32_t *isess;     /* (n_entries) sessions holding each item, rank descending */
    float *popf;        /* (n_items) pop_j / (max_pop + 1) */
} sknn_impl;

static void sknn_destroy(rr_model *m) {
    sknn_impl *im = m->impl;
    if (!im) return;
    free(im->soff);
    free(im->sitems);
    free(im->ioff);
    free(im->isess);
    free(im->popf);
    free(im);
    m->impl = NULL;
}

/* Builds the item -> sessions index and the popularity fraction from
 * soff/sitems.  Walking sessions from the newest down makes every list
 * come out most recent first. */
static rr_status sknn_index(rr_model *m, rr_error *err) {
    sknn_impl *im = m->impl;
    size_t ni = m->n_items, n1;
    if (!rr_add_size(ni, 1, &n1)) return rr_err(err, RR_ERR_NOMEM, "sknn: too many items");
    im->ioff = rr_calloc_n(n1, sizeof *im->ioff);
    im->isess = rr_malloc_n(im->n_entries ? im->n_entries : 1, sizeof *im->isess);
    im->popf = rr_malloc_n(ni, sizeof *im->popf);
    int64_t *fill = rr_malloc_n(ni ? ni : 1, sizeof *fill);
    if (!im->ioff || !im->isess || !im->popf || !fill) {
        free(fill);
        return rr_err(err, RR_ERR_NOMEM, "sknn: out of memory for the session index");
    }
    for (size_t e = 0; e < im->n_entries; e++) im->ioff[im->sitems[e] + 1]++;
    for (size_t j = 0; j < ni; j++) im->ioff[j + 1] += im->ioff[j];
    memcpy(fill, im->ioff, ni * sizeof *fill);
    for (size_t r = im->n_sess; r-- > 0;)
        for (int64_t e = im->soff[r]; e < im->soff[r + 1]; e++)
            im->isess[fill[im->sitems[e]]++] = (int32_t)r;
    free(fill);
    double mx = 0;
    for (size_t j = 0; j < ni; j++)
        if (m->counts[j] > mx) mx = m->counts[j];
    for (size_t j = 0; j < ni; j++) im->popf[j] = (float)(m->counts[j] / (mx + 1.0));
    return RR_OK;
}

typedef struct sess_end {
    double t;
    size_t i;
} sess_end;

static int cmp_end(const void *a, const void *b) {
    const sess_end *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Orders the training sessions by end time and stores their item sets. */
static rr_status sknn_build(rr_model *m, const rr_dataset *train, rr_error *err) {
    sknn_impl *im = m->impl;
    const rr_sessions *s = &train->s;
    size_t ns = 0;
    for (size_t i = 0; i < s->n_sessions; i++)
        if (rr_session_len(s, i) > 0) ns++;
    if (ns > INT32_MAX) return rr_err(err, RR_ERR_RANGE, "sknn: more than %d sessions", INT32_MAX);
    size_t n1;
    if (!rr_add_size(ns, 1, &n1)) return rr_err(err, RR_ERR_NOMEM, "sknn: too many sessions");
    sess_end *ord = rr_malloc_n(ns ? ns : 1, sizeof *ord); /* (ns) */
    im->soff = rr_calloc_n(n1, sizeof *im->soff);
    im->sitems = rr_malloc_n(s->n_events ? s->n_events : 1, sizeof *im->sitems);
    if (!ord || !im->soff || !im->sitems) {
        free(ord);
        return rr_err(err, RR_ERR_NOMEM, "sknn: out of memory for %zu sessions", ns);
    }
    size_t q = 0;
    for (size_t i = 0; i < s->n_sessions; i++) {
        if (rr_session_len(s, i) == 0) continue;
        double t = s->times[s->offsets[i]];
        for (int64_t e = s->offsets[i]; e < s->offsets[i + 1]; e++)
            if (s->times[e] > t) t = s->times[e];
        ord[q].t = t;
        ord[q].i = i;
        q++;
    }
    qsort(ord, ns, sizeof *ord, cmp_end);
    size_t n_entries = 0;
    for (size_t r = 0; r < ns; r++) {
        size_t i = ord[r].i, len = rr_session_len(s, i);
        int32_t *dst = im->sitems + n_entries;
        memcpy(dst, s->items + s->offsets[i], len * sizeof *dst);
        qsort(dst, len, sizeof *dst, cmp_i32);
        size_t u = 0;
        for (size_t t = 0; t < len; t++)
            if (u == 0 || dst[t] != dst[u - 1]) dst[u++] = dst[t];
        n_entries += u;
        im->soff[r + 1] = (int64_t)n_entries;
    }
    free(ord);
    im->n_sess = ns;
    im->n_entries = n_entries;
    return sknn_index(m, err);
}

static size_t sknn_state_floats(const rr_model *m) {
    (void)m;
    return 0;
}

/* One index list in the k-way merge: val = isess[pos], lists descend. */
typedef struct heap_ent {
    int32_t val;
    int64_t pos, end;
} heap_ent;

static void heap_down(heap_ent *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, b = i;
        if (l < n && h[l].val > h[b].val) b = l;
        if (r < n && h[r].val > h[b].val) b = r;
        if (b == i) return;
        heap_ent t = h[i];
        h[i] = h[b];
        h[b] = t;
        i = b;
    }
}

typedef struct nbr {
    double sim;     /* similarity to the current session */
    double weight;  /* what it adds to each of its items' scores */
    int32_t rank;   /* training session (recency rank) */
} nbr;

/* Largest similarity first; ties: more recent session first. */
static int cmp_nbr(const void *a, const void *b) {
    const nbr *x = a, *y = b;
    if (x->sim != y->sim) return x->sim > y->sim ? -1 : 1;
    return (x->rank < y->rank) - (x->rank > y->rank);
}

typedef struct sknn_scratch {
    int32_t *lastpos;   /* (n_items) 1-based last position in the session, 0: absent */
    double *acc;        /* (n_items) score accumulator, 0 when untouched */
    int32_t *touched;   /* (n_items) items with acc != 0 */
    int32_t *dist;      /* (cap) distinct items of the session */
    heap_ent *heap;     /* (cap) */
    nbr *cand;          /* (sample) */
} sknn_scratch;

/* Scores one session into row (n_items); sc's per-item arrays are zero on
 * entry and on return. */
static void sknn_score_one(const rr_model *m, const rr_state *s, sknn_scratch *sc, float *row) {
    const sknn_impl *im = m->impl;
    size_t ni = m->n_items, L = s->n;
    size_t nd = 0;
    for (size_t t = 0; t < L; t++) {
        int32_t it = s->items[t];
        if (sc->lastpos[it] == 0) sc->dist[nd++] = it;
        sc->lastpos[it] = (int32_t)(t + 1);
    }
    /* 1. the `sample` most recent sessions sharing an item: merge the
     * recency-sorted lists; equal ranks pop consecutively, so a session
     * seen twice is skipped by comparing with the last one taken. */
    size_t hn = 0;
    for (size_t d = 0; d < nd; d++) {
        int32_t it = sc->dist[d];
        if (im->ioff[it] < im->ioff[it + 1]) {
            sc->heap[hn].pos = im->ioff[it];
            sc->heap[hn].end = im->ioff[it + 1];
            sc->heap[hn].val = im->isess[im->ioff[it]];
            hn++;
        }
    }
    for (size_t i = hn / 2; i-- > 0;) heap_down(sc->heap, hn, i);
    size_t nc = 0;
    int32_t prev = -1;
    while (hn > 0 && nc < im->sample) {
        int32_t r = sc->heap[0].val;
        if (r != prev) {
            sc->cand[nc++].rank = r;
            prev = r;
        }
        heap_ent *h = &sc->heap[0];
        if (++h->pos < h->end) h->val = im->isess[h->pos];
        else sc->heap[0] = sc->heap[--hn];
        heap_down(sc->heap, hn, 0);
    }
    /* 2. similarities */
    double na = (double)nd;
    for (size_t c = 0; c < nc; c++) {
        int32_t r = sc->cand[c].rank;
        size_t inter = 0, psum = 0; /* psum: sum of p_i, exact */
        int32_t maxpos = 0;
        for (int64_t e = im->soff[r]; e < im->soff[r + 1]; e++) {
            int32_t p = sc->lastpos[im->sitems[e]];
            if (p == 0) continue;
            inter++;
            psum += (size_t)p;
            if (p > maxpos) maxpos = p;
        }
        double nb = (double)(im->soff[r + 1] - im->soff[r]);
        if (im->weighted) {
            /* sum_i p_i / L / |A|, from the integer sum so ties are exact */
            sc->cand[c].sim = (double)psum / ((double)L * na);
            sc->cand[c].weight = sc->cand[c].sim / (double)(L + 1 - (size_t)maxpos);
        } else {
            sc->cand[c].sim = (double)inter / sqrt(na * nb);
            sc->cand[c].weight = sc->cand[c].sim;
        }
    }
    /* 3. the k nearest */
    qsort(sc->cand, nc, sizeof *sc->cand, cmp_nbr);
    size_t kk = nc < im->k ? nc : im->k;
    /* 4. scores */
    size_t nt = 0;
    for (size_t c = 0; c < kk; c++) {
        int32_t r = sc->cand[c].rank;
        double w = sc->cand[c].weight;
        for (int64_t e = im->soff[r]; e < im->soff[r + 1]; e++) {
            int32_t j = im->sitems[e];
            if (sc->acc[j] == 0) sc->touched[nt++] = j;
            sc->acc[j] += w;
        }
    }
    double mn = INFINITY;
    for (size_t t = 0; t < nt; t++)
        if (sc->acc[sc->touched[t]] < mn) mn = sc->acc[sc->touched[t]];
    double fw = nt ? 0.5 * mn : 1.0; /* popularity below every neighbour score */
    for (size_t j = 0; j < ni; j++) row[j] = (float)(fw * (double)im->popf[j]);
    for (size_t t = 0; t < nt; t++) {
        int32_t j = sc->touched[t];
        row[j] = (float)sc->acc[j];
        sc->acc[j] = 0;
    }
    for (size_t d = 0; d < nd; d++) sc->lastpos[sc->dist[d]] = 0;
}

static rr_status sknn_score(const rr_model *m, rr_state *const *states, size_t n, float *scores,
                            rr_error *err) {
    const sknn_impl *im = m->impl;
    size_t ni = m->n_items, cap = 1;
    for (size_t b = 0; b < n; b++) {
        const rr_state *s = states[b];
        for (size_t t = 0; t < s->n; t++)
            if (s->items[t] < 0 || (size_t)s->items[t] >= ni)
                return rr_err(err, RR_ERR_RANGE, "%s: session item %d outside 0..%zu",
                              m->ops->kind, (int)s->items[t], ni - 1);
        if (s->n > cap) cap = s->n;
    }
    if (cap > ni) cap = ni;
    size_t nc = im->sample < im->n_sess ? im->sample : im->n_sess;
    int failed = 0;
    /* rows are independent: threads split them, each with its own scratch */
#pragma omp parallel if (n >= 16) reduction(| : failed)
    {
        sknn_scratch sc;
        sc.lastpos = rr_calloc_n(ni, sizeof *sc.lastpos);
        sc.acc = rr_calloc_n(ni, sizeof *sc.acc);
        sc.touched = rr_malloc_n(ni, sizeof *sc.touched);
        sc.dist = rr_malloc_n(cap, sizeof *sc.dist);
        sc.heap = rr_malloc_n(cap, sizeof *sc.heap);
        sc.cand = rr_malloc_n(nc ? nc : 1, sizeof *sc.cand);
        int ok = sc.lastpos && sc.acc && sc.touched && sc.dist && sc.heap && sc.cand;
        if (!ok) failed = 1;
#pragma omp for schedule(dynamic, 8)
        for (long b = 0; b < (long)n; b++)
            if (ok) sknn_score_one(m, states[b], &sc, scores + (size_t)b * ni);
        free(sc.lastpos);
        free(sc.acc);
        free(sc.touched);
        free(sc.dist);
        free(sc.heap);
        free(sc.cand);
    }
    if (failed) return rr_err(err, RR_ERR_NOMEM, "%s: out of memory for scoring scratch", m->ops->kind);
    return RR_OK;
}

static rr_status sknn_save(const rr_model *m, rr_fwriter *w, rr_error *err) {
    const sknn_impl *im = m->impl;
    rr_status st;
    if ((st = rr_fw_kv_int(w, "sknn.k", (int64_t)im->k, err)) != RR_OK) return st;
    if ((st = rr_fw_kv_int(w, "sknn.sample", (int64_t)im->sample, err)) != RR_OK) return st;
    if ((st = rr_fw_section(w, "sknn.off", RR_DT_I64, im->soff, (im->n_sess + 1) * sizeof *im->soff,
                            err)) != RR_OK)
        return st;
    return rr_fw_section(w, "sknn.items", RR_DT_I32, im->sitems, im->n_entries * sizeof *im->sitems,
                         err);
}

static rr_status sknn_load_common(rr_model *m, const rr_freader *r, int weighted, rr_error *err) {
    sknn_impl *im = calloc(1, sizeof *im);
    if (!im) return rr_err(err, RR_ERR_NOMEM, "sknn: out of memory");
    m->impl = im;
    im->weighted = weighted;
    int64_t k, sample;
    rr_status st;
    if ((st = rr_fr_kv_int(r, "sknn.k", &k, err)) != RR_OK) return st;
    if ((st = rr_fr_kv_int(r, "sknn.sample", &sample, err)) != RR_OK) return st;
    if (k < 1 || k > INT32_MAX || sample < 1 || sample > INT32_MAX)
        return rr_err(err, RR_ERR_FORMAT, "%s: bad k %lld or sample %lld", m->ops->kind,
                      (long long)k, (long long)sample);
    im->k = (size_t)k;
    im->sample = (size_t)sample;
    const void *offv, *itv;
    size_t ob, ib;
    if ((st = rr_fr_section(r, "sknn.off", RR_DT_I64, &offv, &ob, err)) != RR_OK) return st;
    if ((st = rr_fr_section(r, "sknn.items", RR_DT_I32, &itv, &ib, err)) != RR_OK) return st;
    if (ob < sizeof(int64_t) || ob / sizeof(int64_t) - 1 > INT32_MAX)
        return rr_err(err, RR_ERR_FORMAT, "%s: bad session table", m->ops->kind);
    size_t ns = ob / sizeof(int64_t) - 1, n_entries = ib / sizeof(int32_t);
    const int64_t *o = offv;
    const int32_t *it = itv;
    /* Validate: sessions tile 0..n_entries, none empty, items strictly
     * ascending within a session and inside 0..n_items-1. */
    if (o[0] != 0 || (uint64_t)o[ns] != (uint64_t)n_entries)
        return rr_err(err, RR_ERR_FORMAT, "%s: session offsets do not span %zu entries",
                      m->ops->kind, n_entries);
    for (size_t q = 0; q < ns; q++) {
        if (o[q + 1] <= o[q])
            return rr_err(err, RR_ERR_FORMAT, "%s: session %zu is empty or offsets decrease",
                          m->ops->kind, q);
        for (int64_t e = o[q]; e < o[q + 1]; e++)
            if (it[e] < 0 || (size_t)it[e] >= m->n_items || (e > o[q] && it[e] <= it[e - 1]))
                return rr_err(err, RR_ERR_FORMAT, "%s: bad item at entry %lld", m->ops->kind,
                              (long long)e);
    }
    im->soff = rr_malloc_n(ns + 1, sizeof *im->soff);
    im->sitems = rr_malloc_n(n_entries ? n_entries : 1, sizeof *im->sitems);
    if (!im->soff || !im->sitems)
        return rr_err(err, RR_ERR_NOMEM, "%s: out of memory for %zu sessions", m->ops->kind, ns);
    memcpy(im->soff, o, (ns + 1) * sizeof *im->soff);
    if (n_entries) memcpy(im->sitems, it, n_entries * sizeof *im->sitems);
    im->n_sess = ns;
    im->n_entries = n_entries;
    return sknn_index(m, err);
}

static rr_status sknn_load(rr_model *m, const rr_freader *r, rr_error *err) {
    return sknn_load_common(m, r, 0, err);
}

static rr_status vsknn_load(rr_model *m, const rr_freader *r, rr_error *err) {
    return sknn_load_common(m, r, 1, err);
}

const rr_model_ops rr_sknn_ops = {
    .kind = "sknn",
    .state_floats = sknn_state_floats,
    .state_init = NULL,
    .step = NULL,
    .score = sknn_score,
    .save = sknn_save,
    .load = sknn_load,
    .destroy = sknn_destroy,
};

const rr_model_ops rr_vsknn_ops = {
    .kind = "vsknn",
    .state_floats = sknn_state_floats,
    .state_init = NULL,
    .step = NULL,
    .score = sknn_score,
    .save = sknn_save,
    .load = vsknn_load,
    .destroy = sknn_destroy,
};

static rr_status fit_common(rr_model **out, const rr_dataset *train, const rr_train_params *p,
                            const rr_model_ops *ops, int weighted, rr_error *err) {
    *out = NULL;
    if (train->items.n == 0 || train->s.n_events == 0)
        return rr_err(err, RR_ERR_EMPTY, "%s: the training data has no events", ops->kind);
    if (p->knn_k < 1 || p->knn_k > INT32_MAX)
        return rr_err(err, RR_ERR_ARG, "%s: k must be in 1..%d", ops->kind, INT32_MAX);
    if (p->sknn_sample < 1 || p->sknn_sample > INT32_MAX)
        return rr_err(err, RR_ERR_ARG, "%s: sample size must be in 1..%d", ops->kind, INT32_MAX);
    rr_model *m = NULL;
    rr_status st = rr_model_new_common(&m, ops, train, err);
    if (st != RR_OK) return st;
    sknn_impl *im = calloc(1, sizeof *im);
    if (!im) {
        rr_model_free(m);
        return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", ops->kind);
    }
    m->impl = im;
    im->weighted = weighted;
    im->k = p->knn_k;
    im->sample = p->sknn_sample;
    if ((st = sknn_build(m, train, err)) != RR_OK) {
        rr_model_free(m);
        return st;
    }
    *out = m;
    return RR_OK;
}

rr_status rr_sknn_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                      const rr_train_params *p, rr_error *err) {
    (void)valid;
    return fit_common(out, train, p, &rr_sknn_ops, 0, err);
}

rr_status rr_vsknn_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                       const rr_train_params *p, rr_error *err) {
    (void)valid;
    return fit_common(out, train, p, &rr_vsknn_ops, 1, err);
}
