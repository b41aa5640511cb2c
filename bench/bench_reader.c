/* bench_reader.c - reader throughput: rows/s (ids mapped, sessions built)
 * of rr_dataset_read on plain TSV in the page cache, one core, best of 5,
 * with pandas.read_csv on the same file in the same run for the ratio.
 *
 * usage: bench_reader [--no-pandas] [FILE ...]
 * Without FILE: a ~1M-row synthetic TSV (rr_synth_write) in /tmp, and the
 * diginetica-srgnn train part ($RR_SHARED_DATA/diginetica-srgnn/events.tsv.gz,
 * first 906,140 data rows, decompressed to /tmp) when present. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "rnnrec.h"
#include "util/util.h"


static const char *pandas_script(void) {
    static char path[1024];
    const char *src = getenv("RR_SRC");
    if (src) {
        snprintf(path, sizeof path, "%s/bench/reader_pandas.py", src);
    } else { /* next to this source file */
        snprintf(path, sizeof path, "%s", __FILE__);
        char *slash = strrchr(path, '/');
        if (slash) strcpy(slash + 1, "reader_pandas.py");
        else strcpy(path, "bench/reader_pandas.py");
    }
    return path;
}

/* Copies the header and the first `rows` data rows of a gzip TSV. */
static int extract_rows(const char *gz, const char *out, size_t rows) {
    gzFile in = gzopen(gz, "rb");
    FILE *o = fopen(out, "wb");
    if (!in || !o) {
        if (in) gzclose(in);
        if (o) fclose(o);
        return -1;
    }
    char line[4096];
    size_t n = 0;
    while (n <= rows && gzgets(in, line, sizeof line)) {
        fputs(line, o);
        n++;
    }
    gzclose(in);
    fclose(o);
    return n == rows + 1 ? 0 : -1;
}

static void warm(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return;
    static char buf[1 << 16];
    while (fread(buf, 1, sizeof buf, f) > 0) {
    }
    fclose(f);
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double pandas_value(const char *out, const char *key) {
    const char *p = strstr(out, key);
    if (!p) return 0;
    return atof(p + strlen(key) + 2);
}

static int bench_file(const char *path, int pandas) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "bench_reader: %s: not found\n", path);
        return 1;
    }
    warm(path);
    rr_read_opts o;
    rr_read_opts_default(&o);
    double best = 1e30, best_cpu = 1e30;
    size_t rows = 0, sessions = 0, items = 0;
    for (int r = 0; r < 5; r++) {
        rr_error err;
        rr_dataset *d = NULL;
        double t0 = rr_now(), c0 = cpu_now();
        if (rr_dataset_read(path, &o, &d, &err) != RR_OK) {
            fprintf(stderr, "bench_reader: %s\n", err.msg);
            return 1;
        }
        double dt = rr_now() - t0, dc = cpu_now() - c0;
        if (dt < best) best = dt;
        if (dc < best_cpu) best_cpu = dc;
        rows = rr_dataset_n_events(d);
        sessions = rr_dataset_n_sessions(d);
        items = rr_dataset_n_items(d);
        rr_dataset_free(d);
    }
    double rps = (double)rows / best;
    printf("file: %s\n", path);
    printf("bytes: %lld\n", (long long)sb.st_size);
    printf("rows: %zu\n", rows);
    printf("sessions: %zu\n", sessions);
    printf("items: %zu\n", items);
    printf("rnnrec_best_s: %.4f\n", best);
    printf("rnnrec_rows_per_s: %.0f\n", rps);
    printf("rnnrec_mb_per_s: %.1f\n", (double)sb.st_size / best / 1e6);
    /* CPU time: the same figure without other processes' share of the core */
    printf("rnnrec_cpu_best_s: %.4f\n", best_cpu);
    printf("rnnrec_rows_per_cpu_s: %.0f\n", (double)rows / best_cpu);
    printf("peak_rss_mib: %.1f\n", (double)rr_peak_rss_kb() / 1024.0);
    fflush(stdout);
    if (!pandas) return 0;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' 3 2>&1", pandas_script(), path);
    FILE *pp = popen(cmd, "r");
    if (!pp) {
        printf("pandas: could not run %s\n", pandas_script());
        return 0;
    }
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, pp);
    out[n] = 0;
    int rc = pclose(pp);
    fputs(out, stdout);
    double pi = pandas_value(out, "pandas_int64_rows_per_s"),
           ps = pandas_value(out, "pandas_str_rows_per_s");
    if (rc == 0 && pi > 0 && ps > 0) {
        printf("speedup_vs_pandas_int64: %.2f\n", rps / pi);
        printf("speedup_vs_pandas_str: %.2f\n", rps / ps);
    } else {
        printf("pandas: skipped (exit %d; needs python3-pandas)\n", rc);
    }
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    int pandas = 1, rc = 0, n_files = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-pandas")) {
            pandas = 0;
            continue;
        }
        n_files++;
        printf("\n");
        rc |= bench_file(argv[i], pandas);
    }
    if (n_files) return rc;
    /* default: a synthetic ~1M-row file */
    const char *syn = "/tmp/rr_bench_reader_synth.tsv";
    rr_synth_params p;
    rr_synth_params_default(&p);
    p.n_events = 1000000;
    p.n_items = 40000;
    rr_error err;
    double t0 = rr_now();
    if (rr_synth_write(&p, syn, &err) != RR_OK) {
        fprintf(stderr, "bench_reader: %s\n", err.msg);
        return 1;
    }
    printf("synth_write_s: %.3f (1M events)\n", rr_now() - t0);
    printf("\n[synthetic]\n");
    rc |= bench_file(syn, pandas);
    const char *root = getenv("RR_SHARED_DATA");
    char gz[1024];
    snprintf(gz, sizeof gz, "%s/diginetica-srgnn/events.tsv.gz", root ? root : "../shared/data");
    if (access(gz, R_OK) != 0) {
        printf("\nSKIP: %s not found (set RR_SHARED_DATA)\n", gz);
        return rc;
    }
    const char *dg = "/tmp/rr_bench_reader_diginetica_train.tsv";
    if (extract_rows(gz, dg, 906140) != 0) {
        fprintf(stderr, "bench_reader: could not extract the train part of %s\n", gz);
        return 1;
    }
    printf("\n[diginetica-srgnn train part, 906140 rows]\n");
    rc |= bench_file(dg, pandas);
    return rc;
}
