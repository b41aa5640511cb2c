/* cmd_eval.c - placeholder until the subcommand lands. */
#include "cli.h"
#include <stdio.h>
int cmd_eval(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "rnnrec eval: not built yet\n");
    return RR_EXIT_RUNTIME;
}
