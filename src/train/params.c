/* params.c - training parameters: GRU4Rec's defaults, its published presets
 * (Hidasi & Czapp, "Widespread flaws in offline evaluation of recommender
 * systems" / the GRU4Rec_PyTorch_Official paramfiles), and validation. */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "rnnrec.h"
#include "util/util.h"

void rr_train_params_default(rr_train_params *p) {
    memset(p, 0, sizeof *p);
    p->kind = "gru";
    p->seed = 42;
    p->threads = 0;
    p->verbose = 1;
    p->dist_owners = -1;        /* MPI row exchange: allgather at 2 ranks, owners from 3 (docs/distributed.md) */
    p->n_layers = 1;
    p->layers[0] = 100;
    p->embedding = -1;          /* constrained (tied) embedding */
    p->final_act = RR_ACT_LINEAR;
    p->final_act_param = 1.0;
    p->loss = RR_LOSS_CROSS_ENTROPY;
    p->logq = 0.0;
    p->bpreg = 1.0;
    p->elu_param = 0.5;
    p->batch_size = 64;
    p->n_sample = 2048;
    p->sample_alpha = 0.5;
    p->sample_cache = 10000000; /* floats of negatives precomputed at once */
    p->optim = RR_OPT_ADAGRAD;
    p->lr = 0.05;
    p->momentum = 0.0;
    p->momentum_dtype = RR_MOMENTUM_BF16;
    p->adam_beta1 = 0.9;
    p->adam_beta2 = 0.999;
    p->adam_eps = 1e-8;
    p->clip_norm = 0.0;
    p->dropout_embed = 0.0;
    p->dropout_hidden = 0.0;
    p->epochs = 10;
    p->patience = 0;
    p->checkpoint_secs = 600;   /* with a checkpoint_dir: every 10 minutes and every epoch */
    p->knn_k = 100;
    p->sknn_sample = 500;
    p->iknn_lambda = 20.0;
    p->iknn_alpha = 0.5;
}

typedef struct preset {
    const char *name;
    rr_loss loss;
    double elu;        /* bpr-max ELU parameter (0: none) */
    size_t hidden, batch;
    double drop_embed, drop_hidden, lr, momentum, alpha, logq, bpreg;
} preset;

/* The published best settings of GRU4Rec_PyTorch_Official (its paramfiles folder). */
static const preset presets[] = {
    {"rsc15", RR_LOSS_CROSS_ENTROPY, 0, 100, 32, 0.0, 0.4, 0.2, 0.2, 0.5, 1.0, 0},
    {"yoochoose", RR_LOSS_CROSS_ENTROPY, 0, 480, 48, 0.0, 0.2, 0.07, 0.0, 0.2, 1.0, 0},
    {"rees46", RR_LOSS_CROSS_ENTROPY, 0, 512, 240, 0.45, 0.0, 0.065, 0.0, 0.5, 1.0, 0},
    {"coveo", RR_LOSS_BPR_MAX, 1.0, 512, 144, 0.35, 0.0, 0.05, 0.4, 0.2, 0.0, 1.85},
    {"retailrocket", RR_LOSS_BPR_MAX, 0.5, 224, 80, 0.5, 0.05, 0.05, 0.4, 0.4, 0.0, 1.95},
    {"diginetica", RR_LOSS_BPR_MAX, 1.0, 512, 128, 0.5, 0.3, 0.05, 0.15, 0.3, 0.0, 0.9},
};

rr_status rr_train_params_preset(rr_train_params *p, const char *name, rr_error *err) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        const preset *q = &presets[i];
        if (strcasecmp(q->name, name)) continue;
        p->loss = q->loss;
        p->elu_param = q->elu;
        p->n_layers = 1;
        p->layers[0] = q->hidden;
        p->batch_size = q->batch;
        p->dropout_embed = q->drop_embed;
        p->dropout_hidden = q->drop_hidden;
        p->lr = q->lr;
        p->momentum = q->momentum;
        p->sample_alpha = q->alpha;
        p->logq = q->logq;
        if (q->loss != RR_LOSS_CROSS_ENTROPY) p->bpreg = q->bpreg;
        p->embedding = -1;
        p->n_sample = 2048;
        p->epochs = 10;
        p->optim = RR_OPT_ADAGRAD;
        p->final_act = RR_ACT_LINEAR;
        return RR_OK;
    }
    return rr_err(err, RR_ERR_ARG,
                  "unknown preset '%s' (known: rsc15, yoochoose, rees46, coveo, retailrocket, diginetica)",
                  name);
}

static int is_rnn(const char *kind) {
    return !strcmp(kind, "gru") || !strcmp(kind, "lstm") || !strcmp(kind, "rnn");
}

const char *rr_train_params_check(const rr_train_params *p) {
    if (!p->kind || !*p->kind) return "kind: no model kind given";
    if (p->threads < 0) return "threads: must be >= 0";
    if (!is_rnn(p->kind)) {
        if (p->knn_k == 0) return "knn_k: must be >= 1";
        if (p->sknn_sample == 0) return "sknn_sample: must be >= 1";
        if (!(p->iknn_lambda >= 0)) return "iknn_lambda: must be >= 0";
        if (!(p->iknn_alpha >= 0 && p->iknn_alpha <= 1)) return "iknn_alpha: must be in [0, 1]";
        return NULL;
    }
    if (p->n_layers < 1 || p->n_layers > RR_MAX_LAYERS) return "layers: between 1 and 8 layers";
    for (size_t i = 0; i < p->n_layers; i++)
        if (p->layers[i] < 1 || p->layers[i] > 65536) return "layers: sizes must be in 1..65536";
    if (p->embedding < -1 || p->embedding > 65536) return "embedding: -1 (constrained), 0 (one-hot) or 1..65536";
    if (p->batch_size < 1 || p->batch_size > 65536) return "batch_size: must be in 1..65536";
    if (p->n_sample > 1000000) return "n_sample: must be <= 1000000";
    if (!(p->sample_alpha >= 0 && p->sample_alpha <= 2)) return "sample_alpha: must be in [0, 2]";
    if (!(p->lr > 0 && isfinite(p->lr))) return "lr: must be > 0";
    if (!(p->momentum >= 0 && p->momentum < 1)) return "momentum: must be in [0, 1)";
    if (!(p->dropout_embed >= 0 && p->dropout_embed < 1)) return "dropout_embed: must be in [0, 1)";
    if (!(p->dropout_hidden >= 0 && p->dropout_hidden < 1)) return "dropout_hidden: must be in [0, 1)";
    if (!(p->logq >= 0 && isfinite(p->logq))) return "logq: must be >= 0";
    if (!(p->bpreg >= 0 && isfinite(p->bpreg))) return "bpreg: must be >= 0";
    if (!(p->elu_param >= 0 && isfinite(p->elu_param))) return "elu_param: must be >= 0";
    if (!(p->clip_norm >= 0 && isfinite(p->clip_norm))) return "clip_norm: must be >= 0";
    if (p->epochs < 1 || p->epochs > 100000) return "epochs: must be in 1..100000";
    if (p->optim == RR_OPT_ADAM &&
        !(p->adam_beta1 >= 0 && p->adam_beta1 < 1 && p->adam_beta2 >= 0 && p->adam_beta2 < 1 && p->adam_eps > 0))
        return "adam: beta1, beta2 in [0, 1), eps > 0";
    if (!(p->checkpoint_secs >= 0 && isfinite(p->checkpoint_secs))) return "checkpoint_secs: must be >= 0";
    if (p->resume && !p->checkpoint_dir) return "resume: needs a checkpoint_dir";
    if (p->checkpoint_dir && !*p->checkpoint_dir) return "checkpoint_dir: empty folder name";
    if (p->loss > RR_LOSS_TOP1) return "loss: unknown loss";
    if (p->optim > RR_OPT_SGD) return "optim: unknown optimiser";
    if (p->momentum_dtype > RR_MOMENTUM_FP32) return "momentum_dtype: bf16 or fp32";
    if (p->final_act > RR_ACT_RELU) return "final_act: unknown activation";
    return NULL;
}
