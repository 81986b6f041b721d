/* ckpt_plan.c — from a parsed torch file to what a uflow model needs (ckpt.h): which kind of
 * checkpoint it is, the U-Flow tensors under their UflowModel names, and the model config
 * (hyper-parameters, input size, post-processing, provenance). */
#include "core/internal.h"
#include "interop/ckpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MP "model."

static int starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static const char *key_of(const uf_pk *k) { return k && k->kind == UF_PK_STR ? k->u.s.p : NULL; }

/* Does any str key of dict start with prefix (or equal it, exact != 0)? */
static int has_key(const uf_pk *dict, const char *prefix, int exact)
{
    const uf_pk *d = uf_pk_as_dict(dict);
    for (size_t i = 0; d && i + 1 < d->u.seq.n; i += 2) {
        const char *k = key_of(d->u.seq.v[i]);
        if (k && (exact ? strcmp(k, prefix) == 0 : starts(k, prefix)))
            return 1;
    }
    return 0;
}

/* Is p a dict of str -> tensor with at least one tensor (a state_dict)? */
static int is_state_dict(const uf_pk *p)
{
    const uf_pk *d = uf_pk_as_dict(p);
    size_t n = 0;
    for (size_t i = 0; d && i + 1 < d->u.seq.n; i += 2)
        if (key_of(d->u.seq.v[i]) && uf_tf_is_tensor(d->u.seq.v[i + 1]))
            n++;
    return n > 0;
}

static uf_status push(uf_ckpt_plan *p, size_t *cap, const char *name, const uf_tf_tensor *t,
                      uf_error *err)
{
    if (p->n == *cap) {
        size_t c = *cap ? 2 * *cap : 256;
        uf_ckpt_tensor *v = realloc(p->t, c * sizeof *v);
        if (!v)
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        p->t = v;
        *cap = c;
    }
    p->t[p->n].name = name;
    p->t[p->n].t = *t;
    p->n++;
    return UF_OK;
}

/* The tensors under prefix (stripped), every one resolved and checked. */
static uf_status collect(uf_tf *tf, const uf_pk *sd, const char *prefix, uf_ckpt_plan *p,
                         uf_error *err)
{
    const uf_pk *d = uf_pk_as_dict(sd);
    size_t cap = 0, pl = strlen(prefix);
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
        const char *k = key_of(d->u.seq.v[i]);
        const uf_pk *v = d->u.seq.v[i + 1];
        if (!k || !starts(k, prefix) || !k[pl])
            continue;
        if (uf_pk_dict_get(d, k) != v) /* a key assigned twice: the last one counts */
            continue;
        if (!uf_tf_is_tensor(v))
            return uf_err(err, UF_ERR_TENSOR, "state_dict entry '%s' is a %s, not a tensor", k,
                          uf_pk_kind_name(v->kind));
        uf_tf_tensor t;
        uf_status s = uf_tf_tensor_of(tf, v, &t, err);
        if (s != UF_OK) {
            uf_err_prefix(err, "tensor '%s'", k);
            return s;
        }
        /* more elements than its storage holds: an overlapping view (stride 0, ...), never
         * a parameter; refused before it can make the copy arbitrarily large */
        if (t.numel > t.nbytes / t.elsize)
            return uf_err(err, UF_ERR_UNSUPPORTED, "tensor '%s' is an overlapping view of %llu "
                                                   "elements into a storage of %llu", k,
                          (unsigned long long)t.numel, (unsigned long long)(t.nbytes / t.elsize));
        if (t.dtype != UF_DT_F32 && t.dtype != UF_DT_F16 && t.dtype != UF_DT_BF16 &&
            t.dtype != UF_DT_F64 && !(t.dtype == UF_DT_I64 && strstr(k, "num_batches_tracked")))
            return uf_err(err, UF_ERR_UNSUPPORTED,
                          "tensor '%s' is stored as %s, which uflow does not read (expected "
                          "float32/16, bfloat16 or float64)",
                          k, t.type_name ? t.type_name : uf_dtype_name(t.dtype));
        if ((s = push(p, &cap, k + pl, &t, err)) != UF_OK)
            return s;
    }
    return UF_OK;
}

static const uf_ckpt_tensor *find(const uf_ckpt_plan *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->t[i].name, name) == 0)
            return &p->t[i];
    return NULL;
}

/* ---- the model config ------------------------------------------------------------------------ */

static const char *guess_backbone(const uf_ckpt_plan *p)
{
    if (find(p, "feature_extractor.extractor1.cls_token") || find(p, "feature_extractor.extractor1.pos_embed"))
        return "mcait";
    if (find(p, "feature_extractor.feature_extractor.layer1.0.conv3.weight"))
        return "wide_resnet50_2";
    return "resnet18";
}

/* Blocks per scale: AllInOneBlocks (those with a global_scale) over the number of scales. */
static int guess_flow_steps(const uf_ckpt_plan *p, const char *backbone)
{
    int blocks = 0;
    for (size_t i = 0; i < p->n; i++)
        if (starts(p->t[i].name, "flow.module_list.") && strstr(p->t[i].name, ".global_scale"))
            blocks++;
    int scales = strcmp(backbone, "mcait") == 0 ? 2 : 3;
    return blocks > 0 && blocks % scales == 0 ? blocks / scales : 0;
}

/* Every block's subnet has hidden = int(C1 * ratio) channels: the ratios all widths allow form
 * an interval; its low end is the likely round value (0.75, not 0.7539). 0 when none fits. */
static int fits(const uf_ckpt_plan *p, double r)
{
    for (size_t i = 0; i < p->n; i++) {
        const uf_tf_tensor *t = &p->t[i].t;
        if (starts(p->t[i].name, "flow.module_list.") && strstr(p->t[i].name, ".subnet.0.weight") &&
            t->ndim == 4 && (double)(int64_t)((double)t->shape[1] * r) != (double)t->shape[0])
            return 0;
    }
    return 1;
}

static double guess_ratio(const uf_ckpt_plan *p)
{
    double lo = 0, hi = 1e9;
    for (size_t i = 0; i < p->n; i++) {
        const uf_tf_tensor *t = &p->t[i].t;
        if (!starts(p->t[i].name, "flow.module_list.") || !strstr(p->t[i].name, ".subnet.0.weight"))
            continue;
        if (t->ndim != 4 || t->shape[1] <= 0 || t->shape[0] <= 0)
            return 0;
        double c = (double)t->shape[1], h = (double)t->shape[0];
        lo = h / c > lo ? h / c : lo;
        hi = (h + 1) / c < hi ? (h + 1) / c : hi;
    }
    if (lo <= 0 || lo >= hi)
        return 0;
    for (int digits = 1; digits <= 6; digits++) { /* the shortest decimal inside */
        double scale = pow(10, digits), r = ceil(lo * scale) / scale;
        if (r < hi && fits(p, r))
            return r;
    }
    return fits(p, (lo + hi) / 2) ? (lo + hi) / 2 : 0;
}

static int is_permutation(const uf_ckpt_tensor *w)
{
    if (!w || w->t.ndim != 4 || w->t.shape[0] != w->t.shape[1] || w->t.shape[0] > 4096)
        return 1;
    int64_t c = w->t.shape[0];
    for (int64_t r = 0; r < c; r++) {
        int ones = 0;
        for (int64_t j = 0; j < c; j++) {
            double v = uf_tf_element(&w->t, (uint64_t)(r * c + j));
            if (v == 1.0)
                ones++;
            else if (v != 0.0)
                return 0;
        }
        if (ones != 1)
            return 0;
    }
    return 1;
}

static uf_status hyper(const uf_pk *hp, const uf_ckpt_plan *p, const uf_import_opts *o,
                       json_t *cfg, uf_error *err)
{
    const uf_pk *b = uf_pk_dict_get(hp, "backbone");
    const char *backbone = guess_backbone(p);
    if (b && b->kind == UF_PK_STR) {
        if (strcmp(b->u.s.p, "resnet18") && strcmp(b->u.s.p, "wide_resnet50_2") && strcmp(b->u.s.p, "mcait"))
            return uf_err(err, UF_ERR_CONFIG, "hyper_parameters backbone '%.64s' is not one uflow "
                                              "runs (resnet18, wide_resnet50_2, mcait)", b->u.s.p);
        backbone = b->u.s.p;
    } else
        uf_ckpt_note(o, "backbone %s (inferred from the tensor names)", backbone);
    json_object_set_new(cfg, "backbone", json_string(backbone));

    int64_t steps;
    if (!uf_pk_int(uf_pk_dict_get(hp, "flow_steps"), &steps)) {
        steps = guess_flow_steps(p, backbone);
        if (steps <= 0)
            return uf_err(err, UF_ERR_CONFIG, "cannot tell the number of flow steps (no "
                                              "hyper_parameters flow_steps, odd flow tensors)");
        uf_ckpt_note(o, "flow_steps %lld (inferred from the flow tensors)", (long long)steps);
    }
    json_object_set_new(cfg, "flow_steps", json_integer(steps));

    double clamp;
    if (!uf_pk_number(uf_pk_dict_get(hp, "affine_clamp"), &clamp)) {
        clamp = 2.0;
        uf_ckpt_note(o, "affine_clamp 2.0 (anomalib's default; the checkpoint does not say)");
    }
    json_object_set_new(cfg, "affine_clamp", json_real(clamp));

    double ratio;
    if (!uf_pk_number(uf_pk_dict_get(hp, "affine_subnet_channels_ratio"), &ratio)) {
        if ((ratio = guess_ratio(p)) <= 0)
            return uf_err(err, UF_ERR_CONFIG, "cannot tell affine_subnet_channels_ratio (no "
                                              "hyper_parameters value, inconsistent subnet widths)");
        uf_ckpt_note(o, "affine_subnet_channels_ratio %g (inferred from subnet widths)", ratio);
    }
    json_object_set_new(cfg, "affine_subnet_channels_ratio", json_real(ratio));

    const uf_pk *ps = uf_pk_dict_get(hp, "permute_soft");
    int soft;
    if (ps && ps->kind == UF_PK_BOOL)
        soft = (int)ps->u.i;
    else {
        soft = !is_permutation(find(p, "flow.module_list.0.w_perm"));
        uf_ckpt_note(o, "permute_soft %s (inferred from w_perm)", soft ? "true" : "false");
    }
    json_object_set_new(cfg, "permute_soft", json_boolean(soft));
    return UF_OK;
}

/* hyper_parameters["input_size"]: N, [H, W] or (H, W). */
static int hp_size(const uf_pk *v, int *h, int *w)
{
    int64_t a, b;
    if (v && v->kind == UF_PK_INT && uf_pk_int(v, &a))
        b = a;
    else if (!v || (v->kind != UF_PK_LIST && v->kind != UF_PK_TUPLE) || v->u.seq.n != 2 ||
             !uf_pk_int(v->u.seq.v[0], &a) || !uf_pk_int(v->u.seq.v[1], &b))
        return 0;
    if (a <= 0 || b <= 0 || a > 4096 || b > 4096)
        return 0;
    *h = (int)a;
    *w = (int)b;
    return 1;
}

/* Input size: the option, the pre-processor, hyper_parameters (0.x), the feature LayerNorm
 * shapes (ResNets), 448. */
static uf_status input_size(uf_tf *tf, const uf_pk *root, const uf_pk *hp, const uf_ckpt_plan *p,
                            const uf_import_opts *o, json_t *cfg, json_t *prov, uf_error *err)
{
    uf_ckpt_xform x;
    uf_pk *pre = uf_pk_dict_get(hp, "pre_processor");
    if (!pre || pre->kind != UF_PK_OBJECT)
        pre = uf_pk_dict_get(root, "transform"); /* anomalib 1.x */
    uf_ckpt_scan_transform(uf_tf_doc(tf), pre, &x);
    const char *backbone = json_string_value(json_object_get(cfg, "backbone"));
    int lh = 0, lw = 0;
    const uf_ckpt_tensor *ln = find(p, "feature_extractor.feature_normalizations.0.weight");
    if (strcmp(backbone, "mcait") != 0 && ln && ln->t.ndim == 3 && ln->t.shape[1] > 0 &&
        ln->t.shape[1] <= 1024 && ln->t.shape[2] > 0 && ln->t.shape[2] <= 1024) {
        lh = (int)ln->t.shape[1] * 4;
        lw = (int)ln->t.shape[2] * 4;
    }
    int h, w;
    const char *from;
    char buf[128];
    if (o && o->height > 0) {
        h = o->height;
        w = o->width > 0 ? o->width : o->height;
        from = "--input-size";
    } else if (x.h > 0) {
        h = x.h;
        w = x.w;
        from = x.where;
    } else if (hp_size(uf_pk_dict_get(hp, "input_size"), &h, &w)) { /* anomalib 0.x */
        from = "hyper_parameters input_size";
    } else if (lh) {
        h = lh;
        w = lw;
        from = "feature LayerNorm shapes";
        uf_ckpt_note(o, "input size %dx%d from the feature LayerNorm shapes (no pre-processor in "
                        "the checkpoint)", h, w);
    } else {
        h = w = 448;
        from = "anomalib default";
        uf_ckpt_note(o, "input size 448x448: anomalib's default (no pre-processor in the "
                        "checkpoint; --input-size overrides)");
    }
    if (lh && (h != lh || w != lw))
        return uf_err(err, UF_ERR_CONFIG, "input size %dx%d (%s) contradicts the feature "
                                          "LayerNorm shapes, which imply %dx%d", h, w, from, lh, lw);
    json_object_set_new(cfg, "input_size", h == w ? json_integer(h) : json_pack("[i,i]", h, w));
    snprintf(buf, sizeof buf, "%s", from);
    json_object_set_new(prov, "input_size_from", json_string(buf));
    if (x.have_norm) {
        json_object_set_new(cfg, "mean", json_pack("[f,f,f]", x.mean[0], x.mean[1], x.mean[2]));
        json_object_set_new(cfg, "std", json_pack("[f,f,f]", x.std[0], x.std[1], x.std[2]));
    }
    return UF_OK;
}

static void prov_str(json_t *prov, const char *key, const uf_pk *v)
{
    json_t *j = uf_ckpt_jstr(v);
    if (j)
        json_object_set_new(prov, key, j);
}

static void prov_int(json_t *prov, const char *key, const uf_pk *v)
{
    int64_t i;
    if (v && v->kind == UF_PK_INT && uf_pk_int(v, &i))
        json_object_set_new(prov, key, json_integer(i));
}

/* An anomalib version string, when some pickled object carries one. */
static const uf_pk *anomalib_version(const uf_pk *root, const uf_pk *hp)
{
    const uf_pk *v = uf_pk_dict_get(root, "anomalib_version");
    return v ? v : uf_pk_dict_get(hp, "anomalib_version");
}

uf_status uf_ckpt_plan_build(uf_tf *tf, const uf_import_opts *o, const char *src_name,
                             const char *sha256, uf_ckpt_plan *plan, uf_error *err)
{
    memset(plan, 0, sizeof *plan);
    const uf_pk *root = uf_tf_root(tf);
    const uf_pk *sd = NULL, *hp = NULL;
    const char *prefix = "";
    int v1 = 0, lightning = 0;
    if (uf_pk_as_dict(root) && (sd = uf_pk_dict_get(root, "state_dict")) && uf_pk_as_dict(sd)) {
        lightning = 1;
        prefix = MP;
        hp = uf_pk_dict_get(root, "hyper_parameters");
        int has2 = has_key(sd, "post_processor.", 0) || uf_pk_dict_get(hp, "pre_processor");
        v1 = !has2 && (has_key(sd, "image_threshold.", 0) || has_key(sd, "normalization_metrics.", 0) ||
                       uf_pk_dict_get(root, "transform"));
        plan->kind = has2 ? "anomalib 2.x Lightning checkpoint"
                     : v1 ? "anomalib 1.x checkpoint"
                          : "Lightning checkpoint";
    } else if (is_state_dict(root)) {
        sd = root;
        prefix = has_key(sd, MP "flow.", 0) ? MP : "";
        plan->kind = *prefix ? "Lightning state_dict" : "UflowModel state_dict";
    } else
        return uf_err(err, UF_ERR_CONFIG,
                      "not a checkpoint or state_dict: the pickled object is a %s without tensors",
                      root ? uf_pk_kind_name(root->kind) : "nothing");
    uf_status s = collect(tf, sd, prefix, plan, err);
    if (s != UF_OK)
        return s;
    if (!find(plan, "flow.module_list.0.global_scale") || !has_key(sd, prefix, 0)) {
        const uf_pk *d = uf_pk_as_dict(sd);
        const char *eg = d && d->u.seq.n ? key_of(d->u.seq.v[0]) : NULL;
        return uf_err(err, UF_ERR_CONFIG,
                      "not a U-Flow checkpoint: no '%sflow.module_list.0.global_scale' among its "
                      "%zu %stensors%s%s%s",
                      prefix, plan->n, *prefix ? "'model.' " : "", eg ? " (first key '" : "",
                      eg ? eg : "", eg ? "')" : "");
    }
    json_t *cfg = json_object(), *prov = json_object();
    if (!cfg || !prov) {
        json_decref(cfg);
        json_decref(prov);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    plan->config = cfg;
    if ((s = hyper(hp, plan, o, cfg, err)) != UF_OK ||
        (s = input_size(tf, root, hp, plan, o, cfg, prov, err)) != UF_OK) {
        json_decref(prov);
        return s;
    }
    if (o && o->name)
        json_object_set_new(cfg, "name", json_string(o->name));
    int npp = uf_ckpt_postproc(tf, sd, v1, cfg, o);
    if (lightning && npp == 0)
        uf_ckpt_note(o, "no post-processing statistics in the checkpoint: scores stay raw "
                        "(uflow eval --calibrate can add them)");
    double sens;
    const uf_pk *post = uf_pk_dict_get(hp, "post_processor");
    if (uf_pk_number(uf_pk_attr(post, "image_sensitivity"), &sens) && sens >= 0 && sens <= 1)
        json_object_set_new(cfg, "image_sensitivity", json_real(sens));

    if (src_name) {
        const char *base = strrchr(src_name, '/');
        json_object_set_new(prov, "file", json_string(base ? base + 1 : src_name));
    }
    if (sha256)
        json_object_set_new(prov, "sha256", json_string(sha256));
    json_object_set_new(prov, "kind", json_string(plan->kind));
    json_object_set_new(prov, "serialization",
                        json_string(uf_tf_get_format(tf) == UF_TF_ZIP ? "torch zip" : "torch legacy"));
    prov_str(prov, "pytorch_lightning_version", uf_pk_dict_get(root, "pytorch-lightning_version"));
    prov_str(prov, "anomalib_version", anomalib_version(root, hp));
    if (lightning) {
        prov_int(prov, "epoch", uf_pk_dict_get(root, "epoch"));
        prov_int(prov, "global_step", uf_pk_dict_get(root, "global_step"));
    }
    json_object_set_new(prov, "uflow_version", json_string(UF_VERSION_STRING));
    json_object_set_new(cfg, "imported_from", prov);
    return UF_OK;
}

void uf_ckpt_plan_free(uf_ckpt_plan *p)
{
    if (!p)
        return;
    json_decref(p->config);
    free(p->t);
    memset(p, 0, sizeof *p);
}
