/* util.c — see util.h. */
#include "util.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

double ufd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ufd_wall_time(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char s[32];
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s.%03ldZ", s, ts.tv_nsec / 1000000);
}

static _Atomic uint64_t id_counter;
static _Atomic uint64_t id_key;

static uint64_t mix(uint64_t z)
{ /* splitmix64 finaliser: a bijection, so distinct counters give distinct ids */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void ufd_request_id_new(char buf[UFD_REQUEST_ID_MAX])
{
    uint64_t key = atomic_load(&id_key);
    if (key == 0) {
        uint64_t k = 0;
        if (getrandom(&k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k)
            k = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
        k |= 1;
        uint64_t zero = 0;
        atomic_compare_exchange_strong(&id_key, &zero, k);
        key = atomic_load(&id_key);
    }
    uint64_t n = atomic_fetch_add(&id_counter, 1) + 1;
    snprintf(buf, UFD_REQUEST_ID_MAX, "%016llx", (unsigned long long)mix(n * 0x9E3779B97F4A7C15ull ^ key));
}

int ufd_request_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= UFD_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}
