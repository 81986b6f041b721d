/* ctx.c — inference contexts: all per-run memory, allocated once at init, and the
 * forward pass backbone -> flow -> anomaly map -> post-processing. */
#include "core/internal.h"
#include "core/pool.h"
#include "models/anomaly_map.h"
#include "models/ctx.h"
#include "models/model.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct uf_ctx {
    const uf_model *m;
    int max_batch;
    float *bb_scratch, *flow_scratch, *map_scratch;
    float *feats[UF_MAX_SCALES], *z[UF_MAX_SCALES];
    float *ljd, *map, *score, *norm, *col;
    uf_pool *pool;
    uf_exec ex;
    int *label;
    size_t bytes;
    int last_batch;          /* batch of the last successful run, 0 before any */
    uf_nfa *nfa;             /* built on first use, for nfa_opts */
    uf_nfa_opts nfa_opts;
    double *nlnfa, *min_nfa;
    uint8_t *mask;
    float *frac;
    int *nfa_label;
    const uf_flow_observer *obs; /* tests only */
};

uf_ctx_opts uf_ctx_opts_default(void) { return (uf_ctx_opts){.max_batch = 1, .threads = 1}; }

/* Contexts parallelise over their own threads; OpenBLAS's pool would only oversubscribe. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void) { openblas_set_num_threads(1); }

static float *grab(uf_ctx *c, size_t floats, int *ok)
{
    float *p = uf_aalloc(sizeof(float) * (floats ? floats : 1));
    if (!p)
        *ok = 0;
    c->bytes += sizeof(float) * floats;
    return p;
}

uf_status uf_ctx_init(const uf_model *m, const uf_ctx_opts *opts, uf_ctx **out, uf_error *err)
{
    if (!m || !out)
        return uf_err(err, UF_ERR_ARG, "uf_ctx_init: NULL argument");
    *out = NULL;
    uf_ctx_opts o = opts ? *opts : uf_ctx_opts_default();
    if (o.max_batch < 1 || o.max_batch > 1024)
        return uf_err(err, UF_ERR_ARG, "max_batch %d outside [1, 1024]", o.max_batch);
    if (o.threads < 1 || o.threads > 256)
        return uf_err(err, UF_ERR_ARG, "threads %d outside [1, 256]", o.threads);
    pthread_once(&blas_once, blas_single_thread);
    uf_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    const uf_model_info *info = &m->info;
    int B = o.max_batch, ok = 1;
    c->m = m;
    c->max_batch = B;
    c->bb_scratch = grab(c, m->bb_ops->scratch_floats(m->bb, info, B), &ok);
    c->flow_scratch = grab(c, uf_flow_scratch_floats(&m->flow, info, B), &ok);
    c->map_scratch = grab(c, uf_anomaly_map_scratch_floats(info), &ok);
    for (int k = 0; k < info->n_scales; k++) {
        size_t hw = (size_t)info->z_height[k] * info->z_width[k];
        c->feats[k] = grab(c, (size_t)B * info->feature_channels[k] * hw, &ok);
        c->z[k] = grab(c, (size_t)B * info->z_channels[k] * hw, &ok);
    }
    size_t col = UF_MAX(m->bb_ops->col_floats(m->bb, info, o.threads), uf_flow_col_floats(&m->flow, info, o.threads));
    c->col = grab(c, col * o.threads, &ok);
    c->ljd = grab(c, B, &ok);
    c->map = grab(c, (size_t)B * info->height * info->width, &ok);
    c->score = grab(c, B, &ok);
    c->norm = grab(c, B, &ok);
    c->label = uf_aalloc(sizeof(int) * B);
    if (!ok || !c->label) {
        uf_ctx_free(c);
        return uf_err(err, UF_ERR_NOMEM, "out of memory allocating a context for batch %d", B);
    }
    uf_status s = uf_pool_init(o.threads, &c->pool, err);
    if (s) {
        uf_ctx_free(c);
        return s;
    }
    c->ex = (uf_exec){.pool = c->pool, .nt = o.threads, .col = c->col, .col_stride = col};
    *out = c;
    return UF_OK;
}

void uf_ctx_free(uf_ctx *c)
{
    if (!c)
        return;
    uf_pool_free(c->pool);
    uf_afree(c->col);
    uf_afree(c->bb_scratch);
    uf_afree(c->flow_scratch);
    uf_afree(c->map_scratch);
    for (int k = 0; k < UF_MAX_SCALES; k++) {
        uf_afree(c->feats[k]);
        uf_afree(c->z[k]);
    }
    uf_afree(c->ljd);
    uf_afree(c->map);
    uf_afree(c->score);
    uf_afree(c->norm);
    uf_afree(c->label);
    uf_nfa_free(c->nfa);
    uf_afree(c->nlnfa);
    uf_afree(c->min_nfa);
    uf_afree(c->mask);
    uf_afree(c->frac);
    uf_afree(c->nfa_label);
    free(c);
}

size_t uf_ctx_scratch_bytes(const uf_ctx *c) { return c->bytes; }

void uf_ctx_set_observer(uf_ctx *c, const uf_flow_observer *obs) { c->obs = obs; }

/* The backbone, then (unless raw) anomalib's trainable per-scale feature affine. */
static void features(uf_ctx *c, const float *input, int batch, int raw)
{
    const uf_model *m = c->m;
    const uf_model_info *info = &m->info;
    m->bb_ops->run(m->bb, info, &c->ex, input, batch, c->bb_scratch, c->feats);
    for (int k = 0; !raw && m->bb_ops->affine && k < info->n_scales; k++) {
        const float *w, *b;
        m->bb_ops->affine(m->bb, k, &w, &b);
        size_t n = (size_t)info->feature_channels[k] * info->z_height[k] * info->z_width[k];
        if (w && b)
            uf_mul_add_ex(&c->ex, c->feats[k], batch, n, w, b);
    }
}

uf_status uf_ctx_run(uf_ctx *c, const float *input, int batch, uf_result *r, uf_error *err)
{
    if (!c || !input || !r)
        return uf_err(err, UF_ERR_ARG, "uf_ctx_run: NULL argument");
    if (batch < 1 || batch > c->max_batch)
        return uf_err(err, UF_ERR_ARG, "batch %d outside [1, %d] (the context's max_batch)", batch,
                      c->max_batch);
    const uf_model *m = c->m;
    const uf_model_info *info = &m->info;
    c->last_batch = 0;
    size_t n = (size_t)batch * 3 * info->height * info->width;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(input[i]))
            return uf_err(err, UF_ERR_ARG, "input has a non-finite value at element %zu", i);
    features(c, input, batch, 0);
    uf_flow_run(&m->flow, info, &c->ex, c->feats, batch, c->flow_scratch, c->z, c->ljd, c->obs);
    uf_anomaly_map(info, (const float *const *)c->z, batch, c->map_scratch, c->map, c->score);

    c->last_batch = batch;
    memset(r, 0, sizeof *r);
    r->batch = batch;
    r->height = info->height;
    r->width = info->width;
    r->n_scales = info->n_scales;
    for (int k = 0; k < info->n_scales; k++) {
        r->z[k] = c->z[k];
        r->features[k] = c->feats[k];
        r->z_channels[k] = info->z_channels[k];
        r->z_height[k] = info->z_height[k];
        r->z_width[k] = info->z_width[k];
    }
    r->log_jac_det = c->ljd;
    r->anomaly_map = c->map;
    r->pred_score = c->score;
    if (info->has_postproc) {
        for (int b = 0; b < batch; b++) {
            c->norm[b] = uf_postproc_normalize(&info->post, c->score[b], 1);
            c->label[b] = c->norm[b] > 1.f - info->post.image_sensitivity;
        }
        r->norm_score = c->norm;
        r->label = c->label;
    }
    return UF_OK;
}

uf_status uf_ctx_backbone(uf_ctx *c, const float *input, int batch, int raw,
                          const float *const **feats, uf_error *err)
{
    if (batch < 1 || batch > c->max_batch)
        return uf_err(err, UF_ERR_ARG, "batch %d outside [1, %d]", batch, c->max_batch);
    const uf_model_info *info = &c->m->info;
    size_t n = (size_t)batch * 3 * info->height * info->width;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(input[i]))
            return uf_err(err, UF_ERR_ARG, "input has a non-finite value at element %zu", i);
    features(c, input, batch, raw);
    c->last_batch = 0;
    *feats = (const float *const *)c->feats;
    return UF_OK;
}

static int nfa_opts_equal(const uf_nfa_opts *a, const uf_nfa_opts *b)
{
    return a->window == b->window && a->prob_thr == b->prob_thr && a->epsilon == b->epsilon &&
           a->high_precision == b->high_precision;
}

uf_status uf_ctx_nfa(uf_ctx *c, const uf_nfa_opts *opts, uf_nfa_result *r, uf_error *err)
{
    if (!c || !r)
        return uf_err(err, UF_ERR_ARG, "uf_ctx_nfa: NULL argument");
    if (c->last_batch < 1)
        return uf_err(err, UF_ERR_ARG, "uf_ctx_nfa: no successful uf_ctx_run on this context yet");
    uf_nfa_opts o = opts ? *opts : uf_nfa_opts_default();
    const uf_model_info *info = &c->m->info;
    int B = c->max_batch;
    if (!c->nfa || !nfa_opts_equal(&o, &c->nfa_opts)) {
        uf_nfa *n;
        uf_status s = uf_nfa_init(info, &o, B, &n, err);
        if (s)
            return s;
        uf_nfa_free(c->nfa);
        c->nfa = n;
        c->nfa_opts = o;
    }
    size_t HW = (size_t)info->height * info->width;
    if (!c->nlnfa) {
        c->nlnfa = uf_aalloc(sizeof(double) * HW * B);
        c->mask = uf_aalloc(HW * B);
        c->min_nfa = uf_aalloc(sizeof(double) * B);
        c->frac = uf_aalloc(sizeof(float) * B);
        c->nfa_label = uf_aalloc(sizeof(int) * B);
        if (!c->nlnfa || !c->mask || !c->min_nfa || !c->frac || !c->nfa_label) {
            uf_afree(c->nlnfa), uf_afree(c->mask), uf_afree(c->min_nfa), uf_afree(c->frac),
                uf_afree(c->nfa_label);
            c->nlnfa = c->min_nfa = NULL, c->mask = NULL, c->frac = NULL, c->nfa_label = NULL;
            return uf_err(err, UF_ERR_NOMEM, "out of memory for the NFA maps");
        }
    }
    int b = c->last_batch;
    uf_status s = uf_nfa_run(c->nfa, (const float *const *)c->z, b, c->nlnfa, c->mask, c->frac,
                             c->min_nfa, err);
    if (s)
        return s;
    for (int i = 0; i < b; i++)
        c->nfa_label[i] = c->frac[i] > 0.f;
    *r = (uf_nfa_result){.batch = b, .height = info->height, .width = info->width,
                         .minus_log10_nfa = c->nlnfa, .mask = c->mask, .anomalous_fraction = c->frac,
                         .min_log10_nfa = c->min_nfa, .label = c->nfa_label};
    return UF_OK;
}
