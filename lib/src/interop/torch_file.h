/* torch_file.h — a file written by torch.save, read without running anything.
 *
 * Both serialisations: the zip archive (torch >= 1.6: <dir>/data.pkl, <dir>/data/<key>
 * storages, stored entries) and the legacy stream (magic number, protocol version, system info,
 * the object, the storage keys, then each storage as an int64 element count and raw bytes).
 * The object pickle is read by io/pickle.h with torch's tensor rebuilders as the only calls it
 * records (uf_tf_callables); storages are persistent ids resolved here, lazily: a tensor's bytes
 * are located, bounds-checked and (zip) CRC-checked only when uf_tf_tensor_of asks for them, so
 * optimizer states and the like are never touched. Little-endian files only.
 */
#ifndef UF_TORCH_FILE_H
#define UF_TORCH_FILE_H

#include "io/pickle.h"
#include "uflow.h"

#include <stddef.h>
#include <stdint.h>

typedef struct uf_tf uf_tf;

typedef enum { UF_TF_ZIP, UF_TF_LEGACY } uf_tf_format;

/* A tensor as torch describes it: a strided view into a storage. */
typedef struct uf_tf_tensor {
    uf_dtype dtype;             /* UF_DT_COUNT: a storage type uflow does not read */
    const char *type_name;      /* "FloatStorage", ... (for messages) */
    size_t elsize;
    int ndim;
    int64_t shape[UF_ST_MAX_DIMS];
    int64_t stride[UF_ST_MAX_DIMS]; /* in elements */
    int64_t offset;                 /* in elements */
    uint64_t numel;
    const uint8_t *base;        /* the storage's bytes (NULL until resolved) */
    uint64_t nbytes;
} uf_tf_tensor;

/* Parse buf (which must outlive the uf_tf). Errors: UF_ERR_FORMAT for anything malformed or
 * refused by the pickle rules, UF_ERR_UNSUPPORTED for valid files uflow does not read
 * (TorchScript archives, big-endian files, the pre-1.0 tar format). */
uf_status uf_tf_open(const void *buf, size_t len, const uf_pk_limits *limits, uf_tf **out,
                     uf_error *err);
void uf_tf_close(uf_tf *tf);

uf_pk *uf_tf_root(const uf_tf *tf);
uf_tf_format uf_tf_get_format(const uf_tf *tf);
uf_pk_doc *uf_tf_doc(const uf_tf *tf);

/* 1 when p is a tensor (or Parameter) rebuild node. */
int uf_tf_is_tensor(const uf_pk *p);
/* Resolve a tensor node: shape, strides, storage bytes, all bounds-checked. */
uf_status uf_tf_tensor_of(uf_tf *tf, const uf_pk *p, uf_tf_tensor *t, uf_error *err);
/* The tensor's elements in C order into dst (numel * elsize bytes), same dtype. */
void uf_tf_gather(const uf_tf_tensor *t, void *dst);
/* Element i (C order) as a double (floating and integer dtypes); NaN if unsupported. */
double uf_tf_element(const uf_tf_tensor *t, uint64_t i);

/* torch's callables the pickle may ask for (tensor rebuilders, torch.Size, torch.device). */
extern const char *const uf_tf_callables[];
extern const size_t uf_tf_n_callables;

#endif
