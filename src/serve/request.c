/* request.c - JSON request decoding and validation (request.h). */
#include "serve/request.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rr_http_err_set(rr_http_err *e, int status, const char *code, const char *fmt, ...) {
    e->status = status;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

void rr_rec_req_free(rr_rec_req *r) {
    free(r->items);
    free(r->exclude);
    rr_sbuf_free(&r->unknown_json);
    memset(r, 0, sizeof *r);
}

size_t rr_json_depth(const char *s, size_t n) {
    size_t depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max) max = depth;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}

json_t *rr_json_parse_object(const char *body, size_t n, rr_http_err *e) {
    if (n == 0) {
        rr_http_err_set(e, 400, "bad_json", "request body is empty; expected a JSON object");
        return NULL;
    }
    size_t d = rr_json_depth(body, n);
    if (d > RR_SERVE_MAX_DEPTH) {
        rr_http_err_set(e, 400, "too_deep", "JSON nesting depth %zu exceeds %d", d, RR_SERVE_MAX_DEPTH);
        return NULL;
    }
    json_error_t je;
    /* No JSON_DECODE_ANY: the top level must be an object or array; NUL
     * bytes inside strings are refused (JSON_ALLOW_NUL not given). */
    json_t *root = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        rr_http_err_set(e, 400, "bad_json", "invalid JSON at line %d, column %d: %s", je.line,
                        je.column, je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        rr_http_err_set(e, 400, "bad_json", "request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* The id text of an item value: a string, or an integer written in
 * decimal into buf.  false when the value is neither. */
static bool item_text(const json_t *v, char *buf, size_t cap, const char **s, size_t *n) {
    if (json_is_string(v)) {
        *s = json_string_value(v);
        *n = json_string_length(v);
        return true;
    }
    if (json_is_integer(v)) {
        int w = snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        if (w < 0 || (size_t)w >= cap) return false;
        *s = buf;
        *n = (size_t)w;
        return true;
    }
    return false;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Reads an array of item ids.  Known ones go to *out (in order); unknown
 * ones are appended to unk (JSON array body, no brackets) when unk is not
 * NULL. */
static bool item_list(const json_t *arr, const char *where, const char *field, const rr_model *m,
                      int32_t **out, size_t *n_out, rr_sbuf *unk, size_t *n_unk, rr_http_err *e) {
    if (!json_is_array(arr)) {
        rr_http_err_set(e, 400, "bad_field", "%s%s must be an array of item ids", where, field);
        return false;
    }
    size_t n = json_array_size(arr);
    if (n > RR_SERVE_MAX_ITEMS) {
        rr_http_err_set(e, 422, "limit_exceeded", "%s%s has %zu entries; at most %d are allowed",
                        where, field, n, RR_SERVE_MAX_ITEMS);
        return false;
    }
    int32_t *idx = rr_malloc_n(n ? n : 1, sizeof *idx);
    if (!idx) {
        rr_http_err_set(e, 500, "internal", "out of memory");
        return false;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        char buf[32];
        const char *s;
        size_t len;
        if (!item_text(v, buf, sizeof buf, &s, &len)) {
            free(idx);
            rr_http_err_set(e, 400, "bad_field", "%s%s[%zu] must be a string or an integer", where,
                            field, i);
            return false;
        }
        int32_t ix = rr_model_item_index(m, s, len);
        if (ix >= 0) {
            idx[k++] = ix;
        } else if (unk) {
            if (*n_unk) rr_sbuf_add(unk, ",", 1);
            rr_sbuf_json_str(unk, s, len);
            (*n_unk)++;
        }
    }
    *out = idx;
    *n_out = k;
    return true;
}

bool rr_rec_req_parse(const json_t *obj, const char *where, const rr_model *m, int allow_k,
                      rr_rec_req *r, rr_http_err *e) {
    if (!json_is_object(obj)) {
        rr_http_err_set(e, 400, "bad_field", "%s must be a JSON object", *where ? where : "body");
        return false;
    }
    if (allow_k) r->k = RR_SERVE_DEFAULT_K;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        if (strcmp(key, "items") && strcmp(key, "exclude") && strcmp(key, "exclude_seen") &&
            (!allow_k || strcmp(key, "k"))) {
            rr_http_err_set(e, 400, "bad_field", "%sunknown field '%.64s'", where, key);
            return false;
        }
    }
    const json_t *items = json_object_get(obj, "items");
    if (!items) {
        rr_http_err_set(e, 400, "bad_field", "%sitems is missing", where);
        return false;
    }
    rr_sbuf_init(&r->unknown_json);
    rr_sbuf_add(&r->unknown_json, "[", 1);
    if (!item_list(items, where, "items", m, &r->items, &r->n_items, &r->unknown_json,
                   &r->n_unknown, e))
        return false;
    rr_sbuf_add(&r->unknown_json, "]", 1);
    const json_t *kv = json_object_get(obj, "k");
    if (kv) {
        if (!json_is_integer(kv)) {
            rr_http_err_set(e, 400, "bad_field", "%sk must be an integer", where);
            return false;
        }
        json_int_t k = json_integer_value(kv);
        if (k < 1 || k > RR_SERVE_MAX_K) {
            rr_http_err_set(e, 422, "limit_exceeded", "%sk must be in 1..%d, got %" JSON_INTEGER_FORMAT,
                            where, RR_SERVE_MAX_K, k);
            return false;
        }
        r->k = (size_t)k;
    }
    const json_t *ev = json_object_get(obj, "exclude_seen");
    if (ev) {
        if (!json_is_boolean(ev)) {
            rr_http_err_set(e, 400, "bad_field", "%sexclude_seen must be true or false", where);
            return false;
        }
        r->exclude_seen = json_is_true(ev);
    }
    const json_t *ex = json_object_get(obj, "exclude");
    if (ex) {
        if (!item_list(ex, where, "exclude", m, &r->exclude, &r->n_exclude, NULL, NULL, e))
            return false;
        qsort(r->exclude, r->n_exclude, sizeof *r->exclude, cmp_i32);
        size_t u = 0;
        for (size_t i = 0; i < r->n_exclude; i++)
            if (u == 0 || r->exclude[u - 1] != r->exclude[i]) r->exclude[u++] = r->exclude[i];
        r->n_exclude = u;
    }
    return true;
}

bool rr_query_k(const char *s, size_t *k, rr_http_err *e) {
    if (!s) return true;
    /* An optional '-' then digits is an integer (out of range or not);
     * anything else is a type error. */
    const char *d = s + (*s == '-');
    bool digits = *d != 0;
    for (const char *p = d; *p; p++)
        if (*p < '0' || *p > '9') digits = false;
    if (!digits) {
        rr_http_err_set(e, 400, "bad_field", "query parameter k must be an integer, got '%.32s'", s);
        return false;
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v < 1 || v > RR_SERVE_MAX_K) {
        rr_http_err_set(e, 422, "limit_exceeded", "k must be in 1..%d, got %.32s", RR_SERVE_MAX_K, s);
        return false;
    }
    *k = (size_t)v;
    return true;
}

bool rr_query_bool(const char *s, const char *name, int *out, rr_http_err *e) {
    if (!s) return true;
    if (!strcmp(s, "1") || !strcmp(s, "true")) *out = 1;
    else if (!strcmp(s, "0") || !strcmp(s, "false")) *out = 0;
    else {
        rr_http_err_set(e, 400, "bad_field", "query parameter %s must be true or false", name);
        return false;
    }
    return true;
}

bool rr_session_id_ok(const char *s, size_t n) {
    if (n == 0 || n > RR_SID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}
