/* cmd_serve.c - placeholder until the server lands. */
#include <stdio.h>

#include "cli.h"
int cmd_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "rnnrec serve: not built yet\n");
    return RR_EXIT_RUNTIME;
}
