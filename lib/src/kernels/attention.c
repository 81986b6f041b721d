/* attention.c — talking-heads attention (timm's TalkingHeadAttn, used by CaiT) and the erf
 * GELU of transformer MLPs, on plain arrays (kernels.h).
 *
 * For a block of up to ROWS query rows of one sample:
 *   A[h] = q_h k_h^T                 H GEMMs (ROWS x N x 48), q pre-scaled by 48^-0.5
 *   for every row r of the block:
 *     T[g] = bl[g] + sum_h Wl[g,h] A[h][r]      proj_l, mixing heads before the softmax
 *     T[g] = softmax(T[g])                      over the keys
 *     A[h][r] = bw[h] + sum_g Ww[h,g] T[g]      proj_w, after the softmax
 *   out[:, h*48 : h*48+48] = A[h] v_h           H GEMMs (ROWS x 48 x N)
 * The attention block is laid out [ROWS][H][N], so the mixing of one query row works on
 * H x N contiguous floats (L1/L2-resident) with 4 x 32 accumulators in registers. */
#include "core/internal.h"
#include "kernels/kernels.h"
#include "kernels/vmath.h"

#include <cblas.h>
#include <stdint.h>
#include <string.h>

#define ROWS 64   /* query rows per attention block (at most) */
#define MAX_HEADS 32

size_t uf_attn_col_floats(int N, int heads)
{
    return (size_t)heads * ROWS * (size_t)N + (size_t)heads * (size_t)N;
}


/* out[g][j] = bias[g] + sum_h W[g*H + h] * in[h*is + j], j < N. Four outputs g at a time
 * over 32 keys: 4 x 32 accumulators stay in registers and each input vector is loaded once
 * per group (~80 GFLOP/s on one Zen 4 core, L1-resident). */
#define GROUP 4
#define CW 32
UF_CLONES
static void mix_heads(int H, int N, const float *W, const float *bias, const float *in, size_t is,
                      float *out, size_t os)
{
    int g0 = 0;
    for (; g0 + GROUP <= H; g0 += GROUP) {
        int j0 = 0;
        for (; j0 + CW <= N; j0 += CW) {
            float acc[GROUP][CW];
            for (int q = 0; q < GROUP; q++)
                for (int j = 0; j < CW; j++)
                    acc[q][j] = bias[g0 + q];
            for (int h = 0; h < H; h++) {
                const float *a = in + (size_t)h * is + j0;
                for (int q = 0; q < GROUP; q++) {
                    const float w = W[(g0 + q) * H + h];
                    for (int j = 0; j < CW; j++)
                        acc[q][j] += w * a[j];
                }
            }
            for (int q = 0; q < GROUP; q++)
                memcpy(out + (size_t)(g0 + q) * os + j0, acc[q], sizeof acc[q]);
        }
        for (int q = 0; q < GROUP; q++) /* the last N % 32 keys */
            for (int j = j0; j < N; j++) {
                float acc = bias[g0 + q];
                for (int h = 0; h < H; h++)
                    acc += W[(g0 + q) * H + h] * in[(size_t)h * is + j];
                out[(size_t)(g0 + q) * os + j] = acc;
            }
    }
    for (int g = g0; g < H; g++) /* head counts that are not a multiple of 4 */
        for (int j = 0; j < N; j++) {
            float acc = bias[g];
            for (int h = 0; h < H; h++)
                acc += W[g * H + h] * in[(size_t)h * is + j];
            out[(size_t)g * os + j] = acc;
        }
}

/* x <- exp(x - max x) in place; returns 1 / sum (PyTorch's softmax multiplies by it). */
UF_CLONES
static float softmax_exp(float *x, int n)
{
    float m[16];
    for (int l = 0; l < 16; l++)
        m[l] = x[0];
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
    float mx = m[0];
    for (int l = 1; l < 16; l++)
        mx = m[l] > mx ? m[l] : mx;
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    float s[16] = {0};
    for (i = 0; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) {
            float e = uf_exp_fast(x[i + l] - mx);
            x[i + l] = e;
            s[l] += e;
        }
    float sum = 0.f;
    for (; i < n; i++) {
        x[i] = uf_exp_fast(x[i] - mx);
        sum += x[i];
    }
    for (int l = 0; l < 16; l++)
        sum += s[l];
    return 1.f / sum;
}

void uf_attn_talking_heads(int N, int D, int H, const float *qkv, const float *pl_w,
                           const float *pl_b, const float *pw_w, const float *pw_b, int r0, int r1,
                           float *out, float *col)
{
    const int hd = D / H;
    const size_t ld = 3 * (size_t)D, rs = (size_t)H * N;   /* A is [ROWS][H][N] */
    float *A = col, *T = col + ROWS * rs;
    float W2[MAX_HEADS * MAX_HEADS];
    /* equal blocks of at most ROWS rows: no small leftover block with a slow GEMM */
    const int nb = (r1 - r0 + ROWS - 1) / ROWS, step = nb ? (r1 - r0 + nb - 1) / nb : ROWS;
    for (int i0 = r0; i0 < r1; i0 += step) {
        int R = UF_MIN(step, r1 - i0);
        for (int h = 0; h < H; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, N, hd, 1.f,
                        qkv + (size_t)i0 * ld + (size_t)h * hd, (int)ld, qkv + D + (size_t)h * hd,
                        (int)ld, 0.f, A + (size_t)h * N, (int)rs);
        for (int r = 0; r < R; r++) {
            float *Ar = A + (size_t)r * rs;
            mix_heads(H, N, pl_w, pl_b, Ar, (size_t)N, T, (size_t)N);
            for (int g = 0; g < H; g++) {
                float inv = softmax_exp(T + (size_t)g * N, N);
                for (int h = 0; h < H; h++)  /* Ww[h,g] * (e * 1/sum) with the 1/sum folded in */
                    W2[h * H + g] = pw_w[h * H + g] * inv;
            }
            mix_heads(H, N, W2, pw_b, T, (size_t)N, Ar, (size_t)N);
        }
        for (int h = 0; h < H; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, hd, N, 1.f, A + (size_t)h * N,
                        (int)rs, qkv + 2 * (size_t)D + (size_t)h * hd, (int)ld, 0.f,
                        out + (size_t)i0 * D + (size_t)h * hd, D);
    }
}

/* GELU(x) = x/2 (1 + erf(x / sqrt 2)), erf by Abramowitz-Stegun 7.1.26 with an accurate exp:
 * |erf error| <= 1.5e-7, the same formula PyTorch's vectorised CPU kernel evaluates. */
UF_CLONES
void uf_gelu_erf(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i], u = v * 0.70710678118654752f;
        float au = u < 0.f ? -u : u;
        float t = 1.f / (1.f + 0.3275911f * au);
        float r = 1.061405429f;
        r = r * t - 1.453152027f;
        r = r * t + 1.421413741f;
        r = r * t - 0.284496736f;
        r = r * t + 0.254829592f;
        float e = 1.f - r * t * uf_exp_fast(-(u * u));
        e = u < 0.f ? -e : e;
        x[i] = v * 0.5f * (1.f + e);
    }
}
