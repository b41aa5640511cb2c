/* sbuf.c - growable response buffer and JSON string escaping (sbuf.h). */
#include "serve/sbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rr_sbuf_init(rr_sbuf *b) { memset(b, 0, sizeof *b); }

void rr_sbuf_free(rr_sbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

char *rr_sbuf_take(rr_sbuf *b, size_t *len) {
    if (b->failed || !b->p) {
        rr_sbuf_free(b);
        char *e = b->failed ? NULL : calloc(1, 1);
        *len = 0;
        return e;
    }
    char *p = b->p;
    *len = b->len;
    memset(b, 0, sizeof *b);
    return p;
}

/* Makes room for n more bytes plus the terminating NUL. */
static bool sbuf_reserve(rr_sbuf *b, size_t n) {
    if (b->failed) return false;
    size_t need;
    if (!rr_add_size(b->len, n, &need) || !rr_add_size(need, 1, &need)) {
        b->failed = true;
        return false;
    }
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (!rr_mul_size(cap, 2, &cap)) {
            b->failed = true;
            return false;
        }
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

bool rr_sbuf_reserve(rr_sbuf *b, size_t n) { return sbuf_reserve(b, n); }

void rr_sbuf_add(rr_sbuf *b, const void *data, size_t n) {
    if (!sbuf_reserve(b, n)) return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
}

void rr_sbuf_adds(rr_sbuf *b, const char *s) { rr_sbuf_add(b, s, strlen(s)); }

void rr_sbuf_printf(rr_sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (w < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)w < sizeof small) {
        rr_sbuf_add(b, small, (size_t)w);
        return;
    }
    if (!sbuf_reserve(b, (size_t)w)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)w + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)w;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

void rr_sbuf_json_str(rr_sbuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    rr_sbuf_add(b, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes copied verbatim */
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t l = c < 0x80 ? 1 : utf8_len(u + i, n - i);
        if (c >= 0x20 && c != '"' && c != '\\' && l > 0) {
            i += l;
            continue;
        }
        rr_sbuf_add(b, s + run, i - run);
        if (l == 0) {
            rr_sbuf_add(b, "\xEF\xBF\xBD", 3); /* U+FFFD for an invalid byte */
        } else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') {
            char e[2] = {'\\', c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : (char)c};
            rr_sbuf_add(b, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rr_sbuf_add(b, e, 6);
        }
        i++;
        run = i;
    }
    rr_sbuf_add(b, s + run, n - run);
    rr_sbuf_add(b, "\"", 1);
}

/* The 9 significant digits of |v| (a float's value), rounded to nearest
 * with ties to even as printf rounds, and the decimal exponent: |v| ~
 * *digits * 10^(*e10 - 8), 10^8 <= *digits < 10^9.  False when |v| is
 * outside [1e-20, 1e21), where the integer arithmetic below could
 * overflow (the caller then uses printf). */
static bool float_digits(float v, uint32_t *digits, int *e10) {
    float a = fabsf(v);
    if (!(a >= 1e-20f && a < 1e21f)) return false;
    int e2;
    float fr = frexpf(a, &e2);                 /* a = fr 2^e2, fr in [0.5, 1) */
    uint64_t m = (uint64_t)ldexpf(fr, 24);     /* a = m 2^(e2 - 24), exact */
    int e = e2 - 24;
    int E = (int)floor(log10((double)a));      /* may be one off; fixed below */
    for (int tries = 0; tries < 3; tries++) {
        int p = 8 - E;                         /* N = round(a 10^p) */
        unsigned __int128 num = m, den = 1;
        for (int i = 0; i < p; i++) num *= 10; /* p <= 28: num < 2^24 10^28 < 2^118 */
        for (int i = 0; i < -p; i++) den *= 10; /* -p <= 12 */
        if (e >= 0) num <<= e;                 /* e <= 45: num < 2^70 when p < 0 */
        else den <<= -e;                       /* -e <= 90 */
        unsigned __int128 q = num / den, r = num - q * den;
        if (2 * r > den || (2 * r == den && (q & 1))) q++;
        if (q >= 1000000000u) {
            /* E was low, or the rounding carried into a tenth digit:
             * printf takes the exponent after rounding, so try E + 1. */
            E++;
            continue;
        }
        if (q < 100000000u) {
            E--;
            continue;
        }
        *digits = (uint32_t)q;
        *e10 = E;
        return true;
    }
    return false;
}

/* %.9g of a float's value, without printf: the same text (tests/test_serve.c
 * compares the two on random floats), at a fraction of the cost; a response
 * has 20 or more of them. */
static size_t format_g9(float v, char *out) {
    uint32_t n;
    int E;
    if (!float_digits(v, &n, &E)) return (size_t)snprintf(out, 32, "%.9g", (double)v);
    char d[9];
    for (int i = 8; i >= 0; i--, n /= 10) d[i] = (char)('0' + n % 10);
    int nd = 9; /* significant digits after dropping trailing zeros */
    while (nd > 1 && d[nd - 1] == '0') nd--;
    size_t o = 0;
    if (signbit(v)) out[o++] = '-';
    if (E >= -4 && E < 9) {
        if (E >= 0) {
            for (int i = 0; i <= E; i++) out[o++] = d[i];
            if (nd > E + 1) {
                out[o++] = '.';
                for (int i = E + 1; i < nd; i++) out[o++] = d[i];
            }
        } else {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -E - 1; i++) out[o++] = '0';
            for (int i = 0; i < nd; i++) out[o++] = d[i];
        }
    } else {
        out[o++] = d[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = d[i];
        }
        out[o++] = 'e';
        out[o++] = E < 0 ? '-' : '+';
        int x = E < 0 ? -E : E;
        if (x >= 10) out[o++] = (char)('0' + x / 10);
        else out[o++] = '0';
        out[o++] = (char)('0' + x % 10);
    }
    out[o] = 0;
    return o;
}

size_t rr_format_float(float v, char out[32]) {
    if (v == 0) return (size_t)snprintf(out, 32, "%s", signbit(v) ? "-0" : "0");
    if (!isfinite(v)) return (size_t)snprintf(out, 32, "%.9g", (double)v);
    return format_g9(v, out);
}

void rr_sbuf_json_num(rr_sbuf *b, double v) {
    if (!isfinite(v)) {
        rr_sbuf_add(b, "null", 4);
        return;
    }
    if ((double)(float)v != v) {
        rr_sbuf_printf(b, "%.9g", v); /* not a float: printf's digits */
        return;
    }
    char t[32];
    size_t n = rr_format_float((float)v, t);
    rr_sbuf_add(b, t, n);
}
