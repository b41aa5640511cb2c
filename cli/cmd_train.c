/* cmd_train.c - placeholder until the subcommand lands. */
#include "cli.h"
#include <stdio.h>
int cmd_train(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "rnnrec train: not built yet\n");
    return RR_EXIT_RUNTIME;
}
