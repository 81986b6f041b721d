/* cmd_nfa.c — `uflow nfa`: the NFA map and mask from latents stored in a safetensors file
 * (no model needed: the test only looks at z). */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: uflow nfa --latent IN.safetensors --height H --width W --out OUT.safetensors\n"
               "                 [--window 7] [--prob-thr 0.5] [--epsilon 0] [--high-precision]\n\n"
               "IN holds z.0, z.1, ... (finest first), float32 [B,C,h,w]. OUT gets minus_log10_nfa\n"
               "(F64 [B,1,H,W]), nfa_mask (U8, 1 = anomalous), anomalous_fraction (F32 [B]),\n"
               "min_log10_nfa (F64 [B]) and log10_sf.k (F64 [B,1,h,w], per scale).\n");
}

/* Latent shapes -> the parts of a model description the NFA uses. */
static int read_latents(const uf_st *st, uf_model_info *info, const float *z[UF_MAX_SCALES], int *B,
                        uf_error *err)
{
    for (int k = 0; k < UF_MAX_SCALES; k++) {
        char name[16];
        snprintf(name, sizeof name, "z.%d", k);
        const uf_st_tensor *t = uf_st_find(st, name);
        if (!t)
            break;
        if (t->dtype != UF_DT_F32 || t->ndim != 4 || t->shape[0] < 1 || t->shape[1] < 1 ||
            t->shape[2] < 1 || t->shape[3] < 1 || t->shape[0] > 1024 || t->shape[1] > 65536 ||
            t->shape[2] > 4096 || t->shape[3] > 4096 || ((uintptr_t)t->data & 3)) {
            snprintf(err->msg, sizeof err->msg, "'%s' must be F32 [B,C,h,w] (aligned, sane sizes)", name);
            return -1;
        }
        if (k > 0 && t->shape[0] != *B) {
            snprintf(err->msg, sizeof err->msg, "'%s' has batch %lld, z.0 has %d", name,
                     (long long)t->shape[0], *B);
            return -1;
        }
        *B = (int)t->shape[0];
        info->z_channels[k] = (int)t->shape[1];
        info->z_height[k] = (int)t->shape[2];
        info->z_width[k] = (int)t->shape[3];
        z[k] = t->data;
        info->n_scales = k + 1;
    }
    if (info->n_scales == 0) {
        snprintf(err->msg, sizeof err->msg, "no latents: expected z.0, z.1, ...");
        return -1;
    }
    return 0;
}

int cmd_nfa(int argc, char **argv)
{
    static const struct option opts[] = {
        {"latent", required_argument, 0, 'l'}, {"height", required_argument, 0, 'y'},
        {"width", required_argument, 0, 'x'},  {"out", required_argument, 0, 'o'},
        {"window", required_argument, 0, 'W'}, {"prob-thr", required_argument, 0, 'P'},
        {"epsilon", required_argument, 0, 'E'}, {"high-precision", no_argument, 0, 'H'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *in = NULL, *out = NULL;
    int H = 0, W = 0, c;
    uf_nfa_opts no = uf_nfa_opts_default();
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l': in = optarg; break;
        case 'o': out = optarg; break;
        case 'y': if ((H = cli_int("nfa", "--height", optarg, 1, 4096)) < 0) return CLI_USAGE; break;
        case 'x': if ((W = cli_int("nfa", "--width", optarg, 1, 4096)) < 0) return CLI_USAGE; break;
        case 'W': if (cli_nfa_opt("nfa", "window", optarg, &no)) return CLI_USAGE; break;
        case 'P': if (cli_nfa_opt("nfa", "prob-thr", optarg, &no)) return CLI_USAGE; break;
        case 'E': if (cli_nfa_opt("nfa", "epsilon", optarg, &no)) return CLI_USAGE; break;
        case 'H': no.high_precision = 1; break;
        case 'h': help(stdout); return CLI_OK;
        default: help(stderr); return CLI_USAGE;
        }
    }
    if (!in || !out || !H || !W || optind != argc) {
        help(stderr);
        return CLI_USAGE;
    }
    uf_error err = {0};
    uf_st *st = NULL;
    uf_nfa *nfa = NULL;
    uf_st_writer *w = NULL;
    double *map = NULL, *mn = NULL;
    uint8_t *mask = NULL;
    float *frac = NULL;
    int rc = CLI_FAIL, B = 0;
    uf_model_info info = {.height = H, .width = W};
    const float *z[UF_MAX_SCALES] = {0};
    if (uf_st_open(in, &st, &err) != UF_OK || read_latents(st, &info, z, &B, &err) != 0 ||
        uf_nfa_init(&info, &no, B, &nfa, &err) != UF_OK)
        goto done;
    size_t n = (size_t)B * H * W;
    map = malloc(sizeof(double) * n);
    mask = malloc(n);
    frac = malloc(sizeof(float) * B);
    mn = malloc(sizeof(double) * B);
    w = uf_st_writer_new();
    if (!map || !mask || !frac || !mn || !w) {
        snprintf(err.msg, sizeof err.msg, "out of memory");
        goto done;
    }
    if (uf_nfa_run(nfa, z, B, map, mask, frac, mn, &err) != UF_OK)
        goto done;
    int64_t shp[4] = {B, 1, H, W}, b1[1] = {B};
    uf_status s = uf_st_writer_add(w, "minus_log10_nfa", UF_DT_F64, 4, shp, map, &err);
    if (!s)
        s = uf_st_writer_add(w, "nfa_mask", UF_DT_U8, 4, shp, mask, &err);
    if (!s)
        s = uf_st_writer_add(w, "anomalous_fraction", UF_DT_F32, 1, b1, frac, &err);
    if (!s)
        s = uf_st_writer_add(w, "min_log10_nfa", UF_DT_F64, 1, b1, mn, &err);
    for (int k = 0; k < info.n_scales && !s; k++) {
        char name[32];
        int64_t ks[4] = {B, 1, info.z_height[k], info.z_width[k]};
        snprintf(name, sizeof name, "log10_sf.%d", k);
        s = uf_st_writer_add(w, name, UF_DT_F64, 4, ks, uf_nfa_log10_sf(nfa, k), &err);
    }
    if (!s)
        s = uf_st_writer_save(w, out, &err);
    if (!s)
        rc = CLI_OK;
done:
    if (rc != CLI_OK)
        cli_fail("nfa", &err);
    uf_st_writer_free(w);
    free(map);
    free(mask);
    free(frac);
    free(mn);
    uf_nfa_free(nfa);
    uf_st_close(st);
    return rc;
}
