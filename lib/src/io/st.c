/* st.c — safetensors reader (mmap + full validation) and writer. See st.h. */
#include "io/st.h"
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header larger than this is not a model file but an attack or an accident. */
#define UF_ST_MAX_HEADER (100u * 1024u * 1024u)

struct uf_st {
    const uint8_t *base;    /* whole file / buffer */
    size_t len;
    int mapped;
    uf_st_tensor *t;        /* sorted by begin */
    size_t n;
    const uf_st_tensor **by_name; /* sorted by name */
    json_t *root;           /* owns the name strings */
    json_t *meta;           /* borrowed from root, may be NULL */
};

static const struct { const char *name; size_t size; } dtypes[UF_DT_COUNT] = {
    [UF_DT_F32] = {"F32", 4}, [UF_DT_F64] = {"F64", 8}, [UF_DT_F16] = {"F16", 2},
    [UF_DT_BF16] = {"BF16", 2}, [UF_DT_I64] = {"I64", 8}, [UF_DT_I32] = {"I32", 4},
    [UF_DT_I16] = {"I16", 2}, [UF_DT_I8] = {"I8", 1}, [UF_DT_U8] = {"U8", 1},
    [UF_DT_BOOL] = {"BOOL", 1},
};

const char *uf_dtype_name(uf_dtype dt) { return dt < UF_DT_COUNT ? dtypes[dt].name : "?"; }
size_t uf_dtype_size(uf_dtype dt) { return dt < UF_DT_COUNT ? dtypes[dt].size : 0; }

static int dtype_parse(const char *s, uf_dtype *out)
{
    for (int i = 0; i < UF_DT_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0) {
            *out = (uf_dtype)i;
            return 1;
        }
    return 0;
}

static int cmp_begin(const void *a, const void *b)
{
    const uf_st_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_name(const void *a, const void *b)
{
    const uf_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Parse one header entry into t; the caller reports errors with the tensor name. */
static uf_status parse_entry(const char *name, json_t *v, uint64_t data_len, uf_st_tensor *t,
                             uf_error *err)
{
    if (!json_is_object(v))
        return uf_err(err, UF_ERR_FORMAT, "tensor '%s': header entry is not an object", name);
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !dtype_parse(json_string_value(dt), &t->dtype))
        return uf_err(err, UF_ERR_FORMAT, "tensor '%s': missing or unknown dtype", name);
    if (!json_is_array(shape) || json_array_size(shape) > UF_ST_MAX_DIMS)
        return uf_err(err, UF_ERR_FORMAT, "tensor '%s': shape must be an array of at most %d dims",
                      name, UF_ST_MAX_DIMS);
    t->name = name;
    t->ndim = (int)json_array_size(shape);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(shape, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return uf_err(err, UF_ERR_FORMAT, "tensor '%s': shape[%d] is not a non-negative integer",
                          name, i);
        t->shape[i] = json_integer_value(d);
        if (t->shape[i] != 0 && numel > UINT64_MAX / 16 / (uint64_t)t->shape[i])
            return uf_err(err, UF_ERR_FORMAT, "tensor '%s': shape overflows", name);
        numel *= (uint64_t)t->shape[i];
    }
    t->numel = numel;
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)))
        return uf_err(err, UF_ERR_FORMAT, "tensor '%s': data_offsets must be [begin, end]", name);
    json_int_t b = json_integer_value(json_array_get(offs, 0));
    json_int_t e = json_integer_value(json_array_get(offs, 1));
    if (b < 0 || e < b || (uint64_t)e > data_len)
        return uf_err(err, UF_ERR_FORMAT,
                      "tensor '%s': data_offsets [%lld, %lld] outside the data section (%llu bytes)",
                      name, (long long)b, (long long)e, (unsigned long long)data_len);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    if (t->end - t->begin != numel * dtypes[t->dtype].size)
        return uf_err(err, UF_ERR_FORMAT,
                      "tensor '%s': %llu bytes stored but dtype %s x %llu elements needs %llu",
                      name, (unsigned long long)(t->end - t->begin), dtypes[t->dtype].name,
                      (unsigned long long)numel, (unsigned long long)(numel * dtypes[t->dtype].size));
    return UF_OK;
}

static uf_status st_parse(uf_st *st, uf_error *err)
{
    if (st->len < 8)
        return uf_err(err, UF_ERR_FORMAT, "file too short for a safetensors header (%zu bytes)",
                      st->len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | st->base[i];
    if (hlen > UF_ST_MAX_HEADER || hlen > st->len - 8)
        return uf_err(err, UF_ERR_FORMAT,
                      "header length %llu exceeds the file (%zu bytes) or the %u-byte limit",
                      (unsigned long long)hlen, st->len, UF_ST_MAX_HEADER);
    json_error_t je;
    st->root = json_loadb((const char *)st->base + 8, (size_t)hlen,
                          JSON_REJECT_DUPLICATES, &je);
    if (!st->root)
        return uf_err(err, UF_ERR_FORMAT, "header is not valid JSON: %s (at byte %d)", je.text,
                      je.position);
    if (!json_is_object(st->root))
        return uf_err(err, UF_ERR_FORMAT, "header is not a JSON object");
    uint64_t data_len = st->len - 8 - hlen;
    const uint8_t *data = st->base + 8 + hlen;

    size_t cap = json_object_size(st->root);
    st->t = calloc(cap ? cap : 1, sizeof *st->t);
    if (!st->t)
        return uf_err(err, UF_ERR_NOMEM, "out of memory reading the header");
    const char *key;
    json_t *v;
    json_object_foreach(st->root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v))
                return uf_err(err, UF_ERR_FORMAT, "__metadata__ is not an object");
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv))
                    return uf_err(err, UF_ERR_FORMAT, "__metadata__ value '%s' is not a string", mk);
            }
            st->meta = v;
            continue;
        }
        uf_st_tensor *t = &st->t[st->n];
        uf_status s = parse_entry(key, v, data_len, t, err);
        if (s != UF_OK)
            return s;
        t->data = data + t->begin;
        st->n++;
    }
    qsort(st->t, st->n, sizeof *st->t, cmp_begin);
    /* Sorted by begin, a non-empty range overlaps an earlier one iff it starts before the
     * furthest end so far (comparing neighbours only would miss a range inside a larger one
     * when a zero-size tensor sorts between them). Zero-size tensors overlap nothing. */
    const uf_st_tensor *far = NULL;
    for (size_t i = 0; i < st->n; i++) {
        const uf_st_tensor *b = &st->t[i];
        if (b->end == b->begin)
            continue;
        if (far && b->begin < far->end)
            return uf_err(err, UF_ERR_FORMAT, "tensors '%s' and '%s' overlap in the data section",
                          far->name, b->name);
        if (!far || b->end > far->end)
            far = b;
    }
    st->by_name = malloc((st->n ? st->n : 1) * sizeof *st->by_name);
    if (!st->by_name)
        return uf_err(err, UF_ERR_NOMEM, "out of memory reading the header");
    for (size_t i = 0; i < st->n; i++)
        st->by_name[i] = &st->t[i];
    qsort(st->by_name, st->n, sizeof *st->by_name, cmp_name);
    return UF_OK;
}

uf_status uf_st_open_buffer(const void *data, size_t len, uf_st **out, uf_error *err)
{
    *out = NULL;
    uf_st *st = calloc(1, sizeof *st);
    if (!st)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    st->base = data;
    st->len = len;
    uf_status s = st_parse(st, err);
    if (s != UF_OK) {
        uf_st_close(st);
        return s;
    }
    *out = st;
    return UF_OK;
}

uf_status uf_st_open(const char *path, uf_st **out, uf_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return uf_err(err, UF_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return uf_err(err, UF_ERR_IO, "'%s' is not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return uf_err(err, UF_ERR_IO, "cannot map '%s': %s", path, strerror(e));
        }
    }
    close(fd);
    uf_st *st;
    uf_status s = uf_st_open_buffer(map ? map : "", len, &st, err);
    if (s != UF_OK) {
        if (map)
            munmap(map, len);
        uf_err_prefix(err, "%s", path);
        return s;
    }
    st->mapped = map != NULL;
    *out = st;
    return UF_OK;
}

void uf_st_close(uf_st *st)
{
    if (!st)
        return;
    if (st->mapped)
        munmap((void *)st->base, st->len);
    json_decref(st->root);
    free(st->t);
    free(st->by_name);
    free(st);
}

size_t uf_st_count(const uf_st *st) { return st->n; }
const uf_st_tensor *uf_st_at(const uf_st *st, size_t i) { return i < st->n ? &st->t[i] : NULL; }

const uf_st_tensor *uf_st_find(const uf_st *st, const char *name)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(st->by_name[mid]->name, name);
        if (c == 0)
            return st->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *uf_st_meta(const uf_st *st, const char *key)
{
    return st->meta ? json_string_value(json_object_get(st->meta, key)) : NULL;
}

const void *uf_st_bytes(const uf_st *st, size_t *len)
{
    *len = st->len;
    return st->base;
}

/* ---- writer ---------------------------------------------------------------------------- */

static float half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, f = h & 1023u, bits;
    if (e == 0) {
        float v = ldexpf((float)f, -24);
        return s ? -v : v;
    }
    bits = e == 31 ? s | 0x7f800000u | (f << 13) : s | ((e + 112) << 23) | (f << 13);
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

int uf_st_to_f32(uf_dtype dt, const void *src, size_t n, float *out)
{
    const uint8_t *b = src;
    if (dt != UF_DT_F32 && dt != UF_DT_F64 && dt != UF_DT_F16 && dt != UF_DT_BF16)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (dt == UF_DT_F32) {
            memcpy(&out[i], b + 4 * i, 4);
        } else if (dt == UF_DT_F64) {
            double d;
            memcpy(&d, b + 8 * i, 8);
            out[i] = (float)d;
        } else {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            if (dt == UF_DT_F16) {
                out[i] = half_to_float(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&out[i], &bits, 4);
            }
        }
    }
    return 0;
}

void uf_st_shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}
