/* image.h — decoding (image_decode.c) and resizing (image.c), shared with heatmap.c
 * (internal). */
#ifndef UF_IMAGE_H
#define UF_IMAGE_H

#include "uflow.h"

#include <stddef.h>
#include <stdint.h>

/* Initialise libvips once per process (thread-safe). */
uf_status uf_img_vips_init(uf_error *err);
/* Move libvips' process-wide error text into err (clearing it) with a prefix. */
uf_status uf_img_vips_error(uf_error *err, const char *what);
/* Decode to 8-bit interleaved pixels (1 or 3 bands, as uflow.h describes: accepted formats
 * only unless opts->any_format, pixel limit checked on the header); *px is g_malloc'd. */
uf_status uf_img_decode(const void *data, size_t len, const char *path,
                        const uf_image_opts *opts, uint8_t **px, int *w, int *h, int *nb,
                        uf_error *err);
/* Antialiased bilinear resize (torchvision semantics) to CHW floats, then (x - mean) / std. */
uf_status uf_img_resize(const uint8_t *px, int w, int h, int nb, int out_h, int out_w,
                        const float mean[3], const float std[3], float *out);

#endif
