/* test_sdxl_vae.c — the SDXL VAE (vae.c) against the diffusers v0.25.1
 * goldens in goldens/tiny-sdxl-s/vae/, from the diffusers folder (F32) and
 * the original-naming single file (F16): decoded_8x12 = decode(latent /
 * 0.13025), the encoder's moments, mean, std and enc_mean_scaled = mean ·
 * 0.13025.  And where the scaling factor comes from: vae/config.json, the
 * sgm config's top-level scale_factor, else the family default of the
 * checkpoint (family.h: SDXL 0.13025, SD1 0.18215) for a single file with
 * no config beside it.  Prints "metric vae/tiny-sdxl-s/<source>/<output>
 * maxabs X tol 1e-4" for docs/ACCURACY.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/models/vae.h"

#define TOL 1e-4
#define MODEL "tiny-sdxl-s"

static void check_out(const char *src, const char *out, int rc, const sd_err *err, const float *got,
                      const float *want, size_t n)
{
    char name[256];
    double d = rc ? 1e9 : npy_maxdiff(got, want, n);
    if (!rc) printf("metric vae/" MODEL "/%s/%s maxabs %.3g tol %g\n", src, out, d, TOL);
    snprintf(name, sizeof name, MODEL "/%s: %s", src, out);
    CHECKF(rc == 0 && d <= TOL, name, "rc %d maxabs %g %s", rc, d, err->msg);
}

static int golden(const char *file, npy *a) { return parity_golden(MODEL, "vae", file, a); }

static void check_model(const char *src, const char *path)
{
    char name[256];
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = parity_open(MODEL, src, path);
    if (!w) return;
    sd_vae *v = vae_load(w, NULL, &err);
    snprintf(name, sizeof name, MODEL "/%s: vae_load, scaling 0.13025", src);
    CHECKF(v && vae_scale(v) == 8 && vae_latent_channels(v) == 4 && vae_has_encoder(v) &&
           fabsf(vae_scaling_factor(v) - 0.13025f) < 1e-7f, name, "%s scaling %g", err.msg,
           v ? vae_scaling_factor(v) : 0.f);
    if (!v) { sdw_close(w); return; }
    npy lat, dec, img, mom, mean, stdv, scaled;
    int bad = golden("latent_8x12", &lat) | golden("decoded_8x12", &dec) | golden("image_64x96", &img) |
              golden("enc_moments", &mom) | golden("enc_mean", &mean) | golden("enc_std", &stdv) |
              golden("enc_mean_scaled", &scaled);
    snprintf(name, sizeof name, MODEL "/%s: goldens load", src);
    CHECK(!bad, name);
    if (!bad) {
        const float s = vae_scaling_factor(v);
        float *z = malloc(sizeof(float) * lat.n), *out = malloc(sizeof(float) * dec.n);
        float *m = malloc(sizeof(float) * mom.n), *mu = malloc(sizeof(float) * mean.n);
        float *sd = malloc(sizeof(float) * stdv.n);
        for (size_t i = 0; i < lat.n; i++) z[i] = lat.f[i] / s;
        int rc = vae_decode(v, z, 1, 8, 12, out, &err);
        check_out(src, "decoded_8x12", rc, &err, out, dec.f, dec.n);
        rc = vae_encode_moments(v, img.f, 1, 64, 96, m, &err);
        check_out(src, "enc_moments", rc, &err, m, mom.f, mom.n);
        rc = vae_encode(v, img.f, 1, 64, 96, mu, sd, &err);
        check_out(src, "enc_mean", rc, &err, mu, mean.f, mean.n);
        check_out(src, "enc_std", rc, &err, sd, stdv.f, stdv.n);
        for (size_t i = 0; i < mean.n; i++) mu[i] *= s;
        check_out(src, "enc_mean_scaled", rc, &err, mu, scaled.f, scaled.n);
        free(z); free(out); free(m); free(mu); free(sd);
    }
    npy_free(&lat); npy_free(&dec); npy_free(&img); npy_free(&mom);
    npy_free(&mean); npy_free(&stdv); npy_free(&scaled);
    vae_free(v);
    sdw_close(w);
}

/* The scaling factor of `target` opened through a symlink in dir (so no
 * LDM config sits beside it unless `cfg` is written there). */
static float scaling_via_link(const char *dir, const char *target, const char *cfg)
{
    char link[512], cpath[512];
    snprintf(link, sizeof link, "%s/model.safetensors", dir);
    snprintf(cpath, sizeof cpath, "%s/model.ldm_config.json", dir);
    unlink(link);
    unlink(cpath);
    if (symlink(t_ref(target), link)) return -1;
    if (cfg) {
        FILE *f = fopen(cpath, "w");
        if (!f) return -1;
        fputs(cfg, f);
        fclose(f);
    }
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = sdw_open(link, &err);
    sd_vae *v = w ? vae_load(w, NULL, &err) : NULL;
    float s = v ? vae_scaling_factor(v) : -1;
    if (!v) fprintf(stderr, "%s: %s\n", target, err.msg);
    vae_free(v);
    sdw_close(w);
    unlink(link);
    unlink(cpath);
    return s;
}

static void check_scaling_sources(void)
{
    char dir[] = "/tmp/sdserve_sdxl_vae_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "temp dir"); return; }
    float s = scaling_via_link(dir, "models/tiny-sdxl-s-fp16.safetensors", NULL);
    CHECKF(fabsf(s - 0.13025f) < 1e-7f, "SDXL single file without a config: the family's 0.13025", "got %g", s);
    s = scaling_via_link(dir, "models/tiny-sd1-fp16.safetensors", NULL);
    CHECKF(fabsf(s - 0.18215f) < 1e-7f, "SD1 single file without a config: the family's 0.18215", "got %g", s);
    s = scaling_via_link(dir, "models/tiny-sdxl-s-fp16.safetensors", "{\"network_config\": {}, \"scale_factor\": 0.5}");
    CHECKF(s == 0.5f, "sgm config: its top-level scale_factor wins over the family's", "got %g", s);
    s = scaling_via_link(dir, "models/tiny-sdxl-s-fp16.safetensors", "{\"vae\": {\"scale_factor\": 0.25}}");
    CHECKF(s == 0.25f, "LDM config: vae.scale_factor wins over the family's", "got %g", s);
    rmdir(dir);
}

int main(void)
{
    if (!parity_begin()) return t_done();
    check_model("diffusers", "models/tiny-sdxl-s");
    check_model("single", "models/tiny-sdxl-s-fp16.safetensors");
    check_scaling_sources();
    return t_done();
}
