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
#include "core/internal.h"
#include "create/create.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* n draws of unif() at once: 'u' (2u - 1) a, 'r' a + (b - a) u; the same values as n calls. */
UF_CLONES
void uf_cw_uniform_fill(float *x, size_t n, uint64_t s0, int sym, double a, double b)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t z = mix64(s0 + (uint64_t)(i + 1) * SM_GAMMA);
        double u = ((double)(z >> 11) + 0.5) / 9007199254740992.0;
        x[i] = sym ? (float)((2 * u - 1) * a) : (float)(a + (b - a) * u);
    }
}

float *uf_cw_scratch(writer *w, size_t n)
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
/* ---- streaming the tensors ----------------------------------------------------------- */

void uf_cw_put_dt(writer *w, const char *name, uf_dtype dt, int ndim, const int64_t *shape,
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
        if (uf_cw_taken(w, name))
            uf_cw_src_plan(w, e);
        return;
    }
    /* the writing pass must replay the plan exactly */
    if (w->next >= w->n || strcmp(w->e[w->next].name, name) != 0 || w->e[w->next].bytes != bytes) {
        w->st = uf_err(w->err, UF_ERR_ARG, "internal error: tensor '%s' differs from the plan", name);
        return;
    }
    const entry *e = &w->e[w->next++];
    if (e->from_file)
        uf_cw_src_write(w, e); /* data (if any) was drawn only to keep the generator in step */
    else if (!data)
        w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory generating '%s'", name);
    else if (bytes && fwrite(data, 1, bytes, w->f) != bytes)
        w->st = uf_err(w->err, UF_ERR_IO, "cannot write tensor '%s': %s", name, strerror(errno));
}

void uf_cw_put(writer *w, const char *name, int ndim, const int64_t *shape, const float *data)
{
    uf_cw_put_dt(w, name, UF_DT_F32, ndim, shape, data);
}

/* A tensor filled by `kind`: 'u' U(-a, a), 'n' N(a, b), 'r' U(a, b), 'c' the constant a. */
void uf_cw_fill(writer *w, const char *name, int ndim, const int64_t *shape, char kind, double a, double b)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    if (uf_cw_taken(w, name)) { /* from the file: skip the draws (gauss takes two per value) */
        w->r.s += (uint64_t)n * (kind == 'n' ? 2 : kind == 'c' ? 0 : 1) * SM_GAMMA;
        uf_cw_put(w, name, ndim, shape, NULL);
        return;
    }
    float *x = uf_cw_scratch(w, n);
    if (!x) {
        uf_cw_put(w, name, ndim, shape, NULL);
        return;
    }
    if (kind == 'u' || kind == 'r') {
        uf_cw_uniform_fill(x, n, w->r.s, kind == 'u', a, b);
        w->r.s += (uint64_t)n * SM_GAMMA;
    } else
        for (size_t i = 0; i < n; i++)
            x[i] = kind == 'n' ? (float)(a + b * gauss(&w->r)) : (float)a;
    uf_cw_put(w, name, ndim, shape, x);
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
        }
        if (k > 0) {
            int A = uf_flow_split_a(C);
            int64_t shp[4] = {A, 1, 2, 2};
            float *kern = uf_cw_scratch(w, (size_t)A * 4);
            if (kern) {
                memset(kern, 0, sizeof(float) * A * 4);
                for (int r = 0; r < A; r++) /* row 4g+k: one-hot at position k of the 2x2 */
                    kern[r * 4 + r % 4] = 1.f;
            }
            snprintf(name, sizeof name, "flow.module_list.%d.downsample_kernel", idx + 1);
            uf_cw_put(w, name, 4, shp, kern); /* Split is idx, IRevNetUpsampling idx+1, Concat idx+2 */
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
        s = w.st = uf_cw_open_weights(&w, o, &prov, err);
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
        uf_cw_backbone(&w, &info);
        flow(&w, &info);
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (w.st == UF_OK)
        w.st = write_header(&w, tmp, txt, err);
    if (w.st == UF_OK) {   /* writing pass: the same calls, now drawing and streaming values */
        w.plan = 0;
        w.r = r0;
        uf_cw_backbone(&w, &info);
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
