/* test_image.c — image decoding, pre-processing (vs the anomalib golden input), the resize
 * kernel (vs a naive per-pixel reference), decoding edge cases and error paths, heatmaps.
 *
 * Fixtures: $UFLOW_TEST_GOLDEN, else the in-repo tests/golden (a missing fixture fails).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <vips/vips.h>

#include "io/st.h"
#include "uflow.h"

#ifndef UF_SOURCE_ROOT
#define UF_SOURCE_ROOT "."
#endif

static const float IMNET_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float IMNET_STD[3] = {0.229f, 0.224f, 0.225f};

static uf_model_info make_info(int h, int w, int imagenet)
{
    uf_model_info info;
    memset(&info, 0, sizeof info);
    info.height = h;
    info.width = w;
    for (int c = 0; c < 3; c++) {
        info.mean[c] = imagenet ? IMNET_MEAN[c] : 0.0f;
        info.std[c] = imagenet ? IMNET_STD[c] : 1.0f;
    }
    return info;
}

static void golden_path(char *buf, size_t n, const char *rel)
{
    const char *dir = getenv("UFLOW_TEST_GOLDEN");
    if (dir && *dir)
        snprintf(buf, n, "%s/%s", dir, rel);
    else
        snprintf(buf, n, "%s/tests/golden/%s", UF_SOURCE_ROOT, rel);
}

static void *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* ---- (1) golden: anomalib's pre-processing of the two input images ---------------------- */

static void test_golden_inputs(void **state)
{
    (void)state;
    char path[4096];
    uf_error err = {0};
    uf_st *st;
    golden_path(path, sizeof path, "expected_images.safetensors");
    if (access(path, R_OK) != 0) {
        fail_msg("golden fixtures not found at %s", path);
        return;
    }
    assert_int_equal(uf_st_open(path, &st, &err), UF_OK);
    const uf_st_tensor *t = uf_st_find(st, "input");
    assert_non_null(t);
    assert_int_equal(t->dtype, UF_DT_F32);
    assert_int_equal(t->numel, 2 * 3 * 256 * 256);

    const char *names[2] = {"inputs/texture_300x280.png", "inputs/defect_640x480.jpg"};
    const size_t n = 3 * 256 * 256;
    uf_model_info info = make_info(256, 256, 1);
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    float *ref = malloc(n * sizeof(float));
    for (int i = 0; i < 2; i++) {
        memcpy(ref, (const char *)t->data + (size_t)i * n * sizeof(float), n * sizeof(float));
        golden_path(path, sizeof path, names[i]);
        assert_int_equal(uf_image_load_file(path, &info, NULL, x, &err), UF_OK);
        double maxe = 0, sum = 0;
        for (size_t k = 0; k < n; k++) {
            double e = fabs((double)x[k] - ref[k]);
            maxe = e > maxe ? e : maxe;
            sum += e;
        }
        print_message("%s: max abs err %.3g, mean abs err %.3g\n", names[i], maxe, sum / n);
        assert_true(maxe <= 0.02);
        if (i == 0) /* lossless PNG: only float rounding of the resize may differ */
            assert_true(maxe <= 1e-5);
        /* The buffer path must be the very same pipeline. */
        size_t len;
        void *bytes = read_all(path, &len);
        assert_non_null(bytes);
        assert_int_equal(uf_image_load_buffer(bytes, len, &info, NULL, y, &err), UF_OK);
        assert_memory_equal(x, y, n * sizeof(float));
        free(bytes);
    }
    free(x);
    free(y);
    free(ref);
    uf_st_close(st);
}

/* ---- (2) resize vs a naive 2-D reference ---------------------------------------------- */

/* Weight of source pixel j for output i: triangle of half-width max(scale, 1) around the
 * output centre, in double, normalised over all source pixels. */
static double ref_weight(int j, int i, int in, int out)
{
    double scale = (double)in / out, sup = scale > 1 ? scale : 1, tot = 0, w = 0;
    double c = scale * (i + 0.5);
    for (int k = 0; k < in; k++) {
        double v = 1 - fabs((k + 0.5 - c) / sup);
        v = v > 0 ? v : 0;
        tot += v;
        if (k == j)
            w = v;
    }
    return w / tot;
}

static void check_resize(int w, int h, int ow, int oh, int imagenet)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    float *out = malloc(sizeof(float) * 3 * ow * oh);
    uint32_t s = 12345u + (uint32_t)(w * 31 + h);
    for (int i = 0; i < w * h * 3; i++) {
        s = s * 1664525u + 1013904223u;
        rgb[i] = (uint8_t)(s >> 24);
    }
    uf_model_info info = make_info(oh, ow, imagenet);
    uf_image_rgb8_to_tensor(rgb, w, h, oh, ow, info.mean, info.std, out);
    double maxe = 0;
    for (int c = 0; c < 3; c++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double acc = 0;
                for (int y = 0; y < h; y++) {
                    double wy = ref_weight(y, oy, h, oh);
                    if (wy == 0)
                        continue;
                    for (int x = 0; x < w; x++)
                        acc += wy * ref_weight(x, ox, w, ow) * rgb[(y * w + x) * 3 + c] / 255.0;
                }
                acc = (acc - info.mean[c]) / info.std[c];
                double e = fabs(acc - out[(c * oh + oy) * ow + ox]);
                maxe = e > maxe ? e : maxe;
            }
    print_message("resize %dx%d -> %dx%d: max abs err vs reference %.3g\n", w, h, ow, oh, maxe);
    assert_true(maxe < 1e-5);
    free(rgb);
    free(out);
}

static void test_resize_reference(void **state)
{
    (void)state;
    check_resize(37, 23, 11, 7, 0);   /* downscale, non-integer factors */
    check_resize(40, 30, 10, 15, 1);  /* integer factors, normalised */
    check_resize(5, 3, 13, 17, 0);    /* upscale: plain bilinear, align_corners=False */
    check_resize(50, 4, 9, 11, 1);    /* down in x, up in y */
    check_resize(19, 13, 19, 13, 0);  /* identity */
    check_resize(1, 1, 4, 3, 0);      /* constant */
}

/* ---- (3) pixel formats ------------------------------------------------------------------ */

/* Encode w x h pixels (bands, format) with the saver for `suffix`; decode through uflow at
 * the same size (an exact identity resize) with mean 0, std 1, and return the CHW floats. */
static float *roundtrip(const void *px, int w, int h, int bands, VipsBandFormat fmt,
                        VipsInterpretation interp, const char *suffix)
{
    VipsImage *a = vips_image_new_from_memory_copy(px, (size_t)w * h * bands *
                                                   vips_format_sizeof(fmt), w, h, bands, fmt);
    VipsImage *b = NULL;
    assert_non_null(a);
    assert_int_equal(vips_copy(a, &b, "interpretation", interp, NULL), 0);
    void *buf;
    size_t len;
    assert_int_equal(vips_image_write_to_buffer(b, suffix, &buf, &len, NULL), 0);
    g_object_unref(a);
    g_object_unref(b);
    float *out = malloc(sizeof(float) * 3 * w * h);
    uf_model_info info = make_info(h, w, 0);
    uf_error err = {0};
    uf_status st = uf_image_load_buffer(buf, len, &info, NULL, out, &err);
    if (st != UF_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(st, UF_OK);
    g_free(buf);
    return out;
}

static void expect_rgb(const float *out, int w, int h, const uint8_t *rgb, int stride)
{
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < w * h; i++)
            assert_float_equal(out[c * w * h + i], rgb[i * stride + (stride >= 3 ? c : 0)] / 255.0f,
                               1e-7);
}

static void test_pixel_formats(void **state)
{
    (void)state;
    enum { W = 9, H = 7 };
    uint8_t grey[W * H], ga[W * H * 2], rgba[W * H * 4], rgb8[W * H * 3];
    uint16_t rgb16[W * H * 3], grey16[W * H];
    for (int i = 0; i < W * H; i++) {
        grey[i] = (uint8_t)(i * 37 + 5);
        ga[2 * i] = grey[i];
        ga[2 * i + 1] = (uint8_t)(i * 91);
        for (int c = 0; c < 4; c++)
            rgba[4 * i + c] = (uint8_t)(i * (13 + c * 17) + c);
        rgba[4 * i + 3] = (uint8_t)(i % 2 ? 0 : 128); /* transparent: must not darken RGB */
        for (int c = 0; c < 3; c++) {
            rgb8[3 * i + c] = (uint8_t)(i * (5 + c * 29) + 3 * c);
            rgb16[3 * i + c] = (uint16_t)(rgb8[3 * i + c] << 8 | 0xC8); /* low byte dropped */
        }
        grey16[i] = (uint16_t)(grey[i] << 8 | 0xFF);
    }
    float *o;
    o = roundtrip(grey, W, H, 1, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_B_W, ".png");
    expect_rgb(o, W, H, grey, 1);
    free(o);
    o = roundtrip(ga, W, H, 2, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_B_W, ".png");
    expect_rgb(o, W, H, ga, 2);
    free(o);
    o = roundtrip(rgba, W, H, 4, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB, ".png");
    expect_rgb(o, W, H, rgba, 4);
    free(o);
    const char *sfx16[2] = {".png", ".tif"};
    for (int k = 0; k < 2; k++) {
        o = roundtrip(rgb16, W, H, 3, VIPS_FORMAT_USHORT, VIPS_INTERPRETATION_RGB16, sfx16[k]);
        expect_rgb(o, W, H, rgb8, 3);
        free(o);
        o = roundtrip(grey16, W, H, 1, VIPS_FORMAT_USHORT, VIPS_INTERPRETATION_GREY16, sfx16[k]);
        expect_rgb(o, W, H, grey, 1);
        free(o);
    }
    /* CMYK goes through libvips' colour management: white paper stays (nearly) white. */
    uint8_t cmyk[W * H * 4] = {0};
    o = roundtrip(cmyk, W, H, 4, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_CMYK, ".jpg");
    for (int i = 0; i < 3 * W * H; i++)
        assert_true(o[i] > 0.9f);
    free(o);
}

/* ---- (4) errors ------------------------------------------------------------------------- */

static void expect_fail(const void *buf, size_t len, const uf_image_opts *opts, uf_status want)
{
    uf_model_info info = make_info(32, 32, 1);
    float out[3 * 32 * 32];
    uf_error err = {0};
    assert_int_equal(uf_image_load_buffer(buf, len, &info, opts, out, &err), want);
    assert_int_equal(err.status, want);
    assert_true(strlen(err.msg) > 0);
    print_message("  expected error: %s\n", err.msg);
    /* libvips' global error buffer was taken, not left for the next caller */
    assert_string_equal(vips_error_buffer(), "");
}

static void test_errors(void **state)
{
    (void)state;
    char path[4096];
    size_t plen = 0, jlen = 0;
    golden_path(path, sizeof path, "inputs/texture_300x280.png");
    uint8_t *png = read_all(path, &plen);
    golden_path(path, sizeof path, "inputs/defect_640x480.jpg");
    uint8_t *jpg = read_all(path, &jlen);
    if (!png || !jpg) {
        free(png);
        free(jpg);
        fail_msg("golden inputs not found");
        return;
    }
    static const char text[] = "this is certainly not an image, just some text bytes\n";
    expect_fail(text, 0, NULL, UF_ERR_IMAGE);                     /* empty */
    expect_fail(NULL, 10, NULL, UF_ERR_ARG);                      /* NULL with a length */
    expect_fail(text, sizeof text - 1, NULL, UF_ERR_IMAGE);       /* not an image */
    expect_fail(png, 40, NULL, UF_ERR_IMAGE);                     /* header only */
    expect_fail(png, plen / 2, NULL, UF_ERR_IMAGE);               /* truncated PNG */
    expect_fail(jpg, jlen / 2, NULL, UF_ERR_IMAGE);               /* truncated JPEG */
    uint8_t *bad = malloc(plen);
    memcpy(bad, png, plen);
    for (size_t i = plen / 3; i < plen / 3 + 64; i++)
        bad[i] ^= 0x5A;
    expect_fail(bad, plen, NULL, UF_ERR_IMAGE);                   /* corrupt PNG data */
    uf_image_opts small = {.max_pixels = 300 * 280 - 1};
    expect_fail(png, plen, &small, UF_ERR_LIMIT);                 /* decompression-bomb limit */
    small.max_pixels = 300 * 280;
    uf_model_info info = make_info(32, 32, 1);
    float out[3 * 32 * 32];
    uf_error err = {0};
    assert_int_equal(uf_image_load_buffer(png, plen, &info, &small, out, &err), UF_OK);

    assert_int_equal(uf_image_load_file("/nonexistent/x.png", &info, NULL, out, &err), UF_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.png"));
    assert_int_equal(uf_image_load_buffer(png, plen, NULL, NULL, out, &err), UF_ERR_ARG);
    info.height = 0;
    assert_int_equal(uf_image_load_buffer(png, plen, &info, NULL, out, &err), UF_ERR_ARG);
    free(bad);
    free(png);
    free(jpg);
}

/* ---- (5) heatmaps ----------------------------------------------------------------------- */

static uint8_t *decode_png(const void *buf, size_t len, int w, int h)
{
    VipsImage *im = vips_image_new_from_buffer(buf, len, "", NULL);
    assert_non_null(im);
    assert_int_equal(vips_image_get_width(im), w);
    assert_int_equal(vips_image_get_height(im), h);
    assert_int_equal(vips_image_get_bands(im), 3);
    assert_int_equal(vips_image_get_format(im), VIPS_FORMAT_UCHAR);
    size_t n;
    uint8_t *px = vips_image_write_to_memory(im, &n);
    assert_int_equal(n, (size_t)w * h * 3);
    g_object_unref(im);
    return px;
}

static void test_heatmap(void **state)
{
    (void)state;
    enum { W = 30, H = 20 };
    float map[W * H];
    for (int i = 0; i < W * H; i++)
        map[i] = 2.0f + 4.0f * (float)i / (W * H - 1); /* 2 .. 6 */
    map[1] = -100.0f;
    map[2] = 100.0f;
    map[3] = NAN;
    void *png;
    size_t len;
    uf_error err = {0};
    assert_int_equal(uf_heatmap_png(map, H, W, 2.0f, 6.0f, &png, &len, &err), UF_OK);
    uint8_t *px = decode_png(png, len, W, H);
    static const uint8_t lo[3] = {48, 18, 59}, hi[3] = {122, 4, 3}, black[3] = {0, 0, 0};
    assert_memory_equal(px, lo, 3);                  /* vmin: first turbo entry */
    assert_memory_equal(px + 3, lo, 3);              /* below range: clamped */
    assert_memory_equal(px + 6, hi, 3);              /* above range: clamped */
    assert_memory_equal(px + 9, black, 3);           /* NaN */
    assert_memory_equal(px + 3 * (W * H - 1), hi, 3); /* vmax: last turbo entry */

    /* uf_write_file round trip */
    char tmp[] = "/tmp/uflow_test_heatmap_XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(uf_write_file(tmp, png, len, &err), UF_OK);
    size_t rlen;
    void *back = read_all(tmp, &rlen);
    assert_int_equal(rlen, len);
    assert_memory_equal(back, png, len);
    free(back);
    unlink(tmp);
    assert_int_equal(uf_write_file("/nonexistent/dir/x.png", png, len, &err), UF_ERR_IO);

    /* overlay: alpha 1 is the heatmap, alpha 0 the image resized like the model input */
    char path[4096];
    size_t ilen;
    golden_path(path, sizeof path, "inputs/texture_300x280.png");
    void *img = read_all(path, &ilen);
    if (img) {
        void *ov;
        size_t olen;
        assert_int_equal(uf_overlay_png(img, ilen, map, H, W, 2.0f, 6.0f, 1.0f, NULL, &ov,
                                        &olen, &err), UF_OK);
        uint8_t *opx = decode_png(ov, olen, W, H);
        assert_memory_equal(opx, px, (size_t)W * H * 3);
        g_free(opx);
        uf_free(ov);

        assert_int_equal(uf_overlay_png(img, ilen, map, H, W, 2.0f, 6.0f, 0.0f, NULL, &ov,
                                        &olen, &err), UF_OK);
        opx = decode_png(ov, olen, W, H);
        uf_model_info info = make_info(H, W, 0);
        float ref[3 * W * H];
        assert_int_equal(uf_image_load_buffer(img, ilen, &info, NULL, ref, &err), UF_OK);
        for (int i = 0; i < W * H; i++)
            for (int c = 0; c < 3; c++)
                assert_int_equal(opx[3 * i + c], (int)(ref[c * W * H + i] * 255.0f + 0.5f));
        g_free(opx);
        uf_free(ov);

        ov = (void *)1;
        assert_int_equal(uf_overlay_png(img, ilen, map, H, W, 2.0f, 6.0f, 1.5f, NULL, &ov,
                                        &olen, &err), UF_ERR_ARG);
        assert_null(ov);
        assert_int_equal(uf_overlay_png("junk", 4, map, H, W, 2.0f, 6.0f, 0.5f, NULL, &ov,
                                        &olen, &err), UF_ERR_IMAGE);
        free(img);
    }
    uf_free(png);
    assert_int_equal(uf_heatmap_png(map, H, W, 6.0f, 2.0f, &png, &len, &err), UF_ERR_ARG);
    assert_null(png);
    assert_int_equal(uf_heatmap_png(map, 0, W, 2.0f, 6.0f, &png, &len, &err), UF_ERR_ARG);
    g_free(px);
}

/* ---- concurrent decoding (one libvips init, no shared scratch) -------------------------- */

typedef struct job {
    const void *buf;
    size_t len;
    const float *ref;
    int ok;
} job;

static void *decode_job(void *arg)
{
    job *j = arg;
    uf_model_info info = make_info(64, 48, 1);
    float *out = malloc(sizeof(float) * 3 * 64 * 48);
    uf_error err;
    j->ok = 1;
    for (int r = 0; r < 5; r++)
        if (uf_image_load_buffer(j->buf, j->len, &info, NULL, out, &err) != UF_OK ||
            memcmp(out, j->ref, sizeof(float) * 3 * 64 * 48) != 0)
            j->ok = 0;
    free(out);
    return NULL;
}

/* The map of the golden heatmap (tests/golden/heatmap_256x192.png): rings, fine texture, both
 * clamps and two NaNs, so every turbo entry is used and the compressor has work. Integer-derived
 * floats, the same on every platform. */
static void golden_heatmap_map(float *m, int w, int h)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t k = (uint32_t)(y * w + x) * 2654435761u;
            int q = ((x * x + 3 * y * y) / 97) % 330 + (int)(k >> 27);
            m[y * w + x] = (float)q / 300.0f - 0.05f;
        }
    m[5] = NAN;
    m[w * h / 2 + 7] = NAN;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The heatmap encoder is tuned for speed (zlib level, row filter): the file must stay a valid,
 * compressed 8-bit RGB PNG whose pixels are exactly those of the golden file, which the
 * previous encoder (libvips defaults) wrote from the same map. */
static void test_heatmap_encoding(void **state)
{
    (void)state;
    enum { W = 256, H = 192 };
    static float map[W * H];
    golden_heatmap_map(map, W, H);
    void *png;
    size_t len;
    uf_error err = {0};
    assert_int_equal(uf_heatmap_png(map, H, W, 0.0f, 1.0f, &png, &len, &err), UF_OK);
    static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    const uint8_t *p = png;
    assert_true(len > 8 + 25);
    assert_memory_equal(p, sig, 8);
    assert_memory_equal(p + 12, "IHDR", 4);
    assert_int_equal(be32(p + 16), W);
    assert_int_equal(be32(p + 20), H);
    assert_int_equal(p[24], 8); /* bit depth */
    assert_int_equal(p[25], 2); /* truecolour RGB: no palette quantisation */
    assert_int_equal(p[28], 0); /* not interlaced */
    assert_true(len < (size_t)W * H * 3 / 2); /* still compressed (level 0 would be ~raw) */

    /* strict decode: a bad CRC, a truncated stream or trailing junk fails instead of warning */
    VipsImage *im = vips_image_new_from_buffer(png, len, "", "fail_on", VIPS_FAIL_ON_WARNING, NULL);
    assert_non_null(im);
    size_t n = 0;
    uint8_t *px = vips_image_write_to_memory(im, &n);
    g_object_unref(im);
    assert_non_null(px);
    assert_int_equal(n, (size_t)W * H * 3);

    char path[4096];
    golden_path(path, sizeof path, "heatmap_256x192.png");
    size_t glen;
    void *gbuf = read_all(path, &glen);
    if (!gbuf)
        fail_msg("golden heatmap %s not found", path);
    uint8_t *ref = decode_png(gbuf, glen, W, H);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += px[i] != ref[i];
    assert_int_equal(bad, 0);
    g_free(ref);
    free(gbuf);
    g_free(px);
    uf_free(png);
}

static void test_threads(void **state)
{
    (void)state;
    char path[4096];
    size_t len;
    golden_path(path, sizeof path, "inputs/defect_640x480.jpg");
    void *buf = read_all(path, &len);
    if (!buf) {
        fail_msg("golden inputs not found");
        return;
    }
    static float ref[3 * 64 * 48];
    uf_model_info info = make_info(64, 48, 1);
    uf_error err;
    assert_int_equal(uf_image_load_file(path, &info, NULL, ref, &err), UF_OK);
    pthread_t th[4];
    job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){buf, len, ref, 0};
        assert_int_equal(pthread_create(&th[i], NULL, decode_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(jobs[i].ok);
    }
    free(buf);
}

int main(void)
{
    if (VIPS_INIT("test_image"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_inputs),
        cmocka_unit_test(test_resize_reference),
        cmocka_unit_test(test_pixel_formats),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_heatmap),
        cmocka_unit_test(test_heatmap_encoding),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
