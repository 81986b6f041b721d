/* options.h — the predict options (heatmap, overlay, mask, mask_epsilon, nfa_window,
 * nfa_prob_thr) from a query string, multipart form fields or a JSON body, validated. */
#ifndef UFD_OPTIONS_H
#define UFD_OPTIONS_H

#include <jansson.h>
#include <stddef.h>

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

/* Set option `key` from its text form ("true"/"false"/"1"/"0", numbers).
 * 0 = set, 1 = not an option name (ignored), -1 = invalid value (message in err). */
int ufd_predict_opt_set(ufd_predict_opts *o, const char *key, const char *value, char *err, size_t n);

/* Apply the options present in a JSON object (booleans/numbers, or their text forms); other
 * keys are left alone. 0, or -1 with a message in err. */
int ufd_predict_opts_from_json(ufd_predict_opts *o, const json_t *obj, char *err, size_t n);

#endif
