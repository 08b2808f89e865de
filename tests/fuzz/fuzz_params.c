/* fuzz_params.c — libFuzzer target for the request-field parsers of
 * src/http/params.c: form-urlencoded splitting, JSON bodies, the chunked
 * field feed that multipart parts go through (params_bag_add), and the
 * validation into an sd_request (the field table) for both routes, with
 * the seed API's ranges and with A1111's (strength up to 1).
 * Input: first byte picks the body kind (0 form, 1 JSON, 2 field chunks),
 * the rest is the body.  Field chunks: records "name\0" + 1 byte kind/first
 * flags + 1 byte length + data.
 * fuzz-sources: src/http/params.c src/jobs/request.c src/base/err.c src/base/pyfloat.c src/base/alloc.c src/engine/samplers/samplers.c src/engine/samplers/schedule.c src/engine/samplers/philox.c src/engine/samplers/choice.c src/engine/samplers/kdiff_sched.c
 * fuzz-libs: -lmicrohttpd -ljansson -lm */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/http/params.h"

static int ascii_blank(char c) { return (unsigned char)c < 0x80 && params_unicode_blank((unsigned char)c); }

static void validate(const param_bag *b)
{
    for (int run = 0; run < 4; run++) {
        int img2img = run & 1, a1111 = run >> 1;
        sd_request r;
        sd_err err;
        sd_err_clear(&err);
        if (params_to_request(b, img2img, a1111 ? "a1111" : NULL, &r, &err) == 0) {
            /* a validated request keeps its promises */
            if (!r.gen.prompt || r.gen.n < 1 || r.gen.n > REQ_MAX_OUTPUTS || r.gen.steps < 1 || r.gen.steps > REQ_MAX_STEPS ||
                r.gen.width < 0 || r.gen.width > REQ_MAX_SIDE_CAP || r.gen.height < 0 || r.gen.height > REQ_MAX_SIDE_CAP)
                abort();
            /* issue 15: SDXL's size ids in [0, 8192]; the size, resolved
             * (0 = native) and passing the server's default limits, fits them */
            const int ids[] = {r.gen.orig_width, r.gen.orig_height, r.gen.crop_top, r.gen.crop_left,
                               r.gen.target_width, r.gen.target_height};
            for (int i = 0; i < 6; i++)
                if (ids[i] < 0 || ids[i] > REQ_MAX_SIZE_ID) abort();
            req_resolve_size(&r, 1024);
            if (!img2img && (r.gen.width < 1 || r.gen.height < 1)) abort();
            sd_err se;
            sd_err_clear(&se);
            if (req_check_size(&r, 0, 0, &se) == 0 && !img2img &&
                (r.gen.width > REQ_MAX_SIDE || r.gen.height > REQ_MAX_SIDE ||
                 (int64_t)r.gen.width * r.gen.height > REQ_MAX_PIXELS))
                abort();
            /* the engine's float ranges hold, and the prompt is not blank */
            if (!(r.gen.cfg > 0 && r.gen.cfg <= 20) ||
                !(r.gen.strength > 0 && (a1111 ? r.gen.strength <= 1 : r.gen.strength < 1)) || !r.gen.prompt[0] ||
                ascii_blank(r.gen.prompt[0]) || ascii_blank(r.gen.prompt[strlen(r.gen.prompt) - 1]))
                abort();
            /* loras: at most SD_MAX_LORAS, named, weights in range */
            if (r.gen.n_loras < 0 || r.gen.n_loras > SD_MAX_LORAS || (r.gen.n_loras && !r.gen.loras)) abort();
            for (int i = 0; i < r.gen.n_loras; i++)
                if (!r.gen.loras[i].name || !r.gen.loras[i].name[0] ||
                    !(fabsf(r.gen.loras[i].weight) <= SD_MAX_LORA_WEIGHT))
                    abort();
        } else if (!err.code || !err.msg[0]) {
            abort();   /* a refusal must say why */
        }
        sd_request_free(&r);
    }
}

static void chunks(param_bag *b, const uint8_t *d, size_t n)
{
    size_t i = 0;
    sd_err err;
    sd_err_clear(&err);
    while (i < n) {
        const uint8_t *z = memchr(d + i, 0, n - i);
        if (!z || (size_t)(z - d) + 3 > n) return;
        const char *name = (const char *)d + i;
        i = (size_t)(z - d) + 1;
        uint8_t flags = d[i++];
        size_t len = d[i++];
        if (len > n - i) len = n - i;
        if (params_bag_add(b, name, (flags & 1) ? PV_FILE : PV_TEXT, (const char *)d + i, len, (flags >> 1) & 1,
                           &err))
            return;
        i += len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    param_bag b;
    params_bag_init(&b);
    sd_err err;
    sd_err_clear(&err);
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    int rc = 0;
    switch (data[0] % 3) {
    case 0: {
        char *t = malloc(len + 1);   /* the server hands over a NUL-terminated copy */
        if (!t) return 0;
        memcpy(t, body, len);
        t[len] = 0;
        rc = params_bag_from_urlencoded(&b, t, len, &err);
        free(t);
        break;
    }
    case 1: {
        char *t = malloc(len + 1);
        if (!t) return 0;
        memcpy(t, body, len);
        t[len] = 0;
        rc = params_bag_from_json(&b, t, len, &err);
        free(t);
        break;
    }
    default:
        chunks(&b, body, len);
        break;
    }
    if (rc == 0) validate(&b);
    params_bag_free(&b);
    return 0;
}
