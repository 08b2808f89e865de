/* test_generate_args.c — `sdserve generate` command line: defaults, every
 * flag form, each kind of bad argument refused with the flag named (the CLI
 * turns these into exit status 2), -n file naming, and the progress text. */
#include <stdarg.h>
#include <string.h>

#include "t.h"
#include "../../src/cli/generate.h"
#include "../../src/cli/progress.h"

/* Parses a NULL-terminated list after "generate". */
static int parse(gen_args *a, sd_err *e, ...)
{
    char *argv[64] = {"generate"};
    int argc = 1;
    va_list ap;
    va_start(ap, e);
    char *s;
    while ((s = va_arg(ap, char *)) && argc < 63) argv[argc++] = s;
    va_end(ap);
    sd_err_clear(e);
    return gen_args_parse(argc, argv, a, e);
}

/* The parse fails with SD_EINVAL naming `field` and a message containing `frag`. */
#define BAD(name_, fld_, frag_, ...)                                                                            \
    do {                                                                                                       \
        int rc_ = parse(&a, &e, "--model", "m", "--prompt", "p", __VA_ARGS__, NULL);                           \
        CHECKF(rc_ == -1 && e.code == SD_EINVAL && !strcmp(e.field, fld_) && strstr(e.msg, frag_), name_,   \
               "rc=%d field=%s msg=%s", rc_, e.field, e.msg);                                                  \
    } while (0)

int main(void)
{
    gen_args a;
    sd_err e;
    CHECKF(parse(&a, &e, "--model", "m.safetensors", "--prompt", "a cat", NULL) == 0 && !strcmp(a.model, "m.safetensors") &&
               a.req.gen.steps == 30 && a.req.gen.cfg == 7 && a.req.gen.sampler == SD_SAMPLER_EULER_A && a.req.seed_was_random && a.req.gen.width == 0 &&
               a.req.gen.height == 0 && a.req.gen.n == 1 && !strcmp(a.output, "out.png") && a.req.out_format == IMG_PNG && a.req.out_quality == 90 &&
               !a.init_image && a.threads == 0 && !a.precision, "defaults", "%s", e.msg);
    CHECKF(parse(&a, &e, "--model", "m", "--prompt", "p", "--negative", "blur", "--steps", "20", "--cfg", "7.5",
                 "--sampler", "dpmpp_2m_karras", "--seed", "9007199254740991", "-W", "1", "-H", "1024", "-n", "4",
                 "-o", "x/y.webp", "--quality", "55", "--threads", "2", "--config", "c.json", "--vocab", "v.gz",
                 "--precision", "bf16x2", NULL) == 0 &&
               !strcmp(a.req.gen.negative, "blur") && a.req.gen.steps == 20 && a.req.gen.cfg == 7.5f && a.req.gen.sampler == SD_SAMPLER_DPMPP_2M_KARRAS &&
               !a.req.seed_was_random && a.req.gen.seed == 9007199254740991ULL && a.req.gen.width == 1 && a.req.gen.height == 1024 && a.req.gen.n == 4 &&
               a.req.out_format == IMG_WEBP && a.req.out_quality == 55 && a.threads == 2 && !strcmp(a.config, "c.json") &&
               !strcmp(a.vocab, "v.gz") && !strcmp(a.precision, "bf16x2"), "every flag, format from -o extension", "%s",
               e.msg);
    CHECKF(parse(&a, &e, "--model=m", "--prompt=p=q", "--width=300", "--count=2", "--seed=-1", "--format=JPEG",
                 "-o", "out.jpeg", NULL) == 0 && a.req.gen.width == 300 && a.req.gen.n == 2 && a.req.seed_was_random && a.req.out_format == IMG_JPEG &&
               !strcmp(a.req.gen.prompt, "p=q"), "--flag=value forms; --format agreeing with the extension", "%s", e.msg);
    CHECKF(parse(&a, &e, "--model", "m", "--prompt", "p", "--original-width", "4096", "--original-height", "3072",
                 "--crop-top", "16", "--crop-left", "8", "--target-width", "1216", "--target-height", "832", NULL) == 0 &&
               a.req.gen.orig_width == 4096 && a.req.gen.orig_height == 3072 && a.req.gen.crop_top == 16 &&
               a.req.gen.crop_left == 8 && a.req.gen.target_width == 1216 && a.req.gen.target_height == 832,
           "SDXL size-conditioning flags", "%s", e.msg);
    CHECKF(parse(&a, &e, "--model", "m", "--prompt", "p", "--init-image", "in.png", "--strength", "0.35", NULL) == 0 &&
               !strcmp(a.init_image, "in.png") && a.req.gen.strength == 0.35f, "img2img flags", "%s", e.msg);
    CHECKF(parse(&a, &e, "--model", "m", "--prompt", "p", "--vae-tiling", "on", NULL) == 0 && a.vae_tiling &&
               !strcmp(a.vae_tiling, "on"), "--vae-tiling on", "%s", e.msg);
    /* previews' decoder (issue 18) */
    CHECKF(parse(&a, &e, "--model", "m", "--prompt", "p", "--preview-decoder", "t.safetensors", "--vae-decoder", "taesd",
                 NULL) == 0 && a.preview_decoder && !strcmp(a.preview_decoder, "t.safetensors") && a.vae_decoder &&
               !strcmp(a.vae_decoder, "taesd"), "--preview-decoder F --vae-decoder taesd", "%s", e.msg);
    CHECK(parse(&a, &e, "--help", NULL) == 0 && a.help, "--help needs nothing else");
    CHECK(parse(&a, &e, "-h", "--bogus-after", NULL) == -1, "unknown flag still refused with -h");
    CHECK(parse(&a, &e, "--model", "m", "--prompt", "p", "-o", "noext", NULL) == 0 && a.req.out_format == IMG_PNG,
          "no extension -> png");
    /* -o's extension decides the format (any case), or is refused before any work */
    static const struct { const char *flag, *file, *format; img_format want; const char *name; } outs[] = {
        {"-o", "OUT.JPG", NULL, IMG_JPEG, "-o .JPG -> jpeg"},
        {"--output", "d.x/o.Jpeg", NULL, IMG_JPEG, "--output .Jpeg -> jpeg"},
        {"-o", "a.webp", NULL, IMG_WEBP, "-o .webp -> webp"},
        {"-o", "a.png", NULL, IMG_PNG, "-o .png -> png"},
        {"-o", "dir.jpg/.hidden", NULL, IMG_PNG, "dot file in a dotted folder: no extension -> png"},
        {"-o", "x.img", "webp", IMG_WEBP, "--format writes an unknown extension when asked"},
        {"-o", "noext", "jpeg", IMG_JPEG, "--format with no extension"},
    };
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        int rc = outs[i].format ? parse(&a, &e, "--model", "m", "--prompt", "p", "--format", outs[i].format,
                                        outs[i].flag, outs[i].file, NULL)
                                : parse(&a, &e, "--model", "m", "--prompt", "p", outs[i].flag, outs[i].file, NULL);
        CHECKF(rc == 0 && a.req.out_format == outs[i].want, outs[i].name, "rc=%d format=%d %s", rc, a.req.out_format, e.msg);
    }
    BAD("-o .gif refused", "-o", "-o out.gif: '.gif' is not a format", "-o", "out.gif");
    BAD("--output .tar.gz refused", "--output", "'.gz' is not a format", "--output", "x.tar.gz");
    BAD("-o trailing dot refused", "-o", "'.' is not a format", "-o", "out.");
    BAD("-o .png with --format jpeg refused", "-o", "out.png names a png file but --format asks for jpeg",
        "--format", "jpeg", "-o", "out.png");
    BAD("--format after -o .webp refused", "-o", "names a webp file", "-o", "a.webp", "--format", "png");

    BAD("unknown flag", "--stepz", "unknown option", "--stepz", "3");
    BAD("stray argument", "argument", "unexpected argument 'cat'", "cat");
    BAD("missing value", "--steps", "needs a value", "--steps");
    BAD("flag without value given one", "--help", "takes no value", "--help=1");
    BAD("non-numeric steps", "--steps", "expects an integer, got 'abc'", "--steps", "abc");
    BAD("fractional steps", "--steps", "integer", "--steps", "2.5");
    BAD("trailing junk", "-W", "integer", "-W", "64px");
    BAD("empty number", "--cfg", "number", "--cfg", "");
    BAD("nan cfg", "--cfg", "number", "--cfg", "nan");
    BAD("inf cfg", "--cfg", "number", "--cfg", "inf");
    BAD("hex cfg", "--cfg", "number", "--cfg", "0x10");
    BAD("huge integer", "--seed", "integer", "--seed", "99999999999999999999999");
    BAD("steps 0", "--steps", "[1, 150]", "--steps", "0");
    BAD("steps 151", "--steps", "got 151", "--steps", "151");
    BAD("cfg 0", "--cfg", "(0, 20]", "--cfg", "0");
    BAD("cfg 20.5", "--cfg", "(0, 20]", "--cfg", "20.5");
    BAD("width 0", "-W", "[1, 2048]", "-W", "0");
    BAD("height 2049", "--height", "[1, 2048]", "--height", "2049");
    BAD("original width -1", "--original-width", "[0, 8192]", "--original-width", "-1");
    BAD("crop top 8193", "--crop-top", "[0, 8192]", "--crop-top", "8193");
    BAD("n 5", "-n", "[1, 4]", "-n", "5");
    BAD("n 0", "--count", "[1, 4]", "--count", "0");
    BAD("seed -2", "--seed", "[0, 9007199254740991]", "--seed", "-2");
    BAD("seed 2^53", "--seed", "got 9007199254740992", "--seed", "9007199254740992");
    BAD("sampler unknown", "--sampler", "got 'heun'", "--sampler", "heun");
    BAD("format unknown", "--format", "got 'gif'", "--format", "gif");
    BAD("quality 0", "--quality", "[1, 100]", "--quality", "0");
    BAD("quality 101", "--quality", "[1, 100]", "--quality", "101");
    BAD("threads -1", "--threads", "[0, 1024]", "--threads", "-1");
    BAD("precision unknown", "--precision", "got 'fast'", "--precision", "fast");
    /* tiled VAE decode */
    BAD("vae-tiling unknown", "--vae-tiling", "got 'maybe'", "--vae-tiling", "maybe");
    BAD("vae-decoder unknown", "--vae-decoder", "got 'fast'", "--vae-decoder", "fast");
    BAD("preview-decoder empty", "--preview-decoder", "TAESD", "--preview-decoder", "");
    BAD("strength 1", "--strength", "(0, 1)", "--init-image", "x.png", "--strength", "1");
    BAD("strength 0", "--strength", "(0, 1)", "--init-image", "x.png", "--strength", "0");
    BAD("strength without init image", "--strength", "--init-image", "--strength", "0.5");
    CHECKF(parse(&a, &e, "--model", "m", "--prompt", "p", "--clip-skip", "2", NULL) == 0 && a.req.gen.clip_skip == 2,
           "--clip-skip 2", "%s", e.msg);
    CHECKF(parse(&a, &e, "--model", "m", "--prompt", "p", NULL) == 0 && a.req.gen.clip_skip == 1,
           "clip skip defaults to 1", "%d", a.req.gen.clip_skip);
    BAD("clip-skip 13", "--clip-skip", "[1, 12]", "--clip-skip", "13");
    BAD("clip-skip 0", "--clip-skip", "[1, 12]", "--clip-skip", "0");
    BAD("clip-skip 1.5", "--clip-skip", "integer", "--clip-skip", "1.5");
    BAD("empty output", "-o", "file name", "-o", "");

    sd_err_clear(&e);
    CHECK(parse(&a, &e, "--prompt", "p", NULL) == -1 && !strcmp(e.field, "--model"), "missing --model");
    CHECK(parse(&a, &e, "--model", "m", NULL) == -1 && !strcmp(e.field, "--prompt"), "missing --prompt");
    CHECK(parse(&a, &e, "--model", "m", "--prompt", " \t\n", NULL) == -1 && strstr(e.msg, "empty"), "blank prompt");

    char b[64];
    CHECK(gen_output_name("out.png", 0, b, sizeof b) == 0 && !strcmp(b, "out.png"), "name 0");
    CHECK(gen_output_name("out.png", 1, b, sizeof b) == 0 && !strcmp(b, "out-1.png"), "name 1");
    CHECK(gen_output_name("a.b/out.tar.jpg", 3, b, sizeof b) == 0 && !strcmp(b, "a.b/out.tar-3.jpg"), "name with dots");
    CHECK(gen_output_name("dir.v2/out", 2, b, sizeof b) == 0 && !strcmp(b, "dir.v2/out-2"), "name without extension");
    CHECK(gen_output_name(".hidden", 1, b, sizeof b) == 0 && !strcmp(b, ".hidden-1"), "dot file");
    CHECK(gen_output_name("x.jpg/.hidden", 2, b, sizeof b) == 0 && !strcmp(b, "x.jpg/.hidden-2"), "dot file in a dotted folder");
    CHECK(gen_output_name("out.JPEG", 1, b, sizeof b) == 0 && !strcmp(b, "out-1.JPEG"), "name keeps the extension's case");
    CHECK(gen_output_name("out.png", 1, b, 5) == -1, "name too long");

    CHECKF(!strcmp(progress_format(b, sizeof b, 3, 20, 2.0), "step 3/20, 1.50 it/s, ETA 11s"), "progress it/s",
           "%s", b);
    CHECKF(!strcmp(progress_format(b, sizeof b, 2, 150, 5.0), "step 2/150, 2.50 s/it, ETA 6m10s"), "progress s/it",
           "%s", b);
    CHECKF(!strcmp(progress_format(b, sizeof b, 0, 10, 0), "step 0/10, ? it/s, ETA ?"), "progress at start", "%s", b);
    return t_done();
}
