/* fuzz_image.c — libFuzzer target for the init-image decoding path
 * (src/image: sniffing, PNG / JPEG / WebP decoding with size limits before
 * allocation, the "parameters" reader, resizing to fit), and the inpainting
 * mask path (image/mask.c: alpha plane, A1111's and OpenAI's rules, resize,
 * blur, crop box, fill, overlay).  Small limits keep each run fast; a
 * decoded picture must respect them.
 * fuzz-sources: src/image/mask.c src/base/resample.c src/image/image.c src/image/png.c src/image/jpeg.c src/image/webp.c src/image/exif.c src/image/orient.c src/image/resize.c src/image/a1111.c src/base/err.c src/base/alloc.c
 * fuzz-libs: -lpng16 -ljpeg -lwebp -lz -lm */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/image/image.h"

/* The input as a mask for a 24x16 image, both rules, then A1111's steps. */
static void mask_path(const uint8_t *data, size_t size)
{
    enum { W = 24, H = 16 };
    for (int openai = 0; openai < 2; openai++) {
        sd_err err;
        sd_err_clear(&err);
        uint8_t *m = NULL;
        if (img_mask_decode(data, size, openai, "mask", W, H, &m, &err)) {
            if (!err.code || m) abort();
            continue;
        }
        uint8_t rgb[W * H * 3], orig[W * H * 3];
        for (int i = 0; i < W * H * 3; i++) rgb[i] = orig[i] = (uint8_t)(i * 7);
        int box[4];
        if (img_mask_blur(m, W, H, 2, 3, &err) == 0 && img_mask_box(m, W, H, 4, box)) {
            img_box_expand(box, W, H, W, H);
            if (box[0] < 0 || box[1] < 0 || box[2] > W || box[3] > H || box[2] <= box[0] || box[3] <= box[1]) abort();
        }
        if (img_mask_fill(rgb, m, W, H, &err) == 0) img_mask_overlay(rgb, orig, m, W * H);
        for (int i = 0; i < W * H; i++)
            if (!m[i] && memcmp(rgb + 3 * i, orig + 3 * i, 3)) abort();   /* unmasked = the original */
        free(m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mask_path(data, size);
    sd_err err;
    sd_err_clear(&err);
    img_decode_opts o = {.max_side = 512, .max_pixels = 512 * 512, .field = "init_image"};
    img_rgb im;
    if (img_decode(data, size, &o, &im, &err) == 0) {
        if (im.width < 1 || im.height < 1 || im.width > 512 || im.height > 512 || !im.px) abort();
        img_fit_within(&im, 64, &err);
        img_rgb_free(&im);
    } else if (!err.code) {
        abort();
    }
    char *text = NULL;
    sd_err_clear(&err);
    if (img_read_parameters(data, size, &text, &err) == 0) free(text);
    return 0;
}
