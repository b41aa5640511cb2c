/* test_container.c - the model file container: round trips, and that every
 * kind of damage gives its specific error (never a crash): bad magic, newer
 * version, truncation at every length, single-byte flips, out-of-range and
 * overlapping sections, absurd counts, bad vocabularies.  Also a POP model's
 * save/load round trip through rr_model_save / rr_model_load. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/dataset.h"
#include "io/container.h"
#include "models/model.h"
#include "util/util.h"

static const char *PATH = "test_container.rrm";

/* Little-endian field access into a file image. */
static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void wr32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void wr64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t rd64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Recomputes the header checksum, so a test reaches the check after it. */
static void fix_header_crc(unsigned char *b) {
    uint32_t hlen = rd32(b + 12);
    wr32(b + 20, 0);
    wr32(b + 20, rr_crc32c(0, b, hlen));
}

/* Index of a section entry by name, or -1. */
static int entry_of(const unsigned char *b, const char *name) {
    uint32_t n = rd32(b + 16);
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp((const char *)b + 64 + 80 * i, name)) return (int)i;
    return -1;
}

static rr_status open_img(const unsigned char *b, size_t len, rr_freader **r) {
    rr_error err;
    return rr_fr_open_mem(b, len, r, &err);
}

static void make_vocab(rr_vocab *v) {
    rr_vocab_init(v);
    const char *ids[] = {"a", "bb", "ccc", "item-42", "x"};
    for (size_t i = 0; i < 5; i++) {
        int32_t idx;
        rr_vocab_add(v, ids[i], strlen(ids[i]), &idx, NULL);
    }
    char longid[RR_ID_MAX];
    memset(longid, 'z', sizeof longid);
    int32_t idx;
    rr_vocab_add(v, longid, sizeof longid, &idx, NULL);
}

static float W[100];
static int32_t INTS[3] = {-7, 0, 123456789};

/* Writes the reference file; returns its image in *img. */
static void write_reference(unsigned char **img, size_t *len) {
    rr_error err;
    rr_fwriter *w = NULL;
    CHECK_OK(rr_fw_new(&w, "testkind", &err), &err);
    CHECK_OK(rr_fw_kv(w, "name", "hello world", &err), &err);
    CHECK_OK(rr_fw_kv_int(w, "layers", -12345678901LL, &err), &err);
    CHECK_OK(rr_fw_kv_double(w, "lr", 0.1, &err), &err);
    CHECK_OK(rr_fw_kv(w, "empty", "", &err), &err);
    CHECK_OK(rr_fw_kv(w, "name", "hello again", &err), &err); /* last write wins */
    for (int i = 0; i < 100; i++) W[i] = (float)i * 0.25f - 3.0f;
    CHECK_OK(rr_fw_section(w, "weights", RR_DT_F32, W, sizeof W, &err), &err);
    CHECK_OK(rr_fw_section(w, "ints", RR_DT_I32, INTS, sizeof INTS, &err), &err);
    CHECK_OK(rr_fw_section(w, "nothing", RR_DT_BYTES, NULL, 0, &err), &err);
    rr_vocab v;
    make_vocab(&v);
    CHECK_OK(rr_fw_vocab(w, &v, &err), &err);
    rr_vocab_clear(&v);
    /* misuse is refused */
    CHECK(rr_fw_section(w, "meta", RR_DT_BYTES, "x", 1, &err) == RR_ERR_ARG);
    CHECK(rr_fw_section(w, "weights", RR_DT_F32, W, 4, &err) == RR_ERR_ARG);
    CHECK(rr_fw_section(w, "odd", RR_DT_F32, W, 6, &err) == RR_ERR_ARG);
    CHECK(rr_fw_section(w, "bad name", RR_DT_BYTES, W, 4, &err) == RR_ERR_ARG);
    CHECK(rr_fw_kv_double(w, "nan", NAN, &err) == RR_ERR_NUMERIC);
    CHECK_OK(rr_fw_commit(w, PATH, &err), &err);
    rr_fw_free(w);
    char *data;
    CHECK_OK(rr_read_file(PATH, 0, &data, len, &err), &err);
    *img = (unsigned char *)data;
}

/* Everything a reader exposes equals the reference (or another reader). */
static int same_content(const rr_freader *a, const rr_freader *b) {
    if (strcmp(rr_fr_kind(a), rr_fr_kind(b)) || rr_fr_version(a) != rr_fr_version(b)) return 0;
    if (rr_fr_n_kv(a) != rr_fr_n_kv(b) || rr_fr_n_sections(a) != rr_fr_n_sections(b)) return 0;
    for (size_t i = 0; i < rr_fr_n_kv(a); i++) {
        const char *k1, *v1, *k2, *v2;
        rr_fr_kv_at(a, i, &k1, &v1);
        rr_fr_kv_at(b, i, &k2, &v2);
        if (strcmp(k1, k2) || strcmp(v1, v2)) return 0;
    }
    for (size_t i = 0; i < rr_fr_n_sections(a); i++) {
        const char *n1, *n2;
        rr_dtype d1, d2;
        size_t b1, b2;
        uint32_t c1, c2;
        rr_fr_section_at(a, i, &n1, &d1, &b1, &c1);
        rr_fr_section_at(b, i, &n2, &d2, &b2, &c2);
        if (strcmp(n1, n2) || d1 != d2 || b1 != b2 || c1 != c2) return 0;
        const void *p1, *p2;
        size_t l1, l2;
        if (rr_fr_section(a, n1, d1, &p1, &l1, NULL) || rr_fr_section(b, n2, d2, &p2, &l2, NULL)) return 0;
        if (l1 != l2 || (l1 && memcmp(p1, p2, l1))) return 0;
    }
    return 1;
}

static void test_round_trip(const unsigned char *img, size_t len) {
    rr_error err;
    rr_freader *r = NULL;
    CHECK_OK(rr_fr_open(PATH, &r, &err), &err);
    if (!r) return;
    CHECK(!strcmp(rr_fr_kind(r), "testkind"));
    CHECK(rr_fr_version(r) == 1);
    CHECK(rr_fr_n_kv(r) == 4);
    CHECK(rr_fr_kv(r, "name") && !strcmp(rr_fr_kv(r, "name"), "hello again"));
    CHECK(rr_fr_kv(r, "empty") && !strcmp(rr_fr_kv(r, "empty"), ""));
    CHECK(rr_fr_kv(r, "missing") == NULL);
    int64_t iv = 0;
    CHECK_OK(rr_fr_kv_int(r, "layers", &iv, &err), &err);
    CHECK(iv == -12345678901LL);
    double dv = 0;
    CHECK_OK(rr_fr_kv_double(r, "lr", &dv, &err), &err);
    CHECK(dv == 0.1);
    CHECK(rr_fr_kv_int(r, "name", &iv, &err) == RR_ERR_FORMAT);
    CHECK(rr_fr_kv_int(r, "missing", &iv, &err) == RR_ERR_FORMAT);
    const void *p;
    size_t bytes;
    CHECK_OK(rr_fr_section(r, "weights", RR_DT_F32, &p, &bytes, &err), &err);
    CHECK(bytes == sizeof W && !memcmp(p, W, sizeof W));
    CHECK(((uintptr_t)p & 63) == 0);
    CHECK_OK(rr_fr_array(r, "ints", RR_DT_I32, 3, &p, &err), &err);
    CHECK(!memcmp(p, INTS, sizeof INTS));
    CHECK(((uintptr_t)p & 63) == 0);
    CHECK(rr_fr_array(r, "ints", RR_DT_I32, 4, &p, &err) == RR_ERR_FORMAT);
    CHECK(rr_fr_array(r, "ints", RR_DT_F32, 3, &p, &err) == RR_ERR_FORMAT);
    CHECK(rr_fr_section(r, "absent", RR_DT_F32, &p, &bytes, &err) == RR_ERR_FORMAT);
    CHECK_OK(rr_fr_section(r, "nothing", RR_DT_BYTES, &p, &bytes, &err), &err);
    CHECK(bytes == 0);
    rr_vocab v, ref;
    CHECK_OK(rr_fr_vocab(r, &v, &err), &err);
    make_vocab(&ref);
    CHECK(v.n == ref.n && v.pool_len == ref.pool_len);
    for (size_t i = 0; i < ref.n && v.n == ref.n; i++) {
        size_t l1, l2;
        const char *a = rr_vocab_id(&v, (int32_t)i, &l1), *b = rr_vocab_id(&ref, (int32_t)i, &l2);
        CHECK(l1 == l2 && !memcmp(a, b, l1));
        CHECK(rr_vocab_find(&v, b, l2) == (int32_t)i);
    }
    rr_vocab_clear(&v);
    rr_vocab_clear(&ref);
    /* the in-memory reader sees the same thing */
    rr_freader *r2 = NULL;
    CHECK_OK(rr_fr_open_mem(img, len, &r2, &err), &err);
    CHECK(r2 && same_content(r, r2));
    /* the section table lists meta first */
    const char *name;
    rr_dtype dt;
    uint32_t crc;
    rr_fr_section_at(r, 0, &name, &dt, &bytes, &crc);
    CHECK(!strcmp(name, "meta") && dt == RR_DT_BYTES);
    CHECK(len % 1 == 0 && rd64(img + 24) == len);
    rr_fr_free(r2);
    rr_fr_free(r);
}

static void test_errors(const unsigned char *img, size_t len) {
    unsigned char *b = malloc(len + 64);
    rr_freader *r = NULL;
    rr_error err;

    /* foreign files */
    CHECK(rr_fr_open_mem("", 0, &r, &err) == RR_ERR_TRUNCATED);
    CHECK(rr_fr_open_mem("hello, world! this is not a model file at all, just some text....", 64, &r, &err) ==
          RR_ERR_FORMAT);
    CHECK(rr_fr_open_mem("PK\x03\x04", 4, &r, &err) == RR_ERR_FORMAT);
    CHECK(rr_fr_open("/nonexistent/dir/model.rrm", &r, &err) == RR_ERR_IO);
    CHECK(rr_fr_open("/dev/zero", &r, &err) == RR_ERR_IO); /* not a regular file: never read */
    CHECK(rr_fr_open(".", &r, &err) == RR_ERR_IO);
    CHECK(r == NULL);

    /* bad magic */
    memcpy(b, img, len);
    b[3] ^= 0x20;
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);

    /* newer version: RR_ERR_VERSION even with a valid checksum; 0 is invalid */
    memcpy(b, img, len);
    wr32(b + 8, 2);
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_VERSION);
    CHECK(rr_fr_open_mem(b, len, &r, &err) == RR_ERR_VERSION && strstr(err.msg, "newer"));
    wr32(b + 8, 0);
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);

    /* truncation at every length */
    size_t bad_trunc = 0;
    for (size_t n = 0; n < len; n++)
        if (open_img(img, n, &r) != RR_ERR_TRUNCATED) bad_trunc++;
    CHECK_MSG(bad_trunc == 0, "%zu of %zu truncated lengths not RR_ERR_TRUNCATED", bad_trunc, len);

    /* trailing bytes */
    memcpy(b, img, len);
    memset(b + len, 0, 64);
    CHECK(open_img(b, len + 1, &r) == RR_ERR_FORMAT);

    /* damaged header without a fixed checksum, damaged data */
    memcpy(b, img, len);
    b[40] ^= 1; /* kind */
    CHECK(open_img(b, len, &r) == RR_ERR_CHECKSUM);
    int wi = entry_of(img, "weights");
    CHECK(wi >= 0);
    size_t woff = (size_t)rd64(img + 64 + 80 * wi + 64);
    memcpy(b, img, len);
    b[woff + 5] ^= 0x10;
    CHECK(open_img(b, len, &r) == RR_ERR_CHECKSUM);

    /* out-of-range, overlapping, misaligned sections; absurd counts */
    unsigned char *e = b + 64 + 80 * wi;
    memcpy(b, img, len);
    wr64(e + 64, (uint64_t)len + 64);
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);
    memcpy(b, img, len);
    wr64(e + 72, UINT64_MAX - 8);
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);
    memcpy(b, img, len);
    wr64(e + 64, rd64(b + 64 + 64)); /* onto meta's offset */
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);
    memcpy(b, img, len);
    wr64(e + 64, rd64(e + 64) + 4);
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);
    memcpy(b, img, len);
    wr64(e + 64, 0); /* onto the header */
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);
    memcpy(b, img, len);
    wr32(e + 56, 99); /* unknown dtype */
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);
    memcpy(b, img, len);
    wr64(e + 72, 6); /* not a whole number of floats */
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);
    memcpy(b, img, len);
    wr32(b + 16, 0xffffffffu);
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);
    memcpy(b, img, len);
    wr32(b + 16, rd32(b + 16) + 1); /* header_len no longer matches */
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);
    memcpy(b, img, len);
    wr64(b + 24, 10); /* file_len shorter than the header */
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);
    memcpy(b, img, len);
    memcpy(e, "meta", 5); /* duplicate name */
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_ERR_FORMAT);

    /* vocabulary claiming 2^60 ids: the section checksum is made valid, so
     * only the count check stands between it and a huge allocation */
    int vi = entry_of(img, "vocab");
    CHECK(vi >= 0);
    unsigned char *ve = b + 64 + 80 * vi;
    memcpy(b, img, len);
    size_t voff = (size_t)rd64(ve + 64), vbytes = (size_t)rd64(ve + 72);
    wr64(b + voff, (uint64_t)1 << 60);
    wr32(ve + 60, rr_crc32c(0, b + voff, vbytes));
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_OK);
    if (r) {
        rr_vocab v;
        CHECK(rr_fr_vocab(r, &v, &err) == RR_ERR_FORMAT);
        rr_fr_free(r);
        r = NULL;
    }
    /* one id length off: lengths no longer add up */
    memcpy(b, img, len);
    b[voff + 8] = 2;
    wr32(ve + 60, rr_crc32c(0, b + voff, vbytes));
    fix_header_crc(b);
    CHECK(open_img(b, len, &r) == RR_OK);
    if (r) {
        rr_vocab v;
        CHECK(rr_fr_vocab(r, &v, &err) == RR_ERR_FORMAT);
        rr_fr_free(r);
        r = NULL;
    }
    free(b);
}

/* Every single-byte flip gives an error or exactly the original content. */
static void test_flips(const unsigned char *img, size_t len) {
    rr_freader *ref = NULL;
    rr_error err;
    CHECK_OK(rr_fr_open_mem(img, len, &ref, &err), &err);
    if (!ref) return;
    unsigned char *b = malloc(len);
    static const unsigned char pats[] = {0x01, 0x80, 0xff, 0x10};
    size_t errors = 0, same = 0, wrong = 0, bad_status = 0;
    for (size_t i = 0; i < len; i++)
        for (size_t q = 0; q < sizeof pats; q++) {
            memcpy(b, img, len);
            b[i] ^= pats[q];
            rr_freader *r = NULL;
            rr_status s = rr_fr_open_mem(b, len, &r, &err);
            if (s != RR_OK) {
                errors++;
                if (s != RR_ERR_FORMAT && s != RR_ERR_TRUNCATED && s != RR_ERR_CHECKSUM && s != RR_ERR_VERSION)
                    bad_status++;
                continue;
            }
            if (same_content(ref, r)) {
                rr_vocab v;
                if (rr_fr_vocab(r, &v, &err) == RR_OK) {
                    same++;
                    rr_vocab_clear(&v);
                } else wrong++;
            } else wrong++;
            rr_fr_free(r);
        }
    CHECK_MSG(wrong == 0, "%zu flips were accepted with different content", wrong);
    CHECK(bad_status == 0);
    CHECK(errors > 0);
    printf("flips: %zu errors, %zu harmless (padding), %zu wrong\n", errors, same, wrong);
    free(b);
    rr_fr_free(ref);
}

/* ---- model-level round trip with POP */

static rr_dataset *make_dataset(const char *const *sessions, size_t n) {
    rr_dataset *d = rr_dataset_new();
    size_t ne = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = sessions[i];
        while (*p) {
            while (*p == ' ') p++;
            if (!*p) break;
            ne++;
            while (*p && *p != ' ') p++;
        }
    }
    rr_sessions_alloc(&d->s, n, ne, NULL);
    d->sess_id = malloc(n * sizeof *d->sess_id);
    size_t e = 0;
    for (size_t i = 0; i < n; i++) {
        char sid[32];
        snprintf(sid, sizeof sid, "s%zu", i);
        rr_vocab_add(&d->sessions, sid, strlen(sid), &d->sess_id[i], NULL);
        const char *p = sessions[i];
        while (*p) {
            while (*p == ' ') p++;
            if (!*p) break;
            const char *q = p;
            while (*q && *q != ' ') q++;
            rr_vocab_add(&d->items, p, (size_t)(q - p), &d->s.items[e], NULL);
            d->s.times[e] = (double)e;
            e++;
            p = q;
        }
        d->s.offsets[i + 1] = (int64_t)e;
    }
    return d;
}

static void test_model_round_trip(void) {
    const char *train_s[] = {"a b c", "b c d", "c c a", "e"};
    rr_dataset *train = make_dataset(train_s, 4);
    rr_train_params tp;
    rr_train_params_default(&tp);
    tp.kind = "pop";
    rr_model *m = NULL;
    rr_error err;
    CHECK_OK(rr_model_train(&m, train, NULL, &tp, &err), &err);
    if (!m) return;
    CHECK(!strcmp(rr_model_kind(m), "pop"));
    CHECK(rr_model_n_items(m) == 5);
    CHECK_OK(rr_model_set_meta(m, "note", "round trip", &err), &err);
    CHECK_OK(rr_model_save(m, PATH, &err), &err);
    rr_model *m2 = NULL;
    CHECK_OK(rr_model_load(PATH, &m2, &err), &err);
    if (m2) {
        CHECK(!strcmp(rr_model_kind(m2), "pop"));
        CHECK(rr_model_n_items(m2) == 5);
        CHECK(rr_model_meta(m2, "note") && !strcmp(rr_model_meta(m2, "note"), "round trip"));
        CHECK(rr_model_meta(m2, "train_events") && !strcmp(rr_model_meta(m2, "train_events"), "10"));
        CHECK(rr_model_meta(m2, "n_items") && !strcmp(rr_model_meta(m2, "n_items"), "5"));
        for (int32_t i = 0; i < 5; i++) {
            size_t l1, l2;
            const char *a = rr_model_item_id(m, i, &l1), *b = rr_model_item_id(m2, i, &l2);
            CHECK(l1 == l2 && !memcmp(a, b, l1));
            CHECK(m->counts[i] == m2->counts[i]);
        }
        CHECK(rr_model_item_index(m2, "c", 1) == 2);
        CHECK(rr_model_item_index(m2, "zz", 2) == -1);
        CHECK(rr_model_item_id(m2, 5, &(size_t){0}) == NULL);
        /* recommendations agree: c (4) a (2) b (2) d (1) e (1) */
        rr_state *s1 = rr_state_new(m), *s2 = rr_state_new(m2);
        CHECK(rr_state_feed(s1, 0) == RR_OK && rr_state_feed(s2, 0) == RR_OK);
        CHECK(rr_state_feed(s1, 5) == RR_ERR_RANGE && rr_state_feed(s1, -1) == RR_ERR_RANGE);
        CHECK(rr_state_len(s1) == 1);
        int32_t i1[7], i2[7];
        float f1[7], f2[7];
        CHECK_OK(rr_recommend(m, &s1, 1, 7, 0, i1, f1, &err), &err);
        CHECK_OK(rr_recommend(m2, &s2, 1, 7, 0, i2, f2, &err), &err);
        CHECK(!memcmp(i1, i2, sizeof i1) && !memcmp(f1, f2, sizeof f1));
        CHECK(i1[0] == 2 && i1[1] == 0 && i1[2] == 1 && i1[3] == 3 && i1[4] == 4 && i1[5] == -1 && i1[6] == -1);
        CHECK(f1[0] == 4.0f && f1[4] == 1.0f && f1[5] == -INFINITY);
        /* exclude_seen drops a; an empty session gets popularity */
        CHECK_OK(rr_recommend(m2, &s2, 1, 3, 1, i2, f2, &err), &err);
        CHECK(i2[0] == 2 && i2[1] == 1 && i2[2] == 3);
        rr_state_reset(s2);
        CHECK(rr_state_len(s2) == 0);
        CHECK_OK(rr_recommend(m2, &s2, 1, 2, 1, i2, f2, &err), &err);
        CHECK(i2[0] == 2 && i2[1] == 0);
        rr_state_free(s1);
        rr_state_free(s2);
    }
    /* a damaged model file at every truncation length: an error, no crash */
    char *data;
    size_t len;
    CHECK_OK(rr_read_file(PATH, 0, &data, &len, &err), &err);
    const char *tp2 = "test_container_trunc.rrm";
    size_t ok = 0;
    for (size_t n = 0; n < len; n += (n < 200 ? 1 : 7)) {
        FILE *f = fopen(tp2, "wb");
        fwrite(data, 1, n, f);
        fclose(f);
        rr_model *m3 = NULL;
        if (rr_model_load(tp2, &m3, &err) == RR_OK) ok++;
        rr_model_free(m3);
    }
    CHECK(ok == 0);
    /* an unknown kind is refused as unsupported */
    rr_fwriter *w = NULL;
    rr_fw_new(&w, "nosuchkind", &err);
    rr_fw_commit(w, tp2, &err);
    rr_fw_free(w);
    rr_model *m4 = NULL;
    CHECK(rr_model_load(tp2, &m4, &err) == RR_ERR_UNSUPPORTED && m4 == NULL);
    /* a duplicate id in the vocabulary is refused */
    w = NULL;
    rr_fw_new(&w, "pop", &err);
    unsigned char vb[8 + 2 + 2] = {2, 0, 0, 0, 0, 0, 0, 0, 1, 1, 'q', 'q'};
    double cnt[2] = {1, 1};
    rr_fw_section(w, "vocab", RR_DT_BYTES, vb, sizeof vb, &err);
    rr_fw_section(w, "counts", RR_DT_F64, cnt, sizeof cnt, &err);
    CHECK_OK(rr_fw_commit(w, tp2, &err), &err);
    rr_fw_free(w);
    CHECK(rr_model_load(tp2, &m4, &err) == RR_ERR_FORMAT && strstr(err.msg, "twice"));
    /* counts of the wrong length */
    w = NULL;
    rr_fw_new(&w, "pop", &err);
    vb[11] = 'r';
    rr_fw_section(w, "vocab", RR_DT_BYTES, vb, sizeof vb, &err);
    rr_fw_section(w, "counts", RR_DT_F64, cnt, sizeof cnt[0], &err);
    rr_fw_commit(w, tp2, &err);
    rr_fw_free(w);
    CHECK(rr_model_load(tp2, &m4, &err) == RR_ERR_FORMAT);
    unlink(tp2);
    /* the old file survives a failed write (unwritable directory) */
    CHECK(rr_model_save(m, "/nonexistent-dir/x.rrm", &err) == RR_ERR_IO);
    free(data);
    rr_model_free(m);
    rr_model_free(m2);
    rr_dataset_free(train);
    /* unknown kind and bad parameters at training time */
    rr_dataset *d = make_dataset(train_s, 4);
    tp.kind = "nosuch";
    CHECK(rr_model_train(&m, d, NULL, &tp, &err) == RR_ERR_ARG && strstr(err.msg, "pop"));
    tp.kind = "pop";
    tp.threads = -1;
    CHECK(rr_model_train(&m, d, NULL, &tp, &err) == RR_ERR_ARG);
    rr_dataset_free(d);
}

int main(void) {
    unsigned char *img = NULL;
    size_t len = 0;
    write_reference(&img, &len);
    if (img) {
        test_round_trip(img, len);
        test_errors(img, len);
        test_flips(img, len);
    }
    free(img);
    unlink(PATH);
    test_model_round_trip();
    unlink(PATH);
    return check_summary("test_container");
}
