/* predict_body.h — the JSON body of POST /v1/models/{name}/predict:
 * {"image": "<base64 or data: URL>", "heatmap": true, ...options}. Read with jscan.h (no
 * JSON tree is built: the image stays a pointer into the body until it is decoded); a key
 * given twice is refused, other keys are checked for syntax and ignored. */
#ifndef UFD_PREDICT_BODY_H
#define UFD_PREDICT_BODY_H

#include <stddef.h>

#include "errors.h"
#include "options.h"

/* The image bytes of a JSON predict body: *img (g_free it) of *img_len bytes, with the
 * body's options applied to o. 0, or -1 with the error and its message. */
int ufd_predict_body_read(const void *body, size_t len, ufd_predict_opts *o, unsigned char **img, size_t *img_len,
                          ufd_err *e, char *msg, size_t n);

#endif
