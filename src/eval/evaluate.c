/* evaluate.c - the full-catalogue evaluation engine.
 *
 * Protocol (GRU4Rec's, Hidasi et al. 2016; hidasib/GRU4Rec_PyTorch_Official
 * evaluation.py): test events whose item the model does not know are
 * dropped (n_dropped); in what remains of each test session, every event
 * but the first is a target, predicted from the events before it, and
 * ranked against ALL n_items items (no sampled negatives).  With
 * target_last only each session's last event is a target (the earlier ones
 * are still fed).  Ranks, for n_greater items scoring above the target and
 * n_equal scoring equal to it (the target included):
 *   conservative  rank = n_greater + n_equal
 *   standard      rank = n_greater + 1
 *   median        rank = n_greater + (n_equal + 1) / 2   (mean of the two)
 * exclude_seen sets the session's earlier items (the ones fed so far) to
 * -inf before ranking; a target that is itself among them scores -inf and
 * counts as a miss at every cutoff, as does a NaN target score.
 *
 * Metrics at each cutoff K, averaged over targets:
 *   Recall@K = [rank <= K]             (= hit rate; one target per event)
 *   MRR@K    = [rank <= K] / rank
 *   NDCG@K   = [rank <= K] / log2(1 + rank)
 * and over the top-K lists (one per target), as session-rec defines them
 * (Ludewig & Jannach, "Evaluation of session-based recommendation
 * algorithms", UMUAI 28, 2018):
 *   Coverage@K   = |items in any top-K list| / n_items
 *   Popularity@K = mean over lists of the mean of count_j / max_count over
 *                  the list's items (training counts)
 *
 * Engine: session-parallel blocks as in GRU4Rec's batch evaluation.  B slots
 * each hold one test session; every step pushes each slot's current item,
 * advances all recurrent states with one ops->step call, scores the slots
 * that have a target with one ops->score call into a (rows, n_items) block,
 * and gives each row its rank counts and its top-K in one sorting-free pass
 * (rank.c).  Models with a linear head (the RNN kinds, models/head.h)
 * skip the score block: fused.c scores the block's rows a tile by a slice
 * of items at a time and updates ranks and top-K from the cache, with
 * exactly the results of the block path (rr_eval_force_unfused selects
 * that path, for tests).  With a linear final activation the fused path
 * first scores with the quantised screen of nn/screen.h (built once per
 * evaluation) and rescores exactly only the items its error bound cannot
 * place: the same results again, bit for bit.  A slot whose session ends takes the next session.
 * Threads: for recurrent kinds they split each block's items (fused) or
 * rows; for history-only kinds each thread runs its own engine on sessions
 * from a shared queue (see rr_evaluate).  Per-target values are summed in exact 128-bit fixed point
 * (2^-62 units), so the order of summation does not matter: results are
 * identical whatever the thread count or block size.
 *
 * Across processes (rr_evaluate_split, MPI through src/dist/): process r of
 * P ranks the test sessions i with i % P == r; the exact sums, the status
 * and each item's best top-list position are then combined (sums added in
 * rank order, positions by minimum), so every process reports what one
 * process ranking everything would, bit for bit.  Means are taken only
 * after the sums are combined, never averaged per process. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dist/dist.h" /* rr_eval_split (no MPI here: the split's callbacks) */
#include "eval/eval.h"
#include "models/head.h"
#include "models/model.h"
#include "nn/screen.h"
#include "nn/gemm.h"
#include "util/util.h"

#define BLOCK_DEFAULT 256
#define BLOCK_BYTES_MAX ((size_t)64 << 20) /* the (B, n_items) score block */
#define BLOCK_CACHE_BYTES ((size_t)8 << 20)

void rr_eval_params_default(rr_eval_params *p) {
    memset(p, 0, sizeof *p);
    p->ties = RR_TIES_CONSERVATIVE;
    p->target_last = 0;
    p->exclude_seen = 0;
    p->n_cutoffs = 4;
    p->cutoffs[0] = 1;
    p->cutoffs[1] = 5;
    p->cutoffs[2] = 10;
    p->cutoffs[3] = 20;
    p->block = 0;
    p->threads = 0;
}

/* Exact, order-independent sums of values in [0, 1]. */
typedef unsigned __int128 fx_sum;
static inline fx_sum fx(double v) { return (fx_sum)(uint64_t)(v * 0x1p62 + 0.5); }
static inline double fx_mean(fx_sum s, size_t n) { return n ? (double)s * 0x1p-62 / (double)n : 0.0; }

static int force_unfused;

void rr_eval_force_unfused(int on) { force_unfused = on; }

static rr_status check_params(const rr_eval_params *p, rr_error *err) {
    if (p->n_cutoffs < 1 || p->n_cutoffs > RR_MAX_CUTOFFS)
        return rr_err(err, RR_ERR_ARG, "cutoffs: between 1 and %d cutoffs", RR_MAX_CUTOFFS);
    for (size_t i = 0; i < p->n_cutoffs; i++) {
        if (p->cutoffs[i] < 1) return rr_err(err, RR_ERR_ARG, "cutoffs: must be >= 1");
        if (i && p->cutoffs[i] <= p->cutoffs[i - 1]) return rr_err(err, RR_ERR_ARG, "cutoffs: must be ascending");
    }
    if (p->ties != RR_TIES_CONSERVATIVE && p->ties != RR_TIES_STANDARD && p->ties != RR_TIES_MEDIAN)
        return rr_err(err, RR_ERR_ARG, "ties: unknown tie mode %d", (int)p->ties);
    if (p->threads < 0) return rr_err(err, RR_ERR_ARG, "threads: must be >= 0");
    return RR_OK;
}

/* Test sessions in model item indices, unknown items dropped, only those
 * with at least two events left. */
typedef struct eval_sessions {
    size_t n;         /* sessions */
    int64_t *off;     /* (n + 1) */
    int32_t *items;   /* (off[n]) model item indices */
} eval_sessions;

static rr_status build_sessions(const rr_model *m, const rr_dataset *test, eval_sessions *es, size_t *dropped,
                                rr_error *err) {
    memset(es, 0, sizeof *es);
    int32_t *map = NULL;
    rr_status s = rr_dataset_map_items(test, &m->items, &map, err);
    if (s) return s;
    const rr_sessions *ts = &test->s;
    es->off = rr_malloc_n(ts->n_sessions + 1, sizeof *es->off);
    es->items = rr_malloc_n(ts->n_events, sizeof *es->items);
    if (!es->off || !es->items) {
        free(map);
        free(es->off);
        free(es->items);
        return rr_err(err, RR_ERR_NOMEM, "out of memory for the test sessions");
    }
    size_t w = 0, nd = 0;
    es->off[0] = 0;
    for (size_t i = 0; i < ts->n_sessions; i++) {
        size_t start = w;
        for (int64_t e = ts->offsets[i]; e < ts->offsets[i + 1]; e++) {
            int32_t it = map[ts->items[e]];
            if (it < 0) nd++;
            else es->items[w++] = it;
        }
        if (w - start < 2) w = start; /* no target: forget it */
        else es->off[++es->n] = (int64_t)w;
    }
    free(map);
    *dropped = nd;
    return RR_OK;
}

/* Everything the block loop needs, allocated once. */
typedef struct engine {
    size_t B, ni, kmax, nc;
    rr_state **st;      /* (B) slot states */
    size_t *sess, *pos; /* (B) session of each slot (SIZE_MAX: idle), next event to push */
    float **hs;         /* (B) recurrent states to step */
    int32_t *step_items;/* (B) */
    rr_state **rows;    /* (B) states scored this step */
    int32_t *target;    /* (B) */
    float *scores;      /* (B, ni) 64-byte aligned */
    double *rank;       /* (B) rank of each row's target, 0 for a miss */
    int32_t *top;       /* (B, kmax) top items per row */
    float *tops;        /* (B, kmax) their scores */
    size_t *ntop;       /* (B) */
    uint32_t *best_pos; /* (ni) best position of each item in any top list */
    /* fused path (models with a linear head): no score block */
    int fused;
    rr_head head;
    const float **vecs; /* (B) the rows' head vectors */
    const int32_t **seen; /* (B) the rows' items so far */
    size_t *n_seen, *ng, *ne; /* (B) */
    float *tsc;         /* (B) target scores */
    rr_fused_scratch *fz;
    rr_screen *scr;     /* the head's quantised screen (NULL: exact scoring only) */
} engine;

static void engine_free(engine *g) {
    if (g->st)
        for (size_t b = 0; b < g->B; b++) rr_state_free(g->st[b]);
    free(g->st);
    free(g->sess);
    free(g->pos);
    free(g->hs);
    free(g->step_items);
    free(g->rows);
    free(g->target);
    rr_free_aligned(g->scores);
    free(g->rank);
    free(g->top);
    free(g->tops);
    free(g->ntop);
    free(g->best_pos);
    free(g->vecs);
    free(g->seen);
    free(g->n_seen);
    free(g->ng);
    free(g->ne);
    free(g->tsc);
    rr_fused_scratch_free(g->fz);
    rr_screen_free(g->scr);
    memset(g, 0, sizeof *g);
}

static rr_status engine_init(engine *g, const rr_model *m, size_t B, size_t kmax, size_t nc, int fused,
                             rr_error *err) {
    memset(g, 0, sizeof *g);
    g->fused = fused && rr_model_head(m, &g->head);
    g->B = B;
    g->ni = m->n_items;
    g->kmax = kmax;
    g->nc = nc;
    size_t sb;
    int ok = rr_mul_size(B, g->ni, &sb) && rr_mul_size(sb, sizeof(float), &sb);
    if (ok) {
        g->st = rr_calloc_n(B, sizeof *g->st);
        g->sess = rr_malloc_n(B, sizeof *g->sess);
        g->pos = rr_malloc_n(B, sizeof *g->pos);
        g->hs = rr_malloc_n(B, sizeof *g->hs);
        g->step_items = rr_malloc_n(B, sizeof *g->step_items);
        g->rows = rr_malloc_n(B, sizeof *g->rows);
        g->target = rr_malloc_n(B, sizeof *g->target);
        g->scores = g->fused ? NULL : rr_alloc_aligned(sb);
        g->rank = rr_malloc_n(B, sizeof *g->rank);
        g->top = rr_malloc_n(B * kmax, sizeof *g->top);
        g->tops = rr_malloc_n(B * kmax, sizeof *g->tops);
        g->ntop = rr_malloc_n(B, sizeof *g->ntop);
        g->best_pos = rr_malloc_n(g->ni, sizeof *g->best_pos);
        ok = g->st && g->sess && g->pos && g->hs && g->step_items && g->rows && g->target &&
             (g->scores || g->fused) && g->rank && g->top && g->tops && g->ntop && g->best_pos;
        if (ok && g->fused) {
            g->vecs = rr_malloc_n(B, sizeof *g->vecs);
            g->seen = rr_malloc_n(B, sizeof *g->seen);
            g->n_seen = rr_malloc_n(B, sizeof *g->n_seen);
            g->ng = rr_malloc_n(B, sizeof *g->ng);
            g->ne = rr_malloc_n(B, sizeof *g->ne);
            g->tsc = rr_malloc_n(B, sizeof *g->tsc);
            ok = g->vecs && g->seen && g->n_seen && g->ng && g->ne && g->tsc;
            /* built once per evaluation; NULL when the head or the CPU
             * cannot be screened, or no memory is left for it (fused.c
             * then scores exactly).  16 bits: rank counts need every item
             * near the target's score, often mid-catalogue where scores
             * are dense, and 8 bits' wider band sent 5.6 % of the pairs to
             * exact rescoring (0.08 % with 16) and halved the speed
             * (bench_eval, docs/rnn.md) */
            if (ok && g->head.act == RR_ACT_LINEAR &&
                rr_screen_new(&g->scr, g->head.W, g->head.b, g->head.N, g->head.D, 16, NULL) != RR_OK)
                g->scr = NULL;
        }
        for (size_t b = 0; ok && b < B; b++) ok = (g->st[b] = rr_state_new(m)) != NULL;
    }
    if (!ok) {
        engine_free(g);
        return rr_err(err, RR_ERR_NOMEM, "evaluation: out of memory for a block of %zu sessions x %zu items", B,
                      m->n_items);
    }
    for (size_t i = 0; i < g->ni; i++) g->best_pos[i] = UINT32_MAX;
    return RR_OK;
}

static double tie_rank(rr_ties ties, size_t ng, size_t ne) {
    switch (ties) {
    case RR_TIES_STANDARD: return (double)ng + 1.0;
    case RR_TIES_MEDIAN: return (double)ng + 0.5 * ((double)ne + 1.0);
    case RR_TIES_CONSERVATIVE: break;
    }
    return (double)(ng + ne);
}

static void rank_row(engine *g, size_t r, const rr_eval_params *p) {
    const size_t ni = g->ni, kmax = g->kmax;
    float *row = g->scores + r * ni;
    const rr_state *s = g->rows[r];
    if (p->exclude_seen)
        for (size_t t = 0; t < s->n; t++) row[s->items[t]] = -INFINITY;
    float tsc = row[g->target[r]];
    size_t ng = 0, ne = 0;
    g->ntop[r] = rr_rank_scan(row, ni, tsc, kmax, &ng, &ne, g->top + r * kmax, g->tops + r * kmax);
    /* -inf (excluded) and NaN targets are misses. */
    g->rank[r] = tsc > -INFINITY ? tie_rank(p->ties, ng, ne) : 0.0;
}

/* The fused path: scores, ranks and top-K of the block's rows in one pass
 * over the item table, threads splitting the items (eval/fused.c). */
static rr_status rank_rows_fused(engine *g, size_t n_rows, const rr_eval_params *p, int nt, rr_error *err) {
    for (size_t r = 0; r < n_rows; r++) {
        g->vecs[r] = g->rows[r]->h + g->head.off;
        g->seen[r] = g->rows[r]->items;
        g->n_seen[r] = g->rows[r]->n;
    }
    rr_fused_job job = {&g->head, g->vecs, n_rows, g->target, p->exclude_seen ? g->seen : NULL, g->n_seen,
                        g->kmax, nt};
    rr_fused_out out = {g->tsc, g->ng, g->ne, g->top, g->tops, g->ntop};
    rr_status s = rr_fused_rank_screened(&job, g->scr, &g->fz, &out, err);
    if (s) return s;
    for (size_t r = 0; r < n_rows; r++)
        g->rank[r] = g->tsc[r] > -INFINITY ? tie_rank(p->ties, g->ng[r], g->ne[r]) : 0.0;
    return RR_OK;
}

/* Rank and top-K of each scored row; rows are independent, so threads may
 * split them and every value lands in its row's slot.  Without threads no
 * OpenMP construct is entered at all (a nested team of one still costs a
 * fork and a barrier per block). */
static void rank_rows(engine *g, size_t n_rows, const rr_eval_params *p, int nt) {
    /* below ~256k scores a block is too little work to hand to threads */
    if (nt > 1 && n_rows > 1 && n_rows * g->ni >= ((size_t)1 << 18)) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t r = 0; r < n_rows; r++) rank_row(g, r, p);
    } else {
        for (size_t r = 0; r < n_rows; r++) rank_row(g, r, p);
    }
}

typedef struct sums {
    size_t n_targets;
    fx_sum recall[RR_MAX_CUTOFFS], mrr[RR_MAX_CUTOFFS], ndcg[RR_MAX_CUTOFFS], pop[RR_MAX_CUTOFFS];
} sums;

static void accumulate(engine *g, size_t n_rows, const rr_eval_params *p, const double *pop_share, sums *sm) {
    for (size_t r = 0; r < n_rows; r++) {
        double rank = g->rank[r];
        for (size_t c = 0; c < p->n_cutoffs; c++) {
            if (rank > 0 && rank <= (double)p->cutoffs[c]) {
                sm->recall[c] += fx(1.0);
                sm->mrr[c] += fx(1.0 / rank);
                sm->ndcg[c] += fx(1.0 / log2(1.0 + rank));
            }
        }
        /* Popularity: prefix sums of the list's count shares. */
        const int32_t *top = g->top + r * g->kmax;
        size_t nt = g->ntop[r], c = 0;
        double cum = 0;
        for (size_t j = 0; j <= nt && c < p->n_cutoffs; j++) {
            while (c < p->n_cutoffs && (j == nt || j == p->cutoffs[c])) {
                sm->pop[c] += j ? fx(cum / (double)j) : 0;
                c++;
            }
            if (j < nt) cum += pop_share[top[j]];
        }
        for (size_t j = 0; j < nt; j++)
            if (g->best_pos[top[j]] > j) g->best_pos[top[j]] = (uint32_t)j;
        sm->n_targets++;
    }
}

/* What every engine shares: the sessions, handed out one at a time. */
typedef struct shared {
    const rr_model *m;
    const eval_sessions *es;
    const rr_eval_params *p;
    const double *pop_share; /* (ni) count_j / max_count */
    size_t next;             /* next session to hand out (atomic) */
    int stop;                /* set when an engine failed (atomic) */
} shared;

static size_t take_session(shared *sh) {
    size_t i;
#pragma omp atomic capture
    i = sh->next++;
    return i < sh->es->n ? i : SIZE_MAX;
}

/* Runs one engine until the shared sessions run out.  nt: threads that
 * split each block's rows (1 when engines themselves run in parallel). */
static rr_status run_engine(engine *g, shared *sh, int nt, sums *sm, rr_error *err) {
    const rr_model *m = sh->m;
    const eval_sessions *es = sh->es;
    const rr_eval_params *p = sh->p;
    const int recurrent = m->ops->step && g->st[0]->h;
    size_t active = 0;
    for (size_t b = 0; b < g->B; b++) {
        g->sess[b] = take_session(sh);
        g->pos[b] = 0;
        active += g->sess[b] != SIZE_MAX;
    }
    while (active > 0) {
        int stop;
#pragma omp atomic read
        stop = sh->stop;
        if (stop) return RR_ERR_INTERNAL; /* another engine failed; its error is reported */
        size_t n_step = 0, n_rows = 0;
        for (size_t b = 0; b < g->B; b++) {
            if (g->sess[b] == SIZE_MAX) continue;
            const int32_t *ev = es->items + es->off[g->sess[b]];
            size_t len = (size_t)(es->off[g->sess[b] + 1] - es->off[g->sess[b]]), pos = g->pos[b];
            if (rr_state_push(g->st[b], ev[pos]) != RR_OK)
                return rr_err(err, RR_ERR_NOMEM, "evaluation: out of memory for a session history");
            if (recurrent) {
                g->hs[n_step] = g->st[b]->h;
                g->step_items[n_step++] = ev[pos];
            }
            if (!p->target_last || pos + 2 == len) {
                g->rows[n_rows] = g->st[b];
                g->target[n_rows++] = ev[pos + 1];
            }
        }
        if (n_step) m->ops->step(m, g->hs, g->step_items, n_step);
        if (n_rows && g->fused) {
            rr_status s = rank_rows_fused(g, n_rows, p, nt, err);
            if (s) return s;
            accumulate(g, n_rows, p, sh->pop_share, sm);
        } else if (n_rows) {
            rr_status s = m->ops->score(m, g->rows, n_rows, g->scores, err);
            if (s) return s;
            rank_rows(g, n_rows, p, nt);
            accumulate(g, n_rows, p, sh->pop_share, sm);
        }
        for (size_t b = 0; b < g->B; b++) {
            if (g->sess[b] == SIZE_MAX) continue;
            size_t len = (size_t)(es->off[g->sess[b] + 1] - es->off[g->sess[b]]);
            if (++g->pos[b] + 1 < len) continue;
            /* Session done (its last event was a target): next one. */
            rr_state_reset(g->st[b]);
            g->pos[b] = 0;
            g->sess[b] = take_session(sh);
            if (g->sess[b] == SIZE_MAX) active--;
        }
    }
    return RR_OK;
}

static void sums_add(sums *a, const sums *b, size_t nc) {
    a->n_targets += b->n_targets;
    for (size_t c = 0; c < nc; c++) {
        a->recall[c] += b->recall[c];
        a->mrr[c] += b->mrr[c];
        a->ndcg[c] += b->ndcg[c];
        a->pop[c] += b->pop[c];
    }
}

/* Keeps sessions i with i % size == rank, in order (in place). */
static void split_sessions(eval_sessions *es, int rank, int size) {
    size_t n = 0, w = 0;
    for (size_t i = (size_t)rank; i < es->n; i += (size_t)size) {
        int64_t a = es->off[i], e = es->off[i + 1];
        memmove(es->items + w, es->items + a, (size_t)(e - a) * sizeof *es->items);
        es->off[n] = (int64_t)w;
        w += (size_t)(e - a);
        es->off[++n] = (int64_t)w;
    }
    es->off[n] = (int64_t)w;
    es->n = n;
}

/* One process's partial result as the split exchanges it. */
typedef struct split_rec {
    int32_t status;
    uint32_t pad;
    uint64_t n_targets;
    uint64_t sum[4 * RR_MAX_CUTOFFS][2]; /* recall, mrr, ndcg, pop: low, high words */
} split_rec;

/* Adds every process's sums into *total (rank order) and takes the
 * minimum best positions; returns the first failing process's status. */
static rr_status split_combine(const rr_eval_split *sp, rr_status mine, sums *total, uint32_t *best_pos, size_t ni,
                               size_t nc, rr_error *err) {
    split_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.status = (int32_t)mine;
    rec.n_targets = total->n_targets;
    fx_sum *v[4] = {total->recall, total->mrr, total->ndcg, total->pop};
    for (size_t k = 0; k < 4; k++)
        for (size_t c = 0; c < nc; c++) {
            rec.sum[k * RR_MAX_CUTOFFS + c][0] = (uint64_t)v[k][c];
            rec.sum[k * RR_MAX_CUTOFFS + c][1] = (uint64_t)(v[k][c] >> 64);
        }
    split_rec *all = rr_calloc_n((size_t)sp->size, sizeof *all);
    if (!all) return rr_err(err, RR_ERR_NOMEM, "out of memory combining evaluation results");
    if (sp->gather(sp->user, &rec, sizeof rec, all)) {
        free(all);
        return rr_err(err, RR_ERR_IO, "evaluation: exchanging results between processes failed");
    }
    rr_status s = mine;
    for (int r = 0; r < sp->size && !s; r++)
        if (all[r].status)
            s = rr_err(err, (rr_status)all[r].status, "evaluation failed on rank %d (its error is on its stderr)", r);
    if (!s) {
        memset(total, 0, sizeof *total);
        for (int r = 0; r < sp->size; r++) {
            total->n_targets += (size_t)all[r].n_targets;
            for (size_t k = 0; k < 4; k++)
                for (size_t c = 0; c < nc; c++)
                    v[k][c] += (fx_sum)all[r].sum[k * RR_MAX_CUTOFFS + c][0] |
                               (fx_sum)all[r].sum[k * RR_MAX_CUTOFFS + c][1] << 64;
        }
        if (sp->min_u32(sp->user, best_pos, ni))
            s = rr_err(err, RR_ERR_IO, "evaluation: exchanging top lists between processes failed");
    }
    free(all);
    return s;
}

rr_status rr_evaluate(const rr_model *m, const rr_dataset *test, const rr_eval_params *p, rr_eval_result *res,
                      rr_error *err) {
    return rr_evaluate_split(m, test, p, NULL, res, err);
}

rr_status rr_evaluate_split(const rr_model *m, const rr_dataset *test, const rr_eval_params *p,
                            const rr_eval_split *split, rr_eval_result *res, rr_error *err) {
    double t0 = rr_now();
    memset(res, 0, sizeof *res);
    if (!m || !test || !p) return rr_err(err, RR_ERR_ARG, "rr_evaluate: missing model, test data or parameters");
    rr_status s = check_params(p, err);
    if (s) return s;
    const size_t ni = m->n_items, nc = p->n_cutoffs;
    res->n_items = ni;

    eval_sessions es;
    s = build_sessions(m, test, &es, &res->n_dropped, err);
    if (s) return s;
    if (es.n == 0) {
        free(es.off);
        free(es.items);
        return rr_err(err, RR_ERR_EMPTY, "no test session has two or more events with items the model knows "
                                         "(%zu events dropped as unknown)", res->n_dropped);
    }
    const size_t n_sessions = es.n;
    if (split && split->size > 1) split_sessions(&es, split->rank, split->size);

    /* Threads.  Recurrent kinds: one engine, its threads split each block's
     * rows, so every step is one ops->step and one ops->score (one GEMM) for
     * the whole block.  History-only kinds: one engine per thread, each
     * taking sessions from the shared queue, so threads never wait for each
     * other between steps (fine-grained barriers cost more than the work on
     * a busy machine), and a kind's own OpenMP loops inside score run
     * single-threaded (nested).  Results are identical either way: each
     * target's values do not depend on its block, sums are exact. */
    const int recurrent = m->ops->step && m->ops->state_floats && m->ops->state_floats(m) > 0;
    int nt = rr_threads(p->threads);
    int n_eng = recurrent ? 1 : nt;
    if ((size_t)n_eng > es.n) n_eng = (int)es.n;
    if (n_eng < 1) n_eng = 1; /* an empty share still takes part */

    /* Auto block: recurrent kinds score with one GEMM per block, which reads
     * the whole output weight matrix, so wide blocks amortise it (bounded by
     * 64 MB of scores).  For history-only kinds a score row costs the same
     * alone or in a block, so the block is kept to about 8 MB: written and
     * read back while it is still in cache (about 3x faster than DRAM). */
    size_t B = p->block;
    if (!B) {
        size_t row = ni * sizeof(float);
        size_t cap = (recurrent ? BLOCK_BYTES_MAX : BLOCK_CACHE_BYTES) / row;
        size_t floor_ = BLOCK_BYTES_MAX / row < 8 ? BLOCK_BYTES_MAX / row : 8;
        B = BLOCK_DEFAULT < cap ? BLOCK_DEFAULT : cap;
        if (B < floor_) B = floor_;
        if (B < 1) B = 1;
    }
    size_t per = (es.n + (size_t)n_eng - 1) / (size_t)n_eng;
    if (B > per) B = per;
    if (B < 1) B = 1;
    size_t kmax = p->cutoffs[nc - 1] < ni ? p->cutoffs[nc - 1] : ni;

    double *pop_share = rr_malloc_n(ni, sizeof *pop_share);
    engine *eng = rr_calloc_n((size_t)n_eng, sizeof *eng);
    sums *sm = rr_calloc_n((size_t)n_eng, sizeof *sm);
    rr_error *errs = rr_calloc_n((size_t)n_eng, sizeof *errs);
    rr_status *st = rr_calloc_n((size_t)n_eng, sizeof *st);
    if (!pop_share || !eng || !sm || !errs || !st) s = rr_err(err, RR_ERR_NOMEM, "out of memory");
    for (int e = 0; !s && e < n_eng; e++) s = engine_init(&eng[e], m, B, kmax, nc, !force_unfused, err);
    if (!s) {
        double maxc = 0;
        for (size_t i = 0; i < ni; i++)
            if (m->counts[i] > maxc) maxc = m->counts[i];
        for (size_t i = 0; i < ni; i++) pop_share[i] = maxc > 0 ? m->counts[i] / maxc : 0.0;
        shared sh = {m, &es, p, pop_share, 0, 0};
        if (recurrent) {
            /* The fused scorer runs its own threads; OpenBLAS's (used by
             * the step's small GEMMs) would only spin against them, so the
             * steps run on one BLAS thread meanwhile.  The setting is
             * process-wide: it is put back before returning. */
            int blas_nt = rr_blas_get_threads();
            if (eng[0].fused && blas_nt != 1) rr_blas_set_threads(1);
            st[0] = run_engine(&eng[0], &sh, nt, &sm[0], &errs[0]);
            if (eng[0].fused && blas_nt != 1) rr_blas_set_threads(blas_nt);
        } else {
#pragma omp parallel for num_threads(n_eng) schedule(static, 1)
            for (int e = 0; e < n_eng; e++) {
#ifdef _OPENMP
                /* this engine's thread is all it gets: a kind's own OpenMP
                 * loops in score run on it alone (this ICV is per task). */
                omp_set_num_threads(1);
#endif
                st[e] = run_engine(&eng[e], &sh, 1, &sm[e], &errs[e]);
                if (st[e] != RR_OK) {
#pragma omp atomic write
                    sh.stop = 1;
                }
            }
        }
        /* the first real failure (not a stop signal) is the one to report */
        for (int e = 0; e < n_eng && !s; e++)
            if (st[e] != RR_OK && st[e] != RR_ERR_INTERNAL) s = st[e];
        for (int e = 0; e < n_eng && !s; e++)
            if (st[e] != RR_OK) s = st[e];
        for (int e = 0; e < n_eng && s; e++)
            if (st[e] == s) {
                if (err) *err = errs[e];
                break;
            }
    }
    if (!s) {
        for (int e = 1; e < n_eng; e++) {
            sums_add(&sm[0], &sm[e], nc);
            for (size_t i = 0; i < ni; i++)
                if (eng[e].best_pos[i] < eng[0].best_pos[i]) eng[0].best_pos[i] = eng[e].best_pos[i];
        }
    }
    if (split && split->size > 1) {
        /* every process gets here, failed or not: the combine carries the status */
        if (sm && eng && eng[0].best_pos) {
            s = split_combine(split, s, &sm[0], eng[0].best_pos, ni, nc, err);
        } else {
            sums none;
            memset(&none, 0, sizeof none);
            uint32_t dummy = UINT32_MAX;
            split_combine(split, s == RR_OK ? RR_ERR_NOMEM : s, &none, &dummy, 0, nc, NULL);
        }
    }
    if (!s) {
        res->n_targets = sm[0].n_targets;
        res->n_sessions = n_sessions;
        for (size_t c = 0; c < nc; c++) {
            res->recall[c] = fx_mean(sm[0].recall[c], sm[0].n_targets);
            res->mrr[c] = fx_mean(sm[0].mrr[c], sm[0].n_targets);
            res->ndcg[c] = fx_mean(sm[0].ndcg[c], sm[0].n_targets);
            res->popularity[c] = fx_mean(sm[0].pop[c], sm[0].n_targets);
            size_t cov = 0;
            for (size_t i = 0; i < ni; i++) cov += eng[0].best_pos[i] < p->cutoffs[c];
            res->coverage[c] = (double)cov / (double)ni;
        }
    }
    for (int e = 0; eng && e < n_eng; e++) engine_free(&eng[e]);
    free(eng);
    free(sm);
    free(errs);
    free(st);
    free(pop_share);
    free(es.off);
    free(es.items);
    res->seconds = rr_now() - t0;
    return s;
}
