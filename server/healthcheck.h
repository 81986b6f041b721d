/* healthcheck.h — `uflowd --healthcheck [URL]`: one HTTP GET over a plain socket (no curl
 * in the container), exit status 0 on a 2xx answer within 5 s, else 1. */
#ifndef UFD_HEALTHCHECK_H
#define UFD_HEALTHCHECK_H

#include "config.h"

/* URL defaults to http://127.0.0.1:<--listen port>/readyz; with --api-key-file the first
 * key is sent. Returns the exit status. */
int ufd_healthcheck(const ufd_config *c);

#endif
