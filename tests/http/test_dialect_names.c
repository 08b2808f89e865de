/* test_dialect_names.c — one name table per dialect (src/http/dialect.h):
 * dialect_field_name says a field the engine or the seed API names in the
 * dialect's words (A1111: the field table's a1111 column; OpenAI: its
 * renames), and dialect_name_field renames an error's field and every
 * whole-word seed name in its message, once (a second pass changes nothing). */
#include <stdio.h>
#include <string.h>

#include "t.h"
#include "../../src/http/server_int.h"

static void names(const dialect *d, const char *field, const char *want, const char *label)
{
    const char *got = dialect_field_name(d, field);
    CHECKF(got && !strcmp(got, want), label, "'%s' -> '%s', want '%s'", field, got ? got : "(null)", want);
}

/* err {field, msg} renamed by d: want_field and want_msg, and the same again after a second pass. */
static void renamed(const dialect *d, const char *field, const char *msg, const char *want_field, const char *want_msg,
                    const char *label)
{
    sd_err e;
    sd_err_clear(&e);
    sd_errf(&e, SD_EINVAL, field, "%s", msg);
    dialect_name_field(d, &e);
    CHECKF(!strcmp(e.field, want_field) && !strcmp(e.msg, want_msg), label, "field '%s' msg '%s'", e.field, e.msg);
    sd_err once = e;
    dialect_name_field(d, &e);
    CHECKF(!strcmp(e.field, once.field) && !strcmp(e.msg, once.msg), label, "second pass: field '%s' msg '%s'",
           e.field, e.msg);
}

int main(void)
{
    /* the seed API: engine names -> the table's */
    names(NULL, "steps", "num_inference_steps", "seed: engine 'steps' is num_inference_steps");
    names(&dialect_seed, "cfg", "guidance_scale", "seed: engine 'cfg' is guidance_scale");
    names(&dialect_seed, "prompt", "prompt", "seed: a seed name stays");
    names(&dialect_seed, "", "", "seed: no field stays none");
    /* A1111: the field table's a1111 column, from seed or engine names */
    names(&dialect_a1111, "num_inference_steps", "steps", "a1111: num_inference_steps is steps");
    names(&dialect_a1111, "cfg", "cfg_scale", "a1111: engine cfg is cfg_scale");
    names(&dialect_a1111, "num_outputs", "batch_size", "a1111: num_outputs is batch_size");
    names(&dialect_a1111, "mask", "mask", "a1111: engine mask (mask_image) is mask");
    names(&dialect_a1111, "model", "model", "a1111: a row without an a1111 name keeps the seed name");
    names(&dialect_a1111, "Content-Length", "Content-Length", "a1111: a header stays");
    /* OpenAI: its renames (no column) */
    names(&dialect_openai, "num_outputs", "n", "openai: num_outputs is n");
    names(&dialect_openai, "n", "n", "openai: engine n is n");
    names(&dialect_openai, "init_image", "image", "openai: init_image is image");
    names(&dialect_openai, "image[]", "image", "openai: image[] is image");
    names(&dialect_openai, "mask_image", "mask", "openai: mask_image is mask");
    names(&dialect_openai, "guidance_scale", "guidance_scale", "openai: an extra field keeps the seed name");

    renamed(&dialect_a1111, "num_inference_steps", "num_inference_steps must be in [1, 150]; see guidance_scale",
            "steps", "steps must be in [1, 150]; see cfg_scale", "a1111: field and every seed name in the message");
    renamed(&dialect_a1111, "prompt", "xnum_inference_steps and num_inference_steps_x stay",
            "prompt", "xnum_inference_steps and num_inference_steps_x stay", "a1111: only whole words");
    renamed(&dialect_openai, "init_image", "init_image: not a PNG, JPEG or WebP image", "image",
            "image: not a PNG, JPEG or WebP image", "openai: the init image's message says image");
    renamed(&dialect_openai, "num_outputs", "num_outputs must be in [1, 4]", "n", "n must be in [1, 4]",
            "openai: num_outputs says n");
    renamed(&dialect_openai, "mask", "mask_image must be the init image's size", "mask",
            "mask must be the init image's size", "openai: engine mask, message mask_image -> mask");
    renamed(&dialect_seed, "steps", "steps must be at least 1", "num_inference_steps", "steps must be at least 1",
            "seed: the field only, the message as the engine said it");

    /* a request's own names (dialect_name_field_as) win over the dialect's, for field and message alike */
    const dialect_name sent[] = {{"guidance_scale", "cfg_scale"}, {"init_image", "images"}, {NULL, NULL}};
    CHECK(!strcmp(dialect_field_name_as(&dialect_openai, sent, "cfg"), "cfg_scale"),
          "openai sent: engine cfg is cfg_scale when the body said cfg_scale");
    CHECK(!strcmp(dialect_field_name_as(&dialect_openai, sent, "num_outputs"), "n"),
          "openai sent: a field the body did not rename keeps the dialect's name");
    sd_err s1;
    sd_err_clear(&s1);
    sd_errf(&s1, SD_EINVAL, "init_image", "init_image is not a PNG; num_outputs and guidance_scale are fine");
    dialect_name_field_as(&dialect_openai, sent, &s1);
    CHECKF(!strcmp(s1.field, "images") && !strcmp(s1.msg, "images is not a PNG; n and cfg_scale are fine"),
           "openai sent: field and message say the names as sent", "field '%s' msg '%s'", s1.field, s1.msg);
    dialect_name_field_as(&dialect_openai, sent, &s1);
    CHECKF(!strcmp(s1.field, "images") && !strcmp(s1.msg, "images is not a PNG; n and cfg_scale are fine"),
           "openai sent: a second pass changes nothing", "field '%s' msg '%s'", s1.field, s1.msg);

    /* a full message: a longer name (A1111's init_images for init_image) is not written past its end */
    sd_err e;
    sd_err_clear(&e);
    memset(e.msg, 'a', sizeof e.msg - 1);
    memcpy(e.msg + sizeof e.msg - 1 - strlen(" init_image"), " init_image", strlen(" init_image"));
    e.msg[sizeof e.msg - 1] = 0;
    dialect_name_field(&dialect_a1111, &e);
    CHECKF(strlen(e.msg) == sizeof e.msg - 1 && !strcmp(e.msg + strlen(e.msg) - 11, " init_image"),
           "a full message: no room for the longer name, left as it was", "len %zu", strlen(e.msg));
    memcpy(e.msg + sizeof e.msg - 1 - strlen(" width"), " width", strlen(" width"));
    dialect_name_field(&dialect_openai, &e);
    CHECK(strlen(e.msg) == sizeof e.msg - 2 && !strcmp(e.msg + strlen(e.msg) - 5, " size"),
          "openai: a word at a full message's end is renamed");
    return t_done();
}
