/* body.h — request bodies: a bounded growable buffer, content-type classification and
 * strict base64 decoding (GLib does the decoding; this file rejects what GLib would skip). */
#ifndef UFD_BODY_H
#define UFD_BODY_H

#include <stddef.h>

typedef struct ufd_buf {
    unsigned char *data;
    size_t len, cap;
} ufd_buf;

/* Append n bytes unless the result would exceed limit (-1) or memory runs out (-2). */
int ufd_buf_append(ufd_buf *b, const void *p, size_t n, size_t limit);
/* Reserve room for n bytes in total (a hint; 0 or -2). */
int ufd_buf_reserve(ufd_buf *b, size_t n);
void ufd_buf_free(ufd_buf *b);

typedef enum ufd_body_kind {
    UFD_BODY_NONE = 0,
    UFD_BODY_IMAGE,              /* image/..., application/octet-stream, or no Content-Type */
    UFD_BODY_MULTIPART,          /* multipart/form-data */
    UFD_BODY_JSON,               /* application/json, ...+json */
    UFD_BODY_UNSUPPORTED         /* anything else: 415 */
} ufd_body_kind;

/* Classify a Content-Type header value (parameters and case ignored); NULL = absent. */
ufd_body_kind ufd_body_kind_of(const char *content_type);

/* Decode standard base64 (whitespace allowed, '=' padding optional, an optional
 * "data:...;base64," prefix). NULL when the text is not base64; else a g_malloc'd buffer
 * to release with g_free. */
unsigned char *ufd_base64_decode(const char *text, size_t len, size_t *out_len);

#endif
