/* model.h - the model interface shared by every kind (baselines and RNNs).
 *
 * A model is a table of operations (rr_model_ops) plus the item vocabulary
 * and training counts every kind has.  A live session (rr_state) holds the
 * items seen so far and, for recurrent kinds, `state_floats` floats of
 * recurrent state that `step` advances by one item.  `score` fills full
 * catalogue score rows for a block of states: the evaluation engine, the
 * recommender and the server all go through it. */
#ifndef RR_MODEL_H
#define RR_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "data/vocab.h"
#include "io/container.h"
#include "rnnrec.h"

typedef struct rr_model_ops {
    const char *kind;
    /* Floats of recurrent state per session (0 for history-only kinds). */
    size_t (*state_floats)(const rr_model *m);
    /* Sets a fresh session's recurrent state (NULL: zero it). */
    void (*state_init)(const rr_model *m, float *h);
    /* Advances the recurrent state of n sessions by one item each
     * (items[i] for h[i]).  NULL for history-only kinds. */
    void (*step)(const rr_model *m, float *const *h, const int32_t *items, size_t n);
    /* Scores of every item for n sessions: scores is (n, n_items).
     * Higher is better.  Must be thread-safe for a shared model. */
    rr_status (*score)(const rr_model *m, rr_state *const *states, size_t n, float *scores,
                       rr_error *err);
    /* Writes kind-specific sections and metadata. */
    rr_status (*save)(const rr_model *m, rr_fwriter *w, rr_error *err);
    /* Reads kind-specific sections into a model whose common part (vocab,
     * counts, n_items, meta) is already filled.  The reader is freed after
     * load returns: copy what the model keeps. */
    rr_status (*load)(rr_model *m, const rr_freader *r, rr_error *err);
    void (*destroy)(rr_model *m);   /* frees impl; impl may be NULL or half-built after a failed load */
    /* Advances ONE session's state h by items[0..n) in order, the same
     * bits as n step calls (NULL: rr_state_feed_items calls step n times). */
    void (*step_seq)(const rr_model *m, float *h, const int32_t *items, size_t n);
} rr_model_ops;

struct rr_model {
    const rr_model_ops *ops;
    rr_vocab items;     /* item index -> original id */
    size_t n_items;
    double *counts;     /* (n_items) training event counts (popularity) */
    char **meta_keys, **meta_vals; /* training summary / hyperparameters */
    size_t n_meta;
    void *impl;         /* kind-specific */
    struct rr_screen *screen; /* rr_model_use_screen's quantised head, or NULL */
};

struct rr_state {
    const rr_model *model;
    int32_t *items;     /* (n, cap) items of the session so far */
    size_t n, cap;
    float *h;           /* (state_floats) recurrent state, or NULL */
};

/* Allocates a model with the common part from the training data: vocabulary
 * copy, item counts.  impl/ops are set by the caller. */
rr_status rr_model_new_common(rr_model **out, const rr_model_ops *ops, const rr_dataset *train,
                              rr_error *err);
rr_status rr_model_set_meta(rr_model *m, const char *key, const char *value, rr_error *err);

/* Kind registry: ops by name, and the trainer of each kind. */
typedef rr_status (*rr_fit_fn)(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                               const rr_train_params *p, rr_error *err);
const rr_model_ops *rr_model_ops_find(const char *kind);
rr_fit_fn rr_model_fit_find(const char *kind);
/* The registered kinds, for listings: i < rr_model_kind_count(). */
size_t rr_model_kind_count(void);
const char *rr_model_kind_name(size_t i);

/* Appends item to the session's history WITHOUT advancing the recurrent
 * state: the evaluation engine steps all of a block's states with one
 * ops->step call.  rr_state_feed = push + step.  RR_ERR_RANGE for an item
 * outside 0..n_items-1. */
rr_status rr_state_push(rr_state *s, int32_t item);

#endif
