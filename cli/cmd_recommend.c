/* cmd_recommend.c - placeholder until the subcommand lands. */
#include "cli.h"
#include <stdio.h>
int cmd_recommend(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "rnnrec recommend: not built yet\n");
    return RR_EXIT_RUNTIME;
}
