/* fuzz_model.c — model loading from untrusted bytes: the container, the config JSON and the
 * tensor-by-tensor validation of uf_model_load, through a memfd (uf_model_load takes a path;
 * /proc/self/fd/N is one). A fully valid model is tens of MB, beyond what a fuzzer mutates
 * usefully, so the seeds are small files with real configs and the first tensors. */
#include "uflow.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0 && (fd = memfd_create("fuzz_model", MFD_CLOEXEC)) < 0)
        return 0;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    uf_model *m = NULL;
    uf_error err = {0};
    if (uf_model_load(path, &m, &err) == UF_OK) {
        const uf_model_info *info = uf_model_get_info(m);
        if (!info || info->height <= 0 || info->width <= 0)
            __builtin_trap();
        uf_model_free(m);
    } else if (!err.msg[0] || m) {
        __builtin_trap(); /* a failure says why and leaves no model */
    }
    return 0;
}
