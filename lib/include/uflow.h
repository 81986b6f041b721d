/*
 * uflow.h — libuflow, U-Flow anomaly detection inference in C.
 *
 * The public contract of the library: inference here, training in uflow_train.h,
 * evaluation metrics and calibration in uflow_eval.h.
 *
 * Tutorial
 * --------
 *   uf_error err;
 *   uf_model *m;
 *   if (uf_model_load("bottle.safetensors", &m, &err) != UF_OK) {
 *       fprintf(stderr, "%s\n", err.msg);  // names the tensor/field and what was expected
 *       return 1;
 *   }
 *   const uf_model_info *info = uf_model_get_info(m);   // input size, scales, config
 *
 *   uf_ctx *ctx;                                         // one per worker thread
 *   uf_ctx_opts o = uf_ctx_opts_default();               // max_batch 1, threads 1
 *   uf_ctx_init(m, &o, &ctx, &err);
 *
 *   float *x = malloc(sizeof(float) * 3 * info->height * info->width);
 *   uf_image_load_file("part.jpg", info, NULL, x, &err); // decode, resize, normalise
 *
 *   uf_result r;
 *   uf_ctx_run(ctx, x, 1, &r, &err);                     // r.pred_score[0], r.anomaly_map...
 *
 *   uf_ctx_free(ctx);
 *   uf_model_free(m);
 *
 * Memory model
 * ------------
 * A uf_model owns its weights: the model file is mmapped and read-only; parts that are
 * transformed at load (BatchNorm folded into convolutions, ActNorm scales) live in memory
 * owned by the model. After uf_model_load returns, the model is immutable and may be shared
 * by any number of threads.
 *
 * A uf_ctx owns all scratch memory for one inference at a time, sized once at uf_ctx_init for
 * opts.max_batch. uf_ctx_run allocates nothing. A context must not be used by two threads at
 * once; make one per worker. Result pointers point into the context and stay valid until the
 * next uf_ctx_run or uf_ctx_free on it.
 *
 * Errors
 * ------
 * Every fallible call returns a uf_status and, when err is not NULL, writes a message a user
 * can read into err->msg. Nothing in the library aborts on bad input from a file or a buffer.
 *
 * Threads
 * -------
 * Each context owns opts.threads threads (the caller's plus threads-1 workers) and splits
 * every operation over them; GEMMs are OpenBLAS calls made single-threaded from each of
 * them. So the thread count is per context: a server with W worker contexts of T threads
 * each should keep W x T <= cores. The first uf_ctx_init sets OpenBLAS's own (process-wide)
 * pool to 1 thread, once; libuflow keeps no other global state.
 */
#ifndef UFLOW_H
#define UFLOW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UF_VERSION_STRING "0.1.0"
#define UF_MAX_SCALES 4
#define UF_ERR_MSG_SIZE 512

/* ------------------------------------------------------------------------------------------ */
/* Status and errors                                                                          */

typedef enum uf_status {
    UF_OK = 0,
    UF_ERR_IO,          /* file cannot be opened/read/mapped/written */
    UF_ERR_FORMAT,      /* malformed safetensors container or header */
    UF_ERR_CONFIG,      /* model config missing, invalid or contradicting the tensors */
    UF_ERR_TENSOR,      /* a tensor is missing, unexpected, or has the wrong dtype/shape */
    UF_ERR_ARG,         /* invalid argument from the caller (batch, size, NULL, ...) */
    UF_ERR_IMAGE,       /* an image cannot be decoded or encoded */
    UF_ERR_NOMEM,       /* allocation failed */
    UF_ERR_UNSUPPORTED, /* valid request for something not implemented */
    UF_ERR_LIMIT,       /* input larger than a configured limit (e.g. image pixels) */
    UF_ERR_FORMAT_NOT_ACCEPTED /* an image in a format uflow recognises but refuses to decode */
} uf_status;

typedef struct uf_error {
    uf_status status;
    char msg[UF_ERR_MSG_SIZE];
} uf_error;

/* A short constant name for a status ("ok", "format error", ...). */
const char *uf_status_str(uf_status s);

/* ------------------------------------------------------------------------------------------ */
/* Models                                                                                     */

typedef enum uf_backbone_kind {
    UF_BACKBONE_RESNET18 = 0,
    UF_BACKBONE_WIDE_RESNET50_2,
    UF_BACKBONE_MCAIT
} uf_backbone_kind;

/* anomalib post-processing statistics (docs/uflow-math.md "Post-processing"); a field is NaN when absent. */
typedef struct uf_postproc {
    float image_threshold, pixel_threshold;
    float pred_scores_min, pred_scores_max;
    float anomaly_maps_min, anomaly_maps_max;
    float image_sensitivity; /* label = normalised score > 1 - sensitivity; default 0.5 */
} uf_postproc;

typedef struct uf_model_info {
    uf_backbone_kind backbone;
    const char *backbone_name;      /* "resnet18", ... */
    int height, width;              /* input size */
    int flow_steps;
    float affine_clamp;
    double affine_subnet_channels_ratio;  /* double: int(C1 * ratio) must truncate as Python does */
    int permute_soft;
    int n_scales;                   /* K */
    int feature_channels[UF_MAX_SCALES];   /* finest first */
    int feature_scale[UF_MAX_SCALES];      /* downsampling factor per scale */
    int z_channels[UF_MAX_SCALES];         /* latent shape per scale, finest first */
    int z_height[UF_MAX_SCALES], z_width[UF_MAX_SCALES];
    float mean[3], std[3];          /* preprocessing (ImageNet unless the model says otherwise) */
    uf_postproc post;
    int has_postproc;               /* thresholds and min/max present: scores are normalised */
    const char *name;               /* optional metadata, "" when absent */
    const char *description;
    const char *config_json;        /* the config string as stored in the file */
    char version[17];               /* first 16 hex digits of the file's SHA-256 */
    uint64_t n_params;              /* elements in all stored tensors */
    uint64_t file_bytes;
} uf_model_info;

typedef struct uf_model uf_model;

/* Map, validate and prepare a model file. On failure *out is NULL. */
uf_status uf_model_load(const char *path, uf_model **out, uf_error *err);
void uf_model_free(uf_model *m);
const uf_model_info *uf_model_get_info(const uf_model *m);

/* Writing a new model with seeded random weights in anomalib's layout (tests, demos, and the
 * starting point of training). */
typedef struct uf_create_opts {
    const char *backbone;      /* "resnet18" | "wide_resnet50_2" */
    int height, width;         /* multiples of 16 */
    int flow_steps;            /* default 4 */
    double affine_clamp;       /* default 2.0 */
    double subnet_ratio;       /* default 1.0 */
    int permute_soft;          /* dense random rotation instead of a permutation */
    uint64_t seed;
    /* 0: anomalib's untrained init (ActNorm scale 1, offset 0, BN identity statistics).
     * 1: every parameter re-randomised like the golden fixtures (docs/uflow-math.md "Test fixtures") so that all of
     *    them influence the output (for tests). */
    int perturb;
    /* 1: backbone weights from the index formula of tools/uflow_ref.py (reproducible across
     *    languages; fixtures omit the backbone and tests regenerate it). */
    int formula_backbone;
    const char *name, *description;   /* optional metadata */
    /* Path to a safetensors file of pretrained backbone weights under torchvision/timm key
     * names (tools/export_backbone.py; docs/model-format.md "Backbone weights"), or NULL for
     * seeded random (or formula) weights. When set, every backbone tensor is copied from the
     * file: ResNet keys "conv1.weight", "layer1.0.bn1.running_mean", ... (stem..layer3; fc and
     * layer4 are ignored), mcait keys "extractor1.<timm cait_m48_448 key>" and
     * "extractor2.<timm cait_s24_224 key>"; anomalib's own keys (optionally "model."-prefixed)
     * are accepted too. Shapes must match exactly; F32 (F16/BF16/F64 are converted); a missing
     * num_batches_tracked is written as 0. A missing tensor, a wrong shape or dtype is
     * UF_ERR_TENSOR naming the key; a file for another backbone (its __metadata__
     * "uflow_backbone", or its keys) is UF_ERR_CONFIG. The feature LayerNorms and the flow are
     * still drawn from `seed`, identical to the random model of that seed. The config records
     * "backbone_weights": {"file", "sha256", "source"} (random models: {"source"}). */
    const char *backbone_weights;
} uf_create_opts;

uf_create_opts uf_create_opts_default(void);
uf_status uf_model_create_random(const uf_create_opts *o, const char *path, uf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Inference contexts                                                                         */

typedef struct uf_ctx_opts {
    int max_batch;       /* largest batch uf_ctx_run will accept (>= 1) */
    int threads;         /* threads this context computes with (>= 1; default 1) */
} uf_ctx_opts;

uf_ctx_opts uf_ctx_opts_default(void);

typedef struct uf_ctx uf_ctx;

typedef struct uf_result {
    int batch;
    int height, width;                       /* anomaly map size (= input size) */
    int n_scales;
    const float *z[UF_MAX_SCALES];           /* [B, z_channels[k], z_height[k], z_width[k]] */
    int z_channels[UF_MAX_SCALES], z_height[UF_MAX_SCALES], z_width[UF_MAX_SCALES];
    const float *features[UF_MAX_SCALES];    /* [B, C_k, h_k, w_k], after the feature LayerNorm */
    const float *log_jac_det;                /* [B] */
    const float *anomaly_map;                /* [B, 1, H, W] */
    const float *pred_score;                 /* [B], max of each anomaly map */
    const float *norm_score;                 /* [B] when the model has post-processing stats, else NULL */
    const int *label;                        /* [B] 1 = anomalous, when norm_score != NULL */
} uf_result;

/* The a-contrario NFA test (U-Flow paper; docs/nfa.md): an unsupervised defect mask from the
 * latents, no calibration. */
typedef struct uf_nfa_opts {
    int window;          /* window size at the finest scale, halved per scale; default 7 */
    double prob_thr;     /* chi2 tail probability defining tau, in (0, 1); default 0.5 */
    double epsilon;      /* mask = minus_log10_nfa > epsilon (NFA < 10^-epsilon); default 0 */
    int high_precision;  /* compare z^2 >= tau in double; default 0 */
} uf_nfa_opts;

uf_nfa_opts uf_nfa_opts_default(void);

typedef struct uf_nfa_result {
    int batch, height, width;
    const double *minus_log10_nfa;    /* [B, 1, H, W], finite everywhere */
    const uint8_t *mask;              /* [B, 1, H, W], 1 = anomalous (the paper's sign) */
    const float *anomalous_fraction;  /* [B] */
    const double *min_log10_nfa;      /* [B] */
    const int *label;                 /* [B] 1 = some pixel anomalous */
} uf_nfa_result;

/* The NFA test on latents from anywhere (a stored uflow infer output, another
 * implementation): an immutable plan (tau, tables, bicubic taps) plus scratch for one run at
 * a time, sized for max_batch and allocated once; uf_nfa_run allocates nothing. Not for two
 * threads at once. The math is in docs/nfa.md. */
typedef struct uf_nfa uf_nfa;

/* Validates the options (window >= 1, 0 < prob_thr < 1, finite epsilon, max_batch >= 1) and
 * the latent shapes in info (n_scales, z_channels/z_height/z_width, height/width). Every
 * latent map must be larger than its half window in both directions (reflect padding needs
 * h, w > half; anomalib's F.pad raises otherwise): UF_ERR_ARG names the scale and the largest
 * window that fits. On failure *out is NULL. */
uf_status uf_nfa_init(const uf_model_info *info, const uf_nfa_opts *o, int max_batch,
                      uf_nfa **out, uf_error *err);
void uf_nfa_free(uf_nfa *n);

/* z: K latents [B, C_k, h_k, w_k] (finest first), all finite. Outputs (any may be NULL):
 *   minus_log10_nfa [B*H*W]     -log10 NFA per pixel
 *   mask [B*H*W]                1 = anomalous (minus_log10_nfa > epsilon), else 0
 *   anomalous_fraction [B]      fraction of mask pixels; the image label is fraction > 0
 *   min_log10_nfa [B]           min over pixels of log10 NFA (= -max minus_log10_nfa)
 * Deterministic: the same z gives bit-identical outputs, whatever else is in the batch. */
uf_status uf_nfa_run(uf_nfa *n, const float *const z[UF_MAX_SCALES], int B,
                     double *minus_log10_nfa, uint8_t *mask, float *anomalous_fraction,
                     double *min_log10_nfa, uf_error *err);

/* The per-scale log10 survival maps of the last run, [B, 1, h_k, w_k]; NULL if k is invalid. */
const double *uf_nfa_log10_sf(const uf_nfa *n, int k);

uf_status uf_ctx_init(const uf_model *m, const uf_ctx_opts *opts, uf_ctx **out, uf_error *err);
void uf_ctx_free(uf_ctx *ctx);

/* Run the model on `batch` already normalised images, float32 [batch, 3, H, W] C-order. */
uf_status uf_ctx_run(uf_ctx *ctx, const float *input, int batch, uf_result *res, uf_error *err);

/* The NFA test on the latents of the last successful uf_ctx_run of this context (NULL opts =
 * defaults). Tables and buffers are built on the first call and rebuilt only when the options
 * change, so steady-state calls allocate nothing. Results live in the context like uf_result. */
uf_status uf_ctx_nfa(uf_ctx *ctx, const uf_nfa_opts *opts, uf_nfa_result *res, uf_error *err);

/* Bytes of scratch memory the context holds. */
size_t uf_ctx_scratch_bytes(const uf_ctx *ctx);

/* anomalib's post-processing (docs/uflow-math.md "Post-processing") applied to one raw score. */
float uf_postproc_normalize(const uf_postproc *p, float raw, int image_level);

/* ------------------------------------------------------------------------------------------ */
/* Images                                                                                     */

/* Image input is treated as hostile. The format is taken from the first bytes (never from a
 * file name or a Content-Type) and only these are decoded, each by its own libvips loader: */
#define UF_IMAGE_ACCEPTED "JPEG, PNG, WebP, TIFF, GIF"
/* Multi-page TIFF and animated GIF/WebP: the first page/frame only (as PIL, which anomalib
 * reads with); its size is the TIFF page's, or the GIF/WebP canvas's.
 *
 * Statuses of every decoding call below:
 *   UF_ERR_FORMAT_NOT_ACCEPTED  bytes of a known format outside the list (BMP, SVG, PDF,
 *                               PNM/PFM, Radiance HDR, FITS, HEIF, JPEG 2000/XL, ...); the
 *                               message names it and the accepted list; nothing was decoded
 *   UF_ERR_IMAGE                no known signature at all, or truncated/corrupt data
 *   UF_ERR_LIMIT                the header declares more than max_pixels; nothing was decoded
 *
 * The first image call initialises libvips for the whole process and blocks its untrusted
 * operations (vips_block_untrusted_set) and every loader but the five above, so that even
 * other libvips users in the process cannot reach librsvg, poppler, ImageMagick, ... by
 * accident. */
typedef struct uf_image_opts {
    /* Limit applied to the header's size before decoding pixels (decompression bombs).
     * 0 = the default (64 Mi pixels). */
    uint64_t max_pixels;
    /* Non-zero: also decode any other format libvips can read (BMP via ImageMagick, PPM,
     * SVG, PDF, ...), chosen by libvips. For trusted local files only (`uflow
     * --allow-any-format`). The first such call lifts the loader blocks above for the rest of
     * the process; calls without the flag still refuse those formats. Never set it in a
     * process that decodes untrusted input. */
    int any_format;
} uf_image_opts;

/* Decode an encoded image (see the accepted formats above), convert it to 8-bit RGB
 * (greyscale replicated, alpha dropped), resize it to info->height x info->width with
 * antialiased bilinear reduction (torchvision Resize(antialias=True) on [0,1] floats) and
 * normalise with info->mean/std. out holds 3*H*W floats, C-order CHW. */
uf_status uf_image_load_file(const char *path, const uf_model_info *info,
                             const uf_image_opts *opts, float *out, uf_error *err);
uf_status uf_image_load_buffer(const void *data, size_t len, const uf_model_info *info,
                               const uf_image_opts *opts, float *out, uf_error *err);

/* The same pipeline as a pure function on an 8-bit interleaved RGB image (for tests and for
 * callers that decode themselves). */
void uf_image_rgb8_to_tensor(const uint8_t *rgb, int w, int h, int out_h, int out_w,
                             const float mean[3], const float std[3], float *out);

/* Decode an image to 8-bit interleaved pixels as decoded: *bands = 1 (grey) or 3 (RGB; alpha
 * dropped, CMYK/16-bit converted as in uf_image_load_*). *px is released with uf_free(). */
uf_status uf_image_decode_file(const char *path, const uf_image_opts *opts, uint8_t **px,
                               int *w, int *h, int *bands, uf_error *err);
uf_status uf_image_decode_buffer(const void *data, size_t len, const uf_image_opts *opts,
                                 uint8_t **px, int *w, int *h, int *bands, uf_error *err);

/* A ground-truth mask image resized to h x w with nearest neighbour (torch 'nearest':
 * src = floor(dst * in / out)); out[i] = 1 where any band is non-zero, else 0. Accepted
 * formats only, default pixel limit. */
uf_status uf_mask_load_file(const char *path, int h, int w, uint8_t *out, uf_error *err);

/* Encode an anomaly map [h, w] in [vmin, vmax] as a turbo-colormap PNG. *png is g_malloc'd
 * by libvips: release it with uf_free(). */
uf_status uf_heatmap_png(const float *map, int h, int w, float vmin, float vmax,
                         void **png, size_t *png_len, uf_error *err);

/* Blend the heatmap over the original image (decoded from `image`, resized to the map size)
 * with weight alpha in [0,1] and encode as PNG. */
uf_status uf_overlay_png(const void *image, size_t image_len, const float *map, int h, int w,
                         float vmin, float vmax, float alpha, const uf_image_opts *opts,
                         void **png, size_t *png_len, uf_error *err);

/* Encode a mask [h, w] (non-zero = anomalous) as an 8-bit greyscale PNG (255 = anomalous). */
uf_status uf_mask_png(const uint8_t *mask, int h, int w, void **png, size_t *png_len, uf_error *err);

/* Encode 8-bit interleaved RGB pixels [h, w, 3] as a PNG. */
uf_status uf_rgb_png(const uint8_t *rgb, int h, int w, void **png, size_t *png_len, uf_error *err);

/* Write a buffer to a file. */
uf_status uf_write_file(const char *path, const void *data, size_t len, uf_error *err);

/* Free memory returned by uf_image_decode_*, uf_heatmap_png, uf_overlay_png, uf_mask_png
 * and uf_rgb_png. */
void uf_free(void *p);

/* ------------------------------------------------------------------------------------------ */
/* Tensor files (safetensors)                                                                 */
/*
 * Format: 8-byte little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string value", ...}}, then the data section. Offsets are
 * relative to the start of the data section. Model files are such files; so are the inputs
 * and outputs of `uflow infer`.
 *
 * uf_st_open validates the whole container before returning: header within the file, JSON
 * well-formed with no duplicate keys, known dtypes, shapes consistent with byte sizes, every
 * range inside the data section and no two ranges overlapping. After that every
 * uf_st_tensor.data pointer is safe to read for uf_st_nbytes() bytes.
 */

#define UF_ST_MAX_DIMS 8

typedef enum uf_dtype {
    UF_DT_F32 = 0,
    UF_DT_F64,
    UF_DT_F16,
    UF_DT_BF16,
    UF_DT_I64,
    UF_DT_I32,
    UF_DT_I16,
    UF_DT_I8,
    UF_DT_U8,
    UF_DT_BOOL,
    UF_DT_COUNT
} uf_dtype;

const char *uf_dtype_name(uf_dtype dt);
size_t uf_dtype_size(uf_dtype dt);

typedef struct uf_st_tensor {
    const char *name;
    uf_dtype dtype;
    int ndim;
    int64_t shape[UF_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end;    /* byte offsets in the data section */
    const void *data;       /* points into the mapping; may be unaligned */
} uf_st_tensor;

typedef struct uf_st uf_st;

/* Map and validate a file (read-only, private mapping). */
uf_status uf_st_open(const char *path, uf_st **out, uf_error *err);
/* Validate a caller-owned buffer (no copy: the buffer must outlive the uf_st). */
uf_status uf_st_open_buffer(const void *data, size_t len, uf_st **out, uf_error *err);
void uf_st_close(uf_st *st);

size_t uf_st_count(const uf_st *st);
const uf_st_tensor *uf_st_at(const uf_st *st, size_t i);   /* sorted by data offset */
const uf_st_tensor *uf_st_find(const uf_st *st, const char *name);
/* A __metadata__ value, or NULL. */
const char *uf_st_meta(const uf_st *st, const char *key);
/* The whole mapping (for hashing). */
const void *uf_st_bytes(const uf_st *st, size_t *len);

static inline size_t uf_st_nbytes(const uf_st_tensor *t) { return (size_t)(t->end - t->begin); }

/* Writer: tensors are written in the order they are added; data is copied at add time.
 * uf_st_writer_save writes a temporary file beside path, fsyncs it and renames it over path,
 * so a reader never sees a half-written file. */
typedef struct uf_st_writer uf_st_writer;

uf_st_writer *uf_st_writer_new(void);
void uf_st_writer_free(uf_st_writer *w);
uf_status uf_st_writer_add(uf_st_writer *w, const char *name, uf_dtype dt, int ndim,
                           const int64_t *shape, const void *data, uf_error *err);
uf_status uf_st_writer_meta(uf_st_writer *w, const char *key, const char *value, uf_error *err);
uf_status uf_st_writer_save(const uf_st_writer *w, const char *path, uf_error *err);

#ifdef __cplusplus
}
#endif
#endif /* UFLOW_H */
