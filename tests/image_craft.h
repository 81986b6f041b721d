/* image_craft.h — hostile and off-list image files for the loader tests and the fuzz seeds:
 * files of the accepted formats whose headers claim a huge size over a tiny body, and small
 * valid files of formats uflow refuses. Every function returns a malloc'd buffer (NULL if
 * libvips could not encode the base image) and its length. */
#ifndef UF_TEST_IMAGE_CRAFT_H
#define UF_TEST_IMAGE_CRAFT_H

#include <stddef.h>
#include <stdint.h>

/* A valid small image of an accepted format ("png", "jpg", "webp", "webp-lossless", "tif",
 * "gif"), w x h, 3 bands, encoded by libvips. */
uint8_t *craft_small(const char *fmt, int w, int h, size_t *len);

/* Accepted formats whose header declares w x h over a body for a tiny image. */
uint8_t *craft_png_huge(uint32_t w, uint32_t h, size_t *len);         /* IHDR */
uint8_t *craft_jpeg_huge(uint16_t w, uint16_t h, size_t *len);        /* SOF0 */
uint8_t *craft_webp_huge(int lossless, int w, int h, size_t *len);    /* VP8 / VP8L, <= 16384 */
uint8_t *craft_webp_anim_canvas(int w, int h, size_t *len);          /* VP8X canvas, 2 frames */
uint8_t *craft_tiff_huge(uint32_t w, uint32_t h, size_t *len);        /* one deflate strip */
uint8_t *craft_gif_screen(uint16_t w, uint16_t h, size_t *len);       /* logical screen */
uint8_t *craft_gif_frame(int which, uint16_t w, uint16_t h, size_t *len); /* 2 frames; 0 or 1 */

/* A w x h 24-bit BMP; when body is 0 only the headers (a decompression bomb's shape). */
uint8_t *craft_bmp(int w, int h, int body, size_t *len);

/* Small valid files of refused formats, by name: "svg", "svg-xml", "pdf", "ppm", "pgm",
 * "pfm", "hdr", "fits", "matrix", "csv", "heif", "jp2", "jxl", "vips". NULL for an unknown
 * name. */
uint8_t *craft_refused(const char *name, size_t *len);

#endif
