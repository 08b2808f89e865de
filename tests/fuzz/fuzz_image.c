/* fuzz_image.c — libFuzzer target for the init-image decoding path
 * (src/image: sniffing, PNG / JPEG / WebP decoding with size limits before
 * allocation, the "parameters" reader, resizing to fit).  Small limits keep
 * each run fast; a decoded picture must respect them.
 * fuzz-sources: src/image/image.c src/image/png.c src/image/jpeg.c src/image/webp.c src/image/exif.c src/image/orient.c src/image/resize.c src/image/a1111.c src/base/err.c src/base/alloc.c
 * fuzz-libs: -lpng16 -ljpeg -lwebp -lz -lm */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
