/* test_zip.c — the stored-entry zip reader (lib/src/io/zip.c) on archives built byte by byte:
 * a valid archive read back, and refusals with a message: compressed and encrypted entries,
 * CRC mismatch, directory and local-header offsets out of bounds or pointing elsewhere, data
 * running into the directory, duplicate and empty names, entry-count lies; ZIP64 records (read,
 * and a misplaced locator refused); every prefix and
 * every one-byte corruption of a valid archive is handled without a crash. */
#include "util.h"

#include "io/zip.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *data;
    uint16_t method, flags;
    int bad_crc;
} ent;

typedef struct {
    uint8_t b[4096];
    size_t n;
} buf;

static void put16(buf *o, uint32_t v)
{
    o->b[o->n++] = (uint8_t)v;
    o->b[o->n++] = (uint8_t)(v >> 8);
}
static void put32(buf *o, uint32_t v)
{
    put16(o, v & 0xFFFF);
    put16(o, v >> 16);
}
static void putn(buf *o, const void *p, size_t n)
{
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

/* Options that break one thing: +delta on the central directory offset, on the first local
 * header offset, on the first entry's size, a different entry count. */
typedef struct {
    int64_t cd_delta, local_delta, size_delta;
    int count_delta;
    const char *local_name; /* name in the first local header, if different */
    int zip64;              /* sizes, offsets and counts in ZIP64 records, as torch writes > 4 GiB */
    int64_t loc64_delta;    /* +delta on the ZIP64 locator's offset */
} breakage;

static size_t build(buf *o, const ent *e, size_t n, const breakage *bk)
{
    static const breakage none;
    if (!bk)
        bk = &none;
    uint32_t off[8];
    o->n = 0;
    for (size_t i = 0; i < n; i++) {
        off[i] = (uint32_t)o->n;
        size_t len = strlen(e[i].data);
        uint32_t crc = uf_crc32(0, e[i].data, len) ^ (uint32_t)e[i].bad_crc;
        const char *nm = i == 0 && bk->local_name ? bk->local_name : e[i].name;
        put32(o, 0x04034b50u);
        put16(o, 20);
        put16(o, e[i].flags);
        put16(o, e[i].method);
        put32(o, 0);
        put32(o, crc);
        put32(o, (uint32_t)len);
        put32(o, (uint32_t)len);
        put16(o, (uint32_t)strlen(nm));
        put16(o, 0);
        putn(o, nm, strlen(nm));
        putn(o, e[i].data, len);
    }
    uint32_t cd = (uint32_t)o->n;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(e[i].data);
        uint32_t crc = uf_crc32(0, e[i].data, len) ^ (uint32_t)e[i].bad_crc;
        put32(o, 0x02014b50u);
        put16(o, 20);
        put16(o, 20);
        put16(o, e[i].flags);
        put16(o, e[i].method);
        put32(o, 0);
        put32(o, crc);
        put32(o, bk->zip64 ? 0xFFFFFFFFu : (uint32_t)(len + (i == 0 ? bk->size_delta : 0)));
        put32(o, bk->zip64 ? 0xFFFFFFFFu : (uint32_t)(len + (i == 0 ? bk->size_delta : 0)));
        put16(o, (uint32_t)strlen(e[i].name));
        put16(o, bk->zip64 ? 28 : 0);
        put16(o, 0);
        put16(o, 0);
        put16(o, 0);
        put32(o, 0);
        uint64_t lho = (uint64_t)(off[i] + (i == 0 ? bk->local_delta : 0));
        put32(o, bk->zip64 ? 0xFFFFFFFFu : (uint32_t)lho);
        putn(o, e[i].name, strlen(e[i].name));
        if (bk->zip64) { /* the 32-bit fields say 0xFFFFFFFF: usize, csize, offset follow */
            uint64_t sz = len + (uint64_t)(i == 0 ? bk->size_delta : 0);
            put16(o, 1);
            put16(o, 24);
            put32(o, (uint32_t)sz);
            put32(o, (uint32_t)(sz >> 32));
            put32(o, (uint32_t)sz);
            put32(o, (uint32_t)(sz >> 32));
            put32(o, (uint32_t)lho);
            put32(o, (uint32_t)(lho >> 32));
        }
    }
    uint32_t cds = (uint32_t)o->n - cd;
    if (bk->zip64) {
        uint64_t z64 = o->n, cnt = (uint64_t)((int)n + bk->count_delta), cdo = (uint64_t)(cd + bk->cd_delta);
        put32(o, 0x06064b50u);
        put32(o, 44);
        put32(o, 0);
        put32(o, 20 | 20u << 16);
        put32(o, 0);
        put32(o, 0);
        const uint64_t v[4] = {cnt, cnt, cds, cdo};
        for (int k = 0; k < 4; k++) {
            put32(o, (uint32_t)v[k]);
            put32(o, (uint32_t)(v[k] >> 32));
        }
        put32(o, 0x07064b50u);
        put32(o, 0);
        put32(o, (uint32_t)(z64 + (uint64_t)bk->loc64_delta));
        put32(o, (uint32_t)((z64 + (uint64_t)bk->loc64_delta) >> 32));
        put32(o, 1);
        put32(o, 0x06054b50u);
        put16(o, 0);
        put16(o, 0);
        put16(o, 0xFFFF);
        put16(o, 0xFFFF);
        put32(o, 0xFFFFFFFFu);
        put32(o, 0xFFFFFFFFu);
        put16(o, 0);
        return o->n;
    }
    put32(o, 0x06054b50u);
    put16(o, 0);
    put16(o, 0);
    put16(o, (uint32_t)((int)n + bk->count_delta));
    put16(o, (uint32_t)((int)n + bk->count_delta));
    put32(o, cds);
    put32(o, (uint32_t)(cd + bk->cd_delta));
    put16(o, 0);
    return o->n;
}

static const ent good[] = {{"archive/data.pkl", "\x80\x02}q\x00.", 0, 0, 0},
                           {"archive/data/0", "0123456789abcdef", 0, 0, 0}};

static void test_valid(void **state)
{
    (void)state;
    buf o;
    build(&o, good, 2, NULL);
    uf_zip *z;
    uf_error err;
    assert_int_equal(uf_zip_open(o.b, o.n, &z, &err), UF_OK);
    assert_int_equal(uf_zip_count(z), 2);
    const uf_zip_entry *e = uf_zip_find(z, "archive/data/0");
    assert_non_null(e);
    assert_null(uf_zip_find(z, "archive/data/1"));
    const void *d;
    assert_int_equal(uf_zip_data(z, e, &d, &err), UF_OK);
    assert_int_equal(e->size, 16);
    assert_memory_equal(d, "0123456789abcdef", 16);
    uf_zip_close(z);
    /* the CRC-32 check value */
    assert_int_equal(uf_crc32(0, "123456789", 9), 0xCBF43926u);
}

/* open succeeds but reading the first entry fails with needle */
static void data_refused(const ent *e, size_t n, const char *needle)
{
    buf o;
    build(&o, e, n, NULL);
    uf_zip *z;
    uf_error err;
    assert_int_equal(uf_zip_open(o.b, o.n, &z, &err), UF_OK);
    const void *d;
    uf_status s = uf_zip_data(z, uf_zip_at(z, 0), &d, &err);
    if (s == UF_OK || !strstr(err.msg, needle))
        fail_msg("status %d, message '%s' (want '%s')", s, err.msg, needle);
    uf_zip_close(z);
}

static void open_refused(const ent *e, size_t n, const breakage *bk, const char *needle)
{
    buf o;
    build(&o, e, n, bk);
    uf_zip *z = NULL;
    uf_error err;
    uf_status s = uf_zip_open(o.b, o.n, &z, &err);
    if (s == UF_OK || !strstr(err.msg, needle))
        fail_msg("status %d, message '%s' (want '%s')", s, err.msg, needle);
    assert_null(z);
}

static void test_refused(void **state)
{
    (void)state;
    ent e[2];
    memcpy(e, good, sizeof e);
    e[0].method = 8;
    data_refused(e, 2, "compressed");
    memcpy(e, good, sizeof e);
    e[0].bad_crc = 1;
    data_refused(e, 2, "CRC");
    memcpy(e, good, sizeof e);
    e[0].flags = 1;
    data_refused(e, 2, "encrypt");

    open_refused(good, 2, &(breakage){.cd_delta = 4000}, "");
    open_refused(good, 2, &(breakage){.cd_delta = -3}, "");
    open_refused(good, 2, &(breakage){.local_delta = 5}, "");
    open_refused(good, 2, &(breakage){.local_delta = 100000}, "");
    open_refused(good, 2, &(breakage){.size_delta = 100}, "");
    open_refused(good, 2, &(breakage){.size_delta = 0x7FFFFFF0}, "");
    open_refused(good, 2, &(breakage){.count_delta = 1}, "");
    open_refused(good, 2, &(breakage){.count_delta = -1}, "");
    open_refused(good, 2, &(breakage){.local_name = "archive/data.pkX"}, "");
    memcpy(e, good, sizeof e);
    e[1].name = e[0].name;
    open_refused(e, 2, NULL, "");
    memcpy(e, good, sizeof e);
    e[1].name = "";
    open_refused(e, 2, NULL, "");
}

static void test_zip64(void **state)
{
    (void)state;
    buf o;
    build(&o, good, 2, &(breakage){.zip64 = 1});
    uf_zip *z;
    uf_error err;
    assert_int_equal(uf_zip_open(o.b, o.n, &z, &err), UF_OK);
    assert_int_equal(uf_zip_count(z), 2);
    const uf_zip_entry *e = uf_zip_find(z, "archive/data/0");
    const void *d;
    assert_true(e && e->size == 16 && uf_zip_data(z, e, &d, &err) == UF_OK);
    assert_memory_equal(d, "0123456789abcdef", 16);
    uf_zip_close(z);
    open_refused(good, 2, &(breakage){.zip64 = 1, .loc64_delta = 8}, "ZIP64");
    open_refused(good, 2, &(breakage){.zip64 = 1, .loc64_delta = 1 << 20}, "ZIP64");
    open_refused(good, 2, &(breakage){.zip64 = 1, .size_delta = (int64_t)1 << 40}, "");
    open_refused(good, 2, &(breakage){.zip64 = 1, .cd_delta = (int64_t)1 << 33}, "");
    open_refused(good, 2, &(breakage){.zip64 = 1, .count_delta = 1}, "");
}

static void prefixes_and_flips(int zip64);

static void test_prefixes_and_flips(void **state)
{
    (void)state;
    for (int z64 = 0; z64 < 2; z64++)
        prefixes_and_flips(z64);
}

static void prefixes_and_flips(int zip64)
{
    buf o;
    build(&o, good, 2, &(breakage){.zip64 = zip64});
    uf_zip *z;
    uf_error err;
    for (size_t n = 0; n < o.n; n++) {
        uint8_t *c = malloc(n ? n : 1); /* exact size: ASan sees any read past it */
        memcpy(c, o.b, n);
        assert_int_not_equal(uf_zip_open(c, n, &z, &err), UF_OK);
        free(c);
    }
    for (size_t i = 0; i < o.n; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            uint8_t *c = malloc(o.n);
            memcpy(c, o.b, o.n);
            c[i] ^= (uint8_t)(1u << bit);
            if (uf_zip_open(c, o.n, &z, &err) == UF_OK) {
                for (size_t k = 0; k < uf_zip_count(z); k++) {
                    const void *d;
                    const uf_zip_entry *e = uf_zip_at(z, k);
                    if (uf_zip_data(z, e, &d, &err) == UF_OK && e->size)
                        assert_true((const uint8_t *)d + e->size <= c + o.n);
                }
                uf_zip_close(z);
            }
            free(c);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_zip64),
        cmocka_unit_test(test_prefixes_and_flips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
