/* model.c — loading a model file: map, parse the config, let the backbone and the flow take
 * their tensors (each checked against the shape the config implies), reject leftovers. */
#include "core/internal.h"
#include "core/sha256.h"
#include "models/config.h"
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uf_backbone_ops *backbone_ops(uf_backbone_kind k)
{
    switch (k) {
    case UF_BACKBONE_RESNET18:
    case UF_BACKBONE_WIDE_RESNET50_2:
        return &uf_backbone_resnet;
    case UF_BACKBONE_MCAIT:
        return &uf_backbone_mcait;
    }
    return NULL;
}

static uf_status load(uf_model *m, const char *path, uf_error *err)
{
    uf_st *st;
    uf_status s = uf_st_open(path, &st, err);
    if (s || (s = uf_weights_init(&m->w, st, err)))
        return s;
    const char *cfg = uf_st_meta(st, "config");
    if ((s = uf_config_parse(cfg, &m->info, &m->name, &m->description, err)))
        return s;
    if (!(m->config_json = strdup(cfg)))
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    m->info.config_json = m->config_json;
    m->info.name = m->name;
    m->info.description = m->description;
    m->bb_ops = backbone_ops(m->info.backbone);
    if (!m->bb_ops)
        return uf_err(err, UF_ERR_UNSUPPORTED, "backbone '%s' is not implemented yet",
                      m->info.backbone_name);
    if ((s = m->bb_ops->load(&m->w, &m->info, &m->bb, err)) ||
        (s = uf_flow_load(&m->w, &m->info, &m->flow, err)) ||
        (s = uf_weights_check_leftovers(&m->w, m->info.backbone_name, err)))
        return s;
    size_t len;
    const void *bytes = uf_st_bytes(st, &len);
    char hex[65];
    uf_sha256_hex(bytes, len, hex);
    snprintf(m->info.version, sizeof m->info.version, "%.16s", hex);
    m->info.file_bytes = len;
    for (size_t i = 0; i < uf_st_count(st); i++)
        m->info.n_params += uf_st_at(st, i)->numel;
    return UF_OK;
}

uf_status uf_model_load(const char *path, uf_model **out, uf_error *err)
{
    if (!out || !path)
        return uf_err(err, UF_ERR_ARG, "uf_model_load: NULL argument");
    *out = NULL;
    uf_model *m = calloc(1, sizeof *m);
    if (!m)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    uf_status s = load(m, path, err);
    if (s) {
        if (m->w.st && err && strncmp(err->msg, path, strlen(path)) != 0)
            uf_err_prefix(err, "%s", path);
        uf_model_free(m);
        return s;
    }
    *out = m;
    return UF_OK;
}

void uf_model_free(uf_model *m)
{
    if (!m)
        return;
    if (m->bb_ops && m->bb)
        m->bb_ops->free(m->bb);
    uf_weights_free(&m->w);
    free(m->config_json);
    free(m->name);
    free(m->description);
    free(m);
}

const uf_model_info *uf_model_get_info(const uf_model *m) { return &m->info; }
