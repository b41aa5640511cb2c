/* iknn.c - item-kNN, the item-to-item baseline of the GRU4Rec paper
 * (Hidasi et al., "Session-based recommendations with recurrent neural
 * networks", ICLR 2016) as in GRU4Rec's baselines.py ItemKNN.
 *
 * Similarity of items i and j (i != j):
 *
 *     sim(i, j) = cooc(i, j) / ((supp_i + lambda)^alpha * (supp_j + lambda)^(1 - alpha))
 *
 * supp_i is the number of training events of i and cooc(i, j) the number
 * of event pairs (e, f) with e of item i and f of item j in the same
 * session, i.e. sum over sessions of count_i(s) * count_j(s) -- the count
 * GRU4Rec's ItemKNN accumulates (for sessions without repeats it is the
 * number of sessions holding both).  lambda (20) discounts rare items,
 * alpha = 0.5 gives a cosine-like, 1.0 an association-rule-confidence
 * normalisation.  Each item keeps its knn_k most similar items (ties by
 * lower index).
 *
 * A session is scored by the similarity of every item to its LAST item.
 * Items outside that list fall back to popularity with a weight below the
 * list's smallest similarity, so they rank after every neighbour:
 *
 *     score(s, j) = sim(last, j)                                 j in list
 *                 = 0.5 * min_list_sim * pop_j / (max_pop + 1)   otherwise
 *
 * An empty session, or a last item with no neighbour, scores by popularity.
 *
 * Sections: "iknn.off" (i64, n_items + 1), "iknn.nb" (i32), "iknn.sim"
 * (f32): each item's neighbour list, most similar first. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "models/model.h"
#include "util/util.h"

typedef struct iknn_impl {
    int64_t *off;   /* (n_items + 1) list starts */
    int32_t *nb;    /* (n_nb) neighbour items, most similar first */
    float *sim;     /* (n_nb) similarities, descending, > 0 */
    size_t n_nb;
    float *popf;    /* (n_items) pop_j / (max_pop + 1) */
    size_t k;
    double lambda, alpha;
} iknn_impl;

static void iknn_destroy(rr_model *m) {
    iknn_impl *im = m->impl;
    if (!im) return;
    free(im->off);
    free(im->nb);
    free(im->sim);
    free(im->popf);
    free(im);
    m->impl = NULL;
}

static rr_status iknn_alloc(rr_model *m, size_t n_nb, rr_error *err) {
    iknn_impl *im = m->impl;
    size_t n1;
    if (!rr_add_size(m->n_items, 1, &n1)) return rr_err(err, RR_ERR_NOMEM, "iknn: too many items");
    im->off = rr_calloc_n(n1, sizeof *im->off);
    im->nb = rr_malloc_n(n_nb ? n_nb : 1, sizeof *im->nb);
    im->sim = rr_malloc_n(n_nb ? n_nb : 1, sizeof *im->sim);
    im->popf = rr_malloc_n(m->n_items, sizeof *im->popf);
    im->n_nb = n_nb;
    if (!im->off || !im->nb || !im->sim || !im->popf)
        return rr_err(err, RR_ERR_NOMEM, "iknn: out of memory for %zu neighbours", n_nb);
    double mx = 0;
    for (size_t j = 0; j < m->n_items; j++)
        if (m->counts[j] > mx) mx = m->counts[j];
    for (size_t j = 0; j < m->n_items; j++) im->popf[j] = (float)(m->counts[j] / (mx + 1.0));
    return RR_OK;
}

typedef struct cand {
    double sim;
    int32_t j;
} cand;

/* Most similar first; equal similarities by lower item index. */
static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->sim != y->sim) return x->sim > y->sim ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

/* Computes every item's top-k list.  Items are independent, so they are
 * split over threads; each thread owns a dense co-occurrence accumulator
 * and the result does not depend on the thread count. */
static rr_status iknn_build(rr_model *m, const rr_dataset *train, int threads, rr_error *err) {
    iknn_impl *im = m->impl;
    const rr_sessions *s = &train->s;
    size_t ni = m->n_items, k = im->k;
    if (k > ni) k = ni;
    rr_status st = RR_OK;

    /* item -> sessions of its events (one entry per event) */
    size_t n1;
    if (!rr_add_size(ni, 1, &n1)) return rr_err(err, RR_ERR_NOMEM, "iknn: too many items");
    int64_t *ioff = rr_calloc_n(n1, sizeof *ioff);                /* (n_items + 1) */
    int32_t *isess = rr_malloc_n(s->n_events ? s->n_events : 1, sizeof *isess); /* (n_events) */
    double *na = rr_malloc_n(ni, sizeof *na);  /* (n_items) (supp + lambda)^alpha */
    double *nb = rr_malloc_n(ni, sizeof *nb);  /* (n_items) (supp + lambda)^(1 - alpha) */
    size_t tmp_n;
    int32_t *tnb = NULL;
    float *tsim = NULL;
    size_t *tlen = rr_calloc_n(ni, sizeof *tlen);
    if (rr_mul_size(ni, k ? k : 1, &tmp_n)) {
        tnb = rr_malloc_n(tmp_n, sizeof *tnb);   /* (n_items, k) */
        tsim = rr_malloc_n(tmp_n, sizeof *tsim); /* (n_items, k) */
    }
    int nt = rr_threads(threads);
    if (nt > 64) nt = 64;
    double *acc = NULL;
    cand *cbuf = NULL;
    int32_t *touched = NULL;
    size_t accn, candn;
    if (rr_mul_size(ni, (size_t)nt, &accn)) {
        acc = rr_calloc_n(accn, sizeof *acc);         /* (threads, n_items) */
        touched = rr_malloc_n(accn, sizeof *touched); /* (threads, n_items) */
    }
    if (rr_mul_size(ni, (size_t)nt, &candn)) cbuf = rr_malloc_n(candn, sizeof *cbuf);
    if (!ioff || !isess || !na || !nb || !tlen || !tnb || !tsim || !acc || !cbuf || !touched) {
        st = rr_err(err, RR_ERR_NOMEM, "iknn: out of memory for %zu items", ni);
        goto done;
    }
    for (size_t e = 0; e < s->n_events; e++) ioff[s->items[e] + 1]++;
    for (size_t j = 0; j < ni; j++) ioff[j + 1] += ioff[j];
    {
        int64_t *fill = rr_malloc_n(ni ? ni : 1, sizeof *fill);
        if (!fill) {
            st = rr_err(err, RR_ERR_NOMEM, "iknn: out of memory");
            goto done;
        }
        memcpy(fill, ioff, ni * sizeof *fill);
        for (size_t i = 0; i < s->n_sessions; i++)
            for (int64_t e = s->offsets[i]; e < s->offsets[i + 1]; e++)
                isess[fill[s->items[e]]++] = (int32_t)i;
        free(fill);
    }
    for (size_t j = 0; j < ni; j++) {
        double base = m->counts[j] + im->lambda;
        na[j] = pow(base, im->alpha);
        nb[j] = pow(base, 1.0 - im->alpha);
    }

#pragma omp parallel for num_threads(nt) schedule(dynamic, 64)
    for (long il = 0; il < (long)ni; il++) {
        size_t i = (size_t)il;
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        double *a = acc + (size_t)tid * ni;
        int32_t *tch = touched + (size_t)tid * ni;
        cand *cb = cbuf + (size_t)tid * ni;
        size_t nt_ = 0;
        for (int64_t q = ioff[i]; q < ioff[i + 1]; q++) {
            size_t ss = (size_t)isess[q];
            for (int64_t e = s->offsets[ss]; e < s->offsets[ss + 1]; e++) {
                int32_t j = s->items[e];
                if ((size_t)j == i) continue;
                if (a[j] == 0) tch[nt_++] = j;
                a[j] += 1.0;
            }
        }
        size_t nc = 0;
        for (size_t t = 0; t < nt_; t++) {
            int32_t j = tch[t];
            double norm = na[i] * nb[j];
            cb[nc].sim = a[j] / (norm > 0 ? norm : 1.0);
            cb[nc].j = j;
            nc++;
            a[j] = 0;
        }
        qsort(cb, nc, sizeof *cb, cmp_cand);
        size_t keep = nc < k ? nc : k;
        for (size_t t = 0; t < keep; t++) {
            tnb[i * k + t] = cb[t].j;
            tsim[i * k + t] = (float)cb[t].sim;
        }
        tlen[i] = keep;
    }

    size_t total = 0;
    for (size_t i = 0; i < ni; i++) total += tlen[i];
    if ((st = iknn_alloc(m, total, err)) != RR_OK) goto done;
    for (size_t i = 0; i < ni; i++) {
        int64_t o = im->off[i];
        memcpy(im->nb + o, tnb + i * k, tlen[i] * sizeof *tnb);
        memcpy(im->sim + o, tsim + i * k, tlen[i] * sizeof *tsim);
        im->off[i + 1] = o + (int64_t)tlen[i];
    }
done:
    free(ioff);
    free(isess);
    free(na);
    free(nb);
    free(tlen);
    free(tnb);
    free(tsim);
    free(acc);
    free(cbuf);
    free(touched);
    return st;
}

static size_t iknn_state_floats(const rr_model *m) {
    (void)m;
    return 0;
}

static rr_status iknn_score(const rr_model *m, rr_state *const *states, size_t n, float *scores,
                            rr_error *err) {
    const iknn_impl *im = m->impl;
    size_t ni = m->n_items;
    for (size_t b = 0; b < n; b++) {
        const rr_state *s = states[b];
        if (s->n && (s->items[s->n - 1] < 0 || (size_t)s->items[s->n - 1] >= ni))
            return rr_err(err, RR_ERR_RANGE, "iknn: session item %d outside 0..%zu",
                          (int)s->items[s->n - 1], ni - 1);
    }
#pragma omp parallel for schedule(static) if (n >= 16)
    for (long b = 0; b < (long)n; b++) {
        float *row = scores + (size_t)b * ni; /* (n_items) */
        const rr_state *s = states[b];
        if (s->n == 0) {
            memcpy(row, im->popf, ni * sizeof *row);
            continue;
        }
        int32_t last = s->items[s->n - 1];
        int64_t o0 = im->off[last], o1 = im->off[last + 1];
        /* the list is sorted, so its last entry is the smallest similarity */
        float w = o1 > o0 ? 0.5f * im->sim[o1 - 1] : 1.0f;
        for (size_t j = 0; j < ni; j++) row[j] = w * im->popf[j];
        for (int64_t e = o0; e < o1; e++) row[im->nb[e]] = im->sim[e];
    }
    return RR_OK;
}

static rr_status iknn_save(const rr_model *m, rr_fwriter *w, rr_error *err) {
    const iknn_impl *im = m->impl;
    rr_status st;
    if ((st = rr_fw_kv_int(w, "iknn.k", (int64_t)im->k, err)) != RR_OK) return st;
    if ((st = rr_fw_kv_double(w, "iknn.lambda", im->lambda, err)) != RR_OK) return st;
    if ((st = rr_fw_kv_double(w, "iknn.alpha", im->alpha, err)) != RR_OK) return st;
    if ((st = rr_fw_section(w, "iknn.off", RR_DT_I64, im->off, (m->n_items + 1) * sizeof *im->off,
                            err)) != RR_OK)
        return st;
    if ((st = rr_fw_section(w, "iknn.nb", RR_DT_I32, im->nb, im->n_nb * sizeof *im->nb, err)) !=
        RR_OK)
        return st;
    return rr_fw_section(w, "iknn.sim", RR_DT_F32, im->sim, im->n_nb * sizeof *im->sim, err);
}

static rr_status iknn_load(rr_model *m, const rr_freader *r, rr_error *err) {
    iknn_impl *im = calloc(1, sizeof *im);
    if (!im) return rr_err(err, RR_ERR_NOMEM, "iknn: out of memory");
    m->impl = im;
    int64_t k;
    rr_status st;
    if ((st = rr_fr_kv_int(r, "iknn.k", &k, err)) != RR_OK) return st;
    if ((st = rr_fr_kv_double(r, "iknn.lambda", &im->lambda, err)) != RR_OK) return st;
    if ((st = rr_fr_kv_double(r, "iknn.alpha", &im->alpha, err)) != RR_OK) return st;
    if (k < 1 || k > INT32_MAX) return rr_err(err, RR_ERR_FORMAT, "iknn: bad neighbour count %lld", (long long)k);
    im->k = (size_t)k;
    const void *off, *nbv, *simv;
    size_t bytes;
    if ((st = rr_fr_array(r, "iknn.off", RR_DT_I64, m->n_items + 1, &off, err)) != RR_OK) return st;
    if ((st = rr_fr_section(r, "iknn.nb", RR_DT_I32, &nbv, &bytes, err)) != RR_OK) return st;
    size_t n_nb = bytes / sizeof(int32_t);
    if ((st = rr_fr_array(r, "iknn.sim", RR_DT_F32, n_nb, &simv, err)) != RR_OK) return st;
    const int64_t *o = off;
    const int32_t *nb = nbv;
    const float *sim = simv;
    /* Validate: lists tile 0..n_nb, at most k long, neighbours in range and
     * not the item itself, similarities finite, positive and descending. */
    if (o[0] != 0 || (uint64_t)o[m->n_items] != (uint64_t)n_nb)
        return rr_err(err, RR_ERR_FORMAT, "iknn: neighbour offsets do not span %zu entries", n_nb);
    for (size_t i = 0; i < m->n_items; i++) {
        if (o[i + 1] < o[i] || (uint64_t)(o[i + 1] - o[i]) > (uint64_t)im->k)
            return rr_err(err, RR_ERR_FORMAT, "iknn: bad neighbour list length at item %zu", i);
        for (int64_t e = o[i]; e < o[i + 1]; e++) {
            if (nb[e] < 0 || (size_t)nb[e] >= m->n_items || (size_t)nb[e] == i)
                return rr_err(err, RR_ERR_FORMAT, "iknn: bad neighbour at entry %lld", (long long)e);
            if (!(sim[e] > 0) || !isfinite(sim[e]) || (e > o[i] && sim[e] > sim[e - 1]))
                return rr_err(err, RR_ERR_FORMAT, "iknn: bad similarity at entry %lld", (long long)e);
        }
    }
    if ((st = iknn_alloc(m, n_nb, err)) != RR_OK) return st;
    memcpy(im->off, o, (m->n_items + 1) * sizeof *im->off);
    if (n_nb) {
        memcpy(im->nb, nb, n_nb * sizeof *im->nb);
        memcpy(im->sim, sim, n_nb * sizeof *im->sim);
    }
    return RR_OK;
}

const rr_model_ops rr_iknn_ops = {
    .kind = "iknn",
    .state_floats = iknn_state_floats,
    .state_init = NULL,
    .step = NULL,
    .score = iknn_score,
    .save = iknn_save,
    .load = iknn_load,
    .destroy = iknn_destroy,
};

rr_status rr_iknn_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                      const rr_train_params *p, rr_error *err) {
    (void)valid;
    *out = NULL;
    if (train->items.n == 0 || train->s.n_events == 0)
        return rr_err(err, RR_ERR_EMPTY, "iknn: the training data has no events");
    if (p->knn_k < 1 || p->knn_k > INT32_MAX)
        return rr_err(err, RR_ERR_ARG, "iknn: k must be in 1..%d", INT32_MAX);
    if (!(p->iknn_lambda >= 0) || !isfinite(p->iknn_lambda))
        return rr_err(err, RR_ERR_ARG, "iknn: lambda must be >= 0");
    if (!(p->iknn_alpha >= 0 && p->iknn_alpha <= 1))
        return rr_err(err, RR_ERR_ARG, "iknn: alpha must be in [0, 1]");
    rr_model *m = NULL;
    rr_status st = rr_model_new_common(&m, &rr_iknn_ops, train, err);
    if (st != RR_OK) return st;
    iknn_impl *im = calloc(1, sizeof *im);
    if (!im) {
        rr_model_free(m);
        return rr_err(err, RR_ERR_NOMEM, "iknn: out of memory");
    }
    m->impl = im;
    im->k = p->knn_k;
    im->lambda = p->iknn_lambda;
    im->alpha = p->iknn_alpha;
    if ((st = iknn_build(m, train, p->threads, err)) != RR_OK) {
        rr_model_free(m);
        return st;
    }
    *out = m;
    return RR_OK;
}
