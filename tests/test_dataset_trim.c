/* test_dataset_trim.c - what `rnnrec train` frees of its datasets before
 * training (docs/rnn.md, peak memory): rr_dataset_drop_session_ids.  The
 * model trained on a trimmed dataset is the same bytes as on the full one;
 * what needs the dropped parts refuses the dataset instead of reading
 * freed memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/dataset.h"
#include "models/rnn.h"

static float *train_w(const rr_dataset *tr, const rr_dataset *va, const rr_train_params *p, size_t *np) {
    rr_model *m = NULL;
    rr_error err;
    CHECK_OK(rr_model_train(&m, tr, va, p, &err), &err);
    if (!m) return NULL;
    const rr_rnn *r = rr_rnn_of(m);
    float *w = malloc(r->lay.n_params * sizeof(float));
    memcpy(w, r->params, r->lay.n_params * sizeof(float));
    *np = r->lay.n_params;
    rr_model_free(m);
    return w;
}

int main(void) {
    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.n_events = check_small() ? 2000 : 4000;
    sp.n_items = 100;
    sp.seed = 8;
    rr_dataset *a = NULL, *b = NULL, *va = NULL, *vb = NULL;
    rr_error err;
    CHECK_OK(rr_synth_generate(&sp, &a, &err), &err);
    CHECK_OK(rr_synth_generate(&sp, &b, &err), &err);
    sp.seed = 9;
    sp.n_events = 800;
    CHECK_OK(rr_synth_generate(&sp, &va, &err), &err);
    CHECK_OK(rr_synth_generate(&sp, &vb, &err), &err);
    if (!a || !b || !va || !vb) return check_summary("test_dataset_trim");
    CHECK(b->sessions.n == b->s.n_sessions && b->sess_id);
    rr_dataset_drop_session_ids(b);
    rr_dataset_drop_session_ids(vb);
    rr_dataset_drop_session_ids(NULL);
    CHECK(b->sessions.n == 0 && !b->sess_id && b->session_ids_dropped);
    /* the training data itself is untouched */
    CHECK(rr_dataset_n_sessions(b) == rr_dataset_n_sessions(a) && rr_dataset_n_events(b) == rr_dataset_n_events(a));

    /* the same model, with validation (evaluation and best-epoch keeping
     * read the validation set) */
    rr_train_params p;
    rr_train_params_default(&p);
    p.kind = "gru";
    p.layers[0] = 12;
    p.batch_size = 8;
    p.n_sample = 16;
    p.momentum = 0.1;
    p.epochs = 2;
    p.threads = 1;
    p.verbose = 0;
    size_t na = 0, nb = 0;
    float *wa = train_w(a, va, &p, &na), *wb = train_w(b, vb, &p, &nb);
    CHECK_MSG(wa && wb && na == nb && !memcmp(wa, wb, na * sizeof(float)),
              "training on the trimmed dataset gave other weights");
    free(wa);
    free(wb);
    /* a baseline that reads sessions and times */
    p.kind = "sknn";
    rr_model *m = NULL;
    CHECK_OK(rr_model_train(&m, b, NULL, &p, &err), &err);
    rr_model_free(m);

    /* writing the events back needs the ids: refused, with the path */
    char path[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/rr_trim_%ld.tsv", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    CHECK(rr_dataset_write_tsv(b, path, &err) == RR_ERR_ARG && strstr(err.msg, "session ids were dropped"));
    CHECK(access(path, F_OK) != 0);
    CHECK_OK(rr_dataset_write_tsv(a, path, &err), &err);
    unlink(path);
    rr_prep_params pp;
    rr_prep_params_default(&pp);
    rr_prep_result res;
    CHECK(rr_prep_run(b, &pp, &res, &err) == RR_ERR_ARG && strstr(err.msg, "session ids were dropped"));
    rr_prep_result_free(&res);
    CHECK_OK(rr_prep_run(a, &pp, &res, &err), &err);
    rr_prep_result_free(&res);
    rr_dataset_free(a);
    rr_dataset_free(b);
    rr_dataset_free(va);
    rr_dataset_free(vb);
    return check_summary("test_dataset_trim");
}
