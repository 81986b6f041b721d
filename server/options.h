/* options.h — the predict options (heatmap, overlay, mask, mask_epsilon, nfa_window,
 * nfa_prob_thr) from a query string, multipart form fields, a JSON body or KServe request
 * parameters, validated. A text value longer than UFD_OPT_TEXT_MAX is refused, never cut. */
#ifndef UFD_OPTIONS_H
#define UFD_OPTIONS_H

#include <stddef.h>

#include "jscan.h"

#define UFD_OPT_TEXT_MAX 63

typedef struct ufd_predict_opts {
    int heatmap;                 /* heatmap PNG in the answer (default 1) */
    int overlay;                 /* heatmap blended over the input (default 0) */
    int mask;                    /* NFA mask (default 0) */
    double mask_epsilon;         /* mask where -log10 NFA > epsilon (default 0) */
    int nfa_window;              /* finest-scale window (default 7) */
    double nfa_prob_thr;         /* binomial probability threshold in (0, 1) (default 0.5) */
} ufd_predict_opts;

ufd_predict_opts ufd_predict_opts_default(void);

/* Names of every option, NULL-terminated (for query-string lookups). */
extern const char *const ufd_predict_opt_names[];
/* Index of an option name in ufd_predict_opt_names, or -1. */
int ufd_predict_opt_index(const char *key);

/* Set option `key` from its text form ("true"/"false"/"1"/"0", numbers).
 * 0 = set, 1 = not an option name (ignored), -1 = invalid value (message in err). */
int ufd_predict_opt_set(ufd_predict_opts *o, const char *key, const char *value, char *err, size_t n);

/* Set option `key` (a known name) from the JSON value at the scanner's position (a
 * boolean, a number, or their text forms as a string; null leaves the default). 0, or -1
 * with a message in err (also for JSON errors, which s records as well). */
int ufd_predict_opt_from_json(ufd_predict_opts *o, const char *key, ufd_js *s, char *err, size_t n);

#endif
