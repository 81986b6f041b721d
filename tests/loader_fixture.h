/* loader_fixture.h — the base model and the re-writing helpers shared by the loader tests
 * (test_loader.c: containers, tensors, dtypes; test_loader_config.c: configs and parameter
 * values). One small random resnet18 model (32x32) is written once; every variant is derived
 * from it by re-writing its tensors and metadata, so each file is a valid container that is
 * wrong in one way. */
#ifndef UF_TEST_LOADER_FIXTURE_H
#define UF_TEST_LOADER_FIXTURE_H

#include "util.h"

#include "models/model.h"

#include <jansson.h>

#define SIDE 32

typedef struct outputs {
    float map[SIDE * SIDE];
    float score, ljd;
    float *z[UF_MAX_SCALES];
    size_t zn[UF_MAX_SCALES];
    int n_scales;
} outputs;

typedef struct otensor {
    char name[256];
    uf_dtype dt;
    int ndim;
    int64_t shape[UF_ST_MAX_DIMS];
    const void *data;
    void *owned; /* freed after the tensor is added */
} otensor;

typedef int (*edit_fn)(void *user, const uf_st_tensor *in, otensor *out);

enum { META_KEEP, META_CONFIG, META_NO_CONFIG, META_NONE };

typedef struct rewrite_opts {
    edit_fn fn;
    void *user;
    int meta;
    const char *config;      /* META_CONFIG: the new config string */
    const char *extra;       /* an extra F32 [3] tensor of this name, appended */
} rewrite_opts;

typedef struct reshape {
    const char *name;
    int ndim;
    int64_t shape[UF_ST_MAX_DIMS];
} reshape;

typedef struct retype {
    const char *name; /* NULL: every F32 tensor */
    uf_dtype dt;
} retype;

typedef struct setval {
    const char *name;
    size_t n_idx;
    size_t idx[4];
    float val[4];
} setval;

extern char tmpdir[];
extern char g_base_path[1024];
extern uf_st *g_base;          /* the valid model, mapped */
extern float *g_input;         /* [3, SIDE, SIDE] */
extern outputs g_ref;

void tmp_path(char *buf, size_t n, const char *file);
void assert_msg_has(const uf_error *err, const char *what);
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);
void *convert(const void *src, size_t n, uf_dtype dt);
float *round_through(const void *src, size_t n, uf_dtype dt);
void rewrite(const char *dst, const rewrite_opts *o);
void rewrite_fn(const char *dst, edit_fn fn, void *user);
void rewrite_config(const char *dst, const char *config);
char *config_with(const char *key, const char *value);
void expect_fail(const char *path, uf_status status, const char *what, const char *what2);
uf_model *load_ok(const char *path);
void run(const uf_model *m, outputs *o);
void free_outputs(outputs *o);
void expect_same_outputs(const char *path, double tol, const char *what);
int edit_drop(void *user, const uf_st_tensor *in, otensor *out);
int edit_drop_nbt(void *user, const uf_st_tensor *in, otensor *out);
int edit_reshape(void *user, const uf_st_tensor *in, otensor *out);
int edit_retype(void *user, const uf_st_tensor *in, otensor *out);
int edit_round(void *user, const uf_st_tensor *in, otensor *out);
int edit_prefix(void *user, const uf_st_tensor *in, otensor *out);
int edit_setval(void *user, const uf_st_tensor *in, otensor *out);

/* cmocka group setup/teardown: writes the base model and its reference outputs. */
int setup(void **state);
int teardown(void **state);

#endif
