/* cait.h — the pieces of the `mcait` backbone (docs/uflow-math.md "mcait"): timm CaiT image transformers cut
 * after a given block, with their LayerScale blocks and talking-heads attention, the 16x16
 * patch embedding and the bicubic (align_corners=True) 448 -> 224 downscale.
 *
 * Internal to libuflow; exposed so that tests can run a block on its own (the block
 * fixtures of tests/golden/cait). Weights are borrowed pointers (into the model's mapping
 * or a fixture); nothing here allocates.
 *
 * Layout: tokens are [B][N][D] row-major (token-major, channel fastest) with N = grid^2
 * patches in row-major (h, w) order; feature maps are [B][D][grid][grid]. */
#ifndef UF_CAIT_H
#define UF_CAIT_H

#include "kernels/kernels.h"
#include "models/backbones/backbone.h"

#include <stddef.h>

#define UF_CAIT_PATCH 16
#define UF_CAIT_HEAD_DIM 48
#define UF_CAIT_LN_EPS 1e-6f

/* One LayerScaleBlock with TalkingHeadAttn; all weights in timm's layout. */
typedef struct uf_cait_block {
    const float *gamma1, *gamma2;            /* [D] LayerScale */
    const float *ln1_w, *ln1_b;              /* [D] */
    const float *qkv_w, *qkv_b;              /* [3D, D], [3D] */
    const float *proj_w, *proj_b;            /* [D, D], [D] */
    const float *pl_w, *pl_b;                /* proj_l [H, H], [H] (heads mixed before softmax) */
    const float *pw_w, *pw_b;                /* proj_w [H, H], [H] (after softmax) */
    const float *ln2_w, *ln2_b;              /* [D] */
    const float *fc1_w, *fc1_b;              /* [4D, D], [4D] */
    const float *fc2_w, *fc2_b;              /* [D, 4D], [D] */
} uf_cait_block;

/* A CaiT truncated after `depth` blocks, followed by its final norm. */
typedef struct uf_cait {
    int D, heads, depth;      /* depth = blocks run (41 of cait_m48_448, 21 of cait_s24_224) */
    int grid;                 /* patches per side; N = grid * grid, image side = 16 * grid */
    const float *patch_w;     /* [D, 3, 16, 16] */
    const float *patch_b;     /* [D] */
    const float *pos;         /* [N, D] */
    const uf_cait_block *blocks;
    const float *norm_w, *norm_b;  /* [D] */
} uf_cait;

static inline int uf_cait_tokens(const uf_cait *c) { return c->grid * c->grid; }

/* Floats of token scratch for B images (uf_cait_forward and the pieces below), and of
 * per-thread attention scratch (ex->col, col_stride >= this). */
size_t uf_cait_scratch_floats(const uf_cait *c, int B);
size_t uf_cait_col_floats(const uf_cait *c);

/* Scratch sections (all inside the uf_cait_scratch_floats buffer). */
typedef struct uf_cait_bufs {
    float *x;      /* [B N D]  residual stream */
    float *y;      /* [B N D]  LayerNorm output, then attention output */
    float *t;      /* [B N D]  projection outputs */
    float *qkv[2]; /* [B N 3D] each; block l uses qkv[l % 2] so that the next block's qkv
                      can be written while other threads still read this block's keys */
    float *h;      /* [B N 4D] MLP hidden, and the patch matrix of the embedding */
} uf_cait_bufs;
uf_cait_bufs uf_cait_bufs_of(const uf_cait *c, int B, float *scratch);

/* x[B N D] = patches(img) @ patch_w^T + patch_b (+ pos when add_pos). img is
 * [B, 3, 16*grid, 16*grid]. Uses bufs->h. */
void uf_cait_embed(const uf_exec *ex, const uf_cait *c, const float *img, int B, int add_pos,
                   const uf_cait_bufs *bufs);

/* Blocks [first, last) on bufs->x in place. */
void uf_cait_blocks(const uf_exec *ex, const uf_cait *c, int first, int last, int B,
                    const uf_cait_bufs *bufs);

/* Final LayerNorm of bufs->x; tokens into `tok` ([B N D], may be NULL) and the feature map
 * [B, D, grid, grid] into `map` (may be NULL). */
void uf_cait_final(const uf_exec *ex, const uf_cait *c, int B, const uf_cait_bufs *bufs, float *tok,
                   float *map);

/* Everything: embed + pos, blocks 0..depth-1, final norm, map [B, D, grid, grid]. */
void uf_cait_forward(const uf_exec *ex, const uf_cait *c, const float *img, int B, float *scratch,
                     float *map);

#endif
