/* fuzz_common.h - helpers shared by the libFuzzer harnesses: an in-memory
 * file (memfd) that the library can open by path, and a tiny trained model
 * built once per process. */
#ifndef RR_FUZZ_COMMON_H
#define RR_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rnnrec.h"

/* Dies loudly: libFuzzer records the input as a crash. */
#define FUZZ_ASSERT(c, ...)                                                  \
    do {                                                                     \
        if (!(c)) {                                                          \
            fprintf(stderr, "FUZZ_ASSERT %s:%d: %s: ", __FILE__, __LINE__, #c); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* A memfd holding exactly the bytes of one input; its path is
 * /proc/self/fd/N, a regular file the library opens like any other. */
typedef struct fuzz_file {
    int fd;
    char path[64];
} fuzz_file;

static inline void fuzz_file_put(fuzz_file *f, const void *data, size_t len) {
    if (f->fd <= 0) {
        f->fd = memfd_create("rr_fuzz", 0);
        if (f->fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    }
    if (ftruncate(f->fd, 0) != 0) abort();
    const unsigned char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t w = pwrite(f->fd, p + off, len - off, (off_t)off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
}

/* Trains a tiny model of `kind` (hidden size 4, one epoch) on synthetic
 * data of n_events events over n_items items (deterministic) and saves it
 * to path when path is not NULL.  Returns the model (caller frees) or aborts. */
static inline rr_model *fuzz_tiny_model(const char *kind, const char *path, size_t n_events,
                                        size_t n_items) {
    rr_error err;
    rr_synth_params sp;
    rr_synth_params_default(&sp);
    sp.n_events = n_events;
    sp.n_items = n_items;
    sp.n_topics = 3;
    rr_dataset *d = NULL;
    if (rr_synth_generate(&sp, &d, &err) != RR_OK) {
        fprintf(stderr, "synth: %s\n", err.msg);
        abort();
    }
    rr_train_params tp;
    rr_train_params_default(&tp);
    tp.kind = kind;
    tp.n_layers = 1;
    tp.layers[0] = 4;
    tp.batch_size = 4;
    tp.n_sample = 0;
    tp.epochs = 1;
    tp.threads = 1;
    tp.knn_k = 5;
    tp.sknn_sample = 50;
    rr_model *m = NULL;
    if (rr_model_train(&m, d, NULL, &tp, &err) != RR_OK) {
        fprintf(stderr, "train %s: %s\n", kind, err.msg);
        abort();
    }
    rr_dataset_free(d);
    if (path && rr_model_save(m, path, &err) != RR_OK) {
        fprintf(stderr, "save %s: %s\n", path, err.msg);
        abort();
    }
    return m;
}

#endif
