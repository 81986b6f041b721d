/* main.c — `uflow`: dispatch to the subcommands. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} cmds[] = {
    {"infer", cmd_infer, "run a model on a tensor or images, write every output to safetensors"},
    {"predict", cmd_predict, "score images: one JSON line per image, optional heatmap PNGs"},
    {"inspect", cmd_inspect, "print a model's config, size and scales"},
    {"bench", cmd_bench, "measure throughput and latency"},
    {"create", cmd_create, "write a seeded random-weight model of a given config"},
    {"nfa", cmd_nfa, "the a-contrario NFA map and mask from stored latents"},
    {"train", cmd_train, "train a model on a folder of good images (frozen backbone, cached features)"},
    {"eval", cmd_eval, "metrics (AUROC, AUPRO, F1, NFA IoU) on labelled folders; --calibrate"},
    {"import", cmd_import, "an anomalib checkpoint / torch state_dict into a model (runs no code from it)"},
    {"export", cmd_export, "a model as a torch checkpoint anomalib and torch.load(weights_only) read"},
    {"gen-demo", cmd_gendata, "make a demo dataset: good texture crops and synthetic defects with masks"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: uflow <command> [options]   (uflow <command> --help for its options)\n\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\nlibuflow %s\n", UF_VERSION_STRING);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("uflow %s\n", UF_VERSION_STRING);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "uflow: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
