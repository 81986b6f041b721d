/* reload.h — model reload (SIGHUP and POST /v1/models/reload) on a thread of its own, so
 * neither the signal loop nor an HTTP I/O thread ever waits for a model to load.
 *
 * Requests coalesce: asking while a reload runs schedules one more after it (every asker
 * gets the result of a reload that started after it asked). A reload builds the new
 * snapshot (models.h: new and changed files loaded, contexts for every worker made) and
 * only then swaps it in; in-flight and queued requests keep the snapshot they started
 * with. */
#ifndef UFD_RELOAD_H
#define UFD_RELOAD_H

#include <stddef.h>

#include "request.h"

ufd_reloader *ufd_reloader_start(ufd_server *srv, char *err, size_t errn);
/* Ask for a reload. With a request, its connection is suspended and answered (200, the
 * reload report) when that reload is done. Thread-safe. */
void ufd_reloader_request(ufd_reloader *rl, ufd_req *waiter);
/* Finish the running reload, answer 503 to requests still waiting, stop the thread. */
void ufd_reloader_stop(ufd_reloader *rl);

#endif
