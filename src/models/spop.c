/* spop.c - session popularity (S-POP), the GRU4Rec paper's "S-POP" baseline
 * (Hidasi et al., ICLR 2016; GRU4Rec's baselines.py SessionPop).
 *
 * The items of the current session come first, ranked by how often they
 * occur in it; global popularity breaks ties and ranks everything else:
 *
 *     score(s, j) = count(j in s) + pop_j / (max_pop + 1)
 *
 * The popularity term is < 1, so one more occurrence in the session always
 * outranks any popularity difference.  An empty session scores by
 * popularity alone.  The model has no sections beyond the common part
 * (vocabulary and training counts). */
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "util/util.h"

typedef struct spop_impl {
    float *popf;    /* (n_items) pop_j / (max_pop + 1), in [0, 1) */
} spop_impl;

static void spop_destroy(rr_model *m) {
    spop_impl *im = m->impl;
    if (!im) return;
    free(im->popf);
    free(im);
    m->impl = NULL;
}

/* Builds the popularity fraction from the common training counts. */
static rr_status spop_init(rr_model *m, rr_error *err) {
    spop_impl *im = calloc(1, sizeof *im);
    if (!im) return rr_err(err, RR_ERR_NOMEM, "spop: out of memory");
    m->impl = im;
    im->popf = rr_malloc_n(m->n_items, sizeof *im->popf);
    if (!im->popf) return rr_err(err, RR_ERR_NOMEM, "spop: out of memory for %zu items", m->n_items);
    double mx = 0;
    for (size_t j = 0; j < m->n_items; j++)
        if (m->counts[j] > mx) mx = m->counts[j];
    for (size_t j = 0; j < m->n_items; j++) im->popf[j] = (float)(m->counts[j] / (mx + 1.0));
    return RR_OK;
}

static size_t spop_state_floats(const rr_model *m) {
    (void)m;
    return 0;
}

static rr_status spop_score(const rr_model *m, rr_state *const *states, size_t n, float *scores,
                            rr_error *err) {
    const spop_impl *im = m->impl;
    size_t ni = m->n_items;
    for (size_t b = 0; b < n; b++)
        for (size_t t = 0; t < states[b]->n; t++) {
            int32_t it = states[b]->items[t];
            if (it < 0 || (size_t)it >= ni)
                return rr_err(err, RR_ERR_RANGE, "spop: session item %d outside 0..%zu", (int)it,
                              ni - 1);
        }
    /* rows are independent and the copies memory-bound: threads split them */
#pragma omp parallel for schedule(static) if (n >= 16)
    for (long b = 0; b < (long)n; b++) {
        float *row = scores + (size_t)b * ni; /* (n_items) */
        memcpy(row, im->popf, ni * sizeof *row);
        const rr_state *s = states[b];
        for (size_t t = 0; t < s->n; t++) row[s->items[t]] += 1.0f;
    }
    return RR_OK;
}

static rr_status spop_save(const rr_model *m, rr_fwriter *w, rr_error *err) {
    (void)m;
    (void)w;
    (void)err;
    return RR_OK; /* everything lives in the common part */
}

static rr_status spop_load(rr_model *m, const rr_freader *r, rr_error *err) {
    (void)r;
    return spop_init(m, err);
}

const rr_model_ops rr_spop_ops = {
    .kind = "spop",
    .state_floats = spop_state_floats,
    .state_init = NULL,
    .step = NULL,
    .score = spop_score,
    .save = spop_save,
    .load = spop_load,
    .destroy = spop_destroy,
};

rr_status rr_spop_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                      const rr_train_params *p, rr_error *err) {
    (void)valid;
    (void)p;
    *out = NULL;
    if (train->items.n == 0 || train->s.n_events == 0)
        return rr_err(err, RR_ERR_EMPTY, "spop: the training data has no events");
    rr_model *m = NULL;
    rr_status st = rr_model_new_common(&m, &rr_spop_ops, train, err);
    if (st != RR_OK) return st;
    st = spop_init(m, err);
    if (st != RR_OK) {
        rr_model_free(m);
        return st;
    }
    *out = m;
    return RR_OK;
}
