/* test_gendata.c — `uflow gen-demo`: file layout and names, image and mask sizes, mask
 * sizes and kinds, defects change the image inside their mask and nowhere else, crops come
 * from the documented disjoint regions of the texture, determinism per seed, --force, and
 * exit codes for bad input. argv[1] is the uflow binary. */
#include "util.h"

#include "io/image.h"

#include <dirent.h>
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *uflow;
static char tmpdir[] = "/tmp/uflow_test_gendata_XXXXXX";
static char textures[1024];

#define SIZE 128
#define OPTS "--train 6 --test-good 3 --test-defect 8 --keep-clean"
static const char *const kinds[] = {"scratch", "hole", "stain", "cutpaste"};

static int gen(char *out, size_t n, const char *dir, const char *extra)
{
    return ut_run(out, n, "%s gen-demo --out %s/%s --textures %s %s", uflow, tmpdir, dir, textures, extra);
}

/* Sorted entries of DIR (no dot files); returns the count, fills names (strdup'd). */
static int list(const char *dir, char **names, int cap)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort), k = 0;
    if (n < 0)
        fail_msg("cannot list %s", dir);
    for (int i = 0; i < n; i++) {
        if (ents[i]->d_name[0] != '.' && k < cap)
            names[k++] = strdup(ents[i]->d_name);
        free(ents[i]);
    }
    free(ents);
    return k;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
}

/* Decoded 8-bit pixels of a PNG; fails the test when it cannot be read. */
typedef struct img {
    uint8_t *px;
    int w, h, nb;
} img;

static img load(const char *path)
{
    img m;
    uf_error err = {0};
    if (uf_img_decode(NULL, 0, path, NULL, &m.px, &m.w, &m.h, &m.nb, &err) != UF_OK)
        fail_msg("cannot decode %s: %s", path, err.msg);
    return m;
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    void *x = ut_slurp(a, &na), *y = ut_slurp(b, &nb);
    int same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* Where a grey crop comes from in the texture: position and flips whose pixels, times one
 * brightness gain, match the crop within rounding at 256 sample points. x0 = -1 if none. */
static void locate(const img *tex, const img *c, int *x0, int *y0)
{
    enum { NS = 256 };
    int sx[NS], sy[NS];
    uint64_t s = 12345;
    for (int i = 0; i < NS; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        sx[i] = (int)((s >> 33) % SIZE);
        sy[i] = (int)((s >> 13) % SIZE);
    }
    *x0 = *y0 = -1;
    double best = 1e30;
    for (int f = 0; f < 4; f++)
        for (int y = 0; y + SIZE <= tex->h; y++)
            for (int x = 0; x + SIZE <= tex->w; x++) {
                double sc = 0, st = 0;
                for (int i = 0; i < 32; i++) { /* the gain, from a few samples */
                    int tx = x + (f & 1 ? SIZE - 1 - sx[i] : sx[i]), ty = y + (f & 2 ? SIZE - 1 - sy[i] : sy[i]);
                    sc += c->px[((size_t)sy[i] * SIZE + sx[i]) * c->nb];
                    st += tex->px[(size_t)ty * tex->w + tx];
                }
                double g = st > 0 ? sc / st : 1, e = 0;
                for (int i = 0; i < NS && e < best; i++) {
                    int tx = x + (f & 1 ? SIZE - 1 - sx[i] : sx[i]), ty = y + (f & 2 ? SIZE - 1 - sy[i] : sy[i]);
                    double v = g * tex->px[(size_t)ty * tex->w + tx];
                    e += fabs(c->px[((size_t)sy[i] * SIZE + sx[i]) * c->nb] - (v > 255 ? 255 : v));
                }
                if (e < best) {
                    best = e;
                    *x0 = x;
                    *y0 = y;
                }
            }
    if (best / NS > 1.0) /* rounding and the 255 clip only */
        *x0 = -1;
}

/* Every image of DIR/sub is a SIZE x SIZE RGB grey crop cut from x in [xlo, xhi). */
static void check_crops(const char *dir, const char *sub, int n, const img *tex, int xlo, int xhi)
{
    char p[2048], *names[64];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    assert_int_equal(list(p, names, 64), n);
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s/%s", dir, sub, names[i]);
        img m = load(p);
        assert_int_equal(m.w, SIZE);
        assert_int_equal(m.h, SIZE);
        assert_int_equal(m.nb, 3);
        for (int k = 0; k < SIZE * SIZE; k++)
            if (m.px[3 * k] != m.px[3 * k + 1] || m.px[3 * k] != m.px[3 * k + 2])
                fail_msg("%s is not grey", p);
        int x0, y0;
        locate(tex, &m, &x0, &y0);
        if (x0 < 0 || x0 < xlo || x0 + SIZE > xhi)
            fail_msg("%s: found at x %d of the texture, outside [%d, %d)", p, x0, xlo, xhi);
        g_free(m.px);
    }
    free_names(names, n);
}

static void test_layout(void **state)
{
    (void)state;
    char out[8192], dir[1024], p[2048], q[2048], *names[64], *masks[64];
    int rc = gen(out, sizeof out, "layout", "--seed 5 " OPTS);
    if (rc != 0)
        fail_msg("gen-demo failed (%d): %s", rc, out);
    snprintf(dir, sizeof dir, "%s/layout", tmpdir);
    snprintf(p, sizeof p, "%s/brick.png", textures);
    img tex = load(p);
    assert_int_equal(tex.nb, 1);
    check_crops(dir, "train/good", 6, &tex, 0, 320);
    check_crops(dir, "test/good", 3, &tex, 320, 512);
    check_crops(dir, "clean/defect", 8, &tex, 320, 512);
    g_free(tex.px);

    /* names: 0000.png ... and NNNN_<kind>.png with the same names for masks and clean crops */
    snprintf(p, sizeof p, "%s/train/good", dir);
    assert_int_equal(list(p, names, 64), 6);
    for (int i = 0; i < 6; i++) {
        snprintf(q, sizeof q, "%04d.png", i);
        assert_string_equal(names[i], q);
    }
    free_names(names, 6);
    snprintf(p, sizeof p, "%s/test/defect", dir);
    assert_int_equal(list(p, names, 64), 8);
    snprintf(p, sizeof p, "%s/ground_truth/defect", dir);
    assert_int_equal(list(p, masks, 64), 8);
    int seen[4] = {0};
    for (int i = 0; i < 8; i++) {
        assert_string_equal(names[i], masks[i]);
        int k = -1;
        for (int j = 0; j < 4; j++) {
            snprintf(q, sizeof q, "%04d_%s.png", i, kinds[j]);
            if (!strcmp(names[i], q))
                k = j;
        }
        if (k < 0)
            fail_msg("unexpected defect file name %s", names[i]);
        seen[k]++;

        /* the mask: same size, 0/255, >= 20 and < 50% pixels; the defect changes the clean
         * crop inside it, and (almost) nothing outside */
        snprintf(p, sizeof p, "%s/test/defect/%s", dir, names[i]);
        img d = load(p);
        snprintf(p, sizeof p, "%s/ground_truth/defect/%s", dir, names[i]);
        img m = load(p);
        snprintf(p, sizeof p, "%s/clean/defect/%s", dir, names[i]);
        img c = load(p);
        assert_int_equal(m.nb, 1);
        assert_int_equal(m.w, SIZE);
        assert_int_equal(m.h, SIZE);
        assert_int_equal(d.w, SIZE);
        assert_int_equal(d.h, SIZE);
        /* mean change inside and outside; shares of the total change inside the mask and
         * within 2 px of it (soft edges) */
        int npos = 0;
        double din = 0, dout = 0, near = 0;
        for (int y = 0; y < SIZE; y++)
            for (int x = 0; x < SIZE; x++) {
                int k2 = y * SIZE + x, close = 0;
                if (m.px[k2] != 0 && m.px[k2] != 255)
                    fail_msg("%s: mask value %d", names[i], m.px[k2]);
                for (int dy = -2; dy <= 2; dy++)
                    for (int dx = -2; dx <= 2; dx++)
                        close |= y + dy >= 0 && y + dy < SIZE && x + dx >= 0 && x + dx < SIZE &&
                                 m.px[k2 + dy * SIZE + dx];
                double diff = abs((int)d.px[3 * k2] - (int)c.px[3 * k2]);
                npos += m.px[k2] == 255;
                if (m.px[k2])
                    din += diff;
                else
                    dout += diff;
                if (close)
                    near += diff;
            }
        double total = din + dout, share = din / total;
        near /= total;
        din /= npos > 0 ? npos : 1;
        dout /= SIZE * SIZE - npos;
        print_message("  %-18s mask %5d px  mean |change| inside %5.1f outside %.3f  share of the "
                      "change inside %.2f, within 2 px %.3f\n", names[i], npos, din, dout, share, near);
        assert_true(npos >= 20);
        assert_true(npos < SIZE * SIZE / 2);
        assert_true(din >= 15.0);
        assert_true(dout <= 0.5);
        assert_true(share >= 0.6);
        assert_true(near >= 0.9);
        g_free(d.px);
        g_free(m.px);
        g_free(c.px);
    }
    for (int j = 0; j < 4; j++)
        assert_int_equal(seen[j], 2);
    free_names(names, 8);
    free_names(masks, 8);
    snprintf(p, sizeof p, "%s/README.txt", dir);
    size_t len;
    char *txt = ut_slurp(p, &len);
    txt = realloc(txt, len + 1);
    txt[len] = '\0';
    assert_non_null(strstr(txt, "--seed 5"));
    assert_non_null(strstr(txt, "x in [0, 320)"));
    free(txt);
}

/* Every file of a's tree compared with b's: all identical, or (want_same = 0) every image
 * of train/good and test/defect different. */
static void compare_runs(const char *a, const char *b, int want_same)
{
    static const char *const subs[] = {"train/good",          "test/good",    "test/defect",
                                       "ground_truth/defect", "clean/defect", "."};
    for (size_t s = 0; s < sizeof subs / sizeof subs[0]; s++) {
        char pa[2048], pb[2048], *names[64];
        snprintf(pa, sizeof pa, "%s/%s/%s", tmpdir, a, subs[s]);
        int n = list(pa, names, 64);
        for (int i = 0; i < n; i++) {
            snprintf(pa, sizeof pa, "%s/%s/%s/%s", tmpdir, a, subs[s], names[i]);
            snprintf(pb, sizeof pb, "%s/%s/%s/%s", tmpdir, b, subs[s], names[i]);
            struct stat sb;
            if (stat(pa, &sb) || S_ISDIR(sb.st_mode))
                continue;
            if (want_same && !same_file(pa, pb))
                fail_msg("%s and %s differ", pa, pb);
            if (!want_same && (s == 0 || s == 2) && same_file(pa, pb))
                fail_msg("%s and %s are the same with different seeds", pa, pb);
        }
        free_names(names, n);
    }
}

static void test_determinism(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(gen(out, sizeof out, "a", "--seed 5 " OPTS), 0);
    assert_int_equal(gen(out, sizeof out, "b", "--seed 5 " OPTS), 0);
    compare_runs("a", "b", 1);
    assert_int_equal(gen(out, sizeof out, "c", "--seed 6 " OPTS), 0);
    compare_runs("a", "c", 0);

    /* a non-empty --out is refused; --force replaces an earlier run without leftovers */
    assert_int_equal(gen(out, sizeof out, "c", "--seed 5 " OPTS), 1);
    assert_non_null(strstr(out, "not empty"));
    assert_int_equal(gen(out, sizeof out, "c", "--force --seed 5 " OPTS), 0);
    compare_runs("a", "c", 1);
    assert_int_equal(gen(out, sizeof out, "c", "--force --seed 5 --train 2 --test-good 1 --test-defect 4"), 0);
    char p[2048], *names[64];
    snprintf(p, sizeof p, "%s/c/train/good", tmpdir);
    assert_int_equal(list(p, names, 64), 2);
    free_names(names, 2);
    snprintf(p, sizeof p, "%s/c/ground_truth/defect", tmpdir);
    assert_int_equal(list(p, names, 64), 4);
    free_names(names, 4);
    snprintf(p, sizeof p, "%s/c/clean", tmpdir);
    struct stat sb;
    assert_int_not_equal(stat(p, &sb), 0); /* no --keep-clean: the old clean crops are gone */
    snprintf(p, sizeof p, "%s/c/test/defect/0000_scratch.png", tmpdir);
    char q[2048];
    snprintf(q, sizeof q, "%s/a/test/defect/0000_scratch.png", tmpdir);
    assert_true(same_file(p, q)); /* image i does not depend on the other counts */
}

static void test_errors(void **state)
{
    (void)state;
    char out[8192];
    static const struct {
        const char *args, *msg;
        int rc;
    } cases[] = {
        {"--size abc", "--size expects", 2},
        {"--size 16", "--size expects", 2},
        {"--size 200", "does not fit", 2},
        {"--train 0", "--train expects", 2},
        {"--test-defect -3", "--test-defect expects", 2},
        {"--seed -1", "--seed expects", 2},
        {"--seed 12x", "--seed expects", 2},
        {"--texture ../brick", "--texture expects", 2},
        {"--bogus", "usage", 2},
        {"extra", "unexpected argument", 2},
        {"--texture nosuch", "nosuch.png", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = gen(out, sizeof out, "e", cases[i].args);
        if (rc != cases[i].rc || !strstr(out, cases[i].msg))
            fail_msg("'%s': exit %d (want %d), output: %s", cases[i].args, rc, cases[i].rc, out);
    }
    assert_int_equal(ut_run(out, sizeof out, "%s gen-demo --textures %s", uflow, textures), 2);
    assert_non_null(strstr(out, "--out DIR is required"));
    assert_int_equal(ut_run(out, sizeof out, "%s gen-demo --help", uflow), 0);
    assert_non_null(strstr(out, "usage: uflow gen-demo"));
    assert_int_equal(ut_run(out, sizeof out, "%s gen-demo --out %s/e --textures %s/nonexistent", uflow,
                            tmpdir, tmpdir), 1);
    assert_non_null(strstr(out, "texture directory"));

    /* a texture that is not an image */
    char p[2048];
    snprintf(p, sizeof p, "%s/badtex", tmpdir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/badtex/brick.png", tmpdir);
    FILE *f = fopen(p, "wb");
    fputs("not a png", f);
    fclose(f);
    assert_int_equal(ut_run(out, sizeof out, "%s gen-demo --out %s/e --textures %s/badtex", uflow,
                            tmpdir, tmpdir), 1);
    assert_non_null(strstr(out, "brick.png"));
    struct stat sb;
    snprintf(p, sizeof p, "%s/e", tmpdir);
    assert_int_not_equal(stat(p, &sb), 0); /* nothing written on errors found up front */
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_gendata PATH/TO/uflow\n");
        return 2;
    }
    uflow = argv[1];
    snprintf(textures, sizeof textures, "%s/data/textures", UF_SOURCE_ROOT);
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_errors),
    };
    int rc = cmocka_run_group_tests_name("gendata", tests, NULL, NULL);
    if (ut_rmtree(tmpdir) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
