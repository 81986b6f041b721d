/* http.h — the HTTP front: libmicrohttpd with its own I/O thread pool (epoll, or poll where
 * epoll is unavailable). It turns libmicrohttpd's callbacks into the request life cycle of
 * dispatch.h (head -> body -> end), suspends a connection while its answer is deferred
 * (so I/O threads never wait for a worker) and sends the answer set on the request. */
#ifndef UFD_HTTP_H
#define UFD_HTTP_H

#include <stddef.h>

#include "server.h"

typedef struct ufd_http ufd_http;

/* Listen on srv->cfg->listen. *port receives the bound port. NULL + message on failure. */
ufd_http *ufd_http_start(ufd_server *srv, int *port, char *err, size_t n);
/* Stop accepting connections (drain); open connections continue. */
void ufd_http_quiesce(ufd_http *h);
/* Close everything. Every suspended request must have been resumed before. */
void ufd_http_stop(ufd_http *h);

#endif
