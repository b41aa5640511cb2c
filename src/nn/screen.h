/* screen.h - a fast approximate score of a linear head with a rigorous
 * error bound per (session, item), so that an exact ranking only needs the
 * exact score of the few items whose bound interval overlaps the one that
 * matters (the target's score, the k-th best score).
 *
 * Scores are s_j = h . w_j + b_j, h a D-vector, w_j row j of an (N, D)
 * table.  Both sides are quantised to 16-bit (or 8-bit) integers with one
 * scale per vector:
 *   w_j = sw_j q_j + w~_j,     h = sh p + h~      (q, p int16; w~, h~ the rest)
 * and the screen score is computed with AVX-512 VNNI (vpdpwssd: int16 pairs
 * multiplied and summed into int32 lanes, no rounding at all):
 *   Y = fl(fl(sh sw_j) * fl(P) + b_j),   P = p . q_j  (exact integer)
 * Scales are chosen so that ||p|| <= 46340 and ||q_j|| <= 46340, so
 * |P| <= ||p|| ||q_j|| < 2^31 (Cauchy-Schwarz): the int32 sum is exact
 * (vpdpwssd wraps modulo 2^32, so partial sums may wrap, the final one
 * cannot).  The quantisation residual is then about sqrt(D / 12) / 46000
 * of the vector's norm (6e-5 at D = 100, 1.4e-4 at D = 512), against
 * ~1.6e-3 for bf16 operands (vdpbf16ps), which run at the same instruction
 * rate on Zen 4 (bench/bench_eval.c measures both): the uncertain band is
 * that much narrower (docs/rnn.md).
 *
 * The 8-bit variant (bits = 8) quantises by the largest component instead:
 * |q_k|, |p_k| <= 127, and vpdpbusd multiplies the session's components,
 * stored offset by 128 as unsigned bytes, with the item's signed ones, four
 * at a time: sum_k (p_k + 128) q_k = P + 128 sum_k q_k, so the kernel
 * subtracts cq_j = 128 sum_k q_k, an exact integer (|P| <= 127^2 D < 2^24
 * for D <= 1040, where fl(P) is also exact).  It issues the same number of
 * instructions for twice the multiply-adds, the table is half the bytes, and
 * the residuals (hence Delta) are some 50 to 100 times larger for
 * Gaussian-like vectors of 100 to 512 components: more items land in the
 * band and are rescored exactly.  Everything below holds for
 * both; the results after rescoring are the same bits.
 *
 * The bound.  Let x_j be the exact score of head.h (an fp32 fma chain over
 * k = 0..D-1, then + b_j; u = 2^-24, gamma_D = D u / (1 - D u)).  With
 *   h^ = sh p,  a = ||h^||,  mu = ||h~||,  n = ||h||,  rho_j = ||w~_j||,
 *   r_j = ||w_j||,
 *   h . w_j = sh sw_j P + h^ . w~_j + h~ . w_j        (exact)
 *   |h^ . w~_j| <= a rho_j,  |h~ . w_j| <= mu r_j     (Cauchy-Schwarz)
 *   |fma chain - h . w_j| <= gamma_D n r_j            (Higham, Accuracy and
 *                                                     Stability, 3.1 / 3.5)
 * and the three roundings of Y and the final rounding of x (each a relative
 * error <= u of a quantity bounded by |Y| and |b_j|), one gets
 *   |x_j - Y_j| <= (1 + 2^-20) [a rho_j + (mu + gamma_D n) r_j
 *                               + 6u |Y_j| + 4u |b_j|] + sigma
 * where sigma = 2^-110 covers gradual underflow (<= 2^-150 per operation).
 * The |Y| term is bounded once more so that Delta does not depend on Y:
 * |Y| <= (1 + 3u)(|sh sw_j P| + |b_j|) and |sh sw_j P| = |h^ . (sw_j q_j)|
 * <= a (r_j + rho_j), so 6u|Y| <= 7u (a r_j + a rho_j + |b_j|) and
 *   |x_j - Y_j| <= (1 + 2^-20) [(1 + 7u) a rho_j + (mu + gamma_D n + 7u a) r_j
 *                               + 11u |b_j|] + sigma.
 * Delta evaluates this in float with every stored factor rounded up by
 * M = 1 + 2^-16, which also absorbs the rounding of Delta's own two fused
 * multiply-adds and of the comparisons that use it:
 *   Delta = fma(a', rho'_j, fma(c', r'_j, beta'_j))
 * Then, for any finite or infinite t:
 *   fl(Y - t) >  Delta   implies  x_j > t
 *   fl(t - Y) >  Delta   implies  x_j < t   (fl(t - Y) = -fl(Y - t))
 *   fma(-2, Delta, Y)    is <= x_j (Delta >= 6u|Y| makes the rounding of
 *                        this one expression smaller than Delta / 5)
 * Every comparison is false on NaN, so a NaN or infinite Delta or Y only
 * ever sends an item to the exact path.  The table is screened only when
 * every weight and bias is finite, r_j <= 2^60 and |b_j| <= 2^60; a session
 * only when h is finite with n <= 2^60 (others get a = inf: no item of such
 * a lane is ever decided by the screen).  Then every exact score is finite
 * and Y is -inf only where a caller wrote -inf (an excluded item). */
#ifndef RR_SCREEN_H
#define RR_SCREEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"

#define RR_SCREEN_TILE 16 /* sessions per tile, one per int32 lane */

typedef struct rr_screen {
    size_t N, D, nw;  /* items, width, nw int32 words per row: ceil(D / 2) int16
                       * pairs (bits 16) or ceil(D / 4) int8 quads (bits 8) */
    int bits;         /* 16 or 8 */
    int32_t *wq;      /* (N, nw) q_j, element 2k (4k) in the low half (byte) of
                       * word k, then upwards; pad 0 */
    int32_t *cq;      /* (N) 128 sum_k q_jk (bits 8; NULL for 16) */
    float *ws;        /* (N) sw_j */
    float *rho;       /* (N) M rho_j */
    float *rn;        /* (N) M r_j */
    float *beta;      /* (N) M (11u |b_j| + sigma) */
    const float *b;   /* (N) the biases (not owned) */
    int32_t *wt;      /* (ceil(N / 16), nw, 16) the same pairs in 16-item blocks,
                       * item-major (rr_screen_add_blocks; NULL until then) */
    double gamma;     /* gamma_D */
} rr_screen;

/* Lane parameters of a packed tile of sessions. */
typedef struct rr_screen_lanes {
    float sh[RR_SCREEN_TILE]; /* scales (0 for pad and unscreened lanes) */
    float a[RR_SCREEN_TILE];  /* M (1 + 7u) ||h^|| (+inf: lane not screened) */
    float c[RR_SCREEN_TILE];  /* M (||h~|| + gamma_D ||h|| + 7u ||h^||) */
} rr_screen_lanes;

/* True when this CPU runs the screen (AVX-512F, AVX-512BW, AVX-512 VNNI);
 * rr_screen_force_off(1) makes it false (testing, not thread-safe). */
bool rr_screen_supported(void);
void rr_screen_force_off(int on);

/* Builds the bits-bit (16 or 8; D <= 1040 for 8, else 16 is used) quantised
 * table of W (N, D) and b (N), which must outlive it.
 * *out is set to NULL (and RR_OK returned) when the table cannot be
 * screened (see above) or the CPU lacks the instructions: callers then use
 * their exact path.  Free with rr_screen_free (NULL is fine). */
rr_status rr_screen_new(rr_screen **out, const float *W, const float *b, size_t N, size_t D, int bits,
                        rr_error *err);
void rr_screen_free(rr_screen *s);

/* hq (nw, RR_SCREEN_TILE) = the n <= RR_SCREEN_TILE vectors vecs[i] (D
 * floats each) quantised, one per lane; lanes from n on are zero. */
void rr_screen_pack(const rr_screen *s, int32_t *hq, rr_screen_lanes *ln, const float *const *vecs, size_t n);

/* Screen scores of items j0 .. j1-1 for a packed tile: out (j1 - j0,
 * RR_SCREEN_TILE), item-major, out[(j - j0) * RR_SCREEN_TILE + i] = Y of
 * session i and item j (b_j in unscreened and pad lanes).  out is 64-byte
 * aligned.  Only when rr_screen_supported(). */
void rr_screen_tile(const rr_screen *s, const int32_t *hq, const rr_screen_lanes *ln, size_t j0, size_t j1,
                    float *out);

/* Adds the 16-item block layout (wt) that rr_screen_items reads: what
 * scoring one session at a time (serving) needs.  Pad items of the last
 * block are zero. */
rr_status rr_screen_add_blocks(rr_screen *s, rr_error *err);

/* Screen scores of items 16 b0 .. 16 b1 - 1 (b1 <= ceil(N / 16)) for one
 * session packed as lane 0 of hq (rr_screen_pack with n = 1): out (16 (b1 -
 * b0)); entries past N are b-less garbage that callers skip.  The same bits
 * as rr_screen_tile's lane 0.  Needs rr_screen_add_blocks. */
void rr_screen_items(const rr_screen *s, const int32_t *hq, const rr_screen_lanes *ln, size_t b0, size_t b1,
                     float *out);

/* Delta of lane i, item j (scalar form of the bound; the same bits as the
 * kernels' vector form). */
float rr_screen_delta(const rr_screen *s, const rr_screen_lanes *ln, size_t i, size_t j);

#endif /* RR_SCREEN_H */
