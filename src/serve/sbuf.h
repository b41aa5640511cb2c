/* sbuf.h - a growable byte buffer for building HTTP response bodies, with
 * JSON string escaping.  Errors (out of memory) are sticky: the buffer
 * remembers the failure and every later append is a no-op, so a caller
 * checks once at the end. */
#ifndef RR_SBUF_H
#define RR_SBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

typedef struct rr_sbuf {
    char *p;        /* (cap) bytes, NUL-terminated after len */
    size_t len, cap;
    bool failed;
} rr_sbuf;

void rr_sbuf_init(rr_sbuf *b);
void rr_sbuf_free(rr_sbuf *b);
/* Hands the bytes to the caller (free()); NULL if the buffer failed. */
char *rr_sbuf_take(rr_sbuf *b, size_t *len);
/* Makes room for n more bytes (one allocation for a known size); false
 * when the buffer failed. */
bool rr_sbuf_reserve(rr_sbuf *b, size_t n);
void rr_sbuf_add(rr_sbuf *b, const void *data, size_t n);
void rr_sbuf_adds(rr_sbuf *b, const char *s);
void rr_sbuf_printf(rr_sbuf *b, const char *fmt, ...) RR_PRINTF(2, 3);
/* Appends s[0..n) as a quoted JSON string: control characters, quotes and
 * backslashes escaped; bytes that are not valid UTF-8 become U+FFFD. */
void rr_sbuf_json_str(rr_sbuf *b, const char *s, size_t n);
/* A float as a JSON number (shortest %.9g form); non-finite values are
 * written as null, which JSON has no number for. */
void rr_sbuf_json_num(rr_sbuf *b, double v);
/* A float as printf's "%.9g" writes it (9 significant digits, which
 * round-trip any float), NUL-terminated; returns the length. */
size_t rr_format_float(float v, char out[32]);

#endif
