/* writer.c - writes an rr_dataset as TSV (session_id, item_id, timestamp)
 * with the original ids, atomically (rr_write_atomic).
 *
 * Timestamps are printed exactly: integral values below 2^63 as integers,
 * others in the shortest %.{15,16,17}g form that reads back to the same
 * double, so read -> write -> read is the identity.  Ids that hold a tab
 * or a quote are written as quoted fields with inner quotes doubled, which
 * the reader undoes; an id with a line break (the reader never makes one,
 * quoted fields end on their line) cannot be written and is an error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "util/util.h"

#define WR_BUF ((size_t)1 << 16)

/* Formats t into out (at least 32 bytes); returns the length. */
static size_t format_time(double t, char *out) {
    if (t == floor(t) && fabs(t) < 9.2e18) {
        long long v = (long long)t;
        char tmp[24];
        size_t n = 0;
        int neg = v < 0;
        unsigned long long u = neg ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        do {
            tmp[n++] = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        size_t o = 0;
        if (neg) out[o++] = '-';
        while (n) out[o++] = tmp[--n];
        out[o] = 0;
        return o;
    }
    for (int prec = 15; prec <= 17; prec++) {
        int n = snprintf(out, 32, "%.*g", prec, t);
        if (prec == 17 || strtod(out, NULL) == t) return (size_t)n;
    }
    return 0; /* not reached */
}

/* Appends an id as a TSV field at out (room for 2 * len + 2 bytes);
 * returns the bytes written. */
static size_t put_field(char *out, const char *id, size_t len) {
    int quote = 0;
    for (size_t i = 0; i < len && !quote; i++)
        quote = id[i] == '\t' || id[i] == '\n' || id[i] == '\r' || id[i] == '"';
    if (!quote) {
        memcpy(out, id, len);
        return len;
    }
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (id[i] == '"') out[o++] = '"';
        out[o++] = id[i];
    }
    out[o++] = '"';
    return o;
}

typedef struct wctx {
    const rr_dataset *d;
    const char *path;
} wctx;

static rr_status write_rows(FILE *f, void *user, rr_error *err) {
    const wctx *c = user;
    const rr_dataset *d = c->d;
    char *buf = malloc(WR_BUF);
    if (!buf) return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", c->path);
    static const char header[] = "session_id\titem_id\ttimestamp\n";
    size_t n = sizeof header - 1;
    memcpy(buf, header, n);
    const rr_sessions *s = &d->s;
    for (size_t i = 0; i < s->n_sessions; i++) {
        size_t slen;
        int32_t sid = d->sess_id ? d->sess_id[i] : (int32_t)i;
        const char *sp = rr_vocab_id(&d->sessions, sid, &slen);
        for (int64_t e = s->offsets[i]; e < s->offsets[i + 1]; e++) {
            /* longest row: two quoted ids of RR_ID_MAX (2 * len + 2 each), a
             * time of < 32, 3 separators */
            if (n + 4 * RR_ID_MAX + 44 > WR_BUF) {
                if (fwrite(buf, 1, n, f) != n) {
                    free(buf);
                    return rr_err(err, RR_ERR_IO, "%s: write failed", c->path);
                }
                n = 0;
            }
            size_t ilen;
            const char *ip = rr_vocab_id(&d->items, s->items[e], &ilen);
            if (memchr(ip, '\n', ilen) || memchr(ip, '\r', ilen) || memchr(sp, '\n', slen) ||
                memchr(sp, '\r', slen)) {
                free(buf);
                return rr_err(err, RR_ERR_RANGE, "%s: an id holds a line break; it cannot be written as TSV",
                              c->path);
            }
            n += put_field(buf + n, sp, slen);
            buf[n++] = '\t';
            n += put_field(buf + n, ip, ilen);
            buf[n++] = '\t';
            n += format_time(s->times[e], buf + n);
            buf[n++] = '\n';
        }
    }
    size_t w = fwrite(buf, 1, n, f);
    free(buf);
    if (w != n) return rr_err(err, RR_ERR_IO, "%s: write failed", c->path);
    return RR_OK;
}

rr_status rr_dataset_write_tsv(const rr_dataset *d, const char *path, rr_error *err) {
    if (!d || !path) return rr_err(err, RR_ERR_ARG, "rr_dataset_write_tsv: NULL argument");
    if (d->session_ids_dropped) return rr_err(err, RR_ERR_ARG, "%s: the dataset's session ids were dropped", path);
    wctx c = {d, path};
    return rr_write_atomic(path, write_rows, &c, err);
}
