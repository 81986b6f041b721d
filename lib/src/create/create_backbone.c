/* create_backbone.c — the seeded backbones of uf_model_create_random: ResNet-18 /
 * Wide-ResNet-50-2 (kaiming-normal convs, BatchNorm identity or perturbed statistics, or the
 * index "formula" of tools/uflow_ref.py) with their feature LayerNorms, and the two complete
 * timm CaiTs of mcait. Every tensor goes through uf_cw_fill/uf_cw_put, so a backbone weights
 * file can replace any of them. */
#include "create/create_backbone.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The "formula" backbone of tools/uflow_ref.py: every value a pure function of its index, so
 * fixtures can omit the 11M+ backbone parameters and tests regenerate them bit-exactly. */
static void conv_bn_formula(uf_cw_writer *w, const char *pre, const char *conv, const char *bn, int cout,
                            int cin, int k)
{
    char name[192];
    int64_t ws[4] = {cout, cin, k, k}, cs[1] = {cout};
    size_t n = (size_t)cout * cin * k * k;
    float *x = uf_cw_scratch(w, n);
    double F = (double)cin * k * k;
    for (size_t i = 0; x && i < n; i++) {
        double u = (double)(((uint64_t)i * 2654435761ull) & 0xFFFFFFFFull) / 4294967296.0;
        x[i] = (float)(((u - 0.5) * 2.0) * sqrt(3.0 / F));
    }
    snprintf(name, sizeof name, "%s%s.weight", pre, conv);
    uf_cw_put(w, name, 4, ws, x);
    static const char *keys[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int j = 0; j < 4; j++) {
        for (int c = 0; x && c < cout; c++) {
            double d = c;
            x[c] = (float)(j == 0 ? 1.0 + 0.1 * sin(d) : j == 1 ? 0.1 * cos(d)
                           : j == 2 ? 0.05 * sin(2.0 * d) : 1.0 + 0.2 * fabs(cos(3.0 * d)));
        }
        snprintf(name, sizeof name, "%s%s.%s", pre, bn, keys[j]);
        uf_cw_put(w, name, 1, cs, x);
    }
}

static void conv_bn(uf_cw_writer *w, const char *conv, const char *bn, int cout, int cin, int k)
{
    static const char *pre = "feature_extractor.feature_extractor.";
    char name[192];
    int64_t ws[4] = {cout, cin, k, k}, cs[1] = {cout};
    if (w->formula) {
        conv_bn_formula(w, pre, conv, bn, cout, cin, k);
        goto nbt;
    }
    snprintf(name, sizeof name, "%s%s.weight", pre, conv);
    uf_cw_fill(w, name, 4, ws, 'n', 0, sqrt(2.0 / (cin * k * k))); /* kaiming normal, fan_in, ReLU */
    snprintf(name, sizeof name, "%s%s.weight", pre, bn);
    uf_cw_fill(w, name, 1, cs, w->perturb ? 'r' : 'c', w->perturb ? 0.8 : 1, 1.2);
    snprintf(name, sizeof name, "%s%s.bias", pre, bn);
    uf_cw_fill(w, name, 1, cs, w->perturb ? 'n' : 'c', 0, 0.1);
    snprintf(name, sizeof name, "%s%s.running_mean", pre, bn);
    uf_cw_fill(w, name, 1, cs, w->perturb ? 'n' : 'c', 0, 0.1);
    snprintf(name, sizeof name, "%s%s.running_var", pre, bn);
    uf_cw_fill(w, name, 1, cs, w->perturb ? 'r' : 'c', w->perturb ? 0.5 : 1, 1.5);
nbt:
    snprintf(name, sizeof name, "%s%s.num_batches_tracked", pre, bn);
    int64_t zero = 0;
    uf_cw_put_dt(w, name, UF_DT_I64, 0, NULL, &zero);
}

static void resnet_backbone(uf_cw_writer *w, const uf_model_info *info)
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
        uf_cw_fill(w, name, 3, shp, w->perturb ? 'r' : 'c', w->perturb ? 0.5 : 1, 1.5);
        snprintf(name, sizeof name, "feature_extractor.feature_normalizations.%d.bias", l);
        uf_cw_fill(w, name, 3, shp, w->perturb ? 'n' : 'c', 0, 0.2);
    }
}

/* The two timm CaiTs of anomalib's CaitFeatureExtractor, complete (the unused blocks, the
 * class token, the class-attention blocks and the head included, as in anomalib's
 * state_dict). timm's init: Linear weights ~ std 0.02 (drawn uniform here: fast, and the
 * fixture regenerates them bit-exactly), LayerScale gammas at init_values, LayerNorm 1/0,
 * biases 0. perturb: gammas U(0.05, 0.25), LayerNorms 1 +- 0.15 / +- 0.08, biases +- 0.08,
 * talking-heads mixings I + U(-0.35, 0.35), qkv std 0.05 (so the softmax is far from flat). */
#define STD_U(s) ((s) * 1.7320508075688772)
static void cait_linear(uf_cw_writer *w, const char *pre, const char *name, int out, int in, double std)
{
    char n[192];
    int64_t ws[2] = {out, in}, bs[1] = {out};
    snprintf(n, sizeof n, "%s%s.weight", pre, name);
    uf_cw_fill(w, n, 2, ws, 'u', STD_U(std), 0);
    snprintf(n, sizeof n, "%s%s.bias", pre, name);
    uf_cw_fill(w, n, 1, bs, w->perturb ? 'u' : 'c', w->perturb ? 0.08 : 0, 0);
}

static void cait_norm(uf_cw_writer *w, const char *pre, const char *name, int D)
{
    char n[192];
    int64_t s[1] = {D};
    snprintf(n, sizeof n, "%s%s.weight", pre, name);
    uf_cw_fill(w, n, 1, s, w->perturb ? 'r' : 'c', w->perturb ? 0.85 : 1, 1.15);
    snprintf(n, sizeof n, "%s%s.bias", pre, name);
    uf_cw_fill(w, n, 1, s, w->perturb ? 'u' : 'c', w->perturb ? 0.08 : 0, 0);
}

static void cait_gammas(uf_cw_writer *w, const char *pre, int D, double init)
{
    char n[192];
    int64_t s[1] = {D};
    snprintf(n, sizeof n, "%sgamma_1", pre);
    uf_cw_fill(w, n, 1, s, w->perturb ? 'r' : 'c', w->perturb ? 0.05 : init, 0.25);
    snprintf(n, sizeof n, "%sgamma_2", pre);
    uf_cw_fill(w, n, 1, s, w->perturb ? 'r' : 'c', w->perturb ? 0.05 : init, 0.25);
}

/* Talking-heads mixing Linear(H, H): I + noise (perturb) or timm's std 0.02 init. */
static void cait_heads_mix(uf_cw_writer *w, const char *pre, const char *name, int H)
{
    char n[192];
    int64_t ws[2] = {H, H}, bs[1] = {H};
    snprintf(n, sizeof n, "%s%s.weight", pre, name);
    if (w->perturb) {
        float *x = uf_cw_scratch(w, (size_t)H * H);
        if (x) {
            uf_cw_uniform_fill(x, (size_t)H * H, w->r.s, 1, 0.35, 0);
            for (int i = 0; i < H; i++)
                x[i * H + i] += 1.f;
        }
        w->r.s += (uint64_t)H * H * UF_SM_GAMMA;
        uf_cw_put(w, n, 2, ws, x);
    } else
        uf_cw_fill(w, n, 2, ws, 'u', STD_U(0.02), 0);
    snprintf(n, sizeof n, "%s%s.bias", pre, name);
    uf_cw_fill(w, n, 1, bs, w->perturb ? 'u' : 'c', w->perturb ? 0.08 : 0, 0);
}

static void cait_model(uf_cw_writer *w, const char *key, int D, int H, int depth, int grid, double init)
{
    char pre[96], bp[128], n[192];
    snprintf(pre, sizeof pre, "feature_extractor.%s.", key);
    int64_t cls[3] = {1, 1, D}, pos[3] = {1, (int64_t)grid * grid, D}, pw[4] = {D, 3, 16, 16}, pb[1] = {D};
    snprintf(n, sizeof n, "%scls_token", pre);
    uf_cw_fill(w, n, 3, cls, 'u', STD_U(0.02), 0);
    snprintf(n, sizeof n, "%spos_embed", pre);
    uf_cw_fill(w, n, 3, pos, 'u', STD_U(0.02), 0);
    double a = 1.0 / sqrt(3.0 * 16 * 16); /* Conv2d default (kaiming-uniform a=sqrt 5) */
    snprintf(n, sizeof n, "%spatch_embed.proj.weight", pre);
    uf_cw_fill(w, n, 4, pw, 'u', a, 0);
    snprintf(n, sizeof n, "%spatch_embed.proj.bias", pre);
    uf_cw_fill(w, n, 1, pb, 'u', a, 0);
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

void uf_cw_backbone(uf_cw_writer *w, const uf_model_info *info)
{
    if (info->backbone == UF_BACKBONE_MCAIT) {
        cait_model(w, "extractor1", 768, 16, 48, 28, 1e-6); /* cait_m48_448 */
        cait_model(w, "extractor2", 384, 8, 24, 14, 1e-5);  /* cait_s24_224 */
    } else
        resnet_backbone(w, info);
}
