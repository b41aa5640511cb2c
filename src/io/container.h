/* container.h - the rnnrec model file: a versioned, checksummed container of
 * named sections (key/value metadata, vocabulary, aligned weight blobs).
 * The byte layout is documented at the top of container.c and in
 * docs/model-format.md. */
#ifndef RR_CONTAINER_H
#define RR_CONTAINER_H

#include <stddef.h>
#include <stdint.h>

#include "data/vocab.h"
#include "rnnrec.h"

/* Element type of a section, for validation of its length. */
typedef enum rr_dtype {
    RR_DT_BYTES = 0, RR_DT_F32 = 1, RR_DT_F64 = 2, RR_DT_I32 = 3, RR_DT_I64 = 4,
    RR_DT_U8 = 5
} rr_dtype;

/* "bytes", "f32", ... for listings. */
const char *rr_dtype_name(rr_dtype dt);

/* Little-endian integers at p, as the model and checkpoint formats store
 * them (whatever the machine's byte order). */
static inline void rr_le_put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void rr_le_put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint32_t rr_le_get32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static inline uint64_t rr_le_get64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

typedef struct rr_fwriter rr_fwriter;
typedef struct rr_freader rr_freader;

/* kind: the model kind ("pop", "gru", ...), stored in the header. */
rr_status rr_fw_new(rr_fwriter **w, const char *kind, rr_error *err);
void rr_fw_free(rr_fwriter *w);
/* Metadata key/value (UTF-8 strings, keys unique; last write wins). */
rr_status rr_fw_kv(rr_fwriter *w, const char *key, const char *value, rr_error *err);
rr_status rr_fw_kv_int(rr_fwriter *w, const char *key, int64_t value, rr_error *err);
rr_status rr_fw_kv_double(rr_fwriter *w, const char *key, double value, rr_error *err);
/* A named data section.  data is copied. */
rr_status rr_fw_section(rr_fwriter *w, const char *name, rr_dtype dt, const void *data,
                        size_t bytes, rr_error *err);
rr_status rr_fw_vocab(rr_fwriter *w, const rr_vocab *v, rr_error *err);
/* Writes the file atomically (temporary + fsync + rename). */
rr_status rr_fw_commit(rr_fwriter *w, const char *path, rr_error *err);

/* Reads and fully validates a file (structure and every checksum). */
rr_status rr_fr_open(const char *path, rr_freader **r, rr_error *err);
/* Same from memory (the buffer is copied). */
rr_status rr_fr_open_mem(const void *data, size_t len, rr_freader **r, rr_error *err);
void rr_fr_free(rr_freader *r);
const char *rr_fr_kind(const rr_freader *r);
uint32_t rr_fr_version(const rr_freader *r);
size_t rr_fr_n_kv(const rr_freader *r);
void rr_fr_kv_at(const rr_freader *r, size_t i, const char **key, const char **value);
const char *rr_fr_kv(const rr_freader *r, const char *key); /* NULL if absent */
rr_status rr_fr_kv_int(const rr_freader *r, const char *key, int64_t *out, rr_error *err);
rr_status rr_fr_kv_double(const rr_freader *r, const char *key, double *out, rr_error *err);
/* Section by name with the expected type; bytes gets its length.  A missing
 * section or wrong type is RR_ERR_FORMAT.  Data is 64-byte aligned and
 * lives as long as r. */
rr_status rr_fr_section(const rr_freader *r, const char *name, rr_dtype dt, const void **data,
                        size_t *bytes, rr_error *err);
/* Same, also requiring exactly `count` elements. */
rr_status rr_fr_array(const rr_freader *r, const char *name, rr_dtype dt, size_t count,
                      const void **data, rr_error *err);
rr_status rr_fr_vocab(const rr_freader *r, rr_vocab *out, rr_error *err);
/* Section listing, for `rnnrec info`. */
size_t rr_fr_n_sections(const rr_freader *r);
void rr_fr_section_at(const rr_freader *r, size_t i, const char **name, rr_dtype *dt,
                      size_t *bytes, uint32_t *crc);

#endif
