/* cmd_synth.c - placeholder until the subcommand lands. */
#include "cli.h"
#include <stdio.h>
int cmd_synth(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "rnnrec synth: not built yet\n");
    return RR_EXIT_RUNTIME;
}
