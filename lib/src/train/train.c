/* train.c — the trainer: parameters and Adam state, the feature cache, batches spread over
 * threads (one image per thread at a time, per-thread gradients summed in thread order),
 * epochs and the per-epoch LinearLR schedule. */
#include "core/internal.h"
#include "core/pool.h"
#include "models/ctx.h"
#include "train/train_impl.h"

#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uf_train_opts uf_train_opts_default(void)
{
    return (uf_train_opts){.loss = UF_LOSS_PAPER, .batch_size = 32, .lr = 1e-3, .weight_decay = 1e-5,
                           .lr_end_factor = 0.4, .lr_total_iters = 25000, .seed = 0, .threads = 1};
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uf_status check_opts(const uf_train_opts *o, uf_error *err)
{
    if (o->loss != UF_LOSS_PAPER && o->loss != UF_LOSS_ANOMALIB)
        return uf_err(err, UF_ERR_ARG, "unknown loss %d", (int)o->loss);
    if (o->batch_size < 1 || o->batch_size > 4096)
        return uf_err(err, UF_ERR_ARG, "batch size %d outside [1, 4096]", o->batch_size);
    if (!(o->lr > 0) || !isfinite(o->lr) || !(o->weight_decay >= 0) || !isfinite(o->weight_decay))
        return uf_err(err, UF_ERR_ARG, "learning rate must be > 0 and weight decay >= 0 (finite)");
    if (!(o->lr_end_factor > 0) || o->lr_end_factor > 1 || o->lr_total_iters < 1)
        return uf_err(err, UF_ERR_ARG, "LinearLR end factor must be in (0, 1], total iters >= 1");
    if (o->threads < 1 || o->threads > TR_MAX_THREADS)
        return uf_err(err, UF_ERR_ARG, "threads %d outside [1, %d]", o->threads, TR_MAX_THREADS);
    return UF_OK;
}

static uf_status init_params(uf_trainer *t, uf_error *err)
{
    const uf_model *m = t->net.m;
    char name[160];
    for (int i = 0; i < t->L.n; i++) {
        const tr_tensor *tt = &t->L.t[i];
        snprintf(name, sizeof name, "%s%s", m->w.prefix, tt->name);
        const uf_st_tensor *st = uf_st_find(m->w.st, name);
        if (!st || st->numel != tt->n)
            return uf_err(err, UF_ERR_TENSOR, "tensor '%s' missing or of the wrong size", name);
        if (st->dtype != UF_DT_F32)
            return uf_err(err, UF_ERR_UNSUPPORTED,
                          "tensor '%s' is %s: training starts from F32 models only", name,
                          uf_dtype_name(st->dtype));
        memcpy(t->p + tt->off, st->data, sizeof(float) * tt->n);
        /* a NaN start value would only show up later as "training diverged" */
        for (size_t q = 0; q < tt->n; q++)
            if (!isfinite(t->p[tt->off + q]))
                return uf_err(err, UF_ERR_TENSOR, "tensor '%s' has a non-finite value at element %zu",
                              name, q);
    }
    return UF_OK;
}

uf_status uf_trainer_new(const uf_model *m, const uf_train_opts *opts, uf_trainer **out,
                         uf_error *err)
{
    if (!m || !out)
        return uf_err(err, UF_ERR_ARG, "uf_trainer_new: NULL argument");
    *out = NULL;
    uf_train_opts o = opts ? *opts : uf_train_opts_default();
    uf_status s = check_opts(&o, err);
    if (s)
        return s;
    if (!o.cache_mem_limit)
        o.cache_mem_limit = (size_t)2 << 30;
    uf_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    t->o = o;
    t->rng = o.seed * 0x2545F4914F6CDD1Dull + 0x9E3779B97F4A7C15ull;
    t->cache_fd = -1;
    if ((s = tr_layout_build(m, &t->net, &t->L, err)))
        goto fail;
    size_t np = t->L.np;
    t->p = uf_aalloc(sizeof(float) * np);
    t->g = uf_aalloc(sizeof(float) * np);
    t->m1 = uf_aalloc(sizeof(float) * np);
    t->m2 = uf_aalloc(sizeof(float) * np);
    t->nt = o.threads;
    t->th = calloc((size_t)t->nt, sizeof *t->th);
    if (!t->p || !t->g || !t->m1 || !t->m2 || !t->th) {
        s = uf_err(err, UF_ERR_NOMEM, "out of memory for %zu parameters", np);
        goto fail;
    }
    memset(t->g, 0, sizeof(float) * np);
    memset(t->m1, 0, sizeof(float) * np);
    memset(t->m2, 0, sizeof(float) * np);
    for (int i = 0; i < t->nt; i++) {
        tr_thread *th = &t->th[i];
        th->g = uf_aalloc(sizeof(float) * np);
        th->act = uf_aalloc(sizeof(float) * t->net.act_floats);
        th->tmp = uf_aalloc(sizeof(float) * t->net.tmp_floats);
        th->feat = uf_aalloc(sizeof(float) * t->net.feat_floats);
        if (!th->g || !th->act || !th->tmp || !th->feat) {
            s = uf_err(err, UF_ERR_NOMEM, "out of memory for the training scratch of thread %d", i);
            goto fail;
        }
    }
    if ((s = init_params(t, err)))
        goto fail;
    if ((s = uf_pool_init(t->nt, &t->pool, err)))
        goto fail;
    /* Feature extraction: one image at a time over all threads. */
    uf_ctx_opts co = {.max_batch = 1, .threads = t->nt};
    if ((s = uf_ctx_init(m, &co, &t->fctx, err)))
        goto fail;
    *out = t;
    return UF_OK;
fail:
    uf_trainer_free(t);
    return s;
}

void uf_trainer_free(uf_trainer *t)
{
    if (!t)
        return;
    uf_ctx_free(t->fctx);
    uf_pool_free(t->pool);
    for (int i = 0; t->th && i < t->nt; i++) {
        uf_afree(t->th[i].g);
        uf_afree(t->th[i].act);
        uf_afree(t->th[i].tmp);
        uf_afree(t->th[i].feat);
    }
    free(t->th);
    uf_afree(t->p);
    uf_afree(t->g);
    uf_afree(t->m1);
    uf_afree(t->m2);
    tr_cache_free(t);
    free(t->train_idx);
    free(t->val_idx);
    tr_layout_free(&t->net, &t->L);
    free(t);
}

static uf_status add_images(uf_trainer *t, const float *input, int n, int val, uf_error *err)
{
    if (!t || !input || n < 0)
        return uf_err(err, UF_ERR_ARG, "uf_trainer_add_images: bad argument");
    int **list = val ? &t->val_idx : &t->train_idx, *cnt = val ? &t->n_val : &t->n_train;
    int *nl = realloc(*list, sizeof(int) * ((size_t)*cnt + (size_t)n + 1));
    if (!nl)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    *list = nl;
    const uf_model_info *info = &t->net.m->info;
    size_t in_n = (size_t)3 * info->height * info->width;
    float *row = t->th[0].feat;
    for (int i = 0; i < n; i++) {
        const float *const *f;
        uf_status s = uf_ctx_backbone(t->fctx, input + in_n * i, 1, 1, &f, err);
        if (s)
            return s;
        for (int k = 0; k < t->net.K; k++) {
            const tr_stage *st = &t->net.st[k];
            memcpy(row + t->net.feat_off[k], f[k], sizeof(float) * st->fc * st->h * st->w);
        }
        /* Finite input can still give inf/NaN features (an overflowing backbone); caught here,
         * it names the image instead of failing every later batch as "diverged". */
        for (size_t q = 0; q < t->net.feat_floats; q++)
            if (!isfinite(row[q]))
                return uf_err(err, UF_ERR_ARG, "image %d of this call: the backbone's features are "
                              "not finite", i);
        if ((s = tr_cache_append(t, row, err)))
            return s;
        (*list)[(*cnt)++] = t->n_img - 1;
    }
    return UF_OK;
}

uf_status uf_trainer_add_images(uf_trainer *t, const float *input, int n, uf_error *err)
{
    return add_images(t, input, n, 0, err);
}

uf_status uf_trainer_add_val_images(uf_trainer *t, const float *input, int n, uf_error *err)
{
    return add_images(t, input, n, 1, err);
}

int uf_trainer_n_images(const uf_trainer *t) { return t ? t->n_train : 0; }
int uf_trainer_n_val_images(const uf_trainer *t) { return t ? t->n_val : 0; }

/* One batch: thread i takes images i, i+nt, ... of idx (a fixed assignment, so results do
 * not depend on scheduling), and accumulates into its own gradient buffer. */
typedef struct batch_job {
    uf_trainer *t;
    const int *idx;
    int n, grad;
    float cz, cl;
    double loss[TR_MAX_THREADS];
    uf_status st[TR_MAX_THREADS];
    uf_error err[TR_MAX_THREADS];
} batch_job;

static void batch_part(void *arg, int ti, int nt)
{
    batch_job *j = arg;
    uf_trainer *t = j->t;
    tr_thread *th = &t->th[ti];
    if (j->grad)
        memset(th->g, 0, sizeof(float) * t->L.np);
    double loss = 0;
    j->st[ti] = UF_OK;
    for (int i = ti; i < j->n; i += nt) {
        const float *xh;
        uf_status s = tr_cache_get(t, j->idx[i], th->feat, &xh, &j->err[ti]);
        if (s) {
            j->st[ti] = s;
            return;
        }
        double zz, ljd;
        tr_forward(&t->net, t->p, xh, th->act, th->tmp, &zz, &ljd);
        loss += j->cz * zz - j->cl * ljd;
        if (j->grad)
            tr_backward(&t->net, t->p, xh, th->act, th->tmp, j->cz, j->cl, th->g);
    }
    j->loss[ti] = loss;
}

typedef struct sum_job {
    uf_trainer *t;
    int bad[TR_MAX_THREADS]; /* thread i saw a non-finite gradient element */
} sum_job;

static void sum_part(void *arg, int ti, int nt)
{
    sum_job *j = arg;
    uf_trainer *t = j->t;
    size_t lo, hi;
    uf_split(t->L.np, 64, ti, nt, &lo, &hi);
    int bad = 0;
    for (size_t i = lo; i < hi; i++) {
        float s = t->th[0].g[i];
        for (int k = 1; k < t->nt; k++)
            s += t->th[k].g[i];
        t->g[i] = s;
        bad |= !isfinite(s);
    }
    j->bad[ti] = bad;
}

static uf_status run_batch(uf_trainer *t, const int *idx, int n, int grad, double *loss, uf_error *err)
{
    if (!t || !idx || n < 1)
        return uf_err(err, UF_ERR_ARG, "empty batch");
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= t->n_img)
            return uf_err(err, UF_ERR_ARG, "image index %d outside [0, %d)", idx[i], t->n_img);
    batch_job *j = calloc(1, sizeof *j);
    if (!j)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    *j = (batch_job){.t = t, .idx = idx, .n = n, .grad = grad};
    /* paper: mean_b(0.5|z|^2 - ljd); anomalib: sum_b 0.5|z|^2 - mean_b ljd (docs/uflow-math.md "Training"). */
    j->cz = t->o.loss == UF_LOSS_PAPER ? 1.f / (float)n : 1.f;
    j->cl = 1.f / (float)n;
    uf_pool_run(t->pool, batch_part, j);
    uf_status s = UF_OK;
    double l = 0;
    for (int i = 0; i < t->nt && !s; i++) {
        if ((s = j->st[i]) && err)
            *err = j->err[i];
        l += j->loss[i];
    }
    free(j);
    if (s)
        return s;
    if (!isfinite(l))
        return uf_err(err, UF_ERR_ARG, "the loss is not finite (%g): training diverged", l);
    if (grad) {
        sum_job *sj = calloc(1, sizeof *sj);
        if (!sj)
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        sj->t = t;
        uf_pool_run(t->pool, sum_part, sj);
        int bad = 0;
        for (int i = 0; i < t->nt; i++)
            bad |= sj->bad[i];
        free(sj);
        /* A finite loss can still have an overflowing gradient; Adam would turn it into NaN
         * parameters, so stop before the update. */
        if (bad)
            return uf_err(err, UF_ERR_ARG, "the gradient is not finite (loss %g): training diverged", l);
    }
    *loss = l;
    return UF_OK;
}

uf_status uf_trainer_grad(uf_trainer *t, const int *idx, int n, double *loss, uf_error *err)
{
    double l;
    uf_status s = run_batch(t, idx, n, 1, &l, err);
    if (!s && loss)
        *loss = l;
    return s;
}

double uf_trainer_lr(const uf_trainer *t)
{
    /* LinearLR's closed form: base * (start + (end - start) * min(epoch, total) / total). */
    double e = t->epoch < t->o.lr_total_iters ? t->epoch : t->o.lr_total_iters;
    return t->o.lr * (1.0 + (t->o.lr_end_factor - 1.0) * e / t->o.lr_total_iters);
}

typedef struct adam_job {
    uf_trainer *t;
    float wd, b1, b2, omb1, omb2, eps, step_size, bc2_sqrt;
} adam_job;

/* torch.optim.Adam (1.13, single-tensor path): g += wd*p; m = b1 m + (1-b1) g;
 * v = b2 v + ((1-b2) g) g; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps). Every scalar is a
 * Python double rounded once to float32 by the kernel, 1-b1 and 1-b2 included. */
static void adam_part(void *arg, int ti, int nt)
{
    const adam_job *a = arg;
    uf_trainer *t = a->t;
    size_t lo, hi;
    uf_split(t->L.np, 64, ti, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        float g = t->g[i];
        if (a->wd != 0.f)
            g = g + t->p[i] * a->wd;
        t->m1[i] = t->m1[i] * a->b1 + a->omb1 * g;
        t->m2[i] = t->m2[i] * a->b2 + a->omb2 * g * g; /* addcmul: value * t1 * t2 */
        float denom = sqrtf(t->m2[i]) / a->bc2_sqrt + a->eps;
        t->p[i] = t->p[i] + (-a->step_size) * (t->m1[i] / denom);
    }
}

uf_status uf_trainer_step(uf_trainer *t, const int *idx, int n, double *loss, uf_error *err)
{
    double l;
    uf_status s = run_batch(t, idx, n, 1, &l, err);
    if (s)
        return s;
    t->step++;
    double lr = uf_trainer_lr(t), b1 = 0.9, b2 = 0.999;
    double bc1 = 1.0 - pow(b1, (double)t->step), bc2 = 1.0 - pow(b2, (double)t->step);
    /* (float)(1 - 0.999) is not 1 - 0.999f: the latter is 1.3e-5 off, as torch does not do */
    adam_job a = {.t = t, .wd = (float)t->o.weight_decay, .b1 = (float)b1, .b2 = (float)b2,
                  .omb1 = (float)(1.0 - b1), .omb2 = (float)(1.0 - b2), .eps = 1e-8f,
                  .step_size = (float)(lr / bc1), .bc2_sqrt = (float)sqrt(bc2)};
    uf_pool_run(t->pool, adam_part, &a);
    if (loss)
        *loss = l;
    return UF_OK;
}

uf_status uf_trainer_epoch(uf_trainer *t, uf_train_progress_fn cb, void *user, double *mean_loss,
                           uf_error *err)
{
    if (!t)
        return uf_err(err, UF_ERR_ARG, "uf_trainer_epoch: NULL trainer");
    int n = t->n_train, B = t->o.batch_size;
    if (n < 1)
        return uf_err(err, UF_ERR_ARG, "no training images");
    int *order = malloc(sizeof(int) * (size_t)n);
    if (!order)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    int steps = n / B + (n % B != 0), first = 0;
    double sum = 0;
    if (t->ep_step > 0 && t->ep_step < steps) {
        /* finish the epoch a previous call (or run, through the state file) stopped in: the
         * rng was rewound to its start, so this is the same shuffle; go on after its last step */
        first = t->ep_step;
        sum = t->ep_sum;
    }
    uint64_t rng0 = t->rng;
    memcpy(order, t->train_idx, sizeof(int) * (size_t)n);
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int k = (int)(rng_next(&t->rng) % (uint64_t)(i + 1));
        int tmp = order[i];
        order[i] = order[k];
        order[k] = tmp;
    }
    uf_status s = UF_OK;
    int st;
    for (st = first; st < steps; st++) {
        int b = st * B, nb = UF_MIN(B, n - b);
        double l;
        if ((s = uf_trainer_step(t, order + b, nb, &l, err)))
            break;
        sum += l;
        if (cb && cb(user, t->epoch, st + 1, steps, l, b + nb)) {
            st++;
            if (st < steps)
                s = uf_err(err, UF_ERR_ARG, "interrupted in epoch %d at step %d/%d", t->epoch + 1,
                           st, steps);
            break;
        }
    }
    free(order);
    /* The steps taken have updated the parameters: remember where the epoch stands and rewind
     * the rng, so that the next call (or a resumed run) finishes this very epoch. */
    t->ep_step = s ? st : 0;
    t->ep_sum = s ? sum : 0;
    if (s) {
        t->rng = rng0;
        return s;
    }
    t->epoch++;
    if (mean_loss)
        *mean_loss = sum / steps;
    return UF_OK;
}

static uf_status loss_of(uf_trainer *t, const int *list, int first, int n, double *mean_loss,
                         uf_error *err)
{
    int B = t->o.batch_size, *idx = malloc(sizeof(int) * (size_t)B);
    if (!idx)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    double sum = 0;
    int steps = 0;
    uf_status s = UF_OK;
    for (int b = 0; b < n && !s; b += B, steps++) {
        int nb = UF_MIN(B, n - b);
        for (int i = 0; i < nb; i++)
            idx[i] = list ? list[b + i] : first + b + i;
        double l = 0;
        s = run_batch(t, idx, nb, 0, &l, err);
        sum += l;
    }
    free(idx);
    if (!s && mean_loss)
        *mean_loss = sum / steps;
    return s;
}

uf_status uf_trainer_eval_loss(uf_trainer *t, int first, int n, double *mean_loss, uf_error *err)
{
    if (!t || first < 0 || n < 1 || first + n > t->n_img)
        return uf_err(err, UF_ERR_ARG, "uf_trainer_eval_loss: images [%d, %d) outside the cache",
                      first, first + n);
    return loss_of(t, NULL, first, n, mean_loss, err);
}

uf_status uf_trainer_val_loss(uf_trainer *t, double *mean_loss, uf_error *err)
{
    if (!t || t->n_val < 1)
        return uf_err(err, UF_ERR_ARG, "no validation images");
    return loss_of(t, t->val_idx, 0, t->n_val, mean_loss, err);
}

int uf_trainer_epochs_done(const uf_trainer *t) { return t->epoch; }
long uf_trainer_steps_done(const uf_trainer *t) { return t->step; }
int uf_trainer_n_tensors(const uf_trainer *t) { return t->L.n; }

const char *uf_trainer_tensor_name(const uf_trainer *t, int i)
{
    return i >= 0 && i < t->L.n ? t->L.t[i].name : NULL;
}

float *uf_trainer_tensor(uf_trainer *t, const char *name, size_t *numel)
{
    int i = tr_layout_find(&t->L, name);
    if (i < 0)
        return NULL;
    if (numel)
        *numel = t->L.t[i].n;
    return t->p + t->L.t[i].off;
}

const float *uf_trainer_tensor_grad(const uf_trainer *t, const char *name, size_t *numel)
{
    int i = tr_layout_find(&t->L, name);
    if (i < 0)
        return NULL;
    if (numel)
        *numel = t->L.t[i].n;
    return t->g + t->L.t[i].off;
}
