/* gendata_defects.h — seeded RNG and synthetic defects for `uflow gen-demo` (cmd_gendata.c). */
#ifndef UF_GENDATA_DEFECTS_H
#define UF_GENDATA_DEFECTS_H

#include <stdint.h>

/* splitmix64: self-contained, identical on every platform. */
typedef struct gd_rng {
    uint64_t s;
} gd_rng;

/* An independent stream per (seed, stream, index), so image i of a set never depends on how
 * many images the other sets have. */
void gd_rng_init(gd_rng *r, uint64_t seed, uint64_t stream, uint64_t index);
uint64_t gd_rng_next(gd_rng *r);
double gd_uniform(gd_rng *r, double lo, double hi); /* [lo, hi) */
int gd_int(gd_rng *r, int lo, int hi);              /* [lo, hi], hi >= lo */

/* An 8-bit greyscale texture, row-major. */
typedef struct gd_texture {
    const uint8_t *px;
    int w, h;
} gd_texture;

typedef enum { GD_SCRATCH, GD_HOLE, GD_STAIN, GD_CUTPASTE, GD_NKINDS } gd_kind;
extern const char *const gd_kind_names[GD_NKINDS];

/* Paint one defect of `kind` into the size x size grey image img (values 0..255, in place) and
 * set mask[i] = 255 where the defect's blend weight is > 0.5, else 0. Shapes are drawn until
 * the mask has >= 20 pixels (< 25% of the image) and the defect is clearly visible (mean
 * change inside the mask >= 20 grey levels, >= 80% of its pixels changed by >= 10). cutpaste
 * takes its patch from one of the nforeign foreign textures. Returns the mask's pixel count,
 * or -1 when out of memory or no acceptable defect was found (size too small). */
int gd_defect(gd_kind kind, float *img, int size, uint8_t *mask, const gd_texture *foreign,
              int nforeign, gd_rng *r);

#endif
