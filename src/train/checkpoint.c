/* checkpoint.c - training checkpoints: the file, its writer and its
 * validating reader.  The fingerprint of a run and the "name=value" text
 * are in ckpt_text.c, the checkpoint folder in ckpt_dir.c.
 *
 * Layout, format version 1 (integers little-endian; docs/checkpoints.md
 * says the same for people who write other readers):
 *
 *   offset  size  field
 *   0       8     magic: 'R' 'R' 'C' 'K' 'P' 'T' 0x00 0x1a
 *   8       4     u32 format version (1)
 *   12      4     u32 header_len = 32 + 56 * n_sections
 *   16      4     u32 n_sections (1..65536)
 *   20      4     u32 header CRC-32C of bytes [0, header_len), this field 0
 *   24      8     u64 file_len: total bytes of the file
 *   32      56*n  section table, in file order:
 *                   +0  32  name, NUL-padded (1..31 printable ASCII bytes)
 *                   +32  4  u32 dtype (0 bytes, 1 f32, 4 i64: rr_dtype)
 *                   +36  4  u32 CRC-32C of the section's bytes
 *                   +40  8  u64 offset, a multiple of 64, >= header_len
 *                   +48  8  u64 length in bytes, a multiple of the dtype size
 *   then the sections at their offsets, zero padding between them, in
 *   increasing order without overlap; the last ends at file_len.
 *
 * Sections:
 *   "fingerprint"   bytes: "name=value\n" lines (rr_ckpt_fingerprint)
 *   "state"         bytes: "name=value\n" lines, the scalars of rr_ckpt
 *                   (doubles with the fewest digits that read back exactly;
 *                   RNG states as four 16-digit hex words) and the layout
 *                   they belong to (n_params, n_moments, L, state widths,
 *                   B, n_streams) and, per stream r, "s<r>.n", "s<r>.next",
 *                   "s<r>.rng"
 *   "weights"       f32 (n_params)
 *   "moment1", "moment2"  f32 (n_params), as many as the optimiser has
 *                   (a bfloat16 velocity is written widened to f32: the
 *                   format does not depend on --momentum-dtype)
 *   "best"          f32 (n_params), when the best epoch's weights exist
 *   "s<r>.slot_sess", "s<r>.slot_pos"  i64 (n) of stream r
 *   "s<r>.state<l>" f32 (n, state_width[l]) of stream r, layer l
 *
 * The writer streams every section from the trainer's own buffers (a
 * 285 MB state is never copied); CRCs are computed first, so the header
 * goes out before the data.  The reader checks the structure and every
 * section's CRC before it parses or copies anything, then the fingerprint,
 * then every value against the caller's layout and the data. */
#include "train/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/container.h"
#include "train/ckpt_text.h"
#include "train/optim.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c writes float and i64 sections in the machine's byte order: little-endian only"
#endif
_Static_assert(sizeof(size_t) == 8, "slot arrays are written as 64-bit integers straight from size_t");

#define FMT_VERSION 1u
#define HDR_FIXED 32u
#define ENTRY 56u
#define NAME_FIELD 32u
#define MAX_SECTIONS 65536u
#define ALIGN 64u
#define TEXT_MAX ((size_t)1 << 20) /* a text section larger than this is not ours */

static const unsigned char MAGIC[8] = {'R', 'R', 'C', 'K', 'P', 'T', 0x00, 0x1a};

static size_t dtype_size(uint32_t dt) {
    switch (dt) {
    case RR_DT_BYTES: return 1;
    case RR_DT_F32: return 4;
    case RR_DT_I64: return 8;
    default: return 0;
    }
}

/* ---------------------------------------------------- state text values */

static rr_status kv_u64(const rr_ckkv *k, const char *key, uint64_t *out, rr_error *err) {
    const char *v = rr_ckkv_get(k, key);
    if (!v) return rr_err(err, RR_ERR_FORMAT, "checkpoint state: '%s' missing", key);
    if (*v < '0' || *v > '9') return rr_err(err, RR_ERR_FORMAT, "checkpoint state: %s=%s is not a count", key, v);
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end) return rr_err(err, RR_ERR_FORMAT, "checkpoint state: %s=%s is not a count", key, v);
    *out = (uint64_t)x;
    return RR_OK;
}

static rr_status kv_size(const rr_ckkv *k, const char *key, size_t max, size_t *out, rr_error *err) {
    uint64_t x;
    rr_status s = kv_u64(k, key, &x, err);
    if (s) return s;
    if (x > max) return rr_err(err, RR_ERR_RANGE, "checkpoint state: %s=%" PRIu64 ", at most %zu", key, x, max);
    *out = (size_t)x;
    return RR_OK;
}

static rr_status kv_double(const rr_ckkv *k, const char *key, double *out, rr_error *err) {
    const char *v = rr_ckkv_get(k, key);
    if (!v) return rr_err(err, RR_ERR_FORMAT, "checkpoint state: '%s' missing", key);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !isfinite(x))
        return rr_err(err, RR_ERR_FORMAT, "checkpoint state: %s=%s is not a finite number", key, v);
    *out = x;
    return RR_OK;
}

static rr_status kv_rng(const rr_ckkv *k, const char *key, rr_rng *out, rr_error *err) {
    const char *v = rr_ckkv_get(k, key);
    if (!v) return rr_err(err, RR_ERR_FORMAT, "checkpoint state: '%s' missing", key);
    uint64_t w[4];
    const char *p = v;
    for (int i = 0; i < 4; i++) {
        w[i] = 0;
        for (int j = 0; j < 16; j++, p++) {
            int c = *p, d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return rr_err(err, RR_ERR_FORMAT, "checkpoint state: %s is not 4 hex words", key);
            w[i] = w[i] << 4 | (uint64_t)d;
        }
        if (*p != (i < 3 ? ',' : 0)) return rr_err(err, RR_ERR_FORMAT, "checkpoint state: %s is not 4 hex words", key);
        p++;
    }
    if (!(w[0] | w[1] | w[2] | w[3]))
        return rr_err(err, RR_ERR_RANGE, "checkpoint state: %s is the all-zero generator state", key);
    memcpy(out->s, w, sizeof w);
    return RR_OK;
}

static void tx_rng(rr_cktx *t, const char *key, const rr_rng *r) {
    rr_cktx_add(t, "%s=%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 "\n", key, r->s[0], r->s[1], r->s[2],
                r->s[3]);
}

/* -------------------------------------------------------------- writer */

typedef struct wsect {
    char name[NAME_FIELD];
    uint32_t dtype, crc;
    uint64_t off, len;
    const void *data;
    const uint16_t *bf16;  /* instead of data: len / 4 bfloat16 values written as f32 */
} wsect;

/* bfloat16 <-> f32 conversions in chunks of this many values (64 KB) */
#define WIDEN_CHUNK 16384

static void widen_bf16(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = rr_bf16_to_f32(src[i]);
}

/* CRC-32C of n bfloat16 values as the f32 bytes the file holds. */
static uint32_t crc_bf16_widened(const uint16_t *src, size_t n) {
    float buf[WIDEN_CHUNK];
    uint32_t c = 0;
    for (size_t o = 0; o < n; o += WIDEN_CHUNK) {
        size_t k = n - o < WIDEN_CHUNK ? n - o : WIDEN_CHUNK;
        widen_bf16(buf, src + o, k);
        c = rr_crc32c(c, buf, k * sizeof(float));
    }
    return c;
}

typedef struct wfile {
    wsect *s;
    size_t n, cap;
    uint64_t end;          /* file length so far */
    bool oom;
    const char *path;      /* for messages */
} wfile;

static void wf_add(wfile *w, const char *name, uint32_t dtype, const void *data, size_t bytes) {
    if (w->oom) return;
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 32;
        wsect *g = rr_realloc_n(w->s, nc, sizeof *g);
        if (!g) {
            w->oom = true;
            return;
        }
        w->s = g;
        w->cap = nc;
    }
    wsect *e = &w->s[w->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dtype;
    e->data = data;
    e->len = bytes;
}

static rr_status wf_write(FILE *f, void *user, rr_error *err) {
    wfile *w = user;
    size_t hl = HDR_FIXED + ENTRY * w->n;
    unsigned char *h = calloc(1, hl);
    if (!h) return rr_err(err, RR_ERR_NOMEM, "out of memory for the checkpoint header");
    memcpy(h, MAGIC, 8);
    rr_le_put32(h + 8, FMT_VERSION);
    rr_le_put32(h + 12, (uint32_t)hl);
    rr_le_put32(h + 16, (uint32_t)w->n);
    rr_le_put64(h + 24, w->end);
    for (size_t i = 0; i < w->n; i++) {
        unsigned char *e = h + HDR_FIXED + ENTRY * i;
        memcpy(e, w->s[i].name, NAME_FIELD);
        rr_le_put32(e + 32, w->s[i].dtype);
        rr_le_put32(e + 36, w->s[i].crc);
        rr_le_put64(e + 40, w->s[i].off);
        rr_le_put64(e + 48, w->s[i].len);
    }
    rr_le_put32(h + 20, rr_crc32c(0, h, hl));
    static const unsigned char zeros[ALIGN];
    uint64_t at = hl;
    bool ok = fwrite(h, 1, hl, f) == hl;
    free(h);
    for (size_t i = 0; i < w->n && ok; i++) {
        size_t pad = (size_t)(w->s[i].off - at);
        ok = fwrite(zeros, 1, pad, f) == pad;
        if (w->s[i].bf16) {
            float buf[WIDEN_CHUNK];
            size_t n = (size_t)(w->s[i].len / sizeof(float));
            for (size_t o = 0; o < n && ok; o += WIDEN_CHUNK) {
                size_t k = n - o < WIDEN_CHUNK ? n - o : WIDEN_CHUNK;
                widen_bf16(buf, w->s[i].bf16 + o, k);
                ok = fwrite(buf, sizeof(float), k, f) == k;
            }
        } else {
            ok = ok && (w->s[i].len == 0 || fwrite(w->s[i].data, 1, (size_t)w->s[i].len, f) == w->s[i].len);
        }
        at = w->s[i].off + w->s[i].len;
    }
    if (!ok) return rr_err(err, RR_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    return RR_OK;
}

rr_status rr_ckpt_write(const char *dir, uint64_t seq, const rr_ckpt *c, const rr_ckpt_layout *lay,
                        rr_error *err) {
    char path[4096];
    if (!rr_ckpt_path(path, sizeof path, dir, seq)) return rr_err(err, RR_ERR_ARG, "%s: folder name too long", dir);
    if (c->n_streams != lay->n_streams || lay->n_streams == 0 || lay->n_streams > RR_CKPT_MAX_STREAMS)
        return rr_err(err, RR_ERR_INTERNAL, "checkpoint: %zu streams, layout says %zu", c->n_streams,
                      lay->n_streams);
    rr_cktx st = {0};
    rr_cktx_add(&st, "n_params=%zu\nn_moments=%d\nL=%zu\nstate_width=", lay->n_params, lay->n_moments, lay->L);
    for (size_t l = 0; l < lay->L; l++) rr_cktx_add(&st, "%s%zu", l ? "," : "", lay->state_width[l]);
    rr_cktx_add(&st, "\nB=%zu\nn_streams=%zu\n", lay->B, c->n_streams);
    rr_cktx_add(&st, "t=%" PRIu64 "\nsteps_total=%" PRIu64 "\nepoch=%zu\nin_epoch=%d\n", c->t, c->steps_total, c->epoch,
                c->in_epoch ? 1 : 0);
    rr_cktx_dbl(&st, "loss_sum", c->loss_sum);
    rr_cktx_add(&st, "events=%zu\nsteps=%zu\n", c->events, c->steps);
    rr_cktx_dbl(&st, "best_score", c->best_score);
    rr_cktx_dbl(&st, "best_mrr", c->best_mrr);
    rr_cktx_dbl(&st, "last_loss", c->last_loss);
    rr_cktx_add(&st, "best_epoch=%zu\nsince_best=%zu\nepochs_run=%zu\nlog_bytes=%" PRIu64 "\n", c->best_epoch,
                c->since_best, c->epochs_run, c->log_bytes);
    rr_cktx_add(&st, "has_best=%d\nsampler=%d\n", c->has_best ? 1 : 0, c->has_sampler ? 1 : 0);
    if (c->has_sampler) {
        tx_rng(&st, "sampler.rng", &c->sampler.rng);
        rr_cktx_add(&st, "sampler.refills=%" PRIu64 "\nsampler.cursor=%" PRIu64 "\n", c->sampler.refills,
                    c->sampler.cursor);
    }
    for (size_t r = 0; r < c->n_streams; r++) {
        char key[32];
        rr_cktx_add(&st, "s%zu.n=%zu\ns%zu.next=%zu\n", r, c->streams[r].n, r, c->streams[r].next);
        snprintf(key, sizeof key, "s%zu.rng", r);
        tx_rng(&st, key, &c->streams[r].rng);
    }
    wfile w = {0};
    w.path = path;
    const size_t pb = lay->n_params * sizeof(float); /* fits: the trainer allocated it */
    wf_add(&w, "fingerprint", RR_DT_BYTES, c->fingerprint, strlen(c->fingerprint));
    wf_add(&w, "state", RR_DT_BYTES, st.s, st.len);
    wf_add(&w, "weights", RR_DT_F32, c->weights, pb);
    for (int k = 0; k < lay->n_moments; k++) {
        wf_add(&w, k ? "moment2" : "moment1", RR_DT_F32, c->moment[k], pb);
        if (k == 1 && c->moment2_bf16 && !w.oom) w.s[w.n - 1].bf16 = c->moment2_bf16;
    }
    if (c->has_best) wf_add(&w, "best", RR_DT_F32, c->best, pb);
    for (size_t r = 0; r < c->n_streams; r++) {
        const rr_ckpt_stream *q = &c->streams[r];
        char name[NAME_FIELD];
        snprintf(name, sizeof name, "s%zu.slot_sess", r);
        wf_add(&w, name, RR_DT_I64, q->slot_sess, q->n * sizeof(size_t));
        snprintf(name, sizeof name, "s%zu.slot_pos", r);
        wf_add(&w, name, RR_DT_I64, q->slot_pos, q->n * sizeof(size_t));
        for (size_t l = 0; l < lay->L; l++) {
            snprintf(name, sizeof name, "s%u.state%u", (unsigned)r, (unsigned)l); /* r < 4096, l < 8 */
            wf_add(&w, name, RR_DT_F32, q->state[l], q->n * lay->state_width[l] * sizeof(float));
        }
    }
    rr_status s = RR_OK;
    if (st.oom || w.oom) s = rr_err(err, RR_ERR_NOMEM, "%s: out of memory", path);
    if (!s) {
        uint64_t at = HDR_FIXED + (uint64_t)ENTRY * w.n;
        for (size_t i = 0; i < w.n; i++) {
            at = (at + ALIGN - 1) / ALIGN * ALIGN;
            w.s[i].off = at;
            w.s[i].crc = w.s[i].bf16 ? crc_bf16_widened(w.s[i].bf16, (size_t)(w.s[i].len / sizeof(float)))
                                     : rr_crc32c(0, w.s[i].data, (size_t)w.s[i].len);
            at += w.s[i].len;
        }
        w.end = at;
        s = rr_write_atomic(path, wf_write, &w, err);
    }
    free(st.s);
    free(w.s);
    if (s) return s;
    /* the new one is durable: drop all but the RR_CKPT_KEEP newest */
    uint64_t seqs[64];
    size_t n;
    for (;;) {
        if (rr_ckpt_list(dir, seqs, 64, &n, NULL) || n <= RR_CKPT_KEEP) break;
        size_t gone = 0;
        for (size_t i = RR_CKPT_KEEP; i < n; i++) {
            char old[4096];
            if (rr_ckpt_path(old, sizeof old, dir, seqs[i]) && unlink(old) == 0) gone++;
        }
        if (n < 64 || gone == 0) break;
    }
    return RR_OK;
}

/* -------------------------------------------------------------- reader */

typedef struct rsect {
    char name[NAME_FIELD];
    uint32_t dtype, crc;
    uint64_t off, len;
} rsect;

typedef struct rfile {
    FILE *f;
    const char *path;
    uint64_t len;
    size_t n;
    rsect *s;
} rfile;

static void rf_close(rfile *r) {
    if (r->f) fclose(r->f);
    free(r->s);
    memset(r, 0, sizeof *r);
}

static rr_status rf_read_at(rfile *r, uint64_t off, void *dst, size_t n, rr_error *err) {
    if (fseeko(r->f, (off_t)off, SEEK_SET) != 0 || fread(dst, 1, n, r->f) != n)
        return rr_err(err, ferror(r->f) ? RR_ERR_IO : RR_ERR_TRUNCATED, "%s: read failed at byte %" PRIu64 "%s%s",
                      r->path, off, ferror(r->f) ? ": " : " (file shorter than its header says)",
                      ferror(r->f) ? strerror(errno) : "");
    return RR_OK;
}

/* Opens path and checks everything but the section contents' meaning:
 * header, table and every section's CRC. */
static rr_status rf_open(rfile *r, const char *path, rr_error *err) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->f = fopen(path, "rb");
    if (!r->f) return rr_err(err, RR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(r->f), &sb) != 0 || !S_ISREG(sb.st_mode))
        return rr_err(err, RR_ERR_IO, "%s: not a regular file", path);
    uint64_t flen = (uint64_t)sb.st_size;
    unsigned char h[HDR_FIXED];
    if (flen < HDR_FIXED) return rr_err(err, RR_ERR_TRUNCATED, "%s: %" PRIu64 " bytes, shorter than a header", path, flen);
    rr_status s = rf_read_at(r, 0, h, HDR_FIXED, err);
    if (s) return s;
    if (memcmp(h, MAGIC, 8)) return rr_err(err, RR_ERR_FORMAT, "%s: not an rnnrec checkpoint (bad magic)", path);
    uint32_t ver = rr_le_get32(h + 8), hl = rr_le_get32(h + 12), n = rr_le_get32(h + 16), hcrc = rr_le_get32(h + 20);
    uint64_t len = rr_le_get64(h + 24);
    if (ver > FMT_VERSION)
        return rr_err(err, RR_ERR_VERSION, "%s: checkpoint format %" PRIu32 ", this build reads up to %u", path, ver,
                      FMT_VERSION);
    if (ver == 0) return rr_err(err, RR_ERR_FORMAT, "%s: checkpoint format version 0", path);
    if (n == 0 || n > MAX_SECTIONS || hl != HDR_FIXED + ENTRY * (uint64_t)n)
        return rr_err(err, RR_ERR_FORMAT, "%s: header length %" PRIu32 " does not fit %" PRIu32 " sections", path, hl, n);
    if (len != flen)
        return rr_err(err, len > flen ? RR_ERR_TRUNCATED : RR_ERR_FORMAT,
                      "%s: %" PRIu64 " bytes, the header says %" PRIu64 "%s", path, flen, len,
                      len > flen ? " (truncated)" : "");
    if (hl > flen) return rr_err(err, RR_ERR_TRUNCATED, "%s: header longer than the file", path);
    unsigned char *hdr = malloc(hl);
    r->s = rr_calloc_n(n, sizeof *r->s);
    if (!hdr || !r->s) {
        free(hdr);
        return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", path);
    }
    s = rf_read_at(r, 0, hdr, hl, err);
    if (!s) {
        rr_le_put32(hdr + 20, 0);
        uint32_t c = rr_crc32c(0, hdr, hl);
        if (c != hcrc) s = rr_err(err, RR_ERR_CHECKSUM, "%s: header checksum %08" PRIx32 ", stored %08" PRIx32, path, c, hcrc);
    }
    uint64_t at = hl;
    for (uint32_t i = 0; i < n && !s; i++) {
        const unsigned char *e = hdr + HDR_FIXED + ENTRY * (size_t)i;
        rsect *q = &r->s[i];
        memcpy(q->name, e, NAME_FIELD);
        size_t nl = strnlen(q->name, NAME_FIELD);
        bool name_ok = nl > 0 && nl < NAME_FIELD;
        for (size_t j = 0; j < nl; j++) name_ok = name_ok && q->name[j] > 0x20 && q->name[j] < 0x7f;
        for (size_t j = nl; j < NAME_FIELD; j++) name_ok = name_ok && q->name[j] == 0;
        if (!name_ok) {
            s = rr_err(err, RR_ERR_FORMAT, "%s: section %" PRIu32 " has a malformed name", path, i);
            break;
        }
        for (uint32_t j = 0; j < i && !s; j++)
            if (!strcmp(r->s[j].name, q->name))
                s = rr_err(err, RR_ERR_FORMAT, "%s: section '%s' appears twice", path, q->name);
        q->dtype = rr_le_get32(e + 32);
        q->crc = rr_le_get32(e + 36);
        q->off = rr_le_get64(e + 40);
        q->len = rr_le_get64(e + 48);
        size_t es = dtype_size(q->dtype);
        if (!s && es == 0) s = rr_err(err, RR_ERR_FORMAT, "%s: section '%s': unknown type %" PRIu32, path, q->name, q->dtype);
        if (!s && (q->off % ALIGN || q->off < at || q->off > len || q->len > len - q->off || q->len % es))
            s = rr_err(err, RR_ERR_FORMAT, "%s: section '%s': offset %" PRIu64 " / length %" PRIu64 " out of place",
                       path, q->name, q->off, q->len);
        if (!s) at = q->off + q->len;
    }
    free(hdr);
    if (!s && at != len) s = rr_err(err, RR_ERR_FORMAT, "%s: %" PRIu64 " bytes after the last section", path, len - at);
    if (s) return s;
    r->n = n;
    r->len = len;
    /* every section's CRC and the zero padding before it, in one
     * streaming pass: no byte of the file goes unchecked */
    size_t bufsz = (size_t)1 << 20;
    unsigned char *buf = malloc(bufsz);
    if (!buf) return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", path);
    uint64_t prev_end = hl;
    for (size_t i = 0; i < r->n && !s; i++) {
        size_t pad = (size_t)(r->s[i].off - prev_end); /* < ALIGN: offsets are the next aligned ones */
        if (pad >= ALIGN) s = rr_err(err, RR_ERR_FORMAT, "%s: %zu bytes of padding before section '%s'", path, pad, r->s[i].name);
        if (!s && pad) s = rf_read_at(r, prev_end, buf, pad, err);
        for (size_t j = 0; j < pad && !s; j++)
            if (buf[j]) s = rr_err(err, RR_ERR_CHECKSUM, "%s: damaged padding before section '%s'", path, r->s[i].name);
        prev_end = r->s[i].off + r->s[i].len;
        uint32_t c = 0;
        for (uint64_t o = 0; o < r->s[i].len && !s; o += bufsz) {
            size_t k = r->s[i].len - o < bufsz ? (size_t)(r->s[i].len - o) : bufsz;
            s = rf_read_at(r, r->s[i].off + o, buf, k, err);
            if (!s) c = rr_crc32c(c, buf, k);
        }
        if (!s && c != r->s[i].crc)
            s = rr_err(err, RR_ERR_CHECKSUM, "%s: section '%s': checksum %08" PRIx32 ", stored %08" PRIx32, path,
                       r->s[i].name, c, r->s[i].crc);
    }
    free(buf);
    return s;
}

static const rsect *rf_find(const rfile *r, const char *name) {
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->s[i].name, name)) return &r->s[i];
    return NULL;
}

/* Section name of type dt with exactly bytes bytes into dst. */
static rr_status rf_get(rfile *r, const char *name, uint32_t dt, size_t bytes, void *dst, rr_error *err) {
    const rsect *q = rf_find(r, name);
    if (!q) return rr_err(err, RR_ERR_FORMAT, "%s: section '%s' missing", r->path, name);
    if (q->dtype != dt || q->len != bytes)
        return rr_err(err, RR_ERR_RANGE, "%s: section '%s' holds %" PRIu64 " bytes of type %" PRIu32 ", expected %zu of type %" PRIu32,
                      r->path, name, q->len, q->dtype, bytes, dt);
    if (bytes == 0) return RR_OK;
    rr_status s = rf_read_at(r, q->off, dst, bytes, err);
    /* read twice (checked at open, copied now): the file may not change in between */
    if (!s && rr_crc32c(0, dst, bytes) != q->crc)
        s = rr_err(err, RR_ERR_CHECKSUM, "%s: section '%s' changed while being read", r->path, name);
    return s;
}

/* Section name, f32 of exactly n values, rounded into dst as bfloat16
 * (exact when they were written from bfloat16), in chunks: no f32 copy of
 * the whole table. */
static rr_status rf_get_bf16(rfile *r, const char *name, size_t n, uint16_t *dst, rr_error *err) {
    const rsect *q = rf_find(r, name);
    if (!q) return rr_err(err, RR_ERR_FORMAT, "%s: section '%s' missing", r->path, name);
    if (q->dtype != RR_DT_F32 || q->len != (uint64_t)n * sizeof(float))
        return rr_err(err, RR_ERR_RANGE, "%s: section '%s' holds %" PRIu64 " bytes of type %" PRIu32 ", expected %zu of type %" PRIu32,
                      r->path, name, q->len, q->dtype, n * sizeof(float), (uint32_t)RR_DT_F32);
    float buf[WIDEN_CHUNK];
    uint32_t c = 0;
    rr_status s = RR_OK;
    for (size_t o = 0; o < n && !s; o += WIDEN_CHUNK) {
        size_t k = n - o < WIDEN_CHUNK ? n - o : WIDEN_CHUNK;
        s = rf_read_at(r, q->off + (uint64_t)o * sizeof(float), buf, k * sizeof(float), err);
        if (s) break;
        c = rr_crc32c(c, buf, k * sizeof(float));
        for (size_t i = 0; i < k; i++) dst[o + i] = rr_bf16_from_f32(buf[i]);
    }
    if (!s && c != q->crc) s = rr_err(err, RR_ERR_CHECKSUM, "%s: section '%s' changed while being read", r->path, name);
    return s;
}

/* A text section, NUL-terminated, malloc'ed. */
static rr_status rf_text(rfile *r, const char *name, char **out, size_t *len, rr_error *err) {
    *out = NULL;
    const rsect *q = rf_find(r, name);
    if (!q) return rr_err(err, RR_ERR_FORMAT, "%s: section '%s' missing", r->path, name);
    if (q->dtype != RR_DT_BYTES || q->len > TEXT_MAX)
        return rr_err(err, RR_ERR_FORMAT, "%s: section '%s' is not a text of at most %zu bytes", r->path, name, TEXT_MAX);
    char *t = malloc((size_t)q->len + 1);
    if (!t) return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", r->path);
    rr_status s = rf_get(r, name, RR_DT_BYTES, (size_t)q->len, t, err);
    if (s) {
        free(t);
        return s;
    }
    t[q->len] = 0;
    if (strlen(t) != q->len) {
        free(t);
        return rr_err(err, RR_ERR_FORMAT, "%s: section '%s' holds a NUL byte", r->path, name);
    }
    *out = t;
    *len = (size_t)q->len;
    return RR_OK;
}

/* The layout lines of the state must be the caller's exactly. */
static rr_status check_layout(const rr_ckkv *k, const rr_ckpt_layout *lay, const char *path, rr_error *err) {
    rr_cktx want = {0};
    rr_cktx_add(&want, "%zu|%d|%zu|", lay->n_params, lay->n_moments, lay->L);
    for (size_t l = 0; l < lay->L; l++) rr_cktx_add(&want, "%s%zu", l ? "," : "", lay->state_width[l]);
    rr_cktx_add(&want, "|%zu|%zu", lay->B, lay->n_streams);
    const char *names[6] = {"n_params", "n_moments", "L", "state_width", "B", "n_streams"};
    rr_cktx got = {0};
    for (int i = 0; i < 6; i++) {
        const char *v = rr_ckkv_get(k, names[i]);
        rr_cktx_add(&got, "%s%s", i ? "|" : "", v ? v : "?");
    }
    rr_status s = RR_OK;
    if (want.oom || got.oom) s = rr_err(err, RR_ERR_NOMEM, "out of memory");
    else if (strcmp(want.s, got.s))
        s = rr_err(err, RR_ERR_RANGE,
                   "%s: saved for another model or batch layout (n_params|n_moments|L|state widths|B|streams: "
                   "%s, this run: %s)",
                   path, got.s, want.s);
    free(want.s);
    free(got.s);
    return s;
}

static rr_status read_state(rfile *r, const rr_ckkv *k, const rr_ckpt_layout *lay, rr_ckpt *c, rr_error *err) {
    const char *path = r->path;
    rr_status s = check_layout(k, lay, path, err);
    if (s) return s;
    size_t in_epoch = 0, has_best = 0, has_sampler = 0;
    s = kv_u64(k, "t", &c->t, err);
    if (!s) s = kv_u64(k, "steps_total", &c->steps_total, err);
    if (!s) s = kv_size(k, "epoch", lay->epochs_max, &c->epoch, err);
    if (!s) s = kv_size(k, "in_epoch", 1, &in_epoch, err);
    if (!s) s = kv_double(k, "loss_sum", &c->loss_sum, err);
    if (!s) s = kv_size(k, "events", SIZE_MAX, &c->events, err);
    if (!s) s = kv_size(k, "steps", SIZE_MAX, &c->steps, err);
    if (!s) s = kv_double(k, "best_score", &c->best_score, err);
    if (!s) s = kv_double(k, "best_mrr", &c->best_mrr, err);
    if (!s) s = kv_double(k, "last_loss", &c->last_loss, err);
    if (!s) s = kv_size(k, "best_epoch", lay->epochs_max, &c->best_epoch, err);
    if (!s) s = kv_size(k, "since_best", lay->epochs_max, &c->since_best, err);
    if (!s) s = kv_size(k, "epochs_run", lay->epochs_max, &c->epochs_run, err);
    if (!s) s = kv_u64(k, "log_bytes", &c->log_bytes, err);
    if (!s) s = kv_size(k, "has_best", 1, &has_best, err);
    if (!s) s = kv_size(k, "sampler", 1, &has_sampler, err);
    if (s) {
        rr_err_prefix(err, "%s", path);
        return s;
    }
    c->in_epoch = (int)in_epoch;
    c->has_best = (int)has_best;
    c->has_sampler = (int)has_sampler;
    /* consistency of the counters among themselves */
    if (c->epochs_run > c->epoch || c->best_epoch > c->epochs_run || c->since_best > c->epochs_run ||
        c->steps > c->steps_total || c->t > c->steps_total)
        return rr_err(err, RR_ERR_RANGE,
                      "%s: inconsistent counters (epoch %zu, epochs run %zu, best epoch %zu, since best %zu, "
                      "steps %zu of %" PRIu64 ", optimiser steps %" PRIu64 ")",
                      path, c->epoch, c->epochs_run, c->best_epoch, c->since_best, c->steps, c->steps_total, c->t);
    if (c->has_best && (!lay->can_have_best || c->best_epoch == 0))
        return rr_err(err, RR_ERR_RANGE, "%s: best weights saved without a best epoch or a validation set", path);
    if (!c->has_best && c->best_epoch)
        return rr_err(err, RR_ERR_RANGE, "%s: best epoch %zu but no best weights", path, c->best_epoch);
    if (c->has_sampler != lay->has_sampler)
        return rr_err(err, RR_ERR_RANGE, "%s: %s, but this run draws %s", path,
                      c->has_sampler ? "sampler position saved" : "no sampler position",
                      lay->has_sampler ? "negatives" : "no negatives");
    if (c->has_sampler) {
        s = kv_rng(k, "sampler.rng", &c->sampler.rng, err);
        if (!s) s = kv_u64(k, "sampler.refills", &c->sampler.refills, err);
        if (!s) s = kv_u64(k, "sampler.cursor", &c->sampler.cursor, err);
        if (s) {
            rr_err_prefix(err, "%s", path);
            return s;
        }
    }
    const size_t pb = lay->n_params * sizeof(float);
    s = rf_get(r, "weights", RR_DT_F32, pb, c->weights, err);
    for (int m = 0; m < lay->n_moments && !s; m++) {
        if (m == 1 && c->moment2_bf16) s = rf_get_bf16(r, "moment2", lay->n_params, c->moment2_bf16, err);
        else s = rf_get(r, m ? "moment2" : "moment1", RR_DT_F32, pb, c->moment[m], err);
    }
    if (!s && (rf_find(r, "moment1") != NULL) + (rf_find(r, "moment2") != NULL) != lay->n_moments)
        s = rr_err(err, RR_ERR_RANGE, "%s: optimiser moments of another optimiser", path);
    if (!s && c->has_best) s = rf_get(r, "best", RR_DT_F32, pb, c->best, err);
    if (!s && !c->has_best && rf_find(r, "best")) s = rr_err(err, RR_ERR_RANGE, "%s: unexpected best weights", path);
    if (s) return s;
    for (size_t q = 0; q < c->n_streams; q++) {
        rr_ckpt_stream *st = &c->streams[q];
        char key[NAME_FIELD];
        snprintf(key, sizeof key, "s%zu.n", q);
        s = kv_size(k, key, lay->B, &st->n, err);
        snprintf(key, sizeof key, "s%zu.next", q);
        if (!s) s = kv_size(k, key, lay->n_order, &st->next, err);
        snprintf(key, sizeof key, "s%zu.rng", q);
        if (!s) s = kv_rng(k, key, &st->rng, err);
        if (s) {
            rr_err_prefix(err, "%s", path);
            return s;
        }
        if (!c->in_epoch && st->n)
            return rr_err(err, RR_ERR_RANGE, "%s: stream %zu holds %zu slots between epochs", path, q, st->n);
        if (st->n > st->next)
            return rr_err(err, RR_ERR_RANGE, "%s: stream %zu: %zu slots but only %zu sessions taken", path, q, st->n,
                          st->next);
        snprintf(key, sizeof key, "s%zu.slot_sess", q);
        s = rf_get(r, key, RR_DT_I64, st->n * sizeof(size_t), st->slot_sess, err);
        snprintf(key, sizeof key, "s%zu.slot_pos", q);
        if (!s) s = rf_get(r, key, RR_DT_I64, st->n * sizeof(size_t), st->slot_pos, err);
        for (size_t l = 0; l < lay->L && !s; l++) {
            snprintf(key, sizeof key, "s%u.state%u", (unsigned)q, (unsigned)l);
            s = rf_get(r, key, RR_DT_F32, st->n * lay->state_width[l] * sizeof(float), st->state[l], err);
        }
        if (s) return s;
        for (size_t i = 0; i < st->n; i++) {
            size_t row = st->slot_sess[i], pos = st->slot_pos[i];
            if (row >= lay->sess->n_sessions || pos + 1 >= rr_session_len(lay->sess, row))
                return rr_err(err, RR_ERR_RANGE,
                              "%s: stream %zu slot %zu: session row %zu position %zu is not inside the data", path,
                              q, i, row, pos);
        }
    }
    return RR_OK;
}

rr_status rr_ckpt_read(const char *path, const rr_ckpt_layout *lay, rr_ckpt *c, rr_error *err) {
    c->fingerprint = NULL;
    c->threads_differ = false;
    if (c->n_streams != lay->n_streams)
        return rr_err(err, RR_ERR_INTERNAL, "checkpoint read: %zu stream buffers for %zu streams", c->n_streams,
                      lay->n_streams);
    rfile r;
    rr_status s = rf_open(&r, path, err);
    char *fp = NULL, *st = NULL;
    size_t fl = 0, sl = 0;
    if (!s) s = rf_text(&r, "fingerprint", &fp, &fl, err);
    if (!s && lay->fingerprint) {
        s = rr_ckpt_fingerprint_compare(fp, lay->fingerprint, &c->threads_differ, err);
        if (s) rr_err_prefix(err, "%s", path);
    }
    if (!s) s = rf_text(&r, "state", &st, &sl, err);
    rr_ckkv k = {0};
    if (!s && (s = rr_ckkv_parse(&k, st, sl, "checkpoint state", err))) rr_err_prefix(err, "%s", path);
    if (!s) s = read_state(&r, &k, lay, c, err);
    rr_ckkv_free(&k);
    free(st);
    rf_close(&r);
    if (s) {
        free(fp);
        return s;
    }
    c->fingerprint = fp;
    return RR_OK;
}

void rr_ckpt_clear(rr_ckpt *c) {
    if (!c) return;
    free(c->fingerprint);
    c->fingerprint = NULL;
}

