/* cait.c — the `mcait` backbone (anomalib CaitFeatureExtractor, docs/uflow-math.md "mcait"): blocks 0..40 of
 * timm's cait_m48_448 on the 448x448 image and blocks 0..20 of cait_s24_224 on its bicubic
 * (align_corners=True) 224x224 downscale, each followed by the model's final LayerNorm and
 * reshaped to feature maps [768, 28, 28] and [384, 14, 14].
 *
 * Every linear layer is one SGEMM per thread on its share of the token rows, straight from
 * the mapped weights (nothing is copied or repacked at load). A block is two parallel
 * passes: LayerNorm + qkv for all rows, then (because attention reads every token's keys
 * and values) attention + proj + LayerScale residual + LayerNorm + MLP + residual, row-local
 * and fused with the next block's LayerNorm + qkv. */
#include "models/backbones/cait.h"
#include "core/internal.h"
#include "core/pool.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffers --------------------------------------------------------------------------- */

size_t uf_cait_col_floats(const uf_cait *c) { return uf_attn_col_floats(uf_cait_tokens(c), c->heads); }

size_t uf_cait_scratch_floats(const uf_cait *c, int B)
{
    size_t n = (size_t)B * uf_cait_tokens(c) * c->D;
    return 13 * n + 64;   /* x, y, t: n each; 2 x qkv 3n; h 4n */
}

uf_cait_bufs uf_cait_bufs_of(const uf_cait *c, int B, float *s)
{
    size_t n = (size_t)B * uf_cait_tokens(c) * c->D;
    return (uf_cait_bufs){.x = s, .y = s + n, .t = s + 2 * n, .qkv = {s + 3 * n, s + 6 * n},
                          .h = s + 9 * n};
}

/* ---- row kernels ----------------------------------------------------------------------- */

/* LayerNorm over the last axis (D), eps 1e-6, moments in double (8 lanes, fixed order). */
UF_CLONES
static void ln_rows(const float *x, float *y, size_t rows, int D, const float *w, const float *b)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        double s[8] = {0}, q[8] = {0};
        int i = 0;
        for (; i + 8 <= D; i += 8)
            for (int l = 0; l < 8; l++)
                s[l] += xr[i + l];
        for (; i < D; i++)
            s[0] += xr[i];
        double mean = ((s[0] + s[1]) + (s[2] + s[3]) + ((s[4] + s[5]) + (s[6] + s[7]))) / D;
        for (i = 0; i + 8 <= D; i += 8)
            for (int l = 0; l < 8; l++) {
                double d = xr[i + l] - mean;
                q[l] += d * d;
            }
        for (; i < D; i++)
            q[0] += (xr[i] - mean) * (xr[i] - mean);
        double var = ((q[0] + q[1]) + (q[2] + q[3]) + ((q[4] + q[5]) + (q[6] + q[7]))) / D;
        float mf = (float)mean, rstd = (float)(1.0 / sqrt(var + (double)UF_CAIT_LN_EPS));
        for (i = 0; i < D; i++)
            yr[i] = (xr[i] - mf) * rstd * w[i] + b[i];
    }
}

/* y[rows, out] = x[rows, in] W^T + b (W [out, in], timm's Linear layout). */
static void linear(const float *x, size_t rows, int in, const float *W, const float *b, int out,
                   float *y)
{
    if (!rows)
        return;
    for (size_t r = 0; r < rows; r++)
        memcpy(y + r * out, b, sizeof(float) * out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, out, in, 1.f, x, in, W, in, 1.f,
                y, out);
}

/* x += gamma * (t + b), per row of D. */
UF_CLONES
static void layerscale_add(float *x, const float *t, size_t rows, int D, const float *gamma,
                           const float *b)
{
    for (size_t r = 0; r < rows; r++)
        for (int i = 0; i < D; i++)
            x[r * D + i] = x[r * D + i] + gamma[i] * (t[r * D + i] + b[i]);
}

UF_CLONES
static void scale_cols(float *x, size_t rows, size_t ld, int n, float s)
{
    for (size_t r = 0; r < rows; r++)
        for (int i = 0; i < n; i++)
            x[r * ld + i] *= s;
}

/* ---- patch embedding ------------------------------------------------------------------- */

typedef struct embed_job {
    const uf_cait *c;
    const float *img;
    const uf_cait_bufs *b;
    int B, add_pos;
} embed_job;

static void embed_part(void *arg, int t, int nt)
{
    const embed_job *j = arg;
    const uf_cait *c = j->c;
    const int N = uf_cait_tokens(c), D = c->D, g = c->grid, S = g * UF_CAIT_PATCH;
    const int P = 3 * UF_CAIT_PATCH * UF_CAIT_PATCH;
    size_t lo, hi;
    uf_split((size_t)j->B * N, 8, t, nt, &lo, &hi);
    for (size_t row = lo; row < hi; row++) {   /* im2col: row = (b, py, px), col = (c, ky, kx) */
        size_t b = row / N;
        int p = (int)(row % N), py = p / g, px = p % g;
        float *dst = j->b->h + row * P;
        for (int ch = 0; ch < 3; ch++)
            for (int ky = 0; ky < UF_CAIT_PATCH; ky++)
                memcpy(dst + (ch * UF_CAIT_PATCH + ky) * UF_CAIT_PATCH,
                       j->img + ((b * 3 + ch) * S + (size_t)py * UF_CAIT_PATCH + ky) * S +
                           (size_t)px * UF_CAIT_PATCH,
                       sizeof(float) * UF_CAIT_PATCH);
    }
    linear(j->b->h + lo * P, hi - lo, P, c->patch_w, c->patch_b, D, j->b->x + lo * D);
    if (j->add_pos)
        for (size_t row = lo; row < hi; row++) {
            const float *pe = c->pos + (row % N) * D;
            float *xr = j->b->x + row * D;
            for (int i = 0; i < D; i++)
                xr[i] += pe[i];
        }
}

void uf_cait_embed(const uf_exec *ex, const uf_cait *c, const float *img, int B, int add_pos,
                   const uf_cait_bufs *bufs)
{
    embed_job j = {c, img, bufs, B, add_pos};
    uf_pool_run(ex ? ex->pool : NULL, embed_part, &j);
}

/* ---- blocks ---------------------------------------------------------------------------- */

typedef struct blocks_job {
    const uf_cait *c;
    const uf_exec *ex;
    const uf_cait_bufs *b;
    int B, layer;     /* block whose attention+MLP runs now (-1: only the first LN + qkv) */
    int next;         /* block whose LN + qkv follows (-1: none) */
} blocks_job;

static void pre_attention(const uf_cait *c, const uf_cait_block *k, float *qkv, const uf_cait_bufs *b,
                          size_t lo, size_t hi)
{
    const int D = c->D;
    ln_rows(b->x + lo * D, b->y + lo * D, hi - lo, D, k->ln1_w, k->ln1_b);
    linear(b->y + lo * D, hi - lo, D, k->qkv_w, k->qkv_b, 3 * D, qkv + lo * 3 * D);
    /* q = q * head_dim^-0.5, before q k^T as timm does (float32 multiply) */
    scale_cols(qkv + lo * 3 * D, hi - lo, 3 * (size_t)D, D, (float)(1.0 / sqrt(UF_CAIT_HEAD_DIM)));
}

static void blocks_part(void *arg, int t, int nt)
{
    const blocks_job *j = arg;
    const uf_cait *c = j->c;
    const uf_cait_bufs *b = j->b;
    const int N = uf_cait_tokens(c), D = c->D;
    size_t lo, hi;
    uf_split((size_t)j->B * N, 8, t, nt, &lo, &hi);
    if (lo >= hi)
        return;
    const size_t rows = hi - lo;
    if (j->layer >= 0) {
        const uf_cait_block *k = &c->blocks[j->layer];
        float *col = j->ex->col + (size_t)t * j->ex->col_stride;
        for (size_t s = lo / N; s * N < hi; s++) {   /* the samples this share touches */
            size_t a = UF_MAX(lo, s * N), e = UF_MIN(hi, (s + 1) * N);
            uf_attn_talking_heads((int)N, D, c->heads, b->qkv[j->layer % 2] + s * N * 3 * D,
                                  k->pl_w, k->pl_b, k->pw_w, k->pw_b, (int)(a - s * N),
                                  (int)(e - s * N), b->y + s * N * D, col);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, D, D, 1.f, b->y + lo * D, D,
                    k->proj_w, D, 0.f, b->t + lo * D, D);
        layerscale_add(b->x + lo * D, b->t + lo * D, rows, D, k->gamma1, k->proj_b);
        ln_rows(b->x + lo * D, b->y + lo * D, rows, D, k->ln2_w, k->ln2_b);
        linear(b->y + lo * D, rows, D, k->fc1_w, k->fc1_b, 4 * D, b->h + lo * 4 * D);
        uf_gelu_erf(b->h + lo * 4 * D, rows * 4 * D);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, D, 4 * D, 1.f,
                    b->h + lo * 4 * D, 4 * D, k->fc2_w, 4 * D, 0.f, b->t + lo * D, D);
        layerscale_add(b->x + lo * D, b->t + lo * D, rows, D, k->gamma2, k->fc2_b);
    }
    if (j->next >= 0)
        pre_attention(c, &c->blocks[j->next], b->qkv[j->next % 2], b, lo, hi);
}

void uf_cait_blocks(const uf_exec *ex, const uf_cait *c, int first, int last, int B,
                    const uf_cait_bufs *bufs)
{
    if (first >= last)
        return;
    uf_pool *pool = ex ? ex->pool : NULL;
    blocks_job j = {c, ex, bufs, B, -1, first};
    uf_pool_run(pool, blocks_part, &j);
    for (int l = first; l < last; l++) {
        j.layer = l;
        j.next = l + 1 < last ? l + 1 : -1;
        uf_pool_run(pool, blocks_part, &j);
    }
}

/* ---- final norm and feature map -------------------------------------------------------- */

typedef struct final_job {
    const uf_cait *c;
    const uf_cait_bufs *b;
    int B;
    float *tok, *map;
} final_job;

static void final_part(void *arg, int t, int nt)
{
    const final_job *j = arg;
    const uf_cait *c = j->c;
    const int N = uf_cait_tokens(c), D = c->D;
    float *tok = j->tok ? j->tok : j->b->y;
    size_t lo, hi;
    uf_split((size_t)j->B * N, 8, t, nt, &lo, &hi);
    ln_rows(j->b->x + lo * D, tok + lo * D, hi - lo, D, c->norm_w, c->norm_b);
    if (!j->map)
        return;
    for (size_t row = lo; row < hi; row++) {   /* (B, N, D) -> (B, D, N) */
        size_t s = row / N, p = row % N;
        const float *src = tok + row * D;
        float *dst = j->map + s * (size_t)D * N + p;
        for (int d = 0; d < D; d++)
            dst[(size_t)d * N] = src[d];
    }
}

void uf_cait_final(const uf_exec *ex, const uf_cait *c, int B, const uf_cait_bufs *bufs, float *tok,
                   float *map)
{
    final_job j = {c, bufs, B, tok, map};
    uf_pool_run(ex ? ex->pool : NULL, final_part, &j);
}

void uf_cait_forward(const uf_exec *ex, const uf_cait *c, const float *img, int B, float *scratch,
                     float *map)
{
    uf_cait_bufs b = uf_cait_bufs_of(c, B, scratch);
    uf_cait_embed(ex, c, img, B, 1, &b);
    uf_cait_blocks(ex, c, 0, c->depth, B, &b);
    uf_cait_final(ex, c, B, &b, NULL, map);
}

/* ---- loading: anomalib's CaitFeatureExtractor state_dict ------------------------------- */

typedef struct cait_spec {
    const char *key, *timm;
    int D, heads, depth, used, grid;
} cait_spec;

static const cait_spec specs[2] = {
    {"extractor1", "cait_m48_448", 768, 16, 48, 41, 28},
    {"extractor2", "cait_s24_224", 384, 8, 24, 21, 14},
};

typedef struct mcait {
    uf_cait ext[2];
    uf_cait_block *blocks[2];
} mcait;

/* Load (f32) or only check (expect) one tensor under the extractor's prefix. */
static uf_status take(uf_weights *m, const cait_spec *sp, const char *name, int ndim, int64_t d0,
                      int64_t d1, int64_t d2, int64_t d3, const float **out, uf_error *err)
{
    char full[160];
    snprintf(full, sizeof full, "feature_extractor.%s.%s", sp->key, name);
    const int64_t shape[4] = {d0, d1, d2, d3};
    if (!out)
        return uf_weights_expect(m, full, ndim, shape, err);
    *out = uf_weights_f32(m, full, ndim, shape, err);
    return *out ? UF_OK : (err ? err->status : UF_ERR_TENSOR);
}

/* One LayerScaleBlock: loaded when k != NULL, else only checked (blocks past the cut). */
static uf_status take_block(uf_weights *m, const cait_spec *sp, int i, uf_cait_block *k, uf_error *err)
{
    const int64_t D = sp->D, H = sp->heads;
    struct {
        const char *n;
        int nd;
        int64_t a, b;
        const float **dst;
    } t[18] = {
        {"gamma_1", 1, D, 0, &k->gamma1},          {"gamma_2", 1, D, 0, &k->gamma2},
        {"norm1.weight", 1, D, 0, &k->ln1_w},      {"norm1.bias", 1, D, 0, &k->ln1_b},
        {"attn.qkv.weight", 2, 3 * D, D, &k->qkv_w}, {"attn.qkv.bias", 1, 3 * D, 0, &k->qkv_b},
        {"attn.proj.weight", 2, D, D, &k->proj_w}, {"attn.proj.bias", 1, D, 0, &k->proj_b},
        {"attn.proj_l.weight", 2, H, H, &k->pl_w}, {"attn.proj_l.bias", 1, H, 0, &k->pl_b},
        {"attn.proj_w.weight", 2, H, H, &k->pw_w}, {"attn.proj_w.bias", 1, H, 0, &k->pw_b},
        {"norm2.weight", 1, D, 0, &k->ln2_w},      {"norm2.bias", 1, D, 0, &k->ln2_b},
        {"mlp.fc1.weight", 2, 4 * D, D, &k->fc1_w}, {"mlp.fc1.bias", 1, 4 * D, 0, &k->fc1_b},
        {"mlp.fc2.weight", 2, D, 4 * D, &k->fc2_w}, {"mlp.fc2.bias", 1, D, 0, &k->fc2_b},
    };
    int load = i < sp->used;
    for (int n = 0; n < 18; n++) {
        char name[96];
        snprintf(name, sizeof name, "blocks.%d.%s", i, t[n].n);
        uf_status s = take(m, sp, name, t[n].nd, t[n].a, t[n].b, 0, 0, load ? t[n].dst : NULL, err);
        if (s)
            return s;
    }
    return UF_OK;
}

/* The class-attention blocks (unused by U-Flow, present in anomalib's state_dict). */
static uf_status expect_token_only(uf_weights *m, const cait_spec *sp, int i, uf_error *err)
{
    const int64_t D = sp->D;
    static const char *vec[] = {"gamma_1", "gamma_2", "norm1.weight", "norm1.bias",
                                "attn.q.bias", "attn.k.bias", "attn.v.bias", "attn.proj.bias",
                                "norm2.weight", "norm2.bias", "mlp.fc2.bias"};
    static const char *mat[] = {"attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.proj.weight"};
    char name[96];
    uf_status s = UF_OK;
    for (size_t n = 0; n < sizeof vec / sizeof *vec && !s; n++) {
        snprintf(name, sizeof name, "blocks_token_only.%d.%s", i, vec[n]);
        s = take(m, sp, name, 1, D, 0, 0, 0, NULL, err);
    }
    for (size_t n = 0; n < sizeof mat / sizeof *mat && !s; n++) {
        snprintf(name, sizeof name, "blocks_token_only.%d.%s", i, mat[n]);
        s = take(m, sp, name, 2, D, D, 0, 0, NULL, err);
    }
    if (!s) {
        snprintf(name, sizeof name, "blocks_token_only.%d.mlp.fc1.weight", i);
        s = take(m, sp, name, 2, 4 * D, D, 0, 0, NULL, err);
    }
    if (!s) {
        snprintf(name, sizeof name, "blocks_token_only.%d.mlp.fc1.bias", i);
        s = take(m, sp, name, 1, 4 * D, 0, 0, 0, NULL, err);
    }
    if (!s) {
        snprintf(name, sizeof name, "blocks_token_only.%d.mlp.fc2.weight", i);
        s = take(m, sp, name, 2, D, 4 * D, 0, 0, NULL, err);
    }
    return s;
}

static uf_status load_cait(uf_weights *m, const cait_spec *sp, uf_cait *c, uf_cait_block **blocks,
                           uf_error *err)
{
    const int64_t D = sp->D, N = (int64_t)sp->grid * sp->grid;
    *c = (uf_cait){.D = sp->D, .heads = sp->heads, .depth = sp->used, .grid = sp->grid};
    if (!(*blocks = calloc((size_t)sp->used, sizeof **blocks)))
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    c->blocks = *blocks;
    uf_status s;
    if ((s = take(m, sp, "cls_token", 3, 1, 1, D, 0, NULL, err)) ||
        (s = take(m, sp, "pos_embed", 3, 1, N, D, 0, &c->pos, err)) ||
        (s = take(m, sp, "patch_embed.proj.weight", 4, D, 3, UF_CAIT_PATCH, UF_CAIT_PATCH, &c->patch_w, err)) ||
        (s = take(m, sp, "patch_embed.proj.bias", 1, D, 0, 0, 0, &c->patch_b, err)))
        return s;
    for (int i = 0; i < sp->depth; i++) {
        uf_cait_block unused;
        if ((s = take_block(m, sp, i, i < sp->used ? &(*blocks)[i] : &unused, err)))
            return s;
    }
    for (int i = 0; i < 2; i++)
        if ((s = expect_token_only(m, sp, i, err)))
            return s;
    if ((s = take(m, sp, "norm.weight", 1, D, 0, 0, 0, &c->norm_w, err)) ||
        (s = take(m, sp, "norm.bias", 1, D, 0, 0, 0, &c->norm_b, err)) ||
        (s = take(m, sp, "head.weight", 2, 1000, D, 0, 0, NULL, err)) ||
        (s = take(m, sp, "head.bias", 1, 1000, 0, 0, 0, NULL, err)))
        return s;
    return UF_OK;
}

static uf_status mc_load(uf_weights *m, uf_model_info *info, void **state, uf_error *err)
{
    mcait *mc = calloc(1, sizeof *mc);
    if (!mc)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    *state = mc;
    if (info->height != 448 || info->width != 448)
        return uf_err(err, UF_ERR_CONFIG, "the mcait backbone requires input_size 448x448, not %dx%d",
                      info->height, info->width);
    for (int e = 0; e < 2; e++) {
        const cait_spec *sp = &specs[e];
        uf_status s = load_cait(m, sp, &mc->ext[e], &mc->blocks[e], err);
        if (s) {
            uf_err_prefix(err, "mcait %s (timm %s: dim %d, %d heads, %d blocks)", sp->key, sp->timm,
                          sp->D, sp->heads, sp->depth);
            return s;
        }
    }
    return UF_OK;
}

static void mc_free(void *state)
{
    mcait *mc = state;
    if (!mc)
        return;
    free(mc->blocks[0]);
    free(mc->blocks[1]);
    free(mc);
}

static size_t mc_scratch_floats(const void *state, const uf_model_info *info, int B)
{
    const mcait *mc = state;
    (void)info;
    size_t s0 = uf_cait_scratch_floats(&mc->ext[0], B), s1 = uf_cait_scratch_floats(&mc->ext[1], B);
    size_t side = (size_t)mc->ext[1].grid * UF_CAIT_PATCH;
    return UF_MAX(s0, s1) + (size_t)B * 3 * side * side;
}

static size_t mc_col_floats(const void *state, const uf_model_info *info, int nt)
{
    const mcait *mc = state;
    (void)info;
    (void)nt;
    return UF_MAX(uf_cait_col_floats(&mc->ext[0]), uf_cait_col_floats(&mc->ext[1]));
}

typedef struct resize_job {
    const float *in;
    float *out;
    int planes, is, os;
} resize_job;

static void resize_part(void *arg, int t, int nt)
{
    const resize_job *j = arg;
    size_t lo, hi;
    uf_split((size_t)j->os, 1, t, nt, &lo, &hi);
    uf_resize_bicubic_ac_rows(j->in, j->planes, j->is, j->is, j->out, j->os, j->os, (int)lo, (int)hi);
}

static void mc_run(const void *state, const uf_model_info *info, const uf_exec *ex, const float *in,
                   int B, float *scratch, float *const feats[UF_MAX_SCALES])
{
    const mcait *mc = state;
    size_t s0 = uf_cait_scratch_floats(&mc->ext[0], B), s1 = uf_cait_scratch_floats(&mc->ext[1], B);
    float *small = scratch + UF_MAX(s0, s1);
    int side = mc->ext[1].grid * UF_CAIT_PATCH;
    /* the downscale is taken first: the image stays untouched, the scratch is reused */
    resize_job rj = {in, small, 3 * B, info->height, side};
    uf_pool_run(ex->pool, resize_part, &rj);
    uf_cait_forward(ex, &mc->ext[0], in, B, scratch, feats[0]);
    uf_cait_forward(ex, &mc->ext[1], small, B, scratch, feats[1]);
}

const uf_backbone_ops uf_backbone_mcait = {
    .name = "mcait",
    .load = mc_load,
    .free = mc_free,
    .scratch_floats = mc_scratch_floats,
    .col_floats = mc_col_floats,
    .run = mc_run,
};
