/* ckpt_meta.c — the parts of a checkpoint that are not weights: the pre-processor's transform
 * (input size, normalisation) and the post-processing statistics (ckpt.h). */
#include "core/internal.h"
#include "interop/ckpt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void uf_ckpt_note(const uf_import_opts *o, const char *fmt, ...)
{
    if (!o || !o->note)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    o->note(o->ud, msg);
}

json_t *uf_ckpt_jstr(const uf_pk *s)
{
    if (!s || (s->kind != UF_PK_STR && s->kind != UF_PK_BYTES))
        return NULL;
    json_t *j = json_stringn(s->u.s.p, s->u.s.n);
    if (j)
        return j;
    char *c = malloc(s->u.s.n + 1);
    if (!c)
        return NULL;
    for (size_t i = 0; i < s->u.s.n; i++) {
        unsigned char ch = (unsigned char)s->u.s.p[i];
        c[i] = ch >= 0x80 || ch == 0 ? '?' : (char)ch;
    }
    j = json_stringn(c, s->u.s.n);
    free(c);
    return j;
}

/* ---- transforms ------------------------------------------------------------------------------ */

/* torchvision / anomalib transform classes by their last name component. */
static int is_class(const uf_pk *p, const char *name)
{
    return p && p->kind == UF_PK_OBJECT && uf_pk_class_is(p, NULL, name);
}

static int ends_with_class(const uf_pk *p, const char *suffix)
{
    const uf_pk *g = uf_pk_class_of(p);
    if (!g || p->kind != UF_PK_OBJECT)
        return 0;
    size_t n = strlen(g->u.g.name), l = strlen(suffix);
    return n >= l && strcmp(g->u.g.name + n - l, suffix) == 0;
}

/* An image size: int s, [s], (h, w). */
static int size_of(const uf_pk *v, int *h, int *w)
{
    int64_t a, b;
    if (uf_pk_int(v, &a) && v->kind == UF_PK_INT) {
        b = a;
    } else if (v && (v->kind == UF_PK_LIST || v->kind == UF_PK_TUPLE) && v->u.seq.n >= 1 &&
               v->u.seq.n <= 2 && uf_pk_int(v->u.seq.v[0], &a)) {
        b = a;
        if (v->u.seq.n == 2 && !uf_pk_int(v->u.seq.v[1], &b))
            return 0;
    } else
        return 0;
    if (a <= 0 || b <= 0 || a > 1 << 16 || b > 1 << 16)
        return 0;
    *h = (int)a;
    *w = (int)b;
    return 1;
}

static int vec3(const uf_pk *v, double out[3])
{
    if (!v || (v->kind != UF_PK_LIST && v->kind != UF_PK_TUPLE) || v->u.seq.n != 3)
        return 0;
    for (int i = 0; i < 3; i++)
        if (!uf_pk_number(v->u.seq.v[i], &out[i]) || !isfinite(out[i]))
            return 0;
    return 1;
}

/* What a transform does to anomalib's 1x1 dummy input: the sizes it ends with (input_size is
 * computed that way), and the normalisation on the way. */
static void scan(uf_pk_doc *d, uf_pk *t, uf_ckpt_xform *x, int depth)
{
    if (!t || depth > 8 || !uf_pk_visit(d, t))
        return;
    if (ends_with_class(t, "Compose") || ends_with_class(t, "Sequential")) {
        uf_pk *list = uf_pk_attr(t, "transforms");
        if (!list) /* an nn.Sequential: its children in order */
            list = (uf_pk *)uf_pk_as_dict(uf_pk_attr(t, "_modules"));
        if (list && (list->kind == UF_PK_LIST || list->kind == UF_PK_TUPLE))
            for (size_t i = 0; i < list->u.seq.n; i++)
                scan(d, list->u.seq.v[i], x, depth + 1);
        else if (list && list->kind == UF_PK_DICT)
            for (size_t i = 1; i < list->u.seq.n; i += 2)
                scan(d, list->u.seq.v[i], x, depth + 1);
        return;
    }
    int h, w;
    const uf_pk *cls = uf_pk_class_of(t);
    if ((is_class(t, "Resize") || ends_with_class(t, "CenterCrop") || ends_with_class(t, "RandomCrop") ||
         ends_with_class(t, "RandomResizedCrop")) &&
        size_of(uf_pk_attr(t, "size"), &h, &w)) {
        x->h = h;
        x->w = w;
        snprintf(x->where, sizeof x->where, "pre-processor %s((%d, %d))", cls->u.g.name, h, w);
        return;
    }
    if (is_class(t, "Normalize")) {
        double m[3], s[3];
        if (vec3(uf_pk_attr(t, "mean"), m) && vec3(uf_pk_attr(t, "std"), s) && s[0] > 0 &&
            s[1] > 0 && s[2] > 0) {
            memcpy(x->mean, m, sizeof m);
            memcpy(x->std, s, sizeof s);
            x->have_norm = 1;
        }
    }
}

void uf_ckpt_scan_transform(uf_pk_doc *d, uf_pk *obj, uf_ckpt_xform *x)
{
    memset(x, 0, sizeof *x);
    if (!obj || obj->kind != UF_PK_OBJECT)
        return;
    uf_pk_walk_begin(d);
    /* an anomalib PreProcessor keeps its transform as a submodule (or, older, an attribute) */
    static const char *const attrs[] = {"transform", "test_transform", "val_transform", "export_transform"};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        uf_pk *t = uf_pk_attr(obj, attrs[i]);
        if (!t)
            t = uf_pk_dict_get(uf_pk_attr(obj, "_modules"), attrs[i]);
        if (t && t->kind == UF_PK_OBJECT) {
            scan(d, t, x, 0);
            return;
        }
    }
    scan(d, obj, x, 0); /* the transform itself (1.x "transform") */
}

/* ---- post-processing -------------------------------------------------------------------------- */

/* A finite scalar tensor of the state_dict, or NaN. */
static double scalar(uf_tf *tf, const uf_pk *sd, const char *key, const uf_import_opts *o)
{
    const uf_pk *v = uf_pk_dict_get(sd, key);
    uf_tf_tensor t;
    uf_error e;
    if (!v)
        return NAN;
    if (uf_tf_tensor_of(tf, v, &t, &e) != UF_OK || t.numel != 1) {
        uf_ckpt_note(o, "ignoring '%s': %s", key, t.numel != 1 ? "not a single number" : e.msg);
        return NAN;
    }
    double x = uf_tf_element(&t, 0);
    if (!isfinite(x) && !isnan(x))
        uf_ckpt_note(o, "ignoring '%s': %g (never computed)", key, x);
    return isfinite(x) ? x : NAN;
}

int uf_ckpt_postproc(uf_tf *tf, const uf_pk *sd, int v1, json_t *config, const uf_import_opts *o)
{
    static const char *const cfg[6] = {"image_threshold",  "pixel_threshold",  "pred_scores_min",
                                       "pred_scores_max",  "anomaly_maps_min", "anomaly_maps_max"};
    /* anomalib 2.x OneClassPostProcessor buffers */
    static const char *const k2[6] = {"post_processor._image_threshold", "post_processor._pixel_threshold",
                                      "post_processor.image_min",        "post_processor.image_max",
                                      "post_processor.pixel_min",        "post_processor.pixel_max"};
    /* anomalib 1.x: threshold metrics and the min-max normalisation callback's MinMax states */
    static const char *const k1[6] = {"image_threshold.value",
                                      "pixel_threshold.value",
                                      "normalization_metrics.pred_scores.min",
                                      "normalization_metrics.pred_scores.max",
                                      "normalization_metrics.anomaly_maps.min",
                                      "normalization_metrics.anomaly_maps.max"};
    /* older spellings: anomalib 2.0 pre-releases kept the metrics themselves (F1AdaptiveThreshold
     * "value", MinMax "min"/"max" states); anomalib 0.x had one MinMax for scores and maps */
    static const char *const k2b[6] = {"post_processor._image_threshold.value",
                                       "post_processor._pixel_threshold.value",
                                       "post_processor._image_normalization_stats.min",
                                       "post_processor._image_normalization_stats.max",
                                       "post_processor._pixel_normalization_stats.min",
                                       "post_processor._pixel_normalization_stats.max"};
    static const char *const k1b[6] = {"image_threshold.value", "pixel_threshold.value",
                                       "normalization_metrics.min", "normalization_metrics.max",
                                       "normalization_metrics.min", "normalization_metrics.max"};
    int n = 0;
    for (int i = 0; i < 6; i++) {
        const char *key = v1 ? k1[i] : k2[i], *alt = v1 ? k1b[i] : k2b[i];
        double v = scalar(tf, sd, uf_pk_dict_get(sd, key) || !uf_pk_dict_get(sd, alt) ? key : alt, o);
        if (!isnan(v) && json_object_set_new(config, cfg[i], json_real(v)) == 0)
            n++;
    }
    return n;
}
