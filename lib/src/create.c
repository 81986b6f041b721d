/* create.c — write a seeded random-weight model with anomalib's state_dict names and order
 * (spec §3.5). The weights follow PyTorch's default inits (kaiming-uniform convs) so that
 * activations stay O(1); `perturb` re-randomises the constant-initialised parameters the
 * way the golden fixtures do (spec §9). */
#include "internal.h"
#include "model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next(rng *r)
{ /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unif(rng *r) { return ((next(r) >> 11) + 0.5) / 9007199254740992.0; }
static double gauss(rng *r) { return sqrt(-2 * log(unif(r))) * cos(6.283185307179586 * unif(r)); }

typedef struct writer {
    uf_st_writer *w;
    rng r;
    int perturb, formula;
    float *buf;
    size_t cap;
    uf_error *err;
    uf_status st;
} writer;

static float *scratch(writer *w, size_t n)
{
    if (n > w->cap) {
        free(w->buf);
        w->buf = malloc(sizeof(float) * n);
        w->cap = w->buf ? n : 0;
    }
    return w->buf;
}

static void put(writer *w, const char *name, int ndim, const int64_t *shape, const float *data)
{
    if (w->st == UF_OK)
        w->st = uf_st_writer_add(w->w, name, UF_DT_F32, ndim, shape, data, w->err);
}

/* A tensor filled by `kind`: 'u' U(-a, a), 'n' N(0, a), 'c' the constant a, 'U' U(a, 2a)-style set by caller. */
static void fill(writer *w, const char *name, int ndim, const int64_t *shape, char kind, double a, double b)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    float *x = scratch(w, n);
    if (!x) {
        w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = kind == 'u' ? (float)((2 * unif(&w->r) - 1) * a)
             : kind == 'n' ? (float)(a + b * gauss(&w->r))
             : kind == 'r' ? (float)(a + (b - a) * unif(&w->r))
                           : (float)a;
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
    if (!x) {
        w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
        return;
    }
    double F = (double)cin * k * k;
    for (size_t i = 0; i < n; i++) {
        double u = (double)(((uint64_t)i * 2654435761ull) & 0xFFFFFFFFull) / 4294967296.0;
        x[i] = (float)(((u - 0.5) * 2.0) * sqrt(3.0 / F));
    }
    snprintf(name, sizeof name, "%s%s.weight", pre, conv);
    put(w, name, 4, ws, x);
    static const char *keys[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int j = 0; j < 4; j++) {
        for (int c = 0; c < cout; c++) {
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
    if (w->st == UF_OK)
        w->st = uf_st_writer_add(w->w, name, UF_DT_I64, 0, NULL, &zero, w->err);
}

static void backbone(writer *w, const uf_model_info *info)
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
            float *p = malloc(sizeof(float) * C * C), *pi = malloc(sizeof(float) * C * C);
            if (!p || !pi)
                w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
            else {
                permutation(w, C, info->permute_soft, p, pi);
                put(w, N("w_perm"), 4, pm, p);
                put(w, N("w_perm_inv"), 4, pm, pi);
            }
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
            if (!kern) {
                w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
                return;
            }
            memset(kern, 0, sizeof(float) * A * 4);
            for (int r = 0; r < A; r++) /* row 4g+k: one-hot at position k of the 2x2 */
                kern[r * 4 + r % 4] = 1.f;
            snprintf(name, sizeof name, "flow.module_list.%d.downsample_kernel", idx + 1);
            put(w, name, 4, shp, kern); /* Split is idx, IRevNetUpsampling idx+1, Concat idx+2 */
            idx += 3;
        }
#undef N
    }
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
    json_decref(cfg);
    if (!txt)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    uf_model_info info = {0};
    char *nm = NULL, *ds = NULL;
    uf_status s = uf_config_parse(txt, &info, &nm, &ds, err);
    free(nm);
    free(ds);
    if (s == UF_OK && info.backbone == UF_BACKBONE_MCAIT)
        s = uf_err(err, UF_ERR_UNSUPPORTED, "creating mcait models is not implemented yet");
    writer w = {.w = uf_st_writer_new(), .r = {o->seed * 0x2545F4914F6CDD1Dull + 1}, .perturb = o->perturb,
                .formula = o->formula_backbone, .err = err, .st = s};
    if (!w.w && w.st == UF_OK)
        w.st = uf_err(err, UF_ERR_NOMEM, "out of memory");
    if (w.st == UF_OK) {
        backbone(&w, &info);
        flow(&w, &info);
    }
    if (w.st == UF_OK)
        w.st = uf_st_writer_meta(w.w, "config", txt, err);
    if (w.st == UF_OK)
        w.st = uf_st_writer_meta(w.w, "format", "pt", err);
    if (w.st == UF_OK)
        w.st = uf_st_writer_save(w.w, path, err);
    uf_st_writer_free(w.w);
    free(w.buf);
    free(txt);
    return w.st;
}
