/* cmd_train.c — `uflow train`: train a U-Flow model on a folder of good images. */
#include "cli.h"
#include "train_cli.h"
#include "uflow_train.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
            "         [--cache-dir DIR] [--cache-mem MiB] [--name NAME] [--quiet]\n"
            "         [--allow-any-format]\n\n"
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
            "Checkpoints (--out and --out.state) every N epochs and on Ctrl-C / SIGTERM.\n"
            "--allow-any-format also decodes formats outside JPEG, PNG, WebP, TIFF and GIF (BMP,\n"
            "PPM, ... through libvips and ImageMagick): for trusted local files only.\n");
}

static volatile sig_atomic_t g_stop, g_quiet;
/* The first Ctrl-C/SIGTERM asks for a checkpoint at the next step boundary (a step of a big
 * model can take minutes, so say so); SA_RESETHAND makes a second one quit at once. */
static void on_signal(int sig)
{
    (void)sig;
    static const char msg[] = "\nuflow train: stopping after the current step (or image) and "
                              "saving; Ctrl-C again quits without saving\n";
    if (!g_quiet && write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* nothing to do about it in a signal handler */
    }
    g_stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct progress {
    int tty, quiet, epochs, images, batch;
    int line;               /* a progress line without its newline is on the terminal */
    double t0, epoch_t0;
    long images_total;      /* images trained in this run */
    long skip;              /* images of a resumed epoch trained by an earlier run; -1: not known yet */
} progress;

/* Terminal width for the progress line: a line longer than the terminal wraps and "\r" no
 * longer returns to its start. */
static int term_cols(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

/* Before a message on a terminal: finish a pending progress line. */
static void end_line(progress *p)
{
    if (p->line)
        fputc('\n', stderr);
    p->line = 0;
}

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
    if (p->skip < 0) /* the first step of this run: a resumed epoch may start part-way */
        p->skip = (long)(step - 1) * p->batch;
    if (p->tty && !p->quiet) {
        double el = now_s() - p->t0, ips = (p->images_total + done - p->skip) / fmax(el, 1e-9);
        double left = ((double)(p->epochs - epoch - 1) * p->images + (p->images - done)) / fmax(ips, 1e-9);
        char eta[32], head[48], tail[160], bar[32] = "", line[256];
        fmt_time(eta, sizeof eta, left);
        snprintf(head, sizeof head, " epoch %d/%d ", epoch + 1, p->epochs);
        snprintf(tail, sizeof tail, "step %d/%d  loss %.5g  %.1f img/s  ETA %s", step, steps, loss,
                 ips, eta);
        /* the bar takes what the terminal has left, up to 24 columns */
        int cols = term_cols(), w = cols - 1 - (int)(strlen(head) + strlen(tail)) - 3;
        w = w > 24 ? 24 : w;
        if (w >= 5) {
            int fill = (int)((double)w * step / steps);
            bar[0] = '[';
            for (int i = 0; i < w; i++)
                bar[1 + i] = i < fill ? '#' : '.';
            bar[w + 1] = ']';
            bar[w + 2] = ' ';
            bar[w + 3] = 0;
        }
        snprintf(line, sizeof line, "%s%s%s", head, bar, tail);
        if ((int)strlen(line) > cols - 1)
            line[cols - 1] = 0;
        fprintf(stderr, "\r%s\033[K", line);
        fflush(stderr);
        p->line = 1;
    }
    return g_stop;
}

/* Decode every image of a directory and hand them to the trainer in chunks. */
static int cache_dir(uf_trainer *t, const uf_model_info *info, const uf_image_opts *io,
                     const char *dir, int val, progress *p)
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
    uf_error err = {0};
    int rc = 0;
    if (!x) {
        fprintf(stderr, "uflow train: out of memory\n");
        rc = -1;
    }
    double t0 = now_s();
    for (int i = 0; i < n && !rc && !g_stop; i++) {
        if (uf_image_load_file(paths[i], info, io, x, &err) != UF_OK ||
            (val ? uf_trainer_add_val_images(t, x, 1, &err) : uf_trainer_add_images(t, x, 1, &err))) {
            end_line(p);
            cli_image_hint(&err);
            if (strstr(err.msg, paths[i])) /* image errors name the file already */
                fprintf(stderr, "uflow train: %s\n", err.msg);
            else
                fprintf(stderr, "uflow train: %s: %s\n", paths[i], err.msg);
            rc = -1;
        } else if (p->tty && !p->quiet) {
            fprintf(stderr, "\r caching %s features %d/%d\033[K", val ? "validation" : "training",
                    i + 1, n);
            fflush(stderr);
            p->line = 1;
        }
    }
    if (!rc && g_stop) {
        end_line(p);
        fprintf(stderr, "uflow train: interrupted while caching features: nothing trained or saved\n");
        rc = -1;
    }
    if (!rc && !p->quiet) {
        fprintf(stderr, "%s%s features of %d images from %s cached in %.1f s\n",
                p->tty ? "\r\033[K" : "", val ? "validation" : "training", n, dir, now_s() - t0);
        p->line = 0;
    }
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

/* Checks that cost nothing and save a run from failing only when it first saves (--out in a
 * missing directory) or from a confusing message (--resume without its files). */
static int check_out(const train_args *a)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", a->out);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    if (access(dir, W_OK) != 0) {
        fprintf(stderr, "uflow train: cannot write --out %s: directory '%s': %s\n", a->out, dir,
                strerror(errno));
        return CLI_FAIL;
    }
    if (a->resume) {
        char state[4096];
        snprintf(state, sizeof state, "%s.state", a->out);
        const char *miss = access(a->out, R_OK) ? a->out : access(state, R_OK) ? state : NULL;
        if (miss) {
            fprintf(stderr, "uflow train: --resume: cannot read %s (it continues the run that wrote "
                    "--out and --out.state): %s\n", miss, strerror(errno));
            return CLI_FAIL;
        }
    }
    return CLI_OK;
}

int cmd_train(int argc, char **argv)
{
    train_args a;
    int rc = train_parse_args(argc, argv, &a, help);
    if (rc >= 0)
        return rc;
    if ((rc = check_out(&a)))
        return rc;
    /* From here on Ctrl-C/SIGTERM stop at the next safe point. SA_RESTART: the handler only sets
     * a flag, so file I/O (a checkpoint being written) must not fail with EINTR. */
    g_quiet = a.quiet;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    uf_model *m = train_start_model(&a);
    if (!m)
        return g_stop ? 130 : CLI_FAIL;
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
    progress p = {.tty = isatty(2), .quiet = a.quiet, .epochs = a.epochs, .batch = a.batch, .skip = -1};
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
        if (a.first_epoch >= a.epochs) { /* --out is left exactly as it is */
            if (!a.quiet)
                fprintf(stderr, "nothing to train: %s already has %d epochs (--epochs %d); left as "
                        "it was after epoch %d\n", a.out, a.first_epoch, a.epochs, a.first_epoch);
            rc = CLI_OK;
            goto done;
        }
    }
    if (cache_dir(t, info, &a.io, a.data, 0, &p) ||
        (a.val && cache_dir(t, info, &a.io, a.val, 1, &p))) {
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
    /* the files on disk hold the parameters of this step (for a new run: nothing to save yet) */
    long saved_step = uf_trainer_steps_done(t);
    int saved_epoch = uf_trainer_epochs_done(t);
    while (uf_trainer_epochs_done(t) < a.epochs) {
        if (g_stop) { /* e.g. during a checkpoint or the validation loss */
            rc = 130;
            break;
        }
        int e = uf_trainer_epochs_done(t);
        double lr = uf_trainer_lr(t); /* this epoch's; the log line shows it */
        p.epoch_t0 = now_s();
        uf_status s = uf_trainer_epoch(t, on_step, &p, &loss, &err);
        if (s && g_stop) {
            if (!a.quiet) {
                end_line(&p);
                fprintf(stderr, "%s: saving a checkpoint\n", err.msg);
            }
            rc = 130;
            break;
        }
        if (s) {
            end_line(&p);
            rc = cli_fail("train", &err);
            /* nothing is saved: the parameters may be what diverged */
            if (saved_step > 0)
                fprintf(stderr, "uflow train: %s and its .state are left at their last checkpoint "
                        "(epoch %d)\n", a.out, saved_epoch);
            goto done;
        }
        p.images_total += p.images - (p.skip > 0 ? p.skip : 0);
        p.skip = 0;
        if (a.val && uf_trainer_val_loss(t, &val, &err) != UF_OK) {
            end_line(&p);
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
                    p.tty ? "\r\033[K" : "", e + 1, a.epochs, loss, vs, lr,
                    p.images_total / fmax(el, 1e-9), el, eta);
            p.line = 0;
        }
        if (a.ckpt_every > 0 && (e + 1) % a.ckpt_every == 0 && uf_trainer_epochs_done(t) < a.epochs) {
            free(extra);
            extra = train_extra_config(&a, t, info, loss, val, now_s() - p.t0);
            if ((rc = checkpoint(t, &a, extra)))
                goto done;
            saved_step = uf_trainer_steps_done(t);
            saved_epoch = uf_trainer_epochs_done(t);
        }
    }
    if (uf_trainer_steps_done(t) == saved_step) { /* stopped before any new step */
        if (!a.quiet)
            fprintf(stderr, "%s\n", saved_step ? "stopped; the last checkpoint holds every step taken"
                                                : "stopped before the first step: nothing saved");
        goto done;
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
