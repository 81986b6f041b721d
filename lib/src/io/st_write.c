/* st_write.c — writing safetensors files: the header writer (st.h) and the in-memory writer
 * of uflow.h (uf_st_writer_*), both through uf_afile. */
#include "core/internal.h"
#include "io/st.h"

#include <stdlib.h>
#include <string.h>

uf_status uf_st_write_header(uf_afile *a, const json_t *meta, const uf_st_entry *e, size_t n,
                             uf_error *err)
{
    json_t *h = json_object();
    if (!h)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    if (meta && json_object_size(meta) && json_object_set(h, "__metadata__", (json_t *)meta) != 0) {
        json_decref(h);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; shape && d < e[i].ndim; d++)
            json_array_append_new(shape, json_integer(e[i].shape[d]));
        json_t *t = shape ? json_pack("{s:s,s:o,s:[I,I]}", "dtype", uf_dtype_name(e[i].dt), "shape",
                                      shape, "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + e[i].bytes))
                          : NULL;
        if (!t || json_object_set_new(h, e[i].name, t) != 0) {
            json_decref(h);
            return uf_err(err, UF_ERR_NOMEM, "out of memory building the header");
        }
        off += e[i].bytes;
    }
    char *txt = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!txt)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    size_t tl = strlen(txt), padded = (tl + 7) & ~(size_t)7;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    uf_afile_write(a, len8, 8);
    uf_afile_write(a, txt, tl);
    static const char spaces[8] = "        ";
    uf_afile_write(a, spaces, padded - tl);
    free(txt);
    return UF_OK;
}

typedef struct wentry {
    char *name;
    uf_dtype dt;
    int ndim;
    int64_t shape[UF_ST_MAX_DIMS];
    void *data;
    size_t bytes;
} wentry;

struct uf_st_writer {
    wentry *e;
    size_t n, cap;
    json_t *meta;
};

uf_st_writer *uf_st_writer_new(void)
{
    uf_st_writer *w = calloc(1, sizeof *w);
    if (w && !(w->meta = json_object())) {
        free(w);
        return NULL;
    }
    return w;
}

void uf_st_writer_free(uf_st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].data);
    }
    free(w->e);
    json_decref(w->meta);
    free(w);
}

uf_status uf_st_writer_add(uf_st_writer *w, const char *name, uf_dtype dt, int ndim,
                           const int64_t *shape, const void *data, uf_error *err)
{
    if (ndim < 0 || ndim > UF_ST_MAX_DIMS || dt >= UF_DT_COUNT || strcmp(name, "__metadata__") == 0)
        return uf_err(err, UF_ERR_ARG, "tensor '%s': bad dtype, rank or name", name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return uf_err(err, UF_ERR_ARG, "tensor '%s': negative dimension", name);
        numel *= (size_t)shape[i];
    }
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return uf_err(err, UF_ERR_ARG, "tensor '%s' added twice", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        wentry *e = realloc(w->e, cap * sizeof *e);
        if (!e)
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        w->e = e;
        w->cap = cap;
    }
    wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->bytes = numel * uf_dtype_size(dt);
    e->name = strdup(name);
    e->data = malloc(e->bytes ? e->bytes : 1);
    if (!e->name || !e->data) {
        free(e->name);
        free(e->data);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    if (e->bytes)
        memcpy(e->data, data, e->bytes);
    e->dt = dt;
    e->ndim = ndim;
    if (ndim) /* shape may be NULL for a 0-d tensor; memcpy(_, NULL, 0) is undefined */
        memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    w->n++;
    return UF_OK;
}

uf_status uf_st_writer_meta(uf_st_writer *w, const char *key, const char *value, uf_error *err)
{
    if (json_object_set_new(w->meta, key, json_string(value)) != 0)
        return uf_err(err, UF_ERR_ARG, "metadata '%s' is not valid UTF-8", key);
    return UF_OK;
}

uf_status uf_st_writer_save(const uf_st_writer *w, const char *path, uf_error *err)
{
    uf_st_entry *e = malloc(sizeof *e * (w->n ? w->n : 1));
    if (!e)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < w->n; i++)
        e[i] = (uf_st_entry){w->e[i].name, w->e[i].dt, w->e[i].ndim, w->e[i].shape, w->e[i].bytes};
    uf_afile a;
    uf_status s = uf_afile_open(&a, path, err);
    if (s == UF_OK && (s = uf_st_write_header(&a, w->meta, e, w->n, err)) != UF_OK)
        uf_afile_abort(&a);
    free(e);
    if (s != UF_OK)
        return s;
    for (size_t i = 0; i < w->n; i++)
        uf_afile_write(&a, w->e[i].data, w->e[i].bytes);
    return uf_afile_commit(&a, 0644, err);
}
