/* v2_request.h — the body of a KServe v2 / Open Inference Protocol infer request, read with
 * jscan.h so that no value becomes a heap object: FP32 `data` goes straight into one float
 * buffer, BYTES elements stay where they are in the body until the job decodes them one at
 * a time. Also the binary data extension (Triton's): with an Inference-Header-Content-Length
 * of N, the first N bytes are the JSON and an input whose parameters carry
 * "binary_data_size" has its data in the bytes after it (FP32 little-endian; BYTES as
 * 4-byte little-endian lengths each followed by the element).
 *
 * Accepted: {"id"?: string, "parameters"?: {nfa_window, nfa_prob_thr, mask_epsilon,
 * binary_data_output, ...}, "inputs": [one tensor], "outputs"?: [{"name", "parameters"?:
 * {"binary_data"}}]}; the tensor {"name", "datatype": "FP32"|"BYTES", "shape", "data" |
 * "parameters": {"binary_data_size"}}. FP32 values must be finite float32 numbers. */
#ifndef UFD_V2_REQUEST_H
#define UFD_V2_REQUEST_H

#include <stddef.h>

#include "errors.h"
#include "options.h"

#define UFD_V2_MAX_BATCH 16
#define UFD_V2_ID_MAX 256

enum { UFD_V2_OUT_MAP = 0, UFD_V2_OUT_SCORE, UFD_V2_OUT_NFA, UFD_V2_OUT_COUNT };
extern const char *const ufd_v2_output_names[UFD_V2_OUT_COUNT];

typedef struct ufd_v2_request {
    char id[UFD_V2_ID_MAX];
    int has_id;
    int fp32;                     /* else BYTES */
    int batch;
    float *x;                     /* FP32: batch x 3 x H x W (malloc'd) */
    const char *item[UFD_V2_MAX_BATCH]; /* BYTES: each element's JSON string (at its quote) */
    size_t item_len[UFD_V2_MAX_BATCH];  /* ...or, binary: its bytes and length */
    int item_binary;
    const char *json_end;         /* end of the JSON text (items are read up to it) */
    int want[UFD_V2_OUT_COUNT];   /* outputs asked for, in this order: 1 + position */
    int binary[UFD_V2_OUT_COUNT]; /* output as binary data */
    ufd_predict_opts opts;        /* NFA options from "parameters" */
} ufd_v2_request;

/* Parse body (len bytes; json_len of them JSON, the rest binary data, json_len == len when
 * there is no binary part) for a model of input height x width. 0, or -1 with the error
 * and its message; q needs ufd_v2_request_free either way. */
int ufd_v2_parse(const void *body, size_t len, size_t json_len, int height, int width, ufd_v2_request *q,
                 ufd_err *e, char *msg, size_t n);
void ufd_v2_request_free(ufd_v2_request *q);

/* BYTES element b as base64-decoded image bytes (*data, g_free it); binary elements are
 * used as they are (*data points into the body, *owned NULL). 0, or -1 with a message. */
int ufd_v2_item(const ufd_v2_request *q, int b, const unsigned char **data, size_t *len, unsigned char **owned,
                ufd_err *e, char *msg, size_t n);

#endif
