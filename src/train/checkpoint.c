/* checkpoint.c - training checkpoints: the file, its writer, its
 * validating reader, the fingerprint of a run and the checkpoint folder.
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

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/container.h"

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

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static size_t dtype_size(uint32_t dt) {
    switch (dt) {
    case RR_DT_BYTES: return 1;
    case RR_DT_F32: return 4;
    case RR_DT_I64: return 8;
    default: return 0;
    }
}

/* ---------------------------------------------------------------- text */

/* A growing "name=value\n" buffer. */
typedef struct text {
    char *s;
    size_t len, cap;
    bool oom;
} text;

static void tx_add(text *t, const char *fmt, ...) RR_PRINTF(2, 3);
static void tx_add(text *t, const char *fmt, ...) {
    if (t->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            t->oom = true;
            return;
        }
        if (t->s && t->len + (size_t)w < t->cap) {
            t->len += (size_t)w;
            return;
        }
        size_t ncap = t->cap ? t->cap * 2 : 1024;
        while (ncap < t->len + (size_t)w + 1) ncap *= 2;
        char *n = realloc(t->s, ncap);
        if (!n) {
            t->oom = true;
            return;
        }
        t->s = n;
        t->cap = ncap;
    }
}

/* Parsed lines: name and value point into one NUL-separated copy. */
typedef struct kv {
    char *buf;
    size_t n;
    const char **key, **val;
} kv;

static void kv_free(kv *k) {
    free(k->buf);
    free(k->key);
    free(k->val);
    memset(k, 0, sizeof *k);
}

/* Splits "name=value\n" lines.  RR_ERR_FORMAT for a line without '=', a
 * name repeated, or a byte outside printable ASCII. */
static rr_status kv_parse(kv *k, const char *src, size_t len, const char *what, rr_error *err) {
    memset(k, 0, sizeof *k);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '\n') lines++;
        else if (c < 0x20 || c > 0x7e) return rr_err(err, RR_ERR_FORMAT, "%s: byte 0x%02x at %zu", what, c, i);
    }
    if (len && src[len - 1] != '\n') return rr_err(err, RR_ERR_FORMAT, "%s: last line not terminated", what);
    k->buf = malloc(len + 1);
    k->key = rr_malloc_n(lines ? lines : 1, sizeof *k->key);
    k->val = rr_malloc_n(lines ? lines : 1, sizeof *k->val);
    if (!k->buf || !k->key || !k->val) {
        kv_free(k);
        return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", what);
    }
    memcpy(k->buf, src, len);
    k->buf[len] = 0;
    char *p = k->buf;
    for (size_t i = 0; i < lines; i++) {
        char *nl = strchr(p, '\n');
        *nl = 0;
        char *eq = strchr(p, '=');
        if (!eq || eq == p) {
            rr_status s = rr_err(err, RR_ERR_FORMAT, "%s: line %zu is not name=value", what, i + 1);
            kv_free(k);
            return s;
        }
        *eq = 0;
        for (size_t j = 0; j < k->n; j++)
            if (!strcmp(k->key[j], p)) {
                rr_status s = rr_err(err, RR_ERR_FORMAT, "%s: '%s' appears twice", what, p);
                kv_free(k);
                return s;
            }
        k->key[k->n] = p;
        k->val[k->n++] = eq + 1;
        p = nl + 1;
    }
    return RR_OK;
}

static const char *kv_get(const kv *k, const char *key) {
    for (size_t i = 0; i < k->n; i++)
        if (!strcmp(k->key[i], key)) return k->val[i];
    return NULL;
}

static rr_status kv_u64(const kv *k, const char *key, uint64_t *out, rr_error *err) {
    const char *v = kv_get(k, key);
    if (!v) return rr_err(err, RR_ERR_FORMAT, "checkpoint state: '%s' missing", key);
    if (*v < '0' || *v > '9') return rr_err(err, RR_ERR_FORMAT, "checkpoint state: %s=%s is not a count", key, v);
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end) return rr_err(err, RR_ERR_FORMAT, "checkpoint state: %s=%s is not a count", key, v);
    *out = (uint64_t)x;
    return RR_OK;
}

static rr_status kv_size(const kv *k, const char *key, size_t max, size_t *out, rr_error *err) {
    uint64_t x;
    rr_status s = kv_u64(k, key, &x, err);
    if (s) return s;
    if (x > max) return rr_err(err, RR_ERR_RANGE, "checkpoint state: %s=%" PRIu64 ", at most %zu", key, x, max);
    *out = (size_t)x;
    return RR_OK;
}

static rr_status kv_double(const kv *k, const char *key, double *out, rr_error *err) {
    const char *v = kv_get(k, key);
    if (!v) return rr_err(err, RR_ERR_FORMAT, "checkpoint state: '%s' missing", key);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !isfinite(x))
        return rr_err(err, RR_ERR_FORMAT, "checkpoint state: %s=%s is not a finite number", key, v);
    *out = x;
    return RR_OK;
}

static rr_status kv_rng(const kv *k, const char *key, rr_rng *out, rr_error *err) {
    const char *v = kv_get(k, key);
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

/* x with the fewest digits that read back as exactly x. */
static const char *dbl(char buf[32], double x) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    return buf;
}

static void tx_dbl(text *t, const char *key, double x) {
    char b[32];
    tx_add(t, "%s=%s\n", key, dbl(b, x));
}

static void tx_rng(text *t, const char *key, const rr_rng *r) {
    tx_add(t, "%s=%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 "\n", key, r->s[0], r->s[1], r->s[2],
           r->s[3]);
}

/* --------------------------------------------------------- fingerprint */

static const char *loss_str(rr_loss l) {
    switch (l) {
    case RR_LOSS_CROSS_ENTROPY: return "cross-entropy";
    case RR_LOSS_BPR_MAX: return "bpr-max";
    case RR_LOSS_TOP1_MAX: return "top1-max";
    case RR_LOSS_BPR: return "bpr";
    case RR_LOSS_TOP1: return "top1";
    }
    return "?";
}

static const char *optim_str(rr_optim o) {
    switch (o) {
    case RR_OPT_ADAGRAD: return "adagrad";
    case RR_OPT_ADAM: return "adam";
    case RR_OPT_SGD: return "sgd";
    }
    return "?";
}

static const char *act_str(rr_act a) {
    switch (a) {
    case RR_ACT_LINEAR: return "linear";
    case RR_ACT_ELU: return "elu";
    case RR_ACT_TANH: return "tanh";
    case RR_ACT_RELU: return "relu";
    }
    return "?";
}

/* Counts and CRC-32C of a dataset as the trainer sees it. */
static void fp_data(text *t, const char *pre, const rr_dataset *d) {
    const rr_sessions *s = &d->s;
    uint32_t cv = 0;
    for (size_t i = 0; i < d->items.n; i++) {
        size_t len;
        const char *id = rr_vocab_id(&d->items, (int32_t)i, &len);
        unsigned char l = (unsigned char)len; /* ids are at most 255 bytes */
        cv = rr_crc32c(cv, &l, 1);
        cv = rr_crc32c(cv, id, len);
    }
    tx_add(t, "%s.items=%zu\n%s.sessions=%zu\n%s.events=%zu\n", pre, d->items.n, pre, s->n_sessions, pre,
           s->n_events);
    tx_add(t, "%s.crc.vocab=%08" PRIx32 "\n", pre, cv);
    tx_add(t, "%s.crc.offsets=%08" PRIx32 "\n", pre,
           rr_crc32c(0, s->offsets, (s->n_sessions + 1) * sizeof *s->offsets));
    tx_add(t, "%s.crc.items=%08" PRIx32 "\n", pre, rr_crc32c(0, s->items, s->n_events * sizeof *s->items));
    tx_add(t, "%s.crc.times=%08" PRIx32 "\n", pre, rr_crc32c(0, s->times, s->n_events * sizeof *s->times));
}

rr_status rr_ckpt_fingerprint(char **out, const rr_train_params *p, const rr_dataset *train,
                              const rr_dataset *valid, size_t sample_cache, int threads, rr_error *err) {
    *out = NULL;
    text t = {0};
    tx_add(&t, "model=%s\nlayers=", p->kind);
    for (size_t l = 0; l < p->n_layers; l++) tx_add(&t, "%s%zu", l ? "," : "", p->layers[l]);
    tx_add(&t, "\nembedding=%ld\ncell-act=%s\n", p->embedding, p->rnn_relu ? "relu" : "tanh");
    char b[32];
    if (p->final_act == RR_ACT_ELU) tx_add(&t, "final-act=elu:%s\n", dbl(b, p->final_act_param));
    else tx_add(&t, "final-act=%s\n", act_str(p->final_act));
    tx_add(&t, "loss=%s\n", loss_str(p->loss));
    tx_dbl(&t, "logq", p->logq);
    tx_dbl(&t, "bpreg", p->bpreg);
    tx_dbl(&t, "elu-param", p->elu_param);
    tx_add(&t, "batch-size=%zu\nn-sample=%zu\n", p->batch_size, p->n_sample);
    tx_dbl(&t, "sample-alpha", p->sample_alpha);
    tx_add(&t, "sample-cache=%zu\noptim=%s\n", sample_cache, optim_str(p->optim));
    tx_dbl(&t, "lr", p->lr);
    tx_dbl(&t, "momentum", p->momentum);
    if (p->optim == RR_OPT_ADAM) {
        tx_dbl(&t, "adam-beta1", p->adam_beta1);
        tx_dbl(&t, "adam-beta2", p->adam_beta2);
        tx_dbl(&t, "adam-eps", p->adam_eps);
    }
    tx_dbl(&t, "clip-norm", p->clip_norm);
    tx_dbl(&t, "dropout-embed", p->dropout_embed);
    tx_dbl(&t, "dropout-hidden", p->dropout_hidden);
    tx_add(&t, "seed=%" PRIu64 "\n", p->seed);
    tx_add(&t, "threads=%d\n", threads);
    fp_data(&t, "data", train);
    if (valid) fp_data(&t, "valid", valid);
    else tx_add(&t, "valid=none\n");
    if (t.oom) {
        free(t.s);
        return rr_err(err, RR_ERR_NOMEM, "out of memory for the checkpoint fingerprint");
    }
    *out = t.s;
    return RR_OK;
}

rr_status rr_ckpt_fingerprint_compare(const char *saved, const char *now, bool *threads_differ, rr_error *err) {
    *threads_differ = false;
    kv a, b;
    rr_status s = kv_parse(&a, saved, strlen(saved), "checkpoint fingerprint", err);
    if (s) return s;
    s = kv_parse(&b, now, strlen(now), "fingerprint", err);
    if (s) {
        kv_free(&a);
        return s;
    }
    text params = {0}, data = {0};
    size_t n_data = 0;
    /* every name of either side, each once: saved's, then the ones only now has */
    for (int side = 0; side < 2; side++) {
        const kv *k = side ? &b : &a;
        for (size_t i = 0; i < k->n; i++) {
            const char *key = k->key[i];
            if (side && kv_get(&a, key)) continue;
            const char *va = kv_get(&a, key), *vb = kv_get(&b, key);
            if (va && vb && !strcmp(va, vb)) continue;
            if (!strcmp(key, "threads")) {
                *threads_differ = true;
                continue;
            }
            bool is_data = !strncmp(key, "data.", 5) || !strncmp(key, "valid", 5);
            text *t = is_data ? &data : &params;
            if (is_data && ++n_data > 3) {
                if (n_data == 4) tx_add(t, ", ...");
                continue;
            }
            tx_add(t, "%s%s%s %s (now %s)", t->len ? ", " : "", is_data ? "" : "--", key, va ? va : "unset",
                   vb ? vb : "unset");
        }
    }
    kv_free(&a);
    kv_free(&b);
    if (params.oom || data.oom) {
        free(params.s);
        free(data.s);
        return rr_err(err, RR_ERR_NOMEM, "out of memory comparing fingerprints");
    }
    if (params.len || data.len) {
        s = rr_err(err, RR_ERR_ARG, "the checkpoint belongs to another run:%s%s%s%s%s",
                   params.len ? " hyperparameters differ: " : "", params.len ? params.s : "",
                   params.len && data.len ? ";" : "", data.len ? " the training or validation data differ: " : "",
                   data.len ? data.s : "");
    }
    free(params.s);
    free(data.s);
    return s;
}

/* -------------------------------------------------------------- folder */

bool rr_ckpt_path(char *buf, size_t cap, const char *dir, uint64_t seq) {
    int w = snprintf(buf, cap, "%s/ckpt-%012" PRIu64 ".rrc", dir, seq);
    return w > 0 && (size_t)w < cap;
}

/* seq of a name "ckpt-<12 digits>.rrc", or false. */
static bool ckpt_name_seq(const char *name, uint64_t *seq) {
    if (strncmp(name, "ckpt-", 5) || strlen(name) != 5 + 12 + 4 || strcmp(name + 17, ".rrc")) return false;
    uint64_t v = 0;
    for (int i = 5; i < 17; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *seq = v;
    return true;
}

/* A temporary of rr_write_atomic for a checkpoint: "ckpt-<12>.rrc.tmp.*". */
static bool ckpt_name_tmp(const char *name) {
    uint64_t seq;
    char head[5 + 12 + 4 + 1];
    if (strlen(name) < sizeof head - 1 + 5 || strncmp(name + sizeof head - 1, ".tmp.", 5)) return false;
    memcpy(head, name, sizeof head - 1);
    head[sizeof head - 1] = 0;
    return ckpt_name_seq(head, &seq);
}

rr_status rr_ckpt_dir_prepare(const char *dir, size_t *removed, rr_error *err) {
    *removed = 0;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return rr_err(err, RR_ERR_IO, "%s: cannot create the checkpoint folder: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d) return rr_err(err, RR_ERR_IO, "%s: cannot open the checkpoint folder: %s", dir, strerror(errno));
    struct dirent *e;
    rr_status s = RR_OK;
    while ((e = readdir(d))) {
        if (!ckpt_name_tmp(e->d_name)) continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (unlink(path) == 0) (*removed)++;
        else if (errno != ENOENT) s = rr_err(err, RR_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    }
    closedir(d);
    return s;
}

rr_status rr_ckpt_dir_lock(const char *dir, int *fd, rr_error *err) {
    *fd = -1;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/lock", dir) >= (int)sizeof path)
        return rr_err(err, RR_ERR_ARG, "%s: folder name too long", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return rr_err(err, RR_ERR_IO, "%s: cannot create the checkpoint folder: %s", dir, strerror(errno));
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) return rr_err(err, RR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(f);
        if (e == EWOULDBLOCK)
            return rr_err(err, RR_ERR_ARG, "%s is in use by another training run (%s is locked)", dir, path);
        return rr_err(err, RR_ERR_IO, "%s: cannot lock: %s", path, strerror(e));
    }
    *fd = f;
    return RR_OK;
}

void rr_ckpt_dir_unlock(int fd) {
    if (fd >= 0) close(fd); /* closing drops the flock */
}

static int seq_desc(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

rr_status rr_ckpt_list(const char *dir, uint64_t *seqs, size_t max, size_t *n, rr_error *err) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return RR_OK;
        return rr_err(err, RR_ERR_IO, "%s: cannot open the checkpoint folder: %s", dir, strerror(errno));
    }
    /* keep the max newest: gather all (a folder holds a few), sort, cut */
    size_t cap = 16, cnt = 0;
    uint64_t *all = rr_malloc_n(cap, sizeof *all);
    struct dirent *e;
    while (all && (e = readdir(d))) {
        uint64_t q;
        if (!ckpt_name_seq(e->d_name, &q)) continue;
        if (cnt == cap) {
            uint64_t *g = rr_realloc_n(all, cap * 2, sizeof *all);
            if (!g) {
                free(all);
                all = NULL;
                break;
            }
            all = g;
            cap *= 2;
        }
        all[cnt++] = q;
    }
    closedir(d);
    if (!all) return rr_err(err, RR_ERR_NOMEM, "%s: out of memory listing checkpoints", dir);
    qsort(all, cnt, sizeof *all, seq_desc);
    *n = cnt < max ? cnt : max;
    memcpy(seqs, all, *n * sizeof *seqs);
    free(all);
    return RR_OK;
}

/* -------------------------------------------------------------- writer */

typedef struct wsect {
    char name[NAME_FIELD];
    uint32_t dtype, crc;
    uint64_t off, len;
    const void *data;
} wsect;

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
    put_u32(h + 8, FMT_VERSION);
    put_u32(h + 12, (uint32_t)hl);
    put_u32(h + 16, (uint32_t)w->n);
    put_u64(h + 24, w->end);
    for (size_t i = 0; i < w->n; i++) {
        unsigned char *e = h + HDR_FIXED + ENTRY * i;
        memcpy(e, w->s[i].name, NAME_FIELD);
        put_u32(e + 32, w->s[i].dtype);
        put_u32(e + 36, w->s[i].crc);
        put_u64(e + 40, w->s[i].off);
        put_u64(e + 48, w->s[i].len);
    }
    put_u32(h + 20, rr_crc32c(0, h, hl));
    static const unsigned char zeros[ALIGN];
    uint64_t at = hl;
    bool ok = fwrite(h, 1, hl, f) == hl;
    free(h);
    for (size_t i = 0; i < w->n && ok; i++) {
        size_t pad = (size_t)(w->s[i].off - at);
        ok = fwrite(zeros, 1, pad, f) == pad;
        ok = ok && (w->s[i].len == 0 || fwrite(w->s[i].data, 1, (size_t)w->s[i].len, f) == w->s[i].len);
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
    text st = {0};
    tx_add(&st, "n_params=%zu\nn_moments=%d\nL=%zu\nstate_width=", lay->n_params, lay->n_moments, lay->L);
    for (size_t l = 0; l < lay->L; l++) tx_add(&st, "%s%zu", l ? "," : "", lay->state_width[l]);
    tx_add(&st, "\nB=%zu\nn_streams=%zu\n", lay->B, c->n_streams);
    tx_add(&st, "t=%" PRIu64 "\nsteps_total=%" PRIu64 "\nepoch=%zu\nin_epoch=%d\n", c->t, c->steps_total, c->epoch,
           c->in_epoch ? 1 : 0);
    tx_dbl(&st, "loss_sum", c->loss_sum);
    tx_add(&st, "events=%zu\nsteps=%zu\n", c->events, c->steps);
    tx_dbl(&st, "best_score", c->best_score);
    tx_dbl(&st, "best_mrr", c->best_mrr);
    tx_dbl(&st, "last_loss", c->last_loss);
    tx_add(&st, "best_epoch=%zu\nsince_best=%zu\nepochs_run=%zu\nlog_bytes=%" PRIu64 "\n", c->best_epoch,
           c->since_best, c->epochs_run, c->log_bytes);
    tx_add(&st, "has_best=%d\nsampler=%d\n", c->has_best ? 1 : 0, c->has_sampler ? 1 : 0);
    if (c->has_sampler) {
        tx_rng(&st, "sampler.rng", &c->sampler.rng);
        tx_add(&st, "sampler.refills=%" PRIu64 "\nsampler.cursor=%" PRIu64 "\n", c->sampler.refills,
               c->sampler.cursor);
    }
    for (size_t r = 0; r < c->n_streams; r++) {
        char key[32];
        tx_add(&st, "s%zu.n=%zu\ns%zu.next=%zu\n", r, c->streams[r].n, r, c->streams[r].next);
        snprintf(key, sizeof key, "s%zu.rng", r);
        tx_rng(&st, key, &c->streams[r].rng);
    }
    wfile w = {0};
    w.path = path;
    const size_t pb = lay->n_params * sizeof(float); /* fits: the trainer allocated it */
    wf_add(&w, "fingerprint", RR_DT_BYTES, c->fingerprint, strlen(c->fingerprint));
    wf_add(&w, "state", RR_DT_BYTES, st.s, st.len);
    wf_add(&w, "weights", RR_DT_F32, c->weights, pb);
    for (int k = 0; k < lay->n_moments; k++) wf_add(&w, k ? "moment2" : "moment1", RR_DT_F32, c->moment[k], pb);
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
            w.s[i].crc = rr_crc32c(0, w.s[i].data, (size_t)w.s[i].len);
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
    uint32_t ver = get_u32(h + 8), hl = get_u32(h + 12), n = get_u32(h + 16), hcrc = get_u32(h + 20);
    uint64_t len = get_u64(h + 24);
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
        put_u32(hdr + 20, 0);
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
        q->dtype = get_u32(e + 32);
        q->crc = get_u32(e + 36);
        q->off = get_u64(e + 40);
        q->len = get_u64(e + 48);
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
static rr_status check_layout(const kv *k, const rr_ckpt_layout *lay, const char *path, rr_error *err) {
    text want = {0};
    tx_add(&want, "%zu|%d|%zu|", lay->n_params, lay->n_moments, lay->L);
    for (size_t l = 0; l < lay->L; l++) tx_add(&want, "%s%zu", l ? "," : "", lay->state_width[l]);
    tx_add(&want, "|%zu|%zu", lay->B, lay->n_streams);
    const char *names[6] = {"n_params", "n_moments", "L", "state_width", "B", "n_streams"};
    text got = {0};
    for (int i = 0; i < 6; i++) {
        const char *v = kv_get(k, names[i]);
        tx_add(&got, "%s%s", i ? "|" : "", v ? v : "?");
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

static rr_status read_state(rfile *r, const kv *k, const rr_ckpt_layout *lay, rr_ckpt *c, rr_error *err) {
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
    for (int m = 0; m < lay->n_moments && !s; m++) s = rf_get(r, m ? "moment2" : "moment1", RR_DT_F32, pb, c->moment[m], err);
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
    kv k = {0};
    if (!s && (s = kv_parse(&k, st, sl, "checkpoint state", err))) rr_err_prefix(err, "%s", path);
    if (!s) s = read_state(&r, &k, lay, c, err);
    kv_free(&k);
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
