/* util.h - small shared helpers: errors, checked size arithmetic, RNG,
 * hashing, checksums, atomic file writes, logging and timing.
 * Everything in the library below cli/ may use these; nothing here depends on
 * any other module. */
#ifndef RR_UTIL_H
#define RR_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rnnrec.h"

/* Programmer errors only: never for input validation. */
#define RR_ASSERT(c)                                                        \
    do {                                                                    \
        if (!(c)) rr_assert_fail(__FILE__, __LINE__, #c);                   \
    } while (0)
void rr_assert_fail(const char *file, int line, const char *expr);

#if defined(__GNUC__)
#define RR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define RR_LIKELY(x) __builtin_expect(!!(x), 1)
#define RR_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define RR_PRINTF(a, b)
#define RR_LIKELY(x) (x)
#define RR_UNLIKELY(x) (x)
#endif

/* Sets err (if not NULL) and returns s, so callers can `return rr_err(...)`. */
rr_status rr_err(rr_error *err, rr_status s, const char *fmt, ...) RR_PRINTF(3, 4);
/* Prepends "prefix: " to an existing message. */
void rr_err_prefix(rr_error *err, const char *fmt, ...) RR_PRINTF(2, 3);

/* Checked size arithmetic: false on overflow (then *out is untouched). */
static inline bool rr_mul_size(size_t a, size_t b, size_t *out) {
    size_t r;
    if (__builtin_mul_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}
static inline bool rr_add_size(size_t a, size_t b, size_t *out) {
    size_t r;
    if (__builtin_add_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}
/* malloc/calloc of n*size with overflow check; NULL on failure. */
void *rr_malloc_n(size_t n, size_t size);
void *rr_calloc_n(size_t n, size_t size);
void *rr_realloc_n(void *p, size_t n, size_t size);
/* 64-byte aligned allocation (free with rr_free_aligned), zeroed. */
void *rr_alloc_aligned(size_t bytes);
void rr_free_aligned(void *p);

/* ---- random numbers: xoshiro256** seeded by splitmix64.  Deterministic
 * across platforms; one generator per thread. */
typedef struct rr_rng { uint64_t s[4]; } rr_rng;
void rr_rng_seed(rr_rng *r, uint64_t seed);
uint64_t rr_rng_next(rr_rng *r);
double rr_rng_uniform(rr_rng *r);              /* [0, 1) */
float rr_rng_uniformf(rr_rng *r);              /* [0, 1) */
uint64_t rr_rng_below(rr_rng *r, uint64_t n);  /* [0, n), unbiased */
double rr_rng_normal(rr_rng *r);

/* ---- hashing and checksums */
uint64_t rr_hash_bytes(const void *p, size_t n, uint64_t seed);
uint32_t rr_crc32c(uint32_t crc, const void *p, size_t n);

/* ---- files */
/* Writes a file atomically: the callback writes into a temporary file in the
 * same directory, which is fsynced and renamed over path, then the directory
 * is fsynced.  On any failure the old file (if any) is untouched and the
 * temporary removed. */
typedef rr_status (*rr_write_fn)(FILE *f, void *user, rr_error *err);
rr_status rr_write_atomic(const char *path, rr_write_fn fn, void *user,
                          rr_error *err);
/* Reads a whole file (or "-" for stdin) into a malloc'ed buffer with a NUL
 * after the end.  max_bytes guards against absurd inputs (0: no limit). */
rr_status rr_read_file(const char *path, size_t max_bytes, char **data,
                       size_t *len, rr_error *err);

/* ---- logging (routes to the sink set by rr_log_set) */
void rr_log(int level, const char *fmt, ...) RR_PRINTF(2, 3);
bool rr_log_enabled(int level);

/* ---- time */
double rr_now(void);          /* monotonic seconds */
size_t rr_peak_rss_kb(void);  /* peak resident set size of this process */

/* ---- threads: the number to use for a request of n (0 = all cores). */
int rr_threads(int n);

/* ---- parsing helpers for option values */
bool rr_parse_size(const char *s, size_t *out);
bool rr_parse_double(const char *s, double *out);

#endif /* RR_UTIL_H */
