/* rank.c - counting a target's rank and selecting the top-k of a full
 * catalogue score row, without sorting.
 *
 * Rank: one vectorised pass counts the items scoring strictly above the
 * target (n_greater) and equal to it (n_equal); the tie modes are formulas
 * of the two (evaluate.c).  Top-k: threshold selection.  The k best so far
 * sit in a small array sorted best first; the threshold is the k-th best
 * score (or -inf while fewer than k are held), and an item enters only if
 * it scores strictly above it.  Items arrive in index order, so "strictly
 * above" also breaks ties by the lower index.  The row is walked in chunks
 * of CHUNK floats: a vectorised test says whether any item of the chunk
 * beats the threshold, and only such chunks are looked at item by item.
 * After the first few chunks the threshold is high and nearly every chunk
 * is rejected by that one test.  -inf (excluded items) never passes the
 * strict test, and NaN never compares true.  On x86-64 CPUs with AVX2 (checked
 * at run time) the chunk tests use 8-wide intrinsics; elsewhere fixed-length
 * loops the compiler vectorises for the baseline ISA. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

#define CHUNK 64


/* Looks at a chunk item by item once its vector test said some item beats
 * the threshold; returns the new threshold. */
static inline float chunk_insert(const float *r, size_t len, size_t j0, float thr, size_t k, size_t *cnt,
                                 int32_t *ti, float *ts) {
    for (size_t j = 0; j < len; j++) {
        if (!(r[j] > thr)) continue;
        rr_top_insert(ts, ti, cnt, k, r[j], (int32_t)(j0 + j));
        if (*cnt == k) thr = ts[k - 1];
    }
    return thr;
}

/* Portable pass: fixed-length chunks that the compiler vectorises for the
 * baseline ISA; with_rank is a constant at each call site. */
static inline size_t scan_plain(const float *row, size_t n, float t, int with_rank, size_t k, size_t *ng,
                                size_t *ne, int32_t *ti, float *ts) {
    size_t g = 0, e = 0, cnt = 0;
    float thr = -INFINITY;
    for (size_t j0 = 0; j0 < n; j0 += CHUNK) {
        const float *r = row + j0;
        size_t len = n - j0 < CHUNK ? n - j0 : CHUNK;
        int gg = 0, ee = 0, any = 0;
        if (len == CHUNK) {
            for (int j = 0; j < CHUNK; j++) {
                if (with_rank) {
                    gg += r[j] > t;
                    ee += r[j] == t;
                }
                any |= r[j] > thr;
            }
        } else {
            for (size_t j = 0; j < len; j++) {
                if (with_rank) {
                    gg += r[j] > t;
                    ee += r[j] == t;
                }
                any |= r[j] > thr;
            }
        }
        g += (size_t)gg;
        e += (size_t)ee;
        if (any) thr = chunk_insert(r, len, j0, thr, k, &cnt, ti, ts);
    }
    if (with_rank) {
        *ng = g;
        *ne = e;
    }
    return cnt;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
/* The same pass with 8-wide compares; counts stay in int32 lanes (at most
 * n/8 each, and n < 2^31).  _CMP_*_OQ are false for NaN, as C's are. */
__attribute__((target("avx2"))) static size_t scan_avx2(const float *row, size_t n, float t, int with_rank,
                                                          size_t k, size_t *ng, size_t *ne, int32_t *ti,
                                                          float *ts) {
    size_t cnt = 0, j0 = 0;
    float thr = -INFINITY;
    const __m256 vt = _mm256_set1_ps(t);
    __m256i vg = _mm256_setzero_si256(), ve = _mm256_setzero_si256();
    for (; j0 + CHUNK <= n; j0 += CHUNK) {
        const float *r = row + j0;
        const __m256 vthr = _mm256_set1_ps(thr);
        __m256 any = _mm256_setzero_ps();
        for (int j = 0; j < CHUNK; j += 8) {
            __m256 x = _mm256_loadu_ps(r + j);
            if (with_rank) {
                vg = _mm256_sub_epi32(vg, _mm256_castps_si256(_mm256_cmp_ps(x, vt, _CMP_GT_OQ)));
                ve = _mm256_sub_epi32(ve, _mm256_castps_si256(_mm256_cmp_ps(x, vt, _CMP_EQ_OQ)));
            }
            any = _mm256_or_ps(any, _mm256_cmp_ps(x, vthr, _CMP_GT_OQ));
        }
        if (_mm256_movemask_ps(any)) thr = chunk_insert(r, CHUNK, j0, thr, k, &cnt, ti, ts);
    }
    size_t g = 0, e = 0;
    if (with_rank) {
        int32_t lg[8], le[8];
        _mm256_storeu_si256((__m256i *)lg, vg);
        _mm256_storeu_si256((__m256i *)le, ve);
        for (int i = 0; i < 8; i++) {
            g += (size_t)(uint32_t)lg[i];
            e += (size_t)(uint32_t)le[i];
        }
    }
    for (size_t j = j0; j < n; j++) { /* the tail, under CHUNK items */
        if (with_rank) {
            g += row[j] > t;
            e += row[j] == t;
        }
        if (row[j] > thr) {
            rr_top_insert(ts, ti, &cnt, k, row[j], (int32_t)j);
            if (cnt == k) thr = ts[k - 1];
        }
    }
    if (with_rank) {
        *ng = g;
        *ne = e;
    }
    return cnt;
}
#endif

static int force_portable;

void rr_rank_force_portable(int on) { force_portable = on; }
int rr_rank_portable_forced(void) { return force_portable; }

static int use_avx2(void) {
#ifdef HAVE_AVX2_PATH
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    return cached && !force_portable;
#else
    return 0;
#endif
}

static size_t scan(const float *row, size_t n, float t, int with_rank, size_t k, size_t *ng, size_t *ne,
                   int32_t *ti, float *ts) {
#ifdef HAVE_AVX2_PATH
    if (use_avx2()) return scan_avx2(row, n, t, with_rank, k, ng, ne, ti, ts);
#endif
    if (with_rank) return scan_plain(row, n, t, 1, k, ng, ne, ti, ts);
    return scan_plain(row, n, t, 0, k, ng, ne, ti, ts);
}

void rr_rank_count(const float *scores, size_t n, float target, size_t *n_greater, size_t *n_equal) {
    int32_t ti[1];
    float ts[1];
    /* k = 1: the top-1 costs one compare per item next to the counts */
    if (n) scan(scores, n, target, 1, 1, n_greater, n_equal, ti, ts);
    else *n_greater = *n_equal = 0;
}

size_t rr_rank_scan(const float *scores, size_t n, float target, size_t k, size_t *n_greater, size_t *n_equal,
                    int32_t *top_idx, float *top_score) {
    return scan(scores, n, target, 1, k, n_greater, n_equal, top_idx, top_score);
}

void rr_topk(const float *scores, size_t n, size_t k, int32_t *out_idx, float *out_score) {
    if (k == 0) return;
    /* The selection needs the scores; without out_score they go to a small
     * stack buffer, or the heap for a large k. */
    float tmp[256], *heap = NULL, *ts = out_score;
    if (!ts && k <= sizeof tmp / sizeof tmp[0]) ts = tmp;
    if (!ts) ts = heap = malloc(k * sizeof *heap);
    size_t c = 0;
    if (ts) c = scan(scores, n, 0, 0, k, NULL, NULL, out_idx, ts);
    for (size_t i = c; i < k; i++) {
        out_idx[i] = -1;
        if (out_score) out_score[i] = -INFINITY;
    }
    free(heap);
}
