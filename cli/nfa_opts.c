/* nfa_opts.c — the NFA options shared by infer, predict and nfa (--window etc.). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_nfa_opt(const char *cmd, const char *name, const char *val, uf_nfa_opts *o)
{
    char *end;
    if (!strcmp(name, "window")) {
        int v = cli_int(cmd, "--nfa-window", val, 1, 1024);
        if (v < 0)
            return -1;
        o->window = v;
    } else if (!strcmp(name, "prob-thr")) {
        o->prob_thr = strtod(val, &end);
        if (*end || !(o->prob_thr > 0 && o->prob_thr < 1))
            goto bad;
    } else if (!strcmp(name, "epsilon")) {
        o->epsilon = strtod(val, &end);
        if (*end)
            goto bad;
    } else {
        return -1;
    }
    return 0;
bad:
    fprintf(stderr, "uflow %s: bad value '%s' for %s\n", cmd, val, name);
    return -1;
}
