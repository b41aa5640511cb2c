/* rnnrec.c - the command-line front end: dispatches to one file per
 * subcommand (cli/cmd_*.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifdef RR_HAVE_MPI
#include <mpi.h>

/* MPI is started only for the commands that use it (train, eval) and only
 * when a launcher started this process (mpirun / mpiexec set these), so a
 * plain `rnnrec train` of an MPI build runs exactly as without MPI. */
static int launched_by_mpi(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

static int run_mpi(int (*fn)(int, char **), int argc, char **argv) {
    int provided = 0;
    /* only the main thread calls MPI (OpenMP threads never do) */
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "rnnrec: MPI_Init failed\n");
        return RR_EXIT_RUNTIME;
    }
    int rc = fn(argc - 1, argv + 1);
    if (rc != RR_EXIT_OK) {
        /* A rank that fails alone would leave the others waiting in a
         * collective: end the whole job instead. */
        int size = 1;
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        if (size > 1) MPI_Abort(MPI_COMM_WORLD, rc);
    }
    MPI_Finalize();
    return rc;
}
#endif

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
        if (!strcmp(argv[1], commands[i].name)) {
#ifdef RR_HAVE_MPI
            if ((commands[i].fn == cmd_train || commands[i].fn == cmd_eval) && launched_by_mpi())
                return run_mpi(commands[i].fn, argc, argv);
#endif
            return commands[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "rnnrec: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return RR_EXIT_USAGE;
}
