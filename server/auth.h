/* auth.h — API keys: `Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant
 * time against every key of --api-key-file (one per line; blank lines and '#' comments
 * ignored, surrounding white space trimmed; lines of any length). A key is at most
 * UFD_AUTH_KEY_MAX bytes: a file with a longer one is refused at start-up rather than read
 * in part. White space around the token after "Bearer" is not part of it. */
#ifndef UFD_AUTH_H
#define UFD_AUTH_H

#include <stddef.h>

#define UFD_AUTH_KEY_MAX 1024
#define UFD_STR_(x) #x
#define UFD_STR(x) UFD_STR_(x)

typedef struct ufd_auth ufd_auth;

/* NULL with a message in err when the file cannot be read, holds no key, or a key over
 * UFD_AUTH_KEY_MAX bytes (the line is named). */
ufd_auth *ufd_auth_load(const char *path, char *err, size_t n);
void ufd_auth_free(ufd_auth *a);

/* 1 when either header carries an accepted key (either may be NULL). */
int ufd_auth_check(const ufd_auth *a, const char *authorization, const char *x_api_key);

/* The first key (for --healthcheck against a protected server); NULL if none. */
const char *ufd_auth_first(const ufd_auth *a);

#endif
