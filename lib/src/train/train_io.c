/* train_io.c — writing a trained model (the start model's file with the trained tensors
 * swapped in and the config extended) and the optimizer state for resuming. */
#include "core/internal.h"
#include "core/sha256.h"
#include "io/st.h"
#include "train/train_impl.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The trained values of a file tensor, or NULL when it does not train. */
static const float *trained(const uf_trainer *t, const uf_st_tensor *st)
{
    const char *pre = t->net.m->w.prefix;
    size_t pl = strlen(pre);
    if (strncmp(st->name, pre, pl) != 0)
        return NULL;
    int i = tr_layout_find(&t->L, st->name + pl);
    return i < 0 ? NULL : t->p + t->L.t[i].off;
}

static char *params_sha256(const uf_trainer *t)
{
    const uf_st *st = t->net.m->w.st;
    uf_sha256 ck;
    uf_sha256_init(&ck);
    for (size_t i = 0; i < uf_st_count(st); i++) {
        const uf_st_tensor *x = uf_st_at(st, i);
        const float *v = trained(t, x);
        uf_sha256_update(&ck, v ? (const void *)v : x->data, v ? sizeof(float) * x->numel : uf_st_nbytes(x));
    }
    uint8_t d[32];
    uf_sha256_final(&ck, d);
    char *hex = malloc(65);
    for (int i = 0; hex && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return hex;
}

uf_status uf_trainer_save(const uf_trainer *t, const char *path, const char *extra_config,
                          uf_error *err)
{
    if (!t || !path)
        return uf_err(err, UF_ERR_ARG, "uf_trainer_save: NULL argument");
    for (size_t i = 0; i < t->L.np; i++)
        if (!isfinite(t->p[i]))
            return uf_err(err, UF_ERR_ARG, "refusing to save: parameter %zu is not finite", i);
    json_error_t je;
    json_t *cfg = json_loads(t->net.m->config_json, 0, &je);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return uf_err(err, UF_ERR_CONFIG, "the start model's config is not a JSON object");
    }
    if (extra_config) {
        json_t *x = json_loads(extra_config, 0, &je);
        if (!json_is_object(x)) {
            json_decref(x);
            json_decref(cfg);
            return uf_err(err, UF_ERR_ARG, "extra config is not a JSON object: %s", je.text);
        }
        json_object_update(cfg, x);
        json_decref(x);
    }
    char *hash = params_sha256(t);
    json_object_set_new(cfg, "params_sha256", json_string(hash ? hash : ""));
    free(hash);
    char *txt = json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(cfg);
    const uf_st *st = t->net.m->w.st;
    const void **data = calloc(uf_st_count(st) + 1, sizeof *data);
    uf_status s = (!txt || !data) ? uf_err(err, UF_ERR_NOMEM, "out of memory") : UF_OK;
    for (size_t i = 0; !s && i < uf_st_count(st); i++)
        data[i] = trained(t, uf_st_at(st, i)); /* F32 of the same size: init_params checked */
    /* streamed from the start model's mapping (mcait: no second 1.6 GB copy), temp + rename */
    if (!s)
        s = uf_st_rewrite(st, txt, data, NULL, path, err);
    free(data);
    free(txt);
    return s;
}

uf_status uf_trainer_save_state(const uf_trainer *t, const char *path, uf_error *err)
{
    if (!t || !path)
        return uf_err(err, UF_ERR_ARG, "uf_trainer_save_state: NULL argument");
    char *hash = params_sha256(t);
    char rng[32], esum[32];
    uint64_t bits;
    snprintf(rng, sizeof rng, "%016llx", (unsigned long long)t->rng);
    memcpy(&bits, &t->ep_sum, sizeof bits); /* the exact double, for a bit-identical mean loss */
    snprintf(esum, sizeof esum, "%016llx", (unsigned long long)bits);
    json_t *j = json_pack("{s:i,s:I,s:s,s:s,s:i,s:i,s:f,s:f,s:i,s:s}", "epoch", t->epoch, "step",
                          (json_int_t)t->step, "rng", rng, "params_sha256", hash ? hash : "",
                          "loss", (int)t->o.loss, "batch_size", t->o.batch_size, "lr", t->o.lr,
                          "weight_decay", t->o.weight_decay, "epoch_step", t->ep_step,
                          "epoch_loss_sum", esum);
    free(hash);
    char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    uf_st_writer *w = uf_st_writer_new();
    uf_status s = (!txt || !w) ? uf_err(err, UF_ERR_NOMEM, "out of memory") : UF_OK;
    if (!s)
        s = uf_st_writer_meta(w, "uflow_train_state", txt, err);
    char name[160];
    for (int i = 0; !s && i < t->L.n; i++) {
        const tr_tensor *x = &t->L.t[i];
        snprintf(name, sizeof name, "adam_m.%s", x->name);
        s = uf_st_writer_add(w, name, UF_DT_F32, x->ndim, x->shape, t->m1 + x->off, err);
        snprintf(name, sizeof name, "adam_v.%s", x->name);
        if (!s)
            s = uf_st_writer_add(w, name, UF_DT_F32, x->ndim, x->shape, t->m2 + x->off, err);
    }
    if (!s)
        s = uf_st_writer_save(w, path, err);
    uf_st_writer_free(w);
    free(txt);
    return s;
}

/* A 16-digit hex u64 of the state file; 0 if it is not one. */
static int parse_hex64(const char *s, uint64_t *out)
{
    if (!s || strlen(s) != 16 || strspn(s, "0123456789abcdefABCDEF") != 16)
        return 0;
    *out = strtoull(s, NULL, 16);
    return 1;
}

/* Options that change what a step computes: resuming with other values would not continue
 * the run (and bit-identical resumes are the point of the state file). */
static uf_status check_state_opts(const uf_trainer *t, const json_t *j, const char *path,
                                  uf_error *err)
{
    json_t *lo = json_object_get(j, "loss"), *bs = json_object_get(j, "batch_size"),
           *lr = json_object_get(j, "lr"), *wd = json_object_get(j, "weight_decay");
    if (!json_is_integer(lo) || !json_is_integer(bs) || !json_is_number(lr) || !json_is_number(wd))
        return uf_err(err, UF_ERR_FORMAT, "'%s' is not a uflow training state file", path);
    double slr = json_number_value(lr), swd = json_number_value(wd);
    if (json_integer_value(lo) != (json_int_t)t->o.loss ||
        json_integer_value(bs) != (json_int_t)t->o.batch_size ||
        fabs(slr - t->o.lr) > 1e-12 * fabs(slr) || fabs(swd - t->o.weight_decay) > 1e-12 * fabs(swd))
        return uf_err(err, UF_ERR_ARG,
                      "'%s' was written by a run with loss %s, batch size %d, lr %g, weight decay %g; "
                      "resume with the same options", path,
                      json_integer_value(lo) == UF_LOSS_ANOMALIB ? "anomalib" : "paper",
                      (int)json_integer_value(bs), slr, swd);
    return UF_OK;
}

uf_status uf_trainer_load_state(uf_trainer *t, const char *path, uf_error *err)
{
    if (!t || !path)
        return uf_err(err, UF_ERR_ARG, "uf_trainer_load_state: NULL argument");
    uf_st *st;
    uf_status s = uf_st_open(path, &st, err);
    if (s)
        return s;
    const char *txt = uf_st_meta(st, "uflow_train_state");
    json_error_t je;
    json_t *j = txt ? json_loads(txt, 0, &je) : NULL;
    const char *hash = json_string_value(json_object_get(j, "params_sha256"));
    json_t *ep = json_object_get(j, "epoch"), *sp = json_object_get(j, "step");
    json_t *es = json_object_get(j, "epoch_step"), *esum = json_object_get(j, "epoch_loss_sum");
    uint64_t rng = 0, sumbits = 0;
    /* epoch_step/epoch_loss_sum are absent from states written before they existed */
    if (!json_is_integer(ep) || !json_is_integer(sp) || !hash ||
        !parse_hex64(json_string_value(json_object_get(j, "rng")), &rng) ||
        json_integer_value(ep) < 0 || json_integer_value(ep) > INT_MAX ||
        json_integer_value(sp) < 0 || json_integer_value(sp) > LONG_MAX ||
        (es && (!json_is_integer(es) || json_integer_value(es) < 0 ||
                json_integer_value(es) > INT_MAX)) ||
        (esum && !parse_hex64(json_string_value(esum), &sumbits))) {
        s = uf_err(err, UF_ERR_FORMAT, "'%s' is not a uflow training state file", path);
        goto done;
    }
    char *mine = params_sha256(t);
    int same = mine && !strcmp(mine, hash);
    free(mine);
    if (!same) {
        s = uf_err(err, UF_ERR_ARG,
                   "'%s' belongs to other parameters than this model's (resume from the model "
                   "file saved with it)", path);
        goto done;
    }
    if ((s = check_state_opts(t, j, path, err)))
        goto done;
    /* Check every moment tensor before copying any, so a bad file leaves the trainer as it was. */
    char name[160];
    for (int pass = 0; pass < 2 && !s; pass++)
        for (int i = 0; !s && i < t->L.n; i++) {
            const tr_tensor *x = &t->L.t[i];
            for (int mv = 0; mv < 2 && !s; mv++) {
                snprintf(name, sizeof name, "%s.%s", mv ? "adam_v" : "adam_m", x->name);
                const uf_st_tensor *y = uf_st_find(st, name);
                if (!y || y->dtype != UF_DT_F32 || y->numel != x->n)
                    s = uf_err(err, UF_ERR_TENSOR, "'%s': tensor '%s' missing or of the wrong size",
                               path, name);
                else if (pass)
                    memcpy((mv ? t->m2 : t->m1) + x->off, y->data, sizeof(float) * x->n);
            }
        }
    if (!s) {
        t->epoch = (int)json_integer_value(ep);
        t->step = (long)json_integer_value(sp);
        t->rng = rng;
        t->ep_step = es ? (int)json_integer_value(es) : 0;
        memcpy(&t->ep_sum, &sumbits, sizeof sumbits);
        if (!isfinite(t->ep_sum))
            t->ep_sum = 0;
    }
done:
    json_decref(j);
    uf_st_close(st);
    return s;
}
