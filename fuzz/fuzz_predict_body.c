/* fuzz_predict_body.c — the JSON body of POST /v1/models/{name}/predict
 * (server/predict_body.c on server/jscan.c): {"image": base64, ...options}. Checked: a
 * refusal names its error, an accepted body yields image bytes and valid options. */
#include <glib.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "options.h"
#include "predict_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ufd_predict_opts o = ufd_predict_opts_default();
    unsigned char *img = NULL;
    size_t n = 0;
    ufd_err e = UFD_E_NONE;
    char msg[256] = "";
    /* the body as libmicrohttpd leaves it: its own allocation, exactly size bytes */
    unsigned char *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    if (ufd_predict_body_read(body, size, &o, &img, &n, &e, msg, sizeof msg) == 0) {
        if ((!img && n) || e != UFD_E_NONE || !isfinite(o.mask_epsilon) || !isfinite(o.nfa_prob_thr))
            __builtin_trap();
        volatile unsigned char sum = 0;
        for (size_t i = 0; i < n; i++)
            sum ^= img[i];
        (void)sum;
    } else if (e == UFD_E_NONE || !msg[0]) {
        __builtin_trap();
    }
    g_free(img);
    free(body);
    return 0;
}
