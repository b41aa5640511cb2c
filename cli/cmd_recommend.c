/* cmd_recommend.c - `rnnrec recommend MODEL --items a,b,c`: feed a session's
 * items to the model and print the top-k next items with their scores.
 * Unknown item ids are reported and skipped; a session with no known item
 * gets the training popularity (the counts every model keeps).
 * `--sessions LOG` does the same for every session of an event log (batch
 * inference): the sessions are ranked BATCH at a time, through the model's
 * quantised screen (rr_model_use_screen) unless --screen-bits 0. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data/dataset.h"
#include "models/model.h"
#include "util/util.h"

static const char *usage_line = "rnnrec recommend [options] MODEL (--items ID,ID,... | --sessions LOG)";
static const char *description =
    "Prints the top-k next items for the session made of the given item ids, in\n"
    "order.  Unknown ids are reported (stderr, or \"unknown_items\" with --json)\n"
    "and skipped; without any known item the ranking is by popularity.\n"
    "With --sessions, does so for every session of an event log (the input\n"
    "format of train and eval), in the log's session order: TSV lines\n"
    "session_id, rank, item_id, score after a header, or with --json one JSON\n"
    "object per session and line.  The results equal --items run on each\n"
    "session's items.";

/* Sessions ranked per rr_recommend call in --sessions mode: four tiles of
 * the ranking kernels (16 sessions each). */
#define BATCH 64

static void json_bytes(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* One session's answer in --sessions mode. */
static void put_session(FILE *f, const rr_model *m, const char *sid, size_t sid_len, size_t n_known,
                        size_t n_unknown, const int32_t *top, const float *sc, size_t k, int json) {
    if (json) {
        fputs("{\"session\": ", f);
        json_bytes(f, sid, sid_len);
        fprintf(f, ", \"n_items\": %zu, \"n_unknown\": %zu, \"fallback\": %s, \"recommendations\": [", n_known,
                n_unknown, n_known ? "null" : "\"popularity\"");
    }
    for (size_t r = 0; r < k && top[r] >= 0; r++) {
        size_t il;
        const char *id = rr_model_item_id(m, top[r], &il);
        if (json) {
            fputs(r ? ", {\"item\": " : "{\"item\": ", f);
            json_bytes(f, id, il);
            if (isfinite(sc[r])) fprintf(f, ", \"score\": %.9g}", (double)sc[r]);
            else fputs(", \"score\": null}", f);
        } else {
            fprintf(f, "%.*s\t%zu\t%.*s\t%.9g\n", (int)sid_len, sid, r + 1, (int)il, id, (double)sc[r]);
        }
    }
    if (json) fputs("]}\n", f);
}

/* --sessions: every session of the log at path, BATCH at a time.  Session
 * ids and item ids are written as read (TSV output needs ids without tabs
 * and newlines, which the reader never yields). */
static int recommend_log(const char *cmd, rr_model *m, const char *path, const rr_read_opts *ro, size_t k,
                         int exclude, int json, int bits, const char *out_path) {
    rr_error err;
    memset(&err, 0, sizeof err);
    rr_dataset *d = NULL;
    int32_t *map = NULL, *top = NULL, *buf = NULL;
    float *sc = NULL;
    rr_state *st[BATCH] = {NULL};
    size_t unknown[BATCH];
    FILE *f = stdout;
    int ret = RR_EXIT_OK;
    size_t nk;
    if (rr_dataset_read(path, ro, &d, &err) != RR_OK || rr_dataset_map_items(d, &m->items, &map, &err) != RR_OK ||
        rr_model_use_screen(m, bits, &err) != RR_OK) {
        ret = cli_fail(cmd, &err);
        goto done;
    }
    if (rr_dataset_n_bad_rows(d))
        fprintf(stderr, "rnnrec recommend: %s: %zu malformed rows skipped\n", path, rr_dataset_n_bad_rows(d));
    size_t max_len = 0;
    for (size_t s = 0; s < d->s.n_sessions; s++)
        if (rr_session_len(&d->s, s) > max_len) max_len = rr_session_len(&d->s, s);
    if (!rr_mul_size(k, BATCH, &nk) || !(top = rr_malloc_n(nk, sizeof *top)) || !(sc = rr_malloc_n(nk, sizeof *sc)) ||
        !(buf = rr_malloc_n(max_len + 1, sizeof *buf))) {
        cli_error(cmd, "out of memory");
        ret = RR_EXIT_RUNTIME;
        goto done;
    }
    for (size_t i = 0; i < BATCH; i++)
        if (!(st[i] = rr_state_new(m))) {
            cli_error(cmd, "out of memory");
            ret = RR_EXIT_RUNTIME;
            goto done;
        }
    if (out_path && !(f = fopen(out_path, "w"))) {
        cli_error(cmd, "cannot open %s for writing: %s", out_path, strerror(errno));
        ret = RR_EXIT_RUNTIME;
        f = stdout;
        goto done;
    }
    if (!json) fputs("session_id\trank\titem_id\tscore\n", f);
    size_t n_events_unknown = 0, n_fallback = 0;
    for (size_t s0 = 0; s0 < d->s.n_sessions; s0 += BATCH) {
        size_t n = d->s.n_sessions - s0 < BATCH ? d->s.n_sessions - s0 : BATCH;
        for (size_t i = 0; i < n; i++) {
            const rr_sessions *ss = &d->s;
            size_t len = rr_session_len(ss, s0 + i), q = 0;
            const int32_t *it = ss->items + ss->offsets[s0 + i];
            for (size_t t = 0; t < len; t++)
                if (map[it[t]] >= 0) buf[q++] = map[it[t]];
            unknown[i] = len - q;
            n_events_unknown += len - q;
            n_fallback += q == 0;
            rr_state_reset(st[i]);
            rr_status fs = rr_state_feed_items(st[i], buf, q);
            if (fs) {
                rr_err(&err, fs, "out of memory for session %zu", s0 + i);
                ret = cli_fail(cmd, &err);
                goto done;
            }
        }
        if (rr_recommend(m, st, n, k, exclude, top, sc, &err) != RR_OK) {
            ret = cli_fail(cmd, &err);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            size_t sl;
            const char *sid = rr_vocab_id(&d->sessions, d->sess_id[s0 + i], &sl);
            put_session(f, m, sid, sl, rr_state_len(st[i]), unknown[i], top + i * k, sc + i * k, k, json);
        }
    }
    if (n_events_unknown || n_fallback)
        fprintf(stderr,
                "rnnrec recommend: %zu events with items the model does not know were skipped; %zu of %zu sessions "
                "had no known item (ranked by popularity)\n",
                n_events_unknown, n_fallback, d->s.n_sessions);
done:
    if (f != stdout) {
        if (fclose(f) != 0 && ret == RR_EXIT_OK) {
            cli_error(cmd, "cannot write %s: %s", out_path, strerror(errno));
            ret = RR_EXIT_RUNTIME;
        }
    } else if (fflush(stdout) != 0 && ret == RR_EXIT_OK) {
        cli_error(cmd, "cannot write the output");
        ret = RR_EXIT_RUNTIME;
    }
    for (size_t i = 0; i < BATCH; i++) rr_state_free(st[i]);
    free(top);
    free(sc);
    free(buf);
    free(map);
    rr_dataset_free(d);
    return ret;
}

int cmd_recommend(int argc, char **argv) {
    const char *cmd = "recommend";
    const char *items = "", *sessions = NULL, *out_path = NULL;
    size_t k = 20;
    int json = 0, exclude = 0;
    long bits = 8;
    rr_read_opts ro;
    rr_read_opts_default(&ro);
    cli_opt opts[] = {
        {"items", 'i', OPT_STR, &items, "ID,ID..", "the session's items, oldest first (empty: popularity)", NULL, 0},
        {"sessions", 0, OPT_STR, &sessions, "LOG", "every session of this event log instead (TSV/CSV, gzip, - for stdin)",
         NULL, 0},
        {"k", 'k', OPT_SIZE, &k, "K", "number of recommendations", NULL, 0},
        {"exclude-seen", 0, OPT_FLAG, &exclude, NULL, "never recommend the session's own items", NULL, 0},
        {"json", 0, OPT_FLAG, &json, NULL, "print one JSON object (--sessions: one per session and line)", NULL, 0},
        {"output", 'o', OPT_STR, &out_path, "FILE", "--sessions: write here instead of stdout", NULL, 0},
        {"screen-bits", 0, OPT_LONG, &bits, "N",
         "--sessions: quantised screen ahead of exact scoring, 8 or 16 bits, 0 off (same results)", NULL, 0},
        {"sep", 0, OPT_CHAR, &ro.sep, "C", "--sessions: field separator (default: by extension)", NULL, 0},
        {"session-col", 0, OPT_STR, &ro.session_col, "NAME", "--sessions: session column (default: recognised)", NULL,
         0},
        {"item-col", 0, OPT_STR, &ro.item_col, "NAME", "--sessions: item column (default: recognised)", NULL, 0},
        {"time-col", 0, OPT_STR, &ro.time_col, "NAME", "--sessions: time column (default: recognised)", NULL, 0},
        {"max-bad-rows", 0, OPT_SIZE, &ro.max_bad_rows, "N", "--sessions: malformed rows to skip before failing", NULL,
         0},
        {NULL, 0, OPT_FLAG, NULL, NULL, NULL, NULL, 0},
    };
    const char *pos[1];
    size_t n_pos = 0;
    int rc = cli_parse(argc, argv, opts, usage_line, description, pos, 1, &n_pos);
    if (rc) return rc == -1 ? RR_EXIT_OK : rc;
    if (n_pos != 1) {
        cli_error(cmd, "expected one MODEL (see --help)");
        return RR_EXIT_USAGE;
    }
    if (k < 1 || k > 1000000) {
        cli_error(cmd, "-k must be in 1..1000000");
        return RR_EXIT_USAGE;
    }
    if (sessions && *items) {
        cli_error(cmd, "--items and --sessions exclude each other");
        return RR_EXIT_USAGE;
    }
    if (!sessions && out_path) {
        cli_error(cmd, "--output goes with --sessions");
        return RR_EXIT_USAGE;
    }
    if (bits != 0 && bits != 8 && bits != 16) {
        cli_error(cmd, "--screen-bits must be 8, 16 or 0");
        return RR_EXIT_USAGE;
    }
    rr_error err;
    memset(&err, 0, sizeof err);
    rr_model *m = NULL;
    if (rr_model_load(pos[0], &m, &err) != RR_OK) return cli_fail(cmd, &err);
    if (sessions) {
        int r = recommend_log(cmd, m, sessions, &ro, k, exclude, json, (int)bits, out_path);
        rr_model_free(m);
        return r;
    }

    int ret = RR_EXIT_OK;
    size_t n_ids = 0;
    for (const char *p = items; *p; p++) n_ids += *p == ',';
    n_ids += *items ? 1 : 0;
    /* (n_ids) start and length of each id in `items`, and whether known */
    size_t *start = rr_malloc_n(n_ids + 1, sizeof *start), *len = rr_malloc_n(n_ids + 1, sizeof *len);
    int32_t *idx = rr_malloc_n(n_ids + 1, sizeof *idx);
    int32_t *top = rr_malloc_n(k, sizeof *top);
    float *sc = rr_malloc_n(k, sizeof *sc);
    rr_state *st = rr_state_new(m);
    if (!start || !len || !idx || !top || !sc || !st) {
        cli_error(cmd, "out of memory");
        ret = RR_EXIT_RUNTIME;
        goto done;
    }
    size_t n_unknown = 0;
    for (size_t i = 0, p = 0; i < n_ids; i++) {
        size_t q = p;
        while (items[q] && items[q] != ',') q++;
        start[i] = p;
        len[i] = q - p;
        idx[i] = rr_model_item_index(m, items + p, q - p);
        if (idx[i] < 0) n_unknown++;
        else if (rr_state_feed(st, idx[i]) != RR_OK) {
            cli_error(cmd, "out of memory");
            ret = RR_EXIT_RUNTIME;
            goto done;
        }
        p = items[q] ? q + 1 : q;
    }
    int fallback = rr_state_len(st) == 0;
    if (!json) {
        for (size_t i = 0; i < n_ids; i++)
            if (idx[i] < 0)
                fprintf(stderr, "rnnrec recommend: unknown item '%.*s' skipped\n", (int)len[i], items + start[i]);
        if (fallback) fprintf(stderr, "rnnrec recommend: no known items: ranking by popularity\n");
    }
    if (rr_recommend(m, &st, 1, k, exclude, top, sc, &err) != RR_OK) {
        ret = cli_fail(cmd, &err);
        goto done;
    }
    if (json) {
        printf("{\"model\": ");
        json_bytes(stdout, pos[0], strlen(pos[0]));
        printf(", \"kind\": \"%s\", \"k\": %zu, \"exclude_seen\": %s, \"fallback\": %s, \"items\": [", rr_model_kind(m),
               k, exclude ? "true" : "false", fallback ? "\"popularity\"" : "null");
        for (size_t i = 0, c = 0; i < n_ids; i++)
            if (idx[i] >= 0) {
                printf("%s", c++ ? ", " : "");
                json_bytes(stdout, items + start[i], len[i]);
            }
        printf("], \"unknown_items\": [");
        for (size_t i = 0, c = 0; i < n_ids; i++)
            if (idx[i] < 0) {
                printf("%s", c++ ? ", " : "");
                json_bytes(stdout, items + start[i], len[i]);
            }
        printf("], \"recommendations\": [");
        for (size_t r = 0; r < k && top[r] >= 0; r++) {
            size_t il;
            const char *id = rr_model_item_id(m, top[r], &il);
            printf("%s{\"rank\": %zu, \"item\": ", r ? ", " : "", r + 1);
            json_bytes(stdout, id, il);
            if (isfinite(sc[r])) printf(", \"score\": %.9g}", (double)sc[r]);
            else printf(", \"score\": null}");
        }
        printf("]}\n");
    } else {
        printf("%6s  %-24s %s\n", "rank", "item", "score");
        for (size_t r = 0; r < k && top[r] >= 0; r++) {
            size_t il;
            const char *id = rr_model_item_id(m, top[r], &il);
            printf("%6zu  %-24.*s %.6g\n", r + 1, (int)il, id, (double)sc[r]);
        }
    }
    if (fflush(stdout) != 0) {
        cli_error(cmd, "cannot write the output");
        ret = RR_EXIT_RUNTIME;
    }
done:
    free(start);
    free(len);
    free(idx);
    free(top);
    free(sc);
    rr_state_free(st);
    rr_model_free(m);
    return ret;
}
