/* cmd_recommend.c - `rnnrec recommend MODEL --items a,b,c`: feed a session's
 * items to the model and print the top-k next items with their scores.
 * Unknown item ids are reported and skipped; a session with no known item
 * gets the training popularity (the counts every model keeps). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "models/model.h"
#include "util/util.h"

static const char *usage_line = "rnnrec recommend [options] MODEL --items ID,ID,...";
static const char *description =
    "Prints the top-k next items for the session made of the given item ids, in\n"
    "order.  Unknown ids are reported (stderr, or \"unknown_items\" with --json)\n"
    "and skipped; without any known item the ranking is by popularity.";

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

int cmd_recommend(int argc, char **argv) {
    const char *cmd = "recommend";
    const char *items = "";
    size_t k = 20;
    int json = 0, exclude = 0;
    cli_opt opts[] = {
        {"items", 'i', OPT_STR, &items, "ID,ID..", "the session's items, oldest first (empty: popularity)", NULL, 0},
        {"k", 'k', OPT_SIZE, &k, "K", "number of recommendations", NULL, 0},
        {"exclude-seen", 0, OPT_FLAG, &exclude, NULL, "never recommend the session's own items", NULL, 0},
        {"json", 0, OPT_FLAG, &json, NULL, "print one JSON object", NULL, 0},
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
    rr_error err;
    memset(&err, 0, sizeof err);
    rr_model *m = NULL;
    if (rr_model_load(pos[0], &m, &err) != RR_OK) return cli_fail(cmd, &err);

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
