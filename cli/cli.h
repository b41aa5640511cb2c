/* cli.h - shared pieces of the rnnrec command line: the option table parser
 * (so every subcommand's --help lists its options with defaults), exit
 * codes, and the subcommand entry points. */
#ifndef RR_CLI_H
#define RR_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"

enum { RR_EXIT_OK = 0, RR_EXIT_RUNTIME = 1, RR_EXIT_USAGE = 2 };

typedef enum cli_opt_type {
    OPT_FLAG,    /* int, set to 1 */
    OPT_STR,     /* const char * */
    OPT_SIZE,    /* size_t */
    OPT_LONG,    /* long */
    OPT_DOUBLE,  /* double */
    OPT_U64,     /* uint64_t */
    OPT_CHAR,    /* char (a single character; "\t" and "tab" accepted) */
    OPT_CALLBACK /* fn(value, user) returns 0 ok, else usage error */
} cli_opt_type;

typedef int (*cli_opt_cb)(const char *value, void *user);

typedef struct cli_opt {
    const char *name;   /* long name without "--" */
    char short_name;    /* 0 when none */
    cli_opt_type type;
    void *ptr;          /* destination, or user pointer for OPT_CALLBACK */
    const char *arg;    /* argument placeholder, e.g. "N"; NULL for flags */
    const char *help;   /* one line; defaults are printed from *ptr */
    cli_opt_cb cb;      /* for OPT_CALLBACK */
    int cb_takes_arg;   /* OPT_CALLBACK: 1 if it takes a value */
} cli_opt;

/* Parses argv[1..] (argv[0] is the subcommand name).  Options may appear
 * anywhere; "--" ends them; positional arguments are gathered into pos (at
 * most max_pos).  Returns -1 on --help (usage printed to stdout), 0 on
 * success, RR_EXIT_USAGE after printing an error.  usage_line is e.g.
 * "rnnrec eval [options] MODEL TEST". */
int cli_parse(int argc, char **argv, const cli_opt *opts, const char *usage_line,
              const char *description, const char **pos, size_t max_pos, size_t *n_pos);
void cli_usage(const cli_opt *opts, const char *usage_line, const char *description);

/* Prints "rnnrec CMD: message" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the rr_error and returns RR_EXIT_RUNTIME (or RR_EXIT_USAGE for RR_ERR_ARG). */
int cli_fail(const char *cmd, const rr_error *err);

/* Installs the stderr log sink (level 0..3). */
void cli_log_init(int max_level);

/* Parses "1,5,10,20" into sizes (ascending, at most max). 0 on success. */
int cli_parse_size_list(const char *s, size_t *out, size_t max, size_t *n);

/* Subcommands: each returns an exit code. */
int cmd_synth(int argc, char **argv);
int cmd_prep(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
