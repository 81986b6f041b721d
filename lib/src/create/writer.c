/* writer.c — the two-pass streaming writer of model creation (writer.h). */
#include "create/writer.h"
#include "io/st.h"

#include <stdlib.h>
#include <string.h>

UF_CLONES
void uf_cw_uniform_fill(float *x, size_t n, uint64_t s0, int sym, double a, double b)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t z = uf_mix64(s0 + (uint64_t)(i + 1) * UF_SM_GAMMA);
        double u = ((double)(z >> 11) + 0.5) / 9007199254740992.0;
        x[i] = sym ? (float)((2 * u - 1) * a) : (float)(a + (b - a) * u);
    }
}

float *uf_cw_scratch(uf_cw_writer *w, size_t n)
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

void uf_cw_put_dt(uf_cw_writer *w, const char *name, uf_dtype dt, int ndim, const int64_t *shape,
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
            uf_cw_entry *e = realloc(w->e, cap * sizeof *e);
            if (!e) {
                w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
                return;
            }
            w->e = e;
            w->cap = cap;
        }
        uf_cw_entry *e = &w->e[w->n];
        *e = (uf_cw_entry){.name = strdup(name), .dt = dt, .ndim = ndim, .bytes = bytes};
        if (!e->name) {
            w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
            return;
        }
        if (ndim)
            memcpy(e->shape, shape, sizeof(int64_t) * ndim);
        w->n++;
        if (uf_cw_source_has(w->src, name)) {
            e->from_file = 1;
            w->st = uf_cw_source_find(w->src, name, dt, ndim, shape, &e->from, w->err);
        }
        return;
    }
    /* the writing pass must replay the plan exactly */
    if (w->next >= w->n || strcmp(w->e[w->next].name, name) != 0 || w->e[w->next].bytes != bytes) {
        w->st = uf_err(w->err, UF_ERR_ARG, "internal error: tensor '%s' differs from the plan", name);
        return;
    }
    const uf_cw_entry *e = &w->e[w->next++];
    if (e->from_file) /* data (if any) was drawn only to keep the generator in step */
        w->st = uf_cw_source_stream(w->src, e->from, e->dt, e->bytes, name, &w->out, w->err);
    else if (!data)
        w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory generating '%s'", name);
    else
        uf_afile_write(&w->out, data, bytes);
}

void uf_cw_put(uf_cw_writer *w, const char *name, int ndim, const int64_t *shape, const float *data)
{
    uf_cw_put_dt(w, name, UF_DT_F32, ndim, shape, data);
}

/* A tensor filled by `kind`: 'u' U(-a, a), 'n' N(a, b), 'r' U(a, b), 'c' the constant a. */
void uf_cw_fill(uf_cw_writer *w, const char *name, int ndim, const int64_t *shape, char kind, double a, double b)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    if (uf_cw_source_has(w->src, name)) { /* from the file: skip the draws (gauss takes two per value) */
        w->r.s += (uint64_t)n * (kind == 'n' ? 2 : kind == 'c' ? 0 : 1) * UF_SM_GAMMA;
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
        w->r.s += (uint64_t)n * UF_SM_GAMMA;
    } else
        for (size_t i = 0; i < n; i++)
            x[i] = kind == 'n' ? (float)(a + b * uf_rng_gauss(&w->r)) : (float)a;
    uf_cw_put(w, name, ndim, shape, x);
}
uf_status uf_cw_begin_writing(uf_cw_writer *w, const char *path, const char *config)
{
    if (w->st != UF_OK)
        return w->st;
    uf_st_entry *e = malloc(sizeof *e * (w->n ? w->n : 1));
    json_t *meta = json_pack("{s:s,s:s}", "config", config, "format", "pt");
    if (!e || !meta)
        w->st = uf_err(w->err, UF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; e && i < w->n; i++)
        e[i] = (uf_st_entry){w->e[i].name, w->e[i].dt, w->e[i].ndim, w->e[i].shape, w->e[i].bytes};
    if (w->st == UF_OK && (w->st = uf_afile_open(&w->out, path, w->err)) == UF_OK &&
        (w->st = uf_st_write_header(&w->out, meta, e, w->n, w->err)) != UF_OK)
        uf_afile_abort(&w->out);
    free(e);
    json_decref(meta);
    if (w->st == UF_OK) {
        w->plan = 0;
        w->next = 0;
    }
    return w->st;
}

uf_status uf_cw_finish(uf_cw_writer *w)
{
    if (w->plan) /* the file was never opened */
        return w->st;
    if (w->st == UF_OK && w->next != w->n)
        w->st = uf_err(w->err, UF_ERR_ARG, "internal error: %zu of %zu tensors written", w->next, w->n);
    if (w->st == UF_OK)
        return w->st = uf_afile_commit(&w->out, 0644, w->err);
    uf_afile_abort(&w->out);
    return w->st;
}

void uf_cw_writer_free(uf_cw_writer *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->e[i].name);
    free(w->e);
    free(w->buf);
    w->e = NULL;
    w->buf = NULL;
    w->n = w->cap = 0;
}
