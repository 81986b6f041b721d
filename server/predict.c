/* predict.c — see predict.h. Timings (ms) follow the data path: queue (submit -> worker),
 * decode (body -> normalised tensor, incl. base64), inference (uf_ctx_run), nfa (uf_ctx_nfa,
 * 0 unless mask=true), encode (PNGs, base64, JSON), total (headers -> answer ready). */
#include "predict.h"

#include <glib.h>
#include <string.h>

#include "json_out.h"
#include "metrics.h"

int ufd_decode_image(ufd_req *r, const ufd_model *m, const void *data, size_t len, float *x)
{
    if (len == 0) {
        ufd_reply_error(r, UFD_E_BAD_IMAGE, "empty image");
        return -1;
    }
    uf_error err = {0};
    uf_image_opts io = {.max_pixels = r->srv->cfg->max_pixels};
    uf_status st = uf_image_load_buffer(data, len, m->info, &io, x, &err);
    if (st == UF_OK)
        return 0;
    if (st == UF_ERR_LIMIT)
        ufd_reply_error(r, UFD_E_IMAGE_TOO_LARGE, "%s", err.msg);
    else if (st == UF_ERR_FORMAT_NOT_ACCEPTED) /* the message lists the accepted formats */
        ufd_reply_error(r, UFD_E_MEDIA_TYPE, "%s", err.msg);
    else if (st == UF_ERR_NOMEM)
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "out of memory decoding the image");
    else
        ufd_reply_error(r, UFD_E_BAD_IMAGE, "%s", err.msg);
    return -1;
}

int ufd_nfa(ufd_req *r, ufd_worker *w, uf_nfa_result *nr)
{
    uf_nfa_opts no = uf_nfa_opts_default();
    no.window = r->opts.nfa_window;
    no.prob_thr = r->opts.nfa_prob_thr;
    no.epsilon = r->opts.mask_epsilon;
    uf_error err = {0};
    uf_status st = uf_ctx_nfa(ufd_model_ctx(ufd_models_at(r->models, r->model), ufd_worker_id(w)), &no, nr, &err);
    if (st == UF_OK)
        return 0;
    /* bad option combinations (a window larger than the latent maps) are the client's */
    ufd_reply_error(r, st == UF_ERR_ARG ? UFD_E_BAD_REQUEST : UFD_E_INTERNAL, "NFA: %s", err.msg);
    return -1;
}

/* The image bytes of a JSON body {"image": base64, options...}; *owned is g_free'd later. */
static int json_image(ufd_req *r, const unsigned char **img, size_t *len, unsigned char **owned)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)r->body.data, r->body.len, 0, &je);
    if (!o || !json_is_object(o)) {
        if (o)
            ufd_reply_error(r, UFD_E_BAD_JSON, "the body must be a JSON object");
        else
            ufd_reply_error(r, UFD_E_BAD_JSON, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        json_decref(o);
        return -1;
    }
    char msg[256];
    const json_t *im = json_object_get(o, "image");
    int rc = -1;
    if (ufd_predict_opts_from_json(&r->opts, o, msg, sizeof msg) != 0)
        ufd_reply_error(r, UFD_E_BAD_REQUEST, "%s", msg);
    else if (!json_is_string(im))
        ufd_reply_error(r, UFD_E_BAD_REQUEST, "field 'image' (a base64 string) is required");
    else if (!(*owned = ufd_base64_decode(json_string_value(im), json_string_length(im), len)))
        ufd_reply_error(r, UFD_E_BAD_BASE64, "field 'image' is not valid base64");
    else {
        *img = *owned;
        rc = 0;
    }
    json_decref(o);
    return rc;
}

/* {"png_base64", "width", "height"} of a PNG buffer from the library (released here). */
static json_t *png_object(void *png, size_t len, int w, int h)
{
    gchar *b64 = g_base64_encode(png, len);
    uf_free(png);
    json_t *o = json_object();
    json_object_set_new(o, "png_base64", json_stringn_nocheck(b64, strlen(b64)));
    json_object_set_new(o, "width", json_integer(w));
    json_object_set_new(o, "height", json_integer(h));
    g_free(b64);
    return o;
}

static void predict(ufd_req *r, ufd_worker *w)
{
    const ufd_model *m = ufd_models_at(r->models, r->model);
    const unsigned char *img = r->body.data;
    size_t len = r->body.len;
    unsigned char *owned = NULL;
    float *x = ufd_worker_input(w, (size_t)3 * (size_t)m->info->height * (size_t)m->info->width);
    double t0 = ufd_now();
    if (!x) {
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "out of memory for the input tensor");
        return;
    }
    if (r->body_kind == UFD_BODY_JSON && json_image(r, &img, &len, &owned) != 0)
        return;
    if (ufd_decode_image(r, m, img, len, x) != 0)
        goto done;
    double t1 = ufd_now();
    uf_result res;
    uf_error err = {0};
    if (uf_ctx_run(ufd_model_ctx(m, ufd_worker_id(w)), x, 1, &res, &err) != UF_OK) {
        ufd_reply_error(r, UFD_E_INTERNAL, "inference failed: %s", err.msg);
        goto done;
    }
    double t2 = ufd_now();
    r->infer_ms = (t2 - t1) * 1e3;
    ufd_metrics_inference(m->name, t2 - t1);
    if (t2 > r->job.deadline) {
        ufd_metrics_rejected(UFD_REJECT_TIMEOUT);
        ufd_reply_error(r, UFD_E_TIMEOUT, "the answer was ready after the %g s request timeout",
                        r->srv->cfg->request_timeout);
        goto done;
    }
    uf_nfa_result nr = {0};
    if (r->opts.mask && ufd_nfa(r, w, &nr) != 0)
        goto done;
    double t3 = ufd_now();
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(m->name));
    json_object_set_new(o, "model_version", json_string(m->info->version));
    json_object_set_new(o, "score", ufd_json_num(res.pred_score[0]));
    if (res.norm_score) {
        json_object_set_new(o, "normalized_score", ufd_json_num(res.norm_score[0]));
        json_object_set_new(o, "threshold", ufd_json_num(1.0f - m->info->post.image_sensitivity));
        json_object_set_new(o, "label", json_string(res.label[0] ? "anomalous" : "normal"));
    } else if (r->opts.mask) { /* no calibrated threshold: the NFA decides */
        json_object_set_new(o, "label", json_string(nr.label[0] ? "anomalous" : "normal"));
    } else {
        json_object_set_new(o, "label", json_null());
    }
    void *png = NULL;
    size_t plen = 0;
    uf_image_opts io = {.max_pixels = r->srv->cfg->max_pixels};
    /* raw anomaly-map values are in [0, 1], as `uflow predict` draws them */
    if (r->opts.heatmap) {
        if (uf_heatmap_png(res.anomaly_map, res.height, res.width, 0.f, 1.f, &png, &plen, &err) != UF_OK) {
            json_decref(o);
            ufd_reply_error(r, UFD_E_INTERNAL, "heatmap: %s", err.msg);
            goto done;
        }
        json_object_set_new(o, "heatmap", png_object(png, plen, res.width, res.height));
    }
    if (r->opts.overlay) {
        if (uf_overlay_png(img, len, res.anomaly_map, res.height, res.width, 0.f, 1.f, 0.5f, &io, &png, &plen,
                           &err) != UF_OK) {
            json_decref(o);
            ufd_reply_error(r, UFD_E_INTERNAL, "overlay: %s", err.msg);
            goto done;
        }
        json_object_set_new(o, "overlay", png_object(png, plen, res.width, res.height));
    }
    if (r->opts.mask) {
        if (uf_mask_png(nr.mask, nr.height, nr.width, &png, &plen, &err) != UF_OK) {
            json_decref(o);
            ufd_reply_error(r, UFD_E_INTERNAL, "mask: %s", err.msg);
            goto done;
        }
        json_t *mk = png_object(png, plen, nr.width, nr.height);
        json_object_set_new(mk, "anomalous_fraction", ufd_json_num(nr.anomalous_fraction[0]));
        json_object_set_new(mk, "min_log10_nfa", ufd_json_num(nr.min_log10_nfa[0]));
        json_object_set_new(o, "mask", mk);
    }
    double t4 = ufd_now();
    json_t *t = json_object();
    json_object_set_new(t, "queue", json_real(r->queue_ms));
    json_object_set_new(t, "decode", json_real((t1 - t0) * 1e3));
    json_object_set_new(t, "inference", json_real(r->infer_ms));
    json_object_set_new(t, "nfa", json_real((t3 - t2) * 1e3));
    json_object_set_new(t, "encode", json_real((t4 - t3) * 1e3));
    json_object_set_new(t, "total", json_real((t4 - r->t_start) * 1e3));
    json_object_set_new(o, "timing_ms", t);
    json_object_set_new(o, "request_id", json_string(r->id));
    ufd_reply_json(r, 200, o);
done:
    g_free(owned);
}

void ufd_predict_run(ufd_job *job, ufd_worker *w)
{
    ufd_req *r = (ufd_req *)job;
    r->queue_ms = (job->t_start - job->t_submit) * 1e3;
    ufd_metrics_queue_wait(job->t_start - job->t_submit);
    predict(r, w);
    ufd_http_resume(r); /* last use of r on this thread */
}
