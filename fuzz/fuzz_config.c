/* fuzz_config.c — the model config JSON (__metadata__["config"]) parser, uf_config_parse:
 * the part of a model file a fuzzer reaches only rarely through fuzz_model, because every
 * mutation there must also keep the container's JSON header valid. */
#include "models/config.h"
#include "models/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *txt = malloc(size + 1);
    if (!txt)
        return 0;
    memcpy(txt, data, size);
    txt[size] = '\0';
    uf_model_info info;
    memset(&info, 0, sizeof info);
    char *name = NULL, *desc = NULL;
    uf_error err = {0};
    uf_status st = uf_config_parse(txt, &info, &name, &desc, &err);
    if (st == UF_OK) {
        if (!name || !desc || info.height < 1 || info.width < 1 || info.height > 4096 ||
            info.width > 4096)
            __builtin_trap(); /* what the config contract promises */
    } else if (!err.msg[0]) {
        __builtin_trap();
    }
    free(name);
    free(desc);
    free(txt);
    return 0;
}
