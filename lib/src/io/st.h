/* st.h — the safetensors internals beyond the public reader/writer of uflow.h.
 *
 * (The format and the validation contract are described in uflow.h.)
 */
#ifndef UF_ST_H
#define UF_ST_H

#include "uflow.h"

#include <stdint.h>

/* Stream a copy of src to out_path (temp file, fsync, rename) with its metadata "config"
 * replaced by config (other metadata kept) and tensor i's bytes taken from data[i] when data
 * and data[i] are not NULL (same size as the source tensor), else from src. The file gets
 * mode_from's permissions (0644 when NULL or absent). Nothing is copied into memory. */
uf_status uf_st_rewrite(const uf_st *src, const char *config, const void *const *data,
                        const char *mode_from, const char *out_path, uf_error *err);

#endif
