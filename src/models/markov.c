/* markov.c - first-order Markov chain: the next item is predicted from the
 * session's last item by counting item -> next-item transitions in the
 * training sessions (the "MC" / simple association-rule baseline of
 * Ludewig & Jannach 2018).
 *
 *     score(s, j) = trans(last(s), j) + pop_j / (max_pop + 1)
 *
 * trans counts consecutive pairs (a, b) within training sessions, repeats
 * (a, a) included.  Counts are integers and the popularity term is < 1, so
 * transitions always dominate and popularity only orders ties.  An empty
 * session, or a last item with no successor, scores by popularity.
 *
 * Sections: "markov.off" (i64, n_items + 1) and "markov.succ" (i32),
 * "markov.count" (i32): a CSR of successor indices (ascending) and counts. */
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "util/util.h"

typedef struct markov_impl {
    int64_t *off;   /* (n_items + 1) row starts into succ/cnt */
    int32_t *succ;  /* (n_edges) successor item, ascending within a row */
    int32_t *cnt;   /* (n_edges) transition count, >= 1 */
    size_t n_edges;
    float *popf;    /* (n_items) pop_j / (max_pop + 1) */
} markov_impl;

static void markov_destroy(rr_model *m) {
    markov_impl *im = m->impl;
    if (!im) return;
    free(im->off);
    free(im->succ);
    free(im->cnt);
    free(im->popf);
    free(im);
    m->impl = NULL;
}

static rr_status markov_alloc(rr_model *m, size_t n_edges, rr_error *err) {
    markov_impl *im = calloc(1, sizeof *im);
    if (!im) return rr_err(err, RR_ERR_NOMEM, "markov: out of memory");
    m->impl = im;
    size_t n1;
    if (!rr_add_size(m->n_items, 1, &n1)) return rr_err(err, RR_ERR_NOMEM, "markov: too many items");
    im->off = rr_calloc_n(n1, sizeof *im->off);
    im->succ = rr_malloc_n(n_edges ? n_edges : 1, sizeof *im->succ);
    im->cnt = rr_malloc_n(n_edges ? n_edges : 1, sizeof *im->cnt);
    im->popf = rr_malloc_n(m->n_items, sizeof *im->popf);
    im->n_edges = n_edges;
    if (!im->off || !im->succ || !im->cnt || !im->popf)
        return rr_err(err, RR_ERR_NOMEM, "markov: out of memory for %zu transitions", n_edges);
    double mx = 0;
    for (size_t j = 0; j < m->n_items; j++)
        if (m->counts[j] > mx) mx = m->counts[j];
    for (size_t j = 0; j < m->n_items; j++) im->popf[j] = (float)(m->counts[j] / (mx + 1.0));
    return RR_OK;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Counts transitions: every consecutive pair becomes the key a * n + b, the
 * keys are sorted, and runs of equal keys become (row a, successor b, run
 * length). */
static rr_status markov_build(rr_model *m, const rr_dataset *train, rr_error *err) {
    const rr_sessions *s = &train->s;
    uint64_t n = (uint64_t)m->n_items;
    size_t n_pairs = 0;
    for (size_t i = 0; i < s->n_sessions; i++) {
        size_t len = rr_session_len(s, i);
        if (len > 1) n_pairs += len - 1;
    }
    uint64_t *keys = rr_malloc_n(n_pairs ? n_pairs : 1, sizeof *keys); /* (n_pairs) */
    if (!keys) return rr_err(err, RR_ERR_NOMEM, "markov: out of memory for %zu pairs", n_pairs);
    size_t k = 0;
    for (size_t i = 0; i < s->n_sessions; i++)
        for (int64_t e = s->offsets[i] + 1; e < s->offsets[i + 1]; e++)
            keys[k++] = (uint64_t)s->items[e - 1] * n + (uint64_t)s->items[e];
    qsort(keys, n_pairs, sizeof *keys, cmp_u64);
    size_t n_edges = 0;
    for (size_t t = 0; t < n_pairs; t++)
        if (t == 0 || keys[t] != keys[t - 1]) n_edges++;
    rr_status st = markov_alloc(m, n_edges, err);
    if (st != RR_OK) {
        free(keys);
        return st;
    }
    markov_impl *im = m->impl;
    size_t e = 0;
    for (size_t t = 0; t < n_pairs;) {
        size_t u = t;
        while (u < n_pairs && keys[u] == keys[t]) u++;
        if (u - t > INT32_MAX) {
            free(keys);
            return rr_err(err, RR_ERR_RANGE, "markov: a transition occurs more than %d times",
                          INT32_MAX);
        }
        uint64_t a = keys[t] / n;
        im->succ[e] = (int32_t)(keys[t] % n);
        im->cnt[e] = (int32_t)(u - t);
        im->off[a + 1]++;
        e++;
        t = u;
    }
    for (size_t j = 0; j < m->n_items; j++) im->off[j + 1] += im->off[j];
    free(keys);
    return RR_OK;
}

static size_t markov_state_floats(const rr_model *m) {
    (void)m;
    return 0;
}

static rr_status markov_score(const rr_model *m, rr_state *const *states, size_t n, float *scores,
                              rr_error *err) {
    const markov_impl *im = m->impl;
    size_t ni = m->n_items;
    for (size_t b = 0; b < n; b++) {
        const rr_state *s = states[b];
        if (s->n && (s->items[s->n - 1] < 0 || (size_t)s->items[s->n - 1] >= ni))
            return rr_err(err, RR_ERR_RANGE, "markov: session item %d outside 0..%zu",
                          (int)s->items[s->n - 1], ni - 1);
    }
#pragma omp parallel for schedule(static) if (n >= 16)
    for (long b = 0; b < (long)n; b++) {
        float *row = scores + (size_t)b * ni; /* (n_items) */
        memcpy(row, im->popf, ni * sizeof *row);
        const rr_state *s = states[b];
        if (s->n == 0) continue;
        int32_t last = s->items[s->n - 1];
        for (int64_t e = im->off[last]; e < im->off[last + 1]; e++)
            row[im->succ[e]] += (float)im->cnt[e];
    }
    return RR_OK;
}

static rr_status markov_save(const rr_model *m, rr_fwriter *w, rr_error *err) {
    const markov_impl *im = m->impl;
    rr_status st;
    if ((st = rr_fw_kv_int(w, "markov.edges", (int64_t)im->n_edges, err)) != RR_OK) return st;
    if ((st = rr_fw_section(w, "markov.off", RR_DT_I64, im->off, (m->n_items + 1) * sizeof *im->off,
                            err)) != RR_OK)
        return st;
    if ((st = rr_fw_section(w, "markov.succ", RR_DT_I32, im->succ, im->n_edges * sizeof *im->succ,
                            err)) != RR_OK)
        return st;
    return rr_fw_section(w, "markov.count", RR_DT_I32, im->cnt, im->n_edges * sizeof *im->cnt, err);
}

static rr_status markov_load(rr_model *m, const rr_freader *r, rr_error *err) {
    const void *off, *succ, *cnt;
    size_t bytes;
    rr_status st;
    if ((st = rr_fr_array(r, "markov.off", RR_DT_I64, m->n_items + 1, &off, err)) != RR_OK) return st;
    if ((st = rr_fr_section(r, "markov.succ", RR_DT_I32, &succ, &bytes, err)) != RR_OK) return st;
    size_t n_edges = bytes / sizeof(int32_t);
    if ((st = rr_fr_array(r, "markov.count", RR_DT_I32, n_edges, &cnt, err)) != RR_OK) return st;
    const int64_t *o = off;
    const int32_t *sc = succ, *cc = cnt;
    /* Validate the CSR before trusting it: rows start at 0, never shrink,
     * end at n_edges; successors ascend inside 0..n_items-1; counts >= 1. */
    if (o[0] != 0 || (uint64_t)o[m->n_items] != (uint64_t)n_edges)
        return rr_err(err, RR_ERR_FORMAT, "markov: transition offsets do not span %zu entries",
                      n_edges);
    for (size_t j = 0; j < m->n_items; j++) {
        if (o[j + 1] < o[j])
            return rr_err(err, RR_ERR_FORMAT, "markov: transition offsets decrease at item %zu", j);
        for (int64_t e = o[j]; e < o[j + 1]; e++) {
            if (sc[e] < 0 || (size_t)sc[e] >= m->n_items || (e > o[j] && sc[e] <= sc[e - 1]))
                return rr_err(err, RR_ERR_FORMAT, "markov: bad successor at entry %lld", (long long)e);
            if (cc[e] < 1)
                return rr_err(err, RR_ERR_FORMAT, "markov: bad count at entry %lld", (long long)e);
        }
    }
    if ((st = markov_alloc(m, n_edges, err)) != RR_OK) return st;
    markov_impl *im = m->impl;
    memcpy(im->off, o, (m->n_items + 1) * sizeof *im->off);
    if (n_edges) {
        memcpy(im->succ, sc, n_edges * sizeof *im->succ);
        memcpy(im->cnt, cc, n_edges * sizeof *im->cnt);
    }
    return RR_OK;
}

const rr_model_ops rr_markov_ops = {
    .kind = "markov",
    .state_floats = markov_state_floats,
    .state_init = NULL,
    .step = NULL,
    .score = markov_score,
    .save = markov_save,
    .load = markov_load,
    .destroy = markov_destroy,
};

rr_status rr_markov_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                        const rr_train_params *p, rr_error *err) {
    (void)valid;
    (void)p;
    *out = NULL;
    if (train->items.n == 0 || train->s.n_events == 0)
        return rr_err(err, RR_ERR_EMPTY, "markov: the training data has no events");
    rr_model *m = NULL;
    rr_status st = rr_model_new_common(&m, &rr_markov_ops, train, err);
    if (st != RR_OK) return st;
    if ((st = markov_build(m, train, err)) != RR_OK) {
        rr_model_free(m);
        return st;
    }
    *out = m;
    return RR_OK;
}
