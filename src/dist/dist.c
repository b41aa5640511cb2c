/* dist.c - the MPI layer of data-parallel training and evaluation (see
 * dist.h for the step's three collectives).
 *
 * Determinism: every rank must hold bit-identical parameters after every
 * step.  The row gradients are therefore not reduced by MPI (whose
 * reduction order is the library's business) but gathered whole: every
 * rank receives the same concatenation of all ranks' blocks and merges it
 * with the same loop, so the same floats are added in the same order
 * everywhere.  With two ranks the dense blob rides in that gather and is
 * summed in rank order too.  With more it goes through MPI_Allreduce: a float sum is
 * commutative, and Open MPI's allreduce algorithms (recursive doubling,
 * ring, reduce + broadcast) combine the same operands in the same tree on
 * every rank; the trainer checks a parameter checksum across the ranks at
 * every epoch end, so a library that did otherwise would be caught, not
 * silently diverge.
 *
 * MPI errors use the default MPI_ERRORS_ARE_FATAL handler: a failed call,
 * or a rank that dies, ends the whole job (mpirun names the rank), never a
 * hang.  Message sizes are counted in 4-byte words and checked against
 * INT_MAX once, when the buffers are sized. */
#include "dist/dist.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

struct rr_dist {
    int rank, size;
};

static rr_dist world;

rr_dist *rr_dist_world(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) return NULL;
    if (!world.size) {
        MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
        MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    }
    return world.size > 1 ? &world : NULL;
}

int rr_dist_rank(const rr_dist *d) { return d ? d->rank : 0; }
int rr_dist_size(const rr_dist *d) { return d ? d->size : 1; }

/* ---- the step exchange */

/* Step 1's record of one rank. */
typedef struct xhdr {
    uint64_t nU, nUb, nE, rows;
    double loss;
} xhdr;

struct rr_dist_xchg {
    const rr_dist *d;
    int P;
    size_t wU, wE, n_items, max_rows, max_erows;
    size_t block_words;      /* the largest block one rank may send */
    int dense_in_gather;     /* P = 2: the dense blob rides in the gather */
    int padded;              /* P = 2: one allgather of fixed-size blocks, header inside */
    size_t stride;           /* padded: words per rank (header + largest block) */
    size_t n_dense;
    xhdr *hdr;               /* (P) */
    int *counts, *displs;    /* (P) words of each rank's block, its offset */
    uint32_t *recv;          /* (P, block_words) the blocks, back to back */
    int32_t *map;            /* (n_items) row -> combined position, -1 */
    int32_t *urows, *erows;  /* (P max_rows), (P max_erows) combined rows */
    float *gU, *gB, *gE;     /* (P max_rows, wU), (P max_rows), (P max_erows, wE) */
    rr_dist_traffic tr;
    /* owner exchange (rr_dist_xchg_set_owners): row i is combined by rank
     * i % P, then the owners' lists are allgathered */
    int owners;
    size_t own_words;        /* the largest record set one rank sends */
    uint32_t *ocnt, *icnt;   /* (P, 3) records to / from each rank: output Wy, other Wy, E */
    uint32_t *gcnt;          /* (P, 3) each owner's combined rows: Wy, of them output, E */
    int *sc, *sd, *rc, *rd;  /* (P) alltoallv words and offsets, sent / received */
    uint32_t *osend;         /* (own_words) this rank's records, by owner */
    uint32_t *orecv;         /* (P own_words) the records this rank owns */
    uint32_t *ogath;         /* (P own_words) every owner's combined list */
    uint32_t *okU, *okE;     /* (P max_rows), (P max_erows) first-appearance keys */
    size_t *head;            /* (P) merge positions */
};

void rr_dist_xchg_free(rr_dist_xchg *x) {
    if (!x) return;
    free(x->hdr);
    free(x->counts);
    free(x->displs);
    rr_free_aligned(x->recv);
    free(x->map);
    free(x->urows);
    free(x->erows);
    rr_free_aligned(x->gU);
    free(x->gB);
    rr_free_aligned(x->gE);
    free(x->ocnt);
    free(x->icnt);
    free(x->gcnt);
    free(x->sc);
    free(x->sd);
    free(x->rc);
    free(x->rd);
    rr_free_aligned(x->osend);
    rr_free_aligned(x->orecv);
    rr_free_aligned(x->ogath);
    free(x->okU);
    free(x->okE);
    free(x->head);
    free(x);
}

rr_status rr_dist_xchg_new(rr_dist_xchg **out, const rr_dist *d, size_t max_rows, size_t max_erows, size_t wU,
                           size_t wE, size_t n_items, size_t n_dense, rr_error *err) {
    *out = NULL;
    if (!d) return rr_err(err, RR_ERR_ARG, "rr_dist_xchg_new: no MPI world");
    const size_t P = (size_t)d->size;
    /* Two ranks: each receives the other's blob whole (n_dense floats, what
     * a ring allreduce moves too, 2 (P - 1) / P n_dense), one collective
     * fewer per step.  More ranks: the allreduce (its volume stays ~2
     * n_dense while a gather's grows as P - 1). */
    const int fold = P == 2;
    /* Two ranks also skip the header round: every block is sent at its
     * largest size with the header in front, one collective per step.  With
     * S samples the rows are near their bound (2B + S), so the padding is a
     * few per cent; at more ranks the P - 1 padded blocks would cost more
     * than the round saves. */
    const size_t hw = (sizeof(xhdr) + 3) / 4;
    /* block words: urows + gB + gU (max_rows (2 + wU)), erows + gE
     * (max_erows (1 + wE)), the dense blob when folded */
    size_t a, b, words, total, cu, ce;
    bool ok = rr_add_size(wU, 2, &a) && rr_mul_size(max_rows, a, &a) && rr_add_size(wE, 1, &b) &&
              rr_mul_size(max_erows, b, &b) && rr_add_size(a, b, &words) &&
              rr_add_size(words, fold ? n_dense + hw : 0, &words) && rr_mul_size(words, P, &total) &&
              total <= (size_t)INT_MAX && rr_mul_size(max_rows, P, &cu) && rr_mul_size(max_erows, P, &ce) &&
              rr_mul_size(cu, wU, &a) && rr_mul_size(ce, wE, &b) && rr_mul_size(a, sizeof(float), &a) &&
              rr_mul_size(b, sizeof(float), &b);
    if (!ok)
        return rr_err(err, RR_ERR_NOMEM,
                      "distributed step: %zu ranks x %zu rows of %zu floats do not fit one MPI message", P,
                      max_rows, wU);
    rr_dist_xchg *x = calloc(1, sizeof *x);
    if (!x) return rr_err(err, RR_ERR_NOMEM, "out of memory for the distributed exchange");
    x->d = d;
    x->P = d->size;
    x->wU = wU;
    x->wE = wE;
    x->n_items = n_items;
    x->max_rows = max_rows;
    x->max_erows = max_erows;
    x->block_words = words;
    x->dense_in_gather = fold;
    x->padded = fold;
    x->stride = words;
    x->n_dense = n_dense;
    x->hdr = rr_malloc_n(P, sizeof *x->hdr);
    x->counts = rr_malloc_n(P, sizeof *x->counts);
    x->displs = rr_malloc_n(P, sizeof *x->displs);
    x->recv = rr_alloc_aligned(total ? total * sizeof(uint32_t) : 64);
    x->map = rr_malloc_n(n_items ? n_items : 1, sizeof *x->map);
    x->urows = rr_malloc_n(cu ? cu : 1, sizeof *x->urows);
    x->erows = rr_malloc_n(ce ? ce : 1, sizeof *x->erows);
    x->gU = rr_alloc_aligned(a ? a : 64);
    x->gB = rr_malloc_n(cu ? cu : 1, sizeof *x->gB);
    x->gE = rr_alloc_aligned(b ? b : 64);
    if (!x->hdr || !x->counts || !x->displs || !x->recv || !x->map || !x->urows || !x->erows || !x->gU ||
        !x->gB || !x->gE) {
        rr_dist_xchg_free(x);
        return rr_err(err, RR_ERR_NOMEM, "out of memory for the distributed exchange (%zu ranks, %zu rows)", P,
                      max_rows);
    }
    for (size_t i = 0; i < n_items; i++) x->map[i] = -1;
    *out = x;
    return RR_OK;
}

void rr_dist_traffic_get(const rr_dist_xchg *x, rr_dist_traffic *t) { *t = x->tr; }
void rr_dist_traffic_reset(rr_dist_xchg *x) { memset(&x->tr, 0, sizeof x->tr); }

rr_status rr_dist_xchg_set_owners(rr_dist_xchg *x, int on, rr_error *err) {
    const size_t P = (size_t)x->P;
    /* auto: at two ranks the padded allgather is one collective and moves
     * about the owners' bytes; from three the owners move fewer
     * (docs/distributed.md, measured at 2 and 4 ranks) */
    if (on < 0) on = P > 2;
    if (!on) {
        x->owners = 0;
        x->padded = x->dense_in_gather = x->P == 2;
        return RR_OK;
    }
    /* records: output Wy rows pos | row | gB | g (3 + wU words), other Wy
     * rows and E rows pos | row | g; the keys 2 P max_rows and P max_erows
     * must fit 32 bits, every buffer INT_MAX words */
    size_t a, b, words, total, ku, ke;
    bool ok = rr_add_size(x->wU, 3, &a) && rr_mul_size(x->max_rows, a, &a) && rr_add_size(x->wE, 2, &b) &&
              rr_mul_size(x->max_erows, b, &b) && rr_add_size(a, b, &words) && rr_mul_size(words, P, &total) &&
              total <= (size_t)INT_MAX && rr_mul_size(x->max_rows, 2 * P, &ku) && ku <= UINT32_MAX &&
              rr_mul_size(x->max_erows, P, &ke) && ke <= UINT32_MAX;
    if (!ok)
        return rr_err(err, RR_ERR_NOMEM,
                      "distributed step (owners): %zu ranks x %zu rows of %zu floats do not fit one MPI message", P,
                      x->max_rows, x->wU);
    if (!x->osend) {
        x->ocnt = rr_malloc_n(3 * P, sizeof *x->ocnt);
        x->icnt = rr_malloc_n(3 * P, sizeof *x->icnt);
        x->gcnt = rr_malloc_n(3 * P, sizeof *x->gcnt);
        x->sc = rr_malloc_n(P, sizeof *x->sc);
        x->sd = rr_malloc_n(P, sizeof *x->sd);
        x->rc = rr_malloc_n(P, sizeof *x->rc);
        x->rd = rr_malloc_n(P, sizeof *x->rd);
        x->osend = rr_alloc_aligned(words ? words * sizeof(uint32_t) : 64);
        x->orecv = rr_alloc_aligned(total ? total * sizeof(uint32_t) : 64);
        x->ogath = rr_alloc_aligned(total ? total * sizeof(uint32_t) : 64);
        x->okU = rr_malloc_n(ku / 2 ? ku / 2 : 1, sizeof *x->okU);
        x->okE = rr_malloc_n(ke ? ke : 1, sizeof *x->okE);
        x->head = rr_malloc_n(3 * P, sizeof *x->head);
        if (!x->ocnt || !x->icnt || !x->gcnt || !x->sc || !x->sd || !x->rc || !x->rd || !x->osend || !x->orecv ||
            !x->ogath || !x->okU || !x->okE || !x->head)
            return rr_err(err, RR_ERR_NOMEM, "out of memory for the distributed owner exchange (%zu ranks)", P);
    }
    x->own_words = words;
    x->owners = 1;
    x->padded = x->dense_in_gather = 0; /* headers on their own, dense by allreduce */
    return RR_OK;
}

static size_t block_words(const rr_dist_xchg *x, const xhdr *h) {
    return (size_t)(h->nU * (2 + x->wU) + h->nE * (1 + x->wE) - (h->nU - h->nUb)) +
           (x->dense_in_gather ? x->n_dense : 0);
}

/* One rank's block: urows (nU) | gB (nUb) | gU (nU, wU) | erows (nE) |
 * gE (nE, wE) [| dense (n_dense), folded]. */
static void pack(const rr_dist_xchg *x, uint32_t *w, const rr_dist_rows *r, const float *dense) {
    memcpy(w, r->urows, r->nU * sizeof *w);
    w += r->nU;
    memcpy(w, r->gB, r->nUb * sizeof *w);
    w += r->nUb;
    memcpy(w, r->gU, r->nU * x->wU * sizeof *w);
    w += r->nU * x->wU;
    memcpy(w, r->erows, r->nE * sizeof *w);
    w += r->nE;
    memcpy(w, r->gE, r->nE * x->wE * sizeof *w);
    w += r->nE * x->wE;
    if (x->dense_in_gather) memcpy(w, dense, x->n_dense * sizeof *w);
}

static void unpack(const rr_dist_xchg *x, const uint32_t *w, const xhdr *h, rr_dist_rows *r) {
    r->nU = (size_t)h->nU;
    r->nUb = (size_t)h->nUb;
    r->nE = (size_t)h->nE;
    r->urows = (int32_t *)(uintptr_t)w;
    w += r->nU;
    r->gB = (float *)(uintptr_t)w;
    w += r->nUb;
    r->gU = (float *)(uintptr_t)w;
    w += r->nU * x->wU;
    r->erows = (int32_t *)(uintptr_t)w;
    w += r->nE;
    r->gE = (float *)(uintptr_t)w;
}

/* The folded dense blob of a block (after its rows). */
static const float *block_dense(const rr_dist_xchg *x, const uint32_t *w, const xhdr *h) {
    return (const float *)(uintptr_t)(w + block_words(x, h) - x->n_dense);
}

/* Adds row `row` with gradient g (width) (and By gradient *gb when not
 * NULL) to the combined list rows/G/B of *n entries. */
static inline void merge_row(int32_t *map, int32_t *rows, float *G, float *B, size_t *n, size_t width, int32_t row,
                             const float *g, const float *gb) {
    int32_t p = map[row];
    if (p < 0) {
        p = map[row] = (int32_t)(*n)++;
        rows[p] = row;
        memcpy(G + (size_t)p * width, g, width * sizeof *G);
        if (gb) B[p] = *gb;
        return;
    }
    float *d = G + (size_t)p * width;
#pragma omp simd
    for (size_t j = 0; j < width; j++) d[j] += g[j];
    if (gb) B[p] += *gb;
}

/* Adds a record's row to the owner's list like merge_row, keeping the key
 * of its first appearance in okey. */
static inline void own_row(rr_dist_xchg *x, int32_t *rows, float *G, float *B, uint32_t *okey, size_t *n,
                           size_t width, int32_t row, const float *g, const float *gb, uint32_t key) {
    const size_t before = *n;
    merge_row(x->map, rows, G, B, n, width, row, g, gb);
    if (*n > before) okey[before] = key;
}

/* Steps 2 and 3 of the owner exchange (the headers are done).  Row i is
 * owned by rank i % P: every rank sends each touched row, as a record
 * (position | row | [gB] | gradient), to its owner (alltoall of counts,
 * alltoallv of records).  The owner merges the records exactly as the
 * allgather merge does, restricted to its rows: output rows of rank 0, 1,
 * ..., then the other Wy rows, then the E rows, so each row's sum is the
 * same float additions in the same order.  Each combined row carries the
 * key of its first appearance in that order (phase, rank, position).  An
 * allgatherv of the owners' lists, each ascending in key, and a P-way merge
 * by key then give every rank the allgather's combined list, bit for bit. */
static rr_status owners_step(rr_dist_xchg *x, const rr_dist_rows *mine, float *gdense, size_t n_dense,
                             rr_dist_rows *all, rr_error *err) {
    const int P = x->P, me = x->d->rank;
    const size_t Pz = (size_t)P, wU = x->wU, wE = x->wE, ra = 3 + wU, rb = 2 + wU, re = 2 + wE;
    const uint32_t mr = (uint32_t)x->max_rows, me_ = (uint32_t)me;
    /* records per owner: output Wy, other Wy, E */
    memset(x->ocnt, 0, 3 * Pz * sizeof *x->ocnt);
    for (size_t u = 0; u < mine->nU; u++) x->ocnt[(size_t)mine->urows[u] % Pz * 3 + (u < mine->nUb ? 0 : 1)]++;
    for (size_t u = 0; u < mine->nE; u++) x->ocnt[(size_t)mine->erows[u] % Pz * 3 + 2]++;
    size_t off = 0, *cur = x->head;
    for (size_t o = 0; o < Pz; o++) {
        const uint32_t *c = x->ocnt + 3 * o;
        x->sd[o] = (int)off;
        x->sc[o] = (int)(c[0] * ra + c[1] * rb + c[2] * re);
        cur[3 * o] = off;
        cur[3 * o + 1] = off + c[0] * ra;
        cur[3 * o + 2] = cur[3 * o + 1] + c[1] * rb;
        off += (size_t)x->sc[o];
    }
    /* this rank's records, in its own order within each owner's sections */
    for (size_t u = 0; u < mine->nU; u++) {
        const size_t o = (size_t)mine->urows[u] % Pz, out = u < mine->nUb;
        uint32_t *w = x->osend + cur[3 * o + (out ? 0 : 1)];
        w[0] = (uint32_t)u;
        w[1] = (uint32_t)mine->urows[u];
        if (out) memcpy(w + 2, mine->gB + u, sizeof(float));
        memcpy(w + 2 + out, mine->gU + u * wU, wU * sizeof(float));
        cur[3 * o + (out ? 0 : 1)] += out ? ra : rb;
    }
    for (size_t u = 0; u < mine->nE; u++) {
        const size_t o = (size_t)mine->erows[u] % Pz;
        uint32_t *w = x->osend + cur[3 * o + 2];
        w[0] = (uint32_t)u;
        w[1] = (uint32_t)mine->erows[u];
        memcpy(w + 2, mine->gE + u * wE, wE * sizeof(float));
        cur[3 * o + 2] += re;
    }
    const uint64_t a2a_sent = (uint64_t)(off - (size_t)x->sc[me]) * 4;
    MPI_Alltoall(x->ocnt, 3, MPI_UINT32_T, x->icnt, 3, MPI_UINT32_T, MPI_COMM_WORLD);
    size_t roff = 0;
    for (size_t r = 0; r < Pz; r++) {
        const uint32_t *c = x->icnt + 3 * r;
        if (c[0] + c[1] > x->max_rows || c[2] > x->max_erows)
            return rr_err(err, RR_ERR_INTERNAL, "distributed step: rank %zu sent %u rows (at most %zu)", r,
                          c[0] + c[1], x->max_rows);
        x->rd[r] = (int)roff;
        x->rc[r] = (int)(c[0] * ra + c[1] * rb + c[2] * re);
        roff += (size_t)x->rc[r];
    }
    const uint64_t a2a_recv = (uint64_t)(roff - (size_t)x->rc[me]) * 4;
    MPI_Alltoallv(x->osend, x->sc, x->sd, MPI_UINT32_T, x->orecv, x->rc, x->rd, MPI_UINT32_T, MPI_COMM_WORLD);
    /* the owner's merge: output rows by rank, other Wy rows by rank, E rows */
    size_t nU = 0, nE = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (size_t r = 0; r < Pz; r++) {
            const uint32_t *c = x->icnt + 3 * r;
            const uint32_t *w = x->orecv + x->rd[r] + (pass > 0 ? c[0] * ra : 0) + (pass > 1 ? c[1] * rb : 0);
            const size_t step = pass == 0 ? ra : pass == 1 ? rb : re;
            for (uint32_t k = 0; k < c[pass]; k++, w += step) {
                const int32_t row = (int32_t)w[1];
                if (w[1] >= x->n_items || w[1] % Pz != me_ || w[0] >= (pass < 2 ? mr : x->max_erows))
                    return rr_err(err, RR_ERR_INTERNAL, "distributed step: rank %zu sent row %u to rank %d", r,
                                  w[1], me);
                const float *g = (const float *)(uintptr_t)(w + (pass == 0 ? 3 : 2));
                if (pass == 0)
                    own_row(x, x->urows, x->gU, x->gB, x->okU, &nU, wU, row, g,
                            (const float *)(uintptr_t)(w + 2), (uint32_t)r * mr + w[0]);
                else if (pass == 1)
                    own_row(x, x->urows, x->gU, NULL, x->okU, &nU, wU, row, g, NULL,
                            (uint32_t)(Pz + r) * mr + w[0]);
                else
                    own_row(x, x->erows, x->gE, NULL, x->okE, &nE, wE, row, g, NULL,
                            (uint32_t)r * (uint32_t)x->max_erows + w[0]);
            }
            if (pass == 0 && r + 1 == Pz) x->head[0] = nU; /* output rows of this owner */
        }
        if (pass == 1)
            for (size_t u = 0; u < nU; u++) x->map[x->urows[u]] = -1;
    }
    for (size_t u = 0; u < nE; u++) x->map[x->erows[u]] = -1;
    const size_t nUb = x->head[0];
    /* every owner's list: keyU (nU) | urows (nU) | gB (nUb) | gU (nU, wU) |
     * keyE (nE) | erows (nE) | gE (nE, wE) */
    const uint32_t mycnt[3] = {(uint32_t)nU, (uint32_t)nUb, (uint32_t)nE};
    MPI_Allgather(mycnt, 3, MPI_UINT32_T, x->gcnt, 3, MPI_UINT32_T, MPI_COMM_WORLD);
    size_t goff = 0, tU = 0, tUb = 0, tE = 0;
    for (size_t o = 0; o < Pz; o++) {
        const uint32_t *c = x->gcnt + 3 * o;
        x->sd[o] = (int)goff;
        x->sc[o] = (int)(c[0] * (2 + wU) + c[1] + c[2] * re);
        goff += (size_t)x->sc[o];
        tU += c[0];
        tUb += c[1];
        tE += c[2];
    }
    if (tU > Pz * x->max_rows || tE > Pz * x->max_erows || goff > Pz * x->own_words)
        return rr_err(err, RR_ERR_INTERNAL, "distributed step: the owners combined %zu rows (at most %zu)", tU,
                      Pz * x->max_rows);
    uint32_t *w = x->ogath + x->sd[me];
    memcpy(w, x->okU, nU * sizeof *w);
    w += nU;
    memcpy(w, x->urows, nU * sizeof *w);
    w += nU;
    memcpy(w, x->gB, nUb * sizeof *w);
    w += nUb;
    memcpy(w, x->gU, nU * wU * sizeof *w);
    w += nU * wU;
    memcpy(w, x->okE, nE * sizeof *w);
    w += nE;
    memcpy(w, x->erows, nE * sizeof *w);
    w += nE;
    memcpy(w, x->gE, nE * wE * sizeof *w);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x->ogath, x->sc, x->sd, MPI_UINT32_T, MPI_COMM_WORLD);
    /* P-way merge by key: the allgather merge's order */
    for (size_t o = 0; o < Pz; o++) x->head[o] = x->head[Pz + o] = 0;
    for (size_t j = 0; j < tU; j++) {
        size_t best = Pz;
        uint32_t bk = UINT32_MAX;
        for (size_t o = 0; o < Pz; o++) {
            if (x->head[o] >= x->gcnt[3 * o]) continue;
            const uint32_t k = x->ogath[x->sd[o] + x->head[o]];
            if (best == Pz || k < bk) best = o, bk = k;
        }
        const uint32_t *c = x->gcnt + 3 * best, *b = x->ogath + x->sd[best];
        const size_t h = x->head[best]++;
        x->urows[j] = (int32_t)b[c[0] + h];
        if (h < c[1]) memcpy(x->gB + j, b + 2 * c[0] + h, sizeof(float));
        memcpy(x->gU + j * wU, b + 2 * c[0] + c[1] + h * wU, wU * sizeof(float));
    }
    for (size_t j = 0; j < tE; j++) {
        size_t best = Pz;
        uint32_t bk = UINT32_MAX;
        for (size_t o = 0; o < Pz; o++) {
            const uint32_t *c = x->gcnt + 3 * o;
            if (x->head[Pz + o] >= c[2]) continue;
            const uint32_t k = x->ogath[x->sd[o] + c[0] * (2 + wU) + c[1] + x->head[Pz + o]];
            if (best == Pz || k < bk) best = o, bk = k;
        }
        const uint32_t *c = x->gcnt + 3 * best;
        const uint32_t *b = x->ogath + x->sd[best] + c[0] * (2 + wU) + c[1];
        const size_t h = x->head[Pz + best]++;
        x->erows[j] = (int32_t)b[c[2] + h];
        memcpy(x->gE + j * wE, b + 2 * c[2] + h * wE, wE * sizeof(float));
    }
    /* dense gradients: the allreduce, as in the allgather exchange */
    if (n_dense) MPI_Allreduce(MPI_IN_PLACE, gdense, (int)n_dense, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    all->nU = tU;
    all->nUb = tUb;
    all->nE = tE;
    all->urows = x->urows;
    all->gU = x->gU;
    all->gB = x->gB;
    all->erows = x->erows;
    all->gE = x->gE;
    const uint64_t own_block = (uint64_t)x->sc[me] * 4, gath_recv = (uint64_t)(goff - (size_t)x->sc[me]) * 4;
    x->tr.steps++;
    x->tr.owner_steps++;
    x->tr.cnt_bytes += (uint64_t)(2 * 3 * 4) * Pz;
    x->tr.a2a_sent += a2a_sent;
    x->tr.a2a_recv += a2a_recv;
    x->tr.gath_recv += gath_recv;
    x->tr.rows_sent += a2a_sent + own_block;
    x->tr.rows_recv += a2a_recv + gath_recv;
    x->tr.rows_union += tU + tE;
    x->tr.rows_local += mine->nU + mine->nE;
    x->tr.dense_bytes += (uint64_t)n_dense * sizeof(float);
    return RR_OK;
}

rr_status rr_dist_step_exchange(rr_dist_xchg *x, const rr_dist_rows *mine, float *gdense, size_t n_dense,
                                double *loss_sum, uint64_t *rows, rr_dist_rows *all, rr_error *err) {
    const double t0 = MPI_Wtime();
    const int P = x->P, me = x->d->rank;
    if (mine->nU > x->max_rows || mine->nE > x->max_erows || mine->nUb > mine->nU || n_dense != x->n_dense ||
        n_dense > (size_t)INT_MAX)
        return rr_err(err, RR_ERR_INTERNAL, "distributed step: %zu rows exceed the exchange's %zu", mine->nU,
                      x->max_rows);
    /* 1. headers (padded: header and block in one allgather) */
    xhdr h = {mine->nU, mine->nUb, mine->nE, *rows, *loss_sum};
    const size_t hw = (sizeof h + 3) / 4;
    if (x->padded) {
        uint32_t *blk = x->recv + (size_t)me * x->stride;
        memcpy(blk, &h, sizeof h);
        pack(x, blk + hw, mine, gdense);
        MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x->recv, (int)x->stride, MPI_UINT32_T, MPI_COMM_WORLD);
        for (int r = 0; r < P; r++) memcpy(&x->hdr[r], x->recv + (size_t)r * x->stride, sizeof h);
    } else {
        MPI_Allgather(&h, (int)sizeof h, MPI_BYTE, x->hdr, (int)sizeof h, MPI_BYTE, MPI_COMM_WORLD);
    }
    size_t off = 0;
    double loss = 0;
    uint64_t nrows = 0;
    for (int r = 0; r < P; r++) {
        const xhdr *q = &x->hdr[r];
        if (q->nU > x->max_rows || q->nE > x->max_erows || q->nUb > q->nU)
            return rr_err(err, RR_ERR_INTERNAL, "distributed step: rank %d sent %llu rows (at most %zu)", r,
                          (unsigned long long)q->nU, x->max_rows);
        x->counts[r] = (int)block_words(x, q);
        x->displs[r] = x->padded ? (int)((size_t)r * x->stride + hw) : (int)off;
        off += (size_t)x->counts[r];
        loss += q->loss;     /* rank order: the same sum everywhere */
        nrows += q->rows;
    }
    *loss_sum = loss;
    *rows = nrows;
    x->tr.hdr_bytes += (uint64_t)P * sizeof h;
    if (nrows == 0) {
        /* every rank is out of rows: the epoch is over, nothing to combine */
        memset(all, 0, sizeof *all);
        x->tr.seconds += MPI_Wtime() - t0;
        return RR_OK;
    }
    if (x->owners) {
        rr_status s = owners_step(x, mine, gdense, n_dense, all, err);
        x->tr.seconds += MPI_Wtime() - t0;
        return s;
    }
    /* 2. row blocks: this rank's packed in place, then everyone's */
    if (!x->padded) {
        pack(x, x->recv + x->displs[me], mine, gdense);
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x->recv, x->counts, x->displs, MPI_UINT32_T,
                       MPI_COMM_WORLD);
    }
    /* merge: output rows of every rank (rank order), then the input-only
     * Wy rows, then the E/X1 rows */
    size_t nU = 0, nE = 0;
    for (int r = 0; r < P; r++) {
        rr_dist_rows b;
        unpack(x, x->recv + x->displs[r], &x->hdr[r], &b);
        for (size_t u = 0; u < b.nUb; u++)
            merge_row(x->map, x->urows, x->gU, x->gB, &nU, x->wU, b.urows[u], b.gU + u * x->wU, b.gB + u);
    }
    const size_t nUb = nU;
    for (int r = 0; r < P; r++) {
        rr_dist_rows b;
        unpack(x, x->recv + x->displs[r], &x->hdr[r], &b);
        for (size_t u = b.nUb; u < b.nU; u++)
            merge_row(x->map, x->urows, x->gU, NULL, &nU, x->wU, b.urows[u], b.gU + u * x->wU, NULL);
    }
    for (size_t u = 0; u < nU; u++) x->map[x->urows[u]] = -1;
    for (int r = 0; r < P; r++) {
        rr_dist_rows b;
        unpack(x, x->recv + x->displs[r], &x->hdr[r], &b);
        for (size_t u = 0; u < b.nE; u++)
            merge_row(x->map, x->erows, x->gE, NULL, &nE, x->wE, b.erows[u], b.gE + u * x->wE, NULL);
    }
    for (size_t u = 0; u < nE; u++) x->map[x->erows[u]] = -1;
    /* 3. the dense blob: summed in rank order from the gathered blocks, or allreduced */
    if (x->dense_in_gather) {
        const float *d0 = block_dense(x, x->recv + x->displs[0], &x->hdr[0]);
        memcpy(gdense, d0, n_dense * sizeof *gdense);
        for (int r = 1; r < P; r++) {
            const float *dr = block_dense(x, x->recv + x->displs[r], &x->hdr[r]);
#pragma omp simd
            for (size_t i = 0; i < n_dense; i++) gdense[i] += dr[i];
        }
    } else if (n_dense) {
        MPI_Allreduce(MPI_IN_PLACE, gdense, (int)n_dense, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }

    all->nU = nU;
    all->nUb = nUb;
    all->nE = nE;
    all->urows = x->urows;
    all->gU = x->gU;
    all->gB = x->gB;
    all->erows = x->erows;
    all->gE = x->gE;
    const uint64_t fold_words = x->dense_in_gather ? (uint64_t)n_dense : 0;
    if (x->padded) x->tr.pad_bytes += (uint64_t)(P - 1) * x->stride * 4;
    x->tr.steps++;
    x->tr.rows_sent += ((uint64_t)x->counts[me] - fold_words) * 4;
    x->tr.rows_recv += ((uint64_t)(off - (size_t)x->counts[me]) - fold_words * (uint64_t)(P - 1)) * 4;
    x->tr.rows_union += nU + nE;
    x->tr.rows_local += mine->nU + mine->nE;
    x->tr.dense_bytes += (uint64_t)n_dense * sizeof(float);
    x->tr.seconds += MPI_Wtime() - t0;
    return RR_OK;
}

/* ---- small collectives */

rr_status rr_dist_sum_f64(const rr_dist *d, double *v, size_t n, rr_error *err) {
    size_t P = (size_t)d->size, tot;
    if (!rr_mul_size(n, P, &tot) || tot > (size_t)INT_MAX / sizeof(double))
        return rr_err(err, RR_ERR_ARG, "rr_dist_sum_f64: %zu values", n);
    double *all = rr_malloc_n(tot ? tot : 1, sizeof *all);
    if (!all) return rr_err(err, RR_ERR_NOMEM, "out of memory summing over ranks");
    MPI_Allgather(v, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, MPI_COMM_WORLD);
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t r = 0; r < P; r++) s += all[r * n + i];
        v[i] = s;
    }
    free(all);
    return RR_OK;
}

uint64_t rr_dist_sum_u64(const rr_dist *d, uint64_t v) {
    (void)d;
    uint64_t out = 0;
    MPI_Allreduce(&v, &out, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    return out;
}

int rr_dist_any(const rr_dist *d, int flag) {
    (void)d;
    int in = flag != 0, out = 0;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    return out;
}

rr_status rr_dist_check_same(const rr_dist *d, uint64_t v, const char *what, rr_error *err) {
    uint64_t *all = rr_malloc_n((size_t)d->size, sizeof *all);
    if (!all) return rr_err(err, RR_ERR_NOMEM, "out of memory comparing ranks");
    MPI_Allgather(&v, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    char bad[256];
    size_t q = 0;
    int n_bad = 0;
    bad[0] = 0;
    for (int r = 1; r < d->size; r++) {
        if (all[r] == all[0]) continue;
        n_bad++;
        if (q < sizeof bad - 32)
            q += (size_t)snprintf(bad + q, sizeof bad - q, "%s%d (%016llx)", n_bad > 1 ? ", " : "", r,
                                  (unsigned long long)all[r]);
    }
    rr_status s = RR_OK;
    if (n_bad)
        s = rr_err(err, RR_ERR_INTERNAL, "%s differs across ranks: rank 0 has %016llx, rank %s", what,
                   (unsigned long long)all[0], bad);
    free(all);
    return s;
}

rr_status rr_dist_bcast(const rr_dist *d, void *buf, size_t n, rr_error *err) {
    (void)d, (void)err;
    unsigned char *p = buf;
    while (n > 0) {
        int c = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        MPI_Bcast(p, c, MPI_BYTE, 0, MPI_COMM_WORLD);
        p += c;
        n -= (size_t)c;
    }
    return RR_OK;
}

rr_status rr_dist_gather(const rr_dist *d, const void *mine, size_t n, void *all, rr_error *err) {
    size_t tot;
    if (n > (size_t)INT_MAX || !rr_mul_size(n, (size_t)d->size, &tot))
        return rr_err(err, RR_ERR_ARG, "rr_dist_gather: %zu bytes per rank", n);
    MPI_Gather(mine, (int)n, MPI_BYTE, all, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
    return RR_OK;
}

rr_status rr_dist_scatter(const rr_dist *d, const void *all, size_t n, void *mine, rr_error *err) {
    size_t tot;
    if (n > (size_t)INT_MAX || !rr_mul_size(n, (size_t)d->size, &tot))
        return rr_err(err, RR_ERR_ARG, "rr_dist_scatter: %zu bytes per rank", n);
    MPI_Scatter(all, (int)n, MPI_BYTE, mine, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
    return RR_OK;
}

/* ---- evaluation */

static int eval_gather(const void *user, const void *mine, size_t bytes, void *all) {
    (void)user;
    if (bytes > (size_t)INT_MAX) return 1;
    return MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD) != MPI_SUCCESS;
}

static int eval_min_u32(const void *user, uint32_t *x, size_t n) {
    (void)user;
    while (n > 0) {
        int c = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        if (MPI_Allreduce(MPI_IN_PLACE, x, c, MPI_UINT32_T, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS) return 1;
        x += c;
        n -= (size_t)c;
    }
    return 0;
}

void rr_dist_eval_split(const rr_dist *d, rr_eval_split *s) {
    s->rank = d ? d->rank : 0;
    s->size = d ? d->size : 1; /* no world: rr_evaluate_split ranks everything */
    s->user = d;
    s->gather = eval_gather;
    s->min_u32 = eval_min_u32;
}
