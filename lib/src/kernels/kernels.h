/* kernels.h — the numeric kernels of libuflow: convolution (forward and backward), Winograd,
 * normalisation, pooling, interpolation, attention and data movement.
 *
 * Every kernel works on float32 arrays (NCHW, C-order, unless a comment says otherwise) owned
 * by the caller, takes shapes as plain integers and allocates nothing. Kernels know no model:
 * the models/ layer decides which kernel runs on which weights. The _ex forms split the work
 * over a context's threads (uf_exec); the plain forms run on the calling thread. */
#ifndef UF_KERNELS_H
#define UF_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- how an operation may run ----------------------------------------------------------- */

/* On a context's thread pool, with per-thread column scratch. */
struct uf_pool;
typedef struct uf_exec {
    struct uf_pool *pool;  /* NULL = the calling thread only */
    int nt;                /* threads (uf_pool_size) */
    float *col;            /* nt * col_stride floats of im2col / Winograd / attention scratch */
    size_t col_stride;
} uf_exec;

/* ---- convolution -------------------------------------------------------------------------- */

/* A 2-D convolution with optional bias (groups divide cin and cout). Weights are
 * [cout][cin/groups][k][k] C-order, as in PyTorch. */
typedef struct uf_conv {
    int cout, cin, k, stride, pad, groups;
    const float *w;
    const float *b;    /* [cout] or NULL */
    const float *wino; /* Winograd-transformed weights [16][cout][cin], or NULL (im2col) */
} uf_conv;

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

/* The gradients of y = conv(x) + b for one image, for stride-1 convolutions with groups = 1
 * (c->w is read, c->wino ignored): gW += gy col(x)^T, gb += sum gy, and gx = W^T gy folded
 * back to the input (+= when accumulate; gx may be NULL). col and gcol hold
 * uf_conv_col_floats(c, h, w) floats each (unused for 1x1). */
void uf_conv2d_backward(const uf_conv *c, const float *x, int h, int w, const float *gy,
                        float *gW, float *gb, float *gx, int accumulate, float *col, float *gcol);

/* Winograd F(2x2,3x3) (winograd.c), for k=3 s=1 p=1 groups=1 convolutions. */
int uf_wino_applies(const uf_conv *c);
void uf_wino_weights(const uf_conv *c, float *U);            /* U: 16*cout*cin floats */
size_t uf_wino_scratch_floats(const uf_conv *c, int w, size_t tile_rows);
/* Output tile rows [r0, r1) (rows of 2x2 tiles) of one image. */
void uf_wino_conv_part(const uf_conv *c, const float *x, int h, int w, float *y, size_t r0,
                       size_t r1, float *scratch, int act, int accumulate);

/* ---- normalisation (norm.c) ---------------------------------------------------------------- */

/* Fold an eval-mode BatchNorm into conv weights/bias: w' = w*g/sqrt(var+eps), b' = beta - mean*g/sqrt(var+eps)
 * (+ b*g/sqrt(var+eps) when the conv had a bias). w_out/b_out may alias nothing. */
void uf_bn_fold(int cout, size_t per_out, const float *w, const float *b, const float *gamma,
                const float *beta, const float *mean, const float *var, float eps, float *w_out,
                float *b_out);

/* LayerNorm jointly over the n = C*h*w values of each sample with elementwise affine [n]
 * (biased variance, moments accumulated in double). In-place allowed. gamma = beta = NULL:
 * no affine. */
void uf_layernorm_chw(const float *in, int B, size_t n, const float *gamma, const float *beta,
                      float eps, float *out);
void uf_layernorm_chw_ex(const uf_exec *ex, const float *in, int B, size_t n, const float *gamma,
                         const float *beta, float eps, float *out);

/* x[b][i] = x[b][i] * w[i] + b[i] for every sample b < B of n floats (an elementwise affine,
 * e.g. the feature LayerNorm's), in place. */
void uf_mul_add_ex(const uf_exec *ex, float *x, int B, size_t n, const float *w, const float *bias);

/* ---- pooling and data movement (ops.c) ----------------------------------------------------- */

/* Max pooling k x k, stride s, padding p with -inf (PyTorch semantics, floor mode). */
void uf_maxpool2d(const float *in, int B, int C, int h, int w, int k, int s, int p, float *out);
void uf_maxpool2d_ex(const uf_exec *ex, const float *in, int B, int C, int h, int w, int k, int s,
                     int p, float *out);

/* Parallel memcpy of n floats. */
void uf_copy_ex(const uf_exec *ex, float *dst, const float *src, size_t n);

/* pixel_shuffle(x, 2): out[g, 2i+a, 2j+b] = in[4g+2a+b, i, j], per sample. */
void uf_pixel_shuffle2(const float *in, int B, int C, int h, int w, float *out);
/* Its adjoint on one sample (gradients): in[4g+2a+b][i][j] = out[g][2i+a][2j+b], A = 4 G
 * channels of h x w. */
void uf_pixel_unshuffle2(const float *out, int A, int h, int w, float *in);

/* Copy channels [c0, c0+n) of every sample of a [B][C][hw] tensor into a [B][n][hw] one. */
void uf_copy_channels(const float *in, int B, int C, int c0, int n, size_t hw, float *out);

/* ---- interpolation (interp.c) ------------------------------------------------------------- */

/* Bilinear resize, align_corners=False, no antialias (PyTorch upsample_bilinear2d). Planes are
 * independent: `planes` = B*C. */
void uf_resize_bilinear(const float *in, int planes, int ih, int iw, float *out, int oh, int ow);

/* Bicubic resize, align_corners=True, no antialias, A = -0.75, in float32 as PyTorch's float
 * kernel computes it; `planes` independent [ih, iw] planes into [oh, ow]; the _rows form
 * writes output rows [y0, y1) only (for splitting over threads). */
void uf_resize_bicubic_ac(const float *in, int planes, int ih, int iw, float *out, int oh, int ow);
void uf_resize_bicubic_ac_rows(const float *in, int planes, int ih, int iw, float *out, int oh,
                               int ow, int y0, int y1);

/* The same taps in float64 (PyTorch's double kernel): for each of the `out` destinations,
 * four clamped source indices idx[4d..4d+3] and weights wt[4d..4d+3]. */
void uf_bicubic_taps_f64(int in, int out, int32_t *idx, double *wt);

/* ---- attention (attention.c) -------------------------------------------------------------- */

/* Talking-heads attention (timm TalkingHeadAttn) of one sample's query rows [r0, r1): N tokens,
 * D channels in H <= 32 heads of D/H, qkv [N, 3D] (q already scaled by (D/H)^-0.5),
 * proj_l = (pl_w [H, H], pl_b [H]) mixes heads before the softmax, proj_w = (pw_w, pw_b)
 * after it; out rows [r0, r1) of [N, D]. col holds uf_attn_col_floats(N, H) floats. */
size_t uf_attn_col_floats(int N, int heads);
void uf_attn_talking_heads(int N, int D, int H, const float *qkv, const float *pl_w,
                           const float *pl_b, const float *pw_w, const float *pw_b, int r0, int r1,
                           float *out, float *col);

/* GELU with erf, in place. */
void uf_gelu_erf(float *x, size_t n);

#endif
