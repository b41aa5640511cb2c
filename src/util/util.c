/* util.c - errors, allocation, RNG, hashing, CRC-32C, atomic writes, logging,
 * timing.  See util.h for the contracts. */

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void rr_assert_fail(const char *file, int line, const char *expr) {
    fprintf(stderr, "rnnrec: internal error at %s:%d: assertion `%s' failed\n",
            file, line, expr);
    abort();
}

const char *rr_status_str(rr_status s) {
    switch (s) {
    case RR_OK: return "ok";
    case RR_ERR_ARG: return "invalid argument";
    case RR_ERR_IO: return "I/O error";
    case RR_ERR_PARSE: return "parse error";
    case RR_ERR_FORMAT: return "bad file format";
    case RR_ERR_TRUNCATED: return "truncated file";
    case RR_ERR_CHECKSUM: return "checksum mismatch";
    case RR_ERR_VERSION: return "unsupported version";
    case RR_ERR_NOMEM: return "out of memory";
    case RR_ERR_RANGE: return "value out of range";
    case RR_ERR_NUMERIC: return "non-finite number";
    case RR_ERR_UNSUPPORTED: return "unsupported";
    case RR_ERR_EMPTY: return "no data";
    case RR_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *rr_version(void) { return RR_VERSION_STRING; }

rr_status rr_err(rr_error *err, rr_status s, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->status = s;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return s;
}

void rr_err_prefix(rr_error *err, const char *fmt, ...) {
    if (!err) return;
    char pre[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(pre);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, pre, n);
    err->msg[n] = ':';
    err->msg[n + 1] = ' ';
    size_t rest = sizeof err->msg - n - 2;
    size_t ol = strnlen(old, sizeof old - 1);
    if (ol > rest - 1) ol = rest - 1;
    memcpy(err->msg + n + 2, old, ol);
    err->msg[n + 2 + ol] = 0;
}

void *rr_malloc_n(size_t n, size_t size) {
    size_t b;
    if (!rr_mul_size(n, size, &b)) return NULL;
    return malloc(b ? b : 1);
}

void *rr_calloc_n(size_t n, size_t size) {
    size_t b;
    if (!rr_mul_size(n, size, &b)) return NULL;
    return calloc(b ? n : 1, b ? size : 1);
}

void *rr_realloc_n(void *p, size_t n, size_t size) {
    size_t b;
    if (!rr_mul_size(n, size, &b)) return NULL;
    return realloc(p, b ? b : 1);
}

void *rr_alloc_aligned(size_t bytes) {
    size_t rounded;
    if (!rr_add_size(bytes, 63, &rounded)) return NULL;
    rounded &= ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) memset(p, 0, rounded ? rounded : 64);
    return p;
}

void rr_free_aligned(void *p) { free(p); }

/* ---------------------------------------------------------------- RNG */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rr_rng_seed(rr_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rr_rng_next(rr_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rr_rng_uniform(rr_rng *r) { return (double)(rr_rng_next(r) >> 11) * 0x1.0p-53; }

float rr_rng_uniformf(rr_rng *r) { return (float)(rr_rng_next(r) >> 40) * 0x1.0p-24f; }

uint64_t rr_rng_below(rr_rng *r, uint64_t n) {
    RR_ASSERT(n > 0);
    /* Lemire's multiply-shift with rejection of the biased low zone. */
    unsigned __int128 m = (unsigned __int128)rr_rng_next(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t thresh = (0 - n) % n;
        while (lo < thresh) {
            m = (unsigned __int128)rr_rng_next(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double rr_rng_normal(rr_rng *r) {
    /* Box-Muller; the second value is discarded to keep the state simple. */
    double u1 = 1.0 - rr_rng_uniform(r), u2 = rr_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ------------------------------------------------------------- hashing */

static inline uint64_t mix64(uint64_t a, uint64_t b) {
    unsigned __int128 m = (unsigned __int128)a * b;
    return (uint64_t)m ^ (uint64_t)(m >> 64);
}

uint64_t rr_hash_bytes(const void *p, size_t n, uint64_t seed) {
    /* A multiply-fold hash over 8-byte words; ids are short, so the loop
     * usually runs once or twice. */
    const unsigned char *s = p;
    uint64_t h = seed ^ 0x243f6a8885a308d3ULL ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = mix64(h ^ w, 0xe7037ed1a0b428dbULL);
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n) {
        memcpy(&w, s, n);
        h = mix64(h ^ w, 0x8ebc6af09c88c6e3ULL);
    }
    return mix64(h, 0x589965cc75374cc3ULL);
}

/* CRC-32C (Castagnoli), reflected polynomial 0x82f63b78.  Hardware crc32
 * instructions when the CPU has SSE4.2, else a table. */
static uint32_t crc_table[8][256];
static int crc_table_ready;

static void crc_init_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    crc_table_ready = 1;
}

static uint32_t crc32c_sw(uint32_t crc, const unsigned char *s, size_t n) {
    if (!crc_table_ready) crc_init_table();
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        w ^= crc;
        crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
              crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
              crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
              crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        s += 8;
        n -= 8;
    }
    while (n--) crc = (crc >> 8) ^ crc_table[0][(crc ^ *s++) & 0xff];
    return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *s, size_t n) {
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        c = __builtin_ia32_crc32di(c, w);
        s += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *s++);
    return c32;
}
#endif

uint32_t rr_crc32c(uint32_t crc, const void *p, size_t n) {
    crc = ~crc;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("sse4.2")) return ~crc32c_hw(crc, p, n);
#endif
    return ~crc32c_sw(crc, p, n);
}

/* --------------------------------------------------------------- files */

static rr_status fsync_dir_of(const char *path, rr_error *err) {
    char *copy = strdup(path);
    if (!copy) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        rr_status s = rr_err(err, RR_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
        free(copy);
        return s;
    }
    rr_status s = RR_OK;
    if (fsync(fd) != 0 && errno != EINVAL)
        s = rr_err(err, RR_ERR_IO, "%s: fsync of directory failed: %s", dir, strerror(errno));
    close(fd);
    free(copy);
    return s;
}

rr_status rr_write_atomic(const char *path, rr_write_fn fn, void *user, rr_error *err) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return rr_err(err, RR_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen + 32, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rr_status s = rr_err(err, RR_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    (void)fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        free(tmp);
        return rr_err(err, RR_ERR_IO, "%s: fdopen failed", path);
    }
    rr_status s = fn(f, user, err);
    if (s == RR_OK && fflush(f) != 0)
        s = rr_err(err, RR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (s == RR_OK && ferror(f)) s = rr_err(err, RR_ERR_IO, "%s: write failed", path);
    /* fsync once; a failed fsync is never retried (the page cache state is
     * unknown afterwards), the temporary is dropped instead. */
    if (s == RR_OK && fsync(fileno(f)) != 0)
        s = rr_err(err, RR_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && s == RR_OK)
        s = rr_err(err, RR_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (s == RR_OK && rename(tmp, path) != 0)
        s = rr_err(err, RR_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
    if (s != RR_OK) {
        unlink(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return fsync_dir_of(path, err);
}

rr_status rr_read_file(const char *path, size_t max_bytes, char **data, size_t *len, rr_error *err) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return rr_err(err, RR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    struct stat st;
    if (f != stdin && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap);
    if (!buf) {
        if (f != stdin) fclose(f);
        return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (max_bytes && cap > max_bytes) {
                free(buf);
                if (f != stdin) fclose(f);
                return rr_err(err, RR_ERR_RANGE, "%s: larger than the limit of %zu bytes", path, max_bytes);
            }
            size_t ncap;
            if (!rr_mul_size(cap, 2, &ncap)) ncap = SIZE_MAX;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                if (f != stdin) fclose(f);
                return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (bad) {
        free(buf);
        return rr_err(err, RR_ERR_IO, "%s: read failed", path);
    }
    if (max_bytes && n > max_bytes) {
        free(buf);
        return rr_err(err, RR_ERR_RANGE, "%s: larger than the limit of %zu bytes", path, max_bytes);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return RR_OK;
}

/* ------------------------------------------------------------- logging */

static rr_log_fn log_fn;
static void *log_user;
static int log_max = -1;

void rr_log_set(rr_log_fn fn, void *user, int max_level) {
    log_fn = fn;
    log_user = user;
    log_max = fn ? max_level : -1;
}

bool rr_log_enabled(int level) { return log_fn && level <= log_max; }

void rr_log(int level, const char *fmt, ...) {
    if (!rr_log_enabled(level)) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_user);
}

/* ---------------------------------------------------------------- time */

double rr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

size_t rr_peak_rss_kb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss;
}

int rr_threads(int n) {
    if (n > 0) return n;
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

bool rr_parse_size(const char *s, size_t *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    if (*s == '-') return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = (size_t)v;
    return true;
}

bool rr_parse_double(const char *s, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}
