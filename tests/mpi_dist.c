/* mpi_dist.c - the MPI layer under `mpiexec -np P` (CTest runs P = 2 and
 * 3; only built with -DRR_MPI=ON):
 *   - the step exchange: every rank's random rows (overlapping indices,
 *     duplicates, an empty rank) are combined into exactly the list a
 *     rank-order merge of everyone's rows gives, identical on every rank;
 *     the dense blob is summed; loss and row counts are totalled;
 *   - the evaluation split: rr_evaluate_split over P ranks gives exactly
 *     the single-process rr_evaluate results;
 *   - training: rr_rnn_fit data-parallel ends with identical parameters on
 *     every rank, and a usable model.
 * Every rank checks; rank 0 prints the summary; all ranks exit non-zero
 * when any rank failed. */
#include <mpi.h>

#include "check.h"
#include "dist/dist.h"
#include "eval/eval.h"
#include "models/model.h"
#include "models/rnn.h"
#include "synth_log.h"
#include "train/trainer.h"
#include "util/util.h"

static int rank_, size_;

/* Rank r's rows for step `step`: nU Wy rows (nUb of them output rows),
 * nE E rows, indices drawn from a small range so that ranks overlap.
 * Rank 1 has nothing at step 1 (a rank out of sessions). */
static void make_rows(int r, int step, size_t N, size_t wU, size_t wE, size_t max_rows, rr_dist_rows *o,
                      int32_t *urows, float *gU, float *gB, int32_t *erows, float *gE) {
    rr_rng g;
    rr_rng_seed(&g, (uint64_t)(r * 1000 + step));
    o->urows = urows;
    o->gU = gU;
    o->gB = gB;
    o->erows = erows;
    o->gE = gE;
    if (r == 1 && step == 1) {
        o->nU = o->nUb = o->nE = 0;
        return;
    }
    /* unique within a rank, as the step makes them */
    int32_t *seen = calloc(N, sizeof *seen);
    size_t nU = 1 + (size_t)rr_rng_below(&g, max_rows);
    size_t k = 0;
    while (k < nU) {
        int32_t it = (int32_t)rr_rng_below(&g, N);
        if (seen[it]) continue;
        seen[it] = 1;
        urows[k++] = it;
    }
    o->nU = nU;
    o->nUb = (size_t)rr_rng_below(&g, nU + 1);
    for (size_t i = 0; i < nU * wU; i++) gU[i] = (float)(rr_rng_uniform(&g) - 0.5);
    for (size_t i = 0; i < o->nUb; i++) gB[i] = (float)(rr_rng_uniform(&g) - 0.5);
    memset(seen, 0, N * sizeof *seen);
    size_t nE = (size_t)rr_rng_below(&g, max_rows / 2 + 1);
    k = 0;
    while (k < nE) {
        int32_t it = (int32_t)rr_rng_below(&g, N);
        if (seen[it]) continue;
        seen[it] = 1;
        erows[k++] = it;
    }
    o->nE = nE;
    for (size_t i = 0; i < nE * wE; i++) gE[i] = (float)(rr_rng_uniform(&g) - 0.5);
    free(seen);
}

/* The combined list by the definition: output rows of every rank in rank
 * order, then the other Wy rows, then E rows; sums in that order. */
static void reference(int P, int step, size_t N, size_t wU, size_t wE, size_t max_rows, rr_dist_rows *ref,
                      size_t cap) {
    int32_t *pos = malloc(N * sizeof *pos);
    int32_t *urows = malloc(max_rows * sizeof *urows), *erows = malloc(max_rows * sizeof *erows);
    float *gU = malloc(max_rows * wU * sizeof *gU), *gB = malloc(max_rows * sizeof *gB);
    float *gE = malloc(max_rows * wE * sizeof *gE);
    size_t nU = 0, nE = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < N; i++) pos[i] = -1;
        if (pass == 1)
            for (size_t u = 0; u < nU; u++) pos[ref->urows[u]] = (int32_t)u;
        if (pass == 1) ref->nUb = nU;
        for (int r = 0; r < P; r++) {
            rr_dist_rows o;
            make_rows(r, step, N, wU, wE, max_rows, &o, urows, gU, gB, erows, gE);
            size_t a = pass == 0 ? 0 : pass == 1 ? o.nUb : 0, e = pass == 0 ? o.nUb : pass == 1 ? o.nU : o.nE;
            for (size_t u = a; u < e; u++) {
                int32_t it = pass < 2 ? o.urows[u] : o.erows[u];
                size_t w = pass < 2 ? wU : wE;
                const float *g = pass < 2 ? o.gU + u * wU : o.gE + u * wE;
                int32_t *rows = pass < 2 ? ref->urows : ref->erows;
                float *G = pass < 2 ? ref->gU : ref->gE;
                size_t *n = pass < 2 ? &nU : &nE;
                int32_t p = pos[it];
                if (p < 0) {
                    RR_ASSERT(*n < cap);
                    p = pos[it] = (int32_t)(*n)++;
                    rows[p] = it;
                    memcpy(G + (size_t)p * w, g, w * sizeof *G);
                    if (pass == 0) ref->gB[p] = o.gB[u];
                } else {
                    for (size_t j = 0; j < w; j++) G[(size_t)p * w + j] += g[j];
                    if (pass == 0) ref->gB[p] += o.gB[u];
                }
            }
        }
    }
    ref->nU = nU;
    ref->nE = nE;
    free(pos);
    free(urows);
    free(erows);
    free(gU);
    free(gB);
    free(gE);
}

static uint32_t rows_crc(const rr_dist_rows *a, size_t wU, size_t wE) {
    uint32_t c = rr_crc32c(0, a->urows, a->nU * sizeof *a->urows);
    c = rr_crc32c(c, a->gU, a->nU * wU * sizeof *a->gU);
    c = rr_crc32c(c, a->gB, a->nUb * sizeof *a->gB);
    c = rr_crc32c(c, a->erows, a->nE * sizeof *a->erows);
    return rr_crc32c(c, a->gE, a->nE * wE * sizeof *a->gE);
}

/* The traffic one step should count on this rank (bytes, added to *t):
 * the allgather sends this rank's block and receives the others'; the
 * owner exchange sends each row to rank row % P and gets back the other
 * owners' combined lists (ref: the combined rows). */
static void expected_traffic(int step, size_t N, size_t wU, size_t wE, size_t max_rows, const rr_dist_rows *ref,
                             int owners, rr_dist_traffic *t) {
    const size_t P = (size_t)size_, me = (size_t)rank_;
    int32_t *urows = malloc(max_rows * sizeof *urows), *erows = malloc(max_rows * sizeof *erows);
    float *gU = malloc(max_rows * wU * sizeof *gU), *gB = malloc(max_rows * sizeof *gB);
    float *gE = malloc(max_rows * wE * sizeof *gE);
    for (size_t r = 0; r < P; r++) {
        rr_dist_rows o;
        make_rows((int)r, step, N, wU, wE, max_rows, &o, urows, gU, gB, erows, gE);
        if (!owners) {
            const uint64_t b = 4 * (uint64_t)(o.nU * (1 + wU) + o.nUb + o.nE * (1 + wE));
            if (r == me) t->rows_sent += b;
            else t->rows_recv += b;
            continue;
        }
        for (size_t u = 0; u < o.nU + o.nE; u++) {
            const int e = u >= o.nU;
            const size_t own = (size_t)(e ? o.erows[u - o.nU] : o.urows[u]) % P;
            const uint64_t b = 4 * (uint64_t)(e ? 2 + wE : 2 + wU + (u < o.nUb));
            if (r == me && own != me) t->a2a_sent += b, t->rows_sent += b;
            if (r != me && own == me) t->a2a_recv += b, t->rows_recv += b;
        }
    }
    if (owners) {
        uint64_t mine = 0;
        for (size_t u = 0; u < ref->nU + ref->nE; u++) {
            const int e = u >= ref->nU;
            const size_t own = (size_t)(e ? ref->erows[u - ref->nU] : ref->urows[u]) % P;
            const uint64_t b = 4 * (uint64_t)(e ? 2 + wE : 2 + wU + (u < ref->nUb));
            if (own == me) mine += b;
            else t->gath_recv += b, t->rows_recv += b;
        }
        t->rows_sent += mine; /* this owner's list, sent in the allgatherv */
    }
    free(urows);
    free(erows);
    free(gU);
    free(gB);
    free(gE);
}

static void test_exchange(rr_dist *d, int owners) {
    const size_t N = 300, wU = 7, wE = 5, max_rows = 80, n_dense = 1000;
    rr_error err;
    rr_dist_xchg *x = NULL;
    CHECK_OK(rr_dist_xchg_new(&x, d, max_rows, max_rows, wU, wE, N, n_dense, &err), &err);
    if (!x) return;
    CHECK_OK(rr_dist_xchg_set_owners(x, owners, &err), &err);
    rr_dist_traffic want;
    memset(&want, 0, sizeof want);
    const size_t cap = (size_t)size_ * max_rows;
    int32_t *urows = malloc(max_rows * sizeof *urows), *erows = malloc(max_rows * sizeof *erows);
    float *gU = malloc(max_rows * wU * sizeof *gU), *gB = malloc(max_rows * sizeof *gB);
    float *gE = malloc(max_rows * wE * sizeof *gE), *dense = malloc(n_dense * sizeof *dense);
    rr_dist_rows ref = {0, 0, 0, malloc(cap * sizeof(int32_t)), malloc(cap * wU * sizeof(float)),
                        malloc(cap * sizeof(float)), malloc(cap * sizeof(int32_t)), malloc(cap * wE * sizeof(float))};
    for (int step = 0; step < 4; step++) {
        rr_dist_rows mine, all;
        make_rows(rank_, step, N, wU, wE, max_rows, &mine, urows, gU, gB, erows, gE);
        /* small integers: their sum is exact in any order */
        for (size_t i = 0; i < n_dense; i++) dense[i] = (float)((size_t)(rank_ + 1) * (i % 17));
        double loss = 0.5 * (rank_ + 1);
        uint64_t rows = (uint64_t)(rank_ + 10);
        CHECK_OK(rr_dist_step_exchange(x, &mine, dense, n_dense, &loss, &rows, &all, &err), &err);
        reference(size_, step, N, wU, wE, max_rows, &ref, cap);
        expected_traffic(step, N, wU, wE, max_rows, &ref, owners, &want);
        CHECK(all.nU == ref.nU && all.nUb == ref.nUb && all.nE == ref.nE);
        if (all.nU == ref.nU && all.nE == ref.nE && all.nUb == ref.nUb) {
            CHECK(!memcmp(all.urows, ref.urows, ref.nU * sizeof(int32_t)));
            CHECK(!memcmp(all.gU, ref.gU, ref.nU * wU * sizeof(float)));
            CHECK(!memcmp(all.gB, ref.gB, ref.nUb * sizeof(float)));
            CHECK(!memcmp(all.erows, ref.erows, ref.nE * sizeof(int32_t)));
            CHECK(!memcmp(all.gE, ref.gE, ref.nE * wE * sizeof(float)));
        }
        CHECK_OK(rr_dist_check_same(d, rows_crc(&all, wU, wE), "combined rows", &err), &err);
        double want_loss = 0;
        uint64_t want_rows = 0;
        for (int r = 0; r < size_; r++) {
            want_loss += 0.5 * (r + 1);
            want_rows += (uint64_t)(r + 10);
        }
        CHECK(loss == want_loss && rows == want_rows);
        int dense_ok = 1;
        for (size_t i = 0; i < n_dense; i++)
            dense_ok &= dense[i] == (float)((size_t)(size_ * (size_ + 1) / 2) * (i % 17));
        CHECK(dense_ok);
    }
    rr_dist_traffic t;
    rr_dist_traffic_get(x, &t);
    CHECK(t.steps == 4 && t.dense_bytes == 4 * n_dense * sizeof(float) && t.rows_recv > 0);
    CHECK_MSG(t.rows_sent == want.rows_sent && t.rows_recv == want.rows_recv, "%s: rows sent %llu (want %llu), received %llu (want %llu)",
              owners ? "owners" : "allgather", (unsigned long long)t.rows_sent, (unsigned long long)want.rows_sent,
              (unsigned long long)t.rows_recv, (unsigned long long)want.rows_recv);
    CHECK(t.owner_steps == (owners ? 4u : 0u) && t.a2a_sent == want.a2a_sent && t.a2a_recv == want.a2a_recv &&
          t.gath_recv == want.gath_recv);
    if (owners) CHECK(t.cnt_bytes == 4 * 24 * (uint64_t)size_ && t.a2a_recv > 0 && t.gath_recv > 0);
    /* two ranks, allgather: 4 steps of one padded block (40-byte header,
     * the largest rows, the dense blob) */
    const uint64_t stride = 10 + max_rows * (2 + wU) + max_rows * (1 + wE) + n_dense;
    CHECK(t.pad_bytes == (!owners && size_ == 2 ? 4 * 4 * stride : 0));
    /* every rank out of rows: the epoch's end, nothing else exchanged */
    {
        rr_dist_rows none = {0, 0, 0, urows, gU, gB, erows, gE}, all;
        double loss = 0;
        uint64_t rows = 0;
        dense[0] = 42;
        CHECK_OK(rr_dist_step_exchange(x, &none, dense, n_dense, &loss, &rows, &all, &err), &err);
        CHECK(rows == 0 && all.nU == 0 && all.nE == 0 && dense[0] == 42);
    }
    /* a different value on one rank is caught */
    CHECK(rr_dist_check_same(d, rank_ == size_ - 1 ? 7u : 3u, "test value", &err) == RR_ERR_INTERNAL);
    CHECK(strstr(err.msg, "test value differs") != NULL);
    CHECK(rr_dist_any(d, rank_ == 1) == 1 && rr_dist_any(d, 0) == 0);
    free(urows);
    free(erows);
    free(gU);
    free(gB);
    free(gE);
    free(dense);
    free(ref.urows);
    free(ref.gU);
    free(ref.gB);
    free(ref.erows);
    free(ref.gE);
    rr_dist_xchg_free(x);
}

static void small_params(rr_train_params *tp) {
    rr_train_params_default(tp);
    tp->kind = "gru";
    tp->n_layers = 1;
    tp->layers[0] = 24;
    tp->batch_size = 24; /* 24 / P rows per rank: 12 at P = 2, 8 at P = 3 */
    tp->n_sample = 32;
    tp->epochs = 2;
    tp->threads = 1;
    tp->dropout_hidden = 0.1;
    tp->verbose = 0;
    tp->seed = 5;
}

static void test_eval_and_train(rr_dist *d) {
    /* few steps: oversubscribed ranks pay a time slice per collective */
    rr_dataset *train = synth_log(11, check_small() ? 5000 : 10000, 400);
    rr_dataset *test = synth_log(12, 4000, 400);
    if (!train || !test) return;
    rr_train_params tp;
    small_params(&tp);
    rr_error err;
    rr_model *m = NULL;
    rr_status s = rr_rnn_fit(&m, train, NULL, &tp, &err);
    CHECK_MSG(s == RR_OK, "%s", err.msg);
    if (m) {
        /* identical parameters on every rank */
        const rr_rnn *r = m->impl;
        uint32_t crc = rr_crc32c(0, r->params, r->lay.n_params * sizeof(float));
        CHECK_OK(rr_dist_check_same(d, crc, "trained parameters", &err), &err);
        /* the split evaluation equals the single-process one, bit for bit */
        rr_eval_params ep;
        rr_eval_params_default(&ep);
        ep.threads = 1;
        rr_eval_result one, all;
        CHECK_OK(rr_evaluate(m, test, &ep, &one, &err), &err);
        rr_eval_split sp;
        rr_dist_eval_split(d, &sp);
        CHECK_OK(rr_evaluate_split(m, test, &ep, &sp, &all, &err), &err);
        CHECK(one.n_targets == all.n_targets && one.n_sessions == all.n_sessions);
        int same = 1;
        for (size_t c = 0; c < ep.n_cutoffs; c++)
            same &= one.recall[c] == all.recall[c] && one.mrr[c] == all.mrr[c] && one.ndcg[c] == all.ndcg[c] &&
                    one.coverage[c] == all.coverage[c] && one.popularity[c] == all.popularity[c];
        CHECK_MSG(same, "split recall@20 %.9f vs %.9f", all.recall[3], one.recall[3]);
        /* trained, not noise: above chance (20 / 400 = 0.05), far above it
         * at full scale (RR_TEST_SCALE=small trains on half the events) */
        CHECK_MSG(one.recall[3] > (check_small() ? 0.075 : 0.2), "recall@20 %.4f", one.recall[3]);
        /* a test set with fewer sessions than ranks still works */
        rr_dataset *tiny = synth_log(13, 12, 400);
        if (tiny) {
            rr_eval_result t1, tP;
            rr_status s1 = rr_evaluate(m, tiny, &ep, &t1, &err);
            rr_status s2 = rr_evaluate_split(m, tiny, &ep, &sp, &tP, &err);
            CHECK(s1 == s2);
            if (s1 == RR_OK && s2 == RR_OK) CHECK(t1.n_targets == tP.n_targets && t1.mrr[3] == tP.mrr[3]);
        }
        rr_dataset_free(tiny);
    }
    rr_model_free(m);
    rr_dataset_free(train);
    rr_dataset_free(test);
}

int main(int argc, char **argv) {
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    rr_dist *d = rr_dist_world();
    CHECK(d != NULL && rr_dist_size(d) == size_ && rr_dist_rank(d) == rank_);
    if (d) {
        test_exchange(d, 0);
        test_exchange(d, 1);
        test_eval_and_train(d);
    }
    int bad = check_failed > 0, any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    char name[32];
    snprintf(name, sizeof name, "mpi_dist rank %d/%d", rank_, size_);
    int rc = check_summary(name);
    MPI_Finalize();
    return any ? 1 : rc;
}
