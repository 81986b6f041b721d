/* common.c — helpers shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int cli_fail(const char *cmd, const uf_error *err)
{
    fprintf(stderr, "uflow %s: %s\n", cmd, err->msg);
    return CLI_FAIL;
}

int cli_int(const char *cmd, const char *opt, const char *val, int lo, int hi)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || *end || end == val || v < lo || v > hi) {
        fprintf(stderr, "uflow %s: %s expects an integer in [%d, %d], got '%s'\n", cmd, opt, lo, hi, val);
        return -1;
    }
    return (int)v;
}

int cli_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

uf_model *cli_load_model(const char *cmd, const char *path)
{
    uf_model *m = NULL;
    uf_error err = {0};
    if (uf_model_load(path, &m, &err) != UF_OK) {
        cli_fail(cmd, &err);
        return NULL;
    }
    return m;
}
