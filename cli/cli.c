/* cli.c - option table parser, error printing and the stderr log sink. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

static void print_default(const cli_opt *o) {
    switch (o->type) {
    case OPT_STR:
        if (*(const char **)o->ptr) printf(" (default: %s)", *(const char **)o->ptr);
        break;
    case OPT_SIZE: printf(" (default: %zu)", *(size_t *)o->ptr); break;
    case OPT_LONG: printf(" (default: %ld)", *(long *)o->ptr); break;
    case OPT_DOUBLE: printf(" (default: %g)", *(double *)o->ptr); break;
    case OPT_U64: printf(" (default: %" PRIu64 ")", *(uint64_t *)o->ptr); break;
    case OPT_CHAR: {
        char c = *(char *)o->ptr;
        if (c == '\t') printf(" (default: tab)");
        else if (c) printf(" (default: '%c')", c);
        break;
    }
    default: break;
    }
}

void cli_usage(const cli_opt *opts, const char *usage_line, const char *description) {
    printf("usage: %s\n", usage_line);
    if (description) printf("\n%s\n", description);
    printf("\noptions:\n");
    for (const cli_opt *o = opts; o && o->name; o++) {
        char left[64];
        int takes = o->type != OPT_FLAG && !(o->type == OPT_CALLBACK && !o->cb_takes_arg);
        if (o->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, takes ? " " : "",
                     takes ? (o->arg ? o->arg : "X") : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, takes ? " " : "",
                     takes ? (o->arg ? o->arg : "X") : "");
        printf("  %-30s %s", left, o->help ? o->help : "");
        print_default(o);
        printf("\n");
    }
    printf("  %-30s %s\n", "-h, --help", "show this help");
}

void cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rnnrec %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

int cli_fail(const char *cmd, const rr_error *err) {
    fprintf(stderr, "rnnrec %s: %s\n", cmd, err->msg[0] ? err->msg : rr_status_str(err->status));
    return err->status == RR_ERR_ARG ? RR_EXIT_USAGE : RR_EXIT_RUNTIME;
}

static int set_value(const char *cmd, const cli_opt *o, const char *v) {
    char *end;
    errno = 0;
    switch (o->type) {
    case OPT_STR: *(const char **)o->ptr = v; return 0;
    case OPT_SIZE: {
        size_t x;
        if (!rr_parse_size(v, &x)) break;
        *(size_t *)o->ptr = x;
        return 0;
    }
    case OPT_U64: {
        if (*v == '-' || !*v) break;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end) break;
        *(uint64_t *)o->ptr = (uint64_t)x;
        return 0;
    }
    case OPT_LONG: {
        long x = strtol(v, &end, 10);
        if (errno || *end || !*v) break;
        *(long *)o->ptr = x;
        return 0;
    }
    case OPT_DOUBLE: {
        double x;
        if (!rr_parse_double(v, &x)) break;
        *(double *)o->ptr = x;
        return 0;
    }
    case OPT_CHAR:
        if (!strcmp(v, "\\t") || !strcmp(v, "tab") || !strcmp(v, "\t")) {
            *(char *)o->ptr = '\t';
            return 0;
        }
        if (strlen(v) == 1) {
            *(char *)o->ptr = v[0];
            return 0;
        }
        break;
    case OPT_CALLBACK:
        if (o->cb(v, o->ptr) == 0) return 0;
        break;
    case OPT_FLAG: *(int *)o->ptr = 1; return 0;
    }
    cli_error(cmd, "invalid value '%s' for --%s%s%s", v ? v : "", o->name, o->arg ? " " : "",
              o->arg ? o->arg : "");
    return RR_EXIT_USAGE;
}

int cli_parse(int argc, char **argv, const cli_opt *opts, const char *usage_line,
              const char *description, const char **pos, size_t max_pos, size_t *n_pos) {
    const char *cmd = argv[0];
    *n_pos = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || !strcmp(a, "-")) {
            if (*n_pos >= max_pos) {
                cli_error(cmd, "unexpected argument '%s' (see --help)", a);
                return RR_EXIT_USAGE;
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_usage(opts, usage_line, description);
            return -1;
        }
        const cli_opt *o = NULL;
        const char *inline_val = NULL;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            for (const cli_opt *p = opts; p && p->name; p++)
                if (strlen(p->name) == len && !strncmp(p->name, name, len)) o = p;
            if (eq) inline_val = eq + 1;
        } else if (a[2] == 0) {
            for (const cli_opt *p = opts; p && p->name; p++)
                if (p->short_name == a[1]) o = p;
        }
        if (!o) {
            cli_error(cmd, "unknown option '%s' (see --help)", a);
            return RR_EXIT_USAGE;
        }
        int takes = o->type != OPT_FLAG && !(o->type == OPT_CALLBACK && !o->cb_takes_arg);
        if (!takes) {
            if (inline_val) {
                cli_error(cmd, "option --%s takes no value", o->name);
                return RR_EXIT_USAGE;
            }
            if (o->type == OPT_FLAG) *(int *)o->ptr = 1;
            else if (o->cb(NULL, o->ptr) != 0) return RR_EXIT_USAGE;
            continue;
        }
        const char *v = inline_val;
        if (!v) {
            if (i + 1 >= argc) {
                cli_error(cmd, "option --%s needs a value %s", o->name, o->arg ? o->arg : "");
                return RR_EXIT_USAGE;
            }
            v = argv[++i];
        }
        int rc = set_value(cmd, o, v);
        if (rc) return rc;
    }
    return 0;
}

static void log_sink(int level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"error", "warning", "info", "debug"};
    if (level <= 1)
        fprintf(stderr, "rnnrec: %s: %s\n", names[level < 0 ? 0 : level], msg);
    else
        fprintf(stderr, "%s\n", msg);
}

void cli_log_init(int max_level) { rr_log_set(log_sink, NULL, max_level); }

int cli_parse_size_list(const char *s, size_t *out, size_t max, size_t *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        if (*p < '0' || *p > '9') return -1;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || end == p || v == 0) return -1;
        if (*n >= max) return -1;
        if (*n && v <= out[*n - 1]) return -1;
        out[(*n)++] = (size_t)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return *n ? 0 : -1;
}
