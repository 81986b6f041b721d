/* ops.h — the numeric kernels of libuflow. Every kernel works on float32 NCHW (C-order)
 * buffers owned by the caller and allocates nothing. */
#ifndef UF_OPS_H
#define UF_OPS_H

#include <stddef.h>

/* A 2-D convolution with optional bias (groups divide cin and cout). Weights are
 * [cout][cin/groups][k][k] C-order, as in PyTorch. */
typedef struct uf_conv {
    int cout, cin, k, stride, pad, groups;
    const float *w;
    const float *b;    /* [cout] or NULL */
    const float *wino; /* Winograd-transformed weights [16][cout][cin], or NULL (im2col) */
} uf_conv;

/* Winograd F(2x2,3x3) (winograd.c), for k=3 s=1 p=1 groups=1 convolutions. */
int uf_wino_applies(const uf_conv *c);
void uf_wino_weights(const uf_conv *c, float *U);            /* U: 16*cout*cin floats */
size_t uf_wino_scratch_floats(const uf_conv *c, int w, size_t tile_rows);
/* Output tile rows [r0, r1) (rows of 2x2 tiles) of one image. */
void uf_wino_conv_part(const uf_conv *c, const float *x, int h, int w, float *y, size_t r0,
                       size_t r1, float *scratch, int act, int accumulate);

/* How an operation may run: on a context's thread pool, with per-thread column scratch. */
struct uf_pool;
typedef struct uf_exec {
    struct uf_pool *pool;  /* NULL = the calling thread only */
    int nt;                /* threads (uf_pool_size) */
    float *col;            /* nt * col_stride floats of im2col scratch */
    size_t col_stride;
    int raw_features;      /* 1: backbones skip the trainable feature affine (training caches
                            * the normalised features and applies the affine itself) */
} uf_exec;

/* Output side for an input side of n. */
static inline int uf_conv_out(const uf_conv *c, int n) { return (n + 2 * c->pad - c->k) / c->stride + 1; }

/* Floats of column scratch uf_conv2d needs for one image of h x w (0 for 1x1/s1/p0), and
 * per thread when the output pixels are split over nt threads. */
size_t uf_conv_col_floats(const uf_conv *c, int h, int w);
size_t uf_conv_col_floats_mt(const uf_conv *c, int h, int w, int nt);

enum { UF_ACT_NONE = 0, UF_ACT_RELU = 1 };

/* out[b] = act(conv(in[b]) + bias (+ out[b] when accumulate)), for b < B.
 * accumulate lets a residual connection be added for free: copy the shortcut into out first.
 * The _ex form splits the output pixels over ex's threads (im2col + SGEMM per part). */
void uf_conv2d_ex(const uf_exec *ex, const uf_conv *c, const float *in, int B, int h, int w,
                  float *out, int act, int accumulate);
void uf_conv2d(const uf_conv *c, const float *in, int B, int h, int w, float *out, float *col,
               int act, int accumulate);

/* Fold an eval-mode BatchNorm into conv weights/bias: w' = w*g/sqrt(var+eps), b' = beta - mean*g/sqrt(var+eps)
 * (+ b*g/sqrt(var+eps) when the conv had a bias). w_out/b_out may alias nothing. */
void uf_bn_fold(int cout, size_t per_out, const float *w, const float *b, const float *gamma,
                const float *beta, const float *mean, const float *var, float eps, float *w_out,
                float *b_out);

/* Max pooling k x k, stride s, padding p with -inf (PyTorch semantics, floor mode). */
void uf_maxpool2d(const float *in, int B, int C, int h, int w, int k, int s, int p, float *out);
void uf_maxpool2d_ex(const uf_exec *ex, const float *in, int B, int C, int h, int w, int k, int s,
                     int p, float *out);

/* LayerNorm jointly over C*h*w per sample with elementwise affine [C,h,w] (biased variance,
 * moments accumulated in double). In-place allowed. gamma = beta = NULL: no affine. */
void uf_layernorm_chw(const float *in, int B, size_t n, const float *gamma, const float *beta,
                      float eps, float *out);
void uf_layernorm_chw_ex(const uf_exec *ex, const float *in, int B, size_t n, const float *gamma,
                         const float *beta, float eps, float *out);

/* Parallel memcpy of n floats. */
void uf_copy_ex(const uf_exec *ex, float *dst, const float *src, size_t n);

/* Bilinear resize, align_corners=False, no antialias (PyTorch upsample_bilinear2d). Planes are
 * independent: `planes` = B*C. */
void uf_resize_bilinear(const float *in, int planes, int ih, int iw, float *out, int oh, int ow);

/* pixel_shuffle(x, 2): out[g, 2i+a, 2j+b] = in[4g+2a+b, i, j], per sample. */
void uf_pixel_shuffle2(const float *in, int B, int C, int h, int w, float *out);

/* Copy channels [c0, c0+n) of every sample of a [B][C][hw] tensor into a [B][n][hw] one. */
void uf_copy_channels(const float *in, int B, int C, int c0, int n, size_t hw, float *out);

#endif
