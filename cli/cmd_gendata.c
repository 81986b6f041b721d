/* cmd_gendata.c — `uflow gen-demo`: a seeded demo dataset in MVTec-AD layout, good crops of a
 * real texture photograph and crops with synthetic defects (gendata_defects.c) plus exact
 * ground-truth masks. */
#include "cli.h"
#include "gendata_defects.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define CMD "gen-demo"

static void help(FILE *f)
{
    fprintf(f,
            "usage: uflow gen-demo --out DIR [--textures DIR] [--texture brick] [--seed S]\n"
            "                      [--size 128] [--train 200] [--test-good 30] [--test-defect 60]\n"
            "                      [--keep-clean] [--force]\n\n"
            "Writes a demo dataset, every pixel fixed by --seed (default 1):\n"
            "  DIR/train/good/0000.png ...          good crops (train region of the texture)\n"
            "  DIR/test/good/0000.png ...           good crops (test region, held out)\n"
            "  DIR/test/defect/0000_scratch.png ... test-region crops with one synthetic defect;\n"
            "                                       kinds cycle scratch, hole, stain, cutpaste\n"
            "  DIR/ground_truth/defect/<same name>  8-bit mask, 255 = defect pixel, 0 = good\n"
            "  DIR/README.txt                       what was generated, with which options\n"
            "Crops are --size x --size RGB PNGs (greyscale replicated) cut at native resolution\n"
            "from TEXTURES/<texture>.png, randomly flipped, brightness x[0.95, 1.05]. Train crops\n"
            "come from the left 5/8 of the photograph (x in [0, 320) for 512 px), test crops from\n"
            "the disjoint right 3/8 (x in [320, 512)); --size is at most the test region's width.\n"
            "cutpaste patches come from the other textures of brick, grass, gravel in TEXTURES.\n"
            "--textures defaults to data/textures relative to the current directory (run from\n"
            "the repository root). --keep-clean also writes each defect image's defect-free crop\n"
            "to DIR/clean/defect/<same name>. DIR must be empty or new; --force reuses it,\n"
            "deleting the PNGs and README.txt a previous gen-demo run wrote there.\n");
}

typedef struct gen {
    const char *out, *texdir, *texture;
    uint64_t seed;
    int size, count[3], keep_clean, force;
    gd_texture main, foreign[2];
    const char *foreign_name[2];
    int nforeign, split; /* train: x in [0, split), test: x in [split, main.w) */
} gen;

enum { SET_TRAIN, SET_TEST_GOOD, SET_TEST_DEFECT };
static const char *const subdirs[] = {"train", "train/good", "test", "test/good", "test/defect",
                                      "ground_truth", "ground_truth/defect", "clean", "clean/defect"};

static int parse_seed(const char *s, uint64_t *seed)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || s[0] == ' ') {
        fprintf(stderr, "uflow " CMD ": --seed expects an integer in [0, 2^64), got '%s'\n", s);
        return -1;
    }
    *seed = (uint64_t)v;
    return 0;
}

/* TEXDIR/name.png as 8-bit grey (RGB averaged); -1 with a message. */
static int load_texture(const char *dir, const char *name, gd_texture *t)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.png", dir, name);
    uint8_t *px = NULL;
    int w, h, nb;
    uf_error err = {0};
    if (uf_image_decode_file(path, NULL, &px, &w, &h, &nb, &err) != UF_OK) {
        cli_fail(CMD, &err);
        return -1;
    }
    uint8_t *g = malloc((size_t)w * (size_t)h);
    if (!g) {
        uf_free(px);
        fprintf(stderr, "uflow " CMD ": out of memory for %s\n", path);
        return -1;
    }
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
        g[i] = nb == 1 ? px[i] : (uint8_t)((px[3 * i] + px[3 * i + 1] + px[3 * i + 2] + 1) / 3);
    uf_free(px);
    *t = (gd_texture){g, w, h};
    return 0;
}

/* Create DIR and its subdirectories; refuse a non-empty DIR unless --force, which deletes the
 * files of an earlier run (README.txt and *.png in the subdirectories). */
static int prepare_out(const gen *g)
{
    char p[4096];
    DIR *d = opendir(g->out);
    if (d) {
        struct dirent *e;
        int used = 0;
        while ((e = readdir(d)))
            used |= strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        closedir(d);
        if (used && !g->force) {
            fprintf(stderr, "uflow " CMD ": '%s' is not empty; use a new directory or --force\n", g->out);
            return -1;
        }
    } else if (mkdir(g->out, 0755) != 0) {
        fprintf(stderr, "uflow " CMD ": cannot create directory '%s': %s\n", g->out, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        int clean_dir = !strncmp(subdirs[i], "clean", 5);
        snprintf(p, sizeof p, "%s/%s", g->out, subdirs[i]);
        struct stat sb;
        if ((!clean_dir || g->keep_clean) && mkdir(p, 0755) != 0 &&
            (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
            fprintf(stderr, "uflow " CMD ": cannot create directory '%s'\n", p);
            return -1;
        }
        if (!(d = opendir(p)))
            continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            char f[8192];
            snprintf(f, sizeof f, "%s/%s", p, e->d_name);
            if (n > 4 && !strcmp(e->d_name + n - 4, ".png"))
                unlink(f);
        }
        closedir(d);
    }
    if (!g->keep_clean) { /* an earlier run's, now emptied; rmdir keeps non-empty ones */
        snprintf(p, sizeof p, "%s/clean/defect", g->out);
        rmdir(p);
        snprintf(p, sizeof p, "%s/clean", g->out);
        rmdir(p);
    }
    snprintf(p, sizeof p, "%s/README.txt", g->out);
    unlink(p);
    return 0;
}

/* A random crop of the set's region: flipped, brightness-jittered, as floats 0..255. */
static void crop(const gen *g, int set, gd_rng *r, float *img)
{
    int n = g->size, rx0 = set == SET_TRAIN ? 0 : g->split;
    int rw = set == SET_TRAIN ? g->split : g->main.w - g->split;
    int x0 = rx0 + gd_int(r, 0, rw - n), y0 = gd_int(r, 0, g->main.h - n);
    uint64_t flips = gd_rng_next(r);
    double gain = gd_uniform(r, 0.95, 1.05);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            int sx = flips & 1 ? n - 1 - x : x, sy = flips & 2 ? n - 1 - y : y;
            double v = gain * g->main.px[(size_t)(y0 + sy) * g->main.w + x0 + sx];
            img[(size_t)y * n + x] = (float)(v > 255 ? 255 : v);
        }
}

static int write_rgb(const char *path, const float *img, int n)
{
    uf_error err = {0};
    size_t npx = (size_t)n * n, len = 0;
    uint8_t *rgb = malloc(3 * npx);
    void *png = NULL;
    if (!rgb) {
        fprintf(stderr, "uflow " CMD ": out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < npx; i++) {
        float v = img[i];
        uint8_t b = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : (int)(v + 0.5f));
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = b;
    }
    int rc = uf_rgb_png(rgb, n, n, &png, &len, &err) == UF_OK &&
                     uf_write_file(path, png, len, &err) == UF_OK
                 ? 0
                 : -1;
    if (rc)
        cli_fail(CMD, &err);
    uf_free(png);
    free(rgb);
    return rc;
}

static int write_mask(const char *path, const uint8_t *mask, int n)
{
    uf_error err = {0};
    void *png = NULL;
    size_t len = 0;
    int rc = uf_mask_png(mask, n, n, &png, &len, &err) == UF_OK &&
                     uf_write_file(path, png, len, &err) == UF_OK ? 0 : -1;
    uf_free(png);
    if (rc)
        cli_fail(CMD, &err);
    return rc;
}

static int write_readme(const gen *g, const int kinds[GD_NKINDS])
{
    char p[4096];
    snprintf(p, sizeof p, "%s/README.txt", g->out);
    FILE *f = fopen(p, "w");
    if (!f) {
        fprintf(stderr, "uflow " CMD ": cannot create '%s': %s\n", p, strerror(errno));
        return -1;
    }
    fprintf(f, "Demo dataset written by uflow %s gen-demo (deterministic: the same options give\n"
               "byte-identical files).\n\n", UF_VERSION_STRING);
    fprintf(f, "options: --textures %s --texture %s --seed %llu --size %d --train %d --test-good %d "
               "--test-defect %d%s\n\n", g->texdir, g->texture, (unsigned long long)g->seed,
            g->size, g->count[0], g->count[1], g->count[2], g->keep_clean ? " --keep-clean" : "");
    fprintf(f, "texture: %s.png (%dx%d), greyscale photograph, CC0 (see data/textures/LICENSE.md)\n",
            g->texture, g->main.w, g->main.h);
    fprintf(f, "crops: %dx%d RGB PNG (grey replicated), native resolution, random horizontal and\n"
               "vertical flips, brightness x[0.95, 1.05]\n", g->size, g->size);
    fprintf(f, "train/good: %d crops from x in [0, %d) of the texture (any y)\n", g->count[0], g->split);
    fprintf(f, "test/good: %d crops from x in [%d, %d), disjoint from the train region\n",
            g->count[1], g->split, g->main.w);
    fprintf(f, "test/defect: %d crops from the test region with one synthetic defect each:", g->count[2]);
    for (int k = 0; k < GD_NKINDS; k++)
        fprintf(f, " %s %d%s", gd_kind_names[k], kinds[k], k + 1 < GD_NKINDS ? "," : "\n");
    fprintf(f, "  scratch: thin (1-3 px) slightly curved bright or dark anti-aliased line, 20-60%% of\n"
               "           the crop long; hole: dark pit or bright spot, radius 4-12 px, soft noisy\n"
               "           edge; stain: smooth irregular darkened (or bleached) blob, radius 8-20 px;\n"
               "           cutpaste: 10-30 px rectangle, axis-aligned or rotated, of");
    for (int k = 0; k < g->nforeign; k++)
        fprintf(f, " %s%s", g->foreign_name[k], k + 1 < g->nforeign ? " or" : "");
    fprintf(f, "\n           (sizes for 128 px crops, scaled with --size)\n");
    fprintf(f, "ground_truth/defect: one mask per defect image, same file name, 8-bit grey,\n"
               "  255 = defect pixel (blend weight > 0.5), 0 = good; every mask has >= 20 pixels\n");
    if (g->keep_clean)
        fprintf(f, "clean/defect: each defect image before its defect was painted\n");
    fprintf(f, "\nEvaluate: uflow eval --model M --good test/good --anomalous test/defect "
               "--masks ground_truth/defect\n");
    return fclose(f) ? -1 : 0;
}

static int generate(const gen *g)
{
    static const char *const dirs[] = {"train/good", "test/good", "test/defect"};
    size_t npx = (size_t)g->size * g->size;
    float *img = malloc(npx * sizeof(float));
    uint8_t *mask = malloc(npx);
    int kinds[GD_NKINDS] = {0}, rc = -1;
    char p[4096];
    if (!img || !mask) {
        fprintf(stderr, "uflow " CMD ": out of memory\n");
        goto done;
    }
    for (int set = 0; set < 3; set++)
        for (int i = 0; i < g->count[set]; i++) {
            gd_rng r;
            gd_rng_init(&r, g->seed, (uint64_t)set + 1, (uint64_t)i);
            crop(g, set, &r, img);
            if (set != SET_TEST_DEFECT) {
                snprintf(p, sizeof p, "%s/%s/%04d.png", g->out, dirs[set], i);
                if (write_rgb(p, img, g->size))
                    goto done;
                continue;
            }
            gd_kind kind = (gd_kind)(i % GD_NKINDS);
            char name[64];
            snprintf(name, sizeof name, "%04d_%s.png", i, gd_kind_names[kind]);
            snprintf(p, sizeof p, "%s/clean/defect/%s", g->out, name);
            if (g->keep_clean && write_rgb(p, img, g->size))
                goto done;
            if (gd_defect(kind, img, g->size, mask, g->foreign, g->nforeign, &r) < 0) {
                fprintf(stderr, "uflow " CMD ": could not draw a visible %s in a %d px crop\n",
                        gd_kind_names[kind], g->size);
                goto done;
            }
            kinds[kind]++;
            snprintf(p, sizeof p, "%s/test/defect/%s", g->out, name);
            if (write_rgb(p, img, g->size))
                goto done;
            snprintf(p, sizeof p, "%s/ground_truth/defect/%s", g->out, name);
            if (write_mask(p, mask, g->size))
                goto done;
        }
    rc = write_readme(g, kinds);
    if (rc == 0)
        printf("uflow " CMD ": wrote %d train, %d test-good and %d test-defect images (scratch %d, "
               "hole %d, stain %d, cutpaste %d) to %s\n", g->count[0], g->count[1], g->count[2],
               kinds[0], kinds[1], kinds[2], kinds[3], g->out);
done:
    free(img);
    free(mask);
    return rc;
}

/* The main texture and the foreign ones (the other of brick, grass, gravel that exist). */
static int load_all(gen *g)
{
    static const char *const known[] = {"brick", "grass", "gravel"};
    struct stat sb;
    if (stat(g->texdir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "uflow " CMD ": texture directory '%s' not found (run from the repository "
                        "root or pass --textures DIR)\n", g->texdir);
        return CLI_FAIL;
    }
    if (load_texture(g->texdir, g->texture, &g->main))
        return CLI_FAIL;
    for (int k = 0; k < 3 && g->nforeign < 2; k++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s.png", g->texdir, known[k]);
        if (!strcmp(known[k], g->texture) || stat(p, &sb) != 0)
            continue;
        if (load_texture(g->texdir, known[k], &g->foreign[g->nforeign]))
            return CLI_FAIL;
        g->foreign_name[g->nforeign++] = known[k];
    }
    if (g->count[SET_TEST_DEFECT] > 0 && g->nforeign == 0) {
        fprintf(stderr, "uflow " CMD ": cutpaste defects need another texture (brick, grass or "
                        "gravel .png) in '%s'\n", g->texdir);
        return CLI_FAIL;
    }
    g->split = g->main.w * 5 / 8;
    int lim = g->main.w - g->split;
    lim = lim < g->main.h ? lim : g->main.h;
    if (g->size > lim) {
        fprintf(stderr, "uflow " CMD ": --size %d does not fit %s.png (%dx%d): the test region "
                        "x in [%d, %d) allows at most %d\n", g->size, g->texture, g->main.w,
                g->main.h, g->split, g->main.w, lim);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cmd_gendata(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},       {"textures", required_argument, 0, 'T'},
        {"texture", required_argument, 0, 'x'},   {"seed", required_argument, 0, 's'},
        {"size", required_argument, 0, 'S'},      {"train", required_argument, 0, 'n'},
        {"test-good", required_argument, 0, 'g'}, {"test-defect", required_argument, 0, 'd'},
        {"keep-clean", no_argument, 0, 'k'},      {"force", no_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    static const char *const count_opt[3] = {"--train", "--test-good", "--test-defect"};
    gen g = {.texdir = "data/textures", .texture = "brick", .seed = 1, .size = 128,
             .count = {200, 30, 60}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': g.out = optarg; break;
        case 'T': g.texdir = optarg; break;
        case 'x': g.texture = optarg; break;
        case 's': if (parse_seed(optarg, &g.seed)) return CLI_USAGE; break;
        case 'S':
            if ((g.size = cli_int(CMD, "--size", optarg, 32, 4096)) < 0)
                return CLI_USAGE;
            break;
        case 'n': case 'g': case 'd': {
            int k = c == 'n' ? 0 : c == 'g' ? 1 : 2;
            if ((g.count[k] = cli_int(CMD, count_opt[k], optarg, k == 0, 10000)) < 0)
                return CLI_USAGE;
            break;
        }
        case 'k': g.keep_clean = 1; break;
        case 'f': g.force = 1; break;
        case 'h': help(stdout); return CLI_OK;
        default: help(stderr); return CLI_USAGE;
        }
    }
    if (!g.out || !*g.out || optind < argc) {
        fprintf(stderr, "uflow " CMD ": %s\n",
                optind < argc ? "unexpected argument" : "--out DIR is required");
        help(stderr);
        return CLI_USAGE;
    }
    if (!*g.texture || strchr(g.texture, '/')) {
        fprintf(stderr, "uflow " CMD ": --texture expects a name like 'brick' (the file "
                        "TEXTURES/NAME.png)\n");
        return CLI_USAGE;
    }
    int rc = load_all(&g);
    if (rc == CLI_OK)
        rc = prepare_out(&g) || generate(&g) ? CLI_FAIL : CLI_OK;
    free((void *)g.main.px);
    for (int k = 0; k < g.nforeign; k++)
        free((void *)g.foreign[k].px);
    return rc;
}
