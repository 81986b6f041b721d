/*
 * uflow_eval.h — evaluation metrics for anomaly detection and writing anomalib's
 * post-processing statistics into a model (calibration). docs/eval.md explains every metric.
 *
 *   double auc = uf_auroc(scores, labels, n);                 // image AUROC
 *   uf_f1_result f1;
 *   uf_f1_threshold(scores, labels, n, &f1, &err);            // F1-optimal threshold
 *   double pro;
 *   uf_aupro(maps, masks, n_images, H, W, 0.3, &pro, &err);   // AUPRO up to FPR 0.3
 *
 *   uf_postproc p = { .image_threshold = f1.threshold, ... };
 *   uf_model_write_postproc("m.safetensors", "m.safetensors", &p, &err);  // in place, atomic
 *
 * Conventions shared by every metric:
 *   - labels / masks are bytes, 0 = normal, anything else = anomalous (positive class);
 *   - a sample is predicted anomalous at threshold t when score >= t (the ROC and
 *     precision-recall curves of torchmetrics / scikit-learn). Scores that compare equal
 *     (ties, and -0.0 == +0.0) are one threshold;
 *   - scores must not be NaN (UF_ERR_ARG); +-inf are allowed;
 *   - the functions are pure: they read caller memory, allocate their own scratch (O(n), freed
 *     before returning), keep no global state and are safe to call from any thread;
 *   - n is at most 2^32 - 1 points (UF_ERR_LIMIT beyond).
 * Sorting is a radix sort of order-preserving 32-bit keys: O(n) time, about 8 bytes of scratch
 * per point (AUROC, F1) or 8 bytes per normal pixel + 16 per anomalous pixel (AUPRO).
 */
#ifndef UFLOW_EVAL_H
#define UFLOW_EVAL_H

#include "uflow.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Area under the ROC curve, exact: the trapezoid over all distinct thresholds, which equals
 * the Mann-Whitney statistic U / (P * N) with tied scores counting 1/2 (sklearn's
 * roc_auc_score, torchmetrics' BinaryAUROC with thresholds=None, anomalib's AUROC).
 * *auroc = NaN when one class is absent (n == 0 included). */
uf_status uf_auroc_ex(const float *scores, const uint8_t *labels, size_t n, double *auroc,
                      uf_error *err);

/* The same; NaN on any failure (one class absent, NaN score, out of memory). */
double uf_auroc(const float *scores, const uint8_t *labels, size_t n);

/* The F1-optimal threshold of anomalib's F1AdaptiveThreshold: the precision-recall curve over
 * every distinct score t (positive = score >= t), F1 = 2 tp / (2 tp + fp + fn), and the
 * threshold with the largest F1; among equal F1 the lowest threshold wins (torch.argmax over
 * the ascending thresholds). precision/recall/tp/fp are those at the threshold. With no
 * anomalous sample the threshold is the largest score and f1 = 0 (anomalib warns and then uses
 * its largest score too); n == 0 is UF_ERR_ARG. */
typedef struct uf_f1_result {
    float threshold;
    double f1, precision, recall;
    uint64_t tp, fp, fn;
} uf_f1_result;

uf_status uf_f1_threshold(const float *scores, const uint8_t *labels, size_t n, uf_f1_result *out,
                          uf_error *err);

/* Area under the per-region-overlap curve up to a false-positive rate fpr_limit, normalised by
 * fpr_limit (anomalib's AUPRO, fpr_limit 0.3; MVTec AD's au_pro):
 *   - maps: n_images anomaly maps [n_images, h, w]; masks: the ground truth, same layout;
 *   - regions are the 8-connected components of each image's mask (anomalib labels them with
 *     OpenCV / kornia, both 8-connected; MVTec uses scipy.ndimage.label with a 3x3 structure);
 *   - for every distinct threshold t: FPR(t) = fraction of all normal pixels (mask 0, over
 *     every image) with score >= t; PRO(t) = mean over regions of the fraction of the region's
 *     pixels with score >= t;
 *   - the curve starts at (0, 0), is integrated with the trapezoid rule, and cut at fpr_limit
 *     with PRO linearly interpolated between the two points around it.
 * This is the exact curve (as MVTec's reference evaluation, with every threshold). anomalib
 * resamples each region's ROC in index space before averaging (docs/eval.md, "AUPRO"): on its
 * own test cases the two agree to 2e-6, on random 4x32x32 cases within 1e-3, on tiny curves
 * they can differ more. uf_aupro is deterministic and independent of how images are batched.
 * *aupro = NaN when there is no region or no normal pixel. fpr_limit must be in (0, 1]. */
uf_status uf_aupro(const float *maps, const uint8_t *masks, size_t n_images, int h, int w,
                   double fpr_limit, double *aupro, uf_error *err);

/* Intersection over union of two binary masks of n pixels (non-zero = set). Both empty: 1
 * (they agree exactly). */
double uf_iou(const uint8_t *a, const uint8_t *b, size_t n);

/* Mean of uf_iou over n_images masks of `pixels` pixels each; NaN when n_images == 0. */
double uf_miou(const uint8_t *pred, const uint8_t *gt, size_t n_images, size_t pixels);

/* Calibration: copy the model in_path to out_path with anomalib's post-processing statistics
 * (docs/uflow-math.md "Post-processing") stored in the config JSON (__metadata__["config"]) under the keys config.c reads:
 * image_threshold, pixel_threshold, pred_scores_min, pred_scores_max, anomaly_maps_min,
 * anomaly_maps_max. A NaN field removes its key (anomalib's "absent"); +-inf is UF_ERR_ARG.
 * p->image_sensitivity is not a statistic and is not written (the file keeps its own key).
 * Every other config key (order kept), every other metadata entry and every tensor (name,
 * dtype, shape, bytes, order) are kept. The data are streamed from the mapped input to a
 * temporary file in out_path's directory, which is fsync'd and renamed over out_path: in_path ==
 * out_path is allowed, and neither a crash nor an error leaves a partial out_path. The output
 * file keeps the input's permission bits. Errors: UF_ERR_IO (cannot open/write), UF_ERR_FORMAT
 * (not safetensors), UF_ERR_CONFIG (no config or not a JSON object), UF_ERR_ARG. */
uf_status uf_model_write_postproc(const char *in_path, const char *out_path, const uf_postproc *p,
                                  uf_error *err);

#ifdef __cplusplus
}
#endif
#endif /* UFLOW_EVAL_H */
