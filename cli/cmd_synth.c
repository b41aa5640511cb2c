/* cmd_synth.c - `rnnrec synth`: write a synthetic clickstream (TSV, or gzip
 * with a .gz suffix, or stdout with -o -).  The generator's model is in
 * rnnrec.h above rr_synth_params. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util/util.h"

int cmd_synth(int argc, char **argv) {
    rr_synth_params p;
    rr_synth_params_default(&p);
    const char *out = NULL;
    int gz_stdout = 0, quiet = 0;
    const cli_opt opts[] = {
        {"output", 'o', OPT_STR, &out, "FILE", "output file ('-' = stdout; .gz = gzip)", NULL, 0},
        {"events", 'n', OPT_SIZE, &p.n_events, "N", "number of events", NULL, 0},
        {"items", 0, OPT_SIZE, &p.n_items, "N", "number of items", NULL, 0},
        {"topics", 0, OPT_SIZE, &p.n_topics, "N", "latent topics", NULL, 0},
        {"zipf", 0, OPT_DOUBLE, &p.zipf, "S", "item popularity exponent", NULL, 0},
        {"mean-length", 0, OPT_DOUBLE, &p.mean_length, "L", "mean session length", NULL, 0},
        {"days", 0, OPT_DOUBLE, &p.days, "D", "time span in days", NULL, 0},
        {"successors", 0, OPT_SIZE, &p.n_successors, "K", "preferred successors per item", NULL,
         0},
        {"follow", 0, OPT_DOUBLE, &p.p_follow, "P", "probability of following a successor", NULL,
         0},
        {"switch", 0, OPT_DOUBLE, &p.p_switch, "P", "probability of a topic switch", NULL, 0},
        {"repeat", 0, OPT_DOUBLE, &p.p_repeat, "P", "probability of re-clicking an earlier item",
         NULL, 0},
        {"cross", 0, OPT_DOUBLE, &p.p_cross, "P", "share of successors from other topics", NULL,
         0},
        {"seed", 0, OPT_U64, &p.seed, "N", "random seed", NULL, 0},
        {"gzip", 'z', OPT_FLAG, &gz_stdout, NULL, "gzip the output (implied by a .gz name)", NULL,
         0},
        {"quiet", 'q', OPT_FLAG, &quiet, NULL, "no summary on stderr", NULL, 0},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, 0}};
    const char *pos[1];
    size_t n_pos;
    int rc = cli_parse(argc, argv, opts, "rnnrec synth [options] -o FILE",
                       "Writes a synthetic session clickstream (session_id, item_id, timestamp)\n"
                       "with Zipf popularity, latent topics and item-to-item transitions.\n"
                       "The same seed and options always give the same bytes.",
                       pos, 0, &n_pos);
    if (rc < 0) return RR_EXIT_OK;
    if (rc) return rc;
    if (!out) {
        cli_error("synth", "missing -o FILE (see --help)");
        return RR_EXIT_USAGE;
    }
    const char *bad = rr_synth_params_check(&p);
    if (bad) {
        cli_error("synth", "%s", bad);
        return RR_EXIT_USAGE;
    }
    rr_error err = {RR_OK, {0}};
    double t0 = rr_now();
    rr_status st;
    if (!strcmp(out, "-")) {
        fflush(stdout);
        st = rr_synth_write_fd(&p, 1, gz_stdout, &err);
    } else {
        size_t n = strlen(out);
        if (gz_stdout && !(n > 3 && !strcmp(out + n - 3, ".gz"))) {
            cli_error("synth", "--gzip with a file: name it FILE.gz");
            return RR_EXIT_USAGE;
        }
        st = rr_synth_write(&p, out, &err);
    }
    if (st) return cli_fail("synth", &err);
    if (!quiet)
        fprintf(stderr, "rnnrec synth: %zu events, %zu items, seed %llu -> %s (%.2f s)\n",
                p.n_events, p.n_items, (unsigned long long)p.seed, out, rr_now() - t0);
    return RR_EXIT_OK;
}
