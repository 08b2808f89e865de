/* test_sha256.c — SHA-256 against the FIPS 180-4 / NIST example vectors (one
 * shot and streamed in uneven pieces) and HMAC-SHA256 against RFC 4231. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/base/sha256.h"

static void test_sha256(void)
{
    char hex[65];
    sd_sha256_hex("", 0, 32, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "sha256 empty");
    sd_sha256_hex("abc", 3, 32, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256 abc");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sd_sha256_hex(m, strlen(m), 32, hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "sha256 448 bits");
    const char *m2 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                     "mnopqrstnopqrstu";
    sd_sha256_hex(m2, strlen(m2), 32, hex);
    CHECK(!strcmp(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"), "sha256 896 bits");
    sd_sha256_hex("abc", 3, 4, hex);
    CHECK(!strcmp(hex, "ba7816bf"), "sha256 short hex");
    /* 55/56/63/64 bytes: the padding spills into a second block at 56 */
    static const char *pad_vectors[][2] = {
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
    };
    for (int i = 0; i < 2; i++) {
        sd_sha256_hex(pad_vectors[i][0], strlen(pad_vectors[i][0]), 32, hex);
        CHECKF(!strcmp(hex, pad_vectors[i][1]), i ? "sha256 56 bytes" : "sha256 55 bytes", "%s", hex);
    }

    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    sd_sha256_hex(a, 1000000, 32, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256 million a");
    /* the same, fed in uneven pieces */
    sd_sha256_ctx c;
    sd_sha256_init(&c);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t n = step < 1000000 - off ? step : 1000000 - off;
        sd_sha256_update(&c, a + off, n);
        off += n;
        step = step * 3 % 1000 + 1;
    }
    unsigned char d[32];
    sd_sha256_final(&c, d);
    sd_hex(d, 32, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256 million a, streamed");
    /* lengths around the padding boundary: streamed == one shot */
    int ok = 1;
    for (size_t n = 50; n < 140; n++) {
        char h1[65], h2[65];
        sd_sha256_hex(a, n, 32, h1);
        sd_sha256_init(&c);
        sd_sha256_update(&c, a, n / 2);
        sd_sha256_update(&c, a + n / 2, n - n / 2);
        sd_sha256_final(&c, d);
        sd_hex(d, 32, h2);
        ok &= !strcmp(h1, h2);
    }
    CHECK(ok, "sha256 split updates around block boundaries");
    free(a);
}

static int hmac_is(const void *key, size_t kl, const void *msg, size_t ml, const char *want)
{
    unsigned char d[32];
    char hex[65];
    sd_hmac_sha256(key, kl, msg, ml, d);
    sd_hex(d, 32, hex);
    if (strcmp(hex, want)) printf("# got %s\n# want %s\n", hex, want);
    return !strcmp(hex, want);
}

static void test_hmac(void)
{
    unsigned char k0b[20], kaa[131], dd[50];
    memset(k0b, 0x0b, sizeof k0b);
    memset(kaa, 0xaa, sizeof kaa);
    memset(dd, 0xdd, sizeof dd);
    CHECK(hmac_is(k0b, 20, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
          "hmac-sha256 RFC 4231 case 1");
    const char *m2 = "what do ya want for nothing?";
    CHECK(hmac_is("Jefe", 4, m2, strlen(m2), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
          "hmac-sha256 RFC 4231 case 2 (short key)");
    CHECK(hmac_is(kaa, 20, dd, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
          "hmac-sha256 RFC 4231 case 3");
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    CHECK(hmac_is(kaa, 131, m6, strlen(m6), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
          "hmac-sha256 RFC 4231 case 6 (key longer than a block)");
    const char *m7 = "This is a test using a larger than block-size key and a larger than block-size data. The key "
                     "needs to be hashed before being used by the HMAC algorithm.";
    CHECK(hmac_is(kaa, 131, m7, strlen(m7), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
          "hmac-sha256 RFC 4231 case 7 (long key and data)");
}

int main(void)
{
    test_sha256();
    test_hmac();
    return t_done();
}
