/* test_train_cli.c — `uflow train` end to end on a generated texture set (`uflow gen-demo`):
 * the loss falls, held-out good latents are calibrated (mean z^2 ~ 1 with the paper loss,
 * ~ 1/B with anomalib's), the trained model separates defects (image AUROC floor, via
 * `uflow eval`), Ctrl-C checkpoints and --resume continues, bad arguments are refused. */
#include "util.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *uflow;
static char tmpdir[] = "/tmp/uflow_test_train_cli_XXXXXX";
static char data[1024], out[65536];

#define SIZE "64"
#define TRAIN_ARGS "--input-size " SIZE " --flow-steps 2 --batch-size 8 --threads 2 --seed 3"

static void tmp(char *buf, size_t n, const char *file) { ut_path(buf, n, tmpdir, file); }

static int setup(void **s)
{
    (void)s;
    ut_path(data, sizeof data, tmpdir, "data");
    char tex[1024];
    ut_path(tex, sizeof tex, UF_SOURCE_ROOT, "data/textures");
    int rc = ut_run(out, sizeof out, "%s gen-demo --out %s --textures %s --seed 5 --train 48 "
                    "--test-good 16 --test-defect 24", uflow, data, tex);
    if (rc != 0) {
        fprintf(stderr, "gen-demo failed (%d): %s\n", rc, out);
        return -1;
    }
    return 0;
}

/* "epoch i/N  loss X" lines of a training log. */
static int epoch_losses(const char *log, double *loss, int max)
{
    int n = 0;
    for (const char *p = log; (p = strstr(p, "epoch ")) && n < max; p++) {
        int e, N;
        double l;
        if (sscanf(p, "epoch %d/%d  loss %lf", &e, &N, &l) == 3)
            loss[n++] = l;
    }
    return n;
}

/* Mean z^2 of every latent element of the held-out good images, per scale and overall. */
static double heldout_z2(const char *model_path, double per_scale[UF_MAX_SCALES])
{
    uf_model *m;
    uf_error err;
    if (uf_model_load(model_path, &m, &err))
        fail_msg("%s", err.msg);
    const uf_model_info *info = uf_model_get_info(m);
    uf_ctx *c;
    uf_ctx_opts o = {.max_batch = 1, .threads = 2};
    assert_int_equal(uf_ctx_init(m, &o, &c, &err), UF_OK);
    float *x = malloc(sizeof(float) * 3 * info->height * info->width);
    double sum[UF_MAX_SCALES] = {0}, all = 0;
    size_t cnt[UF_MAX_SCALES] = {0}, n_all = 0;
    char path[1100];
    for (int i = 0; i < 16; i++) {
        snprintf(path, sizeof path, "%s/test/good/%04d.png", data, i);
        if (uf_image_load_file(path, info, NULL, x, &err))
            fail_msg("%s", err.msg);
        uf_result r;
        assert_int_equal(uf_ctx_run(c, x, 1, &r, &err), UF_OK);
        for (int k = 0; k < r.n_scales; k++) {
            size_t n = (size_t)r.z_channels[k] * r.z_height[k] * r.z_width[k];
            for (size_t q = 0; q < n; q++)
                sum[k] += (double)r.z[k][q] * r.z[k][q];
            cnt[k] += n;
        }
    }
    for (int k = 0; k < info->n_scales; k++) {
        per_scale[k] = sum[k] / (double)cnt[k];
        all += sum[k];
        n_all += cnt[k];
    }
    free(x);
    uf_ctx_free(c);
    uf_model_free(m);
    return all / (double)n_all;
}

static double eval_image_auroc(const char *model)
{
    char js[1024];
    tmp(js, sizeof js, "eval.json");
    int rc = ut_run(out, sizeof out, "%s eval --model %s --good %s/test/good --anomalous %s/test/defect "
                    "--masks %s/ground_truth/defect --json %s --threads 2", uflow, model, data, data,
                    data, js);
    if (rc != 0)
        fail_msg("uflow eval failed (%d): %s", rc, out);
    json_error_t je;
    json_t *j = json_load_file(js, 0, &je);
    assert_non_null(j);
    json_t *v = json_object_get(json_object_get(j, "image"), "auroc");
    assert_true(json_is_number(v));
    double a = json_number_value(v);
    json_decref(j);
    return a;
}

static void test_train_paper(void **s)
{
    (void)s;
    char model[1024];
    tmp(model, sizeof model, "paper.safetensors");
    int rc = ut_run(out, sizeof out, "%s train --data %s/train/good --out %s --epochs 12 " TRAIN_ARGS,
                    uflow, data, model);
    if (rc != 0)
        fail_msg("uflow train failed (%d): %s", rc, out);
    double l[64];
    int n = epoch_losses(out, l, 64);
    assert_int_equal(n, 12);
    double first = (l[0] + l[1] + l[2] + l[3]) / 4, last = (l[8] + l[9] + l[10] + l[11]) / 4;
    print_message("  paper loss: first 4 epochs %.6g, last 4 %.6g\n", first, last);
    assert_true(last < first);
    double z2s[UF_MAX_SCALES], z2 = heldout_z2(model, z2s);
    print_message("  held-out good mean z^2: %.3f (scales %.3f %.3f %.3f)\n", z2, z2s[0], z2s[1], z2s[2]);
    assert_true(z2 > 0.5 && z2 < 2.0);
    double auroc = eval_image_auroc(model);
    print_message("  image AUROC %.3f\n", auroc);
    assert_true(auroc >= 0.75);
    uf_model *m;
    uf_error err;
    assert_int_equal(uf_model_load(model, &m, &err), UF_OK);
    const char *cfg = uf_model_get_info(m)->config_json;
    assert_non_null(strstr(cfg, "\"training\""));
    assert_non_null(strstr(cfg, "\"params_sha256\""));
    assert_non_null(strstr(cfg, "random init, seed 3"));
    uf_model_free(m);
}

static void test_train_anomalib(void **s)
{
    (void)s;
    char model[1024];
    tmp(model, sizeof model, "anomalib.safetensors");
    int rc = ut_run(out, sizeof out, "%s train --loss anomalib --data %s/train/good --val %s/test/good "
                    "--out %s --epochs 12 " TRAIN_ARGS, uflow, data, data, model);
    if (rc != 0)
        fail_msg("uflow train failed (%d): %s", rc, out);
    /* --val: a validation loss per epoch in the log and in the model's training record */
    assert_non_null(strstr(out, "validation features of 16 images"));
    assert_non_null(strstr(out, "epoch 12/12  loss "));
    assert_non_null(strstr(strstr(out, "epoch 12/12"), "  val "));
    uf_model *m;
    uf_error err;
    assert_int_equal(uf_model_load(model, &m, &err), UF_OK);
    assert_non_null(strstr(uf_model_get_info(m)->config_json, "\"val_loss\":"));
    assert_non_null(strstr(uf_model_get_info(m)->config_json, "\"loss\":\"anomalib\""));
    uf_model_free(m);
    double z2s[UF_MAX_SCALES], z2 = heldout_z2(model, z2s);
    print_message("  anomalib loss, batch 8: held-out good mean z^2 %.3f (1/B = 0.125)\n", z2);
    assert_true(z2 > 0.125 / 3 && z2 < 0.125 * 3);
}

/* SIGINT after the first checkpoint: exit 130 with a resumable state; --resume finishes. */
static void test_interrupt_resume(void **s)
{
    (void)s;
    char model[1024], state[1100], log[1024];
    tmp(model, sizeof model, "int.safetensors");
    snprintf(state, sizeof state, "%s.state", model);
    tmp(log, sizeof log, "int.log");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s train --data %s/train/good --out %s --epochs 500 "
             "--checkpoint-every 1 " TRAIN_ARGS " >%s 2>&1", uflow, data, model, log);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    struct stat sb;
    for (int i = 0; i < 1200 && stat(state, &sb) != 0; i++)
        usleep(50000);
    assert_int_equal(stat(state, &sb), 0);
    kill(pid, SIGINT);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 130);
    uf_model *m;
    uf_error err;
    assert_int_equal(uf_model_load(model, &m, &err), UF_OK);
    uf_model_free(m);
    int rc = ut_run(out, sizeof out, "%s train --resume --data %s/train/good --out %s --epochs 3 "
                    TRAIN_ARGS, uflow, data, model);
    /* it may have got past epoch 3 before the signal: then there is nothing left to do */
    if (rc != 0)
        fail_msg("--resume failed (%d): %s", rc, out);
    assert_non_null(strstr(out, "after"));
    assert_int_equal(uf_model_load(model, &m, &err), UF_OK);
    assert_non_null(strstr(uf_model_get_info(m)->config_json, "\"epochs\":"));
    uf_model_free(m);
}

static void test_errors(void **s)
{
    (void)s;
    char model[1024], empty[1024];
    tmp(model, sizeof model, "e.safetensors");
    tmp(empty, sizeof empty, "empty");
    mkdir(empty, 0700);
    assert_int_equal(ut_run(out, sizeof out, "%s train --out %s", uflow, model), 2);
    assert_non_null(strstr(out, "--data"));
    assert_int_equal(ut_run(out, sizeof out, "%s train --data %s --out %s --loss foo", uflow, empty, model), 2);
    assert_int_equal(ut_run(out, sizeof out, "%s train --data %s --out %s " TRAIN_ARGS, uflow, empty, model), 1);
    assert_non_null(strstr(out, "no images"));
    assert_int_equal(ut_run(out, sizeof out, "%s train --data %s/nonexistent --out %s", uflow, data, model), 1);
    assert_int_equal(ut_run(out, sizeof out, "%s train --data %s/train/good --out %s --resume " TRAIN_ARGS,
                            uflow, data, model), 1);
    assert_int_equal(ut_run(out, sizeof out, "%s train --data %s/train/good --out %s --input-size 60",
                            uflow, data, model), 1);
    assert_non_null(strstr(out, "multiples of 16"));
}

int main(int argc, char **argv)
{
    if (argc < 2 || !mkdtemp(tmpdir))
        return 1;
    uflow = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_paper),
        cmocka_unit_test(test_train_anomalib),
        cmocka_unit_test(test_interrupt_resume),
        cmocka_unit_test(test_errors),
    };
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    ut_rmtree(tmpdir);
    return rc;
}
