/* test_mask.c — inpainting's pixel steps (image/mask.c) and masks from files
 * (jobs/inpaint.c) against values worked out by hand: PIL's luminance,
 * A1111's blur kernel, crop box and its expansion, the overlay's alpha
 * composite, the fill of a one-colour picture, and the mask rules of the
 * dialects (threshold, alpha, OpenAI's transparency, size, invert, nothing
 * to repaint). */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/base/resample.h"
#include "../../src/image/image.h"
#include "../../src/jobs/inpaint.h"

static void test_luminance(void)
{
    const uint8_t rgb[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 128, 128, 128};
    uint8_t l[5];
    img_luminance(rgb, 5, l);
    /* (255*19595 + 0x8000) >> 16 = 76; 38470 -> 150; 7471 -> 29; white 255; gray 128 */
    CHECKF(l[0] == 76 && l[1] == 150 && l[2] == 29 && l[3] == 255 && l[4] == 128, "luminance is PIL's convert('L')",
           "%d %d %d %d %d", l[0], l[1], l[2], l[3], l[4]);
}

static void test_blur(void)
{
    sd_err e;
    sd_err_clear(&e);
    uint8_t row[21] = {0};
    row[10] = 255;
    /* sigma 1: kernel 2*int(3)+1 = 7, weights exp(-d^2/2) / 2.505949:
     * 255 * (0.39905, 0.24204, 0.05401, 0.00443) = 101.76, 61.72, 13.77, 1.13 */
    CHECK(img_mask_blur(row, 21, 1, 1, 0, &e) == 0, "blur runs");
    CHECKF(row[10] == 102 && row[9] == 62 && row[11] == 62 && row[8] == 14 && row[7] == 1 && row[6] == 0 && row[14] == 0,
           "blur along x is cv2's Gaussian of sigma 1", "%d %d %d %d %d", row[6], row[7], row[8], row[9], row[10]);
    uint8_t col[5] = {255, 0, 0, 0, 0};   /* a column: border reflect-101 mirrors about the first pixel */
    CHECK(img_mask_blur(col, 1, 5, 0, 1, &e) == 0 && col[0] == 102 && col[1] == 62 && col[2] == 14,
          "blur along y, reflect-101 border");
    uint8_t flat[6] = {200, 200, 200, 200, 200, 200};
    img_mask_blur(flat, 3, 2, 4, 4, &e);
    CHECK(flat[0] == 200 && flat[5] == 200, "blurring a flat mask (kernel wider than it) keeps it");
    uint8_t same[3] = {0, 255, 0};
    img_mask_blur(same, 3, 1, 0, 0, &e);
    CHECK(same[1] == 255 && same[0] == 0, "blur 0 leaves the mask");
}

static void test_box(void)
{
    uint8_t m[10 * 8] = {0};
    int box[4] = {-1, -1, -1, -1};
    CHECK(img_mask_box(m, 10, 8, 0, box) == 0 && box[0] == -1, "an all-zero mask has no box");
    for (int y = 2; y < 4; y++)
        for (int x = 3; x < 5; x++) m[y * 10 + x] = 9;
    CHECK(img_mask_box(m, 10, 8, 0, box) && box[0] == 3 && box[1] == 2 && box[2] == 5 && box[3] == 4,
          "box of the non-zero pixels, end exclusive (PIL getbbox)");
    CHECK(img_mask_box(m, 10, 8, 2, box) && box[0] == 1 && box[1] == 0 && box[2] == 7 && box[3] == 6,
          "padding 2, clipped at the top");
    /* 6x6 box, output 20x10 (2:1): width wanted 12, diff 6 -> x -2..10, shifted to 0..12, cut to 10 */
    img_box_expand(box, 20, 10, 10, 8);
    CHECKF(box[0] == 0 && box[1] == 0 && box[2] == 10 && box[3] == 6, "expand_crop_region widens to the aspect",
           "%d %d %d %d", box[0], box[1], box[2], box[3]);
    int tall[4] = {4, 2, 6, 3};   /* 2x1 box, output 1:1: height wanted 2, diff 1 -> y 2..4 */
    img_box_expand(tall, 64, 64, 10, 8);
    CHECKF(tall[0] == 4 && tall[1] == 2 && tall[2] == 6 && tall[3] == 4, "expand_crop_region grows the height",
           "%d %d %d %d", tall[0], tall[1], tall[2], tall[3]);
    int low[4] = {0, 6, 4, 8};    /* 4x2 at the bottom, 1:1: diff 2 -> y 5..9, moved up to 4..8 */
    img_box_expand(low, 64, 64, 10, 8);
    CHECKF(low[1] == 4 && low[3] == 8, "expand_crop_region stays inside the picture", "%d %d", low[1], low[3]);

    uint8_t pic[4 * 3], *c = NULL;
    for (int i = 0; i < 12; i++) pic[i] = (uint8_t)i;
    const int b2[4] = {1, 1, 3, 3};
    sd_err e;
    sd_err_clear(&e);
    CHECK(img_crop(pic, 4, 1, b2, &c, &e) == 0 && c[0] == 5 && c[1] == 6 && c[2] == 9 && c[3] == 10, "crop");
    uint8_t z[4] = {100, 101, 102, 103};
    img_paste(pic, 4, 1, b2, z);
    CHECK(pic[5] == 100 && pic[10] == 103 && pic[4] == 4 && pic[11] == 11, "paste back at the box");
    free(c);
}

static void test_overlay(void)
{
    uint8_t res[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t orig[9] = {200, 17, 255, 200, 17, 255, 200, 17, 255};
    const uint8_t m[3] = {0, 255, 128};
    img_mask_overlay(res, orig, m, 3);
    /* alpha 127: coef1 = 127*128, 200*16256 + 16384 -> DIV255 -> >>7 = 100 */
    CHECKF(res[0] == 200 && res[1] == 17 && res[2] == 255, "unmasked pixels are the original's exactly", "%d", res[0]);
    CHECK(res[3] == 0 && res[4] == 0 && res[5] == 0, "masked pixels keep the result");
    CHECKF(res[6] == 100, "half-masked pixels blend as PIL's alpha_composite", "%d", res[6]);
}

static void test_fill(void)
{
    enum { W = 24, H = 16 };
    uint8_t rgb[W * H * 3], m[W * H];
    for (int i = 0; i < W * H; i++) {
        rgb[3 * i] = 40, rgb[3 * i + 1] = 90, rgb[3 * i + 2] = 160;
        m[i] = 0;
    }
    for (int y = 4; y < 12; y++)
        for (int x = 6; x < 18; x++) {
            m[y * W + x] = 255;
            rgb[3 * (y * W + x)] = 255, rgb[3 * (y * W + x) + 1] = 0, rgb[3 * (y * W + x) + 2] = 255;
        }
    sd_err e;
    sd_err_clear(&e);
    CHECK(img_mask_fill(rgb, m, W, H, &e) == 0, "fill runs");
    int worst = 0;
    for (int i = 0; i < W * H * 3; i++) {
        int d = abs(rgb[i] - (i % 3 == 0 ? 40 : i % 3 == 1 ? 90 : 160));
        if (d > worst) worst = d;
    }
    /* the masked magenta is replaced by the colour around it (rounding: +-2) */
    CHECKF(worst <= 2, "fill paints the masked area with the surrounding colour", "worst %d", worst);
}

/* An 8-bit RGBA PNG in memory (libpng's simplified writer). */
static uint8_t *rgba_png(const uint8_t *px, int w, int h, size_t *n)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = PNG_FORMAT_RGBA;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&im, NULL, &size, 0, px, 0, NULL)) return NULL;
    uint8_t *buf = malloc(size);
    if (buf && !png_image_write_to_memory(&im, buf, &size, 0, px, 0, NULL)) {
        free(buf);
        return NULL;
    }
    *n = size;
    return buf;
}

static void test_files(void)
{
    sd_err e;
    sd_err_clear(&e);
    /* RGB 4x2: white, light gray 129, gray 128, black / black row */
    uint8_t rgb[4 * 2 * 3] = {255, 255, 255, 129, 129, 129, 128, 128, 128, 0, 0, 0};
    uint8_t *png = NULL, *m = NULL;
    size_t n = 0;
    img_encode_opts eo = {.format = IMG_PNG};
    CHECK(img_encode(rgb, 4, 2, &eo, &png, &n, &e) == 0, "an RGB mask file");
    CHECK(inpaint_decode_mask(png, n, INPAINT_MASK_LUMA, "mask_image", 4, 2, &m, &e) == 0 && m[0] == 255 &&
              m[1] == 255 && m[2] == 0 && m[3] == 0 && m[4] == 0,
          "luminance > 128 is repaint (A1111's create_binary_mask)");
    free(m);
    m = NULL;
    /* resized by one sd_resample call (PIL's LANCZOS) of the binary plane */
    const uint8_t bin[8] = {255, 255, 0, 0, 0, 0, 0, 0};
    uint8_t *want = NULL;
    int ok = sd_resample(bin, 4, 2, 1, 8, 4, SD_FILTER_LANCZOS, &want, &e) == 0 &&
             inpaint_decode_mask(png, n, INPAINT_MASK_LUMA, "mask_image", 8, 4, &m, &e) == 0 && m;
    for (int i = 0; ok && i < 8 * 4; i++) ok &= m[i] == want[i];
    CHECK(ok && want[0] == 255 && want[31] == 0, "another size is resized: PIL's Lanczos of the binary plane");
    free(want);
    free(m);
    m = NULL;
    sd_err_clear(&e);
    CHECK(inpaint_decode_mask(png, n, INPAINT_MASK_ALPHA, "mask_image", 4, 2, &m, &e) == -1 && e.code == SD_EINVAL &&
              !strcmp(e.field, "mask_image") && strstr(e.msg, "alpha"),
          "OpenAI: a mask without alpha is refused naming it");
    free(png);
    sd_err_clear(&e);
    CHECK(inpaint_decode_mask((const uint8_t *)"GIF89a....", 10, INPAINT_MASK_LUMA, "mask", 4, 2, &m, &e) == -1 &&
              e.code == SD_EINVAL && !strcmp(e.field, "mask"),
          "a mask that is not an image is refused naming the field");

    /* RGBA 3x1: opaque white, transparent white, half */
    const uint8_t rgba[12] = {255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 200};
    png = rgba_png(rgba, 3, 1, &n);
    CHECK(png != NULL, "an RGBA mask file");
    sd_err_clear(&e);
    CHECK(inpaint_decode_mask(png, n, INPAINT_MASK_ALPHA, "mask", 3, 1, &m, &e) == 0 && m[0] == 0 && m[1] == 255 &&
              m[2] == 0,
          "OpenAI: only fully transparent pixels are repainted");
    free(m);
    CHECK(inpaint_decode_mask(png, n, INPAINT_MASK_LUMA, "mask", 3, 1, &m, &e) == 0 && m[0] == 255 && m[1] == 0 &&
              m[2] == 255,
          "A1111: an RGBA mask with transparency gives its alpha (> 128)");
    free(m);
    sd_err_clear(&e);
    CHECK(inpaint_decode_mask(png, n, INPAINT_MASK_ALPHA, "mask", 6, 2, &m, &e) == -1 && e.code == SD_EINVAL &&
              strstr(e.msg, "same size"),
          "OpenAI: a mask of another size than the image is refused");
    free(png);

    const uint8_t alpha[4] = {255, 0, 255, 255}, opaque[4] = {255, 255, 255, 255};
    CHECK(inpaint_mask_from_alpha(alpha, 2, 2, &m, &e) == 0 && m && m[1] == 255 && m[0] == 0,
          "OpenAI without a mask: the image's transparent pixels");
    free(m);
    CHECK(inpaint_mask_from_alpha(opaque, 2, 2, &m, &e) == 0 && !m, "an opaque image is plain img2img");
    CHECK(inpaint_mask_from_alpha(NULL, 2, 2, &m, &e) == 0 && !m, "no alpha: plain img2img");
}

static void test_set_mask(void)
{
    sd_request r;
    sd_request_defaults(&r, 1);
    r.gen.init_width = 4;
    r.gen.init_height = 2;
    sd_err e;
    sd_err_clear(&e);
    uint8_t *black = calloc(2, 1);
    CHECK(inpaint_set_mask(&r, black, 2, 1, "mask_image", &e) == -1 && e.code == SD_EINVAL &&
              !strcmp(e.field, "mask_image") && strstr(e.msg, "nothing to repaint") && !r.gen.mask,
          "an all-black mask: nothing to repaint, 400 naming the field");
    uint8_t *dot = calloc(64, 1);   /* 64x1, its last pixel white: resized to 4x2 it is grey, under 128 */
    dot[63] = 255;
    sd_err_clear(&e);
    CHECKF(inpaint_set_mask(&r, dot, 64, 1, "mask_image", &e) == -1 && e.code == SD_EINVAL &&
               !strcmp(e.field, "mask_image") && strstr(e.msg, "nothing to repaint") && strstr(e.msg, "fitted to the init image (4x2)") &&
               !r.gen.mask,
           "a mask whose white a downsizing averages below 128: nothing to repaint (the engine's rule)",
           "code %d: %s", e.code, e.msg);
    uint8_t *white = malloc(2);
    memset(white, 255, 2);
    sd_err_clear(&e);
    CHECK(inpaint_set_mask(&r, white, 2, 1, "mask_image", &e) == 0 && r.gen.mask && r.gen.mask[0] == 255 &&
              r.gen.mask[7] == 255,
          "an all-white mask is allowed and fitted to the init size");
    r.inpainting_mask_invert = 1;
    white = malloc(8);
    memset(white, 255, 8);
    sd_err_clear(&e);
    CHECK(inpaint_set_mask(&r, white, 4, 2, "mask", &e) == -1 && strstr(e.msg, "inverted"),
          "an all-white mask inverted has nothing to repaint");
    black = calloc(8, 1);
    CHECK(inpaint_set_mask(&r, black, 4, 2, "mask", &e) == 0 && r.gen.mask[3] == 255, "invert: black = repaint");
    sd_request_free(&r);
}

int main(void)
{
    test_luminance();
    test_blur();
    test_box();
    test_overlay();
    test_fill();
    test_files();
    test_set_mask();
    return t_done();
}
