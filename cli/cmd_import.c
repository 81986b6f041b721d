/* cmd_import.c — `uflow import`: an anomalib checkpoint or torch state_dict into a model file
 * (uflow_interop.h; docs/model-format.md "Importing from anomalib"). */
#include "cli.h"
#include "uflow_interop.h"

#include <stdio.h>
#include <string.h>

static const char USAGE[] =
    "usage: uflow import IN.ckpt|IN.pt --out MODEL.safetensors [--input-size H[xW]] [--name N]\n"
    "                    [--quiet]\n"
    "\n"
    "IN: an anomalib 2.x Lightning checkpoint, an anomalib 1.x checkpoint, or a bare\n"
    "UflowModel state_dict, saved by torch.save in either serialisation (zip or legacy).\n"
    "The pickle is read without running any code; a checkpoint that would run code on\n"
    "torch.load (os.system, builtins.eval, ...) is refused, naming the callable.\n"
    "Taken: the model.* tensors, hyper_parameters (backbone, flow_steps, affine_clamp,\n"
    "affine_subnet_channels_ratio, permute_soft), the input size and normalisation of the\n"
    "pickled pre-processor (--input-size overrides), the post-processor's thresholds and\n"
    "min/max (normalised scores and labels in predict and uflowd). Decisions taken without\n"
    "the checkpoint's word (defaults, inferred values) are printed on stderr (--quiet: not).\n"
    "The output is written to a temporary file, loaded as a model, then renamed: on failure\n"
    "nothing is left at --out.\n";

static void note(void *ud, const char *msg)
{
    (void)ud;
    fprintf(stderr, "uflow import: note: %s\n", msg);
}

int cmd_import(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    uf_import_opts o = uf_import_opts_default();
    o.note = note;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--out") && has)
            out = argv[++i];
        else if (!strcmp(a, "--name") && has)
            o.name = argv[++i];
        else if (!strcmp(a, "--input-size") && has) {
            if (cli_parse_size(argv[++i], &o.height, &o.width) != 0) {
                fprintf(stderr, "uflow import: --input-size '%s' is not H or HxW\n", argv[i]);
                return CLI_USAGE;
            }
        } else if (!strcmp(a, "--quiet"))
            o.note = NULL;
        else if (a[0] != '-' && !in)
            in = a;
        else {
            fprintf(stderr, "uflow import: unexpected argument '%s'\n%s", a, USAGE);
            return CLI_USAGE;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "uflow import: %s\n%s", !in ? "no input file" : "--out is required", USAGE);
        return CLI_USAGE;
    }
    uf_error err;
    if (uf_import_checkpoint(in, out, &o, &err) != UF_OK)
        return cli_fail("import", &err);
    fprintf(stderr, "uflow import: wrote %s\n", out);
    return CLI_OK;
}
