/* cmd_prep.c - placeholder until the subcommand lands. */
#include "cli.h"
#include <stdio.h>
int cmd_prep(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "rnnrec prep: not built yet\n");
    return RR_EXIT_RUNTIME;
}
