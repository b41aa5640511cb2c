/* check.h - the minimal test harness: CHECK macros that count failures and
 * a summary line; a test executable exits non-zero if any check failed. */
#ifndef RR_CHECK_H
#define RR_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failed, check_passed;

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (c) check_passed++;                                                     \
        else {                                                                     \
            check_failed++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);  \
        }                                                                          \
    } while (0)

#define CHECK_MSG(c, ...)                                                          \
    do {                                                                           \
        if (c) check_passed++;                                                     \
        else {                                                                     \
            check_failed++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #c);  \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
        }                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                      \
    do {                                                                           \
        double ca_ = (double)(a), cb_ = (double)(b);                               \
        if (fabs(ca_ - cb_) <= (tol)) check_passed++;                              \
        else {                                                                     \
            check_failed++;                                                        \
            fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g\n",    \
                    __FILE__, __LINE__, #a, ca_, #b, cb_);                         \
        }                                                                          \
    } while (0)

/* An rr_status call that must succeed; prints the error message if not. */
#define CHECK_OK(call, errp)                                                       \
    do {                                                                           \
        rr_status st_ = (call);                                                    \
        if (st_ == RR_OK) check_passed++;                                          \
        else {                                                                     \
            check_failed++;                                                        \
            const rr_error *ce_ = (errp);                                          \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,   \
                    ce_ ? ce_->msg : "");                                          \
        }                                                                          \
    } while (0)

static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

/* Scale knob for sanitizer runs: RR_TEST_SCALE=small shrinks workloads. */
static inline int check_small(void) {
    const char *s = getenv("RR_TEST_SCALE");
    return s && !strcmp(s, "small");
}

#endif
