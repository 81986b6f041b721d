/* pickle_policy.c — which globals a pickle may name and what a call it asks for becomes
 * (the rules in pickle.h). Nothing here imports or calls anything: a call is either turned
 * into data (a container, an inert object, a recorded call for the caller) or refused. */
#include "core/internal.h"
#include "io/pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Modules whose names have no business in a checkpoint: they run programs, load code or touch
 * the system. Any name in them (or their submodules) is refused, called or not. */
static const char *const deny_modules[] = {
    "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "ctypes", "_ctypes", "cffi",
    "importlib", "imp", "runpy", "pty", "pickle", "_pickle", "cPickle", "marshal", "code",
    "codeop", "compileall", "py_compile", "commands", "popen2", "multiprocessing", "concurrent",
    "asyncio", "webbrowser", "signal", "_thread", "thread", "threading", "tempfile", "io", "_io",
    "pdb", "bdb", "timeit", "trace", "profile", "cProfile", "shelve", "dbm", "sqlite3", "urllib",
    "urllib2", "http", "httplib", "ftplib", "smtplib", "telnetlib", "xmlrpc", "zipimport",
    "pkgutil", "site", "sysconfig", "distutils", "setuptools", "pip", "ensurepip", "venv",
    "platform", "select", "selectors", "mmap", "resource", "atexit", "faulthandler", "ssl",
    "getpass", "pwd", "grp", "crypt", "spwd", "fcntl", "termios", "tty", "readline",
    "rlcompleter", "gc", "nturl2path", "zipfile", "tarfile", "glob", "fileinput", "linecache",
    "logging", "syslog", "ptyprocess", "pexpect", "sh",
};

/* Parts of torch that load or compile code (torch.hub.load, torch.package, torch.jit.load, ...). */
static const char *const deny_prefixes[] = {
    "torch.hub", "torch.package", "torch.jit", "torch.utils.cpp_extension", "torch._dynamo",
    "torch.distributed.rpc",
};

/* The builtins a data pickle legitimately names: types, getattr (enums), type (NoneType). */
static const char *const builtin_ok[] = {
    "set", "frozenset", "bytearray", "bytes", "slice", "complex", "range", "object", "int",
    "float", "str", "bool", "dict", "list", "tuple", "type", "getattr", "NoneType", "Ellipsis",
    "NotImplemented", "unicode", "long", "basestring",
};

static int in_list(const char *s, size_t n, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strlen(list[i]) == n && memcmp(list[i], s, n) == 0)
            return 1;
    return 0;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int is_builtins(const char *module)
{
    return strcmp(module, "builtins") == 0 || strcmp(module, "__builtin__") == 0;
}

static int is_copyreg(const char *module)
{
    return strcmp(module, "copyreg") == 0 || strcmp(module, "copy_reg") == 0;
}

const char *uf_pk_refused_global(const char *module, const char *name)
{
    size_t top = strcspn(module, ".");
    if (in_list(module, top, deny_modules, COUNT(deny_modules)))
        return "its module can run programs or touch the system";
    for (size_t i = 0; i < COUNT(deny_prefixes); i++) {
        size_t l = strlen(deny_prefixes[i]);
        if (strncmp(module, deny_prefixes[i], l) == 0 && (module[l] == 0 || module[l] == '.'))
            return "it loads or compiles code";
    }
    if (strcmp(module, "torch.serialization") == 0 && strcmp(name, "_get_layout") != 0)
        return "it loads checkpoints, and with them their code";
    if (is_builtins(module)) {
        if (!in_list(name, strlen(name), builtin_ok, COUNT(builtin_ok)))
            return "a builtin that can run code or reach the interpreter";
        return NULL;
    }
    /* __import__, __builtins__, __globals__, __subclasses__, ...: the ways out of a name. */
    for (const char *p = name; *p;) {
        size_t l = strcspn(p, ".");
        if (l >= 2 && p[0] == '_' && p[1] == '_' &&
            !(is_copyreg(module) && (l == 10 && !memcmp(p, "__newobj__", 10))) &&
            !(is_copyreg(module) && (l == 13 && !memcmp(p, "__newobj_ex__", 13))))
            return "a dunder name reaches interpreter internals";
        p += l + (p[l] == '.');
    }
    for (const char *p = module; *p;) {
        size_t l = strcspn(p, ".");
        if (l >= 2 && p[0] == '_' && p[1] == '_' && !is_builtins(module) &&
            strcmp(module, "__main__") != 0) /* classes defined in a script: inert data too */
            return "a dunder module name reaches interpreter internals";
        p += l + (p[l] == '.');
    }
    return NULL;
}

uf_status pk_global(uf_pk_doc *d, const char *module, size_t ml, const char *name, size_t nl,
                    uf_pk **out, uf_error *err)
{
    if (ml == 0 || nl == 0 || memchr(module, 0, ml) || memchr(name, 0, nl))
        return uf_err(err, UF_ERR_FORMAT, "malformed global name");
    int lim;
    uf_pk *g = pk_node(d, UF_PK_GLOBAL, &lim);
    char *m = g ? pk_bytes(d, module, ml) : NULL;
    char *n = m ? pk_bytes(d, name, nl) : NULL;
    if (!n)
        return lim ? uf_err(err, UF_ERR_LIMIT, "more than %zu objects", d->lim.max_nodes)
                   : uf_err(err, UF_ERR_NOMEM, "out of memory");
    const char *why = uf_pk_refused_global(m, n);
    if (why)
        return uf_err(err, UF_ERR_FORMAT,
                      "refusing the global '%s.%s' (%s): a real unpickler such as torch.load "
                      "would import it and could run it",
                      m, n, why);
    g->u.g.module = m;
    g->u.g.name = n;
    *out = g;
    return UF_OK;
}

/* ---- calls ---------------------------------------------------------------------------------- */

static uf_status oom(uf_pk_doc *d, int lim, uf_error *err)
{
    return lim ? uf_err(err, UF_ERR_LIMIT, "more than %zu objects", d->lim.max_nodes)
               : uf_err(err, UF_ERR_NOMEM, "out of memory");
}

static uf_pk *arg(const uf_pk *args, size_t i)
{
    return args && args->kind == UF_PK_TUPLE && i < args->u.seq.n ? args->u.seq.v[i] : NULL;
}

static size_t nargs(const uf_pk *args) { return args ? args->u.seq.n : 0; }

static int is_literal(const uf_pk *p)
{
    return p->kind == UF_PK_NONE || p->kind == UF_PK_BOOL || p->kind == UF_PK_INT ||
           p->kind == UF_PK_BIGINT || p->kind == UF_PK_FLOAT || p->kind == UF_PK_STR ||
           p->kind == UF_PK_BYTES;
}

static int is_identifier(const uf_pk *p)
{
    if (p->kind != UF_PK_STR || p->u.s.n == 0 || p->u.s.n > 256)
        return 0;
    for (size_t i = 0; i < p->u.s.n; i++) {
        char c = p->u.s.p[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (i && c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* A container from an iterable argument: a list/tuple/set of items, or (dicts) of pairs. */
static uf_status fill(uf_pk_doc *d, uf_pk *dst, const uf_pk *src, int pairs, uf_error *err)
{
    if (!src)
        return UF_OK;
    if (pairs && src->kind == UF_PK_DICT) {
        for (size_t i = 0; i < src->u.seq.n; i++)
            if (pk_seq_push(dst, src->u.seq.v[i]))
                return oom(d, 0, err);
        return UF_OK;
    }
    if (src->kind != UF_PK_LIST && src->kind != UF_PK_TUPLE && src->kind != UF_PK_SET &&
        src->kind != UF_PK_FROZENSET)
        return uf_err(err, UF_ERR_FORMAT, "a container built from a %s", uf_pk_kind_name(src->kind));
    for (size_t i = 0; i < src->u.seq.n; i++) {
        const uf_pk *it = src->u.seq.v[i];
        if (!pairs) {
            if (pk_seq_push(dst, src->u.seq.v[i]))
                return oom(d, 0, err);
            continue;
        }
        if ((it->kind != UF_PK_TUPLE && it->kind != UF_PK_LIST) || it->u.seq.n != 2)
            return uf_err(err, UF_ERR_FORMAT, "a dict built from an item that is not a pair");
        if (pk_seq_push(dst, it->u.seq.v[0]) || pk_seq_push(dst, it->u.seq.v[1]))
            return oom(d, 0, err);
    }
    return UF_OK;
}

static uf_status container(uf_pk_doc *d, uf_pk_kind k, const uf_pk *src, uf_pk **out, uf_error *err)
{
    int lim;
    uf_pk *c = pk_node(d, k, &lim);
    if (!c)
        return oom(d, lim, err);
    *out = c;
    return fill(d, c, src, k == UF_PK_DICT, err);
}

static uf_status object(uf_pk_doc *d, uf_pk *cls, uf_pk *args, uf_pk *kwargs, uf_pk **out,
                        uf_error *err)
{
    int lim;
    uf_pk *o = pk_node(d, UF_PK_OBJECT, &lim);
    if (!o)
        return oom(d, lim, err);
    if (!args && !(args = pk_node(d, UF_PK_TUPLE, &lim)))
        return oom(d, lim, err);
    o->u.obj.cls = cls;
    o->u.obj.args = args;
    o->u.obj.kwargs = kwargs;
    *out = o;
    return UF_OK;
}

/* Constructors of plain values: making them runs no code from the checkpoint. */
static const char *const inert_ctors[] = {
    "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePath",
    "pathlib.PurePosixPath", "pathlib.PureWindowsPath", "datetime.datetime", "datetime.date",
    "datetime.time", "datetime.timedelta", "datetime.timezone", "functools.partial",
    "decimal.Decimal", "fractions.Fraction", "uuid.UUID", "builtins.complex", "builtins.slice",
    "builtins.range", "__builtin__.complex", "__builtin__.slice", "__builtin__.range",
    "numpy.dtype", "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
};

static int named(const uf_pk *g, const char *full)
{
    size_t ml = strlen(g->u.g.module);
    return strncmp(full, g->u.g.module, ml) == 0 && full[ml] == '.' &&
           strcmp(full + ml + 1, g->u.g.name) == 0;
}

static int in_names(const uf_pk *g, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (named(g, list[i]))
            return 1;
    return 0;
}

static uf_status composed_global(uf_pk_doc *d, const uf_pk *base, const uf_pk *attr, uf_pk **out,
                                 uf_error *err)
{
    size_t bl = strlen(base->u.g.name);
    char *name = malloc(bl + 1 + attr->u.s.n + 1);
    if (!name)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    memcpy(name, base->u.g.name, bl);
    name[bl] = '.';
    memcpy(name + bl + 1, attr->u.s.p, attr->u.s.n);
    name[bl + 1 + attr->u.s.n] = 0;
    uf_status s = pk_global(d, base->u.g.module, strlen(base->u.g.module), name, strlen(name), out,
                            err);
    free(name);
    return s;
}

uf_status pk_call(uf_pk_doc *d, uf_pk *fn, uf_pk *args, uf_pk **out, uf_error *err)
{
    if (!fn || fn->kind != UF_PK_GLOBAL)
        return uf_err(err, UF_ERR_FORMAT,
                      "refusing a call of a %s (only named callables are understood)",
                      fn ? uf_pk_kind_name(fn->kind) : "nothing");
    if (!args || args->kind != UF_PK_TUPLE)
        return uf_err(err, UF_ERR_FORMAT, "call arguments of '%s.%s' are a %s, not a tuple",
                      fn->u.g.module, fn->u.g.name, args ? uf_pk_kind_name(args->kind) : "nothing");
    const char *m = fn->u.g.module, *n = fn->u.g.name;
    size_t na = nargs(args);
    uf_pk *a0 = arg(args, 0), *a1 = arg(args, 1);
    int bi = is_builtins(m);

    /* a. containers and bytes */
    if ((!strcmp(m, "collections") && (!strcmp(n, "OrderedDict") || !strcmp(n, "defaultdict"))) ||
        (bi && !strcmp(n, "dict")))
        return container(d, UF_PK_DICT, strcmp(n, "defaultdict") ? a0 : NULL, out, err);
    if (bi && (!strcmp(n, "list") || !strcmp(n, "tuple") || !strcmp(n, "set") ||
               !strcmp(n, "frozenset")))
        return container(d, !strcmp(n, "list") ? UF_PK_LIST : !strcmp(n, "tuple") ? UF_PK_TUPLE
                            : !strcmp(n, "set") ? UF_PK_SET : UF_PK_FROZENSET,
                         a0, out, err);
    if ((bi && (!strcmp(n, "bytes") || !strcmp(n, "bytearray"))) ||
        (!strcmp(m, "_codecs") && !strcmp(n, "encode"))) {
        int lim;
        uf_pk *b = pk_node(d, UF_PK_BYTES, &lim);
        if (!b)
            return oom(d, lim, err);
        /* _codecs.encode(str, 'latin1'): protocol 2's bytes; the text holds code points < 256 */
        if (a0 && (a0->kind == UF_PK_STR || a0->kind == UF_PK_BYTES)) {
            size_t o = 0;
            char *p = pk_bytes(d, NULL, a0->u.s.n);
            if (!p)
                return oom(d, 0, err);
            for (size_t i = 0; i < a0->u.s.n; i++) {
                unsigned char c = (unsigned char)a0->u.s.p[i];
                if (a0->kind == UF_PK_STR && c >= 0xC2 && c <= 0xC3 && i + 1 < a0->u.s.n) {
                    p[o++] = (char)(((c & 3u) << 6) | ((unsigned char)a0->u.s.p[++i] & 0x3Fu));
                } else
                    p[o++] = (char)c;
            }
            p[o] = 0;
            b->u.s.p = p;
            b->u.s.n = o;
        } else
            b->u.s.p = "";
        *out = b;
        return UF_OK;
    }
    /* b. copyreg: what object.__reduce_ex__ emits for plain classes */
    if (is_copyreg(m) && !strcmp(n, "_reconstructor")) {
        if (na != 3 || a0->kind != UF_PK_GLOBAL)
            return uf_err(err, UF_ERR_FORMAT, "copyreg._reconstructor needs (class, base, state)");
        uf_status s = object(d, a0, NULL, NULL, out, err);
        /* a non-None base state is the value of a builtin base type (e.g. a dict subclass) */
        if (s == UF_OK && arg(args, 2)->kind != UF_PK_NONE)
            (*out)->u.obj.items = arg(args, 2);
        return s;
    }
    if (is_copyreg(m) && (!strcmp(n, "__newobj__") || !strcmp(n, "__newobj_ex__"))) {
        if (na < 1 || a0->kind != UF_PK_GLOBAL)
            return uf_err(err, UF_ERR_FORMAT, "copyreg.%s needs a class first", n);
        if (!strcmp(n, "__newobj_ex__"))
            return na == 3 ? pk_newobj(d, a0, a1, arg(args, 2), out, err)
                           : uf_err(err, UF_ERR_FORMAT, "copyreg.__newobj_ex__ needs 3 arguments");
        int lim;
        uf_pk *rest = pk_node(d, UF_PK_TUPLE, &lim);
        if (!rest)
            return oom(d, lim, err);
        for (size_t i = 1; i < na; i++)
            if (pk_seq_push(rest, args->u.seq.v[i]))
                return oom(d, 0, err);
        return pk_newobj(d, a0, rest, NULL, out, err);
    }
    /* c. getattr(global, "NAME"): an enum member or nested class, by name */
    if (bi && !strcmp(n, "getattr")) {
        if (na == 2 && a0->kind == UF_PK_GLOBAL && is_identifier(a1))
            return composed_global(d, a0, a1, out, err);
        return uf_err(err, UF_ERR_FORMAT,
                      "refusing getattr(%s, ...): only getattr(<class>, \"NAME\") (an enum member) "
                      "is understood",
                      a0 ? uf_pk_kind_name(a0->kind) : "nothing");
    }
    if (bi && !strcmp(n, "type")) {
        if (na == 1 && (a0->kind == UF_PK_NONE || a0->kind == UF_PK_GLOBAL)) {
            const char *tn = a0->kind == UF_PK_NONE ? "NoneType" : a0->u.g.name;
            return pk_global(d, "builtins", 8, tn, strlen(tn), out, err);
        }
        return uf_err(err, UF_ERR_FORMAT, "refusing builtins.type(...) with %zu arguments", na);
    }
    /* d. the caller's own callables */
    for (size_t i = 0; i < d->o.n_callables; i++)
        if (named(fn, d->o.callables[i])) {
            int lim;
            uf_pk *c = pk_node(d, UF_PK_CALL, &lim);
            if (!c)
                return oom(d, lim, err);
            c->u.call.fn = fn;
            c->u.call.args = args;
            *out = c;
            return UF_OK;
        }
    /* e. value constructors */
    if (in_names(fn, inert_ctors, COUNT(inert_ctors)))
        return object(d, fn, args, NULL, out, err);
    /* f. an enum member or value class from one literal */
    const char *last = strrchr(n, '.');
    last = last ? last + 1 : n;
    if (na == 1 && is_literal(a0) && *last >= 'A' && *last <= 'Z')
        return object(d, fn, args, NULL, out, err);
    return uf_err(err, UF_ERR_FORMAT,
                  "refusing to call '%s.%s' with %zu argument%s: a real unpickler such as "
                  "torch.load would run it; uflow never runs code from a checkpoint",
                  m, n, na, na == 1 ? "" : "s");
}

uf_status pk_newobj(uf_pk_doc *d, uf_pk *cls, uf_pk *args, uf_pk *kwargs, uf_pk **out,
                    uf_error *err)
{
    if (!cls || cls->kind != UF_PK_GLOBAL)
        return uf_err(err, UF_ERR_FORMAT, "NEWOBJ of a %s, not a class",
                      cls ? uf_pk_kind_name(cls->kind) : "nothing");
    if (!args || args->kind != UF_PK_TUPLE)
        return uf_err(err, UF_ERR_FORMAT, "NEWOBJ arguments of '%s.%s' are not a tuple",
                      cls->u.g.module, cls->u.g.name);
    if (kwargs && kwargs->kind != UF_PK_DICT)
        return uf_err(err, UF_ERR_FORMAT, "NEWOBJ_EX keyword arguments are not a dict");
    const char *m = cls->u.g.module, *n = cls->u.g.name;
    /* cls.__new__ of a builtin container is an empty container the stream then fills */
    if ((!strcmp(m, "collections") && (!strcmp(n, "OrderedDict") || !strcmp(n, "defaultdict"))) ||
        (is_builtins(m) && !strcmp(n, "dict")))
        return container(d, UF_PK_DICT, NULL, out, err);
    if (is_builtins(m) && (!strcmp(n, "list") || !strcmp(n, "set")))
        return container(d, !strcmp(n, "list") ? UF_PK_LIST : UF_PK_SET, NULL, out, err);
    return object(d, cls, args, kwargs, out, err);
}
