/* cmd_export.c — `uflow export`: a model file as a torch zip checkpoint (uflow_interop.h). */
#include "cli.h"
#include "uflow_interop.h"

#include <stdio.h>
#include <string.h>

static const char USAGE[] =
    "usage: uflow export MODEL.safetensors --out OUT.ckpt [--lightning-version V]\n"
    "\n"
    "Writes a torch zip checkpoint shaped like anomalib's: {\"state_dict\": {\"model.<key>\":\n"
    "tensor, ..., \"post_processor._image_threshold\", ...}, \"hyper_parameters\": {backbone,\n"
    "flow_steps, affine_clamp, affine_subnet_channels_ratio, permute_soft},\n"
    "\"pytorch-lightning_version\", \"epoch\", \"global_step\", \"uflow_config\"}. Only tensors,\n"
    "containers, numbers and strings: torch.load(..., weights_only=True) (torch >= 2) reads it\n"
    "and UflowModel.load_state_dict(strict=True) accepts its model. part. Written to a\n"
    "temporary file and renamed.\n";

int cmd_export(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    uf_export_opts o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(a, "--lightning-version") && i + 1 < argc)
            o.lightning_version = argv[++i];
        else if (a[0] != '-' && !in)
            in = a;
        else {
            fprintf(stderr, "uflow export: unexpected argument '%s'\n%s", a, USAGE);
            return CLI_USAGE;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "uflow export: %s\n%s", !in ? "no model file" : "--out is required", USAGE);
        return CLI_USAGE;
    }
    uf_error err;
    if (uf_export_checkpoint(in, out, &o, &err) != UF_OK)
        return cli_fail("export", &err);
    fprintf(stderr, "uflow export: wrote %s\n", out);
    return CLI_OK;
}
