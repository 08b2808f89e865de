/* test_philox.c — sd_philox_normal reproduces torch.randn(device="cuda") for
 * every case of reference/philox/manifest.json (seeds up to 2^52, offsets 0
 * and 1), plus properties that need no reference: slices are independent of
 * the draw length and the stream looks standard normal. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "t.h"
#include "../../src/engine/sd.h"

static void check_reference(void)
{
    json_error_t je;
    json_t *root = json_load_file(t_ref("philox/manifest.json"), 0, &je);
    CHECKF(root != NULL, "philox manifest loads", "%s", je.text);
    if (!root) return;
    json_t *cases = json_object_get(root, "cases");
    size_t k; json_t *c;
    double worst = 0; int ncases = 0;
    json_array_foreach(cases, k, c) {
        const char *file = json_string_value(json_object_get(c, "file"));
        json_t *js = json_object_get(c, "seed");
        uint64_t seed = (uint64_t)json_integer_value(js);
        uint64_t off = (uint64_t)json_integer_value(json_object_get(c, "offset"));
        char rel[256];
        snprintf(rel, sizeof rel, "philox/%s", file ? file : "?");
        npy ref;
        char name[300];
        snprintf(name, sizeof name, "philox %s", rel);
        if (npy_load(t_ref(rel), &ref)) { CHECKF(0, name, "cannot load"); continue; }
        float *got = malloc(ref.n * sizeof *got);
        sd_philox_normal(seed, off, got, ref.n);
        double d = npy_maxdiff(got, ref.f, ref.n);
        if (d > worst) worst = d;
        ncases++;
        CHECKF(d <= 1e-6, name, "max abs err %.3g (seed %llu offset %llu)", d, (unsigned long long)seed,
               (unsigned long long)off);
        free(got);
        npy_free(&ref);
    }
    json_decref(root);
    CHECKF(ncases >= 24, "philox all manifest cases present", "%d cases", ncases);
    printf("metric philox/all max_abs_err %.3g tol 1e-6\n", worst);
}

static void check_properties(void)
{
    /* Element i depends only on (seed, offset, i): a prefix equals a longer draw's prefix. */
    float a[100], b[37];
    sd_philox_normal(1234, 5, a, 100);
    sd_philox_normal(1234, 5, b, 37);
    CHECK(!memcmp(a, b, sizeof b), "philox prefix independent of length");
    float c[100];
    sd_philox_normal(1234, 6, c, 100);
    CHECK(memcmp(a, c, sizeof c) != 0, "philox offset changes the stream");
    sd_philox_normal(1235, 5, c, 100);
    CHECK(memcmp(a, c, sizeof c) != 0, "philox seed changes the stream");
    /* Moments of 2^16 draws: mean ~ 0, variance ~ 1. */
    size_t n = 1 << 16;
    float *x = malloc(n * sizeof *x);
    sd_philox_normal(42, 0, x, n);
    double s = 0, s2 = 0; int finite = 1;
    for (size_t i = 0; i < n; i++) { s += x[i]; s2 += (double)x[i] * x[i]; finite &= isfinite(x[i]) != 0; }
    double mean = s / n, var = s2 / n - mean * mean;
    CHECK(finite, "philox values finite");
    CHECKF(fabs(mean) < 0.02 && fabs(var - 1) < 0.03, "philox standard normal moments", "mean %g var %g", mean, var);
    free(x);
}

int main(void)
{
    if (t_have_ref()) check_reference();
    else CHECKF(0, "philox reference present", "no reference folder (set SD_REF)");
    check_properties();
    return t_done();
}
