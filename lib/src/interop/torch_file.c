/* torch_file.c — torch.save files (torch_file.h): container detection, the object pickle with
 * torch's storage references, and strided tensor views with every byte range checked. */
#include "core/internal.h"
#include "interop/torch_file.h"
#include "io/zip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const uf_tf_callables[] = {
    "torch._utils._rebuild_tensor",          "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",       "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_sparse_tensor",   "torch._utils._rebuild_sparse_csr_tensor",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_meta_tensor_no_storage", "torch._utils._rebuild_wrapper_subclass",
    "torch._utils._rebuild_qtensor",         "torch._utils._rebuild_nested_tensor",
    "torch._tensor._rebuild_from_type",      "torch._tensor._rebuild_from_type_v2",
    "torch.Size",                            "torch.device",
    "torch.serialization._get_layout",
};
const size_t uf_tf_n_callables = sizeof uf_tf_callables / sizeof uf_tf_callables[0];

typedef struct {
    const char *key;
    const char *type;
    uf_dtype dt;
    size_t elsize;
    int64_t numel; /* as the persistent id declares it */
    const uint8_t *data;
    uint64_t nbytes;
    int located;
} storage;

struct uf_tf {
    const uint8_t *b;
    size_t len;
    uf_tf_format fmt;
    uf_zip *zip;
    char *prefix; /* "archive/" */
    uf_pk_doc *doc;
    uf_pk *root;
    uf_pk **pids;
    size_t n_pids, cap_pids;
    storage *st; /* sorted by key */
    size_t n_st;
};

static const struct {
    const char *name;
    uf_dtype dt;
    size_t size;
} types[] = {
    {"FloatStorage", UF_DT_F32, 4},       {"DoubleStorage", UF_DT_F64, 8},
    {"HalfStorage", UF_DT_F16, 2},        {"BFloat16Storage", UF_DT_BF16, 2},
    {"LongStorage", UF_DT_I64, 8},        {"IntStorage", UF_DT_I32, 4},
    {"ShortStorage", UF_DT_I16, 2},       {"CharStorage", UF_DT_I8, 1},
    {"ByteStorage", UF_DT_U8, 1},         {"BoolStorage", UF_DT_BOOL, 1},
    {"UntypedStorage", UF_DT_U8, 1},      {"ComplexFloatStorage", UF_DT_COUNT, 8},
    {"ComplexDoubleStorage", UF_DT_COUNT, 16}, {"ComplexHalfStorage", UF_DT_COUNT, 4},
    {"QInt8Storage", UF_DT_COUNT, 1},     {"QUInt8Storage", UF_DT_COUNT, 1},
    {"QInt32Storage", UF_DT_COUNT, 4},    {"QUInt4x2Storage", UF_DT_COUNT, 1},
    {"QUInt2x4Storage", UF_DT_COUNT, 1},
};

/* torch dtypes by the names torch pickles them under (torch.float32, ...; _rebuild_tensor_v3) */
static const struct {
    const char *name;
    uf_dtype dt;
} dtype_names[] = {
    {"float32", UF_DT_F32}, {"float", UF_DT_F32},   {"float64", UF_DT_F64}, {"double", UF_DT_F64},
    {"float16", UF_DT_F16}, {"half", UF_DT_F16},    {"bfloat16", UF_DT_BF16}, {"int64", UF_DT_I64},
    {"long", UF_DT_I64},    {"int32", UF_DT_I32},   {"int", UF_DT_I32},     {"int16", UF_DT_I16},
    {"short", UF_DT_I16},   {"int8", UF_DT_I8},     {"uint8", UF_DT_U8},    {"bool", UF_DT_BOOL},
};

static int type_index(const uf_pk *g)
{
    if (!g || g->kind != UF_PK_GLOBAL ||
        (strcmp(g->u.g.module, "torch") != 0 && strcmp(g->u.g.module, "torch.cuda") != 0))
        return -1;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(g->u.g.name, types[i].name) == 0)
            return (int)i;
    return -1;
}

static const char *pid_key(const uf_pk *pid)
{
    const uf_pk *k = pid->u.seq.v[2];
    return k->u.s.p;
}

/* ('storage', torch.XStorage, key, location, numel[, view metadata]) */
static uf_status on_persid(void *ud, uf_pk *node, uf_error *err)
{
    uf_tf *tf = ud;
    const uf_pk *pid = node->u.persid.pid;
    /* The legacy format records nn.Module classes as ('module', cls, source file, source code)
     * so that torch.load can warn when the source changed: the class is all that counts here,
     * and the node becomes that (already rule-checked) global. The source is never looked at. */
    if (pid && pid->kind == UF_PK_TUPLE && pid->u.seq.n == 4 && uf_pk_is_str(pid->u.seq.v[0], "module") &&
        pid->u.seq.v[1]->kind == UF_PK_GLOBAL && tf->fmt == UF_TF_LEGACY) {
        uint32_t seen = node->seen;
        *node = *pid->u.seq.v[1];
        node->seen = seen;
        return UF_OK;
    }
    if (!pid || pid->kind != UF_PK_TUPLE || pid->u.seq.n < 5 || pid->u.seq.n > 6 ||
        !(uf_pk_is_str(pid->u.seq.v[0], "storage") ||
          (pid->u.seq.v[0]->kind == UF_PK_BYTES && pid->u.seq.v[0]->u.s.n == 7 &&
           !memcmp(pid->u.seq.v[0]->u.s.p, "storage", 7))))
        return uf_err(err, UF_ERR_FORMAT, "a persistent id that is not a torch storage reference");
    const uf_pk *type = pid->u.seq.v[1], *key = pid->u.seq.v[2], *n = pid->u.seq.v[4];
    if (type->kind != UF_PK_GLOBAL || key->kind != UF_PK_STR || n->kind != UF_PK_INT || n->u.i < 0)
        return uf_err(err, UF_ERR_FORMAT, "malformed torch storage reference");
    if (tf->n_pids == tf->cap_pids) {
        size_t cap = tf->cap_pids ? 2 * tf->cap_pids : 256;
        uf_pk **v = realloc(tf->pids, cap * sizeof *v);
        if (!v)
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        tf->pids = v;
        tf->cap_pids = cap;
    }
    tf->pids[tf->n_pids++] = node;
    return UF_OK;
}

static int by_key(const void *a, const void *b)
{
    return strcmp(((const storage *)a)->key, ((const storage *)b)->key);
}

static storage *find_storage(const uf_tf *tf, const char *key)
{
    storage k = {.key = key};
    return bsearch(&k, tf->st, tf->n_st, sizeof *tf->st, by_key);
}

/* One storage per key (the first reference's type wins, as torch.load keeps the first). */
static uf_status build_storages(uf_tf *tf, uf_error *err)
{
    tf->st = calloc(tf->n_pids ? tf->n_pids : 1, sizeof *tf->st);
    if (!tf->st)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < tf->n_pids; i++) {
        const uf_pk *pid = tf->pids[i]->u.persid.pid;
        storage *s = &tf->st[i];
        int t = type_index(pid->u.seq.v[1]);
        s->key = pid_key(pid);
        s->type = pid->u.seq.v[1]->u.g.name;
        s->dt = t < 0 ? UF_DT_COUNT : types[t].dt;
        s->elsize = t < 0 ? 0 : types[t].size;
        s->numel = pid->u.seq.v[4]->u.i;
        s->nbytes = i; /* original order, to keep the first reference through the sort */
    }
    qsort(tf->st, tf->n_pids, sizeof *tf->st, by_key);
    size_t w = 0;
    for (size_t i = 0; i < tf->n_pids; i++) {
        if (w && strcmp(tf->st[w - 1].key, tf->st[i].key) == 0) {
            if (tf->st[i].nbytes < tf->st[w - 1].nbytes)
                tf->st[w - 1] = tf->st[i];
            continue;
        }
        tf->st[w++] = tf->st[i];
    }
    tf->n_st = w;
    for (size_t i = 0; i < w; i++)
        tf->st[i].nbytes = 0;
    return UF_OK;
}

static uf_status parse(uf_tf *tf, const uint8_t *b, size_t len, size_t base, uf_pk **root,
                       size_t *used, uf_error *err)
{
    return uf_pk_parse(tf->doc, b, len, base, root, used, err);
}

static uf_status open_zip(uf_tf *tf, uf_error *err)
{
    uf_status s = uf_zip_open(tf->b, tf->len, &tf->zip, err);
    if (s)
        return s;
    const uf_zip_entry *pkl = NULL;
    for (size_t i = 0; i < uf_zip_count(tf->zip); i++) {
        const char *n = uf_zip_at(tf->zip, i)->name, *sl = strchr(n, '/');
        if (sl && (strcmp(sl + 1, "constants.pkl") == 0 || strncmp(sl + 1, "code/", 5) == 0))
            return uf_err(err, UF_ERR_UNSUPPORTED,
                          "a TorchScript archive (torch.jit.save), not a checkpoint: save the "
                          "model's state_dict() with torch.save instead");
        if (sl && sl != n && strcmp(sl + 1, "data.pkl") == 0) {
            if (pkl)
                return uf_err(err, UF_ERR_FORMAT, "the archive holds two pickles ('%s', '%s')",
                              pkl->name, n);
            pkl = uf_zip_at(tf->zip, i);
        }
    }
    if (!pkl)
        return uf_err(err, UF_ERR_FORMAT, "a zip archive without <dir>/data.pkl: not a torch checkpoint");
    size_t pl = (size_t)(strchr(pkl->name, '/') - pkl->name) + 1;
    if (!(tf->prefix = strndup(pkl->name, pl)))
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    char name[4096];
    snprintf(name, sizeof name, "%sbyteorder", tf->prefix);
    const uf_zip_entry *bo = uf_zip_find(tf->zip, name);
    const void *data;
    if (bo) {
        if ((s = uf_zip_data(tf->zip, bo, &data, err)))
            return s;
        if (!(bo->size == 6 && memcmp(data, "little", 6) == 0))
            return uf_err(err, UF_ERR_UNSUPPORTED, "a big-endian checkpoint (byteorder record)");
    }
    if ((s = uf_zip_data(tf->zip, pkl, &data, err)))
        return s;
    size_t used;
    if ((s = parse(tf, data, (size_t)pkl->size, 0, &tf->root, &used, err))) {
        uf_err_prefix(err, "%s", pkl->name);
        return s;
    }
    return build_storages(tf, err);
}

static int is_magic(const uf_pk *p)
{
    static const uint8_t magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    return p && p->kind == UF_PK_BIGINT && p->u.s.n == 10 && memcmp(p->u.s.p, magic, 10) == 0;
}

/* The legacy stream: five pickles, then the storages in the order of the key list. */
static uf_status open_legacy(uf_tf *tf, uf_error *err)
{
    size_t pos = 0, used;
    uf_pk *v;
    uf_status s = parse(tf, tf->b, tf->len, 0, &v, &used, err);
    if (s || !is_magic(v))
        return s == UF_ERR_LIMIT || s == UF_ERR_NOMEM ? s
               : uf_err(err, UF_ERR_FORMAT, "not a torch checkpoint (neither a zip archive nor "
                                            "torch's legacy format)");
    pos += used;
    int64_t proto;
    if ((s = parse(tf, tf->b + pos, tf->len - pos, pos, &v, &used, err)))
        return s;
    if (!uf_pk_int(v, &proto) || proto != 1001)
        return uf_err(err, UF_ERR_UNSUPPORTED, "legacy torch format version %lld (1001 is known)",
                      uf_pk_int(v, &proto) ? (long long)proto : -1LL);
    pos += used;
    if ((s = parse(tf, tf->b + pos, tf->len - pos, pos, &v, &used, err)))
        return s;
    const uf_pk *le = uf_pk_dict_get(v, "little_endian");
    if (!le || le->kind != UF_PK_BOOL || !le->u.i)
        return uf_err(err, UF_ERR_UNSUPPORTED, "a big-endian legacy checkpoint");
    pos += used;
    if ((s = parse(tf, tf->b + pos, tf->len - pos, pos, &tf->root, &used, err)))
        return s;
    pos += used;
    uf_pk *keys;
    if ((s = parse(tf, tf->b + pos, tf->len - pos, pos, &keys, &used, err)))
        return s;
    pos += used;
    if (keys->kind != UF_PK_LIST)
        return uf_err(err, UF_ERR_FORMAT, "legacy checkpoint: the storage key list is a %s",
                      uf_pk_kind_name(keys->kind));
    if ((s = build_storages(tf, err)))
        return s;
    for (size_t i = 0; i < keys->u.seq.n; i++) {
        const uf_pk *k = keys->u.seq.v[i];
        storage *st = k->kind == UF_PK_STR ? find_storage(tf, k->u.s.p) : NULL;
        if (!st || !st->elsize)
            return uf_err(err, UF_ERR_FORMAT,
                          "legacy checkpoint: storage %zu in the key list %s", i,
                          st ? "has a storage type of unknown size" : "is not referenced");
        if (tf->len - pos < 8)
            return uf_err(err, UF_ERR_FORMAT, "legacy checkpoint truncated at storage '%s'", st->key);
        uint64_t n = 0;
        for (int b = 7; b >= 0; b--)
            n = (n << 8) | tf->b[pos + (size_t)b];
        pos += 8;
        if (n > (tf->len - pos) / st->elsize)
            return uf_err(err, UF_ERR_FORMAT,
                          "legacy checkpoint truncated: storage '%s' needs %llu elements of %zu "
                          "bytes, %zu bytes left",
                          st->key, (unsigned long long)n, st->elsize, tf->len - pos);
        if (st->located)
            return uf_err(err, UF_ERR_FORMAT, "legacy checkpoint: storage '%s' listed twice", st->key);
        st->data = tf->b + pos;
        st->nbytes = n * st->elsize;
        st->located = 1;
        pos += (size_t)st->nbytes;
    }
    return UF_OK;
}

uf_status uf_tf_open(const void *buf, size_t len, const uf_pk_limits *limits, uf_tf **out,
                     uf_error *err)
{
    *out = NULL;
    uf_tf *tf = calloc(1, sizeof *tf);
    if (!tf)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    tf->b = buf;
    tf->len = len;
    uf_pk_opts po = {.callables = uf_tf_callables, .n_callables = uf_tf_n_callables,
                     .allow_persid = 1, .on_persid = on_persid, .ud = tf};
    if (limits)
        po.limits = *limits;
    uf_status s = uf_pk_doc_new(&po, &tf->doc, err);
    if (s == UF_OK) {
        if (len == 0)
            s = uf_err(err, UF_ERR_FORMAT, "empty file");
        else if (len >= 4 && memcmp(buf, "PK\x03\x04", 4) == 0) {
            tf->fmt = UF_TF_ZIP;
            s = open_zip(tf, err);
        } else if (len > 262 && memcmp((const char *)buf + 257, "ustar", 5) == 0)
            s = uf_err(err, UF_ERR_UNSUPPORTED, "torch's pre-1.0 tar checkpoint format is not "
                                                "supported: load and re-save it with torch.save");
        else if (((const uint8_t *)buf)[0] == 0x80) {
            tf->fmt = UF_TF_LEGACY;
            s = open_legacy(tf, err);
        } else
            s = uf_err(err, UF_ERR_FORMAT, "not a torch checkpoint (neither a zip archive nor "
                                           "torch's legacy format)");
    }
    if (s) {
        uf_tf_close(tf);
        return s;
    }
    *out = tf;
    return UF_OK;
}

void uf_tf_close(uf_tf *tf)
{
    if (!tf)
        return;
    uf_zip_close(tf->zip);
    uf_pk_doc_free(tf->doc);
    free(tf->prefix);
    free(tf->pids);
    free(tf->st);
    free(tf);
}

uf_pk *uf_tf_root(const uf_tf *tf) { return tf->root; }
uf_tf_format uf_tf_get_format(const uf_tf *tf) { return tf->fmt; }
uf_pk_doc *uf_tf_doc(const uf_tf *tf) { return tf->doc; }

/* ---- tensors --------------------------------------------------------------------------------- */

static int is_fn(const uf_pk *p, const char *name)
{
    return p && p->kind == UF_PK_CALL && uf_pk_is_global(p->u.call.fn, "torch._utils", name);
}

static const uf_pk *arg(const uf_pk *call, size_t i)
{
    const uf_pk *a = call->u.call.args;
    return i < a->u.seq.n ? a->u.seq.v[i] : NULL;
}

/* Parameter wrappers and _rebuild_from_type_v2 around the rebuild call; NULL if none. */
static const uf_pk *rebuild_call(const uf_pk *p, const uf_pk **args)
{
    for (int depth = 0; p && depth < 4; depth++) {
        if (is_fn(p, "_rebuild_parameter") || is_fn(p, "_rebuild_parameter_with_state"))
            p = arg(p, 0);
        else if (p->kind == UF_PK_OBJECT && uf_pk_is_global(p->u.obj.cls, "torch.nn.parameter", "Parameter"))
            p = p->u.obj.args->u.seq.n ? p->u.obj.args->u.seq.v[0] : NULL;
        else if (p->kind == UF_PK_CALL && uf_pk_is_global(p->u.call.fn, "torch._tensor", "_rebuild_from_type_v2")) {
            const uf_pk *f = arg(p, 0), *a = arg(p, 2);
            if (!uf_pk_is_global(f, "torch._utils", "_rebuild_tensor_v2") || !a || a->kind != UF_PK_TUPLE)
                return NULL;
            *args = a;
            return p;
        } else if (is_fn(p, "_rebuild_tensor_v2") || is_fn(p, "_rebuild_tensor") ||
                   is_fn(p, "_rebuild_tensor_v3")) {
            *args = p->u.call.args;
            return p;
        } else
            return NULL;
    }
    return NULL;
}

int uf_tf_is_tensor(const uf_pk *p)
{
    const uf_pk *a;
    return rebuild_call(p, &a) != NULL;
}

static uf_status int_tuple(const uf_pk *t, int64_t *out, int *n, const char *what, uf_error *err)
{
    if (!t || (t->kind != UF_PK_TUPLE && t->kind != UF_PK_LIST))
        return uf_err(err, UF_ERR_FORMAT, "tensor %s is not a tuple", what);
    if (t->u.seq.n > UF_ST_MAX_DIMS)
        return uf_err(err, UF_ERR_UNSUPPORTED, "tensor with %zu dimensions (at most %d)", t->u.seq.n,
                      UF_ST_MAX_DIMS);
    for (size_t i = 0; i < t->u.seq.n; i++)
        if (!uf_pk_int(t->u.seq.v[i], &out[i]) || out[i] < 0 || out[i] > ((int64_t)1 << 40))
            return uf_err(err, UF_ERR_FORMAT, "tensor %s[%zu] is not a valid size", what, i);
    *n = (int)t->u.seq.n;
    return UF_OK;
}

static uf_status locate(uf_tf *tf, storage *s, uf_error *err)
{
    if (s->located)
        return UF_OK;
    if (tf->fmt == UF_TF_LEGACY)
        return uf_err(err, UF_ERR_FORMAT, "storage '%s' is not in the checkpoint's storage list", s->key);
    char name[4096];
    snprintf(name, sizeof name, "%sdata/%s", tf->prefix, s->key);
    const uf_zip_entry *e = uf_zip_find(tf->zip, name);
    if (!e)
        return uf_err(err, UF_ERR_FORMAT, "storage '%s' is missing from the archive", name);
    const void *d;
    uf_status st = uf_zip_data(tf->zip, e, &d, err);
    if (st)
        return st;
    s->data = d;
    s->nbytes = e->size;
    s->located = 1;
    return UF_OK;
}

uf_status uf_tf_tensor_of(uf_tf *tf, const uf_pk *p, uf_tf_tensor *t, uf_error *err)
{
    memset(t, 0, sizeof *t);
    const uf_pk *args = NULL, *call = rebuild_call(p, &args);
    if (!call)
        return uf_err(err, UF_ERR_FORMAT, "not a tensor (a %s)", p ? uf_pk_kind_name(p->kind) : "nothing");
    size_t na = args->u.seq.n;
    const uf_pk *sp = na > 0 ? args->u.seq.v[0] : NULL, *off = na > 1 ? args->u.seq.v[1] : NULL;
    if (na < 4 || !sp || sp->kind != UF_PK_PERSID)
        return uf_err(err, UF_ERR_FORMAT, "tensor without a storage reference");
    if (sp->u.persid.pid->u.seq.n == 6 && sp->u.persid.pid->u.seq.v[5]->kind != UF_PK_NONE)
        return uf_err(err, UF_ERR_UNSUPPORTED, "a view into a legacy storage (pre-1.0 torch)");
    storage *s = find_storage(tf, pid_key(sp->u.persid.pid));
    if (!s)
        return uf_err(err, UF_ERR_FORMAT, "tensor storage not found");
    t->type_name = s->type;
    t->dtype = s->dt;
    t->elsize = s->elsize;
    if (is_fn(call, "_rebuild_tensor_v3")) {
        const uf_pk *dt = na > 6 ? args->u.seq.v[6] : NULL;
        t->dtype = UF_DT_COUNT;
        for (size_t i = 0; dt && i < sizeof dtype_names / sizeof dtype_names[0]; i++)
            if (uf_pk_is_global(dt, "torch", dtype_names[i].name))
                t->dtype = dtype_names[i].dt;
        t->type_name = dt && dt->kind == UF_PK_GLOBAL ? dt->u.g.name : "?";
        t->elsize = uf_dtype_size(t->dtype);
    }
    if (t->dtype == UF_DT_COUNT || !t->elsize)
        return uf_err(err, UF_ERR_UNSUPPORTED, "tensor of storage type %s, which uflow does not read",
                      t->type_name);
    int nd = 0;
    uf_status st;
    if (!uf_pk_int(off, &t->offset) || t->offset < 0 || t->offset > ((int64_t)1 << 50))
        return uf_err(err, UF_ERR_FORMAT, "tensor storage offset is not a valid index");
    if ((st = int_tuple(args->u.seq.v[2], t->shape, &t->ndim, "size", err)) ||
        (st = int_tuple(args->u.seq.v[3], t->stride, &nd, "stride", err)))
        return st;
    if (nd != t->ndim)
        return uf_err(err, UF_ERR_FORMAT, "tensor size has %d dimensions but stride %d", t->ndim, nd);
    /* The last element touched, in elements of the storage: offset + sum (size - 1) * stride,
     * every step checked so that nothing overflows (sizes and strides are <= 2^40). */
    const uint64_t big = (uint64_t)1 << 62;
    uint64_t numel = 1, last = (uint64_t)t->offset;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0)
            numel = 0;
    for (int i = 0; numel && i < t->ndim; i++) {
        uint64_t n = (uint64_t)t->shape[i], str = (uint64_t)t->stride[i];
        if (n > big / numel || (str && n - 1 > (big - last) / str))
            return uf_err(err, UF_ERR_FORMAT, "tensor too large");
        numel *= n;
        last += (n - 1) * str;
    }
    t->numel = numel;
    if ((st = locate(tf, s, err)))
        return st;
    uint64_t cap = s->nbytes / t->elsize;
    if (s->numel >= 0 && (uint64_t)s->numel * s->elsize > s->nbytes)
        return uf_err(err, UF_ERR_FORMAT, "storage '%s' holds %llu bytes, its reference says %lld elements",
                      s->key, (unsigned long long)s->nbytes, (long long)s->numel);
    if (numel && last >= cap)
        return uf_err(err, UF_ERR_FORMAT,
                      "tensor reaches element %llu of a storage of %llu elements",
                      (unsigned long long)last, (unsigned long long)cap);
    t->base = s->data;
    t->nbytes = s->nbytes;
    return UF_OK;
}

void uf_tf_gather(const uf_tf_tensor *t, void *dst)
{
    uint8_t *o = dst;
    if (!t->numel)
        return;
    int64_t idx[UF_ST_MAX_DIMS] = {0};
    int nd = t->ndim;
    /* the innermost run is one memcpy when it is contiguous */
    int64_t run = nd ? t->shape[nd - 1] : 1;
    int inner_contig = nd == 0 || t->stride[nd - 1] == 1;
    int outer = nd ? nd - 1 : 0;
    for (;;) {
        uint64_t e = (uint64_t)t->offset;
        for (int i = 0; i < outer; i++)
            e += (uint64_t)idx[i] * (uint64_t)t->stride[i];
        if (inner_contig) {
            memcpy(o, t->base + e * t->elsize, (size_t)run * t->elsize);
            o += (size_t)run * t->elsize;
        } else {
            for (int64_t j = 0; j < run; j++, o += t->elsize)
                memcpy(o, t->base + (e + (uint64_t)j * (uint64_t)t->stride[nd - 1]) * t->elsize,
                       t->elsize);
        }
        int d = outer - 1;
        while (d >= 0 && ++idx[d] == t->shape[d])
            idx[d--] = 0;
        if (d < 0)
            return;
    }
}

double uf_tf_element(const uf_tf_tensor *t, uint64_t i)
{
    if (i >= t->numel)
        return NAN;
    uint64_t e = (uint64_t)t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        e += (i % (uint64_t)t->shape[d]) * (uint64_t)t->stride[d];
        i /= (uint64_t)t->shape[d];
    }
    const uint8_t *p = t->base + e * t->elsize;
    switch (t->dtype) {
    case UF_DT_F32: { float v; memcpy(&v, p, 4); return v; }
    case UF_DT_F64: { double v; memcpy(&v, p, 8); return v; }
    case UF_DT_F16: {
        uint16_t h;
        memcpy(&h, p, 2);
        int ex = (h >> 10) & 31, f = h & 1023;
        double v = ex == 0 ? ldexp(f, -24) : ex == 31 ? (f ? NAN : INFINITY) : ldexp(f + 1024, ex - 25);
        return h & 0x8000 ? -v : v;
    }
    case UF_DT_BF16: {
        uint16_t h;
        memcpy(&h, p, 2);
        uint32_t bits = (uint32_t)h << 16;
        float v;
        memcpy(&v, &bits, 4);
        return v;
    }
    case UF_DT_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case UF_DT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case UF_DT_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case UF_DT_I8: return (int8_t)p[0];
    case UF_DT_U8:
    case UF_DT_BOOL: return p[0];
    default: return NAN;
    }
}
