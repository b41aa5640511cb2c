/* ckpt_dir.c - the checkpoint folder (checkpoint.h): file names
 * "ckpt-<12-digit seq>.rrc", the lock that keeps one run per folder, the
 * removal of temporaries an interrupted write left, and the listing newest
 * first.  Keeping the two newest is rr_ckpt_write's part (checkpoint.c). */
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

bool rr_ckpt_path(char *buf, size_t cap, const char *dir, uint64_t seq) {
    int w = snprintf(buf, cap, "%s/ckpt-%012" PRIu64 ".rrc", dir, seq);
    return w > 0 && (size_t)w < cap;
}

/* seq of a name "ckpt-<12 digits>.rrc", or false. */
static bool ckpt_name_seq(const char *name, uint64_t *seq) {
    if (strncmp(name, "ckpt-", 5) || strlen(name) != 5 + 12 + 4 || strcmp(name + 17, ".rrc")) return false;
    uint64_t v = 0;
    for (int i = 5; i < 17; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *seq = v;
    return true;
}

/* A temporary of rr_write_atomic for a checkpoint: "ckpt-<12>.rrc.tmp.*". */
static bool ckpt_name_tmp(const char *name) {
    uint64_t seq;
    char head[5 + 12 + 4 + 1];
    if (strlen(name) < sizeof head - 1 + 5 || strncmp(name + sizeof head - 1, ".tmp.", 5)) return false;
    memcpy(head, name, sizeof head - 1);
    head[sizeof head - 1] = 0;
    return ckpt_name_seq(head, &seq);
}

rr_status rr_ckpt_dir_prepare(const char *dir, size_t *removed, rr_error *err) {
    *removed = 0;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return rr_err(err, RR_ERR_IO, "%s: cannot create the checkpoint folder: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d) return rr_err(err, RR_ERR_IO, "%s: cannot open the checkpoint folder: %s", dir, strerror(errno));
    struct dirent *e;
    rr_status s = RR_OK;
    while ((e = readdir(d))) {
        if (!ckpt_name_tmp(e->d_name)) continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (unlink(path) == 0) (*removed)++;
        else if (errno != ENOENT) s = rr_err(err, RR_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    }
    closedir(d);
    return s;
}

rr_status rr_ckpt_dir_lock(const char *dir, int *fd, rr_error *err) {
    *fd = -1;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/lock", dir) >= (int)sizeof path)
        return rr_err(err, RR_ERR_ARG, "%s: folder name too long", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return rr_err(err, RR_ERR_IO, "%s: cannot create the checkpoint folder: %s", dir, strerror(errno));
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) return rr_err(err, RR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(f);
        if (e == EWOULDBLOCK)
            return rr_err(err, RR_ERR_ARG, "%s is in use by another training run (%s is locked)", dir, path);
        return rr_err(err, RR_ERR_IO, "%s: cannot lock: %s", path, strerror(e));
    }
    *fd = f;
    return RR_OK;
}

void rr_ckpt_dir_unlock(int fd) {
    if (fd >= 0) close(fd); /* closing drops the flock */
}

static int seq_desc(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

rr_status rr_ckpt_list(const char *dir, uint64_t *seqs, size_t max, size_t *n, rr_error *err) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return RR_OK;
        return rr_err(err, RR_ERR_IO, "%s: cannot open the checkpoint folder: %s", dir, strerror(errno));
    }
    /* keep the max newest: gather all (a folder holds a few), sort, cut */
    size_t cap = 16, cnt = 0;
    uint64_t *all = rr_malloc_n(cap, sizeof *all);
    struct dirent *e;
    while (all && (e = readdir(d))) {
        uint64_t q;
        if (!ckpt_name_seq(e->d_name, &q)) continue;
        if (cnt == cap) {
            uint64_t *g = rr_realloc_n(all, cap * 2, sizeof *all);
            if (!g) {
                free(all);
                all = NULL;
                break;
            }
            all = g;
            cap *= 2;
        }
        all[cnt++] = q;
    }
    closedir(d);
    if (!all) return rr_err(err, RR_ERR_NOMEM, "%s: out of memory listing checkpoints", dir);
    qsort(all, cnt, sizeof *all, seq_desc);
    *n = cnt < max ? cnt : max;
    memcpy(seqs, all, *n * sizeof *seqs);
    free(all);
    return RR_OK;
}
