/* fuzz_ckpt.c — checkpoint import on untrusted bytes: torch file detection, the zip reader, the
 * non-executing pickle reader, storage resolution and the checkpoint -> model plan
 * (uf_import_buffer, which writes nothing). */
#include "uflow_interop.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uf_import_opts o = uf_import_opts_default();
    char *cfg = NULL;
    size_t n = 0;
    uf_error err = {0};
    uf_status st = uf_import_buffer(data, size, "fuzz.ckpt", &o, &cfg, &n, &err);
    if (st == UF_OK) {
        if (!cfg || n == 0)
            __builtin_trap(); /* success promises a config and tensors */
    } else if (!err.msg[0] || cfg) {
        __builtin_trap(); /* failure promises a message and no output */
    }
    free(cfg);
    return 0;
}
