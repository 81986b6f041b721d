/* fuzz_kserve.c — the KServe v2 infer request (server/v2_request.c on server/jscan.c),
 * JSON and the binary data extension, for a model of 8 x 8 inputs. The first input byte
 * chooses the split: 0 = all JSON, else the next two bytes give Inference-Header-Content-
 * Length (clamped to the body), the rest is binary data. Then every BYTES element is read
 * as the job reads it. Checked: FP32 tensors hold only finite values, the batch is within
 * 1..16, BYTES elements lie inside the body, a refusal names its error. */
#include <glib.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "v2_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t json_len, len = size - 3;
    if (data[0] == 0)
        json_len = len;
    else
        json_len = ((size_t)data[1] | (size_t)data[2] << 8) % (len + 1);
    unsigned char *body = malloc(len ? len : 1); /* exactly the body: overreads are caught */
    if (!body)
        return 0;
    memcpy(body, data + 3, len);
    ufd_v2_request q;
    ufd_err e = UFD_E_NONE;
    char msg[256] = "";
    const int H = 8, W = 8;
    if (ufd_v2_parse(body, len, json_len, H, W, &q, &e, msg, sizeof msg) == 0) {
        if (q.batch < 1 || q.batch > UFD_V2_MAX_BATCH)
            __builtin_trap();
        if (q.fp32) {
            for (size_t i = 0; i < (size_t)q.batch * 3 * H * W; i++)
                if (!isfinite(q.x[i]))
                    __builtin_trap();
        } else {
            for (int b = 0; b < q.batch; b++) {
                const unsigned char *img;
                size_t n;
                unsigned char *owned = NULL;
                char m2[256] = "";
                ufd_err e2 = UFD_E_NONE;
                if (ufd_v2_item(&q, b, &img, &n, &owned, &e2, m2, sizeof m2) == 0) {
                    if (!owned && n && (img < body || img + n > body + len))
                        __builtin_trap();
                    volatile unsigned char sum = 0;
                    for (size_t i = 0; i < n; i++)
                        sum ^= img[i];
                    (void)sum;
                } else if (e2 == UFD_E_NONE || !m2[0]) {
                    __builtin_trap();
                }
                g_free(owned);
            }
        }
    } else if (e == UFD_E_NONE || !msg[0]) {
        __builtin_trap();
    }
    ufd_v2_request_free(&q);
    free(body);
    return 0;
}
