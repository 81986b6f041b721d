/* server_fixture.h — what every tests/test_server_*.c shares: the models they serve (a
 * directory with the golden resnet18 @256 as "golden", a random 64x64 "small" and its copy
 * with post-processing statistics "pp"), the CLI's reference scores for the two golden
 * input images, an optional main daemon serving that directory, helpers for requests and
 * model files, and server_main(), which runs a file's tests and then checks every answer
 * they received against api/openapi.yaml. */
#ifndef UF_TEST_SERVER_FIXTURE_H
#define UF_TEST_SERVER_FIXTURE_H

#include "server_harness.h"

#include <stdint.h>

extern const char *uflow_bin, *python_bin;   /* argv[2], argv[3] */
extern char models_dir[1200], golden_model[1200];
extern double ref_score[2];                  /* `uflow predict` on inputs[0], inputs[1] */
extern const char *inputs[2];                /* texture_300x280.png, defect_640x480.jpg */
extern uflowd main_d;                        /* --models models_dir --workers 2 --max-body 8M */

/* The bytes of golden input image i (free them). */
unsigned char *input_bytes(int i, size_t *len);

/* POST /v1/models/reload (h1: an extra header); fails the test unless 200. */
json_t *post_reload(int port, const char *h1);
/* "score" of a predict answer. */
double predict_score(const resp *r);
/* A PNG whose header declares w x h pixels but holds almost no data; its length. */
size_t png_header(unsigned char *b, uint32_t w, uint32_t h);
/* POST body to main_d's path and expect the v1 error (status, code). */
void post_expect(const char *path, const char *ctype, const void *body, size_t len, long status, const char *code);
#define PE(path, ctype, text, status, code) post_expect(path, ctype, text, strlen(text), status, code)

/* A random 64x64 model written to dir/name through a temporary file and rename(), as
 * operators must replace model files; version (17 bytes) receives its version if given. */
void put_model(const char *dir, const char *name, int seed, char *version);
/* Replace dir/name with bytes that are not a model (atomically too). */
void put_garbage(const char *dir, const char *name);
/* GET /v1/models/{name}: its version and state ("" when absent: 404); the status. */
long model_state(int port, const char *name, char *version, char *state);
/* 1 when the JSON array a holds the string s. */
int str_in(const json_t *a, const char *s);

/* argv: uflowd, uflow, [python3]. Sets up the models (and main_d when with_daemon), runs
 * the tests as group `name`, then the OpenAPI conformance check; the cmocka status. */
int server_main(int argc, char **argv, const char *name, const struct CMUnitTest *tests, size_t n, int with_daemon);

#endif
