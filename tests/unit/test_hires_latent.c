/* test_hires_latent.c — hires fix's latent upscalers (engine/hires.c)
 * against torch's F.interpolate(antialias=False) computed here by hand in
 * double: "bilinear" with align_corners=False (src = (dst + 0.5)·in/out −
 * 0.5, clamped at 0; the upper neighbour clamped to the last index) and
 * "nearest-exact" (src = min(floor((dst + 0.5)·in/out), in − 1)); on a
 * small 4-channel latent, 2x, 1.5x and an odd non-integer ratio per axis;
 * plus two values worked out on paper. */
#include <math.h>
#include <stdlib.h>

#include "t.h"
#include "../../src/engine/pipeline.h"

static double bilinear_at(const float *p, int h, int w, int oh, int ow, int y, int x)
{
    double sy = (y + 0.5) * h / oh - 0.5, sx = (x + 0.5) * w / ow - 0.5;
    if (sy < 0) sy = 0;
    if (sx < 0) sx = 0;
    int y0 = (int)floor(sy), x0 = (int)floor(sx);
    int y1 = y0 + 1 < h ? y0 + 1 : h - 1, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
    double ly = sy - y0, lx = sx - x0;
    return (1 - ly) * ((1 - lx) * p[y0 * w + x0] + lx * p[y0 * w + x1]) +
           ly * ((1 - lx) * p[y1 * w + x0] + lx * p[y1 * w + x1]);
}

static int nearest_exact(int dst, int in, int out)
{
    int s = (int)floor((dst + 0.5) * in / out);
    return s < in - 1 ? s : in - 1;
}

static void one_case(int C, int h, int w, int oh, int ow)
{
    float *in = malloc(sizeof(float) * C * h * w), *out = malloc(sizeof(float) * C * oh * ow);
    unsigned s = 12345u + (unsigned)(h * 31 + ow);
    for (int i = 0; i < C * h * w; i++) {
        s = s * 1664525u + 1013904223u;
        in[i] = (float)((s >> 8) % 20001) / 10000.0f - 1.0f;
    }
    char name[128];
    double worst = 0;
    sd_hr_upscale_latent(SD_HR_LATENT, in, C, h, w, out, oh, ow);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                double want = bilinear_at(in + (size_t)c * h * w, h, w, oh, ow, y, x);
                double d = fabs(out[((size_t)c * oh + y) * ow + x] - want);
                if (d > worst) worst = d;
            }
    snprintf(name, sizeof name, "latent bilinear %dx%d -> %dx%d equals torch's formula", h, w, oh, ow);
    CHECKF(worst < 1e-5, name, "max |diff| %g", worst);
    int bad = 0;
    sd_hr_upscale_latent(SD_HR_LATENT_NEAREST_EXACT, in, C, h, w, out, oh, ow);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                bad += out[((size_t)c * oh + y) * ow + x] !=
                       in[((size_t)c * h + nearest_exact(y, h, oh)) * w + nearest_exact(x, w, ow)];
    snprintf(name, sizeof name, "latent nearest-exact %dx%d -> %dx%d copies torch's source cells", h, w, oh, ow);
    CHECKF(bad == 0, name, "%d values differ", bad);
    free(in);
    free(out);
}

/* A 1x2 row [0, 1] to 1x4, by hand: src x = (x + 0.5)/2 − 0.5 = −0.25 (→ 0),
 * 0.25, 0.75, 1.25 (upper neighbour clamped): 0, 0.25, 0.75, 1; nearest-exact
 * floor((x + 0.5)/2) = 0, 0, 1, 1. */
static void on_paper(void)
{
    const float in[2] = {0, 1};
    float out[4];
    sd_hr_upscale_latent(SD_HR_LATENT, in, 1, 1, 2, out, 1, 4);
    CHECKF(out[0] == 0 && out[1] == 0.25f && out[2] == 0.75f && out[3] == 1, "bilinear [0 1] -> [0 .25 .75 1]",
           "%g %g %g %g", out[0], out[1], out[2], out[3]);
    sd_hr_upscale_latent(SD_HR_LATENT_NEAREST_EXACT, in, 1, 1, 2, out, 1, 4);
    CHECKF(out[0] == 0 && out[1] == 0 && out[2] == 1 && out[3] == 1, "nearest-exact [0 1] -> [0 0 1 1]",
           "%g %g %g %g", out[0], out[1], out[2], out[3]);
}

int main(void)
{
    on_paper();
    one_case(4, 8, 8, 16, 16);   /* hr_scale 2 of a 64x64 picture */
    one_case(4, 8, 6, 12, 9);    /* 1.5x */
    one_case(4, 7, 5, 17, 13);   /* odd ratios, both axes */
    one_case(4, 9, 9, 9, 9);     /* same size: a copy */
    return t_done();
}
