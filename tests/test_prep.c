/* test_prep.c - preprocessing: filters to a fixpoint on a crafted log,
 * dedup, session-gap cutting, each split (time, leave-one-out with and
 * without valid, none, valid-days), writing and reading back, and a run on
 * synthetic data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/dataset.h"
#include "data/prep.h"
#include "rnnrec.h"
#include "util/util.h"

static char tmpdir[64];

static rr_dataset *load(const char *text) {
    static int k;
    char path[128];
    snprintf(path, sizeof path, "%s/in%d.tsv", tmpdir, k++);
    FILE *f = fopen(path, "wb");
    fputs("session_id\titem_id\ttimestamp\n", f);
    fputs(text, f);
    fclose(f);
    rr_error err;
    rr_dataset *d = NULL;
    if (rr_dataset_read(path, NULL, &d, &err) != RR_OK) {
        fprintf(stderr, "load: %s\n", err.msg);
        exit(1);
    }
    return d;
}

/* "s1:a,b;s2:c" - sessions with their item ids, in order. */
static const char *render(const rr_dataset *d) {
    static char buf[8][2048];
    static int k;
    char *b = buf[k++ & 7];
    size_t o = 0;
    b[0] = 0;
    if (!d) return "(null)";
    for (size_t s = 0; s < d->s.n_sessions; s++) {
        size_t l;
        const char *id = rr_vocab_id(&d->sessions, d->sess_id[s], &l);
        if (o + l + 2 >= 2000) break; /* long parts are compared otherwise */
        o += (size_t)snprintf(b + o, 2048 - o, "%s%.*s:", s ? ";" : "", (int)l, id);
        for (int64_t e = d->s.offsets[s]; e < d->s.offsets[s + 1] && o < 2000; e++) {
            const char *it = rr_vocab_id(&d->items, d->s.items[e], &l);
            if (o + l + 2 >= 2000) break;
            o += (size_t)snprintf(b + o, 2048 - o, "%s%.*s", e > d->s.offsets[s] ? "," : "", (int)l, it);
        }
    }
    return b;
}

#define CHECK_PART(d, want)                                                              \
    do {                                                                                 \
        const char *got_ = render(d);                                                    \
        CHECK_MSG(!strcmp(got_, want), "got %s, want %s", got_, want);                   \
    } while (0)

static void test_fixpoint(void) {
    /* X has support 1; dropping it shortens s4, which removes B's second
     * event, which ... three passes of removals, then a stable one. */
    rr_dataset *in = load("s1\tA\t1\ns1\tB\t2\n"
                          "s2\tA\t3\ns2\tC\t4\n"
                          "s3\tC\t5\ns3\tD\t6\n"
                          "s4\tB\t7\ns4\tX\t8\n"
                          "s5\tC\t9\ns5\tD\t10\n");
    rr_prep_params p;
    rr_prep_params_default(&p);
    CHECK(p.min_item_support == 5 && p.min_session_length == 2 && p.split == RR_SPLIT_TIME);
    p.min_item_support = 2;
    p.split = RR_SPLIT_NONE;
    rr_prep_result res;
    rr_error err;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    CHECK_PART(res.train, "s3:C,D;s5:C,D");
    CHECK(res.test == NULL && res.valid == NULL);
    const rr_prep_stats *st = &res.stats;
    CHECK_MSG(st->passes == 4, "passes %zu", st->passes);
    CHECK(st->support_items == 3 && st->support_events == 3);
    CHECK(st->short_sessions == 3 && st->short_events == 3);
    CHECK(st->kept_events == 4 && st->kept_sessions == 2 && st->kept_items == 2);
    CHECK(st->in_events == 10 && st->in_sessions == 5 && st->in_items == 5);
    rr_prep_result_free(&res);
    /* a support that leaves nothing is an error, not an empty file */
    p.min_item_support = 3;
    CHECK(rr_prep_run(in, &p, &res, &err) == RR_ERR_EMPTY);
    CHECK(strstr(err.msg, "removed every event") != NULL);
    CHECK(res.train == NULL);
    rr_dataset_free(in);
}

static void test_dedup(void) {
    rr_dataset *in = load("u\tE\t1\nu\tE\t2\nu\tF\t3\nu\tF\t4\nu\tE\t5\nu\tF\t6\n"
                          "v\tG\t1\nv\tG\t2\n"
                          "w\tE\t1\nw\tH\t2\nw\tE\t3\n");
    rr_prep_params p;
    rr_prep_params_default(&p);
    p.min_item_support = 1;
    p.split = RR_SPLIT_NONE;
    p.dedup = 1;
    rr_prep_result res;
    rr_error err;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    /* v becomes a single G: too short */
    CHECK_PART(res.train, "u:E,F,E,F;w:E,H,E");
    CHECK(res.stats.dedup_events == 3 && res.stats.short_sessions == 1);
    rr_prep_result_free(&res);
    /* without dedup everything stays */
    p.dedup = 0;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    CHECK_PART(res.train, "u:E,E,F,F,E,F;v:G,G;w:E,H,E");
    rr_prep_result_free(&res);
    /* dedup interacts with support: H goes (support 1 < 2), then w is
     * E,E -> E (dedup again in the next pass) -> too short */
    p.dedup = 1;
    p.min_item_support = 2;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    CHECK_PART(res.train, "u:E,F,E,F");
    CHECK(res.stats.dedup_events == 4 && res.stats.passes == 3);
    rr_prep_result_free(&res);
    rr_dataset_free(in);
}

static void test_gap(void) {
    rr_dataset *in = load("u\ta\t0\nu\tb\t10\nu\tc\t5000\nu\td\t5010\nu\te\t20000\n"
                          "v\ta\t100\nv\tb\t1900\n");
    rr_prep_params p;
    rr_prep_params_default(&p);
    p.min_item_support = 1;
    p.min_session_length = 1;
    p.split = RR_SPLIT_NONE;
    p.session_gap = 1800;
    rr_prep_result res;
    rr_error err;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    /* v's gap of exactly 1800 is not more than 1800: one session */
    CHECK_PART(res.train, "u_1:a,b;u_2:c,d;u_3:e;v_1:a,b");
    CHECK(res.stats.gap_sessions == 4);
    rr_prep_result_free(&res);
    p.min_session_length = 2;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    CHECK_PART(res.train, "u_1:a,b;u_2:c,d;v_1:a,b");
    rr_prep_result_free(&res);
    rr_dataset_free(in);
    /* renamed ids must still fit RR_ID_MAX: a 254-byte id + "_1" does not */
    char text[600];
    memset(text, 'u', 254);
    snprintf(text + 254, sizeof text - 254, "\ta\t0\n");
    in = load(text);
    CHECK(rr_prep_run(in, &p, &res, &err) == RR_ERR_RANGE);
    CHECK_MSG(strstr(err.msg, "made by --session-gap is longer than 255 bytes") != NULL, "%s", err.msg);
    rr_dataset_free(in);
}

static void test_time_split(void) {
    /* days: s1 day 0, s2 day 1.2 (ends after the cut: still train), s3 and
     * s4 start in the last day; s4 has Z (not in train) and shrinks to 1. */
    char text[1024];
    const double D = 86400;
    snprintf(text, sizeof text,
             "s1\tA\t%.0f\ns1\tB\t%.0f\n"
             "s2\tA\t%.0f\ns2\tC\t%.0f\n"
             "s3\tB\t%.0f\ns3\tC\t%.0f\ns3\tZ\t%.0f\n"
             "s4\tZ\t%.0f\ns4\tA\t%.0f\n",
             0.0, 10.0, 1.2 * D, 2.1 * D, 2.0 * D, 2.0 * D + 5, 2.0 * D + 9, 2.9 * D, 3.0 * D);
    rr_dataset *in = load(text);
    rr_prep_params p;
    rr_prep_params_default(&p);
    p.min_item_support = 1;
    p.test_days = 1;
    rr_prep_result res;
    rr_error err;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    CHECK_PART(res.train, "s1:A,B;s2:A,C");
    CHECK_PART(res.test, "s3:B,C");
    CHECK(res.valid == NULL);
    CHECK(res.stats.test_cut == 2.0 * D);
    CHECK(res.stats.test_unknown_events == 2 && res.stats.test_short_sessions == 1);
    rr_prep_result_free(&res);
    /* a test span covering everything leaves no train */
    p.test_days = 5;
    CHECK(rr_prep_run(in, &p, &res, &err) == RR_ERR_EMPTY && strstr(err.msg, "nothing left for train"));
    p.test_days = 0;
    CHECK(rr_prep_run(in, &p, &res, &err) == RR_ERR_ARG && strstr(err.msg, "test_days"));
    rr_dataset_free(in);
}

static void test_valid_days(void) {
    const double D = 86400;
    char text[1024];
    snprintf(text, sizeof text,
             "a\tX\t%.0f\na\tY\t%.0f\n"   /* day 0: train */
             "b\tX\t%.0f\nb\tW\t%.0f\n"   /* day 1: valid (W only here -> dropped) */
             "c\tY\t%.0f\nc\tX\t%.0f\n"   /* day 1.5: valid */
             "d\tW\t%.0f\nd\tX\t%.0f\n"   /* day 3: test; W is in train+valid */
             "e\tX\t%.0f\ne\tY\t%.0f\n",  /* day 3.5: test */
             0.0, 1.0, 1 * D, 1 * D + 1, 1.5 * D, 1.5 * D + 1, 3 * D, 3 * D + 1, 3.5 * D,
             3.5 * D + 1);
    rr_dataset *in = load(text);
    rr_prep_params p;
    rr_prep_params_default(&p);
    p.min_item_support = 1;
    p.test_days = 1;
    p.valid_days = 1;
    rr_prep_result res;
    rr_error err;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    CHECK_PART(res.train, "a:X,Y");
    CHECK_PART(res.valid, "c:Y,X");
    CHECK_PART(res.test, "d:W,X;e:X,Y");
    CHECK(res.stats.valid_unknown_events == 1 && res.stats.valid_short_sessions == 1);
    CHECK(res.stats.valid_cut == 1.5 * D + 1 - D);
    rr_prep_result_free(&res);
    /* split none + valid-days */
    p.split = RR_SPLIT_NONE;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    CHECK_PART(res.valid, "d:W,X;e:X,Y");
    CHECK(res.test == NULL);
    rr_prep_result_free(&res);
    rr_dataset_free(in);
}

static void test_loo(void) {
    rr_dataset *in = load("u1\ta\t1\nu1\tb\t2\nu1\tc\t3\nu1\td\t4\n"
                          "u2\ta\t1\nu2\tb\t2\n"
                          "u3\tc\t1\n");
    rr_prep_params p;
    rr_prep_params_default(&p);
    p.min_item_support = 1;
    p.min_session_length = 1;
    p.split = RR_SPLIT_LOO;
    rr_prep_result res;
    rr_error err;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    CHECK_PART(res.train, "u1:a,b,c;u2:a;u3:c");
    CHECK_PART(res.test, "u1:a,b,c,d;u2:a,b");
    CHECK(res.valid == NULL);
    rr_prep_result_free(&res);
    p.loo_valid = 1;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    CHECK_PART(res.train, "u1:a,b;u2:a;u3:c");
    CHECK_PART(res.valid, "u1:a,b,c");
    CHECK_PART(res.test, "u1:a,b,c,d;u2:a,b");
    rr_prep_result_free(&res);
    p.valid_days = 1;
    CHECK(rr_prep_run(in, &p, &res, &err) == RR_ERR_ARG);
    rr_dataset_free(in);
}

static void test_write_and_synth(void) {
    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.n_events = check_small() ? 20000 : 100000;
    sp.n_items = 2000;
    rr_dataset *in = NULL;
    rr_error err;
    CHECK_OK(rr_synth_generate(&sp, &in, &err), &err);
    if (!in) return;
    rr_prep_params p;
    rr_prep_params_default(&p);
    p.valid_days = 1;
    rr_prep_result res;
    CHECK_OK(rr_prep_run(in, &p, &res, &err), &err);
    if (!res.train) {
        rr_dataset_free(in);
        return;
    }
    const rr_prep_stats *st = &res.stats;
    size_t total = rr_dataset_n_events(res.train) + rr_dataset_n_events(res.valid) +
                   rr_dataset_n_events(res.test) + st->test_unknown_events +
                   st->valid_unknown_events;
    /* every kept event ends up in exactly one part or in a drop count
     * (short test/valid sessions lose one event each at most... count them) */
    CHECK(total <= st->kept_events);
    CHECK(st->kept_events - total <= st->test_short_sessions + st->valid_short_sessions);
    /* the test set starts in the last day: about 1/30 of the sessions */
    double share = (double)rr_dataset_n_sessions(res.test) / (double)st->kept_sessions;
    CHECK_MSG(share > 0.015 && share < 0.06, "test share %.3f", share);
    /* all test items are known to train+valid; min support holds in input */
    for (size_t e = 0; e < res.test->s.n_events; e++) {
        size_t l;
        const char *id = rr_vocab_id(&res.test->items, res.test->s.items[e], &l);
        if (rr_vocab_find(&res.train->items, id, l) < 0 && rr_vocab_find(&res.valid->items, id, l) < 0) {
            CHECK_MSG(0, "test item %.*s unseen in train", (int)l, id);
            break;
        }
    }
    char dir[128];
    snprintf(dir, sizeof dir, "%s/out", tmpdir);
    CHECK_OK(rr_prep_write(&res, dir, &err), &err);
    const char *names[3] = {"train.tsv", "valid.tsv", "test.tsv"};
    const rr_dataset *parts[3] = {res.train, res.valid, res.test};
    for (int i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rr_dataset *back = NULL;
        CHECK_OK(rr_dataset_read(path, NULL, &back, &err), &err);
        if (back) {
            CHECK(rr_dataset_n_events(back) == rr_dataset_n_events(parts[i]));
            CHECK(rr_dataset_n_sessions(back) == rr_dataset_n_sessions(parts[i]));
            int same = back->s.n_events == parts[i]->s.n_events;
            for (size_t e = 0; same && e < back->s.n_events; e++) {
                size_t l1, l2;
                const char *x = rr_vocab_id(&back->items, back->s.items[e], &l1);
                const char *y = rr_vocab_id(&parts[i]->items, parts[i]->s.items[e], &l2);
                same = back->s.times[e] == parts[i]->s.times[e] && l1 == l2 && !memcmp(x, y, l1);
            }
            for (size_t k = 0; same && k < back->s.n_sessions; k++) {
                size_t l1, l2;
                const char *x = rr_vocab_id(&back->sessions, back->sess_id[k], &l1);
                const char *y = rr_vocab_id(&parts[i]->sessions, parts[i]->sess_id[k], &l2);
                same = l1 == l2 && !memcmp(x, y, l1) &&
                       back->s.offsets[k + 1] == parts[i]->s.offsets[k + 1];
            }
            CHECK_MSG(same, "%s read back differs", names[i]);
        }
        rr_dataset_free(back);
        unlink(path);
    }
    rmdir(dir);
    /* writing into a path that is a file fails cleanly */
    char fpath[256];
    snprintf(fpath, sizeof fpath, "%s/in0.tsv", tmpdir);
    CHECK(rr_prep_write(&res, fpath, &err) == RR_ERR_IO && strstr(err.msg, "not a directory"));
    rr_prep_result_free(&res);
    rr_dataset_free(in);
}

/* Ids holding tabs or quotes (possible from quoted CSV) are written as
 * quoted TSV fields and read back unchanged (RR-3). */
static void test_write_awkward_ids(void) {
    char in[256], out[256];
    snprintf(in, sizeof in, "%s/awkward.csv", tmpdir);
    snprintf(out, sizeof out, "%s/awkward.tsv", tmpdir);
    FILE *f = fopen(in, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("session_id,item_id,timestamp\n1,\"a\tb\",1\n1,\"x\"\"y\",2\n\"s\ts\",z,3\n\"s\ts\",\"\"\"q\",4\n", f);
    fclose(f);
    rr_read_opts o;
    rr_read_opts_default(&o);
    rr_dataset *a = NULL, *b = NULL;
    rr_error err;
    CHECK_OK(rr_dataset_read(in, &o, &a, &err), &err);
    if (!a) return;
    CHECK_OK(rr_dataset_write_tsv(a, out, &err), &err);
    CHECK_OK(rr_dataset_read(out, &o, &b, &err), &err);
    if (b) {
        CHECK(b->s.n_events == 4 && b->items.n == a->items.n && b->sessions.n == a->sessions.n);
        static const char *ids[] = {"a\tb", "x\"y", "z", "\"q"};
        for (size_t i = 0; i < 4; i++) CHECK(rr_vocab_find(&b->items, ids[i], strlen(ids[i])) >= 0);
        CHECK(rr_vocab_find(&b->sessions, "s\ts", 3) >= 0);
    }
    rr_dataset_free(a);
    rr_dataset_free(b);
}

int main(void) {
    strcpy(tmpdir, "/tmp/rr_test_prep_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_fixpoint();
    test_dedup();
    test_gap();
    test_time_split();
    test_valid_days();
    test_loo();
    test_write_and_synth();
    test_write_awkward_ids();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_prep");
}
