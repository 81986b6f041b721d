/* image_decode.c — the untrusted edge of image input: libvips start-up with every loader
 * outside the allow-list blocked, format sniffing, and the decode to 8-bit pixels with the
 * pixel limit checked on the header before any pixel is decoded.
 *
 * Why sniff ourselves: left to itself libvips offers the bytes to every loader it has —
 * librsvg, poppler, ImageMagick, its own PPM/HDR/matrix/FITS/CSV parsers — and some of those
 * decode (or allocate) a whole image before its size can be checked. Calling the one loader
 * the magic bytes name keeps the attack surface to five well-fuzzed decoders; the process-wide
 * block list set at start-up is the second line, for any path that still asks libvips to pick.
 *
 * BMP is refused: libvips 8.14 has no BMP loader of its own, only ImageMagick's (flagged
 * untrusted, and it allocates the pixel cache from the header before anything can check it),
 * and a BMP converts losslessly to PNG.
 */
#include "core/internal.h"
#include "io/image.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#define UF_DEFAULT_MAX_PIXELS (UINT64_C(64) << 20) /* 64 Mi pixels */

typedef int (*loader_fn)(VipsSource *src, VipsImage **out, ...);

/* The accepted formats. nick is the libvips loader family (nickname without _source/_buffer)
 * left unblocked at start-up. */
static const struct accepted {
    const char *name, *nick;
    loader_fn load;
} accepted[] = {
    {"JPEG", "jpegload", vips_jpegload_source}, {"PNG", "pngload", vips_pngload_source},
    {"WebP", "webpload", vips_webpload_source}, {"TIFF", "tiffload", vips_tiffload_source},
    {"GIF", "gifload", vips_gifload_source},
};
enum { N_ACCEPTED = sizeof accepted / sizeof accepted[0], WEBP = 2, SNIFF_BYTES = 32 };

/* The only global state: libvips is process-wide and is initialised (and its loaders
 * blocked) exactly once; the blocks are lifted at most once (any_format). */
static pthread_once_t vips_once = PTHREAD_ONCE_INIT, lift_once = PTHREAD_ONCE_INIT;
static int vips_init_rc;

static int allowed_nick(const char *nick)
{
    for (int i = 0; i < N_ACCEPTED; i++) {
        size_t n = strlen(accepted[i].nick);
        if (strncmp(nick, accepted[i].nick, n) == 0 &&
            (!nick[n] || !strcmp(nick + n, "_source") || !strcmp(nick + n, "_buffer")))
            return 1;
    }
    return 0;
}

static void *unblock_allowed(VipsOperationClass *cls, void *unused)
{
    (void)unused;
    /* An untrusted loader stays blocked even if it ever joins an allowed family. */
    if (!(cls->flags & VIPS_OPERATION_UNTRUSTED) && allowed_nick(VIPS_OBJECT_CLASS(cls)->nickname))
        vips_operation_block_set(G_OBJECT_CLASS_NAME(cls), FALSE);
    return NULL;
}

static void vips_start(void)
{
    vips_init_rc = VIPS_INIT("uflow");
    if (vips_init_rc != 0)
        return;
    vips_block_untrusted_set(TRUE);
    vips_operation_block_set("VipsForeignLoad", TRUE);
    vips_class_map_all(g_type_from_name("VipsForeignLoad"), (VipsClassMapFn)unblock_allowed, NULL);
}

static void lift_blocks(void)
{
    vips_operation_block_set("VipsForeignLoad", FALSE);
    vips_block_untrusted_set(FALSE);
}

uf_status uf_img_vips_init(uf_error *err)
{
    pthread_once(&vips_once, vips_start);
    if (vips_init_rc != 0)
        return uf_img_vips_error(err, "cannot initialise libvips");
    return UF_OK;
}

/* libvips keeps one process-wide error buffer; take its text (and clear it) so that the next
 * failure does not report stale messages. Under concurrent failures in several threads the
 * texts can interleave; libvips offers nothing better. */
uf_status uf_img_vips_error(uf_error *err, const char *what)
{
    char *v = vips_error_buffer_copy();
    if (v) {
        for (char *p = v; *p; p++)
            if (*p == '\n')
                *p = p[1] ? ' ' : '\0';
    }
    uf_status st = uf_err(err, UF_ERR_IMAGE, "%s: %s", what,
                          v && *v ? v : "unrecognised, truncated or corrupt data");
    g_free(v);
    return st;
}

static int starts(const unsigned char *b, size_t n, const void *sig, size_t len)
{
    return n >= len && memcmp(b, sig, len) == 0;
}

/* The accepted format the first bytes announce, or -1. */
static int sniff_accepted(const unsigned char *b, size_t n)
{
    if (starts(b, n, "\xFF\xD8\xFF", 3))
        return 0;
    if (starts(b, n, "\x89PNG\r\n\x1A\n", 8))
        return 1;
    if (starts(b, n, "RIFF", 4) && n >= 12 && !memcmp(b + 8, "WEBP", 4))
        return 2;
    /* classic TIFF (42) and BigTIFF (43), either byte order */
    if (starts(b, n, "II*\0", 4) || starts(b, n, "MM\0*", 4) || starts(b, n, "II+\0", 4) ||
        starts(b, n, "MM\0+", 4))
        return 3;
    if (starts(b, n, "GIF87a", 6) || starts(b, n, "GIF89a", 6))
        return 4;
    return -1;
}

/* The name of a format libvips (or a library behind it) could read but uflow refuses, or
 * NULL for bytes no decoder should be shown at all. Only for the message and the status:
 * the refusal itself is the allow-list above. */
static const char *sniff_refused(const unsigned char *b, size_t n)
{
    static const struct { const char *sig; size_t len; const char *name; } known[] = {
        {"BM", 2, "BMP"},           {"%PDF", 4, "PDF"},          {"<?xml", 5, "SVG/XML"},
        {"<svg", 4, "SVG"},         {"#?RADIANCE", 10, "Radiance HDR"},
        {"#?RGBE", 6, "Radiance HDR"}, {"SIMPLE  =", 9, "FITS"}, {"MATLAB", 6, "MAT"},
        {"8BPS", 4, "PSD"},         {"\x76\x2F\x31\x01", 4, "OpenEXR"},
        {"\xFF\x0A", 2, "JPEG XL"}, {"\0\0\0\x0CJXL ", 8, "JPEG XL"},
        {"\0\0\0\x0CjP  ", 8, "JPEG 2000"}, {"\xFF\x4F\xFF\x51", 4, "JPEG 2000"},
        {"\x08\xF2\xA6\xB6", 4, "VIPS"}, {"\xB6\xA6\xF2\x08", 4, "VIPS"},
        {"\0\0\1\0", 4, "ICO"},
    };
    size_t i = 0;
    if (starts(b, n, "\xEF\xBB\xBF", 3))
        i = 3; /* UTF-8 BOM before an XML/SVG document */
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
        i++;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (starts(b + i, n - i, known[k].sig, known[k].len))
            return known[k].name;
    if (n >= 12 && !memcmp(b + 4, "ftyp", 4))
        return "HEIF/AVIF";
    /* Netpbm: P1-P7 and the float maps PF/Pf, followed by white space */
    if (n >= 3 && b[0] == 'P' && ((b[1] >= '1' && b[1] <= '7') || b[1] == 'F' || b[1] == 'f') &&
        (b[2] == ' ' || b[2] == '\n' || b[2] == '\r' || b[2] == '\t'))
        return "PNM/PFM";
    return NULL;
}

static uint32_t le24(const unsigned char *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16; }

/* The WebP canvas from the first chunk, which the container format requires to be VP8X
 * (extended: the canvas), VP8 (lossy) or VP8L (lossless); 0 if it is none of them. */
static int webp_size(const unsigned char *b, size_t n, uint64_t *w, uint64_t *h)
{
    const unsigned char *d = b + 20;
    if (n >= 30 && !memcmp(b + 12, "VP8X", 4)) {
        *w = (uint64_t)le24(d + 4) + 1;
        *h = (uint64_t)le24(d + 7) + 1;
    } else if (n >= 30 && !memcmp(b + 12, "VP8 ", 4) && !memcmp(d + 3, "\x9D\x01\x2A", 3)) {
        *w = (d[6] | (uint32_t)d[7] << 8) & 0x3FFF;
        *h = (d[8] | (uint32_t)d[9] << 8) & 0x3FFF;
    } else if (n >= 25 && !memcmp(b + 12, "VP8L", 4) && d[0] == 0x2F) {
        uint32_t v = d[1] | (uint32_t)d[2] << 8 | (uint32_t)d[3] << 16 | (uint32_t)d[4] << 24;
        *w = (v & 0x3FFF) + 1;
        *h = (v >> 14 & 0x3FFF) + 1;
    } else {
        return 0;
    }
    return 1;
}

static uf_status too_large(uf_error *err, uint64_t w, uint64_t h, uint64_t limit)
{
    return uf_err(err, UF_ERR_LIMIT, "image is %llux%llu = %llu pixels, above the limit of %llu",
                  (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h),
                  (unsigned long long)limit);
}

/* Opens the header only: loaders in libvips are lazy, pixels come at write time. */
static uf_status open_header(VipsSource *src, const uf_image_opts *opts, uint64_t limit,
                             VipsImage **out, uf_error *err)
{
    unsigned char *head = NULL;
    gint64 n = vips_source_sniff_at_most(src, &head, SNIFF_BYTES);
    if (n < 0)
        return uf_img_vips_error(err, "cannot read image");
    if (n == 0)
        return uf_err(err, UF_ERR_IMAGE, "cannot decode image: empty");
    int k = sniff_accepted(head, (size_t)n);
    int any = opts && opts->any_format;
    /* Sequential access streams the decode instead of buffering a full copy; fail_on=error
     * turns truncated or corrupt data into an error, as PIL would, instead of grey fill. */
    *out = NULL;
    if (k == WEBP) {
        /* libvips 8.14 allocates the whole RGBA canvas while reading a WebP header (1 GiB for
         * 16383x16383), before any caller can look at the size: check it first. */
        uint64_t w, h;
        if (!webp_size(head, (size_t)n, &w, &h))
            return uf_err(err, UF_ERR_IMAGE, "cannot decode image: WebP without a VP8/VP8L/VP8X "
                                             "first chunk");
        if (w * h > limit)
            return too_large(err, w, h, limit);
    }
    if (k >= 0) {
        if (accepted[k].load(src, out, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                             VIPS_FAIL_ON_ERROR, NULL))
            *out = NULL;
    } else if (any) {
        pthread_once(&lift_once, lift_blocks);
        *out = vips_image_new_from_source(src, "", "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                          VIPS_FAIL_ON_ERROR, NULL);
    } else {
        const char *name = sniff_refused(head, (size_t)n);
        if (name)
            return uf_err(err, UF_ERR_FORMAT_NOT_ACCEPTED,
                          "%s images are not accepted (accepted: %s)", name, UF_IMAGE_ACCEPTED);
        return uf_err(err, UF_ERR_IMAGE,
                      "cannot decode image: not a %s image (unrecognised, truncated or corrupt data)",
                      UF_IMAGE_ACCEPTED);
    }
    if (!*out)
        return uf_img_vips_error(err, "cannot decode image");
    return UF_OK;
}

/* Interpretations libvips must convert to sRGB itself; the others (grey, RGB, 16-bit,
 * multiband) are handled by band selection and a cast, as PIL would. */
static int needs_colourspace(VipsInterpretation in)
{
    switch (in) {
    case VIPS_INTERPRETATION_CMYK: case VIPS_INTERPRETATION_LAB:
    case VIPS_INTERPRETATION_LABQ: case VIPS_INTERPRETATION_LABS:
    case VIPS_INTERPRETATION_LCH: case VIPS_INTERPRETATION_CMC:
    case VIPS_INTERPRETATION_XYZ: case VIPS_INTERPRETATION_YXY:
    case VIPS_INTERPRETATION_HSV: case VIPS_INTERPRETATION_scRGB:
        return 1;
    default:
        return 0;
    }
}

static uf_status decode_source(VipsSource *src, const uf_image_opts *opts, uint8_t **px,
                               int *w, int *h, int *nb, uf_error *err)
{
    /* Every intermediate is kept here so one loop unrefs them on every path. */
    VipsImage *im[5] = {NULL};
    int n = 0;
    uint64_t limit = opts && opts->max_pixels ? opts->max_pixels : UF_DEFAULT_MAX_PIXELS;
    uf_status st = open_header(src, opts, limit, &im[n], err);
    if (st != UF_OK)
        return st;
    VipsImage *cur = im[n++];

    /* The size comes from the header (page 0 of a multi-page TIFF, the canvas of a GIF or
     * WebP animation): nothing has been decoded yet. */
    uint64_t iw = (uint64_t)vips_image_get_width(cur), ih = (uint64_t)vips_image_get_height(cur);
    if (iw * ih > limit) {
        st = too_large(err, iw, ih, limit);
        goto done;
    }
    if (needs_colourspace(vips_image_get_interpretation(cur))) {
        if (vips_colourspace(cur, &im[n], VIPS_INTERPRETATION_sRGB, NULL))
            goto vfail;
        cur = im[n++];
    }
    if (vips_image_get_format(cur) != VIPS_FORMAT_UCHAR) {
        /* 16-bit keeps its high byte (PIL's 16->8 bit unpacking); anything else is clipped. */
        int shift = vips_image_get_format(cur) == VIPS_FORMAT_USHORT;
        if (vips_cast(cur, &im[n], VIPS_FORMAT_UCHAR, "shift", shift, NULL))
            goto vfail;
        cur = im[n++];
    }
    /* Keep grey as 1 band (replicated after the resize) and drop alpha without compositing,
     * as PIL's convert("RGB") does. */
    int bands = vips_image_get_bands(cur), keep = bands >= 3 ? 3 : 1;
    if (bands != keep) {
        if (vips_extract_band(cur, &im[n], 0, "n", keep, NULL))
            goto vfail;
        cur = im[n++];
    }
    size_t size = 0;
    void *mem = vips_image_write_to_memory(cur, &size);
    if (!mem)
        goto vfail;
    *px = mem;
    *w = vips_image_get_width(cur);
    *h = vips_image_get_height(cur);
    *nb = keep;
    goto done;
vfail:
    st = uf_img_vips_error(err, "cannot decode image");
done:
    while (n > 0)
        g_object_unref(im[--n]);
    return st;
}

uf_status uf_img_decode(const void *data, size_t len, const char *path,
                        const uf_image_opts *opts, uint8_t **px, int *w, int *h, int *nb,
                        uf_error *err)
{
    *px = NULL;
    uf_status st = uf_img_vips_init(err);
    if (st != UF_OK)
        return st;
    VipsSource *src;
    if (path) {
        /* Opening the file ourselves tells I/O errors apart from decode errors, and a fresh
         * source (unlike a file name) can never be served stale from libvips' operation
         * cache when the file is rewritten. */
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return uf_err(err, UF_ERR_IO, "cannot open image %s: %s", path, strerror(errno));
        src = vips_source_new_from_descriptor(fd);
        close(fd);
    } else {
        if (len == 0)
            return uf_err(err, UF_ERR_IMAGE, "cannot decode image: empty buffer");
        src = vips_source_new_from_memory(data, len);
    }
    if (!src)
        return uf_img_vips_error(err, "cannot read image");
    st = decode_source(src, opts, px, w, h, nb, err);
    g_object_unref(src);
    if (st != UF_OK && path)
        uf_err_prefix(err, "%s", path);
    return st;
}
