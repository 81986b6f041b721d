/* pickle_tree.c — the node arena of a pickle document and the read-only accessors of the tree
 * (pickle.h). Nodes live in fixed chunks and are freed all at once, so a tree with shared
 * nodes or cycles needs no reference counting and no recursive free. */
#include "core/internal.h"
#include "io/pickle.h"

#include <stdlib.h>
#include <string.h>

#define NCHUNK 1024
#define BCHUNK (64 * 1024)

struct pk_nchunk {
    struct pk_nchunk *next;
    size_t used;
    uf_pk n[NCHUNK];
};

struct pk_bchunk {
    struct pk_bchunk *next;
    size_t used, cap;
    char b[];
};

uf_status uf_pk_doc_new(const uf_pk_opts *o, uf_pk_doc **out, uf_error *err)
{
    *out = NULL;
    uf_pk_doc *d = calloc(1, sizeof *d);
    if (!d)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    if (o)
        d->o = *o;
    d->lim = d->o.limits;
    if (!d->lim.max_nodes)
        d->lim.max_nodes = (size_t)4 << 20;
    if (!d->lim.max_memo)
        d->lim.max_memo = (size_t)4 << 20;
    if (!d->lim.max_stack)
        d->lim.max_stack = (size_t)1 << 20;
    if (!d->lim.max_marks)
        d->lim.max_marks = 4096;
    *out = d;
    return UF_OK;
}

static int is_seq(uf_pk_kind k)
{
    return k == UF_PK_TUPLE || k == UF_PK_LIST || k == UF_PK_DICT || k == UF_PK_SET ||
           k == UF_PK_FROZENSET;
}

void uf_pk_doc_free(uf_pk_doc *d)
{
    if (!d)
        return;
    for (struct pk_nchunk *c = d->nodes, *n; c; c = n) {
        n = c->next;
        for (size_t i = 0; i < c->used; i++)
            if (is_seq(c->n[i].kind))
                free(c->n[i].u.seq.v);
        free(c);
    }
    for (struct pk_bchunk *c = d->bytes, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(d);
}

uf_pk *pk_node(uf_pk_doc *d, uf_pk_kind k, int *limit)
{
    *limit = 0;
    if (d->n_nodes >= d->lim.max_nodes) {
        *limit = 1;
        return NULL;
    }
    if (!d->nodes || d->nodes->used == NCHUNK) {
        struct pk_nchunk *c = malloc(sizeof *c);
        if (!c)
            return NULL;
        c->next = d->nodes;
        c->used = 0;
        d->nodes = c;
    }
    uf_pk *p = &d->nodes->n[d->nodes->used++];
    memset(p, 0, sizeof *p);
    p->kind = k;
    d->n_nodes++;
    return p;
}

char *pk_bytes(uf_pk_doc *d, const void *src, size_t n)
{
    if (n > SIZE_MAX - sizeof(struct pk_bchunk) - BCHUNK - 1)
        return NULL;
    struct pk_bchunk *c = d->bytes;
    if (!c || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > BCHUNK ? n + 1 : BCHUNK;
        struct pk_bchunk *nc = malloc(sizeof *nc + cap);
        if (!nc)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        /* A big block goes behind the current one so the current one keeps filling. */
        if (c && cap > BCHUNK) {
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            d->bytes = nc;
        }
        c = nc;
    }
    char *p = c->b + c->used;
    if (n && src)
        memcpy(p, src, n);
    p[n] = 0;
    c->used += n + 1;
    return p;
}

int pk_seq_push(uf_pk *seq, uf_pk *item)
{
    if (seq->u.seq.n == seq->u.seq.cap) {
        size_t cap = seq->u.seq.cap ? 2 * seq->u.seq.cap : 4;
        uf_pk **v = realloc(seq->u.seq.v, cap * sizeof *v);
        if (!v)
            return -1;
        seq->u.seq.v = v;
        seq->u.seq.cap = cap;
    }
    seq->u.seq.v[seq->u.seq.n++] = item;
    return 0;
}

/* ---- accessors ------------------------------------------------------------------------------ */

int uf_pk_is_str(const uf_pk *p, const char *s)
{
    return p && p->kind == UF_PK_STR && p->u.s.n == strlen(s) && memcmp(p->u.s.p, s, p->u.s.n) == 0;
}

int uf_pk_is_global(const uf_pk *p, const char *module, const char *name)
{
    return p && p->kind == UF_PK_GLOBAL && strcmp(p->u.g.module, module) == 0 &&
           strcmp(p->u.g.name, name) == 0;
}

const uf_pk *uf_pk_class_of(const uf_pk *p)
{
    if (!p)
        return NULL;
    if (p->kind == UF_PK_OBJECT)
        return p->u.obj.cls;
    if (p->kind == UF_PK_CALL)
        return p->u.call.fn;
    return NULL;
}

int uf_pk_class_is(const uf_pk *p, const char *module_prefix, const char *name)
{
    const uf_pk *g = p && p->kind == UF_PK_GLOBAL ? p : uf_pk_class_of(p);
    if (!g || g->kind != UF_PK_GLOBAL)
        return 0;
    if (module_prefix && strncmp(g->u.g.module, module_prefix, strlen(module_prefix)) != 0)
        return 0;
    size_t nl = strlen(g->u.g.name), l = strlen(name);
    if (nl == l)
        return strcmp(g->u.g.name, name) == 0;
    return nl > l && g->u.g.name[nl - l - 1] == '.' && strcmp(g->u.g.name + nl - l, name) == 0;
}

const uf_pk *uf_pk_as_dict(const uf_pk *p)
{
    if (p && p->kind == UF_PK_DICT)
        return p;
    if (p && p->kind == UF_PK_OBJECT && p->u.obj.items && p->u.obj.items->kind == UF_PK_DICT)
        return p->u.obj.items;
    return NULL;
}

uf_pk *uf_pk_dict_get(const uf_pk *dict, const char *key)
{
    const uf_pk *d = uf_pk_as_dict(dict);
    if (!d)
        return NULL;
    for (size_t i = d->u.seq.n / 2; i-- > 0;)
        if (uf_pk_is_str(d->u.seq.v[2 * i], key))
            return d->u.seq.v[2 * i + 1];
    return NULL;
}

uf_pk *uf_pk_dict_get_int(const uf_pk *dict, int64_t key)
{
    const uf_pk *d = uf_pk_as_dict(dict);
    if (!d)
        return NULL;
    for (size_t i = d->u.seq.n / 2; i-- > 0;) {
        const uf_pk *k = d->u.seq.v[2 * i];
        if ((k->kind == UF_PK_INT || k->kind == UF_PK_BOOL) && k->u.i == key)
            return d->u.seq.v[2 * i + 1];
    }
    return NULL;
}

uf_pk *uf_pk_attr(const uf_pk *obj, const char *name)
{
    const uf_pk *st = NULL;
    if (obj && obj->kind == UF_PK_OBJECT)
        st = obj->u.obj.state;
    else if (obj && obj->kind == UF_PK_CALL)
        st = obj->u.call.state;
    if (!st)
        return NULL;
    if (st->kind == UF_PK_DICT)
        return uf_pk_dict_get(st, name);
    /* (instance dict, slots dict), as object.__reduce_ex__ writes for classes with slots */
    if (st->kind == UF_PK_TUPLE && st->u.seq.n == 2) {
        uf_pk *v = uf_pk_dict_get(st->u.seq.v[0], name);
        return v ? v : uf_pk_dict_get(st->u.seq.v[1], name);
    }
    return NULL;
}

int uf_pk_number(const uf_pk *p, double *out)
{
    if (p && (p->kind == UF_PK_INT || p->kind == UF_PK_BOOL)) {
        *out = (double)p->u.i;
        return 1;
    }
    if (p && p->kind == UF_PK_FLOAT) {
        *out = p->u.f;
        return 1;
    }
    return 0;
}

int uf_pk_int(const uf_pk *p, int64_t *out)
{
    if (p && (p->kind == UF_PK_INT || p->kind == UF_PK_BOOL)) {
        *out = p->u.i;
        return 1;
    }
    return 0;
}

void uf_pk_walk_begin(uf_pk_doc *d)
{
    if (++d->gen == 0) { /* wrapped: clear every mark once */
        for (struct pk_nchunk *c = d->nodes; c; c = c->next)
            for (size_t i = 0; i < c->used; i++)
                c->n[i].seen = 0;
        d->gen = 1;
    }
}

int uf_pk_visit(uf_pk_doc *d, uf_pk *p)
{
    if (!p || p->seen == d->gen)
        return 0;
    p->seen = d->gen;
    return 1;
}

const char *uf_pk_kind_name(uf_pk_kind k)
{
    static const char *names[] = {"None",   "bool",      "int",    "int",   "float",
                                  "str",    "bytes",     "tuple",  "list",  "dict",
                                  "set",    "frozenset", "global", "object", "call",
                                  "persistent id"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}
