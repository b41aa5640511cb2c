/* fused.c - full-catalogue ranking of models with a linear head, with the
 * scoring fused into it (models/head.h).
 *
 * Instead of writing an (n, N) block of scores to memory and reading it
 * back, the engine scores a tile of up to 16 sessions against a slice of S
 * items into a small item-major buffer (S, 16) that stays in L1/L2, applies
 * the exclusions, and updates each session's rank counts and top-k from it
 * at once.  Loops, outermost first:
 *   chunk    a contiguous range of items; threads take chunks in
 *            increasing order from a shared counter (threads split the
 *            items, so any number of sessions keeps every core busy, and a
 *            thread the OS delays holds up one chunk, not half the work);
 *            each thread keeps its own counts and top lists, merged at the
 *            end
 *   panel    up to P tiles of sessions, their packed vectors in L2
 *   slice    S items of the range: the table rows W[j0 .. j0+S) are read
 *            from memory once per panel and then come from L2
 *   tile     score the tile x slice, exclusions, rank/top-k scan
 * Exactness: the target's score is computed first by rr_head_score_one,
 * which is bit-identical to the value the tile kernel gives the same item
 * (head.h), so the counts are those of the unfused path: n_greater items
 * strictly above the target, n_equal equal to it, the target included.
 * Top-k: a thread sees its items in increasing index order and the
 * threshold test is strict, so its list is ordered by (score desc, index
 * asc), as rr_topk's; merging the threads' lists by that same order gives
 * the list of the whole row.
 * rr_fused_rank_screened runs the same loops with the quantised screen of
 * nn/screen.h in the tile's place and exact rescoring of what its bound
 * cannot decide ("Screened ranking" below). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "eval/eval.h"
#include "models/head.h"
#include "nn/screen.h"
#include "util/util.h"

#define T RR_HEAD_TILE
#define MAX_THREADS 64
#define BATCH 32 /* exact rescorings handed to rr_head_score_items at once */

static int force_avx2_scan;

void rr_fused_force_avx2(int on) { force_avx2_scan = on; }

/* Per-thread accumulators for all n sessions (lanes of n_tiles tiles). */
typedef struct fz_thread {
    float *buf;       /* (S, T) slice scores, 64-byte aligned */
    float *thr;       /* (n_tiles * T) top-k threshold per lane (+inf: pad lane) */
    size_t *ng, *ne;  /* (n_tiles * T) rank counts */
    size_t *cnt;      /* (n) entries in each top list */
    int32_t *ti;      /* (n, k) top items, best first */
    float *ts;        /* (n, k) their scores */
    /* screened path (see "Screened ranking" below) */
    float *lthr;      /* (n_tiles * T) L: skip an item whose upper bound is below it */
    float *lbs;       /* (n, k) best k lower bounds seen, best first */
    size_t *lcnt;     /* (n) entries in lbs */
    int32_t *cj;      /* (n, C) deferred top-k candidates: items ... */
    float *cy, *cd;   /* (n, C) ... their screen scores and bounds */
    size_t *ccnt;     /* (n) candidates held */
    size_t n_exact_rank, n_exact_top; /* exact rescorings done */
    int32_t *bj;      /* (n, BATCH) rank-band items waiting for their exact score */
    size_t *bn;       /* (n) how many */
} fz_thread;

struct rr_fused_scratch {
    size_t cap_n, cap_k, cap_D, cap_S;
    int cap_nt;
    float *hp;        /* (n_tiles, D, T) packed session vectors */
    float *tvec;      /* (n_tiles * T) target score per lane (NaN: none) */
    fz_thread th[MAX_THREADS];
    /* screened path */
    size_t sc_cap_n, sc_cap_C, sc_cap_nw;
    int sc_cap_nt;
    int32_t *hq;              /* (n_tiles, nw, T) quantised session vectors */
    rr_screen_lanes *lanes;   /* (n_tiles) their lane parameters */
};

static void thread_free(fz_thread *t) {
    rr_free_aligned(t->buf);
    free(t->thr);
    free(t->ng);
    free(t->ne);
    free(t->cnt);
    free(t->ti);
    free(t->ts);
    free(t->lthr);
    free(t->lbs);
    free(t->lcnt);
    free(t->cj);
    free(t->cy);
    free(t->cd);
    free(t->ccnt);
    free(t->bj);
    free(t->bn);
    memset(t, 0, sizeof *t);
}

void rr_fused_scratch_free(rr_fused_scratch *s) {
    if (!s) return;
    for (int t = 0; t < MAX_THREADS; t++) thread_free(&s->th[t]);
    rr_free_aligned(s->hp);
    free(s->tvec);
    rr_free_aligned(s->hq);
    free(s->lanes);
    free(s);
}

/* Grows s to hold n sessions, top-k k, width D, slices of S items and nt
 * threads.  Buffers only grow, so a reused scratch stops allocating. */
static rr_status scratch_reserve(rr_fused_scratch **sp, size_t n, size_t k, size_t D, size_t S, int nt,
                                 rr_error *err) {
    rr_fused_scratch *s = *sp;
    if (!s) {
        s = *sp = calloc(1, sizeof *s);
        if (!s) return rr_err(err, RR_ERR_NOMEM, "out of memory for ranking scratch");
    }
    if (n <= s->cap_n && k <= s->cap_k && D <= s->cap_D && S <= s->cap_S && nt <= s->cap_nt) return RR_OK;
    size_t cn = n > s->cap_n ? n : s->cap_n, ck = k > s->cap_k ? k : s->cap_k;
    size_t cD = D > s->cap_D ? D : s->cap_D, cS = S > s->cap_S ? S : s->cap_S;
    int cnt_ = nt > s->cap_nt ? nt : s->cap_nt;
    size_t lanes, hpn, nk, bufn;
    bool ok = rr_mul_size((cn + T - 1) / T, T, &lanes) && rr_mul_size(lanes, cD, &hpn) &&
              rr_mul_size(hpn, sizeof(float), &hpn) && rr_mul_size(cn, ck, &nk) && rr_mul_size(cS, T, &bufn) &&
              rr_mul_size(bufn, sizeof(float), &bufn);
    if (!ok) return rr_err(err, RR_ERR_NOMEM, "ranking scratch: %zu sessions x %zu is too large", n, k);
    rr_free_aligned(s->hp);
    free(s->tvec);
    s->hp = rr_alloc_aligned(hpn ? hpn : 64);
    s->tvec = rr_malloc_n(lanes, sizeof *s->tvec);
    ok = s->hp && s->tvec;
    for (int t = 0; t < cnt_ && ok; t++) {
        fz_thread *th = &s->th[t];
        thread_free(th);
        th->buf = rr_alloc_aligned(bufn);
        th->thr = rr_malloc_n(lanes, sizeof *th->thr);
        th->ng = rr_malloc_n(lanes, sizeof *th->ng);
        th->ne = rr_malloc_n(lanes, sizeof *th->ne);
        th->cnt = rr_malloc_n(cn, sizeof *th->cnt);
        th->ti = rr_malloc_n(nk ? nk : 1, sizeof *th->ti);
        th->ts = rr_malloc_n(nk ? nk : 1, sizeof *th->ts);
        ok = th->buf && th->thr && th->ng && th->ne && th->cnt && th->ti && th->ts;
    }
    if (!ok) {
        rr_fused_scratch_free(s);
        *sp = NULL;
        return rr_err(err, RR_ERR_NOMEM, "out of memory for ranking scratch (%zu sessions)", n);
    }
    s->cap_n = cn;
    s->cap_k = ck;
    s->cap_D = cD;
    s->cap_S = cS;
    s->cap_nt = cnt_;
    s->sc_cap_n = 0; /* thread_free dropped the screened buffers too */
    return RR_OK;
}

/* The screened path's buffers (after scratch_reserve): n sessions,
 * candidate lists of C, nw pairs, nt threads. */
static rr_status screen_reserve(rr_fused_scratch *s, size_t n, size_t k, size_t C, size_t nw, int nt,
                                rr_error *err) {
    if (n <= s->sc_cap_n && C <= s->sc_cap_C && nw <= s->sc_cap_nw && nt <= s->sc_cap_nt && k <= s->cap_k)
        return RR_OK;
    size_t cn = s->cap_n, ck = s->cap_k, cC = C > s->sc_cap_C ? C : s->sc_cap_C;
    size_t cnw = nw > s->sc_cap_nw ? nw : s->sc_cap_nw;
    int cnt_ = s->cap_nt;
    size_t tiles = (cn + T - 1) / T, lanes = tiles * T, hqn, nk, nc;
    bool ok = rr_mul_size(lanes, cnw, &hqn) && rr_mul_size(hqn, sizeof(int32_t), &hqn) && rr_mul_size(cn, ck, &nk) &&
              rr_mul_size(cn, cC, &nc);
    if (!ok) return rr_err(err, RR_ERR_NOMEM, "ranking scratch: %zu sessions x %zu is too large", n, k);
    rr_free_aligned(s->hq);
    free(s->lanes);
    s->hq = rr_alloc_aligned(hqn ? hqn : 64);
    s->lanes = rr_malloc_n(tiles ? tiles : 1, sizeof *s->lanes);
    ok = s->hq && s->lanes;
    for (int t = 0; t < cnt_ && ok; t++) {
        fz_thread *th = &s->th[t];
        free(th->lthr);
        free(th->lbs);
        free(th->lcnt);
        free(th->cj);
        free(th->cy);
        free(th->cd);
        free(th->ccnt);
        free(th->bj);
        free(th->bn);
        th->bj = rr_malloc_n(cn ? cn : 1, BATCH * sizeof *th->bj);
        th->bn = rr_malloc_n(cn ? cn : 1, sizeof *th->bn);
        th->lthr = rr_malloc_n(lanes, sizeof *th->lthr);
        th->lbs = rr_malloc_n(nk ? nk : 1, sizeof *th->lbs);
        th->lcnt = rr_malloc_n(cn, sizeof *th->lcnt);
        th->cj = rr_malloc_n(nc, sizeof *th->cj);
        th->cy = rr_malloc_n(nc, sizeof *th->cy);
        th->cd = rr_malloc_n(nc, sizeof *th->cd);
        th->ccnt = rr_malloc_n(cn, sizeof *th->ccnt);
        ok = th->lthr && th->lbs && th->lcnt && th->cj && th->cy && th->cd && th->ccnt && th->bj && th->bn;
    }
    if (!ok) {
        s->sc_cap_n = 0;
        return rr_err(err, RR_ERR_NOMEM, "out of memory for ranking scratch (%zu sessions)", n);
    }
    s->sc_cap_n = cn;
    s->sc_cap_C = cC;
    s->sc_cap_nw = cnw;
    s->sc_cap_nt = cnt_;
    return RR_OK;
}

/* The context of one tile's scan: lane i is session r0 + i. */
typedef struct tile_acc {
    fz_thread *th;
    size_t r0, k;
    size_t lane0;      /* index of lane 0 in the per-lane arrays */
    const float *tvec; /* (T) */
} tile_acc;

static inline void lane_insert(tile_acc *a, size_t i, float v, int32_t j) {
    fz_thread *th = a->th;
    size_t r = a->r0 + i, k = a->k;
    rr_top_insert(th->ts + r * k, th->ti + r * k, &th->cnt[r], k, v, j);
    if (th->cnt[r] == k) th->thr[a->lane0 + i] = th->ts[r * k + k - 1];
}

static void scan_plain(tile_acc *a, const float *buf, size_t S, int32_t j0, int with_rank) {
    fz_thread *th = a->th;
    float *thr = th->thr + a->lane0;
    size_t g[T] = {0}, e[T] = {0};
    for (size_t j = 0; j < S; j++) {
        const float *x = buf + j * T;
        for (size_t i = 0; i < T; i++) {
            if (with_rank) {
                g[i] += x[i] > a->tvec[i];
                e[i] += x[i] == a->tvec[i];
            }
            if (x[i] > thr[i]) lane_insert(a, i, x[i], j0 + (int32_t)j);
        }
    }
    if (with_rank)
        for (size_t i = 0; i < T; i++) {
            th->ng[a->lane0 + i] += g[i];
            th->ne[a->lane0 + i] += e[i];
        }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
/* The same scan with 8-wide compares over the 16 lanes; counts in int32
 * lanes (S < 2^31).  _CMP_*_OQ are false for NaN, as C's are. */
__attribute__((target("avx2"))) static void scan_avx2(tile_acc *a, const float *buf, size_t S, int32_t j0,
                                                      int with_rank) {
    fz_thread *th = a->th;
    float *thr = th->thr + a->lane0;
    const __m256 vt0 = _mm256_loadu_ps(a->tvec), vt1 = _mm256_loadu_ps(a->tvec + 8);
    __m256 th0 = _mm256_loadu_ps(thr), th1 = _mm256_loadu_ps(thr + 8);
    __m256i g0 = _mm256_setzero_si256(), g1 = g0, e0 = g0, e1 = g0;
    for (size_t j = 0; j < S; j++) {
        const float *x = buf + j * T;
        __m256 x0 = _mm256_load_ps(x), x1 = _mm256_load_ps(x + 8);
        if (with_rank) {
            g0 = _mm256_sub_epi32(g0, _mm256_castps_si256(_mm256_cmp_ps(x0, vt0, _CMP_GT_OQ)));
            g1 = _mm256_sub_epi32(g1, _mm256_castps_si256(_mm256_cmp_ps(x1, vt1, _CMP_GT_OQ)));
            e0 = _mm256_sub_epi32(e0, _mm256_castps_si256(_mm256_cmp_ps(x0, vt0, _CMP_EQ_OQ)));
            e1 = _mm256_sub_epi32(e1, _mm256_castps_si256(_mm256_cmp_ps(x1, vt1, _CMP_EQ_OQ)));
        }
        unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(x0, th0, _CMP_GT_OQ)) |
                     (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(x1, th1, _CMP_GT_OQ)) << 8;
        if (RR_UNLIKELY(m)) {
            while (m) {
                unsigned i = (unsigned)__builtin_ctz(m);
                m &= m - 1;
                lane_insert(a, i, x[i], j0 + (int32_t)j);
            }
            th0 = _mm256_loadu_ps(thr);
            th1 = _mm256_loadu_ps(thr + 8);
        }
    }
    if (with_rank) {
        int32_t lg[T], le[T];
        _mm256_storeu_si256((__m256i *)lg, g0);
        _mm256_storeu_si256((__m256i *)(lg + 8), g1);
        _mm256_storeu_si256((__m256i *)le, e0);
        _mm256_storeu_si256((__m256i *)(le + 8), e1);
        for (size_t i = 0; i < T; i++) {
            th->ng[a->lane0 + i] += (size_t)(uint32_t)lg[i];
            th->ne[a->lane0 + i] += (size_t)(uint32_t)le[i];
        }
    }
}

/* AVX-512: the 16 lanes in one register, compares into mask registers. */
__attribute__((target("avx512f"))) static void scan_avx512(tile_acc *a, const float *buf, size_t S, int32_t j0,
                                                          int with_rank) {
    fz_thread *th = a->th;
    float *thr = th->thr + a->lane0;
    const __m512 vt = _mm512_loadu_ps(a->tvec);
    const __m512i one = _mm512_set1_epi32(1);
    __m512 vthr = _mm512_loadu_ps(thr);
    __m512i g = _mm512_setzero_si512(), e = g;
    for (size_t j = 0; j < S; j++) {
        const float *x = buf + j * T;
        __m512 xv = _mm512_load_ps(x);
        if (with_rank) {
            g = _mm512_mask_add_epi32(g, _mm512_cmp_ps_mask(xv, vt, _CMP_GT_OQ), g, one);
            e = _mm512_mask_add_epi32(e, _mm512_cmp_ps_mask(xv, vt, _CMP_EQ_OQ), e, one);
        }
        unsigned m = (unsigned)_mm512_cmp_ps_mask(xv, vthr, _CMP_GT_OQ);
        if (RR_UNLIKELY(m)) {
            while (m) {
                unsigned i = (unsigned)__builtin_ctz(m);
                m &= m - 1;
                lane_insert(a, i, x[i], j0 + (int32_t)j);
            }
            vthr = _mm512_loadu_ps(thr);
        }
    }
    if (with_rank) {
        int32_t lg[T], le[T];
        _mm512_storeu_si512(lg, g);
        _mm512_storeu_si512(le, e);
        for (size_t i = 0; i < T; i++) {
            th->ng[a->lane0 + i] += (size_t)(uint32_t)lg[i];
            th->ne[a->lane0 + i] += (size_t)(uint32_t)le[i];
        }
    }
}
#endif

static int use_avx512(void) {
#ifdef HAVE_AVX2_PATH
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return cached && !rr_rank_portable_forced() && !force_avx2_scan;
#else
    return 0;
#endif
}

static int use_avx2(void) {
#ifdef HAVE_AVX2_PATH
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    return cached && !rr_rank_portable_forced();
#else
    return 0;
#endif
}

static void scan_tile(tile_acc *a, const float *buf, size_t S, int32_t j0, int with_rank) {
#ifdef HAVE_AVX2_PATH
    if (use_avx512()) {
        scan_avx512(a, buf, S, j0, with_rank);
        return;
    }
    if (use_avx2()) {
        scan_avx2(a, buf, S, j0, with_rank);
        return;
    }
#endif
    if (with_rank) scan_plain(a, buf, S, j0, 1);
    else scan_plain(a, buf, S, j0, 0);
}

/* Everything a thread needs to run its item range. */
typedef struct fz_ctx {
    const rr_fused_job *job;
    rr_fused_scratch *s;
    size_t n_tiles, S, P;
    size_t chunk, n_chunks;  /* items per chunk (a multiple of 12), chunks */
    size_t next;             /* next chunk to take (atomic) */
    const rr_screen *scr;    /* screened path when not NULL */
    size_t C;                /* candidate list capacity (screened) */
} fz_ctx;

/* Clears thread t's accumulators for n sessions. */
static void thread_reset(const fz_ctx *c, int t) {
    fz_thread *th = &c->s->th[t];
    const size_t n = c->job->n;
    for (size_t l = 0; l < c->n_tiles * T; l++) {
        th->thr[l] = l < n ? -INFINITY : INFINITY; /* pad lanes never enter a list */
        th->ng[l] = th->ne[l] = 0;
    }
    memset(th->cnt, 0, n * sizeof *th->cnt);
    th->n_exact_rank = th->n_exact_top = 0;
    if (c->scr) memset(th->bn, 0, n * sizeof *th->bn);
    if (c->scr) {
        memcpy(th->lthr, th->thr, c->n_tiles * T * sizeof *th->lthr);
        memset(th->lcnt, 0, n * sizeof *th->lcnt);
        memset(th->ccnt, 0, n * sizeof *th->ccnt);
    }
}

static void run_items_screened(const fz_ctx *c, int t, size_t a, size_t b);
static void flush_all(const fz_ctx *c, int t);

/* Items a .. b-1 for every session, into thread t's accumulators. */
static void run_items(const fz_ctx *c, int t, size_t a, size_t b) {
    const rr_fused_job *job = c->job;
    const rr_head *h = job->h;
    fz_thread *th = &c->s->th[t];
    const size_t n = job->n, k = job->k, D = h->D;
    const int with_rank = job->target != NULL;
    for (size_t p0 = 0; p0 < c->n_tiles; p0 += c->P) {
        size_t p1 = p0 + c->P < c->n_tiles ? p0 + c->P : c->n_tiles;
        for (size_t j0 = a; j0 < b; j0 += c->S) {
            size_t j1 = b - j0 < c->S ? b : j0 + c->S;
            for (size_t tl = p0; tl < p1; tl++) {
                size_t r0 = tl * T, nt = n - r0 < T ? n - r0 : T;
                rr_head_score_tile(h, c->s->hp + tl * D * T, nt, j0, j1, th->buf);
                if (job->seen)
                    for (size_t i = 0; i < nt; i++) {
                        const int32_t *sv = job->seen[r0 + i];
                        for (size_t q = 0; q < job->n_seen[r0 + i]; q++)
                            if ((size_t)sv[q] >= j0 && (size_t)sv[q] < j1)
                                th->buf[((size_t)sv[q] - j0) * T + i] = -INFINITY;
                    }
                tile_acc acc = {th, r0, k, r0, c->s->tvec + r0};
                scan_tile(&acc, th->buf, j1 - j0, (int32_t)j0, with_rank);
            }
        }
    }
}

/* Thread t takes chunks until none is left; chunks come out of the counter
 * in increasing order, so each thread sees its items in increasing order. */
static void run_thread(fz_ctx *c, int t) {
    for (;;) {
        size_t ch;
#pragma omp atomic capture
        ch = c->next++;
        if (ch >= c->n_chunks) break;
        size_t a = ch * c->chunk, b = c->job->h->N - a < c->chunk ? c->job->h->N : a + c->chunk;
        if (c->scr) run_items_screened(c, t, a, b);
        else run_items(c, t, a, b);
    }
    if (c->scr) flush_all(c, t);
}

/* ---- Screened ranking (nn/screen.h).
 * The tile kernel gives every (session, item) a screen score Y with a
 * rigorous bound Delta on |x - Y|, x the exact score (the value
 * rr_head_score_one returns, bit for bit).  Rank counts: an item with
 * fl(Y - t) > Delta is above the target's exact score t, one with
 * fl(t - Y) > Delta below it; only the rest (the uncertain band) is
 * rescored exactly, and counted as the unfused scan counts it.
 * Top-k: L is a lower bound on the k-th best exact score of the thread's
 * items, the larger of the k-th best exact score in the thread's list and
 * the k-th best lower bound fma(-2, Delta, Y) seen so far (k items score at
 * least that much).  An item with fl(L - Y) > Delta scores below L, so
 * below the k-th best: it is in no top list.  The others are held as
 * candidates (item, Y, Delta), in increasing item order; when the buffer
 * fills it is filtered with the L of that moment, and at the end of the
 * thread's items the survivors are rescored exactly, in order, and go
 * through the same strict insertion as the unfused scan.  The exact list
 * is then the top-k of a superset of the true top-k taken in index order:
 * the unfused scan's list, ties included.  Deferring the rescoring until L
 * has risen keeps it to about k items per session and thread, instead of
 * the k ln(N / k) insertions a running threshold would make. */

static int64_t stat_screened, stat_rank, stat_top; /* rr_fused_screen_stats */

void rr_fused_screen_stats(size_t *pairs, size_t *rank_rescored, size_t *top_rescored, int reset) {
    int64_t a, b, c;
#pragma omp atomic read
    a = stat_screened;
#pragma omp atomic read
    b = stat_rank;
#pragma omp atomic read
    c = stat_top;
    if (pairs) *pairs = (size_t)a;
    if (rank_rescored) *rank_rescored = (size_t)b;
    if (top_rescored) *top_rescored = (size_t)c;
    if (reset) {
#pragma omp atomic write
        stat_screened = 0;
#pragma omp atomic write
        stat_rank = 0;
#pragma omp atomic write
        stat_top = 0;
    }
}

/* Exact scores come from rr_head_score_items (rr_head_score_one's bits);
 * a screen score of -inf marks an excluded item (screen scores are finite
 * otherwise, screen.h), whose exact score is -inf. */

/* Rescores session r's candidates that L does not rule out, in order,
 * into its exact top list. */
static void flush_session(const fz_ctx *c, fz_thread *th, size_t r) {
    const size_t k = c->job->k, C = c->C;
    const size_t m = th->ccnt[r];
    int32_t jb[BATCH];
    size_t qb[BATCH];
    float x[BATCH];
    for (size_t q = 0; q < m;) {
        /* the next BATCH candidates the current L leaves, scored at once */
        size_t nb = 0;
        for (; q < m && nb < BATCH; q++)
            if (!(th->lthr[r] - th->cy[r * C + q] > th->cd[r * C + q])) {
                qb[nb] = q;
                jb[nb++] = th->cj[r * C + q];
            }
        rr_head_score_items(c->job->h, c->job->vecs[r], jb, nb, x);
        th->n_exact_top += nb;
        for (size_t i = 0; i < nb; i++) {
            float xi = th->cy[r * C + qb[i]] == -INFINITY ? -INFINITY : x[i]; /* excluded */
            if (xi > th->thr[r]) {
                rr_top_insert(th->ts + r * k, th->ti + r * k, &th->cnt[r], k, xi, jb[i]);
                if (th->cnt[r] == k) {
                    th->thr[r] = th->ts[r * k + k - 1];
                    if (th->thr[r] > th->lthr[r]) th->lthr[r] = th->thr[r];
                }
            }
        }
    }
    th->ccnt[r] = 0;
}

static void band_flush(const fz_ctx *c, fz_thread *th, size_t r);

/* The end of a thread's items: the waiting band items and candidates. */
static void flush_all(const fz_ctx *c, int t) {
    fz_thread *th = &c->s->th[t];
    for (size_t r = 0; r < c->job->n; r++) {
        if (c->job->target) band_flush(c, th, r);
        flush_session(c, th, r);
    }
}

/* Inserts v (known to beat the k-th entry) into a list sorted best first. */
static void lb_insert(float *ls, size_t *cnt, size_t k, float v) {
    size_t p = *cnt < k ? *cnt : k;
    while (p > 0 && ls[p - 1] < v) p--;
    if (*cnt < k) (*cnt)++;
    if (*cnt - 1 > p) memmove(ls + p + 1, ls + p, (*cnt - 1 - p) * sizeof *ls);
    ls[p] = v;
}

/* Item j passed session r's L test with screen score y and bound dl: its
 * lower bound may raise L (unless add_lb is 0: the seed already counted
 * it; a list of k bounds must hold k distinct items), and it joins the
 * candidates. */
static void candidate(const fz_ctx *c, fz_thread *th, size_t r, int32_t j, float y, float dl, int add_lb) {
    const size_t k = c->job->k, C = c->C;
    float lb = fmaf(-2.0f, dl, y);
    float lbk = th->lcnt[r] == k ? th->lbs[r * k + k - 1] : -INFINITY;
    if (add_lb && lb > lbk) {
        lb_insert(th->lbs + r * k, &th->lcnt[r], k, lb);
        if (th->lcnt[r] == k && th->lbs[r * k + k - 1] > th->lthr[r]) th->lthr[r] = th->lbs[r * k + k - 1];
    }
    if (th->ccnt[r] == C) {
        /* full: drop what the current L rules out; flush if that frees
         * too little */
        size_t w = 0;
        for (size_t q = 0; q < C; q++) {
            float qy = th->cy[r * C + q], qd = th->cd[r * C + q];
            if (th->lthr[r] - qy > qd) continue;
            th->cj[r * C + w] = th->cj[r * C + q];
            th->cy[r * C + w] = qy;
            th->cd[r * C + w++] = qd;
        }
        th->ccnt[r] = w;
        if (w > C / 2) flush_session(c, th, r);
    }
    size_t q = th->ccnt[r]++;
    th->cj[r * C + q] = j;
    th->cy[r * C + q] = y;
    th->cd[r * C + q] = dl;
}

/* Counts session r's waiting rank-band items with their exact scores. */
static void band_flush(const fz_ctx *c, fz_thread *th, size_t r) {
    float x[BATCH];
    size_t nb = th->bn[r];
    if (!nb) return;
    const int32_t *jb = th->bj + r * BATCH;
    rr_head_score_items(c->job->h, c->job->vecs[r], jb, nb, x);
    const float t = c->s->tvec[r];
    size_t g = 0, e = 0;
    for (size_t i = 0; i < nb; i++) {
        g += x[i] > t;
        e += x[i] == t;
    }
    th->ng[r] += g;
    th->ne[r] += e;
    th->n_exact_rank += nb;
    th->bn[r] = 0;
}

/* A rank-band pair (session r, item j, screen score y): its exact score
 * decides, BATCH items of a session at a time.  An excluded item (y = -inf)
 * scores -inf exactly: counted here. */
static inline void band_item(const fz_ctx *c, fz_thread *th, size_t r, int32_t j, float y) {
    if (y == -INFINITY) {
        float t = c->s->tvec[r];
        th->ng[r] += -INFINITY > t;
        th->ne[r] += -INFINITY == t;
        return;
    }
    th->bj[r * BATCH + th->bn[r]++] = j;
    if (th->bn[r] == BATCH) band_flush(c, th, r);
}

/* The screened scan of one tile's slice (lanes r0 .. r0+nt-1), portable. */
static void scan_screened_plain(const fz_ctx *c, fz_thread *th, const rr_screen_lanes *ln, size_t r0, size_t nt,
                                const float *buf, size_t S, size_t j0, int with_rank, int add_lb) {
    const rr_screen *sc = c->scr;
    const float *tv = c->s->tvec + r0;
    for (size_t jj = 0; jj < S; jj++) {
        int32_t j = (int32_t)(j0 + jj);
        for (size_t i = 0; i < nt; i++) {
            size_t r = r0 + i;
            float y = buf[jj * T + i], dl = rr_screen_delta(sc, ln, i, (size_t)j);
            if (with_rank && !isnan(tv[i])) {
                float d = y - tv[i];
                if (d > dl) th->ng[r]++;
                else if (!(fabsf(d) > dl)) band_item(c, th, r, j, y); /* NaN: band */
            }
            if (!(th->lthr[r] - y > dl)) candidate(c, th, r, j, y, dl, add_lb);
        }
    }
}

#ifdef HAVE_AVX2_PATH
/* The same with the 16 lanes in one register: the bound, both rank
 * compares and the L test are vector operations; the band and the
 * candidates (a few per thousand items) leave the register. */
__attribute__((target("avx512f"))) static void scan_screened_avx512(const fz_ctx *c, fz_thread *th,
                                                                   const rr_screen_lanes *ln, size_t r0, size_t nt,
                                                                   const float *buf, size_t S, size_t j0,
                                                                   int with_rank, int add_lb) {
    const rr_screen *sc = c->scr;
    const float *tvp = c->s->tvec + r0;
    float *Lp = th->lthr + r0;
    const __m512 av = _mm512_loadu_ps(ln->a), cv = _mm512_loadu_ps(ln->c);
    const __m512 tv = _mm512_loadu_ps(tvp);
    const __m512i one = _mm512_set1_epi32(1);
    const __mmask16 vmask = (__mmask16)(nt >= T ? 0xffffu : (1u << nt) - 1u);
    const __mmask16 rmask = with_rank ? (__mmask16)(vmask & _mm512_cmp_ps_mask(tv, tv, _CMP_ORD_Q)) : 0;
    __m512 Lv = _mm512_loadu_ps(Lp);
    __m512i g = _mm512_setzero_si512();
    float ys[T], ds[T];
    for (size_t jj = 0; jj < S; jj++) {
        size_t j = j0 + jj;
        __m512 y = _mm512_load_ps(buf + jj * T);
        __m512 dl = _mm512_fmadd_ps(av, _mm512_set1_ps(sc->rho[j]),
                                    _mm512_fmadd_ps(cv, _mm512_set1_ps(sc->rn[j]), _mm512_set1_ps(sc->beta[j])));
        if (rmask) {
            /* above: d > Delta; band: not |d| > Delta (true on NaN) */
            __m512 d = _mm512_sub_ps(y, tv);
            __mmask16 above = _mm512_mask_cmp_ps_mask(rmask, d, dl, _CMP_GT_OQ);
            g = _mm512_mask_add_epi32(g, above, g, one);
            unsigned band = _mm512_mask_cmp_ps_mask(rmask, _mm512_abs_ps(d), dl, _CMP_NGT_UQ);
            if (RR_UNLIKELY(band)) {
                _mm512_storeu_ps(ys, y);
                while (band) {
                    unsigned i = (unsigned)__builtin_ctz(band);
                    band &= band - 1;
                    band_item(c, th, r0 + i, (int32_t)j, ys[i]);
                }
            }
        }
        unsigned keep = _mm512_mask_cmp_ps_mask(vmask, _mm512_sub_ps(Lv, y), dl, _CMP_NGT_UQ);
        if (RR_UNLIKELY(keep)) {
            _mm512_storeu_ps(ys, y);
            _mm512_storeu_ps(ds, dl);
            while (keep) {
                unsigned i = (unsigned)__builtin_ctz(keep);
                keep &= keep - 1;
                candidate(c, th, r0 + i, (int32_t)j, ys[i], ds[i], add_lb);
            }
            Lv = _mm512_loadu_ps(Lp);
        }
    }
    if (rmask) {
        int32_t lg[T];
        _mm512_storeu_si512(lg, g);
        for (size_t i = 0; i < nt; i++) th->ng[r0 + i] += (size_t)(uint32_t)lg[i];
    }
}
#endif

#ifdef HAVE_AVX2_PATH
/* Before a thread's first scan of a tile: the lower bounds of the whole
 * slice go into the sessions' lists first, so L starts at the slice's k-th
 * best lower bound and the scan pushes about k candidates per session
 * instead of the k ln(S / k) a rising threshold admits. */
__attribute__((target("avx512f"))) static void seed_screened_avx512(const fz_ctx *c, fz_thread *th,
                                                                   const rr_screen_lanes *ln, size_t r0, size_t nt,
                                                                   const float *buf, size_t S, size_t j0) {
    const rr_screen *sc = c->scr;
    const size_t k = c->job->k;
    const __m512 av = _mm512_loadu_ps(ln->a), cv = _mm512_loadu_ps(ln->c), m2 = _mm512_set1_ps(-2.0f);
    const __mmask16 vmask = (__mmask16)(nt >= T ? 0xffffu : (1u << nt) - 1u);
    float lk[T], lb[T];
    for (size_t i = 0; i < T; i++) lk[i] = i < nt && th->lcnt[r0 + i] == k ? th->lbs[(r0 + i) * k + k - 1] : -INFINITY;
    __m512 lkv = _mm512_loadu_ps(lk);
    for (size_t jj = 0; jj < S; jj++) {
        size_t j = j0 + jj;
        __m512 y = _mm512_load_ps(buf + jj * T);
        __m512 dl = _mm512_fmadd_ps(av, _mm512_set1_ps(sc->rho[j]),
                                    _mm512_fmadd_ps(cv, _mm512_set1_ps(sc->rn[j]), _mm512_set1_ps(sc->beta[j])));
        __m512 l = _mm512_fmadd_ps(m2, dl, y);
        unsigned hit = _mm512_mask_cmp_ps_mask(vmask, l, lkv, _CMP_GT_OQ);
        if (RR_UNLIKELY(hit)) {
            _mm512_storeu_ps(lb, l);
            while (hit) {
                unsigned i = (unsigned)__builtin_ctz(hit);
                hit &= hit - 1;
                size_t r = r0 + i;
                lb_insert(th->lbs + r * k, &th->lcnt[r], k, lb[i]);
                if (th->lcnt[r] == k) lk[i] = th->lbs[r * k + k - 1];
            }
            lkv = _mm512_loadu_ps(lk);
        }
    }
    for (size_t i = 0; i < nt; i++)
        if (lk[i] > th->lthr[r0 + i]) th->lthr[r0 + i] = lk[i];
}
#endif

/* run_items for the screened path: the same loops, the screen kernel. */
static void run_items_screened(const fz_ctx *c, int t, size_t a, size_t b) {
    const rr_fused_job *job = c->job;
    const rr_screen *sc = c->scr;
    fz_thread *th = &c->s->th[t];
    const size_t n = job->n, nw = sc->nw;
    const int with_rank = job->target != NULL;
    for (size_t p0 = 0; p0 < c->n_tiles; p0 += c->P) {
        size_t p1 = p0 + c->P < c->n_tiles ? p0 + c->P : c->n_tiles;
        for (size_t j0 = a; j0 < b; j0 += c->S) {
            size_t j1 = b - j0 < c->S ? b : j0 + c->S;
            for (size_t tl = p0; tl < p1; tl++) {
                size_t r0 = tl * T, nt = n - r0 < T ? n - r0 : T;
                const rr_screen_lanes *ln = &c->s->lanes[tl];
                rr_screen_tile(sc, c->s->hq + tl * nw * T, ln, j0, j1, th->buf);
                if (job->seen)
                    for (size_t i = 0; i < nt; i++) {
                        const int32_t *sv = job->seen[r0 + i];
                        for (size_t q = 0; q < job->n_seen[r0 + i]; q++)
                            if ((size_t)sv[q] >= j0 && (size_t)sv[q] < j1)
                                th->buf[((size_t)sv[q] - j0) * T + i] = -INFINITY;
                    }
#ifdef HAVE_AVX2_PATH
                if (use_avx512()) {
                    int seed = th->lcnt[r0] == 0;
                    if (seed) seed_screened_avx512(c, th, ln, r0, nt, th->buf, j1 - j0, j0);
                    scan_screened_avx512(c, th, ln, r0, nt, th->buf, j1 - j0, j0, with_rank, !seed);
                    continue;
                }
#endif
                scan_screened_plain(c, th, ln, r0, nt, th->buf, j1 - j0, j0, with_rank, 1);
            }
        }
    }
}

/* out = the best k of two lists ordered by (score desc, index asc), in the
 * same order.  Scores are never NaN here. */
static size_t merge2(const float *xs, const int32_t *xi, size_t nx, const float *ys, const int32_t *yi, size_t ny,
                     size_t k, float *os, int32_t *oi) {
    size_t a = 0, b = 0, o = 0;
    while (o < k && (a < nx || b < ny)) {
        if (b >= ny || (a < nx && (xs[a] > ys[b] || (xs[a] == ys[b] && xi[a] < yi[b])))) {
            os[o] = xs[a];
            oi[o++] = xi[a++];
        } else {
            os[o] = ys[b];
            oi[o++] = yi[b++];
        }
    }
    return o;
}

rr_status rr_fused_rank(const rr_fused_job *job, rr_fused_scratch **scratch, rr_fused_out *out, rr_error *err) {
    return rr_fused_rank_screened(job, NULL, scratch, out, err);
}

rr_status rr_fused_rank_screened(const rr_fused_job *job, const rr_screen *scr, rr_fused_scratch **scratch,
                                 rr_fused_out *out, rr_error *err) {
    const rr_head *h = job->h;
    const size_t n = job->n, N = h->N, D = h->D, k = job->k;
    if (n == 0) return RR_OK;
    if (k < 1 || k > N || D < 1) return rr_err(err, RR_ERR_ARG, "fused ranking: k %zu of %zu items", k, N);
    for (size_t i = 0; job->target && i < n; i++)
        if (job->target[i] < 0 || (size_t)job->target[i] >= N)
            return rr_err(err, RR_ERR_ARG, "fused ranking: target %d of row %zu is not an item", (int)job->target[i], i);
    /* Threads split the items; below ~4M multiply-adds one thread is
     * quicker than waking a team. */
    int nt = job->threads < 1 ? 1 : job->threads;
    if (nt > MAX_THREADS) nt = MAX_THREADS;
    double work = (double)n * (double)N * (double)D;
    if (work < 4e6) nt = 1;
    if ((size_t)nt > N / 64) nt = (int)(N / 64) ? (int)(N / 64) : 1;
    /* Slices: ~192 KB of the table (S rows of D floats) stays in L2 while
     * the panel's tiles are scored against it; panels of ~256 KB of packed
     * vectors. */
    size_t S = (192u << 10) / (D * sizeof(float));
    S = S / 12 * 12;
    if (S < 48) S = 48;
    if (S > 1020) S = 1020;
    size_t P = (256u << 10) / (D * T * sizeof(float));
    if (P < 1) P = 1;
    if (P > 16) P = 16;
    /* The screen needs a linear head (the bound is on the raw score), the
     * table it was built from, and a top list short enough to merge on the
     * stack. */
    if (scr && (h->act != RR_ACT_LINEAR || scr->N != N || scr->D != D || scr->b != h->b ||
                k > RR_FUSED_MERGE_MAX || !rr_screen_supported()))
        scr = NULL;
    rr_status st = scratch_reserve(scratch, n, k, D, S, nt, err);
    if (st) return st;
    rr_fused_scratch *s = *scratch;
    const size_t C = 2 * k + 64;
    if (scr && (st = screen_reserve(s, n, k, C, scr->nw, nt, err))) return st;
    fz_ctx c;
    c.job = job;
    c.s = s;
    c.n_tiles = (n + T - 1) / T;
    c.S = S;
    c.P = P;
    /* about 8 chunks per thread, each a few slices long */
    size_t chunk = nt > 1 ? (N + 8 * (size_t)nt - 1) / (8 * (size_t)nt) : N;
    if (nt > 1 && chunk < S) chunk = S;
    chunk = (chunk + 11) / 12 * 12;
    c.chunk = chunk;
    c.n_chunks = (N + chunk - 1) / chunk;
    c.next = 0;
    c.scr = scr;
    c.C = C;
    for (size_t tl = 0; tl < c.n_tiles; tl++) {
        size_t r0 = tl * T, m = n - r0 < T ? n - r0 : T;
        if (scr) rr_screen_pack(scr, s->hq + tl * scr->nw * T, &s->lanes[tl], job->vecs + r0, m);
        else rr_head_pack(h, s->hp + tl * D * T, job->vecs + r0, m);
    }
    for (size_t l = 0; l < c.n_tiles * T; l++) s->tvec[l] = NAN;
    if (job->target)
        for (size_t i = 0; i < n; i++) {
            float v = rr_head_score_one(h, job->vecs[i], job->target[i]);
            if (job->seen)
                for (size_t q = 0; q < job->n_seen[i]; q++)
                    if (job->seen[i][q] == job->target[i]) v = -INFINITY;
            s->tvec[i] = v;
            out->tscore[i] = v;
        }
    /* every thread's accumulators start cleared, in case the runtime
     * starts fewer threads than asked */
    for (int t = 0; t < nt; t++) thread_reset(&c, t);
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
#ifdef _OPENMP
            run_thread(&c, omp_get_thread_num());
#else
            run_thread(&c, 0);
#endif
        }
    } else {
        run_thread(&c, 0);
    }
    if (scr) {
        int64_t nr = 0, ntp = 0;
        for (int t = 0; t < nt; t++) {
            nr += (int64_t)s->th[t].n_exact_rank;
            ntp += (int64_t)s->th[t].n_exact_top;
        }
#pragma omp atomic
        stat_screened += (int64_t)(n * N);
#pragma omp atomic
        stat_rank += nr;
#pragma omp atomic
        stat_top += ntp;
    }
    /* Merge the threads' results. */
    for (size_t i = 0; i < n; i++) {
        fz_thread *t0 = &s->th[0];
        float *os = out->tops + i * k;
        int32_t *oi = out->top + i * k;
        size_t cnt = t0->cnt[i];
        memcpy(os, t0->ts + i * k, cnt * sizeof *os);
        memcpy(oi, t0->ti + i * k, cnt * sizeof *oi);
        size_t ng = t0->ng[i], ne = t0->ne[i];
        for (int t = 1; t < nt; t++) {
            fz_thread *tt = &s->th[t];
            float ms[RR_FUSED_MERGE_MAX];
            int32_t mi[RR_FUSED_MERGE_MAX];
            if (k <= RR_FUSED_MERGE_MAX) {
                cnt = merge2(os, oi, cnt, tt->ts + i * k, tt->ti + i * k, tt->cnt[i], k, ms, mi);
                memcpy(os, ms, cnt * sizeof *os);
                memcpy(oi, mi, cnt * sizeof *oi);
            } else {
                /* large k: merge through thread 0's list storage, free now */
                float *xs = t0->ts + i * k;
                int32_t *xi = t0->ti + i * k;
                memcpy(xs, os, cnt * sizeof *xs);
                memcpy(xi, oi, cnt * sizeof *xi);
                cnt = merge2(xs, xi, cnt, tt->ts + i * k, tt->ti + i * k, tt->cnt[i], k, os, oi);
            }
            ng += tt->ng[i];
            ne += tt->ne[i];
        }
        out->ntop[i] = cnt;
        if (job->target) {
            out->ng[i] = ng;
            out->ne[i] = ne;
        }
    }
    return RR_OK;
}
