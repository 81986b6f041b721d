/* export_helper.c — library-level helper of tests/export_check.py (the `export` test).
 *
 *   export_helper create OUT BACKBONE SIZE SEED PERTURB [WEIGHTS]
 *       uf_model_create_random with backbone_weights = WEIGHTS (absent: random); prints
 *       "status <UF_ERR_...>" and the message, so the test can tell UF_ERR_CONFIG from
 *       UF_ERR_TENSOR (the CLI only prints the message). Exit 0 iff UF_OK.
 *   export_helper features MODEL IN OUT
 *       runs MODEL on IN's 'image' (F32 [B,3,H,W], normalised) and writes what `uflow infer`
 *       does not: the backbone features after the feature LayerNorm (uf_result.features) as
 *       features.0.., plus z.0.. and log_jac_det. */
#include "io/st.h"
#include "uflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *status_name(uf_status s)
{
    static const char *n[] = {"UF_OK", "UF_ERR_IO", "UF_ERR_FORMAT", "UF_ERR_CONFIG", "UF_ERR_TENSOR",
                              "UF_ERR_ARG", "UF_ERR_IMAGE", "UF_ERR_NOMEM", "UF_ERR_UNSUPPORTED",
                              "UF_ERR_LIMIT", "UF_ERR_FORMAT_NOT_ACCEPTED"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

static int create(int argc, char **argv)
{
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: export_helper create OUT BACKBONE SIZE SEED PERTURB [WEIGHTS]\n");
        return 2;
    }
    uf_create_opts o = uf_create_opts_default();
    o.backbone = argv[3];
    o.height = o.width = atoi(argv[4]);
    o.seed = strtoull(argv[5], NULL, 10);
    o.perturb = atoi(argv[6]);
    o.backbone_weights = argc == 8 ? argv[7] : NULL;
    uf_error err = {0};
    uf_status s = uf_model_create_random(&o, argv[2], &err);
    printf("status %s\n%s\n", status_name(s), s == UF_OK ? "" : err.msg);
    return s == UF_OK ? 0 : 1;
}

static int features(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: export_helper features MODEL IN OUT\n");
        return 2;
    }
    uf_error err = {0};
    uf_model *m = NULL;
    uf_st *in = NULL;
    uf_ctx *ctx = NULL;
    uf_st_writer *w = NULL;
    int rc = 1;
    if (uf_model_load(argv[2], &m, &err) != UF_OK || uf_st_open(argv[3], &in, &err) != UF_OK)
        goto done;
    const uf_model_info *info = uf_model_get_info(m);
    const uf_st_tensor *t = uf_st_find(in, "image");
    if (!t || t->dtype != UF_DT_F32 || t->ndim != 4 || t->shape[1] != 3 || t->shape[2] != info->height ||
        t->shape[3] != info->width || t->shape[0] < 1 || t->shape[0] > 64) {
        snprintf(err.msg, sizeof err.msg, "%s: need 'image' F32 [B,3,%d,%d]", argv[3], info->height,
                 info->width);
        goto done;
    }
    int B = (int)t->shape[0];
    float *x = malloc(uf_st_nbytes(t));
    if (!x)
        goto done;
    memcpy(x, t->data, uf_st_nbytes(t));
    uf_ctx_opts o = {.max_batch = B, .threads = 2};
    uf_result r;
    uf_status s = uf_ctx_init(m, &o, &ctx, &err);
    if (s == UF_OK)
        s = uf_ctx_run(ctx, x, B, &r, &err);
    free(x);
    if (s != UF_OK || !(w = uf_st_writer_new()))
        goto done;
    char name[32];
    for (int k = 0; k < r.n_scales && s == UF_OK; k++) {
        int sc = info->feature_scale[k];
        int64_t fs[4] = {B, info->feature_channels[k], info->height / sc, info->width / sc};
        snprintf(name, sizeof name, "features.%d", k);
        s = uf_st_writer_add(w, name, UF_DT_F32, 4, fs, r.features[k], &err);
        int64_t zs[4] = {B, r.z_channels[k], r.z_height[k], r.z_width[k]};
        snprintf(name, sizeof name, "z.%d", k);
        if (s == UF_OK)
            s = uf_st_writer_add(w, name, UF_DT_F32, 4, zs, r.z[k], &err);
    }
    int64_t b1[1] = {B};
    if (s == UF_OK)
        s = uf_st_writer_add(w, "log_jac_det", UF_DT_F32, 1, b1, r.log_jac_det, &err);
    if (s == UF_OK && uf_st_writer_save(w, argv[4], &err) == UF_OK)
        rc = 0;
done:
    if (rc)
        fprintf(stderr, "export_helper features: %s\n", err.msg[0] ? err.msg : "failed");
    uf_st_writer_free(w);
    uf_ctx_free(ctx);
    uf_st_close(in);
    uf_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "create") == 0)
        return create(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "features") == 0)
        return features(argc, argv);
    fprintf(stderr, "usage: export_helper create|features ...\n");
    return 2;
}
