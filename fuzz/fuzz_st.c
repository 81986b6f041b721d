/* fuzz_st.c — the safetensors container parser and validator (uf_st_open_buffer): any bytes
 * either fail with a status and a message, or yield tensors whose every data byte, name and
 * metadata value is safe to read (ASan checks the reads below). */
#include "io/st.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uf_st *st = NULL;
    uf_error err = {0};
    if (uf_st_open_buffer(data, size, &st, &err) != UF_OK) {
        if (!err.msg[0] || strlen(err.msg) >= sizeof err.msg)
            __builtin_trap(); /* every failure must say why */
        return 0;
    }
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < uf_st_count(st); i++) {
        const uf_st_tensor *t = uf_st_at(st, i);
        if (uf_st_find(st, t->name) == NULL || uf_st_nbytes(t) != t->numel * uf_dtype_size(t->dtype))
            __builtin_trap(); /* the by-name index and the size check must agree */
        const uint8_t *p = t->data;
        for (size_t k = 0; k < uf_st_nbytes(t); k++)
            sink ^= p[k];
    }
    const char *cfg = uf_st_meta(st, "config");
    if (cfg)
        sink ^= (uint8_t)strlen(cfg);
    (void)sink;
    uf_st_close(st);
    return 0;
}
