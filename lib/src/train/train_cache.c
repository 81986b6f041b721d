/* train_cache.c — cached backbone features of the training images. Rows stay in RAM up to
 * opts.cache_mem_limit; past it every row moves to an unlinked temporary file (the page cache
 * still serves what fits) and reads become pread()s, so a large training set costs disk, not
 * an out-of-memory kill. */
#include "core/internal.h"
#include "train/train_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t row_bytes(const uf_trainer *t) { return sizeof(float) * t->net.feat_floats; }

static uf_status write_all(int fd, const void *buf, size_t len, off_t off, uf_error *err)
{
    const char *p = buf;
    while (len) {
        ssize_t w = pwrite(fd, p, len, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return uf_err(err, UF_ERR_IO, "feature cache file: write failed: %s",
                          w < 0 ? strerror(errno) : "no space");
        p += w;
        len -= (size_t)w;
        off += w;
    }
    return UF_OK;
}

static uf_status spill(uf_trainer *t, uf_error *err)
{
    const char *dir = t->o.cache_dir ? t->o.cache_dir : getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/uflow-features-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return uf_err(err, UF_ERR_IO, "cannot create a feature cache file in '%s': %s",
                      dir && *dir ? dir : "/tmp", strerror(errno));
    unlink(path); /* gone when the process ends, however it ends */
    uf_status s = write_all(fd, t->cache, row_bytes(t) * (size_t)t->n_img, 0, err);
    if (s) {
        close(fd);
        return s;
    }
    t->cache_fd = fd;
    uf_afree(t->cache);
    t->cache = NULL;
    t->cap_img = 0;
    return UF_OK;
}

uf_status tr_cache_append(uf_trainer *t, const float *row, uf_error *err)
{
    size_t rb = row_bytes(t);
    if (t->n_img == 0x7fffffff)
        return uf_err(err, UF_ERR_LIMIT, "too many training images");
    if (t->cache_fd < 0 && rb * (size_t)(t->n_img + 1) > t->o.cache_mem_limit && t->n_img > 0) {
        uf_status s = spill(t, err);
        if (s)
            return s;
    }
    if (t->cache_fd >= 0) {
        uf_status s = write_all(t->cache_fd, row, rb, (off_t)(rb * (size_t)t->n_img), err);
        if (!s)
            t->n_img++;
        return s;
    }
    if (t->n_img == t->cap_img) {
        /* Doubling, but never past the rows the limit allows: a 2x overshoot (3x while the old
         * buffer is copied) would break --cache-mem for big rows (wide_resnet50_2 @512: 29 MB). */
        size_t fit = UF_MAX(t->o.cache_mem_limit / rb, (size_t)t->n_img + 1);
        int cap = (int)UF_MIN(t->cap_img ? 2 * (size_t)t->cap_img : 16, UF_MIN(fit, (size_t)INT_MAX));
        float *c = uf_aalloc(rb * (size_t)cap);
        if (!c)
            return uf_err(err, UF_ERR_NOMEM, "out of memory for the feature cache (%d images)", cap);
        if (t->cache)
            memcpy(c, t->cache, rb * (size_t)t->n_img);
        uf_afree(t->cache);
        t->cache = c;
        t->cap_img = cap;
    }
    memcpy((char *)t->cache + rb * (size_t)t->n_img, row, rb);
    t->n_img++;
    return UF_OK;
}

uf_status tr_cache_get(const uf_trainer *t, int i, float *buf, const float **out, uf_error *err)
{
    size_t rb = row_bytes(t);
    if (t->cache_fd < 0) {
        *out = (const float *)((const char *)t->cache + rb * (size_t)i);
        return UF_OK;
    }
    char *p = (char *)buf;
    size_t len = rb;
    off_t off = (off_t)(rb * (size_t)i);
    while (len) {
        ssize_t r = pread(t->cache_fd, p, len, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return uf_err(err, UF_ERR_IO, "feature cache file: read failed: %s",
                          r < 0 ? strerror(errno) : "short file");
        p += r;
        len -= (size_t)r;
        off += r;
    }
    *out = buf;
    return UF_OK;
}

size_t uf_trainer_cache_bytes(const uf_trainer *t, int *on_disk)
{
    if (on_disk)
        *on_disk = t->cache_fd >= 0;
    return row_bytes(t) * (size_t)t->n_img;
}

void tr_cache_free(uf_trainer *t)
{
    uf_afree(t->cache);
    t->cache = NULL;
    if (t->cache_fd >= 0)
        close(t->cache_fd);
    t->cache_fd = -1;
}
