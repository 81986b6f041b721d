/* pickle.c — the opcode interpreter of the pickle reader (pickle.h): a stack machine over uf_pk
 * nodes. Every operand length is checked against the bytes left before it is read; stack, MARK,
 * memo and node counts are bounded by uf_pk_limits. Calls go through pickle_policy.c's rules. */
#include "core/internal.h"
#include "io/pickle.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define MAX_LINE 65536

typedef struct {
    uf_pk_doc *d;
    const uint8_t *b;
    size_t len, pos, base, op_pos;
    int op;
    uf_pk **stack;
    size_t sp, scap;
    size_t *marks;
    size_t nm, mcap;
    uf_pk **memo;
    size_t memo_cap, memo_count;
    uf_error *err;
} P;


static uf_status fail(P *p, uf_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static uf_status fail(P *p, uf_status st, const char *fmt, ...)
{
    char msg[UF_ERR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *n = pk_op_name(p->op);
    return uf_err(p->err, st, "pickle byte %zu (%s): %s", p->base + p->op_pos, n ? n : "?", msg);
}

/* A message from the policy layer gets the position in front. */
static uf_status located(P *p, uf_status s)
{
    if (s) {
        const char *n = pk_op_name(p->op);
        uf_err_prefix(p->err, "pickle byte %zu (%s)", p->base + p->op_pos, n ? n : "?");
    }
    return s;
}

static uf_status oom(P *p, int lim)
{
    return lim ? fail(p, UF_ERR_LIMIT, "more than %zu objects (limit)", p->d->lim.max_nodes)
               : fail(p, UF_ERR_NOMEM, "out of memory");
}

static uf_status need(P *p, size_t n)
{
    return p->len - p->pos < n ? fail(p, UF_ERR_FORMAT, "truncated: needs %zu more bytes, %zu left",
                                      n, p->len - p->pos)
                               : UF_OK;
}

/* The operand line up to '\n' (not included). */
static uf_status line(P *p, const char **s, size_t *n)
{
    size_t avail = p->len - p->pos, lim = avail < MAX_LINE ? avail : MAX_LINE;
    const uint8_t *nl = memchr(p->b + p->pos, '\n', lim);
    if (!nl)
        return fail(p, UF_ERR_FORMAT, avail < MAX_LINE ? "truncated: operand line has no end"
                                                       : "operand line longer than %d bytes",
                    MAX_LINE);
    *s = (const char *)p->b + p->pos;
    *n = (size_t)(nl - (p->b + p->pos));
    p->pos += *n + 1;
    return UF_OK;
}

static uf_status push(P *p, uf_pk *v)
{
    if (p->sp == p->scap) {
        if (p->scap >= p->d->lim.max_stack)
            return fail(p, UF_ERR_LIMIT, "stack deeper than %zu entries (limit)", p->d->lim.max_stack);
        size_t cap = 2 * p->scap < p->d->lim.max_stack ? 2 * p->scap : p->d->lim.max_stack;
        uf_pk **s = realloc(p->stack, cap * sizeof *s);
        if (!s)
            return oom(p, 0);
        p->stack = s;
        p->scap = cap;
    }
    p->stack[p->sp++] = v;
    return UF_OK;
}

/* Entries above the innermost MARK: what the current frame can pop. */
static size_t avail(const P *p) { return p->sp - (p->nm ? p->marks[p->nm - 1] : 0); }

static uf_status pop(P *p, uf_pk **v)
{
    if (!avail(p))
        return fail(p, UF_ERR_FORMAT, "stack underflow");
    *v = p->stack[--p->sp];
    return UF_OK;
}

static uf_status top(P *p, uf_pk **v)
{
    if (!avail(p))
        return fail(p, UF_ERR_FORMAT, "stack underflow");
    *v = p->stack[p->sp - 1];
    return UF_OK;
}

/* The entries above the innermost MARK, then the MARK is removed. */
static uf_status pop_mark(P *p, uf_pk ***items, size_t *n)
{
    if (!p->nm)
        return fail(p, UF_ERR_FORMAT, "no MARK to pop to");
    size_t m = p->marks[--p->nm];
    *items = p->stack + m;
    *n = p->sp - m;
    p->sp = m;
    return UF_OK;
}

static uf_status new_node(P *p, uf_pk_kind k, uf_pk **out)
{
    int lim;
    if (!(*out = pk_node(p->d, k, &lim)))
        return oom(p, lim);
    return UF_OK;
}

static uf_status push_new(P *p, uf_pk_kind k, uf_pk **out)
{
    uf_status s = new_node(p, k, out);
    return s ? s : push(p, *out);
}

static uf_status push_int(P *p, int64_t v)
{
    uf_pk *n = NULL;
    uf_status s = push_new(p, UF_PK_INT, &n);
    if (!s)
        n->u.i = v;
    return s;
}

static uf_status push_blob(P *p, uf_pk_kind k, const void *src, size_t n)
{
    uf_pk *v = NULL;
    uf_status s = new_node(p, k, &v);
    if (s)
        return s;
    char *c = pk_bytes(p->d, src, n);
    if (!c)
        return oom(p, 0);
    v->u.s.p = c;
    v->u.s.n = n;
    return push(p, v);
}

/* A length-prefixed string or bytes operand of nb length bytes. */
static uf_status blob(P *p, int nb, uf_pk_kind k)
{
    uf_status s = need(p, (size_t)nb);
    if (s)
        return s;
    uint64_t n = pk_le(p->b + p->pos, nb);
    p->pos += (size_t)nb;
    if (n > p->len - p->pos)
        return fail(p, UF_ERR_FORMAT, "truncated: a %llu-byte string, %zu bytes left",
                    (unsigned long long)n, p->len - p->pos);
    s = push_blob(p, k, p->b + p->pos, (size_t)n);
    p->pos += (size_t)n;
    return s;
}

/* LONG1 / LONG4: little-endian two's complement. */
static uf_status long_bytes(P *p, int nb)
{
    uf_status s = need(p, (size_t)nb);
    if (s)
        return s;
    uint64_t n = pk_le(p->b + p->pos, nb);
    p->pos += (size_t)nb;
    if (nb == 4 && (n & 0x80000000u))
        return fail(p, UF_ERR_FORMAT, "negative LONG4 length");
    if (n > p->len - p->pos)
        return fail(p, UF_ERR_FORMAT, "truncated: a %llu-byte integer, %zu bytes left",
                    (unsigned long long)n, p->len - p->pos);
    const uint8_t *b = p->b + p->pos;
    p->pos += (size_t)n;
    if (n > 8)
        return push_blob(p, UF_PK_BIGINT, b, (size_t)n);
    uint64_t v = pk_le(b, (int)n);
    if (n && n < 8 && (b[n - 1] & 0x80))
        v |= ~(uint64_t)0 << (8 * n);
    return push_int(p, (int64_t)v);
}





static uf_status text_string(P *p, const char *s, size_t n)
{
    char *o = malloc(n ? n : 1);
    if (!o)
        return oom(p, 0);
    long k = pk_unquote(s, n, o);
    uf_status st = k < 0 ? fail(p, UF_ERR_FORMAT, "STRING operand is not quoted")
                         : push_blob(p, UF_PK_STR, o, (size_t)k);
    free(o);
    return st;
}

static uf_status text_unicode(P *p, const char *s, size_t n)
{
    char *o = malloc(4 * n + 1);
    if (!o)
        return oom(p, 0);
    uf_status st = push_blob(p, UF_PK_STR, o, pk_unicode_decode(s, n, o));
    free(o);
    return st;
}

static uf_status memo_put(P *p, uint64_t idx)
{
    uf_pk *v = NULL;
    uf_status s = top(p, &v);
    if (s)
        return s;
    if (idx >= p->d->lim.max_memo)
        return fail(p, UF_ERR_LIMIT, "memo index %llu beyond the limit %zu", (unsigned long long)idx,
                    p->d->lim.max_memo);
    if (idx >= p->memo_cap) {
        size_t cap = p->memo_cap ? p->memo_cap : 64;
        while (cap <= idx)
            cap *= 2;
        if (cap > p->d->lim.max_memo)
            cap = p->d->lim.max_memo;
        uf_pk **m = realloc(p->memo, cap * sizeof *m);
        if (!m)
            return oom(p, 0);
        memset(m + p->memo_cap, 0, (cap - p->memo_cap) * sizeof *m);
        p->memo = m;
        p->memo_cap = cap;
    }
    if (!p->memo[idx])
        p->memo_count++;
    p->memo[idx] = v;
    return UF_OK;
}

static uf_status memo_get(P *p, uint64_t idx)
{
    if (idx >= p->memo_cap || !p->memo[idx])
        return fail(p, UF_ERR_FORMAT, "memo index %llu was never stored", (unsigned long long)idx);
    return push(p, p->memo[idx]);
}

static uf_status seq_from_mark(P *p, uf_pk_kind k)
{
    uf_pk **items = NULL, *c = NULL;
    size_t n = 0;
    uf_status s = pop_mark(p, &items, &n);
    if (s || (s = new_node(p, k, &c)))
        return s;
    if (k == UF_PK_DICT && n % 2)
        return fail(p, UF_ERR_FORMAT, "odd number of entries for a dict");
    for (size_t i = 0; i < n; i++)
        if (pk_seq_push(c, items[i]))
            return oom(p, 0);
    return push(p, c);
}

static uf_status tuple_n(P *p, size_t n)
{
    if (avail(p) < n)
        return fail(p, UF_ERR_FORMAT, "stack underflow");
    uf_pk *t = NULL;
    uf_status s = new_node(p, UF_PK_TUPLE, &t);
    if (s)
        return s;
    for (size_t i = 0; i < n; i++)
        if (pk_seq_push(t, p->stack[p->sp - n + i]))
            return oom(p, 0);
    p->sp -= n;
    return push(p, t);
}

/* The dict (or list) that SETITEM(S) (APPEND(S)) on target fill: its own, or an object's items. */
static uf_status fill_target(P *p, uf_pk *target, uf_pk_kind want, uf_pk **out)
{
    if (target->kind == want || (want == UF_PK_LIST && target->kind == UF_PK_SET)) {
        *out = target;
        return UF_OK;
    }
    if (target->kind == UF_PK_OBJECT) {
        if (!target->u.obj.items) {
            uf_status s = new_node(p, want, &target->u.obj.items);
            if (s)
                return s;
        }
        if (target->u.obj.items->kind == want) {
            *out = target->u.obj.items;
            return UF_OK;
        }
    }
    return fail(p, UF_ERR_FORMAT, "cannot add items to a %s", uf_pk_kind_name(target->kind));
}

static uf_status add_items(P *p, uf_pk *target, uf_pk **items, size_t n, uf_pk_kind want)
{
    uf_pk *c = NULL;
    uf_status s = fill_target(p, target, want, &c);
    if (s)
        return s;
    if (want == UF_PK_DICT && n % 2)
        return fail(p, UF_ERR_FORMAT, "odd number of entries for SETITEMS");
    for (size_t i = 0; i < n; i++)
        if (pk_seq_push(c, items[i]))
            return oom(p, 0);
    return UF_OK;
}

static uf_status build(P *p)
{
    uf_pk *state = NULL, *target = NULL;
    uf_status s;
    if ((s = pop(p, &state)) || (s = top(p, &target)))
        return s;
    if (target->kind == UF_PK_OBJECT)
        target->u.obj.state = state;
    else if (target->kind == UF_PK_CALL)
        target->u.call.state = state;
    else if (target->kind != UF_PK_DICT) /* an OrderedDict's own attributes: nothing we read */
        return fail(p, UF_ERR_FORMAT, "BUILD on a %s", uf_pk_kind_name(target->kind));
    return UF_OK;
}

static uf_status global_op(P *p, int stack_form)
{
    const char *m = NULL, *n = NULL;
    size_t ml = 0, nl = 0;
    uf_pk *g = NULL;
    uf_status s;
    if (stack_form) {
        uf_pk *nm = NULL, *mm = NULL;
        if ((s = pop(p, &nm)) || (s = pop(p, &mm)))
            return s;
        if (mm->kind != UF_PK_STR || nm->kind != UF_PK_STR)
            return fail(p, UF_ERR_FORMAT, "STACK_GLOBAL needs two strings");
        m = mm->u.s.p, ml = mm->u.s.n, n = nm->u.s.p, nl = nm->u.s.n;
    } else if ((s = line(p, &m, &ml)) || (s = line(p, &n, &nl)))
        return s;
    if ((s = located(p, pk_global(p->d, m, ml, n, nl, &g, p->err))))
        return s;
    return push(p, g);
}

static uf_status call_op(P *p, uf_pk *fn, uf_pk *args)
{
    uf_pk *r = NULL;
    uf_status s = located(p, pk_call(p->d, fn, args, &r, p->err));
    return s ? s : push(p, r);
}

static uf_status step(P *p, int *done);

uf_status uf_pk_parse(uf_pk_doc *d, const void *buf, size_t len, size_t base_offset, uf_pk **root,
                      size_t *used, uf_error *err)
{
    *root = NULL;
    if (used)
        *used = 0;
    P p = {.d = d, .b = buf, .len = buf ? len : 0, .base = base_offset, .err = err, .op = -1};
    /* allocated up front: pop_mark hands out stack + mark even before anything was pushed */
    if (!(p.stack = malloc(sizeof *p.stack * (p.scap = d->lim.max_stack < 64 ? d->lim.max_stack : 64))))
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    uf_status s = UF_OK;
    int done = 0;
    while (!s && !done) {
        p.op_pos = p.pos;
        if (p.pos >= p.len) {
            s = uf_err(err, UF_ERR_FORMAT, "pickle byte %zu: truncated: no STOP opcode",
                       p.base + p.pos);
            break;
        }
        p.op = p.b[p.pos++];
        s = step(&p, &done);
    }
    if (!s) {
        *root = p.stack[p.sp - 1];
        if (used)
            *used = p.pos;
    }
    free(p.stack);
    free(p.marks);
    free(p.memo);
    return s;
}

static uf_status step(P *p, int *done)
{
    uf_pk *a = NULL, *b = NULL, *c = NULL, **items = NULL;
    size_t n = 0;
    const char *s = NULL;
    uf_status st;
    int op = p->op;
    switch (op) {
    case OP_PROTO:
        if ((st = need(p, 1)))
            return st;
        if (p->b[p->pos] > 5)
            return fail(p, UF_ERR_UNSUPPORTED, "pickle protocol %d (at most 5 is known)", p->b[p->pos]);
        p->pos++;
        return UF_OK;
    case OP_FRAME: /* a read-ahead hint: the opcodes inside are read as usual */
        if ((st = need(p, 8)))
            return st;
        if (pk_le(p->b + p->pos, 8) > p->len - p->pos - 8)
            return fail(p, UF_ERR_FORMAT, "frame longer than the bytes left");
        p->pos += 8;
        return UF_OK;
    case OP_STOP:
        if ((st = pop(p, &a)))
            return st;
        p->stack[p->sp++] = a; /* leave it for uf_pk_parse */
        *done = 1;
        return UF_OK;
    case OP_MARK:
        if (p->nm == p->mcap) {
            if (p->mcap >= p->d->lim.max_marks)
                return fail(p, UF_ERR_LIMIT, "more than %zu nested MARKs (limit)", p->d->lim.max_marks);
            size_t cap = p->mcap ? 2 * p->mcap : 16;
            size_t *m = realloc(p->marks, cap * sizeof *m);
            if (!m)
                return oom(p, 0);
            p->marks = m;
            p->mcap = cap;
        }
        p->marks[p->nm++] = p->sp;
        return UF_OK;
    case OP_POP:
        if (avail(p))
            return pop(p, &a);
        return pop_mark(p, &items, &n);
    case OP_POP_MARK: return pop_mark(p, &items, &n);
    case OP_DUP: return (st = top(p, &a)) ? st : push(p, a);
    case OP_NONE: return push_new(p, UF_PK_NONE, &a);
    case OP_NEWTRUE:
    case OP_NEWFALSE:
        if ((st = push_new(p, UF_PK_BOOL, &a)))
            return st;
        a->u.i = op == OP_NEWTRUE;
        return UF_OK;
    case OP_BININT:
        if ((st = need(p, 4)))
            return st;
        p->pos += 4;
        return push_int(p, (int32_t)(uint32_t)pk_le(p->b + p->pos - 4, 4));
    case OP_BININT1:
        if ((st = need(p, 1)))
            return st;
        return push_int(p, p->b[p->pos++]);
    case OP_BININT2:
        if ((st = need(p, 2)))
            return st;
        p->pos += 2;
        return push_int(p, (int64_t)pk_le(p->b + p->pos - 2, 2));
    case OP_LONG1: return long_bytes(p, 1);
    case OP_LONG4: return long_bytes(p, 4);
    case OP_INT:
    case OP_LONG: {
        int64_t v;
        if ((st = line(p, &s, &n)))
            return st;
        if (pk_decimal(s, n, &v))
            return fail(p, UF_ERR_FORMAT, "integer operand is not a 64-bit decimal");
        if (op == OP_INT && n == 2 && s[0] == '0' && v <= 1) /* protocol 0's False / True */
            return (st = push_new(p, UF_PK_BOOL, &a)) ? st : ((a->u.i = v), UF_OK);
        return push_int(p, v);
    }
    case OP_FLOAT: {
        double v;
        if ((st = line(p, &s, &n)))
            return st;
        if (pk_float_text(s, n, &v))
            return fail(p, UF_ERR_FORMAT, "float operand is not a number");
        if ((st = push_new(p, UF_PK_FLOAT, &a)))
            return st;
        a->u.f = v;
        return UF_OK;
    }
    case OP_BINFLOAT:
        if ((st = need(p, 8)) || (st = push_new(p, UF_PK_FLOAT, &a)))
            return st;
        a->u.f = pk_be_double(p->b + p->pos);
        p->pos += 8;
        return UF_OK;
    case OP_SHORT_BINUNICODE: return blob(p, 1, UF_PK_STR);
    case OP_BINUNICODE: return blob(p, 4, UF_PK_STR);
    case OP_BINUNICODE8: return blob(p, 8, UF_PK_STR);
    /* Python 2 str: torch.load decodes them as UTF-8 text */
    case OP_SHORT_BINSTRING: return blob(p, 1, UF_PK_STR);
    case OP_BINSTRING:
        if ((st = need(p, 4)))
            return st;
        if (p->b[p->pos + 3] & 0x80)
            return fail(p, UF_ERR_FORMAT, "negative BINSTRING length");
        return blob(p, 4, UF_PK_STR);
    case OP_SHORT_BINBYTES: return blob(p, 1, UF_PK_BYTES);
    case OP_BINBYTES: return blob(p, 4, UF_PK_BYTES);
    case OP_BINBYTES8: return blob(p, 8, UF_PK_BYTES);
    case OP_BYTEARRAY8: return blob(p, 8, UF_PK_BYTES);
    case OP_STRING: return (st = line(p, &s, &n)) ? st : text_string(p, s, n);
    case OP_UNICODE: return (st = line(p, &s, &n)) ? st : text_unicode(p, s, n);
    case OP_EMPTY_TUPLE: return push_new(p, UF_PK_TUPLE, &a);
    case OP_EMPTY_LIST: return push_new(p, UF_PK_LIST, &a);
    case OP_EMPTY_DICT: return push_new(p, UF_PK_DICT, &a);
    case OP_EMPTY_SET: return push_new(p, UF_PK_SET, &a);
    case OP_TUPLE: return seq_from_mark(p, UF_PK_TUPLE);
    case OP_LIST: return seq_from_mark(p, UF_PK_LIST);
    case OP_DICT: return seq_from_mark(p, UF_PK_DICT);
    case OP_FROZENSET: return seq_from_mark(p, UF_PK_FROZENSET);
    case OP_TUPLE1: return tuple_n(p, 1);
    case OP_TUPLE2: return tuple_n(p, 2);
    case OP_TUPLE3: return tuple_n(p, 3);
    case OP_APPEND:
        if ((st = pop(p, &a)) || (st = top(p, &b)))
            return st;
        return add_items(p, b, &a, 1, UF_PK_LIST);
    case OP_APPENDS:
    case OP_SETITEMS:
    case OP_ADDITEMS:
        if ((st = pop_mark(p, &items, &n)) || (st = top(p, &b)))
            return st;
        if (op == OP_ADDITEMS && b->kind != UF_PK_SET)
            return fail(p, UF_ERR_FORMAT, "ADDITEMS on a %s", uf_pk_kind_name(b->kind));
        return add_items(p, b, items, n, op == OP_SETITEMS ? UF_PK_DICT : UF_PK_LIST);
    case OP_SETITEM: {
        uf_pk *kv[2] = {NULL, NULL};
        if ((st = pop(p, &kv[1])) || (st = pop(p, &kv[0])) || (st = top(p, &b)))
            return st;
        return add_items(p, b, kv, 2, UF_PK_DICT);
    }
    case OP_PUT: {
        int64_t v;
        if ((st = line(p, &s, &n)))
            return st;
        if (pk_decimal(s, n, &v) || v < 0)
            return fail(p, UF_ERR_FORMAT, "PUT operand is not a memo index");
        return memo_put(p, (uint64_t)v);
    }
    case OP_BINPUT:
        if ((st = need(p, 1)))
            return st;
        return memo_put(p, p->b[p->pos++]);
    case OP_LONG_BINPUT:
        if ((st = need(p, 4)))
            return st;
        p->pos += 4;
        return memo_put(p, pk_le(p->b + p->pos - 4, 4));
    case OP_MEMOIZE: return memo_put(p, p->memo_count);
    case OP_GET: {
        int64_t v;
        if ((st = line(p, &s, &n)))
            return st;
        if (pk_decimal(s, n, &v) || v < 0)
            return fail(p, UF_ERR_FORMAT, "GET operand is not a memo index");
        return memo_get(p, (uint64_t)v);
    }
    case OP_BINGET:
        if ((st = need(p, 1)))
            return st;
        return memo_get(p, p->b[p->pos++]);
    case OP_LONG_BINGET:
        if ((st = need(p, 4)))
            return st;
        p->pos += 4;
        return memo_get(p, pk_le(p->b + p->pos - 4, 4));
    case OP_GLOBAL: return global_op(p, 0);
    case OP_STACK_GLOBAL: return global_op(p, 1);
    case OP_REDUCE:
        if ((st = pop(p, &b)) || (st = pop(p, &a)))
            return st;
        return call_op(p, a, b);
    case OP_INST: { /* Python 0/1: class from the operand lines, arguments from the MARK */
        uf_pk *g = NULL;
        const char *m = NULL, *nm = NULL;
        size_t ml = 0, nl = 0;
        if ((st = line(p, &m, &ml)) || (st = line(p, &nm, &nl)))
            return st;
        if ((st = located(p, pk_global(p->d, m, ml, nm, nl, &g, p->err))) ||
            (st = seq_from_mark(p, UF_PK_TUPLE)) || (st = pop(p, &b)))
            return st;
        return call_op(p, g, b);
    }
    case OP_OBJ: /* MARK class args... OBJ */
        if ((st = seq_from_mark(p, UF_PK_TUPLE)) || (st = pop(p, &b)))
            return st;
        if (b->u.seq.n == 0)
            return fail(p, UF_ERR_FORMAT, "OBJ without a class");
        if ((st = new_node(p, UF_PK_TUPLE, &c)))
            return st;
        for (size_t i = 1; i < b->u.seq.n; i++)
            if (pk_seq_push(c, b->u.seq.v[i]))
                return oom(p, 0);
        return call_op(p, b->u.seq.v[0], c);
    case OP_NEWOBJ:
    case OP_NEWOBJ_EX: {
        uf_pk *kw = NULL, *r = NULL;
        if (op == OP_NEWOBJ_EX && (st = pop(p, &kw)))
            return st;
        if ((st = pop(p, &b)) || (st = pop(p, &a)))
            return st;
        if ((st = located(p, pk_newobj(p->d, a, b, kw, &r, p->err))))
            return st;
        return push(p, r);
    }
    case OP_BUILD: return build(p);
    case OP_PERSID:
    case OP_BINPERSID:
        if (!p->d->o.allow_persid)
            return fail(p, UF_ERR_FORMAT, "a persistent id, but nothing to resolve it against");
        if (op == OP_PERSID) {
            if ((st = line(p, &s, &n)) || (st = push_blob(p, UF_PK_STR, s, n)))
                return st;
        }
        if ((st = pop(p, &a)) || (st = new_node(p, UF_PK_PERSID, &b)))
            return st;
        b->u.persid.pid = a;
        if (p->d->o.on_persid && (st = located(p, p->d->o.on_persid(p->d->o.ud, b, p->err))))
            return st;
        return push(p, b);
    case OP_EXT1:
    case OP_EXT2:
    case OP_EXT4:
        return fail(p, UF_ERR_UNSUPPORTED, "extension registry codes are not supported");
    case OP_NEXT_BUFFER:
    case OP_READONLY_BUFFER:
        return fail(p, UF_ERR_UNSUPPORTED, "out-of-band buffers are not supported");
    }
    return fail(p, UF_ERR_FORMAT, "unknown opcode 0x%02x", op);
}
