/* encode.h — the answer builder every inference job shares: JSON text written straight
 * into one growing buffer (no tree of objects: a KServe answer of 16 anomaly maps is a
 * million numbers), tensors as arrays of float32 values, PNG images as
 * {"png_base64", "width", "height"} objects with the base64 written in place.
 *
 * Numbers: float32 values with 9 significant digits (they round-trip), doubles with 17.
 * A value that is not finite is never written as null or a string: the writer records it
 * (ufd_jw_nonfinite) and the job answers 500 instead, since a numeric field that is not a
 * number is a bug, not data. Out of memory is recorded the same way (ufd_jw_oom). */
#ifndef UFD_ENCODE_H
#define UFD_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#define UFD_JW_DEPTH 16

typedef struct ufd_jw {
    char *buf;
    size_t len, cap;
    int oom, nonfinite;
    int depth;
    unsigned char first[UFD_JW_DEPTH];   /* no element written yet at this level */
    unsigned char after_key;
} ufd_jw;

void ufd_jw_init(ufd_jw *w);
void ufd_jw_free(ufd_jw *w);
/* The text (malloc'd, *len bytes, NUL-terminated; release with free), or NULL when out of
 * memory; w is empty afterwards. */
char *ufd_jw_take(ufd_jw *w, size_t *len);
static inline int ufd_jw_oom(const ufd_jw *w) { return w->oom; }
static inline int ufd_jw_nonfinite(const ufd_jw *w) { return w->nonfinite; }

void ufd_jw_obj(ufd_jw *w);          /* { */
void ufd_jw_obj_end(ufd_jw *w);      /* } */
void ufd_jw_arr(ufd_jw *w);          /* [ */
void ufd_jw_arr_end(ufd_jw *w);      /* ] */
void ufd_jw_key(ufd_jw *w, const char *key);  /* "key": (key: plain ASCII, not escaped) */

void ufd_jw_str(ufd_jw *w, const char *s);   /* escaped; invalid UTF-8 bytes become U+FFFD */
void ufd_jw_strn(ufd_jw *w, const char *s, size_t n);
void ufd_jw_int(ufd_jw *w, long long v);
void ufd_jw_f32(ufd_jw *w, float v);
void ufd_jw_f64(ufd_jw *w, double v);
void ufd_jw_bool(ufd_jw *w, int v);
void ufd_jw_null(ufd_jw *w);

/* n bytes appended as they are (binary data after a JSON header: KServe's extension). */
void ufd_jw_raw(ufd_jw *w, const void *p, size_t n);
/* n float32 values appended as little-endian bytes; non-finite ones recorded as above. */
void ufd_jw_f32_le(ufd_jw *w, const float *v, size_t n);

/* [v0, v1, ...] */
void ufd_jw_f32s(ufd_jw *w, const float *v, size_t n);
/* {"png_base64": ..., "width": w, "height": h} (the object stays open for more keys). */
void ufd_jw_png(ufd_jw *w, const void *png, size_t len, int width, int height);

#endif
