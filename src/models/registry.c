/* registry.c - the table of model kinds: name, operations, trainer.
 *
 * Adding a kind is one extern block and one table line; each kind's file
 * defines `const rr_model_ops rr_<kind>_ops` and `rr_<kind>_fit`. */
#include <string.h>

#include "models/model.h"

typedef struct kind_entry {
    const char *kind;
    const rr_model_ops *ops;
    rr_fit_fn fit;
} kind_entry;

/* pop.c */
extern const rr_model_ops rr_pop_ops;
rr_status rr_pop_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                     const rr_train_params *p, rr_error *err);

/* spop.c */
extern const rr_model_ops rr_spop_ops;
rr_status rr_spop_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                     const rr_train_params *p, rr_error *err);
/* markov.c */
extern const rr_model_ops rr_markov_ops;
rr_status rr_markov_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                     const rr_train_params *p, rr_error *err);
/* iknn.c */
extern const rr_model_ops rr_iknn_ops;
rr_status rr_iknn_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                     const rr_train_params *p, rr_error *err);
/* sknn.c */
extern const rr_model_ops rr_sknn_ops;
rr_status rr_sknn_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                     const rr_train_params *p, rr_error *err);
/* sknn.c */
extern const rr_model_ops rr_vsknn_ops;
rr_status rr_vsknn_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                     const rr_train_params *p, rr_error *err);

/* rnn.c (ops) and train/trainer.c (the trainer of all three) */
extern const rr_model_ops rr_gru_ops, rr_lstm_ops, rr_rnn_ops;
rr_status rr_rnn_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                     const rr_train_params *p, rr_error *err);

static const kind_entry kinds[] = {
    {"pop", &rr_pop_ops, rr_pop_fit},
    {"gru", &rr_gru_ops, rr_rnn_fit},
    {"lstm", &rr_lstm_ops, rr_rnn_fit},
    {"rnn", &rr_rnn_ops, rr_rnn_fit},
    {"spop", &rr_spop_ops, rr_spop_fit},
    {"markov", &rr_markov_ops, rr_markov_fit},
    {"iknn", &rr_iknn_ops, rr_iknn_fit},
    {"sknn", &rr_sknn_ops, rr_sknn_fit},
    {"vsknn", &rr_vsknn_ops, rr_vsknn_fit},
};

#define N_KINDS (sizeof kinds / sizeof kinds[0])

static const kind_entry *find(const char *kind) {
    if (!kind) return NULL;
    for (size_t i = 0; i < N_KINDS; i++)
        if (!strcmp(kinds[i].kind, kind)) return &kinds[i];
    return NULL;
}

const rr_model_ops *rr_model_ops_find(const char *kind) {
    const kind_entry *e = find(kind);
    return e ? e->ops : NULL;
}

rr_fit_fn rr_model_fit_find(const char *kind) {
    const kind_entry *e = find(kind);
    return e ? e->fit : NULL;
}

size_t rr_model_kind_count(void) { return N_KINDS; }

const char *rr_model_kind_name(size_t i) { return i < N_KINDS ? kinds[i].kind : NULL; }
