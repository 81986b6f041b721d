/* sha256.h — SHA-256 (FIPS 180-4), incremental.
 *
 * The model's version string is a SHA-256 prefix of the file, so every load hashes the whole
 * file (24 MB for resnet18@256, 1.6 GB for mcait). glib's SHA-256 runs at ~360 MB/s here; the
 * x86 SHA extensions (SHA-NI), picked at run time when the CPU has them, run at several GB/s.
 * Both paths give the same digest (tests/test_sha256.c checks them against each other and
 * against the FIPS vectors). */
#ifndef UF_SHA256_H
#define UF_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct uf_sha256 {
    uint32_t h[8];
    uint64_t bytes;   /* total length so far */
    uint8_t buf[64];  /* a partial block */
    size_t nbuf;
    int ni;           /* 1: use the SHA extensions */
} uf_sha256;

void uf_sha256_init(uf_sha256 *s);
/* As uf_sha256_init, but never the SHA extensions (tests compare the two paths). */
void uf_sha256_init_portable(uf_sha256 *s);
void uf_sha256_update(uf_sha256 *s, const void *data, size_t n);
void uf_sha256_final(uf_sha256 *s, uint8_t digest[32]);

/* One-shot: the 64 lowercase hex digits of data's SHA-256 plus a NUL. */
void uf_sha256_hex(const void *data, size_t n, char hex[65]);

#endif
