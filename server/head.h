/* head.h — the request head (request line and header fields) as the HTTP front's gate
 * sees it before libmicrohttpd does (gate.h). Only heads that every HTTP/1.1 reader parses
 * the same way pass, so the library behind the gate cannot be made to see another request
 * than the one checked here (request smuggling) and never has to produce an error of its
 * own for a head:
 *   - CRLF line ends only; no NUL or other control character; no folded lines; no space
 *     before a field's colon; field names are tokens;
 *   - "METHOD SP TARGET SP HTTP/1.x": a token method, a target of visible ASCII at most
 *     UFD_TARGET_MAX bytes (414 above), HTTP/1.0 or 1.1 (505 for other versions);
 *   - at most UFD_HEAD_FIELDS_MAX fields and UFD_HEAD_MAX bytes in all (431 above);
 *   - HTTP/1.1 needs exactly one Host; Content-Length is digits only and at most once;
 *     Transfer-Encoding at most once, never with Content-Length, never in HTTP/1.0, and
 *     ending in chunked (400); a coding before chunked (gzip, ...) is 501.
 * A pure function of the bytes received so far: it says as soon as a complete line is
 * wrong, so junk is refused without waiting for the rest. */
#ifndef UFD_HEAD_H
#define UFD_HEAD_H

#include <stddef.h>

#include "errors.h"
#include "target.h"

#define UFD_HEAD_MAX 16384
#define UFD_HEAD_FIELDS_MAX 100

typedef enum ufd_head_rc { UFD_HEAD_BAD = -1, UFD_HEAD_MORE = 0, UFD_HEAD_OK = 1 } ufd_head_rc;

typedef struct ufd_head {
    size_t len;                    /* bytes of the head incl. the blank line (OK only) */
    char method[16];               /* "" until the request line is complete (set also when refused, for the log) */
    const char *target;            /* into the buffer; target_len bytes (NULL until the request line is complete) */
    size_t target_len;
    int minor;                     /* HTTP/1.<minor> */
    char request_id[64];           /* X-Request-Id when valid, else "" */
} ufd_head;

/* Check buf[0..len) (all bytes received on the connection so far). MORE: no blank line yet
 * and nothing wrong so far; OK: the head is complete and acceptable; BAD: *e and msg say
 * what to answer. */
ufd_head_rc ufd_head_check(const char *buf, size_t len, ufd_head *h, ufd_err *e, char *msg, size_t n);

#endif
