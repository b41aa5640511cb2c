/* test_train.c - the RNN trainer end to end on synthetic logs: the loss
 * falls epoch by epoch, GRU / LSTM / RNN beat popularity on held-out
 * sessions, two runs with the same seed and threads give the same model
 * bytes, a saved and reloaded model scores identically, the BLAS and the
 * reference GEMM paths agree, every input mode trains, and a diverging run
 * stops with RR_ERR_NUMERIC and a usable model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "models/model.h"
#include "models/rnn.h"
#include "nn/gemm.h"
#include "synth_log.h"
#include "train/trainer.h"
#include "util/util.h"

static char tmpdir[256];

/* Logs with more structure than the defaults: 10 topics, p_follow 0.7. */
static rr_dataset *synth(uint64_t seed, size_t events, size_t items) {
    rr_synth_params sp;
    synth_log_params(&sp, seed, events, items);
    sp.n_topics = 10;
    sp.p_follow = 0.7;
    return synth_log_make(&sp);
}

/* Splits d by session (every fifth session to test) through two TSV
 * files, so both parts share the generator's item structure. */
static void split(const rr_dataset *d, rr_dataset **tr, rr_dataset **te) {
    char pa[300], pb[300];
    snprintf(pa, sizeof pa, "%s/train.tsv", tmpdir);
    snprintf(pb, sizeof pb, "%s/test.tsv", tmpdir);
    FILE *fa = fopen(pa, "w"), *fb = fopen(pb, "w");
    CHECK(fa && fb);
    if (!fa || !fb) return;
    fprintf(fa, "session_id\titem_id\ttimestamp\n");
    fprintf(fb, "session_id\titem_id\ttimestamp\n");
    for (size_t s = 0; s < d->s.n_sessions; s++) {
        FILE *f = s % 5 == 4 ? fb : fa;
        for (int64_t e = d->s.offsets[s]; e < d->s.offsets[s + 1]; e++) {
            size_t len;
            const char *id = rr_vocab_id(&d->items, d->s.items[e], &len);
            fprintf(f, "%zu\t%.*s\t%.0f\n", s, (int)len, id, d->s.times[e]);
        }
    }
    fclose(fa);
    fclose(fb);
    rr_read_opts ro;
    rr_read_opts_default(&ro);
    rr_error err;
    CHECK_OK(rr_dataset_read(pa, &ro, tr, &err), &err);
    CHECK_OK(rr_dataset_read(pb, &ro, te, &err), &err);
    unlink(pa);
    unlink(pb);
}

static void base_params(rr_train_params *p) {
    rr_train_params_default(p);
    p->kind = "gru";
    p->layers[0] = 32;
    p->batch_size = 16;
    p->n_sample = 64;
    p->sample_alpha = 0.5;
    p->lr = 0.1;
    p->momentum = 0.1;
    p->loss = RR_LOSS_CROSS_ENTROPY;
    p->logq = 1.0;
    p->dropout_hidden = 0.1;
    p->epochs = 3;
    p->threads = 1;
    p->verbose = 0;
    p->seed = 11;
}

static double recall20(const rr_model *m, const rr_dataset *test) {
    rr_eval_params ep;
    rr_eval_params_default(&ep);
    ep.n_cutoffs = 1;
    ep.cutoffs[0] = 20;
    ep.threads = 1;
    rr_eval_result res;
    rr_error err;
    CHECK_OK(rr_evaluate(m, test, &ep, &res, &err), &err);
    return res.recall[0];
}

static unsigned char *slurp(const char *path, size_t *len) {
    char *d = NULL;
    rr_error err;
    if (rr_read_file(path, 0, &d, len, &err) != RR_OK) return NULL;
    return (unsigned char *)d;
}

/* Per-epoch losses from the JSON log. */
static size_t json_losses(const char *path, double *loss, size_t max) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    size_t n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        const char *q = strstr(line, "\"loss\":");
        if (q) loss[n++] = strtod(q + 7, NULL);
    }
    fclose(f);
    return n;
}

static void test_loss_and_accuracy(const rr_dataset *tr, const rr_dataset *te) {
    rr_train_params p;
    base_params(&p);
    p.epochs = check_small() ? 3 : 5;
    char js[300];
    snprintf(js, sizeof js, "%s/log.json", tmpdir);
    p.log_json = js;
    rr_error err;
    rr_model *m = NULL;
    CHECK_OK(rr_model_train(&m, tr, NULL, &p, &err), &err);
    if (!m) return;
    double loss[16];
    size_t ne = json_losses(js, loss, 16);
    CHECK_MSG(ne == p.epochs, "JSON log has %zu epochs, expected %zu", ne, p.epochs);
    for (size_t e = 1; e < ne; e++) CHECK_MSG(loss[e] < loss[e - 1], "epoch %zu loss %.5f !< %.5f", e + 1, loss[e], loss[e - 1]);
    if (ne >= 2) CHECK_MSG(loss[ne - 1] < 0.9 * loss[0], "loss fell only from %.4f to %.4f", loss[0], loss[ne - 1]);
    double r_gru = recall20(m, te);

    rr_train_params pp;
    rr_train_params_default(&pp);
    pp.kind = "pop";
    pp.verbose = 0;
    rr_model *pop = NULL;
    CHECK_OK(rr_model_train(&pop, tr, NULL, &pp, &err), &err);
    double r_pop = pop ? recall20(pop, te) : 1;
    printf("  gru recall@20 %.4f vs pop %.4f; losses", r_gru, r_pop);
    for (size_t e = 0; e < ne; e++) printf(" %.4f", loss[e]);
    printf("\n");
    CHECK_MSG(r_gru > 1.2 * r_pop, "gru recall@20 %.4f does not beat pop %.4f", r_gru, r_pop);

    /* The other cells learn too. */
    const char *kinds[] = {"lstm", "rnn"};
    for (int k = 0; k < 2; k++) {
        rr_train_params q;
        base_params(&q);
        q.kind = kinds[k];
        q.epochs = 3;
        rr_model *mk = NULL;
        CHECK_OK(rr_model_train(&mk, tr, NULL, &q, &err), &err);
        if (!mk) continue;
        CHECK(!strcmp(rr_model_kind(mk), kinds[k]));
        double r = recall20(mk, te);
        printf("  %s recall@20 %.4f\n", kinds[k], r);
        CHECK_MSG(r > 1.2 * r_pop, "%s recall@20 %.4f does not beat pop %.4f", kinds[k], r, r_pop);
        rr_model_free(mk);
    }
    rr_model_free(pop);
    rr_model_free(m);
}

static void test_determinism_and_roundtrip(const rr_dataset *tr, const rr_dataset *te) {
    for (int threads = 1; threads <= 2; threads++) {
        char f1[300], f2[300];
        snprintf(f1, sizeof f1, "%s/a%d.rr", tmpdir, threads);
        snprintf(f2, sizeof f2, "%s/b%d.rr", tmpdir, threads);
        rr_train_params p;
        base_params(&p);
        p.epochs = 2;
        p.threads = threads;
        p.dropout_embed = 0.2;
        rr_error err;
        rr_model *m1 = NULL, *m2 = NULL;
        CHECK_OK(rr_model_train(&m1, tr, NULL, &p, &err), &err);
        CHECK_OK(rr_model_train(&m2, tr, NULL, &p, &err), &err);
        if (!m1 || !m2) return;
        CHECK_OK(rr_model_save(m1, f1, &err), &err);
        CHECK_OK(rr_model_save(m2, f2, &err), &err);
        size_t l1 = 0, l2 = 0;
        unsigned char *b1 = slurp(f1, &l1), *b2 = slurp(f2, &l2);
        CHECK_MSG(b1 && b2 && l1 == l2 && !memcmp(b1, b2, l1), "threads %d: two runs give different model files", threads);
        free(b1);
        free(b2);
        if (threads == 1) {
            /* a different seed gives a different model */
            rr_train_params q = p;
            q.seed = 12;
            rr_model *m3 = NULL;
            CHECK_OK(rr_model_train(&m3, tr, NULL, &q, &err), &err);
            if (m3) {
                const rr_rnn *r1 = rr_rnn_of(m1), *r3 = rr_rnn_of(m3);
                CHECK(r1 && r3 && memcmp(r1->params, r3->params, r1->lay.n_params * sizeof(float)) != 0);
            }
            rr_model_free(m3);
        }
        /* round trip: identical recommendations and scores */
        rr_model *ml = NULL;
        CHECK_OK(rr_model_load(f1, &ml, &err), &err);
        if (ml) {
            CHECK(!strcmp(rr_model_kind(ml), "gru"));
            enum { NS = 5, K = 20 };
            rr_state *sa[NS], *sb[NS];
            for (int i = 0; i < NS; i++) {
                sa[i] = rr_state_new(m1);
                sb[i] = rr_state_new(ml);
                size_t s = (size_t)i * 7 % te->s.n_sessions;
                for (int64_t e = te->s.offsets[s]; e < te->s.offsets[s + 1]; e++) {
                    size_t len;
                    const char *id = rr_vocab_id(&te->items, te->s.items[e], &len);
                    int32_t a = rr_model_item_index(m1, id, len), b = rr_model_item_index(ml, id, len);
                    CHECK(a == b);
                    if (a >= 0) {
                        rr_state_feed(sa[i], a);
                        rr_state_feed(sb[i], b);
                    }
                }
            }
            int32_t ia[NS * K], ib[NS * K];
            float xa[NS * K], xb[NS * K];
            CHECK_OK(rr_recommend(m1, sa, NS, K, 0, ia, xa, &err), &err);
            CHECK_OK(rr_recommend(ml, sb, NS, K, 0, ib, xb, &err), &err);
            CHECK(!memcmp(ia, ib, sizeof ia) && !memcmp(xa, xb, sizeof xa));
            CHECK_NEAR(recall20(m1, te), recall20(ml, te), 0);
            for (int i = 0; i < NS; i++) {
                rr_state_free(sa[i]);
                rr_state_free(sb[i]);
            }
        }
        rr_model_free(ml);
        rr_model_free(m1);
        rr_model_free(m2);
        unlink(f1);
        unlink(f2);
    }
}

/* The same short training with the BLAS GEMM and the reference loops. */
static void test_blas_vs_ref(const rr_dataset *small) {
    rr_train_params p;
    base_params(&p);
    p.epochs = 1;
    p.layers[0] = 16;
    p.n_layers = 2;
    p.layers[1] = 12;
    rr_error err;
    rr_model *a = NULL, *b = NULL;
    CHECK_OK(rr_model_train(&a, small, NULL, &p, &err), &err);
    bool old = rr_gemm_force_ref(true);
    CHECK_OK(rr_model_train(&b, small, NULL, &p, &err), &err);
    rr_gemm_force_ref(old);
    if (!a || !b) return;
    const rr_rnn *ra = rr_rnn_of(a), *rb = rr_rnn_of(b);
    double dmax = 0, wmax = 0;
    for (size_t i = 0; i < ra->lay.n_params; i++) {
        dmax = fmax(dmax, fabs(ra->params[i] - rb->params[i]));
        wmax = fmax(wmax, fabs(ra->params[i]));
    }
    printf("  BLAS vs reference GEMM after one epoch: max |dw| %.2e (max |w| %.2f)\n", dmax, wmax);
    CHECK_MSG(dmax < 1e-3, "BLAS and reference paths diverge: %.3g", dmax);
    rr_model_free(a);
    rr_model_free(b);
}

static void test_modes(const rr_dataset *small, const rr_dataset *te) {
    static const struct {
        const char *kind;
        long emb;
        size_t nl, l0, l1;
        rr_loss loss;
        int relu;
    } modes[] = {
        {"gru", 0, 1, 24, 0, RR_LOSS_BPR_MAX, 0},   {"gru", 16, 2, 24, 16, RR_LOSS_CROSS_ENTROPY, 0},
        {"lstm", 0, 1, 16, 0, RR_LOSS_CROSS_ENTROPY, 0}, {"lstm", -1, 2, 24, 16, RR_LOSS_BPR_MAX, 0},
        {"rnn", 12, 1, 16, 0, RR_LOSS_TOP1_MAX, 1}, {"gru", -1, 2, 32, 16, RR_LOSS_BPR, 0},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        rr_train_params p;
        base_params(&p);
        p.kind = modes[i].kind;
        p.embedding = modes[i].emb;
        p.n_layers = modes[i].nl;
        p.layers[0] = modes[i].l0;
        p.layers[1] = modes[i].l1;
        p.loss = modes[i].loss;
        p.rnn_relu = modes[i].relu;
        p.elu_param = 0.5;
        p.dropout_embed = 0.1;
        p.epochs = 2;
        rr_error err;
        rr_model *m = NULL;
        CHECK_OK(rr_model_train(&m, small, NULL, &p, &err), &err);
        if (!m) continue;
        double r = recall20(m, te);
        CHECK_MSG(r > 0.02, "mode %zu (%s emb %ld): recall %.4f", i, modes[i].kind, modes[i].emb, r);
        char f[300];
        snprintf(f, sizeof f, "%s/m%zu.rr", tmpdir, i);
        CHECK_OK(rr_model_save(m, f, &err), &err);
        rr_model *ml = NULL;
        CHECK_OK(rr_model_load(f, &ml, &err), &err);
        if (ml) CHECK_NEAR(recall20(ml, te), r, 0);
        rr_model_free(ml);
        rr_model_free(m);
        unlink(f);
    }
}

/* A diverging run (SGD with an absurd rate) stops with RR_ERR_NUMERIC and
 * never hands back non-finite weights: either a finite model or none. */
static void test_numeric(const rr_dataset *small) {
    rr_train_params p;
    base_params(&p);
    p.optim = RR_OPT_SGD;
    p.lr = 1e30;
    p.momentum = 0;
    p.epochs = 2;
    rr_error err;
    rr_model *m = NULL;
    rr_status s = rr_rnn_fit(&m, small, NULL, &p, &err);
    CHECK_MSG(s == RR_ERR_NUMERIC, "status %d: %s", (int)s, s ? err.msg : "");
    if (s) CHECK(strstr(err.msg, "not finite") != NULL);
    if (m) {
        const rr_rnn *r = rr_rnn_of(m);
        size_t bad = 0;
        for (size_t i = 0; i < r->lay.n_params; i++) bad += !isfinite(r->params[i]);
        CHECK_MSG(bad == 0, "%zu non-finite weights in the returned model", bad);
    }
    rr_model_free(m);
    /* A run that is fine from the start is not flagged. */
    base_params(&p);
    p.epochs = 1;
    s = rr_rnn_fit(&m, small, NULL, &p, &err);
    CHECK_OK(s, &err);
    rr_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rr_test_train_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const size_t ev = check_small() ? 8000 : 50000;
    rr_dataset *all = synth(3, ev, 400), *tr = NULL, *te = NULL, *small = NULL, *small_te = NULL;
    rr_dataset *all_small = synth(5, 4000, 300);
    if (all && all_small) {
        split(all, &tr, &te);
        split(all_small, &small, &small_te);
    }
    if (tr && te && small && small_te) {
        test_loss_and_accuracy(tr, te);
        test_determinism_and_roundtrip(tr, te);
        test_blas_vs_ref(small);
        test_modes(small, small_te);
        test_numeric(small);
    }
    rr_dataset_free(all);
    rr_dataset_free(all_small);
    rr_dataset_free(tr);
    rr_dataset_free(te);
    rr_dataset_free(small);
    rr_dataset_free(small_te);
    rmdir(tmpdir);
    return check_summary("test_train");
}
