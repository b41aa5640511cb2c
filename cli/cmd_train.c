/* cmd_train.c - `rnnrec train`: read an event log, train a model of any
 * kind (RNN or baseline) and save it.
 *
 * A --preset is applied before the explicit options, wherever it appears on
 * the command line: argv is parsed twice, first to find the preset (and to
 * report usage errors once), then again over the preset's values so that
 * every explicit flag overrides it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dist/dist.h"
#include "models/model.h"
#include "util/util.h"

typedef struct train_cli {
    rr_train_params tp;
    rr_read_opts ro;
    const char *preset;
    const char *valid;
    const char *out;
    const char *resume;
    size_t ckpt_failures;
    long threads;
    long verbose;
    int quiet;
    int constrained;
    int print_params;
} train_cli;

/* ---- value names */

typedef struct name_val {
    const char *name;
    int val;
} name_val;

static const name_val losses[] = {
    {"cross-entropy", RR_LOSS_CROSS_ENTROPY}, {"bpr-max", RR_LOSS_BPR_MAX},
    {"top1-max", RR_LOSS_TOP1_MAX},           {"bpr", RR_LOSS_BPR},
    {"top1", RR_LOSS_TOP1},                   {NULL, 0}};
static const name_val optims[] = {
    {"adagrad", RR_OPT_ADAGRAD}, {"adam", RR_OPT_ADAM}, {"sgd", RR_OPT_SGD}, {NULL, 0}};
static const name_val mdtypes[] = {{"bf16", RR_MOMENTUM_BF16}, {"fp32", RR_MOMENTUM_FP32}, {NULL, 0}};
static const name_val acts[] = {{"linear", RR_ACT_LINEAR},
                                {"elu", RR_ACT_ELU},
                                {"tanh", RR_ACT_TANH},
                                {"relu", RR_ACT_RELU},
                                {NULL, 0}};

static const char *name_of(const name_val *t, int v) {
    for (; t->name; t++)
        if (t->val == v) return t->name;
    return "?";
}

static int lookup(const name_val *t, const char *s, int *out) {
    for (; t->name; t++)
        if (!strcmp(t->name, s)) {
            *out = t->val;
            return 0;
        }
    return -1;
}

/* ---- option callbacks (user = rr_train_params) */

static int cb_layers(const char *v, void *user) {
    rr_train_params *p = user;
    size_t n = 0, sizes[RR_MAX_LAYERS];
    const char *s = v;
    while (*s) {
        if (*s < '0' || *s > '9' || n >= RR_MAX_LAYERS) return -1;
        char *end;
        errno = 0;
        unsigned long long x = strtoull(s, &end, 10);
        if (errno || x == 0 || x > 65536) return -1;
        sizes[n++] = (size_t)x;
        s = end;
        if (*s == ',') {
            s++;
            if (!*s) return -1;
        } else if (*s) {
            return -1;
        }
    }
    if (n == 0) return -1;
    p->n_layers = n;
    memcpy(p->layers, sizes, n * sizeof sizes[0]);
    return 0;
}

static int cb_loss(const char *v, void *user) {
    int x;
    if (lookup(losses, v, &x)) return -1;
    ((rr_train_params *)user)->loss = (rr_loss)x;
    return 0;
}

static int cb_optim(const char *v, void *user) {
    int x;
    if (lookup(optims, v, &x)) return -1;
    ((rr_train_params *)user)->optim = (rr_optim)x;
    return 0;
}

/* linear | tanh | relu | elu | elu:P (P: the ELU alpha) */
static int cb_final_act(const char *v, void *user) {
    rr_train_params *p = user;
    char name[16];
    const char *colon = strchr(v, ':');
    size_t len = colon ? (size_t)(colon - v) : strlen(v);
    if (len >= sizeof name) return -1;
    memcpy(name, v, len);
    name[len] = 0;
    int x;
    if (lookup(acts, name, &x)) return -1;
    double param = 1.0;
    if (colon) {
        if (x != RR_ACT_ELU || !rr_parse_double(colon + 1, &param)) return -1;
    }
    p->final_act = (rr_act)x;
    if (x == RR_ACT_ELU) p->final_act_param = param;
    return 0;
}

/* N (steps) or N followed by s, m or h (time); N > 0. */
static int cb_ckpt_every(const char *v, void *user) {
    rr_train_params *p = user;
    char *end;
    errno = 0;
    if (*v < '0' || *v > '9') return -1;
    double x = strtod(v, &end);
    if (errno || !(x > 0)) return -1;
    if (!*end) {
        if (x != (double)(size_t)x) return -1;
        p->checkpoint_steps = (size_t)x;
        p->checkpoint_secs = 0;
        return 0;
    }
    double unit = !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600 : 0;
    if (unit == 0 || !(x * unit < 1e9)) return -1;
    p->checkpoint_secs = x * unit;
    p->checkpoint_steps = 0;
    return 0;
}

static int cb_cell_act(const char *v, void *user) {
    rr_train_params *p = user;
    if (!strcmp(v, "tanh")) p->rnn_relu = 0;
    else if (!strcmp(v, "relu")) p->rnn_relu = 1;
    else return -1;
    return 0;
}

static int cb_momentum_dtype(const char *v, void *user) {
    int x;
    if (lookup(mdtypes, v, &x)) return -1;
    ((rr_train_params *)user)->momentum_dtype = (rr_momentum_dtype)x;
    return 0;
}

/* MPI row exchange (docs/distributed.md); not in the checkpoint fingerprint:
 * both give the same bits */
static int cb_dist_exchange(const char *v, void *user) {
    rr_train_params *p = user;
    if (!strcmp(v, "auto")) p->dist_owners = -1;
    else if (!strcmp(v, "allgather")) p->dist_owners = 0;
    else if (!strcmp(v, "owners")) p->dist_owners = 1;
    else return -1;
    return 0;
}

/* ---- the option table */

enum { N_OPTS = 50 };

/* Help texts that show defaults of options the table cannot print itself. */
typedef struct help_bufs {
    char layers[96], loss[128], optim[96], final_act[128], cell_act[96], ckpt_every[160], mdtype[160];
} help_bufs;

static void fill_help(help_bufs *h, const rr_train_params *d) {
    char sz[64];
    size_t o = 0;
    sz[0] = 0;
    for (size_t i = 0; i < d->n_layers && o < sizeof sz - 8; i++)
        o += (size_t)snprintf(sz + o, sizeof sz - o, "%s%zu", i ? "," : "", d->layers[i]);
    snprintf(h->layers, sizeof h->layers, "RNN hidden sizes, first to last, e.g. 100 or 64,32 (default: %s)", sz);
    snprintf(h->loss, sizeof h->loss, "cross-entropy|bpr-max|top1-max|bpr|top1 (default: %s)",
             name_of(losses, (int)d->loss));
    snprintf(h->optim, sizeof h->optim, "adagrad|adam|sgd (default: %s)", name_of(optims, (int)d->optim));
    if (d->final_act == RR_ACT_ELU)
        snprintf(h->final_act, sizeof h->final_act, "linear|elu:P|tanh|relu (default: elu:%g)",
                 d->final_act_param);
    else
        snprintf(h->final_act, sizeof h->final_act, "linear|elu:P|tanh|relu (default: %s)",
                 name_of(acts, (int)d->final_act));
    snprintf(h->mdtype, sizeof h->mdtype,
             "adagrad: momentum (velocity) storage, bf16 (half the memory) or fp32 (GRU4Rec's exact state) "
             "(default: %s)",
             name_of(mdtypes, (int)d->momentum_dtype));
    snprintf(h->cell_act, sizeof h->cell_act, "plain rnn cell activation: tanh|relu (default: %s)",
             d->rnn_relu ? "relu" : "tanh");
    if (d->checkpoint_steps)
        snprintf(h->ckpt_every, sizeof h->ckpt_every,
                 "checkpoint every N steps or every Ns/Nm/Nh, and at each epoch end (default: %zu)",
                 d->checkpoint_steps);
    else
        snprintf(h->ckpt_every, sizeof h->ckpt_every,
                 "checkpoint every N steps or every Ns/Nm/Nh, and at each epoch end (default: %gs)",
                 d->checkpoint_secs);
}

static void build_opts(cli_opt *t, train_cli *c, const help_bufs *h) {
    rr_train_params *p = &c->tp;
    cli_opt o[N_OPTS] = {
        {"model", 'm', OPT_STR, &p->kind, "NAME", "model kind: gru lstm rnn pop spop markov iknn sknn vsknn", NULL, 0},
        {"output", 'o', OPT_STR, &c->out, "MODEL", "where to save the model (required)", NULL, 0},
        {"preset", 0, OPT_STR, &c->preset, "NAME", "GRU4Rec preset applied before the explicit options: rsc15 yoochoose rees46 coveo retailrocket diginetica", NULL, 0},
        {"valid", 0, OPT_STR, &c->valid, "FILE", "validation events (RNN: per-epoch evaluation, early stopping)", NULL, 0},
        /* reader */
        {"sep", 0, OPT_CHAR, &c->ro.sep, "C", "field separator (default: by extension)", NULL, 0},
        {"session-col", 0, OPT_STR, &c->ro.session_col, "NAME", "session column (default: recognised)", NULL, 0},
        {"item-col", 0, OPT_STR, &c->ro.item_col, "NAME", "item column (default: recognised)", NULL, 0},
        {"time-col", 0, OPT_STR, &c->ro.time_col, "NAME", "time column (default: recognised)", NULL, 0},
        {"max-bad-rows", 0, OPT_SIZE, &c->ro.max_bad_rows, "N", "malformed rows to skip before failing", NULL, 0},
        /* RNN architecture */
        {"layers", 0, OPT_CALLBACK, p, "N[,N..]", h->layers, cb_layers, 1},
        {"embedding", 0, OPT_LONG, &p->embedding, "K", "-1 constrained (tied), 0 one-hot input, K separate embedding", NULL, 0},
        {"constrained-embedding", 0, OPT_FLAG, &c->constrained, NULL, "same as --embedding -1", NULL, 0},
        {"final-act", 0, OPT_CALLBACK, p, "ACT", h->final_act, cb_final_act, 1},
        {"cell-act", 0, OPT_CALLBACK, p, "ACT", h->cell_act, cb_cell_act, 1},
        /* loss and sampling */
        {"loss", 0, OPT_CALLBACK, p, "LOSS", h->loss, cb_loss, 1},
        {"logq", 0, OPT_DOUBLE, &p->logq, "W", "cross-entropy logQ correction weight (0: off)", NULL, 0},
        {"bpreg", 0, OPT_DOUBLE, &p->bpreg, "X", "bpr-max score regularisation", NULL, 0},
        {"elu-param", 0, OPT_DOUBLE, &p->elu_param, "X", "bpr-max: ELU on scores when > 0", NULL, 0},
        {"batch-size", 0, OPT_SIZE, &p->batch_size, "N", "sessions in parallel per minibatch", NULL, 0},
        {"n-sample", 0, OPT_SIZE, &p->n_sample, "N", "shared negative samples per minibatch", NULL, 0},
        {"sample-alpha", 0, OPT_DOUBLE, &p->sample_alpha, "X", "negatives drawn ~ popularity^alpha", NULL, 0},
        {"sample-cache", 0, OPT_SIZE, &p->sample_cache, "N", "negatives precomputed per refill", NULL, 0},
        /* optimiser */
        {"optim", 0, OPT_CALLBACK, p, "NAME", h->optim, cb_optim, 1},
        {"lr", 0, OPT_DOUBLE, &p->lr, "X", "learning rate", NULL, 0},
        {"momentum", 0, OPT_DOUBLE, &p->momentum, "X", "momentum", NULL, 0},
        {"momentum-dtype", 0, OPT_CALLBACK, p, "T", h->mdtype, cb_momentum_dtype, 1},
        {"adam-beta1", 0, OPT_DOUBLE, &p->adam_beta1, "X", "adam: first moment decay", NULL, 0},
        {"adam-beta2", 0, OPT_DOUBLE, &p->adam_beta2, "X", "adam: second moment decay", NULL, 0},
        {"adam-eps", 0, OPT_DOUBLE, &p->adam_eps, "X", "adam: epsilon", NULL, 0},
        {"clip-norm", 0, OPT_DOUBLE, &p->clip_norm, "X", "gradient norm clipping (0: off)", NULL, 0},
        {"dropout-embed", 0, OPT_DOUBLE, &p->dropout_embed, "P", "dropout on the input embedding", NULL, 0},
        {"dropout-hidden", 0, OPT_DOUBLE, &p->dropout_hidden, "P", "dropout on hidden states", NULL, 0},
        {"epochs", 0, OPT_SIZE, &p->epochs, "N", "training epochs", NULL, 0},
        {"patience", 0, OPT_SIZE, &p->patience, "N", "epochs without improvement before stopping (0: off)", NULL, 0},
        /* baselines */
        {"k", 0, OPT_SIZE, &p->knn_k, "N", "iknn: neighbours per item; sknn/vsknn: neighbour sessions", NULL, 0},
        {"sample-size", 0, OPT_SIZE, &p->sknn_sample, "N", "sknn/vsknn: most recent candidate sessions", NULL, 0},
        {"lambda", 0, OPT_DOUBLE, &p->iknn_lambda, "X", "iknn: support regulariser", NULL, 0},
        {"alpha", 0, OPT_DOUBLE, &p->iknn_alpha, "X", "iknn: support exponent (0.5 cosine, 1 confidence)", NULL, 0},
        /* run */
        {"seed", 0, OPT_U64, &p->seed, "N", "random seed", NULL, 0},
        {"threads", 'j', OPT_LONG, &c->threads, "N", "worker threads (0: all cores)", NULL, 0},
        {"verbose", 'v', OPT_LONG, &c->verbose, "N", "0 quiet, 1 progress, 2 debug", NULL, 0},
        {"quiet", 'q', OPT_FLAG, &c->quiet, NULL, "errors only, no summary line", NULL, 0},
        {"log-json", 0, OPT_STR, &p->log_json, "FILE", "one JSON object per epoch to FILE", NULL, 0},
        {"dist-exchange", 0, OPT_CALLBACK, p, "HOW", "MPI: touched rows combined by allgather or at owner ranks: auto|allgather|owners (default: auto, allgather at 2 ranks, owners from 3; same model either way)", cb_dist_exchange, 1},
        /* checkpoints (docs/checkpoints.md) */
        {"checkpoint-dir", 0, OPT_STR, &p->checkpoint_dir, "DIR", "RNN: write crash-safe checkpoints to DIR (must hold none yet; the 2 newest are kept)", NULL, 0},
        {"checkpoint-every", 0, OPT_CALLBACK, p, "N|Ns", h->ckpt_every, cb_ckpt_every, 1},
        {"resume", 0, OPT_STR, &c->resume, "DIR", "RNN: continue from DIR's newest valid checkpoint (same data and settings; more --epochs allowed) and keep checkpointing there", NULL, 0},
        {"print-params", 0, OPT_FLAG, &c->print_params, NULL, "print the effective parameters (preset and options applied) and exit", NULL, 0},
        {NULL, 0, OPT_FLAG, NULL, NULL, NULL, NULL, 0},
    };
    memcpy(t, o, sizeof o);
}

/* The effective parameters, one `name value` per line, named as the options. */
static void print_params(const rr_train_params *p) {
    printf("model %s\n", p->kind ? p->kind : "-");
    printf("layers ");
    for (size_t i = 0; i < p->n_layers; i++) printf("%s%zu", i ? "," : "", p->layers[i]);
    printf("\nembedding %ld\n", p->embedding);
    if (p->final_act == RR_ACT_ELU) printf("final-act elu:%g\n", p->final_act_param);
    else printf("final-act %s\n", name_of(acts, (int)p->final_act));
    printf("cell-act %s\n", p->rnn_relu ? "relu" : "tanh");
    printf("loss %s\nlogq %g\nbpreg %g\nelu-param %g\n", name_of(losses, (int)p->loss), p->logq,
           p->bpreg, p->elu_param);
    printf("batch-size %zu\nn-sample %zu\nsample-alpha %g\nsample-cache %zu\n", p->batch_size,
           p->n_sample, p->sample_alpha, p->sample_cache);
    printf("optim %s\nlr %g\nmomentum %g\nmomentum-dtype %s\nadam-beta1 %g\nadam-beta2 %g\nadam-eps %g\n",
           name_of(optims, (int)p->optim), p->lr, p->momentum, name_of(mdtypes, (int)p->momentum_dtype),
           p->adam_beta1, p->adam_beta2, p->adam_eps);
    printf("clip-norm %g\ndropout-embed %g\ndropout-hidden %g\nepochs %zu\npatience %zu\n",
           p->clip_norm, p->dropout_embed, p->dropout_hidden, p->epochs, p->patience);
    printf("k %zu\nsample-size %zu\nlambda %g\nalpha %g\n", p->knn_k, p->sknn_sample, p->iknn_lambda,
           p->iknn_alpha);
    printf("seed %llu\nthreads %d\nverbose %d\n", (unsigned long long)p->seed, p->threads, p->verbose);
    printf("dist-exchange %s\n", p->dist_owners < 0 ? "auto" : p->dist_owners ? "owners" : "allgather");
    printf("checkpoint-dir %s\n", p->checkpoint_dir ? p->checkpoint_dir : "-");
    if (p->checkpoint_steps) printf("checkpoint-every %zu\n", p->checkpoint_steps);
    else printf("checkpoint-every %gs\n", p->checkpoint_secs);
    printf("resume %s\n", p->resume ? "yes" : "no");
}

static void kinds_list(char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < rr_model_kind_count() && o + 1 < cap; i++) {
        int w = snprintf(buf + o, cap - o, "%s%s", i ? " " : "", rr_model_kind_name(i));
        if (w < 0) break;
        o += (size_t)w;
    }
}

static void cli_defaults(train_cli *c) {
    memset(c, 0, sizeof *c);
    rr_train_params_default(&c->tp);
    c->tp.kind = NULL;
    rr_read_opts_default(&c->ro);
    c->threads = c->tp.threads;
    c->verbose = c->tp.verbose;
}

static const char *usage_line = "rnnrec train --model NAME [options] TRAIN -o MODEL";
static const char *description =
    "Trains a model on the events in TRAIN (TSV/CSV, plain or gzip, '-' for stdin)\n"
    "and saves it to MODEL.  RNN kinds: gru, lstm, rnn; baselines: pop, spop,\n"
    "markov, iknn, sknn, vsknn.  A --preset sets GRU4Rec's published values;\n"
    "explicit options override it wherever they appear.";

int cmd_train(int argc, char **argv) {
    const char *cmd = "train";
    const char *pos[1];
    size_t n_pos = 0;
    help_bufs help;
    cli_opt opts[N_OPTS];

    /* pass 1: defaults, to find the preset and catch usage errors */
    train_cli c;
    cli_defaults(&c);
    fill_help(&help, &c.tp);
    build_opts(opts, &c, &help);
    int rc = cli_parse(argc, argv, opts, usage_line, description, pos, 1, &n_pos);
    if (rc == -1) return RR_EXIT_OK;
    if (rc) return rc;
    const char *preset = c.preset;

    /* pass 2: defaults + preset, then the explicit options again */
    cli_defaults(&c);
    rr_error err;
    memset(&err, 0, sizeof err);
    if (preset && rr_train_params_preset(&c.tp, preset, &err) != RR_OK) {
        cli_error(cmd, "%s", err.msg);
        return RR_EXIT_USAGE;
    }
    build_opts(opts, &c, &help);
    rc = cli_parse(argc, argv, opts, usage_line, description, pos, 1, &n_pos);
    if (rc) return rc == -1 ? RR_EXIT_OK : rc;

    if (!c.tp.kind) {
        cli_error(cmd, "--model NAME is required (see --help)");
        return RR_EXIT_USAGE;
    }
    if (!c.print_params && n_pos != 1) {
        cli_error(cmd, "expected one TRAIN file (see --help)");
        return RR_EXIT_USAGE;
    }
    if (!c.print_params && !c.out) {
        cli_error(cmd, "-o MODEL is required (see --help)");
        return RR_EXIT_USAGE;
    }
    if (c.threads < 0 || c.threads > 4096) {
        cli_error(cmd, "--threads must be in 0..4096");
        return RR_EXIT_USAGE;
    }
    if (c.verbose < 0 || c.verbose > 2) {
        cli_error(cmd, "--verbose must be 0, 1 or 2");
        return RR_EXIT_USAGE;
    }
    if (c.resume) {
        if (c.tp.checkpoint_dir && strcmp(c.tp.checkpoint_dir, c.resume)) {
            cli_error(cmd, "--resume %s and --checkpoint-dir %s name different folders", c.resume,
                      c.tp.checkpoint_dir);
            return RR_EXIT_USAGE;
        }
        c.tp.checkpoint_dir = c.resume;
        c.tp.resume = 1;
    }
    if (c.tp.checkpoint_dir && strcmp(c.tp.kind, "gru") && strcmp(c.tp.kind, "lstm") && strcmp(c.tp.kind, "rnn")) {
        cli_error(cmd, "checkpoints are for the RNN kinds (gru, lstm, rnn), not '%s'", c.tp.kind);
        return RR_EXIT_USAGE;
    }
    c.tp.checkpoint_failures = &c.ckpt_failures;
    if (c.constrained) c.tp.embedding = -1;
    c.tp.threads = (int)c.threads;
    c.tp.verbose = c.quiet ? 0 : (int)c.verbose;
    if (!rr_model_fit_find(c.tp.kind)) {
        char known[512];
        kinds_list(known, sizeof known);
        cli_error(cmd, "unknown model kind '%s' (known: %s)", c.tp.kind, known);
        return RR_EXIT_USAGE;
    }
    const char *bad = rr_train_params_check(&c.tp);
    if (bad) {
        cli_error(cmd, "invalid parameter: %s", bad);
        return RR_EXIT_USAGE;
    }
    if (c.print_params) {
        print_params(&c.tp);
        return RR_EXIT_OK;
    }
    cli_log_init(c.quiet || rr_dist_rank(rr_dist_world()) != 0 ? 0 : c.tp.verbose + 1); /* MPI: rank 0 logs */
    /* a file size limit (RLIMIT_FSIZE) makes writes fail with EFBIG, which
     * the checkpoint and model writers report, instead of killing us */
    signal(SIGXFSZ, SIG_IGN);

    double t0 = rr_now();
    rr_dataset *train = NULL, *valid = NULL;
    rr_model *m = NULL;
    int ret = RR_EXIT_OK;
    if (rr_dataset_read(pos[0], &c.ro, &train, &err) != RR_OK) {
        ret = cli_fail(cmd, &err);
        goto done;
    }
    /* training never reads the original session ids: 7 MB on diginetica
     * (docs/rnn.md, peak memory) */
    rr_dataset_drop_session_ids(train);
    if (c.valid && rr_dataset_read(c.valid, &c.ro, &valid, &err) != RR_OK) {
        ret = cli_fail(cmd, &err);
        goto done;
    }
    rr_dataset_drop_session_ids(valid);
    double t1 = rr_now();
    rr_status ts = rr_model_train(&m, train, valid, &c.tp, &err);
    /* MPI: the outcome is the same on every rank; rank 0 saves and reports */
    if (rr_dist_rank(rr_dist_world()) != 0) goto done;
    if (ts == RR_ERR_NUMERIC && m) {
        /* Training diverged: keep the last good model, but fail the run. */
        ret = cli_fail(cmd, &err);
        rr_error serr;
        if (rr_model_save(m, c.out, &serr) == RR_OK)
            fprintf(stderr, "rnnrec train: kept the last good model in %s\n", c.out);
        else
            cli_fail(cmd, &serr);
        goto done;
    }
    if (ts != RR_OK) {
        ret = cli_fail(cmd, &err);
        goto done;
    }
    double t2 = rr_now();
    if (rr_model_save(m, c.out, &err) != RR_OK) {
        ret = cli_fail(cmd, &err);
        goto done;
    }
    if (!c.quiet)
        fprintf(stderr,
                "rnnrec train: %s: %zu items, %zu sessions, %zu events; read %.2f s, train %.2f s -> %s\n",
                rr_model_kind(m), rr_model_n_items(m), rr_dataset_n_sessions(train),
                rr_dataset_n_events(train), t1 - t0, t2 - t1, c.out);
    if (c.ckpt_failures) {
        /* the model is fine, but a crash would have lost more than asked */
        cli_error(cmd, "%zu checkpoint write(s) failed (see above); the model was saved", c.ckpt_failures);
        ret = RR_EXIT_RUNTIME;
    }
done:
    rr_model_free(m);
    rr_dataset_free(train);
    rr_dataset_free(valid);
    return ret;
}
