/* import.c — uf_import_checkpoint / uf_import_buffer (uflow_interop.h): map the file, plan
 * (ckpt_plan.c), stream the planned tensors into a model file, validate, rename. */
#include "core/internal.h"
#include "core/sha256.h"
#include "interop/ckpt.h"
#include "io/atomic_file.h"
#include "io/st.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

uf_import_opts uf_import_opts_default(void)
{
    uf_import_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

/* The tensor in C order as F32 (floats) or I64 (num_batches_tracked), malloc'd. */
static void *materialise(const uf_tf_tensor *t, uf_dtype *dt, uf_error *err)
{
    size_t n = (size_t)t->numel;
    int is_int = t->dtype == UF_DT_I64;
    void *buf = malloc((n ? n : 1) * (is_int ? 8 : 4));
    if (!buf) {
        uf_err(err, UF_ERR_NOMEM, "out of memory (%zu elements)", n);
        return NULL;
    }
    if (t->dtype == UF_DT_F32 || is_int) {
        uf_tf_gather(t, buf);
    } else {
        float *f = buf;
        for (size_t i = 0; i < n; i++)
            f[i] = (float)uf_tf_element(t, i);
    }
    *dt = is_int ? UF_DT_I64 : UF_DT_F32;
    return buf;
}

/* The model file, streamed: the safetensors header (io/st.h, the library's one header writer),
 * then each tensor converted and written in turn, so that at most one tensor is in memory
 * beside the mapped checkpoint (an mcait model is 1.6 GB). */
static uf_status write_model(const uf_ckpt_plan *p, const char *config, const char *path,
                             uf_error *err)
{
    uf_st_entry *e = calloc(p->n ? p->n : 1, sizeof *e);
    json_t *meta = json_pack("{s:s,s:s}", "config", config, "format", "pt");
    if (!e || !meta) {
        free(e);
        json_decref(meta);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < p->n; i++) {
        const uf_tf_tensor *t = &p->t[i].t;
        e[i].name = p->t[i].name;
        e[i].dt = t->dtype == UF_DT_I64 ? UF_DT_I64 : UF_DT_F32;
        e[i].ndim = t->ndim;
        e[i].shape = t->shape;
        e[i].bytes = t->numel * uf_dtype_size(e[i].dt);
    }
    uf_afile a;
    uf_status s = uf_afile_open(&a, path, err);
    if (s == UF_OK && (s = uf_st_write_header(&a, meta, e, p->n, err)) == UF_OK) {
        for (size_t i = 0; s == UF_OK && i < p->n; i++) {
            uf_dtype dt;
            void *data = materialise(&p->t[i].t, &dt, err);
            if (!data)
                s = UF_ERR_NOMEM;
            else
                uf_afile_write(&a, data, (size_t)e[i].bytes);
            free(data);
        }
    }
    if (s == UF_OK)
        s = uf_afile_commit(&a, 0644, err);
    else if (a.f)
        uf_afile_abort(&a);
    free(e);
    json_decref(meta);
    return s;
}

static uf_status analyse(const void *buf, size_t len, const char *src_name, const uf_import_opts *o,
                         uf_tf **tf, uf_ckpt_plan *plan, uf_error *err)
{
    char hex[65];
    uf_sha256_hex(buf, len, hex);
    uf_status s = uf_tf_open(buf, len, NULL, tf, err);
    if (s == UF_OK)
        s = uf_ckpt_plan_build(*tf, o, src_name, hex, plan, err);
    return s;
}

uf_status uf_import_buffer(const void *buf, size_t len, const char *src_name,
                           const uf_import_opts *o, char **config_json, size_t *n_tensors,
                           uf_error *err)
{
    if (config_json)
        *config_json = NULL;
    if (n_tensors)
        *n_tensors = 0;
    uf_tf *tf = NULL;
    uf_ckpt_plan plan;
    memset(&plan, 0, sizeof plan);
    uf_status s = analyse(buf, len, src_name, o, &tf, &plan, err);
    for (size_t i = 0; s == UF_OK && i < plan.n; i++) {
        uf_dtype dt;
        void *data = materialise(&plan.t[i].t, &dt, err);
        if (!data)
            s = UF_ERR_NOMEM;
        free(data);
    }
    if (s == UF_OK && config_json &&
        !(*config_json = json_dumps(plan.config, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        s = uf_err(err, UF_ERR_NOMEM, "out of memory");
    if (s == UF_OK && n_tensors)
        *n_tensors = plan.n;
    uf_ckpt_plan_free(&plan);
    uf_tf_close(tf);
    return s;
}

static uf_status map_file(const char *path, void **buf, size_t *len, uf_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return uf_err(err, UF_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return uf_err(err, UF_ERR_IO, "%s: not a regular file", path);
    }
    *len = (size_t)st.st_size;
    *buf = NULL;
    if (*len) {
        void *m = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return uf_err(err, UF_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        }
        *buf = m;
    }
    close(fd);
    return UF_OK;
}

uf_status uf_import_checkpoint(const char *in_path, const char *out_path,
                               const uf_import_opts *o, uf_error *err)
{
    void *buf = NULL;
    size_t len = 0;
    uf_status s = map_file(in_path, &buf, &len, err);
    if (s != UF_OK)
        return s;
    uf_tf *tf = NULL;
    uf_ckpt_plan plan;
    memset(&plan, 0, sizeof plan);
    char *cfg = NULL, *tmp = NULL;
    s = analyse(len ? buf : "", len, in_path, o, &tf, &plan, err);
    if (s == UF_OK && !(cfg = json_dumps(plan.config, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        s = uf_err(err, UF_ERR_NOMEM, "out of memory");
    /* The model is checked as a model before it takes out_path's name: a file at out_path is
     * always one that loads. */
    if (s == UF_OK && !(tmp = g_strdup_printf("%s.import-%ld", out_path, (long)getpid())))
        s = uf_err(err, UF_ERR_NOMEM, "out of memory");
    if (s == UF_OK)
        s = write_model(&plan, cfg, tmp, err);
    if (s == UF_OK) {
        uf_model *m = NULL;
        s = uf_model_load(tmp, &m, err);
        uf_model_free(m);
        if (s != UF_OK) {
            /* the message starts with the temporary file's name, which means nothing to the user */
            size_t tl = strlen(tmp);
            if (err && !strncmp(err->msg, tmp, tl) && err->msg[tl] == ':' && err->msg[tl + 1] == ' ')
                memmove(err->msg, err->msg + tl + 2, strlen(err->msg + tl + 2) + 1);
            uf_err_prefix(err, "the imported model does not load");
        } else if (rename(tmp, out_path) != 0)
            s = uf_err(err, UF_ERR_IO, "%s: %s", out_path, strerror(errno));
        if (s != UF_OK)
            unlink(tmp);
    }
    g_free(tmp);
    free(cfg);
    uf_ckpt_plan_free(&plan);
    uf_tf_close(tf);
    if (len)
        munmap(buf, len);
    if (s != UF_OK)
        uf_err_prefix(err, "%s", in_path);
    return s;
}
