/* cmd_info.c - `rnnrec info MODEL`: the header of a model file: format
 * version, kind, item count, every metadata key/value and the section table.
 * Works for kinds this build cannot run, since only the container is read
 * (and fully validated, checksums included). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "io/container.h"
#include "models/model.h"
#include "util/util.h"

static const char *usage_line = "rnnrec info MODEL";
static const char *description = "Prints a model file's header: format version, model kind, number of items,\n"
                                 "metadata and the section table (name, type, bytes, CRC-32C).";

int cmd_info(int argc, char **argv) {
    const char *cmd = "info";
    cli_opt opts[] = {{NULL, 0, OPT_FLAG, NULL, NULL, NULL, NULL, 0}};
    const char *pos[1];
    size_t n_pos = 0;
    int rc = cli_parse(argc, argv, opts, usage_line, description, pos, 1, &n_pos);
    if (rc) return rc == -1 ? RR_EXIT_OK : rc;
    if (n_pos != 1) {
        cli_error(cmd, "expected one MODEL (see --help)");
        return RR_EXIT_USAGE;
    }
    rr_error err;
    memset(&err, 0, sizeof err);
    rr_freader *r = NULL;
    if (rr_fr_open(pos[0], &r, &err) != RR_OK) return cli_fail(cmd, &err);
    rr_vocab v;
    if (rr_fr_vocab(r, &v, &err) != RR_OK) {
        rr_err_prefix(&err, "%s", pos[0]);
        rr_fr_free(r);
        return cli_fail(cmd, &err);
    }
    struct stat sb;
    long long size = stat(pos[0], &sb) == 0 ? (long long)sb.st_size : -1;
    printf("file:     %s (%lld bytes)\n", pos[0], size);
    printf("format:   rnnrec model, version %" PRIu32 "\n", rr_fr_version(r));
    printf("kind:     %s%s\n", rr_fr_kind(r), rr_model_ops_find(rr_fr_kind(r)) ? "" : " (not built into this rnnrec)");
    printf("items:    %zu\n", v.n);
    rr_vocab_clear(&v);
    printf("metadata: %zu keys\n", rr_fr_n_kv(r));
    for (size_t i = 0; i < rr_fr_n_kv(r); i++) {
        const char *k, *val;
        rr_fr_kv_at(r, i, &k, &val);
        printf("  %-24s %s\n", k, val);
    }
    printf("sections: %zu\n", rr_fr_n_sections(r));
    printf("  %-24s %-6s %14s  %s\n", "name", "type", "bytes", "crc32c");
    for (size_t i = 0; i < rr_fr_n_sections(r); i++) {
        const char *name;
        rr_dtype dt;
        size_t bytes;
        uint32_t crc;
        rr_fr_section_at(r, i, &name, &dt, &bytes, &crc);
        printf("  %-24s %-6s %14zu  %08" PRIx32 "\n", name, rr_dtype_name(dt), bytes, crc);
    }
    rr_fr_free(r);
    if (fflush(stdout) != 0) {
        cli_error(cmd, "cannot write the output");
        return RR_EXIT_RUNTIME;
    }
    return RR_EXIT_OK;
}
