/* ckpt.h — what an anomalib / Lightning checkpoint means for a uflow model: the plan
 * uf_import_* executes (the model config and the tensors to copy), built from a parsed torch
 * file without reading any tensor data except the post-processing scalars. */
#ifndef UF_CKPT_H
#define UF_CKPT_H

#include "interop/torch_file.h"
#include "uflow_interop.h"

#include <jansson.h>

typedef struct uf_ckpt_tensor {
    const char *name; /* the UflowModel key ("model." removed), owned by the torch file */
    uf_tf_tensor t;
} uf_ckpt_tensor;

typedef struct uf_ckpt_plan {
    json_t *config;          /* the model config, provenance included */
    uf_ckpt_tensor *t;       /* state_dict order */
    size_t n;
    const char *kind;        /* "anomalib 2.x Lightning checkpoint", ... (static) */
} uf_ckpt_plan;

/* src_name / sha256: provenance of the input file (may be NULL). */
uf_status uf_ckpt_plan_build(uf_tf *tf, const uf_import_opts *o, const char *src_name,
                             const char *sha256, uf_ckpt_plan *plan, uf_error *err);
void uf_ckpt_plan_free(uf_ckpt_plan *p);

/* ---- pieces shared by ckpt_plan.c and ckpt_meta.c ---- */

void uf_ckpt_note(const uf_import_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A JSON string from pickled text (invalid UTF-8 bytes become '?'). */
json_t *uf_ckpt_jstr(const uf_pk *s);

/* The input size (and normalisation) anomalib's pre-processor applies: the Resize / crop sizes
 * and the Normalize of the transform found under obj (a PreProcessor, a Compose, ...). */
typedef struct uf_ckpt_xform {
    int h, w;       /* 0 when no size was found */
    double mean[3], std[3];
    int have_norm;
    char where[96]; /* e.g. "pre-processor Resize((64, 96))" */
} uf_ckpt_xform;
void uf_ckpt_scan_transform(uf_pk_doc *d, uf_pk *obj, uf_ckpt_xform *x);

/* The six post-processing statistics from the state_dict (anomalib 2.x buffers or 1.x metric
 * states) into config; returns how many were set. */
int uf_ckpt_postproc(uf_tf *tf, const uf_pk *sd, int v1, json_t *config, const uf_import_opts *o);

#endif
