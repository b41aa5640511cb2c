/* prep.c - preprocessing of an event log: cutting sessions at inactivity
 * gaps, filters iterated to a fixpoint, and the train/valid/test splits
 * (semantics in rnnrec.h and docs/data.md).
 *
 * Everything works on one compact copy of the sessions (rr_prep_work, 12
 * bytes per event plus 12 per session); filtering compacts it in place and
 * the splits only describe spans of it until the output datasets are
 * built. */
#include "data/prep.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

#define DAY 86400.0

void rr_prep_params_default(rr_prep_params *p) {
    memset(p, 0, sizeof *p);
    p->min_item_support = 5;
    p->min_session_length = 2;
    p->split = RR_SPLIT_TIME;
    p->test_days = 1;
}

const char *rr_prep_params_check(const rr_prep_params *p) {
    if (!p) return "no parameters";
    if (!(p->session_gap >= 0)) return "session_gap (--session-gap) must be >= 0";
    if (p->split != RR_SPLIT_TIME && p->split != RR_SPLIT_LOO && p->split != RR_SPLIT_NONE)
        return "split must be time, leave-one-out or none";
    if (p->split == RR_SPLIT_TIME && !(p->test_days > 0))
        return "test_days (--test-days) must be > 0 for the time split";
    if (!(p->valid_days >= 0)) return "valid_days (--valid-days) must be >= 0";
    if (p->split == RR_SPLIT_LOO && p->valid_days > 0)
        return "valid_days (--valid-days) does not apply to leave-one-out (use --valid)";
    if (p->split != RR_SPLIT_LOO && p->loo_valid)
        return "loo_valid (--valid) applies only to --split leave-one-out (use --valid-days)";
    return NULL;
}

void rr_prep_work_free(rr_prep_work *w) {
    free(w->off);
    free(w->item);
    free(w->t);
    free(w->name);
    rr_vocab_clear(&w->names);
    memset(w, 0, sizeof *w);
}

rr_status rr_prep_work_init(rr_prep_work *w, const rr_dataset *in, double gap, rr_error *err) {
    memset(w, 0, sizeof *w);
    rr_vocab_init(&w->names);
    if (in->session_ids_dropped) return rr_err(err, RR_ERR_ARG, "prep: the dataset's session ids were dropped");
    const rr_sessions *s = &in->s;
    w->items = &in->items;
    /* Number of sessions after cutting. */
    size_t ns = s->n_sessions;
    if (gap > 0)
        for (size_t i = 0; i < s->n_sessions; i++)
            for (int64_t e = s->offsets[i] + 1; e < s->offsets[i + 1]; e++)
                if (s->times[e] - s->times[e - 1] > gap) ns++;
    size_t ns1;
    if (!rr_add_size(ns, 1, &ns1)) return rr_err(err, RR_ERR_NOMEM, "prep: too many sessions");
    w->off = rr_malloc_n(ns1, sizeof *w->off);
    w->item = rr_malloc_n(s->n_events, sizeof *w->item);
    w->t = rr_malloc_n(s->n_events, sizeof *w->t);
    w->name = rr_malloc_n(ns, sizeof *w->name);
    if (!w->off || !w->item || !w->t || !w->name) {
        rr_prep_work_free(w);
        return rr_err(err, RR_ERR_NOMEM, "prep: out of memory for %zu events", s->n_events);
    }
    if (s->n_events) {
        memcpy(w->item, s->items, s->n_events * sizeof *w->item);
        memcpy(w->t, s->times, s->n_events * sizeof *w->t);
    }
    w->n_ev = s->n_events;
    rr_status st;
    if (gap <= 0) {
        st = rr_vocab_copy(&w->names, &in->sessions, err);
        if (st) {
            rr_prep_work_free(w);
            return st;
        }
        memcpy(w->off, s->offsets, ns1 * sizeof *w->off);
        for (size_t i = 0; i < ns; i++) w->name[i] = in->sess_id ? in->sess_id[i] : (int32_t)i;
        w->n_sess = ns;
        return RR_OK;
    }
    st = rr_vocab_reserve(&w->names, ns, err);
    size_t k = 0;
    w->off[0] = 0;
    for (size_t i = 0; st == RR_OK && i < s->n_sessions; i++) {
        size_t olen;
        const char *oid = rr_vocab_id(&in->sessions, in->sess_id ? in->sess_id[i] : (int32_t)i, &olen);
        size_t piece = 0;
        for (int64_t e = s->offsets[i]; st == RR_OK && e < s->offsets[i + 1]; e++) {
            int start = e == s->offsets[i] || s->times[e] - s->times[e - 1] > gap;
            if (!start) continue;
            char id[RR_ID_MAX + 32];
            int n = snprintf(id, sizeof id, "%.*s_%zu", (int)olen, oid, ++piece);
            if ((size_t)n > RR_ID_MAX) {
                st = rr_err(err, RR_ERR_RANGE,
                            "prep: session id '%.*s_%zu' made by --session-gap is longer than %d bytes",
                            (int)olen, oid, piece, RR_ID_MAX);
                break;
            }
            size_t before = w->names.n;
            int32_t idx;
            st = rr_vocab_add(&w->names, id, (size_t)n, &idx, err);
            if (st == RR_OK && w->names.n == before)
                st = rr_err(err, RR_ERR_RANGE,
                            "prep: session id '%s' made by --session-gap already exists", id);
            if (st) break;
            w->off[k] = e;
            w->name[k] = idx;
            k++;
        }
    }
    if (st) {
        rr_prep_work_free(w);
        return st;
    }
    w->n_sess = k;
    w->off[k] = (int64_t)s->n_events;
    return RR_OK;
}

/* Keeps the events with keep[e] (compacting), then drops sessions shorter
 * than min_len.  Returns the number of events removed by keep; sessions and
 * events removed for length are added to *s_drop / *e_drop. */
static size_t compact(rr_prep_work *w, const unsigned char *keep, size_t min_len, size_t *s_drop,
                      size_t *e_drop) {
    size_t o = 0, ks = 0, removed = 0;
    int64_t a = w->off[0];
    for (size_t s = 0; s < w->n_sess; s++) {
        int64_t b = w->off[s + 1];
        size_t start = o;
        for (int64_t e = a; e < b; e++) {
            if (keep && !keep[e]) {
                removed++;
                continue;
            }
            w->item[o] = w->item[e];
            w->t[o] = w->t[e];
            o++;
        }
        a = b;
        if (o - start < min_len) {
            if (s_drop) (*s_drop)++;
            if (e_drop) *e_drop += o - start;
            o = start;
            continue;
        }
        w->off[ks] = (int64_t)start;
        w->name[ks] = w->name[s];
        ks++;
    }
    w->off[ks] = (int64_t)o;
    w->n_sess = ks;
    w->n_ev = o;
    return removed;
}

rr_status rr_prep_filter(rr_prep_work *w, const rr_prep_params *p, rr_prep_stats *st,
                         rr_error *err) {
    size_t ni = w->items->n;
    unsigned char *keep = rr_malloc_n(w->n_ev ? w->n_ev : 1, 1);
    size_t *cnt = rr_calloc_n(ni ? ni : 1, sizeof *cnt);
    unsigned char *gone = rr_calloc_n(ni ? ni : 1, 1); /* item already dropped */
    if (!keep || !cnt || !gone) {
        free(keep);
        free(cnt);
        free(gone);
        return rr_err(err, RR_ERR_NOMEM, "prep: out of memory");
    }
    for (;;) {
        st->passes++;
        size_t changed = 0;
        if (p->dedup) {
            for (size_t s = 0; s < w->n_sess; s++)
                for (int64_t e = w->off[s]; e < w->off[s + 1]; e++)
                    keep[e] = e == w->off[s] || w->item[e] != w->item[e - 1];
            size_t r = compact(w, keep, 0, NULL, NULL);
            st->dedup_events += r;
            changed += r;
        }
        if (p->min_item_support > 1) {
            memset(cnt, 0, ni * sizeof *cnt);
            for (size_t e = 0; e < w->n_ev; e++) cnt[w->item[e]]++;
            for (size_t i = 0; i < ni; i++)
                if (cnt[i] && cnt[i] < p->min_item_support && !gone[i]) {
                    gone[i] = 1;
                    st->support_items++;
                }
            for (size_t e = 0; e < w->n_ev; e++) keep[e] = cnt[w->item[e]] >= p->min_item_support;
            size_t r = compact(w, keep, 0, NULL, NULL);
            st->support_events += r;
            changed += r;
        }
        size_t before = w->n_sess;
        compact(w, NULL, p->min_session_length, &st->short_sessions, &st->short_events);
        changed += before - w->n_sess;
        if (!changed) break;
    }
    free(keep);
    free(cnt);
    free(gone);
    return RR_OK;
}

rr_status rr_prep_make_part(const rr_prep_work *w, const rr_span *sp, size_t n,
                            const unsigned char *item_ok, size_t min_len, size_t *dropped_events,
                            size_t *dropped_spans, rr_dataset **out, rr_error *err) {
    *out = NULL;
    size_t ne = 0, ns = 0, de = 0, ds = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        for (int64_t e = sp[i].a; e < sp[i].b; e++) len += !item_ok || item_ok[w->item[e]];
        de += (size_t)(sp[i].b - sp[i].a) - len;
        if (len < min_len || len == 0) {
            ds++;
            continue;
        }
        ne += len;
        ns++;
    }
    if (dropped_events) *dropped_events = de;
    if (dropped_spans) *dropped_spans = ds;
    rr_dataset *d = rr_dataset_new();
    if (!d) return rr_err(err, RR_ERR_NOMEM, "prep: out of memory");
    int32_t *map = rr_malloc_n(w->items->n ? w->items->n : 1, sizeof *map);
    rr_status st = map ? rr_sessions_alloc(&d->s, ns, ne, err)
                       : rr_err(err, RR_ERR_NOMEM, "prep: out of memory");
    if (st == RR_OK) {
        d->sess_id = rr_malloc_n(ns ? ns : 1, sizeof *d->sess_id);
        if (!d->sess_id) st = rr_err(err, RR_ERR_NOMEM, "prep: out of memory");
    }
    if (st == RR_OK) st = rr_vocab_reserve(&d->sessions, ns, err);
    if (map) memset(map, 0xff, (w->items->n ? w->items->n : 1) * sizeof *map);
    size_t o = 0, k = 0;
    for (size_t i = 0; st == RR_OK && i < n; i++) {
        size_t len = 0;
        for (int64_t e = sp[i].a; e < sp[i].b; e++) len += !item_ok || item_ok[w->item[e]];
        if (len < min_len || len == 0) continue;
        size_t nl;
        const char *nm = rr_vocab_id(&w->names, w->name[sp[i].s], &nl);
        st = rr_vocab_add(&d->sessions, nm, nl, &d->sess_id[k], err);
        for (int64_t e = sp[i].a; st == RR_OK && e < sp[i].b; e++) {
            int32_t it = w->item[e];
            if (item_ok && !item_ok[it]) continue;
            if (map[it] < 0) {
                size_t il;
                const char *id = rr_vocab_id(w->items, it, &il);
                st = rr_vocab_add(&d->items, id, il, &map[it], err);
            }
            d->s.items[o] = map[it];
            d->s.times[o] = w->t[e];
            o++;
        }
        k++;
        d->s.offsets[k] = (int64_t)o;
    }
    free(map);
    if (st) {
        rr_dataset_free(d);
        return st;
    }
    *out = d;
    return RR_OK;
}

/* Marks the items of the spans in ok (n_items entries, zeroed by caller). */
static void mark_items(const rr_prep_work *w, const rr_span *sp, size_t n, unsigned char *ok) {
    for (size_t i = 0; i < n; i++)
        for (int64_t e = sp[i].a; e < sp[i].b; e++) ok[w->item[e]] = 1;
}

/* Moves the spans that start at or after cut from sp (kept in order) to
 * out; returns how many moved. */
static size_t carve(const rr_prep_work *w, rr_span *sp, size_t *n, double cut, rr_span *out) {
    size_t k = 0, m = 0;
    for (size_t i = 0; i < *n; i++) {
        if (w->t[sp[i].a] >= cut) out[m++] = sp[i];
        else sp[k++] = sp[i];
    }
    *n = k;
    return m;
}

void rr_prep_result_free(rr_prep_result *res) {
    if (!res) return;
    rr_dataset_free(res->train);
    rr_dataset_free(res->valid);
    rr_dataset_free(res->test);
    res->train = res->valid = res->test = NULL;
}

rr_status rr_prep_run(const rr_dataset *in, const rr_prep_params *p, rr_prep_result *res,
                      rr_error *err) {
    memset(res, 0, sizeof *res);
    const char *bad = rr_prep_params_check(p);
    if (bad) return rr_err(err, RR_ERR_ARG, "prep: %s", bad);
    rr_prep_stats *st = &res->stats;
    st->in_events = in->s.n_events;
    st->in_sessions = in->s.n_sessions;
    st->in_items = in->items.n;
    rr_prep_work w;
    rr_status s = rr_prep_work_init(&w, in, p->session_gap, err);
    if (s) return s;
    st->gap_sessions = w.n_sess;
    s = rr_prep_filter(&w, p, st, err);
    size_t ni = in->items.n ? in->items.n : 1;
    rr_span *tr = NULL, *va = NULL, *te = NULL;
    unsigned char *ok = NULL;
    if (s == RR_OK) {
        st->kept_events = w.n_ev;
        st->kept_sessions = w.n_sess;
        unsigned char *seen = rr_calloc_n(ni, 1);
        if (!seen) s = rr_err(err, RR_ERR_NOMEM, "prep: out of memory");
        for (size_t e = 0; seen && e < w.n_ev; e++) {
            st->kept_items += !seen[w.item[e]];
            seen[w.item[e]] = 1;
        }
        free(seen);
        if (s == RR_OK && w.n_ev == 0)
            s = rr_err(err, RR_ERR_EMPTY,
                       "prep: the filters removed every event (min item support %zu, min session "
                       "length %zu)",
                       p->min_item_support, p->min_session_length);
    }
    if (s == RR_OK) {
        st->t_min = st->t_max = w.t[0];
        for (size_t e = 1; e < w.n_ev; e++) {
            if (w.t[e] < st->t_min) st->t_min = w.t[e];
            if (w.t[e] > st->t_max) st->t_max = w.t[e];
        }
        tr = rr_malloc_n(w.n_sess, sizeof *tr);
        va = rr_malloc_n(w.n_sess, sizeof *va);
        te = rr_malloc_n(w.n_sess, sizeof *te);
        ok = rr_malloc_n(ni, 1);
        if (!tr || !va || !te || !ok) s = rr_err(err, RR_ERR_NOMEM, "prep: out of memory");
    }
    size_t n_tr = 0, n_va = 0, n_te = 0;
    int make_valid = 0, make_test = 0;
    if (s == RR_OK && p->split == RR_SPLIT_LOO) {
        make_test = 1;
        make_valid = p->loo_valid;
        for (size_t i = 0; i < w.n_sess; i++) {
            int64_t a = w.off[i], b = w.off[i + 1];
            size_t len = (size_t)(b - a);
            if (len < 2) { /* nothing to hold out */
                tr[n_tr++] = (rr_span){i, a, b};
                continue;
            }
            te[n_te++] = (rr_span){i, a, b};
            if (make_valid && len >= 3) {
                va[n_va++] = (rr_span){i, a, b - 1};
                tr[n_tr++] = (rr_span){i, a, b - 2};
            } else {
                tr[n_tr++] = (rr_span){i, a, b - 1};
            }
        }
    } else if (s == RR_OK) {
        for (size_t i = 0; i < w.n_sess; i++) tr[n_tr++] = (rr_span){i, w.off[i], w.off[i + 1]};
        if (p->split == RR_SPLIT_TIME) {
            make_test = 1;
            st->test_cut = st->t_max - p->test_days * DAY;
            n_te = carve(&w, tr, &n_tr, st->test_cut, te);
            if (n_tr == 0)
                s = rr_err(err, RR_ERR_EMPTY,
                           "prep: every session starts in the last %g days (at or after %.17g): "
                           "nothing left for train (lower --test-days)",
                           p->test_days, st->test_cut);
            else if (n_te == 0)
                s = rr_err(err, RR_ERR_EMPTY,
                           "prep: no session starts in the last %g days (at or after %.17g): the "
                           "test set would be empty",
                           p->test_days, st->test_cut);
        }
        if (s == RR_OK && p->valid_days > 0) {
            make_valid = 1;
            /* The train part's own last time: valid is its last valid_days. */
            double tmax = w.t[tr[0].a];
            for (size_t i = 0; i < n_tr; i++)
                if (w.t[tr[i].b - 1] > tmax) tmax = w.t[tr[i].b - 1];
            st->valid_cut = tmax - p->valid_days * DAY;
            /* Test items are checked against the whole train part (before the
             * carve), as in GRU4Rec's preprocessing. */
            memset(ok, 0, ni);
            mark_items(&w, tr, n_tr, ok);
            if (make_test) {
                rr_dataset *t = NULL;
                s = rr_prep_make_part(&w, te, n_te, ok, 2, &st->test_unknown_events,
                                      &st->test_short_sessions, &t, err);
                res->test = t;
                make_test = 0; /* done */
            }
            n_va = carve(&w, tr, &n_tr, st->valid_cut, va);
            if (s == RR_OK && n_tr == 0)
                s = rr_err(err, RR_ERR_EMPTY,
                           "prep: every train session starts in the last %g days: nothing left "
                           "for train after carving valid (lower --valid-days)",
                           p->valid_days);
            else if (s == RR_OK && n_va == 0)
                s = rr_err(err, RR_ERR_EMPTY,
                           "prep: no train session starts in the last %g days: valid would be "
                           "empty",
                           p->valid_days);
            if (s == RR_OK) {
                memset(ok, 0, ni);
                mark_items(&w, tr, n_tr, ok);
                rr_dataset *v = NULL;
                s = rr_prep_make_part(&w, va, n_va, ok, 2, &st->valid_unknown_events,
                                      &st->valid_short_sessions, &v, err);
                res->valid = v;
                make_valid = 0;
            }
        }
        if (s == RR_OK && make_test) {
            memset(ok, 0, ni);
            mark_items(&w, tr, n_tr, ok);
            rr_dataset *t = NULL;
            s = rr_prep_make_part(&w, te, n_te, ok, 2, &st->test_unknown_events,
                                  &st->test_short_sessions, &t, err);
            res->test = t;
            make_test = 0;
        }
    }
    if (s == RR_OK) {
        rr_dataset *t = NULL;
        s = rr_prep_make_part(&w, tr, n_tr, NULL, 1, NULL, NULL, &t, err);
        res->train = t;
    }
    if (s == RR_OK && make_test) { /* leave-one-out */
        rr_dataset *t = NULL;
        s = rr_prep_make_part(&w, te, n_te, NULL, 2, NULL, NULL, &t, err);
        res->test = t;
    }
    if (s == RR_OK && make_valid) {
        rr_dataset *t = NULL;
        s = rr_prep_make_part(&w, va, n_va, NULL, 2, NULL, NULL, &t, err);
        res->valid = t;
    }
    if (s == RR_OK && res->test && res->test->s.n_sessions == 0)
        s = rr_err(err, RR_ERR_EMPTY,
                   "prep: no test session is left after dropping items unseen in train");
    if (s == RR_OK && res->valid && res->valid->s.n_sessions == 0)
        s = rr_err(err, RR_ERR_EMPTY,
                   "prep: no valid session is left after dropping items unseen in train");
    free(tr);
    free(va);
    free(te);
    free(ok);
    rr_prep_work_free(&w);
    if (s) rr_prep_result_free(res);
    return s;
}

rr_status rr_prep_write(const rr_prep_result *res, const char *dir, rr_error *err) {
    if (!res || !res->train || !dir) return rr_err(err, RR_ERR_ARG, "prep: nothing to write");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return rr_err(err, RR_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return rr_err(err, RR_ERR_IO, "%s: not a directory", dir);
    const struct {
        const char *name;
        const rr_dataset *d;
    } parts[3] = {{"train.tsv", res->train}, {"valid.tsv", res->valid}, {"test.tsv", res->test}};
    for (int i = 0; i < 3; i++) {
        if (!parts[i].d) continue;
        char path[4096];
        int n = snprintf(path, sizeof path, "%s/%s", dir, parts[i].name);
        if (n < 0 || (size_t)n >= sizeof path)
            return rr_err(err, RR_ERR_ARG, "%s: output path too long", dir);
        rr_status s = rr_dataset_write_tsv(parts[i].d, path, err);
        if (s) return s;
    }
    return RR_OK;
}
