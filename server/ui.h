/* ui.h — the browser inspection page (server/ui/index.html, embedded at build time with its
 * Content-Security-Policy) and the redirect of browsers from / to it. The page is static and
 * holds no data: everything it shows comes from the public API, called by the page with the
 * user's key, so serving it needs no key (route.h: ufd_endpoint_is_public). */
#ifndef UFD_UI_H
#define UFD_UI_H

#include "request.h"

/* GET /ui: the page, with a strict CSP and no-sniff/no-framing/no-referrer headers. */
void ufd_h_ui(ufd_req *r);
/* GET / from a browser: 302 to "ui" (relative, so a path prefix added by a reverse proxy
 * is kept). */
void ufd_h_ui_redirect(ufd_req *r);

/* 1 when an Accept header value asks for HTML (text/html or application/xhtml+xml with a
 * non-zero q): what browsers send for a navigation, and curl or API clients do not. */
int ufd_ui_wants_html(const char *accept);

#endif
