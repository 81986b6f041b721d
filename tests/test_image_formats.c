/* test_image_formats.c — the image-loader allow-list (issue 13, item 1): accepted formats
 * decode as libvips' own pick would; refused formats are refused before any decoder runs and
 * stay unreachable through libvips itself; headers declaring huge sizes are refused before a
 * pixel buffer exists, for every accepted loader; multi-page files give their first page.
 *
 * This process never sets uf_image_opts.any_format (that lifts the libvips blocks for good);
 * the CLI test covers --allow-any-format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vips/vips.h>

#include "image_craft.h"
#include "uflow.h"

#if defined(__SANITIZE_ADDRESS__)
#define UT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UT_ASAN 1
#endif
#endif

static uf_status decode(const uint8_t *buf, size_t len, const uf_image_opts *o, int *w, int *h,
                        uf_error *err)
{
    uint8_t *px = NULL;
    int nb;
    uf_status st = uf_image_decode_buffer(buf, len, o, &px, w, h, &nb, err);
    uf_free(px);
    return st;
}

/* /proc/self/status field in kB, or -1. */
static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':')
            v = strtol(line + kl + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* Resets the peak RSS (VmHWM) to the current RSS; 0 on success. */
static int reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int bad = fputs("5", f) < 0;
    return fclose(f) || bad ? -1 : 0;
}

/* The decode ends with `want` while the resident peak grows by < 32 MiB and, for a refusal
 * outside ASan, also in a child whose address space allows only 256 MiB more than now — a
 * loader that allocated the declared canvas (hundreds of MiB to GiBs) would fail with an
 * allocation error there instead (meson's MALLOC_PERTURB_ also makes such a canvas resident
 * and so visible to the peak check). */
static void expect_cheap(const char *what, const uint8_t *buf, size_t len, uf_status want)
{
    assert_non_null(buf);
    uf_error err = {0};
    int w = 0, h = 0;
    int can_peak = reset_peak_rss() == 0;
    long before = status_kb("VmHWM");
    uf_status st = decode(buf, len, NULL, &w, &h, &err);
    long grew = status_kb("VmHWM") - before;
    print_message("  %-28s -> %s: %s (%dx%d, peak RSS +%ld KiB)\n", what, uf_status_str(st),
                  err.msg, w, h, can_peak ? grew : -1L);
    assert_int_equal(st, want);
    if (can_peak)
        assert_true(grew < 32 * 1024);
#ifndef UT_ASAN
    /* Only refusals are retried in a child: a full decode needs libvips' worker threads,
     * which a forked child of this threaded process cannot use safely. */
    if (want == UF_OK)
        return;
    long vm = status_kb("VmSize");
    assert_true(vm > 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {.rlim_cur = (rlim_t)(vm + 256 * 1024) * 1024,
                            .rlim_max = (rlim_t)(vm + 256 * 1024) * 1024};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(99);
        uf_error e2 = {0};
        _exit(decode(buf, len, NULL, &w, &h, &e2) == want ? 0 : 10 + (int)e2.status);
    }
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
#endif
}

/* ---- accepted formats: the direct loader gives what libvips' own pick gives ----------- */

static void test_accepted(void **state)
{
    (void)state;
    const char *fmts[] = {"png", "jpg", "webp", "webp-lossless", "tif", "gif"};
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        size_t len;
        uint8_t *buf = craft_small(fmts[i], 13, 9, &len);
        assert_non_null(buf);
        uint8_t *px = NULL;
        int w, h, nb;
        uf_error err = {0};
        assert_int_equal(uf_image_decode_buffer(buf, len, NULL, &px, &w, &h, &nb, &err), UF_OK);
        assert_int_equal(w, 13);
        assert_int_equal(h, 9);
        /* libvips choosing the loader itself (still allowed for these) */
        VipsImage *ref = vips_image_new_from_buffer(buf, len, "", NULL);
        assert_non_null(ref);
        VipsImage *rgb = NULL;
        if (vips_image_get_bands(ref) > 3)
            assert_int_equal(vips_extract_band(ref, &rgb, 0, "n", 3, NULL), 0);
        size_t rn = 0;
        uint8_t *rpx = vips_image_write_to_memory(rgb ? rgb : ref, &rn);
        assert_int_equal(rn, (size_t)w * h * nb);
        assert_memory_equal(px, rpx, rn);
        print_message("  %-14s %dx%d, %d bands, identical to libvips' own loader\n", fmts[i], w,
                      h, nb);
        g_free(rpx);
        if (rgb)
            g_object_unref(rgb);
        g_object_unref(ref);
        uf_free(px);
        free(buf);
    }
}

/* ---- refused formats ------------------------------------------------------------------- */

static void expect_refused(const char *name, const uint8_t *buf, size_t len, uf_status want,
                           const char *msg_part)
{
    assert_non_null(buf);
    uf_error err = {0};
    int w, h;
    assert_int_equal(decode(buf, len, NULL, &w, &h, &err), want);
    print_message("  %-8s -> %s\n", name, err.msg);
    assert_non_null(strstr(err.msg, msg_part));
    assert_non_null(strstr(err.msg, UF_IMAGE_ACCEPTED));
    assert_string_equal(vips_error_buffer(), "");
    /* The process-wide blocks: libvips asked to pick a loader itself finds none. */
    VipsSource *src = vips_source_new_from_memory(buf, len);
    assert_non_null(src);
    VipsImage *im = vips_image_new_from_source(src, "", NULL);
    if (im) {
        print_message("  %s decoded by libvips' own loader %s\n", name,
                      vips_foreign_find_load_source(src));
        g_object_unref(im);
    }
    assert_null(im);
    vips_error_clear();
    g_object_unref(src);
}

static void test_refused(void **state)
{
    (void)state;
    static const struct { const char *craft, *name; } named[] = {
        {"svg", "SVG"},     {"svg-xml", "SVG"},     {"pdf", "PDF"},  {"ppm", "PNM/PFM"},
        {"pgm", "PNM/PFM"}, {"pfm", "PNM/PFM"},     {"hdr", "Radiance HDR"},
        {"fits", "FITS"},   {"heif", "HEIF/AVIF"},  {"jp2", "JPEG 2000"}, {"jxl", "JPEG XL"},
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        size_t len;
        uint8_t *buf = craft_refused(named[i].craft, &len);
        expect_refused(named[i].craft, buf, len, UF_ERR_FORMAT_NOT_ACCEPTED, named[i].name);
        free(buf);
    }
    size_t len;
    uint8_t *bmp = craft_bmp(4, 4, 1, &len);
    expect_refused("bmp", bmp, len, UF_ERR_FORMAT_NOT_ACCEPTED, "BMP");
    /* Formats without a signature (libvips' matrix and CSV text) are not images at all. */
    const char *plain[] = {"matrix", "csv"};
    for (int i = 0; i < 2; i++) {
        uint8_t *buf = craft_refused(plain[i], &len);
        expect_refused(plain[i], buf, len, UF_ERR_IMAGE, "not a");
        free(buf);
    }
    /* From a file the name does not matter: a BMP called .png is still a BMP. */
    char path[] = "/tmp/uflow_fmt_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t blen;
    uint8_t *b2 = craft_bmp(4, 4, 1, &blen);
    assert_int_equal(write(fd, b2, blen), (ssize_t)blen);
    close(fd);
    uf_model_info info;
    memset(&info, 0, sizeof info);
    info.height = info.width = 8;
    info.std[0] = info.std[1] = info.std[2] = 1;
    float out[3 * 8 * 8];
    uf_error err = {0};
    assert_int_equal(uf_image_load_file(path, &info, NULL, out, &err), UF_ERR_FORMAT_NOT_ACCEPTED);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "BMP"));
    /* ... and so is an overlay of it (the server's second decode) */
    float map[4] = {0};
    void *png = NULL;
    size_t plen = 0;
    assert_int_equal(uf_overlay_png(b2, blen, map, 2, 2, 0, 1, 0.5f, NULL, &png, &plen, &err),
                     UF_ERR_FORMAT_NOT_ACCEPTED);
    unlink(path);
    free(b2);
    free(bmp);
}

/* ---- headers that declare huge images ------------------------------------------------- */

static void test_huge_headers(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b;
    b = craft_png_huge(100000, 100000, &len);
    expect_cheap("PNG IHDR 100000x100000", b, len, UF_ERR_LIMIT);
    free(b);
    b = craft_png_huge(0x7FFFFFFF, 1, &len);
    expect_cheap("PNG IHDR 2^31-1 x 1", b, len, UF_ERR_IMAGE); /* libpng's own cap */
    free(b);
    b = craft_jpeg_huge(65000, 65000, &len);
    expect_cheap("JPEG SOF 65000x65000", b, len, UF_ERR_LIMIT);
    free(b);
    b = craft_webp_huge(0, 16383, 16383, &len);
    expect_cheap("WebP VP8 16383x16383", b, len, UF_ERR_LIMIT);
    free(b);
    b = craft_webp_huge(1, 16384, 16384, &len);
    expect_cheap("WebP VP8L 16384x16384", b, len, UF_ERR_LIMIT);
    free(b);
    b = craft_webp_anim_canvas(16384, 16384, &len);
    expect_cheap("WebP anim canvas 16384^2", b, len, UF_ERR_LIMIT);
    free(b);
    b = craft_tiff_huge(100000, 100000, &len);
    expect_cheap("TIFF 100000x100000", b, len, UF_ERR_LIMIT);
    free(b);
    /* GIF: libnsgif takes a logical screen over 2048 for a lie and sizes the canvas by the
     * first frame, which may grow it; later frames are clipped to it. */
    b = craft_gif_frame(0, 65535, 65535, &len);
    expect_cheap("GIF 1st frame 65535x65535", b, len, UF_ERR_LIMIT);
    free(b);
    b = craft_gif_screen(65535, 65535, &len);
    expect_cheap("GIF screen 65535x65535", b, len, UF_OK);
    free(b);
    b = craft_gif_frame(1, 65535, 65535, &len);
    expect_cheap("GIF 2nd frame 65535x65535", b, len, UF_OK);
    free(b);
    /* the ImageMagick case: refused on its first two bytes */
    b = craft_bmp(16000, 16000, 0, &len);
    expect_cheap("BMP 16000x16000", b, len, UF_ERR_FORMAT_NOT_ACCEPTED);
    free(b);
}

/* ---- multi-page files: the first page / frame ------------------------------------------ */

static void test_first_page(void **state)
{
    (void)state;
    enum { W = 8, H = 6 };
    uint8_t px[W * H * 2 * 3];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i < sizeof px / 2 ? 40 : 220);
    VipsImage *im = vips_image_new_from_memory(px, sizeof px, W, H * 2, 3, VIPS_FORMAT_UCHAR);
    VipsImage *cp = NULL;
    assert_non_null(im);
    assert_int_equal(vips_copy(im, &cp, NULL), 0);
    vips_image_set_int(cp, "page-height", H);
    const char *sfx[] = {".tif", ".gif", ".webp"};
    for (int k = 0; k < 3; k++) {
        void *buf = NULL;
        size_t len = 0;
        assert_int_equal(vips_image_write_to_buffer(cp, sfx[k], &buf, &len, NULL), 0);
        uint8_t *out = NULL;
        int w, h, nb;
        uf_error err = {0};
        assert_int_equal(uf_image_decode_buffer(buf, len, NULL, &out, &w, &h, &nb, &err), UF_OK);
        print_message("  2-page %-5s -> %dx%d, first pixel %d\n", sfx[k], w, h, out[0]);
        assert_int_equal(w, W);
        assert_int_equal(h, H);
        assert_true(out[0] < 128 && out[(size_t)(W * H - 1) * nb] < 128); /* page 0 is dark */
        uf_free(out);
        g_free(buf);
    }
    g_object_unref(cp);
    g_object_unref(im);
}

int main(void)
{
    if (VIPS_INIT("test_image_formats"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_huge_headers),
        cmocka_unit_test(test_first_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
