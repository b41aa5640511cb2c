/* trainer.h - GRU4Rec's session-parallel training loop for the RNN kinds
 * (gru, lstm, rnn).
 *
 * Sessions are ordered by the time of their first event; each of B slots
 * holds one session, every step feeds each slot's current item and targets
 * its next one, with the other slots' targets plus n_sample items shared by
 * the mini-batch (drawn with probability ~ count^alpha) as negatives.  A slot
 * whose session ends takes the next session and its recurrent state (every
 * layer; the LSTM cell too) is zeroed; when sessions run out the batch
 * shrinks.  Hidden states carry over between steps with gradients truncated
 * at one step, and start at zero every epoch.
 *
 * rr_rnn_fit is the registry's trainer of the three kinds.  On a non-finite
 * loss it stops and returns RR_ERR_NUMERIC with *out set to a usable model:
 * the best epoch's weights when a validation set was given, otherwise the
 * weights after the last step whose loss was finite (the failing step is
 * not applied).  The caller owns *out in both cases. */
#ifndef RR_TRAINER_H
#define RR_TRAINER_H

#include <stdint.h>

#include "rnnrec.h"

rr_status rr_rnn_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                     const rr_train_params *p, rr_error *err);

/* Where the training time goes (bench_train's profile): wall seconds per
 * stage summed over the steps, as the first thread sees them, so time a
 * thread waits for the others counts in the stage it waits in. */
typedef enum rr_train_stage {
    RR_TS_BATCH,      /* inputs and targets, dropout masks, samples, slots */
    RR_TS_FORWARD,    /* input rows, every layer */
    RR_TS_SCORE,      /* output rows gathered, scores, final activation */
    RR_TS_LOSS,       /* logQ columns, the loss and dO */
    RR_TS_BWD_OUT,    /* By column sums, Wy-row and hidden gradients */
    RR_TS_BWD_CELL,   /* cells backward, gradients into the layers below */
    RR_TS_DENSE,      /* W_ih, b_ih and the partials of W_hh, b_hh */
    RR_TS_ROWS,       /* unique item rows and their summed gradients */
    RR_TS_UPDATE,     /* gradient check and optimiser */
    RR_TS_N
} rr_train_stage;

typedef struct rr_train_prof {
    double sec[RR_TS_N];
    uint64_t steps;
} rr_train_prof;

const char *rr_train_stage_name(rr_train_stage s);
/* "cross-entropy", "bpr-max", ...: the --loss names (model metadata and
 * the checkpoint fingerprint). */
const char *rr_train_loss_name(rr_loss l);

/* rr_rnn_fit that also adds its stage times to *prof (zero it first). */
rr_status rr_rnn_fit_prof(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                          const rr_train_params *p, rr_train_prof *prof, rr_error *err);

#endif /* RR_TRAINER_H */
