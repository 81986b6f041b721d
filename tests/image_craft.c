/* image_craft.c — see image_craft.h. The huge-header files start from a real small image
 * encoded by libvips and patch the size fields, so everything before the pixel data is what
 * a decoder expects. */
#include "image_craft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

static uint8_t *dup_g(void *buf, size_t len, size_t *out_len)
{
    uint8_t *p = buf ? malloc(len) : NULL;
    if (p)
        memcpy(p, buf, len);
    g_free(buf);
    *out_len = p ? len : 0;
    return p;
}

uint8_t *craft_small(const char *fmt, int w, int h, size_t *len)
{
    uint8_t *px = malloc((size_t)w * (size_t)h * 3);
    if (!px)
        return NULL;
    for (int i = 0; i < w * h * 3; i++)
        px[i] = (uint8_t)(i * 37 + 11);
    VipsImage *im = vips_image_new_from_memory(px, (size_t)w * (size_t)h * 3, w, h, 3,
                                               VIPS_FORMAT_UCHAR);
    void *buf = NULL;
    size_t n = 0;
    int rc = -1;
    if (im) {
        if (!strcmp(fmt, "png"))
            rc = vips_pngsave_buffer(im, &buf, &n, "strip", TRUE, NULL);
        else if (!strcmp(fmt, "jpg"))
            rc = vips_jpegsave_buffer(im, &buf, &n, "strip", TRUE, NULL);
        else if (!strcmp(fmt, "webp"))
            rc = vips_webpsave_buffer(im, &buf, &n, "strip", TRUE, NULL);
        else if (!strcmp(fmt, "webp-lossless"))
            rc = vips_webpsave_buffer(im, &buf, &n, "strip", TRUE, "lossless", TRUE, NULL);
        else if (!strcmp(fmt, "tif"))
            rc = vips_tiffsave_buffer(im, &buf, &n, "strip", TRUE, NULL);
        else if (!strcmp(fmt, "gif"))
            rc = vips_gifsave_buffer(im, &buf, &n, "strip", TRUE, NULL);
        g_object_unref(im);
    }
    free(px);
    if (rc) {
        g_free(buf);
        vips_error_clear();
        *len = 0;
        return NULL;
    }
    return dup_g(buf, n, len);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}
static void put_le16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put_le24(uint8_t *p, uint32_t v) { put_le16(p, v), p[2] = (uint8_t)(v >> 16); }
static void put_le32(uint8_t *p, uint32_t v) { put_le16(p, v), put_le16(p + 2, v >> 16); }

static uint32_t crc32(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c >> 1 ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

uint8_t *craft_png_huge(uint32_t w, uint32_t h, size_t *len)
{
    uint8_t *p = craft_small("png", 8, 8, len);
    if (!p || *len < 33 || memcmp(p + 12, "IHDR", 4))
        return p;
    put_be32(p + 16, w);
    put_be32(p + 20, h);
    put_be32(p + 29, crc32(p + 12, 17));
    return p;
}

uint8_t *craft_jpeg_huge(uint16_t w, uint16_t h, size_t *len)
{
    uint8_t *p = craft_small("jpg", 16, 16, len);
    for (size_t i = 2; p && i + 9 < *len; i++)
        if (p[i] == 0xFF && (p[i + 1] == 0xC0 || p[i + 1] == 0xC2)) {
            p[i + 5] = (uint8_t)(h >> 8), p[i + 6] = (uint8_t)h;
            p[i + 7] = (uint8_t)(w >> 8), p[i + 8] = (uint8_t)w;
            break;
        }
    return p;
}

uint8_t *craft_webp_huge(int lossless, int w, int h, size_t *len)
{
    uint8_t *p = craft_small(lossless ? "webp-lossless" : "webp", 16, 16, len);
    /* walk the RIFF chunks: the VP8X canvas (libvips writes one) and the bitstream header */
    for (size_t i = 12; p && i + 8 <= *len;) {
        size_t sz = (size_t)p[i + 4] | (size_t)p[i + 5] << 8 | (size_t)p[i + 6] << 16 |
                    (size_t)p[i + 7] << 24;
        uint8_t *d = p + i + 8;
        if (i + 8 + sz > *len)
            break;
        if (!memcmp(p + i, "VP8X", 4) && sz >= 10) {
            put_le24(d + 4, (uint32_t)w - 1);
            put_le24(d + 7, (uint32_t)h - 1);
        } else if (!memcmp(p + i, "VP8 ", 4) && sz >= 10 && d[3] == 0x9D && d[4] == 0x01 &&
                   d[5] == 0x2A) {
            put_le16(d + 6, (uint32_t)w & 0x3FFF);
            put_le16(d + 8, (uint32_t)h & 0x3FFF);
        } else if (!memcmp(p + i, "VP8L", 4) && sz >= 5 && d[0] == 0x2F) {
            /* 14 bits width-1, 14 bits height-1, then the alpha and version bits kept */
            uint32_t v = (uint32_t)d[1] | (uint32_t)d[2] << 8 | (uint32_t)d[3] << 16 |
                         (uint32_t)d[4] << 24;
            v = (v & 0xF0000000u) | ((uint32_t)(h - 1) & 0x3FFF) << 14 |
                ((uint32_t)(w - 1) & 0x3FFF);
            put_le32(d + 1, v);
        }
        i += 8 + sz + (sz & 1);
    }
    return p;
}

uint8_t *craft_webp_anim_canvas(int w, int h, size_t *len)
{
    /* two 16x16 frames stacked, saved as an animation */
    int fw = 16, fh = 16;
    uint8_t *px = malloc((size_t)fw * fh * 2 * 3);
    if (!px)
        return NULL;
    memset(px, 90, (size_t)fw * fh * 2 * 3);
    VipsImage *im = vips_image_new_from_memory(px, (size_t)fw * fh * 2 * 3, fw, fh * 2, 3,
                                               VIPS_FORMAT_UCHAR);
    VipsImage *cp = NULL;
    void *buf = NULL;
    size_t n = 0;
    int rc = -1;
    if (im && !vips_copy(im, &cp, NULL)) {
        vips_image_set_int(cp, "page-height", fh);
        rc = vips_webpsave_buffer(cp, &buf, &n, "strip", TRUE, NULL);
    }
    if (cp)
        g_object_unref(cp);
    if (im)
        g_object_unref(im);
    free(px);
    if (rc) {
        vips_error_clear();
        g_free(buf);
        return NULL;
    }
    uint8_t *p = dup_g(buf, n, len);
    if (p && *len > 30 && !memcmp(p + 12, "VP8X", 4)) {
        put_le24(p + 24, (uint32_t)w - 1);
        put_le24(p + 27, (uint32_t)h - 1);
    }
    return p;
}

/* Little-endian IFD entry. */
static uint8_t *ifd(uint8_t *q, uint16_t tag, uint16_t type, uint32_t value)
{
    put_le16(q, tag);
    put_le16(q + 2, type);
    put_le32(q + 4, 1);
    put_le32(q + 8, value);
    return q + 12;
}

uint8_t *craft_tiff_huge(uint32_t w, uint32_t h, size_t *len)
{
    /* header, 9-entry IFD, then one deflate strip holding an empty zlib stream */
    static const uint8_t zlib_empty[] = {0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01};
    enum { NE = 9, IFD_AT = 8, DATA_AT = IFD_AT + 2 + NE * 12 + 4 };
    size_t n = DATA_AT + sizeof zlib_empty;
    uint8_t *p = calloc(1, n);
    if (!p)
        return NULL;
    memcpy(p, "II*\0", 4);
    put_le32(p + 4, IFD_AT);
    put_le16(p + IFD_AT, NE);
    uint8_t *q = p + IFD_AT + 2;
    q = ifd(q, 256, 4, w);              /* ImageWidth, LONG */
    q = ifd(q, 257, 4, h);              /* ImageLength */
    q = ifd(q, 258, 3, 8);              /* BitsPerSample, SHORT */
    q = ifd(q, 259, 3, 8);              /* Compression: deflate */
    q = ifd(q, 262, 3, 1);              /* Photometric: min-is-black */
    q = ifd(q, 273, 4, DATA_AT);        /* StripOffsets */
    q = ifd(q, 277, 3, 1);              /* SamplesPerPixel */
    q = ifd(q, 278, 4, h);              /* RowsPerStrip: one strip */
    q = ifd(q, 279, 4, sizeof zlib_empty); /* StripByteCounts */
    put_le32(q, 0);                     /* no next IFD */
    memcpy(p + DATA_AT, zlib_empty, sizeof zlib_empty);
    *len = n;
    return p;
}

/* Offset of the first image descriptor (0x2C) of a GIF, or 0. */
static size_t gif_descriptor(const uint8_t *p, size_t n, int which)
{
    if (n < 13)
        return 0;
    size_t i = 13;
    if (p[10] & 0x80)
        i += 3u << ((p[10] & 7) + 1);
    while (i < n) {
        if (p[i] == 0x2C) {
            if (which-- == 0)
                return i;
            /* skip descriptor, local table, LZW min code size and the data sub-blocks */
            size_t j = i + 10;
            if (j > n)
                return 0;
            if (p[i + 9] & 0x80)
                j += 3u << ((p[i + 9] & 7) + 1);
            j++;
            while (j < n && p[j])
                j += 1u + p[j];
            i = j + 1;
        } else if (p[i] == 0x21 && i + 1 < n) {
            size_t j = i + 2;
            while (j < n && p[j])
                j += 1u + p[j];
            i = j + 1;
        } else {
            return 0;
        }
    }
    return 0;
}

uint8_t *craft_gif_screen(uint16_t w, uint16_t h, size_t *len)
{
    uint8_t *p = craft_small("gif", 16, 16, len);
    if (p && *len > 10) {
        put_le16(p + 6, w);
        put_le16(p + 8, h);
    }
    return p;
}

uint8_t *craft_gif_frame(int which, uint16_t w, uint16_t h, size_t *len)
{
    /* a GIF of the one frame twice; frame `which` (0 or 1) then claims w x h */
    uint8_t *one = craft_small("gif", 16, 16, len);
    if (!one)
        return NULL;
    size_t d = gif_descriptor(one, *len, 0), n1 = *len;
    if (!d || one[n1 - 1] != 0x3B)
        return one;
    size_t frame = n1 - 1 - d; /* descriptor .. end of data, without the trailer */
    uint8_t *p = malloc(n1 + frame);
    if (!p) {
        free(one);
        return NULL;
    }
    memcpy(p, one, n1 - 1);
    memcpy(p + n1 - 1, one + d, frame);
    p[n1 - 1 + frame] = 0x3B;
    size_t at = which ? n1 - 1 : d;
    put_le16(p + at + 5, w);
    put_le16(p + at + 7, h);
    free(one);
    *len = n1 + frame;
    return p;
}

uint8_t *craft_bmp(int w, int h, int body, size_t *len)
{
    size_t row = ((size_t)w * 3 + 3) & ~(size_t)3, data = body ? row * (size_t)h : 16;
    size_t n = 54 + data;
    uint8_t *p = calloc(1, n);
    if (!p)
        return NULL;
    p[0] = 'B', p[1] = 'M';
    put_le32(p + 2, (uint32_t)(54 + row * (size_t)h));
    put_le32(p + 10, 54);
    put_le32(p + 14, 40);
    put_le32(p + 18, (uint32_t)w);
    put_le32(p + 22, (uint32_t)h);
    put_le16(p + 26, 1);
    put_le16(p + 28, 24);
    put_le32(p + 34, (uint32_t)(row * (size_t)h));
    for (size_t i = 54; i < n; i++)
        p[i] = (uint8_t)(i * 7);
    *len = n;
    return p;
}

static uint8_t *text(const char *s, size_t *len)
{
    *len = strlen(s);
    uint8_t *p = malloc(*len + 1);
    if (p)
        memcpy(p, s, *len + 1);
    return p;
}

static uint8_t *with_body(const char *head, size_t body, uint8_t fill, size_t *len)
{
    size_t hl = strlen(head);
    uint8_t *p = malloc(hl + body);
    if (!p)
        return NULL;
    memcpy(p, head, hl);
    memset(p + hl, fill, body);
    *len = hl + body;
    return p;
}

/* FITS: 2880-byte blocks of 80-column cards, then the data padded to 2880. */
static uint8_t *fits(size_t *len)
{
    static const char *cards[] = {"SIMPLE  =                    T", "BITPIX  =                    8",
                                  "NAXIS   =                    2", "NAXIS1  =                    4",
                                  "NAXIS2  =                    4", "END"};
    uint8_t *p = malloc(2 * 2880);
    if (!p)
        return NULL;
    memset(p, ' ', 2880);
    for (size_t i = 0; i < sizeof cards / sizeof cards[0]; i++)
        memcpy(p + 80 * i, cards[i], strlen(cards[i]));
    memset(p + 2880, 100, 2880);
    *len = 2 * 2880;
    return p;
}

uint8_t *craft_refused(const char *name, size_t *len)
{
    if (!strcmp(name, "svg"))
        return text("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"8\" height=\"8\">"
                    "<rect width=\"8\" height=\"8\" fill=\"red\"/></svg>\n", len);
    if (!strcmp(name, "svg-xml"))
        return text("\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
                    "width=\"8\" height=\"8\"><rect width=\"8\" height=\"8\"/></svg>\n", len);
    if (!strcmp(name, "pdf"))
        return text("%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
                    "2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
                    "3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 8 8]>>endobj\n"
                    "trailer<</Root 1 0 R>>\n%%EOF\n", len);
    if (!strcmp(name, "ppm"))
        return with_body("P6\n4 4\n255\n", 48, 200, len);
    if (!strcmp(name, "pgm"))
        return with_body("P5\n4 4\n255\n", 16, 100, len);
    if (!strcmp(name, "pfm"))
        return with_body("PF\n4 4\n-1.0\n", 4 * 4 * 3 * 4, 0, len);
    if (!strcmp(name, "hdr"))
        return with_body("#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 4 +X 4\n", 64, 128, len);
    if (!strcmp(name, "fits"))
        return fits(len);
    if (!strcmp(name, "matrix"))
        return text("4 4\n1 2 3 4\n5 6 7 8\n9 10 11 12\n13 14 15 16\n", len);
    if (!strcmp(name, "csv"))
        return text("1,2,3,4\n5,6,7,8\n9,10,11,12\n13,14,15,16\n", len);
    if (!strcmp(name, "heif")) {
        uint8_t *p = with_body("", 64, 0, len);
        if (p)
            memcpy(p, "\0\0\0\x18" "ftypheic", 12); /* a box length, then the brand */
        return p;
    }
    if (!strcmp(name, "jp2"))
        return with_body("\xFF\x4F\xFF\x51", 64, 0, len);
    if (!strcmp(name, "jxl"))
        return with_body("\xFF\x0A", 64, 0, len);
    return NULL;
}
