/* jscan.h — a strict, allocation-free JSON reader (RFC 8259) over a request body, for the
 * bodies uflowd reads: the caller walks the document and takes only what it needs, so no
 * value ever becomes a heap object (a 16 MiB array of numbers is read straight into a
 * float buffer; a base64 image is a pointer into the body when it holds no escape).
 *
 * Strictness: UTF-8 checked, control characters must be escaped, \u0000 refused (keys and
 * values are C strings downstream), numbers follow the JSON grammar, nesting at most
 * UFD_JS_DEPTH_MAX, nothing but whitespace after the top-level value. Objects walked with
 * ufd_js_next_key refuse a repeated key (after unescaping) and more than UFD_JS_KEYS_MAX
 * keys. Values skipped with ufd_js_skip are checked for syntax only.
 *
 * Errors: every function returns -1 (or UFD_JS_ERROR) once the input is malformed and
 * ufd_js_error() says where and why; after an error every call fails. */
#ifndef UFD_JSCAN_H
#define UFD_JSCAN_H

#include <stddef.h>

#define UFD_JS_DEPTH_MAX 32
#define UFD_JS_KEYS_MAX 32
#define UFD_JS_KEY_MAX 64       /* longest key a walked object may hold (bytes) */

typedef enum ufd_js_kind {
    UFD_JS_ERROR = -1, UFD_JS_END = 0, UFD_JS_OBJECT, UFD_JS_ARRAY, UFD_JS_STRING, UFD_JS_NUMBER,
    UFD_JS_TRUE, UFD_JS_FALSE, UFD_JS_NULL
} ufd_js_kind;

typedef struct ufd_js {
    const char *base, *p, *end;
    int failed;
    char err[128];
} ufd_js;

/* An object being walked: its keys so far (for the duplicate check). */
typedef struct ufd_js_obj {
    int n, done;
    char keys[UFD_JS_KEYS_MAX][UFD_JS_KEY_MAX];
} ufd_js_obj;

typedef struct ufd_js_arr {
    int n, done;
} ufd_js_arr;

void ufd_js_init(ufd_js *s, const void *buf, size_t len);
/* Kind of the next value (whitespace skipped); UFD_JS_END at the end of the input. */
ufd_js_kind ufd_js_peek(ufd_js *s);
/* 0 when only whitespace is left (call after the top-level value), else -1. */
int ufd_js_finish(ufd_js *s);

/* Walk an object: ufd_js_object(s, o) consumes '{'; then ufd_js_next_key returns 1 with the
 * next key in key[] (positioned at its value, which the caller must read or skip), 0 after
 * '}', -1 on error. */
int ufd_js_object(ufd_js *s, ufd_js_obj *o);
int ufd_js_next_key(ufd_js *s, ufd_js_obj *o, char key[UFD_JS_KEY_MAX]);
/* Walk an array the same way: ufd_js_next returns 1 when an element follows. */
int ufd_js_array(ufd_js *s, ufd_js_arr *a);
int ufd_js_next(ufd_js *s, ufd_js_arr *a);

/* Skip one value of any kind (syntax checked). */
int ufd_js_skip(ufd_js *s);
/* A string value. Without escapes *out points into the input and *owned is NULL; with
 * escapes the unescaped bytes are malloc'd (*owned = *out, free it). No NUL inside. */
int ufd_js_string(ufd_js *s, const char **out, size_t *len, char **owned);
/* A string value into buf (n bytes incl. the terminator); -1 also when it is longer. */
int ufd_js_string_buf(ufd_js *s, char *buf, size_t n);
/* A number as a double (strtod of the JSON text: beyond double range is an error). */
int ufd_js_number(ufd_js *s, double *v);
/* An integer (no fraction or exponent) in [lo, hi]. */
int ufd_js_int(ufd_js *s, long long lo, long long hi, long long *v);
/* true or false. */
int ufd_js_bool(ufd_js *s, int *v);
/* null: 1 and consumed when the next value is null, else 0 (nothing consumed). */
int ufd_js_null(ufd_js *s);

/* Fail with a message of the caller's (a schema error, not a syntax error). */
int ufd_js_fail(ufd_js *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ufd_js_error(const ufd_js *s);
/* Byte offset of the reading position (for error messages). */
size_t ufd_js_offset(const ufd_js *s);

#endif
