/* infer_v2.c — see infer_v2.h. Errors are answered as {"error": "..."} (reply.c picks the
 * v2 form from the endpoint). */
#include "infer_v2.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "job.h"
#include "reply.h"
#include "v2_request.h"

typedef struct outs {
    float *maps, *scores, *nfa;
} outs;

/* The answer: JSON header, then (binary extension) the data of binary outputs in order. */
static void answer(ufd_req *r, const ufd_model *m, const ufd_v2_request *q, const outs *o)
{
    int B = q->batch, H = m->info->height, W = m->info->width;
    size_t hw = (size_t)H * (size_t)W;
    const float *data[UFD_V2_OUT_COUNT] = {o->maps, o->scores, o->nfa};
    size_t count[UFD_V2_OUT_COUNT] = {hw * (size_t)B, (size_t)B, hw * (size_t)B};
    int order[UFD_V2_OUT_COUNT], n = 0, any_binary = 0;
    for (int pos = 1; pos <= UFD_V2_OUT_COUNT; pos++)
        for (int k = 0; k < UFD_V2_OUT_COUNT; k++)
            if (q->want[k] == pos)
                order[n++] = k;
    ufd_jw jw;
    ufd_jw_init(&jw);
    ufd_jw_obj(&jw);
    ufd_jw_key(&jw, "model_name");
    ufd_jw_str(&jw, m->name);
    ufd_jw_key(&jw, "model_version");
    ufd_jw_str(&jw, m->info->version);
    if (q->has_id) {
        ufd_jw_key(&jw, "id");
        ufd_jw_str(&jw, q->id);
    }
    ufd_jw_key(&jw, "outputs");
    ufd_jw_arr(&jw);
    for (int i = 0; i < n; i++) {
        int k = order[i];
        ufd_jw_obj(&jw);
        ufd_jw_key(&jw, "name");
        ufd_jw_str(&jw, ufd_v2_output_names[k]);
        ufd_jw_key(&jw, "datatype");
        ufd_jw_str(&jw, "FP32");
        ufd_jw_key(&jw, "shape");
        ufd_jw_arr(&jw);
        ufd_jw_int(&jw, B);
        if (k != UFD_V2_OUT_SCORE) {
            ufd_jw_int(&jw, 1);
            ufd_jw_int(&jw, H);
            ufd_jw_int(&jw, W);
        }
        ufd_jw_arr_end(&jw);
        if (q->binary[k]) {
            any_binary = 1;
            ufd_jw_key(&jw, "parameters");
            ufd_jw_obj(&jw);
            ufd_jw_key(&jw, "binary_data_size");
            ufd_jw_int(&jw, (long long)(4 * count[k]));
            ufd_jw_obj_end(&jw);
        } else {
            ufd_jw_key(&jw, "data");
            ufd_jw_f32s(&jw, data[k], count[k]);
        }
        ufd_jw_obj_end(&jw);
    }
    ufd_jw_arr_end(&jw);
    ufd_jw_obj_end(&jw);
    size_t header = jw.len;
    for (int i = 0; i < n; i++)
        if (q->binary[order[i]])
            ufd_jw_f32_le(&jw, data[order[i]], count[order[i]]);
    ufd_reply_jw(r, 200, &jw);
    if (any_binary && r->status == 200) {
        r->resp_type = "application/octet-stream";
        r->inference_header_len = header;
    }
    ufd_jw_free(&jw);
}

static void infer(ufd_req *r, ufd_worker *w)
{
    const ufd_model *m = ufd_models_at(r->models, r->model);
    ufd_v2_request q;
    char msg[256];
    ufd_err e;
    size_t json_len = r->body.len;
    if (r->h.inference_header_length) {
        char *end;
        unsigned long long v = strtoull(r->h.inference_header_length, &end, 10);
        if (*end || end == r->h.inference_header_length || v > r->body.len) {
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "Inference-Header-Content-Length must be a length within the body");
            return;
        }
        json_len = (size_t)v;
    }
    outs o = {0};
    if (ufd_v2_parse(r->body.data, r->body.len, json_len, m->info->height, m->info->width, &q, &e, msg,
                     sizeof msg) != 0) {
        if (e == UFD_E_UNAVAILABLE)
            r->retry_after = 1;
        ufd_reply_error(r, e, "%s", msg);
        goto done;
    }
    r->opts = q.opts;
    int B = q.batch;
    size_t hw = (size_t)m->info->height * (size_t)m->info->width, chw = 3 * hw;
    o.maps = malloc(sizeof(float) * hw * (size_t)B);
    o.scores = malloc(sizeof(float) * (size_t)B);
    o.nfa = q.want[UFD_V2_OUT_NFA] ? malloc(sizeof(float) * hw * (size_t)B) : NULL;
    float *one = q.fp32 ? NULL : ufd_worker_input(w, chw);
    if (!o.maps || !o.scores || (q.want[UFD_V2_OUT_NFA] && !o.nfa) || (!q.fp32 && !one)) {
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "out of memory for the outputs");
        goto done;
    }
    for (int b = 0; b < B; b++) {
        const float *x = q.fp32 ? q.x + (size_t)b * chw : one;
        if (!q.fp32) {
            const unsigned char *img;
            size_t len;
            unsigned char *owned;
            if (ufd_v2_item(&q, b, &img, &len, &owned, &e, msg, sizeof msg) != 0) {
                ufd_reply_error(r, e, "%s", msg);
                goto done;
            }
            int rc = ufd_job_decode(r, m, img, len, one);
            g_free(owned);
            if (rc != 0 || ufd_job_check(r, "decoding"))
                goto done;
        }
        uf_result res;
        if (ufd_job_infer(r, w, m, x, &res) != 0 || ufd_job_check(r, "inference"))
            goto done;
        memcpy(o.maps + (size_t)b * hw, res.anomaly_map, sizeof(float) * hw);
        o.scores[b] = res.pred_score[0];
        uf_nfa_result nr;
        if (o.nfa) {
            if (ufd_job_nfa(r, w, &nr) != 0 || ufd_job_check(r, "the NFA test"))
                goto done;
            for (size_t i = 0; i < hw; i++)
                o.nfa[(size_t)b * hw + i] = (float)nr.minus_log10_nfa[i];
        }
    }
    /* the model is finite on images; a tensor far outside the normalised range may not be */
    for (size_t i = 0; q.fp32 && i < hw * (size_t)B; i++)
        if (!isfinite(o.maps[i]) || (o.nfa && !isfinite(o.nfa[i])) || (i < (size_t)B && !isfinite(o.scores[i]))) {
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "the input tensor gives outputs that are not finite numbers (FP32 "
                                                  "inputs are normalised images, values of the order of 1)");
            goto done;
        }
    answer(r, m, &q, &o);
done:
    ufd_v2_request_free(&q);
    free(o.maps);
    free(o.scores);
    free(o.nfa);
}

void ufd_infer_v2_work(ufd_req *r, ufd_worker *w) { infer(r, w); }
