/* models.c — see models.h. */
#include "models.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* ---- candidates: (name, path) pairs from the directory and the --model flags ---------- */

typedef struct cand {
    char *name, *path;
} cand;

typedef struct cands {
    int n, cap;
    cand *v;
} cands;

static void cands_free(cands *cs)
{
    for (int i = 0; i < cs->n; i++) {
        free(cs->v[i].name);
        free(cs->v[i].path);
    }
    free(cs->v);
}

static int fail_add(ufd_models *ms, ufd_load_report *rep, const char *name, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Record a file that failed (log line, report, snapshot's failure list). */
static int fail_add(ufd_models *ms, ufd_load_report *rep, const char *name, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ufd_log(UFD_ERROR, "model '%s' (%s) failed to load: %s", name, path, msg);
    rep->n_failures++;
    json_array_append_new(rep->failed, json_pack("{s:s,s:s,s:s}", "name", name, "path", path, "error", msg));
    ufd_failure *nv = realloc(ms->failed, sizeof *nv * (size_t)(ms->n_failed + 1));
    if (!nv)
        return -1;
    ms->failed = nv;
    ufd_failure *f = &ms->failed[ms->n_failed++];
    f->name = strdup(name);
    f->path = strdup(path);
    f->error = strdup(msg);
    ufd_wall_time(f->at, sizeof f->at);
    return f->name && f->path && f->error ? 0 : -1;
}

/* 0 added, 1 skipped (bad or duplicate name: reported), -1 out of memory or (at start) a
 * duplicate name. */
static int cand_add(cands *cs, ufd_models *ms, ufd_load_report *rep, int strict, const char *name, const char *path)
{
    if (!name_ok(name)) {
        ufd_log(UFD_WARN, "skipping %s: a model name may only hold letters, digits, '-', '_', '.'", path);
        return 1;
    }
    for (int i = 0; i < cs->n; i++)
        if (!strcmp(cs->v[i].name, name)) {
            if (strict) {
                ufd_log(UFD_ERROR, "two models are called '%s' (%s and %s)", name, cs->v[i].path, path);
                return -1;
            }
            return fail_add(ms, rep, name, path, "another model is already called '%s' (%s)", name, cs->v[i].path)
                       ? -1 : 1;
        }
    if (cs->n == cs->cap) {
        int nc = cs->cap ? cs->cap * 2 : 8;
        cand *nv = realloc(cs->v, sizeof *nv * (size_t)nc);
        if (!nv)
            return -1;
        cs->v = nv;
        cs->cap = nc;
    }
    cand *c = &cs->v[cs->n++];
    c->name = strdup(name);
    c->path = strdup(path);
    return c->name && c->path ? 0 : -1;
}

static int scan_dir(cands *cs, ufd_models *ms, ufd_load_report *rep, int strict, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(rep->error, sizeof rep->error, "cannot open models directory '%s': %s", dir, strerror(errno));
        ufd_log(UFD_ERROR, "%s", rep->error);
        return -1;
    }
    static const char ext[] = ".safetensors";
    const size_t next = sizeof ext - 1;
    int rc = 0;
    struct dirent *e;
    while (rc >= 0 && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= next || strcmp(e->d_name + n - next, ext) != 0 || e->d_name[0] == '.')
            continue;
        char name[256], path[4096];
        snprintf(name, sizeof name, "%.*s", (int)(n - next), e->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        rc = cand_add(cs, ms, rep, strict, name, path);
    }
    closedir(d);
    return rc < 0 ? -1 : 0;
}

/* ---- models ------------------------------------------------------------------------- */

static void model_free(ufd_model *m)
{
    if (!m)
        return;
    for (int i = 0; m->ctx && i < m->n_ctx; i++)
        uf_ctx_free(m->ctx[i]);
    free(m->ctx);
    uf_model_free(m->m);
    free(m->name);
    free(m->path);
    free(m);
}

static ufd_model *model_ref(ufd_model *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

static void model_unref(ufd_model *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        ufd_log(UFD_INFO, "model '%s' version %s released", m->name, m->info ? m->info->version : "?");
        model_free(m);
    }
}

static int same_file(const ufd_model *m, const char *path, const struct stat *st)
{
    return !strcmp(m->path, path) && m->dev == st->st_dev && m->ino == st->st_ino && m->size == st->st_size &&
           m->mtime.tv_sec == st->st_mtim.tv_sec && m->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Load a file and make its contexts; NULL with a message. */
static ufd_model *model_load(const char *name, const char *path, const struct stat *st, const ufd_ctx_spec *spec,
                             char *msg, size_t msgn)
{
    ufd_model *m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(name)) || !(m->path = strdup(path)) ||
        !(m->ctx = calloc((size_t)spec->workers, sizeof *m->ctx))) {
        snprintf(msg, msgn, "out of memory");
        model_free(m);
        return NULL;
    }
    atomic_init(&m->refs, 1);
    m->dev = st->st_dev;
    m->ino = st->st_ino;
    m->size = st->st_size;
    m->mtime = st->st_mtim;
    uf_error err = {0};
    double t0 = ufd_now();
    if (uf_model_load(path, &m->m, &err) != UF_OK) {
        snprintf(msg, msgn, "%s", err.msg);
        model_free(m);
        return NULL;
    }
    m->info = uf_model_get_info(m->m);
    uf_ctx_opts o = uf_ctx_opts_default();
    o.max_batch = 1;
    o.threads = spec->threads;
    for (int i = 0; i < spec->workers; i++) {
        uf_error e = {0};
        if (uf_ctx_init(m->m, &o, &m->ctx[i], &e) != UF_OK) {
            snprintf(msg, msgn, "context for worker %d: %.400s", i, e.msg);
            model_free(m);
            return NULL;
        }
        m->n_ctx = i + 1;
    }
    m->load_seconds = ufd_now() - t0;
    ufd_wall_time(m->loaded_at, sizeof m->loaded_at);
    return m;
}

void ufd_load_report_init(ufd_load_report *r)
{
    memset(r, 0, sizeof *r);
    r->loaded = json_array();
    r->unchanged = json_array();
    r->removed = json_array();
    r->failed = json_array();
}

void ufd_load_report_clear(ufd_load_report *r)
{
    json_decref(r->loaded);
    json_decref(r->unchanged);
    json_decref(r->removed);
    json_decref(r->failed);
    memset(r, 0, sizeof *r);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const cand *)a)->name, ((const cand *)b)->name);
}

static void snapshot_free(ufd_models *ms)
{
    for (int i = 0; i < ms->n; i++) {
        model_unref(ms->v[i].m);
        free(ms->v[i].error);
    }
    for (int i = 0; i < ms->n_failed; i++) {
        free(ms->failed[i].name);
        free(ms->failed[i].path);
        free(ms->failed[i].error);
    }
    free(ms->failed);
    free(ms->v);
    free(ms);
}

ufd_models *ufd_models_load(const ufd_config *c, const ufd_models *prev, const ufd_ctx_spec *spec,
                            ufd_load_report *rep)
{
    const int strict = prev == NULL;
    cands cs = {0};
    ufd_models *ms = calloc(1, sizeof *ms);
    if (!ms) {
        snprintf(rep->error, sizeof rep->error, "out of memory");
        return NULL;
    }
    atomic_init(&ms->refs, 1);
    ms->generation = prev ? prev->generation + 1 : 1;
    if (c->models_dir && scan_dir(&cs, ms, rep, strict, c->models_dir) != 0)
        goto fail;
    for (int i = 0; i < c->n_model; i++)
        if (cand_add(&cs, ms, rep, strict, c->model[i].name, c->model[i].path) < 0)
            goto fail;
    if (cs.n == 0) {
        snprintf(rep->error, sizeof rep->error, "no models to serve (no *.safetensors in '%s')%s",
                 c->models_dir ? c->models_dir : "", prev ? "; keeping the current ones" : "");
        ufd_log(UFD_ERROR, "%s", rep->error);
        goto fail;
    }
    qsort(cs.v, (size_t)cs.n, sizeof *cs.v, by_name);
    if (!(ms->v = calloc((size_t)cs.n, sizeof *ms->v)))
        goto oom;
    for (int i = 0; i < cs.n; i++) {
        const char *name = cs.v[i].name, *path = cs.v[i].path;
        int pi = prev ? ufd_models_find(prev, name) : -1;
        ufd_model *old = pi >= 0 ? prev->v[pi].m : NULL;
        struct stat st;
        char msg[512] = "";
        ufd_model *m = NULL;
        if (stat(path, &st) != 0) {
            snprintf(msg, sizeof msg, "cannot open %s: %s", path, strerror(errno));
        } else if (old && same_file(old, path, &st)) {
            ufd_entry *e = &ms->v[ms->n++];
            /* the file on disk is the one served: not stale, even if another file at this
             * path failed before (it was put back) */
            e->m = model_ref(old);
            json_array_append_new(rep->unchanged, json_string(name));
            continue;
        } else if ((m = model_load(name, path, &st, spec, msg, sizeof msg)) != NULL) {
            ms->v[ms->n++].m = m;
            json_array_append_new(rep->loaded, json_string(name));
            ufd_log(UFD_INFO, "model '%s' loaded from %s (%s %dx%d, version %s%s%s, %.1f ms)", name, path,
                    m->info->backbone_name, m->info->height, m->info->width, m->info->version,
                    old ? ", was " : "", old ? old->info->version : "", m->load_seconds * 1e3);
            continue;
        }
        if (fail_add(ms, rep, name, path, "%s", msg) != 0)
            goto oom;
        if (old) { /* keep serving the previous version */
            ufd_entry *e = &ms->v[ms->n++];
            e->m = model_ref(old);
            e->error = strdup(msg);
            ufd_wall_time(e->error_at, sizeof e->error_at);
            ufd_log(UFD_WARN, "model '%s': keeping version %s", name, old->info->version);
        }
    }
    if (strict && rep->n_failures > 0) {
        snprintf(rep->error, sizeof rep->error, "%d model%s failed to load", rep->n_failures,
                 rep->n_failures > 1 ? "s" : "");
        goto fail;
    }
    if (ms->n == 0) {
        snprintf(rep->error, sizeof rep->error, "no model could be loaded; keeping the current ones");
        ufd_log(UFD_ERROR, "%s", rep->error);
        goto fail;
    }
    for (int i = 0; prev && i < prev->n; i++)
        if (ufd_models_find(ms, prev->v[i].m->name) < 0) {
            json_array_append_new(rep->removed, json_string(prev->v[i].m->name));
            ufd_log(UFD_INFO, "model '%s' removed (no longer configured or on disk)", prev->v[i].m->name);
        }
    ufd_wall_time(ms->loaded_at, sizeof ms->loaded_at);
    cands_free(&cs);
    return ms;
oom:
    snprintf(rep->error, sizeof rep->error, "out of memory");
fail:
    cands_free(&cs);
    snapshot_free(ms);
    return NULL;
}

static int same_str(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

int ufd_models_same(const ufd_models *a, const ufd_models *b)
{
    if (a->n != b->n || a->n_failed != b->n_failed)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (a->v[i].m != b->v[i].m || !same_str(a->v[i].error, b->v[i].error))
            return 0;
    for (int i = 0; i < a->n_failed; i++) {
        const ufd_failure *x = &a->failed[i], *y = &b->failed[i];
        if (!same_str(x->name, y->name) || !same_str(x->path, y->path) || !same_str(x->error, y->error))
            return 0;
    }
    return 1;
}

ufd_models *ufd_models_ref(ufd_models *ms)
{
    if (ms)
        atomic_fetch_add_explicit(&ms->refs, 1, memory_order_relaxed);
    return ms;
}

void ufd_models_unref(ufd_models *ms)
{
    if (ms && atomic_fetch_sub_explicit(&ms->refs, 1, memory_order_acq_rel) == 1)
        snapshot_free(ms);
}

int ufd_models_find(const ufd_models *ms, const char *name)
{
    int lo = 0, hi = ms->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(name, ms->v[mid].m->name);
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

json_t *ufd_model_describe(const ufd_entry *e)
{
    const ufd_model *m = e->m;
    const uf_model_info *in = m->info;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(m->name));
    json_object_set_new(o, "version", json_string(in->version));
    json_object_set_new(o, "state", json_string(e->error ? "stale" : "loaded"));
    if (e->error) {
        json_object_set_new(o, "error", json_string(e->error));
        json_object_set_new(o, "error_at", json_string(e->error_at));
    }
    json_object_set_new(o, "path", json_string(m->path));
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

json_t *ufd_models_describe(const ufd_models *ms)
{
    json_t *a = json_array(), *f = json_array();
    for (int i = 0; i < ms->n; i++)
        json_array_append_new(a, ufd_model_describe(&ms->v[i]));
    for (int i = 0; i < ms->n_failed; i++)
        json_array_append_new(f, json_pack("{s:s,s:s,s:s,s:s}", "name", ms->failed[i].name, "path",
                                           ms->failed[i].path, "error", ms->failed[i].error, "at", ms->failed[i].at));
    return json_pack("{s:o,s:o,s:I,s:s}", "models", a, "failures", f, "generation", (json_int_t)ms->generation,
                     "loaded_at", ms->loaded_at);
}
