/* heatmap.c — anomaly-map visualisation: turbo-colormap PNG and blend over the input image.
 *
 * The colormap is Google's Turbo (Anton Mikhailov, 2019, Apache-2.0), as the published
 * 256-entry sRGB byte table (round(255 * turbo_srgb_floats)). PNG encoding goes through
 * libvips; returned buffers are g_malloc'd by it and released with uf_free().
 */
#include "core/internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <vips/vips.h>

#include "io/image.h"

static const uint8_t turbo[256 * 3] = {
    48,18,59, 50,21,67, 51,24,74, 52,27,81, 53,30,88, 54,33,95, 55,36,102, 56,39,109,
    57,42,115, 58,45,121, 59,47,128, 60,50,134, 61,53,139, 62,56,145, 63,59,151, 63,62,156,
    64,64,162, 65,67,167, 65,70,172, 66,73,177, 66,75,181, 67,78,186, 68,81,191, 68,84,195,
    68,86,199, 69,89,203, 69,92,207, 69,94,211, 70,97,214, 70,100,218, 70,102,221, 70,105,224,
    70,107,227, 71,110,230, 71,113,233, 71,115,235, 71,118,238, 71,120,240, 71,123,242, 70,125,244,
    70,128,246, 70,130,248, 70,133,250, 70,135,251, 69,138,252, 69,140,253, 68,143,254, 67,145,254,
    66,148,255, 65,150,255, 64,153,255, 62,155,254, 61,158,254, 59,160,253, 58,163,252, 56,165,251,
    55,168,250, 53,171,248, 51,173,247, 49,175,245, 47,178,244, 46,180,242, 44,183,240, 42,185,238,
    40,188,235, 39,190,233, 37,192,231, 35,195,228, 34,197,226, 32,199,223, 31,201,221, 30,203,218,
    28,205,216, 27,208,213, 26,210,210, 26,212,208, 25,213,205, 24,215,202, 24,217,200, 24,219,197,
    24,221,194, 24,222,192, 24,224,189, 25,226,187, 25,227,185, 26,228,182, 28,230,180, 29,231,178,
    31,233,175, 32,234,172, 34,235,170, 37,236,167, 39,238,164, 42,239,161, 44,240,158, 47,241,155,
    50,242,152, 53,243,148, 56,244,145, 60,245,142, 63,246,138, 67,247,135, 70,248,132, 74,248,128,
    78,249,125, 82,250,122, 85,250,118, 89,251,115, 93,252,111, 97,252,108, 101,253,105, 105,253,102,
    109,254,98, 113,254,95, 117,254,92, 121,254,89, 125,255,86, 128,255,83, 132,255,81, 136,255,78,
    139,255,75, 143,255,73, 146,255,71, 150,254,68, 153,254,66, 156,254,64, 159,253,63, 161,253,61,
    164,252,60, 167,252,58, 169,251,57, 172,251,56, 175,250,55, 177,249,54, 180,248,54, 183,247,53,
    185,246,53, 188,245,52, 190,244,52, 193,243,52, 195,241,52, 198,240,52, 200,239,52, 203,237,52,
    205,236,52, 208,234,52, 210,233,53, 212,231,53, 215,229,53, 217,228,54, 219,226,54, 221,224,55,
    223,223,55, 225,221,55, 227,219,56, 229,217,56, 231,215,57, 233,213,57, 235,211,57, 236,209,58,
    238,207,58, 239,205,58, 241,203,58, 242,201,58, 244,199,58, 245,197,58, 246,195,58, 247,193,58,
    248,190,57, 249,188,57, 250,186,57, 251,184,56, 251,182,55, 252,179,54, 252,177,54, 253,174,53,
    253,172,52, 254,169,51, 254,167,50, 254,164,49, 254,161,48, 254,158,47, 254,155,45, 254,153,44,
    254,150,43, 254,147,42, 254,144,41, 253,141,39, 253,138,38, 252,135,37, 252,132,35, 251,129,34,
    251,126,33, 250,123,31, 249,120,30, 249,117,29, 248,114,28, 247,111,26, 246,108,25, 245,105,24,
    244,102,23, 243,99,21, 242,96,20, 241,93,19, 240,91,18, 239,88,17, 237,85,16, 236,83,15,
    235,80,14, 234,78,13, 232,75,12, 231,73,12, 229,71,11, 228,69,10, 226,67,10, 225,65,9,
    223,63,8, 221,61,8, 220,59,7, 218,57,7, 216,55,6, 214,53,6, 212,51,5, 210,49,5,
    208,47,5, 206,45,4, 204,43,4, 202,42,4, 200,40,3, 197,38,3, 195,37,3, 193,35,2,
    190,33,2, 188,32,2, 185,30,2, 183,29,2, 180,27,1, 178,26,1, 175,24,1, 172,23,1,
    169,22,1, 167,20,1, 164,19,1, 161,18,1, 158,16,1, 155,15,1, 152,14,1, 149,13,1,
    146,11,1, 142,10,1, 139,9,2, 136,8,2, 133,7,2, 129,6,2, 126,5,2, 122,4,3,
};

/* Values outside [vmin, vmax] saturate to the end colours; NaN has no colour, so black. */
static const uint8_t *colour(float v, float vmin, float vmax)
{
    static const uint8_t black[3] = {0, 0, 0};
    if (isnan(v))
        return black;
    float t = vmax > vmin ? (v - vmin) / (vmax - vmin) : (v > vmin ? 1.0f : 0.0f);
    t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    return turbo + 3 * (int)(t * 255.0f + 0.5f);
}

static uf_status check_map(const float *map, int h, int w, float vmin, float vmax,
                           void **png, size_t *png_len, uf_error *err)
{
    if (png)
        *png = NULL;
    if (png_len)
        *png_len = 0;
    if (!map || !png || !png_len)
        return uf_err(err, UF_ERR_ARG, "heatmap: NULL argument");
    /* libvips coordinates are int; keep the RGB buffer well inside that too. */
    if (h <= 0 || w <= 0 || (int64_t)h * w > (INT64_C(1) << 28))
        return uf_err(err, UF_ERR_ARG, "heatmap: invalid map size %dx%d", w, h);
    if (!isfinite(vmin) || !isfinite(vmax) || vmin > vmax)
        return uf_err(err, UF_ERR_ARG, "heatmap: invalid range [%g, %g]", (double)vmin,
                      (double)vmax);
    return UF_OK;
}

/* zlib level for encode_png_bands: FAST for the drawn maps (heatmap, mask), DEFAULT (libvips'
 * level 6) for anything holding a photograph (overlay, uf_rgb_png). */
enum { PNG_FAST = 1, PNG_DEFAULT = 6 };

/* Row filter "none" in both cases (libvips' default since 8.13, set here so an older libvips
 * does not search all five filters). Level 1 on a 256x256 heatmap: ~4x faster than level 6
 * for ~1.3x the bytes (bench/png_bench, docs/benchmarks.md) — served on every predict call,
 * so encode time is latency while the bytes only cross loopback or a LAN. */
static uf_status encode_png_bands(const uint8_t *rgb, int w, int h, int bands, int level, void **png,
                                  size_t *png_len, uf_error *err)
{
    uf_status st = uf_img_vips_init(err);
    if (st != UF_OK)
        return st;
    /* Wraps rgb without copying; the image is gone before rgb is freed by the caller. */
    VipsImage *im = vips_image_new_from_memory(rgb, (size_t)w * (size_t)h * bands, w, h, bands,
                                               VIPS_FORMAT_UCHAR);
    if (!im)
        return uf_img_vips_error(err, "cannot wrap heatmap pixels");
    if (vips_pngsave_buffer(im, png, png_len, "compression", level, "filter", VIPS_FOREIGN_PNG_FILTER_NONE,
                            NULL)) {
        *png = NULL;
        *png_len = 0;
        st = uf_img_vips_error(err, "cannot encode PNG");
    }
    g_object_unref(im);
    return st;
}

static uf_status encode_png(const uint8_t *rgb, int w, int h, int level, void **png, size_t *png_len,
                            uf_error *err)
{
    return encode_png_bands(rgb, w, h, 3, level, png, png_len, err);
}

uf_status uf_mask_png(const uint8_t *mask, int h, int w, void **png, size_t *png_len, uf_error *err)
{
    if (!mask || !png || !png_len || h < 1 || w < 1)
        return uf_err(err, UF_ERR_ARG, "mask png: bad arguments");
    size_t n = (size_t)h * (size_t)w;
    uint8_t *g = malloc(n);
    if (!g)
        return uf_err(err, UF_ERR_NOMEM, "mask png: out of memory for %dx%d", w, h);
    for (size_t i = 0; i < n; i++)
        g[i] = mask[i] ? 255 : 0;
    uf_status st = encode_png_bands(g, w, h, 1, PNG_FAST, png, png_len, err);
    free(g);
    return st;
}

uf_status uf_rgb_png(const uint8_t *rgb, int h, int w, void **png, size_t *png_len, uf_error *err)
{
    if (png)
        *png = NULL;
    if (png_len)
        *png_len = 0;
    if (!rgb || !png || !png_len || h < 1 || w < 1 || (int64_t)h * w > (INT64_C(1) << 28))
        return uf_err(err, UF_ERR_ARG, "rgb png: bad arguments");
    return encode_png(rgb, w, h, PNG_DEFAULT, png, png_len, err);
}

uf_status uf_heatmap_png(const float *map, int h, int w, float vmin, float vmax,
                         void **png, size_t *png_len, uf_error *err)
{
    uf_status st = check_map(map, h, w, vmin, vmax, png, png_len, err);
    if (st != UF_OK)
        return st;
    size_t n = (size_t)h * (size_t)w;
    uint8_t *rgb = malloc(3 * n);
    if (!rgb)
        return uf_err(err, UF_ERR_NOMEM, "heatmap: out of memory for %dx%d", w, h);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = colour(map[i], vmin, vmax);
        rgb[3 * i] = c[0];
        rgb[3 * i + 1] = c[1];
        rgb[3 * i + 2] = c[2];
    }
    st = encode_png(rgb, w, h, PNG_FAST, png, png_len, err);
    free(rgb);
    return st;
}

uf_status uf_overlay_png(const void *image, size_t image_len, const float *map, int h, int w,
                         float vmin, float vmax, float alpha, const uf_image_opts *opts,
                         void **png, size_t *png_len, uf_error *err)
{
    uf_status st = check_map(map, h, w, vmin, vmax, png, png_len, err);
    if (st != UF_OK)
        return st;
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return uf_err(err, UF_ERR_ARG, "overlay: alpha %g is not in [0, 1]", (double)alpha);
    if (!image && image_len)
        return uf_err(err, UF_ERR_ARG, "overlay: NULL image");
    uint8_t *px;
    int iw, ih, nb;
    st = uf_img_decode(image, image_len, NULL, opts, &px, &iw, &ih, &nb, err);
    if (st != UF_OK) {
        uf_err_prefix(err, "overlay");
        return st;
    }
    /* The same resize as the model input, so the overlay shows what the model saw. */
    size_t n = (size_t)h * (size_t)w;
    static const float zero[3] = {0, 0, 0}, one[3] = {1, 1, 1};
    float *img = malloc(sizeof(float) * 3 * n);
    uint8_t *rgb = malloc(3 * n);
    if (!img || !rgb || uf_img_resize(px, iw, ih, nb, h, w, zero, one, img) != UF_OK) {
        st = uf_err(err, UF_ERR_NOMEM, "overlay: out of memory for %dx%d", w, h);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = colour(map[i], vmin, vmax);
        for (int k = 0; k < 3; k++) {
            float v = alpha * (float)c[k] + (1.0f - alpha) * 255.0f * img[(size_t)k * n + i];
            rgb[3 * i + (size_t)k] = (uint8_t)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)(v + 0.5f));
        }
    }
    st = encode_png(rgb, w, h, PNG_DEFAULT, png, png_len, err);
done:
    g_free(px);
    free(img);
    free(rgb);
    return st;
}
