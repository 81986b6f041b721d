/* atomic_file.h — writing a file so that readers (and a crash) see the old file or the whole
 * new one, never a part: the bytes go to a temporary file beside the destination, which is
 * flushed, fsynced, given its mode and renamed over it, and the directory is fsynced so that
 * the rename survives a power cut. On any failure the temporary file is removed and the
 * destination is untouched. Every file the library writes goes through here. */
#ifndef UF_ATOMIC_FILE_H
#define UF_ATOMIC_FILE_H

#include "uflow.h"

#include <stddef.h>
#include <stdio.h>

typedef struct uf_afile {
    FILE *f;
    char *tmp, *path;
    int failed;          /* a write failed (errno kept in err_no) */
    int err_no;
} uf_afile;

/* Create the temporary file for path. On failure nothing is left behind. */
uf_status uf_afile_open(uf_afile *a, const char *path, uf_error *err);
/* Append bytes; a failure is remembered and reported by uf_afile_commit. */
void uf_afile_write(uf_afile *a, const void *data, size_t len);
/* Finish: fsync, chmod to mode, rename over path, fsync the directory. Frees a either way;
 * on failure the temporary file is removed and UF_ERR_IO names path and the reason. */
uf_status uf_afile_commit(uf_afile *a, unsigned mode, uf_error *err);
/* Give up: remove the temporary file, free a. */
void uf_afile_abort(uf_afile *a);

#endif
