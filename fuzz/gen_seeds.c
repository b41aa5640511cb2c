/* gen_seeds.c - writes the seed model files of fuzz/corpus/model: one tiny
 * model of every kind, trained in-process on synthetic data.
 * Usage: gen_seeds DIR (built by fuzz/Makefile as $(OUT)/gen_seeds). */
#include <stdio.h>

#include "fuzz_common.h"
#include "models/model.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds DIR\n");
        return 2;
    }
    for (size_t i = 0; i < rr_model_kind_count(); i++) {
        const char *kind = rr_model_kind_name(i);
        char path[512];
        snprintf(path, sizeof path, "%s/%s.rrm", argv[1], kind);
        rr_model_free(fuzz_tiny_model(kind, path, 60, 8));
        printf("%s\n", path);
    }
    return 0;
}
