/* create.h — internals of model creation shared by create.c (the two-pass streaming writer,
 * the flow, the entry point), create_backbone.c (seeded ResNet/CaiT backbones) and
 * create_weights.c (backbone tensors copied from a torchvision/timm weights file). */
#ifndef UF_CREATE_H
#define UF_CREATE_H

#include "core/internal.h"
#include "models/model.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

/* splitmix64: the k-th value depends only on the seed and k. */
typedef struct rng {
    uint64_t s;
} rng;

#define SM_GAMMA 0x9E3779B97F4A7C15ull

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline uint64_t next(rng *r) { return mix64(r->s += SM_GAMMA); } /* splitmix64 */
static inline double unif(rng *r) { return ((next(r) >> 11) + 0.5) / 9007199254740992.0; }
static inline double gauss(rng *r) { return sqrt(-2 * log(unif(r))) * cos(6.283185307179586 * unif(r)); }

/* n draws of unif() at once: 'u' (2u - 1) a, 'r' a + (b - a) u; the same values as n calls. */
void uf_cw_uniform_fill(float *x, size_t n, uint64_t s0, int sym, double a, double b);

/* One tensor of the file being planned or written. */
typedef struct entry {
    char *name;
    uf_dtype dt;
    int ndim;
    int64_t shape[4];
    size_t bytes;
    int from_file;             /* copied from the backbone weights file */
    const uf_st_tensor *from;  /* its tensor there (NULL: a missing num_batches_tracked, 0) */
} entry;

typedef struct writer {
    int plan;            /* 1: record names and shapes only; 0: draw values and write them */
    entry *e;
    size_t n, cap, next; /* planned entries; next = index of the next one to write */
    FILE *f;
    rng r;
    int perturb, formula;
    float *buf;
    size_t cap_buf;
    uf_st *src;          /* backbone weights file, or NULL */
    const char *src_path;
    uf_error *err;
    uf_status st;
} writer;

/* Scratch floats for one tensor (NULL in the planning pass or when out of memory). */
float *uf_cw_scratch(writer *w, size_t n);
/* Plan or write one tensor (data NULL: out of memory, or a tensor taken from the weights file). */
void uf_cw_put_dt(writer *w, const char *name, uf_dtype dt, int ndim, const int64_t *shape,
                  const void *data);
void uf_cw_put(writer *w, const char *name, int ndim, const int64_t *shape, const float *data);
/* A tensor filled by `kind`: 'u' U(-a, a), 'n' N(a, b), 'r' U(a, b), 'c' the constant a. */
void uf_cw_fill(writer *w, const char *name, int ndim, const int64_t *shape, char kind, double a,
                double b);

/* create_backbone.c: every backbone tensor (and the ResNet feature LayerNorms), in order. */
void uf_cw_backbone(writer *w, const uf_model_info *info);

/* create_weights.c: the backbone weights file. */
int uf_cw_taken(const writer *w, const char *name);        /* copied from the file? */
void uf_cw_src_plan(writer *w, entry *e);                   /* find and check (planning pass) */
void uf_cw_src_write(writer *w, const entry *e);            /* stream it as F32 (writing pass) */
/* Open and check o->backbone_weights; *prov = provenance for the config. */
uf_status uf_cw_open_weights(writer *w, const uf_create_opts *o, json_t **prov, uf_error *err);

#endif
