/* calibrate.c — uf_model_write_postproc: a copy of a model file with anomalib's
 * post-processing statistics in its config (uflow_eval.h).
 *
 * The input is mapped and validated with uf_st_open. The output is streamed: header first
 * (laid out like uf_st_writer_save: "__metadata__" then the tensors in data order, contiguous
 * offsets, padded with spaces to a multiple of 8), then every tensor's bytes straight from the
 * mapping, so a 1.6 GB mcait model is never copied into memory (uf_st_writer would hold every
 * tensor). Write to a temporary file next to out_path, fsync, rename. */
#include "uflow_eval.h"
#include "internal.h"
#include "st.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The config with the six statistics set (NaN: key removed). Caller frees the string. */
static uf_status new_config(const char *txt, const uf_postproc *p, char **out, uf_error *err)
{
    *out = NULL;
    if (!txt)
        return uf_err(err, UF_ERR_CONFIG, "no model config: __metadata__ has no 'config' entry");
    json_error_t je;
    json_t *o = json_loads(txt, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return uf_err(err, UF_ERR_CONFIG, "config is not valid JSON: %s", je.text);
    if (!json_is_object(o)) {
        json_decref(o);
        return uf_err(err, UF_ERR_CONFIG, "config is not a JSON object");
    }
    const char *keys[6] = {"image_threshold",  "pixel_threshold",  "pred_scores_min",
                           "pred_scores_max",  "anomaly_maps_min", "anomaly_maps_max"};
    const float vals[6] = {p->image_threshold,  p->pixel_threshold,  p->pred_scores_min,
                           p->pred_scores_max,  p->anomaly_maps_min, p->anomaly_maps_max};
    uf_status st = UF_OK;
    for (int i = 0; i < 6 && st == UF_OK; i++) {
        if (isnan(vals[i]))
            json_object_del(o, keys[i]); /* absent is fine */
        else if (isinf(vals[i]))
            st = uf_err(err, UF_ERR_ARG, "post-processing value '%s' is infinite", keys[i]);
        else if (json_object_set_new(o, keys[i], json_real((double)vals[i])) != 0)
            st = uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    if (st == UF_OK && !(*out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        st = uf_err(err, UF_ERR_NOMEM, "out of memory");
    json_decref(o);
    return st;
}

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

static uf_status write_all(const uf_st *st, const char *header, const char *in_path,
                           const char *out_path, uf_error *err)
{
    struct stat sb;
    mode_t mode = 0644;
    if (stat(in_path, &sb) == 0)
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
        ok = fwrite(t->data, 1, nb, f) == nb;
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

uf_status uf_model_write_postproc(const char *in_path, const char *out_path, const uf_postproc *p,
                                  uf_error *err)
{
    if (!in_path || !out_path || !p)
        return uf_err(err, UF_ERR_ARG, "uf_model_write_postproc: NULL argument");
    uf_st *st = NULL;
    uf_status s = uf_st_open(in_path, &st, err);
    if (s)
        return s;
    char *config = NULL, *header = NULL;
    if ((s = new_config(uf_st_meta(st, "config"), p, &config, err)) == UF_OK &&
        (s = build_header(st, config, &header, err)) == UF_OK)
        s = write_all(st, header, in_path, out_path, err);
    if (s == UF_ERR_CONFIG || s == UF_ERR_FORMAT || s == UF_ERR_ARG)
        uf_err_prefix(err, "'%s'", in_path);
    free(config);
    free(header);
    uf_st_close(st);
    return s;
}
