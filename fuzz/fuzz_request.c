/* fuzz_request.c — uflowd's request head, as the connection gate reads it: the head checker
 * (server/head.c) on every prefix a client could have sent so far, then for an accepted head
 * the target parser (server/target.c), the router (server/route.c) and the predict option
 * parser (server/options.c) on each query parameter, as the route stage applies them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "head.h"
#include "options.h"
#include "route.h"
#include "target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > UFD_HEAD_MAX + 64)
        return 0;
    const char *buf = (const char *)data;
    ufd_head h;
    ufd_err e;
    char msg[160];
    /* what the gate sees as bytes arrive: once a prefix is refused, every longer one is
     * (a refusal is final); once one is complete, the verdict no longer changes */
    size_t cut = size ? data[0] % (size + 1) : 0;
    ufd_head_rc early = ufd_head_check(buf, cut, &h, &e, msg, sizeof msg);
    ufd_head_rc rc = ufd_head_check(buf, size, &h, &e, msg, sizeof msg);
    if (early == UFD_HEAD_BAD && rc != UFD_HEAD_BAD)
        __builtin_trap();
    if (rc == UFD_HEAD_BAD && (e == UFD_E_NONE || !msg[0]))
        __builtin_trap();
    if (rc != UFD_HEAD_OK)
        return 0;
    if (h.len == 0 || h.len > size || !h.target || h.target_len == 0 || h.target_len > UFD_TARGET_MAX ||
        !h.method[0])
        __builtin_trap();
    char t[UFD_TARGET_MAX + 1];
    memcpy(t, h.target, h.target_len);
    t[h.target_len] = '\0';
    ufd_target tg;
    char err[160] = "";
    if (ufd_target_parse(t, &tg, err, sizeof err) == 0) {
        if (!tg.path || (tg.path[0] != '/' && tg.path[0] != '*') || tg.n_args < 0 || tg.n_args > UFD_ARGS_MAX)
            __builtin_trap();
        ufd_route r;
        ufd_route_match(tg.path, &r);
        if ((int)r.ep < 0 || r.ep >= UFD_EP_COUNT || strlen(r.model) >= sizeof r.model)
            __builtin_trap();
        (void)ufd_endpoint_allow(r.ep);
        ufd_predict_opts o = ufd_predict_opts_default();
        for (int i = 0; i < tg.n_args; i++) {
            if (ufd_target_arg(&tg, tg.key[i]) != tg.val[i]) /* keys are unique */
                __builtin_trap();
            err[0] = '\0';
            int st = ufd_predict_opt_set(&o, tg.key[i], tg.val[i], err, sizeof err);
            if ((st == 1) != (ufd_predict_opt_index(tg.key[i]) < 0) || (st == -1 && !err[0]))
                __builtin_trap();
        }
    } else if (!err[0]) {
        __builtin_trap();
    }
    ufd_target_free(&tg);
    return 0;
}
