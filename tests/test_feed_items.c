/* test_feed_items.c - rr_state_feed_items gives the state of one
 * rr_state_feed per item, bit for bit, and a session stepped alone the
 * state it gets when stepped together with others (ops->step with n up to
 * 8: what the server's batcher and a training batch's tail do).
 *
 * Cells GRU, LSTM and RNN; one and two layers (64,32 among them); tied,
 * separate and one-hot input; sequences of 1 to 20 items (the sequence
 * path works in chunks of 8); random weights at GRU4Rec's initialisation
 * scaled up so that the gates are far from linear.  Out-of-range items are
 * refused without feeding anything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/dataset.h"
#include "models/model.h"
#include "models/rnn.h"
#include "util/util.h"

/* A model of kind ops over n_items items with the given shape and random
 * weights (the dataset only provides the vocabulary). */
static rr_model *make_model(const rr_model_ops *ops, const rr_dataset *d, rr_rnn_shape *sh, uint64_t seed) {
    rr_error err;
    rr_model *m = NULL;
    CHECK_OK(rr_model_new_common(&m, ops, d, &err), &err);
    if (!m) return NULL;
    sh->n_items = m->n_items;
    rr_rnn *r = NULL;
    CHECK_OK(rr_rnn_new(&r, sh, &err), &err);
    if (!r) {
        rr_model_free(m);
        return NULL;
    }
    rr_rng g;
    rr_rng_seed(&g, seed);
    rr_rnn_init(r, &g);
    for (size_t i = 0; i < r->lay.n_params; i++) r->params[i] *= 3.0f;
    m->impl = r;
    return m;
}

static int same_state(const rr_state *a, const rr_state *b, size_t nf) {
    return a->n == b->n && !memcmp(a->items, b->items, a->n * sizeof *a->items) &&
           !memcmp(a->h, b->h, nf * sizeof *a->h);
}

int main(void) {
    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.seed = 2;
    sp.n_events = 3000;
    sp.n_items = 300;
    rr_dataset *d = NULL;
    rr_error err;
    CHECK_OK(rr_synth_generate(&sp, &d, &err), &err);
    if (!d) return check_summary("test_feed_items");
    const rr_model_ops *kinds[3] = {&rr_gru_ops, &rr_lstm_ops, &rr_rnn_ops};
    const rr_cell_kind cells[3] = {RR_CELL_GRU, RR_CELL_LSTM, RR_CELL_RNN_TANH};
    const long embeds[3] = {-1, 24, 0};
    const size_t shapes[3][2] = {{40, 0}, {64, 32}, {17, 100}};
    rr_rng g;
    rr_rng_seed(&g, 9);
    size_t cases = 0, bad_seq = 0, bad_multi = 0;
    for (int k = 0; k < 3; k++)
        for (int e = 0; e < 3; e++)
            for (int s = 0; s < 3; s++) {
                rr_rnn_shape sh;
                memset(&sh, 0, sizeof sh);
                sh.cell = cells[k];
                sh.n_layers = shapes[s][1] ? 2 : 1;
                sh.layers[0] = shapes[s][0];
                sh.layers[1] = shapes[s][1];
                sh.embedding = embeds[e];
                sh.final_act = RR_ACT_LINEAR;
                rr_model *m = make_model(kinds[k], d, &sh, (uint64_t)(100 + 9 * k + 3 * e + s));
                if (!m) continue;
                const size_t nf = m->ops->state_floats(m), ni = m->n_items;
                enum { NS = 8 };
                for (size_t len = 1; len <= 20; len += (len < 10 ? 1 : 5)) {
                    int32_t items[NS][20];
                    rr_state *one[NS], *seq[NS], *multi[NS];
                    for (int q = 0; q < NS; q++) {
                        for (size_t t = 0; t < len; t++) items[q][t] = (int32_t)rr_rng_below(&g, ni);
                        one[q] = rr_state_new(m);
                        seq[q] = rr_state_new(m);
                        multi[q] = rr_state_new(m);
                        for (size_t t = 0; t < len; t++) CHECK(rr_state_feed(one[q], items[q][t]) == RR_OK);
                        CHECK(rr_state_feed_items(seq[q], items[q], len) == RR_OK);
                    }
                    /* NS sessions stepped together, one item each, per time step */
                    float *hv[NS];
                    for (size_t t = 0; t < len; t++) {
                        int32_t it[NS];
                        for (int q = 0; q < NS; q++) {
                            CHECK(rr_state_push(multi[q], items[q][t]) == RR_OK);
                            hv[q] = multi[q]->h;
                            it[q] = items[q][t];
                        }
                        m->ops->step(m, hv, it, NS);
                    }
                    for (int q = 0; q < NS; q++) {
                        cases++;
                        bad_seq += !same_state(one[q], seq[q], nf);
                        bad_multi += !same_state(one[q], multi[q], nf);
                        rr_state_free(one[q]);
                        rr_state_free(seq[q]);
                        rr_state_free(multi[q]);
                    }
                }
                /* refused as a whole: nothing fed */
                rr_state *st = rr_state_new(m);
                int32_t bad[3] = {1, (int32_t)ni, 2};
                CHECK(rr_state_feed_items(st, bad, 3) == RR_ERR_RANGE);
                CHECK(st->n == 0);
                int32_t neg[2] = {0, -1};
                CHECK(rr_state_feed_items(st, neg, 2) == RR_ERR_RANGE && st->n == 0);
                CHECK(rr_state_feed_items(st, bad, 0) == RR_OK && st->n == 0);
                CHECK(rr_state_feed_items(st, NULL, 0) == RR_OK && st->n == 0); /* a fresh, empty history */
                rr_state_free(st);
                rr_model_free(m);
            }
    printf("  %zu sessions compared\n", cases);
    CHECK(cases == 3 * 3 * 3 * 12 * 8); /* lengths 1..10, 15, 20 */
    CHECK_MSG(bad_seq == 0, "%zu rr_state_feed_items states differ from item-by-item feeding", bad_seq);
    CHECK_MSG(bad_multi == 0, "%zu states stepped in a group of 8 differ from stepped alone", bad_multi);
    rr_dataset_free(d);
    return check_summary("test_feed_items");
}
