/* dispatch.h — the route stage of a request, between the HTTP front and the endpoint
 * handlers: checks that need only the request head (API key, target, endpoint, method,
 * readiness, model, body size and type), the body as it arrives (a bounded buffer, or the
 * multipart parser for forms), and the handler once the body is complete. No HTTP library
 * in here: the front (http.c) calls these three in order. */
#ifndef UFD_DISPATCH_H
#define UFD_DISPATCH_H

#include <stddef.h>

#include "request.h"

/* The head is complete (r->h filled in). 1 when r already has its (error) answer, 0 when
 * the body should be read. */
int ufd_dispatch_head(ufd_req *r, const char *method);
/* The next body chunk. 0, or -1 when the client keeps sending far past a refused body
 * (drop the connection). */
int ufd_dispatch_body(ufd_req *r, const void *data, size_t n);
/* The body is complete: the endpoint's handler sets the answer or defers it. */
void ufd_dispatch_end(ufd_req *r);

#endif
