/* st.c — safetensors reader (mmap + full validation) and writer. See st.h. */
#include "io/st.h"
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
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

typedef struct wentry {
    char *name;
    uf_dtype dt;
    int ndim;
    int64_t shape[UF_ST_MAX_DIMS];
    void *data;
    size_t bytes;
} wentry;

struct uf_st_writer {
    wentry *e;
    size_t n, cap;
    json_t *meta;
};

uf_st_writer *uf_st_writer_new(void)
{
    uf_st_writer *w = calloc(1, sizeof *w);
    if (w && !(w->meta = json_object())) {
        free(w);
        return NULL;
    }
    return w;
}

void uf_st_writer_free(uf_st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].data);
    }
    free(w->e);
    json_decref(w->meta);
    free(w);
}

uf_status uf_st_writer_add(uf_st_writer *w, const char *name, uf_dtype dt, int ndim,
                           const int64_t *shape, const void *data, uf_error *err)
{
    if (ndim < 0 || ndim > UF_ST_MAX_DIMS || dt >= UF_DT_COUNT || strcmp(name, "__metadata__") == 0)
        return uf_err(err, UF_ERR_ARG, "tensor '%s': bad dtype, rank or name", name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return uf_err(err, UF_ERR_ARG, "tensor '%s': negative dimension", name);
        numel *= (size_t)shape[i];
    }
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return uf_err(err, UF_ERR_ARG, "tensor '%s' added twice", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        wentry *e = realloc(w->e, cap * sizeof *e);
        if (!e)
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        w->e = e;
        w->cap = cap;
    }
    wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->bytes = numel * dtypes[dt].size;
    e->name = strdup(name);
    e->data = malloc(e->bytes ? e->bytes : 1);
    if (!e->name || !e->data) {
        free(e->name);
        free(e->data);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    if (e->bytes)
        memcpy(e->data, data, e->bytes);
    e->dt = dt;
    e->ndim = ndim;
    if (ndim) /* shape may be NULL for a 0-d tensor; memcpy(_, NULL, 0) is undefined */
        memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    w->n++;
    return UF_OK;
}

uf_status uf_st_writer_meta(uf_st_writer *w, const char *key, const char *value, uf_error *err)
{
    if (json_object_set_new(w->meta, key, json_string(value)) != 0)
        return uf_err(err, UF_ERR_ARG, "metadata '%s' is not valid UTF-8", key);
    return UF_OK;
}

/* The header is built with jansson (keys in insertion order) and padded with spaces to a
 * multiple of 8 so that the data section stays 8-byte aligned, like the Python writer. */
uf_status uf_st_writer_save(const uf_st_writer *w, const char *path, uf_error *err)
{
    json_t *h = json_object();
    if (!h)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    if (json_object_size(w->meta))
        json_object_set(h, "__metadata__", w->meta);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const wentry *e = &w->e[i];
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++)
            json_array_append_new(shape, json_integer(e->shape[d]));
        json_object_set_new(h, e->name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", dtypes[e->dt].name, "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + e->bytes)));
        off += e->bytes;
    }
    char *txt = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!txt)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    size_t tl = strlen(txt), padded = (tl + 7) & ~(size_t)7;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(txt);
        return uf_err(err, UF_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(txt, 1, tl, f) == tl;
    for (size_t i = tl; ok && i < padded; i++)
        ok = fputc(' ', f) != EOF;
    for (size_t i = 0; ok && i < w->n; i++)
        ok = fwrite(w->e[i].data, 1, w->e[i].bytes, f) == w->e[i].bytes;
    free(txt);
    if (fclose(f) != 0)
        ok = 0;
    /* Write-then-rename so a reader (or a crash) never sees a half-written model. */
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return uf_err(err, UF_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    }
    return UF_OK;
}
