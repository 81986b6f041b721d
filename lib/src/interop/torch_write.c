/* torch_write.c — the pickle and zip writers of torch_write.h. */
#include "core/internal.h"
#include "interop/torch_write.h"
#include "io/zip.h"

#include <stdlib.h>
#include <string.h>

static void put(uf_pw *w, const void *p, size_t n)
{
    if (w->oom)
        return;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->n + n)
            cap *= 2;
        uint8_t *b = realloc(w->b, cap);
        if (!b) {
            w->oom = 1;
            return;
        }
        w->b = b;
        w->cap = cap;
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void op(uf_pw *w, uint8_t o) { put(w, &o, 1); }

static void le(uf_pw *w, uint64_t v, int n)
{
    uint8_t b[8];
    for (int i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, (size_t)n);
}

static void global(uf_pw *w, const char *module, const char *name)
{
    op(w, 'c');
    put(w, module, strlen(module));
    op(w, '\n');
    put(w, name, strlen(name));
    op(w, '\n');
}

void uf_pw_init(uf_pw *w)
{
    memset(w, 0, sizeof *w);
    put(w, "\x80\x02", 2);
}

void uf_pw_finish(uf_pw *w) { op(w, '.'); }

void uf_pw_free(uf_pw *w)
{
    free(w->b);
    memset(w, 0, sizeof *w);
}

void uf_pw_str(uf_pw *w, const char *s)
{
    size_t n = strlen(s);
    op(w, 'X'); /* BINUNICODE */
    le(w, n, 4);
    put(w, s, n);
}

void uf_pw_int(uf_pw *w, int64_t v)
{
    if (v >= 0 && v < 256) {
        op(w, 'K');
        le(w, (uint64_t)v, 1);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        op(w, 'J');
        le(w, (uint64_t)(uint32_t)(int32_t)v, 4);
    } else {
        op(w, 0x8a); /* LONG1, 8 bytes two's complement */
        op(w, 8);
        le(w, (uint64_t)v, 8);
    }
}

void uf_pw_float(uf_pw *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    op(w, 'G');
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(bits >> (56 - 8 * i)); /* big-endian */
    put(w, b, 8);
}

void uf_pw_bool(uf_pw *w, int v) { op(w, v ? 0x88 : 0x89); }

void uf_pw_dict_begin(uf_pw *w, int ordered)
{
    if (ordered) {
        global(w, "collections", "OrderedDict");
        op(w, ')');
        op(w, 'R');
    } else
        op(w, '}');
    op(w, '(');
}

void uf_pw_items_end(uf_pw *w) { op(w, 'u'); }

static const char *storage_name(uf_dtype dt)
{
    switch (dt) {
    case UF_DT_F32: return "FloatStorage";
    case UF_DT_F64: return "DoubleStorage";
    case UF_DT_F16: return "HalfStorage";
    case UF_DT_BF16: return "BFloat16Storage";
    case UF_DT_I64: return "LongStorage";
    case UF_DT_I32: return "IntStorage";
    case UF_DT_I16: return "ShortStorage";
    case UF_DT_I8: return "CharStorage";
    case UF_DT_U8: return "ByteStorage";
    case UF_DT_BOOL: return "BoolStorage";
    default: return "ByteStorage";
    }
}

void uf_pw_tensor(uf_pw *w, const char *key, uf_dtype dt, int ndim, const int64_t *shape)
{
    int64_t numel = 1, stride[UF_ST_MAX_DIMS];
    for (int d = ndim - 1; d >= 0; d--) {
        stride[d] = numel;
        numel *= shape[d];
    }
    global(w, "torch._utils", "_rebuild_tensor_v2");
    op(w, '(');
    op(w, '('); /* the persistent id: ('storage', torch.XStorage, key, 'cpu', numel) */
    uf_pw_str(w, "storage");
    global(w, "torch", storage_name(dt));
    uf_pw_str(w, key);
    uf_pw_str(w, "cpu");
    uf_pw_int(w, numel);
    op(w, 't');
    op(w, 'Q');
    uf_pw_int(w, 0);
    op(w, '(');
    for (int d = 0; d < ndim; d++)
        uf_pw_int(w, shape[d]);
    op(w, 't');
    op(w, '(');
    for (int d = 0; d < ndim; d++)
        uf_pw_int(w, stride[d]);
    op(w, 't');
    uf_pw_bool(w, 0); /* requires_grad */
    global(w, "collections", "OrderedDict"); /* backward hooks */
    op(w, ')');
    op(w, 'R');
    op(w, 't');
    op(w, 'R');
}

/* ---- zip ------------------------------------------------------------------------------------- */

typedef struct {
    uint8_t b[64];
    size_t n;
} hdr;

static void h16(hdr *h, uint32_t v)
{
    h->b[h->n++] = (uint8_t)v;
    h->b[h->n++] = (uint8_t)(v >> 8);
}

static void h32(hdr *h, uint32_t v)
{
    h16(h, v & 0xFFFF);
    h16(h, v >> 16);
}

static void zw_write(uf_zw *z, const void *p, size_t n)
{
    uf_afile_write(&z->a, p, n);
    z->pos += n;
}

uf_status uf_zw_open(uf_zw *z, const char *path, uf_error *err)
{
    memset(z, 0, sizeof *z);
    return uf_afile_open(&z->a, path, err);
}

#define ZIP32_MAX 0xFFFFFFFFu

uf_status uf_zw_add(uf_zw *z, const char *name, const void *data, size_t len, uf_error *err)
{
    size_t nl = strlen(name);
    if (z->pos + 30 + nl + 128 + len >= ZIP32_MAX || nl > 0xFFFF)
        return uf_err(err, UF_ERR_UNSUPPORTED, "the checkpoint would exceed 4 GiB (no ZIP64 writer)");
    if (z->n == z->cap) {
        size_t cap = z->cap ? 2 * z->cap : 64;
        uf_zw_entry *e = realloc(z->e, cap * sizeof *e);
        if (!e)
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        z->e = e;
        z->cap = cap;
    }
    uf_zw_entry *e = &z->e[z->n];
    if (!(e->name = strdup(name)))
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    z->n++;
    e->crc = uf_crc32(0, data, len);
    e->size = len;
    e->offset = z->pos;
    /* data 64-byte aligned, as torch writes it (tensors can then be mapped in place); the
     * padding is an extra field with torch's id 'FB' */
    size_t pad = (64 - (size_t)((z->pos + 30 + nl + 4) % 64)) % 64 + 4;
    hdr h = {.n = 0};
    h32(&h, 0x04034b50u);
    h16(&h, 20);
    h16(&h, 0);
    h16(&h, 0);
    h32(&h, 0); /* time, date */
    h32(&h, e->crc);
    h32(&h, (uint32_t)len);
    h32(&h, (uint32_t)len);
    h16(&h, (uint32_t)nl);
    h16(&h, (uint32_t)pad);
    zw_write(z, h.b, h.n);
    zw_write(z, name, nl);
    static const uint8_t zeros[68];
    hdr x = {.n = 0};
    h16(&x, 0x4246);
    h16(&x, (uint32_t)(pad - 4));
    zw_write(z, x.b, x.n);
    zw_write(z, zeros, pad - 4);
    if (len)
        zw_write(z, data, len);
    return UF_OK;
}

uf_status uf_zw_commit(uf_zw *z, uf_error *err)
{
    uint64_t cd = z->pos;
    for (size_t i = 0; i < z->n; i++) {
        const uf_zw_entry *e = &z->e[i];
        size_t nl = strlen(e->name);
        hdr h = {.n = 0};
        h32(&h, 0x02014b50u);
        h16(&h, 20);
        h16(&h, 20);
        h16(&h, 0);
        h16(&h, 0);
        h32(&h, 0);
        h32(&h, e->crc);
        h32(&h, (uint32_t)e->size);
        h32(&h, (uint32_t)e->size);
        h16(&h, (uint32_t)nl);
        h16(&h, 0);
        h16(&h, 0);
        h16(&h, 0);
        h16(&h, 0);
        h32(&h, 0);
        h32(&h, (uint32_t)e->offset);
        zw_write(z, h.b, h.n);
        zw_write(z, e->name, nl);
    }
    uint64_t cds = z->pos - cd;
    uf_status s = UF_OK;
    if (z->pos + 22 >= ZIP32_MAX || z->n > 0xFFFF)
        s = uf_err(err, UF_ERR_UNSUPPORTED, "the checkpoint would exceed 4 GiB or 65535 entries "
                                            "(no ZIP64 writer)");
    hdr h = {.n = 0};
    h32(&h, 0x06054b50u);
    h16(&h, 0);
    h16(&h, 0);
    h16(&h, (uint32_t)z->n);
    h16(&h, (uint32_t)z->n);
    h32(&h, (uint32_t)cds);
    h32(&h, (uint32_t)cd);
    h16(&h, 0);
    zw_write(z, h.b, h.n);
    for (size_t i = 0; i < z->n; i++)
        free(z->e[i].name);
    free(z->e);
    z->e = NULL;
    if (s != UF_OK) {
        uf_afile_abort(&z->a);
        return s;
    }
    return uf_afile_commit(&z->a, 0644, err);
}

void uf_zw_abort(uf_zw *z)
{
    for (size_t i = 0; i < z->n; i++)
        free(z->e[i].name);
    free(z->e);
    z->e = NULL;
    uf_afile_abort(&z->a);
}
