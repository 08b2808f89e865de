/* imginfo.c — decodes an image file with sdserve's decoders and prints
 * "<format> <width>x<height>" on the first line, then the embedded
 * generation parameters (PNG "parameters" text / EXIF UserComment) verbatim.
 * Used by tests/storage/test_s3.sh to check what the server wrote. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../src/image/image.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: imginfo FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        fprintf(stderr, "imginfo: cannot open %s\n", argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = n > 0 ? malloc((size_t)n) : NULL;
    if (!d || fread(d, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "imginfo: cannot read %s\n", argv[1]);
        fclose(f);
        free(d);
        return 1;
    }
    fclose(f);
    sd_err err;
    sd_err_clear(&err);
    img_rgb im = {0};
    char *params = NULL;
    int rc = img_decode(d, (size_t)n, NULL, &im, &err);
    if (!rc) rc = img_read_parameters(d, (size_t)n, &params, &err);
    if (!rc) printf("%s %dx%d\n%s", img_format_name(img_sniff(d, (size_t)n)), im.width, im.height, params ? params : "");
    else fprintf(stderr, "imginfo: %s\n", err.msg);
    free(params);
    img_rgb_free(&im);
    free(d);
    return rc ? 1 : 0;
}
