/* dist.h - data-parallel training and evaluation over MPI (dist.c, built
 * only with -DRR_MPI=ON, which defines RR_HAVE_MPI).
 *
 * One model, P processes (ranks) of MPI_COMM_WORLD, every rank holding the
 * same parameters at every step.  Per training step each rank computes the
 * gradients of its own rows (its share of the sessions), then
 * rr_dist_step_exchange combines them:
 *   1. an allgather of a fixed header per rank (row counts, loss sum);
 *   2. an allgatherv of each rank's touched item rows: row indices and row
 *      gradients (Wy rows and their By entries, E/X1 rows), merged on every
 *      rank in rank order, so all ranks build the bit-identical combined
 *      list (duplicates summed, the same additions in the same order);
 *   3. one allreduce (sum) over the flat dense-gradient blob.
 * Or, selected by rr_dist_xchg_set_owners, step 2 goes through the rows'
 * owners (alltoallv to rank i % P, owner merge, allgatherv of the owners'
 * lists), with the same combined list bit for bit.
 * With two ranks all three are one allgather of fixed-size blocks (header,
 * rows, dense blob, padded to the largest block; the blob summed in rank
 * order): the same bytes within a few per cent, one collective per step.
 * When step 1 finds every rank out of rows, steps 2 and 3 are skipped:
 * that is how the ranks learn together that the epoch is over.
 * docs/distributed.md gives the bytes per step and what that means for
 * scaling.
 *
 * Without MPI every function below is an inline one-process equivalent (a
 * no-op or a copy) and rr_dist_world() is NULL, so callers write
 * `if (d) ...` and the single-process build carries neither MPI nor any
 * cost. */
#ifndef RR_DIST_H
#define RR_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rnnrec.h"

/* Evaluation across processes (implemented in eval/evaluate.c, which
 * knows nothing of MPI): this process ranks the test sessions i with
 * i % size == rank, and the partial results are combined with gather
 * (every process's `bytes`, concatenated in rank order into all, on every
 * process) and min_u32 (element-wise minimum over the processes, in
 * place).  Both return 0 on success. */
typedef struct rr_eval_split {
    int rank, size;
    const void *user;
    int (*gather)(const void *user, const void *mine, size_t bytes, void *all);
    int (*min_u32)(const void *user, uint32_t *x, size_t n);
} rr_eval_split;

/* rr_evaluate over this process's share (split NULL: all of it); every
 * process gets the results of the whole test set, exactly those of a
 * single-process run (the sums are exact).  Collective when split. */
rr_status rr_evaluate_split(const rr_model *m, const rr_dataset *test, const rr_eval_params *p,
                            const rr_eval_split *split, rr_eval_result *res, rr_error *err);

/* The world: NULL unless MPI is initialised with more than one rank. */
typedef struct rr_dist rr_dist;

/* One rank's (or, after the exchange, every rank's combined) touched item
 * rows of a step.  Views, owned by whoever filled them. */
typedef struct rr_dist_rows {
    size_t nU, nUb, nE;   /* Wy rows, of them output rows (with By), E/X1 rows */
    int32_t *urows;       /* (nU) Wy row indices, output rows first */
    float *gU;            /* (nU, wU) their gradients */
    float *gB;            /* (nUb) By gradients of the output rows */
    int32_t *erows;       /* (nE) E/X1 row indices */
    float *gE;            /* (nE, wE) their gradients */
} rr_dist_rows;

/* Per-step traffic, summed over the steps since the counters were zeroed:
 * payload bytes this rank put into collectives and took out of them. */
typedef struct rr_dist_traffic {
    uint64_t steps;
    uint64_t hdr_bytes;     /* step 1: P headers received */
    uint64_t rows_sent;     /* step 2: this rank's record block */
    uint64_t rows_recv;     /* step 2: the other ranks' blocks */
    uint64_t rows_union;    /* combined Wy + E rows after the merge */
    uint64_t rows_local;    /* this rank's Wy + E rows before it */
    uint64_t dense_bytes;   /* step 3: the blob (n_dense floats) */
    uint64_t pad_bytes;     /* two ranks: everything received in the one
                             * padded allgather (header, rows, dense, padding) */
    /* the owner exchange (rr_dist_xchg_set_owners); there rows_sent is
     * a2a_sent plus this rank's combined list, rows_recv a2a_recv plus
     * gath_recv */
    uint64_t owner_steps;   /* steps that used it */
    uint64_t cnt_bytes;     /* the alltoall of record counts and the
                             * allgather of list sizes (P x 12 B each) */
    uint64_t a2a_sent;      /* records sent to the other owners */
    uint64_t a2a_recv;      /* records received from the other ranks */
    uint64_t gath_recv;     /* the other owners' combined lists */
    double seconds;         /* wall time inside the exchange */
} rr_dist_traffic;

/* Exchange buffers of one training run, sized once. */
typedef struct rr_dist_xchg rr_dist_xchg;

#ifdef RR_HAVE_MPI

rr_dist *rr_dist_world(void);
int rr_dist_rank(const rr_dist *d);
int rr_dist_size(const rr_dist *d);

/* max_rows: the most Wy rows (and, separately, E rows) one rank's step can
 * touch; wU, wE: floats per Wy / E row; n_items: rows of the tables;
 * n_dense: floats of the dense gradient blob. */
rr_status rr_dist_xchg_new(rr_dist_xchg **out, const rr_dist *d, size_t max_rows, size_t max_erows, size_t wU,
                           size_t wE, size_t n_items, size_t n_dense, rr_error *err);
void rr_dist_xchg_free(rr_dist_xchg *x);
/* on (1): combine the touched rows at their owners instead of the allgather
 * (row i is owned by rank i % P; records go to the owners by alltoallv, the
 * owners' combined lists come back by allgatherv, dense gradients by
 * allreduce).  The combined list is bit-identical to the allgather's, so
 * the choice changes only traffic and time (docs/distributed.md).  off
 * (0): back to the allgather.  -1: the allgather at two ranks, the owners
 * from three.  Call it on every rank alike. */
rr_status rr_dist_xchg_set_owners(rr_dist_xchg *x, int on, rr_error *err);

/* One step's combination.  mine: this rank's rows (nothing when it has no
 * rows left); gdense (n_dense): this rank's dense gradients, summed over
 * the ranks in place; *loss_sum, *rows: this rank's loss sum and row count
 * in, the sums over the ranks out.  *all is set to views of the combined
 * rows, valid until the next call; when *rows comes out 0 nothing else was
 * exchanged (gdense untouched, *all empty).  Collective: every rank calls it every
 * step, in the same order. */
rr_status rr_dist_step_exchange(rr_dist_xchg *x, const rr_dist_rows *mine, float *gdense, size_t n_dense,
                                double *loss_sum, uint64_t *rows, rr_dist_rows *all, rr_error *err);
void rr_dist_traffic_get(const rr_dist_xchg *x, rr_dist_traffic *t);
void rr_dist_traffic_reset(rr_dist_xchg *x);

/* Sums v (n) over the ranks in place (doubles, rank order). */
rr_status rr_dist_sum_f64(const rr_dist *d, double *v, size_t n, rr_error *err);
/* Sum of v over the ranks (exact). */
uint64_t rr_dist_sum_u64(const rr_dist *d, uint64_t v);
/* Logical OR of flag over the ranks. */
int rr_dist_any(const rr_dist *d, int flag);
/* Fails (RR_ERR_INTERNAL, naming the ranks) unless every rank passes the
 * same value; `what` names it in the message. */
rr_status rr_dist_check_same(const rr_dist *d, uint64_t v, const char *what, rr_error *err);
/* Copies n bytes from rank 0 to every rank. */
rr_status rr_dist_bcast(const rr_dist *d, void *buf, size_t n, rr_error *err);
/* Gathers every rank's n bytes to rank 0 (all: P * n bytes there, unused
 * elsewhere), and the reverse: rank r gets bytes [r n, (r + 1) n) of all. */
rr_status rr_dist_gather(const rr_dist *d, const void *mine, size_t n, void *all, rr_error *err);
rr_status rr_dist_scatter(const rr_dist *d, const void *all, size_t n, void *mine, rr_error *err);
/* Fills *s so that rr_evaluate_split ranks this rank's share of the test
 * sessions and combines the metric sums over the ranks. */
void rr_dist_eval_split(const rr_dist *d, rr_eval_split *s);

#else /* no MPI: the world is one process; nothing below is ever reached */

static inline rr_dist *rr_dist_world(void) { return NULL; }
static inline int rr_dist_rank(const rr_dist *d) { (void)d; return 0; }
static inline int rr_dist_size(const rr_dist *d) { (void)d; return 1; }
static inline rr_status rr_dist_xchg_new(rr_dist_xchg **out, const rr_dist *d, size_t max_rows, size_t max_erows,
                                         size_t wU, size_t wE, size_t n_items, size_t n_dense, rr_error *err) {
    (void)d, (void)max_rows, (void)max_erows, (void)wU, (void)wE, (void)n_items, (void)n_dense, (void)err;
    *out = NULL;
    return RR_ERR_UNSUPPORTED;
}
static inline void rr_dist_xchg_free(rr_dist_xchg *x) { (void)x; }
static inline rr_status rr_dist_xchg_set_owners(rr_dist_xchg *x, int on, rr_error *err) {
    (void)x, (void)on, (void)err;
    return RR_OK;
}
static inline rr_status rr_dist_step_exchange(rr_dist_xchg *x, const rr_dist_rows *mine, float *gdense,
                                              size_t n_dense, double *loss_sum, uint64_t *rows, rr_dist_rows *all,
                                              rr_error *err) {
    (void)x, (void)gdense, (void)n_dense, (void)loss_sum, (void)rows, (void)err;
    *all = *mine;
    return RR_OK;
}
static inline rr_status rr_dist_sum_f64(const rr_dist *d, double *v, size_t n, rr_error *err) {
    (void)d, (void)v, (void)n, (void)err;
    return RR_OK;
}
static inline uint64_t rr_dist_sum_u64(const rr_dist *d, uint64_t v) { (void)d; return v; }
static inline int rr_dist_any(const rr_dist *d, int flag) { (void)d; return flag; }
static inline rr_status rr_dist_check_same(const rr_dist *d, uint64_t v, const char *what, rr_error *err) {
    (void)d, (void)v, (void)what, (void)err;
    return RR_OK;
}
static inline rr_status rr_dist_bcast(const rr_dist *d, void *buf, size_t n, rr_error *err) {
    (void)d, (void)buf, (void)n, (void)err;
    return RR_OK;
}
static inline rr_status rr_dist_gather(const rr_dist *d, const void *mine, size_t n, void *all, rr_error *err) {
    (void)d, (void)err;
    if (n) memcpy(all, mine, n);
    return RR_OK;
}
static inline rr_status rr_dist_scatter(const rr_dist *d, const void *all, size_t n, void *mine, rr_error *err) {
    (void)d, (void)err;
    if (n) memcpy(mine, all, n);
    return RR_OK;
}
static inline void rr_dist_traffic_get(const rr_dist_xchg *x, rr_dist_traffic *t) {
    (void)x;
    memset(t, 0, sizeof *t);
}
static inline void rr_dist_eval_split(const rr_dist *d, rr_eval_split *s) {
    (void)d;
    s->rank = 0;
    s->size = 1; /* rr_evaluate_split then ranks everything itself */
    s->user = NULL;
    s->gather = NULL;
    s->min_u32 = NULL;
}

#endif /* RR_HAVE_MPI */

#endif /* RR_DIST_H */
