/* test_vae_tiled.c — the tiled VAE decode (src/engine/models/vae.c, "tiled
 * decode") against the untiled one on tiny-sd1 at fp32, with stripes of a
 * few rows forced so that every layer has interior seams and every
 * GroupNorm's statistics span several stripes: PSNR >= 40 dB (and max abs
 * difference <= 1e-4) on a 24x16 latent, an odd 13x7 one and a batch of 2;
 * the tiled decode of the diffusers golden latent within the parity
 * tolerance; the auto rule's threshold; and every allocation failure of a
 * first tiled decode answering SD_ENOMEM (or the ops fault) without a
 * crash or a leak (the ASan tier checks the leaks).  Prints "metric vae_tiled/..." lines for
 * docs/ACCURACY.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/base/alloc.h"
#include "../../src/engine/models/vae.h"
#include "../../src/engine/ops/ops.h"

#define MODEL "tiny-sd1"

/* A latent of n values in about [-2.5, 2.5] / 0.18215, from seed. */
static float *latent(size_t n, unsigned seed)
{
    float *z = malloc(n * sizeof(float));
    for (size_t i = 0; z && i < n; i++) {
        float a = 0;
        for (int k = 0; k < 4; k++) { seed = seed * 1664525u + 1013904223u; a += (float)(seed >> 8) / 16777216.f - 0.5f; }
        z[i] = a * 1.7f / 0.18215f;
    }
    return z;
}

/* PSNR of b against a, images in [-1, 1] (peak-to-peak 2); *maxabs. */
static double psnr(const float *a, const float *b, size_t n, double *maxabs)
{
    double se = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        se += d * d;
        mx = fmax(mx, fabs(d));
    }
    *maxabs = mx;
    return se > 0 ? 10 * log10(4.0 / (se / n)) : 999.0;
}

/* Decode B latents of h x w with the mode and stripe height; NULL on failure. */
static float *decode(sd_vae *v, const float *z, int B, int h, int w, int mode, int rows)
{
    size_t n = (size_t)B * 3 * h * 8 * w * 8;
    float *img = malloc(n * sizeof(float));
    sd_err err;
    sd_err_clear(&err);
    vae_set_tiling(v, mode, rows);
    if (!img || vae_decode(v, z, B, h, w, img, &err) || ops_take_fault(vae_ops_ctx(v))) {
        fprintf(stderr, "decode %dx%dx%d mode %d: %s\n", B, h, w, mode, err.msg);
        free(img);
        return NULL;
    }
    return img;
}

/* Tiled (stripes of `rows`) against untiled on B seeded latents of h x w. */
static void check_size(sd_vae *v, int B, int h, int w, int rows)
{
    char name[160];
    size_t zn = (size_t)B * 4 * h * w, n = (size_t)B * 3 * h * 8 * w * 8;
    float *z = latent(zn, 7u + h * 131u + w);
    float *ref = decode(v, z, B, h, w, VAE_TILING_OFF, 0), *got = decode(v, z, B, h, w, VAE_TILING_ON, rows);
    double mx = 0, p = ref && got ? psnr(ref, got, n, &mx) : 0;
    if (ref && got) {
        printf("metric vae_tiled/%s/%dx%dx%d_stripe%d psnr_db %.1f tol 40\n", MODEL, B, h, w, rows, p);
        printf("metric vae_tiled/%s/%dx%dx%d_stripe%d maxabs %.3g tol 0.0001\n", MODEL, B, h, w, rows, mx);
    }
    snprintf(name, sizeof name, "%d x %dx%d latent, stripes of %d rows: PSNR >= 40 dB, maxabs <= 1e-4", B, h, w, rows);
    CHECKF(ref && got && p >= 40 && mx <= 1e-4, name, "psnr %.2f maxabs %.3g", p, mx);
    if (B == 2 && got) {
        /* each image of the batch is the image decoded alone, bit for bit */
        float *one = decode(v, z + zn / 2, 1, h, w, VAE_TILING_ON, rows);
        snprintf(name, sizeof name, "batch of 2 tiled: image 1 = its own tiled decode");
        CHECKF(one && !memcmp(one, got + n / 2, n / 2 * sizeof(float)), name, "%s", one ? "differs" : "failed");
        free(one);
    }
    free(z); free(ref); free(got);
}

/* The golden latent_8x6 decoded tiled (stripes of 2 latent rows) against
 * diffusers' decoded_8x6. */
static void check_golden(sd_vae *v)
{
    npy lat, dec;
    if (parity_golden(MODEL, "vae", "latent_8x6", &lat) | parity_golden(MODEL, "vae", "decoded_8x6", &dec)) {
        CHECK(0, "goldens load");
        return;
    }
    for (size_t i = 0; i < lat.n; i++) lat.f[i] /= vae_scaling_factor(v);
    float *got = decode(v, lat.f, 1, 8, 6, VAE_TILING_ON, 2);
    double d = got ? npy_maxdiff(got, dec.f, dec.n) : 1e9;
    printf("metric vae_tiled/%s/decoded_8x6_stripe2 maxabs %.3g tol 0.0001\n", MODEL, d);
    CHECKF(d <= 1e-4, "golden decoded_8x6 tiled (stripes of 2 rows) within 1e-4", "maxabs %g", d);
    free(got);
    npy_free(&lat); npy_free(&dec);
}

static void check_auto(sd_vae *v)
{
    vae_set_tiling(v, VAE_TILING_AUTO, 0);
    CHECK(!vae_tiled(v, 128, 128) && vae_tiled(v, 128, 129) && vae_tiled(v, 256, 256),
          "auto: 1024x1024 untiled, anything larger tiled");
    vae_set_tiling(v, VAE_TILING_OFF, 0);
    CHECK(!vae_tiled(v, 256, 256), "off: 2048x2048 untiled");
    vae_set_tiling(v, VAE_TILING_ON, 0);
    CHECK(vae_tiled(v, 1, 1), "on: 8x8 tiled");
}

/* Each allocation of a first tiled decode failed in turn (a failed
 * decode keeps nothing it grew, so the next try allocates the same again):
 * SD_ENOMEM or the ops fault, never a crash; then the decode succeeds. */
static void check_oom(sd_vae *v)
{
    const int h = 12, wd = 10;
    float *z = latent((size_t)4 * h * wd, 99u), *img = malloc((size_t)3 * h * 8 * wd * 8 * sizeof(float));
    int bad = 0, fails = 0, k;
    vae_set_tiling(v, VAE_TILING_ON, 3);
    for (k = 1; k < 400; k++) {
        sd_err err;
        sd_err_clear(&err);
        sd_alloc_fail_at(k);
        int rc = vae_decode(v, z, 1, h, wd, img, &err), fault = ops_take_fault(vae_ops_ctx(v));
        int hit = sd_alloc_failed();
        sd_alloc_fail_at(0);
        if (!hit) { bad += rc != 0 || fault; break; }
        fails++;
        if (!((rc == -1 && err.code == SD_ENOMEM) || (rc == 0 && fault))) {
            fprintf(stderr, "allocation %d failed: rc %d code %d fault %d\n", k, rc, err.code, fault);
            bad++;
        }
    }
    CHECKF(!bad && fails > 0 && k < 400, "every allocation failure of a tiled decode is SD_ENOMEM",
           "%d of %d failures mishandled", bad, fails);
    free(z); free(img);
}

int main(void)
{
    if (!parity_begin()) return t_done();
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = parity_open(MODEL, "diffusers", "models/tiny-sd1");
    sd_vae *v = w ? vae_load(w, NULL, &err) : NULL;
    CHECKF(v != NULL, "tiny-sd1 VAE loads", "%s", err.msg);
    if (!v) { sdw_close(w); return t_done(); }
    vae_set_precision(v, OPS_FP32);
    check_oom(v);   /* first: nothing grown yet */
    check_size(v, 1, 24, 16, 4);
    check_size(v, 1, 13, 7, 2);
    check_size(v, 2, 16, 12, 3);
    check_golden(v);
    check_auto(v);
    vae_free(v);
    sdw_close(w);
    return t_done();
}
