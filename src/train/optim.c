/* optim.c - optimisers over flat float blobs (formulas in optim.h).
 *
 * Adagrad follows IndexedAdagradM.step in hidasib/GRU4Rec_PyTorch_Official
 * gru4rec_pytorch.py: eps = 1e-6 goes inside the square root and is added
 * after the accumulator update (acc += g^2; g / sqrt(acc + eps)); without
 * momentum there is no velocity state at all; sparse gradients are first
 * coalesced (duplicate rows summed, here the caller's job) because the
 * update is non-linear, and only the touched rows' acc/velocity change, so
 * an untouched row's momentum does not decay (lazy momentum).  The dense
 * and the sparse paths use the same per-element code, so a sparse update
 * equals the dense one restricted to those rows bit for bit.
 *
 * Adam is torch.optim.Adam's (bias-corrected, eps outside the square root);
 * its sparse form is lazy like torch.optim.SparseAdam: the global step t
 * drives the bias correction of every touched row. */
/* The element loops must vectorise; GCC's -O2 "very cheap" cost model will
 * not take loops that need a scalar epilogue.  No result changes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "vect-cost-model=dynamic")
#endif

#include <math.h>

#include "train/optim.h"
#include "util/util.h"

#define RR_ADAGRAD_EPS 1e-6f

int rr_optim_n_states(const rr_optim_cfg *c) {
    switch (c->kind) {
    case RR_OPT_ADAGRAD: return c->momentum > 0 ? 2 : 1;
    case RR_OPT_ADAM: return 2;
    case RR_OPT_SGD: return c->momentum > 0 ? 1 : 0;
    }
    return 0;
}

size_t rr_optim_s2_size(const rr_optim_cfg *c) {
    return c->kind == RR_OPT_ADAGRAD && c->momentum > 0 && c->vel_bf16 ? sizeof(uint16_t) : sizeof(float);
}

/* Constants of one step, computed once in double and rounded to float. */
typedef struct step_k {
    float lr, mu;
    float b1, b2, omb1, omb2; /* adam: beta1, beta2, 1 - beta1, 1 - beta2 */
    float step, eps;          /* adam: lr / (1 - b1^t), eps * ... see below */
    float inv_sqrt_bc2;       /* adam: 1 / sqrt(1 - b2^t) */
} step_k;

static step_k step_consts(const rr_optim_cfg *c, uint64_t t) {
    step_k k = {0};
    k.lr = (float)c->lr;
    k.mu = (float)c->momentum;
    if (c->kind == RR_OPT_ADAM) {
        RR_ASSERT(t >= 1);
        double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
        k.b1 = (float)c->beta1;
        k.b2 = (float)c->beta2;
        k.omb1 = (float)(1.0 - c->beta1);
        k.omb2 = (float)(1.0 - c->beta2);
        k.step = (float)(c->lr / bc1);
        k.inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
        k.eps = (float)c->eps;
    }
    return k;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SPAN_ATTR __attribute__((target_clones("avx2", "default")))
#else
#define SPAN_ATTR
#endif

/* Adagrad over n elements (the training hot loop: every dense weight and
 * every touched row, each step).  Built for AVX2 as well and picked at
 * load time; sqrt and division are correctly rounded at every width and
 * ISO C mode contracts nothing into an fma, so every clone gives the same
 * bits. */
SPAN_ATTR static void adagrad_span(size_t n, float lr, float mu, float *restrict w, const float *restrict g,
                                   float *restrict acc, float *restrict vel) {
    if (mu > 0) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float a = acc[i] + g[i] * g[i];
            acc[i] = a;
            float v = mu * vel[i] - lr * (g[i] / sqrtf(a + RR_ADAGRAD_EPS));
            vel[i] = v;
            w[i] += v;
        }
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float a = acc[i] + g[i] * g[i];
            acc[i] = a;
            w[i] -= lr * (g[i] / sqrtf(a + RR_ADAGRAD_EPS));
        }
    }
}

/* The same with the velocity stored as bfloat16: v is computed in float
 * from the stored (rounded) velocity, added to w as the float, and stored
 * rounded (optim.h).  The rounding is integer arithmetic (rr_bf16_from_f32)
 * and vectorises at every width with the same bits.  (AVX-512 BF16's
 * vcvtneps2bf16 would flush subnormals to zero, which this does not.) */
SPAN_ATTR static void adagrad_span_bf16(size_t n, float lr, float mu, float *restrict w, const float *restrict g,
                                        float *restrict acc, uint16_t *restrict vel) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float a = acc[i] + g[i] * g[i];
        acc[i] = a;
        float v = mu * rr_bf16_to_f32(vel[i]) - lr * (g[i] / sqrtf(a + RR_ADAGRAD_EPS));
        vel[i] = rr_bf16_from_f32(v);
        w[i] += v;
    }
}

/* One contiguous stretch of n elements; s1/s2 as optim.h describes (s2
 * points at element 0 of the stretch, of rr_optim_s2_size bytes each). */
static void update_span(const rr_optim_cfg *c, const step_k *k, size_t n, float *restrict w,
                        const float *restrict g, float *restrict s1, void *restrict s2v) {
    float *restrict s2 = s2v;
    switch (c->kind) {
    case RR_OPT_ADAGRAD:
        if (k->mu > 0 && c->vel_bf16) adagrad_span_bf16(n, k->lr, k->mu, w, g, s1, s2v);
        else adagrad_span(n, k->lr, k->mu, w, g, s1, s2);
        break;
    case RR_OPT_ADAM:
        /* w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps) */
        for (size_t i = 0; i < n; i++) {
            float m = k->b1 * s1[i] + k->omb1 * g[i];
            float v = k->b2 * s2[i] + k->omb2 * (g[i] * g[i]);
            s1[i] = m;
            s2[i] = v;
            w[i] -= k->step * (m / (sqrtf(v) * k->inv_sqrt_bc2 + k->eps));
        }
        break;
    case RR_OPT_SGD:
        if (k->mu > 0) {
            for (size_t i = 0; i < n; i++) {
                float v = k->mu * s1[i] - k->lr * g[i];
                s1[i] = v;
                w[i] += v;
            }
        } else {
            for (size_t i = 0; i < n; i++) w[i] -= k->lr * g[i];
        }
        break;
    }
}

static void check_states(const rr_optim_cfg *c, const float *s1, const void *s2) {
    int ns = rr_optim_n_states(c);
    RR_ASSERT(ns < 1 || s1);
    RR_ASSERT(ns < 2 || s2);
}

/* Blocks for the threads; big enough that the fork costs nothing. */
#define OPT_BLOCK 16384

/* s2 + i elements of es bytes, or NULL */
static void *s2_at(void *s2, size_t i, size_t es) {
    return s2 ? (char *)s2 + i * es : NULL;
}

void rr_optim_dense(const rr_optim_cfg *c, uint64_t t, size_t n, float *w, const float *g,
                    float *s1, void *s2) {
    check_states(c, s1, s2);
    step_k k = step_consts(c, t);
    const size_t es = rr_optim_s2_size(c);
    long nblk = (long)((n + OPT_BLOCK - 1) / OPT_BLOCK);
#pragma omp parallel for schedule(static) if (nblk > 4)
    for (long b = 0; b < nblk; b++) {
        size_t o = (size_t)b * OPT_BLOCK, m = n - o < OPT_BLOCK ? n - o : OPT_BLOCK;
        update_span(c, &k, m, w + o, g + o, s1 ? s1 + o : NULL, s2_at(s2, o, es));
    }
}

void rr_optim_dense_span(const rr_optim_cfg *c, uint64_t t, size_t n, float *w, const float *g, float *s1,
                         void *s2) {
    check_states(c, s1, s2);
    step_k k = step_consts(c, t);
    update_span(c, &k, n, w, g, s1, s2);
}

void rr_optim_sparse_rows(const rr_optim_cfg *c, uint64_t t, size_t row_len, size_t n_rows, const int32_t *rows,
                          const float *g, float *w, float *s1, void *s2) {
    check_states(c, s1, s2);
    step_k k = step_consts(c, t);
    const size_t es = rr_optim_s2_size(c);
    /* The rows are scattered over up to three large tables: fetch ahead
     * (further for single-element rows, By). */
    const size_t ahead = row_len >= 16 ? 6 : 24;
    for (size_t r = 0; r < n_rows; r++) {
        if (r + ahead < n_rows) {
            size_t o2 = (size_t)rows[r + ahead] * row_len;
            for (size_t b = 0; b < row_len; b += 16) {
                __builtin_prefetch(w + o2 + b, 1, 1);
                if (s1) __builtin_prefetch(s1 + o2 + b, 1, 1);
            }
            /* s2 rows of bfloat16: 32 elements to a line */
            for (size_t b = 0; s2 && b < row_len; b += 64 / es)
                __builtin_prefetch((char *)s2 + (o2 + b) * es, 1, 1);
        }
        RR_ASSERT(rows[r] >= 0);
        size_t o = (size_t)rows[r] * row_len;
        update_span(c, &k, row_len, w + o, g + r * row_len, s1 ? s1 + o : NULL, s2_at(s2, o, es));
    }
}

void rr_optim_sparse(const rr_optim_cfg *c, uint64_t t, size_t row_len, size_t n_rows,
                     const int32_t *rows, const float *g, float *w, float *s1, void *s2) {
    check_states(c, s1, s2);
    step_k k = step_consts(c, t);
    const size_t es = rr_optim_s2_size(c);
    long nr = (long)n_rows;
#pragma omp parallel for schedule(static) if (n_rows * row_len > 4 * OPT_BLOCK)
    for (long r = 0; r < nr; r++) {
        RR_ASSERT(rows[r] >= 0);
        size_t o = (size_t)rows[r] * row_len;
        update_span(c, &k, row_len, w + o, g + (size_t)r * row_len, s1 ? s1 + o : NULL, s2_at(s2, o, es));
    }
}
