/* util.h — shared helpers for the cmocka tests: fixture paths, safetensors access,
 * error metrics. */
#ifndef UF_TEST_UTIL_H
#define UF_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "io/st.h"
#include "uflow.h"

/* In-repo fixtures: $UFLOW_TEST_GOLDEN or <source>/tests/golden. */
const char *ut_golden_dir(void);
/* The full anomalib fixtures: $UFLOW_SHARED_GOLDEN or <source>/../shared/golden; NULL if absent. */
const char *ut_shared_golden_dir(void);
/* dir/file joined into a static-per-call buffer owned by the caller. */
void ut_path(char *buf, size_t n, const char *dir, const char *file);

/* Open a safetensors fixture; fails the test when it cannot. */
uf_st *ut_open(const char *dir, const char *file);
/* A float32 tensor by name (fails the test when absent); *n = element count. */
const float *ut_f32(const uf_st *st, const char *name, size_t *n);

/* Run a shell command line, capture stdout+stderr into out (truncated to n-1 bytes), return
 * its exit status (-1 if it did not exit normally). */
int ut_run(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Likewise, but capture stdout only (stderr discarded). */
int ut_run_stdout(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A whole file, NUL-terminated (the NUL not counted in *len, which may be NULL); fails the
 * test when it is unreadable. free() it. */
void *ut_slurp(const char *path, size_t *len);

/* Remove a directory tree (test temp dirs); 0 on success. */
int ut_rmtree(const char *dir);

double ut_max_abs(const float *a, const float *b, size_t n);
double ut_mean_abs(const float *a, const float *b, size_t n);
double ut_max_absval(const float *a, size_t n);

#endif
