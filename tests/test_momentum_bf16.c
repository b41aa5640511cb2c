/* test_momentum_bf16.c - Adagrad's velocity stored as bfloat16
 * (--momentum-dtype bf16, optim.h):
 *  - rr_bf16_from_f32 against an independent reference that rounds by
 *    comparing distances in double (ties to even), over every upper half
 *    with low halves at and around the tie, NaN, infinities, subnormals,
 *    overflow to infinity; bf16 -> f32 -> bf16 is the identity;
 *  - the vectorised, threaded update equals a scalar loop of the formula
 *    bit for bit (w gets the float velocity, the state its rounding), and
 *    the fp32 option equals the float formula exactly;
 *  - a sparse update equals the dense one restricted to its rows, bit for
 *    bit, and leaves the other rows alone;
 *  - checkpoints: the file written from a bfloat16 velocity is the same
 *    bytes as the one written from its f32 widening, and reads back
 *    exactly; a resume with the other dtype is refused by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/synth.h"
#include "models/rnn.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "util/util.h"

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The reference: the two bfloat16 neighbours of |x| and which is nearer,
 * measured in double (exact for these magnitudes); a tie goes to the one
 * with an even last bit.  Past the largest finite value the upper
 * neighbour is infinity, at distance one bfloat16 ulp as IEEE rounds. */
static uint16_t ref_bf16(float x) {
    uint32_t u = f2u(x), sign = u & 0x80000000u, mag = u & 0x7fffffffu;
    if (mag > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    if (mag == 0x7f800000u) return (uint16_t)(u >> 16);
    uint32_t lo = mag & 0xffff0000u;
    int e = (int)(mag >> 23);
    double ulp = ldexp(1.0, (e ? e : 1) - 127 - 7);
    double dx = (double)u2f(mag), dlo = (double)u2f(lo);
    double below = dx - dlo, above = dlo + ulp - dx;
    int up = above < below || (above == below && (lo >> 16) & 1u);
    return (uint16_t)((sign | (lo + (up ? 0x10000u : 0))) >> 16);
}

static void test_rounding(void) {
    static const uint32_t lows[] = {0x0000, 0x0001, 0x7ffe, 0x7fff, 0x8000, 0x8001, 0xfffe, 0xffff, 0x1234, 0xc0de};
    size_t bad = 0, n = 0;
    for (uint32_t hi = 0; hi < 0x10000u; hi++) {
        for (size_t k = 0; k < sizeof lows / sizeof lows[0]; k++) {
            float x = u2f(hi << 16 | lows[k]);
            uint16_t got = rr_bf16_from_f32(x), want = ref_bf16(x);
            n++;
            if (got != want && bad++ < 5)
                printf("  %08x: got %04x, want %04x\n", (unsigned)f2u(x), (unsigned)got, (unsigned)want);
        }
        /* every bfloat16 goes through float and back unchanged (NaN:
         * payloads with the quiet bit set) */
        uint16_t h = (uint16_t)hi;
        uint16_t back = rr_bf16_from_f32(rr_bf16_to_f32(h));
        bool nan = (hi & 0x7fffu) > 0x7f80u;
        if (nan ? back != (h | 0x40u) : back != h) bad++;
    }
    printf("bf16 rounding: %zu values against the reference, %zu wrong\n", n, bad);
    CHECK_MSG(bad == 0, "%zu roundings differ from the reference", bad);
    /* the named cases */
    CHECK(rr_bf16_from_f32(1.0f) == 0x3f80);
    CHECK(rr_bf16_from_f32(u2f(0x3f808000u)) == 0x3f80); /* tie, even below */
    CHECK(rr_bf16_from_f32(u2f(0x3f818000u)) == 0x3f82); /* tie, even above */
    CHECK(rr_bf16_from_f32(u2f(0x3f808001u)) == 0x3f81);
    CHECK(rr_bf16_from_f32(-0.0f) == 0x8000);
    CHECK(rr_bf16_from_f32(INFINITY) == 0x7f80 && rr_bf16_from_f32(-INFINITY) == 0xff80);
    CHECK(rr_bf16_from_f32(u2f(0x7f7fffffu)) == 0x7f80);        /* FLT_MAX rounds to infinity */
    CHECK(rr_bf16_from_f32(u2f(0x00008000u)) == 0x0000);        /* subnormal tie to even zero */
    CHECK(rr_bf16_from_f32(u2f(0x00018000u)) == 0x0002);        /* subnormal tie up */
    CHECK(rr_bf16_from_f32(u2f(0x807fffffu)) == 0x8080);        /* largest subnormal to -FLT_MIN */
    uint16_t q = rr_bf16_from_f32(NAN);
    CHECK((q & 0x7f80) == 0x7f80 && (q & 0x7f) != 0);
    CHECK(rr_bf16_from_f32(u2f(0x7f800001u)) == 0x7fc0); /* signalling NaN, payload in the low half: quiet */
    CHECK(rr_bf16_from_f32(u2f(0xffc12345u)) == 0xffc1);
    CHECK(isnan(rr_bf16_to_f32(q)));
}

static const rr_optim_cfg C_BF16 = {RR_OPT_ADAGRAD, 0.05, 0.3, 0, 0, 0, 1};
static const rr_optim_cfg C_FP32 = {RR_OPT_ADAGRAD, 0.05, 0.3, 0, 0, 0, 0};

/* gradients of mixed scale, some zero, some tiny (velocities near the
 * subnormal range after decay are not needed: the formula is the test) */
static void fill_grad(rr_rng *r, float *g, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = rr_rng_uniform(r) * 2 - 1;
        g[i] = (float)(i % 11 == 5 ? 0.0 : x * (i % 3 == 0 ? 10.0 : i % 3 == 1 ? 0.01 : 1e-5));
    }
}

/* The update by the book, one element at a time, in float. */
static void scalar_step(const rr_optim_cfg *c, size_t n, float *w, const float *g, float *acc, void *vel) {
    const float lr = (float)c->lr, mu = (float)c->momentum;
    for (size_t i = 0; i < n; i++) {
        float a = acc[i] + g[i] * g[i];
        acc[i] = a;
        float step = lr * (g[i] / sqrtf(a + 1e-6f));
        if (c->vel_bf16) {
            uint16_t *v16 = vel;
            float v = mu * rr_bf16_to_f32(v16[i]) - step;
            v16[i] = rr_bf16_from_f32(v);
            w[i] += v;
        } else {
            float *v32 = vel;
            float v = mu * v32[i] - step;
            v32[i] = v;
            w[i] += v;
        }
    }
}

static void test_dense_exact(const rr_optim_cfg *c, const char *name, size_t n) {
    const size_t es = rr_optim_s2_size(c);
    CHECK(es == (c->vel_bf16 ? 2u : 4u));
    rr_rng r;
    rr_rng_seed(&r, 5);
    float *w = malloc(n * sizeof *w), *w2 = malloc(n * sizeof *w2), *g = malloc(n * sizeof *g);
    float *a = calloc(n, sizeof *a), *a2 = calloc(n, sizeof *a2);
    void *v = calloc(n, es), *v2 = calloc(n, es);
    for (size_t i = 0; i < n; i++) w[i] = w2[i] = (float)rr_rng_normal(&r);
    bool same = true;
    for (uint64_t t = 1; t <= 4; t++) {
        fill_grad(&r, g, n);
        rr_optim_dense(c, t, n, w, g, a, v);
        scalar_step(c, n, w2, g, a2, v2);
        same = same && !memcmp(w, w2, n * sizeof *w) && !memcmp(a, a2, n * sizeof *a) && !memcmp(v, v2, n * es);
    }
    /* and the span entry point (one thread, any start) gives the same */
    size_t h = n / 3 + 1;
    fill_grad(&r, g, n);
    rr_optim_dense_span(c, 5, h, w, g, a, v);
    rr_optim_dense_span(c, 5, n - h, w + h, g + h, a + h, (char *)v + h * es);
    scalar_step(c, n, w2, g, a2, v2);
    same = same && !memcmp(w, w2, n * sizeof *w) && !memcmp(v, v2, n * es);
    printf("%s n=%zu: dense update == scalar formula: %s\n", name, n, same ? "yes" : "NO");
    CHECK_MSG(same, "%s: the update differs from the scalar formula", name);
    /* bf16 stores the rounding of the fp32 velocity: they stay close */
    free(w);
    free(w2);
    free(g);
    free(a);
    free(a2);
    free(v);
    free(v2);
}

/* bf16 and fp32 runs from the same start: the weights stay within the
 * velocity's rounding (relative 2^-8 per step, decaying by mu), and the
 * first step, with a zero velocity, is identical. */
static void test_close_to_fp32(void) {
    enum { N = 4096 };
    static float w1[N], w2[N], g[N], a1[N], a2[N], v32[N];
    static uint16_t v16[N];
    rr_rng r;
    rr_rng_seed(&r, 9);
    for (size_t i = 0; i < N; i++) w1[i] = w2[i] = (float)rr_rng_normal(&r);
    double worst = 0;
    for (uint64_t t = 1; t <= 20; t++) {
        fill_grad(&r, g, N);
        rr_optim_dense(&C_BF16, t, N, w1, g, a1, v16);
        rr_optim_dense(&C_FP32, t, N, w2, g, a2, v32);
        if (t == 1) CHECK(!memcmp(w1, w2, sizeof w1));
        for (size_t i = 0; i < N; i++) {
            double e = fabs((double)w1[i] - w2[i]) / (C_FP32.lr * 20);
            if (e > worst) worst = e;
        }
    }
    printf("bf16 vs fp32 velocity, 20 steps: max weight difference %.3g lr-steps\n", worst * 20);
    CHECK_MSG(worst * 20 < 0.05, "bf16 drifted %.3g steps of lr from fp32", worst * 20);
    CHECK(worst > 0); /* and the storage did change something */
}

static void test_sparse_vs_dense(void) {
    enum { NR = 17, L = 45 };
    const int32_t rows[] = {16, 3, 9, 0, 11, 4};
    const size_t nr = sizeof rows / sizeof rows[0];
    static float w[NR * L], a[NR * L], w0[NR * L], a0[NR * L], g[6 * L], dw[6 * L], da[6 * L];
    static uint16_t v[NR * L], v0[NR * L], dv[6 * L];
    rr_rng r;
    rr_rng_seed(&r, 11);
    for (size_t i = 0; i < NR * L; i++) {
        w[i] = (float)rr_rng_normal(&r);
        a[i] = (float)rr_rng_uniform(&r);
        v[i] = rr_bf16_from_f32((float)(rr_rng_uniform(&r) - 0.5) * 0.1f);
    }
    memcpy(w0, w, sizeof w);
    memcpy(a0, a, sizeof a);
    memcpy(v0, v, sizeof v);
    bool same = true, untouched = true;
    for (uint64_t t = 1; t <= 4; t++) {
        for (size_t i = 0; i < nr * L; i++) g[i] = (float)(rr_rng_uniform(&r) * 2 - 1);
        for (size_t k = 0; k < nr; k++) {
            size_t o = (size_t)rows[k] * L;
            memcpy(dw + k * L, w + o, L * sizeof *w);
            memcpy(da + k * L, a + o, L * sizeof *a);
            memcpy(dv + k * L, v + o, L * sizeof *v);
        }
        rr_optim_dense(&C_BF16, t, nr * L, dw, g, da, dv);
        if (t % 2) rr_optim_sparse(&C_BF16, t, L, nr, rows, g, w, a, v);
        else rr_optim_sparse_rows(&C_BF16, t, L, nr, rows, g, w, a, v);
        for (size_t k = 0; k < nr; k++) {
            size_t o = (size_t)rows[k] * L;
            same = same && !memcmp(dw + k * L, w + o, L * sizeof *w) && !memcmp(da + k * L, a + o, L * sizeof *a) &&
                   !memcmp(dv + k * L, v + o, L * sizeof *v);
        }
    }
    for (int32_t row = 0; row < NR; row++) {
        bool touched = false;
        for (size_t k = 0; k < nr; k++) touched = touched || rows[k] == row;
        size_t o = (size_t)row * L;
        if (touched) {
            untouched = untouched && memcmp(v + o, v0 + o, L * sizeof *v) != 0;
            continue;
        }
        untouched = untouched && !memcmp(w + o, w0 + o, L * sizeof *w) && !memcmp(a + o, a0 + o, L * sizeof *a) &&
                    !memcmp(v + o, v0 + o, L * sizeof *v);
    }
    CHECK_MSG(same, "bf16: the sparse update differs from the dense one on its rows");
    CHECK_MSG(untouched, "bf16: rows outside the update changed (or touched rows' velocity did not)");
}

/* ---- checkpoints */

enum { NP = 3000, BB = 2 };

static char tmpdir[256];

static void ck_setup(rr_ckpt_layout *ly, rr_ckpt *c, rr_ckpt_stream *st, rr_sessions *sess, int64_t *order,
                     float *w, float *m1, float *m2, uint16_t *m2b, size_t *ss, size_t *sp, float *state) {
    static int64_t offsets[3] = {0, 3, 7};
    static int32_t items[7];
    static double times[7];
    memset(sess, 0, sizeof *sess);
    sess->n_sessions = 2;
    sess->n_events = 7;
    sess->offsets = offsets;
    sess->items = items;
    sess->times = times;
    order[0] = 0;
    order[1] = 1;
    memset(ly, 0, sizeof *ly);
    ly->n_params = NP;
    ly->n_moments = 2;
    ly->L = 1;
    ly->state_width[0] = 4;
    ly->B = BB;
    ly->n_streams = 1;
    ly->n_order = 2;
    ly->order = order;
    ly->sess = sess;
    ly->epochs_max = 10;
    ly->fingerprint = "model=gru\nmomentum=0.1\nmomentum-dtype=bf16\n";
    memset(c, 0, sizeof *c);
    memset(st, 0, sizeof *st);
    c->fingerprint = (char *)ly->fingerprint;
    c->t = 5;
    c->steps_total = 5;
    c->epoch = 1;
    c->in_epoch = 1;
    c->weights = w;
    c->moment[0] = m1;
    c->moment[1] = m2;
    c->moment2_bf16 = m2b;
    st->n = 1;
    st->next = 1;
    st->slot_sess = ss;
    st->slot_pos = sp;
    st->state[0] = state;
    rr_rng_seed(&st->rng, 3);
    c->n_streams = 1;
    c->streams = st;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    *n = b ? fread(b, 1, (size_t)len, f) : 0;
    fclose(f);
    return b;
}

static void test_checkpoint_file(void) {
    static float w[NP], m1[NP], m2[NP], state[BB * 4], wr[NP], m1r[NP], m2r[NP], str[BB * 4];
    static uint16_t m2b[NP], m2br[NP];
    size_t ss[BB] = {1, 0}, sp[BB] = {2, 0}, ssr[BB], spr[BB];
    rr_rng r;
    rr_rng_seed(&r, 21);
    for (size_t i = 0; i < NP; i++) {
        w[i] = (float)rr_rng_normal(&r);
        m1[i] = (float)rr_rng_uniform(&r);
        m2b[i] = rr_bf16_from_f32((float)rr_rng_normal(&r) * 0.01f);
        m2[i] = rr_bf16_to_f32(m2b[i]); /* its widening */
    }
    m2b[7] = 0x0001;     /* a subnormal */
    m2[7] = rr_bf16_to_f32(0x0001);
    m2b[8] = 0x8000;     /* -0 */
    m2[8] = -0.0f;
    for (size_t i = 0; i < BB * 4; i++) state[i] = (float)i;
    rr_ckpt_layout ly;
    rr_ckpt c;
    rr_ckpt_stream st;
    rr_sessions sess;
    int64_t order[2];
    rr_error err;
    char da[300], db[300], pa[400], pb[400];
    snprintf(da, sizeof da, "%s/a", tmpdir);
    snprintf(db, sizeof db, "%s/b", tmpdir);
    size_t rm;
    CHECK_OK(rr_ckpt_dir_prepare(da, &rm, &err), &err);
    CHECK_OK(rr_ckpt_dir_prepare(db, &rm, &err), &err);
    /* a: from the bfloat16 table; b: from its f32 widening */
    ck_setup(&ly, &c, &st, &sess, order, w, m1, NULL, m2b, ss, sp, state);
    CHECK_OK(rr_ckpt_write(da, 1, &c, &ly, &err), &err);
    ck_setup(&ly, &c, &st, &sess, order, w, m1, m2, NULL, ss, sp, state);
    CHECK_OK(rr_ckpt_write(db, 1, &c, &ly, &err), &err);
    CHECK(rr_ckpt_path(pa, sizeof pa, da, 1) && rr_ckpt_path(pb, sizeof pb, db, 1));
    size_t na = 0, nb = 0;
    unsigned char *ba = slurp(pa, &na), *bb = slurp(pb, &nb);
    CHECK_MSG(ba && bb && na == nb && na > NP * 12 && !memcmp(ba, bb, na),
              "a checkpoint from a bf16 velocity is not the bytes of its f32 widening (%zu vs %zu bytes)", na, nb);
    free(ba);
    free(bb);
    /* read back into a bfloat16 table: every bit; into f32: the widening */
    ck_setup(&ly, &c, &st, &sess, order, wr, m1r, NULL, m2br, ssr, spr, str);
    CHECK_OK(rr_ckpt_read(pa, &ly, &c, &err), &err);
    rr_ckpt_clear(&c);
    CHECK(!memcmp(m2br, m2b, sizeof m2b) && !memcmp(wr, w, sizeof w) && !memcmp(m1r, m1, sizeof m1));
    ck_setup(&ly, &c, &st, &sess, order, wr, m1r, m2r, NULL, ssr, spr, str);
    CHECK_OK(rr_ckpt_read(pa, &ly, &c, &err), &err);
    rr_ckpt_clear(&c);
    CHECK(!memcmp(m2r, m2, sizeof m2));
    /* a damaged velocity section is caught on the bf16 path too */
    ba = slurp(pa, &na);
    if (ba) {
        /* moment2 is the 5th section: find it through the table */
        size_t off = 0;
        for (size_t i = 0; i < 16; i++) {
            const unsigned char *e = ba + 32 + 56 * i;
            if (!strcmp((const char *)e, "moment2")) {
                memcpy(&off, e + 40, 8);
                break;
            }
        }
        CHECK(off > 0 && off + 100 < na);
        if (off > 0 && off + 100 < na) {
            ba[off + 99] ^= 0x10;
            char pc[400];
            snprintf(pc, sizeof pc, "%s/damaged.rrc", tmpdir);
            FILE *f = fopen(pc, "wb");
            if (f) {
                fwrite(ba, 1, na, f);
                fclose(f);
            }
            ck_setup(&ly, &c, &st, &sess, order, wr, m1r, NULL, m2br, ssr, spr, str);
            CHECK(rr_ckpt_read(pc, &ly, &c, &err) == RR_ERR_CHECKSUM && strstr(err.msg, "moment2"));
            unlink(pc);
        }
        free(ba);
    }
}

/* The fingerprint names the dtype where a velocity exists; a missing line
 * (checkpoints from before the option) is fp32. */
static void test_fingerprint(void) {
    rr_error err;
    bool td;
    const char *b16 = "lr=0.05\nmomentum=0.1\nmomentum-dtype=bf16\n";
    const char *f32 = "lr=0.05\nmomentum=0.1\nmomentum-dtype=fp32\n";
    const char *old = "lr=0.05\nmomentum=0.1\n";
    CHECK(rr_ckpt_fingerprint_compare(b16, f32, &td, &err) == RR_ERR_ARG &&
          strstr(err.msg, "--momentum-dtype bf16 (now fp32)"));
    CHECK(rr_ckpt_fingerprint_compare(old, b16, &td, &err) == RR_ERR_ARG &&
          strstr(err.msg, "--momentum-dtype fp32 (now bf16)"));
    CHECK_OK(rr_ckpt_fingerprint_compare(old, f32, &td, &err), &err);
    CHECK_OK(rr_ckpt_fingerprint_compare(f32, old, &td, &err), &err);
    CHECK_OK(rr_ckpt_fingerprint_compare(b16, b16, &td, &err), &err);
}

/* The trainer: bf16 and fp32 train different weights, a checkpointed
 * bf16 run resumes to the uninterrupted bytes (the velocity survives the
 * file exactly), and a resume with the other dtype is refused. */
static float *train_w(const rr_dataset *tr, const rr_train_params *p, size_t *np, rr_status *st, rr_error *err) {
    rr_model *m = NULL;
    *st = rr_model_train(&m, tr, NULL, p, err);
    if (!m) return NULL;
    const rr_rnn *r = rr_rnn_of(m);
    float *w = malloc(r->lay.n_params * sizeof(float));
    memcpy(w, r->params, r->lay.n_params * sizeof(float));
    *np = r->lay.n_params;
    rr_model_free(m);
    return w;
}

static void test_trainer(void) {
    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.n_events = check_small() ? 2000 : 5000;
    sp.n_items = 120;
    sp.seed = 5;
    rr_dataset *tr = NULL;
    rr_error err;
    CHECK_OK(rr_synth_generate(&sp, &tr, &err), &err);
    if (!tr) return;
    rr_train_params p;
    rr_train_params_default(&p);
    CHECK(p.momentum_dtype == RR_MOMENTUM_BF16);
    p.kind = "gru";
    p.layers[0] = 16;
    p.batch_size = 8;
    p.n_sample = 24;
    p.momentum = 0.2;
    p.epochs = 2;
    p.threads = 1;
    p.verbose = 0;
    size_t n1 = 0, n2 = 0, n3 = 0;
    rr_status s1, s2, s3;
    float *wb = train_w(tr, &p, &n1, &s1, &err);
    CHECK_OK(s1, &err);
    p.momentum_dtype = RR_MOMENTUM_FP32;
    float *wf = train_w(tr, &p, &n2, &s2, &err);
    CHECK_OK(s2, &err);
    CHECK(wb && wf && n1 == n2 && memcmp(wb, wf, n1 * sizeof(float)) != 0);
    /* checkpointed bf16 run, one epoch, then resumed to two */
    char dir[300];
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    p.momentum_dtype = RR_MOMENTUM_BF16;
    p.checkpoint_dir = dir;
    p.checkpoint_steps = 0;
    p.checkpoint_secs = 0;
    p.epochs = 1;
    free(train_w(tr, &p, &n3, &s3, &err));
    CHECK_OK(s3, &err);
    p.resume = 1;
    p.epochs = 2;
    p.momentum_dtype = RR_MOMENTUM_FP32;
    float *wx = train_w(tr, &p, &n3, &s3, &err);
    CHECK_MSG(s3 == RR_ERR_ARG && strstr(err.msg, "momentum-dtype bf16 (now fp32)"),
              "resume with another dtype: status %d, %s", (int)s3, s3 ? err.msg : "accepted");
    free(wx);
    p.momentum_dtype = RR_MOMENTUM_BF16;
    float *wr = train_w(tr, &p, &n3, &s3, &err);
    CHECK_OK(s3, &err);
    CHECK_MSG(wr && wb && n3 == n1 && !memcmp(wr, wb, n1 * sizeof(float)),
              "a resumed bf16 run differs from the uninterrupted one");
    free(wb);
    free(wf);
    free(wr);
    rr_dataset_free(tr);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/rr_test_mbf16.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_rounding();
    size_t big = check_small() ? 70000 : 300000; /* > the threading threshold */
    test_dense_exact(&C_BF16, "bf16", 1003);
    test_dense_exact(&C_BF16, "bf16", big);
    test_dense_exact(&C_FP32, "fp32", 1003);
    test_dense_exact(&C_FP32, "fp32", big);
    test_close_to_fp32();
    test_sparse_vs_dense();
    test_checkpoint_file();
    test_fingerprint();
    test_trainer();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("could not remove %s\n", tmpdir);
    return check_summary("test_momentum_bf16");
}
