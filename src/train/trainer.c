/* trainer.c - the session-parallel training loop of the RNN kinds
 * (GRU4Rec's, hidasib/GRU4Rec_PyTorch_Official gru4rec_pytorch.py,
 * GRU4Rec.fit and SessionDataIterator), its per-step update and the epoch
 * bookkeeping: progress, JSON log, validation with early stopping.  The
 * trainer's state is in trainer_internal.h, its checkpoints in
 * trainer_ckpt.c.
 *
 * One step (step_impl.inc, float here; the gradient checks compile a
 * double instance of the same source) computes every gradient;
 * apply_update then clips (when asked) and hands the dense prefix of the
 * blob to the optimiser as one vector and the item tables as the rows the
 * step touched.
 *
 * Threads: one OpenMP pool does everything, OpenBLAS single-threaded
 * inside it.  A step is two parallel passes in which every thread owns a
 * fixed slice of each operation (step_impl.inc), the loss runs its own
 * row-parallel loop between them, and the update splits the dense blob by
 * element ranges and the item tables by ranges of touched rows.  With one
 * thread each operation is the single call it always was.  Nothing depends
 * on thread timing: same seed and thread count give the same model bytes
 * (one and two threads give different bytes: the W_hh gradient is summed
 * in per-thread partials, and OpenBLAS rounds some split shapes
 * differently). */
#include "train/trainer_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* The sampler's cache: GRU4Rec precomputes 10M draws at once.  Every
 * refill continues the same generator and each batch takes the next
 * n_sample draws, so the cache size changes when draws are made, never
 * which: 64k draws (256 KB) give the same samples as 10M (40 MB). */
#define SAMPLE_CACHE_MAX ((size_t)1 << 16)

/* Width of the step's sparse input-table rows (ws.erows/gE): the one-hot
 * projection X1 (G * H[0]) or the separate input table E. */
static size_t erow_width(const rr_rnn_layout *lay) {
    return lay->input == RR_IN_ONEHOT ? lay->G * lay->H[0] : lay->in_width;
}

/* Sessions by the time of their first event, ties by row (GRU4Rec:
 * argsort of the per-session minimum time). */
typedef struct sess_key {
    double t0;
    int64_t row;
} sess_key;

static int sess_key_cmp(const void *a, const void *b) {
    const sess_key *x = a, *y = b;
    if (x->t0 < y->t0) return -1;
    if (x->t0 > y->t0) return 1;
    return (x->row > y->row) - (x->row < y->row);
}

static rr_status order_sessions(trainer *tr, const rr_dataset *d, rr_error *err) {
    const rr_sessions *s = &d->s;
    sess_key *k = rr_malloc_n(s->n_sessions ? s->n_sessions : 1, sizeof *k);
    if (!k) return rr_err(err, RR_ERR_NOMEM, "out of memory ordering %zu sessions", s->n_sessions);
    size_t n = 0;
    for (size_t i = 0; i < s->n_sessions; i++) {
        if (rr_session_len(s, i) < 2) continue; /* no target: contributes nothing */
        double t0 = s->times[s->offsets[i]];
        for (int64_t e = s->offsets[i] + 1; e < s->offsets[i + 1]; e++)
            if (s->times[e] < t0) t0 = s->times[e];
        k[n].t0 = t0;
        k[n++].row = (int64_t)i;
    }
    qsort(k, n, sizeof *k, sess_key_cmp);
    tr->order = rr_malloc_n(n ? n : 1, sizeof *tr->order);
    if (!tr->order) {
        free(k);
        return rr_err(err, RR_ERR_NOMEM, "out of memory ordering sessions");
    }
    for (size_t i = 0; i < n; i++) tr->order[i] = k[i].row;
    tr->n_order = n;
    free(k);
    if (n == 0) return rr_err(err, RR_ERR_EMPTY, "no training session has 2 or more events");
    /* dist hook: rank r of P trains on sessions r, r + P, r + 2P, ... of
     * the time order (whole sessions; a rank may get none) */
    if (tr->dist) {
        const size_t P = (size_t)rr_dist_size(tr->dist), r = (size_t)rr_dist_rank(tr->dist);
        size_t w = 0;
        for (size_t i = r; i < n; i += P) tr->order[w++] = tr->order[i];
        tr->n_order = w;
    }
    return RR_OK;
}

static void trainer_free(trainer *tr) {
    step_ws_free_f32(&tr->ws);
    rr_free_aligned(tr->s1);
    rr_free_aligned(tr->s2);
    rr_free_aligned(tr->best);
    free(tr->logcnt);
    rr_sampler_free(tr->sampler);
    free(tr->order);
    free(tr->slot_sess);
    free(tr->slot_pos);
    free(tr->in);
    free(tr->tgt);
    rr_dist_xchg_free(tr->xchg);
    free(tr->ck_recs);
    free(tr->ck_streams);
    free(tr->ck.fingerprint);
    if (tr->ck.on) rr_ckpt_dir_unlock(tr->ck.lock_fd);
}

static rr_status trainer_init(trainer *tr, rr_model *m, const rr_dataset *train, const rr_dataset *valid,
                              const rr_train_params *p, int nt, rr_train_prof *prof, rr_error *err) {
    memset(tr, 0, sizeof *tr);
    tr->p = p;
    tr->sess = &train->s;
    tr->m = m;
    tr->r = m->impl;
    tr->lay = &tr->r->lay;
    const rr_rnn_layout *lay = tr->lay;
    const size_t N = m->n_items;
    tr->B = p->batch_size;
    tr->S = p->n_sample;
    tr->dist = rr_dist_world();
    if (tr->dist) {
        /* dist hook: rank r takes B / P rows of the global batch (one more
         * when r < B % P) */
        const size_t P = (size_t)rr_dist_size(tr->dist), r = (size_t)rr_dist_rank(tr->dist);
        if (p->batch_size < P)
            return rr_err(err, RR_ERR_ARG, "batch_size %zu is smaller than the %zu MPI ranks", p->batch_size, P);
        tr->B = p->batch_size / P + (r < p->batch_size % P);
    }
    tr->p_embed = p->dropout_embed;
    bool drop_h[RR_MAX_LAYERS];
    for (size_t l = 0; l < lay->L; l++) {
        /* One-hot input: GRU4Rec's embedding dropout acts on layer 0's
         * output (GRUEmbedding's output is the dropped "embedding"). */
        tr->p_hidden[l] = (l == 0 && lay->input == RR_IN_ONEHOT) ? p->dropout_embed : p->dropout_hidden;
        drop_h[l] = tr->p_hidden[l] > 0;
    }
    bool drop_e = lay->input != RR_IN_ONEHOT && p->dropout_embed > 0;
    rr_status s = order_sessions(tr, train, err);
    if (s) return s;
    s = step_ws_alloc_f32(&tr->ws, lay, tr->r->cell, N, tr->B, tr->S, drop_e, drop_h, err);
    if (!s) s = step_ws_set_threads_f32(&tr->ws, lay, nt, err);
    if (s) return s;
    if (tr->dist) {
        /* dist hook: the step exchange, sized for the largest rank's batch
         * (2B + S Wy rows, B input rows) */
        const size_t P = (size_t)rr_dist_size(tr->dist), Bmax = (p->batch_size + P - 1) / P;
        const size_t ew = erow_width(lay);
        s = rr_dist_xchg_new(&tr->xchg, tr->dist, 2 * Bmax + tr->S, Bmax, lay->H_last, ew, N, lay->n_dense, err);
        if (!s) s = rr_dist_xchg_set_owners(tr->xchg, p->dist_owners, err);
        if (s) return s;
    }
    if (prof) {
        tr->ws.prof = prof->sec;
        tr->ws.prof_t = &tr->prof_t;
    }
    tr->opt.kind = p->optim;
    tr->opt.lr = p->lr;
    tr->opt.momentum = p->momentum;
    tr->opt.beta1 = p->adam_beta1;
    tr->opt.beta2 = p->adam_beta2;
    tr->opt.eps = p->adam_eps;
    tr->opt.vel_bf16 = p->momentum_dtype == RR_MOMENTUM_BF16;
    int ns = rr_optim_n_states(&tr->opt);
    size_t bytes = lay->n_params * sizeof(float); /* fits: checked by the layout */
    if (ns >= 1 && !(tr->s1 = rr_alloc_aligned(bytes))) goto nomem;
    if (ns >= 2 && !(tr->s2 = rr_alloc_aligned(lay->n_params * rr_optim_s2_size(&tr->opt)))) goto nomem;
    if (valid && !(tr->best = rr_alloc_aligned(bytes))) goto nomem;
    tr->slot_sess = rr_malloc_n(tr->B, sizeof *tr->slot_sess);
    tr->slot_pos = rr_malloc_n(tr->B, sizeof *tr->slot_pos);
    tr->in = rr_malloc_n(tr->B, sizeof *tr->in);
    tr->tgt = rr_malloc_n(tr->B, sizeof *tr->tgt);
    if (!tr->slot_sess || !tr->slot_pos || !tr->in || !tr->tgt) goto nomem;
    if (p->loss == RR_LOSS_CROSS_ENTROPY && p->logq > 0) {
        tr->logcnt = rr_malloc_n(N, sizeof *tr->logcnt);
        if (!tr->logcnt) goto nomem;
        for (size_t i = 0; i < N; i++) tr->logcnt[i] = (float)log(m->counts[i] > 1 ? m->counts[i] : 1.0);
    }
    if (tr->S > 0) {
        size_t cache = p->sample_cache < SAMPLE_CACHE_MAX ? p->sample_cache : SAMPLE_CACHE_MAX;
        if (cache < tr->S) cache = tr->S;
        tr->cache = cache;
        s = rr_sampler_new(&tr->sampler, m->counts, N, p->sample_alpha, tr->S, cache,
                           p->seed ^ 0x5a3c9e1d2b4f6a87ull, err);
        if (s) return s;
    }
    /* dist hook: dropout masks per rank (rank 0: the one-process seed); the
     * sampler's seed is the same on every rank: shared negatives */
    rr_rng_seed(&tr->rng, p->seed ^ 0x9d2c5680a1b3e4f7ull ^ ((uint64_t)rr_dist_rank(tr->dist) * 0x9e3779b97f4a7c15ull));
    tr->ctx.lay = lay;
    tr->ctx.cell = tr->r->cell;
    tr->ctx.n_items = N;
    tr->ctx.P = tr->r->params;
    tr->ctx.loss.kind = p->loss;
    tr->ctx.loss.bpreg = p->bpreg;
    tr->ctx.loss.elu = p->loss == RR_LOSS_BPR_MAX ? p->elu_param : 0;
    tr->ctx.loss.norm = p->batch_size; /* the global batch: summed over dist ranks, the one-process mean */
    tr->ctx.act = p->final_act;
    tr->ctx.act_param = p->final_act_param;
    tr->ctx.logcnt = tr->logcnt;
    tr->ctx.logq = p->logq;
    tr->ctx.alpha = p->sample_alpha;
    tr->tty = p->verbose && isatty(2) && rr_dist_rank(tr->dist) == 0;
    tr->prof = prof;
    tr->best_score = -1;
    return RR_OK;
nomem:
    return rr_err(err, RR_ERR_NOMEM, "out of memory for training state (%zu parameters)", lay->n_params);
}

/* mask (n, cols): 0 with probability pdrop, else 1 / (1 - pdrop)
 * (inverted dropout, as torch.nn.Dropout).  Two 32-bit draws per 64. */
static void fill_mask(rr_rng *rng, float *mask, size_t count, double pdrop) {
    const uint64_t thr = (uint64_t)(pdrop * 4294967296.0);
    const float keep = (float)(1.0 / (1.0 - pdrop));
    size_t i = 0;
    for (; i + 1 < count; i += 2) {
        uint64_t u = rr_rng_next(rng);
        mask[i] = (u & 0xffffffffu) < thr ? 0.0f : keep;
        mask[i + 1] = (u >> 32) < thr ? 0.0f : keep;
    }
    if (i < count) mask[i] = (rr_rng_next(rng) & 0xffffffffu) < thr ? 0.0f : keep;
}

/* Part t of nt of the update: the dense blob by element ranges, each item
 * table by ranges of its touched rows (rows are distinct, so the parts
 * never meet). */
static void update_part(trainer *tr, int t, int nt) {
    const rr_rnn_layout *lay = tr->lay;
    const rr_step_ws_f32 *w = &tr->ws;
    const rr_optim_cfg *o = &tr->opt;
    float *P = tr->r->params, *s1 = tr->s1;
    char *s2 = tr->s2;
    const size_t es2 = rr_optim_s2_size(o);
    const size_t HL = lay->H_last;
    const size_t ew = erow_width(lay);
    /* s2 is a float or a bfloat16 table: offsets in elements of es2 bytes */
#define ST(s, off) ((s) ? (s) + (off) : NULL)
#define ST2(off) ((s2) ? (void *)(s2 + (off) * es2) : NULL)
    size_t a, e;
    step_part_ceil(lay->n_dense, t, nt, 16, &a, &e);
    rr_optim_dense_span(o, tr->t, e - a, P + a, w->gdense + a, ST(s1, a), ST2(a));
    step_part_ceil(w->nU, t, nt, 1, &a, &e);
    rr_optim_sparse_rows(o, tr->t, HL, e - a, w->urows + a, w->gU + a * HL, P + lay->Wy, ST(s1, lay->Wy),
                         ST2(lay->Wy));
    /* By rows are single floats, 16 to a cache line: one thread takes them
     * all (split, the threads would write the same lines) */
    if (t == nt - 1)
        rr_optim_sparse_rows(o, tr->t, 1, w->nUb, w->urows, w->gB, P + lay->By, ST(s1, lay->By), ST2(lay->By));
    if (w->nE) {
        size_t off = lay->input == RR_IN_ONEHOT ? lay->X1 : lay->E;
        step_part_ceil(w->nE, t, nt, 1, &a, &e);
        rr_optim_sparse_rows(o, tr->t, ew, e - a, w->erows + a, w->gE + a * ew, P + off, ST(s1, off),
                             ST2(off));
    }
#undef ST
#undef ST2
}

/* false when part t of nt of the gradients holds a NaN or an infinity. */
static bool finite_part(const trainer *tr, int t, int nt) {
    const rr_rnn_layout *lay = tr->lay;
    const rr_step_ws_f32 *w = &tr->ws;
    const size_t ew = erow_width(lay);
    size_t a, e;
    step_part_ceil(lay->n_dense, t, nt, 16, &a, &e);
    bool ok = step_finite_f32(w->gdense + a, e - a);
    step_part_ceil(w->nU * lay->H_last, t, nt, 16, &a, &e);
    ok = ok && step_finite_f32(w->gU + a, e - a);
    step_part_ceil(w->nE * ew, t, nt, 16, &a, &e);
    return ok && step_finite_f32(w->gE + a, e - a);
}

/* Clip (when asked) and apply the optimiser.  Returns false when the
 * gradient is not finite (then nothing was applied). */
static bool apply_update(trainer *tr) {
    const rr_rnn_layout *lay = tr->lay;
    rr_step_ws_f32 *w = &tr->ws;
    const size_t HL = lay->H_last;
    const size_t ew = erow_width(lay);
    /* threads as the step used them: small updates stay on one */
    int nt = w->nt;
    if ((double)lay->n_dense + (double)w->nU * (double)HL < 65536.0) nt = 1;
    if (tr->p->clip_norm > 0) {
        if (!finite_part(tr, 0, 1)) return false;
        /* global norm over every gradient of the step (dense and rows) */
        double sq = 0;
        for (size_t i = 0; i < lay->n_dense; i++) sq += (double)w->gdense[i] * w->gdense[i];
        for (size_t i = 0; i < w->nU * HL; i++) sq += (double)w->gU[i] * w->gU[i];
        for (size_t i = 0; i < w->nUb; i++) sq += (double)w->gB[i] * w->gB[i];
        for (size_t i = 0; i < w->nE * ew; i++) sq += (double)w->gE[i] * w->gE[i];
        if (!isfinite(sq)) return false;
        double norm = sqrt(sq);
        if (norm > tr->p->clip_norm) {
            float f = (float)(tr->p->clip_norm / norm);
            rr_sscal(lay->n_dense, f, w->gdense);
            rr_sscal(w->nU * HL, f, w->gU);
            rr_sscal(w->nUb, f, w->gB);
            rr_sscal(w->nE * ew, f, w->gE);
        }
        tr->t++;
#pragma omp parallel num_threads(nt) if (nt > 1)
        update_part(tr, STEP_TID(), STEP_NT());
        return true;
    }
    bool ok = true;
    tr->t++;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        /* every thread checks its part, then all or none update */
        const int t = STEP_TID(), tn = STEP_NT();
        w->flag[t] = finite_part(tr, t, tn);
#pragma omp barrier
        bool all = true;
        for (int s = 0; s < tn; s++) all = all && w->flag[s];
        if (all) update_part(tr, t, tn);
        if (t == 0) ok = all;
    }
    if (!ok) tr->t--;
    return ok;
}

/* Zeroes row i of every layer's state (a slot's new session). */
static void zero_state_row(trainer *tr, size_t i) {
    const rr_rnn_layout *lay = tr->lay;
    for (size_t l = 0; l < lay->L; l++) {
        size_t sH = lay->smult * lay->H[l];
        memset(tr->ws.st_prev[l] + i * sH, 0, sH * sizeof(float));
    }
}

static void move_state_row(trainer *tr, size_t dst, size_t src) {
    const rr_rnn_layout *lay = tr->lay;
    for (size_t l = 0; l < lay->L; l++) {
        size_t sH = lay->smult * lay->H[l];
        memcpy(tr->ws.st_prev[l] + dst * sH, tr->ws.st_prev[l] + src * sH, sH * sizeof(float));
    }
}

static void progress(const trainer *tr, const epoch_stats *es, double t0, size_t ev0, size_t total_events,
                     bool final) {
    const size_t epoch = tr->epoch;
    double dt = rr_now() - t0;
    double eps = dt > 0 ? (double)(es->events - ev0) / dt : 0;
    double loss = es->events ? es->loss_sum / (double)es->events : 0;
    double eta = eps > 0 && total_events > es->events ? (double)(total_events - es->events) / eps : 0;
    if (tr->tty) {
        fprintf(stderr, "\repoch %zu/%zu  %5.1f%%  loss %.5f  %.0f ev/s  ETA %.0fs   %s", epoch + 1,
                tr->p->epochs, total_events ? 100.0 * (double)es->events / (double)total_events : 100.0, loss,
                eps, eta, final ? "\n" : "");
        fflush(stderr);
    } else {
        rr_log(2, "epoch %zu/%zu: %zu/%zu events, loss %.6f, %.0f events/s, ETA %.0f s", epoch + 1,
               tr->p->epochs, es->events, total_events, loss, eps, eta);
    }
}

/* ---- dist hooks: one step across MPI ranks (src/dist/dist.h).  Every
 * rank steps together: a rank out of rows takes no step of its own but
 * draws the step's samples and joins the exchange with no rows; the
 * combined gradients are the same on every rank, so the finite check and
 * the update agree everywhere. */

/* A rank with no rows left: no gradient. */
static double dist_no_rows(trainer *tr) {
    rr_step_ws_f32 *w = &tr->ws;
    memset(w->gdense, 0, tr->lay->n_dense * sizeof *w->gdense);
    w->nU = w->nUb = w->nE = 0;
    return 0;
}

/* Combines the step's gradients over the ranks: gdense summed in place,
 * the rows into tr->dist_all; *loss (this rank's row losses over the
 * global batch) becomes the sum over the ranks, what one process's step
 * over all the rows returns, and *n_ev the rows of every rank. */
static void dist_combine(trainer *tr, double *loss, size_t *n_ev) {
    rr_step_ws_f32 *w = &tr->ws;
    rr_dist_rows mine = {w->nU, w->nUb, w->nE, w->urows, w->gU, w->gB, w->erows, w->gE};
    double ls = *loss;
    uint64_t rows = *n_ev;
    rr_error e;
    rr_status s = rr_dist_step_exchange(tr->xchg, &mine, w->gdense, tr->lay->n_dense, &ls, &rows, &tr->dist_all, &e);
    RR_ASSERT(s == RR_OK); /* only a size beyond what trainer_init allocated fails */
    *loss = ls;
    *n_ev = (size_t)rows;
}

/* apply_update over the combined rows (the step's own lists put back after). */
static bool dist_apply_update(trainer *tr) {
    rr_step_ws_f32 *w = &tr->ws;
    const rr_dist_rows own = {w->nU, w->nUb, w->nE, w->urows, w->gU, w->gB, w->erows, w->gE};
    const rr_dist_rows *a = &tr->dist_all;
    w->nU = a->nU, w->nUb = a->nUb, w->nE = a->nE;
    w->urows = a->urows, w->gU = a->gU, w->gB = a->gB, w->erows = a->erows, w->gE = a->gE;
    bool ok = apply_update(tr);
    w->nU = own.nU, w->nUb = own.nUb, w->nE = own.nE;
    w->urows = own.urows, w->gU = own.gU, w->gB = own.gB, w->erows = own.erows, w->gE = own.gE;
    return ok;
}

/* Starts epoch tr->epoch (GRU4Rec's SessionDataIterator order): the first
 * B sessions take the slots, every state row zero. */
static void epoch_begin(trainer *tr) {
    memset(&tr->es, 0, sizeof tr->es);
    tr->n = tr->B < tr->n_order ? tr->B : tr->n_order;
    tr->next = tr->n;
    for (size_t i = 0; i < tr->n; i++) {
        tr->slot_sess[i] = (size_t)tr->order[i];
        tr->slot_pos[i] = 0;
        zero_state_row(tr, i);
    }
    tr->in_epoch = 1;
}

/* One step of the current epoch from the stream state in tr, then the
 * slots advance: a finished slot takes the next session (state zeroed), or
 * leaves the batch when none is left.  Between two calls the trainer holds
 * a complete, resumable state.  Returns false, taking no step, when the
 * epoch is over, and false after a step whose loss or gradient is not
 * finite (es.numeric set; that update is not applied). */
static bool epoch_step(trainer *tr) {
    const rr_rnn_layout *lay = tr->lay;
    const rr_sessions *ss = tr->sess;
    rr_step_ws_f32 *w = &tr->ws;
    epoch_stats *es = &tr->es;
    size_t n = tr->n;
    /* Without samples a single row has no negative (GRU4Rec stops).  dist
     * hook: the ranks step on until the exchange finds them all done. */
    if (!tr->dist && (n == 0 || (tr->S == 0 && n < 2))) return false;
    for (size_t i = 0; i < n; i++) {
        int64_t e = ss->offsets[tr->slot_sess[i]] + (int64_t)tr->slot_pos[i];
        tr->in[i] = ss->items[e];
        tr->tgt[i] = ss->items[e + 1];
    }
    if (w->mask_e) fill_mask(&tr->rng, w->mask_e, n * lay->in_width, tr->p_embed);
    for (size_t l = 0; l < lay->L; l++)
        if (w->mask_h[l]) fill_mask(&tr->rng, w->mask_h[l], n * lay->H[l], tr->p_hidden[l]);
    const int32_t *samples = tr->S ? rr_sampler_next(tr->sampler) : NULL;
    double loss = n ? step_run_f32(&tr->ctx, w, n, tr->in, tr->tgt, samples) : dist_no_rows(tr);
    /* the step's gradients are complete here (ws.gdense, gU/gB, gE) */
    size_t n_ev = n; /* targets of the step (dist hook: every rank's, and loss their mean) */
    if (tr->dist) {
        dist_combine(tr, &loss, &n_ev);
        if (n_ev == 0 || (tr->S == 0 && n_ev < 2)) return false; /* every rank is done: nothing applied */
    }
    if (!isfinite(loss) || !(tr->dist ? dist_apply_update(tr) : apply_update(tr))) {
        es->numeric = 1;
        return false;
    }
    if (tr->prof) {
        double now = rr_now();
        tr->prof->sec[RR_TS_UPDATE] += now - tr->prof_t;
        tr->prof_t = now;
        tr->prof->steps++;
    }
    es->loss_sum += loss * (double)n_ev;
    es->events += n_ev;
    es->steps++;
    tr->steps_total++;
    /* the new state becomes the previous one */
    for (size_t l = 0; l < lay->L; l++) {
        float *t = w->st_prev[l];
        w->st_prev[l] = w->st_new[l];
        w->st_new[l] = t;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t s = tr->slot_sess[i], pos = tr->slot_pos[i] + 1;
        bool alive = true;
        if (pos + 1 >= rr_session_len(ss, s)) {
            if (tr->next < tr->n_order) {
                s = (size_t)tr->order[tr->next++];
                pos = 0;
                zero_state_row(tr, i);
            } else {
                alive = false;
            }
        }
        if (!alive) continue;
        if (k != i) move_state_row(tr, k, i);
        tr->slot_sess[k] = s;
        tr->slot_pos[k] = pos;
        k++;
    }
    tr->n = k;
    if (tr->prof) {
        double now = rr_now();
        tr->prof->sec[RR_TS_BATCH] += now - tr->prof_t;
        tr->prof_t = now;
    }
    return true;
}


/* Runs the current epoch to its end, from its start or from wherever the
 * stream state says (a resumed checkpoint).  Leaves in_epoch 0 when the
 * epoch ended (es then holds its totals). */
static void run_epoch(trainer *tr, size_t total_events) {
    if (!tr->in_epoch) epoch_begin(tr);
    const double t0 = rr_now();
    const size_t ev0 = tr->es.events; /* the rate counts this run's events only */
    double last_report = t0;
    tr->prof_t = t0;
    while (epoch_step(tr)) {
        if (tr->ck.on && rr_trainer_ckpt_due(tr)) rr_trainer_ckpt_save(tr);
        if (tr->p->verbose && (tr->es.steps & 63) == 0) {
            double now = rr_now();
            if (now - last_report >= (tr->tty ? 0.5 : 10.0)) {
                progress(tr, &tr->es, t0, ev0, total_events, false);
                last_report = now;
            }
        }
    }
    if (tr->es.numeric) return;
    tr->in_epoch = 0;
    if (tr->p->verbose) progress(tr, &tr->es, t0, ev0, total_events, true);
}

static rr_status set_meta_num(rr_model *m, const char *key, double v, rr_error *err) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", v);
    return rr_model_set_meta(m, key, buf, err);
}

static rr_status set_train_meta(rr_model *m, const rr_train_params *p, rr_error *err) {
    char layers[RR_MAX_LAYERS * 8 + 1];
    size_t q = 0;
    layers[0] = 0;
    for (size_t l = 0; l < p->n_layers; l++)
        q += (size_t)snprintf(layers + q, sizeof layers - q, "%s%zu", l ? "," : "", p->layers[l]);
    rr_status s = rr_model_set_meta(m, "train.loss", rr_train_loss_name(p->loss), err);
    if (!s) s = rr_model_set_meta(m, "train.layers", layers, err);
    if (!s) s = set_meta_num(m, "train.batch_size", (double)p->batch_size, err);
    if (!s) s = set_meta_num(m, "train.n_sample", (double)p->n_sample, err);
    if (!s) s = set_meta_num(m, "train.sample_alpha", p->sample_alpha, err);
    if (!s) s = set_meta_num(m, "train.lr", p->lr, err);
    if (!s) s = set_meta_num(m, "train.momentum", p->momentum, err);
    if (!s) s = set_meta_num(m, "train.dropout_embed", p->dropout_embed, err);
    if (!s) s = set_meta_num(m, "train.dropout_hidden", p->dropout_hidden, err);
    if (!s) s = set_meta_num(m, "train.logq", p->logq, err);
    if (!s) s = set_meta_num(m, "train.bpreg", p->bpreg, err);
    if (!s) s = set_meta_num(m, "train.elu_param", p->elu_param, err);
    if (!s) s = set_meta_num(m, "train.seed", (double)p->seed, err);
    if (!s) s = set_meta_num(m, "train.epochs", (double)p->epochs, err);
    return s;
}

/* Validation score of the current weights: recall@20 (and mrr@20). */
static rr_status validate(const rr_model *m, const rr_dataset *valid, const rr_train_params *p, double *recall,
                          double *mrr, rr_error *err) {
    rr_eval_params ep;
    rr_eval_params_default(&ep);
    ep.n_cutoffs = 1;
    ep.cutoffs[0] = 20;
    ep.threads = p->threads;
    rr_eval_result res;
    rr_eval_split split; /* dist hook: each rank ranks its share (one process: all) */
    rr_dist_eval_split(rr_dist_world(), &split);
    rr_status s = rr_evaluate_split(m, valid, &ep, &split, &res, err);
    if (s) return s;
    *recall = res.recall[0];
    *mrr = res.mrr[0];
    return RR_OK;
}

static void json_epoch(FILE *f, size_t epoch, const epoch_stats *es, double secs, int have_valid, double recall,
                       double mrr) {
    if (!f) return;
    fprintf(f, "{\"epoch\":%zu,\"loss\":%.9g,\"events\":%zu,\"steps\":%zu,\"seconds\":%.3f,\"events_per_s\":%.1f",
            epoch + 1, es->events ? es->loss_sum / (double)es->events : 0.0, es->events, es->steps, secs,
            secs > 0 ? (double)es->events / secs : 0.0);
    if (have_valid) fprintf(f, ",\"recall@20\":%.6f,\"mrr@20\":%.6f", recall, mrr);
    fprintf(f, ",\"numeric_error\":%s}\n", es->numeric ? "true" : "false");
    fflush(f);
}

const char *rr_train_loss_name(rr_loss l) {
    switch (l) {
    case RR_LOSS_CROSS_ENTROPY: return "cross-entropy";
    case RR_LOSS_BPR_MAX: return "bpr-max";
    case RR_LOSS_TOP1_MAX: return "top1-max";
    case RR_LOSS_BPR: return "bpr";
    case RR_LOSS_TOP1: return "top1";
    }
    return "?";
}

const char *rr_train_stage_name(rr_train_stage s) {
    static const char *names[RR_TS_N] = {"batch", "forward", "score", "loss", "bwd-out",
                                         "bwd-cell", "dense-grad", "rows", "update"};
    return (unsigned)s < RR_TS_N ? names[s] : "?";
}

/* Early stopping: patience epochs in a row without a better validation
 * score.  A condition on the saved state, so a resumed run stops where the
 * uninterrupted one did. */
static bool stop_early(const trainer *tr, const rr_dataset *valid) {
    return valid && tr->p->patience > 0 && tr->since_best >= tr->p->patience;
}

rr_status rr_rnn_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid, const rr_train_params *p,
                     rr_error *err) {
    return rr_rnn_fit_prof(out, train, valid, p, NULL, err);
}

rr_status rr_rnn_fit_prof(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                          const rr_train_params *p, rr_train_prof *prof, rr_error *err) {
    *out = NULL;
    const char *msg = rr_train_params_check(p);
    if (msg) return rr_err(err, RR_ERR_ARG, "%s", msg);
    rr_rnn_shape shape;
    rr_status s = rr_rnn_shape_from_params(&shape, p, train->items.n, err);
    if (s) return s;
    rr_model *m = NULL;
    s = rr_model_new_common(&m, rr_rnn_ops_for(shape.cell), train, err);
    if (s) return s;
    rr_rnn *r = NULL;
    s = rr_rnn_new(&r, &shape, err);
    if (s) {
        rr_model_free(m);
        return s;
    }
    m->impl = r;
    rr_rng init_rng;
    rr_rng_seed(&init_rng, p->seed);
    rr_rnn_init(r, &init_rng);

    trainer tr;
    const int nt = rr_threads(p->threads);
    s = trainer_init(&tr, m, train, valid, p, nt, prof, err);
    if (!s && p->checkpoint_dir) s = rr_trainer_ckpt_start(&tr, train, valid, nt, err);
    FILE *jf = NULL;
    /* dist hook: a rank that failed to set up fails every rank, no hang */
    if (tr.dist && rr_dist_any(tr.dist, s != RR_OK) && !s)
        s = rr_err(err, RR_ERR_INTERNAL, "another MPI rank failed to set up training (its error is on its stderr)");
    if (!s && p->log_json && rr_dist_rank(tr.dist) == 0) { /* dist hook: rank 0 logs */
        /* resumed: the log continues from where the checkpoint's state had
         * written it (a later epoch's line is dropped, it comes again) */
        struct stat sb;
        if (tr.ck.resumed && stat(p->log_json, &sb) == 0 && (uint64_t)sb.st_size >= tr.ck.log_bytes &&
            truncate(p->log_json, (off_t)tr.ck.log_bytes) != 0)
            rr_log(1, "%s: cannot shorten the JSON log to the checkpoint's %llu bytes: appending", p->log_json,
                   (unsigned long long)tr.ck.log_bytes);
        jf = fopen(p->log_json, tr.ck.resumed ? "a" : "w");
        if (!jf) s = rr_err(err, RR_ERR_IO, "%s: cannot open the JSON log for writing", p->log_json);
        tr.jf = jf;
    }
    if (s) {
        trainer_free(&tr);
        rr_model_free(m);
        return s;
    }
    /* Threads: one OpenMP pool (see the top of the file); OpenBLAS is set
     * to one thread while training and restored afterwards. */
#ifdef _OPENMP
    const int omp_saved = omp_get_max_threads();
    omp_set_num_threads(nt);
#endif
    const int blas_saved = rr_blas_get_threads();
    rr_blas_set_threads(1);

    size_t total_events = 0;
    for (size_t i = 0; i < tr.n_order; i++) total_events += rr_session_len(tr.sess, (size_t)tr.order[i]) - 1;
    if (tr.dist) total_events = (size_t)rr_dist_sum_u64(tr.dist, total_events); /* dist hook */
    int numeric = 0;
    while (s == RR_OK && tr.epoch < p->epochs && !stop_early(&tr, valid)) {
        const size_t ep = tr.epoch;
        double t0 = rr_now();
        run_epoch(&tr, total_events);
        double secs = rr_now() - t0;
        const epoch_stats *es = &tr.es;
        if (es->numeric) {
            numeric = 1;
            json_epoch(jf, ep, es, secs, 0, 0, 0);
            s = rr_err(err, RR_ERR_NUMERIC,
                       "epoch %zu, step %zu: the loss is not finite (NaN or infinity); training stopped, the "
                       "model keeps the %s",
                       ep + 1, es->steps + 1,
                       valid && tr.best_epoch ? "best epoch's weights" : "weights after the last finite step");
            break;
        }
        tr.epochs_run = ep + 1;
        if (tr.dist) {
            /* dist hook: every rank must hold the same parameters */
            char what[64];
            snprintf(what, sizeof what, "the parameter checksum after epoch %zu", ep + 1);
            s = rr_dist_check_same(tr.dist, rr_crc32c(0, r->params, r->lay.n_params * sizeof(float)), what, err);
            if (s) break;
            rr_log(3, "epoch %zu: parameters identical on %d ranks", ep + 1, rr_dist_size(tr.dist));
        }
        tr.last_loss = es->events ? es->loss_sum / (double)es->events : 0;
        double rec = 0, mrr = 0;
        if (valid) {
            s = validate(m, valid, p, &rec, &mrr, err);
            if (s) break;
            rr_log(2, "epoch %zu: loss %.6f, valid recall@20 %.4f mrr@20 %.4f", ep + 1, tr.last_loss, rec, mrr);
            if (rec > tr.best_score) {
                tr.best_score = rec;
                tr.best_mrr = mrr;
                tr.best_epoch = ep + 1;
                tr.since_best = 0;
                memcpy(tr.best, r->params, r->lay.n_params * sizeof(float));
            } else {
                tr.since_best++;
            }
        } else {
            rr_log(2, "epoch %zu: loss %.6f, %.1f s, %.0f events/s", ep + 1, tr.last_loss, secs,
                   secs > 0 ? (double)es->events / secs : 0.0);
        }
        json_epoch(jf, ep, es, secs, valid != NULL, rec, mrr);
        tr.epoch = ep + 1;
        if (tr.ck.on) rr_trainer_ckpt_save(&tr); /* every epoch's end, validation done */
        if (stop_early(&tr, valid))
            rr_log(2, "early stop after epoch %zu: no gain for %zu epochs (best epoch %zu)", ep + 1, tr.since_best,
                   tr.best_epoch);
    }
    if (valid && tr.best_epoch) memcpy(r->params, tr.best, r->lay.n_params * sizeof(float));
    rr_blas_set_threads(blas_saved);
#ifdef _OPENMP
    omp_set_num_threads(omp_saved);
#endif
    if (jf && fclose(jf) != 0 && !s) s = rr_err(err, RR_ERR_IO, "%s: write failed", p->log_json);
    if (tr.ck.on) {
        if (p->checkpoint_failures) *p->checkpoint_failures = tr.ck.failed;
        rr_log(2, "checkpoints: %zu written, %zu failed, %.3f s writing (slowest %.3f s), last %.1f MB",
               tr.ck.written, tr.ck.failed, tr.ck.secs, tr.ck.max_secs, (double)tr.ck.bytes / 1e6);
    }
    if (tr.xchg) {
        /* dist hook: what the step exchange cost (docs/distributed.md) */
        rr_dist_traffic t;
        rr_dist_traffic_get(tr.xchg, &t);
        double k = t.steps ? 1.0 / (double)t.steps : 0;
        rr_log(2,
               "dist: %d ranks, %llu steps; per step on rank %d: headers %.0f B, rows sent %.0f B, received %.0f B, "
               "dense %.0f B (padded gather: %.0f B received); rows %.1f own, %.1f combined; exchange %.3f ms",
               rr_dist_size(tr.dist), (unsigned long long)t.steps, rr_dist_rank(tr.dist), (double)t.hdr_bytes * k,
               (double)t.rows_sent * k, (double)t.rows_recv * k, (double)t.dense_bytes * k, (double)t.pad_bytes * k,
               (double)t.rows_local * k, (double)t.rows_union * k, t.seconds * k * 1e3);
        if (t.owner_steps)
            rr_log(2, "dist owners: per step on rank %d: counts %.0f B, to owners %.0f B sent, %.0f B received, "
                   "combined lists %.0f B received", rr_dist_rank(tr.dist), (double)t.cnt_bytes * k,
                   (double)t.a2a_sent * k, (double)t.a2a_recv * k, (double)t.gath_recv * k);
    }
    const double best_score = tr.best_score, best_mrr = tr.best_mrr, last_loss = tr.last_loss;
    const size_t best_epoch = tr.best_epoch, epochs_run = tr.epochs_run;
    trainer_free(&tr);
    if (numeric) {
        /* An update with finite gradients can still overflow a weight
         * (absurd learning rates): never hand back non-finite weights. */
        size_t bad = 0;
        for (size_t i = 0; i < r->lay.n_params; i++) bad += !isfinite(r->params[i]);
        if (bad) {
            rr_err_prefix(err, "%zu weights are no longer finite, no model returned", bad);
            numeric = 0;
        }
    }
    if (s && !numeric) {
        rr_model_free(m);
        return s;
    }
    rr_error merr;
    rr_status ms = set_train_meta(m, p, &merr);
    if (!ms) ms = set_meta_num(m, "train.epochs_run", (double)epochs_run, &merr);
    if (!ms) ms = set_meta_num(m, "train.final_loss", last_loss, &merr);
    if (!ms && valid) ms = set_meta_num(m, "train.best_epoch", (double)best_epoch, &merr);
    if (!ms && valid) ms = set_meta_num(m, "train.best_recall@20", best_score, &merr);
    if (!ms && valid) ms = set_meta_num(m, "train.best_mrr@20", best_mrr, &merr);
    if (ms) {
        rr_model_free(m);
        if (err) *err = merr;
        return ms;
    }
    *out = m;
    return s; /* RR_OK, or RR_ERR_NUMERIC with a usable model */
}

