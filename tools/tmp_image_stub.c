#include "uflow.h"
uf_status uf_image_load_file(const char *path, const uf_model_info *info, const uf_image_opts *opts, float *out, uf_error *err){(void)path;(void)info;(void)opts;(void)out;(void)err;return UF_ERR_UNSUPPORTED;}
uf_status uf_heatmap_png(const float *map, int h, int w, float vmin, float vmax, void **png, size_t *png_len, uf_error *err){(void)map;(void)h;(void)w;(void)vmin;(void)vmax;(void)png;(void)png_len;(void)err;return UF_ERR_UNSUPPORTED;}
uf_status uf_write_file(const char *path, const void *data, size_t len, uf_error *err){(void)path;(void)data;(void)len;(void)err;return UF_ERR_UNSUPPORTED;}
void uf_free(void *p){(void)p;}
