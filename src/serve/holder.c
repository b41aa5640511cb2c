/* holder.c - the served model: loading and validating a model file,
 * describing it for GET /v1/model, deciding whether live sessions survive
 * a swap, and reference counting so requests in flight finish on the
 * model they started with. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stdio.h>
#include <time.h>

#include "io/container.h"
#include "serve/internal.h"
#include "util/util.h"

void srv_model_ref(srv_model *sm) { atomic_fetch_add_explicit(&sm->refs, 1, memory_order_relaxed); }

void srv_model_unref(srv_model *sm) {
    if (!sm) return;
    if (atomic_fetch_sub_explicit(&sm->refs, 1, memory_order_acq_rel) != 1) return;
    free(sm->ids_json);
    free(sm->ids_off);
    rr_model_free(sm->m);
    free(sm->meta_json);
    free(sm->info);
    free(sm->brief);
    free(sm);
}

/* Estimated heap bytes of one live state after an item: measured with
 * glibc's allocator statistics (the public API does not expose the state
 * size).  Other threads allocating at the same time make single readings
 * noisy, so the smallest of a few positive readings is kept. */
static size_t measure_state_bytes(const rr_model *m) {
    size_t best = 0;
    for (int t = 0; t < 5; t++) {
        struct mallinfo2 a = mallinfo2();
        rr_state *st = rr_state_new(m);
        if (!st) return 0;
        rr_state_feed(st, 0);
        struct mallinfo2 b = mallinfo2();
        rr_state_free(st);
        if (b.uordblks > a.uordblks) {
            size_t d = b.uordblks - a.uordblks;
            if (!best || d < best) best = d;
        }
    }
    return best ? best : 64;
}

/* A fingerprint of the model's shape: its kind and every section's name,
 * type and size.  Two files with the same items and the same fingerprint
 * have weights of the same shapes, hence states of the same size. */
static uint64_t arch_signature(const rr_freader *r) {
    const char *kind = rr_fr_kind(r);
    uint64_t h = rr_hash_bytes(kind, strlen(kind), 0xA5C1);
    for (size_t i = 0; i < rr_fr_n_sections(r); i++) {
        const char *name;
        rr_dtype dt;
        size_t bytes;
        uint32_t crc;
        rr_fr_section_at(r, i, &name, &dt, &bytes, &crc);
        uint64_t rec[2] = {(uint64_t)dt, (uint64_t)bytes};
        h = rr_hash_bytes(name, strlen(name), h);
        h = rr_hash_bytes(rec, sizeof rec, h);
    }
    return h;
}

static void kv_json(rr_sbuf *b, const char *k, const char *v, int *first) {
    if (!*first) rr_sbuf_add(b, ",", 1);
    *first = 0;
    rr_sbuf_json_str(b, k, strlen(k));
    rr_sbuf_add(b, ":", 1);
    rr_sbuf_json_str(b, v, strlen(v));
}

/* Training-summary keys are told apart from hyperparameters by name. */
static int is_summary_key(const char *k) {
    static const char *const pre[] = {"train_", "train.final_", "train.epochs_run", "train.best",
                                      "train.seconds", "best_", "valid_", "final_",
                                      "rnnrec_version", "created"};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (!strncmp(k, pre[i], strlen(pre[i]))) return 1;
    return 0;
}

/* Reads the file's container again for what the public model API does not
 * list: every metadata key, the format version and the section shapes.
 * The loaded model must match it (a file replaced between the two reads
 * fails the load cleanly instead of describing the wrong model). */
static rr_status read_container(srv_model *sm, const char *path, rr_error *err) {
    rr_freader *r = NULL;
    rr_status s = rr_fr_open(path, &r, err);
    if (s) return s;
    const char *kind = rr_model_kind(sm->m);
    const char *nk = rr_fr_kv(r, "n_items");
    char want[32];
    snprintf(want, sizeof want, "%zu", rr_model_n_items(sm->m));
    if (strcmp(rr_fr_kind(r), kind) || (nk && strcmp(nk, want))) {
        rr_fr_free(r);
        return rr_err(err, RR_ERR_FORMAT, "%s changed while it was being loaded", path);
    }
    sm->arch_sig = arch_signature(r);
    sm->format_version = rr_fr_version(r);
    rr_sbuf b;
    rr_sbuf_init(&b);
    for (int pass = 0; pass < 2; pass++) {
        rr_sbuf_adds(&b, pass ? ",\"training\":{" : "\"hyperparameters\":{");
        int first = 1;
        for (size_t i = 0; i < rr_fr_n_kv(r); i++) {
            const char *k, *v;
            rr_fr_kv_at(r, i, &k, &v);
            if (is_summary_key(k) == pass) kv_json(&b, k, v, &first);
        }
        rr_sbuf_add(&b, "}", 1);
    }
    rr_fr_free(r);
    size_t len;
    sm->meta_json = rr_sbuf_take(&b, &len);
    if (!sm->meta_json) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    return RR_OK;
}

/* Every item id as a quoted JSON string, once per model: an answer then
 * copies them instead of escaping 20 ids per request. */
static rr_status quote_ids(srv_model *sm, rr_error *err) {
    size_t n = rr_model_n_items(sm->m);
    sm->ids_off = rr_malloc_n(n + 1, sizeof *sm->ids_off);
    if (!sm->ids_off) return rr_err(err, RR_ERR_NOMEM, "out of memory for the item ids");
    rr_sbuf b;
    rr_sbuf_init(&b);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *id = rr_model_item_id(sm->m, (int32_t)i, &len);
        sm->ids_off[i] = b.len;
        rr_sbuf_json_str(&b, id, len);
    }
    sm->ids_off[n] = b.len;
    size_t total;
    sm->ids_json = rr_sbuf_take(&b, &total);
    if (!sm->ids_json) return rr_err(err, RR_ERR_NOMEM, "out of memory for the item ids");
    return RR_OK;
}

rr_status srv_model_load(const char *path, int screen_bits, srv_model **out, rr_error *err) {
    *out = NULL;
    double t0 = rr_now();
    rr_model *m = NULL;
    rr_status s = rr_model_load(path, &m, err);
    if (s) return s;
    if (rr_model_n_items(m) == 0) {
        rr_model_free(m);
        return rr_err(err, RR_ERR_EMPTY, "%s: model has no items", path);
    }
    /* Validation beyond the loader's own checks: a model that cannot score
     * is not ready.  An empty and a one-item session must both score. */
    rr_state *probe[2] = {rr_state_new(m), rr_state_new(m)};
    if (!probe[0] || !probe[1]) s = rr_err(err, RR_ERR_NOMEM, "out of memory");
    if (!s) s = rr_state_feed(probe[1], 0);
    int32_t top[2];
    float sc[2];
    if (!s) s = rr_recommend(m, probe, 2, 1, 0, top, sc, err);
    if (!s && (top[0] < 0 || top[1] < 0)) s = rr_err(err, RR_ERR_FORMAT, "model returns no items");
    rr_state_free(probe[0]);
    rr_state_free(probe[1]);
    if (s) {
        rr_err_prefix(err, "%s: validation", path);
        rr_model_free(m);
        return s;
    }
    srv_model *sm = calloc(1, sizeof *sm);
    if (!sm) {
        rr_model_free(m);
        return rr_err(err, RR_ERR_NOMEM, "out of memory");
    }
    sm->m = m;
    atomic_init(&sm->refs, 1);
    struct stat st;
    sm->file_bytes = stat(path, &st) == 0 ? (long long)st.st_size : -1;
    s = read_container(sm, path, err);
    if (s) {
        srv_model_unref(sm);
        return s;
    }
    sm->state_bytes = measure_state_bytes(m);
    /* The quantised screen of a linear head (rr_model_use_screen): the
     * batcher's rr_recommend ranks with it, same results bit for bit, fewer
     * exact scores; the exact engine only when the head cannot be screened
     * or the CPU lacks AVX-512 VNNI.  8 bits by default: a top list only
     * needs the items near the k-th best score, so the wider band of 8 bits
     * costs little, and the kernel does twice the multiply-adds (measured
     * in docs/serve.md). */
    s = rr_model_use_screen(m, screen_bits, err);
    if (s) {
        srv_model_unref(sm);
        return s;
    }
    s = quote_ids(sm, err);
    if (s) {
        srv_model_unref(sm);
        return s;
    }
    sm->load_seconds = rr_now() - t0;
    sm->loaded_at = (double)time(NULL);
    *out = sm;
    return RR_OK;
}

rr_status srv_model_describe(srv_model *sm, const char *path, rr_error *err) {
    const char *kind = rr_model_kind(sm->m);
    const char *ver = rr_model_meta(sm->m, "rnnrec_version");
    rr_sbuf b;
    rr_sbuf_init(&b);
    rr_sbuf_adds(&b, "{\"kind\":");
    rr_sbuf_json_str(&b, kind, strlen(kind));
    rr_sbuf_printf(&b, ",\"generation\":%llu,\"format_version\":%u,\"version\":",
                   (unsigned long long)sm->gen, sm->format_version);
    if (ver) rr_sbuf_json_str(&b, ver, strlen(ver));
    else rr_sbuf_adds(&b, "null");
    rr_sbuf_adds(&b, ",\"path\":");
    rr_sbuf_json_str(&b, path, strlen(path));
    rr_sbuf_printf(&b, ",\"file_bytes\":%lld,\"items\":%zu,\"load_seconds\":%.6f,\"loaded_at\":%.0f,"
                       "\"state_bytes_estimate\":%zu,\"screen_bits\":%d,",
                   sm->file_bytes, rr_model_n_items(sm->m), sm->load_seconds, sm->loaded_at,
                   sm->state_bytes, rr_model_screen_bits(sm->m));
    rr_sbuf_adds(&b, sm->meta_json);
    rr_sbuf_add(&b, "}", 1);
    free(sm->info);
    sm->info = rr_sbuf_take(&b, &sm->info_len);
    rr_sbuf_init(&b);
    rr_sbuf_adds(&b, "{\"kind\":");
    rr_sbuf_json_str(&b, kind, strlen(kind));
    rr_sbuf_printf(&b, ",\"generation\":%llu}", (unsigned long long)sm->gen);
    free(sm->brief);
    sm->brief = rr_sbuf_take(&b, &sm->brief_len);
    if (!sm->info || !sm->brief) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    return RR_OK;
}

int srv_model_compatible(const srv_model *a, const srv_model *b) {
    if (strcmp(rr_model_kind(a->m), rr_model_kind(b->m))) return 0;
    if (a->arch_sig != b->arch_sig) return 0;
    size_t n = rr_model_n_items(a->m);
    if (n != rr_model_n_items(b->m)) return 0;
    for (size_t i = 0; i < n; i++) {
        size_t la, lb;
        const char *ia = rr_model_item_id(a->m, (int32_t)i, &la);
        const char *ib = rr_model_item_id(b->m, (int32_t)i, &lb);
        if (la != lb || memcmp(ia, ib, la)) return 0;
    }
    return 1;
}
