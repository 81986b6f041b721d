/* fuzz_image.c — the image-decode wrapper as uflowd uses it: bytes -> uf_image_load_buffer
 * (format sniffing, the allow-listed libvips loaders, the header size check, conversion to
 * 8-bit RGB, resize and normalisation). The pixel limit is small (256 Ki pixels) so that a
 * mutated size field costs a refusal, not seconds of decoding. libvips and its decoders are
 * not instrumented for coverage; their crashes and out-of-bounds writes into our buffers
 * still show. */
#include "uflow.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { H = 32, W = 48 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uf_model_info info;
    memset(&info, 0, sizeof info);
    info.height = H;
    info.width = W;
    for (int c = 0; c < 3; c++) {
        info.mean[c] = 0.5f;
        info.std[c] = 0.25f;
    }
    static float out[3 * H * W];
    uf_image_opts o = {.max_pixels = 256 * 1024};
    uf_error err = {0};
    uf_status st = uf_image_load_buffer(data, size, &info, &o, out, &err);
    if (st == UF_OK) {
        /* an 8-bit image normalised with mean 0.5, std 0.25 lies in [-2, 2] */
        for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
            if (!(out[i] >= -2.0001f && out[i] <= 2.0001f))
                __builtin_trap();
    } else if (!err.msg[0] || (st != UF_ERR_IMAGE && st != UF_ERR_LIMIT &&
                               st != UF_ERR_FORMAT_NOT_ACCEPTED && st != UF_ERR_NOMEM)) {
        __builtin_trap();
    }
    return 0;
}
