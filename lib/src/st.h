/* st.h — safetensors container: a validating, mmap-based reader and a small writer.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string value", ...}}, then the data section. Offsets are
 * relative to the start of the data section.
 *
 * uf_st_open validates the whole container before returning: header within the file, JSON
 * well-formed with no duplicate keys, known dtypes, shapes consistent with byte sizes, every
 * range inside the data section and no two ranges overlapping. After that every
 * uf_st_tensor.data pointer is safe to read for uf_st_nbytes() bytes.
 */
#ifndef UF_ST_H
#define UF_ST_H

#include "uflow.h"

#include <stdint.h>

#define UF_ST_MAX_DIMS 8

typedef enum uf_dtype {
    UF_DT_F32 = 0,
    UF_DT_F64,
    UF_DT_F16,
    UF_DT_BF16,
    UF_DT_I64,
    UF_DT_I32,
    UF_DT_I16,
    UF_DT_I8,
    UF_DT_U8,
    UF_DT_BOOL,
    UF_DT_COUNT
} uf_dtype;

const char *uf_dtype_name(uf_dtype dt);
size_t uf_dtype_size(uf_dtype dt);

typedef struct uf_st_tensor {
    const char *name;
    uf_dtype dtype;
    int ndim;
    int64_t shape[UF_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end;    /* byte offsets in the data section */
    const void *data;       /* points into the mapping; may be unaligned */
} uf_st_tensor;

typedef struct uf_st uf_st;

/* Map and validate a file (read-only, private mapping). */
uf_status uf_st_open(const char *path, uf_st **out, uf_error *err);
/* Validate a caller-owned buffer (no copy: the buffer must outlive the uf_st). */
uf_status uf_st_open_buffer(const void *data, size_t len, uf_st **out, uf_error *err);
void uf_st_close(uf_st *st);

size_t uf_st_count(const uf_st *st);
const uf_st_tensor *uf_st_at(const uf_st *st, size_t i);   /* sorted by data offset */
const uf_st_tensor *uf_st_find(const uf_st *st, const char *name);
/* A __metadata__ value, or NULL. */
const char *uf_st_meta(const uf_st *st, const char *key);
/* The whole mapping (for hashing). */
const void *uf_st_bytes(const uf_st *st, size_t *len);

static inline size_t uf_st_nbytes(const uf_st_tensor *t) { return (size_t)(t->end - t->begin); }

/* Writer: tensors are written in the order they are added; data is copied at add time. */
typedef struct uf_st_writer uf_st_writer;

uf_st_writer *uf_st_writer_new(void);
void uf_st_writer_free(uf_st_writer *w);
uf_status uf_st_writer_add(uf_st_writer *w, const char *name, uf_dtype dt, int ndim,
                           const int64_t *shape, const void *data, uf_error *err);
uf_status uf_st_writer_meta(uf_st_writer *w, const char *key, const char *value, uf_error *err);
uf_status uf_st_writer_save(const uf_st_writer *w, const char *path, uf_error *err);

/* Stream a copy of src to out_path (temp file, fsync, rename) with its metadata "config"
 * replaced by config (other metadata kept) and tensor i's bytes taken from data[i] when data
 * and data[i] are not NULL (same size as the source tensor), else from src. The file gets
 * mode_from's permissions (0644 when NULL or absent). Nothing is copied into memory. */
uf_status uf_st_rewrite(const uf_st *src, const char *config, const void *const *data,
                        const char *mode_from, const char *out_path, uf_error *err);

#endif
