/* torch_write.h — writing what torch.load reads: a protocol-2 pickle of plain data and tensors
 * (only opcodes and globals torch.load(weights_only=True) accepts), and a zip archive of stored
 * entries laid out as torch.save does (<archive>/data.pkl, <archive>/data/<key>, version), each
 * entry's data 64-byte aligned, written through io/atomic_file.h. No ZIP64: archives over 4 GiB
 * are refused (UF_ERR_UNSUPPORTED). */
#ifndef UF_TORCH_WRITE_H
#define UF_TORCH_WRITE_H

#include "io/atomic_file.h"
#include "uflow.h"

#include <stddef.h>
#include <stdint.h>

/* A pickle being built in memory; a failed allocation is remembered (oom) and reported once. */
typedef struct uf_pw {
    uint8_t *b;
    size_t n, cap;
    int oom;
} uf_pw;

void uf_pw_init(uf_pw *w);      /* PROTO 2 */
void uf_pw_finish(uf_pw *w);    /* STOP */
void uf_pw_free(uf_pw *w);
void uf_pw_str(uf_pw *w, const char *s);
void uf_pw_int(uf_pw *w, int64_t v);
void uf_pw_float(uf_pw *w, double v);
void uf_pw_bool(uf_pw *w, int v);
/* A dict ({} or, ordered != 0, collections.OrderedDict()) whose items follow: key, value, ...,
 * then uf_pw_items_end. */
void uf_pw_dict_begin(uf_pw *w, int ordered);
void uf_pw_items_end(uf_pw *w);
/* torch._utils._rebuild_tensor_v2 of a contiguous tensor in storage `key` (0-d when ndim 0). */
void uf_pw_tensor(uf_pw *w, const char *key, uf_dtype dt, int ndim, const int64_t *shape);

/* A zip archive being written: entries one by one, then the directory. */
typedef struct uf_zw_entry {
    char *name;
    uint32_t crc;
    uint64_t size, offset;
} uf_zw_entry;

typedef struct uf_zw {
    uf_afile a;
    uint64_t pos;
    uf_zw_entry *e;
    size_t n, cap;
} uf_zw;

uf_status uf_zw_open(uf_zw *z, const char *path, uf_error *err);
uf_status uf_zw_add(uf_zw *z, const char *name, const void *data, size_t len, uf_error *err);
/* Central directory and end record, then the atomic rename (io/atomic_file.h). */
uf_status uf_zw_commit(uf_zw *z, uf_error *err);
void uf_zw_abort(uf_zw *z);

#endif
