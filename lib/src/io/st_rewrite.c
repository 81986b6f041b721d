/* st_rewrite.c — uf_st_rewrite: a copy of a safetensors container with a new "config"
 * metadata entry and, optionally, new bytes for some tensors, streamed from the mapping.
 *
 * The header comes from uf_st_write_header ("__metadata__" then the tensors in data order);
 * every tensor's bytes come straight from the source mapping or the caller's buffer, so a
 * 1.6 GB mcait model is never copied into memory (uf_st_writer would hold every tensor).
 * Written through uf_afile (temporary file, fsync, rename). */
#include "core/internal.h"
#include "io/st.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The source's metadata with "config" replaced, in its original order. */
static uf_status new_meta(const uf_st *st, const char *config, json_t **out, uf_error *err)
{
    *out = NULL;
    size_t len;
    const uint8_t *b = uf_st_bytes(st, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) /* uf_st_open validated the length */
        hlen = (hlen << 8) | b[i];
    json_error_t je;
    json_t *in = json_loadb((const char *)b + 8, (size_t)hlen, 0, &je), *meta = json_object();
    uf_status s = UF_OK;
    if (!in || !meta) {
        s = uf_err(err, UF_ERR_NOMEM, "out of memory reading the header");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(in, "__metadata__"), key, v) {
        const char *val = strcmp(key, "config") == 0 ? config : json_string_value(v);
        if (!val || json_object_set_new(meta, key, json_string(val)) != 0) {
            s = uf_err(err, UF_ERR_FORMAT, "metadata '%s' is not a string", key);
            goto done;
        }
    }
    *out = meta;
    meta = NULL;
done:
    json_decref(in);
    json_decref(meta);
    return s;
}

uf_status uf_st_rewrite(const uf_st *src, const char *config, const void *const *data,
                        const char *mode_from, const char *out_path, uf_error *err)
{
    if (!src || !config || !out_path)
        return uf_err(err, UF_ERR_ARG, "uf_st_rewrite: NULL argument");
    struct stat sb;
    unsigned mode = 0644;
    if (mode_from && stat(mode_from, &sb) == 0)
        mode = sb.st_mode & 07777;
    size_t n = uf_st_count(src);
    uf_st_entry *e = malloc(sizeof *e * (n ? n : 1));
    json_t *meta = NULL;
    uf_status s = e ? new_meta(src, config, &meta, err) : uf_err(err, UF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; s == UF_OK && i < n; i++) {
        const uf_st_tensor *t = uf_st_at(src, i);
        e[i] = (uf_st_entry){t->name, t->dtype, t->ndim, t->shape, uf_st_nbytes(t)};
    }
    uf_afile a;
    if (s == UF_OK && (s = uf_afile_open(&a, out_path, err)) == UF_OK) {
        if ((s = uf_st_write_header(&a, meta, e, n, err)) != UF_OK) {
            uf_afile_abort(&a);
        } else {
            for (size_t i = 0; i < n; i++) {
                const uf_st_tensor *t = uf_st_at(src, i);
                uf_afile_write(&a, data && data[i] ? data[i] : t->data, uf_st_nbytes(t));
            }
            s = uf_afile_commit(&a, mode, err);
        }
    }
    json_decref(meta);
    free(e);
    return s;
}
