/* dataset.h - the in-memory event log: sessions in CSR form.
 *
 * Session s holds events offsets[s] .. offsets[s+1]-1, ordered by time (ties
 * in file order).  Per event: a 4-byte item index and an 8-byte time, so 12
 * bytes per event plus 8 per session plus the vocabularies. */
#ifndef RR_DATASET_H
#define RR_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "data/vocab.h"
#include "rnnrec.h"

typedef struct rr_sessions {
    size_t n_sessions, n_events;
    int64_t *offsets;   /* (n_sessions + 1) */
    int32_t *items;     /* (n_events) index into the dataset's item vocab */
    double *times;      /* (n_events) seconds or order index, as in the file */
} rr_sessions;

struct rr_dataset {
    rr_vocab items;     /* item index -> original id */
    rr_vocab sessions;  /* session id vocabulary (original session ids) */
    int32_t *sess_id;   /* (n_sessions) session row -> index in `sessions` */
    rr_sessions s;
    size_t n_bad_rows;  /* rows skipped under max_bad_rows */
    int session_ids_dropped; /* rr_dataset_drop_session_ids: `sessions` and sess_id are gone */
};

/* Allocates an empty dataset (vocabularies initialised, no sessions). */
rr_dataset *rr_dataset_new(void);

/* Allocates the CSR arrays for n_sessions / n_events (offsets zeroed). */
rr_status rr_sessions_alloc(rr_sessions *s, size_t n_sessions, size_t n_events, rr_error *err);
void rr_sessions_clear(rr_sessions *s);

static inline size_t rr_session_len(const rr_sessions *s, size_t i) {
    return (size_t)(s->offsets[i + 1] - s->offsets[i]);
}

/* Event counts per item (n_items entries), as doubles for the samplers. */
rr_status rr_dataset_item_counts(const rr_dataset *d, double **counts, rr_error *err);

/* Maps each item of d into vocabulary v: map[i] = index in v or -1. */
rr_status rr_dataset_map_items(const rr_dataset *d, const rr_vocab *v, int32_t **map, rr_error *err);

/* Writes d as TSV with header session_id, item_id, timestamp (atomic). */
rr_status rr_dataset_write_tsv(const rr_dataset *d, const char *path, rr_error *err);

#endif
