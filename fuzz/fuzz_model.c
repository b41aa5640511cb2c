/* fuzz_model.c - libFuzzer harness for the model file reader and loaders.
 *
 * Input: a model file.  It is opened twice: as a container from memory
 * (rr_fr_open_mem, walking every section, key and the vocabulary) and as a
 * model through a memfd path (rr_model_load, the kind's own loader).
 * Random mutations nearly always break a CRC-32C and stop at the checksum
 * test, so every input is also tried once more with its header and section
 * checksums recomputed (where the table is readable): that copy reaches the
 * structural checks and the kinds' loaders.
 *
 * Oracle, besides "no crash, leak, hang or sanitizer report":
 *   - the two opens agree: a container that fails to open never loads;
 *   - a loaded model answers: states fed with items chosen from the input,
 *     rr_recommend returns in-range, distinct items in descending score
 *     order (NaN aside), -1 padding only after the catalogue runs out;
 *   - saving the loaded model and loading it again gives the same
 *     recommendations, bit for bit. */
#include <math.h>
#include <string.h>

#include "fuzz_common.h"
#include "io/container.h"
#include "models/model.h"
#include "util/util.h"

static fuzz_file g_in;
static char g_out[64];

static void walk_container(const rr_freader *r) {
    size_t n = rr_fr_n_sections(r);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        rr_dtype dt;
        size_t bytes, got;
        uint32_t crc;
        rr_fr_section_at(r, i, &name, &dt, &bytes, &crc);
        const void *p;
        FUZZ_ASSERT(rr_fr_section(r, name, dt, &p, &got, NULL) == RR_OK && got == bytes, "section %s", name);
        FUZZ_ASSERT(((uintptr_t)p & 63) == 0, "section %s not 64-byte aligned", name);
    }
    for (size_t i = 0; i < rr_fr_n_kv(r); i++) {
        const char *k, *v;
        rr_fr_kv_at(r, i, &k, &v);
        FUZZ_ASSERT(rr_fr_kv(r, k) == v, "key %s not found by name", k);
        int64_t x;
        double y;
        (void)rr_fr_kv_int(r, k, &x, NULL);
        (void)rr_fr_kv_double(r, k, &y, NULL);
    }
    rr_vocab v;
    if (rr_fr_vocab(r, &v, NULL) == RR_OK) {
        for (size_t i = 0; i < v.n; i++) {
            size_t len;
            const char *id = rr_vocab_id(&v, (int32_t)i, &len);
            FUZZ_ASSERT(rr_vocab_find(&v, id, len) == (int32_t)i, "vocab id %zu not unique", i);
        }
        rr_vocab_clear(&v);
    }
}

enum { K = 7, NS = 3 };

/* Recommendations for NS sessions built from the input bytes. */
static void recommend(const rr_model *m, const uint8_t *data, size_t size, int32_t *items, float *scores) {
    size_t ni = rr_model_n_items(m);
    rr_state *st[NS];
    for (int s = 0; s < NS; s++) {
        st[s] = rr_state_new(m);
        FUZZ_ASSERT(st[s], "rr_state_new failed");
        size_t len = (size_t)s * 2; /* 0, 2, 4 events: session 0 is empty */
        for (size_t t = 0; t < len; t++) {
            size_t b = (size * (t + 1) / (len + 1) + (size_t)s) % (size ? size : 1);
            int32_t it = (int32_t)((size ? data[b] : 0) % ni);
            FUZZ_ASSERT(rr_state_feed(st[s], it) == RR_OK, "feed %d of %zu", (int)it, ni);
        }
        FUZZ_ASSERT(rr_state_feed(st[s], (int32_t)ni) == RR_ERR_RANGE, "out-of-range item accepted");
    }
    rr_error err;
    rr_status rs = rr_recommend(m, st, NS, K, (int)(size & 1), items, scores, &err);
    FUZZ_ASSERT(rs == RR_OK, "rr_recommend: %s", err.msg);
    for (int s = 0; s < NS; s++) {
        const int32_t *row = items + s * K;
        const float *sc = scores + s * K;
        for (int j = 0; j < K; j++) {
            if (row[j] < 0) {
                FUZZ_ASSERT(row[j] == -1, "bad padding");
                continue;
            }
            FUZZ_ASSERT((size_t)row[j] < ni, "item %d of %zu", (int)row[j], ni);
            for (int q = 0; q < j; q++) FUZZ_ASSERT(row[q] != row[j], "item %d twice", (int)row[j]);
            if (j && row[j - 1] >= 0 && !isnan(sc[j]) && !isnan(sc[j - 1]))
                FUZZ_ASSERT(sc[j] <= sc[j - 1], "scores not descending");
        }
        rr_state_free(st[s]);
    }
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes the checksums of a model image in place (layout: container.c).
 * Returns 1 when anything was rewritten. */
static int fix_crcs(uint8_t *b, size_t len) {
    if (len < 64 || memcmp(b, "RNNREC\0\x1a", 8)) return 0;
    uint32_t hlen = rd32(b + 12), nsec = rd32(b + 16);
    if (hlen > len || hlen < 64 || nsec > 1024 || 64 + (uint64_t)80 * nsec > hlen) return 0;
    for (uint32_t i = 0; i < nsec; i++) {
        uint8_t *e = b + 64 + 80 * i;
        uint64_t off = rd64(e + 64), n = rd64(e + 72);
        if (off <= len && n <= len - off) wr32(e + 60, rr_crc32c(0, b + off, (size_t)n));
    }
    wr32(b + 20, 0);
    wr32(b + 20, rr_crc32c(0, b, hlen));
    return 1;
}

static void one_input(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one_input(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    if (fix_crcs(copy, size) && memcmp(copy, data, size)) one_input(copy, size);
    free(copy);
    return 0;
}

static void one_input(const uint8_t *data, size_t size) {
    rr_error err;
    rr_freader *r = NULL;
    rr_status cs = rr_fr_open_mem(data, size, &r, &err);
    if (cs == RR_OK) {
        walk_container(r);
        rr_fr_free(r);
    } else {
        FUZZ_ASSERT(r == NULL, "failed open returned a reader");
    }
    fuzz_file_put(&g_in, data, size);
    rr_model *m = (rr_model *)1;
    memset(&err, 0, sizeof err);
    rr_status ms = rr_model_load(g_in.path, &m, &err);
    if (ms != RR_OK) {
        FUZZ_ASSERT(m == NULL, "failed load returned a model");
        FUZZ_ASSERT(err.status == ms && err.msg[0], "status %d without a message", (int)ms);
        FUZZ_ASSERT(ms != RR_ERR_INTERNAL, "internal error: %s", err.msg);
        return;
    }
    FUZZ_ASSERT(cs == RR_OK, "model loaded although the container failed: %s", err.msg);
    FUZZ_ASSERT(rr_model_n_items(m) >= 1, "model without items");
    int32_t a_items[NS * K], b_items[NS * K];
    float a_sc[NS * K], b_sc[NS * K];
    recommend(m, data, size, a_items, a_sc);
    /* save -> load -> same answers */
    if (!g_out[0]) snprintf(g_out, sizeof g_out, "/dev/shm/rr_fuzz_model_%d.rrm", (int)getpid());
    FUZZ_ASSERT(rr_model_save(m, g_out, &err) == RR_OK, "save: %s", err.msg);
    rr_model *m2 = NULL;
    FUZZ_ASSERT(rr_model_load(g_out, &m2, &err) == RR_OK, "reload of a saved model: %s", err.msg);
    unlink(g_out);
    recommend(m2, data, size, b_items, b_sc);
    FUZZ_ASSERT(!memcmp(a_items, b_items, sizeof a_items), "items differ after save/load");
    FUZZ_ASSERT(!memcmp(a_sc, b_sc, sizeof a_sc), "scores differ after save/load");
    rr_model_free(m2);
    rr_model_free(m);
}
