/* fuzz_multipart.c — uflowd's streaming multipart/form-data parser (server/multipart.c),
 * fed as the network delivers: the input is "BOUNDARY\n" then the body, cut into pieces
 * whose sizes come from the input itself. The callbacks refuse a second "image" part as
 * the route stage does. Checked: never more content bytes than the body holds, a part's
 * data only between its begin and end, and an error always carries a message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
    int in_part, images;
    size_t bytes;
} seen;

static int on_begin(void *ud, const char *name, const char *filename, char *err, size_t n)
{
    seen *s = ud;
    (void)filename;
    if (s->in_part || !name)
        __builtin_trap();
    s->in_part = 1;
    if (!strcmp(name, "image") && s->images++) {
        snprintf(err, n, "two image parts");
        return 1;
    }
    return 0;
}

static int on_data(void *ud, const void *p, size_t len, char *err, size_t n)
{
    seen *s = ud;
    (void)p, (void)err, (void)n;
    if (!s->in_part)
        __builtin_trap();
    s->bytes += len;
    return 0;
}

static void on_end(void *ud)
{
    seen *s = ud;
    if (!s->in_part)
        __builtin_trap();
    s->in_part = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 200 ? size : 200);
    if (!nl)
        return 0;
    char ct[300], boundary[UFD_MP_BOUNDARY_MAX + 8];
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%.*s", (int)(nl - data), (const char *)data);
    if (ufd_mp_boundary(ct, boundary, sizeof boundary) != 0)
        return 0;
    const uint8_t *body = nl + 1;
    size_t len = size - (size_t)(body - data);
    seen s = {0};
    ufd_mp_handler h = {.begin = on_begin, .data = on_data, .end = on_end, .ud = &s};
    ufd_mp *m = ufd_mp_new(boundary, &h);
    if (!m)
        return 0;
    int rc = 0;
    size_t off = 0, step = 1 + (len ? body[0] % 61 : 0);
    while (off < len && rc == 0) {
        size_t k = len - off < step ? len - off : step;
        rc = ufd_mp_feed(m, body + off, k);
        off += k;
        step = 1 + (step * 7 + k) % 509;
    }
    if (rc == 0)
        rc = ufd_mp_finish(m);
    if (rc != 0 && (!ufd_mp_error(m) || !ufd_mp_error(m)[0]))
        __builtin_trap();
    if (s.bytes > len)
        __builtin_trap();
    ufd_mp_free(m);
    return 0;
}
