/* norm.c — normalisation kernels: LayerNorm over C x h x w, and folding an eval-mode
 * BatchNorm into the preceding convolution. */
#include "core/internal.h"
#include "core/pool.h"
#include "kernels/kernels.h"

#include <math.h>

/* LayerNorm in three parallel passes (sum, squared deviations, affine); partial sums are
 * combined in thread order, in double. */
#define LN_MAX_THREADS 256
typedef struct ln_job {
    const float *x, *gamma, *beta;
    float *y;
    size_t n;
    int phase;
    double mean;
    float meanf, rstd;
    double part[LN_MAX_THREADS];
} ln_job;

static void ln_part(void *arg, int t, int nt)
{
    ln_job *j = arg;
    size_t lo, hi;
    uf_split(j->n, 64, t, nt, &lo, &hi);
    if (j->phase == 0) {
        double s = 0;
        for (size_t i = lo; i < hi; i++)
            s += j->x[i];
        j->part[t] = s;
    } else if (j->phase == 1) {
        double ss = 0;
        for (size_t i = lo; i < hi; i++) {
            double d = j->x[i] - j->mean;
            ss += d * d;
        }
        j->part[t] = ss;
    } else if (j->gamma) {
        for (size_t i = lo; i < hi; i++)
            j->y[i] = (j->x[i] - j->meanf) * j->rstd * j->gamma[i] + j->beta[i];
    } else {
        for (size_t i = lo; i < hi; i++)
            j->y[i] = (j->x[i] - j->meanf) * j->rstd;
    }
}

void uf_layernorm_chw_ex(const uf_exec *ex, const float *in, int B, size_t n, const float *gamma,
                         const float *beta, float eps, float *out)
{
    uf_pool *pool = ex ? ex->pool : NULL;
    int nt = uf_pool_size(pool);
    ln_job j = {.gamma = gamma, .beta = beta, .n = n};
    for (int b = 0; b < B; b++) {
        j.x = in + (size_t)b * n;
        j.y = out + (size_t)b * n;
        double s = 0;
        j.phase = 0;
        uf_pool_run(pool, ln_part, &j);
        for (int t = 0; t < nt; t++)
            s += j.part[t];
        j.mean = s / (double)n;
        j.phase = 1;
        uf_pool_run(pool, ln_part, &j);
        double ss = 0;
        for (int t = 0; t < nt; t++)
            ss += j.part[t];
        j.meanf = (float)j.mean;
        j.rstd = (float)(1.0 / sqrt(ss / (double)n + eps));
        j.phase = 2;
        uf_pool_run(pool, ln_part, &j);
    }
}

void uf_layernorm_chw(const float *in, int B, size_t n, const float *gamma, const float *beta,
                      float eps, float *out)
{
    uf_layernorm_chw_ex(NULL, in, B, n, gamma, beta, eps, out);
}

void uf_bn_fold(int cout, size_t per_out, const float *w, const float *b, const float *gamma,
                const float *beta, const float *mean, const float *var, float eps, float *w_out,
                float *b_out)
{
    for (int o = 0; o < cout; o++) {
        /* float32 like PyTorch's eval BN: gamma / sqrt(var + eps) */
        float inv = gamma[o] / sqrtf(var[o] + eps);
        for (size_t i = 0; i < per_out; i++)
            w_out[(size_t)o * per_out + i] = w[(size_t)o * per_out + i] * inv;
        b_out[o] = beta[o] - mean[o] * inv + (b ? b[o] * inv : 0.f);
    }
}

typedef struct mul_add_job {
    float *x;
    const float *w, *b;
    size_t n;
} mul_add_job;

UF_CLONES
static void mul_add_part(void *arg, int t, int nt)
{
    const mul_add_job *j = arg;
    size_t lo, hi;
    uf_split(j->n, 64, t, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        j->x[i] = j->x[i] * j->w[i] + j->b[i];
}

void uf_mul_add_ex(const uf_exec *ex, float *x, int B, size_t n, const float *w, const float *bias)
{
    for (int b = 0; b < B; b++) {
        mul_add_job j = {x + (size_t)b * n, w, bias, n};
        uf_pool_run(ex ? ex->pool : NULL, mul_add_part, &j);
    }
}
