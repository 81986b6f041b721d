/* train_args.c — `uflow train`: option parsing, the start model, and the "training" record
 * written into the trained model's config. */
#include "cli.h"
#include "train_cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_double(const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (*end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "uflow train: %s expects a number in [%g, %g], got '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = d;
    return 0;
}

int train_parse_args(int argc, char **argv, train_args *a, void (*help)(FILE *))
{
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},         {"val", required_argument, 0, 'v'},
        {"out", required_argument, 0, 'o'},          {"init", required_argument, 0, 'i'},
        {"resume", no_argument, 0, 'R'},             {"backbone", required_argument, 0, 'b'},
        {"backbone-weights", required_argument, 0, 'W'},
        {"backbone-init", required_argument, 0, 'I'}, {"seed", required_argument, 0, 'S'},
        {"input-size", required_argument, 0, 's'},   {"flow-steps", required_argument, 0, 'f'},
        {"clamp", required_argument, 0, 'c'},        {"ratio", required_argument, 0, 'r'},
        {"permute-soft", no_argument, 0, 'p'},       {"epochs", required_argument, 0, 'e'},
        {"batch-size", required_argument, 0, 'B'},   {"lr", required_argument, 0, 'l'},
        {"weight-decay", required_argument, 0, 'w'}, {"loss", required_argument, 0, 'L'},
        {"threads", required_argument, 0, 't'},      {"checkpoint-every", required_argument, 0, 'k'},
        {"cache-dir", required_argument, 0, 'C'},    {"cache-mem", required_argument, 0, 'M'},
        {"name", required_argument, 0, 'n'},         {"quiet", no_argument, 0, 'q'},
        {"allow-any-format", no_argument, 0, 'A'},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->backbone = "resnet18";
    a->h = a->w = 256;
    a->flow_steps = 4;
    a->clamp = 2.0;
    a->ratio = 1.0;
    a->epochs = 100;
    a->batch = 32;
    a->lr = 1e-3;
    a->wd = 1e-5;
    a->threads = cli_default_threads();
    a->ckpt_every = 10;
    a->cache_mib = 2048;
    a->loss = UF_LOSS_PAPER;
    int c, size_set = 0, v;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->data = optarg; break;
        case 'v': a->val = optarg; break;
        case 'o': a->out = optarg; break;
        case 'i': a->init = optarg; break;
        case 'R': a->resume = 1; break;
        case 'b': a->backbone = optarg; break;
        case 'W': a->backbone_weights = optarg; break;
        case 'I':
            if (strcmp(optarg, "random")) {
                fprintf(stderr, "uflow train: --backbone-init takes 'random' (or use --backbone-weights)\n");
                return CLI_USAGE;
            }
            break;
        case 'S':
            a->seed = strtoull(optarg, &end, 10);
            if (*end || !*optarg) {
                fprintf(stderr, "uflow train: --seed expects an integer, got '%s'\n", optarg);
                return CLI_USAGE;
            }
            break;
        case 's':
            if (cli_parse_size(optarg, &a->h, &a->w)) {
                fprintf(stderr, "uflow train: --input-size expects H or HxW, got '%s'\n", optarg);
                return CLI_USAGE;
            }
            size_set = 1;
            break;
        case 'f': if ((a->flow_steps = cli_int("train", "--flow-steps", optarg, 1, 64)) < 0) return CLI_USAGE; break;
        case 'c': if (parse_double("--clamp", optarg, 1e-3, 100, &a->clamp)) return CLI_USAGE; break;
        case 'r': if (parse_double("--ratio", optarg, 1e-3, 64, &a->ratio)) return CLI_USAGE; break;
        case 'p': a->permute_soft = 1; break;
        case 'e': if ((a->epochs = cli_int("train", "--epochs", optarg, 1, 1000000)) < 0) return CLI_USAGE; break;
        case 'B': if ((a->batch = cli_int("train", "--batch-size", optarg, 1, 4096)) < 0) return CLI_USAGE; break;
        case 'l': if (parse_double("--lr", optarg, 1e-12, 10, &a->lr)) return CLI_USAGE; break;
        case 'w': if (parse_double("--weight-decay", optarg, 0, 10, &a->wd)) return CLI_USAGE; break;
        case 'L':
            if (!strcmp(optarg, "paper"))
                a->loss = UF_LOSS_PAPER;
            else if (!strcmp(optarg, "anomalib"))
                a->loss = UF_LOSS_ANOMALIB;
            else {
                fprintf(stderr, "uflow train: --loss is 'paper' or 'anomalib', got '%s'\n", optarg);
                return CLI_USAGE;
            }
            break;
        case 't': if ((a->threads = cli_int("train", "--threads", optarg, 1, 256)) < 0) return CLI_USAGE; break;
        case 'k': if ((a->ckpt_every = cli_int("train", "--checkpoint-every", optarg, 0, 1000000)) < 0) return CLI_USAGE; break;
        case 'C': a->cache_dir = optarg; break;
        case 'M': if ((v = cli_int("train", "--cache-mem", optarg, 0, 1 << 24)) < 0) return CLI_USAGE; a->cache_mib = (size_t)v; break;
        case 'n': a->name = optarg; break;
        case 'q': a->quiet = 1; break;
        case 'A': a->io.any_format = 1; break;
        case 'h': help(stdout); return CLI_OK;
        default: help(stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "uflow train: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    if (!a->data || !a->out) {
        fprintf(stderr, "uflow train: --data and --out are required (see --help)\n");
        return CLI_USAGE;
    }
    if (a->init && a->resume) {
        fprintf(stderr, "uflow train: --init and --resume exclude each other\n");
        return CLI_USAGE;
    }
    if (!strcmp(a->backbone, "mcait") && !size_set)
        a->h = a->w = 448;
    return -1;
}

uf_model *train_start_model(train_args *a)
{
    uf_error err;
    uf_model *m = NULL;
    if (a->init || a->resume)
        return cli_load_model("train", a->init ? a->init : a->out);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.start.%ld", a->out, (long)getpid());
    uf_create_opts o = uf_create_opts_default();
    o.backbone = a->backbone;
    o.height = a->h;
    o.width = a->w;
    o.flow_steps = a->flow_steps;
    o.affine_clamp = a->clamp;
    o.subnet_ratio = a->ratio;
    o.permute_soft = a->permute_soft;
    o.seed = a->seed;
    o.name = a->name;
    o.backbone_weights = a->backbone_weights;
    if (uf_model_create_random(&o, tmp, &err) != UF_OK) {
        cli_fail("train", &err);
        return NULL;
    }
    if (uf_model_load(tmp, &m, &err) != UF_OK)
        cli_fail("train", &err);
    unlink(tmp); /* the model keeps its mapping */
    return m;
}

char *train_extra_config(const train_args *a, const uf_trainer *t, const uf_model_info *info,
                         double loss, double val, double seconds)
{
    (void)info;
    json_t *tr = json_pack("{s:s,s:i,s:i,s:f,s:f,s:s,s:I,s:I,s:i,s:s,s:f,s:s}", "loss",
                           a->loss == UF_LOSS_PAPER ? "paper" : "anomalib", "epochs",
                           uf_trainer_epochs_done(t), "batch_size", a->batch, "lr", a->lr,
                           "weight_decay", a->wd, "lr_schedule",
                           "LinearLR(start_factor=1.0, end_factor=0.4, total_iters=25000) per epoch",
                           "seed", (json_int_t)a->seed, "steps", (json_int_t)uf_trainer_steps_done(t),
                           "images", uf_trainer_n_images(t), "data", a->data, "seconds", seconds,
                           "uflow_version", UF_VERSION_STRING);
    if (tr && loss == loss)
        json_object_set_new(tr, "final_loss", json_real(loss));
    if (tr && a->val) {
        json_object_set_new(tr, "val_images", json_integer(uf_trainer_n_val_images(t)));
        if (val == val)
            json_object_set_new(tr, "val_loss", json_real(val));
    }
    json_t *o = json_object();
    json_object_set_new(o, "training", tr);
    if (a->name)
        json_object_set_new(o, "name", json_string(a->name));
    char *txt = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return txt;
}

void train_cleanup(train_args *a) { (void)a; }
