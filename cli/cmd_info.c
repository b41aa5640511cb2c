/* cmd_info.c - placeholder until the subcommand lands. */
#include "cli.h"
#include <stdio.h>
int cmd_info(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "rnnrec info: not built yet\n");
    return RR_EXIT_RUNTIME;
}
