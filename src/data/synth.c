/* synth.c - synthetic clickstreams with learnable sequential structure
 * (model in rnnrec.h above rr_synth_params).
 *
 * What makes it learnable, and by whom:
 *   - Zipf popularity: a popularity baseline gets the head right.
 *   - preferred successors (p_follow): a first-order Markov model learns
 *     them, and does well.
 *   - latent session topics: draws that are not transitions come from the
 *     session's current topic, which only the history reveals (several
 *     items back, through topic switches), so a sequence model beats the
 *     Markov model; re-clicks of earlier items reward memory as well.
 *   - nothing is deterministic, so no model is perfect.
 * Items are indexed by popularity rank internally; public ids are a seeded
 * permutation of 1..n_items so ids carry no rank information. */
#include "data/synth.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data/dataset.h"

#define SYN_BUF ((size_t)1 << 20)

void rr_synth_params_default(rr_synth_params *p) {
    memset(p, 0, sizeof *p);
    p->seed = 1;
    p->n_events = 200000;
    p->n_items = 5000;
    p->n_topics = 50;
    p->zipf = 1.0;
    p->mean_length = 4.5;
    p->days = 30;
    p->n_successors = 4;
    p->p_follow = 0.5;
    p->p_switch = 0.1;
    p->p_repeat = 0.05;
    p->p_cross = 0.15;
    p->epoch = 1577836800; /* 2020-01-01T00:00:00Z */
}

const char *rr_synth_params_check(const rr_synth_params *p) {
    if (!p) return "no parameters";
    if (p->n_events < 1) return "n_events (--events) must be at least 1";
    if (p->n_events > ((size_t)1 << 40)) return "n_events (--events) is absurdly large";
    if (p->n_items < 2) return "n_items (--items) must be at least 2";
    if (p->n_items > 100000000) return "n_items (--items) must be at most 100000000";
    if (p->n_topics < 1 || p->n_topics > p->n_items)
        return "n_topics (--topics) must be between 1 and the number of items";
    if (!(p->zipf >= 0 && p->zipf <= 5)) return "zipf (--zipf) must be in [0, 5]";
    if (!(p->mean_length >= 1 && p->mean_length <= 100))
        return "mean_length (--mean-length) must be in [1, 100]";
    if (!(p->days > 0 && p->days <= 36500)) return "days (--days) must be in (0, 36500]";
    if (p->n_successors < 1 || p->n_successors > RR_SYNTH_MAX_SUCC)
        return "n_successors (--successors) must be in [1, 16]";
    if (!(p->p_follow >= 0 && p->p_follow <= 1)) return "p_follow (--follow) must be in [0, 1]";
    if (!(p->p_switch >= 0 && p->p_switch <= 1)) return "p_switch (--switch) must be in [0, 1]";
    if (!(p->p_repeat >= 0 && p->p_repeat <= 1)) return "p_repeat (--repeat) must be in [0, 1]";
    if (!(p->p_cross >= 0 && p->p_cross <= 1)) return "p_cross (--cross) must be in [0, 1]";
    if (p->p_follow + p->p_repeat > 1) return "p_follow + p_repeat must be at most 1";
    if (p->epoch < 0 || p->epoch > ((int64_t)1 << 40)) return "epoch must be in [0, 2^40]";
    return NULL;
}

/* Index of the first cum[i] > u*cum[n-1] in [0, n). */
static size_t draw_cum(const double *cum, size_t n, double u) {
    double x = u * cum[n - 1];
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > x) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static int32_t draw_topic_item(rr_synth *g, size_t topic) {
    size_t a = g->topic_start[topic], b = g->topic_start[topic + 1];
    return g->members[a + draw_cum(g->member_cum + a, b - a, rr_rng_uniform(&g->rng))];
}

static size_t draw_topic(rr_synth *g) {
    return draw_cum(g->topic_cum, g->n_topics, rr_rng_uniform(&g->rng));
}

void rr_synth_free(rr_synth *g) {
    free(g->topic_of);
    free(g->members);
    free(g->member_cum);
    free(g->topic_start);
    free(g->topic_cum);
    free(g->succ);
    free(g->item_id);
    memset(g, 0, sizeof *g);
}

rr_status rr_synth_init(rr_synth *g, const rr_synth_params *p, rr_error *err) {
    memset(g, 0, sizeof *g);
    const char *bad = rr_synth_params_check(p);
    if (bad) return rr_err(err, RR_ERR_ARG, "synth: %s", bad);
    g->p = *p;
    g->n_items = p->n_items;
    g->n_topics = p->n_topics;
    g->n_succ = p->n_successors;
    size_t n = g->n_items, k = g->n_succ, nk;
    if (!rr_mul_size(n, k, &nk)) return rr_err(err, RR_ERR_NOMEM, "synth: too many items");
    g->topic_of = rr_malloc_n(n, sizeof *g->topic_of);
    g->members = rr_malloc_n(n, sizeof *g->members);
    g->member_cum = rr_malloc_n(n, sizeof *g->member_cum);
    g->topic_start = rr_calloc_n(g->n_topics + 1, sizeof *g->topic_start);
    g->topic_cum = rr_malloc_n(g->n_topics, sizeof *g->topic_cum);
    g->succ = rr_malloc_n(nk, sizeof *g->succ);
    g->item_id = rr_malloc_n(n, sizeof *g->item_id);
    if (!g->topic_of || !g->members || !g->member_cum || !g->topic_start || !g->topic_cum ||
        !g->succ || !g->item_id) {
        rr_synth_free(g);
        return rr_err(err, RR_ERR_NOMEM, "synth: out of memory for %zu items", n);
    }
    rr_rng_seed(&g->rng, p->seed);
    /* Topics: the first n_topics ranks seed one topic each (no topic is
     * empty); the rest are assigned at random. */
    for (size_t i = 0; i < n; i++)
        g->topic_of[i] = (int32_t)(i < g->n_topics ? i : rr_rng_below(&g->rng, g->n_topics));
    for (size_t i = 0; i < n; i++) g->topic_start[g->topic_of[i] + 1]++;
    for (size_t t = 0; t < g->n_topics; t++) g->topic_start[t + 1] += g->topic_start[t];
    /* Group members by topic in rank order; popularity w(rank r) = (r+1)^-zipf. */
    size_t *fill = rr_calloc_n(g->n_topics, sizeof *fill);
    if (!fill) {
        rr_synth_free(g);
        return rr_err(err, RR_ERR_NOMEM, "synth: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        size_t t = (size_t)g->topic_of[i];
        size_t pos = g->topic_start[t] + fill[t]++;
        double w = pow((double)(i + 1), -p->zipf);
        g->members[pos] = (int32_t)i;
        g->member_cum[pos] = (fill[t] > 1 ? g->member_cum[pos - 1] : 0.0) + w;
    }
    free(fill);
    double acc = 0;
    for (size_t t = 0; t < g->n_topics; t++) {
        acc += g->member_cum[g->topic_start[t + 1] - 1];
        g->topic_cum[t] = acc;
    }
    /* Successor weights 1, 1/2, 1/3, ... (strongest first). */
    acc = 0;
    for (size_t j = 0; j < k; j++) g->succ_cum[j] = acc += 1.0 / (double)(j + 1);
    /* Preferred successors: mostly in the item's topic, drawn by topic
     * popularity, distinct and never the item itself (when avoidable). */
    for (size_t i = 0; i < n; i++) {
        int32_t *s = g->succ + i * k;
        for (size_t j = 0; j < k; j++) {
            int32_t c = 0;
            for (int tries = 0; tries < 8; tries++) {
                size_t t = rr_rng_uniform(&g->rng) < p->p_cross ? draw_topic(g)
                                                                : (size_t)g->topic_of[i];
                c = draw_topic_item(g, t);
                int dup = c == (int32_t)i;
                for (size_t q = 0; q < j && !dup; q++) dup = s[q] == c;
                if (!dup) break;
            }
            s[j] = c;
        }
    }
    /* Public ids: a Fisher-Yates permutation of 1..n. */
    for (size_t i = 0; i < n; i++) g->item_id[i] = (uint32_t)(i + 1);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rr_rng_below(&g->rng, i + 1);
        uint32_t x = g->item_id[i];
        g->item_id[i] = g->item_id[j];
        g->item_id[j] = x;
    }
    /* Length 1 + floor(X), X lognormal with E[X] = mean - 0.5 (floor loses
     * about half a unit); sigma 1 gives a heavy tail like real logs. */
    g->len_sigma = 1.0;
    double ex = p->mean_length - 0.5 > 0.05 ? p->mean_length - 0.5 : 0.05;
    g->len_mu = log(ex) - 0.5 * g->len_sigma * g->len_sigma;
    return RR_OK;
}

size_t rr_synth_next(rr_synth *g, int32_t *items, double *times) {
    const rr_synth_params *p = &g->p;
    if (g->events_done >= p->n_events) return 0;
    rr_rng *r = &g->rng;
    size_t len = 1 + (size_t)floor(exp(g->len_mu + g->len_sigma * rr_rng_normal(r)));
    if (len > RR_SYNTH_MAX_LEN) len = RR_SYNTH_MAX_LEN;
    if (len > p->n_events - g->events_done) len = p->n_events - g->events_done;
    /* Session starts advance with the share of events produced, so the log
     * spans `days` and is (nearly) in time order; a minute of jitter. */
    double span = p->days * 86400.0;
    double t = floor((double)p->epoch + span * ((double)g->events_done / (double)p->n_events) +
                     60.0 * rr_rng_uniform(r));
    size_t topic = draw_topic(g);
    for (size_t j = 0; j < len; j++) {
        int32_t it;
        double u = rr_rng_uniform(r);
        if (j == 0) {
            it = draw_topic_item(g, topic);
        } else if (u < p->p_follow) {
            int32_t prev = items[j - 1];
            it = g->succ[(size_t)prev * g->n_succ +
                         draw_cum(g->succ_cum, g->n_succ, rr_rng_uniform(r))];
            topic = (size_t)g->topic_of[it];
        } else if (u < p->p_follow + p->p_repeat && j >= 2) {
            it = items[rr_rng_below(r, j - 1)]; /* an earlier item, not the last */
        } else {
            if (rr_rng_uniform(r) < p->p_switch) topic = draw_topic(g);
            it = draw_topic_item(g, topic);
            if (it == items[j - 1]) it = draw_topic_item(g, topic); /* fewer immediate repeats */
        }
        if (j > 0) {
            /* Dwell time: lognormal, median 40 s, at least 1 s, at most 1 h. */
            double gap = ceil(exp(log(40.0) + 1.1 * rr_rng_normal(r)));
            if (gap < 1) gap = 1;
            if (gap > 3600) gap = 3600;
            t += gap;
        }
        items[j] = it;
        times[j] = t;
    }
    g->events_done += len;
    g->sessions_done++;
    return len;
}

/* ---------------------------------------------------------- in memory */

rr_status rr_synth_generate(const rr_synth_params *p, rr_dataset **out, rr_error *err) {
    *out = NULL;
    rr_synth g;
    rr_status st = rr_synth_init(&g, p, err);
    if (st) return st;
    rr_dataset *d = rr_dataset_new();
    rr_sessions *s = d ? &d->s : NULL;
    size_t cap = p->n_events / (size_t)(p->mean_length > 1 ? p->mean_length : 1) + 16;
    if (d) {
        s->items = rr_malloc_n(p->n_events, sizeof *s->items);
        s->times = rr_malloc_n(p->n_events, sizeof *s->times);
        s->offsets = rr_malloc_n(cap + 1, sizeof *s->offsets);
    }
    if (!d || !s->items || !s->times || !s->offsets) {
        rr_dataset_free(d);
        rr_synth_free(&g);
        return rr_err(err, RR_ERR_NOMEM, "synth: out of memory for %zu events", p->n_events);
    }
    s->offsets[0] = 0;
    int32_t idx[RR_SYNTH_MAX_LEN];
    double tm[RR_SYNTH_MAX_LEN];
    size_t len, ns = 0, ne = 0;
    while (st == RR_OK && (len = rr_synth_next(&g, idx, tm)) > 0) {
        if (ns + 1 >= cap) {
            int64_t *o = rr_realloc_n(s->offsets, 2 * cap + 1, sizeof *o);
            if (!o) {
                st = rr_err(err, RR_ERR_NOMEM, "synth: out of memory");
                break;
            }
            s->offsets = o;
            cap *= 2;
        }
        char id[24];
        int n = snprintf(id, sizeof id, "%zu", ns + 1);
        int32_t si;
        st = rr_vocab_add(&d->sessions, id, (size_t)n, &si, err);
        for (size_t j = 0; st == RR_OK && j < len; j++) {
            n = snprintf(id, sizeof id, "%u", g.item_id[idx[j]]);
            st = rr_vocab_add(&d->items, id, (size_t)n, &s->items[ne], err);
            s->times[ne++] = tm[j];
        }
        s->offsets[++ns] = (int64_t)ne;
    }
    rr_synth_free(&g);
    if (st == RR_OK) {
        s->n_sessions = ns;
        s->n_events = ne;
        d->sess_id = rr_malloc_n(ns, sizeof *d->sess_id);
        if (!d->sess_id) st = rr_err(err, RR_ERR_NOMEM, "synth: out of memory");
        for (size_t i = 0; st == RR_OK && i < ns; i++) d->sess_id[i] = (int32_t)i;
    }
    if (st) {
        rr_dataset_free(d);
        return st;
    }
    *out = d;
    return RR_OK;
}

/* ------------------------------------------------------------- to file */

typedef struct sink {
    FILE *f;
    int gz;
    z_stream z;
    unsigned char *zout; /* (SYN_BUF) deflate output */
    const char *name;
} sink;

static rr_status sink_put(sink *k, const char *buf, size_t n, int finish, rr_error *err) {
    if (!k->gz) {
        if (n && fwrite(buf, 1, n, k->f) != n)
            return rr_err(err, RR_ERR_IO, "%s: write failed: %s", k->name, strerror(errno));
        return RR_OK;
    }
    k->z.next_in = (unsigned char *)buf;
    k->z.avail_in = (uInt)n;
    for (;;) {
        k->z.next_out = k->zout;
        k->z.avail_out = (uInt)SYN_BUF;
        int r = deflate(&k->z, finish ? Z_FINISH : Z_NO_FLUSH);
        if (r == Z_STREAM_ERROR) return rr_err(err, RR_ERR_INTERNAL, "%s: deflate failed", k->name);
        size_t have = SYN_BUF - k->z.avail_out;
        if (have && fwrite(k->zout, 1, have, k->f) != have)
            return rr_err(err, RR_ERR_IO, "%s: write failed: %s", k->name, strerror(errno));
        if (finish ? r == Z_STREAM_END : k->z.avail_out != 0) break;
    }
    return RR_OK;
}

static size_t put_uint(char *o, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) o[i] = tmp[n - 1 - i];
    return n;
}

static rr_status emit(const rr_synth_params *p, FILE *f, int gz, const char *name, rr_error *err) {
    rr_synth g;
    rr_status st = rr_synth_init(&g, p, err);
    if (st) return st;
    sink k;
    memset(&k, 0, sizeof k);
    k.f = f;
    k.gz = gz;
    k.name = name;
    char *buf = malloc(SYN_BUF);
    if (gz) {
        k.zout = malloc(SYN_BUF);
        /* Level 1: the generator should not wait on the compressor; no
         * file name or mtime in the header, so output is reproducible. */
        if (k.zout && deflateInit2(&k.z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(k.zout);
            k.zout = NULL;
        }
    }
    if (!buf || (gz && !k.zout)) {
        free(buf);
        free(k.zout);
        rr_synth_free(&g);
        return rr_err(err, RR_ERR_NOMEM, "synth: out of memory");
    }
    static const char header[] = "session_id\titem_id\ttimestamp\n";
    size_t n = sizeof header - 1;
    memcpy(buf, header, n);
    int32_t idx[RR_SYNTH_MAX_LEN];
    double tm[RR_SYNTH_MAX_LEN];
    size_t len;
    while (st == RR_OK && (len = rr_synth_next(&g, idx, tm)) > 0) {
        /* a row is < 72 bytes: two integers, one timestamp, separators */
        if (n + len * 72 > SYN_BUF) {
            st = sink_put(&k, buf, n, 0, err);
            n = 0;
        }
        for (size_t j = 0; j < len; j++) {
            n += put_uint(buf + n, g.sessions_done);
            buf[n++] = '\t';
            n += put_uint(buf + n, g.item_id[idx[j]]);
            buf[n++] = '\t';
            n += put_uint(buf + n, (uint64_t)tm[j]);
            buf[n++] = '\n';
        }
    }
    if (st == RR_OK) st = sink_put(&k, buf, n, 1, err);
    if (gz) deflateEnd(&k.z);
    free(k.zout);
    free(buf);
    rr_synth_free(&g);
    return st;
}

typedef struct wctx {
    const rr_synth_params *p;
    int gz;
    const char *path;
} wctx;

static rr_status write_cb(FILE *f, void *user, rr_error *err) {
    const wctx *c = user;
    return emit(c->p, f, c->gz, c->path, err);
}

rr_status rr_synth_write(const rr_synth_params *p, const char *path, rr_error *err) {
    if (!path) return rr_err(err, RR_ERR_ARG, "synth: no output path");
    const char *bad = rr_synth_params_check(p);
    if (bad) return rr_err(err, RR_ERR_ARG, "synth: %s", bad);
    size_t n = strlen(path);
    wctx c = {p, n > 3 && !strcmp(path + n - 3, ".gz"), path};
    return rr_write_atomic(path, write_cb, &c, err);
}

rr_status rr_synth_write_fd(const rr_synth_params *p, int fd, int gzip, rr_error *err) {
    int fd2 = dup(fd);
    FILE *f = fd2 >= 0 ? fdopen(fd2, "wb") : NULL;
    if (!f) {
        if (fd2 >= 0) close(fd2);
        return rr_err(err, RR_ERR_IO, "synth: cannot open output descriptor %d", fd);
    }
    rr_status st = emit(p, f, gzip, "<output>", err);
    if (fclose(f) != 0 && st == RR_OK)
        st = rr_err(err, RR_ERR_IO, "synth: write failed: %s", strerror(errno));
    return st;
}
