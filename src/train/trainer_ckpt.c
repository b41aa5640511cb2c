/* trainer_ckpt.c - the trainer's checkpoints (checkpoint.h,
 * docs/checkpoints.md): the trainer's state viewed as an rr_ckpt to write
 * it and filled from one to resume, when one is due, and the start of a
 * checkpointed run (fingerprint, folder, resume with fallback to the older
 * checkpoint).  Under MPI (dist hooks) rank 0 owns the folder and writes
 * every rank's stream record; in one process every hook is skipped. */
#include "train/trainer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Points c (and its one stream record st) at the trainer's state. */
static void ck_view(trainer *tr, rr_ckpt *c, rr_ckpt_stream *st) {
    memset(c, 0, sizeof *c);
    memset(st, 0, sizeof *st);
    c->fingerprint = tr->ck.fingerprint;
    c->t = tr->t;
    c->steps_total = tr->steps_total;
    c->epoch = tr->epoch;
    c->in_epoch = tr->in_epoch;
    c->loss_sum = tr->es.loss_sum;
    c->events = tr->es.events;
    c->steps = tr->es.steps;
    c->best_score = tr->best_score;
    c->best_mrr = tr->best_mrr;
    c->last_loss = tr->last_loss;
    c->best_epoch = tr->best_epoch;
    c->since_best = tr->since_best;
    c->epochs_run = tr->epochs_run;
    c->has_sampler = tr->sampler != NULL;
    if (tr->sampler) rr_sampler_get_pos(tr->sampler, &c->sampler);
    c->weights = tr->r->params;
    c->moment[0] = tr->s1;
    const bool bf16 = rr_optim_s2_size(&tr->opt) == sizeof(uint16_t);
    c->moment[1] = bf16 ? NULL : tr->s2;
    c->moment2_bf16 = bf16 ? tr->s2 : NULL;
    c->has_best = tr->best && tr->best_epoch > 0;
    c->best = tr->best;
    st->n = tr->n;
    st->next = tr->next;
    st->slot_sess = tr->slot_sess;
    st->slot_pos = tr->slot_pos;
    for (size_t l = 0; l < tr->lay->L; l++) st->state[l] = tr->ws.st_prev[l];
    st->rng = tr->rng;
    c->n_streams = 1;
    c->streams = st;
}

/* ---- dist hooks for checkpoints: rank 0 alone locks the folder and
 * writes, with one stream record per rank gathered from every rank; to
 * resume, every rank reads the same file (the folder must be visible to
 * every rank) and takes its own record back.  A record: n, next, the
 * dropout RNG, then slot_sess, slot_pos (ck_B each) and every layer's
 * state rows (ck_B rows). */
typedef struct dist_rec_head {
    uint64_t n, next;
    rr_rng rng;
} dist_rec_head;

/* Points st at record q's arrays. */
static void dist_rec_view(trainer *tr, size_t q, rr_ckpt_stream *st) {
    unsigned char *b = tr->ck_recs + q * tr->ck_rec + sizeof(dist_rec_head);
    memset(st, 0, sizeof *st);
    st->slot_sess = (size_t *)(void *)b;
    st->slot_pos = st->slot_sess + tr->ck_B;
    float *f = (float *)(void *)(st->slot_pos + tr->ck_B);
    for (size_t l = 0; l < tr->lay->L; l++) {
        st->state[l] = f;
        f += tr->ck_B * tr->lay->smult * tr->lay->H[l];
    }
}

/* The layout of P streams (rr_trainer_ckpt_start), the records, and
 * "ranks=P" in the fingerprint (another rank count is another run). */
static rr_status dist_ck_layout(trainer *tr, rr_ckpt_layout *lay, rr_error *err) {
    const size_t P = (size_t)rr_dist_size(tr->dist);
    tr->ck_B = (tr->p->batch_size + P - 1) / P;
    size_t rec = sizeof(dist_rec_head) + 2 * tr->ck_B * sizeof(size_t);
    for (size_t l = 0; l < tr->lay->L; l++) rec += tr->ck_B * tr->lay->smult * tr->lay->H[l] * sizeof(float);
    tr->ck_rec = rec;
    tr->ck_recs = rr_calloc_n(P + 1, rec);
    tr->ck_streams = rr_calloc_n(P, sizeof *tr->ck_streams);
    size_t fl = strlen(tr->ck.fingerprint);
    char *fp = realloc(tr->ck.fingerprint, fl + 32);
    if (!tr->ck_recs || !tr->ck_streams || !fp) return rr_err(err, RR_ERR_NOMEM, "out of memory for checkpoint streams");
    snprintf(fp + fl, 32, "ranks=%zu\n", P);
    tr->ck.fingerprint = fp;
    lay->fingerprint = fp;
    lay->B = tr->ck_B;
    lay->n_streams = P;
    uint64_t most = tr->n_order; /* rank 0's share is the largest */
    rr_status s = rr_dist_bcast(tr->dist, &most, sizeof most, err);
    lay->n_order = (size_t)most;
    return s;
}

/* Gathers every rank's stream record to rank 0 and points c at them
 * there.  Collective; false on the ranks that write nothing. */
static bool dist_ck_gather(trainer *tr, rr_ckpt *c) {
    const size_t P = (size_t)rr_dist_size(tr->dist);
    unsigned char *own = tr->ck_recs + P * tr->ck_rec;
    dist_rec_head h = {tr->n, tr->next, tr->rng};
    memcpy(own, &h, sizeof h);
    rr_ckpt_stream v;
    dist_rec_view(tr, P, &v);
    memcpy(v.slot_sess, tr->slot_sess, tr->n * sizeof(size_t));
    memcpy(v.slot_pos, tr->slot_pos, tr->n * sizeof(size_t));
    for (size_t l = 0; l < tr->lay->L; l++)
        memcpy(v.state[l], tr->ws.st_prev[l], tr->n * tr->lay->smult * tr->lay->H[l] * sizeof(float));
    rr_error e;
    rr_status s = rr_dist_gather(tr->dist, own, tr->ck_rec, tr->ck_recs, &e);
    RR_ASSERT(s == RR_OK); /* the size was checked when the records were sized */
    if (rr_dist_rank(tr->dist) != 0) return false;
    for (size_t q = 0; q < P; q++) {
        dist_rec_view(tr, q, &tr->ck_streams[q]);
        memcpy(&h, tr->ck_recs + q * tr->ck_rec, sizeof h);
        tr->ck_streams[q].n = (size_t)h.n;
        tr->ck_streams[q].next = (size_t)h.next;
        tr->ck_streams[q].rng = h.rng;
    }
    c->n_streams = P;
    c->streams = tr->ck_streams;
    return true;
}

/* Reading: c gets P stream buffers (every rank reads the whole file). */
static void dist_ck_read_streams(trainer *tr, rr_ckpt *c) {
    const size_t P = (size_t)rr_dist_size(tr->dist);
    for (size_t q = 0; q < P; q++) dist_rec_view(tr, q, &tr->ck_streams[q]);
    c->n_streams = P;
    c->streams = tr->ck_streams;
}

/* After a read: this rank's record into the trainer's stream state. */
static rr_status dist_ck_take(trainer *tr, const rr_ckpt *c, const char *path, rr_error *err) {
    const size_t r = (size_t)rr_dist_rank(tr->dist);
    const rr_ckpt_stream *q = &c->streams[r];
    if (q->n > tr->B || q->next > tr->n_order)
        return rr_err(err, RR_ERR_RANGE, "%s: stream %zu holds %zu slots and %zu sessions; rank %zu has %zu and %zu",
                      path, r, q->n, q->next, r, tr->B, tr->n_order);
    tr->n = q->n;
    tr->next = q->next;
    tr->rng = q->rng;
    memcpy(tr->slot_sess, q->slot_sess, q->n * sizeof(size_t));
    memcpy(tr->slot_pos, q->slot_pos, q->n * sizeof(size_t));
    for (size_t l = 0; l < tr->lay->L; l++)
        memcpy(tr->ws.st_prev[l], q->state[l], q->n * tr->lay->smult * tr->lay->H[l] * sizeof(float));
    return RR_OK;
}

/* A load error an older checkpoint would repeat: another run's checkpoint,
 * a newer rnnrec's, or a resource problem. */
static bool ck_fatal(rr_status s) {
    return s == RR_ERR_ARG || s == RR_ERR_VERSION || s == RR_ERR_NOMEM || s == RR_ERR_INTERNAL;
}

/* A checkpoint every rank loaded is used; otherwise all ranks fall back
 * (or stop) together. */
static rr_status dist_ck_agree(trainer *tr, rr_status s, rr_error *e) {
    if (!rr_dist_any(tr->dist, s != RR_OK)) return RR_OK;
    const bool fatal = ck_fatal(s);
    const bool stop = rr_dist_any(tr->dist, fatal);
    if (s == RR_OK || (stop && !fatal))
        s = rr_err(e, stop ? RR_ERR_INTERNAL : RR_ERR_RANGE,
                   "another MPI rank could not load this checkpoint (its error is on its stderr)");
    return s;
}

/* Writes the next checkpoint.  A failure is logged and counted, and
 * training goes on: the previous checkpoint stays as it was, and the next
 * one is tried with a fresh temporary file (see docs/checkpoints.md). */
void rr_trainer_ckpt_save(trainer *tr) {
    ckpt_run *ck = &tr->ck;
    rr_ckpt c;
    rr_ckpt_stream st;
    ck_view(tr, &c, &st);
    if (tr->dist && !dist_ck_gather(tr, &c)) return; /* dist hook: rank 0 writes */
    if (tr->jf) {
        /* the log as far as this state has written it */
        fflush(tr->jf);
        off_t at = ftello(tr->jf);
        c.log_bytes = at > 0 ? (uint64_t)at : 0;
    }
    const double t0 = rr_now();
    rr_error e;
    rr_status s = rr_ckpt_write(tr->p->checkpoint_dir, ck->seq + 1, &c, &ck->lay, &e);
    const double now = rr_now();
    ck->last = now;
    ck->secs += now - t0;
    if (now - t0 > ck->max_secs) ck->max_secs = now - t0;
    if (tr->prof) tr->prof_t = now; /* writing is no training stage */
    if (s) {
        ck->failed++;
        char prev[4096] = "none written yet";
        if (ck->seq) rr_ckpt_path(prev, sizeof prev, tr->p->checkpoint_dir, ck->seq);
        rr_log(0, "checkpoint failed: %s; training continues, the last good checkpoint is %s", e.msg, prev);
        return;
    }
    ck->seq++;
    ck->written++;
    char path[4096];
    struct stat sb;
    if (rr_ckpt_path(path, sizeof path, tr->p->checkpoint_dir, ck->seq) && stat(path, &sb) == 0)
        ck->bytes = (uint64_t)sb.st_size;
    if (tr->in_epoch)
        rr_log(3, "checkpoint %s: epoch %zu, step %zu, %.3f s", path, tr->epoch + 1, tr->es.steps, now - t0);
    else
        rr_log(3, "checkpoint %s: after epoch %zu, %.3f s", path, tr->epoch, now - t0);
}

/* A checkpoint is due after this step (by steps or by time). */
bool rr_trainer_ckpt_due(const trainer *tr) {
    const rr_train_params *p = tr->p;
    /* dist hook: rank 0's clock decides, checked every 16 steps */
    if (tr->dist && !p->checkpoint_steps)
        return tr->steps_total % 16 == 0 &&
               rr_dist_any(tr->dist, rr_dist_rank(tr->dist) == 0 && p->checkpoint_secs > 0 &&
                                         rr_now() - tr->ck.last >= p->checkpoint_secs);
    if (p->checkpoint_steps && tr->steps_total % p->checkpoint_steps == 0) return true;
    return p->checkpoint_secs > 0 && rr_now() - tr->ck.last >= p->checkpoint_secs;
}

/* Loads checkpoint path into the trainer: every buffer and counter. */
static rr_status ck_load(trainer *tr, const char *path, rr_error *err) {
    rr_ckpt c;
    rr_ckpt_stream st;
    ck_view(tr, &c, &st);
    c.fingerprint = NULL;
    if (tr->dist) dist_ck_read_streams(tr, &c); /* dist hook: all P records */
    rr_status s = rr_ckpt_read(path, &tr->ck.lay, &c, err);
    if (s) return s;
    rr_ckpt_clear(&c);
    const rr_train_params *p = tr->p;
    if (c.epoch + (c.in_epoch ? 1 : 0) > p->epochs)
        return rr_err(err, RR_ERR_ARG, "%s: the checkpoint is %s epoch %zu, beyond --epochs %zu", path,
                      c.in_epoch ? "inside" : "after", c.in_epoch ? c.epoch + 1 : c.epoch, p->epochs);
    if (c.has_sampler) {
        s = rr_sampler_set_pos(tr->sampler, &c.sampler, err);
        if (s) {
            rr_err_prefix(err, "%s", path);
            return s;
        }
    }
    if (c.threads_differ)
        rr_log(1, "%s was written with another thread count: training continues, but the model will not be "
               "byte-identical to an uninterrupted run",
               path);
    tr->t = c.t;
    tr->steps_total = c.steps_total;
    tr->epoch = c.epoch;
    tr->in_epoch = c.in_epoch;
    memset(&tr->es, 0, sizeof tr->es);
    tr->es.loss_sum = c.loss_sum;
    tr->es.events = c.events;
    tr->es.steps = c.steps;
    tr->best_score = c.best_score;
    tr->best_mrr = c.best_mrr;
    tr->last_loss = c.last_loss;
    tr->best_epoch = c.best_epoch;
    tr->since_best = c.since_best;
    tr->epochs_run = c.epochs_run;
    tr->n = st.n;
    tr->next = st.next;
    tr->rng = st.rng;
    tr->ck.log_bytes = c.log_bytes;
    if (tr->dist) return dist_ck_take(tr, &c, path, err); /* dist hook: this rank's record */
    return RR_OK;
}

/* Sets checkpointing up: the fingerprint, the folder (stale temporaries
 * removed) and, to resume, the newest checkpoint that loads; one that
 * fails its checks is renamed *.bad and the older one is tried. */
rr_status rr_trainer_ckpt_start(trainer *tr, const rr_dataset *train, const rr_dataset *valid, int nt,
                                rr_error *err) {
    const rr_train_params *p = tr->p;
    const char *dir = p->checkpoint_dir;
    ckpt_run *ck = &tr->ck;
    ck->on = true;
    ck->lock_fd = -1;
    rr_status s = rr_ckpt_fingerprint(&ck->fingerprint, p, train, valid, tr->cache, nt, err);
    if (s) return s;
    rr_ckpt_layout *lay = &ck->lay;
    lay->n_params = tr->lay->n_params;
    lay->n_moments = rr_optim_n_states(&tr->opt);
    lay->L = tr->lay->L;
    for (size_t l = 0; l < lay->L; l++) lay->state_width[l] = tr->lay->smult * tr->lay->H[l];
    lay->B = tr->B;
    lay->n_streams = 1;
    lay->n_order = tr->n_order;
    lay->order = tr->order;
    lay->sess = tr->sess;
    lay->epochs_max = 100000; /* rr_train_params_check's bound */
    lay->has_sampler = tr->sampler != NULL;
    lay->can_have_best = valid != NULL;
    lay->fingerprint = ck->fingerprint;
    if (tr->dist) {
        s = dist_ck_layout(tr, lay, err); /* dist hook: P streams */
        if (s) return s;
    }
    /* one run per folder: a second would race this one's writes (and
     * removing "stale" temporaries would remove its live ones) */
    const bool owner = rr_dist_rank(tr->dist) == 0; /* dist hook: rank 0 alone owns the folder */
    if (owner) s = rr_ckpt_dir_lock(dir, &ck->lock_fd, err);
    size_t removed = 0;
    if (!s && owner) s = rr_ckpt_dir_prepare(dir, &removed, err);
    if (tr->dist && rr_dist_any(tr->dist, s != RR_OK) && !s)
        s = rr_err(err, RR_ERR_IO, "%s: rank 0 could not take the checkpoint folder (its error is on its stderr)", dir);
    if (s) return s;
    if (removed) rr_log(1, "%s: removed %zu temporary file(s) of an interrupted checkpoint write", dir, removed);
    uint64_t seqs[64];
    size_t n = 0;
    s = owner ? rr_ckpt_list(dir, seqs, 64, &n, err) : RR_OK;
    if (tr->dist) {
        /* dist hook: every rank follows rank 0's listing */
        uint64_t nn = s ? UINT64_MAX : n;
        rr_dist_bcast(tr->dist, &nn, sizeof nn, NULL);
        if (nn == UINT64_MAX && !s) s = rr_err(err, RR_ERR_IO, "%s: rank 0 could not list the checkpoints", dir);
        if (s) return s;
        n = (size_t)nn;
        rr_dist_bcast(tr->dist, seqs, n * sizeof *seqs, NULL);
    }
    if (s) return s;
    char path[4096];
    if (!p->resume) {
        if (n) {
            rr_ckpt_path(path, sizeof path, dir, seqs[0]);
            return rr_err(err, RR_ERR_ARG,
                          "%s already holds checkpoints (newest %s): --resume %s continues that run; a new run "
                          "needs an empty folder",
                          dir, path, dir);
        }
        ck->last = rr_now();
        return RR_OK;
    }
    if (n == 0) return rr_err(err, RR_ERR_ARG, "%s: no checkpoint to resume from", dir);
    ck->seq = seqs[0]; /* new ones continue after the newest, usable or not */
    for (size_t i = 0; i < n; i++) {
        rr_ckpt_path(path, sizeof path, dir, seqs[i]);
        rr_error e;
        s = ck_load(tr, path, &e);
        if (tr->dist) s = dist_ck_agree(tr, s, &e); /* dist hook: used only if every rank loaded it */
        if (!s) {
            if (tr->in_epoch) rr_log(2, "resuming from %s: epoch %zu, %zu steps into it", path, tr->epoch + 1, tr->es.steps);
            else rr_log(2, "resuming from %s: after epoch %zu", path, tr->epoch);
            ck->resumed = true;
            ck->last = rr_now();
            return RR_OK;
        }
        if (ck_fatal(s)) {
            if (err) *err = e;
            return s;
        }
        char bad[4096 + 8];
        snprintf(bad, sizeof bad, "%s.bad", path);
        bool moved = rr_dist_rank(tr->dist) == 0 && rename(path, bad) == 0; /* dist hook: rank 0 renames */
        rr_log(1, "checkpoint unusable: %s%s%s%s", e.msg, moved ? " (renamed to " : "", moved ? bad : "",
               moved ? ")" : "");
        if (i + 1 < n) rr_log(1, "falling back to the older checkpoint");
        else {
            if (err) *err = e;
            rr_err_prefix(err, "%s: no usable checkpoint", dir);
            return s;
        }
    }
    return RR_ERR_INTERNAL;
}
