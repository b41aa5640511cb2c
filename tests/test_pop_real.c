/* test_pop_real.c - POP on the shipped yoochoose-100k split (session-rec's
 * sample of the RecSys Challenge 2015 clicks), full-catalogue ranking with
 * conservative ties.  The expected values are the project's reference
 * figures for GRU4Rec's evaluation protocol (every event but the first is
 * a target, ranked against all 2,933 items; items outside train dropped:
 * none here), to 6 decimals.
 * Skips when $RR_SHARED_DATA is absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rnnrec.h"

int main(void) {
    const char *dir = getenv("RR_SHARED_DATA");
    char train_path[4096], test_path[4096];
    snprintf(train_path, sizeof train_path, "%s/yoochoose-100k/yoochoose-clicks-100k_train_full.txt", dir ? dir : "");
    snprintf(test_path, sizeof test_path, "%s/yoochoose-100k/yoochoose-clicks-100k_test.txt", dir ? dir : "");
    FILE *f = dir ? fopen(train_path, "rb") : NULL;
    if (!f) {
        printf("SKIP: yoochoose-100k not found (RR_SHARED_DATA=%s)\n", dir ? dir : "(unset)");
        return 0;
    }
    fclose(f);
    rr_error err;
    rr_read_opts ro;
    rr_read_opts_default(&ro);
    rr_dataset *train = NULL, *test = NULL;
    CHECK_OK(rr_dataset_read(train_path, &ro, &train, &err), &err);
    CHECK_OK(rr_dataset_read(test_path, &ro, &test, &err), &err);
    if (!train || !test) return check_summary("test_pop_real");
    CHECK(rr_dataset_n_events(train) == 70278 && rr_dataset_n_sessions(train) == 17794);
    CHECK(rr_dataset_n_events(test) == 13568 && rr_dataset_n_sessions(test) == 3416);

    rr_train_params tp;
    rr_train_params_default(&tp);
    tp.kind = "pop";
    rr_model *m = NULL;
    CHECK_OK(rr_model_train(&m, train, NULL, &tp, &err), &err);
    if (!m) return check_summary("test_pop_real");
    rr_eval_params ep;
    rr_eval_params_default(&ep);
    rr_eval_result r;
    CHECK_OK(rr_evaluate(m, test, &ep, &r, &err), &err);
    printf("POP yoochoose-100k: %zu targets, %zu items, Recall@5 %.6f Recall@20 %.6f MRR@20 %.6f (%.3f s)\n",
           r.n_targets, r.n_items, r.recall[1], r.recall[3], r.mrr[3], r.seconds);
    CHECK(r.n_targets == 10152);
    CHECK(r.n_items == 2933);
    CHECK(r.n_dropped == 0);
    CHECK(r.n_sessions == 3416);
    CHECK(ep.cutoffs[1] == 5 && ep.cutoffs[3] == 20);
    CHECK_NEAR(r.recall[3], 0.089441, 5e-7);
    CHECK_NEAR(r.mrr[3], 0.026351, 5e-7);
    CHECK_NEAR(r.recall[1], 0.048562, 5e-7);

    /* the saved and reloaded model gives the same numbers */
    const char *path = "test_pop_real.rrm";
    CHECK_OK(rr_model_save(m, path, &err), &err);
    rr_model *m2 = NULL;
    CHECK_OK(rr_model_load(path, &m2, &err), &err);
    if (m2) {
        rr_eval_result r2;
        CHECK_OK(rr_evaluate(m2, test, &ep, &r2, &err), &err);
        CHECK(r2.n_targets == r.n_targets && r2.recall[3] == r.recall[3] && r2.mrr[3] == r.mrr[3]);
    }
    remove(path);
    rr_model_free(m2);
    rr_model_free(m);
    rr_dataset_free(train);
    rr_dataset_free(test);
    return check_summary("test_pop_real");
}
