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

#include "rnnrec.h"

rr_status rr_rnn_fit(rr_model **out, const rr_dataset *train, const rr_dataset *valid,
                     const rr_train_params *p, rr_error *err);

#endif /* RR_TRAINER_H */
