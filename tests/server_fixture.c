/* server_fixture.c — see server_fixture.h. */
#include "server_fixture.h"

#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *uflow_bin, *python_bin;
char models_dir[1200], golden_model[1200];
double ref_score[2];
const char *inputs[2] = {"texture_300x280.png", "defect_640x480.jpg"};
uflowd main_d;
static int with_daemon;

unsigned char *input_bytes(int i, size_t *len)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/inputs/%s", ut_golden_dir(), inputs[i]);
    return ut_slurp(p, len);
}

/* A copy of `src` whose config carries anomalib post-processing statistics. */
static void write_postproc_model(const char *src, const char *dst)
{
    uf_st *st = NULL;
    uf_error err = {0};
    assert_int_equal(uf_st_open(src, &st, &err), UF_OK);
    json_t *cfg = json_loads(uf_st_meta(st, "config"), 0, NULL);
    assert_non_null(cfg);
    json_object_set_new(cfg, "image_threshold", json_real(0.5));
    json_object_set_new(cfg, "pixel_threshold", json_real(0.5));
    json_object_set_new(cfg, "pred_scores_min", json_real(0.2));
    json_object_set_new(cfg, "pred_scores_max", json_real(0.9));
    json_object_set_new(cfg, "anomaly_maps_min", json_real(0.0));
    json_object_set_new(cfg, "anomaly_maps_max", json_real(1.0));
    char *txt = json_dumps(cfg, JSON_COMPACT);
    uf_st_writer *w = uf_st_writer_new();
    for (size_t i = 0; i < uf_st_count(st); i++) {
        const uf_st_tensor *t = uf_st_at(st, i);
        assert_int_equal(uf_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err), UF_OK);
    }
    assert_int_equal(uf_st_writer_meta(w, "config", txt, &err), UF_OK);
    assert_int_equal(uf_st_writer_save(w, dst, &err), UF_OK);
    uf_st_writer_free(w);
    free(txt);
    json_decref(cfg);
    uf_st_close(st);
}

static int fixture_setup(void **state)
{
    (void)state;
    char p[1300], out[8192];
    snprintf(models_dir, sizeof models_dir, "%s/models", tmpdir);
    if (mkdir(models_dir, 0755) != 0)
        return -1;
    ut_path(golden_model, sizeof golden_model, ut_golden_dir(), "resnet18_256_s4.safetensors");
    snprintf(p, sizeof p, "%s/golden.safetensors", models_dir);
    if (symlink(golden_model, p) != 0)
        return -1;
    uf_create_opts o = uf_create_opts_default();
    o.backbone = "resnet18";
    o.height = o.width = 64;
    o.flow_steps = 2;
    o.seed = 7;
    uf_error err = {0};
    snprintf(p, sizeof p, "%s/small.safetensors", models_dir);
    if (uf_model_create_random(&o, p, &err) != UF_OK) {
        fprintf(stderr, "create: %s\n", err.msg);
        return -1;
    }
    char pp[1300];
    snprintf(pp, sizeof pp, "%s/pp.safetensors", models_dir);
    write_postproc_model(p, pp);
    /* reference scores from the CLI */
    if (ut_run_stdout(out, sizeof out, "%s predict --model %s %s/inputs/%s %s/inputs/%s", uflow_bin, golden_model,
                      ut_golden_dir(), inputs[0], ut_golden_dir(), inputs[1]) != 0)
        return -1;
    char *save = NULL, *line = strtok_r(out, "\n", &save);
    for (int i = 0; i < 2; i++, line = strtok_r(NULL, "\n", &save)) {
        json_t *j = line ? json_loads(line, 0, NULL) : NULL;
        if (!j)
            return -1;
        ref_score[i] = json_number_value(json_object_get(j, "score"));
        json_decref(j);
    }
    if (with_daemon) {
        char args[1500];
        snprintf(args, sizeof args, "--models %s --workers 2 --max-body 8M", models_dir);
        daemon_start(&main_d, "main", args, 1);
    }
    return 0;
}

static int fixture_teardown(void **state)
{
    (void)state;
    int rc = main_d.pid > 0 ? daemon_stop(&main_d) : 0;
    if (rc != 0)
        fprintf(stderr, "main uflowd exited with %d (see %s)\n", rc, main_d.log);
    kill_all();
    return rc == 0 ? 0 : -1;
}

json_t *post_reload(int port, const char *h1)
{
    resp r;
    reqopt o = {.method = "POST", .h1 = h1};
    if (http(&r, port, "/v1/models/reload", &o) != 200)
        fail_msg("POST /v1/models/reload: %ld %s", r.status, r.body ? r.body : "");
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

double predict_score(const resp *r)
{
    json_t *o = resp_json(r);
    double s = json_number_value(json_object_get(o, "score"));
    json_decref(o);
    return s;
}

/* A PNG whose header declares w x h pixels: IHDR, one tiny IDAT (a stored zlib block of one
 * zero byte), IEND; far too little data for the pixels it declares. */
size_t png_header(unsigned char *b, uint32_t w, uint32_t h)
{
    static uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    unsigned char ihdr[17] = {'I', 'H', 'D', 'R', (unsigned char)(w >> 24), (unsigned char)(w >> 16),
                              (unsigned char)(w >> 8), (unsigned char)w, (unsigned char)(h >> 24),
                              (unsigned char)(h >> 16), (unsigned char)(h >> 8), (unsigned char)h, 8, 2, 0, 0, 0};
    static const unsigned char idat[] = {'I', 'D', 'A', 'T', 0x78, 0x01, 0x01, 0x01, 0x00,
                                         0xFE, 0xFF, 0x00, 0x00, 0x01, 0x00, 0x01};
    const unsigned char *chunks[3] = {ihdr, idat, (const unsigned char *)"IEND"};
    size_t lens[3] = {13, sizeof idat - 4, 0}, n = 8;
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    for (int c = 0; c < 3; c++) {
        b[n++] = 0, b[n++] = 0, b[n++] = 0, b[n++] = (unsigned char)lens[c];
        memcpy(b + n, chunks[c], 4 + lens[c]);
        uint32_t crc = 0xFFFFFFFFu;
        for (size_t i = 0; i < 4 + lens[c]; i++)
            crc = table[(crc ^ chunks[c][i]) & 0xFF] ^ (crc >> 8);
        crc ^= 0xFFFFFFFFu;
        n += 4 + lens[c];
        b[n++] = (unsigned char)(crc >> 24), b[n++] = (unsigned char)(crc >> 16);
        b[n++] = (unsigned char)(crc >> 8), b[n++] = (unsigned char)crc;
    }
    return n;
}

void post_expect(const char *path, const char *ctype, const void *body, size_t len, long status,
                        const char *code)
{
    resp r;
    reqopt o = {.ctype = ctype, .body = body, .len = len};
    http(&r, main_d.port, path, &o);
    expect_error(&r, status, code);
    resp_free(&r);
}

/* A random 64x64 model written to dir/name via a temporary file and rename(), as operators
 * must replace model files (the old version stays mapped by the requests still using it).
 * version (17 bytes), when given, receives its version. */
void put_model(const char *dir, const char *name, int seed, char *version)
{
    char tmp[1400], dst[1400];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    uf_create_opts o = uf_create_opts_default();
    o.backbone = "resnet18";
    o.height = o.width = 64;
    o.flow_steps = 2;
    o.seed = (uint64_t)seed;
    uf_error err = {0};
    if (uf_model_create_random(&o, tmp, &err) != UF_OK)
        fail_msg("create %s: %s", tmp, err.msg);
    uf_model *m = NULL;
    assert_int_equal(uf_model_load(tmp, &m, &err), UF_OK);
    if (version)
        snprintf(version, 17, "%s", uf_model_get_info(m)->version);
    uf_model_free(m);
    assert_int_equal(rename(tmp, dst), 0);
}

/* Replace dir/name with bytes that are not a model (atomically, too). */
void put_garbage(const char *dir, const char *name)
{
    char tmp[1400], dst[1400];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    fputs("this is not a safetensors file", f);
    fclose(f);
    assert_int_equal(rename(tmp, dst), 0);
}

/* GET /v1/models/{name}: its version and state ("" when absent: 404). */
long model_state(int port, const char *name, char *version, char *state)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/models/%s", name);
    resp r;
    long code = http(&r, port, path, NULL);
    version[0] = state[0] = '\0';
    if (code == 200) {
        json_t *o = resp_json(&r);
        snprintf(version, 17, "%s", json_string_value(json_object_get(o, "version")));
        snprintf(state, 16, "%s", json_string_value(json_object_get(o, "state")));
        json_decref(o);
    }
    resp_free(&r);
    return code;
}

int str_in(const json_t *a, const char *s)
{
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), s))
            return 1;
    return 0;
}

/* Every answer this run received, against api/openapi.yaml. Needs python3 with PyYAML and
 * jsonschema (scripts/deps.sh); without them the test says so and rests on the field
 * checks the other tests make in C. */
static void test_openapi_conformance(void **state)
{
    (void)state;
    if (!python_bin || !record_path) {
        print_message("  no python3: answers not checked against api/openapi.yaml\n");
        return;
    }
    const char *recorded = record_path;
    record_path = NULL;
    char out[16384];
    int rc = ut_run_stdout(out, sizeof out, "%s %s/tests/openapi_check.py %s/api/openapi.yaml %s", python_bin,
                           UF_SOURCE_ROOT, UF_SOURCE_ROOT, recorded);
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        print_message("%s\n", l); /* line by line: cmocka's message buffer is short */
    if (rc == 77) /* reported as skipped, never as passed */
        skip();
    assert_int_equal(rc, 0);
}

int server_main(int argc, char **argv, const char *name, const struct CMUnitTest *tests, size_t n, int daemon)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PATH/TO/uflowd PATH/TO/uflow [python3]\n", argv[0]);
        return 2;
    }
    uflowd_bin = argv[1];
    uflow_bin = argv[2];
    python_bin = argc > 3 ? argv[3] : NULL;
    with_daemon = daemon;
    if (!mkdtemp(tmpdir))
        return 1;
    static char records[300];
    snprintf(records, sizeof records, "%s/answers.jsonl", tmpdir);
    record_path = records;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* every answer this run received is checked against the API description, last */
    struct CMUnitTest *all = calloc(n + 1, sizeof *all);
    if (!all)
        return 1;
    memcpy(all, tests, n * sizeof *all);
    all[n] = (struct CMUnitTest)cmocka_unit_test(test_openapi_conformance);
    int rc = _cmocka_run_group_tests(name, all, n + 1, fixture_setup, fixture_teardown);
    free(all);
    kill_all();
    curl_global_cleanup();
    if (!getenv("UFLOWD_TEST_KEEP") && ut_rmtree(tmpdir) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
