/* multipart.h — a streaming multipart/form-data parser (RFC 7578 on RFC 2046's framing),
 * fed the body chunk by chunk as it arrives. uflowd's own rather than libmicrohttpd's post
 * processor so that framing is strict and fully under test (and fuzzed): CRLF line ends
 * only, a bounded part-header block, a bounded number of parts, every part named by a
 * `Content-Disposition: form-data; name=...` header, a close delimiter before the end.
 *
 * The caller sees each part as begin(name, filename) -> data... -> end; begin may refuse a
 * part (a duplicate field, say) by returning non-zero, which stops the parse with the
 * caller's message. Preamble and epilogue are ignored, as RFC 2046 says. */
#ifndef UFD_MULTIPART_H
#define UFD_MULTIPART_H

#include <stddef.h>

#define UFD_MP_BOUNDARY_MAX 70     /* RFC 2046 */
#define UFD_MP_NAME_MAX 64         /* longest field name kept; longer names are an error */
#define UFD_MP_HEADER_MAX 2048     /* part header block (all lines) */
#define UFD_MP_PARTS_MAX 32

typedef struct ufd_mp_handler {
    /* A part starts. filename is NULL when the part has none. Non-zero refuses it: the
     * parse fails with the message the callback wrote into err (n bytes). */
    int (*begin)(void *ud, const char *name, const char *filename, char *err, size_t n);
    /* Content bytes of the current part (any number of calls, possibly none). Non-zero
     * stops like begin. */
    int (*data)(void *ud, const void *p, size_t len, char *err, size_t n);
    void (*end)(void *ud);       /* the current part is complete (may be NULL) */
    void *ud;
} ufd_mp_handler;

typedef struct ufd_mp ufd_mp;

/* The boundary parameter of a multipart/form-data Content-Type into out (>= 71 bytes).
 * 0, or -1 when the type is not multipart/form-data or has no valid boundary. */
int ufd_mp_boundary(const char *content_type, char *out, size_t n);

/* A parser for parts delimited by `boundary` (from ufd_mp_boundary). NULL if out of memory. */
ufd_mp *ufd_mp_new(const char *boundary, const ufd_mp_handler *h);
void ufd_mp_free(ufd_mp *m);

/* Feed the next len bytes. 0, or -1 once the body is malformed or a callback refused
 * (ufd_mp_error says why; later calls keep failing). */
int ufd_mp_feed(ufd_mp *m, const void *p, size_t len);
/* The body is complete: 0 when it ended with the close delimiter, else -1. */
int ufd_mp_finish(ufd_mp *m);
const char *ufd_mp_error(const ufd_mp *m);

#endif
