/* make_seeds.c — writes the committed seed corpora of the library fuzz targets:
 *   make_seeds OUTDIR      (fuzz/run.sh does not need it; rerun after changing a format)
 * OUTDIR/fuzz_st, fuzz_model, fuzz_config: small safetensors files and model configs;
 * OUTDIR/fuzz_image: small files of every accepted format, crafted huge headers, multi-page
 * files and refused formats (tests/image_craft.c). Deterministic: same files every run. */
#include "image_craft.h"
#include "io/st.h"
#include "uflow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <vips/vips.h>

static const char *outdir;

static void put(const char *target, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void put_free(const char *target, const char *name, uint8_t *data, size_t len)
{
    if (!data) {
        fprintf(stderr, "make_seeds: cannot make %s/%s\n", target, name);
        exit(1);
    }
    put(target, name, data, len);
    free(data);
}

/* A raw safetensors file: 8-byte length, header text, data bytes. */
static void put_raw_st(const char *target, const char *name, const char *hdr, size_t data_len)
{
    size_t hl = strlen(hdr), n = 8 + hl + data_len;
    uint8_t *p = calloc(1, n);
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(p + 8, hdr, hl);
    for (size_t i = 0; i < data_len; i++)
        p[8 + hl + i] = (uint8_t)(i * 29 + 3);
    put_free(target, name, p, n);
}

/* Saves w to a temp file and moves its bytes into the corpus. */
static void put_writer(const char *target, const char *name, uf_st_writer *w)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/.seed.tmp", outdir);
    uf_error err = {0};
    if (uf_st_writer_save(w, tmp, &err) != UF_OK) {
        fprintf(stderr, "make_seeds: %s\n", err.msg);
        exit(1);
    }
    uf_st_writer_free(w);
    FILE *f = fopen(tmp, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n);
    if (fread(p, 1, (size_t)n, f) != (size_t)n)
        exit(1);
    fclose(f);
    remove(tmp);
    put_free(target, name, p, (size_t)n);
}

static void st_seeds(void)
{
    put_raw_st("fuzz_st", "empty_header", "{}", 0);
    put_raw_st("fuzz_st", "meta_only", "{\"__metadata__\":{\"config\":\"{}\",\"k\":\"v\"}}", 0);
    put_raw_st("fuzz_st", "one_f32",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24);
    put_raw_st("fuzz_st", "scalar_and_empty",
               "{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
               "\"e\":{\"dtype\":\"U8\",\"shape\":[0,5],\"data_offsets\":[8,8]}}  ", 8);
    put_raw_st("fuzz_st", "overlap",
               "{\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    uf_st_writer *w = uf_st_writer_new();
    static const uf_dtype dts[] = {UF_DT_F32, UF_DT_F64, UF_DT_F16, UF_DT_BF16, UF_DT_I64,
                                   UF_DT_I32, UF_DT_I16, UF_DT_I8, UF_DT_U8, UF_DT_BOOL};
    uint8_t buf[64] = {0};
    uf_error err;
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "t.%s", uf_dtype_name(dts[i]));
        int64_t shape[3] = {2, 1, (int64_t)(i % 3 + 1)};
        uf_st_writer_add(w, name, dts[i], 3, shape, buf, &err);
    }
    uf_st_writer_meta(w, "format", "pt", &err);
    put_writer("fuzz_st", "all_dtypes", w);
}

static const char *configs[] = {
    "{\"backbone\": \"resnet18\", \"input_size\": 256, \"flow_steps\": 4, \"seed\": 0, "
    "\"affine_clamp\": 2.0, \"affine_subnet_channels_ratio\": 1.0, \"permute_soft\": false, "
    "\"feature_channels\": [64, 128, 256], \"feature_scale_factors\": [4, 8, 16]}",
    "{\"backbone\": \"wide_resnet50_2\", \"input_size\": [256, 320], \"flow_steps\": 2, "
    "\"affine_clamp\": 1.9, \"affine_subnet_channels_ratio\": 0.5, \"permute_soft\": true}",
    "{\"backbone\": \"mcait\", \"input_size\": 448, \"flow_steps\": 4, \"affine_clamp\": 2.0, "
    "\"affine_subnet_channels_ratio\": 1.0, \"permute_soft\": false, \"name\": \"bottle\", "
    "\"description\": \"d\", \"mean\": [0.5, 0.5, 0.5], \"std\": [0.2, 0.2, 0.2]}",
    "{\"backbone\": \"resnet18\", \"input_size\": 64, \"flow_steps\": 1, \"affine_clamp\": 2, "
    "\"affine_subnet_channels_ratio\": 1, \"permute_soft\": false, \"image_threshold\": 0.4, "
    "\"pixel_threshold\": 0.5, \"pred_scores_min\": 0.1, \"pred_scores_max\": 0.9, "
    "\"anomaly_maps_min\": 0.0, \"anomaly_maps_max\": 1.0, \"image_sensitivity\": 0.5, "
    "\"training\": {\"epochs\": 3}}",
};

static void model_seeds(void)
{
    uf_error err;
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "config_%zu", i);
        put("fuzz_config", name, configs[i], strlen(configs[i]));
        /* the config plus the first tensor the backbone loader asks for */
        uf_st_writer *w = uf_st_writer_new();
        uf_st_writer_meta(w, "config", configs[i], &err);
        if (strstr(configs[i], "resnet")) {
            int wide = strstr(configs[i], "wide") != NULL;
            int64_t shape[4] = {64, 3, 7, 7};
            float *x = calloc(64 * 3 * 7 * 7, sizeof(float));
            uf_st_writer_add(w, wide ? "model.feature_extractor.feature_extractor.conv1.weight"
                                     : "feature_extractor.feature_extractor.conv1.weight",
                             UF_DT_F32, 4, shape, x, &err);
            free(x);
        }
        snprintf(name, sizeof name, "model_%zu", i);
        put_writer("fuzz_model", name, w);
    }
    /* and a container without a config */
    put_raw_st("fuzz_model", "no_config",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
}

static void image_seeds(void)
{
    static const char *fmts[] = {"png", "jpg", "webp", "webp-lossless", "tif", "gif"};
    size_t len;
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "small.%s", fmts[i]);
        put_free("fuzz_image", name, craft_small(fmts[i], 7, 5, &len), len);
    }
    put_free("fuzz_image", "huge_ihdr.png", craft_png_huge(100000, 100000, &len), len);
    put_free("fuzz_image", "huge_sof.jpg", craft_jpeg_huge(65000, 65000, &len), len);
    put_free("fuzz_image", "huge_vp8.webp", craft_webp_huge(0, 16383, 16383, &len), len);
    put_free("fuzz_image", "huge_vp8l.webp", craft_webp_huge(1, 16384, 16384, &len), len);
    put_free("fuzz_image", "anim_canvas.webp", craft_webp_anim_canvas(600, 600, &len), len);
    put_free("fuzz_image", "huge.tif", craft_tiff_huge(100000, 100000, &len), len);
    put_free("fuzz_image", "frame0_huge.gif", craft_gif_frame(0, 65535, 65535, &len), len);
    put_free("fuzz_image", "frame1_huge.gif", craft_gif_frame(1, 65535, 65535, &len), len);
    put_free("fuzz_image", "screen_huge.gif", craft_gif_screen(65535, 65535, &len), len);
    put_free("fuzz_image", "bomb.bmp", craft_bmp(16000, 16000, 0, &len), len);
    static const char *refused[] = {"svg", "pdf", "ppm", "pfm", "hdr", "matrix"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        put_free("fuzz_image", refused[i], craft_refused(refused[i], &len), len);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    if (VIPS_INIT(argv[0]))
        return 1;
    st_seeds();
    model_seeds();
    image_seeds();
    return 0;
}
