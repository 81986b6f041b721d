/* http.h — the HTTP front: libmicrohttpd with its own I/O thread pool (epoll, or poll where
 * epoll is unavailable), one ufd_req per request, suspend/resume around inference jobs so
 * I/O threads never wait for a worker. Routing and early rejections (404/405/401/413/415,
 * not ready) happen here; the endpoint handlers do the rest. */
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
