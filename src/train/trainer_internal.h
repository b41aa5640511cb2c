/* trainer_internal.h - the trainer's state, shared by the training loop
 * (trainer.c) and its checkpoint glue (trainer_ckpt.c); internal to
 * src/train/.  It also compiles the float instance of the step
 * (step_impl.inc) that the trainer's buffers are typed by: its functions
 * are static and unused outside trainer.c. */
#ifndef RR_TRAINER_INTERNAL_H
#define RR_TRAINER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "models/model.h"
#include "models/rnn.h"
#include "nn/act.h"
#include "nn/gemm.h"
#include "train/checkpoint.h"
#include "train/loss.h"
#include "train/optim.h"
#include "train/sampler.h"
#include "train/trainer.h"
#include "util/util.h"

/* ---- the step in float (step_f32.h) */

#include "train/step_f32.h"

/* ---- the trainer */

typedef struct epoch_stats {
    double loss_sum;            /* sum over steps of loss * rows */
    size_t events;              /* targets trained on */
    size_t steps;
    int numeric;                /* a non-finite loss or gradient stopped the epoch */
} epoch_stats;

/* Checkpointing of a run (checkpoint.h): on when p->checkpoint_dir is set. */
typedef struct ckpt_run {
    bool on, resumed;
    char *fingerprint;          /* this run's (malloc'ed) */
    rr_ckpt_layout lay;
    uint64_t seq;               /* newest checkpoint in the folder (0: none) */
    size_t written, failed;
    double secs, last, max_secs; /* time spent writing; end of the last write; slowest write */
    uint64_t bytes;             /* size of the last one written */
    uint64_t log_bytes;         /* resumed: the JSON log's length at the checkpoint */
    int lock_fd;                /* the folder's lock (rr_ckpt_dir_lock), -1: none */
} ckpt_run;

/* The trainer holds everything the loop needs to continue between any two
 * steps (what a checkpoint saves, see checkpoint.h and
 * docs/checkpoints.md): parameters and optimiser moments (blobs), t, the
 * RNGs (dropout here, negatives in the sampler), the data stream (epoch,
 * n, next, slot_sess/slot_pos, ws.st_prev rows [0, n)), the epoch's stats
 * so far and the validation bookkeeping.  Everything else is rebuilt from
 * the data and the parameters. */
typedef struct trainer {
    const rr_train_params *p;
    const rr_sessions *sess;    /* the training sessions */
    rr_model *m;
    rr_rnn *r;
    const rr_rnn_layout *lay;
    rr_step_ctx_f32 ctx;
    rr_step_ws_f32 ws;
    rr_optim_cfg opt;
    float *s1;                  /* (n_params) first optimiser moment, or NULL */
    void *s2;                   /* (n_params) second moment (float, or bfloat16 for Adagrad's
                                 * velocity: rr_optim_s2_size), or NULL */
    float *logcnt;              /* (N) log max(count, 1) for logQ */
    float *best;                /* (n_params) best epoch's weights (validation only) */
    rr_sampler *sampler;
    rr_rng rng;                 /* dropout masks */
    double p_embed, p_hidden[RR_MAX_LAYERS];
    size_t B, S;
    size_t n_order;
    int64_t *order;             /* (n_order) sessions with >= 2 events, by first time */
    size_t *slot_sess, *slot_pos; /* (B) session row and position of each slot */
    int32_t *in, *tgt;          /* (B) this step's input and target items */
    uint64_t t;                 /* optimiser steps taken */
    /* the data stream: position in the epoch */
    size_t epoch;               /* current epoch, 0-based */
    int in_epoch;               /* slots filled for `epoch` (else it starts afresh) */
    size_t n;                   /* slots in use, rows [0, n) of slot_* and ws.st_prev */
    size_t next;                /* index into order of the next session to take */
    epoch_stats es;             /* the current epoch so far */
    uint64_t steps_total;       /* steps over every epoch (checkpoint spacing) */
    /* validation bookkeeping (best_epoch 1-based, 0: none yet) */
    double best_score, best_mrr, last_loss;
    size_t best_epoch, since_best, epochs_run;
    double prof_t;              /* the profile's last time stamp */
    rr_train_prof *prof;        /* or NULL */
    int tty;
    /* dist hooks (MPI data parallelism, src/dist/dist.h): the world and the
     * step exchange, NULL in one process; dist_all: the step's combined rows */
    rr_dist *dist;
    rr_dist_xchg *xchg;
    rr_dist_rows dist_all;
    /* dist hook, checkpoints: P stream records of ck_B slots, ck_rec bytes
     * each, plus this rank's own (record P); views of them */
    unsigned char *ck_recs;
    rr_ckpt_stream *ck_streams;
    size_t ck_rec, ck_B;
    size_t cache;               /* the sampler's draws per refill */
    FILE *jf;                   /* the JSON log, or NULL */
    ckpt_run ck;
} trainer;

/* ---- checkpoints of a run (trainer_ckpt.c; checkpoint.h,
 * docs/checkpoints.md).  All three are used only when p->checkpoint_dir is
 * set; under MPI they are collective (every rank calls them together). */

/* Sets checkpointing up: the fingerprint, the folder (locked, stale
 * temporaries removed) and, with p->resume, the trainer's state from the
 * newest checkpoint that loads. */
rr_status rr_trainer_ckpt_start(trainer *tr, const rr_dataset *train, const rr_dataset *valid, int nt,
                                rr_error *err);
/* A checkpoint is due after this step (by steps or by time). */
bool rr_trainer_ckpt_due(const trainer *tr);
/* Writes the next checkpoint; a failure is logged and counted, never fatal. */
void rr_trainer_ckpt_save(trainer *tr);

#endif /* RR_TRAINER_INTERNAL_H */
