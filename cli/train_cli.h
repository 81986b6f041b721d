/* train_cli.h — `uflow train`'s options, start model and output metadata (train_args.c). */
#ifndef UF_TRAIN_CLI_H
#define UF_TRAIN_CLI_H

#include "uflow.h"
#include "uflow_train.h"

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

typedef struct train_args {
    const char *data, *val, *out, *init, *backbone, *backbone_weights, *cache_dir, *name;
    int resume, h, w, flow_steps, permute_soft, epochs, batch, threads, ckpt_every, quiet;
    int first_epoch;           /* epochs already done when this run started (resume) */
    uf_image_opts io;          /* --allow-any-format */
    double clamp, ratio, lr, wd;
    uint64_t seed;
    uf_loss_kind loss;
    size_t cache_mib;
} train_args;

/* -1: go on; otherwise the exit code (help printed, usage error reported). */
int train_parse_args(int argc, char **argv, train_args *a, void (*help)(FILE *));
/* The model training starts from (--init, --resume's --out, or a new one); NULL + message. */
uf_model *train_start_model(train_args *a);
/* The "training" config object written into the model (JSON text, malloc'd). */
char *train_extra_config(const train_args *a, const uf_trainer *t, const uf_model_info *info,
                         double loss, double val, double seconds);
void train_cleanup(train_args *a);

#endif
