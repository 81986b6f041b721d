/* internal.h — helpers shared by libuflow's modules (not installed, not public). */
#ifndef UF_INTERNAL_H
#define UF_INTERNAL_H

#include "uflow.h"

#include <stddef.h>

/* Record an error: fills err (if not NULL) with status and a printf-style message and
 * returns the status, so callers can write `return uf_err(err, UF_ERR_ARG, "...", ...)`. */
uf_status uf_err(uf_error *err, uf_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with context ("loading x: <old message>"). */
void uf_err_prefix(uf_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 64-byte aligned allocation for SIMD/GEMM buffers; free with uf_afree. NULL on failure. */
void *uf_aalloc(size_t bytes);
void uf_afree(void *p);

/* Hot loops are compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time, so
 * one portable binary still uses the machine's vector width. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define UF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define UF_CLONES
#endif

#define UF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define UF_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
