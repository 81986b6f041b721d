/* options.c — see options.h. */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const ufd_predict_opt_names[] = {"heatmap", "overlay", "mask", "mask_epsilon",
                                             "nfa_window", "nfa_prob_thr", NULL};

ufd_predict_opts ufd_predict_opts_default(void)
{
    ufd_predict_opts o = {.heatmap = 1, .overlay = 0, .mask = 0, .mask_epsilon = 0.0, .nfa_window = 7,
                          .nfa_prob_thr = 0.5};
    return o;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        *out = 1;
    else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int parse_double(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d))
        return -1;
    *out = d;
    return 0;
}

int ufd_predict_opt_set(ufd_predict_opts *o, const char *key, const char *value, char *err, size_t n)
{
    int *flag = !strcmp(key, "heatmap") ? &o->heatmap : !strcmp(key, "overlay") ? &o->overlay
              : !strcmp(key, "mask") ? &o->mask : NULL;
    if (flag) {
        if (parse_bool(value, flag) != 0) {
            snprintf(err, n, "option '%s' must be true or false, got '%.64s'", key, value);
            return -1;
        }
        return 0;
    }
    double d;
    if (!strcmp(key, "mask_epsilon")) {
        if (parse_double(value, &d) != 0) {
            snprintf(err, n, "option 'mask_epsilon' must be a finite number, got '%.64s'", value);
            return -1;
        }
        o->mask_epsilon = d;
        return 0;
    }
    if (!strcmp(key, "nfa_window")) {
        if (parse_double(value, &d) != 0 || d != floor(d) || d < 1 || d > 1024) {
            snprintf(err, n, "option 'nfa_window' must be an integer in [1, 1024], got '%.64s'", value);
            return -1;
        }
        o->nfa_window = (int)d;
        return 0;
    }
    if (!strcmp(key, "nfa_prob_thr")) {
        if (parse_double(value, &d) != 0 || !(d > 0 && d < 1)) {
            snprintf(err, n, "option 'nfa_prob_thr' must be a number in (0, 1), got '%.64s'", value);
            return -1;
        }
        o->nfa_prob_thr = d;
        return 0;
    }
    return 1;
}

int ufd_predict_opts_from_json(ufd_predict_opts *o, const json_t *obj, char *err, size_t n)
{
    for (int i = 0; ufd_predict_opt_names[i]; i++) {
        const char *key = ufd_predict_opt_names[i];
        json_t *v = json_object_get(obj, key);
        char text[64];
        if (!v || json_is_null(v))
            continue;
        if (json_is_true(v) || json_is_false(v))
            snprintf(text, sizeof text, "%s", json_is_true(v) ? "true" : "false");
        else if (json_is_integer(v))
            snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            snprintf(text, sizeof text, "%.17g", json_real_value(v));
        else if (json_is_string(v))
            snprintf(text, sizeof text, "%s", json_string_value(v));
        else {
            snprintf(err, n, "option '%s' must be a boolean or a number", key);
            return -1;
        }
        if (ufd_predict_opt_set(o, key, text, err, n) < 0)
            return -1;
    }
    return 0;
}
