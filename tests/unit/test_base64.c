/* test_base64.c — init_image base64 as clients send it: data: prefix, both
 * alphabets, missing padding, line breaks, ' ' for '+', and clear errors
 * (field and position) for everything else. */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/image/image.h"

/* Decodes `s`; returns 1 when it gives exactly `want` (`wn` bytes). */
static int dec_eq(const char *s, const void *want, size_t wn)
{
    uint8_t *o;
    size_t n;
    sd_err e;
    sd_err_clear(&e);
    if (img_base64_decode(s, strlen(s), 1 << 20, NULL, &o, &n, &e)) return 0;
    int ok = n == wn && !memcmp(o, want, wn);
    free(o);
    return ok;
}

static sd_err dec_err(const char *s, size_t cap)
{
    uint8_t *o = NULL;
    size_t n;
    sd_err e;
    sd_err_clear(&e);
    if (img_base64_decode(s, strlen(s), cap, NULL, &o, &n, &e) == 0) free(o);
    else if (o) e.code = SD_OK;   /* *out must be NULL on failure */
    return e;
}

int main(void)
{
    CHECK(dec_eq("TWFu", "Man", 3), "plain");
    CHECK(dec_eq("TWE=", "Ma", 2) && dec_eq("TQ==", "M", 1), "padded");
    CHECK(dec_eq("TWE", "Ma", 2) && dec_eq("TQ", "M", 1), "missing padding");
    CHECK(dec_eq("TW\r\nFu\n", "Man", 3) && dec_eq("\tTW\fF\vu", "Man", 3), "line breaks and tabs ignored");
    /* 0xfb 0xff 0xbf -> "+/+/" standard, "-_-_" URL-safe, "+/ /"-style with a space for '+' */
    const uint8_t bin[] = {0xfb, 0xff, 0xbf};
    CHECK(dec_eq("+/+/", bin, 3), "standard alphabet");
    CHECK(dec_eq("-_-_", bin, 3), "url-safe alphabet");
    CHECK(dec_eq(" / /", bin, 3), "space is '+'");
    CHECK(dec_eq("data:image/png;base64,TWFu", "Man", 3), "data: prefix");
    CHECK(dec_eq("DATA:image/jpeg;BASE64,TWE=", "Ma", 2), "data: prefix case-insensitive");
    CHECK(dec_eq("TWE=  ", "Ma", 2), "blanks after padding");

    sd_err e = dec_err("TW!u", 100);
    CHECKF(e.code == SD_EINVAL && !strcmp(e.field, "init_image") && strstr(e.msg, "'!'") &&
               strstr(e.msg, "position 2"), "bad char named with position", "%s", e.msg);
    e = dec_err("TWFu\x01", 100);
    CHECKF(e.code == SD_EINVAL && strstr(e.msg, "0x01") && strstr(e.msg, "position 4"), "control byte", "%s", e.msg);
    e = dec_err("TWFuT", 100);
    CHECKF(e.code == SD_EINVAL && strstr(e.msg, "dangling"), "length 4k+1 refused", "%s", e.msg);
    e = dec_err("TW=u", 100);
    CHECKF(e.code == SD_EINVAL && strstr(e.msg, "after '='"), "data after padding", "%s", e.msg);
    e = dec_err("TWFu=", 100);
    CHECKF(e.code == SD_EINVAL && strstr(e.msg, "padding"), "extra padding", "%s", e.msg);
    e = dec_err("data:text/plain;base64,TWFu", 100);
    CHECKF(e.code == SD_EINVAL && strstr(e.msg, "image/"), "data: of a non-image", "%s", e.msg);
    e = dec_err("data:image/png,TWFu", 100);
    CHECKF(e.code == SD_EINVAL && strstr(e.msg, "base64"), "data: without base64", "%s", e.msg);
    e = dec_err("", 100);
    CHECKF(e.code == SD_EINVAL && strstr(e.msg, "empty"), "empty", "%s", e.msg);
    e = dec_err("TWFuTWFu", 5);
    CHECKF(e.code == SD_ETOOLARGE && !strcmp(e.field, "init_image"), "size cap", "%s", e.msg);
    e = dec_err("TWFu", 3);
    CHECKF(e.code == SD_OK, "cap is inclusive", "%s", e.msg);

    /* Round trip with the encoder over every byte value and every length mod 3. */
    uint8_t all[256 + 2];
    for (int i = 0; i < 258; i++) all[i] = (uint8_t)(i * 7 + 3);
    int rt = 1;
    for (size_t n = 1; n <= sizeof all; n += 1) {
        size_t sl;
        char *s = img_base64_encode(all, n, &sl);
        rt &= s && sl == (n + 2) / 3 * 4 && dec_eq(s, all, n);
        free(s);
    }
    CHECK(rt, "encode/decode round trip, all lengths");
    char *s = img_base64_encode((const uint8_t *)"Man", 3, NULL);
    CHECK(s && !strcmp(s, "TWFu"), "encoder output");
    free(s);
    return t_done();
}
