/* v2_request.c — see v2_request.h. The "data" of the input is only syntax-checked on the
 * first pass (its datatype and shape may come after it) and read on a second pass into
 * the buffer the shape asks for. */
#include "v2_request.h"

#include <float.h>
#include <glib.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "jscan.h"

const char *const ufd_v2_output_names[UFD_V2_OUT_COUNT] = {"anomaly_map", "pred_score", "minus_log10_nfa"};

#define MAX_DIMS 8
#define MAX_OUTPUTS 8

typedef struct input {
    char datatype[16];
    int has_shape, ndim;
    long long shape[MAX_DIMS];
    const char *data;             /* at the "data" value, or NULL */
    long long binary_size;        /* -1: none */
} input;

typedef struct ctx {
    ufd_js s;
    ufd_err *e;
    char *msg;
    size_t n;
} ctx;

/* A schema error (the JSON is fine, its content is not what KServe v2 wants). */
static int bad(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, c->n, fmt, ap);
    va_end(ap);
    *c->e = UFD_E_BAD_REQUEST;
    return -1;
}

/* The JSON itself is malformed. */
static int syntax(ctx *c)
{
    snprintf(c->msg, c->n, "%s", ufd_js_error(&c->s));
    *c->e = UFD_E_BAD_JSON;
    return -1;
}

static int params(ctx *c, ufd_v2_request *q, int *binary_output)
{
    ufd_js_obj o;
    char key[UFD_JS_KEY_MAX];
    int rc;
    if (ufd_js_null(&c->s))
        return 0;
    if (ufd_js_peek(&c->s) != UFD_JS_OBJECT)
        return c->s.failed ? syntax(c) : bad(c, "'parameters' must be an object");
    ufd_js_object(&c->s, &o);
    while ((rc = ufd_js_next_key(&c->s, &o, key)) == 1) {
        char err[256];
        if (ufd_predict_opt_index(key) >= 0) {
            if (ufd_predict_opt_from_json(&q->opts, key, &c->s, err, sizeof err) != 0)
                return c->s.failed ? syntax(c) : bad(c, "%s", err);
        } else if (!strcmp(key, "binary_data_output")) {
            if (ufd_js_bool(&c->s, binary_output) != 0)
                return bad(c, "parameter 'binary_data_output' must be true or false");
        } else if (ufd_js_skip(&c->s) != 0) {
            return syntax(c);
        }
    }
    return rc == 0 ? 0 : syntax(c);
}

static int tensor_params(ctx *c, input *in)
{
    ufd_js_obj o;
    char key[UFD_JS_KEY_MAX];
    int rc;
    if (ufd_js_null(&c->s))
        return 0;
    if (ufd_js_peek(&c->s) != UFD_JS_OBJECT)
        return c->s.failed ? syntax(c) : bad(c, "an input's 'parameters' must be an object");
    ufd_js_object(&c->s, &o);
    while ((rc = ufd_js_next_key(&c->s, &o, key)) == 1) {
        if (!strcmp(key, "binary_data_size")) {
            if (ufd_js_int(&c->s, 0, INT64_MAX, &in->binary_size) != 0)
                return bad(c, "'binary_data_size' must be a non-negative integer");
        } else if (ufd_js_skip(&c->s) != 0) {
            return syntax(c);
        }
    }
    return rc == 0 ? 0 : syntax(c);
}

static int parse_input(ctx *c, input *in)
{
    ufd_js_obj o;
    ufd_js_arr a;
    char key[UFD_JS_KEY_MAX];
    int rc;
    if (ufd_js_peek(&c->s) != UFD_JS_OBJECT)
        return c->s.failed ? syntax(c) : bad(c, "every input must be an object");
    ufd_js_object(&c->s, &o);
    while ((rc = ufd_js_next_key(&c->s, &o, key)) == 1) {
        if (!strcmp(key, "name")) {
            char name[256];
            if (ufd_js_string_buf(&c->s, name, sizeof name) != 0)
                return bad(c, "an input's 'name' must be a string of at most %zu bytes", sizeof name - 1);
        } else if (!strcmp(key, "datatype")) {
            if (ufd_js_string_buf(&c->s, in->datatype, sizeof in->datatype) != 0)
                return bad(c, "input datatype must be FP32 or BYTES");
        } else if (!strcmp(key, "shape")) {
            if (ufd_js_peek(&c->s) != UFD_JS_ARRAY)
                return c->s.failed ? syntax(c) : bad(c, "'shape' must be an array");
            ufd_js_array(&c->s, &a);
            while ((rc = ufd_js_next(&c->s, &a)) == 1) {
                long long d;
                if (in->ndim == MAX_DIMS || ufd_js_int(&c->s, 0, INT32_MAX, &d) != 0)
                    return bad(c, "'shape' must be at most %d non-negative integers", MAX_DIMS);
                in->shape[in->ndim++] = d;
            }
            if (rc != 0)
                return syntax(c);
            in->has_shape = 1;
        } else if (!strcmp(key, "data")) {
            if (ufd_js_peek(&c->s) == UFD_JS_ERROR)
                return syntax(c);
            in->data = c->s.p; /* at the value, after whitespace */
            if (ufd_js_skip(&c->s) != 0)
                return syntax(c);
        } else if (!strcmp(key, "parameters")) {
            if (tensor_params(c, in) != 0)
                return -1;
        } else if (ufd_js_skip(&c->s) != 0) {
            return syntax(c);
        }
    }
    return rc == 0 ? 0 : syntax(c);
}

/* No "outputs" (or null, or empty): anomaly_map and pred_score. */
static void default_outputs(ufd_v2_request *q, int binary_output)
{
    q->want[UFD_V2_OUT_MAP] = 1;
    q->want[UFD_V2_OUT_SCORE] = 2;
    q->binary[UFD_V2_OUT_MAP] = q->binary[UFD_V2_OUT_SCORE] = binary_output;
}

static int parse_outputs(ctx *c, ufd_v2_request *q, int binary_output)
{
    ufd_js_arr a;
    int rc, pos = 0;
    if (ufd_js_null(&c->s)) {
        default_outputs(q, binary_output);
        return 0;
    }
    if (ufd_js_peek(&c->s) != UFD_JS_ARRAY)
        return c->s.failed ? syntax(c) : bad(c, "'outputs' must be an array");
    ufd_js_array(&c->s, &a);
    while ((rc = ufd_js_next(&c->s, &a)) == 1) {
        ufd_js_obj o;
        char key[UFD_JS_KEY_MAX], name[64] = "";
        int binary = binary_output, has_name = 0;
        if (a.n > MAX_OUTPUTS)
            return bad(c, "more than %d requested outputs", MAX_OUTPUTS);
        if (ufd_js_peek(&c->s) != UFD_JS_OBJECT)
            return c->s.failed ? syntax(c) : bad(c, "every requested output must be an object");
        ufd_js_object(&c->s, &o);
        while ((rc = ufd_js_next_key(&c->s, &o, key)) == 1) {
            if (!strcmp(key, "name")) {
                if (ufd_js_string_buf(&c->s, name, sizeof name) != 0)
                    return bad(c, "an output's 'name' must be a string");
                has_name = 1;
            } else if (!strcmp(key, "parameters") && !ufd_js_null(&c->s)) {
                ufd_js_obj p;
                char pk[UFD_JS_KEY_MAX];
                if (ufd_js_peek(&c->s) != UFD_JS_OBJECT)
                    return c->s.failed ? syntax(c) : bad(c, "an output's 'parameters' must be an object");
                ufd_js_object(&c->s, &p);
                while ((rc = ufd_js_next_key(&c->s, &p, pk)) == 1) {
                    if (!strcmp(pk, "binary_data")) {
                        if (ufd_js_bool(&c->s, &binary) != 0)
                            return bad(c, "output parameter 'binary_data' must be true or false");
                    } else if (ufd_js_skip(&c->s) != 0) {
                        return syntax(c);
                    }
                }
                if (rc != 0)
                    return syntax(c);
            } else if (ufd_js_skip(&c->s) != 0) {
                return syntax(c);
            }
        }
        if (rc != 0)
            return syntax(c);
        if (!has_name)
            return bad(c, "every requested output needs a 'name'");
        int k = 0;
        while (k < UFD_V2_OUT_COUNT && strcmp(name, ufd_v2_output_names[k]) != 0)
            k++;
        if (k == UFD_V2_OUT_COUNT)
            return bad(c, "unknown output '%.64s' (anomaly_map, pred_score, minus_log10_nfa)", name);
        if (q->want[k])
            return bad(c, "output '%s' is asked for twice", name);
        q->want[k] = ++pos;
        q->binary[k] = binary;
    }
    if (rc != 0)
        return syntax(c);
    if (pos == 0)
        default_outputs(q, binary_output);
    return 0;
}

/* Nested arrays of numbers into x[*k...], row-major; -1 on anything else or too many. */
static int numbers(ctx *c, float *x, size_t cap, size_t *k, int depth)
{
    ufd_js_arr a;
    int rc;
    if (depth > MAX_DIMS)
        return bad(c, "FP32 'data' nested deeper than %d levels", MAX_DIMS);
    if (ufd_js_array(&c->s, &a) != 0)
        return bad(c, "FP32 'data' must be an array of numbers");
    while ((rc = ufd_js_next(&c->s, &a)) == 1) {
        ufd_js_kind kind = ufd_js_peek(&c->s);
        if (kind == UFD_JS_ARRAY) {
            if (numbers(c, x, cap, k, depth + 1) != 0)
                return -1;
            continue;
        }
        double d;
        if (kind != UFD_JS_NUMBER || *k >= cap)
            return bad(c, "FP32 'data' must hold exactly %zu numbers", cap);
        if (ufd_js_number(&c->s, &d) != 0)
            return bad(c, "FP32 'data' element %zu: %s", *k, ufd_js_error(&c->s));
        float f = (float)d;
        if (!(fabs(d) <= FLT_MAX) || !isfinite(f))
            return bad(c, "FP32 'data' element %zu (%.9g) is outside the float32 range", *k, d);
        x[(*k)++] = f;
    }
    return rc == 0 ? 0 : bad(c, "FP32 'data': %s", ufd_js_error(&c->s));
}

/* Nested arrays of strings (BYTES elements); positions recorded, content checked later. */
static int strings(ctx *c, ufd_v2_request *q, size_t *k, int depth)
{
    ufd_js_arr a;
    int rc;
    if (depth > MAX_DIMS)
        return bad(c, "BYTES 'data' nested deeper than %d levels", MAX_DIMS);
    if (ufd_js_array(&c->s, &a) != 0)
        return bad(c, "BYTES 'data' must be an array of base64 strings");
    while ((rc = ufd_js_next(&c->s, &a)) == 1) {
        ufd_js_kind kind = ufd_js_peek(&c->s);
        if (kind == UFD_JS_ARRAY) {
            if (strings(c, q, k, depth + 1) != 0)
                return -1;
            continue;
        }
        if (kind != UFD_JS_STRING || *k >= (size_t)q->batch)
            return bad(c, "BYTES 'data' must hold exactly %d base64 strings", q->batch);
        q->item[*k] = c->s.p;
        if (ufd_js_skip(&c->s) != 0)
            return -1;
        q->item_len[*k] = (size_t)(c->s.p - q->item[*k]);
        (*k)++;
    }
    return rc == 0 ? 0 : -1;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int binary_data(ctx *c, ufd_v2_request *q, const unsigned char *bin, size_t size, size_t chw)
{
    if (q->fp32) {
        size_t want = chw * (size_t)q->batch * 4;
        if (size != want)
            return bad(c, "FP32 binary data must be %zu bytes (B x 3 x H x W float32), got %zu", want, size);
        for (size_t i = 0; i < want / 4; i++) {
            uint32_t u = le32(bin + 4 * i);
            float f;
            memcpy(&f, &u, 4);
            if (!isfinite(f))
                return bad(c, "FP32 binary data element %zu is not a finite number", i);
            q->x[i] = f;
        }
        return 0;
    }
    size_t off = 0;
    for (int b = 0; b < q->batch; b++) {
        if (size - off < 4)
            return bad(c, "BYTES binary data ends inside element %d's length", b);
        uint32_t l = le32(bin + off);
        off += 4;
        if (l > size - off)
            return bad(c, "BYTES binary element %d is longer than the data", b);
        q->item[b] = (const char *)bin + off;
        q->item_len[b] = l;
        off += l;
    }
    if (off != size)
        return bad(c, "BYTES binary data holds more than %d elements", q->batch);
    q->item_binary = 1;
    return 0;
}

/* Shape checks and the input's data into q. */
static int take_input(ctx *c, ufd_v2_request *q, const input *in, const unsigned char *bin, size_t bin_len, int h,
                      int w)
{
    q->fp32 = !strcmp(in->datatype, "FP32");
    if (!q->fp32 && strcmp(in->datatype, "BYTES") != 0)
        return bad(c, "input datatype must be FP32 or BYTES");
    const long long *d = in->shape;
    int ok = q->fp32 ? (in->ndim == 4 && d[1] == 3 && d[2] == h && d[3] == w)
                     : (in->ndim == 1 || (in->ndim == 2 && d[1] == 1));
    if (!in->has_shape || !ok || d[0] < 1 || d[0] > UFD_V2_MAX_BATCH) {
        if (q->fp32)
            return bad(c, "FP32 input shape must be [B, 3, %d, %d] with 1 <= B <= %d", h, w, UFD_V2_MAX_BATCH);
        return bad(c, "BYTES input shape must be [B] with 1 <= B <= %d", UFD_V2_MAX_BATCH);
    }
    q->batch = (int)d[0];
    size_t chw = (size_t)3 * (size_t)h * (size_t)w;
    if (q->fp32 && !(q->x = malloc(sizeof(float) * chw * (size_t)q->batch))) {
        *c->e = UFD_E_UNAVAILABLE;
        snprintf(c->msg, c->n, "out of memory for a batch of %d", q->batch);
        return -1;
    }
    if (in->binary_size >= 0) {
        if (in->data)
            return bad(c, "an input with 'binary_data_size' must not also have 'data'");
        if ((unsigned long long)in->binary_size != bin_len)
            return bad(c, "'binary_data_size' is %lld but %zu bytes follow the JSON", in->binary_size, bin_len);
        return binary_data(c, q, bin, bin_len, chw);
    }
    if (bin_len)
        return bad(c, "binary data follows the JSON but no input has 'binary_data_size'");
    if (!in->data)
        return bad(c, "the input needs 'data' (or 'binary_data_size' with binary data)");
    ufd_js_init(&c->s, in->data, (size_t)(q->json_end - in->data));
    size_t k = 0;
    if (q->fp32) {
        size_t cap = chw * (size_t)q->batch;
        if (numbers(c, q->x, cap, &k, 0) != 0)
            return -1;
        if (k != cap)
            return bad(c, "FP32 'data' must hold exactly %zu numbers (B x 3 x %d x %d), got %zu", cap, h, w, k);
        return 0;
    }
    if (strings(c, q, &k, 0) != 0)
        return *c->e == UFD_E_BAD_REQUEST ? -1 : syntax(c);
    if (k != (size_t)q->batch)
        return bad(c, "BYTES 'data' must hold exactly %d base64 strings", q->batch);
    return 0;
}

int ufd_v2_parse(const void *body, size_t len, size_t json_len, int height, int width, ufd_v2_request *q,
                 ufd_err *e, char *msg, size_t n)
{
    memset(q, 0, sizeof *q);
    q->opts = ufd_predict_opts_default();
    ctx c = {.e = e, .msg = msg, .n = n};
    *e = UFD_E_NONE;
    if (json_len > len)
        return bad(&c, "Inference-Header-Content-Length is larger than the body");
    q->json_end = (const char *)body + json_len;
    ufd_js_init(&c.s, body, json_len);
    ufd_js_obj o;
    char key[UFD_JS_KEY_MAX];
    int rc, n_inputs = 0, binary_output = 0, have_outputs = 0;
    input in = {.binary_size = -1};
    const char *outputs = NULL;
    if (ufd_js_peek(&c.s) != UFD_JS_OBJECT)
        return c.s.failed ? syntax(&c) : (*e = UFD_E_BAD_JSON, snprintf(msg, n, "the body must be a JSON object"), -1);
    ufd_js_object(&c.s, &o);
    while ((rc = ufd_js_next_key(&c.s, &o, key)) == 1) {
        if (!strcmp(key, "id")) {
            if (ufd_js_null(&c.s))
                continue;
            if (ufd_js_string_buf(&c.s, q->id, sizeof q->id) != 0)
                return bad(&c, "'id' must be a string of at most %d bytes", UFD_V2_ID_MAX - 1);
            q->has_id = 1;
        } else if (!strcmp(key, "parameters")) {
            if (params(&c, q, &binary_output) != 0)
                return -1;
        } else if (!strcmp(key, "inputs")) {
            ufd_js_arr a;
            if (ufd_js_peek(&c.s) != UFD_JS_ARRAY)
                return c.s.failed ? syntax(&c) : bad(&c, "'inputs' must be an array of exactly one tensor");
            ufd_js_array(&c.s, &a);
            while ((rc = ufd_js_next(&c.s, &a)) == 1) {
                if (++n_inputs > 1)
                    return bad(&c, "'inputs' must be an array of exactly one tensor");
                if (parse_input(&c, &in) != 0)
                    return -1;
            }
            if (rc != 0)
                return syntax(&c);
        } else if (!strcmp(key, "outputs")) {
            /* read after "parameters", whose binary_data_output is the outputs' default */
            outputs = c.s.p;
            have_outputs = 1;
            if (ufd_js_skip(&c.s) != 0)
                return syntax(&c);
        } else if (ufd_js_skip(&c.s) != 0) {
            return syntax(&c);
        }
    }
    if (rc != 0 || ufd_js_finish(&c.s) != 0)
        return syntax(&c);
    if (n_inputs != 1)
        return bad(&c, "'inputs' must be an array of exactly one tensor");
    if (have_outputs) {
        ufd_js_init(&c.s, outputs, (size_t)(q->json_end - outputs));
        if (parse_outputs(&c, q, binary_output) != 0)
            return -1;
    } else {
        default_outputs(q, binary_output);
    }
    return take_input(&c, q, &in, (const unsigned char *)body + json_len, len - json_len, height, width);
}

void ufd_v2_request_free(ufd_v2_request *q)
{
    free(q->x);
    q->x = NULL;
}

int ufd_v2_item(const ufd_v2_request *q, int b, const unsigned char **data, size_t *len, unsigned char **owned,
                ufd_err *e, char *msg, size_t n)
{
    *owned = NULL;
    if (q->item_binary) {
        *data = (const unsigned char *)q->item[b];
        *len = q->item_len[b];
        return 0;
    }
    ufd_js s;
    ufd_js_init(&s, q->item[b], q->item_len[b]);
    const char *text;
    size_t tl;
    char *esc = NULL;
    if (ufd_js_string(&s, &text, &tl, &esc) != 0) {
        *e = UFD_E_BAD_JSON;
        snprintf(msg, n, "BYTES element %d: %s", b, ufd_js_error(&s));
        return -1;
    }
    *owned = ufd_base64_decode(text, tl, len);
    free(esc);
    if (!*owned) {
        *e = UFD_E_BAD_BASE64;
        snprintf(msg, n, "BYTES element %d is not valid base64", b);
        return -1;
    }
    *data = *owned;
    return 0;
}
