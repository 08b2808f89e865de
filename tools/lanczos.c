/* lanczos.c — resizes a picture with sdserve's Lanczos (base/resample.h,
 * PIL's LANCZOS) and writes a PNG: `lanczos IN WIDTH HEIGHT OUT`.  The hires
 * fix test (tests/http/test_hires.sh) resizes a first pass with it to make
 * the img2img request a Lanczos hires run must equal (no PIL on the
 * machine). */
#include <stdio.h>
#include <stdlib.h>

#include "t.h"
#include "../src/base/resample.h"
#include "../src/image/image.h"

static int write_file(const char *path, const uint8_t *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(d, 1, n, f) == n;
    if (f && fclose(f)) ok = 0;
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: lanczos IN WIDTH HEIGHT OUT.png\n");
        return 2;
    }
    int dw = atoi(argv[2]), dh = atoi(argv[3]);
    size_t n = 0;
    unsigned char *data = t_slurp(argv[1], &n);
    img_rgb im = {0};
    uint8_t *big = NULL, *png = NULL;
    size_t png_len = 0;
    sd_err err;
    sd_err_clear(&err);
    int rc = !data ? sd_errf(&err, SD_EIO, "IN", "cannot read %s", argv[1])
                   : img_decode(data, n, NULL, &im, &err);
    if (!rc) rc = sd_resample(im.px, im.width, im.height, 3, dw, dh, SD_FILTER_LANCZOS, &big, &err);
    img_encode_opts eo = {.format = IMG_PNG};
    if (!rc) rc = img_encode(big, dw, dh, &eo, &png, &png_len, &err);
    if (!rc && write_file(argv[4], png, png_len)) rc = sd_errf(&err, SD_EIO, "OUT", "cannot write %s", argv[4]);
    if (rc) fprintf(stderr, "lanczos: %s\n", err.msg);
    free(data);
    free(im.px);
    free(big);
    free(png);
    return rc ? 1 : 0;
}
