/* predict.c — see predict.h. Timings (ms) follow the data path: queue (submit -> worker),
 * decode (body -> normalised tensor, incl. base64), inference (uf_ctx_run), nfa (uf_ctx_nfa,
 * 0 unless mask=true), encode (PNGs, base64, JSON), total (headers -> answer ready). */
#include "predict.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "job.h"
#include "predict_body.h"
#include "reply.h"

/* One PNG from the library (released here) as {"png_base64", "width", "height"} (left open). */
static void png(ufd_jw *jw, const char *key, void *data, size_t len, int w, int h)
{
    ufd_jw_key(jw, key);
    ufd_jw_png(jw, data, len, w, h);
    uf_free(data);
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
    if (r->body_kind == UFD_BODY_JSON) {
        char msg[256];
        ufd_err e;
        if (ufd_predict_body_read(r->body.data, r->body.len, &r->opts, &owned, &len, &e, msg, sizeof msg) != 0) {
            ufd_reply_error(r, e, "%s", msg);
            return;
        }
        img = owned;
    }
    ufd_jw jw;
    ufd_jw_init(&jw);
    if (ufd_job_decode(r, m, img, len, x) != 0 || ufd_job_check(r, "decoding"))
        goto done;
    double t1 = ufd_now();
    uf_result res;
    if (ufd_job_infer(r, w, m, x, &res) != 0 || ufd_job_check(r, "inference"))
        goto done;
    double t2 = ufd_now();
    uf_nfa_result nr = {0};
    if (r->opts.mask && (ufd_job_nfa(r, w, &nr) != 0 || ufd_job_check(r, "the NFA test")))
        goto done;
    double t3 = ufd_now();
    ufd_jw_obj(&jw);
    ufd_jw_key(&jw, "model");
    ufd_jw_str(&jw, m->name);
    ufd_jw_key(&jw, "model_version");
    ufd_jw_str(&jw, m->info->version);
    ufd_jw_key(&jw, "score");
    ufd_jw_f32(&jw, res.pred_score[0]);
    if (res.norm_score) {
        ufd_jw_key(&jw, "normalized_score");
        ufd_jw_f32(&jw, res.norm_score[0]);
        ufd_jw_key(&jw, "threshold");
        ufd_jw_f32(&jw, 1.0f - m->info->post.image_sensitivity);
        ufd_jw_key(&jw, "label");
        ufd_jw_str(&jw, res.label[0] ? "anomalous" : "normal");
    } else {
        ufd_jw_key(&jw, "label"); /* no calibrated threshold: the NFA decides, else none */
        if (r->opts.mask)
            ufd_jw_str(&jw, nr.label[0] ? "anomalous" : "normal");
        else
            ufd_jw_null(&jw);
    }
    void *p = NULL;
    size_t plen = 0;
    uf_error err = {0};
    uf_image_opts io = {.max_pixels = r->srv->cfg->max_pixels};
    /* raw anomaly-map values are in [0, 1], as `uflow predict` draws them */
    if (r->opts.heatmap) {
        if (uf_heatmap_png(res.anomaly_map, res.height, res.width, 0.f, 1.f, &p, &plen, &err) != UF_OK) {
            ufd_reply_error(r, UFD_E_INTERNAL, "heatmap: %s", err.msg);
            goto done;
        }
        png(&jw, "heatmap", p, plen, res.width, res.height);
        ufd_jw_obj_end(&jw);
    }
    if (r->opts.overlay) {
        if (uf_overlay_png(img, len, res.anomaly_map, res.height, res.width, 0.f, 1.f, 0.5f, &io, &p, &plen, &err) !=
            UF_OK) {
            ufd_reply_error(r, UFD_E_INTERNAL, "overlay: %s", err.msg);
            goto done;
        }
        png(&jw, "overlay", p, plen, res.width, res.height);
        ufd_jw_obj_end(&jw);
    }
    if (r->opts.mask) {
        if (uf_mask_png(nr.mask, nr.height, nr.width, &p, &plen, &err) != UF_OK) {
            ufd_reply_error(r, UFD_E_INTERNAL, "mask: %s", err.msg);
            goto done;
        }
        png(&jw, "mask", p, plen, nr.width, nr.height);
        ufd_jw_key(&jw, "anomalous_fraction");
        ufd_jw_f32(&jw, nr.anomalous_fraction[0]);
        ufd_jw_key(&jw, "min_log10_nfa");
        ufd_jw_f64(&jw, nr.min_log10_nfa[0]);
        ufd_jw_obj_end(&jw);
    }
    double t4 = ufd_now();
    ufd_jw_key(&jw, "timing_ms");
    ufd_jw_obj(&jw);
    const char *names[] = {"queue", "decode", "inference", "nfa", "encode", "total"};
    double ms[] = {r->queue_ms, (t1 - t0) * 1e3, r->infer_ms, (t3 - t2) * 1e3, (t4 - t3) * 1e3,
                   (t4 - r->t_start) * 1e3};
    for (int i = 0; i < 6; i++) {
        ufd_jw_key(&jw, names[i]);
        ufd_jw_f64(&jw, ms[i]);
    }
    ufd_jw_obj_end(&jw);
    ufd_jw_key(&jw, "request_id");
    ufd_jw_str(&jw, r->id);
    ufd_jw_obj_end(&jw);
    ufd_reply_jw(r, 200, &jw);
done:
    ufd_jw_free(&jw);
    g_free(owned);
}

void ufd_predict_work(ufd_req *r, ufd_worker *w) { predict(r, w); }
