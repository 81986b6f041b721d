/* st_rewrite.c — uf_st_rewrite: a copy of a safetensors container with a new "config"
 * metadata entry and, optionally, new bytes for some tensors, streamed from the mapping.
 *
 * The header is laid out like uf_st_writer_save ("__metadata__" then the tensors in data
 * order, contiguous offsets, padded with spaces to a multiple of 8); every tensor's bytes come
 * straight from the source mapping or the caller's buffer, so a 1.6 GB mcait model is never
 * copied into memory (uf_st_writer would hold every tensor). Written to a temporary file next
 * to out_path, fsynced, renamed. */
#include "core/internal.h"
#include "io/st.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The output header: original metadata (config replaced) + tensors in data order. */
static uf_status build_header(const uf_st *st, const char *config, char **out, uf_error *err)
{
    *out = NULL;
    size_t len;
    const uint8_t *b = uf_st_bytes(st, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) /* uf_st_open validated the length */
        hlen = (hlen << 8) | b[i];
    json_error_t je;
    json_t *in = json_loadb((const char *)b + 8, (size_t)hlen, 0, &je);
    json_t *h = json_object(), *meta = json_object();
    uf_status s = UF_OK;
    if (!in || !h || !meta) {
        s = uf_err(err, UF_ERR_NOMEM, "out of memory reading the header");
        goto done;
    }
    json_t *old = json_object_get(in, "__metadata__");
    const char *key;
    json_t *v;
    json_object_foreach(old, key, v) {
        const char *val = strcmp(key, "config") == 0 ? config : json_string_value(v);
        if (!val || json_object_set_new(meta, key, json_string(val)) != 0) {
            s = uf_err(err, UF_ERR_FORMAT, "metadata '%s' is not a string", key);
            goto done;
        }
    }
    json_object_set(h, "__metadata__", meta);
    uint64_t off = 0;
    for (size_t i = 0; i < uf_st_count(st); i++) {
        const uf_st_tensor *t = uf_st_at(st, i);
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        uint64_t nb = uf_st_nbytes(t);
        if (json_object_set_new(h, t->name,
                                json_pack("{s:s,s:o,s:[I,I]}", "dtype", uf_dtype_name(t->dtype),
                                          "shape", shape, "data_offsets", (json_int_t)off,
                                          (json_int_t)(off + nb))) != 0) {
            s = uf_err(err, UF_ERR_NOMEM, "out of memory building the header");
            goto done;
        }
        off += nb;
    }
    if (!(*out = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        s = uf_err(err, UF_ERR_NOMEM, "out of memory");
done:
    json_decref(in);
    json_decref(h);
    json_decref(meta);
    return s;
}

static uf_status write_all(const uf_st *st, const char *header, const void *const *data,
                           const char *mode_from, const char *out_path, uf_error *err)
{
    struct stat sb;
    mode_t mode = 0644;
    if (mode_from && stat(mode_from, &sb) == 0)
        mode = sb.st_mode & 07777;
    size_t pl = strlen(out_path);
    char *tmp = malloc(pl + 16);
    if (!tmp)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", out_path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        uf_status s = uf_err(err, UF_ERR_IO, "cannot write '%s': %s", out_path, strerror(errno));
        free(tmp);
        return s;
    }
    FILE *f = fdopen(fd, "wb");
    int ok = f != NULL;
    if (!f)
        close(fd);
    size_t tl = strlen(header), padded = (tl + 7) & ~(size_t)7;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    ok = ok && fwrite(len8, 1, 8, f) == 8 && fwrite(header, 1, tl, f) == tl;
    for (size_t i = tl; ok && i < padded; i++)
        ok = fputc(' ', f) != EOF;
    for (size_t i = 0; ok && i < uf_st_count(st); i++) {
        const uf_st_tensor *t = uf_st_at(st, i);
        size_t nb = uf_st_nbytes(t);
        const void *d = data && data[i] ? data[i] : t->data;
        ok = fwrite(d, 1, nb, f) == nb;
    }
    int e = errno;
    if (f) {
        ok = ok && fflush(f) == 0 && fchmod(fileno(f), mode) == 0 && fsync(fileno(f)) == 0;
        if (!ok)
            e = errno;
        if (fclose(f) != 0 && ok) {
            ok = 0;
            e = errno;
        }
    }
    if (ok && rename(tmp, out_path) != 0) {
        ok = 0;
        e = errno;
    }
    uf_status s = UF_OK;
    if (!ok) {
        unlink(tmp);
        s = uf_err(err, UF_ERR_IO, "cannot write '%s': %s", out_path, strerror(e));
    } else {
        /* make the rename itself durable (best effort) */
        char *dir = strdup(out_path), *slash = dir ? strrchr(dir, '/') : NULL;
        if (dir) {
            if (slash)
                *(slash == dir ? slash + 1 : slash) = '\0';
            int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                (void)fsync(dfd);
                close(dfd);
            }
        }
        free(dir);
    }
    free(tmp);
    return s;
}

uf_status uf_st_rewrite(const uf_st *src, const char *config, const void *const *data,
                        const char *mode_from, const char *out_path, uf_error *err)
{
    if (!src || !config || !out_path)
        return uf_err(err, UF_ERR_ARG, "uf_st_rewrite: NULL argument");
    char *header = NULL;
    uf_status s = build_header(src, config, &header, err);
    if (s == UF_OK)
        s = write_all(src, header, data, mode_from, out_path, err);
    free(header);
    return s;
}
