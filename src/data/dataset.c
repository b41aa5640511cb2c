/* dataset.c - allocation and simple derived views of rr_dataset (see
 * dataset.h).  Reading and writing files live in reader.c / writer.c. */
#include "data/dataset.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

rr_dataset *rr_dataset_new(void) {
    rr_dataset *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    rr_vocab_init(&d->items);
    rr_vocab_init(&d->sessions);
    return d;
}

void rr_dataset_free(rr_dataset *d) {
    if (!d) return;
    rr_vocab_clear(&d->items);
    rr_vocab_clear(&d->sessions);
    free(d->sess_id);
    rr_sessions_clear(&d->s);
    free(d);
}

void rr_dataset_drop_session_ids(rr_dataset *d) {
    if (!d) return;
    rr_vocab_clear(&d->sessions);
    free(d->sess_id);
    d->sess_id = NULL;
    d->session_ids_dropped = 1;
}

rr_status rr_sessions_alloc(rr_sessions *s, size_t n_sessions, size_t n_events, rr_error *err) {
    memset(s, 0, sizeof *s);
    size_t n1;
    if (!rr_add_size(n_sessions, 1, &n1)) return rr_err(err, RR_ERR_NOMEM, "too many sessions");
    s->offsets = rr_calloc_n(n1, sizeof *s->offsets);
    s->items = rr_malloc_n(n_events, sizeof *s->items);
    s->times = rr_malloc_n(n_events, sizeof *s->times);
    if (!s->offsets || !s->items || !s->times) {
        rr_sessions_clear(s);
        return rr_err(err, RR_ERR_NOMEM, "out of memory for %zu sessions / %zu events", n_sessions,
                      n_events);
    }
    s->n_sessions = n_sessions;
    s->n_events = n_events;
    return RR_OK;
}

void rr_sessions_clear(rr_sessions *s) {
    free(s->offsets);
    free(s->items);
    free(s->times);
    memset(s, 0, sizeof *s);
}

size_t rr_dataset_n_events(const rr_dataset *d) { return d->s.n_events; }
size_t rr_dataset_n_sessions(const rr_dataset *d) { return d->s.n_sessions; }
size_t rr_dataset_n_items(const rr_dataset *d) { return d->items.n; }
size_t rr_dataset_n_bad_rows(const rr_dataset *d) { return d->n_bad_rows; }

rr_status rr_dataset_item_counts(const rr_dataset *d, double **counts, rr_error *err) {
    double *c = rr_calloc_n(d->items.n, sizeof *c);
    if (!c) return rr_err(err, RR_ERR_NOMEM, "out of memory for item counts");
    for (size_t e = 0; e < d->s.n_events; e++) c[d->s.items[e]] += 1.0;
    *counts = c;
    return RR_OK;
}

rr_status rr_dataset_map_items(const rr_dataset *d, const rr_vocab *v, int32_t **map, rr_error *err) {
    int32_t *m = rr_malloc_n(d->items.n, sizeof *m);
    if (!m) return rr_err(err, RR_ERR_NOMEM, "out of memory for item map");
    for (size_t i = 0; i < d->items.n; i++) {
        size_t len;
        const char *id = rr_vocab_id(&d->items, (int32_t)i, &len);
        m[i] = rr_vocab_find(v, id, len);
    }
    *map = m;
    return RR_OK;
}
