/* checkpoint.h - crash-safe training checkpoints: everything the
 * session-parallel loop needs to continue exactly where it stopped.
 *
 * A checkpoint is one file DIR/ckpt-<seq>.rrc (seq: 12 decimal digits,
 * growing by one per write), written atomically (temporary in DIR, fsync,
 * rename, fsync of DIR); the two newest are kept.  The layout is described
 * at the top of checkpoint.c and in docs/checkpoints.md.  The code: the
 * file's writer and reader in checkpoint.c, the fingerprint in
 * ckpt_text.c, the folder (lock, temporaries, listing) in ckpt_dir.c; the
 * trainer's side in trainer_ckpt.c.
 *
 * What is saved is split the way data-parallel training splits it:
 *  - shared state: parameters, optimiser moments and step count, the
 *    sampler position, epoch, the epoch's stats so far, validation bests
 *    and the best epoch's weights, and the fingerprint of the data and of
 *    the hyperparameters;
 *  - P stream records, one per data stream (one per MPI rank; P = 1 in one
 *    process): slots in use, next session, each slot's session row and
 *    position, every layer's recurrent state rows and the dropout RNG.
 *
 * The reader treats a file as untrusted input: every count is checked
 * against the layout the caller expects (rr_ckpt_layout) and every index
 * against the data before anything is copied into the caller's buffers. */
#ifndef RR_CHECKPOINT_H
#define RR_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "rnnrec.h"
#include "train/sampler.h"
#include "util/util.h"

#define RR_CKPT_MAX_STREAMS 4096
#define RR_CKPT_KEEP 2

/* One data stream's position between two steps. */
typedef struct rr_ckpt_stream {
    size_t n;                      /* slots in use (<= B) */
    size_t next;                   /* index into the session order of the next session */
    size_t *slot_sess;             /* (B) session row of each slot, first n used */
    size_t *slot_pos;              /* (B) event position within it, first n used */
    float *state[RR_MAX_LAYERS];   /* (B, state_width[l]) recurrent state, first n rows used */
    rr_rng rng;                    /* dropout masks */
} rr_ckpt_stream;

/* Everything saved.  For writing, the pointers name the trainer's own
 * buffers (nothing is copied); for reading, the caller points them at
 * buffers of the sizes in rr_ckpt_layout and the reader fills them. */
typedef struct rr_ckpt {
    /* fingerprint: "key=value\n" lines (rr_ckpt_fingerprint) */
    char *fingerprint;             /* NUL-terminated; reading: malloc'ed, free with rr_ckpt_clear */
    /* shared state */
    uint64_t t;                    /* optimiser steps taken */
    uint64_t steps_total;          /* steps over every epoch */
    size_t epoch;                  /* current epoch, 0-based */
    int in_epoch;                  /* 1: the epoch has started (streams hold its position) */
    double loss_sum;               /* current epoch: sum of loss * rows */
    size_t events, steps;          /* current epoch: targets and steps so far */
    double best_score, best_mrr, last_loss;
    size_t best_epoch, since_best, epochs_run;
    uint64_t log_bytes;            /* length of the JSON log at the checkpoint */
    int has_sampler;               /* 0 when n_sample is 0 */
    rr_sampler_pos sampler;
    float *weights;                /* (n_params) */
    float *moment[2];              /* (n_params) each, the first n_moments used */
    uint16_t *moment2_bf16;        /* (n_params) bfloat16, in place of moment[1] when set
                                    * (Adagrad's velocity); the file holds it widened to
                                    * f32, and reading rounds back (exact for such values) */
    int has_best;                  /* the best epoch's weights are saved */
    float *best;                   /* (n_params) when has_best */
    size_t n_streams;              /* P */
    rr_ckpt_stream *streams;       /* (P) */
    bool threads_differ;           /* reading: saved with another thread count */
} rr_ckpt;

/* What a checkpoint must match to be loaded into a trainer. */
typedef struct rr_ckpt_layout {
    size_t n_params;
    int n_moments;                     /* 0, 1 or 2 */
    size_t L;
    size_t state_width[RR_MAX_LAYERS]; /* floats of state per row and layer (smult * H_l) */
    size_t B;                          /* slots per stream */
    size_t n_streams;                  /* P expected */
    size_t n_order;                    /* sessions in the order */
    const int64_t *order;              /* (n_order) session rows by first time */
    const rr_sessions *sess;           /* the training sessions */
    size_t epochs_max;                 /* epochs a run may reach (bounds `epoch`) */
    int has_sampler;
    int can_have_best;                 /* a validation set is given */
    const char *fingerprint;           /* this run's (rr_ckpt_fingerprint); a saved one that
                                        * differs is RR_ERR_ARG, checked before anything else */
} rr_ckpt_layout;

/* The fingerprint text of a run: every hyperparameter that changes the
 * training trajectory, one "name=value" line each (names as the CLI
 * options), "threads=N" (the effective count) and the data: counts and
 * CRC-32C of the item vocabulary, session offsets, items and times of
 * train (and valid, or "valid=none").  sample_cache is the effective
 * cache size the trainer uses.  *out is malloc'ed. */
rr_status rr_ckpt_fingerprint(char **out, const rr_train_params *p, const rr_dataset *train,
                              const rr_dataset *valid, size_t sample_cache, int threads, rr_error *err);

/* Compares a saved fingerprint with the current one.  RR_OK when they
 * agree on everything but threads; then *threads_differ says whether the
 * thread count changed (the caller warns: the bytes will differ from an
 * uninterrupted run).  Otherwise RR_ERR_ARG naming every line that
 * differs, saved and current value (the data lines as one "different
 * training data" message). */
rr_status rr_ckpt_fingerprint_compare(const char *saved, const char *now, bool *threads_differ, rr_error *err);

/* Creates dir when missing (one level, mode 0755) and removes the
 * temporary files a killed write left behind (ckpt-*.rrc.tmp.*); *removed
 * gets their count. */
rr_status rr_ckpt_dir_prepare(const char *dir, size_t *removed, rr_error *err);

/* Takes the folder for this process (creating it when missing, one
 * level): an exclusive advisory lock (flock) on dir/lock, held until rr_ckpt_dir_unlock (or the process ends, however
 * it ends).  A second run on the same folder gets RR_ERR_ARG ("in use").
 * *fd gets the lock's descriptor. */
rr_status rr_ckpt_dir_lock(const char *dir, int *fd, rr_error *err);
void rr_ckpt_dir_unlock(int fd); /* fd < 0: nothing */

/* Sequence numbers of the checkpoints in dir, newest first (at most max);
 * *n gets the count.  A missing dir is no checkpoint. */
rr_status rr_ckpt_list(const char *dir, uint64_t *seqs, size_t max, size_t *n, rr_error *err);

/* "DIR/ckpt-<seq>.rrc" into buf (cap bytes); false when it does not fit. */
bool rr_ckpt_path(char *buf, size_t cap, const char *dir, uint64_t seq);

/* Writes c as checkpoint seq of dir (atomically), then removes the ones
 * older than the RR_CKPT_KEEP newest.  On failure (the errno text is in
 * err) the previous checkpoints are untouched and no temporary is left. */
rr_status rr_ckpt_write(const char *dir, uint64_t seq, const rr_ckpt *c, const rr_ckpt_layout *lay,
                        rr_error *err);

/* Reads and validates one checkpoint file into c (buffers set up by the
 * caller as described at rr_ckpt; fingerprint is allocated).  Errors:
 * RR_ERR_IO, RR_ERR_FORMAT (structure), RR_ERR_TRUNCATED, RR_ERR_CHECKSUM,
 * RR_ERR_VERSION (newer format), RR_ERR_ARG (the fingerprint differs from
 * lay->fingerprint: other data or hyperparameters), RR_ERR_RANGE (a value
 * that does not fit the layout or the data).  Structure and every checksum
 * are verified before anything is copied; on failure c's buffers hold no
 * meaning. */
rr_status rr_ckpt_read(const char *path, const rr_ckpt_layout *lay, rr_ckpt *c, rr_error *err);

/* Frees what rr_ckpt_read allocated (the fingerprint). */
void rr_ckpt_clear(rr_ckpt *c);

#endif /* RR_CHECKPOINT_H */
