/* pop.c - the popularity baseline: every session gets the same scores, the
 * items' training event counts.  No sections beyond the common ones: the
 * counts every model keeps are the whole model. */
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "util/util.h"

typedef struct pop_impl {
    float *score; /* (n_items) training counts as floats */
} pop_impl;

static rr_status pop_build(rr_model *m, rr_error *err) {
    pop_impl *p = calloc(1, sizeof *p);
    if (p) p->score = rr_malloc_n(m->n_items, sizeof *p->score);
    if (!p || !p->score) {
        free(p);
        return rr_err(err, RR_ERR_NOMEM, "pop: out of memory");
    }
    for (size_t i = 0; i < m->n_items; i++) p->score[i] = (float)m->counts[i];
    m->impl = p;
    return RR_OK;
}

static size_t pop_state_floats(const rr_model *m) {
    (void)m;
    return 0;
}

static rr_status pop_score(const rr_model *m, rr_state *const *states, size_t n, float *scores,
                           rr_error *err) {
    (void)states;
    (void)err;
    const pop_impl *p = m->impl;
    size_t ni = m->n_items;
    /* scores (n, ni): one copy of the count row each.  Serial on purpose:
     * callers (the evaluation engine) choose the threads, and the copy into
     * a cache-sized block runs at memory-copy speed anyway. */
    for (size_t i = 0; i < n; i++) memcpy(scores + i * ni, p->score, ni * sizeof *scores);
    return RR_OK;
}

static rr_status pop_load(rr_model *m, const rr_freader *r, rr_error *err) {
    (void)r;
    return pop_build(m, err);
}

static void pop_destroy(rr_model *m) {
    pop_impl *p = m->impl;
    if (p) free(p->score);
    free(p);
    m->impl = NULL;
}

const rr_model_ops rr_pop_ops = {
    .kind = "pop",
    .state_floats = pop_state_floats,
    .state_init = NULL,
    .step = NULL,
    .score = pop_score,
    .save = NULL,
    .load = pop_load,
    .destroy = pop_destroy,
};

rr_status rr_pop_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                     const rr_train_params *prm, rr_error *err) {
    (void)valid;
    (void)prm;
    rr_model *m = NULL;
    rr_status s = rr_model_new_common(&m, &rr_pop_ops, train, err);
    if (s) return s;
    s = pop_build(m, err);
    if (s) {
        rr_model_free(m);
        return s;
    }
    *out = m;
    return RR_OK;
}
