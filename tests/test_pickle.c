/* test_pickle.c — the non-executing pickle reader (lib/src/io/pickle*.c) on hand-made streams:
 * data opcodes of protocols 0-4, the call rules (refused globals named in the error, the
 * accepted shapes: OrderedDict, copyreg, getattr enum members, one-literal enum calls), and
 * hostile input: every opcode with missing or truncated operands, every prefix of a valid
 * stream, huge lengths, memo out of range, deep nesting, node limits, cycles through the memo. */
#include "util.h"

#include "io/pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const callables[] = {"torch._utils._rebuild_tensor_v2"};

static uf_status parse_lim(const void *b, size_t n, const uf_pk_limits *lim, uf_pk_doc **d,
                           uf_pk **root, uf_error *err)
{
    uf_pk_opts o;
    memset(&o, 0, sizeof o);
    if (lim)
        o.limits = *lim;
    o.callables = callables;
    o.n_callables = 1;
    assert_int_equal(uf_pk_doc_new(&o, d, err), UF_OK);
    size_t used = 0;
    *root = NULL;
    return uf_pk_parse(*d, b, n, 0, root, &used, err);
}

static uf_status parse(const void *b, size_t n, uf_pk_doc **d, uf_pk **root, uf_error *err)
{
    return parse_lim(b, n, NULL, d, root, err);
}

#define P(s) s, sizeof(s) - 1

/* A stream must be refused with st and a message containing needle. */
static void refused(const char *b, size_t n, uf_status st, const char *needle)
{
    uf_pk_doc *d;
    uf_pk *root;
    uf_error err = {0};
    uf_status s = parse(b, n, &d, &root, &err);
    if (s != st || !strstr(err.msg, needle))
        fail_msg("status %d (want %d), message '%s' (want '%s')", s, st, err.msg, needle);
    uf_pk_doc_free(d);
}

static void test_data(void **state)
{
    (void)state;
    /* protocol 2: {'a': 1, 'b': [1.5, True, None], 'c': (b'xy', -300)} via MARK/SETITEMS */
    static const char s[] = "\x80\x02}q\x00(X\x01\x00\x00\x00" "aK\x01X\x01\x00\x00\x00" "b]q\x01"
                            "(G?\xf8\x00\x00\x00\x00\x00\x00\x88Ne"
                            "X\x01\x00\x00\x00" "cC\x02xyJ\xd4\xfe\xff\xff\x86u.";
    uf_pk_doc *d;
    uf_pk *r;
    uf_error err;
    assert_int_equal(parse(P(s), &d, &r, &err), UF_OK);
    int64_t i;
    double f;
    assert_true(uf_pk_int(uf_pk_dict_get(r, "a"), &i) && i == 1);
    uf_pk *b = uf_pk_dict_get(r, "b");
    assert_true(b && b->kind == UF_PK_LIST && b->u.seq.n == 3);
    assert_true(uf_pk_number(b->u.seq.v[0], &f) && f == 1.5);
    assert_int_equal(b->u.seq.v[1]->kind, UF_PK_BOOL);
    assert_int_equal(b->u.seq.v[2]->kind, UF_PK_NONE);
    uf_pk *c = uf_pk_dict_get(r, "c");
    assert_true(c && c->kind == UF_PK_TUPLE && c->u.seq.n == 2);
    assert_true(c->u.seq.v[0]->kind == UF_PK_BYTES && c->u.seq.v[0]->u.s.n == 2);
    assert_true(uf_pk_int(c->u.seq.v[1], &i) && i == -300);
    uf_pk_doc_free(d);

    /* protocol 0 text: (dp0\nS'k'\np1\nI42\nsF2.5\n... */
    static const char t[] = "(dp0\nS'k\\x41'\np1\nI42\nsVu\\u00e9\np2\nF2.5\nsS'b'\nI01\ns.";
    assert_int_equal(parse(P(t), &d, &r, &err), UF_OK);
    assert_true(uf_pk_int(uf_pk_dict_get(r, "kA"), &i) && i == 42);
    assert_true(uf_pk_number(uf_pk_dict_get(r, "u\xc3\xa9"), &f) && f == 2.5);
    assert_int_equal(uf_pk_dict_get(r, "b")->kind, UF_PK_BOOL);
    uf_pk_doc_free(d);
}

static void test_refused_globals(void **state)
{
    (void)state;
    /* os.system('ls') as torch.load would run it */
    refused(P("\x80\x02" "cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03."),
            UF_ERR_FORMAT, "'os.system'");
    refused(P("\x80\x02" "cposix\nsystem\nX\x02\x00\x00\x00ls\x85R."), UF_ERR_FORMAT, "'posix.system'");
    refused(P("\x80\x02" "cnt\nsystem\nX\x02\x00\x00\x00ls\x85R."), UF_ERR_FORMAT, "'nt.system'");
    /* protocol 4 STACK_GLOBAL builtins.eval / exec, __builtin__.eval */
    refused(P("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93\x8c\x03" "1+1\x85R."), UF_ERR_FORMAT,
            "'builtins.eval'");
    refused(P("\x80\x04\x8c\x08" "builtins\x8c\x04" "exec\x93\x8c\x01" "1\x85R."), UF_ERR_FORMAT,
            "'builtins.exec'");
    refused(P("\x80\x02" "c__builtin__\neval\nX\x01\x00\x00\x00" "1\x85R."), UF_ERR_FORMAT,
            "'__builtin__.eval'");
    refused(P("\x80\x02" "csubprocess\nPopen\n]\x85R."), UF_ERR_FORMAT, "'subprocess.Popen'");
    refused(P("\x80\x02" "ctorch.hub\nload\n)R."), UF_ERR_FORMAT, "'torch.hub.load'");
    refused(P("\x80\x02" "cimportlib\nimport_module\nX\x02\x00\x00\x00os\x85R."), UF_ERR_FORMAT,
            "'importlib.import_module'");
    /* named, not called: still refused (a GLOBAL alone makes torch.load import the module) */
    refused(P("\x80\x02" "cos\nsystem\n."), UF_ERR_FORMAT, "'os.system'");
    /* INST / OBJ forms */
    refused(P("(S'ls'\nios\nsystem\n."), UF_ERR_FORMAT, "'os.system'");
    /* getattr used for anything but getattr(<class>, "NAME") */
    refused(P("\x80\x02" "cbuiltins\ngetattr\nX\x01\x00\x00\x00" "aX\x01\x00\x00\x00" "b\x86R."),
            UF_ERR_FORMAT, "getattr");
    refused(P("\x80\x02" "cbuiltins\ngetattr\ncbuiltins\ndict\nX\x09\x00\x00\x00__class__\x86R."),
            UF_ERR_FORMAT, "builtins.dict.__class__");
    /* a call of an unknown function, of a non-global, of the caller's callable by name only */
    refused(P("\x80\x02" "cnumpy\nload\nX\x01\x00\x00\x00" "f\x85R."), UF_ERR_FORMAT,
            "refusing to call 'numpy.load'");
    refused(P("\x80\x02" "X\x01\x00\x00\x00" "f)R."), UF_ERR_FORMAT, "refusing a call of a str");
    /* extension registry and out-of-band buffers */
    refused(P("\x80\x02\x82\x01."), UF_ERR_UNSUPPORTED, "extension");
}

static void test_accepted_calls(void **state)
{
    (void)state;
    uf_pk_doc *d;
    uf_pk *r;
    uf_error err;
    /* OrderedDict() filled by SETITEMS; an enum member InterpolationMode('bilinear'); a
     * copyreg._reconstructor object with BUILD state; getattr(Enum, "X") */
    static const char s[] =
        "\x80\x02" "ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00k"
        "ctorchvision.transforms.functional\nInterpolationMode\nX\x08\x00\x00\x00" "bilinear\x85R"
        "X\x01\x00\x00\x00o"
        "ccopyreg\n_reconstructor\nctorchvision.transforms.transforms\nResize\ncbuiltins\nobject\nN\x87R"
        "}X\x04\x00\x00\x00sizeK@K`\x86sb"
        "X\x01\x00\x00\x00g" "cbuiltins\ngetattr\ncenum\nColor\nX\x03\x00\x00\x00RED\x86R"
        "u.";
    assert_int_equal(parse(P(s), &d, &r, &err), UF_OK);
    assert_int_equal(r->kind, UF_PK_DICT);
    uf_pk *k = uf_pk_dict_get(r, "k");
    assert_true(k && k->kind == UF_PK_OBJECT && uf_pk_class_is(k, "torchvision", "InterpolationMode"));
    uf_pk *o = uf_pk_dict_get(r, "o");
    assert_true(o && uf_pk_class_is(o, "torchvision.transforms", "Resize"));
    uf_pk *sz = uf_pk_attr(o, "size");
    assert_true(sz && sz->kind == UF_PK_TUPLE && sz->u.seq.n == 2);
    assert_true(uf_pk_is_global(uf_pk_dict_get(r, "g"), "enum", "Color.RED"));
    uf_pk_doc_free(d);
}

/* Every opcode with no operand bytes, and every prefix of a valid stream: an error, no crash. */
static void test_truncated(void **state)
{
    (void)state;
    uf_pk_doc *d;
    uf_pk *r;
    uf_error err;
    for (int op = 0; op < 256; op++) {
        char b[3] = {'\x80', '\x02', (char)op};
        uf_status s = parse(b, 3, &d, &r, &err);
        assert_int_not_equal(s, UF_OK); /* no STOP: never a result */
        uf_pk_doc_free(d);
    }
    static const char s[] = "\x80\x02}q\x00(X\x01\x00\x00\x00" "aK\x01X\x01\x00\x00\x00" "b]q\x01"
                            "(G?\xf8\x00\x00\x00\x00\x00\x00\x88Ne"
                            "X\x01\x00\x00\x00" "cC\x02xyJ\xd4\xfe\xff\xff\x86u.";
    for (size_t n = 0; n < sizeof s - 1; n++) {
        assert_int_not_equal(parse(s, n, &d, &r, &err), UF_OK);
        uf_pk_doc_free(d);
    }
}

static void test_lengths_and_memo(void **state)
{
    (void)state;
    refused(P("\x80\x02X\xff\xff\xff\xff" "abc."), UF_ERR_FORMAT, "BINUNICODE");
    refused(P("\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f" "abc."), UF_ERR_FORMAT, "BINBYTES8");
    refused(P("\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x80."), UF_ERR_FORMAT, "BINUNICODE8");
    refused(P("\x80\x02\x8b\xff\xff\xff\x7f."), UF_ERR_FORMAT, "LONG4");
    refused(P("\x80\x02h\x05."), UF_ERR_FORMAT, "memo");
    refused(P("\x80\x02j\x00\x00\x00\x01."), UF_ERR_FORMAT, "memo");
    /* a memo index past the limit is refused before anything is allocated */
    refused(P("\x80\x02Nr\xff\xff\xff\xff."), UF_ERR_LIMIT, "memo");
    refused(P("\x80\x02" "0."), UF_ERR_FORMAT, "POP");
    refused(P("\x80\x02" "e."), UF_ERR_FORMAT, "MARK");
    /* fuzz_ckpt: MARK then APPENDS before anything was pushed (UBSan: NULL + 0 in pop_mark) */
    refused(P("\x80\x02" "(e."), UF_ERR_FORMAT, "APPENDS");
}

static void test_limits(void **state)
{
    (void)state;
    uf_pk_doc *d;
    uf_pk *r;
    uf_error err;
    uf_pk_limits lim = {.max_nodes = 100, .max_memo = 16, .max_stack = 50, .max_marks = 8};
    char b[4096];
    size_t n = 0;
    b[n++] = '\x80';
    b[n++] = '\x02';
    for (int i = 0; i < 20; i++)
        b[n++] = '(';
    b[n++] = '.';
    assert_int_equal(parse_lim(b, n, &lim, &d, &r, &err), UF_ERR_LIMIT);
    uf_pk_doc_free(d);
    n = 2;
    for (int i = 0; i < 60; i++)
        b[n++] = ']'; /* 60 empty lists on the stack */
    b[n++] = '.';
    assert_int_equal(parse_lim(b, n, &lim, &d, &r, &err), UF_ERR_LIMIT);
    uf_pk_doc_free(d);
    n = 2;
    b[n++] = ']';
    for (int i = 0; i < 200; i++) { /* nodes: one list of 200 Nones */
        b[n++] = 'N';
        b[n++] = 'a';
    }
    b[n++] = '.';
    assert_int_equal(parse_lim(b, n, &lim, &d, &r, &err), UF_ERR_LIMIT);
    uf_pk_doc_free(d);
    /* deep nesting by the default limits: 100000 MARKs */
    size_t big = 100000;
    char *deep = malloc(big + 3);
    assert_non_null(deep);
    deep[0] = '\x80';
    deep[1] = '\x02';
    memset(deep + 2, '(', big);
    deep[big + 2] = '.';
    assert_int_equal(parse(deep, big + 3, &d, &r, &err), UF_ERR_LIMIT);
    uf_pk_doc_free(d);
    free(deep);
}

/* A list appended to itself through the memo: parsed, and a bounded walk visits it once. */
static void test_cycle(void **state)
{
    (void)state;
    uf_pk_doc *d;
    uf_pk *r;
    uf_error err;
    assert_int_equal(parse(P("\x80\x02]q\x00h\x00" "a."), &d, &r, &err), UF_OK);
    assert_true(r->kind == UF_PK_LIST && r->u.seq.n == 1 && r->u.seq.v[0] == r);
    uf_pk_walk_begin(d);
    assert_true(uf_pk_visit(d, r));
    assert_false(uf_pk_visit(d, r->u.seq.v[0]));
    uf_pk_doc_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data),          cmocka_unit_test(test_refused_globals),
        cmocka_unit_test(test_accepted_calls), cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_lengths_and_memo), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_cycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
