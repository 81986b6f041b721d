/* st.h — the safetensors internals beyond the public reader/writer of uflow.h.
 *
 * (The format and the validation contract are described in uflow.h.)
 */
#ifndef UF_ST_H
#define UF_ST_H

#include "io/atomic_file.h"
#include "uflow.h"

#include <jansson.h>
#include <stdint.h>

/* Elements [0, n) of floating-point data of dtype dt (F32, F64, F16 or BF16; may be unaligned)
 * as float32: F64 rounded, F16/BF16 widened exactly. Other dtypes: returns -1, writes nothing. */
int uf_st_to_f32(uf_dtype dt, const void *src, size_t n, float *out);

/* "[2, 3, 4]" into buf (for messages). */
void uf_st_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

/* One tensor of a header being written. */
typedef struct uf_st_entry {
    const char *name;
    uf_dtype dt;
    int ndim;
    const int64_t *shape;
    uint64_t bytes;
} uf_st_entry;

/* Write the container header for tensors e[0..n) in that order with contiguous data offsets,
 * after "__metadata__" = meta (an object of strings; left out when NULL or empty): 8-byte
 * little-endian length, compact JSON in insertion order, padded with spaces to a multiple of 8
 * so that the data section stays 8-byte aligned (as the Python writer does). The tensor bytes
 * follow, written by the caller in the same order. The one header writer of the library. */
uf_status uf_st_write_header(uf_afile *a, const json_t *meta, const uf_st_entry *e, size_t n,
                             uf_error *err);

/* Stream a copy of src to out_path (temp file, fsync, rename) with its metadata "config"
 * replaced by config (other metadata kept) and tensor i's bytes taken from data[i] when data
 * and data[i] are not NULL (same size as the source tensor), else from src. The file gets
 * mode_from's permissions (0644 when NULL or absent). Nothing is copied into memory. */
uf_status uf_st_rewrite(const uf_st *src, const char *config, const void *const *data,
                        const char *mode_from, const char *out_path, uf_error *err);

#endif
