/* reader.c - reads delimited event logs into an rr_dataset (see rnnrec.h).
 *
 * Input: TSV or CSV with a header row, plain or gzip (detected by the magic
 * bytes 1f 8b, concatenated members allowed), or "-" for stdin.  The file is
 * streamed: a source (plain read() or zlib inflate) fills a buffer of
 * RD_CHUNK + RD_LINE_MAX bytes, complete lines are parsed in place, and the
 * unfinished tail moves to the front before the next refill.  Nothing is held
 * per event except a 16-byte record (session, item, time).
 *
 * Sessions come out in CSR form ordered by first appearance; the events of a
 * session are ordered by time, ties in file order.  The CSR is built with a
 * stable counting sort by session; only sessions seen out of time order
 * are sorted again (stable merge sort).
 *
 * Errors on input are FILE:LINE:COL: expected X, found Y.  Lines are counted
 * from 1 (the header), columns are 1-based byte offsets in the line. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/dataset.h"
#include "util/util.h"

#define RD_CHUNK ((size_t)4 << 20)    /* bytes delivered per refill */
#define RD_LINE_MAX ((size_t)1 << 20) /* longest accepted line */
#define RD_ZIN ((size_t)1 << 20)      /* compressed input buffer */
#define RD_BLOCK ((size_t)1 << 20)    /* events per storage block */
#define RD_LOG_BAD 5                  /* skipped rows that are logged */
#define RD_PAD 16                     /* readable slack after the data in the buffer */

void rr_read_opts_default(rr_read_opts *o) {
    memset(o, 0, sizeof *o);
    o->require_time = 1;
}

/* ------------------------------------------------------------- sources */

typedef struct src {
    const char *name;      /* for messages */
    int fd, own_fd;
    int gz;                /* 1: inflate */
    z_stream z;
    int z_live;            /* inflateInit2 done */
    unsigned char *zin;    /* (RD_ZIN) raw input; in plain mode holds the peeked head */
    size_t zin_len, zin_pos;
    int in_eof;            /* the fd has no more bytes */
    int member_end;        /* gz: the last inflate call ended a member */
    uint64_t raw_bytes;    /* raw bytes read from fd so far */
} src;

static rr_status src_fill_raw(src *s, rr_error *err) {
    /* Refills zin (keeping nothing: callers only refill when it is used up). */
    s->zin_pos = 0;
    s->zin_len = 0;
    while (s->zin_len < RD_ZIN && !s->in_eof) {
        ssize_t r = read(s->fd, s->zin + s->zin_len, RD_ZIN - s->zin_len);
        if (r < 0) {
            if (errno == EINTR) continue;
            return rr_err(err, RR_ERR_IO, "%s: read failed: %s", s->name, strerror(errno));
        }
        if (r == 0) s->in_eof = 1;
        s->zin_len += (size_t)r;
        s->raw_bytes += (uint64_t)r;
        if (s->gz && s->zin_len) break; /* inflate can start on what we have */
    }
    return RR_OK;
}

static rr_status src_open(src *s, const char *path, rr_error *err) {
    memset(s, 0, sizeof *s);
    if (!strcmp(path, "-")) {
        s->name = "<stdin>";
        s->fd = 0;
    } else {
        s->name = path;
        s->fd = open(path, O_RDONLY);
        if (s->fd < 0) return rr_err(err, RR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        s->own_fd = 1;
#ifdef POSIX_FADV_SEQUENTIAL
        (void)posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    }
    s->zin = malloc(RD_ZIN);
    if (!s->zin) return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", s->name);
    /* Peek at the head: at least two bytes unless the input is shorter. */
    while (s->zin_len < 2 && !s->in_eof) {
        ssize_t r = read(s->fd, s->zin + s->zin_len, RD_ZIN - s->zin_len);
        if (r < 0) {
            if (errno == EINTR) continue;
            return rr_err(err, RR_ERR_IO, "%s: read failed: %s", s->name, strerror(errno));
        }
        if (r == 0) s->in_eof = 1;
        s->zin_len += (size_t)r;
        s->raw_bytes += (uint64_t)r;
    }
    if (s->zin_len >= 2 && s->zin[0] == 0x1f && s->zin[1] == 0x8b) {
        s->gz = 1;
        if (inflateInit2(&s->z, 15 + 16) != Z_OK)
            return rr_err(err, RR_ERR_NOMEM, "%s: cannot start gzip decoder", s->name);
        s->z_live = 1;
        s->z.next_in = s->zin;
        s->z.avail_in = (uInt)s->zin_len;
    }
    return RR_OK;
}

static void src_close(src *s) {
    if (s->z_live) inflateEnd(&s->z);
    if (s->own_fd) close(s->fd);
    free(s->zin);
    memset(s, 0, sizeof *s);
}

/* Delivers up to cap bytes into dst; *got = 0 only at the end of input. */
static rr_status src_read(src *s, char *dst, size_t cap, size_t *got, rr_error *err) {
    *got = 0;
    if (!s->gz) {
        /* The peeked head first, then big read()s straight into dst. */
        if (s->zin_pos < s->zin_len) {
            size_t n = s->zin_len - s->zin_pos;
            if (n > cap) n = cap;
            memcpy(dst, s->zin + s->zin_pos, n);
            s->zin_pos += n;
            *got = n;
        }
        while (*got < cap && !s->in_eof) {
            ssize_t r = read(s->fd, dst + *got, cap - *got);
            if (r < 0) {
                if (errno == EINTR) continue;
                return rr_err(err, RR_ERR_IO, "%s: read failed: %s", s->name, strerror(errno));
            }
            if (r == 0) s->in_eof = 1;
            *got += (size_t)r;
            s->raw_bytes += (uint64_t)r;
        }
        return RR_OK;
    }
    s->z.next_out = (unsigned char *)dst;
    s->z.avail_out = (uInt)cap;
    while (s->z.avail_out > 0) {
        if (s->z.avail_in == 0) {
            if (s->in_eof) {
                if (s->member_end) break; /* clean end after a whole member */
                return rr_err(err, RR_ERR_FORMAT,
                              "%s: truncated gzip data (input ends inside a member after %llu "
                              "compressed bytes)",
                              s->name, (unsigned long long)s->raw_bytes);
            }
            rr_status st = src_fill_raw(s, err);
            if (st) return st;
            s->z.next_in = s->zin;
            s->z.avail_in = (uInt)s->zin_len;
            if (s->zin_len == 0) continue; /* now at EOF: handled above */
        }
        if (s->member_end) {
            /* More bytes after a finished member: the next member. */
            if (inflateReset(&s->z) != Z_OK)
                return rr_err(err, RR_ERR_INTERNAL, "%s: gzip decoder reset failed", s->name);
            s->member_end = 0;
        }
        int r = inflate(&s->z, Z_NO_FLUSH);
        if (r == Z_STREAM_END) {
            s->member_end = 1;
        } else if (r == Z_BUF_ERROR) {
            if (s->z.avail_in == 0) continue; /* needs input: refill above */
            return rr_err(err, RR_ERR_INTERNAL, "%s: gzip decoder made no progress", s->name);
        } else if (r != Z_OK) {
            return rr_err(err, RR_ERR_FORMAT, "%s: corrupt gzip data near compressed byte %llu: %s",
                          s->name,
                          (unsigned long long)(s->raw_bytes - s->z.avail_in),
                          s->z.msg ? s->z.msg : "inflate failed");
        }
    }
    *got = cap - s->z.avail_out;
    return RR_OK;
}

/* After a parse error in gzip input: decodes the rest, so that a corrupt
 * stream is reported as such rather than as the garbage it produced. */
static rr_status src_check_rest(src *s, char *scratch, size_t cap, rr_error *err) {
    if (!s->gz) return RR_OK;
    size_t got;
    rr_status st;
    do st = src_read(s, scratch, cap, &got, err);
    while (st == RR_OK && got > 0);
    return st;
}

/* ------------------------------------------------------------- helpers */

/* A short printable rendering of bytes for messages: 'abc', 'a\x00b', ... */
static const char *show(const char *p, size_t n, char *out, size_t cap) {
    size_t o = 0;
    out[o++] = '\'';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)p[i];
        if (i >= 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') out[o++] = (char)c;
        else if (c == '\t') o += (size_t)snprintf(out + o, cap - o, "\\t");
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o++] = '\'';
    out[o] = 0;
    return out;
}

static const double pow10_tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Parses a decimal number (sign, digits, optional fraction, optional
 * exponent) filling the whole of [p, p+n).  Returns 0 ok, 1 not a number,
 * 2 not finite.  Exact: the fast path is Clinger's (mantissa < 2^53 and a
 * power of ten <= 1e22 are exact, so one division rounds correctly); other
 * forms go to strtod. */
static int parse_number(const char *p, size_t n, double *out) {
    while (n && (*p == ' ')) p++, n--;
    while (n && p[n - 1] == ' ') n--;
    if (!n) return 1;
    const char *s = p, *e = p + n;
    int neg = 0;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    uint64_t m = 0;
    int nd = 0, frac = 0, big = 0;
    while (s < e && (unsigned)(*s - '0') < 10) {
        if (m > (UINT64_MAX - 9) / 10) big = 1;
        else m = m * 10 + (uint64_t)(*s - '0');
        s++, nd++;
    }
    if (s < e && *s == '.') {
        s++;
        while (s < e && (unsigned)(*s - '0') < 10) {
            if (m > (UINT64_MAX - 9) / 10) big = 1;
            else m = m * 10 + (uint64_t)(*s - '0'), frac++;
            s++, nd++;
        }
    }
    if (!nd) return 1;
    int expo = 0;
    if (s < e && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < e && (*s == '+' || *s == '-')) s++;
        if (s >= e || (unsigned)(*s - '0') >= 10) return 1;
        while (s < e && (unsigned)(*s - '0') < 10) s++;
        expo = 1;
    }
    if (s != e) return 1;
    if (!big && !expo && m <= ((uint64_t)1 << 53) && frac <= 22) {
        double v = (double)m;
        if (frac) v /= pow10_tab[frac];
        *out = neg ? -v : v;
        return 0;
    }
    char tmp[128];
    if (n >= sizeof tmp) return 1;
    memcpy(tmp, p, n);
    tmp[n] = 0;
    double v = strtod(tmp, NULL);
    if (!isfinite(v)) return 2;
    *out = v;
    return 0;
}

/* Column name without a RecBole ":type" suffix, lower-cased and with '_'
 * removed, for matching the default names. */
static size_t norm_name(const char *p, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && p[i] != ':' && o + 1 < cap; i++) {
        char c = p[i];
        if (c == '_' || c == ' ') continue;
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        out[o++] = c;
    }
    out[o] = 0;
    return o;
}

static size_t base_len(const char *p, size_t n) {
    const char *c = memchr(p, ':', n);
    return c ? (size_t)(c - p) : n;
}

/* -------------------------------------------------------- id caches */

/* Most logs use decimal integer ids.  A canonical decimal id (no sign, no
 * leading zero, at most 18 digits) maps one-to-one to its value, so a cache
 * value -> vocabulary index in front of the string vocabulary answers most
 * rows with one memory access: a direct array for small values, an integer
 * hash table for the rest.  The vocabulary stays the source of truth. */
#define RD_DIRECT_MAX ((uint64_t)1 << 22)

typedef struct idmap {
    int32_t *direct;   /* (direct_cap) value -> index, -1 unknown */
    size_t direct_cap;
    uint64_t *keys;    /* (cap) open addressing; key 0 is stored as ~0 */
    int32_t *vals;     /* (cap) */
    size_t cap, n;
} idmap;

static void idmap_free(idmap *m) {
    free(m->direct);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static inline int as_uint(const char *p, size_t n, uint64_t *v) {
    if (n == 0 || n > 18 || (p[0] == '0' && n > 1)) return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)p[i] - '0';
        if (d > 9) return 0;
        x = x * 10 + d;
    }
    *v = x;
    return 1;
}

static inline size_t idmap_slot(uint64_t k, size_t mask) {
    return (size_t)((k * 0x9e3779b97f4a7c15ULL) >> 17) & mask;
}

static inline int32_t idmap_get(const idmap *m, uint64_t v) {
    if (v < RD_DIRECT_MAX) return v < m->direct_cap ? m->direct[v] : -1;
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, s = idmap_slot(v, mask);
    for (;;) {
        if (m->keys[s] == v) return m->vals[s];
        if (m->keys[s] == 0) return -1;
        s = (s + 1) & mask;
    }
}

/* Values >= RD_DIRECT_MAX are never 0, so 0 marks an empty slot. */
static int idmap_put(idmap *m, uint64_t v, int32_t idx) {
    if (v < RD_DIRECT_MAX) {
        if (v >= m->direct_cap) {
            size_t cap = m->direct_cap ? m->direct_cap : 1024;
            while (cap <= v) cap *= 2;
            int32_t *d = rr_realloc_n(m->direct, cap, sizeof *d);
            if (!d) return -1;
            memset(d + m->direct_cap, 0xff, (cap - m->direct_cap) * sizeof *d);
            m->direct = d;
            m->direct_cap = cap;
        }
        m->direct[v] = idx;
        return 0;
    }
    if (2 * (m->n + 1) > m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 4096;
        uint64_t *k = rr_calloc_n(cap, sizeof *k);
        int32_t *x = rr_malloc_n(cap, sizeof *x);
        if (!k || !x) {
            free(k);
            free(x);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t s = idmap_slot(m->keys[i], cap - 1);
                while (k[s]) s = (s + 1) & (cap - 1);
                k[s] = m->keys[i];
                x[s] = m->vals[i];
            }
        free(m->keys);
        free(m->vals);
        m->keys = k;
        m->vals = x;
        m->cap = cap;
    }
    size_t mask = m->cap - 1, s = idmap_slot(v, mask);
    while (m->keys[s] && m->keys[s] != v) s = (s + 1) & mask;
    if (!m->keys[s]) m->n++;
    m->keys[s] = v;
    m->vals[s] = idx;
    return 0;
}

/* Vocabulary index of an id, through the cache when it is numeric. */
static rr_status map_id(rr_vocab *voc, idmap *m, const char *p, size_t n, int32_t *idx,
                        rr_error *err) {
    uint64_t v;
    int num = as_uint(p, n, &v);
    if (num) {
        int32_t i = idmap_get(m, v);
        if (i >= 0) {
            *idx = i;
            return RR_OK;
        }
    }
    rr_status st = rr_vocab_add(voc, p, n, idx, err);
    if (st == RR_OK && num && idmap_put(m, v, *idx) != 0)
        return rr_err(err, RR_ERR_NOMEM, "out of memory for the id cache");
    return st;
}

/* ------------------------------------------------------------- reader */

typedef struct ev {
    int32_t sess, item;
    double t;
} ev;

typedef struct field {
    const char *p;
    size_t n;
    size_t col; /* 1-based column in the line */
} field;

typedef struct reader {
    const char *name;
    char sep;
    int sep_explicit;
    size_t n_cols;
    long sc, ic, tc;         /* column numbers (0-based), tc -1: none */
    size_t line;             /* current line number */
    rr_dataset *d;
    /* event storage: blocks of RD_BLOCK records */
    ev **blocks;
    size_t n_blocks, blocks_cap, n_ev;
    /* per session (indexed like d->sessions) */
    uint32_t *cnt;           /* (n_sess) events so far */
    double *last_t;          /* (n_sess) time of the last event */
    unsigned char *unsorted; /* (n_sess) 1: seen out of time order */
    size_t sess_cap;
    /* session of the previous row, to skip the hash lookup in sorted logs */
    char prev_sess[RR_ID_MAX + 1];
    size_t prev_len;
    int32_t prev_idx;
    idmap sess_map, item_map;
    size_t max_bad, n_bad;
    int have_header;
} reader;

static rr_status bad(reader *r, rr_error *err, size_t col, const char *fmt, ...) RR_PRINTF(4, 5);
static rr_status bad(reader *r, rr_error *err, size_t col, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rr_err(err, RR_ERR_PARSE, "%s:%zu:%zu: %s", r->name, r->line, col, msg);
}

/* Splits one line [p, e) (e points at the '\n' sentinel, '\r' already cut)
 * into fields.  Only fields with want[col] set are kept (in f[which]).
 * *n_fields gets the count.  Returns RR_OK or RR_ERR_PARSE. */
static rr_status split_line(reader *r, char *p, const char *e, field *keep, size_t max_keep,
                            size_t *n_fields, rr_error *err) {
    const char sep = r->sep;
    char *line = p;
    size_t col = 0;
    char buf[64];
    for (;;) {
        char *fs = p;
        size_t fn;
        if (*p == '"') {
            /* Quoted: "" is a literal quote; must close before the line ends. */
            char *q = p + 1;
            char *w = NULL; /* write cursor once an escape was seen */
            for (;;) {
                if (q >= e)
                    return bad(r, err, (size_t)(fs - line) + 1,
                               "expected a closing quote for the field starting here, found the "
                               "end of the line (unterminated quote)");
                if (*q == 0)
                    return bad(r, err, (size_t)(q - line) + 1, "expected text, found a NUL byte");
                if (*q == '"') {
                    if (q + 1 < e && q[1] == '"') {
                        if (!w) w = q;
                        *w++ = '"';
                        q += 2;
                        continue;
                    }
                    break;
                }
                if (w) *w++ = *q;
                q++;
            }
            /* Unescaping in place is safe: the writer trails the reader. */
            fs = p + 1;
            fn = w ? (size_t)(w - fs) : (size_t)(q - fs);
            p = q + 1;
            if (p < e && *p != sep)
                return bad(r, err, (size_t)(p - line) + 1,
                           "expected a separator after the closing quote, found %s",
                           show(p, 1, buf, sizeof buf));
        } else {
            /* Eight bytes at a time: the buffer has RD_PAD readable bytes past
             * any line end.  haszero(v) flags the first zero byte exactly. */
            const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
            const uint64_t ms = ones * (unsigned char)sep, mn = ones * (unsigned char)'\n';
            for (;;) {
                uint64_t w, a, b;
                memcpy(&w, p, 8);
                a = w ^ ms;
                b = w ^ mn;
                uint64_t hit = ((a - ones) & ~a) | ((b - ones) & ~b) | ((w - ones) & ~w);
                hit &= highs;
                if (hit) {
                    p += __builtin_ctzll(hit) >> 3;
                    break;
                }
                p += 8;
            }
            if (*p == 0)
                return bad(r, err, (size_t)(p - line) + 1, "expected text, found a NUL byte");
            fn = (size_t)(p - fs);
        }
        for (size_t k = 0; k < max_keep; k++)
            if (keep[k].col == col) {
                keep[k].p = fs;
                keep[k].n = fn;
            }
        col++;
        if (p < e && *p == sep) {
            p++; /* a separator at the very end gives one more, empty, field */
            continue;
        }
        break;
    }
    *n_fields = col;
    return RR_OK;
}

static rr_status grow_sessions(reader *r, size_t need, rr_error *err) {
    if (need <= r->sess_cap) return RR_OK;
    size_t cap = r->sess_cap ? r->sess_cap * 2 : 4096;
    while (cap < need) cap *= 2;
    uint32_t *c = rr_realloc_n(r->cnt, cap, sizeof *c);
    if (c) r->cnt = c;
    double *l = rr_realloc_n(r->last_t, cap, sizeof *l);
    if (l) r->last_t = l;
    unsigned char *u = rr_realloc_n(r->unsorted, cap, 1);
    if (u) r->unsorted = u;
    if (!c || !l || !u) return rr_err(err, RR_ERR_NOMEM, "%s: out of memory for sessions", r->name);
    memset(r->cnt + r->sess_cap, 0, (cap - r->sess_cap) * sizeof *r->cnt);
    memset(r->unsorted + r->sess_cap, 0, cap - r->sess_cap);
    r->sess_cap = cap;
    return RR_OK;
}

static rr_status push_event(reader *r, int32_t sess, int32_t item, double t, rr_error *err) {
    size_t b = r->n_ev / RD_BLOCK, o = r->n_ev % RD_BLOCK;
    if (b == r->n_blocks) {
        if (b == r->blocks_cap) {
            size_t cap = r->blocks_cap ? r->blocks_cap * 2 : 16;
            ev **nb = rr_realloc_n(r->blocks, cap, sizeof *nb);
            if (!nb) return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", r->name);
            r->blocks = nb;
            r->blocks_cap = cap;
        }
        r->blocks[b] = rr_malloc_n(RD_BLOCK, sizeof(ev));
        if (!r->blocks[b])
            return rr_err(err, RR_ERR_NOMEM, "%s: out of memory after %zu events", r->name, r->n_ev);
        r->n_blocks++;
    }
    ev *x = &r->blocks[b][o];
    x->sess = sess;
    x->item = item;
    x->t = t;
    r->n_ev++;
    return RR_OK;
}

static const char *const sess_names[] = {"sessionid", "session", "userid", "user", "visitorid",
                                         NULL};
static const char *const item_names[] = {"itemid", "item", "productid", NULL};
static const char *const time_names[] = {"timestamp", "time", "ts", NULL};

/* Column index for a requested name (exact, or its part before ':'), or by
 * the default names in priority order.  -1 when absent. */
static long find_col(const field *h, size_t n, const char *want, const char *const *defaults) {
    if (want) {
        size_t wl = strlen(want);
        for (size_t i = 0; i < n; i++)
            if ((h[i].n == wl && !memcmp(h[i].p, want, wl)) ||
                (base_len(h[i].p, h[i].n) == wl && !memcmp(h[i].p, want, wl)))
                return (long)i;
        return -1;
    }
    char nb[64];
    for (const char *const *d = defaults; *d; d++)
        for (size_t i = 0; i < n; i++) {
            norm_name(h[i].p, h[i].n, nb, sizeof nb);
            if (!strcmp(nb, *d)) return (long)i;
        }
    return -1;
}

static void header_list(const field *h, size_t n, char *out, size_t cap) {
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        char b[64];
        int w = snprintf(out + o, cap - o, "%s%s", i ? ", " : "", show(h[i].p, h[i].n, b, sizeof b));
        if (w < 0) break;
        o += (size_t)w;
        if (o >= cap) {
            out[cap - 1] = 0;
            break;
        }
    }
}

static rr_status parse_header(reader *r, char *p, const char *e, const rr_read_opts *o,
                              rr_error *err) {
    /* Sniff the separator when it came from the file name and the header
     * does not contain it. */
    if (!r->sep_explicit && !memchr(p, r->sep, (size_t)(e - p))) {
        static const char cands[] = {'\t', ',', ';', '|'};
        for (size_t i = 0; i < sizeof cands; i++)
            if (memchr(p, cands[i], (size_t)(e - p))) {
                r->sep = cands[i];
                break;
            }
    }
    /* One pass (quoted fields are unescaped in place): the number of
     * separators bounds the number of fields. */
    size_t bound = 1;
    for (const char *q = p; (q = memchr(q, r->sep, (size_t)(e - q))) != NULL; q++) bound++;
    field *h = rr_calloc_n(bound, sizeof *h);
    if (!h) return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", r->name);
    for (size_t i = 0; i < bound; i++) h[i].col = i;
    size_t n;
    rr_status st = split_line(r, p, e, h, bound, &n, err);
    if (st) {
        free(h);
        return st;
    }
    r->n_cols = n;
    r->sc = find_col(h, n, o->session_col, sess_names);
    r->ic = find_col(h, n, o->item_col, item_names);
    r->tc = find_col(h, n, o->time_col, time_names);
    char list[512];
    header_list(h, n, list, sizeof list);
    free(h);
    if (r->sc < 0)
        return bad(r, err, 1, "expected a session column (%s%s%s), found header %s",
                   o->session_col ? "'" : "session_id, SessionId, user_id, UserId, session",
                   o->session_col ? o->session_col : "", o->session_col ? "'" : "", list);
    if (r->ic < 0)
        return bad(r, err, 1, "expected an item column (%s%s%s), found header %s",
                   o->item_col ? "'" : "item_id, ItemId, item", o->item_col ? o->item_col : "",
                   o->item_col ? "'" : "", list);
    if (r->tc < 0 && (o->require_time || o->time_col))
        return bad(r, err, 1, "expected a time column (%s%s%s), found header %s",
                   o->time_col ? "'" : "timestamp, Time, time, ts", o->time_col ? o->time_col : "",
                   o->time_col ? "'" : "", list);
    if (r->sc == r->ic || r->sc == r->tc || r->ic == r->tc)
        return bad(r, err, 1, "expected distinct session, item and time columns, found header %s",
                   list);
    return RR_OK;
}

/* One data row.  Returns RR_OK, RR_ERR_PARSE (a bad row: may be skipped) or
 * another status (fatal). */
static rr_status parse_row(reader *r, char *p, const char *e, rr_error *err) {
    field f[3] = {{NULL, 0, (size_t)r->sc}, {NULL, 0, (size_t)r->ic},
                  {NULL, 0, r->tc >= 0 ? (size_t)r->tc : (size_t)-1}};
    size_t nf;
    char *line = p;
    char buf[64];
    rr_status st = split_line(r, p, e, f, 3, &nf, err);
    if (st) return st;
    if (nf != r->n_cols)
        return bad(r, err, 1, "expected %zu fields, found %zu", r->n_cols, nf);
    size_t c_s = (size_t)(f[0].p - line) + 1, c_i = (size_t)(f[1].p - line) + 1;
    if (f[0].n == 0) return bad(r, err, c_s, "expected a session id, found an empty field");
    if (f[1].n == 0) return bad(r, err, c_i, "expected an item id, found an empty field");
    if (f[0].n > RR_ID_MAX)
        return bad(r, err, c_s, "expected a session id of at most %d bytes, found %zu bytes",
                   RR_ID_MAX, f[0].n);
    if (f[1].n > RR_ID_MAX)
        return bad(r, err, c_i, "expected an item id of at most %d bytes, found %zu bytes",
                   RR_ID_MAX, f[1].n);
    double t;
    if (r->tc >= 0) {
        int rc = parse_number(f[2].p, f[2].n, &t);
        if (rc == 1)
            return bad(r, err, (size_t)(f[2].p - line) + 1, "expected a number, found %s",
                       show(f[2].p, f[2].n, buf, sizeof buf));
        if (rc == 2)
            return bad(r, err, (size_t)(f[2].p - line) + 1, "expected a finite number, found %s",
                       show(f[2].p, f[2].n, buf, sizeof buf));
    } else {
        t = (double)r->n_ev; /* file order */
    }
    int32_t si;
    if (f[0].n == r->prev_len && r->prev_idx >= 0 && !memcmp(f[0].p, r->prev_sess, f[0].n)) {
        si = r->prev_idx;
    } else {
        st = map_id(&r->d->sessions, &r->sess_map, f[0].p, f[0].n, &si, err);
        if (st) return st; /* vocabulary full: never a skippable row */
        memcpy(r->prev_sess, f[0].p, f[0].n);
        r->prev_len = f[0].n;
        r->prev_idx = si;
        if ((size_t)si >= r->sess_cap) {
            st = grow_sessions(r, (size_t)si + 1, err);
            if (st) return st;
        }
    }
    int32_t ii;
    st = map_id(&r->d->items, &r->item_map, f[1].p, f[1].n, &ii, err);
    if (st) return st;
    uint32_t c = r->cnt[si];
    if (c == UINT32_MAX)
        return rr_err(err, RR_ERR_RANGE, "%s:%zu: session has more than %u events", r->name, r->line,
                      UINT32_MAX);
    if (c && t < r->last_t[si]) r->unsorted[si] = 1;
    else r->last_t[si] = t;
    r->cnt[si] = c + 1;
    return push_event(r, si, ii, t, err);
}

/* Stable sort of one session's events by time (ties keep their order). */
static void sort_session(double *t, int32_t *it, size_t n, double *tt, int32_t *ti) {
    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            double x = t[i];
            int32_t y = it[i];
            size_t j = i;
            while (j > 0 && t[j - 1] > x) {
                t[j] = t[j - 1];
                it[j] = it[j - 1];
                j--;
            }
            t[j] = x;
            it[j] = y;
        }
        return;
    }
    /* Bottom-up merge sort, ping-ponging between (t, it) and (tt, ti). */
    double *a = t, *b = tt;
    int32_t *ai = it, *bi = ti;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                if (a[j] < a[i]) b[k] = a[j], bi[k++] = ai[j++];
                else b[k] = a[i], bi[k++] = ai[i++];
            }
            while (i < mid) b[k] = a[i], bi[k++] = ai[i++];
            while (j < hi) b[k] = a[j], bi[k++] = ai[j++];
        }
        double *x = a;
        a = b;
        b = x;
        int32_t *y = ai;
        ai = bi;
        bi = y;
    }
    if (a != t) {
        memcpy(t, a, n * sizeof *t);
        memcpy(it, ai, n * sizeof *it);
    }
}

/* Counting sort of the event blocks into d->s (freeing blocks as they are
 * consumed), then per-session sorts where needed. */
static rr_status build_csr(reader *r, rr_error *err) {
    rr_dataset *d = r->d;
    size_t ns = d->sessions.n;
    rr_status st = rr_sessions_alloc(&d->s, ns, r->n_ev, err);
    if (st) return st;
    d->sess_id = rr_malloc_n(ns, sizeof *d->sess_id);
    if (!d->sess_id) return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", r->name);
    int64_t *off = d->s.offsets;
    size_t max_unsorted = 0;
    for (size_t s = 0; s < ns; s++) {
        off[s + 1] = off[s] + (int64_t)r->cnt[s];
        d->sess_id[s] = (int32_t)s;
        if (r->unsorted[s] && r->cnt[s] > max_unsorted) max_unsorted = r->cnt[s];
        r->cnt[s] = 0; /* reused as the write cursor */
    }
    for (size_t b = 0; b < r->n_blocks; b++) {
        size_t n = b + 1 < r->n_blocks ? RD_BLOCK : r->n_ev - b * RD_BLOCK;
        const ev *x = r->blocks[b];
        for (size_t k = 0; k < n; k++) {
            size_t pos = (size_t)off[x[k].sess] + r->cnt[x[k].sess]++;
            d->s.items[pos] = x[k].item;
            d->s.times[pos] = x[k].t;
        }
        free(r->blocks[b]);
        r->blocks[b] = NULL;
    }
    if (max_unsorted > 32) {
        double *tt = rr_malloc_n(max_unsorted, sizeof *tt);
        int32_t *ti = rr_malloc_n(max_unsorted, sizeof *ti);
        if (!tt || !ti) {
            free(tt);
            free(ti);
            return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", r->name);
        }
        for (size_t s = 0; s < ns; s++)
            if (r->unsorted[s])
                sort_session(d->s.times + off[s], d->s.items + off[s], (size_t)(off[s + 1] - off[s]),
                             tt, ti);
        free(tt);
        free(ti);
    } else {
        for (size_t s = 0; s < ns; s++)
            if (r->unsorted[s])
                sort_session(d->s.times + off[s], d->s.items + off[s], (size_t)(off[s + 1] - off[s]),
                             NULL, NULL);
    }
    return RR_OK;
}

static char sep_from_name(const char *path) {
    size_t n = strlen(path);
    if (n > 3 && !strcmp(path + n - 3, ".gz")) n -= 3;
    if (n >= 4 && !strncmp(path + n - 4, ".csv", 4)) return ',';
    return '\t'; /* .tsv, .txt, .inter, unknown */
}

static void reader_free(reader *r) {
    for (size_t b = 0; b < r->n_blocks; b++) free(r->blocks[b]);
    free(r->blocks);
    free(r->cnt);
    free(r->last_t);
    free(r->unsorted);
    idmap_free(&r->sess_map);
    idmap_free(&r->item_map);
}

/* Handles one complete line [p, nl) where *nl == '\n': the header (the
 * first non-blank line) or a data row. */
static rr_status do_line(reader *r, const rr_read_opts *o, char *p, char *nl, rr_error *err) {
    r->line++;
    char *e = nl;
    if (e > p && e[-1] == '\r') *--e = '\n';
    if ((size_t)(e - p) > RD_LINE_MAX)
        return rr_err(err, RR_ERR_PARSE, "%s:%zu:1: expected a line of at most %zu bytes, found %zu",
                      r->name, r->line, RD_LINE_MAX, (size_t)(e - p));
    if (!r->have_header) {
        if (r->line == 1 && e - p >= 3 && (unsigned char)p[0] == 0xef &&
            (unsigned char)p[1] == 0xbb && (unsigned char)p[2] == 0xbf)
            p += 3; /* UTF-8 byte order mark */
        if (e == p) return RR_OK; /* blank lines before the header */
        r->have_header = 1;
        return parse_header(r, p, e, o, err);
    }
    if (e == p) return RR_OK; /* blank line */
    return parse_row(r, p, e, err);
}

rr_status rr_dataset_read(const char *path, const rr_read_opts *opts, rr_dataset **out,
                          rr_error *err) {
    *out = NULL;
    rr_read_opts dflt;
    if (!opts) {
        rr_read_opts_default(&dflt);
        opts = &dflt;
    }
    if (!path) return rr_err(err, RR_ERR_ARG, "no input path");
    reader r;
    memset(&r, 0, sizeof r);
    r.name = strcmp(path, "-") ? path : "<stdin>";
    r.sep = opts->sep ? opts->sep : sep_from_name(path);
    r.sep_explicit = opts->sep != 0;
    if (r.sep == '"' || r.sep == '\n' || r.sep == '\r')
        return rr_err(err, RR_ERR_ARG, "invalid separator");
    r.prev_idx = -1;
    r.max_bad = opts->max_bad_rows;
    r.d = rr_dataset_new();
    if (!r.d) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    src s;
    rr_status st = src_open(&s, path, err);
    struct stat sb;
    if (st == RR_OK && !s.gz && fstat(s.fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
        /* A low estimate of the sessions (rows are rarely under ~24 bytes,
         * sessions rarely under ~5 rows) saves most rehashing. */
        size_t est = (size_t)sb.st_size / 128;
        if (est > 1024) st = rr_vocab_reserve(&r.d->sessions, est, err);
    }
    char *buf = NULL;
    size_t cap = RD_CHUNK + RD_LINE_MAX + 1, len = 0;
    if (st == RR_OK) {
        buf = malloc(cap + RD_PAD);
        if (!buf) st = rr_err(err, RR_ERR_NOMEM, "%s: out of memory", r.name);
    }
    int eof = 0;
    while (st == RR_OK && !eof) {
        size_t got;
        st = src_read(&s, buf + len, cap - 1 - len, &got, err);
        if (st) break;
        len += got;
        if (got == 0) {
            eof = 1;
            if (len && buf[len - 1] != '\n') buf[len++] = '\n'; /* last line without newline */
        }
        memset(buf + len, 0, RD_PAD);
        char *p = buf, *end = buf + len;
        char *nl;
        while (st == RR_OK && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
            int is_row = r.have_header;
            rr_status ls = do_line(&r, opts, p, nl, err);
            if (ls == RR_ERR_PARSE && is_row && r.n_bad < r.max_bad) {
                r.n_bad++;
                if (r.n_bad <= RD_LOG_BAD) rr_log(1, "skipping bad row: %s", err ? err->msg : "");
                ls = RR_OK;
            }
            st = ls;
            p = nl + 1;
        }
        if (st) break;
        size_t tail = (size_t)(end - p);
        if (tail > RD_LINE_MAX) {
            st = rr_err(err, RR_ERR_PARSE, "%s:%zu:1: expected a line of at most %zu bytes, found longer",
                        r.name, r.line + 1, RD_LINE_MAX);
            break;
        }
        memmove(buf, p, tail);
        len = tail;
    }
    if (st == RR_ERR_PARSE && s.gz && buf) {
        rr_error gerr;
        if (src_check_rest(&s, buf, cap - 1, &gerr) != RR_OK) {
            st = gerr.status;
            if (err) *err = gerr;
        }
    }
    if (st == RR_OK && r.n_bad > RD_LOG_BAD)
        rr_log(1, "%s: skipped %zu bad rows in all", r.name, r.n_bad);
    if (st == RR_OK && !r.have_header)
        st = rr_err(err, RR_ERR_EMPTY, "%s: empty file: expected a header row", r.name);
    if (st == RR_OK && r.n_ev == 0)
        st = rr_err(err, RR_ERR_EMPTY, "%s: no data rows after the header%s", r.name,
                    r.n_bad ? " (all rows were bad)" : "");
    free(buf);
    src_close(&s);
    if (st == RR_OK) st = build_csr(&r, err);
    reader_free(&r);
    if (st) {
        rr_dataset_free(r.d);
        return st;
    }
    r.d->n_bad_rows = r.n_bad;
    *out = r.d;
    return RR_OK;
}
