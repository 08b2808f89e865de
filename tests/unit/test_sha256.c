/* test_sha256.c — SHA-256 against the FIPS 180-4 / NIST example vectors. */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/base/sha256.h"

int main(void)
{
    char hex[65];
    sd_sha256_hex("", 0, 32, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "sha256 empty");
    sd_sha256_hex("abc", 3, 32, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256 abc");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sd_sha256_hex(m, strlen(m), 32, hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "sha256 two blocks");
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    sd_sha256_hex(a, 1000000, 32, hex);
    free(a);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256 million a");
    sd_sha256_hex("abc", 3, 4, hex);
    CHECK(!strcmp(hex, "ba7816bf"), "sha256 short hex");
    return t_done();
}
