/* vaetile.c — the tiled VAE decode's driver for bench/README.md: loads a
 * checkpoint's VAE, decodes one latent of fixed pseudo-random values
 * (N(0,1)-ish / scaling factor) at the given image size with tiling off, on,
 * or both, and prints the time of each run (stderr), the fastest and, for both, the PSNR and max
 * abs difference of tiled against untiled.  Run one mode per process under
 * /usr/bin/time -v to read each one's peak RSS.
 *
 *   build/tools/vaetile MODEL SIZE [off|on|both] [stripe_rows] [repeats] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/engine/models/vae.h"
#include "../src/engine/ops/ops.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Decode z with the tiling mode reps times; the fastest run's seconds into *sec. */
static float *decode(sd_vae *v, const float *z, int h, int w, int mode, int rows, int reps, double *sec)
{
    size_t n = (size_t)3 * h * 8 * w * 8;
    float *img = malloc(n * sizeof(float));
    if (!img) return NULL;
    *sec = 1e30;
    vae_set_tiling(v, mode, rows);
    for (int r = 0; r < reps; r++) {
        sd_err err;
        sd_err_clear(&err);
        double t0 = now();
        if (vae_decode(v, z, 1, h, w, img, &err) || ops_take_fault(vae_ops_ctx(v))) {
            fprintf(stderr, "vaetile: decode failed: %s\n", err.msg);
            free(img);
            return NULL;
        }
        double t = now() - t0;
        fprintf(stderr, "vaetile: run %d: %.2f s\n", r + 1, t);
        if (t < *sec) *sec = t;
    }
    return img;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: vaetile MODEL SIZE [off|on|both] [stripe_rows] [repeats]\n");
        return 2;
    }
    int size = atoi(argv[2]), rows = argc > 4 ? atoi(argv[4]) : 0, reps = argc > 5 ? atoi(argv[5]) : 1;
    const char *mode = argc > 3 ? argv[3] : "both";
    if (reps < 1 || reps > 16) reps = 1;
    sd_err err;
    sd_err_clear(&err);
    /* only the VAE's tensors: the UNet's would add to the peak RSS */
    sd_weights *wt = sdw_open_vae(argv[1], &err);
    sd_vae *v = wt ? vae_load(wt, NULL, &err) : NULL;
    if (!v) { fprintf(stderr, "vaetile: %s\n", err.msg); sdw_close(wt); return 1; }
    vae_set_precision(v, OPS_FP32);
    int h = size / vae_scale(v), w = h, Z = vae_latent_channels(v);
    float *z = malloc((size_t)Z * h * w * sizeof(float));
    unsigned s = 12345;
    for (size_t i = 0; z && i < (size_t)Z * h * w; i++) {
        float a = 0;
        for (int k = 0; k < 4; k++) { s = s * 1664525u + 1013904223u; a += (float)(s >> 8) / 16777216.f - 0.5f; }
        z[i] = a * 1.7f / vae_scaling_factor(v);
    }
    double t_off = 0, t_on = 0;
    float *a = NULL, *b = NULL;
    if (z && strcmp(mode, "on")) a = decode(v, z, h, w, VAE_TILING_OFF, 0, reps, &t_off);
    if (z && strcmp(mode, "off")) b = decode(v, z, h, w, VAE_TILING_ON, rows, reps, &t_on);
    if (a) printf("vaetile %dx%d untiled %.2f s\n", size, size, t_off);
    if (b) printf("vaetile %dx%d tiled %.2f s (stripe rows %d)\n", size, size, t_on, rows);
    size_t nc, cb, wb;
    ops_weights_stats(vae_ops_ctx(v), &nc, &cb, &wb);
    printf("vaetile weight copies %zu, %zu MB (Winograd %zu MB)\n", nc, cb >> 20, wb >> 20);
    if (a && b) {
        size_t n = (size_t)3 * size * size;
        double se = 0, mx = 0;
        for (size_t i = 0; i < n; i++) {
            double d = (double)a[i] - b[i];
            se += d * d;
            if (fabs(d) > mx) mx = fabs(d);
        }
        /* images in [-1, 1]: peak-to-peak 2 */
        double psnr = se > 0 ? 10 * log10(4.0 / (se / n)) : INFINITY;
        printf("vaetile %dx%d psnr %.2f dB maxabs %.3g\n", size, size, psnr, mx);
    }
    free(a); free(b); free(z);
    vae_free(v);
    sdw_close(wt);
    return 0;
}
