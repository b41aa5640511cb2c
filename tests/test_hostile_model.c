/* test_hostile_model.c - hand-made corrupt model files, each with its pinned
 * status and message, and sweeps over every truncation length and every
 * single-byte flip of two small real models (POP and a tiny GRU trained
 * here): each load is an error or a model that recommends exactly like the
 * original, never a crash, hang, or an allocation beyond the file's size
 * plus 1 MiB.
 *
 * Allocation bound: in a normal build the sweep runs in a forked child
 * under RLIMIT_AS = (its address space at the start) + 2 x file + 2 MiB, so
 * any attempt to allocate more fails and shows up as RR_ERR_NOMEM; under
 * AddressSanitizer (which reserves terabytes of shadow, so RLIMIT_AS cannot
 * be used) the allocator hook records the largest single request instead.
 *
 * Files go through a memfd (/proc/self/fd/N), a regular file to the loader.
 * Cases whose bug is known and reported are marked XFAIL: they run in a
 * forked child (a crash there is the bug, not the end of the test), print
 * what happened, and make the test FAIL once they pass, so the mark is
 * removed together with the fix (see docs/reliability.md). */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "data/dataset.h"
#include "io/container.h"
#include "models/model.h"
#include "util/util.h"

#if defined(__SANITIZE_ADDRESS__)
#define HM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HM_ASAN 1
#endif
#endif

#ifdef HM_ASAN
/* from <sanitizer/allocator_interface.h> (shipped with clang, not gcc) */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
static volatile size_t g_max_alloc; /* largest single request since reset */
static void hm_malloc_hook(const volatile void *p, size_t n) {
    (void)p;
    if (n > g_max_alloc) g_max_alloc = n;
}
static void hm_free_hook(const volatile void *p) { (void)p; }
#endif

static int g_fd = -1;
static char g_path[64];

/* ------------------------------------------------------------- images */

typedef struct img {
    unsigned char *b;
    size_t len;
} img;

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void wr64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static img img_copy(img a) {
    img c = {malloc(a.len + 64), a.len};
    memcpy(c.b, a.b, a.len);
    return c;
}

/* Section table entry of name (container.c layout), or NULL. */
static unsigned char *entry(img a, const char *name) {
    uint32_t n = rd32(a.b + 16);
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp((const char *)a.b + 64 + 80 * i, name)) return a.b + 64 + 80 * i;
    return NULL;
}

/* Recomputes every section checksum (where the entry is in bounds) and the
 * header checksum, so a case reaches the check after them. */
static void fix_crcs(img a) {
    uint32_t hlen = rd32(a.b + 12), n = rd32(a.b + 16);
    if (hlen > a.len) return;
    for (uint32_t i = 0; i < n && 64 + 80 * (size_t)(i + 1) <= hlen; i++) {
        unsigned char *e = a.b + 64 + 80 * i;
        uint64_t off = rd64(e + 64), bytes = rd64(e + 72);
        if (off <= a.len && bytes <= a.len - off) wr32(e + 60, rr_crc32c(0, a.b + off, (size_t)bytes));
    }
    wr32(a.b + 20, 0);
    wr32(a.b + 20, rr_crc32c(0, a.b, hlen));
}

static void put_file(const void *p, size_t n) {
    if (g_fd < 0) {
        g_fd = memfd_create("hostile_model", 0);
        if (g_fd < 0) {
            perror("memfd_create");
            exit(1);
        }
        snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
    }
    if (ftruncate(g_fd, 0) != 0 || (n && pwrite(g_fd, p, n, 0) != (ssize_t)n)) {
        perror("memfd write");
        exit(1);
    }
}

static img read_path(const char *path) {
    img a = {NULL, 0};
    char *d;
    rr_error err;
    if (rr_read_file(path, 0, &d, &a.len, &err) == RR_OK) a.b = (unsigned char *)d;
    else fprintf(stderr, "%s\n", err.msg);
    return a;
}

/* A file rebuilt from a valid image through the writer, with one change:
 * kind replaced (if kind), key set or removed (value NULL), section
 * replaced or removed (data NULL and bytes 0 removes; name "meta" is not
 * allowed).  Lets a case damage the content while every checksum stays
 * right. */
typedef struct edit {
    const char *kind;
    const char *key, *value;
    int drop_key;
    const char *sec;
    rr_dtype dt;
    const void *data;
    size_t bytes;
    int drop_sec;
} edit;

static img rebuild(img a, const edit *e) {
    rr_freader *r = NULL;
    rr_error err;
    img out = {NULL, 0};
    if (rr_fr_open_mem(a.b, a.len, &r, &err) != RR_OK) {
        fprintf(stderr, "rebuild: %s\n", err.msg);
        return out;
    }
    rr_fwriter *w = NULL;
    CHECK_OK(rr_fw_new(&w, e->kind ? e->kind : rr_fr_kind(r), &err), &err);
    for (size_t i = 0; w && i < rr_fr_n_kv(r); i++) {
        const char *k, *v;
        rr_fr_kv_at(r, i, &k, &v);
        if (e->key && !strcmp(k, e->key)) continue;
        rr_fw_kv(w, k, v, &err);
    }
    if (w && e->key && !e->drop_key) rr_fw_kv(w, e->key, e->value, &err);
    int replaced = 0;
    for (size_t i = 0; w && i < rr_fr_n_sections(r); i++) {
        const char *name;
        rr_dtype dt;
        size_t bytes;
        uint32_t crc;
        const void *p;
        rr_fr_section_at(r, i, &name, &dt, &bytes, &crc);
        if (!strcmp(name, "meta")) continue;
        if (e->sec && !strcmp(name, e->sec)) {
            replaced = 1;
            if (e->drop_sec) continue;
            CHECK_OK(rr_fw_section(w, name, e->dt, e->data, e->bytes, &err), &err);
            continue;
        }
        rr_fr_section(r, name, dt, &p, &bytes, NULL);
        CHECK_OK(rr_fw_section(w, name, dt, p, bytes, &err), &err);
    }
    if (w && e->sec && !replaced && !e->drop_sec)
        CHECK_OK(rr_fw_section(w, e->sec, e->dt, e->data, e->bytes, &err), &err);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "hostile_model_%d.tmp.rrm", (int)getpid());
    if (w) CHECK_OK(rr_fw_commit(w, tmp, &err), &err);
    rr_fw_free(w);
    rr_fr_free(r);
    out = read_path(tmp);
    unlink(tmp);
    return out;
}

/* Section data of a valid image (pointer into it) and its size. */
static unsigned char *sec_data(img a, const char *name, size_t *bytes) {
    unsigned char *e = entry(a, name);
    if (!e) return NULL;
    *bytes = (size_t)rd64(e + 72);
    return a.b + rd64(e + 64);
}

/* ------------------------------------------------------------- checks */

/* Loads [p, n) and checks the pinned outcome: status and a message
 * substring.  An expected failure also leaves *out NULL. */
static void expect_load(const char *what, const void *p, size_t n, rr_status want, const char *msg, int line) {
    put_file(p, n);
    rr_model *m = (rr_model *)1;
    rr_error err;
    memset(&err, 0, sizeof err);
    rr_status st = rr_model_load(g_path, &m, &err);
    CHECK_MSG(st == want, "line %d (%s): status %s, want %s: %s", line, what, rr_status_str(st), rr_status_str(want),
              err.msg);
    if (st != RR_OK) {
        CHECK_MSG(m == NULL, "line %d (%s): a failed load returned a model", line, what);
        CHECK_MSG(msg && strstr(err.msg, msg), "line %d (%s): message '%s' lacks '%s'", line, what, err.msg,
                  msg ? msg : "");
    } else rr_model_free(m);
}
#define EXPECT(what, a, st, msg) expect_load(what, (a).b, (a).len, st, msg, __LINE__)

/* Regression cases of fixed bugs (RR-1, RR-2 in docs/reliability.md): the
 * pinned outcome is checked in a forked child under an allocation budget,
 * so a crash or an oversized allocation fails the test instead of ending it. */
static void expect_fixed_bug(const char *bug, const char *what, img a, rr_status want, const char *msg,
                             size_t alloc_budget, int asan_only) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
#ifndef HM_ASAN
        if (alloc_budget) {
            struct rlimit rl;
            long pages = 0, rss;
            FILE *f = fopen("/proc/self/statm", "r");
            if (f && fscanf(f, "%ld %ld", &pages, &rss) == 2) {
                rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + alloc_budget;
                setrlimit(RLIMIT_AS, &rl);
            }
            if (f) fclose(f);
        }
#else
        g_max_alloc = 0;
#endif
        put_file(a.b, a.len);
        rr_model *m = NULL;
        rr_error err;
        memset(&err, 0, sizeof err);
        rr_status st = rr_model_load(g_path, &m, &err);
        int ok = st == want && m == NULL && strstr(err.msg, msg) != NULL;
        if (!ok) fprintf(stderr, "  (%s: got %s: %s)\n", what, rr_status_str(st), err.msg);
#ifdef HM_ASAN
        if (alloc_budget && g_max_alloc > alloc_budget) {
            fprintf(stderr, "  (%s: allocated %zu bytes at once, budget %zu)\n", what, (size_t)g_max_alloc,
                    alloc_budget);
            ok = 0;
        }
#endif
        _exit(ok ? 0 : 3);
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    int passed = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
    (void)asan_only; /* RR-1 read freed memory: only ASan saw it fail */
    CHECK_MSG(passed, "%s regression (%s): %s", bug, what,
              WIFSIGNALED(ws) ? "crashed (signal)" : "wrong status, message or allocation (see above)");
}

/* ------------------------------------------------------------- models */

static rr_model *train_tiny(const char *kind, rr_dataset *d) {
    rr_train_params tp;
    rr_train_params_default(&tp);
    tp.kind = kind;
    tp.n_layers = 1;
    tp.layers[0] = 3;
    tp.batch_size = 4;
    tp.n_sample = 0;
    tp.epochs = 1;
    tp.threads = 1;
    rr_model *m = NULL;
    rr_error err;
    CHECK_OK(rr_model_train(&m, d, NULL, &tp, &err), &err);
    return m;
}

static img save_img(const rr_model *m) {
    char tmp[64];
    snprintf(tmp, sizeof tmp, "hostile_model_%d.tmp.rrm", (int)getpid());
    rr_error err;
    CHECK_OK(rr_model_save(m, tmp, &err), &err);
    img a = read_path(tmp);
    unlink(tmp);
    return a;
}

enum { NS = 3, K = 6 };

/* Top-K items and scores of three fixed sessions (empty, 1 item, 3 items). */
static int recs(const rr_model *m, int32_t *items, float *scores) {
    size_t ni = rr_model_n_items(m);
    rr_state *st[NS];
    int ok = 1;
    for (int s = 0; s < NS; s++) {
        st[s] = rr_state_new(m);
        if (!st[s]) return 0;
        for (int t = 0; t < 2 * s - (s > 0); t++) ok &= rr_state_feed(st[s], (int32_t)((size_t)(3 * t + s) % ni)) == RR_OK;
    }
    rr_error err;
    ok &= rr_recommend(m, st, NS, K, 0, items, scores, &err) == RR_OK;
    for (int s = 0; s < NS; s++) rr_state_free(st[s]);
    return ok;
}

/* ------------------------------------------------------------- sweeps */

typedef struct sweep_res {
    size_t loads, errors, same, different, nomem, bad_status, over_alloc;
    size_t max_alloc;
} sweep_res;

static void sweep_one(const unsigned char *b, size_t n, size_t full_len, const int32_t *ref_i, const float *ref_s,
                      sweep_res *r) {
    put_file(b, n);
#ifdef HM_ASAN
    g_max_alloc = 0;
#endif
    rr_model *m = NULL;
    rr_error err;
    rr_status st = rr_model_load(g_path, &m, &err);
#ifdef HM_ASAN
    if (g_max_alloc > r->max_alloc) r->max_alloc = g_max_alloc;
    if (g_max_alloc > full_len + ((size_t)1 << 20)) r->over_alloc++;
#else
    (void)full_len;
#endif
    r->loads++;
    if (st != RR_OK) {
        r->errors++;
        if (st == RR_ERR_NOMEM) r->nomem++;
        else if (st != RR_ERR_FORMAT && st != RR_ERR_TRUNCATED && st != RR_ERR_CHECKSUM && st != RR_ERR_VERSION &&
                 st != RR_ERR_UNSUPPORTED && st != RR_ERR_NUMERIC)
            r->bad_status++;
        return;
    }
    int32_t it[NS * K];
    float sc[NS * K];
    if (recs(m, it, sc) && !memcmp(it, ref_i, sizeof it) && !memcmp(sc, ref_s, sizeof sc)) r->same++;
    else r->different++;
    rr_model_free(m);
}

/* Every truncation length and flips of every byte (XOR 0x01, 0x80, 0xff). */
static void sweep(const char *name, img a, sweep_res *r) {
    memset(r, 0, sizeof *r);
    rr_model *m0 = NULL;
    rr_error err;
    put_file(a.b, a.len);
    CHECK_OK(rr_model_load(g_path, &m0, &err), &err);
    if (!m0) return;
    int32_t ref_i[NS * K];
    float ref_s[NS * K];
    CHECK(recs(m0, ref_i, ref_s));
    rr_model_free(m0);
    for (size_t n = 0; n < a.len; n++) sweep_one(a.b, n, a.len, ref_i, ref_s, r);
    unsigned char *b = malloc(a.len);
    static const unsigned char pats[] = {0x01, 0x80, 0xff};
    for (size_t i = 0; i < a.len; i++)
        for (size_t q = 0; q < sizeof pats; q++) {
            memcpy(b, a.b, a.len);
            b[i] ^= pats[q];
            sweep_one(b, a.len, a.len, ref_i, ref_s, r);
        }
    free(b);
    (void)name;
}

/* The sweep in a forked child (normal builds: under RLIMIT_AS); the child
 * reports its counters through a pipe. */
static void sweep_checked(const char *name, img a) {
    int fds[2];
    if (pipe(fds) != 0) {
        CHECK(0);
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
#ifndef HM_ASAN
        long pages = 0, rss;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f && fscanf(f, "%ld %ld", &pages, &rss) == 2) {
            struct rlimit rl;
            rl.rlim_cur = rl.rlim_max =
                (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + 2 * (rlim_t)a.len + ((rlim_t)2 << 20);
            setrlimit(RLIMIT_AS, &rl);
        }
        if (f) fclose(f);
#endif
        sweep_res r;
        sweep(name, a, &r);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 4);
    }
    close(fds[1]);
    sweep_res r;
    memset(&r, 0, sizeof r);
    ssize_t got = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int ws = 0;
    waitpid(pid, &ws, 0);
    CHECK_MSG(WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && got == (ssize_t)sizeof r, "%s sweep child died (status %d)",
              name, ws);
    printf("%s (%zu bytes): %zu loads, %zu errors, %zu identical, %zu different, %zu NOMEM, max alloc %zu\n", name,
           a.len, r.loads, r.errors, r.same, r.different, r.nomem, r.max_alloc);
    CHECK(r.loads == a.len * 4);
    CHECK_MSG(r.different == 0, "%s: %zu damaged files loaded as a different model", name, r.different);
    CHECK_MSG(r.nomem == 0, "%s: %zu damaged files needed more than the allocation budget", name, r.nomem);
    CHECK_MSG(r.over_alloc == 0, "%s: %zu loads allocated more than the file + 1 MiB at once", name, r.over_alloc);
    CHECK_MSG(r.bad_status == 0, "%s: %zu loads failed with an unexpected status", name, r.bad_status);
    CHECK(r.errors >= a.len); /* every truncation at least */
}

/* ------------------------------------------------------------- cases */

static void container_cases(img pop) {
    img c;
    /* 1 bad magic */
    c = img_copy(pop);
    c.b[0] = 'X';
    EXPECT("bad magic", c, RR_ERR_FORMAT, "not an rnnrec model file (bad magic)");
    free(c.b);
    /* 2 future version, checksum valid */
    c = img_copy(pop);
    wr32(c.b + 8, 7);
    fix_crcs(c);
    EXPECT("future version", c, RR_ERR_VERSION, "format version 7 is newer than this rnnrec reads (1)");
    /* 3 version 0 */
    wr32(c.b + 8, 0);
    fix_crcs(c);
    EXPECT("version 0", c, RR_ERR_FORMAT, "format version 0 is invalid");
    free(c.b);
    /* 4 empty file, 5 magic only, 6 cut inside the fixed header */
    EXPECT("empty", ((img){pop.b, 0}), RR_ERR_TRUNCATED, "truncated model file: 0 bytes, shorter than the header");
    EXPECT("magic only", ((img){pop.b, 8}), RR_ERR_TRUNCATED, "truncated model file: 8 bytes, shorter than the header");
    EXPECT("fixed header - 1", ((img){pop.b, 63}), RR_ERR_TRUNCATED, "63 bytes, shorter than the header");
    /* 7 truncated at every section boundary (start and end of each) */
    uint32_t nsec = rd32(pop.b + 16), hlen = rd32(pop.b + 12);
    char want[128];
    snprintf(want, sizeof want, "truncated model file: %u bytes, its header says %zu", hlen, pop.len);
    EXPECT("end of section table", ((img){pop.b, hlen}), RR_ERR_TRUNCATED, want);
    for (uint32_t i = 0; i < nsec; i++) {
        const unsigned char *e = pop.b + 64 + 80 * i;
        size_t off = (size_t)rd64(e + 64), end = off + (size_t)rd64(e + 72);
        snprintf(want, sizeof want, "truncated model file: %zu bytes, its header says %zu", off, pop.len);
        EXPECT("section start", ((img){pop.b, off}), RR_ERR_TRUNCATED, want);
        if (end < pop.len) {
            snprintf(want, sizeof want, "truncated model file: %zu bytes, its header says %zu", end, pop.len);
            EXPECT("section end", ((img){pop.b, end}), RR_ERR_TRUNCATED, want);
        }
    }
    /* 8 trailing data */
    c = img_copy(pop);
    c.b[c.len] = 0;
    c.len++;
    EXPECT("trailing byte", c, RR_ERR_FORMAT, "1 bytes of trailing data after the model");
    free(c.b);
    /* 9 header checksum */
    c = img_copy(pop);
    c.b[33] ^= 0x01; /* "pop" -> "qop" */
    EXPECT("header crc", c, RR_ERR_CHECKSUM, "header checksum mismatch (file damaged)");
    free(c.b);
    /* 10 section checksum */
    c = img_copy(pop);
    size_t cb;
    unsigned char *cp = sec_data(c, "counts", &cb);
    cp[3] ^= 0x40;
    EXPECT("section crc", c, RR_ERR_CHECKSUM, "section counts: checksum mismatch (file damaged)");
    free(c.b);
    /* 11 section count far over the limit (product with the entry size
     * would overflow 32 bits) */
    c = img_copy(pop);
    wr32(c.b + 16, 0x03333334u); /* 80 * this wraps to a small u32 */
    fix_crcs(c);
    EXPECT("huge section count", c, RR_ERR_FORMAT, "53687092 sections (at most 1024)");
    free(c.b);
    /* 12 header length that does not match the count */
    c = img_copy(pop);
    wr32(c.b + 12, hlen + 80);
    EXPECT("header_len", c, RR_ERR_FORMAT, "does not match");
    free(c.b);
    /* 13 offset past the end, 14 length that overflows off + len */
    c = img_copy(pop);
    unsigned char *ce = entry(c, "counts");
    wr64(ce + 64, (uint64_t)c.len + 64 * 100);
    fix_crcs(c);
    EXPECT("offset past end", c, RR_ERR_FORMAT, "section counts:");
    CHECK(strstr(g_path, "/proc/self/fd/") != NULL);
    memcpy(c.b, pop.b, pop.len);
    wr64(ce + 72, UINT64_MAX - 7);
    fix_crcs(c);
    EXPECT("length overflow", c, RR_ERR_FORMAT, "run past the end of the file");
    /* 15 overlapping sections (counts moved onto vocab) */
    memcpy(c.b, pop.b, pop.len);
    wr64(ce + 64, rd64(entry(c, "vocab") + 64));
    fix_crcs(c);
    EXPECT("overlap", c, RR_ERR_FORMAT, "overlaps the header or the previous section");
    /* 16 misaligned offset */
    memcpy(c.b, pop.b, pop.len);
    wr64(ce + 64, rd64(ce + 64) + 8);
    fix_crcs(c);
    EXPECT("misaligned", c, RR_ERR_FORMAT, "not 64-byte aligned");
    /* 17 unknown dtype, 18 wrong dtype for a known section */
    memcpy(c.b, pop.b, pop.len);
    wr32(ce + 56, 99);
    fix_crcs(c);
    EXPECT("unknown dtype", c, RR_ERR_FORMAT, "section counts: unknown dtype 99");
    memcpy(c.b, pop.b, pop.len);
    wr32(ce + 56, RR_DT_I64);
    fix_crcs(c);
    EXPECT("wrong dtype", c, RR_ERR_FORMAT, "section counts has type i64, expected f64");
    /* 19 duplicate section name, 20 name not NUL-padded */
    memcpy(c.b, pop.b, pop.len);
    memcpy(ce, "vocab", 6);
    fix_crcs(c);
    EXPECT("duplicate section", c, RR_ERR_FORMAT, "section vocab appears twice");
    memcpy(c.b, pop.b, pop.len);
    ce[50] = 'x';
    fix_crcs(c);
    EXPECT("name padding", c, RR_ERR_FORMAT, "section counts: name not NUL-padded");
    /* 21 invalid kind label */
    memcpy(c.b, pop.b, pop.len);
    c.b[33] = ' ';
    fix_crcs(c);
    EXPECT("kind label", c, RR_ERR_FORMAT, "invalid model kind in header");
    /* 22 meta section without its final NUL */
    memcpy(c.b, pop.b, pop.len);
    size_t mb;
    unsigned char *mp = sec_data(c, "meta", &mb);
    mp[mb - 1] = 'x';
    fix_crcs(c);
    EXPECT("meta NUL", c, RR_ERR_FORMAT, "metadata section does not end with NUL");
    free(c.b);
}

static void common_cases(img pop) {
    img c;
    edit e;
    /* 23 missing required sections */
    memset(&e, 0, sizeof e);
    e.sec = "counts";
    e.drop_sec = 1;
    c = rebuild(pop, &e);
    EXPECT("no counts", c, RR_ERR_FORMAT, "section counts missing");
    free(c.b);
    e.sec = "vocab";
    c = rebuild(pop, &e);
    EXPECT("no vocab", c, RR_ERR_FORMAT, "section vocab missing");
    free(c.b);
    /* 24 vocabulary: duplicate id, count that cannot fit, lengths that do
     * not add up, an over-long id (255 claimed, 2 present), empty */
    size_t vb;
    const unsigned char *vp = sec_data(pop, "vocab", &vb);
    unsigned char *v = malloc(vb + 600);
    memcpy(v, vp, vb);
    size_t n = (size_t)rd64(v);
    CHECK(n >= 2 && v[8] >= 1 && v[9] >= 1);
    /* make id 1 equal id 0: same length, same bytes */
    size_t l0 = v[8], l1 = v[9];
    if (l0 == l1) memcpy(v + 8 + n + l0, v + 8 + n, l0);
    memset(&e, 0, sizeof e);
    e.sec = "vocab";
    e.dt = RR_DT_BYTES;
    e.data = v;
    e.bytes = vb;
    if (l0 == l1) {
        c = rebuild(pop, &e);
        EXPECT("duplicate id", c, RR_ERR_FORMAT, "appears twice");
        free(c.b);
    } else CHECK_MSG(0, "ids 0 and 1 of the POP vocabulary differ in length (%zu, %zu)", l0, l1);
    memcpy(v, vp, vb);
    wr64(v, (uint64_t)1 << 62);
    c = rebuild(pop, &e);
    EXPECT("vocab 2^62", c, RR_ERR_FORMAT, "vocabulary claims 4611686018427387904 ids");
    free(c.b);
    memcpy(v, vp, vb);
    v[8] = (unsigned char)(v[8] + 1);
    c = rebuild(pop, &e);
    EXPECT("vocab lengths", c, RR_ERR_FORMAT, "vocabulary: id lengths add up to");
    free(c.b);
    memcpy(v, vp, vb);
    v[8] = 255;
    c = rebuild(pop, &e);
    EXPECT("over-long id", c, RR_ERR_FORMAT, "vocabulary: id lengths add up to");
    free(c.b);
    /* RR-4: an empty id (length 0, the other ids' bytes moved up), first
     * and last */
    memcpy(v, vp, vb);
    {
        size_t tot = vb - 8 - n;
        unsigned char *ids = v + 8 + n;
        memmove(ids, ids + l0, tot - l0); /* drop id 0's bytes */
        v[8] = 0;
        e.bytes = vb - l0;
        c = rebuild(pop, &e);
        char want[64];
        snprintf(want, sizeof want, "vocabulary: id 1 of %zu is empty", n);
        EXPECT("empty first id", c, RR_ERR_FORMAT, want);
        free(c.b);
        memcpy(v, vp, vb);
        size_t ln = v[8 + n - 1];
        v[8 + n - 1] = 0;
        e.bytes = vb - ln; /* the last id's bytes are the section's tail */
        c = rebuild(pop, &e);
        snprintf(want, sizeof want, "vocabulary: id %zu of %zu is empty", n, n);
        EXPECT("empty last id", c, RR_ERR_FORMAT, want);
        free(c.b);
        e.bytes = vb;
    }
    memset(v, 0, 8);
    e.bytes = 8;
    c = rebuild(pop, &e);
    EXPECT("empty vocab", c, RR_ERR_FORMAT, "model has an empty item vocabulary");
    free(c.b);
    e.bytes = 5;
    c = rebuild(pop, &e);
    EXPECT("short vocab", c, RR_ERR_FORMAT, "vocabulary section of 5 bytes");
    free(c.b);
    free(v);
    /* 25 counts: NaN, negative, wrong length, n_items mismatch */
    size_t cbytes;
    const unsigned char *cp = sec_data(pop, "counts", &cbytes);
    double *cnt = malloc(cbytes + 16);
    memcpy(cnt, cp, cbytes);
    cnt[1] = NAN;
    memset(&e, 0, sizeof e);
    e.sec = "counts";
    e.dt = RR_DT_F64;
    e.data = cnt;
    e.bytes = cbytes;
    c = rebuild(pop, &e);
    EXPECT("NaN count", c, RR_ERR_FORMAT, "item count 1 is negative or not finite");
    free(c.b);
    cnt[1] = -1;
    c = rebuild(pop, &e);
    EXPECT("negative count", c, RR_ERR_FORMAT, "item count 1 is negative or not finite");
    free(c.b);
    cnt[1] = INFINITY;
    c = rebuild(pop, &e);
    EXPECT("inf count", c, RR_ERR_FORMAT, "item count 1 is negative or not finite");
    free(c.b);
    memcpy(cnt, cp, cbytes);
    e.bytes = cbytes - 8;
    c = rebuild(pop, &e);
    char want[128];
    snprintf(want, sizeof want, "section counts has %zu elements, expected %zu", cbytes / 8 - 1, cbytes / 8);
    EXPECT("short counts", c, RR_ERR_FORMAT, want);
    free(c.b);
    free(cnt);
    memset(&e, 0, sizeof e);
    e.key = "n_items";
    e.value = "99";
    c = rebuild(pop, &e);
    EXPECT("n_items", c, RR_ERR_FORMAT, "metadata says 99 items, the vocabulary holds");
    free(c.b);
    e.value = "1e3";
    c = rebuild(pop, &e);
    EXPECT("n_items text", c, RR_ERR_FORMAT, "metadata n_items = '1e3' is not an integer");
    free(c.b);
    /* 26 unknown kind */
    memset(&e, 0, sizeof e);
    e.kind = "transformer";
    c = rebuild(pop, &e);
    EXPECT("unknown kind", c, RR_ERR_UNSUPPORTED, "model kind 'transformer' is not built into this rnnrec");
    free(c.b);
}

static void gru_cases(img gru) {
    img c;
    edit e;
    size_t pb;
    const unsigned char *pp = sec_data(gru, "rnn.params", &pb);
    CHECK(pp != NULL && pb >= 64);
    if (!pp) return;
    float *w = malloc(pb + 64);
    /* 27 NaN and infinite weights */
    memcpy(w, pp, pb);
    w[5] = NAN;
    memset(&e, 0, sizeof e);
    e.sec = "rnn.params";
    e.dt = RR_DT_F32;
    e.data = w;
    e.bytes = pb;
    c = rebuild(gru, &e);
    EXPECT("NaN weight", c, RR_ERR_NUMERIC, "rnn.params[5] is not finite");
    free(c.b);
    w[5] = -INFINITY;
    c = rebuild(gru, &e);
    EXPECT("inf weight", c, RR_ERR_NUMERIC, "rnn.params[5] is not finite");
    free(c.b);
    /* 28 blob of the wrong shape or type */
    memcpy(w, pp, pb);
    e.bytes = pb - 4;
    c = rebuild(gru, &e);
    char want[160];
    snprintf(want, sizeof want, "section rnn.params has %zu elements, expected %zu", pb / 4 - 1, pb / 4);
    EXPECT("short blob", c, RR_ERR_FORMAT, want);
    free(c.b);
    e.bytes = pb;
    e.dt = RR_DT_I32;
    c = rebuild(gru, &e);
    EXPECT("blob dtype", c, RR_ERR_FORMAT, "section rnn.params has type i32, expected f32");
    free(c.b);
    e.drop_sec = 1;
    c = rebuild(gru, &e);
    EXPECT("no blob", c, RR_ERR_FORMAT, "section rnn.params missing");
    free(c.b);
    free(w);
    /* 29 kind-specific metadata */
    static const struct {
        const char *key, *value, *msg;
        int drop;
    } kv[] = {
        {"rnn.cell", NULL, "rnn model without rnn.cell / rnn.layers", 1},
        {"rnn.cell", "lstm", "rnn.cell 'lstm' does not match the model kind 'gru'", 0},
        {"rnn.cell", "transformer", "rnn.cell 'transformer' is not gru, lstm, rnn_tanh or rnn_relu", 0},
        {"rnn.layers", "0", "rnn.layers '0': expected 1..8 sizes in 1..65536", 0},
        {"rnn.layers", "3,,3", "rnn.layers '3,,3': expected", 0},
        {"rnn.layers", "3,", "rnn.layers '3,': expected", 0},
        {"rnn.layers", "65537", "rnn.layers '65537': expected", 0},
        {"rnn.layers", "1,1,1,1,1,1,1,1,1", "rnn.layers '1,1,1,1,1,1,1,1,1': expected", 0},
        {"rnn.layers", "-3", "rnn.layers '-3': expected", 0},
        {"rnn.layers", "99999999999999999999999", "expected 1..8 sizes", 0},
        {"rnn.embedding", "70000", "rnn.embedding 70000 out of range", 0},
        {"rnn.embedding", "-2", "rnn.embedding -2 out of range", 0},
        {"rnn.embedding", "x", "metadata rnn.embedding = 'x' is not an integer", 0},
        {"rnn.final_act", "9", "rnn.final_act 9 unknown", 0},
        {"rnn.final_act_param", "nan", "metadata rnn.final_act_param = 'nan' is not a finite number", 0},
        {"rnn.n_params", "12abc", "metadata rnn.n_params = '12abc' is not an integer", 0},
        {"rnn.n_params", NULL, "metadata key 'rnn.n_params' missing", 1},
        /* a different, valid shape: the blob no longer fits it */
        {"rnn.layers", "3,3", "rnn.n_params", 0},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        memset(&e, 0, sizeof e);
        e.key = kv[i].key;
        e.value = kv[i].value;
        e.drop_key = kv[i].drop;
        c = rebuild(gru, &e);
        if (i + 1 == sizeof kv / sizeof kv[0])
            /* RR-1 (fixed): rnn_load freed the impl, then read
             * r->lay.n_params for this message (use after free). */
            expect_fixed_bug("RR-1", "rnn.n_params mismatch", c, RR_ERR_FORMAT, kv[i].msg, 0, 1);
        else EXPECT(kv[i].key, c, RR_ERR_FORMAT, kv[i].msg);
        free(c.b);
    }
    /* 30 a shape claiming ~400 MB of weights in a 2 KB file (consistent
     * n_params, tiny blob): must be refused from the section size before
     * anything that large is allocated.
     * RR-2 (fixed): rnn_load called rr_rnn_new (allocating n_params
     * floats) before comparing with the blob actually present. */
    memset(&e, 0, sizeof e);
    e.key = "rnn.layers";
    e.value = "4096";
    img c1 = rebuild(gru, &e);
    memset(&e, 0, sizeof e);
    e.key = "rnn.embedding";
    e.value = "4096";
    img c2 = rebuild(c1, &e);
    /* n_params of GRU, H = 4096, separate embedding K = 4096, N items:
     * W_ih (3H,K) + W_hh (3H,H) + 2 biases (3H) + E (N,K) + Wy (N,H) + By */
    rr_model *m = NULL;
    rr_error err;
    put_file(gru.b, gru.len);
    CHECK_OK(rr_model_load(g_path, &m, &err), &err);
    size_t N = m ? rr_model_n_items(m) : 0;
    rr_model_free(m);
    size_t H = 4096, np = 0;
#define A16(x) (((x) + 15) & ~(size_t)15)
    np = A16(3 * H * H);            /* W_ih */
    np = A16(np + 3 * H * H);       /* W_hh */
    np = A16(np + 3 * H);           /* b_ih */
    np = A16(np + 3 * H);           /* b_hh */
    np = A16(np + N * H);           /* E */
    np = A16(np + N * H);           /* Wy */
    np = A16(np + N);               /* By */
#undef A16
    char npb[32];
    snprintf(npb, sizeof npb, "%zu", np);
    memset(&e, 0, sizeof e);
    e.key = "rnn.n_params";
    e.value = npb;
    c = rebuild(c2, &e);
    snprintf(want, sizeof want, "section rnn.params has %zu elements, expected %zu", pb / 4, np);
    expect_fixed_bug("RR-2", "400 MB shape in a small file", c, RR_ERR_FORMAT, want, c.len + ((size_t)4 << 20), 0);
    free(c.b);
    free(c1.b);
    free(c2.b);
}

/* Every regression input in tests/regress/model_*.rrm loads with the
 * status its name ends in (..._FORMAT.rrm, ...), never crashing. */
static void regress_inputs(void) {
    const char *src = getenv("RR_SRC");
    if (!src) {
        printf("SKIP: regression inputs (RR_SRC not set)\n");
        return;
    }
    static const struct {
        const char *file, *bug, *msg;
        rr_status want;
    } files[] = {
        {"model_rnn_nparams_uaf.rrm", "RR-1", "rnn.n_params", RR_ERR_FORMAT},
        /* RR-4: seven empty ids before an 8-byte one (fuzz_model, SPOP and
         * RNN seeds); vocab lookups did NULL + 0 on the empty pool */
        {"model_vocab_empty_ids_spop.rrm", "RR-4", "vocabulary: id 1 of 8 is empty", RR_ERR_FORMAT},
        {"model_vocab_empty_ids_rnn.rrm", "RR-4", "vocabulary: id 1 of 8 is empty", RR_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/regress/%s", src, files[i].file);
        img a = read_path(path);
        CHECK_MSG(a.b != NULL, "missing %s", path);
        if (!a.b) continue;
        if (files[i].bug) expect_fixed_bug(files[i].bug, files[i].file, a, files[i].want, files[i].msg, 0, 1);
        else expect_load(files[i].file, a.b, a.len, files[i].want, files[i].msg, __LINE__);
        free(a.b);
    }
}

int main(void) {
#ifdef HM_ASAN
    __sanitizer_install_malloc_and_free_hooks(hm_malloc_hook, hm_free_hook);
#endif
    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.n_events = 200;
    sp.n_items = 12;
    sp.n_topics = 3;
    rr_dataset *d = NULL;
    rr_error err;
    CHECK_OK(rr_synth_generate(&sp, &d, &err), &err);
    if (!d) return check_summary("test_hostile_model");
    rr_model *pop = train_tiny("pop", d), *gru = train_tiny("gru", d);
    CHECK(pop && gru);
    img pi = {NULL, 0}, gi = {NULL, 0};
    if (pop) pi = save_img(pop);
    if (gru) gi = save_img(gru);
    rr_model_free(pop);
    rr_model_free(gru);
    rr_dataset_free(d);
    if (pi.b) {
        container_cases(pi);
        common_cases(pi);
        sweep_checked("pop", pi);
    }
    if (gi.b) {
        gru_cases(gi);
        sweep_checked("gru", gi);
    }
    regress_inputs();
    free(pi.b);
    free(gi.b);
    return check_summary("test_hostile_model");
}
