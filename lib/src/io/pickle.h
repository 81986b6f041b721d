/* pickle.h — a Python pickle reader that never executes anything.
 *
 * uf_pk_parse interprets the opcodes of pickle protocols 0-5 into an inert tree of uf_pk
 * nodes: numbers, strings, containers, and names ("globals") as data. No module is imported and
 * no callable is ever called; a call a real unpickler would make (REDUCE, INST, OBJ) is only
 * accepted in the shapes listed below, anything else is refused with an error naming the
 * callable. The rule (docs/model-format.md, "Security"):
 *
 *   1. Every global named by the stream (GLOBAL, STACK_GLOBAL, INST, and names composed by the
 *      getattr pattern) is checked by name first. Refused: any name in a module that runs
 *      programs or touches the system (os, posix, nt, subprocess, sys, shutil, socket, ctypes,
 *      importlib, runpy, pickle, marshal, multiprocessing, ...: uf_pk_refused_global), any
 *      builtins / __builtin__ name other than the plain data types (set, frozenset, bytearray,
 *      bytes, slice, complex, range, object, int, float, str, bool, dict, list, tuple, type,
 *      getattr, NoneType, Ellipsis, NotImplemented), and any dunder name component other than
 *      copyreg's __newobj__ / __newobj_ex__.
 *   2. A call (REDUCE, INST, OBJ) is accepted only when the callable is a global and one of:
 *      a. a container or bytes constructor this reader interprets: collections.OrderedDict,
 *         collections.defaultdict, builtins.dict/list/set/frozenset/bytearray/bytes,
 *         _codecs.encode (protocol 2 bytes);
 *      b. copyreg._reconstructor / __newobj__ / __newobj_ex__ -> an inert UF_PK_OBJECT of the
 *         named class (what __reduce_ex__ emits for plain classes);
 *      c. getattr(<global>, "NAME") -> the global <global>.NAME (how Python 3.11+ pickles enum
 *         members and nested classes); type(None/Ellipsis/NotImplemented) likewise;
 *      d. one of the caller's uf_pk_opts.callables ("module.name", e.g. torch's tensor
 *         rebuilders) -> a UF_PK_CALL node the caller interprets;
 *      e. a known inert value constructor: pathlib paths, datetime types, functools.partial,
 *         numpy's array/scalar/dtype reconstructors -> UF_PK_OBJECT;
 *      f. the enum / value-class shape: a CamelCase class (last name component starts with an
 *         upper-case letter) called with exactly one literal (None, bool, int, float, str,
 *         bytes) -> UF_PK_OBJECT (how enums pickle: InterpolationMode('bilinear')).
 *      Everything else — os.system(...), builtins.eval(...), subprocess.Popen(...),
 *      torch.load(...), a call of a non-global — is UF_ERR_FORMAT naming the callable.
 *   3. NEWOBJ / NEWOBJ_EX of a class not refused by rule 1 (Python would call cls.__new__ only)
 *      -> UF_PK_OBJECT; BUILD stores the state on it (Python would call __setstate__).
 *   4. EXT1/2/4 (extension registry) and NEXT_BUFFER / READONLY_BUFFER are refused.
 *
 * Hard limits (uf_pk_limits) bound memory and time on hostile input: nodes, memo size, stack
 * size, MARK depth. Every length is checked against the bytes left before anything is read or
 * allocated. The tree may share nodes (memo) and even contain cycles (a list appended to
 * itself): walkers must be bounded — use uf_pk_walk_begin / uf_pk_visit.
 */
#ifndef UF_PICKLE_H
#define UF_PICKLE_H

#include "uflow.h"

#include <stddef.h>
#include <stdint.h>

typedef enum uf_pk_kind {
    UF_PK_NONE = 0,
    UF_PK_BOOL,      /* u.i 0 / 1 */
    UF_PK_INT,       /* u.i */
    UF_PK_BIGINT,    /* u.s: little-endian two's complement bytes (more than 8) */
    UF_PK_FLOAT,     /* u.f */
    UF_PK_STR,       /* u.s: UTF-8 as stored (not validated), NUL-terminated copy */
    UF_PK_BYTES,     /* u.s */
    UF_PK_TUPLE,     /* u.seq */
    UF_PK_LIST,      /* u.seq */
    UF_PK_DICT,      /* u.seq: v[2i] = key, v[2i+1] = value, insertion order, duplicates kept */
    UF_PK_SET,       /* u.seq */
    UF_PK_FROZENSET, /* u.seq */
    UF_PK_GLOBAL,    /* u.g: a name such as ("collections", "OrderedDict") */
    UF_PK_OBJECT,    /* u.obj: an instance nobody constructed */
    UF_PK_CALL,      /* u.call: a call of one of the caller's callables, not made */
    UF_PK_PERSID     /* u.persid: a persistent id (torch: a storage reference) */
} uf_pk_kind;

typedef struct uf_pk uf_pk;
struct uf_pk {
    uf_pk_kind kind;
    uint32_t seen; /* walk generation, see uf_pk_visit */
    union {
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct {
            uf_pk **v;
            size_t n, cap;
        } seq;
        struct {
            const char *module, *name;
        } g;
        struct {
            uf_pk *cls;    /* UF_PK_GLOBAL */
            uf_pk *args;   /* UF_PK_TUPLE (NEWOBJ / constructor arguments) */
            uf_pk *kwargs; /* UF_PK_DICT (NEWOBJ_EX) or NULL */
            uf_pk *state;  /* BUILD state or NULL */
            uf_pk *items;  /* UF_PK_DICT / UF_PK_LIST filled by SETITEM(S) / APPEND(S), or NULL */
        } obj;
        struct {
            uf_pk *fn;    /* UF_PK_GLOBAL, one of uf_pk_opts.callables */
            uf_pk *args;  /* UF_PK_TUPLE */
            uf_pk *state; /* BUILD state or NULL */
        } call;
        struct {
            uf_pk *pid;
        } persid;
    } u;
};

typedef struct uf_pk_limits {
    size_t max_nodes; /* nodes in one document (all its pickles); default 4M */
    size_t max_memo;  /* largest memo index + 1; default 4M */
    size_t max_stack; /* stack entries; default 1M */
    size_t max_marks; /* open MARKs; default 4096 */
} uf_pk_limits;

typedef struct uf_pk_opts {
    uf_pk_limits limits;             /* zero fields take the defaults */
    const char *const *callables;    /* "module.name" of calls to record as UF_PK_CALL */
    size_t n_callables;
    int allow_persid;                /* 0: PERSID / BINPERSID are an error */
    /* Called for every persistent id as it is read (may be NULL); an error stops the parse. */
    uf_status (*on_persid)(void *ud, uf_pk *persid, uf_error *err);
    void *ud;
} uf_pk_opts;

/* Owner of the nodes of one or more pickles (arena). */
typedef struct uf_pk_doc uf_pk_doc;

uf_status uf_pk_doc_new(const uf_pk_opts *o, uf_pk_doc **out, uf_error *err);
void uf_pk_doc_free(uf_pk_doc *d);

/* Parse one pickle from buf[0..len) up to its STOP; *used = bytes consumed (the next pickle of
 * a stream starts there). Errors name the byte offset (plus base_offset, for messages) and the
 * opcode. *root is owned by d. */
uf_status uf_pk_parse(uf_pk_doc *d, const void *buf, size_t len, size_t base_offset, uf_pk **root,
                      size_t *used, uf_error *err);

/* The reason rule 1 refuses module.name, or NULL when the name may appear. */
const char *uf_pk_refused_global(const char *module, const char *name);

/* ---- reading the tree ---------------------------------------------------------------------- */

/* Python truthiness is not needed; these answer "is it this, exactly". */
int uf_pk_is_str(const uf_pk *p, const char *s);
int uf_pk_is_global(const uf_pk *p, const char *module, const char *name);
/* p is a global, or an object / call of a global, whose module starts with module_prefix and
 * whose name is `name` or ends with "." + name (nested classes). NULL module_prefix: any. */
int uf_pk_class_is(const uf_pk *p, const char *module_prefix, const char *name);
/* The class (UF_PK_OBJECT) or callable (UF_PK_CALL) global of p, or NULL. */
const uf_pk *uf_pk_class_of(const uf_pk *p);

/* dict[key] for a str key (the last assignment wins, as in Python); dicts are UF_PK_DICT or an
 * object's SETITEMS items. NULL when absent or not a dict. */
uf_pk *uf_pk_dict_get(const uf_pk *dict, const char *key);
/* dict[key] for an int key. */
uf_pk *uf_pk_dict_get_int(const uf_pk *dict, int64_t key);
/* The dict under p: p itself if a dict, an object's SETITEMS items, else NULL. */
const uf_pk *uf_pk_as_dict(const uf_pk *p);
/* An attribute of an inert object: its BUILD state dict (or (dict, slots) tuple) entry. */
uf_pk *uf_pk_attr(const uf_pk *obj, const char *name);

/* Numbers: int/bool/float as double; 0 when p is not a number. */
int uf_pk_number(const uf_pk *p, double *out);
int uf_pk_int(const uf_pk *p, int64_t *out);

/* Bounded walks over a tree that may share nodes or contain cycles: begin a walk (a new
 * generation), then uf_pk_visit returns 1 the first time a node is seen in this walk. */
void uf_pk_walk_begin(uf_pk_doc *d);
int uf_pk_visit(uf_pk_doc *d, uf_pk *p);

/* A short name of a node kind ("dict", "tuple", ...). */
const char *uf_pk_kind_name(uf_pk_kind k);

/* ---- internal to lib/src/io/pickle*.c ---------------------------------------------------------
 * The document arena (pickle_tree.c), the call rules (pickle_policy.c), the opcode set and the
 * text decoders (pickle_text.c) shared with the interpreter (pickle.c). Not for other modules. */

enum {
    OP_MARK = '(', OP_STOP = '.', OP_POP = '0', OP_POP_MARK = '1', OP_DUP = '2', OP_FLOAT = 'F',
    OP_INT = 'I', OP_BININT = 'J', OP_BININT1 = 'K', OP_LONG = 'L', OP_BININT2 = 'M',
    OP_NONE = 'N', OP_PERSID = 'P', OP_BINPERSID = 'Q', OP_REDUCE = 'R', OP_STRING = 'S',
    OP_BINSTRING = 'T', OP_SHORT_BINSTRING = 'U', OP_UNICODE = 'V', OP_BINUNICODE = 'X',
    OP_APPEND = 'a', OP_BUILD = 'b', OP_GLOBAL = 'c', OP_DICT = 'd', OP_EMPTY_DICT = '}',
    OP_APPENDS = 'e', OP_GET = 'g', OP_BINGET = 'h', OP_INST = 'i', OP_LONG_BINGET = 'j',
    OP_LIST = 'l', OP_EMPTY_LIST = ']', OP_OBJ = 'o', OP_PUT = 'p', OP_BINPUT = 'q',
    OP_LONG_BINPUT = 'r', OP_SETITEM = 's', OP_TUPLE = 't', OP_EMPTY_TUPLE = ')',
    OP_SETITEMS = 'u', OP_BINFLOAT = 'G', OP_BINBYTES = 'B', OP_SHORT_BINBYTES = 'C',
    OP_PROTO = 0x80, OP_NEWOBJ = 0x81, OP_EXT1 = 0x82, OP_EXT2 = 0x83, OP_EXT4 = 0x84,
    OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87, OP_NEWTRUE = 0x88, OP_NEWFALSE = 0x89,
    OP_LONG1 = 0x8a, OP_LONG4 = 0x8b, OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d,
    OP_BINBYTES8 = 0x8e, OP_EMPTY_SET = 0x8f, OP_ADDITEMS = 0x90, OP_FROZENSET = 0x91,
    OP_NEWOBJ_EX = 0x92, OP_STACK_GLOBAL = 0x93, OP_MEMOIZE = 0x94, OP_FRAME = 0x95,
    OP_BYTEARRAY8 = 0x96, OP_NEXT_BUFFER = 0x97, OP_READONLY_BUFFER = 0x98,
};

struct pk_nchunk;
struct pk_bchunk;

struct uf_pk_doc {
    uf_pk_opts o;
    uf_pk_limits lim;
    struct pk_nchunk *nodes;
    size_t n_nodes;
    struct pk_bchunk *bytes;
    uint32_t gen;
};

/* A new node of kind k (zeroed), or NULL when the node limit is reached or memory runs out
 * (*limit tells which). */
uf_pk *pk_node(uf_pk_doc *d, uf_pk_kind k, int *limit);
/* A NUL-terminated copy of n bytes in the arena, or NULL. */
char *pk_bytes(uf_pk_doc *d, const void *src, size_t n);
/* Append an item to a sequence node; -1 when memory runs out. */
int pk_seq_push(uf_pk *seq, uf_pk *item);

/* What a call fn(*args) becomes under the rules of pickle.h. On success *out is the result;
 * on refusal returns UF_ERR_FORMAT with a message (no position: the caller prefixes it). */
uf_status pk_call(uf_pk_doc *d, uf_pk *fn, uf_pk *args, uf_pk **out, uf_error *err);
/* NEWOBJ / NEWOBJ_EX of cls(*args, **kwargs) (kwargs may be NULL). */
uf_status pk_newobj(uf_pk_doc *d, uf_pk *cls, uf_pk *args, uf_pk *kwargs, uf_pk **out,
                    uf_error *err);
/* A global node for module.name after the rule-1 check. */
uf_status pk_global(uf_pk_doc *d, const char *module, size_t ml, const char *name, size_t nl,
                    uf_pk **out, uf_error *err);

/* The opcode's name ("BINPUT", ...), or NULL for an unknown byte. */
const char *pk_op_name(int op);
/* A protocol-0 decimal (INT / LONG / GET / PUT operands; a trailing 'L' allowed): 0 or -1. */
int pk_decimal(const char *s, size_t n, int64_t *out);
/* A quoted Python 2 STRING operand into o (n bytes available): its length, or -1 unquoted. */
long pk_unquote(const char *s, size_t n, char *o);
/* A raw-unicode-escape UNICODE operand as UTF-8 into o (4 n + 1 bytes available): its length. */
size_t pk_unicode_decode(const char *s, size_t n, char *o);
/* A protocol-0 FLOAT operand (repr text): 0 or -1. */
int pk_float_text(const char *s, size_t n, double *out);
/* BINFLOAT's big-endian IEEE double. */
double pk_be_double(const uint8_t *b);
/* An n-byte little-endian unsigned integer (n <= 8). */
uint64_t pk_le(const uint8_t *b, int n);

#endif
