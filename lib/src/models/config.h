/* config.h — the model config: JSON in the model file's __metadata__["config"] (the fields
 * are listed in config.c and docs/model-format.md). */
#ifndef UF_CONFIG_H
#define UF_CONFIG_H

#include "uflow.h"

/* Fill info (backbone, sizes, flow hyper-parameters, preprocessing, post-processing) from the
 * JSON text; *name and *desc are malloc'd (NULL when absent). */
uf_status uf_config_parse(const char *json, uf_model_info *info, char **name, char **desc,
                          uf_error *err);

#endif
