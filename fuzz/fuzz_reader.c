/* fuzz_reader.c - libFuzzer harness for the event-log reader.
 *
 * Input: byte 0 picks the read options, the rest is the file (plain or
 * gzip, by magic).  The bytes go into a memfd read through its
 * /proc/self/fd path, the same code path as a file on disk.
 *
 * Oracle, besides "no crash, leak, hang or sanitizer report":
 *   - a failure returns no dataset and a message; a parse error names
 *     FILE:LINE:COL;
 *   - a success is a well-formed CSR: every session non-empty, offsets
 *     ascending to n_events, item / session indices in range, ids of
 *     1..255 bytes, times finite and ascending inside each session;
 *   - writing it as TSV and reading that back gives the same dataset
 *     (ids with tabs or quotes are written quoted since RR-3; skipped only
 *     when an id holds CR or LF, which the writer refuses, and above 2000
 *     events to keep executions fast). */
#include <math.h>
#include <string.h>

#include "data/dataset.h"
#include "fuzz_common.h"
#include "util/util.h"

static fuzz_file g_in;
static char g_out[64];

static int id_ok_for_tsv(const rr_vocab *v, int32_t i) {
    size_t n;
    const char *p = rr_vocab_id(v, i, &n);
    /* tabs and quotes are written as quoted fields (RR-3); a CR inside a
     * field comes out of the reader as is, and the writer refuses CR / LF */
    for (size_t k = 0; k < n; k++)
        if (p[k] == '\n' || p[k] == '\r') return 0;
    return 1;
}

static void check_dataset(const rr_dataset *d, const rr_read_opts *o) {
    const rr_sessions *s = &d->s;
    FUZZ_ASSERT(s->n_events > 0 && s->n_sessions > 0, "empty dataset returned as OK");
    FUZZ_ASSERT(s->n_sessions == d->sessions.n, "%zu session rows, %zu session ids", s->n_sessions,
                d->sessions.n);
    FUZZ_ASSERT(d->n_bad_rows <= o->max_bad_rows, "skipped %zu rows, limit %zu", d->n_bad_rows,
                o->max_bad_rows);
    FUZZ_ASSERT(s->offsets[0] == 0 && (size_t)s->offsets[s->n_sessions] == s->n_events, "offsets do not span");
    for (size_t i = 0; i < s->n_sessions; i++) {
        FUZZ_ASSERT(s->offsets[i + 1] > s->offsets[i], "session %zu empty", i);
        FUZZ_ASSERT(d->sess_id[i] >= 0 && (size_t)d->sess_id[i] < d->sessions.n, "bad sess_id");
        for (int64_t e = s->offsets[i]; e < s->offsets[i + 1]; e++) {
            FUZZ_ASSERT(s->items[e] >= 0 && (size_t)s->items[e] < d->items.n, "item out of range");
            FUZZ_ASSERT(isfinite(s->times[e]), "time not finite");
            FUZZ_ASSERT(e == s->offsets[i] || s->times[e] >= s->times[e - 1], "session %zu not time-sorted", i);
        }
    }
    for (size_t i = 0; i < d->items.n; i++) {
        size_t n;
        rr_vocab_id(&d->items, (int32_t)i, &n);
        FUZZ_ASSERT(n >= 1 && n <= RR_ID_MAX, "item id of %zu bytes", n);
    }
}

/* Same sessions (by id), events, item ids and times. */
static void check_same(const rr_dataset *a, const rr_dataset *b) {
    FUZZ_ASSERT(a->s.n_events == b->s.n_events && a->s.n_sessions == b->s.n_sessions,
                "round trip: %zu/%zu events, %zu/%zu sessions", a->s.n_events, b->s.n_events,
                a->s.n_sessions, b->s.n_sessions);
    for (size_t i = 0; i < a->s.n_sessions; i++) {
        size_t l1, l2;
        const char *p = rr_vocab_id(&a->sessions, a->sess_id[i], &l1);
        const char *q = rr_vocab_id(&b->sessions, b->sess_id[i], &l2);
        FUZZ_ASSERT(l1 == l2 && !memcmp(p, q, l1), "round trip: session %zu id differs", i);
        FUZZ_ASSERT(a->s.offsets[i + 1] == b->s.offsets[i + 1], "round trip: session %zu length", i);
    }
    for (size_t e = 0; e < a->s.n_events; e++) {
        size_t l1, l2;
        const char *p = rr_vocab_id(&a->items, a->s.items[e], &l1);
        const char *q = rr_vocab_id(&b->items, b->s.items[e], &l2);
        FUZZ_ASSERT(l1 == l2 && !memcmp(p, q, l1), "round trip: event %zu item differs", e);
        FUZZ_ASSERT(a->s.times[e] == b->s.times[e], "round trip: event %zu time %.17g vs %.17g", e,
                    a->s.times[e], b->s.times[e]);
    }
}

static void round_trip(const rr_dataset *d) {
    if (d->s.n_events > 2000) return; /* keep executions fast */
    /* the ids the writer will see: those of the sessions and their events */
    int writable = 1;
    for (size_t i = 0; i < d->s.n_sessions && writable; i++) {
        if (!id_ok_for_tsv(&d->sessions, d->sess_id[i])) writable = 0;
        for (int64_t e = d->s.offsets[i]; e < d->s.offsets[i + 1]; e++)
            if (!id_ok_for_tsv(&d->items, d->s.items[e])) writable = 0;
    }
    rr_error err;
    if (!g_out[0]) snprintf(g_out, sizeof g_out, "/dev/shm/rr_fuzz_reader_%d.tsv", (int)getpid());
    if (!writable) {
        /* a CR inside a field reaches the vocabulary; the writer must refuse
         * it with a message and leave no file (atomic write) */
        memset(&err, 0, sizeof err);
        FUZZ_ASSERT(rr_dataset_write_tsv(d, g_out, &err) == RR_ERR_RANGE && err.msg[0],
                    "an id with a line break was written: %s", err.msg);
        FUZZ_ASSERT(access(g_out, F_OK) != 0, "a refused write left %s", g_out);
        return;
    }
    FUZZ_ASSERT(rr_dataset_write_tsv(d, g_out, &err) == RR_OK, "write: %s", err.msg);
    rr_dataset *b = NULL;
    rr_status st = rr_dataset_read(g_out, NULL, &b, &err);
    FUZZ_ASSERT(st == RR_OK, "re-reading the written TSV failed: %s", err.msg);
    check_same(d, b);
    rr_dataset_free(b);
    unlink(g_out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const unsigned flags = data[0];
    static const char seps[4] = {0, ',', ';', '\t'};
    rr_read_opts o;
    rr_read_opts_default(&o);
    o.sep = seps[flags & 3];
    o.require_time = !(flags & 4);
    o.max_bad_rows = (flags & 8) ? 2 : 0;
    if (flags & 16) {
        o.session_col = "sid";
        o.item_col = "iid";
    }
    if (flags & 32) o.time_col = "t";
    fuzz_file_put(&g_in, data + 1, size - 1);
    rr_error err;
    memset(&err, 0, sizeof err);
    rr_dataset *d = (rr_dataset *)1;
    rr_status st = rr_dataset_read(g_in.path, &o, &d, &err);
    if (st != RR_OK) {
        FUZZ_ASSERT(d == NULL, "failure returned a dataset");
        FUZZ_ASSERT(err.status == st && err.msg[0], "status %d without a message", (int)st);
        FUZZ_ASSERT(st == RR_ERR_PARSE || st == RR_ERR_EMPTY || st == RR_ERR_FORMAT || st == RR_ERR_RANGE,
                    "unexpected status %d: %s", (int)st, err.msg);
        if (st == RR_ERR_PARSE) {
            /* "/proc/self/fd/N:LINE:COL: ..." */
            const char *p = err.msg + strlen(g_in.path);
            FUZZ_ASSERT(!strncmp(err.msg, g_in.path, strlen(g_in.path)) && p[0] == ':' && p[1] >= '1' &&
                            p[1] <= '9',
                        "parse error without FILE:LINE: %s", err.msg);
        }
        return 0;
    }
    check_dataset(d, &o);
    round_trip(d);
    rr_dataset_free(d);
    return 0;
}
