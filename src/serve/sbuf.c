/* sbuf.c - growable response buffer and JSON string escaping (sbuf.h). */
#include "serve/sbuf.h"

#include <math.h>
#include <stdarg.h>
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

void rr_sbuf_json_num(rr_sbuf *b, double v) {
    if (!isfinite(v)) {
        rr_sbuf_add(b, "null", 4);
        return;
    }
    rr_sbuf_printf(b, "%.9g", v);
}
