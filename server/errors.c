/* errors.c — see errors.h. */
#include "errors.h"

static const struct {
    int status;
    const char *code;
} table[UFD_E_COUNT] = {
    [UFD_E_NONE] = {200, "none"},
    [UFD_E_BAD_REQUEST] = {400, "bad_request"},
    [UFD_E_BAD_JSON] = {400, "bad_json"},
    [UFD_E_BAD_BASE64] = {400, "bad_base64"},
    [UFD_E_BAD_IMAGE] = {400, "bad_image"},
    [UFD_E_BAD_HTTP] = {400, "bad_http"},
    [UFD_E_UNAUTHORIZED] = {401, "unauthorized"},
    [UFD_E_NOT_FOUND] = {404, "not_found"},
    [UFD_E_MODEL_NOT_FOUND] = {404, "model_not_found"},
    [UFD_E_METHOD] = {405, "method_not_allowed"},
    [UFD_E_REQUEST_TIMEOUT] = {408, "request_timeout"},
    [UFD_E_BODY_TOO_LARGE] = {413, "body_too_large"},
    [UFD_E_IMAGE_TOO_LARGE] = {413, "image_too_large"},
    [UFD_E_URI_TOO_LONG] = {414, "uri_too_long"},
    [UFD_E_MEDIA_TYPE] = {415, "unsupported_media_type"},
    [UFD_E_HEADERS_TOO_LARGE] = {431, "headers_too_large"},
    [UFD_E_INTERNAL] = {500, "internal"},
    [UFD_E_NOT_IMPLEMENTED] = {501, "not_implemented"},
    [UFD_E_QUEUE_FULL] = {503, "queue_full"},
    [UFD_E_UNAVAILABLE] = {503, "unavailable"},
    [UFD_E_TOO_MANY_CONNECTIONS] = {503, "too_many_connections"},
    [UFD_E_TIMEOUT] = {504, "timeout"},
    [UFD_E_HTTP_VERSION] = {505, "http_version_not_supported"},
};

int ufd_err_status(ufd_err e) { return e >= 0 && e < UFD_E_COUNT ? table[e].status : 500; }
const char *ufd_err_code(ufd_err e) { return e >= 0 && e < UFD_E_COUNT ? table[e].code : "internal"; }

ufd_err ufd_err_of_image_status(uf_status st)
{
    switch (st) {
    case UF_OK:
        return UFD_E_NONE;
    case UF_ERR_LIMIT:
        return UFD_E_IMAGE_TOO_LARGE;
    case UF_ERR_NOMEM:
        return UFD_E_UNAVAILABLE;
    case UF_ERR_FORMAT_NOT_ACCEPTED: /* the loader allow-list (docs/images.md); the message lists it */
        return UFD_E_MEDIA_TYPE;
    default: /* undecodable, truncated, empty: the client's bytes */
        return UFD_E_BAD_IMAGE;
    }
}
