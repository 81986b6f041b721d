/* zip.c — the zip directory reader of zip.h. Every offset and length read from the file is
 * checked against the buffer (and against the central directory, which must come after all
 * entry data) before it is used; arithmetic is done in uint64_t with overflow checks. */
#include "core/internal.h"
#include "io/zip.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define MAX_ENTRIES (1u << 20)

struct uf_zip {
    const uint8_t *b;
    size_t len;
    uf_zip_entry *e;
    size_t n;
    char *names;
    size_t *sorted; /* entry indices sorted by name, for lookup and the duplicate check */
};

/* ---- CRC-32, slicing by 8 (tables built once) ------------------------------------------------ */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xFF];
}

uint32_t uf_crc32(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        c = crc_tab[7][lo & 0xFF] ^ crc_tab[6][(lo >> 8) & 0xFF] ^ crc_tab[5][(lo >> 16) & 0xFF] ^
            crc_tab[4][lo >> 24] ^ crc_tab[3][p[4]] ^ crc_tab[2][p[5]] ^ crc_tab[1][p[6]] ^
            crc_tab[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = crc_tab[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

/* ---- directory ------------------------------------------------------------------------------- */

static uint32_t u16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t u32(const uint8_t *p) { return u16(p) | u16(p + 2) << 16; }
static uint64_t u64(const uint8_t *p) { return (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32; }

/* Heap sort of entry indices by name (qsort has no context argument, and no global may hold
 * one). */
static int name_lt(const uf_zip_entry *e, size_t a, size_t b) { return strcmp(e[a].name, e[b].name) < 0; }

static void sift(const uf_zip_entry *e, size_t *v, size_t root, size_t n)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && name_lt(e, v[c], v[c + 1]))
            c++;
        if (!name_lt(e, v[root], v[c]))
            return;
        size_t t = v[root];
        v[root] = v[c];
        v[c] = t;
        root = c;
    }
}

static void sort_by_name(const uf_zip_entry *e, size_t *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(e, v, i, n);
    for (size_t end = n; end > 1; end--) {
        size_t t = v[0];
        v[0] = v[end - 1];
        v[end - 1] = t;
        sift(e, v, 0, end - 1);
    }
}

/* Where the end-of-central-directory record starts: the last signature whose comment ends
 * exactly at the end of the file (a signature inside a comment would not). */
static int64_t find_eocd(const uint8_t *b, size_t len)
{
    if (len < 22)
        return -1;
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (u32(b + i) == SIG_EOCD && i + 22 + u16(b + i + 20) == len)
            return (int64_t)i;
    return -1;
}

/* The ZIP64 extra field of a central entry: replaces the fields that say 0xFFFFFFFF. */
static uf_status zip64_extra(const uint8_t *x, size_t xl, uint64_t *usize, uint64_t *csize,
                             uint64_t *lho, const char *name, uf_error *err)
{
    int need_u = *usize == 0xFFFFFFFFu, need_c = *csize == 0xFFFFFFFFu, need_o = *lho == 0xFFFFFFFFu;
    for (size_t i = 0; i + 4 <= xl;) {
        uint32_t id = u16(x + i), sz = u16(x + i + 2);
        if (i + 4 + sz > xl)
            return uf_err(err, UF_ERR_FORMAT, "zip entry '%s': extra field runs past its end", name);
        if (id == 1) {
            const uint8_t *f = x + i + 4;
            size_t o = 0;
            uint64_t *want[3] = {need_u ? usize : NULL, need_c ? csize : NULL, need_o ? lho : NULL};
            for (int k = 0; k < 3; k++) {
                if (!want[k])
                    continue;
                if (o + 8 > sz)
                    return uf_err(err, UF_ERR_FORMAT, "zip entry '%s': short ZIP64 field", name);
                *want[k] = u64(f + o);
                o += 8;
            }
            return UF_OK;
        }
        i += 4 + sz;
    }
    if (need_u || need_c || need_o)
        return uf_err(err, UF_ERR_FORMAT, "zip entry '%s': 0xFFFFFFFF size without ZIP64 field", name);
    return UF_OK;
}

static uf_status end_records(const uint8_t *b, size_t len, uint64_t *cd_off, uint64_t *cd_size,
                             uint64_t *count, uint64_t *cd_end_limit, uf_error *err)
{
    int64_t e = find_eocd(b, len);
    if (e < 0)
        return uf_err(err, UF_ERR_FORMAT, "not a zip archive (no end-of-central-directory record)");
    const uint8_t *r = b + e;
    uint32_t disk = u16(r + 4), cd_disk = u16(r + 6);
    uint64_t n_disk = u16(r + 8), n = u16(r + 10), sz = u32(r + 12), off = u32(r + 16);
    *cd_end_limit = (uint64_t)e;
    if (n == 0xFFFF || sz == 0xFFFFFFFFu || off == 0xFFFFFFFFu || disk == 0xFFFF) {
        if (e < 20 || u32(b + e - 20) != SIG_LOC64)
            return uf_err(err, UF_ERR_FORMAT, "zip: ZIP64 sizes without a ZIP64 locator");
        uint64_t z = u64(b + e - 20 + 8);
        if (u32(b + e - 20 + 4) != 0 || u32(b + e - 20 + 16) > 1)
            return uf_err(err, UF_ERR_FORMAT, "zip: multi-disk archives are not supported");
        if (z > (uint64_t)e - 20 || (uint64_t)e - 20 - z < 56 || u32(b + z) != SIG_EOCD64)
            return uf_err(err, UF_ERR_FORMAT, "zip: ZIP64 end record is not where its locator says");
        const uint8_t *q = b + z;
        disk = u32(q + 16);
        cd_disk = u32(q + 20);
        n_disk = u64(q + 24);
        n = u64(q + 32);
        sz = u64(q + 40);
        off = u64(q + 48);
        *cd_end_limit = z;
    }
    if (disk != 0 || cd_disk != 0 || n_disk != n)
        return uf_err(err, UF_ERR_FORMAT, "zip: multi-disk archives are not supported");
    if (off > *cd_end_limit || sz > *cd_end_limit - off)
        return uf_err(err, UF_ERR_FORMAT, "zip: central directory lies outside the file");
    if (n > MAX_ENTRIES || n > sz / 46 + 1)
        return uf_err(err, UF_ERR_FORMAT, "zip: %llu entries do not fit the central directory",
                      (unsigned long long)n);
    *cd_off = off;
    *cd_size = sz;
    *count = n;
    return UF_OK;
}

/* One central entry at cd[*pos]; the name goes to names (NUL-terminated). */
static uf_status central(uf_zip *z, const uint8_t *cd, uint64_t cd_size, uint64_t *pos,
                         uint64_t cd_off, uf_zip_entry *e, char *names, size_t *names_used,
                         uf_error *err)
{
    if (cd_size - *pos < 46 || u32(cd + *pos) != SIG_CENTRAL)
        return uf_err(err, UF_ERR_FORMAT, "zip: broken central directory entry at byte %llu",
                      (unsigned long long)(cd_off + *pos));
    const uint8_t *c = cd + *pos;
    uint32_t nl = u16(c + 28), xl = u16(c + 30), kl = u16(c + 32);
    if (cd_size - *pos - 46 < (uint64_t)nl + xl + kl)
        return uf_err(err, UF_ERR_FORMAT, "zip: central directory entry runs past the directory");
    if (nl == 0 || memchr(c + 46, 0, nl))
        return uf_err(err, UF_ERR_FORMAT, "zip: an entry with an empty or NUL-containing name");
    char *name = names + *names_used;
    memcpy(name, c + 46, nl);
    name[nl] = 0;
    *names_used += nl + 1;
    e->name = name;
    e->flags = (uint16_t)u16(c + 8);
    e->method = (uint16_t)u16(c + 10);
    e->crc32 = u32(c + 16);
    e->csize = u32(c + 20);
    e->size = u32(c + 24);
    uint64_t lho = u32(c + 42);
    if (u16(c + 34) != 0 && u16(c + 34) != 0xFFFF)
        return uf_err(err, UF_ERR_FORMAT, "zip entry '%s' is on another disk", name);
    uf_status s = zip64_extra(c + 46 + nl, xl, &e->size, &e->csize, &lho, name, err);
    if (s)
        return s;
    *pos += 46 + (uint64_t)nl + xl + kl;
    /* the local header, then the data, all before the central directory */
    if (lho > cd_off || cd_off - lho < 30 || u32(z->b + lho) != SIG_LOCAL)
        return uf_err(err, UF_ERR_FORMAT, "zip entry '%s': no local header at byte %llu", name,
                      (unsigned long long)lho);
    const uint8_t *l = z->b + lho;
    uint32_t lnl = u16(l + 26), lxl = u16(l + 28);
    uint64_t data = lho + 30 + lnl + lxl;
    if (data > cd_off || lnl != nl || memcmp(l + 30, name, nl) != 0)
        return uf_err(err, UF_ERR_FORMAT, "zip entry '%s': local header does not match", name);
    if (e->csize > cd_off - data)
        return uf_err(err, UF_ERR_FORMAT, "zip entry '%s': %llu data bytes run past the archive",
                      name, (unsigned long long)e->csize);
    e->data_offset = data;
    return UF_OK;
}

uf_status uf_zip_open(const void *buf, size_t len, uf_zip **out, uf_error *err)
{
    *out = NULL;
    uint64_t cd_off = 0, cd_size = 0, n = 0, limit = 0;
    uf_status s = end_records(buf, len, &cd_off, &cd_size, &n, &limit, err);
    if (s)
        return s;
    uf_zip *z = calloc(1, sizeof *z);
    if (!z)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    z->b = buf;
    z->len = len;
    z->e = calloc(n ? n : 1, sizeof *z->e);
    z->names = malloc(cd_size + 1);
    z->sorted = malloc((n ? n : 1) * sizeof *z->sorted);
    if (!z->e || !z->names || !z->sorted) {
        uf_zip_close(z);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    const uint8_t *cd = z->b + cd_off;
    uint64_t pos = 0;
    size_t used = 0;
    for (uint64_t i = 0; i < n && !s; i++)
        s = central(z, cd, cd_size, &pos, cd_off, &z->e[i], z->names, &used, err);
    if (!s && pos != cd_size)
        s = uf_err(err, UF_ERR_FORMAT, "zip: central directory has %llu bytes after its %llu entries",
                   (unsigned long long)(cd_size - pos), (unsigned long long)n);
    if (s) {
        uf_zip_close(z);
        return s;
    }
    z->n = (size_t)n;
    for (size_t i = 0; i < z->n; i++)
        z->sorted[i] = i;
    sort_by_name(z->e, z->sorted, z->n);
    for (size_t i = 1; i < z->n; i++)
        if (strcmp(z->e[z->sorted[i]].name, z->e[z->sorted[i - 1]].name) == 0) {
            s = uf_err(err, UF_ERR_FORMAT, "zip: entry '%s' appears twice", z->e[z->sorted[i]].name);
            uf_zip_close(z);
            return s;
        }
    *out = z;
    return UF_OK;
}

void uf_zip_close(uf_zip *z)
{
    if (!z)
        return;
    free(z->e);
    free(z->names);
    free(z->sorted);
    free(z);
}

size_t uf_zip_count(const uf_zip *z) { return z->n; }

const uf_zip_entry *uf_zip_at(const uf_zip *z, size_t i) { return i < z->n ? &z->e[i] : NULL; }

const uf_zip_entry *uf_zip_find(const uf_zip *z, const char *name)
{
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->e[z->sorted[mid]].name, name);
        if (c == 0)
            return &z->e[z->sorted[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

uf_status uf_zip_data(const uf_zip *z, const uf_zip_entry *e, const void **data, uf_error *err)
{
    *data = NULL;
    if (e->flags & 1)
        return uf_err(err, UF_ERR_UNSUPPORTED, "zip entry '%s' is encrypted", e->name);
    if (e->method != 0)
        return uf_err(err, UF_ERR_UNSUPPORTED,
                      "zip entry '%s' is compressed (method %u); torch writes stored entries — "
                      "re-save it with torch.save, or unzip and re-zip with 'zip -0'",
                      e->name, e->method);
    if (e->csize != e->size)
        return uf_err(err, UF_ERR_FORMAT, "zip entry '%s': stored size %llu differs from size %llu",
                      e->name, (unsigned long long)e->csize, (unsigned long long)e->size);
    const uint8_t *p = z->b + e->data_offset;
    if (e->crc32 != 0 && uf_crc32(0, p, (size_t)e->size) != e->crc32)
        return uf_err(err, UF_ERR_FORMAT, "zip entry '%s': CRC-32 mismatch (the file is damaged)",
                      e->name);
    *data = p;
    return UF_OK;
}
