/* create.c — write a seeded random-weight model with anomalib's state_dict names and order
 * (docs/uflow-math.md "Parameter names"). The weights follow PyTorch's default inits (kaiming-uniform convs) so that
 * activations stay O(1); `perturb` re-randomises the constant-initialised parameters the
 * way the golden fixtures do (docs/uflow-math.md "Test fixtures").
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
#include "core/internal.h"
#include "create/create_backbone.h"
#include "create/create_weights.h"
#include "create/writer.h"
#include "models/config.h"
#include "models/flow.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Random permutation (Fisher-Yates) or rotation (Gram-Schmidt on a Gaussian matrix). */
static void permutation(uf_cw_writer *w, int C, int soft, float *p, float *pinv)
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
            int j = (int)(uf_rng_next(&w->r) % (uint64_t)(i + 1)), t = idx[i];
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
            q[i] = uf_rng_gauss(&w->r);
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

static void flow(uf_cw_writer *w, const uf_model_info *info)
{
    char name[128];
    for (int k = info->n_scales - 1; k >= 0; k--) {
        for (int j = 0; j < info->flow_steps; j++) {
            uf_flow_block_shape b = uf_flow_block_shape_of(info, k, j);
            int C = b.C, C1 = b.C1, C2 = b.C2, M = b.M, ks = b.k;
            int idx = uf_flow_block_index(info, k, j);
            int64_t sc[4] = {1, C, 1, 1}, pm[4] = {C, C, 1, 1}, w0[4] = {M, C1, ks, ks}, b0[1] = {M},
                    w2[4] = {2 * C2, M, ks, ks}, b2[1] = {2 * C2};
#define N(s) uf_flow_param_name(name, sizeof name, idx, s)
            /* 2*ln(e^5 - 1): softplus_{0.5} gives 10, times 0.1 = scale 1 */
            uf_cw_fill(w, N("global_scale"), 4, sc, w->perturb ? 'r' : 'c', w->perturb ? 7.0 : 9.986478805541992, 13.0);
            uf_cw_fill(w, N("global_offset"), 4, sc, w->perturb ? 'n' : 'c', 0, 0.2);
            float *p = NULL, *pi = NULL;
            if (!w->plan) {
                p = malloc(sizeof(float) * C * C);
                pi = malloc(sizeof(float) * C * C);
                if (!p || !pi)
                    w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
                else
                    permutation(w, C, info->permute_soft, p, pi);
            }
            uf_cw_put(w, N("w_perm"), 4, pm, p);
            uf_cw_put(w, N("w_perm_inv"), 4, pm, pi);
            free(p);
            free(pi);
            double a0 = 1.0 / sqrt((double)C1 * ks * ks), a2 = 1.0 / sqrt((double)M * ks * ks);
            uf_cw_fill(w, N("subnet.0.weight"), 4, w0, 'u', a0, 0);
            uf_cw_fill(w, N("subnet.0.bias"), 1, b0, 'u', a0, 0);
            if (w->perturb) {
                uf_cw_fill(w, N("subnet.2.weight"), 4, w2, 'n', 0, 3 * a2);
                uf_cw_fill(w, N("subnet.2.bias"), 1, b2, 'n', 0, 0.5);
            } else {
                uf_cw_fill(w, N("subnet.2.weight"), 4, w2, 'u', a2, 0);
                uf_cw_fill(w, N("subnet.2.bias"), 1, b2, 'u', a2, 0);
            }
#undef N
        }
        if (k > 0) {
            int A = uf_flow_split_a(uf_flow_stage_channels(info, k));
            int64_t shp[4] = {A, 1, 2, 2};
            float *kern = NULL;
            if (!w->plan && (kern = uf_cw_scratch(w, (size_t)A * 4))) {
                memset(kern, 0, sizeof(float) * (size_t)A * 4);
                for (int r = 0; r < A; r++) /* row 4g+k: one-hot at position k of the 2x2 */
                    kern[r * 4 + r % 4] = 1.f;
            }
            uf_flow_param_name(name, sizeof name, uf_flow_upsample_index(info, k), "downsample_kernel");
            uf_cw_put(w, name, 4, shp, kern);
        }
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
    if (!txt) {
        json_decref(cfg);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    uf_model_info info = {0};
    char *nm = NULL, *ds = NULL;
    uf_status s = uf_config_parse(txt, &info, &nm, &ds, err);
    free(nm);
    free(ds);
    uf_cw_writer w = {.plan = 1, .perturb = o->perturb, .formula = o->formula_backbone, .err = err,
                      .st = s};
    uf_cw_source *src = NULL;
    /* provenance of the backbone: the weights file, or how it was generated */
    json_t *prov = NULL;
    if (s == UF_OK && o->backbone_weights && o->formula_backbone)
        s = w.st = uf_err(err, UF_ERR_ARG, "backbone_weights and formula_backbone exclude each other");
    else if (s == UF_OK && o->backbone_weights)
        s = w.st = uf_cw_source_open(o->backbone_weights, o->backbone, &src, &prov, err);
    else if (s == UF_OK) {
        char sname[64];
        if (o->formula_backbone)
            snprintf(sname, sizeof sname, "formula (tools/uflow_ref.py)");
        else
            snprintf(sname, sizeof sname, "random init, seed %llu", (unsigned long long)o->seed);
        prov = json_pack("{s:s}", "source", sname);
    }
    w.src = src;
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
    const uf_rng r0 = {o->seed * 0x2545F4914F6CDD1Dull + 1};
    if (w.st == UF_OK) {   /* planning pass: names and shapes */
        uf_cw_backbone(&w, &info);
        flow(&w, &info);
    }
    if (uf_cw_begin_writing(&w, path, txt) == UF_OK) { /* the same calls, drawing and streaming */
        w.r = r0;
        uf_cw_backbone(&w, &info);
        flow(&w, &info);
    }
    uf_cw_finish(&w);
    uf_cw_writer_free(&w);
    uf_cw_source_close(src);
    free(txt);
    return w.st;
}
