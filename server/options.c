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

int ufd_predict_opt_index(const char *key)
{
    for (int i = 0; ufd_predict_opt_names[i]; i++)
        if (!strcmp(key, ufd_predict_opt_names[i]))
            return i;
    return -1;
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

static int *flag_of(ufd_predict_opts *o, const char *key)
{
    return !strcmp(key, "heatmap") ? &o->heatmap : !strcmp(key, "overlay") ? &o->overlay
         : !strcmp(key, "mask") ? &o->mask : NULL;
}

/* A numeric option from its value; -1 with the message. */
static int set_number(ufd_predict_opts *o, const char *key, double d, const char *shown, char *err, size_t n)
{
    if (!strcmp(key, "mask_epsilon")) {
        o->mask_epsilon = d;
        return 0;
    }
    if (!strcmp(key, "nfa_window")) {
        if (d != floor(d) || d < 1 || d > 1024) {
            snprintf(err, n, "option 'nfa_window' must be an integer in [1, 1024], got '%.64s'", shown);
            return -1;
        }
        o->nfa_window = (int)d;
        return 0;
    }
    if (!(d > 0 && d < 1)) {
        snprintf(err, n, "option 'nfa_prob_thr' must be a number in (0, 1), got '%.64s'", shown);
        return -1;
    }
    o->nfa_prob_thr = d;
    return 0;
}

int ufd_predict_opt_set(ufd_predict_opts *o, const char *key, const char *value, char *err, size_t n)
{
    if (ufd_predict_opt_index(key) < 0)
        return 1;
    if (strlen(value) > UFD_OPT_TEXT_MAX) {
        snprintf(err, n, "option '%s' is longer than %d characters", key, UFD_OPT_TEXT_MAX);
        return -1;
    }
    int *flag = flag_of(o, key);
    if (flag) {
        if (parse_bool(value, flag) != 0) {
            snprintf(err, n, "option '%s' must be true or false, got '%.64s'", key, value);
            return -1;
        }
        return 0;
    }
    double d;
    if (parse_double(value, &d) != 0) {
        snprintf(err, n, "option '%s' must be a finite number, got '%.64s'", key, value);
        return -1;
    }
    return set_number(o, key, d, value, err, n);
}

int ufd_predict_opt_from_json(ufd_predict_opts *o, const char *key, ufd_js *s, char *err, size_t n)
{
    char text[UFD_OPT_TEXT_MAX + 1];
    int b;
    double d;
    switch (ufd_js_peek(s)) {
    case UFD_JS_NULL:
        return ufd_js_null(s) ? 0 : -1;
    case UFD_JS_TRUE:
    case UFD_JS_FALSE:
        if (ufd_js_bool(s, &b) != 0)
            break;
        if (!flag_of(o, key)) {
            snprintf(err, n, "option '%s' must be a number, got %s", key, b ? "true" : "false");
            return -1;
        }
        *flag_of(o, key) = b;
        return 0;
    case UFD_JS_NUMBER:
        if (ufd_js_number(s, &d) != 0)
            break;
        snprintf(text, sizeof text, "%.17g", d);
        if (flag_of(o, key)) { /* 0 and 1 as booleans, as in a query string */
            if (d != 0 && d != 1) {
                snprintf(err, n, "option '%s' must be true or false, got %s", key, text);
                return -1;
            }
            *flag_of(o, key) = d == 1;
            return 0;
        }
        return set_number(o, key, d, text, err, n);
    case UFD_JS_STRING: {
        const char *v;
        size_t len;
        char *owned;
        if (ufd_js_string(s, &v, &len, &owned) != 0)
            break;
        int bad = len > UFD_OPT_TEXT_MAX;
        if (!bad) {
            memcpy(text, v, len);
            text[len] = '\0';
        }
        free(owned);
        if (bad) {
            snprintf(err, n, "option '%s' must be at most %d characters", key, UFD_OPT_TEXT_MAX);
            return -1;
        }
        return ufd_predict_opt_set(o, key, text, err, n) < 0 ? -1 : 0;
    }
    case UFD_JS_ERROR:
        break;
    default:
        snprintf(err, n, "option '%s' must be a boolean or a number", key);
        return -1;
    }
    snprintf(err, n, "%s", ufd_js_error(s));
    return -1;
}
