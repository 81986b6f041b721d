/* zip.h — a read-only zip reader over a caller-owned buffer (an mmapped file), for torch's
 * checkpoint archives.
 *
 * uf_zip_open validates the whole directory before returning: the end record (ZIP64 end
 * record and locator when present, as torch writes for files over 4 GiB), one disk only, the
 * central directory inside the file and holding exactly the announced entries, every name
 * non-empty and NUL-free and unique, every local header where its central entry says with the
 * same name, and every entry's data inside the file before the central directory. Sizes and
 * offsets come from the central directory (ZIP64 extra fields where the 32-bit fields say
 * 0xFFFFFFFF); local headers may defer sizes to a data descriptor, as torch's writer does.
 *
 * Only stored (uncompressed) entries can be read: uf_zip_data refuses any other method with a
 * message, and checks the CRC-32 unless the archive recorded 0 (torch can skip computing it).
 * Encrypted entries are refused.
 */
#ifndef UF_ZIP_H
#define UF_ZIP_H

#include "uflow.h"

#include <stddef.h>
#include <stdint.h>

typedef struct uf_zip_entry {
    const char *name;     /* NUL-terminated copy */
    uint64_t size;        /* uncompressed size */
    uint64_t csize;       /* stored size */
    uint64_t data_offset; /* first data byte in the buffer */
    uint32_t crc32;
    uint16_t method;      /* 0 = stored */
    uint16_t flags;
} uf_zip_entry;

typedef struct uf_zip uf_zip;

uf_status uf_zip_open(const void *buf, size_t len, uf_zip **out, uf_error *err);
void uf_zip_close(uf_zip *z);

size_t uf_zip_count(const uf_zip *z);
const uf_zip_entry *uf_zip_at(const uf_zip *z, size_t i);   /* central directory order */
const uf_zip_entry *uf_zip_find(const uf_zip *z, const char *name);

/* The bytes of a stored entry (a pointer into the buffer, e->size bytes), CRC checked. */
uf_status uf_zip_data(const uf_zip *z, const uf_zip_entry *e, const void **data, uf_error *err);

/* CRC-32 (the zip / zlib polynomial), continuing from crc (0 to start). */
uint32_t uf_crc32(uint32_t crc, const void *data, size_t n);

#endif
