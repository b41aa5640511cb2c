/* rnnrec.h - the one public header of librnnrec.
 *
 * rnnrec trains, evaluates and serves recurrent-neural-network recommenders
 * (GRU4Rec and friends) and strong baselines on session event logs.
 *
 * A worked example (error handling shortened; every call returns rr_status
 * and fills the caller's rr_error on failure):
 *
 *   rr_error err;
 *   rr_read_opts ro;  rr_read_opts_default(&ro);
 *   rr_dataset *train = NULL, *test = NULL;
 *   rr_dataset_read("train.tsv", &ro, &train, &err);
 *   rr_dataset_read("test.tsv", &ro, &test, &err);
 *
 *   rr_train_params tp;  rr_train_params_default(&tp);
 *   tp.kind = "gru";                          // or "pop", "sknn", ...
 *   rr_model *m = NULL;
 *   rr_model_train(&m, train, NULL, &tp, &err);
 *   rr_model_save(m, "model.rr", &err);
 *
 *   rr_eval_params ep;  rr_eval_params_default(&ep);
 *   rr_eval_result res;
 *   rr_evaluate(m, test, &ep, &res, &err);    // res.recall[i] at ep.cutoffs[i]
 *
 *   rr_model_use_screen(m, 8, &err);          // optional: faster ranking, same results
 *   rr_state *s = rr_state_new(m);            // a live session
 *   rr_state_feed(s, rr_model_item_index(m, "42", 2));
 *   int32_t top[20]; float sc[20];
 *   rr_recommend(m, &s, 1, 20, 1, top, sc, &err);
 *   rr_state_free(s); rr_model_free(m);
 *   rr_dataset_free(train); rr_dataset_free(test);
 *
 * Ownership: every object returned through an `out` pointer by a `_new`,
 * `_read`, `_load` or `_train` call belongs to the caller, who releases it
 * with the matching `_free`; every `_free` accepts NULL.  Objects are not
 * internally locked: a model may be shared read-only by many threads, each
 * thread using its own rr_state.
 */
#ifndef RNNREC_H
#define RNNREC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RR_VERSION_MAJOR 0
#define RR_VERSION_MINOR 1
#define RR_VERSION_PATCH 0
#define RR_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------- status */

typedef enum rr_status {
    RR_OK = 0,
    RR_ERR_ARG,         /* invalid argument or parameter */
    RR_ERR_IO,          /* open/read/write/fsync failed */
    RR_ERR_PARSE,       /* malformed input data */
    RR_ERR_FORMAT,      /* not a model file, or structurally invalid */
    RR_ERR_TRUNCATED,   /* model file shorter than its header says */
    RR_ERR_CHECKSUM,    /* section checksum mismatch */
    RR_ERR_VERSION,     /* model file from a newer rnnrec */
    RR_ERR_NOMEM,       /* allocation failed or size overflow */
    RR_ERR_RANGE,       /* a value outside its allowed range */
    RR_ERR_NUMERIC,     /* NaN or infinity where a finite number belongs */
    RR_ERR_UNSUPPORTED, /* valid, but not handled by this build or model */
    RR_ERR_EMPTY,       /* no usable data */
    RR_ERR_INTERNAL     /* a bug: please report */
} rr_status;

/* Details of the last failure of a call.  The library never keeps a global
 * error: the caller passes one of these (or NULL to ignore details). */
typedef struct rr_error {
    rr_status status;
    char msg[1024];
} rr_error;

const char *rr_status_str(rr_status s);
const char *rr_version(void);

/* Log sink for progress and warnings.  level: 0 error, 1 warn, 2 info,
 * 3 debug.  The default sink writes nothing; the CLI installs one. */
typedef void (*rr_log_fn)(int level, const char *msg, void *user);
void rr_log_set(rr_log_fn fn, void *user, int max_level);

/* ------------------------------------------------------------------ data */

/* An event log held as sessions in CSR form, with the original session and
 * item ids kept for output. */
typedef struct rr_dataset rr_dataset;

typedef struct rr_read_opts {
    char sep;                 /* '\t', ',', ';', ... or 0: by extension */
    const char *session_col;  /* NULL: recognise session_id, SessionId, user_id, ... */
    const char *item_col;     /* NULL: recognise item_id, ItemId, ... */
    const char *time_col;     /* NULL: recognise timestamp, Time, time, ... */
    size_t max_bad_rows;      /* rows that may be skipped before failing (0) */
    int require_time;         /* 1: a missing time column is an error (1) */
} rr_read_opts;

void rr_read_opts_default(rr_read_opts *o);

/* Reads a TSV/CSV file, plain or gzip (by magic), or "-" for stdin.  Input
 * errors say FILE:LINE:COL: what was expected, what was found. */
rr_status rr_dataset_read(const char *path, const rr_read_opts *o,
                          rr_dataset **out, rr_error *err);
void rr_dataset_free(rr_dataset *d);
/* Frees d's original session ids (vocabulary and row map, about 40 bytes a
 * session) when d will only be trained or evaluated on: nothing there reads
 * them.  Afterwards rr_dataset_write_tsv and the rr_prep functions refuse d
 * (RR_ERR_ARG). */
void rr_dataset_drop_session_ids(rr_dataset *d);
size_t rr_dataset_n_events(const rr_dataset *d);
size_t rr_dataset_n_sessions(const rr_dataset *d);
size_t rr_dataset_n_items(const rr_dataset *d);
/* Rows skipped under max_bad_rows by the read that made d. */
size_t rr_dataset_n_bad_rows(const rr_dataset *d);
/* Writes d as TSV (session_id, item_id, timestamp; original ids; times
 * printed exactly), atomically: a failed write leaves no partial file. */
rr_status rr_dataset_write_tsv(const rr_dataset *d, const char *path, rr_error *err);

/* Synthetic clickstreams with learnable sequential structure.  Items have
 * Zipf popularity and belong to latent topics; each item has a few
 * preferred successors (mostly in its topic).  A session starts in a topic
 * and at each step follows a successor with p_follow, re-clicks an earlier
 * item with p_repeat, or else draws from its topic's popularity, switching
 * topic with p_switch first.  Lengths are 1 + floor(lognormal), heavy
 * tailed, capped at 200; times are integer seconds from `epoch` over `days`
 * days with lognormal in-session gaps.  Deterministic given seed. */
typedef struct rr_synth_params {
    uint64_t seed;         /* 1 */
    size_t n_events;       /* 200000 */
    size_t n_items;        /* 5000 */
    size_t n_topics;       /* 50 */
    double zipf;           /* popularity exponent (1.0) */
    double mean_length;    /* mean session length (4.5), >= 1 */
    double days;           /* time span (30) */
    size_t n_successors;   /* preferred successors per item (4) */
    double p_follow;       /* follow a preferred successor (0.5) */
    double p_switch;       /* switch topic on a topic draw (0.1) */
    double p_repeat;       /* re-click an earlier item of the session (0.05) */
    double p_cross;        /* a successor is from another topic (0.15) */
    int64_t epoch;         /* first timestamp, Unix seconds (1577836800) */
} rr_synth_params;

void rr_synth_params_default(rr_synth_params *p);
/* NULL when p is valid, else which field is wrong. */
const char *rr_synth_params_check(const rr_synth_params *p);
/* Generates the whole log in memory (same events as rr_synth_write). */
rr_status rr_synth_generate(const rr_synth_params *p, rr_dataset **out, rr_error *err);
/* Streams the log as TSV to path (atomically; a ".gz" suffix writes gzip). */
rr_status rr_synth_write(const rr_synth_params *p, const char *path, rr_error *err);
/* Same to an open file descriptor (e.g. 1 for stdout); gzip 1 compresses. */
rr_status rr_synth_write_fd(const rr_synth_params *p, int fd, int gzip, rr_error *err);

/* Preprocessing: session cutting, filters to a fixpoint, and splits.
 * Times are in seconds (days = 86400 s); for order-index timestamps the day
 * based options are not meaningful. */
typedef enum rr_split {
    RR_SPLIT_TIME = 0,     /* sessions starting in the last test_days -> test */
    RR_SPLIT_LOO,          /* leave-one-out per user */
    RR_SPLIT_NONE          /* everything -> train */
} rr_split;

typedef struct rr_prep_params {
    int dedup;                 /* drop consecutive duplicate items (0) */
    size_t min_item_support;   /* items with fewer events are dropped (5) */
    size_t min_session_length; /* shorter sessions are dropped (2) */
    double session_gap;        /* cut sessions at gaps > this many seconds; 0 off */
    rr_split split;            /* RR_SPLIT_TIME */
    double test_days;          /* time split: test span (1) */
    double valid_days;         /* valid carved from train by time; 0 off (0) */
    int loo_valid;             /* leave-one-out: also make valid (0) */
} rr_prep_params;

typedef struct rr_prep_stats {
    size_t in_events, in_sessions, in_items;
    size_t gap_sessions;       /* sessions after session_gap cutting */
    size_t passes;             /* filter passes until nothing changed */
    size_t dedup_events;       /* events dropped as consecutive duplicates */
    size_t support_events;     /* events dropped: item under min support */
    size_t support_items;      /* distinct items dropped */
    size_t short_sessions;     /* sessions dropped: too short */
    size_t short_events;       /* their events */
    size_t kept_events, kept_sessions, kept_items; /* after the filters */
    size_t test_unknown_events, test_short_sessions;   /* time split */
    size_t valid_unknown_events, valid_short_sessions; /* valid carve */
    double t_min, t_max;       /* time range after the filters */
    double test_cut, valid_cut;/* sessions starting at >= cut went out */
} rr_prep_stats;

typedef struct rr_prep_result {
    rr_dataset *train, *valid, *test; /* valid / test NULL when not made */
    rr_prep_stats stats;
} rr_prep_result;

void rr_prep_params_default(rr_prep_params *p);
const char *rr_prep_params_check(const rr_prep_params *p);
/* Runs the preprocessing on in (unchanged); res gets new datasets. */
rr_status rr_prep_run(const rr_dataset *in, const rr_prep_params *p, rr_prep_result *res,
                      rr_error *err);
/* Writes train.tsv, valid.tsv, test.tsv (those made) into dir (created if
 * missing). */
rr_status rr_prep_write(const rr_prep_result *res, const char *dir, rr_error *err);
void rr_prep_result_free(rr_prep_result *res);

/* ----------------------------------------------------------------- model */

typedef struct rr_model rr_model;
typedef struct rr_state rr_state;

typedef enum rr_loss {
    RR_LOSS_CROSS_ENTROPY = 0,
    RR_LOSS_BPR_MAX,
    RR_LOSS_TOP1_MAX,
    RR_LOSS_BPR,
    RR_LOSS_TOP1
} rr_loss;

typedef enum rr_optim { RR_OPT_ADAGRAD = 0, RR_OPT_ADAM, RR_OPT_SGD } rr_optim;

/* How Adagrad stores its momentum (velocity): bfloat16 halves the largest
 * optimiser table (docs/rnn.md); fp32 is GRU4Rec's exact state. */
typedef enum rr_momentum_dtype { RR_MOMENTUM_BF16 = 0, RR_MOMENTUM_FP32 } rr_momentum_dtype;

typedef enum rr_act {
    RR_ACT_LINEAR = 0, RR_ACT_ELU, RR_ACT_TANH, RR_ACT_RELU
} rr_act;

#define RR_MAX_LAYERS 8

/* Training parameters for every model kind.  Fields a kind does not use are
 * ignored.  rr_train_params_default() gives GRU4Rec's defaults. */
typedef struct rr_train_params {
    const char *kind;        /* pop spop markov iknn sknn vsknn gru lstm rnn */
    uint64_t seed;
    int threads;             /* 0: all cores */
    int verbose;             /* 0 quiet, 1 progress, 2 debug */
    const char *log_json;    /* path for one JSON object per epoch, or NULL */
    int dist_owners;         /* MPI row exchange: 1 at owner ranks, 0 allgather, -1 owners
                              * from 3 ranks up; same model bytes (docs/distributed.md) */

    /* RNN */
    size_t n_layers;
    size_t layers[RR_MAX_LAYERS]; /* hidden sizes, first to last */
    int rnn_relu;            /* plain rnn cell: 0 tanh, 1 relu */
    long embedding;          /* -1 constrained (tied), 0 one-hot, K separate */
    rr_act final_act;
    double final_act_param;  /* elu alpha */
    rr_loss loss;
    double logq;             /* cross-entropy logQ correction weight */
    double bpreg;            /* bpr-max score regularisation */
    double elu_param;        /* bpr-max: ELU on scores when > 0 */
    size_t batch_size;
    size_t n_sample;
    double sample_alpha;
    size_t sample_cache;     /* negatives precomputed per refill */
    rr_optim optim;
    double lr, momentum;
    rr_momentum_dtype momentum_dtype; /* adagrad with momentum: velocity storage */
    double adam_beta1, adam_beta2, adam_eps;
    double clip_norm;        /* 0: off */
    double dropout_embed, dropout_hidden;
    size_t epochs;
    size_t patience;         /* 0: no early stopping */
    /* checkpoints (RNN kinds; docs/checkpoints.md) */
    const char *checkpoint_dir; /* write checkpoints here (NULL: none) */
    size_t checkpoint_steps; /* every N steps (0: not by steps) */
    double checkpoint_secs;  /* every S seconds (0: not by time); also at every epoch end */
    int resume;              /* continue from checkpoint_dir's newest valid checkpoint */
    size_t *checkpoint_failures; /* out, when not NULL: checkpoint writes that failed */

    /* baselines */
    size_t knn_k;            /* neighbours (iknn list length, sknn k) */
    size_t sknn_sample;      /* sknn: recent candidate sessions */
    double iknn_lambda;      /* iknn: support regulariser */
    double iknn_alpha;       /* iknn: support exponent */
} rr_train_params;

void rr_train_params_default(rr_train_params *p);
/* Sets a GRU4Rec published preset (rsc15, yoochoose, rees46, coveo,
 * retailrocket, diginetica).  RR_ERR_ARG for an unknown name. */
rr_status rr_train_params_preset(rr_train_params *p, const char *name, rr_error *err);
/* NULL when p is valid, else a message saying which field is wrong. */
const char *rr_train_params_check(const rr_train_params *p);

/* Trains a model.  valid may be NULL; with it, RNN training evaluates after
 * each epoch and keeps the best epoch (early stopping by patience).
 * RR_ERR_NUMERIC means the loss became NaN or infinite; *out then holds the
 * last good model when there is one (the caller frees it), else NULL. */
rr_status rr_model_train(rr_model **out, const rr_dataset *train,
                         const rr_dataset *valid, const rr_train_params *p,
                         rr_error *err);

rr_status rr_model_save(const rr_model *m, const char *path, rr_error *err);
rr_status rr_model_load(const char *path, rr_model **out, rr_error *err);
void rr_model_free(rr_model *m);

const char *rr_model_kind(const rr_model *m);
size_t rr_model_n_items(const rr_model *m);
/* Dense index of an original item id, or -1 when unknown. */
int32_t rr_model_item_index(const rr_model *m, const char *id, size_t len);
/* Original id of a dense index (not NUL-terminated; *len gets its length). */
const char *rr_model_item_id(const rr_model *m, int32_t idx, size_t *len);
/* Hyperparameter / metadata value stored with the model, or NULL. */
const char *rr_model_meta(const rr_model *m, const char *key);

/* A live session: the items seen so far and the model's recurrent state. */
rr_state *rr_state_new(const rr_model *m);
void rr_state_free(rr_state *s);
void rr_state_reset(rr_state *s);
/* Advances the session by one item (one RNN step for RNN models). */
rr_status rr_state_feed(rr_state *s, int32_t item);
/* Advances it by n items in order: the same state, bit for bit, as n
 * rr_state_feed calls (an RNN computes the items' input products together).
 * RR_ERR_RANGE (nothing fed) when an item is out of range.  items may be
 * NULL when n is 0. */
rr_status rr_state_feed_items(rr_state *s, const int32_t *items, size_t n);
size_t rr_state_len(const rr_state *s);

/* Top-k items for n sessions at once (one matrix product for RNN models).
 * items/scores are (n, k); rows are padded with -1 when fewer than k items
 * remain.  exclude_seen removes each session's own items.  A session with
 * no items yet is ranked by training popularity. */
rr_status rr_recommend(const rr_model *m, rr_state *const *states, size_t n,
                       size_t k, int exclude_seen, int32_t *items,
                       float *scores, rr_error *err);

/* Prepares m for fast ranking: a quantised copy of its item table (bits 8:
 * one byte per weight; 16: two) that rr_recommend screens every item with
 * under a rigorous error bound, computing exact scores only for the few
 * items the bound cannot place.  The results stay the exact ones, bit for
 * bit; one session is ranked several times faster (docs/rnn.md).  Models
 * without a linear item head, and CPUs without AVX-512 VNNI, keep the exact
 * path (RR_OK, nothing built: rr_model_screen_bits says 0).  bits 0 drops
 * the screen.  Not thread-safe: call it before sharing m. */
rr_status rr_model_use_screen(rr_model *m, int bits, rr_error *err);
/* The width of m's screen, 0 when it has none. */
int rr_model_screen_bits(const rr_model *m);

/* ------------------------------------------------------------ evaluation */

typedef enum rr_ties {
    RR_TIES_CONSERVATIVE = 0, /* rank = #items scoring >= target */
    RR_TIES_STANDARD,         /* rank = 1 + #items scoring > target */
    RR_TIES_MEDIAN            /* mean of the two */
} rr_ties;

#define RR_MAX_CUTOFFS 16

typedef struct rr_eval_params {
    rr_ties ties;
    int target_last;          /* 1: only each session's last event */
    int exclude_seen;
    size_t n_cutoffs;
    size_t cutoffs[RR_MAX_CUTOFFS]; /* ascending */
    size_t block;             /* sessions scored per block (0: auto) */
    int threads;              /* 0: all cores */
} rr_eval_params;

typedef struct rr_eval_result {
    size_t n_targets;
    size_t n_sessions;        /* sessions that produced a target */
    size_t n_dropped;         /* test events dropped: item not in model */
    size_t n_items;           /* catalogue size ranked against */
    double recall[RR_MAX_CUTOFFS];     /* = hit rate */
    double mrr[RR_MAX_CUTOFFS];
    double ndcg[RR_MAX_CUTOFFS];
    double coverage[RR_MAX_CUTOFFS];   /* distinct items in top-K / n_items */
    double popularity[RR_MAX_CUTOFFS]; /* mean train count share of top-K */
    double seconds;
} rr_eval_result;

void rr_eval_params_default(rr_eval_params *p);
rr_status rr_evaluate(const rr_model *m, const rr_dataset *test,
                      const rr_eval_params *p, rr_eval_result *res,
                      rr_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RNNREC_H */
