/* batch.c - the batcher: HTTP workers enqueue jobs, and each shard thread
 * takes whatever has queued up (at most max_batch states) and scores it
 * with one rr_recommend call, which for an RNN model is one matrix product
 * over the item table instead of one pass over it per request.  Nothing
 * waits to fill a batch: under light load a batch is one request, under
 * heavy load requests pile up while the previous batch is scored.
 *
 * Shard i also owns the live sessions whose id hashes to i: events are
 * applied to a session only on its shard's thread, in arrival order, so a
 * session needs no lock.  rr_recommend keeps its scratch per thread, so a
 * batcher in steady state scores without allocating. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/head.h"
#include "models/model.h"
#include "serve/internal.h"
#include "util/util.h"
#ifdef _OPENMP
#include <omp.h>
#endif

void srv_job_free(srv_job *j) {
    if (!j) return;
    for (size_t i = 0; i < j->n_rows; i++) {
        srv_row *r = &j->rows[i];
        if (j->kind == JOB_ROWS) rr_state_free(r->st);
        rr_rec_req_free(&r->req);
        free(r->top);
        free(r->score);
    }
    free(j->rows);
    srv_model_unref(j->model);
    free(j);
}

size_t srv_shard_of(const struct rr_server *s, const char *sid, size_t len) {
    return (size_t)(rr_hash_bytes(sid, len, 0x51A4D) % s->n_shards);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Grows the scorer's state list to n states and its output to nk entries;
 * false when out of memory. */
static bool scorer_reserve(srv_scorer *sc, size_t n, size_t nk) {
    if (n > sc->cap_n) {
        rr_state **st = rr_realloc_n(sc->states, n, sizeof *st);
        if (!st) return false;
        sc->states = st;
        sc->cap_n = n;
    }
    if (nk > sc->cap_nk) {
        int32_t *t = rr_realloc_n(sc->top, nk, sizeof *t);
        if (t) sc->top = t;
        float *f = t ? rr_realloc_n(sc->score, nk, sizeof *f) : NULL;
        if (!f) return false;
        sc->score = f;
        sc->cap_nk = nk;
    }
    return true;
}

rr_status srv_score_rows(const srv_model *sm, srv_row *const *rows, size_t n, srv_scorer *sc, rr_error *err) {
    size_t ni = rr_model_n_items(sm->m);
    for (int excl = 0; excl < 2; excl++) {
        /* One call per exclude_seen value; the explicit exclude lists are
         * applied here, so each row asks for k + |exclude| candidates. */
        size_t ns = 0, kq = 0;
        for (size_t i = 0; i < n; i++) {
            if (rows[i]->req.exclude_seen != excl) continue;
            ns++;
            size_t want = rows[i]->req.k + rows[i]->req.n_exclude;
            if (want > kq) kq = want;
        }
        if (!ns) continue;
        if (kq > ni) kq = ni;
        size_t need;
        if (!rr_mul_size(ns, kq, &need)) return rr_err(err, RR_ERR_NOMEM, "batch too large");
        if (!scorer_reserve(sc, ns, need)) return rr_err(err, RR_ERR_NOMEM, "out of memory for a batch");
        ns = 0;
        for (size_t i = 0; i < n; i++)
            if (rows[i]->req.exclude_seen == excl) sc->states[ns++] = rows[i]->st;
        /* through the model's screen when it has one (rr_model_use_screen):
         * whole tiles of sessions by the fused engine, a few by the
         * item-major kernel, the exact engine's lists bit for bit */
        rr_status s = rr_recommend(sm->m, sc->states, ns, kq, excl, sc->top, sc->score, err);
        if (s) return s;
        size_t r = 0;
        for (size_t i = 0; i < n; i++) {
            srv_row *row = rows[i];
            if (row->req.exclude_seen != excl) continue;
            const int32_t *ti = sc->top + r * kq;
            const float *ts = sc->score + r * kq;
            r++;
            size_t o = 0;
            for (size_t t = 0; t < kq && o < row->req.k; t++) {
                if (ti[t] < 0) break;
                if (row->req.n_exclude &&
                    bsearch(&ti[t], row->req.exclude, row->req.n_exclude, sizeof(int32_t), cmp_i32))
                    continue;
                row->top[o] = ti[t];
                row->score[o] = ts[t];
                o++;
            }
            for (; o < row->req.k; o++) {
                row->top[o] = -1;
                row->score[o] = -INFINITY;
            }
        }
    }
    return RR_OK;
}

void srv_scorer_free(srv_scorer *sc) {
    free(sc->states);
    free(sc->top);
    free(sc->score);
}

/* Publishes a shard's cache counters for /metrics. */
static void shard_publish(srv_shard *sh) {
    atomic_store(&sh->live, sh->cache.n);
    atomic_store(&sh->bytes, sh->cache.bytes);
    atomic_store(&sh->ev_lru, sh->cache.evicted_lru);
    atomic_store(&sh->ev_ttl, sh->cache.evicted_ttl);
    atomic_store(&sh->ev_memory, sh->cache.evicted_memory);
    atomic_store(&sh->ev_reload, sh->cache.dropped_reload);
}

void srv_sessions_totals(struct rr_server *s, size_t *live, size_t *bytes, uint64_t ev[4]) {
    for (size_t i = 0; i < s->n_shards; i++) {
        srv_shard *sh = &s->shards[i];
        *live += atomic_load(&sh->live);
        *bytes += atomic_load(&sh->bytes);
        ev[0] += atomic_load(&sh->ev_lru);
        ev[1] += atomic_load(&sh->ev_ttl);
        ev[2] += atomic_load(&sh->ev_memory);
        ev[3] += atomic_load(&sh->ev_reload);
    }
}

static void job_fail(srv_job *j, int status, const char *code, const char *msg) {
    j->failed = 1;
    rr_http_err_set(&j->err, status, code, "%s", msg);
}

/* Rebuilds a session's state on model sm by replaying its items. */
static rr_status sess_rebuild(srv_shard *sh, rr_sess *se, const srv_model *sm) {
    rr_state_free(se->st);
    se->st = rr_state_new(sm->m);
    if (!se->st) return RR_ERR_NOMEM;
    rr_status s = rr_state_feed_items(se->st, se->items, se->n);
    if (s) return s;
    se->gen = sm->gen;
    se->epoch = sm->epoch;
    sh->cache.state_bytes = sm->state_bytes;
    rr_cache_account(&sh->cache, se);
    return RR_OK;
}

/* Applies a session job before scoring; returns the session to pin, or
 * NULL when the job is finished (failed, or a delete).  An events job's
 * items are appended to the session here; its RNN steps are taken for the
 * whole batch at once afterwards (batch_steps). */
static rr_sess *sess_apply(srv_shard *sh, srv_job *j, double now) {
    const struct rr_server *srv = sh->srv;
    const srv_model *sm = j->model;
    rr_cache *c = &sh->cache;
    rr_sess *se = rr_cache_get(c, j->sid, j->sid_len, now);
    if (se && se->epoch != sm->epoch) {
        /* Built on an incompatible model: the session is gone. */
        rr_cache_remove(c, se);
        c->dropped_reload++;
        se = NULL;
    }
    if (j->kind == JOB_SESSION_DELETE) {
        if (!se) job_fail(j, 404, "session_not_found", "no live session with this id");
        else {
            j->sess_len = se->n;
            rr_cache_remove(c, se);
        }
        return NULL;
    }
    if (!se && j->kind == JOB_SESSION_GET) {
        job_fail(j, 404, "session_not_found", "no live session with this id");
        return NULL;
    }
    srv_row *row = &j->rows[0];
    if (j->kind == JOB_EVENTS) {
        size_t have = se ? se->n : 0;
        if (row->req.n_items > srv->o.max_session_events ||
            have > srv->o.max_session_events - row->req.n_items) {
            j->failed = 1;
            rr_http_err_set(&j->err, 422, "limit_exceeded",
                            "session would hold %zu events; at most %zu are allowed",
                            have + row->req.n_items, srv->o.max_session_events);
            return NULL;
        }
        if (!se) {
            c->state_bytes = sm->state_bytes;
            se = rr_cache_put(c, j->sid, j->sid_len, now);
            if (!se) {
                job_fail(j, 503, "overloaded", "session cache is full");
                return NULL;
            }
            se->gen = sm->gen;
            se->epoch = sm->epoch;
            j->sess_created = 1;
        }
    }
    if (!se->st || se->gen != sm->gen) {
        if (sess_rebuild(sh, se, sm)) {
            rr_cache_remove(c, se);
            job_fail(j, 500, "internal", "out of memory rebuilding the session");
            return NULL;
        }
    }
    if (j->kind == JOB_EVENTS) {
        for (size_t i = 0; i < row->req.n_items; i++) {
            int32_t it = row->req.items[i];
            if (!rr_cache_push(c, se, it) || rr_state_push(se->st, it) != RR_OK) {
                rr_cache_remove(c, se);
                job_fail(j, 500, "internal", "out of memory feeding the session");
                return NULL;
            }
        }
        rr_cache_account(c, se);
    }
    j->sess_len = se->n;
    row->st = se->st;
    return se;
}

static void job_finish(struct rr_server *srv, srv_job *j) {
    (void)srv;
    /* The waiter is copied first: once done is set the submitter may free j. */
    srv_waiter w = j->waiter;
    atomic_store_explicit(&j->done, 1, memory_order_release);
    if (w.resume) w.resume(w.arg);
}

/* Takes the next batch off the queue (called with sh->mu held).  Stops at
 * max_batch rows, at a job on another model, and at a second job for a
 * session already in the batch (so session jobs stay ordered). */
static size_t take_batch(srv_shard *sh, size_t *n_jobs, size_t *n_rows) {
    size_t maxb = sh->srv->o.max_batch;
    /* The scoring kernels work on tiles of RR_HEAD_TILE sessions, and a
     * part-filled last tile costs about as much as a full one.  So when more
     * than a tile is queued and fewer than max_batch, whole tiles are
     * taken: the remainder starts the next batch, which follows at once
     * (measured in docs/serve.md).  Under light load (a tile or less
     * queued) everything is taken. */
    size_t q = atomic_load(&sh->queued_rows);
    if (sh->srv->o.batch_align && q > RR_HEAD_TILE && q < maxb) maxb = q - q % RR_HEAD_TILE;
    size_t nj = 0, nr = 0;
    const srv_model *model = NULL;
    while (sh->head && nr < maxb && nj < maxb) {
        srv_job *j = sh->head;
        if (model && j->model != model) break;
        if (j->kind != JOB_ROWS) {
            int clash = 0;
            for (size_t i = 0; i < nj; i++)
                if (sh->batch_jobs[i]->kind != JOB_ROWS && sh->batch_jobs[i]->sid_len == j->sid_len &&
                    !memcmp(sh->batch_jobs[i]->sid, j->sid, j->sid_len))
                    clash = 1;
            if (clash) break;
        }
        model = j->model;
        size_t take = j->n_rows - j->next_row;
        if (take > maxb - nr) take = maxb - nr;
        for (size_t r = 0; r < take; r++) sh->batch_rows[nr + r] = &j->rows[j->next_row + r];
        j->next_row += take;
        nr += take;
        atomic_fetch_sub(&sh->queued_rows, take);
        if (nj == 0 || sh->batch_jobs[nj - 1] != j) sh->batch_jobs[nj++] = j;
        if (j->next_row < j->n_rows) break; /* the rest of it goes in the next batch */
        sh->head = j->next;
        if (!sh->head) sh->tail = NULL;
        j->next = NULL;
    }
    *n_jobs = nj;
    *n_rows = nr;
    return nr + nj;
}

/* The RNN steps of a batch's events jobs: time step t of every session
 * with more than t new items, up to STEP_GROUP sessions per ops->step
 * call, so the weights are read once per group instead of once per
 * session.  rr_sgemm gives products of up to 8 rows the same bits whatever
 * their number (nn/gemm.c), so every state is the one rr_state_feed would
 * give; sessions are independent and each one's items go in order. */
#define STEP_GROUP 8

static void batch_steps(const srv_model *sm, srv_job *const *jobs, size_t nj) {
    const rr_model *m = sm->m;
    if (!m->ops->step) return; /* history-only kinds: pushing was all */
    size_t maxlen = 0;
    for (size_t i = 0; i < nj; i++)
        if (jobs[i]->kind == JOB_EVENTS && !jobs[i]->failed && jobs[i]->rows[0].req.n_items > maxlen)
            maxlen = jobs[i]->rows[0].req.n_items;
    for (size_t t = 0; t < maxlen; t++) {
        float *hv[STEP_GROUP];
        int32_t iv[STEP_GROUP];
        size_t g = 0;
        for (size_t i = 0; i < nj; i++) {
            const srv_job *j = jobs[i];
            if (j->kind != JOB_EVENTS || j->failed || j->rows[0].req.n_items <= t || !j->rows[0].st->h) continue;
            hv[g] = j->rows[0].st->h;
            iv[g++] = j->rows[0].req.items[t];
            if (g == STEP_GROUP) {
                m->ops->step(m, hv, iv, g);
                g = 0;
            }
        }
        if (g) m->ops->step(m, hv, iv, g);
    }
}

static void run_batch(srv_shard *sh, size_t nj, size_t nr) {
    struct rr_server *srv = sh->srv;
    double now = rr_now();
    if (nj == 0) return;
    const srv_model *sm = sh->batch_jobs[0]->model;
    if (sm->epoch != sh->epoch_seen) {
        /* First batch on a model of a new epoch: drop incompatible sessions
         * now rather than one by one as they are touched. */
        rr_cache_drop_epoch(&sh->cache, sm->epoch);
        sh->epoch_seen = sm->epoch;
    }
    rr_sess **pinned = sh->pinned; /* (max_batch) */
    size_t n_pinned = 0;
    srv_row **live = sh->live_rows;    /* (max_batch) rows to score */
    size_t n_live = 0;
    for (size_t i = 0, r = 0; i < nj; i++) {
        srv_job *j = sh->batch_jobs[i];
        srv_hist_observe(&srv->metrics.batch_wait, now - j->t_enqueue);
        if (j->kind == JOB_ROWS) {
            /* Rows of this job that are in this batch. */
            while (r < nr && sh->batch_rows[r] >= j->rows && sh->batch_rows[r] < j->rows + j->n_rows)
                live[n_live++] = sh->batch_rows[r++];
            continue;
        }
        rr_sess *se = sess_apply(sh, j, now);
        if (j->kind != JOB_SESSION_DELETE) r++; /* its one row */
        if (se) {
            se->pinned = 1;
            pinned[n_pinned++] = se;
            live[n_live++] = &j->rows[0];
        }
    }
    batch_steps(sm, sh->batch_jobs, nj);
    rr_error err;
    err.msg[0] = 0;
    rr_status s = RR_OK;
    if (n_live) {
        double t0 = rr_now();
        s = srv_score_rows(sm, live, n_live, &sh->scorer, &err);
        srv_hist_observe(&srv->metrics.batch_score, rr_now() - t0);
        srv_hist_observe(&srv->metrics.batch_size, (double)n_live);
    }
    for (size_t i = 0; i < n_pinned; i++) pinned[i]->pinned = 0;
    for (size_t i = 0; i < nj; i++) {
        srv_job *j = sh->batch_jobs[i];
        if (s && !j->failed && j->kind != JOB_SESSION_DELETE)
            job_fail(j, 500, "internal", err.msg[0] ? err.msg : "scoring failed");
        size_t mine = 0;
        for (size_t r = 0; r < nr; r++)
            if (sh->batch_rows[r] >= j->rows && sh->batch_rows[r] < j->rows + j->n_rows) mine++;
        if (j->kind == JOB_ROWS)
            for (size_t r = 0; r < nr; r++)
                if (sh->batch_rows[r] >= j->rows && sh->batch_rows[r] < j->rows + j->n_rows) {
                    rr_state_free(sh->batch_rows[r]->st);
                    sh->batch_rows[r]->st = NULL;
                }
        j->rows_left -= mine;
        if (j->kind != JOB_ROWS && j->n_rows) j->rows[0].st = NULL; /* borrowed from the session */
        if (j->rows_left == 0) job_finish(srv, j);
    }
    shard_publish(sh);
}

/* OpenMP threads each batcher's rr_recommend may split a batch's items
 * over: OMP_NUM_THREADS when set, else half the cores shared among the
 * batchers (at least 1), leaving the rest to the HTTP workers, which build
 * the states of stateless requests.  Measured on 2 shared cores with wrk
 * on the same machine: 1 thread per batcher served ~3,600 stateless req/s
 * against ~3,100 with 2 (bench/bench_serve.sh). */
static int score_threads(const struct rr_server *s) {
    if (getenv("OMP_NUM_THREADS")) return 0; /* keep the environment's */
    int per = rr_threads(0) / (2 * (int)s->n_shards);
    return per < 1 ? 1 : per;
}

static void *shard_main(void *arg) {
    srv_shard *sh = arg;
    struct rr_server *srv = sh->srv;
#ifdef _OPENMP
    int nt = score_threads(srv);
    if (nt > 0) omp_set_num_threads(nt); /* this thread's ICV only */
#endif
    double last_expire = rr_now();
    pthread_mutex_lock(&sh->mu);
    for (;;) {
        while (!sh->head && !sh->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            if (pthread_cond_timedwait(&sh->cv, &sh->mu, &ts) != 0 && !sh->head) {
                /* Idle for a second: expire sessions past their TTL. */
                pthread_mutex_unlock(&sh->mu);
                rr_cache_expire(&sh->cache, rr_now());
                shard_publish(sh);
                pthread_mutex_lock(&sh->mu);
            }
        }
        if (!sh->head && sh->stop) break;
        size_t nj, nr;
        take_batch(sh, &nj, &nr);
        pthread_mutex_unlock(&sh->mu);
        run_batch(sh, nj, nr);
        double now = rr_now();
        if (now - last_expire >= 1.0) {
            /* Busy shards expire too, about once a second. */
            rr_cache_expire(&sh->cache, now);
            shard_publish(sh);
            last_expire = now;
        }
        pthread_mutex_lock(&sh->mu);
    }
    pthread_mutex_unlock(&sh->mu);
    (void)srv;
    return NULL;
}

bool srv_submit(struct rr_server *s, srv_job *j) {
    size_t idx;
    if (j->kind == JOB_ROWS) {
        /* The least loaded shard, ties to a rotating start. */
        size_t start = atomic_fetch_add(&s->rr_next, 1) % s->n_shards, best = start;
        size_t bq = (size_t)-1;
        for (size_t t = 0; t < s->n_shards; t++) {
            size_t i = (start + t) % s->n_shards;
            size_t q = atomic_load(&s->shards[i].queued_rows);
            if (q < bq) bq = q, best = i;
        }
        idx = best;
    } else {
        idx = srv_shard_of(s, j->sid, j->sid_len);
    }
    srv_shard *sh = &s->shards[idx];
    j->rows_left = j->n_rows;
    j->t_enqueue = rr_now();
    pthread_mutex_lock(&sh->mu);
    if (atomic_load(&sh->queued_rows) + j->n_rows > s->o.max_queue || sh->stop) {
        pthread_mutex_unlock(&sh->mu);
        atomic_fetch_add(&s->metrics.overloaded, 1);
        rr_http_err_set(&j->err, 503, "overloaded", "the scoring queue is full; retry later");
        return false;
    }
    atomic_fetch_add(&sh->queued_rows, j->n_rows);
    j->next = NULL;
    if (sh->tail) sh->tail->next = j;
    else sh->head = j;
    sh->tail = j;
    pthread_cond_signal(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    return true;
}

rr_status srv_shards_start(struct rr_server *s, rr_error *err) {
    s->n_shards = (size_t)rr_threads(s->o.batchers);
    s->shards = rr_calloc_n(s->n_shards, sizeof *s->shards);
    if (!s->shards) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    size_t per_n = s->o.max_sessions / s->n_shards + 1;
    size_t per_b = s->o.session_memory / s->n_shards;
    size_t mb = s->o.max_batch;
    for (size_t i = 0; i < s->n_shards; i++) {
        srv_shard *sh = &s->shards[i];
        sh->srv = s;
        sh->index = i;
        pthread_mutex_init(&sh->mu, NULL);
        pthread_cond_init(&sh->cv, NULL);
        sh->batch_rows = rr_malloc_n(mb, sizeof *sh->batch_rows);
        sh->batch_jobs = rr_malloc_n(mb, sizeof *sh->batch_jobs);
        sh->pinned = rr_malloc_n(mb, sizeof *sh->pinned);
        sh->live_rows = rr_malloc_n(mb, sizeof *sh->live_rows);
        if (!sh->batch_rows || !sh->batch_jobs || !sh->pinned || !sh->live_rows)
            return rr_err(err, RR_ERR_NOMEM, "out of memory");
        rr_status st = rr_cache_init(&sh->cache, per_n, per_b, s->o.session_ttl, err);
        if (st) return st;
        if (pthread_create(&sh->thread, NULL, shard_main, sh) != 0)
            return rr_err(err, RR_ERR_INTERNAL, "cannot start a batcher thread");
        sh->started = 1;
    }
    return RR_OK;
}

void srv_shards_stop(struct rr_server *s) {
    for (size_t i = 0; i < s->n_shards; i++) {
        srv_shard *sh = &s->shards[i];
        if (!sh->started) continue;
        pthread_mutex_lock(&sh->mu);
        sh->stop = 1;
        pthread_cond_signal(&sh->cv);
        pthread_mutex_unlock(&sh->mu);
        pthread_join(sh->thread, NULL);
        sh->started = 0;
    }
}

void srv_shards_free(struct rr_server *s) {
    for (size_t i = 0; i < s->n_shards; i++) {
        srv_shard *sh = &s->shards[i];
        rr_cache_clear(&sh->cache);
        free(sh->batch_rows);
        free(sh->batch_jobs);
        free(sh->pinned);
        free(sh->live_rows);
        srv_scorer_free(&sh->scorer);
        pthread_mutex_destroy(&sh->mu);
        pthread_cond_destroy(&sh->cv);
    }
    free(s->shards);
    s->shards = NULL;
    s->n_shards = 0;
}
