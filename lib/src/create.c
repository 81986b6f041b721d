/* create.c — write a seeded random-weight model with anomalib's state_dict names and order
 * (spec §3.5). The weights follow PyTorch's default inits (kaiming-uniform convs) so that
 * activations stay O(1); `perturb` re-randomises the constant-initialised parameters the
 * way the golden fixtures do (spec §9).
 *
 * The generators run twice: a planning pass records names and shapes (for the header), then
 * a writing pass draws the values and streams them to the file tensor by tensor, so even the
 * 1.6 GB mcait model never sits in memory. The random stream is splitmix64, whose k-th value
 * depends only on the seed and k: bulk uniform fills are computed independently per element
 * (vectorised) and equal the sequential draws exactly.
 *
 * With uf_create_opts.backbone_weights every backbone tensor is copied from that safetensors
 * file instead (torchvision/timm key names, tools/export_backbone.py; docs/model-format.md
 * "Backbone weights"): the planning pass finds and checks each one, the writing pass streams
 * it (converted to F32). The generator still advances by the draws it skips, so the feature
 * LayerNorms and the flow are the same as those of the random model of the same seed. */
#include "internal.h"
#include "model.h"

#include <errno.h>
#include <glib.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct rng {
    uint64_t s;
} rng;

#define SM_GAMMA 0x9E3779B97F4A7C15ull

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t next(rng *r) { return mix64(r->s += SM_GAMMA); } /* splitmix64 */
static double unif(rng *r) { return ((next(r) >> 11) + 0.5) / 9007199254740992.0; }
static double gauss(rng *r) { return sqrt(-2 * log(unif(r))) * cos(6.283185307179586 * unif(r)); }

/* n draws of unif() at once: 'u' (2u - 1) a, 'r' a + (b - a) u; the same values as n calls. */
UF_CLONES
static void uniform_fill(float *x, size_t n, uint64_t s0, int sym, double a, double b)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t z = mix64(s0 + (uint64_t)(i + 1) * SM_GAMMA);
        double u = ((double)(z >> 11) + 0.5) / 9007199254740992.0;
        x[i] = sym ? (float)((2 * u - 1) * a) : (float)(a + (b - a) * u);
    }
}

/* One tensor of the file being planned or written. */
typedef struct entry {
    char *name;
    uf_dtype dt;
    int ndim;
    int64_t shape[4];
    size_t bytes;
    int from_file;             /* copied from the backbone weights file */
    const uf_st_tensor *from;  /* its tensor there (NULL: a missing num_batches_tracked, 0) */
} entry;

typedef struct writer {
    int plan;            /* 1: record names and shapes only; 0: draw values and write them */
    entry *e;
    size_t n, cap, next; /* planned entries; next = index of the next one to write */
    FILE *f;
    rng r;
    int perturb, formula;
    float *buf;
    size_t cap_buf;
    uf_st *src;          /* backbone weights file, or NULL */
    const char *src_path;
    uf_error *err;
    uf_status st;
} writer;

static float *scratch(writer *w, size_t n)
{
    if (w->plan)
        return NULL;
    if (n > w->cap_buf) {
        free(w->buf);
        w->buf = malloc(sizeof(float) * n);
        w->cap_buf = w->buf ? n : 0;
        if (!w->buf && w->st == UF_OK)
            w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
    }
    return w->buf;
}

/* ---- backbone weights from a file ---------------------------------------------------- */

static const char RN_PRE[] = "feature_extractor.feature_extractor.", FE_PRE[] = "feature_extractor.";
#define RN_PRE_LEN (sizeof RN_PRE - 1)
#define FE_PRE_LEN (sizeof FE_PRE - 1)

/* Backbone tensors (ResNet stem..layer3, the two CaiTs), not the feature LayerNorms. */
static int backbone_name(const char *name)
{
    return strncmp(name, RN_PRE, RN_PRE_LEN) == 0 ||
           strncmp(name, "feature_extractor.extractor", 27) == 0;
}

static int taken(const writer *w, const char *name) { return w->src && backbone_name(name); }

/* torchvision/timm key of an anomalib backbone name: "conv1.weight" for resnets,
 * "extractor1.<timm key>" for mcait. */
static const char *bare_key(const char *name)
{
    return strncmp(name, RN_PRE, RN_PRE_LEN) == 0 ? name + RN_PRE_LEN : name + FE_PRE_LEN;
}

/* The file's tensor for an anomalib backbone name: its bare key, or the anomalib key itself
 * (with or without Lightning's "model." prefix). */
static const uf_st_tensor *src_find(const uf_st *st, const char *name)
{
    const uf_st_tensor *t = uf_st_find(st, bare_key(name));
    if (!t)
        t = uf_st_find(st, name);
    if (!t) {
        char full[256];
        snprintf(full, sizeof full, "model.%s", name);
        t = uf_st_find(st, full);
    }
    return t;
}

static void shape_str(char *s, size_t n, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(s, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(s + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n)
        snprintf(s + o, n - o, "]");
}

/* Planning pass: find and check the file's tensor for entry e. */
static void src_plan(writer *w, entry *e)
{
    e->from_file = 1;
    const uf_st_tensor *t = e->from = src_find(w->src, e->name);
    const char *bare = bare_key(e->name);
    if (e->dt == UF_DT_I64) { /* BatchNorm num_batches_tracked: unused; 0 when absent */
        if (t && !((t->dtype == UF_DT_I64 || t->dtype == UF_DT_I32) && t->numel == 1))
            w->st = uf_err(w->err, UF_ERR_TENSOR,
                           "backbone weights '%s': tensor '%s' has dtype %s and %llu elements; "
                           "expected one I64 (num_batches_tracked)",
                           w->src_path, t->name, uf_dtype_name(t->dtype), (unsigned long long)t->numel);
        return;
    }
    if (!t) {
        w->st = uf_err(w->err, UF_ERR_TENSOR, "backbone weights '%s': missing tensor '%s' (anomalib: '%s')",
                       w->src_path, bare, e->name);
        return;
    }
    int same = t->ndim == e->ndim;
    for (int i = 0; same && i < e->ndim; i++)
        same = t->shape[i] == e->shape[i];
    if (!same) {
        char got[128], want[128];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(want, sizeof want, e->ndim, e->shape);
        w->st = uf_err(w->err, UF_ERR_TENSOR,
                       "backbone weights '%s': tensor '%s' has shape %s; the model needs %s",
                       w->src_path, t->name, got, want);
        return;
    }
    if (t->dtype != UF_DT_F32 && t->dtype != UF_DT_F16 && t->dtype != UF_DT_BF16 && t->dtype != UF_DT_F64)
        w->st = uf_err(w->err, UF_ERR_TENSOR,
                       "backbone weights '%s': tensor '%s' has dtype %s; expected F32 (or F16/BF16/F64)",
                       w->src_path, t->name, uf_dtype_name(t->dtype));
}

static float half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, f = h & 1023u, bits;
    if (e == 0) {
        float v = ldexpf((float)f, -24);
        return s ? -v : v;
    }
    bits = e == 31 ? s | 0x7f800000u | (f << 13) : s | ((e + 112) << 23) | (f << 13);
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

static void to_f32(uf_dtype dt, const uint8_t *src, size_t n, float *x)
{
    for (size_t i = 0; i < n; i++) {
        if (dt == UF_DT_F32)
            memcpy(&x[i], src + 4 * i, 4);
        else if (dt == UF_DT_F64) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            x[i] = (float)d;
        } else {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            if (dt == UF_DT_F16)
                x[i] = half_to_float(h);
            else
                memcpy(&x[i], &bits, 4); /* BF16 */
        }
    }
}

/* Writing pass: stream entry e from the file, as F32 (I64 for num_batches_tracked). */
static void src_write(writer *w, const entry *e)
{
    const uf_st_tensor *t = e->from;
    if (e->dt == UF_DT_I64) {
        int64_t v = 0;
        if (t && t->dtype == UF_DT_I64)
            memcpy(&v, t->data, 8);
        else if (t) {
            int32_t v32;
            memcpy(&v32, t->data, 4);
            v = v32;
        }
        if (fwrite(&v, 8, 1, w->f) != 1)
            w->st = uf_err(w->err, UF_ERR_IO, "cannot write tensor '%s': %s", e->name, strerror(errno));
        return;
    }
    const size_t chunk = (size_t)1 << 16, n = e->bytes / 4, es = uf_dtype_size(t->dtype);
    float *x = scratch(w, UF_MIN(n, chunk));
    if (!x)
        return;
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = UF_MIN(chunk, n - i0);
        to_f32(t->dtype, (const uint8_t *)t->data + i0 * es, m, x);
        for (size_t i = 0; i < m; i++)
            if (!isfinite(x[i])) {
                w->st = uf_err(w->err, UF_ERR_TENSOR,
                               "backbone weights '%s': tensor '%s' has a non-finite value at element %zu",
                               w->src_path, t->name, i0 + i);
                return;
            }
        if (fwrite(x, 4, m, w->f) != m) {
            w->st = uf_err(w->err, UF_ERR_IO, "cannot write tensor '%s': %s", e->name, strerror(errno));
            return;
        }
    }
}

/* ---- streaming the tensors ----------------------------------------------------------- */

static void put_dt(writer *w, const char *name, uf_dtype dt, int ndim, const int64_t *shape,
                   const void *data)
{
    if (w->st != UF_OK)
        return;
    size_t bytes = uf_dtype_size(dt);
    for (int i = 0; i < ndim; i++)
        bytes *= (size_t)shape[i];
    if (w->plan) {
        if (w->n == w->cap) {
            size_t cap = w->cap ? 2 * w->cap : 256;
            entry *e = realloc(w->e, cap * sizeof *e);
            if (!e) {
                w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
                return;
            }
            w->e = e;
            w->cap = cap;
        }
        entry *e = &w->e[w->n];
        *e = (entry){.name = strdup(name), .dt = dt, .ndim = ndim, .bytes = bytes};
        if (!e->name) {
            w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
            return;
        }
        if (ndim)
            memcpy(e->shape, shape, sizeof(int64_t) * ndim);
        w->n++;
        if (taken(w, name))
            src_plan(w, e);
        return;
    }
    /* the writing pass must replay the plan exactly */
    if (w->next >= w->n || strcmp(w->e[w->next].name, name) != 0 || w->e[w->next].bytes != bytes) {
        w->st = uf_err(w->err, UF_ERR_ARG, "internal error: tensor '%s' differs from the plan", name);
        return;
    }
    const entry *e = &w->e[w->next++];
    if (e->from_file)
        src_write(w, e); /* data (if any) was drawn only to keep the generator in step */
    else if (!data)
        w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory generating '%s'", name);
    else if (bytes && fwrite(data, 1, bytes, w->f) != bytes)
        w->st = uf_err(w->err, UF_ERR_IO, "cannot write tensor '%s': %s", name, strerror(errno));
}

static void put(writer *w, const char *name, int ndim, const int64_t *shape, const float *data)
{
    put_dt(w, name, UF_DT_F32, ndim, shape, data);
}

/* A tensor filled by `kind`: 'u' U(-a, a), 'n' N(a, b), 'r' U(a, b), 'c' the constant a. */
static void fill(writer *w, const char *name, int ndim, const int64_t *shape, char kind, double a, double b)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    if (taken(w, name)) { /* from the file: skip the draws (gauss takes two per value) */
        w->r.s += (uint64_t)n * (kind == 'n' ? 2 : kind == 'c' ? 0 : 1) * SM_GAMMA;
        put(w, name, ndim, shape, NULL);
        return;
    }
    float *x = scratch(w, n);
    if (!x) {
        put(w, name, ndim, shape, NULL);
        return;
    }
    if (kind == 'u' || kind == 'r') {
        uniform_fill(x, n, w->r.s, kind == 'u', a, b);
        w->r.s += (uint64_t)n * SM_GAMMA;
    } else
        for (size_t i = 0; i < n; i++)
            x[i] = kind == 'n' ? (float)(a + b * gauss(&w->r)) : (float)a;
    put(w, name, ndim, shape, x);
}

/* The "formula" backbone of tools/uflow_ref.py: every value a pure function of its index, so
 * fixtures can omit the 11M+ backbone parameters and tests regenerate them bit-exactly. */
static void conv_bn_formula(writer *w, const char *pre, const char *conv, const char *bn, int cout,
                            int cin, int k)
{
    char name[192];
    int64_t ws[4] = {cout, cin, k, k}, cs[1] = {cout};
    size_t n = (size_t)cout * cin * k * k;
    float *x = scratch(w, n);
    double F = (double)cin * k * k;
    for (size_t i = 0; x && i < n; i++) {
        double u = (double)(((uint64_t)i * 2654435761ull) & 0xFFFFFFFFull) / 4294967296.0;
        x[i] = (float)(((u - 0.5) * 2.0) * sqrt(3.0 / F));
    }
    snprintf(name, sizeof name, "%s%s.weight", pre, conv);
    put(w, name, 4, ws, x);
    static const char *keys[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int j = 0; j < 4; j++) {
        for (int c = 0; x && c < cout; c++) {
            double d = c;
            x[c] = (float)(j == 0 ? 1.0 + 0.1 * sin(d) : j == 1 ? 0.1 * cos(d)
                           : j == 2 ? 0.05 * sin(2.0 * d) : 1.0 + 0.2 * fabs(cos(3.0 * d)));
        }
        snprintf(name, sizeof name, "%s%s.%s", pre, bn, keys[j]);
        put(w, name, 1, cs, x);
    }
}

static void conv_bn(writer *w, const char *conv, const char *bn, int cout, int cin, int k)
{
    static const char *pre = "feature_extractor.feature_extractor.";
    char name[192];
    int64_t ws[4] = {cout, cin, k, k}, cs[1] = {cout};
    if (w->formula) {
        conv_bn_formula(w, pre, conv, bn, cout, cin, k);
        goto nbt;
    }
    snprintf(name, sizeof name, "%s%s.weight", pre, conv);
    fill(w, name, 4, ws, 'n', 0, sqrt(2.0 / (cin * k * k))); /* kaiming normal, fan_in, ReLU */
    snprintf(name, sizeof name, "%s%s.weight", pre, bn);
    fill(w, name, 1, cs, w->perturb ? 'r' : 'c', w->perturb ? 0.8 : 1, 1.2);
    snprintf(name, sizeof name, "%s%s.bias", pre, bn);
    fill(w, name, 1, cs, w->perturb ? 'n' : 'c', 0, 0.1);
    snprintf(name, sizeof name, "%s%s.running_mean", pre, bn);
    fill(w, name, 1, cs, w->perturb ? 'n' : 'c', 0, 0.1);
    snprintf(name, sizeof name, "%s%s.running_var", pre, bn);
    fill(w, name, 1, cs, w->perturb ? 'r' : 'c', w->perturb ? 0.5 : 1, 1.5);
nbt:
    snprintf(name, sizeof name, "%s%s.num_batches_tracked", pre, bn);
    int64_t zero = 0;
    put_dt(w, name, UF_DT_I64, 0, NULL, &zero);
}

static void resnet_backbone(writer *w, const uf_model_info *info)
{
    int bott = info->backbone == UF_BACKBONE_WIDE_RESNET50_2;
    static const int n18[3] = {2, 2, 2}, n50[3] = {3, 4, 6};
    conv_bn(w, "conv1", "bn1", 64, 3, 7);
    int inplanes = 64;
    char cn[64], bn[64];
    for (int l = 0; l < 3; l++) {
        int planes = 64 << l, width = bott ? planes * 2 : planes, outc = bott ? planes * 4 : planes;
        for (int i = 0; i < (bott ? n50 : n18)[l]; i++) {
            int stride = (i == 0 && l > 0) ? 2 : 1;
            int cins[3] = {inplanes, width, width}, couts[3] = {width, bott ? width : outc, outc};
            int ks[3] = {bott ? 1 : 3, 3, 1};
            for (int j = 0; j < (bott ? 3 : 2); j++) {
                snprintf(cn, sizeof cn, "layer%d.%d.conv%d", l + 1, i, j + 1);
                snprintf(bn, sizeof bn, "layer%d.%d.bn%d", l + 1, i, j + 1);
                conv_bn(w, cn, bn, couts[j], cins[j], ks[j]);
            }
            if (stride != 1 || inplanes != outc) {
                snprintf(cn, sizeof cn, "layer%d.%d.downsample.0", l + 1, i);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", l + 1, i);
                conv_bn(w, cn, bn, outc, inplanes, 1);
            }
            inplanes = outc;
        }
    }
    for (int l = 0; l < 3; l++) {
        char name[96];
        int sc = info->feature_scale[l];
        int64_t shp[3] = {info->feature_channels[l], info->height / sc, info->width / sc};
        snprintf(name, sizeof name, "feature_extractor.feature_normalizations.%d.weight", l);
        fill(w, name, 3, shp, w->perturb ? 'r' : 'c', w->perturb ? 0.5 : 1, 1.5);
        snprintf(name, sizeof name, "feature_extractor.feature_normalizations.%d.bias", l);
        fill(w, name, 3, shp, w->perturb ? 'n' : 'c', 0, 0.2);
    }
}

/* The two timm CaiTs of anomalib's CaitFeatureExtractor, complete (the unused blocks, the
 * class token, the class-attention blocks and the head included, as in anomalib's
 * state_dict). timm's init: Linear weights ~ std 0.02 (drawn uniform here: fast, and the
 * fixture regenerates them bit-exactly), LayerScale gammas at init_values, LayerNorm 1/0,
 * biases 0. perturb: gammas U(0.05, 0.25), LayerNorms 1 +- 0.15 / +- 0.08, biases +- 0.08,
 * talking-heads mixings I + U(-0.35, 0.35), qkv std 0.05 (so the softmax is far from flat). */
#define STD_U(s) ((s) * 1.7320508075688772)
static void cait_linear(writer *w, const char *pre, const char *name, int out, int in, double std)
{
    char n[192];
    int64_t ws[2] = {out, in}, bs[1] = {out};
    snprintf(n, sizeof n, "%s%s.weight", pre, name);
    fill(w, n, 2, ws, 'u', STD_U(std), 0);
    snprintf(n, sizeof n, "%s%s.bias", pre, name);
    fill(w, n, 1, bs, w->perturb ? 'u' : 'c', w->perturb ? 0.08 : 0, 0);
}

static void cait_norm(writer *w, const char *pre, const char *name, int D)
{
    char n[192];
    int64_t s[1] = {D};
    snprintf(n, sizeof n, "%s%s.weight", pre, name);
    fill(w, n, 1, s, w->perturb ? 'r' : 'c', w->perturb ? 0.85 : 1, 1.15);
    snprintf(n, sizeof n, "%s%s.bias", pre, name);
    fill(w, n, 1, s, w->perturb ? 'u' : 'c', w->perturb ? 0.08 : 0, 0);
}

static void cait_gammas(writer *w, const char *pre, int D, double init)
{
    char n[192];
    int64_t s[1] = {D};
    snprintf(n, sizeof n, "%sgamma_1", pre);
    fill(w, n, 1, s, w->perturb ? 'r' : 'c', w->perturb ? 0.05 : init, 0.25);
    snprintf(n, sizeof n, "%sgamma_2", pre);
    fill(w, n, 1, s, w->perturb ? 'r' : 'c', w->perturb ? 0.05 : init, 0.25);
}

/* Talking-heads mixing Linear(H, H): I + noise (perturb) or timm's std 0.02 init. */
static void cait_heads_mix(writer *w, const char *pre, const char *name, int H)
{
    char n[192];
    int64_t ws[2] = {H, H}, bs[1] = {H};
    snprintf(n, sizeof n, "%s%s.weight", pre, name);
    if (w->perturb) {
        float *x = scratch(w, (size_t)H * H);
        if (x) {
            uniform_fill(x, (size_t)H * H, w->r.s, 1, 0.35, 0);
            for (int i = 0; i < H; i++)
                x[i * H + i] += 1.f;
        }
        w->r.s += (uint64_t)H * H * SM_GAMMA;
        put(w, n, 2, ws, x);
    } else
        fill(w, n, 2, ws, 'u', STD_U(0.02), 0);
    snprintf(n, sizeof n, "%s%s.bias", pre, name);
    fill(w, n, 1, bs, w->perturb ? 'u' : 'c', w->perturb ? 0.08 : 0, 0);
}

static void cait_model(writer *w, const char *key, int D, int H, int depth, int grid, double init)
{
    char pre[96], bp[128], n[192];
    snprintf(pre, sizeof pre, "feature_extractor.%s.", key);
    int64_t cls[3] = {1, 1, D}, pos[3] = {1, (int64_t)grid * grid, D}, pw[4] = {D, 3, 16, 16}, pb[1] = {D};
    snprintf(n, sizeof n, "%scls_token", pre);
    fill(w, n, 3, cls, 'u', STD_U(0.02), 0);
    snprintf(n, sizeof n, "%spos_embed", pre);
    fill(w, n, 3, pos, 'u', STD_U(0.02), 0);
    double a = 1.0 / sqrt(3.0 * 16 * 16); /* Conv2d default (kaiming-uniform a=sqrt 5) */
    snprintf(n, sizeof n, "%spatch_embed.proj.weight", pre);
    fill(w, n, 4, pw, 'u', a, 0);
    snprintf(n, sizeof n, "%spatch_embed.proj.bias", pre);
    fill(w, n, 1, pb, 'u', a, 0);
    for (int i = 0; i < depth && w->st == UF_OK; i++) {
        snprintf(bp, sizeof bp, "%sblocks.%d.", pre, i);
        cait_gammas(w, bp, D, init);
        cait_norm(w, bp, "norm1", D);
        cait_linear(w, bp, "attn.qkv", 3 * D, D, w->perturb ? 0.05 : 0.02);
        cait_linear(w, bp, "attn.proj", D, D, 0.02);
        cait_heads_mix(w, bp, "attn.proj_l", H);
        cait_heads_mix(w, bp, "attn.proj_w", H);
        cait_norm(w, bp, "norm2", D);
        cait_linear(w, bp, "mlp.fc1", 4 * D, D, 0.02);
        cait_linear(w, bp, "mlp.fc2", D, 4 * D, 0.02);
    }
    for (int i = 0; i < 2; i++) { /* LayerScaleBlockClassAttn (unused by U-Flow) */
        snprintf(bp, sizeof bp, "%sblocks_token_only.%d.", pre, i);
        cait_gammas(w, bp, D, init);
        cait_norm(w, bp, "norm1", D);
        cait_linear(w, bp, "attn.q", D, D, 0.02);
        cait_linear(w, bp, "attn.k", D, D, 0.02);
        cait_linear(w, bp, "attn.v", D, D, 0.02);
        cait_linear(w, bp, "attn.proj", D, D, 0.02);
        cait_norm(w, bp, "norm2", D);
        cait_linear(w, bp, "mlp.fc1", 4 * D, D, 0.02);
        cait_linear(w, bp, "mlp.fc2", D, 4 * D, 0.02);
    }
    cait_norm(w, pre, "norm", D);
    cait_linear(w, pre, "head", 1000, D, 0.02);
}

static void backbone(writer *w, const uf_model_info *info)
{
    if (info->backbone == UF_BACKBONE_MCAIT) {
        cait_model(w, "extractor1", 768, 16, 48, 28, 1e-6); /* cait_m48_448 */
        cait_model(w, "extractor2", 384, 8, 24, 14, 1e-5);  /* cait_s24_224 */
    } else
        resnet_backbone(w, info);
}

/* Random permutation (Fisher-Yates) or rotation (Gram-Schmidt on a Gaussian matrix). */
static void permutation(writer *w, int C, int soft, float *p, float *pinv)
{
    memset(p, 0, sizeof(float) * C * C);
    if (!soft) {
        int *idx = malloc(sizeof(int) * C);
        if (!idx) {
            w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
            return;
        }
        for (int i = 0; i < C; i++)
            idx[i] = i;
        for (int i = C - 1; i > 0; i--) {
            int j = (int)(next(&w->r) % (uint64_t)(i + 1)), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        for (int i = 0; i < C; i++)
            p[(size_t)i * C + idx[i]] = 1.f;
        free(idx);
    } else {
        double *q = malloc(sizeof(double) * C * C);
        if (!q) {
            w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
            return;
        }
        for (size_t i = 0; i < (size_t)C * C; i++)
            q[i] = gauss(&w->r);
        for (int i = 0; i < C; i++) { /* rows orthonormal, twice for numerical safety */
            for (int pass = 0; pass < 2; pass++)
                for (int j = 0; j < i; j++) {
                    double d = 0;
                    for (int k = 0; k < C; k++)
                        d += q[(size_t)i * C + k] * q[(size_t)j * C + k];
                    for (int k = 0; k < C; k++)
                        q[(size_t)i * C + k] -= d * q[(size_t)j * C + k];
                }
            double nrm = 0;
            for (int k = 0; k < C; k++)
                nrm += q[(size_t)i * C + k] * q[(size_t)i * C + k];
            nrm = sqrt(nrm);
            for (int k = 0; k < C; k++)
                q[(size_t)i * C + k] /= nrm;
        }
        for (size_t i = 0; i < (size_t)C * C; i++)
            p[i] = (float)q[i];
        free(q);
    }
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++)
            pinv[(size_t)j * C + i] = p[(size_t)i * C + j];
}

static void flow(writer *w, const uf_model_info *info)
{
    int K = info->n_scales, idx = 0;
    char name[128];
    for (int k = K - 1; k >= 0; k--) {
        int C = uf_flow_stage_channels(info, k), C2 = C / 2, C1 = C - C2;
        int M = (int)(C1 * info->affine_subnet_channels_ratio);
        for (int j = 0; j < info->flow_steps; j++, idx++) {
            int ks = j % 2 == 0 ? 3 : 1;
            int64_t sc[4] = {1, C, 1, 1}, pm[4] = {C, C, 1, 1}, w0[4] = {M, C1, ks, ks}, b0[1] = {M},
                    w2[4] = {2 * C2, M, ks, ks}, b2[1] = {2 * C2};
#define N(s) (snprintf(name, sizeof name, "flow.module_list.%d.%s", idx, s), name)
            /* 2*ln(e^5 - 1): softplus_{0.5} gives 10, times 0.1 = scale 1 */
            fill(w, N("global_scale"), 4, sc, w->perturb ? 'r' : 'c', w->perturb ? 7.0 : 9.986478805541992, 13.0);
            fill(w, N("global_offset"), 4, sc, w->perturb ? 'n' : 'c', 0, 0.2);
            float *p = NULL, *pi = NULL;
            if (!w->plan) {
                p = malloc(sizeof(float) * C * C);
                pi = malloc(sizeof(float) * C * C);
                if (!p || !pi)
                    w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
                else
                    permutation(w, C, info->permute_soft, p, pi);
            }
            put(w, N("w_perm"), 4, pm, p);
            put(w, N("w_perm_inv"), 4, pm, pi);
            free(p);
            free(pi);
            double a0 = 1.0 / sqrt((double)C1 * ks * ks), a2 = 1.0 / sqrt((double)M * ks * ks);
            fill(w, N("subnet.0.weight"), 4, w0, 'u', a0, 0);
            fill(w, N("subnet.0.bias"), 1, b0, 'u', a0, 0);
            if (w->perturb) {
                fill(w, N("subnet.2.weight"), 4, w2, 'n', 0, 3 * a2);
                fill(w, N("subnet.2.bias"), 1, b2, 'n', 0, 0.5);
            } else {
                fill(w, N("subnet.2.weight"), 4, w2, 'u', a2, 0);
                fill(w, N("subnet.2.bias"), 1, b2, 'u', a2, 0);
            }
        }
        if (k > 0) {
            int A = uf_flow_split_a(C);
            int64_t shp[4] = {A, 1, 2, 2};
            float *kern = scratch(w, (size_t)A * 4);
            if (kern) {
                memset(kern, 0, sizeof(float) * A * 4);
                for (int r = 0; r < A; r++) /* row 4g+k: one-hot at position k of the 2x2 */
                    kern[r * 4 + r % 4] = 1.f;
            }
            snprintf(name, sizeof name, "flow.module_list.%d.downsample_kernel", idx + 1);
            put(w, name, 4, shp, kern); /* Split is idx, IRevNetUpsampling idx+1, Concat idx+2 */
            idx += 3;
        }
#undef N
    }
}

/* The safetensors header of the planned tensors, as uf_st_writer_save lays it out (metadata
 * first, keys in order, compact JSON padded with spaces to a multiple of 8); opens w->f. */
static uf_status write_header(writer *w, const char *tmp, const char *config, uf_error *err)
{
    json_t *h = json_object(), *meta = json_object();
    if (!h || !meta) {
        json_decref(h);
        json_decref(meta);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    json_object_set_new(meta, "config", json_string(config));
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(h, "__metadata__", meta);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const entry *e = &w->e[i];
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++)
            json_array_append_new(shape, json_integer(e->shape[d]));
        json_object_set_new(h, e->name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", uf_dtype_name(e->dt), "shape",
                                      shape, "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + e->bytes)));
        off += e->bytes;
    }
    char *txt = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!txt)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    size_t tl = strlen(txt), padded = (tl + 7) & ~(size_t)7;
    if (!(w->f = fopen(tmp, "wb"))) {
        free(txt);
        return uf_err(err, UF_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, w->f) == 8 && fwrite(txt, 1, tl, w->f) == tl;
    for (size_t i = tl; ok && i < padded; i++)
        ok = fputc(' ', w->f) != EOF;
    free(txt);
    return ok ? UF_OK : uf_err(err, UF_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
}

/* The key of a backbone weights file without an anomalib prefix ("model.", then
 * "feature_extractor.feature_extractor." or "feature_extractor."). */
static const char *strip_prefixes(const char *k)
{
    if (strncmp(k, "model.", 6) == 0)
        k += 6;
    if (strncmp(k, RN_PRE, RN_PRE_LEN) == 0)
        return k + RN_PRE_LEN;
    if (strncmp(k, FE_PRE, FE_PRE_LEN) == 0)
        return k + FE_PRE_LEN;
    return k;
}

/* Which architecture a weights file holds, from its keys: "mcait", "resnet18",
 * "wide_resnet50_2", another ResNet ("resnet34", "resnet50", "another ResNet"), or NULL
 * (cannot tell). */
static const char *guess_arch(const uf_st *st)
{
    int blocks[3] = {0, 0, 0}, cait = 0, bottleneck = 0, resnet = 0;
    int64_t width = 0;
    for (size_t i = 0; i < uf_st_count(st); i++) {
        const uf_st_tensor *t = uf_st_at(st, i);
        const char *k = strip_prefixes(t->name);
        int l, b, n = 0;
        if (strncmp(k, "extractor1.", 11) == 0 || strncmp(k, "extractor2.", 11) == 0)
            cait = 1;
        else if (strcmp(k, "conv1.weight") == 0)
            resnet = 1;
        else if (sscanf(k, "layer%d.%d.%n", &l, &b, &n) == 2 && n > 0 && l >= 1 && l <= 3 && b >= 0 &&
                 b < 1000) {
            resnet = 1;
            blocks[l - 1] = UF_MAX(blocks[l - 1], b + 1);
            if (l == 1 && b == 0 && strcmp(k + n, "conv3.weight") == 0)
                bottleneck = 1;
            if (l == 1 && b == 0 && strcmp(k + n, "conv1.weight") == 0 && t->ndim == 4)
                width = t->shape[0];
        }
    }
    if (cait)
        return resnet ? NULL : "mcait";
    if (!resnet)
        return NULL;
    if (bottleneck)
        return blocks[0] == 3 && blocks[1] == 4 && blocks[2] == 6
                   ? (width == 128 ? "wide_resnet50_2" : width == 64 ? "resnet50" : "another ResNet")
                   : "another ResNet";
    if (blocks[0] == 2 && blocks[1] == 2 && blocks[2] == 2)
        return "resnet18";
    return blocks[0] == 3 && blocks[1] == 4 && blocks[2] == 6 ? "resnet34" : "another ResNet";
}

/* Open and check o->backbone_weights; provenance for the config. */
static uf_status open_weights(writer *w, const uf_create_opts *o, json_t **prov, uf_error *err)
{
    if (o->formula_backbone)
        return uf_err(err, UF_ERR_ARG, "backbone_weights and formula_backbone exclude each other");
    uf_status s = uf_st_open(o->backbone_weights, &w->src, err);
    if (s != UF_OK) {
        uf_err_prefix(err, "backbone weights"); /* the message names the file */
        return s;
    }
    w->src_path = o->backbone_weights;
    const char *kind = uf_st_meta(w->src, "uflow_backbone");
    if (kind && strcmp(kind, o->backbone) != 0)
        return uf_err(err, UF_ERR_CONFIG,
                      "backbone weights '%s' are for %s (its __metadata__ uflow_backbone) but the "
                      "model's backbone is %s",
                      w->src_path, kind, o->backbone);
    const char *guess = guess_arch(w->src);
    if (guess && strcmp(guess, o->backbone) != 0)
        return uf_err(err, UF_ERR_CONFIG,
                      "backbone weights '%s' look like %s%s%s (from their keys) but the model's "
                      "backbone is %s",
                      w->src_path, strcmp(guess, "another ResNet") ? "" : "the weights of ", guess,
                      strcmp(guess, "another ResNet") ? " weights" : "", o->backbone);
    size_t len;
    const void *bytes = uf_st_bytes(w->src, &len);
    gchar *hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256, bytes, len);
    if (!hex)
        return uf_err(err, UF_ERR_NOMEM, "out of memory hashing '%s'", w->src_path);
    const char *base = strrchr(w->src_path, '/');
    const char *source = uf_st_meta(w->src, "source");
    *prov = json_pack("{s:s,s:s,s:s}", "file", base ? base + 1 : w->src_path, "sha256", hex,
                      "source", source ? source : "unknown");
    g_free(hex);
    return *prov ? UF_OK : uf_err(err, UF_ERR_NOMEM, "out of memory");
}

uf_create_opts uf_create_opts_default(void)
{
    return (uf_create_opts){.backbone = "resnet18", .height = 256, .width = 256, .flow_steps = 4,
                            .affine_clamp = 2.0, .subnet_ratio = 1.0, .seed = 0};
}

uf_status uf_model_create_random(const uf_create_opts *o, const char *path, uf_error *err)
{
    if (!o || !path || !o->backbone)
        return uf_err(err, UF_ERR_ARG, "uf_model_create_random: NULL argument");
    json_t *cfg = json_pack("{s:s,s:[i,i],s:i,s:f,s:f,s:b,s:I,s:s,s:s}", "backbone", o->backbone,
                            "input_size", o->height, o->width, "flow_steps", o->flow_steps,
                            "affine_clamp", o->affine_clamp, "affine_subnet_channels_ratio",
                            o->subnet_ratio, "permute_soft", o->permute_soft, "seed",
                            (json_int_t)o->seed, "name", o->name ? o->name : "",
                            "description", o->description ? o->description : "");
    char *txt = cfg ? json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!txt) {
        json_decref(cfg);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    uf_model_info info = {0};
    char *nm = NULL, *ds = NULL;
    uf_status s = uf_config_parse(txt, &info, &nm, &ds, err);
    free(nm);
    free(ds);
    writer w = {.plan = 1, .perturb = o->perturb, .formula = o->formula_backbone, .err = err, .st = s};
    /* provenance of the backbone: the weights file, or how it was generated */
    json_t *prov = NULL;
    if (s == UF_OK && o->backbone_weights)
        s = w.st = open_weights(&w, o, &prov, err);
    else if (s == UF_OK) {
        char src[64];
        if (o->formula_backbone)
            snprintf(src, sizeof src, "formula (tools/uflow_ref.py)");
        else
            snprintf(src, sizeof src, "random init, seed %llu", (unsigned long long)o->seed);
        prov = json_pack("{s:s}", "source", src);
    }
    if (s == UF_OK) {
        free(txt);
        txt = NULL;
        if (prov && json_object_set_new(cfg, "backbone_weights", prov) == 0)
            txt = json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER);
        prov = NULL;
        if (!txt)
            s = w.st = uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    json_decref(prov);
    json_decref(cfg);
    const rng r0 = {o->seed * 0x2545F4914F6CDD1Dull + 1};
    if (w.st == UF_OK) {   /* planning pass: names and shapes */
        backbone(&w, &info);
        flow(&w, &info);
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (w.st == UF_OK)
        w.st = write_header(&w, tmp, txt, err);
    if (w.st == UF_OK) {   /* writing pass: the same calls, now drawing and streaming values */
        w.plan = 0;
        w.r = r0;
        backbone(&w, &info);
        flow(&w, &info);
        if (w.st == UF_OK && w.next != w.n)
            w.st = uf_err(err, UF_ERR_ARG, "internal error: %zu of %zu tensors written", w.next, w.n);
    }
    if (w.f && fclose(w.f) != 0 && w.st == UF_OK)
        w.st = uf_err(err, UF_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    /* write-then-rename: a reader (or a crash) never sees a half-written model */
    if (w.f && w.st == UF_OK && rename(tmp, path) != 0)
        w.st = uf_err(err, UF_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    if (w.f && w.st != UF_OK)
        unlink(tmp);
    for (size_t i = 0; i < w.n; i++)
        free(w.e[i].name);
    free(w.e);
    free(w.buf);
    uf_st_close(w.src);
    free(txt);
    return w.st;
}
