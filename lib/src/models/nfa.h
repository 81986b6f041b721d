/* nfa.h — the a-contrario Number of False Alarms of U-Flow (docs/nfa.md, docs/nfa.md):
 * a per-pixel -log10(NFA) map and an unsupervised defect mask computed from the latents z.
 *
 * Per scale s (0 = finest) with C channels and an h x w latent map:
 *   tau     = chi2_1 quantile of prob_thr = (Phi^-1((prob_thr + 1) / 2))^2, computed in double
 *             and rounded to float32 (anomalib computes it in float32; for prob_thr = 0.5 both
 *             give 0x3EE8ED6D = 0.4549364149570465; see docs/nfa.md for other thresholds).
 *   half    = max(int((window / 2^s) // 2), 1), n = (2 half + 1)^2 (49, 9, 9 by default).
 *   count   = number of (channel, window position) with z^2 >= tau, windows reflect-padded
 *             without edge repetition (PyTorch "reflect"). z^2 and the comparison are float32,
 *             or exact (double) when high_precision; that is the only effect of the option.
 *   x       = (float)count / (float)C in float32, k = floor(x)
 *   log10_sf = log10 P[X > k], X ~ Binomial(n, 1 - prob_thr), from an exact log-space table.
 *   Finite replacement: anomalib's scipy call gives -inf when x >= n (every window entry of
 *   every channel passes), which bicubic upsampling then spreads as -inf and NaN. We use the
 *   log-probability of the most extreme attainable outcome instead, P[X >= n] = P[X = n]
 *   = (1 - prob_thr)^n, i.e. log10_sf(n) = n log10(1 - prob_thr) = log10_sf(n - 1).
 * Then each log10_sf map is upsampled to the input size with bicubic, align_corners=True in
 * double (A = -0.75, clamped taps), the scales are summed, float32(log10(sum_s h_s w_s)) is
 * added (log10 of the number of tests), and minus_log10_nfa = -(that).
 *
 * Sign: mask = 1 where minus_log10_nfa > epsilon (NFA < 10^-epsilon), i.e. at *anomalous*
 * pixels, as in the U-Flow paper. anomalib's compute_anomaly_mask returns `score < 0`, the
 * complement (True at normal pixels). Everything produced here is finite.
 */
#ifndef UF_NFA_H
#define UF_NFA_H

#include "uflow.h"

#include <stdint.h>

/* uf_nfa_init / uf_nfa_run / uf_nfa_log10_sf are public (uflow.h); introspection for tests: */
/* tau as used in the float32 comparison. */
float uf_nfa_tau(const uf_nfa *n);
/* Scale k's window half width and n, and its table log10 P[X > j], j = 0..n (entry n is the
 * finite replacement above); NULL if k is invalid. */
const double *uf_nfa_table(const uf_nfa *n, int k, int *half, int *n_window);
/* float32 log10(sum_s h_s w_s), as anomalib computes it. */
float uf_nfa_log10_n_tests(const uf_nfa *n);

/* Building blocks, exposed for tests. */
/* out[j] = log10 P[X > j] for X ~ Binomial(n, p), j = 0..n, with out[n] = out[n - 1]
 * (the replacement above). n >= 1, 0 < p < 1. */
void uf_nfa_log10_tail(int n, double p, double *out);
/* (Phi^-1((prob_thr + 1) / 2))^2 in double, 0 < prob_thr < 1. */
double uf_nfa_chi2_1_quantile(double prob_thr);

#endif
