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
 * strict test, and NaN never compares true. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

#define CHUNK 64

void rr_rank_count(const float *scores, size_t n, float target, size_t *n_greater, size_t *n_equal) {
    size_t g = 0, e = 0;
#pragma omp simd reduction(+ : g, e)
    for (size_t j = 0; j < n; j++) {
        g += (size_t)(scores[j] > target);
        e += (size_t)(scores[j] == target);
    }
    *n_greater = g;
    *n_equal = e;
}

/* Inserts (v, j) into the sorted top list of *cnt entries (capacity k);
 * v is known to beat the current threshold. */
static inline void top_insert(float *ts, int32_t *ti, size_t *cnt, size_t k, float v, int32_t j) {
    size_t p = *cnt < k ? *cnt : k;
    while (p > 0 && ts[p - 1] < v) p--;
    if (*cnt < k) (*cnt)++;
    size_t move = *cnt - 1 - p;
    if (move) {
        memmove(ts + p + 1, ts + p, move * sizeof *ts);
        memmove(ti + p + 1, ti + p, move * sizeof *ti);
    }
    ts[p] = v;
    ti[p] = j;
}

/* The shared pass; with_rank is a constant at each call site. */
static inline size_t scan(const float *row, size_t n, float t, int with_rank, size_t k, size_t *ng, size_t *ne,
                          int32_t *ti, float *ts) {
    size_t g = 0, e = 0, cnt = 0;
    float thr = -INFINITY;
    for (size_t j0 = 0; j0 < n; j0 += CHUNK) {
        size_t len = n - j0 < CHUNK ? n - j0 : CHUNK;
        const float *r = row + j0;
        unsigned gg = 0, ee = 0, any = 0;
        if (with_rank) {
#pragma omp simd reduction(+ : gg, ee) reduction(| : any)
            for (size_t j = 0; j < len; j++) {
                gg += (unsigned)(r[j] > t);
                ee += (unsigned)(r[j] == t);
                any |= (unsigned)(r[j] > thr);
            }
            g += gg;
            e += ee;
        } else {
#pragma omp simd reduction(| : any)
            for (size_t j = 0; j < len; j++) any |= (unsigned)(r[j] > thr);
        }
        if (!any) continue;
        for (size_t j = 0; j < len; j++) {
            if (!(r[j] > thr)) continue;
            top_insert(ts, ti, &cnt, k, r[j], (int32_t)(j0 + j));
            if (cnt == k) thr = ts[k - 1];
        }
    }
    if (with_rank) {
        *ng = g;
        *ne = e;
    }
    return cnt;
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
