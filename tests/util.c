/* util.c — see util.h. */
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <ftw.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>

const char *ut_golden_dir(void)
{
    const char *e = getenv("UFLOW_TEST_GOLDEN");
    return e && *e ? e : UF_SOURCE_ROOT "/tests/golden";
}

const char *ut_shared_golden_dir(void)
{
    const char *e = getenv("UFLOW_SHARED_GOLDEN");
    const char *d = e && *e ? e : UF_SOURCE_ROOT "/../shared/golden";
    struct stat sb;
    char p[1024];
    ut_path(p, sizeof p, d, "expected_random.safetensors");
    return stat(p, &sb) == 0 ? d : NULL;
}

void ut_path(char *buf, size_t n, const char *dir, const char *file)
{
    snprintf(buf, n, "%s/%s", dir, file);
}

uf_st *ut_open(const char *dir, const char *file)
{
    char p[1024];
    ut_path(p, sizeof p, dir, file);
    uf_st *st = NULL;
    uf_error err = {0};
    if (uf_st_open(p, &st, &err) != UF_OK)
        fail_msg("cannot open fixture %s: %s", p, err.msg);
    return st;
}

const float *ut_f32(const uf_st *st, const char *name, size_t *n)
{
    const uf_st_tensor *t = uf_st_find(st, name);
    if (!t || t->dtype != UF_DT_F32)
        fail_msg("fixture tensor '%s' missing or not F32", name);
    if (((uintptr_t)t->data & 3) != 0)
        fail_msg("fixture tensor '%s' is unaligned", name);
    if (n)
        *n = t->numel;
    return t->data;
}

double ut_max_abs(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

double ut_mean_abs(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += fabs((double)a[i] - (double)b[i]);
    return n ? s / n : 0;
}

double ut_max_absval(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i]));
    return m;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int ut_rmtree(const char *dir) { return nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS); }

/* The command line with `redirect` (stderr's) appended, run; see ut_run. */
static int vrun(char *out, size_t n, const char *redirect, const char *fmt, va_list ap)
{
    char cmd[8192];
    int len = vsnprintf(cmd, sizeof cmd, fmt, ap);
    if (len < 0 || (size_t)len + 1 + strlen(redirect) >= sizeof cmd) {
        fail_msg("command line too long");
        return -1;
    }
    strcat(cmd, " ");
    strcat(cmd, redirect);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, n - 1, p);
    out[got] = '\0';
    while (fgetc(p) != EOF) /* drain what did not fit so the child never blocks */
        ;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int ut_run(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(out, n, "2>&1", fmt, ap);
    va_end(ap);
    return rc;
}

int ut_run_stdout(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(out, n, "2>/dev/null", fmt, ap);
    va_end(ap);
    return rc;
}

void *ut_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail_msg("cannot open %s", path);
        return NULL;
    }
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        fail_msg("cannot size %s", path);
        return NULL;
    }
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    if (len)
        *len = (size_t)n;
    return b;
}
