/* cmd_create.c — `uflow create`: a seeded random-weight model file of a given config. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f,
            "usage: uflow create --out M.safetensors [--backbone resnet18|wide_resnet50_2|mcait]\n"
            "                    [--input-size H[xW]] [--flow-steps N] [--clamp C] [--ratio R]\n"
            "                    [--permute-soft] [--seed S] [--perturb] [--name NAME]\n"
            "                    [--backbone-weights FILE]\n\n"
            "Writes a model with anomalib's parameter names and the given config, weights drawn\n"
            "from a seeded generator (PyTorch-style default inits). It is untrained: useful for\n"
            "tests, benchmarks and as a training start. --perturb re-randomises the constant\n"
            "parameters (ActNorm, BatchNorm, LayerNorm) so every parameter affects the output.\n\n"
            "--backbone-weights FILE takes every backbone tensor from FILE instead: a safetensors\n"
            "file with torchvision/timm key names, e.g. ImageNet weights written on a machine with\n"
            "internet access by\n"
            "    /usr/bin/python3 tools/export_backbone.py --arch resnet18 --pretrained --out r18.safetensors\n"
            "(see docs/model-format.md, \"Backbone weights\"). The feature LayerNorms and the flow stay\n"
            "seeded-random; the config records the file's name, SHA-256 and source.\n");
}

int cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},        {"backbone", required_argument, 0, 'b'},
        {"input-size", required_argument, 0, 's'}, {"flow-steps", required_argument, 0, 'f'},
        {"clamp", required_argument, 0, 'c'},      {"ratio", required_argument, 0, 'r'},
        {"permute-soft", no_argument, 0, 'p'},     {"seed", required_argument, 0, 'S'},
        {"perturb", no_argument, 0, 'P'},          {"name", required_argument, 0, 'n'},
        {"backbone-weights", required_argument, 0, 'w'},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
    uf_create_opts o = uf_create_opts_default();
    const char *out = NULL;
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'b': o.backbone = optarg; break;
        case 's':
            if (cli_parse_size(optarg, &o.height, &o.width)) {
                fprintf(stderr, "uflow create: --input-size expects H or HxW, got '%s'\n", optarg);
                return CLI_USAGE;
            }
            break;
        case 'f':
            if ((o.flow_steps = cli_int("create", "--flow-steps", optarg, 1, 64)) < 0)
                return CLI_USAGE;
            break;
        case 'c': o.affine_clamp = strtod(optarg, &end); if (*end) goto bad; break;
        case 'r': o.subnet_ratio = strtod(optarg, &end); if (*end) goto bad; break;
        case 'p': o.permute_soft = 1; break;
        case 'S': o.seed = strtoull(optarg, &end, 10); if (*end) goto bad; break;
        case 'P': o.perturb = 1; break;
        case 'n': o.name = optarg; break;
        case 'w': o.backbone_weights = optarg; break;
        case 'h': help(stdout); return CLI_OK;
        default: help(stderr); return CLI_USAGE;
        }
    }
    if (!out || optind != argc) {
        help(stderr);
        return CLI_USAGE;
    }
    uf_error err = {0};
    if (uf_model_create_random(&o, out, &err) != UF_OK)
        return cli_fail("create", &err);
    return CLI_OK;
bad:
    fprintf(stderr, "uflow create: bad number '%s'\n", optarg);
    return CLI_USAGE;
}
