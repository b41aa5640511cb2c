/* ckpt_text.h - the "name=value\n" text of checkpoint sections (internal to
 * src/train/): a growing buffer to write it and a parser to read it back.
 * The checkpoint's "state" and "fingerprint" sections are such text
 * (checkpoint.c, ckpt_text.c). */
#ifndef RR_CKPT_TEXT_H
#define RR_CKPT_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

/* A growing "name=value\n" buffer; zero-initialise, free(s) when done.
 * oom: a write failed (out of memory), s is then incomplete. */
typedef struct rr_cktx {
    char *s;
    size_t len, cap;
    bool oom;
} rr_cktx;

/* Appends printf-formatted text. */
void rr_cktx_add(rr_cktx *t, const char *fmt, ...) RR_PRINTF(2, 3);
/* "key=x\n" with the fewest digits of x that read back as exactly x. */
void rr_cktx_dbl(rr_cktx *t, const char *key, double x);

/* Parsed lines: name and value point into one NUL-separated copy. */
typedef struct rr_ckkv {
    char *buf;
    size_t n;
    const char **key, **val;
} rr_ckkv;

/* Splits "name=value\n" lines of src (len bytes); what names the text in
 * messages.  RR_ERR_FORMAT for a line without '=', a name repeated, or a
 * byte outside printable ASCII.  On success free *k with rr_ckkv_free. */
rr_status rr_ckkv_parse(rr_ckkv *k, const char *src, size_t len, const char *what, rr_error *err);
void rr_ckkv_free(rr_ckkv *k);
/* The value of key, or NULL. */
const char *rr_ckkv_get(const rr_ckkv *k, const char *key);

#endif /* RR_CKPT_TEXT_H */
