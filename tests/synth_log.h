/* synth_log.h - synthetic event logs for the tests (rr_synth_generate):
 * the generator's defaults but for seed, size and catalogue, a failed
 * generation counted as a failed check (the caller then gets NULL).
 * Include after check.h. */
#ifndef RR_SYNTH_LOG_H
#define RR_SYNTH_LOG_H

#include <stdint.h>

#include "rnnrec.h"

/* The generator's default parameters with seed, n_events and n_items set;
 * change more before synth_log_make. */
static inline void synth_log_params(rr_synth_params *sp, uint64_t seed, size_t events, size_t items) {
    rr_synth_params_default(sp);
    sp->seed = seed;
    sp->n_events = events;
    sp->n_items = items;
}

static inline rr_dataset *synth_log_make(const rr_synth_params *sp) {
    rr_dataset *d = NULL;
    rr_error err;
    CHECK_OK(rr_synth_generate(sp, &d, &err), &err);
    return d;
}

/* A log with the defaults but for seed, events and items. */
static inline rr_dataset *synth_log(uint64_t seed, size_t events, size_t items) {
    rr_synth_params sp;
    synth_log_params(&sp, seed, events, items);
    return synth_log_make(&sp);
}

#endif /* RR_SYNTH_LOG_H */
