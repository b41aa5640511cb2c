/* eval_equal.h - bit equality of two evaluation results over their first
 * nc cutoffs (counts and every metric), for the tests that compare
 * evaluation paths. */
#ifndef RR_TEST_EVAL_EQUAL_H
#define RR_TEST_EVAL_EQUAL_H

#include <string.h>

#include "rnnrec.h"

static inline int results_equal(const rr_eval_result *a, const rr_eval_result *b, size_t nc) {
    if (a->n_targets != b->n_targets || a->n_sessions != b->n_sessions || a->n_items != b->n_items) return 0;
    for (size_t c = 0; c < nc; c++)
        if (memcmp(&a->recall[c], &b->recall[c], sizeof(double)) || memcmp(&a->mrr[c], &b->mrr[c], sizeof(double)) ||
            memcmp(&a->ndcg[c], &b->ndcg[c], sizeof(double)) ||
            memcmp(&a->coverage[c], &b->coverage[c], sizeof(double)) ||
            memcmp(&a->popularity[c], &b->popularity[c], sizeof(double)))
            return 0;
    return 1;
}

#endif /* RR_TEST_EVAL_EQUAL_H */
