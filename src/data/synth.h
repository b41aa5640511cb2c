/* synth.h - the synthetic clickstream generator behind rr_synth_generate /
 * rr_synth_write (see rnnrec.h for the model of a session).
 *
 * The generator yields one session at a time, so the file writer streams and
 * the in-memory builder share one code path (same seed -> same events). */
#ifndef RR_SYNTH_H
#define RR_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"
#include "util/util.h"

#define RR_SYNTH_MAX_LEN 200   /* longest generated session */
#define RR_SYNTH_MAX_SUCC 16   /* most preferred successors per item */

typedef struct rr_synth {
    rr_synth_params p;
    rr_rng rng;
    size_t n_items, n_topics, n_succ;
    int32_t *topic_of;     /* (n_items) topic of each item */
    int32_t *members;      /* (n_items) items grouped by topic, by popularity */
    double *member_cum;    /* (n_items) cumulative popularity within each topic group */
    size_t *topic_start;   /* (n_topics + 1) group bounds in members */
    double *topic_cum;     /* (n_topics) cumulative topic popularity */
    int32_t *succ;         /* (n_items, n_succ) preferred successors, strongest first */
    double succ_cum[RR_SYNTH_MAX_SUCC]; /* cumulative successor weights */
    uint32_t *item_id;     /* (n_items) public id of item index (a permutation of 1..n) */
    double len_mu, len_sigma; /* session length: 1 + floor(lognormal(mu, sigma)) */
    size_t events_done, sessions_done;
} rr_synth;

rr_status rr_synth_init(rr_synth *g, const rr_synth_params *p, rr_error *err);
void rr_synth_free(rr_synth *g);
/* The next session: items (generator indices; public id = item_id[i]) and
 * integer-second times, at most RR_SYNTH_MAX_LEN each.  Returns the length,
 * 0 once n_events events were produced. */
size_t rr_synth_next(rr_synth *g, int32_t *items, double *times);

#endif
