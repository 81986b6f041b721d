/* cmd_train.c — `uflow train`: train a U-Flow model on a folder of good images. */
#include "cli.h"
#include "train_cli.h"
#include "uflow_train.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void help(FILE *f)
{
    fprintf(f,
            "usage: uflow train --data DIR --out M.safetensors [--val DIR]\n"
            "         [--backbone resnet18|wide_resnet50_2|mcait] [--input-size H[xW]]\n"
            "         [--backbone-weights FILE | --backbone-init random] [--seed S]\n"
            "         [--flow-steps 4] [--clamp 2] [--ratio 1] [--permute-soft]\n"
            "         [--init M.safetensors | --resume]\n"
            "         [--epochs 100] [--batch-size 32] [--lr 1e-3] [--weight-decay 1e-5]\n"
            "         [--loss paper|anomalib] [--threads N] [--checkpoint-every 10]\n"
            "         [--cache-dir DIR] [--cache-mem MiB] [--name NAME] [--quiet]\n\n"
            "Trains the flow (and the ResNet feature LayerNorms) on the good images of DIR; the\n"
            "backbone is frozen and its features are computed once and cached (in RAM up to\n"
            "--cache-mem, default 2048 MiB, then in a temporary file in --cache-dir).\n"
            "Start: --init an existing model, --resume the run that wrote --out (with its\n"
            "M.safetensors.state file), or a new model: --backbone-weights FILE (torchvision/timm\n"
            "names, tools/export_backbone.py) or a seeded random backbone (--backbone-init random,\n"
            "the default; the model's config says so).\n"
            "--loss paper (default): mean_b(0.5|z|^2 - ljd), latents ~ N(0,1) as the NFA assumes;\n"
            "--loss anomalib: anomalib's UFlowLoss (latents ~ N(0,1/B)); docs/training.md.\n"
            "Adam (L2 weight decay), LinearLR 1.0->0.4 over 25000 epochs stepped per epoch.\n"
            "Checkpoints (--out and --out.state) every N epochs and on Ctrl-C / SIGTERM.\n");
}

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct progress {
    int tty, quiet, epochs, images;
    double t0, epoch_t0;
    long images_total;      /* images trained in this run */
} progress;

static void fmt_time(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 360000)
        snprintf(buf, n, "--:--");
    else if (s >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", (int)s / 3600, ((int)s / 60) % 60, (int)s % 60);
    else
        snprintf(buf, n, "%d:%02d", (int)s / 60, (int)s % 60);
}

static int on_step(void *user, int epoch, int step, int steps, double loss, int done)
{
    progress *p = user;
    if (p->tty && !p->quiet) {
        double el = now_s() - p->t0, ips = (p->images_total + done) / fmax(el, 1e-9);
        double left = ((double)(p->epochs - epoch - 1) * p->images + (p->images - done)) / fmax(ips, 1e-9);
        char eta[32];
        fmt_time(eta, sizeof eta, left);
        int w = 24, fill = (int)((double)w * step / steps);
        char bar[32];
        for (int i = 0; i < w; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[w] = 0;
        fprintf(stderr, "\r epoch %d/%d [%s] step %d/%d  loss %.5g  %.1f img/s  ETA %s   ", epoch + 1,
                p->epochs, bar, step, steps, loss, ips, eta);
        fflush(stderr);
    }
    return g_stop;
}

/* Decode every image of a directory and hand them to the trainer in chunks. */
static int cache_dir(uf_trainer *t, const uf_model_info *info, const char *dir, int val,
                     const progress *p)
{
    char **paths;
    int n;
    if (cli_list_images("train", dir, &paths, &n))
        return -1;
    if (n == 0) {
        fprintf(stderr, "uflow train: no images (png, jpg, jpeg, bmp, tif, tiff, webp) in '%s'\n", dir);
        cli_free_list(paths, n);
        return -1;
    }
    size_t per = (size_t)3 * info->height * info->width;
    float *x = malloc(sizeof(float) * per);
    uf_error err;
    int rc = x ? 0 : -1;
    double t0 = now_s();
    for (int i = 0; i < n && !rc && !g_stop; i++) {
        if (uf_image_load_file(paths[i], info, NULL, x, &err) != UF_OK ||
            (val ? uf_trainer_add_val_images(t, x, 1, &err) : uf_trainer_add_images(t, x, 1, &err))) {
            fprintf(stderr, "\nuflow train: %s: %s\n", paths[i], err.msg);
            rc = -1;
        } else if (p->tty && !p->quiet) {
            fprintf(stderr, "\r caching %s features %d/%d", val ? "validation" : "training", i + 1, n);
            fflush(stderr);
        }
    }
    if (!rc && g_stop)
        rc = -1;
    if (!rc && !p->quiet)
        fprintf(stderr, "%s%s features of %d images from %s cached in %.1f s\n",
                p->tty ? "\r" : "", val ? "validation" : "training", n, dir, now_s() - t0);
    free(x);
    cli_free_list(paths, n);
    return rc;
}

static int checkpoint(uf_trainer *t, const train_args *a, const char *extra)
{
    uf_error err;
    char state[4096];
    snprintf(state, sizeof state, "%s.state", a->out);
    if (uf_trainer_save(t, a->out, extra, &err) != UF_OK || uf_trainer_save_state(t, state, &err) != UF_OK)
        return cli_fail("train", &err);
    return CLI_OK;
}

int cmd_train(int argc, char **argv)
{
    train_args a;
    int rc = train_parse_args(argc, argv, &a, help);
    if (rc >= 0)
        return rc;
    uf_model *m = train_start_model(&a);
    if (!m)
        return CLI_FAIL;
    const uf_model_info *info = uf_model_get_info(m);
    uf_train_opts o = uf_train_opts_default();
    o.loss = a.loss;
    o.batch_size = a.batch;
    o.lr = a.lr;
    o.weight_decay = a.wd;
    o.seed = a.seed;
    o.threads = a.threads;
    o.cache_dir = a.cache_dir;
    o.cache_mem_limit = a.cache_mib << 20;
    uf_trainer *t = NULL;
    uf_error err;
    char *extra = NULL;
    double loss = NAN, val = NAN;
    progress p = {.tty = isatty(2), .quiet = a.quiet, .epochs = a.epochs};
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (uf_trainer_new(m, &o, &t, &err) != UF_OK) {
        rc = cli_fail("train", &err);
        goto done;
    }
    if (a.resume) {
        char state[4096];
        snprintf(state, sizeof state, "%s.state", a.out);
        if (uf_trainer_load_state(t, state, &err) != UF_OK) {
            rc = cli_fail("train", &err);
            goto done;
        }
        a.first_epoch = uf_trainer_epochs_done(t);
    }
    if (cache_dir(t, info, a.data, 0, &p) || (a.val && cache_dir(t, info, a.val, 1, &p))) {
        rc = g_stop ? 130 : CLI_FAIL;
        goto done;
    }
    p.images = uf_trainer_n_images(t);
    int on_disk;
    size_t cb = uf_trainer_cache_bytes(t, &on_disk);
    if (!a.quiet)
        fprintf(stderr,
                "training %s %dx%d, %d flow steps, %d images (cache %.1f MiB%s), loss %s, batch %d, "
                "%d threads, epochs %d..%d\n",
                info->backbone_name, info->height, info->width, info->flow_steps, p.images,
                cb / 1048576.0, on_disk ? " on disk" : "", a.loss == UF_LOSS_PAPER ? "paper" : "anomalib",
                a.batch, a.threads, uf_trainer_epochs_done(t) + 1, a.epochs);
    p.t0 = now_s();
    rc = CLI_OK;
    while (uf_trainer_epochs_done(t) < a.epochs) {
        int e = uf_trainer_epochs_done(t);
        p.epoch_t0 = now_s();
        uf_status s = uf_trainer_epoch(t, on_step, &p, &loss, &err);
        if (s && g_stop) {
            fprintf(stderr, "%s%s: saving a checkpoint\n", p.tty ? "\n" : "", err.msg);
            rc = 130;
            break;
        }
        if (s) {
            rc = cli_fail("train", &err);
            goto done;
        }
        p.images_total += p.images;
        if (a.val && uf_trainer_val_loss(t, &val, &err) != UF_OK) {
            rc = cli_fail("train", &err);
            goto done;
        }
        double el = now_s() - p.t0;
        if (!a.quiet) {
            char eta[32], vs[48] = "";
            fmt_time(eta, sizeof eta, el / (e + 1 - a.first_epoch) * (a.epochs - e - 1));
            if (a.val)
                snprintf(vs, sizeof vs, "  val %.6g", val);
            fprintf(stderr, "%sepoch %d/%d  loss %.6g%s  lr %.4g  %.1f img/s  elapsed %.1f s  ETA %s\n",
                    p.tty ? "\r" : "", e + 1, a.epochs, loss, vs, uf_trainer_lr(t),
                    p.images_total / fmax(el, 1e-9), el, eta);
        }
        if (a.ckpt_every > 0 && (e + 1) % a.ckpt_every == 0 && uf_trainer_epochs_done(t) < a.epochs) {
            free(extra);
            extra = train_extra_config(&a, t, info, loss, val, now_s() - p.t0);
            if ((rc = checkpoint(t, &a, extra)))
                goto done;
        }
    }
    free(extra);
    extra = train_extra_config(&a, t, info, loss, val, now_s() - p.t0);
    if (checkpoint(t, &a, extra)) {
        rc = CLI_FAIL;
        goto done;
    }
    if (!a.quiet)
        fprintf(stderr, "%s %s after %d epochs (%.1f s; resume with --resume)\n",
                rc == 130 ? "checkpoint" : "wrote", a.out, uf_trainer_epochs_done(t), now_s() - p.t0);
done:
    free(extra);
    uf_trainer_free(t);
    uf_model_free(m);
    train_cleanup(&a);
    return rc;
}
