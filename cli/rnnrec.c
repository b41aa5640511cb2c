/* rnnrec.c - the command-line front end: dispatches to one file per
 * subcommand (cli/cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"synth", cmd_synth, "generate a synthetic clickstream (TSV)"},
    {"prep", cmd_prep, "filter an event log and split it into train/test"},
    {"train", cmd_train, "train a model (RNN or baseline) and save it"},
    {"eval", cmd_eval, "evaluate a model by ranking the full catalogue"},
    {"recommend", cmd_recommend, "top-k items for a session"},
    {"info", cmd_info, "print a model file's header"},
    {"serve", cmd_serve, "HTTP recommendation service with live session state"},
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: rnnrec COMMAND [options] ...\n"
            "\n"
            "Recurrent-neural-network (GRU4Rec) session recommenders and baselines.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "`rnnrec COMMAND --help` lists a command's options and defaults.\n"
            "Exit codes: 0 success, 1 runtime error, 2 usage error.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return RR_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return RR_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("rnnrec %s\n", rr_version());
        return RR_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "rnnrec: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return RR_EXIT_USAGE;
}
