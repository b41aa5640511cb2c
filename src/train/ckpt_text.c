/* ckpt_text.c - the "name=value\n" text of checkpoint sections
 * (ckpt_text.h): the buffer that writes it, the parser that reads it back,
 * and the one such text that identifies a run, its fingerprint
 * (rr_ckpt_fingerprint, compared on resume). */
#include "train/ckpt_text.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/checkpoint.h"
#include "train/trainer.h"

/* ---------------------------------------------------------------- text */

void rr_cktx_add(rr_cktx *t, const char *fmt, ...) {
    if (t->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            t->oom = true;
            return;
        }
        if (t->s && t->len + (size_t)w < t->cap) {
            t->len += (size_t)w;
            return;
        }
        size_t ncap = t->cap ? t->cap * 2 : 1024;
        while (ncap < t->len + (size_t)w + 1) ncap *= 2;
        char *n = realloc(t->s, ncap);
        if (!n) {
            t->oom = true;
            return;
        }
        t->s = n;
        t->cap = ncap;
    }
}

void rr_ckkv_free(rr_ckkv *k) {
    free(k->buf);
    free(k->key);
    free(k->val);
    memset(k, 0, sizeof *k);
}

rr_status rr_ckkv_parse(rr_ckkv *k, const char *src, size_t len, const char *what, rr_error *err) {
    memset(k, 0, sizeof *k);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '\n') lines++;
        else if (c < 0x20 || c > 0x7e) return rr_err(err, RR_ERR_FORMAT, "%s: byte 0x%02x at %zu", what, c, i);
    }
    if (len && src[len - 1] != '\n') return rr_err(err, RR_ERR_FORMAT, "%s: last line not terminated", what);
    k->buf = malloc(len + 1);
    k->key = rr_malloc_n(lines ? lines : 1, sizeof *k->key);
    k->val = rr_malloc_n(lines ? lines : 1, sizeof *k->val);
    if (!k->buf || !k->key || !k->val) {
        rr_ckkv_free(k);
        return rr_err(err, RR_ERR_NOMEM, "%s: out of memory", what);
    }
    memcpy(k->buf, src, len);
    k->buf[len] = 0;
    char *p = k->buf;
    for (size_t i = 0; i < lines; i++) {
        char *nl = strchr(p, '\n');
        *nl = 0;
        char *eq = strchr(p, '=');
        if (!eq || eq == p) {
            rr_status s = rr_err(err, RR_ERR_FORMAT, "%s: line %zu is not name=value", what, i + 1);
            rr_ckkv_free(k);
            return s;
        }
        *eq = 0;
        for (size_t j = 0; j < k->n; j++)
            if (!strcmp(k->key[j], p)) {
                rr_status s = rr_err(err, RR_ERR_FORMAT, "%s: '%s' appears twice", what, p);
                rr_ckkv_free(k);
                return s;
            }
        k->key[k->n] = p;
        k->val[k->n++] = eq + 1;
        p = nl + 1;
    }
    return RR_OK;
}

const char *rr_ckkv_get(const rr_ckkv *k, const char *key) {
    for (size_t i = 0; i < k->n; i++)
        if (!strcmp(k->key[i], key)) return k->val[i];
    return NULL;
}

/* x with the fewest digits that read back as exactly x. */
static const char *dbl(char buf[32], double x) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    return buf;
}

void rr_cktx_dbl(rr_cktx *t, const char *key, double x) {
    char b[32];
    rr_cktx_add(t, "%s=%s\n", key, dbl(b, x));
}

/* --------------------------------------------------------- fingerprint */

static const char *optim_str(rr_optim o) {
    switch (o) {
    case RR_OPT_ADAGRAD: return "adagrad";
    case RR_OPT_ADAM: return "adam";
    case RR_OPT_SGD: return "sgd";
    }
    return "?";
}

static const char *act_str(rr_act a) {
    switch (a) {
    case RR_ACT_LINEAR: return "linear";
    case RR_ACT_ELU: return "elu";
    case RR_ACT_TANH: return "tanh";
    case RR_ACT_RELU: return "relu";
    }
    return "?";
}

/* Counts and CRC-32C of a dataset as the trainer sees it. */
static void fp_data(rr_cktx *t, const char *pre, const rr_dataset *d) {
    const rr_sessions *s = &d->s;
    uint32_t cv = 0;
    for (size_t i = 0; i < d->items.n; i++) {
        size_t len;
        const char *id = rr_vocab_id(&d->items, (int32_t)i, &len);
        unsigned char l = (unsigned char)len; /* ids are at most 255 bytes */
        cv = rr_crc32c(cv, &l, 1);
        cv = rr_crc32c(cv, id, len);
    }
    rr_cktx_add(t, "%s.items=%zu\n%s.sessions=%zu\n%s.events=%zu\n", pre, d->items.n, pre, s->n_sessions, pre,
                s->n_events);
    rr_cktx_add(t, "%s.crc.vocab=%08" PRIx32 "\n", pre, cv);
    rr_cktx_add(t, "%s.crc.offsets=%08" PRIx32 "\n", pre,
                rr_crc32c(0, s->offsets, (s->n_sessions + 1) * sizeof *s->offsets));
    rr_cktx_add(t, "%s.crc.items=%08" PRIx32 "\n", pre, rr_crc32c(0, s->items, s->n_events * sizeof *s->items));
    rr_cktx_add(t, "%s.crc.times=%08" PRIx32 "\n", pre, rr_crc32c(0, s->times, s->n_events * sizeof *s->times));
}

rr_status rr_ckpt_fingerprint(char **out, const rr_train_params *p, const rr_dataset *train,
                              const rr_dataset *valid, size_t sample_cache, int threads, rr_error *err) {
    *out = NULL;
    rr_cktx t = {0};
    rr_cktx_add(&t, "model=%s\nlayers=", p->kind);
    for (size_t l = 0; l < p->n_layers; l++) rr_cktx_add(&t, "%s%zu", l ? "," : "", p->layers[l]);
    rr_cktx_add(&t, "\nembedding=%ld\ncell-act=%s\n", p->embedding, p->rnn_relu ? "relu" : "tanh");
    char b[32];
    if (p->final_act == RR_ACT_ELU) rr_cktx_add(&t, "final-act=elu:%s\n", dbl(b, p->final_act_param));
    else rr_cktx_add(&t, "final-act=%s\n", act_str(p->final_act));
    rr_cktx_add(&t, "loss=%s\n", rr_train_loss_name(p->loss));
    rr_cktx_dbl(&t, "logq", p->logq);
    rr_cktx_dbl(&t, "bpreg", p->bpreg);
    rr_cktx_dbl(&t, "elu-param", p->elu_param);
    rr_cktx_add(&t, "batch-size=%zu\nn-sample=%zu\n", p->batch_size, p->n_sample);
    rr_cktx_dbl(&t, "sample-alpha", p->sample_alpha);
    rr_cktx_add(&t, "sample-cache=%zu\noptim=%s\n", sample_cache, optim_str(p->optim));
    rr_cktx_dbl(&t, "lr", p->lr);
    rr_cktx_dbl(&t, "momentum", p->momentum);
    /* the velocity's storage changes the trajectory; it exists only for
     * Adagrad with momentum (a fingerprint without the line: fp32, as
     * every run was before the option) */
    if (p->optim == RR_OPT_ADAGRAD && p->momentum > 0)
        rr_cktx_add(&t, "momentum-dtype=%s\n", p->momentum_dtype == RR_MOMENTUM_BF16 ? "bf16" : "fp32");
    if (p->optim == RR_OPT_ADAM) {
        rr_cktx_dbl(&t, "adam-beta1", p->adam_beta1);
        rr_cktx_dbl(&t, "adam-beta2", p->adam_beta2);
        rr_cktx_dbl(&t, "adam-eps", p->adam_eps);
    }
    rr_cktx_dbl(&t, "clip-norm", p->clip_norm);
    rr_cktx_dbl(&t, "dropout-embed", p->dropout_embed);
    rr_cktx_dbl(&t, "dropout-hidden", p->dropout_hidden);
    rr_cktx_add(&t, "seed=%" PRIu64 "\n", p->seed);
    rr_cktx_add(&t, "threads=%d\n", threads);
    fp_data(&t, "data", train);
    if (valid) fp_data(&t, "valid", valid);
    else rr_cktx_add(&t, "valid=none\n");
    if (t.oom) {
        free(t.s);
        return rr_err(err, RR_ERR_NOMEM, "out of memory for the checkpoint fingerprint");
    }
    *out = t.s;
    return RR_OK;
}

rr_status rr_ckpt_fingerprint_compare(const char *saved, const char *now, bool *threads_differ, rr_error *err) {
    *threads_differ = false;
    rr_ckkv a, b;
    rr_status s = rr_ckkv_parse(&a, saved, strlen(saved), "checkpoint fingerprint", err);
    if (s) return s;
    s = rr_ckkv_parse(&b, now, strlen(now), "fingerprint", err);
    if (s) {
        rr_ckkv_free(&a);
        return s;
    }
    rr_cktx params = {0}, data = {0};
    size_t n_data = 0;
    /* every name of either side, each once: saved's, then the ones only now has */
    for (int side = 0; side < 2; side++) {
        const rr_ckkv *k = side ? &b : &a;
        for (size_t i = 0; i < k->n; i++) {
            const char *key = k->key[i];
            if (side && rr_ckkv_get(&a, key)) continue;
            const char *va = rr_ckkv_get(&a, key), *vb = rr_ckkv_get(&b, key);
            if (!strcmp(key, "momentum-dtype")) {
                /* written only when set: a missing line is fp32 */
                if (!va) va = "fp32";
                if (!vb) vb = "fp32";
            }
            if (va && vb && !strcmp(va, vb)) continue;
            if (!strcmp(key, "threads")) {
                *threads_differ = true;
                continue;
            }
            bool is_data = !strncmp(key, "data.", 5) || !strncmp(key, "valid", 5);
            rr_cktx *t = is_data ? &data : &params;
            if (is_data && ++n_data > 3) {
                if (n_data == 4) rr_cktx_add(t, ", ...");
                continue;
            }
            rr_cktx_add(t, "%s%s%s %s (now %s)", t->len ? ", " : "", is_data ? "" : "--", key, va ? va : "unset",
                        vb ? vb : "unset");
        }
    }
    rr_ckkv_free(&a);
    rr_ckkv_free(&b);
    if (params.oom || data.oom) {
        free(params.s);
        free(data.s);
        return rr_err(err, RR_ERR_NOMEM, "out of memory comparing fingerprints");
    }
    if (params.len || data.len) {
        s = rr_err(err, RR_ERR_ARG, "the checkpoint belongs to another run:%s%s%s%s%s",
                   params.len ? " hyperparameters differ: " : "", params.len ? params.s : "",
                   params.len && data.len ? ";" : "", data.len ? " the training or validation data differ: " : "",
                   data.len ? data.s : "");
    }
    free(params.s);
    free(data.s);
    return s;
}
