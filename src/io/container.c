/* container.c - the rnnrec model file: writer and validating reader.
 *
 * Layout, format version 1 (all integers little-endian; docs/model-format.md
 * has the same description for people who write other readers):
 *
 *   offset  size  field
 *   0       8     magic: 'R' 'N' 'N' 'R' 'E' 'C' 0x00 0x1a
 *   8       4     u32 format version (1)
 *   12      4     u32 header_len = 64 + 80 * n_sections
 *   16      4     u32 n_sections (at most 1024)
 *   20      4     u32 header CRC-32C of bytes [0, header_len) with this
 *                 field taken as zero
 *   24      8     u64 file_len: total bytes of the file
 *   32      32    model kind, NUL-padded (1..31 printable ASCII bytes)
 *   64      80*n  section table, one entry per section, in file order:
 *                   +0  56  name, NUL-padded (1..55 printable ASCII bytes)
 *                   +56  4  u32 dtype (rr_dtype: 0 bytes, 1 f32, 2 f64,
 *                           3 i32, 4 i64, 5 u8)
 *                   +60  4  u32 CRC-32C of the section's bytes
 *                   +64  8  u64 offset from the start of the file, a
 *                           multiple of 64, >= header_len
 *                   +72  8  u64 length in bytes, a multiple of the dtype size
 *   then the section data: each section starts at its 64-byte aligned
 *   offset, zero padding between them; sections do not overlap and appear in
 *   increasing offset order; the last one ends at file_len.
 *
 * Sections every file has:
 *   "meta"   bytes: key/value strings, each NUL-terminated, alternating
 *            key, value (keys 1..255 bytes and unique; at most 4096 pairs)
 *   "vocab"  bytes: u64 n, then n u8 id lengths, then the ids back to back
 *            (written by rr_fw_vocab; ids at most 255 bytes, no duplicates)
 * plus whatever the model kind writes (rr_model_save adds "counts").
 *
 * The reader never trusts a count: every size is checked against the bytes
 * actually present before anything is allocated from it, so a hostile file
 * costs at most its own size plus a constant (the fixed section and pair
 * tables).  Older format versions are read on purpose (there is only one so
 * far); newer ones are RR_ERR_VERSION. */
#include "io/container.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

#define FMT_VERSION 1u
#define HDR_FIXED 64u
#define ENTRY_SIZE 80u
#define KIND_MAX 32u   /* field size; at most 31 bytes of kind */
#define NAME_MAX_ 56u  /* field size; at most 55 bytes of name */
#define MAX_SECTIONS 1024u
#define MAX_KV 4096u
#define ALIGN 64u

static const unsigned char MAGIC[8] = {'R', 'N', 'N', 'R', 'E', 'C', 0x00, 0x1a};

static size_t dtype_size(rr_dtype dt) {
    switch (dt) {
    case RR_DT_BYTES: case RR_DT_U8: return 1;
    case RR_DT_F32: case RR_DT_I32: return 4;
    case RR_DT_F64: case RR_DT_I64: return 8;
    }
    return 0;
}

const char *rr_dtype_name(rr_dtype dt) {
    switch (dt) {
    case RR_DT_BYTES: return "bytes";
    case RR_DT_F32: return "f32";
    case RR_DT_F64: return "f64";
    case RR_DT_I32: return "i32";
    case RR_DT_I64: return "i64";
    case RR_DT_U8: return "u8";
    }
    return "?";
}

static int host_is_le(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Swaps elements of `size` bytes in place (big-endian hosts only). */
static void swap_elems(unsigned char *p, size_t bytes, size_t size) {
    for (size_t i = 0; i + size <= bytes; i += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char t = p[i + a];
            p[i + a] = p[i + b];
            p[i + b] = t;
        }
}

/* A name or kind: 1..max-1 printable ASCII bytes. */
static int valid_label(const char *s, size_t len, size_t max) {
    if (len == 0 || len >= max) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e) return 0;
    return 1;
}

/* ------------------------------------------------------------------ writer */

typedef struct fw_section {
    char name[NAME_MAX_];
    rr_dtype dt;
    unsigned char *data; /* (bytes) little-endian copy */
    size_t bytes;
} fw_section;

struct rr_fwriter {
    char kind[KIND_MAX];
    char **keys, **vals; /* (n_kv) */
    size_t n_kv, kv_cap;
    fw_section *sec;     /* (n_sec), "meta" is added at commit */
    size_t n_sec, sec_cap;
};

rr_status rr_fw_new(rr_fwriter **w, const char *kind, rr_error *err) {
    *w = NULL;
    if (!kind || !valid_label(kind, strlen(kind), KIND_MAX))
        return rr_err(err, RR_ERR_ARG, "model kind must be 1..%u printable characters", KIND_MAX - 1);
    rr_fwriter *x = calloc(1, sizeof *x);
    if (!x) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    memcpy(x->kind, kind, strlen(kind));
    *w = x;
    return RR_OK;
}

void rr_fw_free(rr_fwriter *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->keys[i]);
        free(w->vals[i]);
    }
    free(w->keys);
    free(w->vals);
    for (size_t i = 0; i < w->n_sec; i++) free(w->sec[i].data);
    free(w->sec);
    free(w);
}

rr_status rr_fw_kv(rr_fwriter *w, const char *key, const char *value, rr_error *err) {
    size_t kl = strlen(key);
    if (kl == 0 || kl > RR_ID_MAX)
        return rr_err(err, RR_ERR_ARG, "metadata key must be 1..%d bytes", RR_ID_MAX);
    char *v = strdup(value);
    if (!v) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key)) {
            free(w->vals[i]);
            w->vals[i] = v;
            return RR_OK;
        }
    if (w->n_kv >= MAX_KV) {
        free(v);
        return rr_err(err, RR_ERR_RANGE, "more than %u metadata keys", MAX_KV);
    }
    if (w->n_kv == w->kv_cap) {
        size_t cap = w->kv_cap ? 2 * w->kv_cap : 16;
        char **k2 = rr_realloc_n(w->keys, cap, sizeof *k2);
        if (k2) w->keys = k2;
        char **v2 = k2 ? rr_realloc_n(w->vals, cap, sizeof *v2) : NULL;
        if (!v2) {
            free(v);
            return rr_err(err, RR_ERR_NOMEM, "out of memory");
        }
        w->vals = v2;
        w->kv_cap = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return rr_err(err, RR_ERR_NOMEM, "out of memory");
    }
    w->keys[w->n_kv] = k;
    w->vals[w->n_kv] = v;
    w->n_kv++;
    return RR_OK;
}

rr_status rr_fw_kv_int(rr_fwriter *w, const char *key, int64_t value, rr_error *err) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, value);
    return rr_fw_kv(w, key, buf, err);
}

rr_status rr_fw_kv_double(rr_fwriter *w, const char *key, double value, rr_error *err) {
    if (!isfinite(value)) return rr_err(err, RR_ERR_NUMERIC, "metadata %s: value is not finite", key);
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", value);
    return rr_fw_kv(w, key, buf, err);
}

static rr_status fw_add(rr_fwriter *w, const char *name, rr_dtype dt, const void *data, size_t bytes,
                        rr_error *err) {
    size_t nl = strlen(name);
    if (!valid_label(name, nl, NAME_MAX_))
        return rr_err(err, RR_ERR_ARG, "section name '%s' must be 1..%u printable characters", name,
                      NAME_MAX_ - 1);
    size_t es = dtype_size(dt);
    if (!es) return rr_err(err, RR_ERR_ARG, "section %s: unknown dtype %d", name, (int)dt);
    if (bytes % es) return rr_err(err, RR_ERR_ARG, "section %s: %zu bytes is not a whole number of elements", name, bytes);
    for (size_t i = 0; i < w->n_sec; i++)
        if (!strcmp(w->sec[i].name, name)) return rr_err(err, RR_ERR_ARG, "section %s written twice", name);
    if (w->n_sec + 1 >= MAX_SECTIONS) return rr_err(err, RR_ERR_RANGE, "more than %u sections", MAX_SECTIONS);
    if (w->n_sec == w->sec_cap) {
        size_t cap = w->sec_cap ? 2 * w->sec_cap : 8;
        fw_section *s2 = rr_realloc_n(w->sec, cap, sizeof *s2);
        if (!s2) return rr_err(err, RR_ERR_NOMEM, "out of memory");
        w->sec = s2;
        w->sec_cap = cap;
    }
    unsigned char *copy = malloc(bytes ? bytes : 1);
    if (!copy) return rr_err(err, RR_ERR_NOMEM, "section %s: out of memory for %zu bytes", name, bytes);
    if (bytes) memcpy(copy, data, bytes);
    if (es > 1 && !host_is_le()) swap_elems(copy, bytes, es);
    fw_section *s = &w->sec[w->n_sec++];
    memset(s->name, 0, sizeof s->name);
    memcpy(s->name, name, nl);
    s->dt = dt;
    s->data = copy;
    s->bytes = bytes;
    return RR_OK;
}

rr_status rr_fw_section(rr_fwriter *w, const char *name, rr_dtype dt, const void *data, size_t bytes,
                        rr_error *err) {
    if (!strcmp(name, "meta")) return rr_err(err, RR_ERR_ARG, "section name 'meta' is reserved");
    return fw_add(w, name, dt, data, bytes, err);
}

rr_status rr_fw_vocab(rr_fwriter *w, const rr_vocab *v, rr_error *err) {
    /* u64 n | n x u8 length | ids */
    size_t bytes;
    if (!rr_add_size(8 + v->n, v->pool_len, &bytes)) return rr_err(err, RR_ERR_NOMEM, "vocabulary too large");
    unsigned char *buf = malloc(bytes);
    if (!buf) return rr_err(err, RR_ERR_NOMEM, "out of memory for the vocabulary");
    rr_le_put64(buf, (uint64_t)v->n);
    for (size_t i = 0; i < v->n; i++) {
        size_t len = (size_t)(v->off[i + 1] - v->off[i]);
        RR_ASSERT(len <= RR_ID_MAX);
        buf[8 + i] = (unsigned char)len;
    }
    if (v->pool_len) memcpy(buf + 8 + v->n, v->pool, v->pool_len);
    rr_status s = fw_add(w, "vocab", RR_DT_BYTES, buf, bytes, err);
    free(buf);
    return s;
}

typedef struct fw_job {
    const rr_fwriter *w;
    const fw_section *meta;
} fw_job;

static size_t align_up(size_t x) { return (x + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

static rr_status fw_write(FILE *f, void *user, rr_error *err) {
    const fw_job *job = user;
    const rr_fwriter *w = job->w;
    size_t n = w->n_sec + 1;
    size_t hlen = HDR_FIXED + ENTRY_SIZE * n;
    unsigned char *hdr = calloc(1, hlen);
    if (!hdr) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    /* Layout: meta first, then the sections in the order they were added. */
    size_t off = align_up(hlen);
    for (size_t i = 0; i < n; i++) {
        const fw_section *s = i == 0 ? job->meta : &w->sec[i - 1];
        unsigned char *e = hdr + HDR_FIXED + ENTRY_SIZE * i;
        memcpy(e, s->name, NAME_MAX_);
        rr_le_put32(e + 56, (uint32_t)s->dt);
        rr_le_put32(e + 60, rr_crc32c(0, s->data, s->bytes));
        rr_le_put64(e + 64, (uint64_t)off);
        rr_le_put64(e + 72, (uint64_t)s->bytes);
        off = i + 1 < n ? align_up(off + s->bytes) : off + s->bytes;
    }
    memcpy(hdr, MAGIC, 8);
    rr_le_put32(hdr + 8, FMT_VERSION);
    rr_le_put32(hdr + 12, (uint32_t)hlen);
    rr_le_put32(hdr + 16, (uint32_t)n);
    rr_le_put64(hdr + 24, (uint64_t)off);
    memcpy(hdr + 32, w->kind, KIND_MAX);
    rr_le_put32(hdr + 20, rr_crc32c(0, hdr, hlen));
    static const unsigned char zeros[ALIGN];
    size_t pos = hlen;
    int ok = fwrite(hdr, 1, hlen, f) == hlen;
    free(hdr);
    for (size_t i = 0; ok && i < n; i++) {
        const fw_section *s = i == 0 ? job->meta : &w->sec[i - 1];
        size_t pad = align_up(pos) - pos;
        if (pad && fwrite(zeros, 1, pad, f) != pad) ok = 0;
        pos += pad;
        if (ok && s->bytes && fwrite(s->data, 1, s->bytes, f) != s->bytes) ok = 0;
        pos += s->bytes;
    }
    if (!ok) return rr_err(err, RR_ERR_IO, "write failed: %s", strerror(errno));
    return RR_OK;
}

rr_status rr_fw_commit(rr_fwriter *w, const char *path, rr_error *err) {
    /* The meta section: key\0value\0 pairs. */
    size_t bytes = 0;
    for (size_t i = 0; i < w->n_kv; i++) {
        size_t a = strlen(w->keys[i]) + strlen(w->vals[i]) + 2;
        if (!rr_add_size(bytes, a, &bytes)) return rr_err(err, RR_ERR_NOMEM, "metadata too large");
    }
    fw_section meta;
    memset(&meta, 0, sizeof meta);
    memcpy(meta.name, "meta", 4);
    meta.dt = RR_DT_BYTES;
    meta.bytes = bytes;
    meta.data = malloc(bytes ? bytes : 1);
    if (!meta.data) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    size_t p = 0;
    for (size_t i = 0; i < w->n_kv; i++) {
        size_t kl = strlen(w->keys[i]) + 1, vl = strlen(w->vals[i]) + 1;
        memcpy(meta.data + p, w->keys[i], kl);
        memcpy(meta.data + p + kl, w->vals[i], vl);
        p += kl + vl;
    }
    fw_job job = {w, &meta};
    rr_status s = rr_write_atomic(path, fw_write, &job, err);
    free(meta.data);
    return s;
}

/* ------------------------------------------------------------------ reader */

typedef struct fr_section {
    char name[NAME_MAX_];
    rr_dtype dt;
    uint32_t crc;
    size_t off, bytes;
} fr_section;

struct rr_freader {
    unsigned char *buf; /* (len) the whole file, 64-byte aligned */
    size_t len;
    uint32_t version;
    char kind[KIND_MAX];
    fr_section sec[MAX_SECTIONS];
    size_t n_sec;
    const char *keys[MAX_KV], *vals[MAX_KV]; /* point into buf */
    size_t n_kv;
};

static rr_status fr_parse_meta(rr_freader *r, const fr_section *s, rr_error *err) {
    char *p = (char *)r->buf + s->off;
    size_t n = s->bytes, i = 0;
    if (n && p[n - 1] != 0) return rr_err(err, RR_ERR_FORMAT, "metadata section does not end with NUL");
    while (i < n) {
        const char *key = p + i;
        size_t kl = strlen(key); /* bounded: the section ends with NUL */
        if (kl == 0 || kl > RR_ID_MAX) return rr_err(err, RR_ERR_FORMAT, "metadata key of %zu bytes", kl);
        i += kl + 1;
        if (i >= n) return rr_err(err, RR_ERR_FORMAT, "metadata key '%s' has no value", key);
        const char *val = p + i;
        i += strlen(val) + 1;
        if (r->n_kv >= MAX_KV) return rr_err(err, RR_ERR_FORMAT, "more than %u metadata keys", MAX_KV);
        for (size_t j = 0; j < r->n_kv; j++)
            if (!strcmp(r->keys[j], key)) return rr_err(err, RR_ERR_FORMAT, "metadata key '%s' repeated", key);
        r->keys[r->n_kv] = key;
        r->vals[r->n_kv] = val;
        r->n_kv++;
    }
    return RR_OK;
}

/* Validates r->buf[0..len) and fills the tables.  Order matters: a file cut
 * short anywhere reads as RR_ERR_TRUNCATED, not as some other error. */
static rr_status fr_validate(rr_freader *r, rr_error *err) {
    const unsigned char *b = r->buf;
    size_t len = r->len;
    if (len < 8) {
        if (memcmp(b, MAGIC, len) == 0)
            return rr_err(err, RR_ERR_TRUNCATED, "truncated model file: %zu bytes, shorter than the header", len);
        return rr_err(err, RR_ERR_FORMAT, "not an rnnrec model file (bad magic)");
    }
    if (memcmp(b, MAGIC, 8) != 0) return rr_err(err, RR_ERR_FORMAT, "not an rnnrec model file (bad magic)");
    if (len < HDR_FIXED)
        return rr_err(err, RR_ERR_TRUNCATED, "truncated model file: %zu bytes, shorter than the header", len);
    uint32_t version = rr_le_get32(b + 8);
    if (version == 0) return rr_err(err, RR_ERR_FORMAT, "format version 0 is invalid");
    if (version > FMT_VERSION)
        return rr_err(err, RR_ERR_VERSION, "format version %" PRIu32 " is newer than this rnnrec reads (%u)",
                      version, FMT_VERSION);
    uint32_t hlen = rr_le_get32(b + 12), nsec = rr_le_get32(b + 16), hcrc = rr_le_get32(b + 20);
    uint64_t flen = rr_le_get64(b + 24);
    if (nsec > MAX_SECTIONS) return rr_err(err, RR_ERR_FORMAT, "%" PRIu32 " sections (at most %u)", nsec, MAX_SECTIONS);
    if (hlen != HDR_FIXED + ENTRY_SIZE * nsec)
        return rr_err(err, RR_ERR_FORMAT, "header length %" PRIu32 " does not match %" PRIu32 " sections", hlen, nsec);
    if (flen < hlen) return rr_err(err, RR_ERR_FORMAT, "file length %" PRIu64 " is shorter than its header", flen);
    if ((uint64_t)len < flen)
        return rr_err(err, RR_ERR_TRUNCATED, "truncated model file: %zu bytes, its header says %" PRIu64, len, flen);
    if ((uint64_t)len > flen)
        return rr_err(err, RR_ERR_FORMAT, "%" PRIu64 " bytes of trailing data after the model",
                      (uint64_t)len - flen);
    /* Header checksum with its own field zeroed. */
    uint32_t c = rr_crc32c(0, b, 20);
    static const unsigned char zero4[4];
    c = rr_crc32c(c, zero4, 4);
    c = rr_crc32c(c, b + 24, hlen - 24);
    if (c != hcrc) return rr_err(err, RR_ERR_CHECKSUM, "header checksum mismatch (file damaged)");
    r->version = version;

    const char *kind = (const char *)b + 32;
    size_t kl = strnlen(kind, KIND_MAX);
    if (!valid_label(kind, kl, KIND_MAX)) return rr_err(err, RR_ERR_FORMAT, "invalid model kind in header");
    memcpy(r->kind, kind, kl);
    r->kind[kl] = 0;

    size_t prev_end = hlen;
    for (size_t i = 0; i < nsec; i++) {
        const unsigned char *e = b + HDR_FIXED + ENTRY_SIZE * i;
        fr_section *s = &r->sec[i];
        size_t nl = strnlen((const char *)e, NAME_MAX_);
        if (!valid_label((const char *)e, nl, NAME_MAX_))
            return rr_err(err, RR_ERR_FORMAT, "section %zu: invalid name", i);
        memset(s->name, 0, sizeof s->name);
        memcpy(s->name, e, nl);
        for (size_t j = nl; j < NAME_MAX_; j++)
            if (e[j]) return rr_err(err, RR_ERR_FORMAT, "section %s: name not NUL-padded", s->name);
        uint32_t dt = rr_le_get32(e + 56);
        if (dt > RR_DT_U8) return rr_err(err, RR_ERR_FORMAT, "section %s: unknown dtype %" PRIu32, s->name, dt);
        s->dt = (rr_dtype)dt;
        s->crc = rr_le_get32(e + 60);
        uint64_t off = rr_le_get64(e + 64), bytes = rr_le_get64(e + 72);
        if (off % ALIGN) return rr_err(err, RR_ERR_FORMAT, "section %s: offset %" PRIu64 " not 64-byte aligned", s->name, off);
        if (off < prev_end)
            return rr_err(err, RR_ERR_FORMAT, "section %s: offset %" PRIu64 " overlaps the header or the previous section",
                          s->name, off);
        if (off > flen || bytes > flen - off)
            return rr_err(err, RR_ERR_FORMAT, "section %s: %" PRIu64 " bytes at %" PRIu64 " run past the end of the file",
                          s->name, bytes, off);
        if (bytes % dtype_size(s->dt))
            return rr_err(err, RR_ERR_FORMAT, "section %s: %" PRIu64 " bytes is not a whole number of %s", s->name, bytes,
                          rr_dtype_name(s->dt));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(r->sec[j].name, s->name)) return rr_err(err, RR_ERR_FORMAT, "section %s appears twice", s->name);
        s->off = (size_t)off;
        s->bytes = (size_t)bytes;
        prev_end = s->off + s->bytes;
    }
    if (prev_end != flen)
        return rr_err(err, RR_ERR_FORMAT, "%" PRIu64 " unused bytes after the last section", flen - prev_end);
    r->n_sec = nsec;
    for (size_t i = 0; i < nsec; i++) {
        const fr_section *s = &r->sec[i];
        if (rr_crc32c(0, b + s->off, s->bytes) != s->crc)
            return rr_err(err, RR_ERR_CHECKSUM, "section %s: checksum mismatch (file damaged)", s->name);
    }
    if (!host_is_le())
        for (size_t i = 0; i < nsec; i++)
            if (dtype_size(r->sec[i].dt) > 1) swap_elems(r->buf + r->sec[i].off, r->sec[i].bytes, dtype_size(r->sec[i].dt));
    for (size_t i = 0; i < nsec; i++)
        if (!strcmp(r->sec[i].name, "meta")) {
            if (r->sec[i].dt != RR_DT_BYTES) return rr_err(err, RR_ERR_FORMAT, "metadata section has the wrong type");
            return fr_parse_meta(r, &r->sec[i], err);
        }
    return RR_OK;
}

static rr_status fr_open_owned(unsigned char *buf, size_t len, rr_freader **out, rr_error *err) {
    rr_freader *r = calloc(1, sizeof *r);
    if (!r) {
        rr_free_aligned(buf);
        return rr_err(err, RR_ERR_NOMEM, "out of memory");
    }
    r->buf = buf;
    r->len = len;
    rr_status s = fr_validate(r, err);
    if (s) {
        rr_fr_free(r);
        return s;
    }
    *out = r;
    return RR_OK;
}

rr_status rr_fr_open_mem(const void *data, size_t len, rr_freader **r, rr_error *err) {
    *r = NULL;
    unsigned char *buf = rr_alloc_aligned(len);
    if (!buf) return rr_err(err, RR_ERR_NOMEM, "out of memory for %zu bytes", len);
    if (len) memcpy(buf, data, len);
    return fr_open_owned(buf, len, r, err);
}

rr_status rr_fr_open(const char *path, rr_freader **r, rr_error *err) {
    *r = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return rr_err(err, RR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        /* A pipe or device has no size to check a header against, and
         * /dev/zero would never end: model files must be regular files. */
        fclose(f);
        return rr_err(err, RR_ERR_IO, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    unsigned char *buf = rr_alloc_aligned(len);
    if (!buf) {
        fclose(f);
        return rr_err(err, RR_ERR_NOMEM, "%s: out of memory for %zu bytes", path, len);
    }
    size_t got = len ? fread(buf, 1, len, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        rr_free_aligned(buf);
        return rr_err(err, RR_ERR_IO, "%s: read failed", path);
    }
    rr_status s = fr_open_owned(buf, got, r, err);
    if (s) rr_err_prefix(err, "%s", path);
    return s;
}

void rr_fr_free(rr_freader *r) {
    if (!r) return;
    rr_free_aligned(r->buf);
    free(r);
}

const char *rr_fr_kind(const rr_freader *r) { return r->kind; }
uint32_t rr_fr_version(const rr_freader *r) { return r->version; }
size_t rr_fr_n_kv(const rr_freader *r) { return r->n_kv; }

void rr_fr_kv_at(const rr_freader *r, size_t i, const char **key, const char **value) {
    RR_ASSERT(i < r->n_kv);
    *key = r->keys[i];
    *value = r->vals[i];
}

const char *rr_fr_kv(const rr_freader *r, const char *key) {
    for (size_t i = 0; i < r->n_kv; i++)
        if (!strcmp(r->keys[i], key)) return r->vals[i];
    return NULL;
}

rr_status rr_fr_kv_int(const rr_freader *r, const char *key, int64_t *out, rr_error *err) {
    const char *v = rr_fr_kv(r, key);
    if (!v) return rr_err(err, RR_ERR_FORMAT, "metadata key '%s' missing", key);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno) return rr_err(err, RR_ERR_FORMAT, "metadata %s = '%s' is not an integer", key, v);
    *out = (int64_t)x;
    return RR_OK;
}

rr_status rr_fr_kv_double(const rr_freader *r, const char *key, double *out, rr_error *err) {
    const char *v = rr_fr_kv(r, key);
    if (!v) return rr_err(err, RR_ERR_FORMAT, "metadata key '%s' missing", key);
    if (!rr_parse_double(v, out)) return rr_err(err, RR_ERR_FORMAT, "metadata %s = '%s' is not a finite number", key, v);
    return RR_OK;
}

static const fr_section *fr_find(const rr_freader *r, const char *name) {
    for (size_t i = 0; i < r->n_sec; i++)
        if (!strcmp(r->sec[i].name, name)) return &r->sec[i];
    return NULL;
}

rr_status rr_fr_section(const rr_freader *r, const char *name, rr_dtype dt, const void **data, size_t *bytes,
                        rr_error *err) {
    const fr_section *s = fr_find(r, name);
    if (!s) return rr_err(err, RR_ERR_FORMAT, "section %s missing", name);
    if (s->dt != dt)
        return rr_err(err, RR_ERR_FORMAT, "section %s has type %s, expected %s", name, rr_dtype_name(s->dt),
                      rr_dtype_name(dt));
    *data = r->buf + s->off;
    *bytes = s->bytes;
    return RR_OK;
}

rr_status rr_fr_array(const rr_freader *r, const char *name, rr_dtype dt, size_t count, const void **data,
                      rr_error *err) {
    size_t bytes, want;
    rr_status s = rr_fr_section(r, name, dt, data, &bytes, err);
    if (s) return s;
    if (!rr_mul_size(count, dtype_size(dt), &want) || want != bytes)
        return rr_err(err, RR_ERR_FORMAT, "section %s has %zu elements, expected %zu", name, bytes / dtype_size(dt),
                      count);
    return RR_OK;
}

rr_status rr_fr_vocab(const rr_freader *r, rr_vocab *out, rr_error *err) {
    rr_vocab_init(out);
    const unsigned char *p;
    size_t bytes;
    rr_status s = rr_fr_section(r, "vocab", RR_DT_BYTES, (const void **)&p, &bytes, err);
    if (s) return s;
    if (bytes < 8) return rr_err(err, RR_ERR_FORMAT, "vocabulary section of %zu bytes", bytes);
    uint64_t n64 = rr_le_get64(p);
    /* Each id needs at least its length byte: checked before allocating. */
    if (n64 > bytes - 8 || n64 > (uint64_t)INT32_MAX)
        return rr_err(err, RR_ERR_FORMAT, "vocabulary claims %" PRIu64 " ids in %zu bytes", n64, bytes);
    size_t n = (size_t)n64, total = 0;
    const unsigned char *lens = p + 8, *ids = p + 8 + n;
    for (size_t i = 0; i < n; i++) {
        /* an id is 1..255 bytes, as the reader makes them; an empty one
         * would also leave the vocabulary's pool NULL with entries in it */
        if (lens[i] == 0) return rr_err(err, RR_ERR_FORMAT, "vocabulary: id %zu of %zu is empty", i + 1, n);
        total += lens[i]; /* <= 255 n: no overflow */
    }
    if (total != bytes - 8 - n)
        return rr_err(err, RR_ERR_FORMAT, "vocabulary: id lengths add up to %zu bytes, section holds %zu", total,
                      bytes - 8 - n);
    s = rr_vocab_reserve(out, n, err);
    size_t pos = 0;
    for (size_t i = 0; s == RR_OK && i < n; i++) {
        const char *id = (const char *)ids + pos;
        size_t len = lens[i];
        pos += len;
        if (rr_vocab_find(out, id, len) >= 0) {
            s = rr_err(err, RR_ERR_FORMAT, "vocabulary: id '%.*s' appears twice", (int)len, id);
            break;
        }
        int32_t idx;
        s = rr_vocab_add(out, id, len, &idx, err);
    }
    if (s) rr_vocab_clear(out);
    return s;
}

size_t rr_fr_n_sections(const rr_freader *r) { return r->n_sec; }

void rr_fr_section_at(const rr_freader *r, size_t i, const char **name, rr_dtype *dt, size_t *bytes,
                      uint32_t *crc) {
    RR_ASSERT(i < r->n_sec);
    *name = r->sec[i].name;
    *dt = r->sec[i].dt;
    *bytes = r->sec[i].bytes;
    *crc = r->sec[i].crc;
}
