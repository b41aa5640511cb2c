/* quickstart.c - librnnrec from a program of one's own: generate a small
 * synthetic clickstream, train a GRU on it, save and reload the model,
 * evaluate it, then keep a live session and ask for its next items.
 *
 *   cc quickstart.c $(pkg-config --cflags --libs rnnrec) -o quickstart
 *   ./quickstart [MODEL_PATH]          (default: quickstart.rr)
 *
 * tests/cli_install.sh builds it against an installed copy of the library,
 * through pkg-config and through CMake's find_package(rnnrec). */
#include <stdio.h>
#include <stdlib.h>

#include "rnnrec.h"

static int fail(const char *what, const rr_error *err) {
    fprintf(stderr, "quickstart: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "quickstart.rr";
    rr_error err;

    /* 1. data: 20,000 synthetic events over 500 items */
    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.n_events = 20000;
    sp.n_items = 500;
    rr_dataset *data = NULL;
    if (rr_synth_generate(&sp, &data, &err)) return fail("synth", &err);

    /* 2. a small GRU, trained for two epochs, saved and loaded again */
    rr_train_params tp;
    rr_train_params_default(&tp);
    tp.kind = "gru";
    tp.layers[0] = 32;
    tp.epochs = 2;
    tp.threads = 1;
    const char *bad = rr_train_params_check(&tp);
    if (bad) {
        fprintf(stderr, "quickstart: %s\n", bad);
        return 1;
    }
    rr_model *m = NULL;
    if (rr_model_train(&m, data, NULL, &tp, &err)) return fail("train", &err);
    if (rr_model_save(m, path, &err)) return fail("save", &err);
    rr_model_free(m);
    m = NULL;
    if (rr_model_load(path, &m, &err)) return fail("load", &err);

    /* 3. full-catalogue evaluation (on the training data, for brevity) */
    rr_eval_params ep;
    rr_eval_params_default(&ep);
    rr_eval_result res;
    if (rr_evaluate(m, data, &ep, &res, &err)) return fail("evaluate", &err);
    printf("%s model, %zu items; recall@20 %.4f, mrr@20 %.4f over %zu targets\n", rr_model_kind(m),
           rr_model_n_items(m), res.recall[ep.n_cutoffs - 1], res.mrr[ep.n_cutoffs - 1], res.n_targets);

    /* 4. a live session: the quantised screen first (same results, faster),
     *    then two clicks and the top 5 */
    if (rr_model_use_screen(m, 8, &err)) return fail("screen", &err);
    rr_state *s = rr_state_new(m);
    if (!s) return 1;
    const char *clicks[] = {"1", "2"};
    for (int i = 0; i < 2; i++) {
        int32_t ix = rr_model_item_index(m, clicks[i], 1);
        if (ix >= 0 && rr_state_feed(s, ix)) return 1;
    }
    int32_t top[5];
    float sc[5];
    if (rr_recommend(m, &s, 1, 5, 1, top, sc, &err)) return fail("recommend", &err);
    for (int r = 0; r < 5 && top[r] >= 0; r++) {
        size_t len;
        const char *id = rr_model_item_id(m, top[r], &len);
        printf("%d. item %.*s (score %.4f)\n", r + 1, (int)len, id, (double)sc[r]);
    }
    rr_state_free(s);
    rr_model_free(m);
    rr_dataset_free(data);
    return 0;
}
