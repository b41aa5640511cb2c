/* cmd_prep.c - `rnnrec prep`: read an event log, cut sessions, filter to a
 * fixpoint, split into train/test (and valid), write OUTDIR/{train,valid,test}.tsv and print
 * a summary table. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util/util.h"

static int set_split(const char *v, void *user) {
    rr_split *s = user;
    if (!strcmp(v, "time")) *s = RR_SPLIT_TIME;
    else if (!strcmp(v, "leave-one-out") || !strcmp(v, "loo")) *s = RR_SPLIT_LOO;
    else if (!strcmp(v, "none")) *s = RR_SPLIT_NONE;
    else return -1;
    return 0;
}

static void row(const char *name, const rr_dataset *d) {
    if (!d) return;
    printf("  %-8s %12zu %10zu %8zu\n", name, rr_dataset_n_events(d), rr_dataset_n_sessions(d),
           rr_dataset_n_items(d));
}

int cmd_prep(int argc, char **argv) {
    rr_prep_params p;
    rr_prep_params_default(&p);
    rr_read_opts ro;
    rr_read_opts_default(&ro);
    const char *out = NULL;
    int quiet = 0;
    long verbose = 1;
    const cli_opt opts[] = {
        {"output", 'o', OPT_STR, &out, "DIR", "output directory (created if missing)", NULL, 0},
        {"sep", 0, OPT_CHAR, &ro.sep, "C", "input separator (default: by extension)", NULL, 0},
        {"session-col", 0, OPT_STR, &ro.session_col, "NAME", "session/user column", NULL, 0},
        {"item-col", 0, OPT_STR, &ro.item_col, "NAME", "item column", NULL, 0},
        {"time-col", 0, OPT_STR, &ro.time_col, "NAME", "time column (seconds)", NULL, 0},
        {"max-bad-rows", 0, OPT_SIZE, &ro.max_bad_rows, "N", "bad input rows to skip", NULL, 0},
        {"dedup", 0, OPT_FLAG, &p.dedup, NULL, "drop consecutive duplicate items in a session",
         NULL, 0},
        {"min-item-support", 0, OPT_SIZE, &p.min_item_support, "N",
         "drop items with fewer events", NULL, 0},
        {"min-session-length", 0, OPT_SIZE, &p.min_session_length, "N",
         "drop shorter sessions", NULL, 0},
        {"session-gap", 0, OPT_DOUBLE, &p.session_gap, "SECONDS",
         "cut sessions at longer inactivity (0: off)", NULL, 0},
        {"split", 0, OPT_CALLBACK, &p.split, "time|leave-one-out|none",
         "how to make test (default: time)", set_split, 1},
        {"test-days", 0, OPT_DOUBLE, &p.test_days, "D",
         "time split: sessions starting in the last D days", NULL, 0},
        {"valid-days", 0, OPT_DOUBLE, &p.valid_days, "D",
         "carve valid from train's last D days (0: off)", NULL, 0},
        {"valid", 0, OPT_FLAG, &p.loo_valid, NULL, "leave-one-out: also write valid.tsv", NULL, 0},
        {"verbose", 'v', OPT_LONG, &verbose, "N", "log level (0 errors .. 3 debug)", NULL, 0},
        {"quiet", 'q', OPT_FLAG, &quiet, NULL, "no summary table", NULL, 0},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, 0}};
    const char *pos[1];
    size_t n_pos;
    int rc = cli_parse(argc, argv, opts, "rnnrec prep [options] INPUT -o OUTDIR",
                       "Filters an event log (TSV/CSV, plain or gzip, '-' for stdin) and splits\n"
                       "it into OUTDIR/train.tsv, test.tsv and valid.tsv.  Filters (dedup, item\n"
                       "support, session length) repeat until nothing changes.  Times are in\n"
                       "seconds; a day is 86400.  See docs/data.md for the split semantics.",
                       pos, 1, &n_pos);
    if (rc < 0) return RR_EXIT_OK;
    if (rc) return rc;
    if (n_pos != 1) {
        cli_error("prep", "expected one INPUT file (see --help)");
        return RR_EXIT_USAGE;
    }
    if (!out) {
        cli_error("prep", "missing -o OUTDIR (see --help)");
        return RR_EXIT_USAGE;
    }
    const char *bad = rr_prep_params_check(&p);
    if (bad) {
        cli_error("prep", "%s", bad);
        return RR_EXIT_USAGE;
    }
    cli_log_init((int)verbose);
    rr_error err = {RR_OK, {0}};
    double t0 = rr_now();
    rr_dataset *in = NULL;
    if (rr_dataset_read(pos[0], &ro, &in, &err)) return cli_fail("prep", &err);
    double t_read = rr_now() - t0;
    rr_prep_result res;
    rr_status st = rr_prep_run(in, &p, &res, &err);
    size_t bad_rows = rr_dataset_n_bad_rows(in);
    rr_dataset_free(in);
    if (st) return cli_fail("prep", &err);
    st = rr_prep_write(&res, out, &err);
    if (st) {
        rr_prep_result_free(&res);
        return cli_fail("prep", &err);
    }
    if (!quiet) {
        const rr_prep_stats *s = &res.stats;
        printf("input: %s (%zu events, %zu sessions, %zu items, %zu bad rows skipped; read in "
               "%.2f s)\n",
               pos[0], s->in_events, s->in_sessions, s->in_items, bad_rows, t_read);
        if (p.session_gap > 0)
            printf("session gap %g s: %zu sessions -> %zu\n", p.session_gap, s->in_sessions,
                   s->gap_sessions);
        char dd[64] = "dedup off";
        if (p.dedup) snprintf(dd, sizeof dd, "dedup -%zu events", s->dedup_events);
        printf("filters (%zu passes): %s; item support < %zu: -%zu items, -%zu events; length < "
               "%zu: -%zu sessions, -%zu events\n",
               s->passes, dd, p.min_item_support, s->support_items, s->support_events,
               p.min_session_length, s->short_sessions, s->short_events);
        printf("kept: %zu events, %zu sessions, %zu items; time %.17g .. %.17g\n", s->kept_events,
               s->kept_sessions, s->kept_items, s->t_min, s->t_max);
        if (p.split == RR_SPLIT_TIME)
            printf("test: sessions starting at >= %.17g; -%zu events with items not in train, "
                   "-%zu sessions left shorter than 2\n",
                   s->test_cut, s->test_unknown_events, s->test_short_sessions);
        if (p.valid_days > 0)
            printf("valid: sessions starting at >= %.17g; -%zu events with items not in train, "
                   "-%zu sessions left shorter than 2\n",
                   s->valid_cut, s->valid_unknown_events, s->valid_short_sessions);
        printf("  %-8s %12s %10s %8s\n", "part", "events", "sessions", "items");
        row("train", res.train);
        row("valid", res.valid);
        row("test", res.test);
        printf("output: %s (%.2f s, peak RSS %.1f MiB)\n", out, rr_now() - t0,
               (double)rr_peak_rss_kb() / 1024.0);
    }
    rr_prep_result_free(&res);
    return RR_EXIT_OK;
}
