/* test_st.c — the safetensors container (lib/src/io/st.c, st_write.c): writer -> reader round trips of every
 * dtype (with 0-d, zero-size and rank-8 tensors and metadata), and rejection of malformed
 * containers built byte by byte, each checked for its status and for a message that names the
 * problem. Every rejection is tried through uf_st_open_buffer and through uf_st_open. */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/uflow_test_st_XXXXXX";

static void tmp_path(char *buf, size_t n, const char *file) { ut_path(buf, n, tmpdir, file); }

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    assert_true(n >= 0);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* 8-byte LE `hlen`, the header text, then `dlen` data bytes (a pattern). */
static uint8_t *container(uint64_t hlen, const char *hdr, size_t dlen, size_t *len)
{
    size_t tl = strlen(hdr);
    *len = 8 + tl + dlen;
    uint8_t *p = malloc(*len + 1);
    assert_non_null(p);
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(p + 8, hdr, tl);
    for (size_t i = 0; i < dlen; i++)
        p[8 + tl + i] = (uint8_t)(i * 37 + 11);
    return p;
}

static void assert_msg_has(const uf_error *err, const char *what)
{
    if (!strstr(err->msg, what))
        fail_msg("error message \"%s\" does not contain \"%s\"", err->msg, what);
}

/* Both entry points must reject bytes[0..len) with `status` and a message containing `what`
 * (and, for the file, its path). */
static void expect_bad_bytes(const uint8_t *bytes, size_t len, uf_status status, const char *what)
{
    uf_error err = {0};
    uf_st *st = (uf_st *)(uintptr_t)1;
    uf_status s = uf_st_open_buffer(bytes, len, &st, &err);
    if (s != status)
        fail_msg("expected status %d (%s), got %d: \"%s\" for %.*s", status, what, s, s ? err.msg : "",
                 (int)strnlen(len > 8 ? (const char *)bytes + 8 : "", len > 8 ? len - 8 : 0),
                 len > 8 ? (const char *)bytes + 8 : "");
    assert_null(st);
    assert_int_equal(err.status, status);
    assert_msg_has(&err, what);

    char p[1024];
    tmp_path(p, sizeof p, "bad.safetensors");
    write_file(p, bytes, len);
    memset(&err, 0, sizeof err);
    st = (uf_st *)(uintptr_t)1;
    assert_int_equal(uf_st_open(p, &st, &err), status);
    assert_null(st);
    assert_int_equal(err.status, status);
    assert_msg_has(&err, what);
    assert_msg_has(&err, p);
    unlink(p);
}

/* A container whose length field is the header's true length. */
static void expect_bad(const char *hdr, size_t dlen, const char *what)
{
    size_t len;
    uint8_t *b = container(strlen(hdr), hdr, dlen, &len);
    expect_bad_bytes(b, len, UF_ERR_FORMAT, what);
    free(b);
}

static uf_st *open_ok(const char *hdr, size_t dlen, uint8_t **keep)
{
    size_t len;
    *keep = container(strlen(hdr), hdr, dlen, &len);
    uf_error err = {0};
    uf_st *st = NULL;
    if (uf_st_open_buffer(*keep, len, &st, &err) != UF_OK)
        fail_msg("valid container rejected: %s\n  header: %s", err.msg, hdr);
    return st;
}

/* ---- round trip ------------------------------------------------------------------------ */

typedef struct spec {
    const char *name;
    uf_dtype dt;
    int ndim;
    int64_t shape[UF_ST_MAX_DIMS];
} spec;

static const spec specs[] = {
    {"weights.f32", UF_DT_F32, 2, {2, 3}},
    {"f64", UF_DT_F64, 1, {4}},
    {"f16", UF_DT_F16, 1, {3}},
    {"bf16", UF_DT_BF16, 2, {2, 2}},
    {"scalar.i64", UF_DT_I64, 0, {0}},
    {"i32", UF_DT_I32, 1, {5}},
    {"i16", UF_DT_I16, 3, {1, 1, 3}},
    {"u8.odd", UF_DT_U8, 1, {7}},          /* odd size: the following tensors are unaligned */
    {"i8", UF_DT_I8, 1, {4}},
    {"bool", UF_DT_BOOL, 1, {2}},
    {"empty", UF_DT_F32, 1, {0}},
    {"empty.3d", UF_DT_I64, 3, {3, 0, 2}},
    {"rank8", UF_DT_F32, 8, {1, 1, 1, 1, 1, 1, 1, 2}},
    {"scalar.f32", UF_DT_F32, 0, {0}},
};
#define NSPECS (sizeof specs / sizeof specs[0])

static const char *meta_keys[] = {"config", "name", "empty", "format"};
static const char *meta_vals[] = {"{\"a\": [1, 2], \"b\": \"x\\\"y\"}", "b\xc3\xb6ttle \xe2\x9c\x93", "",
                                  "pt"};

static uint64_t numel_of(const spec *s)
{
    uint64_t n = 1;
    for (int d = 0; d < s->ndim; d++)
        n *= (uint64_t)s->shape[d];
    return n;
}

static void fill_bytes(uint8_t *p, size_t n, size_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 131 + i * 7 + 1);
}

static void check_contents(const uf_st *st)
{
    assert_int_equal(uf_st_count(st), NSPECS);
    uint8_t want[256];
    for (size_t i = 0; i < NSPECS; i++) {
        const spec *s = &specs[i];
        const uf_st_tensor *t = uf_st_find(st, s->name);
        if (!t)
            fail_msg("tensor '%s' not found after the round trip", s->name);
        assert_string_equal(t->name, s->name);
        assert_int_equal(t->dtype, s->dt);
        assert_int_equal(t->ndim, s->ndim);
        for (int d = 0; d < s->ndim; d++)
            assert_int_equal(t->shape[d], s->shape[d]);
        assert_int_equal(t->numel, numel_of(s));
        size_t nb = (size_t)numel_of(s) * uf_dtype_size(s->dt);
        assert_int_equal(uf_st_nbytes(t), nb);
        fill_bytes(want, nb, i);
        if (nb)
            assert_memory_equal(t->data, want, nb);
    }
    /* uf_st_at: sorted by offset, contiguous, the writer's order (zero-size ones included). */
    uint64_t off = 0;
    for (size_t i = 0; i < NSPECS; i++) {
        const uf_st_tensor *t = uf_st_at(st, i);
        assert_non_null(t);
        assert_int_equal(t->begin, off);
        off = t->end;
    }
    assert_null(uf_st_at(st, NSPECS));
    assert_null(uf_st_find(st, "nope"));
    assert_null(uf_st_find(st, ""));
    assert_null(uf_st_find(st, "__metadata__"));
    for (size_t i = 0; i < sizeof meta_keys / sizeof meta_keys[0]; i++) {
        const char *v = uf_st_meta(st, meta_keys[i]);
        assert_non_null(v);
        assert_string_equal(v, meta_vals[i]);
    }
    assert_null(uf_st_meta(st, "missing"));
    /* The writer pads the header so that the data section is 8-byte aligned. */
    size_t len;
    const uint8_t *b = uf_st_bytes(st, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | b[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(len, 8 + hlen + off);
}

static void test_round_trip(void **state)
{
    (void)state;
    uf_error err = {0};
    uf_st_writer *w = uf_st_writer_new();
    assert_non_null(w);
    uint8_t buf[256];
    for (size_t i = 0; i < NSPECS; i++) {
        fill_bytes(buf, sizeof buf, i);
        assert_int_equal(uf_st_writer_add(w, specs[i].name, specs[i].dt, specs[i].ndim, specs[i].shape,
                                          buf, &err), UF_OK);
    }
    for (size_t i = 0; i < sizeof meta_keys / sizeof meta_keys[0]; i++)
        assert_int_equal(uf_st_writer_meta(w, meta_keys[i], meta_vals[i], &err), UF_OK);
    /* A later value for the same key replaces the earlier one. */
    assert_int_equal(uf_st_writer_meta(w, "format", "np", &err), UF_OK);
    assert_int_equal(uf_st_writer_meta(w, "format", "pt", &err), UF_OK);
    char p[1024];
    tmp_path(p, sizeof p, "round.safetensors");
    assert_int_equal(uf_st_writer_save(w, p, &err), UF_OK);
    uf_st_writer_free(w);

    uf_st *st = NULL;
    if (uf_st_open(p, &st, &err) != UF_OK)
        fail_msg("%s", err.msg);
    check_contents(st);
    uf_st_close(st);

    /* The same bytes through the buffer entry point; the tensors point into the buffer. */
    size_t len;
    uint8_t *bytes = read_file(p, &len);
    assert_int_equal(uf_st_open_buffer(bytes, len, &st, &err), UF_OK);
    check_contents(st);
    size_t blen;
    assert_ptr_equal(uf_st_bytes(st, &blen), bytes);
    assert_int_equal(blen, len);
    const uf_st_tensor *t = uf_st_find(st, "weights.f32");
    assert_true((const uint8_t *)t->data >= bytes && (const uint8_t *)t->data + 24 <= bytes + len);
    uf_st_close(st);
    free(bytes);
    unlink(p);
}

/* Exact values survive for the float types (the writer copies bytes; no conversion). */
static void test_round_trip_values(void **state)
{
    (void)state;
    uf_error err = {0};
    uf_st_writer *w = uf_st_writer_new();
    const float f[4] = {1.5f, -0.0f, 3.4028235e38f, 1e-45f};
    const double d[2] = {3.141592653589793, -1e300};
    const int64_t i64 = INT64_MIN, s4[1] = {4}, s2[1] = {2};
    assert_int_equal(uf_st_writer_add(w, "f", UF_DT_F32, 1, s4, f, &err), UF_OK);
    assert_int_equal(uf_st_writer_add(w, "d", UF_DT_F64, 1, s2, d, &err), UF_OK);
    assert_int_equal(uf_st_writer_add(w, "i", UF_DT_I64, 0, NULL, &i64, &err), UF_OK);
    char p[1024];
    tmp_path(p, sizeof p, "values.safetensors");
    assert_int_equal(uf_st_writer_save(w, p, &err), UF_OK);
    uf_st_writer_free(w);
    uf_st *st;
    assert_int_equal(uf_st_open(p, &st, &err), UF_OK);
    assert_memory_equal(uf_st_find(st, "f")->data, f, sizeof f);
    assert_memory_equal(uf_st_find(st, "d")->data, d, sizeof d);
    assert_memory_equal(uf_st_find(st, "i")->data, &i64, sizeof i64);
    assert_int_equal(uf_st_find(st, "i")->ndim, 0);
    assert_int_equal(uf_st_find(st, "i")->numel, 1);
    /* No metadata written: none read. */
    assert_null(uf_st_meta(st, "config"));
    uf_st_close(st);
    unlink(p);
}

static void test_empty_containers(void **state)
{
    (void)state;
    uf_error err = {0};
    uf_st_writer *w = uf_st_writer_new();
    char p[1024];
    tmp_path(p, sizeof p, "empty.safetensors");
    assert_int_equal(uf_st_writer_save(w, p, &err), UF_OK);
    uf_st_writer_free(w);
    uf_st *st;
    assert_int_equal(uf_st_open(p, &st, &err), UF_OK);
    assert_int_equal(uf_st_count(st), 0);
    assert_null(uf_st_at(st, 0));
    assert_null(uf_st_find(st, "x"));
    assert_null(uf_st_meta(st, "x"));
    uf_st_close(st);
    unlink(p);

    /* Hand-made: only metadata; trailing spaces in the header; keys out of offset order. */
    uint8_t *keep;
    st = open_ok("{\"__metadata__\":{\"k\":\"v\"}}   ", 0, &keep);
    assert_int_equal(uf_st_count(st), 0);
    assert_string_equal(uf_st_meta(st, "k"), "v");
    uf_st_close(st);
    free(keep);
    const char *hdr = "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                      "\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                      "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}";
    st = open_ok(hdr, 16, &keep);
    assert_int_equal(uf_st_count(st), 3);
    assert_string_equal(uf_st_at(st, 0)->name, "a");
    assert_string_equal(uf_st_at(st, 1)->name, "z");
    assert_string_equal(uf_st_at(st, 2)->name, "b");
    assert_ptr_equal(uf_st_find(st, "b")->data, keep + 8 + strlen(hdr) + 8);
    assert_ptr_equal(uf_st_find(st, "a")->data, keep + 8 + strlen(hdr));
    uf_st_close(st);
    free(keep);
    uf_st_close(NULL);
}

static void test_dtype_table(void **state)
{
    (void)state;
    static const char *names[UF_DT_COUNT] = {"F32", "F64", "F16", "BF16", "I64",
                                             "I32", "I16", "I8",  "U8",   "BOOL"};
    static const size_t sizes[UF_DT_COUNT] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1};
    for (int i = 0; i < UF_DT_COUNT; i++) {
        assert_string_equal(uf_dtype_name((uf_dtype)i), names[i]);
        assert_int_equal(uf_dtype_size((uf_dtype)i), sizes[i]);
        /* and the reader accepts each name */
        char hdr[160];
        snprintf(hdr, sizeof hdr, "{\"t\":{\"dtype\":\"%s\",\"shape\":[2],\"data_offsets\":[0,%zu]}}",
                 names[i], 2 * sizes[i]);
        uint8_t *keep;
        uf_st *st = open_ok(hdr, 2 * sizes[i], &keep);
        assert_int_equal(uf_st_find(st, "t")->dtype, i);
        uf_st_close(st);
        free(keep);
    }
    assert_string_equal(uf_dtype_name(UF_DT_COUNT), "?");
    assert_int_equal(uf_dtype_size(UF_DT_COUNT), 0);
}

static void test_writer_errors(void **state)
{
    (void)state;
    uf_error err = {0};
    uf_st_writer *w = uf_st_writer_new();
    const int64_t s1[1] = {1}, neg[2] = {2, -1};
    const float x = 1.f;
    assert_int_equal(uf_st_writer_add(w, "a", UF_DT_F32, 1, s1, &x, &err), UF_OK);
    assert_int_equal(uf_st_writer_add(w, "a", UF_DT_F32, 1, s1, &x, &err), UF_ERR_ARG);
    assert_msg_has(&err, "'a' added twice");
    assert_int_equal(uf_st_writer_add(w, "__metadata__", UF_DT_F32, 1, s1, &x, &err), UF_ERR_ARG);
    assert_msg_has(&err, "__metadata__");
    assert_int_equal(uf_st_writer_add(w, "n", UF_DT_F32, 2, neg, &x, &err), UF_ERR_ARG);
    assert_msg_has(&err, "negative dimension");
    assert_int_equal(uf_st_writer_add(w, "r", UF_DT_F32, UF_ST_MAX_DIMS + 1, s1, &x, &err), UF_ERR_ARG);
    assert_msg_has(&err, "'r'");
    assert_int_equal(uf_st_writer_add(w, "d", UF_DT_COUNT, 1, s1, &x, &err), UF_ERR_ARG);
    assert_msg_has(&err, "'d'");
    assert_int_equal(uf_st_writer_meta(w, "bad", "\xff\xfe", &err), UF_ERR_ARG);
    assert_msg_has(&err, "UTF-8");
    char p[1024];
    tmp_path(p, sizeof p, "no/such/dir/x.safetensors");
    assert_int_equal(uf_st_writer_save(w, p, &err), UF_ERR_IO);
    assert_msg_has(&err, "cannot write");
    assert_msg_has(&err, p);
    /* The failed adds left the writer usable: only "a" is in the file. */
    tmp_path(p, sizeof p, "after_errors.safetensors");
    assert_int_equal(uf_st_writer_save(w, p, &err), UF_OK);
    uf_st_writer_free(w);
    uf_st *st;
    assert_int_equal(uf_st_open(p, &st, &err), UF_OK);
    assert_int_equal(uf_st_count(st), 1);
    assert_null(uf_st_meta(st, "bad"));
    uf_st_close(st);
    unlink(p);
    /* No temporary file is left behind by the failed save or the successful one. */
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0);
    uf_st_writer_free(NULL);
}

/* ---- rejection ------------------------------------------------------------------------- */

#define T1(dt, shape, offs) "{\"t\":{\"dtype\":" dt ",\"shape\":" shape ",\"data_offsets\":" offs "}}"

static void test_reject_short(void **state)
{
    (void)state;
    expect_bad_bytes((const uint8_t *)"", 0, UF_ERR_FORMAT, "too short");
    expect_bad_bytes(NULL, 0, UF_ERR_FORMAT, "(0 bytes)");
    expect_bad_bytes((const uint8_t *)"\x02\0\0\0{}", 6, UF_ERR_FORMAT, "too short");
    expect_bad_bytes((const uint8_t *)"\x02\0\0\0\0\0\0", 7, UF_ERR_FORMAT, "(7 bytes)");
    /* Exactly 8 bytes: an empty header is not JSON. */
    expect_bad_bytes((const uint8_t *)"\0\0\0\0\0\0\0\0", 8, UF_ERR_FORMAT, "not valid JSON");
}

static void test_reject_header_length(void **state)
{
    (void)state;
    const char *hdr = "{}";
    size_t len;
    uint8_t *b = container(100, hdr, 10, &len);
    expect_bad_bytes(b, len, UF_ERR_FORMAT, "header length 100 exceeds the file (20 bytes)");
    free(b);
    b = container(strlen(hdr) + 1, hdr, 0, &len); /* one byte past the end */
    expect_bad_bytes(b, len, UF_ERR_FORMAT, "header length 3 exceeds");
    free(b);
    b = container(UINT64_C(1) << 63, hdr, 16, &len);
    expect_bad_bytes(b, len, UF_ERR_FORMAT, "header length 9223372036854775808");
    free(b);
    b = container(UINT64_MAX, hdr, 16, &len);
    expect_bad_bytes(b, len, UF_ERR_FORMAT, "header length 18446744073709551615");
    free(b);
    b = container(UINT64_C(1) << 32, hdr, 16, &len); /* would truncate in a 32-bit size_t */
    expect_bad_bytes(b, len, UF_ERR_FORMAT, "header length 4294967296");
    free(b);
    /* Shorter than the JSON text: the cut header is not JSON. */
    b = container(1, hdr, 0, &len);
    expect_bad_bytes(b, len, UF_ERR_FORMAT, "not valid JSON");
    free(b);
}

static void test_reject_json(void **state)
{
    (void)state;
    expect_bad("{not json", 0, "header is not valid JSON");
    expect_bad("{\"t\": {\"dtype\": \"F32\",", 0, "header is not valid JSON");
    expect_bad("", 0, "header is not valid JSON");
    expect_bad("\"a string\"", 0, "JSON");
    expect_bad("42", 0, "JSON");
    expect_bad("{} trailing", 0, "header is not valid JSON");
    expect_bad("[1, 2]", 0, "header is not a JSON object");
    expect_bad("[]", 0, "header is not a JSON object");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
               "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, "duplicate");
    expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate");
    expect_bad("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, "duplicate");
    /* A NUL inside a string, a raw NUL byte, invalid UTF-8. */
    expect_bad("{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "JSON");
    size_t len;
    uint8_t *b = container(4, "{}  ", 0, &len);
    b[9] = 0;
    expect_bad_bytes(b, len, UF_ERR_FORMAT, "JSON");
    free(b);
    expect_bad("{\"\xff\xfe\":{}}", 0, "JSON");
}

static void test_reject_entry(void **state)
{
    (void)state;
    expect_bad("{\"t\": 5}", 0, "tensor 't': header entry is not an object");
    expect_bad("{\"t\": [\"F32\", [1], [0, 4]]}", 4, "tensor 't': header entry is not an object");
    /* dtype */
    expect_bad(T1("\"F8\"", "[1]", "[0,1]"), 1, "tensor 't': missing or unknown dtype");
    expect_bad(T1("\"f32\"", "[1]", "[0,4]"), 4, "unknown dtype");
    expect_bad(T1("\"U16\"", "[1]", "[0,2]"), 2, "unknown dtype");
    expect_bad(T1("32", "[1]", "[0,4]"), 4, "unknown dtype");
    expect_bad("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing or unknown dtype");
    /* shape */
    expect_bad(T1("\"F32\"", "5", "[0,20]"), 20, "tensor 't': shape must be an array");
    expect_bad(T1("\"F32\"", "{}", "[0,4]"), 4, "shape must be an array");
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape must be an array");
    expect_bad(T1("\"F32\"", "[2,-1]", "[0,0]"), 0, "tensor 't': shape[1] is not a non-negative integer");
    expect_bad(T1("\"F32\"", "[2.0]", "[0,8]"), 8, "shape[0] is not a non-negative integer");
    expect_bad(T1("\"F32\"", "[\"2\"]", "[0,8]"), 8, "shape[0] is not a non-negative integer");
    expect_bad(T1("\"F32\"", "[null]", "[0,4]"), 4, "shape[0]");
    expect_bad(T1("\"F32\"", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4, "at most 8 dims");
    expect_bad(T1("\"F32\"", "[4294967296,4294967296]", "[0,4]"), 4, "shape overflows");
    expect_bad(T1("\"U8\"", "[9223372036854775807,3]", "[0,4]"), 4, "shape overflows");
    /* data_offsets */
    expect_bad(T1("\"F32\"", "[1]", "[4]"), 4, "tensor 't': data_offsets must be [begin, end]");
    expect_bad(T1("\"F32\"", "[1]", "[0,4,8]"), 8, "data_offsets must be [begin, end]");
    expect_bad(T1("\"F32\"", "[1]", "[]"), 4, "data_offsets must be [begin, end]");
    expect_bad(T1("\"F32\"", "[1]", "4"), 4, "data_offsets must be [begin, end]");
    expect_bad(T1("\"F32\"", "[1]", "[\"0\",\"4\"]"), 4, "data_offsets must be [begin, end]");
    expect_bad(T1("\"F32\"", "[1]", "[0.0,4.0]"), 4, "data_offsets must be [begin, end]");
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets must be [begin, end]");
    expect_bad(T1("\"F32\"", "[1]", "[8,4]"), 8, "tensor 't': data_offsets [8, 4]");
    expect_bad(T1("\"F32\"", "[1]", "[-4,0]"), 8, "data_offsets [-4, 0]");
    expect_bad(T1("\"F32\"", "[4]", "[0,16]"), 8,
               "tensor 't': data_offsets [0, 16] outside the data section (8 bytes)");
    expect_bad(T1("\"F32\"", "[1]", "[9223372036854775807,9223372036854775807]"), 8,
               "outside the data section");
    expect_bad(T1("\"F32\"", "[0]", "[12,12]"), 8, "outside the data section");
    /* byte size vs numel x dtype size */
    expect_bad(T1("\"F32\"", "[2]", "[0,4]"), 8,
               "tensor 't': 4 bytes stored but dtype F32 x 2 elements needs 8");
    expect_bad(T1("\"F64\"", "[]", "[0,4]"), 8, "4 bytes stored but dtype F64 x 1 elements needs 8");
    expect_bad(T1("\"F32\"", "[0]", "[0,4]"), 8, "4 bytes stored but dtype F32 x 0 elements needs 0");
    expect_bad(T1("\"U8\"", "[3]", "[0,4]"), 8, "needs 3");
    expect_bad(T1("\"BF16\"", "[1,2]", "[0,2]"), 8, "dtype BF16 x 2 elements needs 4");
    /* The failing entry is named among good ones. */
    expect_bad("{\"good\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
               "\"bad.one\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,2]}}", 2, "'bad.one'");
}

static void test_reject_overlap(void **state)
{
    (void)state;
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
               "tensors 'a' and 'b' overlap");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlap");
    /* One range inside another. */
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 16, "overlap");
    /* A range inside a large one with ranges in between (not adjacent after sorting). */
    expect_bad("{\"big\":{\"dtype\":\"U8\",\"shape\":[32],\"data_offsets\":[0,32]},"
               "\"x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
               "\"y\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[24,28]}}", 32, "overlap");
    /* ... and with a zero-size tensor between the two overlapping ones. */
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
               "\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]},"
               "\"c\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}", 16, "overlap");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
               "\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]},"
               "\"c\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[12,16]}}", 16, "'c'");

    /* Zero-size tensors may share offsets with anything; adjacent ranges do not overlap. */
    uint8_t *keep;
    uf_st *st = open_ok("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                        "\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]},"
                        "\"f\":{\"dtype\":\"F32\",\"shape\":[2,0],\"data_offsets\":[8,8]},"
                        "\"g\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                        "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[8,16]}}", 16, &keep);
    assert_int_equal(uf_st_count(st), 5);
    uf_st_close(st);
    free(keep);
}

static void test_reject_metadata(void **state)
{
    (void)state;
    expect_bad("{\"__metadata__\":\"config\"}", 0, "__metadata__ is not an object");
    expect_bad("{\"__metadata__\":[\"a\",\"b\"]}", 0, "__metadata__ is not an object");
    expect_bad("{\"__metadata__\":null}", 0, "__metadata__ is not an object");
    expect_bad("{\"__metadata__\":{\"format\":\"pt\",\"n\":3}}", 0,
               "__metadata__ value 'n' is not a string");
    expect_bad("{\"__metadata__\":{\"config\":{\"backbone\":\"resnet18\"}}}", 0,
               "__metadata__ value 'config' is not a string");
    expect_bad("{\"__metadata__\":{\"x\":null}}", 0, "value 'x' is not a string");
    /* ... wherever __metadata__ is in the header. */
    expect_bad("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"__metadata__\":{\"b\":true}}",
               1, "value 'b' is not a string");
}

static void test_reject_paths(void **state)
{
    (void)state;
    uf_error err = {0};
    uf_st *st = (uf_st *)(uintptr_t)1;
    char p[1024];
    tmp_path(p, sizeof p, "does_not_exist.safetensors");
    assert_int_equal(uf_st_open(p, &st, &err), UF_ERR_IO);
    assert_null(st);
    assert_int_equal(err.status, UF_ERR_IO);
    assert_msg_has(&err, "cannot open");
    assert_msg_has(&err, p);
    assert_msg_has(&err, "No such file");

    st = (uf_st *)(uintptr_t)1;
    assert_int_equal(uf_st_open(tmpdir, &st, &err), UF_ERR_IO);
    assert_null(st);
    assert_msg_has(&err, "not a regular file");
    assert_msg_has(&err, tmpdir);

    tmp_path(p, sizeof p, "file/below_a_file");
    char f[1024];
    tmp_path(f, sizeof f, "file");
    write_file(f, "x", 1);
    assert_int_equal(uf_st_open(p, &st, &err), UF_ERR_IO);
    assert_msg_has(&err, "cannot open");
    unlink(f);

    /* A valid empty file and a file of 5 bytes are format errors, not i/o errors. */
    tmp_path(p, sizeof p, "zero.safetensors");
    write_file(p, "", 0);
    assert_int_equal(uf_st_open(p, &st, &err), UF_ERR_FORMAT);
    assert_msg_has(&err, "too short");
    assert_msg_has(&err, p);
    unlink(p);
}


static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return ut_rmtree(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_values),
        cmocka_unit_test(test_empty_containers),
        cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_reject_short),
        cmocka_unit_test(test_reject_header_length),
        cmocka_unit_test(test_reject_json),
        cmocka_unit_test(test_reject_entry),
        cmocka_unit_test(test_reject_overlap),
        cmocka_unit_test(test_reject_metadata),
        cmocka_unit_test(test_reject_paths),
    };
    return cmocka_run_group_tests_name("st", tests, setup, teardown);
}
