/* models.c — see models.h. */
#include "models.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "route.h"
#include "util.h"

/* Names appear in URLs and metric labels: letters, digits, '-', '_', '.' only. */
static int name_ok(const char *s)
{
    if (!*s || strlen(s) >= UFD_MODEL_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static int add(ufd_models *ms, int *cap, const char *name, const char *path)
{
    if (!name_ok(name)) {
        ufd_log(UFD_WARN, "skipping %s: a model name may only hold letters, digits, '-', '_', '.'", path);
        return 0;
    }
    for (int i = 0; i < ms->n; i++)
        if (!strcmp(ms->v[i].name, name)) {
            ufd_log(UFD_ERROR, "two models are called '%s' (%s and %s)", name, ms->v[i].path, path);
            return -1;
        }
    if (ms->n == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        ufd_model *nv = realloc(ms->v, sizeof *nv * (size_t)nc);
        if (!nv)
            return -1;
        ms->v = nv;
        *cap = nc;
    }
    ufd_model *m = &ms->v[ms->n++];
    memset(m, 0, sizeof *m);
    m->name = strdup(name);
    m->path = strdup(path);
    return m->name && m->path ? 0 : -1;
}

static int scan_dir(ufd_models *ms, int *cap, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        ufd_log(UFD_ERROR, "cannot open models directory '%s'", dir);
        return -1;
    }
    static const char ext[] = ".safetensors";
    const size_t next = sizeof ext - 1;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= next || strcmp(e->d_name + n - next, ext) != 0 || e->d_name[0] == '.')
            continue;
        char name[256], path[4096];
        snprintf(name, sizeof name, "%.*s", (int)(n - next), e->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        rc = add(ms, cap, name, path);
    }
    closedir(d);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const ufd_model *)a)->name, ((const ufd_model *)b)->name);
}

ufd_models *ufd_models_load(const ufd_config *c, int *failures)
{
    *failures = 0;
    ufd_models *ms = calloc(1, sizeof *ms);
    int cap = 0;
    if (!ms)
        return NULL;
    if (c->models_dir && scan_dir(ms, &cap, c->models_dir) != 0)
        goto fail;
    for (int i = 0; i < c->n_model; i++)
        if (add(ms, &cap, c->model[i].name, c->model[i].path) != 0)
            goto fail;
    if (ms->n == 0) {
        ufd_log(UFD_ERROR, "no models to serve (no *.safetensors in '%s')", c->models_dir ? c->models_dir : "");
        goto fail;
    }
    qsort(ms->v, (size_t)ms->n, sizeof *ms->v, by_name);
    for (int i = 0; i < ms->n; i++) {
        ufd_model *m = &ms->v[i];
        uf_error err = {0};
        double t0 = ufd_now();
        if (uf_model_load(m->path, &m->m, &err) != UF_OK) {
            ufd_log(UFD_ERROR, "model '%s' failed to load: %s", m->name, err.msg);
            (*failures)++;
            continue;
        }
        m->load_seconds = ufd_now() - t0;
        m->info = uf_model_get_info(m->m);
        ufd_wall_time(m->loaded_at, sizeof m->loaded_at);
        ufd_log(UFD_INFO, "model '%s' loaded from %s (%s %dx%d, version %s, %.1f ms)", m->name, m->path,
                m->info->backbone_name, m->info->height, m->info->width, m->info->version,
                m->load_seconds * 1e3);
    }
    if (*failures == 0)
        return ms;
fail:
    ufd_models_free(ms);
    return NULL;
}

void ufd_models_free(ufd_models *ms)
{
    if (!ms)
        return;
    for (int i = 0; i < ms->n; i++) {
        uf_model_free(ms->v[i].m);
        free(ms->v[i].name);
        free(ms->v[i].path);
    }
    free(ms->v);
    free(ms);
}

int ufd_models_find(const ufd_models *ms, const char *name)
{
    int lo = 0, hi = ms->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(name, ms->v[mid].name);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

static json_t *num_or_null(float v) { return isnan(v) ? json_null() : json_real(v); }

json_t *ufd_model_describe(const ufd_model *m)
{
    const uf_model_info *in = m->info;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(m->name));
    json_object_set_new(o, "version", json_string(in->version));
    json_object_set_new(o, "state", json_string("loaded"));
    json_object_set_new(o, "backbone", json_string(in->backbone_name));
    json_t *size = json_object();
    json_object_set_new(size, "height", json_integer(in->height));
    json_object_set_new(size, "width", json_integer(in->width));
    json_object_set_new(size, "channels", json_integer(3));
    json_object_set_new(o, "input", size);
    json_t *scales = json_array();
    for (int k = 0; k < in->n_scales; k++) {
        json_t *s = json_object();
        json_object_set_new(s, "feature_channels", json_integer(in->feature_channels[k]));
        json_object_set_new(s, "downsampling", json_integer(in->feature_scale[k]));
        json_object_set_new(s, "z_shape", json_pack("[iii]", in->z_channels[k], in->z_height[k], in->z_width[k]));
        json_array_append_new(scales, s);
    }
    json_object_set_new(o, "scales", scales);
    json_object_set_new(o, "flow_steps", json_integer(in->flow_steps));
    json_object_set_new(o, "n_params", json_integer((json_int_t)in->n_params));
    json_object_set_new(o, "file_bytes", json_integer((json_int_t)in->file_bytes));
    json_object_set_new(o, "has_postproc", json_boolean(in->has_postproc));
    if (in->has_postproc) {
        json_t *p = json_object();
        json_object_set_new(p, "image_threshold", num_or_null(in->post.image_threshold));
        json_object_set_new(p, "pixel_threshold", num_or_null(in->post.pixel_threshold));
        json_object_set_new(p, "pred_scores_min", num_or_null(in->post.pred_scores_min));
        json_object_set_new(p, "pred_scores_max", num_or_null(in->post.pred_scores_max));
        json_object_set_new(p, "image_sensitivity", num_or_null(in->post.image_sensitivity));
        json_object_set_new(o, "postproc", p);
    }
    json_object_set_new(o, "description", json_string(in->description ? in->description : ""));
    json_object_set_new(o, "loaded_at", json_string(m->loaded_at));
    json_object_set_new(o, "load_ms", json_real(m->load_seconds * 1e3));
    json_t *cfg = in->config_json ? json_loads(in->config_json, 0, NULL) : NULL;
    json_object_set_new(o, "config", cfg ? cfg : json_null());
    return o;
}
