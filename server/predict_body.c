/* predict_body.c — see predict_body.h. */
#include "predict_body.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "jscan.h"

int ufd_predict_body_read(const void *body, size_t len, ufd_predict_opts *o, unsigned char **img, size_t *img_len,
                          ufd_err *e, char *msg, size_t n)
{
    ufd_js s;
    ufd_js_obj obj;
    char key[UFD_JS_KEY_MAX];
    const char *b64 = NULL;
    size_t b64_len = 0;
    char *owned = NULL;
    int has_image = 0, rc;
    *img = NULL;
    *img_len = 0;
    *e = UFD_E_BAD_JSON;
    ufd_js_init(&s, body, len);
    if (ufd_js_peek(&s) != UFD_JS_OBJECT) {
        snprintf(msg, n, "%s", s.failed ? ufd_js_error(&s) : "the body must be a JSON object");
        return -1;
    }
    ufd_js_object(&s, &obj);
    while ((rc = ufd_js_next_key(&s, &obj, key)) == 1) {
        if (!strcmp(key, "image")) {
            if (ufd_js_peek(&s) != UFD_JS_STRING) {
                if (s.failed || ufd_js_skip(&s) != 0)
                    break;
                *e = UFD_E_BAD_REQUEST;
                snprintf(msg, n, "field 'image' must be a base64 string");
                goto fail;
            }
            if (ufd_js_string(&s, &b64, &b64_len, &owned) != 0)
                break;
            has_image = 1;
        } else if (ufd_predict_opt_index(key) >= 0) {
            char err[256];
            if (ufd_predict_opt_from_json(o, key, &s, err, sizeof err) != 0) {
                if (s.failed)
                    break;
                *e = UFD_E_BAD_REQUEST;
                snprintf(msg, n, "%s", err);
                goto fail;
            }
        } else if (ufd_js_skip(&s) != 0) {
            break;
        }
    }
    if (rc != 0 || ufd_js_finish(&s) != 0) {
        snprintf(msg, n, "%s", ufd_js_error(&s));
        goto fail;
    }
    if (!has_image) {
        *e = UFD_E_BAD_REQUEST;
        snprintf(msg, n, "field 'image' (a base64 string) is required");
        goto fail;
    }
    if (!(*img = ufd_base64_decode(b64, b64_len, img_len))) {
        *e = UFD_E_BAD_BASE64;
        snprintf(msg, n, "field 'image' is not valid base64");
        goto fail;
    }
    free(owned);
    *e = UFD_E_NONE;
    return 0;
fail:
    free(owned);
    return -1;
}
