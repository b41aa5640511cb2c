/* test_checkpoint.c - training checkpoints (src/train/checkpoint.c and the
 * trainer's use of them):
 *  - the file round-trips every field of a state with 1 and 3 streams;
 *  - damaged files are refused with the specific error: bad magic, newer
 *    version, header and section checksums, truncation, trailing bytes,
 *    values outside the layout or the data; every line of the state text
 *    deleted, doubled or given a hostile value (refused or accepted, never
 *    a crash);
 *  - the fingerprint names what differs, and only the thread count may;
 *  - the folder keeps the two newest and drops stale temporaries;
 *  - training with checkpoints gives the same weights as without, resuming
 *    after epoch 1 of 3 gives those of an uninterrupted run, a corrupted
 *    newest checkpoint falls back to the older one (same final weights),
 *    a run refuses another run's folder, and with a file size limit every
 *    write fails (counted, nothing left behind, the old files intact) while
 *    training still ends with the uninterrupted weights. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "models/model.h"
#include "models/rnn.h"
#include "train/checkpoint.h"
#include "util/util.h"

static char tmpdir[256];

/* ---- a hand-made state over a tiny session set */

enum { NP = 1000, L2 = 2, BB = 4, MAXP = 3 };
static const size_t widths[L2] = {6, 8};

typedef struct fixture {
    rr_sessions sess;
    int64_t order[5];
    rr_ckpt_layout lay;
    rr_ckpt c;
    rr_ckpt_stream st[MAXP];
    float *w, *m1, *m2, *best;
    size_t slot_sess[MAXP][BB], slot_pos[MAXP][BB];
    float state[MAXP][L2][BB * 8];
} fixture;

static const char *FP = "model=gru\nlr=0.05\nthreads=1\ndata.events=17\n";

static void fx_init(fixture *f, size_t P, uint64_t seed) {
    memset(f, 0, sizeof *f);
    static int64_t offsets[6] = {0, 3, 7, 9, 14, 17};
    static int32_t items[17];
    static double times[17];
    f->sess.n_sessions = 5;
    f->sess.n_events = 17;
    f->sess.offsets = offsets;
    f->sess.items = items;
    f->sess.times = times;
    for (int i = 0; i < 5; i++) f->order[i] = i;
    rr_ckpt_layout *ly = &f->lay;
    ly->n_params = NP;
    ly->n_moments = 2;
    ly->L = L2;
    ly->state_width[0] = widths[0];
    ly->state_width[1] = widths[1];
    ly->B = BB;
    ly->n_streams = P;
    ly->n_order = 5;
    ly->order = f->order;
    ly->sess = &f->sess;
    ly->epochs_max = 100;
    ly->has_sampler = 1;
    ly->can_have_best = 1;
    ly->fingerprint = FP;
    rr_rng g;
    rr_rng_seed(&g, seed);
    f->w = malloc(NP * sizeof(float));
    f->m1 = malloc(NP * sizeof(float));
    f->m2 = malloc(NP * sizeof(float));
    f->best = malloc(NP * sizeof(float));
    for (size_t i = 0; i < NP; i++) {
        f->w[i] = (float)rr_rng_normal(&g);
        f->m1[i] = (float)rr_rng_uniform(&g);
        f->m2[i] = (float)rr_rng_uniform(&g);
        f->best[i] = (float)rr_rng_normal(&g);
    }
    rr_ckpt *c = &f->c;
    c->fingerprint = (char *)FP;
    c->t = 1234;
    c->steps_total = 1300;
    c->epoch = 2;
    c->in_epoch = 1;
    c->loss_sum = 123.456789012345678;
    c->events = 400;
    c->steps = 99;
    c->best_score = 0.3141592653589793;
    c->best_mrr = 0.1;
    c->last_loss = 2.718281828459045;
    c->best_epoch = 1;
    c->since_best = 1;
    c->epochs_run = 2;
    c->log_bytes = 321;
    c->has_sampler = 1;
    rr_rng_seed(&c->sampler.rng, seed + 1);
    c->sampler.refills = 7;
    c->sampler.cursor = 3;
    c->weights = f->w;
    c->moment[0] = f->m1;
    c->moment[1] = f->m2;
    c->has_best = 1;
    c->best = f->best;
    c->n_streams = P;
    c->streams = f->st;
    for (size_t r = 0; r < P; r++) {
        rr_ckpt_stream *s = &f->st[r];
        s->n = 3 - r % 2;
        s->next = 4;
        s->slot_sess = f->slot_sess[r];
        s->slot_pos = f->slot_pos[r];
        for (size_t i = 0; i < s->n; i++) {
            f->slot_sess[r][i] = (i + r) % 5;
            size_t row = f->slot_sess[r][i], len = (size_t)(offsets[row + 1] - offsets[row]);
            f->slot_pos[r][i] = len > 2 ? i % 2 : 0; /* pos + 1 < len */
        }
        for (size_t l = 0; l < L2; l++) {
            s->state[l] = f->state[r][l];
            for (size_t k = 0; k < BB * 8; k++) f->state[r][l][k] = (float)rr_rng_normal(&g);
        }
        rr_rng_seed(&s->rng, seed + 10 + r);
    }
}

static void fx_free(fixture *f) {
    free(f->w);
    free(f->m1);
    free(f->m2);
    free(f->best);
}

/* A second fixture's buffers as the destination of a read. */
static void fx_dest(fixture *d, const fixture *src, size_t P) {
    fx_init(d, P, 999);
    d->lay = src->lay;
    d->lay.sess = &d->sess;
    d->lay.order = d->order;
    memset(d->w, 0, NP * sizeof(float));
}

static void path_in(char *buf, size_t cap, const char *sub) {
    snprintf(buf, cap, "%s/%s", tmpdir, sub);
}

static void test_round_trip(size_t P) {
    fixture a, b;
    fx_init(&a, P, 5);
    fx_dest(&b, &a, P);
    char dir[300], path[400];
    path_in(dir, sizeof dir, P == 1 ? "rt1" : "rt3");
    size_t removed;
    rr_error err;
    CHECK_OK(rr_ckpt_dir_prepare(dir, &removed, &err), &err);
    CHECK_OK(rr_ckpt_write(dir, 1, &a.c, &a.lay, &err), &err);
    rr_ckpt_path(path, sizeof path, dir, 1);
    rr_status s = rr_ckpt_read(path, &b.lay, &b.c, &err);
    CHECK_OK(s, &err);
    if (s == RR_OK) {
        CHECK(!strcmp(b.c.fingerprint, FP));
        CHECK(!b.c.threads_differ);
        CHECK(b.c.t == 1234 && b.c.steps_total == 1300 && b.c.epoch == 2 && b.c.in_epoch == 1);
        CHECK(b.c.loss_sum == a.c.loss_sum && b.c.best_score == a.c.best_score && b.c.last_loss == a.c.last_loss);
        CHECK(b.c.best_mrr == a.c.best_mrr);
        CHECK(b.c.events == 400 && b.c.steps == 99 && b.c.best_epoch == 1 && b.c.since_best == 1);
        CHECK(b.c.epochs_run == 2 && b.c.log_bytes == 321 && b.c.has_best == 1 && b.c.has_sampler == 1);
        CHECK(!memcmp(&b.c.sampler, &a.c.sampler, sizeof a.c.sampler));
        CHECK(!memcmp(a.w, b.w, NP * sizeof(float)));
        CHECK(!memcmp(a.m1, b.m1, NP * sizeof(float)));
        CHECK(!memcmp(a.m2, b.m2, NP * sizeof(float)));
        CHECK(!memcmp(a.best, b.best, NP * sizeof(float)));
        for (size_t r = 0; r < P; r++) {
            const rr_ckpt_stream *x = &a.st[r], *y = &b.st[r];
            CHECK(x->n == y->n && x->next == y->next && !memcmp(&x->rng, &y->rng, sizeof x->rng));
            CHECK(!memcmp(x->slot_sess, y->slot_sess, x->n * sizeof(size_t)));
            CHECK(!memcmp(x->slot_pos, y->slot_pos, x->n * sizeof(size_t)));
            for (size_t l = 0; l < L2; l++)
                CHECK(!memcmp(x->state[l], y->state[l], x->n * widths[l] * sizeof(float)));
        }
    }
    rr_ckpt_clear(&b.c);
    fx_free(&a);
    fx_free(&b);
}

/* ---- damaged files */

static unsigned char *slurp(const char *path, size_t *len) {
    char *d = NULL;
    rr_error err;
    if (rr_read_file(path, 0, &d, len, &err) != RR_OK) return NULL;
    return (unsigned char *)d;
}

static void spit(const char *path, const unsigned char *d, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(d, 1, n, f) == n);
    fclose(f);
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t le64(const unsigned char *p) {
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Recomputes the header CRC after an edit of the header. */
static void fix_header_crc(unsigned char *d) {
    uint32_t hl = le32(d + 12);
    put32(d + 20, 0);
    put32(d + 20, rr_crc32c(0, d, hl));
}

/* Offset of section name's data in file d, or 0. */
static uint64_t sect_off(const unsigned char *d, const char *name, uint64_t *len) {
    uint32_t n = le32(d + 16);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = d + 32 + 56 * (size_t)i;
        if (!strcmp((const char *)e, name)) {
            *len = le64(e + 48);
            return le64(e + 40);
        }
    }
    return 0;
}

static rr_status read_bytes(const fixture *a, const unsigned char *d, size_t n, rr_error *err) {
    char path[400];
    path_in(path, sizeof path, "damaged.rrc");
    spit(path, d, n);
    fixture b;
    fx_dest(&b, a, a->lay.n_streams);
    rr_status s = rr_ckpt_read(path, &b.lay, &b.c, err);
    rr_ckpt_clear(&b.c);
    fx_free(&b);
    return s;
}

#define EXPECT(st, want, sub)                                                                          \
    do {                                                                                               \
        CHECK_MSG((st) == (want) && strstr(err.msg, (sub)), "status %d (want %d), message: %s", (int)(st), \
                  (int)(want), err.msg);                                                               \
    } while (0)

static void test_damaged(void) {
    fixture a;
    fx_init(&a, 1, 21);
    char dir[300], path[400];
    path_in(dir, sizeof dir, "dmg");
    size_t removed, len;
    rr_error err;
    CHECK_OK(rr_ckpt_dir_prepare(dir, &removed, &err), &err);
    CHECK_OK(rr_ckpt_write(dir, 1, &a.c, &a.lay, &err), &err);
    rr_ckpt_path(path, sizeof path, dir, 1);
    unsigned char *orig = slurp(path, &len), *d = malloc(len + 8);
    CHECK(orig && d);
    if (!orig || !d) return;
    rr_status s;
#define RESET() memcpy(d, orig, len)
    RESET();
    s = read_bytes(&a, d, len, &err);
    CHECK_OK(s, &err);
    RESET();
    d[0] ^= 1;
    EXPECT(read_bytes(&a, d, len, &err), RR_ERR_FORMAT, "bad magic");
    RESET();
    put32(d + 8, 2);
    fix_header_crc(d);
    EXPECT(read_bytes(&a, d, len, &err), RR_ERR_VERSION, "format 2");
    RESET();
    d[40] ^= 0x10; /* first section's name area of the table */
    EXPECT(read_bytes(&a, d, len, &err), RR_ERR_CHECKSUM, "header checksum");
    uint64_t wl, wo = sect_off(orig, "weights", &wl);
    CHECK(wo > 0 && wl == NP * sizeof(float));
    RESET();
    d[wo + wl / 2] ^= 0x40;
    EXPECT(read_bytes(&a, d, len, &err), RR_ERR_CHECKSUM, "section 'weights'");
    uint64_t sl, so = sect_off(orig, "s0.state1", &sl);
    RESET();
    d[so + sl - 1] ^= 1;
    EXPECT(read_bytes(&a, d, len, &err), RR_ERR_CHECKSUM, "s0.state1");
    RESET();
    EXPECT(read_bytes(&a, d, len - 100, &err), RR_ERR_TRUNCATED, "truncated");
    EXPECT(read_bytes(&a, d, 10, &err), RR_ERR_TRUNCATED, "shorter than a header");
    EXPECT(read_bytes(&a, d, 0, &err), RR_ERR_TRUNCATED, "shorter than a header");
    RESET();
    d[len] = 0;
    EXPECT(read_bytes(&a, d, len + 1, &err), RR_ERR_FORMAT, "the header says");
    /* a section moved out of place (CRC fixed so the structure check is hit) */
    RESET();
    {
        unsigned char *e = d + 32 + 56 * 2; /* the third section */
        uint64_t off = le64(e + 40) + 8;
        for (int i = 0; i < 8; i++) e[40 + i] = (unsigned char)(off >> (8 * i));
        fix_header_crc(d);
        EXPECT(read_bytes(&a, d, len, &err), RR_ERR_FORMAT, "out of place");
    }
    free(orig);
    free(d);

    /* values checked against the layout and the data (valid files) */
    fixture b;
    fx_init(&b, 1, 22);
    b.slot_pos[0][1] = 2; /* session 1 has 4 events: position 2 is its last input, fine */
    CHECK_OK(rr_ckpt_write(dir, 2, &b.c, &b.lay, &err), &err);
    b.slot_sess[0][0] = 2;
    b.slot_pos[0][0] = 1; /* session 2 has 2 events: position 1 has no target */
    CHECK_OK(rr_ckpt_write(dir, 3, &b.c, &b.lay, &err), &err);
    fixture dst;
    fx_dest(&dst, &b, 1);
    rr_ckpt_path(path, sizeof path, dir, 2);
    CHECK_OK(rr_ckpt_read(path, &dst.lay, &dst.c, &err), &err);
    rr_ckpt_clear(&dst.c);
    rr_ckpt_path(path, sizeof path, dir, 3);
    EXPECT(rr_ckpt_read(path, &dst.lay, &dst.c, &err), RR_ERR_RANGE, "not inside the data");
    b.slot_pos[0][0] = 0;
    b.slot_sess[0][0] = 5; /* no such session row */
    CHECK_OK(rr_ckpt_write(dir, 4, &b.c, &b.lay, &err), &err);
    rr_ckpt_path(path, sizeof path, dir, 4);
    EXPECT(rr_ckpt_read(path, &dst.lay, &dst.c, &err), RR_ERR_RANGE, "session row 5");
    b.slot_sess[0][0] = 0;
    b.st[0].next = 6; /* beyond the 5 sessions of the order */
    CHECK_OK(rr_ckpt_write(dir, 5, &b.c, &b.lay, &err), &err);
    rr_ckpt_path(path, sizeof path, dir, 5);
    EXPECT(rr_ckpt_read(path, &dst.lay, &dst.c, &err), RR_ERR_RANGE, "s0.next=6");
    b.st[0].next = 4;
    b.c.best_epoch = 3; /* after the 2 epochs run */
    CHECK_OK(rr_ckpt_write(dir, 6, &b.c, &b.lay, &err), &err);
    rr_ckpt_path(path, sizeof path, dir, 6);
    EXPECT(rr_ckpt_read(path, &dst.lay, &dst.c, &err), RR_ERR_RANGE, "inconsistent counters");
    b.c.best_epoch = 1;
    CHECK_OK(rr_ckpt_write(dir, 7, &b.c, &b.lay, &err), &err);
    rr_ckpt_path(path, sizeof path, dir, 7);
    /* another model layout, another optimiser, no validation set */
    rr_ckpt_layout keep = dst.lay;
    dst.lay.n_params = NP - 1;
    EXPECT(rr_ckpt_read(path, &dst.lay, &dst.c, &err), RR_ERR_RANGE, "another model or batch layout");
    dst.lay = keep;
    dst.lay.n_moments = 1;
    EXPECT(rr_ckpt_read(path, &dst.lay, &dst.c, &err), RR_ERR_RANGE, "another model or batch layout");
    dst.lay = keep;
    dst.lay.B = BB + 1;
    EXPECT(rr_ckpt_read(path, &dst.lay, &dst.c, &err), RR_ERR_RANGE, "B|streams");
    dst.lay = keep;
    dst.lay.can_have_best = 0;
    EXPECT(rr_ckpt_read(path, &dst.lay, &dst.c, &err), RR_ERR_RANGE, "without a best epoch or a validation set");
    dst.lay = keep;
    dst.lay.has_sampler = 0;
    EXPECT(rr_ckpt_read(path, &dst.lay, &dst.c, &err), RR_ERR_RANGE, "sampler position saved, but this run draws no negatives");
    dst.lay = keep;
    CHECK_OK(rr_ckpt_read(path, &dst.lay, &dst.c, &err), &err);
    rr_ckpt_clear(&dst.c);
    /* the folder kept the two newest of 2..7 (and 1) */
    uint64_t seqs[8];
    size_t n;
    CHECK_OK(rr_ckpt_list(dir, seqs, 8, &n, &err), &err);
    CHECK_MSG(n == 2 && seqs[0] == 7 && seqs[1] == 6, "%zu checkpoints kept, newest %llu", n,
              n ? (unsigned long long)seqs[0] : 0ull);
    fx_free(&a);
    fx_free(&b);
    fx_free(&dst);
}

/* The file d (len) with its "state" text replaced by t: sections re-laid
 * out, every CRC recomputed, so only the value checks can refuse it.
 * Returns the new length (*out malloc'ed). */
static size_t with_state(const unsigned char *d, const char *t, unsigned char **out) {
    uint32_t n = le32(d + 16), hl = 32 + 56 * n;
    size_t cap = hl + strlen(t) + 64 * (n + 1);
    for (uint32_t i = 0; i < n; i++) cap += (size_t)le64(d + 32 + 56 * (size_t)i + 48);
    unsigned char *o = calloc(1, cap);
    memcpy(o, d, hl);
    uint64_t at = hl;
    for (uint32_t i = 0; i < n; i++) {
        unsigned char *e = o + 32 + 56 * (size_t)i;
        const unsigned char *src = d + le64(e + 40);
        uint64_t len = le64(e + 48);
        if (!strcmp((const char *)e, "state")) {
            src = (const unsigned char *)t;
            len = strlen(t);
        }
        at = (at + 63) / 64 * 64;
        memcpy(o + at, src, (size_t)len);
        put32(e + 36, rr_crc32c(0, src, (size_t)len));
        for (int b = 0; b < 8; b++) e[40 + b] = (unsigned char)(at >> (8 * b));
        for (int b = 0; b < 8; b++) e[48 + b] = (unsigned char)(len >> (8 * b));
        at += len;
    }
    for (int b = 0; b < 8; b++) o[24 + b] = (unsigned char)(at >> (8 * b));
    fix_header_crc(o);
    *out = o;
    return (size_t)at;
}

/* Every line of the state deleted, doubled or given a hostile value: the
 * reader refuses or accepts, never crashes (the sanitizer build checks
 * the memory side); deleted, doubled and non-numeric lines are refused. */
static void test_hostile_state(void) {
    fixture a;
    fx_init(&a, 2, 31);
    char dir[300], path[400];
    path_in(dir, sizeof dir, "host");
    size_t removed, len;
    rr_error err;
    CHECK_OK(rr_ckpt_dir_prepare(dir, &removed, &err), &err);
    CHECK_OK(rr_ckpt_write(dir, 1, &a.c, &a.lay, &err), &err);
    rr_ckpt_path(path, sizeof path, dir, 1);
    unsigned char *d = slurp(path, &len);
    uint64_t sl, so = d ? sect_off(d, "state", &sl) : 0;
    CHECK(so > 0);
    if (!so) return;
    char *st = calloc(1, (size_t)sl + 1);
    memcpy(st, d + so, (size_t)sl);
    static const char *vals[] = {"",  "x", "-1", "0", "1", "2", "4", "5", "18446744073709551615",
                                 "18446744073709551616", "nan", "inf", "1e308", "0x10",
                                 "0000000000000000,0000000000000000,0000000000000000,0000000000000000",
                                 "ffffffffffffffff,1,2,3", "3,4"};
    const size_t nv = sizeof vals / sizeof vals[0];
    size_t lines = 0, refused = 0, tried = 0;
    for (const char *p = st; *p; p++) lines += *p == '\n';
    char *t = malloc((size_t)sl * 2 + 256);
    for (size_t k = 0; k < lines; k++) {
        /* line k: [ls, le) */
        const char *ls = st;
        for (size_t j = 0; j < k; j++) ls = strchr(ls, '\n') + 1;
        const char *le = strchr(ls, '\n') + 1, *eq = strchr(ls, '=');
        for (size_t v = 0; v < nv + 2; v++) {
            size_t o = 0;
            memcpy(t, st, (size_t)(ls - st));
            o = (size_t)(ls - st);
            bool must_fail = false;
            if (v == nv) {
                must_fail = true; /* deleted */
            } else if (v == nv + 1) {
                memcpy(t + o, ls, (size_t)(le - ls)); /* doubled */
                o += (size_t)(le - ls);
                memcpy(t + o, ls, (size_t)(le - ls));
                o += (size_t)(le - ls);
                must_fail = true;
            } else {
                memcpy(t + o, ls, (size_t)(eq + 1 - ls));
                o += (size_t)(eq + 1 - ls);
                o += (size_t)sprintf(t + o, "%s\n", vals[v]);
                must_fail = v <= 1;
            }
            strcpy(t + o, le);
            unsigned char *m = NULL;
            size_t ml = with_state(d, t, &m);
            rr_status s = read_bytes(&a, m, ml, &err);
            tried++;
            refused += s != RR_OK;
            if (must_fail)
                CHECK_MSG(s != RR_OK, "state line %zu (%.*s) %s was accepted", k + 1, (int)(le - ls - 1), ls,
                          v == nv ? "deleted" : v == nv + 1 ? "doubled" : "emptied");
            free(m);
        }
    }
    CHECK_MSG(refused > tried / 2, "only %zu of %zu hostile states refused", refused, tried);
    printf("test_checkpoint: %zu hostile states of %zu lines, %zu refused\n", tried, lines, refused);
    free(t);
    free(st);
    free(d);
    fx_free(&a);
}

static void test_fingerprint(void) {
    rr_error err;
    bool td = true;
    const char *a = "model=gru\nlr=0.05\nthreads=1\ndata.events=17\ndata.crc.items=0a0b0c0d\n";
    CHECK_OK(rr_ckpt_fingerprint_compare(a, a, &td, &err), &err);
    CHECK(!td);
    CHECK_OK(rr_ckpt_fingerprint_compare(a, "model=gru\nlr=0.05\nthreads=4\ndata.events=17\ndata.crc.items=0a0b0c0d\n",
                                         &td, &err),
             &err);
    CHECK(td);
    rr_status s = rr_ckpt_fingerprint_compare(
        a, "model=gru\nlr=0.1\nthreads=1\ndata.events=17\ndata.crc.items=ffffffff\nclip-norm=1\n", &td, &err);
    EXPECT(s, RR_ERR_ARG, "--lr 0.05 (now 0.1)");
    CHECK_MSG(strstr(err.msg, "data.crc.items 0a0b0c0d (now ffffffff)") != NULL, "%s", err.msg);
    CHECK_MSG(strstr(err.msg, "--clip-norm unset (now 1)") != NULL, "%s", err.msg);
    CHECK_MSG(!strstr(err.msg, "threads"), "%s", err.msg);
    s = rr_ckpt_fingerprint_compare("model=gru\nbroken line\n", a, &td, &err);
    EXPECT(s, RR_ERR_FORMAT, "not name=value");

    /* real datasets: the same data gives the same text, one changed time does not */
    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.n_events = 2000;
    sp.n_items = 100;
    rr_dataset *d = NULL;
    CHECK_OK(rr_synth_generate(&sp, &d, &err), &err);
    if (!d) return;
    rr_train_params p;
    rr_train_params_default(&p);
    char *f1 = NULL, *f2 = NULL, *f3 = NULL;
    CHECK_OK(rr_ckpt_fingerprint(&f1, &p, d, NULL, 65536, 1, &err), &err);
    CHECK_OK(rr_ckpt_fingerprint(&f2, &p, d, NULL, 65536, 1, &err), &err);
    d->s.times[d->s.n_events / 2] += 1;
    CHECK_OK(rr_ckpt_fingerprint(&f3, &p, d, NULL, 65536, 1, &err), &err);
    if (f1 && f2 && f3) {
        CHECK(!strcmp(f1, f2));
        CHECK_OK(rr_ckpt_fingerprint_compare(f1, f2, &td, &err), &err);
        s = rr_ckpt_fingerprint_compare(f1, f3, &td, &err);
        EXPECT(s, RR_ERR_ARG, "data.crc.times");
        CHECK(strstr(f1, "lr=0.05\n") && strstr(f1, "valid=none\n") && strstr(f1, "sample-cache=65536\n"));
    }
    free(f1);
    free(f2);
    free(f3);
    rr_dataset_free(d);
}

static size_t count_files(const char *dir, const char *sub) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, sub)) n++;
    closedir(d);
    return n;
}

static void test_folder(void) {
    char dir[300], p[400];
    path_in(dir, sizeof dir, "fold");
    size_t removed = 9;
    rr_error err;
    uint64_t seqs[4];
    size_t n = 9;
    CHECK_OK(rr_ckpt_list(dir, seqs, 4, &n, &err), &err); /* missing folder: none */
    CHECK(n == 0);
    CHECK_OK(rr_ckpt_dir_prepare(dir, &removed, &err), &err);
    CHECK(removed == 0);
    const char *names[] = {"ckpt-000000000004.rrc.tmp.Ab12Cd", "ckpt-000000000005.rrc.tmp.x", "notes.txt",
                           "ckpt-000000000003.rrc", "ckpt-12.rrc", "ckpt-000000000004.rrc.bad"};
    for (size_t i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        spit(p, (const unsigned char *)"x", 1);
    }
    CHECK_OK(rr_ckpt_dir_prepare(dir, &removed, &err), &err);
    CHECK_MSG(removed == 2, "removed %zu temporaries", removed);
    CHECK(count_files(dir, ".tmp.") == 0 && count_files(dir, "notes.txt") == 1 && count_files(dir, ".bad") == 1);
    CHECK_OK(rr_ckpt_list(dir, seqs, 4, &n, &err), &err);
    CHECK(n == 1 && seqs[0] == 3); /* "ckpt-12.rrc" and ".bad" are not checkpoints */
    CHECK(rr_ckpt_path(p, sizeof p, "d", 42) && !strcmp(p, "d/ckpt-000000000042.rrc"));
    CHECK(!rr_ckpt_path(p, 8, "d", 42));
    /* one run per folder: a second lock fails until the first is dropped */
    int fd1 = -1, fd2 = -1;
    CHECK_OK(rr_ckpt_dir_lock(dir, &fd1, &err), &err);
    CHECK(rr_ckpt_dir_lock(dir, &fd2, &err) == RR_ERR_ARG && strstr(err.msg, "in use by another training run"));
    CHECK(fd2 == -1);
    rr_ckpt_dir_unlock(fd1);
    CHECK_OK(rr_ckpt_dir_lock(dir, &fd2, &err), &err);
    rr_ckpt_dir_unlock(fd2);
    CHECK_OK(rr_ckpt_list(dir, seqs, 4, &n, &err), &err);
    CHECK(n == 1); /* the lock file is no checkpoint */
    /* a folder that cannot be created */
    snprintf(p, sizeof p, "%s/notes.txt/sub", dir);
    CHECK(rr_ckpt_dir_prepare(p, &removed, &err) == RR_ERR_IO);
}

/* ---- the trainer with checkpoints */

static void base_params(rr_train_params *p) {
    rr_train_params_default(p);
    p->kind = "gru";
    p->layers[0] = 16;
    p->batch_size = 8;
    p->n_sample = 32;
    p->sample_cache = 200; /* several refills per epoch */
    p->lr = 0.1;
    p->momentum = 0.1;
    p->dropout_hidden = 0.2;
    p->dropout_embed = 0.1;
    p->epochs = 3;
    p->threads = 1;
    p->verbose = 0;
    p->seed = 7;
}

static float *train_weights(const rr_dataset *tr, const rr_dataset *va, const rr_train_params *p, size_t *np,
                            rr_status *st) {
    rr_model *m = NULL;
    rr_error err;
    rr_status s = rr_model_train(&m, tr, va, p, &err);
    if (st) *st = s;
    else CHECK_OK(s, &err);
    if (!m) return NULL;
    const rr_rnn *r = rr_rnn_of(m);
    float *w = malloc(r->lay.n_params * sizeof(float));
    memcpy(w, r->params, r->lay.n_params * sizeof(float));
    *np = r->lay.n_params;
    rr_model_free(m);
    return w;
}

static bool same(const float *a, const float *b, size_t n) { return a && b && !memcmp(a, b, n * sizeof(float)); }

static void test_trainer(void) {
    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.n_events = check_small() ? 3000 : 8000;
    sp.n_items = 150;
    sp.seed = 3;
    rr_dataset *tr = NULL, *va = NULL;
    rr_error err;
    CHECK_OK(rr_synth_generate(&sp, &tr, &err), &err);
    sp.seed = 4;
    sp.n_events = 1500;
    CHECK_OK(rr_synth_generate(&sp, &va, &err), &err);
    if (!tr || !va) return;
    rr_train_params p;
    base_params(&p);
    size_t np = 0, np2 = 0;
    float *ref = train_weights(tr, va, &p, &np, NULL);

    /* checkpoints every 25 steps change nothing */
    char dir[300];
    path_in(dir, sizeof dir, "tr_a");
    size_t fails = 99;
    p.checkpoint_dir = dir;
    p.checkpoint_steps = 25;
    p.checkpoint_secs = 0;
    p.checkpoint_failures = &fails;
    float *w = train_weights(tr, va, &p, &np2, NULL);
    CHECK_MSG(np == np2 && same(ref, w, np), "weights with checkpoints differ from those without");
    CHECK(fails == 0);
    CHECK(count_files(dir, ".rrc") == 2 && count_files(dir, ".tmp.") == 0);
    free(w);

    /* a new run refuses the folder; resuming the finished run gives the same weights */
    rr_status st;
    w = train_weights(tr, va, &p, &np2, &st);
    CHECK(st == RR_ERR_ARG && !w);
    p.resume = 1;
    w = train_weights(tr, va, &p, &np2, NULL);
    CHECK_MSG(same(ref, w, np), "resuming a finished run changed the weights");
    free(w);
    /* another learning rate: refused */
    p.lr = 0.2;
    w = train_weights(tr, va, &p, &np2, &st);
    CHECK(st == RR_ERR_ARG && !w);
    p.lr = 0.1;

    /* the newest checkpoint corrupted: the older one (mid-epoch 3) is used,
     * the bad one renamed, and training ends with the same weights */
    uint64_t seqs[4];
    size_t n = 0;
    CHECK_OK(rr_ckpt_list(dir, seqs, 4, &n, &err), &err);
    char path[400];
    if (n == 2) {
        rr_ckpt_path(path, sizeof path, dir, seqs[0]);
        size_t len;
        unsigned char *d = slurp(path, &len);
        uint64_t wl = 0, wo = d ? sect_off(d, "weights", &wl) : 0;
        CHECK(wo > 0 && wl > 0);
        if (d && wo) {
            d[wo + 5] ^= 0x55;
            spit(path, d, len);
            free(d);
        }
        w = train_weights(tr, va, &p, &np2, NULL);
        CHECK_MSG(same(ref, w, np), "fallback to the older checkpoint changed the weights");
        free(w);
        CHECK(count_files(dir, ".rrc.bad") == 1);
    }

    /* an interruption after epoch 1 of 3: resume with more epochs */
    path_in(dir, sizeof dir, "tr_b");
    p.resume = 0;
    p.epochs = 1;
    p.checkpoint_steps = 0;
    w = train_weights(tr, va, &p, &np2, NULL);
    free(w);
    p.epochs = 3;
    p.resume = 1;
    w = train_weights(tr, va, &p, &np2, NULL);
    CHECK_MSG(same(ref, w, np), "epoch 1 + resume to 3 differs from 3 epochs");
    free(w);
    p.epochs = 2; /* the checkpoint is after epoch 3 */
    w = train_weights(tr, va, &p, &np2, &st);
    CHECK_MSG(st == RR_ERR_ARG && !w, "fewer epochs than done: status %d", (int)st);
    p.epochs = 3;

    /* a file size limit: every write fails with EFBIG, nothing is left
     * behind, the folder's checkpoints stay as they were, the weights are
     * right and the failures are counted */
    path_in(dir, sizeof dir, "tr_c");
    p.resume = 0;
    p.epochs = 1;
    w = train_weights(tr, va, &p, &np2, NULL);
    free(w);
    CHECK_OK(rr_ckpt_list(dir, seqs, 4, &n, &err), &err);
    CHECK(n == 1);
    rr_ckpt_path(path, sizeof path, dir, seqs[0]);
    size_t len0 = 0, len1 = 0;
    unsigned char *before = slurp(path, &len0);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096; /* far below a checkpoint of this model */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    p.epochs = 3;
    p.resume = 1;
    p.checkpoint_steps = 50;
    fails = 0;
    w = train_weights(tr, va, &p, &np2, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK_MSG(same(ref, w, np), "failed checkpoint writes changed the weights");
    CHECK_MSG(fails >= 2, "%zu failed writes counted", fails);
    free(w);
    CHECK(count_files(dir, ".tmp.") == 0);
    CHECK_OK(rr_ckpt_list(dir, seqs, 4, &n, &err), &err);
    unsigned char *after = slurp(path, &len1);
    CHECK_MSG(n == 1 && before && after && len0 == len1 && !memcmp(before, after, len0),
              "the previous checkpoint changed under failed writes");
    free(before);
    free(after);
    free(ref);
    rr_dataset_free(tr);
    rr_dataset_free(va);
}

static void rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) rm_rf(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/rr_ckpt_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip(1);
    test_round_trip(3);
    test_damaged();
    test_hostile_state();
    test_fingerprint();
    test_folder();
    test_trainer();
    rm_rf(tmpdir);
    return check_summary("test_checkpoint");
}
