/* test_sha256.c — core/sha256: the FIPS 180-4 vectors, and the SHA-extension path against the
 * portable one for every length 0..1100 fed in odd-sized pieces (block boundaries, padding
 * that spills into a second block). On a CPU without the extensions both paths are the
 * portable one and the comparison is trivially true; the vectors still check it. */
#include "util.h"

#include "core/sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex_of(uf_sha256 *s, char hex[65])
{
    uint8_t d[32];
    uf_sha256_final(s, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static void test_vectors(void **state)
{
    (void)state;
    char hex[65];
    uf_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    uf_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    uf_sha256_hex(m, strlen(m), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    for (int port = 0; port < 2; port++) {
        uf_sha256 s;
        port ? uf_sha256_init_portable(&s) : uf_sha256_init(&s);
        char a[1000];
        memset(a, 'a', sizeof a);
        for (int i = 0; i < 1000; i++)
            uf_sha256_update(&s, a, sizeof a);
        hex_of(&s, hex);
        assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    }
}

static void test_paths_agree(void **state)
{
    (void)state;
    enum { N = 1100 };
    uint8_t *b = malloc(N);
    assert_non_null(b);
    for (size_t i = 0; i < N; i++)
        b[i] = (uint8_t)((i * 2654435761u) >> 13);
    for (size_t len = 0; len <= N; len++) {
        char h[2][65];
        for (int port = 0; port < 2; port++) {
            uf_sha256 s;
            port ? uf_sha256_init_portable(&s) : uf_sha256_init(&s);
            for (size_t o = 0, k; o < len; o += k) {
                k = (o * 7 + 3 + len) % 131 + 1;
                if (k > len - o)
                    k = len - o;
                uf_sha256_update(&s, b + o, k);
            }
            hex_of(&s, h[port]);
        }
        if (strcmp(h[0], h[1]) != 0)
            fail_msg("length %zu: %s (dispatched) != %s (portable)", len, h[0], h[1]);
    }
    uf_sha256 s;
    uf_sha256_init(&s);
    print_message("  SHA extensions %s\n", s.ni ? "used" : "not available: portable path only");
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vectors), cmocka_unit_test(test_paths_agree)};
    return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}
