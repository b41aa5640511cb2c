/* cmd_eval.c - `rnnrec eval MODEL TEST`: rank every test target against the
 * full catalogue (GRU4Rec's protocol, see src/eval/evaluate.c) and print
 * Recall/MRR/NDCG/Coverage/Popularity at each cutoff, as a table or as one
 * JSON object.
 *
 * Under mpirun (an -DRR_MPI=ON build) every rank reads the model and the
 * test file, ranks its share of the test sessions, and the metric sums are
 * combined across the ranks (src/dist/); rank 0 alone prints. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dist/dist.h"
#include "util/util.h"

static const char *usage_line = "rnnrec eval [options] MODEL TEST";
static const char *description =
    "Evaluates MODEL on the sessions of TEST: every event but a session's first is a\n"
    "target predicted from the events before it and ranked against all items.  Test\n"
    "events with items the model does not know are dropped first.";

static int cb_cutoffs(const char *v, void *user) {
    rr_eval_params *p = user;
    return cli_parse_size_list(v, p->cutoffs, RR_MAX_CUTOFFS, &p->n_cutoffs);
}

static int cb_ties(const char *v, void *user) {
    rr_eval_params *p = user;
    if (!strcmp(v, "conservative")) p->ties = RR_TIES_CONSERVATIVE;
    else if (!strcmp(v, "standard")) p->ties = RR_TIES_STANDARD;
    else if (!strcmp(v, "median")) p->ties = RR_TIES_MEDIAN;
    else return -1;
    return 0;
}

static int cb_target(const char *v, void *user) {
    rr_eval_params *p = user;
    if (!strcmp(v, "all")) p->target_last = 0;
    else if (!strcmp(v, "last")) p->target_last = 1;
    else return -1;
    return 0;
}

static const char *ties_name(rr_ties t) {
    return t == RR_TIES_STANDARD ? "standard" : t == RR_TIES_MEDIAN ? "median" : "conservative";
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void print_json(const char *model, const char *test, const rr_model *m, const rr_eval_params *p,
                       const rr_eval_result *r) {
    double tps = r->seconds > 0 ? (double)r->n_targets / r->seconds : 0;
    printf("{\"model\": ");
    json_str(stdout, model);
    printf(", \"kind\": ");
    json_str(stdout, rr_model_kind(m));
    printf(", \"test\": ");
    json_str(stdout, test);
    printf(", \"ties\": \"%s\", \"target\": \"%s\", \"exclude_seen\": %s", ties_name(p->ties),
           p->target_last ? "last" : "all", p->exclude_seen ? "true" : "false");
    printf(", \"n_targets\": %zu, \"n_sessions\": %zu, \"n_dropped\": %zu, \"n_items\": %zu", r->n_targets,
           r->n_sessions, r->n_dropped, r->n_items);
    printf(", \"seconds\": %.6f, \"targets_per_second\": %.1f, \"cutoffs\": [", r->seconds, tps);
    for (size_t c = 0; c < p->n_cutoffs; c++) printf("%s%zu", c ? ", " : "", p->cutoffs[c]);
    printf("], \"metrics\": {");
    for (size_t c = 0; c < p->n_cutoffs; c++) {
        size_t k = p->cutoffs[c];
        printf("%s\"recall@%zu\": %.9f, \"mrr@%zu\": %.9f, \"ndcg@%zu\": %.9f, \"coverage@%zu\": %.9f, "
               "\"popularity@%zu\": %.9f",
               c ? ", " : "", k, r->recall[c], k, r->mrr[c], k, r->ndcg[c], k, r->coverage[c], k,
               r->popularity[c]);
    }
    printf("}}\n");
}

static void print_table(const rr_model *m, const rr_eval_params *p, const rr_eval_result *r) {
    printf("model %s, ties %s, targets %s%s\n", rr_model_kind(m), ties_name(p->ties),
           p->target_last ? "last" : "all", p->exclude_seen ? ", seen items excluded" : "");
    printf("%8s %10s %10s %10s %10s %10s\n", "cutoff", "Recall", "MRR", "NDCG", "Coverage", "Popularity");
    for (size_t c = 0; c < p->n_cutoffs; c++) {
        char k[24];
        snprintf(k, sizeof k, "@%zu", p->cutoffs[c]);
        printf("%8s %10.6f %10.6f %10.6f %10.6f %10.6f\n", k, r->recall[c], r->mrr[c], r->ndcg[c], r->coverage[c],
               r->popularity[c]);
    }
    double tps = r->seconds > 0 ? (double)r->n_targets / r->seconds : 0;
    printf("targets %zu, sessions %zu, dropped events %zu, items %zu, %.3f s, %.0f targets/s\n", r->n_targets,
           r->n_sessions, r->n_dropped, r->n_items, r->seconds, tps);
}

int cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    rr_eval_params ep;
    rr_eval_params_default(&ep);
    rr_read_opts ro;
    rr_read_opts_default(&ro);
    int json = 0;
    long threads = 0;
    cli_opt opts[] = {
        {"cutoffs", 0, OPT_CALLBACK, &ep, "K,K..", "ascending cutoffs (default: 1,5,10,20)", cb_cutoffs, 1},
        {"ties", 0, OPT_CALLBACK, &ep, "MODE", "tied scores: conservative, standard or median (default: conservative)",
         cb_ties, 1},
        {"target", 0, OPT_CALLBACK, &ep, "WHICH", "targets: all events after the first, or the last (default: all)",
         cb_target, 1},
        {"exclude-seen", 0, OPT_FLAG, &ep.exclude_seen, NULL, "never recommend a session's earlier items", NULL, 0},
        {"json", 0, OPT_FLAG, &json, NULL, "print one JSON object", NULL, 0},
        {"threads", 't', OPT_LONG, &threads, "N", "threads (0: all cores)", NULL, 0},
        {"block", 0, OPT_SIZE, &ep.block, "B", "sessions scored per block (0: auto)", NULL, 0},
        {"sep", 0, OPT_CHAR, &ro.sep, "C", "field separator (default: by extension)", NULL, 0},
        {"session-col", 0, OPT_STR, &ro.session_col, "NAME", "session column (default: recognised)", NULL, 0},
        {"item-col", 0, OPT_STR, &ro.item_col, "NAME", "item column (default: recognised)", NULL, 0},
        {"time-col", 0, OPT_STR, &ro.time_col, "NAME", "time column (default: recognised)", NULL, 0},
        {"max-bad-rows", 0, OPT_SIZE, &ro.max_bad_rows, "N", "malformed rows to skip before failing", NULL, 0},
        {NULL, 0, OPT_FLAG, NULL, NULL, NULL, NULL, 0},
    };
    const char *pos[2];
    size_t n_pos = 0;
    int rc = cli_parse(argc, argv, opts, usage_line, description, pos, 2, &n_pos);
    if (rc) return rc == -1 ? RR_EXIT_OK : rc;
    if (n_pos != 2) {
        cli_error(cmd, "expected MODEL and TEST (see --help)");
        return RR_EXIT_USAGE;
    }
    if (threads < 0 || threads > 4096) {
        cli_error(cmd, "--threads must be in 0..4096");
        return RR_EXIT_USAGE;
    }
    ep.threads = (int)threads;
    cli_log_init(1);

    rr_error err;
    memset(&err, 0, sizeof err);
    rr_model *m = NULL;
    rr_dataset *test = NULL;
    int ret = RR_EXIT_OK;
    if (rr_model_load(pos[0], &m, &err) != RR_OK || rr_dataset_read(pos[1], &ro, &test, &err) != RR_OK) {
        ret = cli_fail(cmd, &err);
        goto done;
    }
    if (rr_dataset_n_bad_rows(test))
        fprintf(stderr, "rnnrec eval: %s: %zu malformed rows skipped\n", pos[1], rr_dataset_n_bad_rows(test));
    rr_eval_result res;
    rr_dist *d = rr_dist_world();
    rr_eval_split split;
    rr_dist_eval_split(d, &split); /* one process: size 1, no split */
    if (rr_evaluate_split(m, test, &ep, &split, &res, &err) != RR_OK) {
        ret = cli_fail(cmd, &err);
        goto done;
    }
    if (rr_dist_rank(d) != 0) goto done; /* rank 0 prints */
    if (json) print_json(pos[0], pos[1], m, &ep, &res);
    else print_table(m, &ep, &res);
    if (fflush(stdout) != 0) {
        cli_error(cmd, "cannot write the output");
        ret = RR_EXIT_RUNTIME;
    }
done:
    rr_dataset_free(test);
    rr_model_free(m);
    return ret;
}
