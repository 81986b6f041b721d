/* atomic_file.c — see atomic_file.h. */
#include "io/atomic_file.h"
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uf_status uf_afile_open(uf_afile *a, const char *path, uf_error *err)
{
    memset(a, 0, sizeof *a);
    size_t pl = strlen(path);
    a->path = strdup(path);
    a->tmp = malloc(pl + 16);
    if (!a->path || !a->tmp) {
        free(a->path);
        free(a->tmp);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    snprintf(a->tmp, pl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(a->tmp);
    if (fd >= 0 && !(a->f = fdopen(fd, "wb")))
        close(fd);
    if (!a->f) {
        uf_status s = uf_err(err, UF_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        if (fd >= 0)
            unlink(a->tmp);
        free(a->path);
        free(a->tmp);
        memset(a, 0, sizeof *a);
        return s;
    }
    return UF_OK;
}

void uf_afile_write(uf_afile *a, const void *data, size_t len)
{
    if (a->failed || len == 0)
        return;
    if (fwrite(data, 1, len, a->f) != len) {
        a->failed = 1;
        a->err_no = errno ? errno : EIO;
    }
}

static void release(uf_afile *a)
{
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
}

void uf_afile_abort(uf_afile *a)
{
    if (a->f)
        fclose(a->f);
    if (a->tmp)
        unlink(a->tmp);
    release(a);
}

/* Make the rename itself durable (best effort: not every file system can fsync a directory). */
static void sync_dir(const char *path)
{
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    if (!dir)
        return;
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
}

uf_status uf_afile_commit(uf_afile *a, unsigned mode, uf_error *err)
{
    int ok = !a->failed, e = a->err_no;
#define STEP(x)          \
    if (ok && !(x)) {    \
        ok = 0;          \
        e = errno;       \
    }
    STEP(fflush(a->f) == 0)
    STEP(fchmod(fileno(a->f), (mode_t)mode) == 0)
    STEP(fsync(fileno(a->f)) == 0)
    int closed = fclose(a->f) == 0;
    a->f = NULL;
    STEP(closed)
    STEP(rename(a->tmp, a->path) == 0)
#undef STEP
    if (!ok) {
        uf_status s = uf_err(err, UF_ERR_IO, "cannot write '%s': %s", a->path, strerror(e));
        uf_afile_abort(a);
        return s;
    }
    sync_dir(a->path);
    release(a);
    return UF_OK;
}
