/* test_params.c — request field parsing and validation (src/http/params.c):
 * numbers as text or JSON, ranges of the contract, duplicates, UTF-8, JSON
 * shape and depth, defaults and seeds; the flag rows take JSON booleans in
 * a JSON body and the words in a form body. */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/http/params.h"

/* Validates a JSON body for txt2img (img=0) or img2img; returns 0/-1 and fills e. */
static int try_json(const char *body, int img, sd_request *r, sd_err *e)
{
    param_bag b;
    params_bag_init(&b);
    sd_err_clear(e);
    memset(r, 0, sizeof *r); /* a body refused before params_to_request leaves r untouched */
    int rc = params_bag_from_json(&b, body, strlen(body), e);
    if (!rc) rc = params_to_request(&b, img, NULL, r, e);
    params_bag_free(&b);
    return rc;
}

/* The same for a form-urlencoded body (modified in place, as the server's). */
static int try_form(char *body, int img, sd_request *r, sd_err *e)
{
    param_bag b;
    params_bag_init(&b);
    sd_err_clear(e);
    memset(r, 0, sizeof *r);
    int rc = params_bag_from_urlencoded(&b, body, strlen(body), e);
    if (!rc) rc = params_to_request(&b, img, NULL, r, e);
    params_bag_free(&b);
    return rc;
}

/* Expects a JSON body to fail naming `field` with `frag` in the message. */
static void bad(const char *name, const char *body, int img, const char *field, const char *frag)
{
    sd_request r;
    sd_err e;
    int rc = try_json(body, img, &r, &e);
    CHECKF(rc == -1 && e.code == SD_EINVAL && (!field || !strcmp(e.field, field)) && strstr(e.msg, frag), name,
           "rc=%d field='%s' msg='%s'", rc, e.field, e.msg);
    sd_request_free(&r);
}

int main(void)
{
    double v;
    CHECK(!params_parse_number("512", 3, &v) && v == 512, "number 512");
    CHECK(!params_parse_number(" 512.0 ", 7, &v) && v == 512, "number 512.0 with blanks");
    CHECK(!params_parse_number("-1", 2, &v) && v == -1, "number -1");
    CHECK(!params_parse_number("7.5", 3, &v) && v == 7.5, "number 7.5");
    CHECK(!params_parse_number("5e2", 3, &v) && v == 500, "number 5e2");
    CHECK(params_parse_number("1e400", 5, &v) == -1, "1e400 refused");
    CHECK(params_parse_number("abc", 3, &v) == -1, "abc refused");
    CHECK(params_parse_number("0x10", 4, &v) == -1, "hex refused");
    CHECK(params_parse_number("inf", 3, &v) == -1 && params_parse_number("nan", 3, &v) == -1, "inf/nan refused");
    CHECK(params_parse_number("", 0, &v) == -1 && params_parse_number(".", 1, &v) == -1, "empty refused");
    CHECK(params_parse_number("12abc", 5, &v) == -1 && params_parse_number("1e", 2, &v) == -1, "trailing junk refused");

    CHECK(params_utf8_valid("h\xc3\xa9llo \xe4\xb8\xad", 10), "utf8 valid");
    CHECK(!params_utf8_valid("\xff", 1), "utf8 0xff refused");
    CHECK(!params_utf8_valid("\xc0\xaf", 2), "utf8 overlong refused");
    CHECK(!params_utf8_valid("\xed\xa0\x80", 3), "utf8 surrogate refused");
    CHECK(!params_utf8_valid("\xe4\xb8", 2), "utf8 truncated refused");

    sd_request r;
    sd_err e;
    int rc = try_json("{\"prompt\":\"  a cat  \"}", 0, &r, &e);
    CHECKF(rc == 0 && !strcmp(r.gen.prompt, "a cat") && r.gen.width == 0 && r.gen.height == 0 && r.gen.n == 1 &&
               r.gen.steps == 30 && r.gen.cfg == 7.0f && r.seed_was_random && r.gen.seed < (1ull << 53),
           "defaults (no size: 0, the model's native size later)", "rc=%d msg=%s", rc, e.msg);
    sd_request_free(&r);
    rc = try_json("{\"prompt\":\"x\",\"seed\":\"10086\",\"num_outputs\":4,\"width\":\"512.0\",\"height\":64,"
                  "\"num_inference_steps\":150,\"guidance_scale\":\"7.5\"}", 0, &r, &e);
    CHECKF(rc == 0 && r.gen.seed == 10086 && !r.seed_was_random && r.gen.n == 4 && r.gen.width == 512 && r.gen.height == 64 &&
               r.gen.steps == 150 && r.gen.cfg == 7.5f, "all fields as text and numbers", "rc=%d msg=%s", rc, e.msg);
    sd_request_free(&r);
    rc = try_json("{\"prompt\":\"x\",\"seed\":\"\"}", 0, &r, &e);
    CHECK(rc == 0 && r.seed_was_random, "empty seed = random");
    sd_request_free(&r);
    rc = try_json("{\"prompt\":\"x\",\"seed\":-1,\"width\":null}", 0, &r, &e);
    CHECK(rc == 0 && r.seed_was_random && r.gen.width == 0, "seed -1 = random, null = default");
    sd_request_free(&r);
    rc = try_json("{\"prompt\":\"x\",\"seed\":9007199254740991}", 0, &r, &e);
    CHECK(rc == 0 && r.gen.seed == 9007199254740991ull, "largest seed");
    sd_request_free(&r);
    rc = try_json("{\"prompt\":\"x\",\"init_image\":\" data:image/png;base64,AAAA \",\"strength\":0.5}", 1, &r, &e);
    CHECKF(rc == 0 && r.img2img && !strcmp(r.init_data, "data:image/png;base64,AAAA") && r.gen.strength == 0.5f,
           "img2img fields", "rc=%d msg=%s", rc, e.msg);
    sd_request_free(&r);
    CHECK(!strcmp(params_field_name("steps"), "num_inference_steps") && !strcmp(params_field_name("n"), "num_outputs") &&
              !strcmp(params_field_name("cfg"), "guidance_scale") &&
              !strcmp(params_field_name("negative"), "negative_prompt") &&
              !strcmp(params_field_name("storage"), "storage") && !strcmp(params_field_name(""), ""),
          "engine field names mapped to the seed API's, others kept");
    rc = try_json("{\"prompt\":\"x\",\"clip_skip\":\"2\"}", 0, &r, &e);
    CHECKF(rc == 0 && r.gen.clip_skip == 2, "clip_skip as text into the engine's params", "rc=%d msg=%s", rc, e.msg);
    sd_request_free(&r);
    rc = try_json("{\"prompt\":\"x\"}", 1, &r, &e);
    CHECKF(rc == -1 || r.gen.clip_skip == 1, "clip_skip defaults to 1", "%d", r.gen.clip_skip);
    sd_request_free(&r);

    bad("missing prompt", "{\"width\":64}", 0, "prompt", "prompt is required");
    bad("blank prompt", "{\"prompt\":\"  \\n \"}", 0, "prompt", "empty");
    bad("prompt number", "{\"prompt\":5}", 0, "prompt", "must be a string");
    bad("width 0", "{\"prompt\":\"x\",\"width\":0}", 0, "width", "(0, 2048]");
    bad("width 2049", "{\"prompt\":\"x\",\"width\":2049}", 0, "width", "(0, 2048]");
    bad("width 512.5", "{\"prompt\":\"x\",\"width\":\"512.5\"}", 0, "width", "whole number");
    bad("width abc", "{\"prompt\":\"x\",\"width\":\"abc\"}", 0, "width", "'abc'");
    bad("width 1e400 text", "{\"prompt\":\"x\",\"width\":\"1e400\"}", 0, "width", "1e400");
    bad("width bool", "{\"prompt\":\"x\",\"width\":true}", 0, "width", "boolean");
    bad("width array", "{\"prompt\":\"x\",\"width\":[512]}", 0, "width", "array");
    bad("steps 151", "{\"prompt\":\"x\",\"num_inference_steps\":151}", 0, "num_inference_steps", "151");
    bad("guidance 0", "{\"prompt\":\"x\",\"guidance_scale\":0}", 0, "guidance_scale", "(0, 20]");
    bad("guidance 21", "{\"prompt\":\"x\",\"guidance_scale\":21}", 0, "guidance_scale", "21");
    bad("outputs 5", "{\"prompt\":\"x\",\"num_outputs\":5}", 0, "num_outputs", "[1, 4]");
    bad("seed -2", "{\"prompt\":\"x\",\"seed\":-2}", 0, "seed", "-1 (random)");
    bad("seed 2^53", "{\"prompt\":\"x\",\"seed\":9007199254740992}", 0, "seed", "seed");
    bad("seed overflow with n", "{\"prompt\":\"x\",\"seed\":9007199254740991,\"num_outputs\":2}", 0, "seed", "seed + i");
    bad("strength 0", "{\"prompt\":\"x\",\"init_image\":\"AAAA\",\"strength\":0}", 1, "strength", "(0, 1)");
    bad("strength 1", "{\"prompt\":\"x\",\"init_image\":\"AAAA\",\"strength\":1}", 1, "strength", "(0, 1)");
    bad("strength rounds to 1", "{\"prompt\":\"x\",\"init_image\":\"AAAA\",\"strength\":0.99999999999}", 1,
        "strength", "(0, 1)");
    bad("img2img without image", "{\"prompt\":\"x\"}", 1, "init_image", "required");
    bad("width on img2img", "{\"prompt\":\"x\",\"init_image\":\"AAAA\",\"width\":64}", 1, "width", "init image's size");
    bad("init_image on txt2img", "{\"prompt\":\"x\",\"init_image\":\"AAAA\"}", 0, "init_image", "/img2img");
    bad("unknown field", "{\"prompt\":\"x\",\"widht\":64}", 0, "widht", "unknown field 'widht'");
    bad("duplicate key", "{\"prompt\":\"x\",\"prompt\":\"y\"}", 0, NULL, "duplicate");
    bad("json array", "[{\"prompt\":\"x\"}]", 0, NULL, "array");
    bad("json string", "\"prompt\"", 0, NULL, "object");
    bad("json broken", "{\"prompt\":", 0, NULL, "not valid JSON");
    bad("json number overflow names the key", "{\"prompt\":\"x\",\"width\": 1e400}", 0, "width", "1e400");
    bad("json bad utf8", "{\"prompt\":\"\xff\"}", 0, NULL, "not valid JSON");
    {
        size_t n = 10000;
        char *deep = malloc(2 * n + 1);
        memset(deep, '[', n);
        memset(deep + n, ']', n);
        deep[2 * n] = 0;
        bad("json 10000 deep", deep, 0, NULL, "nested deeper");
        free(deep);
    }

    param_bag b;
    params_bag_init(&b);
    sd_err_clear(&e);
    {
        char body[] = "prompt=Anime+girl%20up&init_image=ab+/c%2Bd%2F==&seed=&&flag";
        CHECK(!params_bag_from_urlencoded(&b, body, strlen(body), &e) && b.n == 4 &&
                  !strcmp(params_bag_get(&b, "prompt")->val, "Anime girl up") &&
                  !strcmp(params_bag_get(&b, "init_image")->val, "ab /c+d/==") &&
                  params_bag_get(&b, "seed")->len == 0 && params_bag_get(&b, "flag")->len == 0,
              "form-urlencoded: first '=' splits, raw '=' kept, '+' is space, %XX decoded");
        params_bag_free(&b);
        char plus[] = "prompt=x&init_image=+AB+CD+";
        sd_err_clear(&e);
        CHECK(!params_bag_from_urlencoded(&b, plus, strlen(plus), &e) && !params_to_request(&b, 1, NULL, &r, &e) &&
                  !strcmp(r.init_data, " AB CD "), "form: raw '+' at both ends of init_image survives (as spaces)");
        sd_request_free(&r);
        params_bag_free(&b);
        char dup[] = "prompt=a&prompt=b";
        sd_err_clear(&e);
        CHECK(params_bag_from_urlencoded(&b, dup, strlen(dup), &e) == -1 && !strcmp(e.field, "prompt"),
              "form-urlencoded duplicate refused");
        params_bag_free(&b);
    }
    sd_err_clear(&e);
    CHECK(!params_bag_add(&b, "prompt", PV_TEXT, "a ", 2, 1, &e) && !params_bag_add(&b, "prompt", PV_TEXT, "cat", 3, 0, &e) &&
              !strcmp(params_bag_get(&b, "prompt")->val, "a cat"), "chunks append");
    CHECK(params_bag_add(&b, "prompt", PV_TEXT, "x", 1, 1, &e) == -1 && strstr(e.msg, "more than once") &&
              !strcmp(e.field, "prompt"), "form duplicate refused");
    params_bag_free(&b);
    params_bag_init(&b);
    sd_err_clear(&e);
    params_bag_add(&b, "prompt", PV_TEXT, "a \xc3\x28", 4, 1, &e);
    CHECK(params_to_request(&b, 0, NULL, &r, &e) == -1 && !strcmp(e.field, "prompt") && strstr(e.msg, "UTF-8"),
          "form invalid utf8 names field");
    sd_request_free(&r);
    params_bag_free(&b);

    /* issue 12 item 4: float fields checked as the float the engine gets */
    bad("guidance 1e-46 (0 as a float)", "{\"prompt\":\"x\",\"guidance_scale\":1e-46}", 0, "guidance_scale",
        "0 as a 32-bit float");
    bad("guidance '1e-46' as text", "{\"prompt\":\"x\",\"guidance_scale\":\"1e-46\"}", 0, "guidance_scale", "(0, 20]");
    bad("guidance 1e39 (inf as a float)", "{\"prompt\":\"x\",\"guidance_scale\":1e39}", 0, "guidance_scale",
        "inf as a 32-bit float");
    bad("guidance 1e300", "{\"prompt\":\"x\",\"guidance_scale\":1e300}", 0, "guidance_scale", "(0, 20]");
    bad("guidance -0", "{\"prompt\":\"x\",\"guidance_scale\":\"-0\"}", 0, "guidance_scale", "(0, 20]");
    bad("guidance 'inf'", "{\"prompt\":\"x\",\"guidance_scale\":\"inf\"}", 0, "guidance_scale", "got 'inf'");
    bad("strength 1e-50", "{\"prompt\":\"x\",\"init_image\":\"AAAA\",\"strength\":1e-50}", 1, "strength",
        "(0, 1)");
    bad("strength 0.99999999999 (1 as a float)",
        "{\"prompt\":\"x\",\"init_image\":\"AAAA\",\"strength\":0.99999999999}", 1, "strength", "1 as a 32-bit float");
    rc = try_json("{\"prompt\":\"x\",\"guidance_scale\":20.0000001}", 0, &r, &e);
    CHECKF(rc == 0 && r.gen.cfg == 20.0f, "guidance 20.0000001 is 20 as a float: accepted", "rc=%d msg=%s", rc, e.msg);
    sd_request_free(&r);
    rc = try_json("{\"prompt\":\"x\",\"guidance_scale\":1e-30}", 0, &r, &e);
    CHECKF(rc == 0 && r.gen.cfg > 0, "guidance 1e-30 (a positive float) accepted", "rc=%d msg=%s", rc, e.msg);
    sd_request_free(&r);
    bad("width 1e20 (integer overflow)", "{\"prompt\":\"x\",\"width\":1e20}", 0, "width", "(0, 2048]");
    bad("steps 2^64 as text", "{\"prompt\":\"x\",\"num_inference_steps\":\"18446744073709551617\"}", 0,
        "num_inference_steps", "(0, 150]");
    bad("seed 2^63 (overflow)", "{\"prompt\":\"x\",\"seed\":9223372036854775808}", 0, "seed", "too big integer");

    /* item 6: Unicode blanks trimmed for the emptiness check */
    bad("prompt of U+3000", "{\"prompt\":\"\\u3000\\u3000\"}", 0, "prompt", "prompt is empty");
    bad("prompt of U+00A0 U+2003 U+0085 U+2028", "{\"prompt\":\"\\u00a0\\u2003\\u0085\\u2028\\u2029 \"}", 0, "prompt",
        "prompt is empty");
    bad("prompt of C0 blanks", "{\"prompt\":\"\\t\\n\\u000b\\f\\r\\u001f\"}", 0, "prompt", "prompt is empty");
    rc = try_json("{\"prompt\":\"\\u3000\\u00a0a\\u3000cat\\u2003\\u202f\"}", 0, &r, &e);
    CHECKF(rc == 0 && !strcmp(r.gen.prompt, "a\xe3\x80\x80" "cat"), "Unicode blanks trimmed at both ends only",
           "rc=%d prompt='%s'", rc, r.gen.prompt ? r.gen.prompt : "(null)");
    sd_request_free(&r);
    rc = try_json("{\"prompt\":\"\\u200b\\u00e0\\u4e2d\"}", 0, &r, &e);   /* U+200B is Cf, not a blank */
    CHECKF(rc == 0 && !strcmp(r.gen.prompt, "\xe2\x80\x8b\xc3\xa0\xe4\xb8\xad"), "non-blanks kept (U+200B, a-grave, CJK)",
           "rc=%d", rc);
    sd_request_free(&r);
    CHECK(params_unicode_blank(0x3000) && params_unicode_blank(0xa0) && params_unicode_blank(0x85) &&
              params_unicode_blank(0x2003) && !params_unicode_blank(0x200b) && !params_unicode_blank('a') &&
              !params_unicode_blank(0xfeff), "params_unicode_blank");

    /* item 5: a NUL in a field name is no field of ours */
    {
        char nul[] = "prompt%00junk=cat&width=64";
        sd_err_clear(&e);
        params_bag_init(&b);
        rc = params_bag_from_urlencoded(&b, nul, strlen(nul), &e);
        CHECKF(rc == -1 && !strcmp(e.field, "prompt\\x00junk") && strstr(e.msg, "unknown field") &&
                   !params_bag_get(&b, "prompt"), "form name prompt%00junk refused", "field='%s' msg='%s'", e.field, e.msg);
        params_bag_free(&b);
        char nul_end[] = "prompt%00=cat";
        sd_err_clear(&e);
        rc = params_bag_from_urlencoded(&b, nul_end, strlen(nul_end), &e);
        CHECKF(rc == -1 && !strcmp(e.field, "prompt\\x00"), "form name prompt%00 refused", "field='%s'", e.field);
        params_bag_free(&b);
    }
    /* a NUL in the value of a named choice: refused, not read up to the NUL */
    {
        char nul_val[] = "prompt=cat&sampler=euler%00junk";
        rc = try_form(nul_val, 0, &r, &e);
        CHECKF(rc == -1 && !strcmp(e.field, "sampler") && strstr(e.msg, "NUL"), "form sampler=euler%00junk refused",
               "rc=%d field='%s' msg='%s'", rc, e.field, e.msg);
        sd_request_free(&r);
        char nul_fmt[] = "prompt=cat&output_format=png%00";
        rc = try_form(nul_fmt, 0, &r, &e);
        CHECKF(rc == -1 && !strcmp(e.field, "output_format") && strstr(e.msg, "NUL"), "form output_format=png%00 refused",
               "rc=%d field='%s' msg='%s'", rc, e.field, e.msg);
        sd_request_free(&r);
    }
    bad("JSON key prompt\\u0000junk", "{\"prompt\\u0000junk\":\"cat\"}", 0, "prompt\\x00junk", "unknown field");
    bad("JSON value \\u0000: NUL named, not jansson's flag", "{\"prompt\":\"a\\u0000b\"}", 0, "prompt",
        "prompt contains a NUL character");
    bad("JSON sampler \\u0000", "{\"prompt\":\"x\",\"sampler\":\"euler\\u0000\"}", 0, "sampler",
        "sampler contains a NUL character");
    bad("JSON key with escaped quote then NUL", "{\"a\\\"b\\u0000\":1}", 0, "a\\x22b\\x00", "NUL");
    sd_err_clear(&e);
    params_bag_init(&b);
    CHECK(params_bag_add(&b, NULL, PV_TEXT, "cat", 3, 1, &e) == -1 && strstr(e.msg, "unknown field") &&
              b.n == 0, "multipart part without a readable name refused");
    params_bag_free(&b);
    /* params_bag_move: a dialect's field into the seed bag under its seed name, the value moved */
    {
        param_bag from, to;
        params_bag_init(&from);
        params_bag_init(&to);
        sd_err_clear(&e);
        int ok = !params_bag_add(&from, "image", PV_TEXT, "aGVsbG8=", 8, 1, &e) &&
                 !params_bag_move(&to, &from.v[0], "init_image", &e);
        const param *moved = params_bag_get(&to, "init_image");
        CHECKF(ok && moved && moved->kind == PV_TEXT && moved->len == 8 && !strcmp(moved->val, "aGVsbG8=") &&
                   to.total == 8 && from.v[0].len == 0 && !strcmp(from.v[0].val, ""),
               "bag_move: the value under the seed name, the source left empty", "%s", e.msg);
        sd_err_clear(&e);
        CHECK(params_bag_move(&to, &from.v[0], "init_image", &e) == -1 && e.code == SD_EINVAL &&
                  strstr(e.msg, "more than once"), "bag_move: a second value for a name is refused");
        params_bag_free(&from);
        params_bag_free(&to);
    }
    /* the flag rows (integers of range [0, 1]) in a JSON body: a JSON boolean or 0/1, not a word in a string
     * (a form or multipart body says the words) */
    bad("JSON inpaint_full_res \"true\" (a string)", "{\"prompt\":\"x\",\"init_image\":\"AAAA\",\"inpaint_full_res\":\"true\"}", 1,
        "inpaint_full_res", "a JSON boolean");
    bad("JSON mask_overlay \"no\"", "{\"prompt\":\"x\",\"init_image\":\"AAAA\",\"mask_overlay\":\"no\"}", 1, "mask_overlay",
        "got the text \"no\"");
    bad("JSON inpainting_mask_invert \"OFF\"", "{\"prompt\":\"x\",\"init_image\":\"AAAA\",\"inpainting_mask_invert\":\"OFF\"}",
        1, "inpainting_mask_invert", "a JSON boolean");
    rc = try_json("{\"prompt\":\"x\",\"init_image\":\"AAAA\",\"inpaint_full_res\":false,\"mask_overlay\":\"0\","
                  "\"inpainting_mask_invert\":1}", 1, &r, &e);
    CHECKF(rc == 0 && r.inpaint_full_res == 0 && r.mask_overlay == 0 && r.inpainting_mask_invert == 1,
           "JSON flags: a boolean, 0/1 as text and as a number", "rc=%d msg=%s", rc, e.msg);
    sd_request_free(&r);
    {
        char form[] = "prompt=x&init_image=AAAA&inpaint_full_res=true&mask_overlay=off&inpainting_mask_invert=Yes";
        rc = try_form(form, 1, &r, &e);
        CHECKF(rc == 0 && r.inpaint_full_res == 1 && r.mask_overlay == 0 && r.inpainting_mask_invert == 1,
               "form flags: the words true / off / Yes", "rc=%d msg=%s", rc, e.msg);
        sd_request_free(&r);
    }
    return t_done();
}
