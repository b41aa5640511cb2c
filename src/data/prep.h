/* prep.h - internals of the preprocessing pipeline (rr_prep_run in
 * rnnrec.h): a mutable working copy of the sessions, session cutting at
 * inactivity gaps, the filters, and building a dataset from event spans.
 * Exposed for the tests; the public entry points are in rnnrec.h. */
#ifndef RR_PREP_H
#define RR_PREP_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "data/vocab.h"
#include "rnnrec.h"

/* Sessions being filtered.  Item indices refer to the input dataset's item
 * vocabulary (borrowed); session names are owned (cutting makes new ones). */
typedef struct rr_prep_work {
    size_t n_sess, n_ev;
    int64_t *off;          /* (n_sess + 1) CSR offsets */
    int32_t *item;         /* (n_ev) index into *items */
    double *t;             /* (n_ev) time, sorted within each session */
    int32_t *name;         /* (n_sess) index into names */
    rr_vocab names;        /* session ids */
    const rr_vocab *items; /* the input's item vocabulary */
} rr_prep_work;

/* Copies in's sessions into w; with gap > 0 cuts each session where two
 * consecutive events are more than gap seconds apart, naming the pieces
 * "<orig>_<k>" (k = 1, 2, ...).  RR_ERR_RANGE if a new name is too long or
 * collides with an existing id. */
rr_status rr_prep_work_init(rr_prep_work *w, const rr_dataset *in, double gap, rr_error *err);
void rr_prep_work_free(rr_prep_work *w);

/* Applies dedup / min item support / min session length until a pass
 * changes nothing; counts go into st. */
rr_status rr_prep_filter(rr_prep_work *w, const rr_prep_params *p, rr_prep_stats *st,
                         rr_error *err);

/* A run of events of one working session: events [a, b) of session s. */
typedef struct rr_span {
    size_t s;
    int64_t a, b;
} rr_span;

/* Builds a dataset from spans.  Events whose item has item_ok[item] == 0
 * are dropped (item_ok NULL keeps all); spans left shorter than min_len are
 * dropped.  The counts of dropped events / spans go to the optional
 * outputs.  Items and sessions are indexed by first appearance. */
rr_status rr_prep_make_part(const rr_prep_work *w, const rr_span *sp, size_t n,
                            const unsigned char *item_ok, size_t min_len, size_t *dropped_events,
                            size_t *dropped_spans, rr_dataset **out, rr_error *err);

#endif
