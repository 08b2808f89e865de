/* test_vae.c — parity of the KL-VAE decoder and encoder
 * (src/engine/models/vae.c) with the diffusers v0.25.1 goldens in
 * goldens/<model>/vae/, for tiny-sd1 and tiny-sd2 loaded from the diffusers
 * folders and the fp16 single files.  Prints "metric vae/<model>/<source>/
 * <output> maxabs X tol 1e-4" lines for docs/ACCURACY.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/models/vae.h"
#include "../../src/engine/ops/ops.h"

#define TOL 1e-4

static void check_out(const char *model, const char *src, const char *out, int rc, const sd_err *err,
                      const float *got, const float *want, size_t n)
{
    char name[256];
    double d = rc ? 1e9 : npy_maxdiff(got, want, n);
    if (!rc) printf("metric vae/%s/%s/%s maxabs %.3g tol %g\n", model, src, out, d, TOL);
    snprintf(name, sizeof name, "%s/%s: %s", model, src, out);
    CHECKF(rc == 0 && d <= TOL, name, "rc %d maxabs %g %s", rc, d, err->msg);
}

static int load_golden(const char *model, const char *file, npy *a)
{
    return parity_golden(model, "vae", file, a);
}

static void check_model(const char *model, const char *src, const char *path)
{
    char name[256];
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = parity_open(model, src, path);
    if (!w) return;
    sd_vae *v = vae_load(w, NULL, &err);
    snprintf(name, sizeof name, "%s/%s: vae_load", model, src);
    CHECKF(v != NULL, name, "%s", err.msg);
    if (!v) { sdw_close(w); return; }
    snprintf(name, sizeof name, "%s/%s: config from shapes", model, src);
    CHECKF(vae_scale(v) == 8 && vae_latent_channels(v) == 4 && vae_image_channels(v) == 3 &&
           vae_has_encoder(v) && fabsf(vae_scaling_factor(v) - 0.18215f) < 1e-7f, name,
           "scale %d latent ch %d image ch %d encoder %d scaling %g", vae_scale(v), vae_latent_channels(v),
           vae_image_channels(v), vae_has_encoder(v), vae_scaling_factor(v));

    npy lat, dec, img, mom, mean, logvar, stdv;
    int bad = load_golden(model, "latent_8x6", &lat) | load_golden(model, "decoded_8x6", &dec) |
              load_golden(model, "image_64x48", &img) | load_golden(model, "enc_moments", &mom) |
              load_golden(model, "enc_mean", &mean) | load_golden(model, "enc_logvar", &logvar) |
              load_golden(model, "enc_std", &stdv);
    snprintf(name, sizeof name, "%s/%s: goldens load", model, src);
    CHECK(!bad, name);
    if (bad) { vae_free(v); sdw_close(w); return; }

    /* Decode latent/0.18215, alone and as the first of a batch of 2. */
    size_t zn = lat.n, in = dec.n;
    float *z = malloc(2 * zn * sizeof(float)), *out = malloc(2 * in * sizeof(float));
    for (size_t i = 0; i < zn; i++) {
        z[i] = lat.f[i] / vae_scaling_factor(v);
        z[zn + i] = -0.5f * z[i];
    }
    sd_err_clear(&err);
    int rc = vae_decode(v, z, 1, 8, 6, out, &err);
    check_out(model, src, "decoded_8x6", rc, &err, out, dec.f, in);
    sd_err_clear(&err);
    rc = vae_decode(v, z, 2, 8, 6, out, &err);
    check_out(model, src, "decoded_8x6_batch2_row0", rc, &err, out, dec.f, in);
    float *one = malloc(in * sizeof(float));
    sd_err_clear(&err);
    rc |= vae_decode(v, z + zn, 1, 8, 6, one, &err);
    snprintf(name, sizeof name, "%s/%s: batch row 1 = its own decode", model, src);
    CHECKF(rc == 0 && npy_maxdiff(out + in, one, in) == 0.0, name, "rc %d maxabs %g", rc,
           rc ? 0.0 : npy_maxdiff(out + in, one, in));

    /* Encode: raw moments, then the clamped posterior. */
    float *m = malloc(mom.n * sizeof(float)), *mu = malloc(mean.n * sizeof(float)),
          *sd = malloc(stdv.n * sizeof(float)), *lv = malloc(logvar.n * sizeof(float));
    sd_err_clear(&err);
    rc = vae_encode_moments(v, img.f, 1, 64, 48, m, &err);
    check_out(model, src, "enc_moments", rc, &err, m, mom.f, mom.n);
    for (size_t i = 0; i < logvar.n; i++) {
        float l = m[mean.n + i];
        lv[i] = l < -30.0f ? -30.0f : l > 20.0f ? 20.0f : l;
    }
    check_out(model, src, "enc_logvar", rc, &err, lv, logvar.f, logvar.n);
    sd_err_clear(&err);
    rc = vae_encode(v, img.f, 1, 64, 48, mu, sd, &err);
    check_out(model, src, "enc_mean", rc, &err, mu, mean.f, mean.n);
    check_out(model, src, "enc_std", rc, &err, sd, stdv.f, stdv.n);

    /* Bad sizes are errors, not crashes. */
    sd_err_clear(&err);
    rc = vae_encode(v, img.f, 1, 60, 48, mu, sd, &err);
    snprintf(name, sizeof name, "%s/%s: encode of a height not a multiple of 8 rejected", model, src);
    CHECKF(rc == -1 && err.code == SD_EINVAL, name, "rc %d msg %s", rc, err.msg);
    sd_err_clear(&err);
    rc = vae_decode(v, z, 1, 0, 6, out, &err);
    snprintf(name, sizeof name, "%s/%s: decode of an empty latent rejected", model, src);
    CHECKF(rc == -1 && err.code == SD_EINVAL, name, "rc %d msg %s", rc, err.msg);

    free(z); free(out); free(one); free(m); free(mu); free(sd); free(lv);
    npy_free(&lat); npy_free(&dec); npy_free(&img); npy_free(&mom);
    npy_free(&mean); npy_free(&logvar); npy_free(&stdv);
    vae_free(v);
    sdw_close(w);
}

int main(void)
{
    if (!parity_begin()) return t_done();
    check_model("tiny-sd1", "diffusers", "models/tiny-sd1");
    check_model("tiny-sd2", "diffusers", "models/tiny-sd2");
    check_model("tiny-sd1", "single-fp16", "models/tiny-sd1-fp16.safetensors");
    check_model("tiny-sd2", "single-fp16", "models/tiny-sd2-fp16.safetensors");
    return t_done();
}
