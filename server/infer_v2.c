/* infer_v2.c — see infer_v2.h. Errors are answered as {"error": "..."} (json_out.c picks
 * the v2 form from the endpoint). */
#include "infer_v2.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "json_out.h"
#include "metrics.h"
#include "predict.h"

typedef struct want {
    int anomaly_map, pred_score, nfa;
} want;

/* Flatten nested arrays of numbers (row-major) into x[*n...]; -1 on a non-number or when
 * more than cap values. */
static int flatten_numbers(const json_t *a, float *x, size_t cap, size_t *n, int depth)
{
    size_t i;
    const json_t *v;
    if (depth > 8)
        return -1;
    json_array_foreach(a, i, v) {
        if (json_is_array(v)) {
            if (flatten_numbers(v, x, cap, n, depth + 1) != 0)
                return -1;
        } else if (json_is_number(v) && *n < cap) {
            x[(*n)++] = (float)json_number_value(v);
        } else {
            return -1;
        }
    }
    return 0;
}

/* The same for strings (BYTES); pointers into the JSON. */
static int flatten_strings(const json_t *a, const json_t **s, size_t cap, size_t *n, int depth)
{
    size_t i;
    const json_t *v;
    if (depth > 8)
        return -1;
    json_array_foreach(a, i, v) {
        if (json_is_array(v)) {
            if (flatten_strings(v, s, cap, n, depth + 1) != 0)
                return -1;
        } else if (json_is_string(v) && *n < cap) {
            s[(*n)++] = v;
        } else {
            return -1;
        }
    }
    return 0;
}

static int parse_outputs(ufd_req *r, const json_t *outs, want *w)
{
    if (!outs || json_is_null(outs)) {
        w->anomaly_map = w->pred_score = 1;
        return 0;
    }
    size_t i;
    const json_t *o;
    if (!json_is_array(outs)) {
        ufd_reply_error(r, UFD_E_BAD_REQUEST, "'outputs' must be an array");
        return -1;
    }
    json_array_foreach(outs, i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!name) {
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "every requested output needs a 'name'");
            return -1;
        }
        if (!strcmp(name, "anomaly_map"))
            w->anomaly_map = 1;
        else if (!strcmp(name, "pred_score"))
            w->pred_score = 1;
        else if (!strcmp(name, "minus_log10_nfa"))
            w->nfa = 1;
        else {
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "unknown output '%.64s' (anomaly_map, pred_score, minus_log10_nfa)",
                            name);
            return -1;
        }
    }
    return 0;
}

/* Batch size from the input's shape; -1 with the answer set. */
static int batch_of(ufd_req *r, const json_t *in, const uf_model_info *info, int fp32)
{
    const json_t *shape = json_object_get(in, "shape");
    size_t nd = json_array_size(shape);
    json_int_t d[4] = {0};
    for (size_t k = 0; k < nd && k < 4; k++)
        d[k] = json_is_integer(json_array_get(shape, k)) ? json_integer_value(json_array_get(shape, k)) : -1;
    int ok = fp32 ? (nd == 4 && d[1] == 3 && d[2] == info->height && d[3] == info->width)
                  : (nd == 1 || (nd == 2 && d[1] == 1));
    if (!ok || d[0] < 1 || d[0] > UFD_V2_MAX_BATCH) {
        if (fp32)
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "FP32 input shape must be [B, 3, %d, %d] with 1 <= B <= %d",
                            info->height, info->width, UFD_V2_MAX_BATCH);
        else
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "BYTES input shape must be [B] with 1 <= B <= %d",
                            UFD_V2_MAX_BATCH);
        return -1;
    }
    return (int)d[0];
}

/* The normalised input [B,3,H,W] (malloc'd) from the request's single input tensor. */
static float *read_input(ufd_req *r, const json_t *in, const ufd_model *m, int *batch)
{
    const char *dt = json_string_value(json_object_get(in, "datatype"));
    const json_t *data = json_object_get(in, "data");
    int fp32 = dt && !strcmp(dt, "FP32"), bytes = dt && !strcmp(dt, "BYTES");
    if (!fp32 && !bytes) {
        ufd_reply_error(r, UFD_E_BAD_REQUEST, "input datatype must be FP32 or BYTES");
        return NULL;
    }
    if (!json_is_array(data)) {
        ufd_reply_error(r, UFD_E_BAD_REQUEST, "input 'data' must be an array");
        return NULL;
    }
    int B = batch_of(r, in, m->info, fp32);
    if (B < 0)
        return NULL;
    size_t chw = (size_t)3 * (size_t)m->info->height * (size_t)m->info->width, n = 0;
    float *x = malloc(sizeof(float) * chw * (size_t)B);
    if (!x) {
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "out of memory for a batch of %d", B);
        return NULL;
    }
    if (fp32) {
        if (flatten_numbers(data, x, chw * (size_t)B, &n, 0) != 0 || n != chw * (size_t)B) {
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "FP32 'data' must hold exactly %zu numbers (B x 3 x %d x %d)",
                            chw * (size_t)B, m->info->height, m->info->width);
            free(x);
            return NULL;
        }
    } else {
        const json_t *s[UFD_V2_MAX_BATCH];
        if (flatten_strings(data, s, (size_t)B, &n, 0) != 0 || n != (size_t)B) {
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "BYTES 'data' must hold exactly %d base64 strings", B);
            free(x);
            return NULL;
        }
        for (int b = 0; b < B; b++) {
            size_t len = 0;
            unsigned char *img = ufd_base64_decode(json_string_value(s[b]), json_string_length(s[b]), &len);
            int rc = -1;
            if (!img)
                ufd_reply_error(r, UFD_E_BAD_BASE64, "BYTES element %d is not valid base64", b);
            else
                rc = ufd_decode_image(r, m, img, len, x + (size_t)b * chw);
            g_free(img);
            if (rc != 0) {
                free(x);
                return NULL;
            }
        }
    }
    *batch = B;
    return x;
}

static json_t *tensor(const char *name, json_t *shape, const float *v, size_t n)
{
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, ufd_json_num(v[i]));
    return json_pack("{s:s,s:s,s:o,s:o}", "name", name, "datatype", "FP32", "shape", shape, "data", data);
}

static void infer(ufd_req *r, ufd_worker *w)
{
    const ufd_model *m = ufd_models_at(r->models, r->model);
    json_error_t je;
    json_t *body = json_loadb((const char *)r->body.data, r->body.len, 0, &je), *inputs;
    float *x = NULL, *maps = NULL, *scores = NULL, *nfa = NULL;
    char msg[256];
    want wt = {0};
    int B = 0;
    if (!body || !json_is_object(body)) {
        ufd_reply_error(r, UFD_E_BAD_JSON, "the body must be a JSON object (%s)", body ? "not an object" : je.text);
        goto done;
    }
    inputs = json_object_get(body, "inputs");
    if (json_array_size(inputs) != 1) {
        ufd_reply_error(r, UFD_E_BAD_REQUEST, "'inputs' must be an array of exactly one tensor");
        goto done;
    }
    /* NFA options (nfa_window, nfa_prob_thr, mask_epsilon) as request parameters */
    if (ufd_predict_opts_from_json(&r->opts, json_object_get(body, "parameters"), msg, sizeof msg) != 0) {
        ufd_reply_error(r, UFD_E_BAD_REQUEST, "%s", msg);
        goto done;
    }
    if (parse_outputs(r, json_object_get(body, "outputs"), &wt) != 0 ||
        !(x = read_input(r, json_array_get(inputs, 0), m, &B)))
        goto done;
    size_t hw = (size_t)m->info->height * (size_t)m->info->width;
    maps = malloc(sizeof(float) * hw * (size_t)B);
    scores = malloc(sizeof(float) * (size_t)B);
    nfa = wt.nfa ? malloc(sizeof(float) * hw * (size_t)B) : NULL;
    if (!maps || !scores || (wt.nfa && !nfa)) {
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "out of memory for the outputs");
        goto done;
    }
    double t0 = ufd_now();
    for (int b = 0; b < B; b++) {
        uf_result res;
        uf_error err = {0};
        if (uf_ctx_run(ufd_model_ctx(m, ufd_worker_id(w)), x + (size_t)b * 3 * hw, 1, &res, &err) != UF_OK) {
            ufd_reply_error(r, err.status == UF_ERR_ARG ? UFD_E_BAD_REQUEST : UFD_E_INTERNAL, "inference failed: %s",
                            err.msg);
            goto done;
        }
        memcpy(maps + (size_t)b * hw, res.anomaly_map, sizeof(float) * hw);
        scores[b] = res.pred_score[0];
        uf_nfa_result nr;
        if (wt.nfa && ufd_nfa(r, w, &nr) != 0)
            goto done;
        for (size_t i = 0; wt.nfa && i < hw; i++)
            nfa[(size_t)b * hw + i] = (float)nr.minus_log10_nfa[i];
    }
    double t1 = ufd_now();
    r->infer_ms = (t1 - t0) * 1e3;
    ufd_metrics_inference(m->name, t1 - t0);
    if (t1 > r->job.deadline) {
        ufd_metrics_rejected(UFD_REJECT_TIMEOUT);
        ufd_reply_error(r, UFD_E_TIMEOUT, "the answer was ready after the %g s request timeout",
                        r->srv->cfg->request_timeout);
        goto done;
    }
    json_t *outs = json_array();
    if (wt.anomaly_map)
        json_array_append_new(outs, tensor("anomaly_map", json_pack("[iiii]", B, 1, m->info->height, m->info->width),
                                           maps, hw * (size_t)B));
    if (wt.pred_score)
        json_array_append_new(outs, tensor("pred_score", json_pack("[i]", B), scores, (size_t)B));
    if (wt.nfa)
        json_array_append_new(outs, tensor("minus_log10_nfa",
                                           json_pack("[iiii]", B, 1, m->info->height, m->info->width), nfa,
                                           hw * (size_t)B));
    json_t *o = json_pack("{s:s,s:s}", "model_name", m->name, "model_version", m->info->version);
    const json_t *id = json_object_get(body, "id");
    if (json_is_string(id))
        json_object_set(o, "id", (json_t *)id);
    json_object_set_new(o, "outputs", outs);
    ufd_reply_json(r, 200, o);
done:
    free(x);
    free(maps);
    free(scores);
    free(nfa);
    json_decref(body);
}

void ufd_infer_v2_run(ufd_job *job, ufd_worker *w)
{
    ufd_req *r = (ufd_req *)job;
    r->queue_ms = (job->t_start - job->t_submit) * 1e3;
    ufd_metrics_queue_wait(job->t_start - job->t_submit);
    infer(r, w);
    ufd_http_resume(r); /* last use of r on this thread */
}
