/* common.c — helpers shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_fail(const char *cmd, const uf_error *err)
{
    fprintf(stderr, "uflow %s: %s\n", cmd, err->msg);
    return CLI_FAIL;
}

void cli_image_hint(uf_error *err)
{
    static const char hint[] = "; for trusted local files: --allow-any-format";
    size_t n = strlen(err->msg);
    if (err->status == UF_ERR_FORMAT_NOT_ACCEPTED && n + sizeof hint <= sizeof err->msg)
        memcpy(err->msg + n, hint, sizeof hint);
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

int cli_parse_size(const char *s, int *h, int *w)
{
    char *end;
    long a = strtol(s, &end, 10), b = a;
    if (*end == 'x')
        b = strtol(end + 1, &end, 10);
    if (*end || a <= 0 || b <= 0 || a > 4096 || b > 4096)
        return -1;
    *h = (int)a;
    *w = (int)b;
    return 0;
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
