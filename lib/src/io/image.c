/* image.c — anomalib's image pre-processing (docs/uflow-math.md "Pre-processing") and the public image API.
 *
 * Pipeline: decode (image_decode.c) -> 8-bit RGB as PIL's convert("RGB") -> float /255 ->
 * antialiased bilinear resize as torch's interpolate(bilinear, align_corners=False,
 * antialias=True) -> (x - mean) / std, CHW. The filter weights are bit-identical to torch's; the sums differ by at most
 * ~2 ulp because torch's build contracts some of them into FMAs.
 *
 * EXIF orientation is deliberately ignored: anomalib reads with PIL, which does not
 * auto-rotate, so a rotated decode would feed the model a different image than training saw.
 */
#include "core/internal.h"
#include "io/image.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

/* One axis of torch's separable AA filter (_compute_indices_min_size_weights_aa, bilinear):
 * the float/double mix of the expressions is kept on purpose so the weights match torch's
 * float32 kernel bit for bit. */
typedef struct axis {
    int *lo, *cnt;  /* first source index and number of taps per output index */
    float *w;       /* [out][k] */
    int k;
} axis;

static float aa_tri(float x)
{
    if (x < 0.0f)
        x = -x;
    return x < 1.0f ? 1.0f - x : 0.0f;
}

static int axis_init(axis *a, int in, int out)
{
    float scale = (float)in / (float)out;
    float support = scale >= 1.0f ? (float)(1.0 * scale) : 1.0f;
    float invscale = scale >= 1.0f ? (float)(1.0 / scale) : 1.0f;
    a->k = (int)ceilf(support) * 2 + 1;
    a->lo = malloc(sizeof(int) * (size_t)out);
    a->cnt = malloc(sizeof(int) * (size_t)out);
    a->w = calloc((size_t)out * (size_t)a->k, sizeof(float));
    if (!a->lo || !a->cnt || !a->w)
        return -1;
    for (int i = 0; i < out; i++) {
        float center = (float)(scale * (i + 0.5));
        int64_t xmin = (int64_t)((double)(center - support) + 0.5);
        int64_t xmax = (int64_t)((double)(center + support) + 0.5);
        if (xmin < 0)
            xmin = 0;
        if (xmax > in)
            xmax = in;
        int64_t xsize = UF_MAX(UF_MIN(xmax - xmin, (int64_t)a->k), 0);
        float *w = a->w + (size_t)i * (size_t)a->k, total = 0.0f;
        for (int64_t j = 0; j < xsize; j++) {
            w[j] = aa_tri((float)(((double)((float)(j + xmin) - center) + 0.5) * invscale));
            total += w[j];
        }
        for (int64_t j = 0; j < xsize && total != 0.0f; j++)
            w[j] /= total;
        a->lo[i] = (int)xmin;
        a->cnt[i] = (int)xsize;
    }
    return 0;
}

static void axis_free(axis *a)
{
    free(a->lo);
    free(a->cnt);
    free(a->w);
}

/* Resize + normalise interleaved 8-bit data with nb = 1 (grey, replicated) or 3 bands into
 * CHW floats. Width first, then height, as torch does (the order changes float rounding). */
uf_status uf_img_resize(const uint8_t *px, int w, int h, int nb, int out_h, int out_w,
                        const float mean[3], const float std[3], float *out)
{
    axis ax = {0}, ay = {0};
    float *tmp = malloc(sizeof(float) * (size_t)nb * (size_t)h * (size_t)out_w);
    uf_status st = UF_ERR_NOMEM;
    if (!tmp || axis_init(&ax, w, out_w) || axis_init(&ay, h, out_h))
        goto done;
    float lut[256];
    for (int i = 0; i < 256; i++)
        lut[i] = (float)i / 255.0f;  /* torchvision divides (multiplying by 1/255 differs) */
    /* Loop orders favour memory locality; each output value still sums its taps in
     * torch's order, which is what fixes the float result. */
    for (int y = 0; y < h; y++) {
        const uint8_t *row = px + (size_t)y * (size_t)w * (size_t)nb;
        for (int x = 0; x < out_w; x++) {
            const float *wt = ax.w + (size_t)x * (size_t)ax.k;
            const uint8_t *s = row + (size_t)ax.lo[x] * (size_t)nb;
            for (int c = 0; c < nb; c++) {
                float acc = lut[s[c]] * wt[0];
                for (int j = 1; j < ax.cnt[x]; j++)
                    acc += lut[s[(size_t)j * (size_t)nb + (size_t)c]] * wt[j];
                tmp[((size_t)c * (size_t)h + (size_t)y) * (size_t)out_w + (size_t)x] = acc;
            }
        }
    }
    size_t plane = (size_t)out_h * (size_t)out_w;
    for (int c = 0; c < 3; c++) {
        const float *tc = tmp + (size_t)(nb == 3 ? c : 0) * (size_t)h * (size_t)out_w;
        for (int y = 0; y < out_h; y++) {
            const float *wt = ay.w + (size_t)y * (size_t)ay.k;
            const float *s = tc + (size_t)ay.lo[y] * (size_t)out_w;
            float *o = out + (size_t)c * plane + (size_t)y * (size_t)out_w;
            for (int x = 0; x < out_w; x++)
                o[x] = s[x] * wt[0];
            for (int j = 1; j < ay.cnt[y]; j++) {
                const float *sj = s + (size_t)j * (size_t)out_w;
                for (int x = 0; x < out_w; x++)
                    o[x] += sj[x] * wt[j];
            }
            for (int x = 0; x < out_w; x++)
                o[x] = (o[x] - mean[c]) / std[c];
        }
    }
    st = UF_OK;
done:
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    return st;
}

void uf_image_rgb8_to_tensor(const uint8_t *rgb, int w, int h, int out_h, int out_w,
                             const float mean[3], const float std[3], float *out)
{
    if (!rgb || !out || !mean || !std || w <= 0 || h <= 0 || out_h <= 0 || out_w <= 0)
        return;
    /* No error channel here: invalid sizes leave out untouched, and an allocation failure
     * makes the output unmistakably invalid rather than silently stale. */
    if (uf_img_resize(rgb, w, h, 3, out_h, out_w, mean, std, out) != UF_OK)
        for (size_t i = 0; i < (size_t)3 * (size_t)out_h * (size_t)out_w; i++)
            out[i] = NAN;
}

static uf_status load(const void *data, size_t len, const char *path, const uf_model_info *info,
                      const uf_image_opts *opts, float *out, uf_error *err)
{
    if (!info || !out)
        return uf_err(err, UF_ERR_ARG, "image load: NULL %s", info ? "output" : "model info");
    if (info->height <= 0 || info->width <= 0)
        return uf_err(err, UF_ERR_ARG, "image load: invalid input size %dx%d", info->width,
                      info->height);
    uint8_t *px;
    int w, h, nb;
    uf_status st = uf_img_decode(data, len, path, opts, &px, &w, &h, &nb, err);
    if (st != UF_OK)
        return st;
    st = uf_img_resize(px, w, h, nb, info->height, info->width, info->mean, info->std, out);
    g_free(px);
    if (st != UF_OK)
        return uf_err(err, st, "image load: out of memory resizing %dx%d to %dx%d", w, h,
                      info->width, info->height);
    return UF_OK;
}

uf_status uf_image_load_file(const char *path, const uf_model_info *info,
                             const uf_image_opts *opts, float *out, uf_error *err)
{
    if (!path)
        return uf_err(err, UF_ERR_ARG, "image load: NULL path");
    return load(NULL, 0, path, info, opts, out, err);
}

uf_status uf_image_load_buffer(const void *data, size_t len, const uf_model_info *info,
                               const uf_image_opts *opts, float *out, uf_error *err)
{
    if (!data && len)
        return uf_err(err, UF_ERR_ARG, "image load: NULL buffer");
    return load(data, len, NULL, info, opts, out, err);
}

uf_status uf_write_file(const char *path, const void *data, size_t len, uf_error *err)
{
    if (!path || (!data && len))
        return uf_err(err, UF_ERR_ARG, "write file: NULL %s", path ? "data" : "path");
    FILE *f = fopen(path, "wb");
    if (!f)
        return uf_err(err, UF_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    int bad = len && fwrite(data, 1, len, f) != len;
    int e = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad)
        return uf_err(err, UF_ERR_IO, "cannot write %s: %s", path, strerror(e));
    return UF_OK;
}

void uf_free(void *p) { g_free(p); }

uf_status uf_image_decode_file(const char *path, const uf_image_opts *opts, uint8_t **px,
                               int *w, int *h, int *bands, uf_error *err)
{
    if (!path || !px || !w || !h || !bands)
        return uf_err(err, UF_ERR_ARG, "decode: NULL argument");
    return uf_img_decode(NULL, 0, path, opts, px, w, h, bands, err);
}

uf_status uf_image_decode_buffer(const void *data, size_t len, const uf_image_opts *opts,
                                 uint8_t **px, int *w, int *h, int *bands, uf_error *err)
{
    if ((!data && len) || !px || !w || !h || !bands)
        return uf_err(err, UF_ERR_ARG, "decode: NULL argument");
    return uf_img_decode(data, len, NULL, opts, px, w, h, bands, err);
}

uf_status uf_mask_load_file(const char *path, int h, int w, uint8_t *out, uf_error *err)
{
    if (!path || !out || h < 1 || w < 1)
        return uf_err(err, UF_ERR_ARG, "mask: bad arguments");
    uint8_t *px = NULL;
    int mw, mh, nb;
    uf_status st = uf_img_decode(NULL, 0, path, NULL, &px, &mw, &mh, &nb, err);
    if (st != UF_OK)
        return st;
    for (int y = 0; y < h; y++) {
        size_t sy = (size_t)y * (size_t)mh / (size_t)h;
        for (int x = 0; x < w; x++) {
            size_t sx = (size_t)x * (size_t)mw / (size_t)w;
            const uint8_t *p = px + (sy * (size_t)mw + sx) * (size_t)nb;
            uint8_t v = 0;
            for (int c = 0; c < nb; c++)
                v |= p[c];
            out[(size_t)y * w + x] = v != 0;
        }
    }
    g_free(px);
    return UF_OK;
}
