/* request.h - parsing and validation of the JSON request bodies of the
 * recommendation endpoints, with the HTTP error each failure maps to.
 *
 * Bodies are checked for nesting depth before jansson sees them (a deep
 * `[[[[...` costs a recursion level per bracket in any recursive parser),
 * then decoded; every field is type-checked and named in the error. */
#ifndef RR_SERVE_REQUEST_H
#define RR_SERVE_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rnnrec.h"
#include "serve/sbuf.h"

#define RR_SERVE_MAX_DEPTH 16    /* JSON nesting accepted in a body */
#define RR_SERVE_MAX_ITEMS 1000  /* items (and exclude entries) per request */
#define RR_SERVE_MAX_K 1000
#define RR_SERVE_DEFAULT_K 20
#define RR_SERVE_MAX_BATCH 1000  /* requests per /v1/recommend/batch */

/* An HTTP error: status, a stable machine-readable code, a message. */
typedef struct rr_http_err {
    int status;
    const char *code;
    char msg[512];
} rr_http_err;

void rr_http_err_set(rr_http_err *e, int status, const char *code, const char *fmt, ...)
    RR_PRINTF(4, 5);

/* One recommendation request, resolved against a model. */
typedef struct rr_rec_req {
    int32_t *items;        /* (n_items) known item indices, in order */
    size_t n_items;
    size_t n_unknown;
    rr_sbuf unknown_json;  /* the unknown ids as a JSON array, ready to send */
    size_t k;
    int exclude_seen;
    int32_t *exclude;      /* (n_exclude) sorted, unique known indices */
    size_t n_exclude;
} rr_rec_req;

void rr_rec_req_free(rr_rec_req *r);

/* Maximum nesting depth of the JSON text (brackets outside strings). */
size_t rr_json_depth(const char *s, size_t n);

/* Decodes a body that must be a JSON object.  NULL on failure, with e set
 * (400 bad_json / too_deep). */
json_t *rr_json_parse_object(const char *body, size_t n, rr_http_err *e);

/* Fills r from a request object.  `where` prefixes field names in errors
 * (e.g. "requests[3]."); allow_k 0 rejects a "k" field (the session
 * endpoints take k from the query string) and keeps r->k as it was. */
bool rr_rec_req_parse(const json_t *obj, const char *where, const rr_model *m, int allow_k,
                      rr_rec_req *r, rr_http_err *e);

/* Parses a query-string k ("20"): 400 when not an integer, 422 when outside
 * 1..RR_SERVE_MAX_K.  NULL s leaves *k unchanged. */
bool rr_query_k(const char *s, size_t *k, rr_http_err *e);
/* Parses a boolean query value: 1/0/true/false. */
bool rr_query_bool(const char *s, const char *name, int *out, rr_http_err *e);

/* A session id: 1..128 bytes of [A-Za-z0-9._:-]. */
#define RR_SID_MAX 128
bool rr_session_id_ok(const char *s, size_t n);

#endif
