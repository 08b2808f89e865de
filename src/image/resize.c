/* resize.c — fitting an init image within the server's limits: scaled down
 * with PIL's Lanczos (base/resample.c), the filter A1111 resizes init images
 * with (modules/images.py resize_image, "Just resize"). */
#include "image.h"
#include "../base/resample.h"

#include <stdlib.h>

int img_fit_within(img_rgb *im, int max_side, sd_err *err)
{
    if (max_side <= 0) return sd_errf(err, SD_EINVAL, "image", "max side must be positive");
    if (im->width <= max_side && im->height <= max_side) return 0;
    int w, h;
    if (im->width >= im->height) {
        w = max_side;
        h = (int)((double)im->height * max_side / im->width + 0.5);
    } else {
        h = max_side;
        w = (int)((double)im->width * max_side / im->height + 0.5);
    }
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    uint8_t *px;
    if (sd_resample(im->px, im->width, im->height, 3, w, h, SD_FILTER_LANCZOS, &px, err)) return -1;
    free(im->px);
    im->px = px;
    im->width = w;
    im->height = h;
    return 1;
}
