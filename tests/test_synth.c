/* test_synth.c - the synthetic generator: determinism, file == memory,
 * sizes, session lengths, times, Zipf-like popularity, and that the
 * sequential structure is there (first-order Markov beats popularity by a
 * wide margin but is far from perfect). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/dataset.h"
#include "data/synth.h"
#include "rnnrec.h"
#include "util/util.h"

static int same(const rr_dataset *a, const rr_dataset *b) {
    if (a->s.n_events != b->s.n_events || a->s.n_sessions != b->s.n_sessions ||
        a->items.n != b->items.n)
        return 0;
    for (size_t i = 0; i <= a->s.n_sessions; i++)
        if (a->s.offsets[i] != b->s.offsets[i]) return 0;
    for (size_t e = 0; e < a->s.n_events; e++) {
        size_t l1, l2;
        const char *p = rr_vocab_id(&a->items, a->s.items[e], &l1);
        const char *q = rr_vocab_id(&b->items, b->s.items[e], &l2);
        if (l1 != l2 || memcmp(p, q, l1) || a->s.times[e] != b->s.times[e]) return 0;
    }
    for (size_t s = 0; s < a->s.n_sessions; s++) {
        size_t l1, l2;
        const char *p = rr_vocab_id(&a->sessions, a->sess_id[s], &l1);
        const char *q = rr_vocab_id(&b->sessions, b->sess_id[s], &l2);
        if (l1 != l2 || memcmp(p, q, l1)) return 0;
    }
    return 1;
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Least-squares slope of log(count) on log(rank) over ranks 1..k. */
static double zipf_slope(const rr_dataset *d, size_t k) {
    double *c = NULL;
    rr_error err;
    if (rr_dataset_item_counts(d, &c, &err)) return 0;
    qsort(c, d->items.n, sizeof *c, cmp_desc);
    if (k > d->items.n) k = d->items.n;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    size_t n = 0;
    for (size_t r = 0; r < k && c[r] > 0; r++, n++) {
        double x = log((double)(r + 1)), y = log(c[r]);
        sx += x, sy += y, sxx += x * x, sxy += x * y;
    }
    free(c);
    double dn = (double)n;
    return (dn * sxy - sx * sy) / (dn * sxx - sx * sx);
}

static int cmp_cnt(const void *a, const void *b) {
    const int64_t *x = a, *y = b; /* (count, item) pairs: count desc, item asc */
    if (x[0] != y[0]) return x[0] < y[0] ? 1 : -1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Next-item recall@20 on the last 10% of sessions for popularity and a
 * first-order Markov model (successor counts from the first 90%, falling
 * back to popularity to fill 20). */
static void baselines(const rr_dataset *d, double *pop_r, double *mk_r) {
    size_t ns = d->s.n_sessions, ni = d->items.n, cut = ns - ns / 10;
    int64_t *cnt = calloc(ni * 2, sizeof *cnt);
    for (size_t i = 0; i < ni; i++) cnt[2 * i + 1] = (int64_t)i;
    /* successor lists: CSR of (prev -> next) pairs from train */
    size_t ntr = (size_t)d->s.offsets[cut];
    size_t *deg = calloc(ni + 1, sizeof *deg);
    for (size_t s = 0; s < cut; s++)
        for (int64_t e = d->s.offsets[s]; e < d->s.offsets[s + 1]; e++) {
            cnt[2 * d->s.items[e]]++;
            if (e > d->s.offsets[s]) deg[d->s.items[e - 1] + 1]++;
        }
    for (size_t i = 0; i < ni; i++) deg[i + 1] += deg[i];
    int32_t *nxt = malloc((ntr + 1) * sizeof *nxt);
    size_t *fill = calloc(ni, sizeof *fill);
    for (size_t s = 0; s < cut; s++)
        for (int64_t e = d->s.offsets[s] + 1; e < d->s.offsets[s + 1]; e++) {
            int32_t p = d->s.items[e - 1];
            nxt[deg[p] + fill[p]++] = d->s.items[e];
        }
    qsort(cnt, ni, 2 * sizeof *cnt, cmp_cnt);
    int32_t top[20];
    for (int k = 0; k < 20; k++) top[k] = (int32_t)cnt[2 * k + 1];
    int64_t *tmp = calloc(ni * 2, sizeof *tmp);
    int32_t *mark = calloc(ni, sizeof *mark);
    size_t hits_pop = 0, hits_mk = 0, n = 0;
    for (size_t s = cut; s < ns; s++)
        for (int64_t e = d->s.offsets[s] + 1; e < d->s.offsets[s + 1]; e++) {
            int32_t prev = d->s.items[e - 1], tgt = d->s.items[e];
            n++;
            for (int k = 0; k < 20; k++) hits_pop += top[k] == tgt;
            /* Markov: successor counts of prev */
            size_t m = 0;
            for (size_t j = deg[prev]; j < deg[prev + 1]; j++) {
                int32_t it = nxt[j];
                if (!mark[it]) {
                    tmp[2 * m] = 0;
                    tmp[2 * m + 1] = it;
                    mark[it] = (int32_t)++m;
                }
                tmp[2 * (mark[it] - 1)]++;
            }
            for (size_t j = 0; j < m; j++) mark[tmp[2 * j + 1]] = 0;
            qsort(tmp, m, 2 * sizeof *tmp, cmp_cnt);
            int hit = 0;
            for (size_t k = 0; k < m && k < 20; k++) hit |= tmp[2 * k + 1] == tgt;
            for (size_t k = 0; m + k < 20 && !hit; k++) hit |= top[k] == tgt;
            hits_mk += (size_t)hit;
        }
    *pop_r = (double)hits_pop / (double)n;
    *mk_r = (double)hits_mk / (double)n;
    free(cnt);
    free(deg);
    free(nxt);
    free(fill);
    free(tmp);
    free(mark);
}

int main(void) {
    int small = check_small();
    rr_synth_params p;
    rr_synth_params_default(&p);
    CHECK(p.n_events == 200000 && p.n_items == 5000 && p.zipf == 1.0);
    CHECK(rr_synth_params_check(&p) == NULL);
    if (small) p.n_events = 50000;
    rr_error err;

    /* determinism */
    rr_dataset *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(rr_synth_generate(&p, &a, &err), &err);
    CHECK_OK(rr_synth_generate(&p, &b, &err), &err);
    p.seed = 2;
    CHECK_OK(rr_synth_generate(&p, &c, &err), &err);
    p.seed = 1;
    if (!a || !b || !c) return check_summary("test_synth");
    CHECK_MSG(same(a, b), "same seed gave different data");
    CHECK_MSG(!same(a, c), "different seeds gave the same data");

    /* sizes and lengths */
    size_t ne = rr_dataset_n_events(a), ns = rr_dataset_n_sessions(a);
    CHECK(ne == p.n_events);
    CHECK_MSG(rr_dataset_n_items(a) > p.n_items * 8 / 10 && rr_dataset_n_items(a) <= p.n_items,
              "%zu distinct items of %zu", rr_dataset_n_items(a), p.n_items);
    double mean = (double)ne / (double)ns;
    size_t ones = 0, maxlen = 0;
    int sorted = 1, in_span = 1;
    double t_end = (double)p.epoch + p.days * 86400.0;
    for (size_t s = 0; s < ns; s++) {
        size_t len = rr_session_len(&a->s, s);
        ones += len == 1;
        if (len > maxlen) maxlen = len;
        for (int64_t e = a->s.offsets[s]; e < a->s.offsets[s + 1]; e++) {
            double t = a->s.times[e];
            if (e > a->s.offsets[s] && t <= a->s.times[e - 1]) sorted = 0;
            if (t < (double)p.epoch || t > t_end + 200 * 3600 || t != floor(t)) in_span = 0;
        }
    }
    printf("sessions %zu, mean length %.2f, length-1 share %.3f, max %zu\n", ns, mean,
           (double)ones / (double)ns, maxlen);
    CHECK_MSG(mean > 3.8 && mean < 5.2, "mean session length %.2f, want ~4.5", mean);
    CHECK_MSG((double)ones / (double)ns > 0.1 && (double)ones / (double)ns < 0.4,
              "length-1 share %.3f", (double)ones / (double)ns);
    CHECK_MSG(maxlen >= 30 && maxlen <= RR_SYNTH_MAX_LEN, "max length %zu (heavy tail)", maxlen);
    CHECK_MSG(sorted, "times not strictly increasing within sessions");
    CHECK_MSG(in_span, "times outside [epoch, epoch + days] or not integers");
    /* the first session starts near the epoch, the last near the end */
    CHECK(a->s.times[0] < (double)p.epoch + 3600);
    CHECK(a->s.times[a->s.offsets[ns - 1]] > t_end - 86400);

    /* Zipf-like popularity: log-log slope near -zipf in the head */
    double slope = zipf_slope(a, 200);
    printf("zipf 1.0: log-log slope over the top 200 items %.3f\n", slope);
    CHECK_MSG(slope < -0.6 && slope > -1.4, "slope %.3f for zipf 1.0", slope);
    rr_synth_params q = p;
    q.zipf = 0;
    q.n_events = 50000;
    rr_dataset *u = NULL;
    CHECK_OK(rr_synth_generate(&q, &u, &err), &err);
    if (u) {
        double su = zipf_slope(u, 200);
        printf("zipf 0: slope %.3f\n", su);
        CHECK_MSG(su > -0.4, "slope %.3f for zipf 0", su);
        rr_dataset_free(u);
    }

    /* learnable: Markov >> popularity, and not perfect */
    double pr, mr;
    baselines(a, &pr, &mr);
    printf("next-item recall@20: popularity %.3f, first-order Markov %.3f\n", pr, mr);
    CHECK_MSG(mr > 1.5 * pr, "markov %.3f vs pop %.3f", mr, pr);
    CHECK_MSG(mr < 0.85, "markov %.3f: too predictable", mr);
    CHECK_MSG(pr > 0.01, "pop %.3f: no popularity signal", pr);

    /* the file writer streams the same events; .gz too */
    char dir[] = "/tmp/rr_test_synth_XXXXXX";
    if (mkdtemp(dir)) {
        char path[256], gzp[256];
        snprintf(path, sizeof path, "%s/s.tsv", dir);
        snprintf(gzp, sizeof gzp, "%s/s.tsv.gz", dir);
        CHECK_OK(rr_synth_write(&p, path, &err), &err);
        CHECK_OK(rr_synth_write(&p, gzp, &err), &err);
        rr_read_opts o;
        rr_read_opts_default(&o);
        rr_dataset *f = NULL, *g = NULL;
        CHECK_OK(rr_dataset_read(path, &o, &f, &err), &err);
        CHECK_OK(rr_dataset_read(gzp, &o, &g, &err), &err);
        if (f) CHECK_MSG(same(a, f), "file differs from the in-memory dataset");
        if (g) CHECK_MSG(same(a, g), "gzip file differs from the in-memory dataset");
        FILE *fh = fopen(gzp, "rb");
        unsigned char mg[2] = {0, 0};
        if (fh) {
            CHECK(fread(mg, 1, 2, fh) == 2);
            fclose(fh);
        }
        CHECK(mg[0] == 0x1f && mg[1] == 0x8b);
        rr_dataset_free(f);
        rr_dataset_free(g);
        /* bad parameters */
        q = p;
        q.n_items = 1;
        CHECK(rr_synth_write(&q, path, &err) == RR_ERR_ARG && strstr(err.msg, "n_items"));
        q = p;
        q.p_follow = 0.99;
        CHECK(rr_synth_generate(&q, &f, &err) == RR_ERR_ARG && f == NULL);
        unlink(path);
        unlink(gzp);
        rmdir(dir);
    } else CHECK(0);

    /* speed and size at scale (skipped under sanitizers) */
    if (!small) {
        q = p;
        q.n_events = 2000000;
        q.n_items = 100000;
        double t0 = rr_now();
        rr_dataset *big = NULL;
        CHECK_OK(rr_synth_generate(&q, &big, &err), &err);
        double dt = rr_now() - t0;
        printf("2M events, 100k items in memory: %.2f s\n", dt);
        if (big) CHECK(rr_dataset_n_events(big) == 2000000);
        rr_dataset_free(big);
    }
    rr_dataset_free(a);
    rr_dataset_free(b);
    rr_dataset_free(c);
    return check_summary("test_synth");
}
