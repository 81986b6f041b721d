/* writer.h — the two-pass streaming writer that uf_model_create_random is built on, and its
 * seeded random stream.
 *
 * The generators (create.c: the flow; create_backbone.c: the backbones) run twice over the
 * same calls: a planning pass records names and shapes (for the header), then a writing pass
 * draws the values and streams them to the file tensor by tensor, so even the 1.6 GB mcait
 * model never sits in memory. With a backbone weights source (create_weights.h) the writer
 * takes the backbone tensors from that file instead; the draws are still made (or skipped by
 * count), so everything else equals the random model of the same seed. */
#ifndef UF_CREATE_WRITER_H
#define UF_CREATE_WRITER_H

#include "core/internal.h"
#include "create/create_weights.h"
#include "io/atomic_file.h"

#include <math.h>
#include <stdint.h>

/* splitmix64: the k-th value depends only on the seed and k. */
typedef struct uf_rng {
    uint64_t s;
} uf_rng;

#define UF_SM_GAMMA 0x9E3779B97F4A7C15ull

static inline uint64_t uf_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline uint64_t uf_rng_next(uf_rng *r) { return uf_mix64(r->s += UF_SM_GAMMA); }
static inline double uf_rng_unif(uf_rng *r)
{
    return ((uf_rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}
static inline double uf_rng_gauss(uf_rng *r)
{
    return sqrt(-2 * log(uf_rng_unif(r))) * cos(6.283185307179586 * uf_rng_unif(r));
}

/* n draws of uf_rng_unif at once from state s0: sym ? (2u - 1) a : a + (b - a) u; the same
 * values as n sequential calls. */
void uf_cw_uniform_fill(float *x, size_t n, uint64_t s0, int sym, double a, double b);

/* One tensor of the file being planned or written. */
typedef struct uf_cw_entry {
    char *name;
    uf_dtype dt;
    int ndim;
    int64_t shape[4];
    size_t bytes;
    int from_file;             /* copied from the backbone weights source */
    const uf_st_tensor *from;  /* its tensor there (NULL: a missing num_batches_tracked, 0) */
} uf_cw_entry;

typedef struct uf_cw_writer {
    int plan;            /* 1: record names and shapes only; 0: draw values and write them */
    uf_cw_entry *e;
    size_t n, cap, next; /* planned entries; next = index of the next one to write */
    uf_afile out;        /* the file, in the writing pass */
    uf_rng r;
    int perturb, formula;
    float *buf;
    size_t cap_buf;
    const uf_cw_source *src; /* backbone weights, or NULL */
    uf_error *err;
    uf_status st;        /* the first failure; every call after it does nothing */
} uf_cw_writer;

/* Scratch floats for one tensor (NULL in the planning pass or when out of memory). */
float *uf_cw_scratch(uf_cw_writer *w, size_t n);
/* Plan or write one tensor (data NULL: out of memory, or a tensor taken from the source). */
void uf_cw_put_dt(uf_cw_writer *w, const char *name, uf_dtype dt, int ndim, const int64_t *shape,
                  const void *data);
void uf_cw_put(uf_cw_writer *w, const char *name, int ndim, const int64_t *shape, const float *data);
/* A tensor filled by `kind`: 'u' U(-a, a), 'n' N(a, b), 'r' U(a, b), 'c' the constant a. */
void uf_cw_fill(uf_cw_writer *w, const char *name, int ndim, const int64_t *shape, char kind,
                double a, double b);

/* Between the passes: open path's temporary file and write the header of the planned tensors
 * with metadata {"config": config, "format": "pt"}; uf_cw_finish commits or abandons it. */
uf_status uf_cw_begin_writing(uf_cw_writer *w, const char *path, const char *config);
uf_status uf_cw_finish(uf_cw_writer *w);
void uf_cw_writer_free(uf_cw_writer *w);

#endif
