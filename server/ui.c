/* ui.c — see ui.h. */
#include "ui.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reply.h"

/* server/ui/index.html and its CSP, embedded at build time (ui_data.c, server/embed.py --csp). */
extern const char ufd_ui_html[];
extern const size_t ufd_ui_html_len;
extern const char ufd_ui_html_csp[];

static const char *const page_headers[] = {
    "Content-Security-Policy", ufd_ui_html_csp,
    "X-Content-Type-Options", "nosniff",
    "X-Frame-Options", "DENY", /* for browsers without CSP frame-ancestors */
    "Referrer-Policy", "no-referrer",
    "Cross-Origin-Opener-Policy", "same-origin",
    "Cross-Origin-Resource-Policy", "same-origin",
    NULL,
};

void ufd_h_ui(ufd_req *r)
{
    ufd_reply_text(r, 200, "text/html; charset=utf-8", (char *)ufd_ui_html, ufd_ui_html_len, NULL);
    r->headers = page_headers;
}

static const char *const redirect_headers[] = {"Location", "ui", NULL};

void ufd_h_ui_redirect(ufd_req *r)
{
    static char body[] = "<!doctype html><title>uflowd</title><a href=\"ui\">uflowd inspection page</a>\n";
    ufd_reply_text(r, 302, "text/html; charset=utf-8", body, sizeof body - 1, NULL);
    r->headers = redirect_headers;
}

/* Does one media range "type/sub;param..." name HTML with q > 0? */
static int range_is_html(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    size_t t = 0;
    while (t < n && s[t] != ';' && s[t] != ' ' && s[t] != '\t')
        t++;
    int html = (t == 9 && !strncasecmp(s, "text/html", 9)) || (t == 21 && !strncasecmp(s, "application/xhtml+xml", 21));
    if (!html)
        return 0;
    for (size_t i = t; i + 1 < n; i++) { /* ";q=0", ";q=0.0", ... : explicitly not wanted */
        if (s[i] != ';')
            continue;
        size_t j = i + 1;
        while (j < n && (s[j] == ' ' || s[j] == '\t'))
            j++;
        if (j + 2 <= n && (s[j] == 'q' || s[j] == 'Q') && s[j + 1] == '=') {
            char q[8] = {0};
            size_t k = 0;
            for (j += 2; j < n && k < sizeof q - 1 && s[j] != ';' && s[j] != ' '; j++)
                q[k++] = s[j];
            return strtod(q, NULL) > 0;
        }
    }
    return 1;
}

int ufd_ui_wants_html(const char *accept)
{
    if (!accept)
        return 0;
    for (const char *p = accept;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (range_is_html(p, n))
            return 1;
        if (!e)
            return 0;
        p = e + 1;
    }
}
