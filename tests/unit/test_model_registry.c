/* test_model_registry.c — several models (src/jobs/models.c, sd.h
 * sd_probe_model): the registry's least-recently-used unloading over
 * max_loaded, never the model a job runs on nor one an HTTP thread has
 * pinned, unknown names and failed loads naming "model", the folder scan;
 * run on a fake loader.  Then the probe on the reference's tiny models
 * (header only) agrees with what a real load says: family, hash, name,
 * native size; a UNet alone and a TAESD file are not whole checkpoints
 * (no family claimed).  The pre-queue check's engine (models_check_engine):
 * the resident one, else the entry's checker, opened once, on a fake
 * opener; a checker's failure tried once per state of its file, and a
 * checkpoint removed after its probe refused until it is back. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "../../src/jobs/models.h"

/* ---- the fake loader: an engine is a malloc'd byte holding the entry's letter ---- */
static int loads, unloads, pinned_at_unload;
static char resident[16];            /* letters of the resident fakes */
static volatile int b_pinned;        /* the test holds a pin on "b" */

static sd_engine *fake_load(void *ud, const char *path, sd_err *err)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!strcmp(base, "bad")) return sd_errf(err, SD_EFORMAT, "unet.conv_in.weight", "loading model %s: broken", path), NULL;
    char *e = malloc(1);
    *e = base[0];
    loads++;
    size_t l = strlen(resident);
    resident[l] = base[0];
    resident[l + 1] = 0;
    return (sd_engine *)e;
}

static void fake_unload(void *ud, sd_engine *e)
{
    char c = *(char *)e;
    if (c == 'b' && b_pinned) pinned_at_unload = 1;
    char *p = strchr(resident, c);
    if (p) memmove(p, p + 1, strlen(p));
    unloads++;
    free(e);
}

static int has(char c) { return strchr(resident, c) != NULL; }

/* acquire + release; 1 when the engine was returned */
static int use(models *m, const char *name)
{
    sd_err e;
    sd_err_clear(&e);
    int i;
    sd_engine *en = models_acquire(m, name, &i, &e);
    if (en) models_release(m, i);
    return en != NULL;
}

static models *fake_registry(int max_loaded)
{
    sd_err e;
    sd_err_clear(&e);
    models_config mc = {.max_loaded = max_loaded, .load = fake_load, .unload = fake_unload};
    models *m = models_new(&mc, &e);
    const char *names[] = {"a", "b", "c", "bad"};
    for (int i = 0; i < 4; i++) {
        char path[32];
        snprintf(path, sizeof path, "/fake/%s", names[i]);
        models_add(m, names[i], path, 0, &e);
    }
    models_set_default(m, 0);
    loads = unloads = 0;
    resident[0] = 0;
    return m;
}

static void test_lru(void)
{
    models *m = fake_registry(2);
    CHECKF(use(m, NULL) && has('a') && loads == 1, "no name: the default is loaded", "loads %d resident %s", loads,
           resident);
    CHECKF(use(m, "a") && loads == 1, "a resident model is not loaded again", "loads %d", loads);
    CHECKF(use(m, "b") && !strcmp(resident, "ab") && loads == 2, "two fit under --max-loaded 2", "resident %s", resident);
    CHECKF(use(m, "c") && !has('a') && has('b') && has('c') && unloads == 1, "a third unloads the least recently used (a)",
           "resident %s unloads %d", resident, unloads);
    use(m, "b");
    CHECKF(use(m, "a") && !has('c') && has('b') && has('a'), "the LRU order follows use: c (older than b) goes",
           "resident %s", resident);
    models_entry me;
    models_get(m, 0, &me);
    CHECKF(me.loaded && me.is_default && !strcmp(me.name, "a"), "models_get: loaded, default", "%s %d %d", me.name,
           me.loaded, me.is_default);
    models_free(m);
    CHECKF(resident[0] == 0, "models_free unloads every engine", "resident %s", resident);
}

static void test_running_kept(void)
{
    models *m = fake_registry(1);
    sd_err e;
    sd_err_clear(&e);
    int ia, ib;
    sd_engine *ea = models_acquire(m, "a", &ia, &e);
    sd_engine *eb = models_acquire(m, "b", &ib, &e);   /* a is still running */
    CHECKF(ea && eb && has('a') && has('b') && unloads == 0, "a model a job runs on is never unloaded (over the limit instead)",
           "resident %s unloads %d", resident, unloads);
    models_release(m, ia);
    models_release(m, ib);
    CHECKF(use(m, "c") && !strcmp(resident, "c") && unloads == 2, "--max-loaded 1: back to one once idle",
           "resident %s unloads %d", resident, unloads);
    models_free(m);
}

static void *acquire_a(void *arg)
{
    use(arg, "a");
    return NULL;
}

static void test_pins(void)
{
    models *m = fake_registry(1);
    use(m, "b");
    b_pinned = 1;
    sd_engine *pb = models_pin(m, 1);
    CHECK(pb != NULL && models_pin(m, 0) == NULL, "pin: the resident engine, none for one not resident");
    pthread_t th;
    pthread_create(&th, NULL, acquire_a, m);   /* must unload b, which is pinned */
    usleep(100 * 1000);
    b_pinned = 0;
    models_unpin(m, 1);
    pthread_join(th, NULL);
    CHECKF(!pinned_at_unload && !strcmp(resident, "a"), "a pinned engine is unloaded only after it is given back",
           "pinned_at_unload %d resident %s", pinned_at_unload, resident);
    models_free(m);
}

static void test_errors(void)
{
    models *m = fake_registry(1);
    sd_err e;
    sd_err_clear(&e);
    int i;
    CHECKF(!models_acquire(m, "zzz", &i, &e) && !strcmp(e.field, "model") && strstr(e.msg, "a, b, c, bad"),
           "unknown name: error naming model, listing the names", "%s: %s", e.field, e.msg);
    sd_err_clear(&e);
    int native = -1;
    CHECKF(models_resolve(m, "zzz", &native, &e) < 0 && !strcmp(e.field, "model") && native == -1,
           "models_resolve: unknown name refused", "%s", e.msg);
    sd_err_clear(&e);
    CHECKF(models_resolve(m, "", NULL, &e) == 0, "models_resolve: \"\" is the default", "%s", e.msg);
    sd_err_clear(&e);
    CHECKF(!models_acquire(m, "bad", &i, &e) && !strcmp(e.field, "model") && strstr(e.msg, "broken"),
           "a failed load: error naming model, with the loader's message", "%s: %s", e.field, e.msg);
    models_entry me;
    models_get(m, 3, &me);
    CHECKF(!me.loaded && strstr(me.error, "broken"), "the entry keeps the load error", "%s", me.error);
    CHECK(use(m, "a") && has('a'), "the registry serves after a failed load");
    sd_err_clear(&e);
    CHECKF(models_add(m, "a", "/fake/other", 0, &e) < 0 && !strcmp(e.field, "model"), "names are unique", "%s", e.msg);
    models_free(m);
}

static void touch(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

static void test_scan(void)
{
    char dir[] = "/tmp/sdserve-models.XXXXXX", p[256];
    if (!mkdtemp(dir)) return;
    snprintf(p, sizeof p, "%s/zeta.safetensors", dir), touch(p, "garbage");
    snprintf(p, sizeof p, "%s/.hidden.safetensors", dir), touch(p, "x");
    snprintf(p, sizeof p, "%s/notes.txt", dir), touch(p, "x");
    snprintf(p, sizeof p, "%s/folder", dir), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/folder/model.safetensors", dir), touch(p, "x");
    snprintf(p, sizeof p, "%s/diffusers", dir), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/diffusers/model_index.json", dir), touch(p, "{}");
    snprintf(p, sizeof p, "%s/empty", dir), mkdir(p, 0755);
    char link[300];
    snprintf(p, sizeof p, "%s/not-yet.safetensors", dir);
    snprintf(link, sizeof link, "%s/later/x.safetensors", dir);
    int linked = !symlink(link, p);   /* a link to a file not there yet */
    sd_err e;
    sd_err_clear(&e);
    models_config mc = {.max_loaded = 1, .load = fake_load, .unload = fake_unload};
    models *m = models_new(&mc, &e);
    int n = models_scan_dir(m, dir, &e);
    models_entry a, b, c, d;
    int ok = linked && n == 4 && !models_get(m, 0, &a) && !models_get(m, 1, &b) && !models_get(m, 2, &d) &&
             !models_get(m, 3, &c);
    CHECKF(ok && !strcmp(a.name, "diffusers") && !strcmp(b.name, "folder") && !strcmp(d.name, "not-yet") &&
               !strcmp(c.name, "zeta"),
           "scan: .safetensors files (a link to none yet too) and model folders, sorted by name", "n=%d %s %s %s %s",
           n, a.name, b.name, d.name, c.name);
    CHECKF(ok && d.refused && d.error[0] && !d.family[0], "scan: a link to a file not there yet is listed, refused",
           "%s", d.error);
    CHECKF(ok && c.error[0] && !c.family[0], "scan: an unreadable file is listed with its error", "%s", c.error);
    sd_err_clear(&e);
    CHECKF(models_resolve(m, "zeta", NULL, &e) < 0 && !strcmp(e.field, "model") && strstr(e.msg, "cannot be used"),
           "an unreadable checkpoint is refused before queueing", "%s", e.msg);
    models_free(m);
    sd_err_clear(&e);
    m = models_new(&mc, &e);
    CHECKF(models_scan_dir(m, "/nonexistent/models", &e) < 0 && !strcmp(e.field, "model-dir"),
           "scan: a missing folder names model-dir", "%s", e.field);
    models_free(m);
    t_rmtree(dir);
}

/* The probe reads the header only and says what a load says. */
static void probe_agrees(const char *rel, const char *config_rel)
{
    char name[200];
    snprintf(name, sizeof name, "probe of %s = its load (family, hash, name, native size)", rel);
    if (!t_have_ref()) {
        CHECK(1, name);
        return;
    }
    sd_model_probe p;
    sd_err e;
    sd_err_clear(&e);
    int rc = sd_probe_model(t_ref(rel), &p, &e);
    sd_load_opts o = {.model_path = t_ref(rel), .config_path = config_rel ? t_ref(config_rel) : NULL,
                      .precision = "fp32", .threads = 1};
    sd_engine *en = rc ? NULL : sd_engine_load(&o, &e);
    sd_model_info mi = {0};
    if (en) sd_engine_info(en, &mi);
    CHECKF(en && p.supported && !strcmp(p.family, mi.family) && !strcmp(p.hash, mi.hash) && !strcmp(p.name, mi.name) &&
               p.native_size == mi.native_size && p.size > 0,
           name, "rc %d %s | probe %s %s %s %d | load %s %s %s %d", rc, e.msg, p.family, p.hash, p.name, p.native_size,
           mi.family ? mi.family : "-", mi.hash, mi.name ? mi.name : "-", mi.native_size);
    sd_engine_free(en);
}

/* ---- checkers (models_check_engine), on a fake opener ------------------ */
static int check_opens, check_closes, check_tries;

static sd_engine *fake_open_check(void *ud, const char *path, sd_err *err)
{
    check_tries++;
    if (strstr(path, "bad")) return sd_errf(err, SD_EFORMAT, "vocab", "opening %s: no vocabulary", path), NULL;
    if (strstr(path, "busy"))   /* a failure the file's state does not cover (EMFILE) */
        return sd_errf(err, SD_EIO, "", "cannot open %s: Too many open files", path), NULL;
    check_opens++;
    char *e = malloc(1);
    *e = 'k';
    return (sd_engine *)e;
}

static void fake_close_check(void *ud, sd_engine *e)
{
    check_closes++;
    free(e);
}

/* A registry on the fake loader and the fake checker opener. */
static models *checker_registry(sd_err *e)
{
    models_config mc = {.max_loaded = 1, .load = fake_load, .unload = fake_unload, .open_check = fake_open_check,
                        .close_check = fake_close_check};
    return models_new(&mc, e);
}

/* The check engine of a resident model is the model, pinned; of another
 * its checker, opened once; a failed open names "model" and is not tried
 * again while the file stays as it is (here: a path that does not exist);
 * a registry without an opener gives none and no error. */
static void test_checkers(void)
{
    sd_err e;
    sd_err_clear(&e);
    models *m = checker_registry(&e);
    models_add(m, "a", "/fake/a", 0, &e);
    models_add(m, "b", "/fake/b", 0, &e);
    models_add(m, "bad", "/fake/bad", 0, &e);
    loads = unloads = check_opens = check_closes = 0;
    resident[0] = 0;
    CHECK(use(m, "a"), "a loads");
    int pinned = -1;
    sd_engine *x = models_check_engine(m, 0, &pinned, &e);
    CHECKF(x && *(char *)x == 'a' && pinned == 1 && check_opens == 0, "a resident model is checked on itself, pinned",
           "pinned %d opens %d", pinned, check_opens);
    if (pinned) models_unpin(m, 0);
    sd_engine *k1 = models_check_engine(m, 1, &pinned, &e), *k2 = models_check_engine(m, 1, &pinned, &e);
    CHECKF(k1 && k1 == k2 && *(char *)k1 == 'k' && !pinned && check_opens == 1 && loads == 1,
           "a model not resident is checked on its checker, opened once, nothing loaded",
           "opens %d loads %d pinned %d", check_opens, loads, pinned);
    sd_err_clear(&e);
    x = models_check_engine(m, 2, &pinned, &e);
    CHECKF(!x && e.code == SD_EFORMAT && !strcmp(e.field, "model") && strstr(e.msg, "no vocabulary"),
           "a checker that cannot open: NULL, the error naming model", "code %d field %s", e.code, e.field);
    sd_err_clear(&e);
    int tries = check_tries;
    x = models_check_engine(m, 2, &pinned, &e);
    CHECKF(!x && e.code == SD_EFORMAT && !strcmp(e.field, "model") && strstr(e.msg, "no vocabulary") &&
               check_tries == tries,
           "... said again at the next check, not tried again (its file is as it was)", "tries %d -> %d: %s", tries,
           check_tries, e.msg);
    CHECK(use(m, "b"), "b loads (a unloaded)");
    x = models_check_engine(m, 1, &pinned, &e);
    CHECKF(x && *(char *)x == 'b' && pinned, "once loaded, b is checked on itself", "pinned %d", pinned);
    if (pinned) models_unpin(m, 1);
    x = models_check_engine(m, 0, &pinned, &e);
    CHECKF(x && *(char *)x == 'k' && !pinned && check_opens == 2, "a, unloaded, gets its own checker",
           "opens %d", check_opens);
    models_free(m);
    CHECKF(check_closes == 2, "models_free closes every checker", "%d closed", check_closes);
    m = fake_registry(1);
    sd_err_clear(&e);
    x = models_check_engine(m, 1, &pinned, &e);
    CHECK(!x && !e.code && !pinned, "no opener and no load options: no checker, no error");
    models_free(m);
}

/* A failure is kept with its file's state, and looked at again when the
 * file changes: a checker that cannot open a real file is tried once per
 * state of the file (the entry refused meanwhile, GET /models saying why);
 * a checkpoint removed after its probe is refused with the reason, and
 * usable again once it is back. */
static void test_failures_follow_the_file(void)
{
    char dir[] = "/tmp/sdserve-models-fail.XXXXXX", bad[300], v[300];
    if (!mkdtemp(dir)) return;
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    snprintf(v, sizeof v, "%s/v.safetensors", dir);
    touch(bad, "not a model");
    sd_err e;
    sd_err_clear(&e);
    models *m = checker_registry(&e);
    models_add(m, "a", "/fake/a", 0, &e);
    int ib = models_add(m, "bad", bad, 0, &e);
    models_set_default(m, 0);
    check_tries = 0;
    int pinned, failed = 0;
    for (int k = 0; k < 5; k++) {
        sd_err_clear(&e);
        failed += !models_check_engine(m, ib, &pinned, &e) && e.code == SD_EFORMAT && strstr(e.msg, "no vocabulary");
    }
    CHECKF(failed == 5 && check_tries == 1, "a checker failure on a real file: tried once, said five times",
           "failed %d, tried %d", failed, check_tries);
    sd_err_clear(&e);
    models_entry me;
    models_get(m, ib, &me);
    CHECKF(models_resolve(m, "bad", NULL, &e) < 0 && e.code == SD_EINVAL && !strcmp(e.field, "model") &&
               strstr(e.msg, "model 'bad' cannot be used") && strstr(e.msg, "no vocabulary") && me.refused &&
               strstr(me.error, "no vocabulary"),
           "... meanwhile the entry is refused before any check, and listed as refused with the reason",
           "%s | refused %d '%s'", e.msg, me.refused, me.error);
    usleep(10000);
    touch(bad, "not a model either");
    sd_err_clear(&e);
    int i = models_resolve(m, "bad", NULL, &e);
    sd_engine *x = i == ib ? models_check_engine(m, ib, &pinned, &e) : NULL;
    CHECKF(i == ib && !x && check_tries == 2, "the file rewritten: resolved again, its checker tried again",
           "resolve %d tries %d: %s", i, check_tries, e.msg);
    if (t_have_ref() && !symlink(t_ref("models/tiny-sd2-fp16.safetensors"), v)) {
        sd_err_clear(&e);
        int iv = models_add(m, "v", v, 1, &e);
        models_get(m, iv, &me);
        int ok = iv >= 0 && !me.refused && !strcmp(me.family, "sd2");
        unlink(v);
        sd_err_clear(&e);
        int r = models_resolve(m, "v", NULL, &e);
        models_get(m, iv, &me);
        CHECKF(ok && r < 0 && !strcmp(e.field, "model") && strstr(e.msg, "model 'v' cannot be used") && me.refused &&
                   me.error[0],
               "a checkpoint removed after its probe: refused with the reason, listed as refused", "%s | %s", e.msg,
               me.error);
        ok = !symlink(t_ref("models/tiny-sd2-fp16.safetensors"), v);
        sd_err_clear(&e);
        r = models_resolve(m, "v", NULL, &e);
        models_get(m, iv, &me);
        CHECKF(ok && r == iv && !me.refused && !strcmp(me.family, "sd2"), "... and usable again once it is back",
               "%d %s | %s", r, e.msg, me.error);
        unlink(v);
    }
    /* a failure that is not about the file (out of descriptors, a
     * tokenizer folder not mounted yet): not kept, the next request tries
     * again, and the model is not listed as refused meanwhile */
    char busy[300];
    snprintf(busy, sizeof busy, "%s/busy.safetensors", dir);
    touch(busy, "a model, the moment it could not be opened");
    int iy = models_add(m, "busy", busy, 0, &e);
    int tries = check_tries, io = 0;
    for (int k = 0; k < 3; k++) {
        sd_err_clear(&e);
        io += !models_check_engine(m, iy, &pinned, &e) && e.code == SD_EIO;
    }
    sd_err_clear(&e);
    models_get(m, iy, &me);
    CHECKF(io == 3 && check_tries == tries + 3 && models_resolve(m, "busy", NULL, &e) == iy && !me.refused,
           "a checker's I/O failure (EMFILE): tried again at each request, the entry not refused",
           "failed %d, tried %d, refused %d: %s", io, check_tries - tries, me.refused, e.msg);
    models_free(m);
    t_rmtree(dir);
}

int main(void)
{
    test_lru();
    test_running_kept();
    test_pins();
    test_errors();
    test_checkers();
    test_failures_follow_the_file();
    test_scan();
    probe_agrees("models/tiny-sd1", NULL);
    probe_agrees("models/tiny-sd2-fp16.safetensors", NULL);
    probe_agrees("models/tiny-sdxl-s-fp16.safetensors", NULL);
    if (t_have_ref()) {
        sd_model_probe p;
        sd_err e;
        sd_err_clear(&e);
        int rc = sd_probe_model(t_ref("models/tiny-sd1-inpaint"), &p, &e);
        CHECKF(rc < 0 && e.code == SD_EFORMAT && !strcmp(e.field, "model") && strstr(e.msg, "no text encoder") &&
                   !p.family[0] && !p.hash[0] && !strcmp(p.name, "tiny-sd1-inpaint"),
               "probe: a UNet alone (the inpainting UNet's folder) is not a whole checkpoint: no family, no hash",
               "rc %d family '%s' hash '%s': %s", rc, p.family, p.hash, e.msg);
        sd_err_clear(&e);
        rc = sd_probe_model(t_ref("models/tiny-taesd_decoder.safetensors"), &p, &e);
        CHECKF(rc < 0 && e.code == SD_EFORMAT && strstr(e.msg, "no UNet") && !p.family[0],
               "probe: a TAESD file is not a whole checkpoint (no UNet), not sd1", "rc %d family '%s': %s", rc,
               p.family, e.msg);
    }
    sd_err e;
    sd_err_clear(&e);
    sd_model_probe p;
    CHECKF(sd_probe_model("/nonexistent/x.safetensors", &p, &e) < 0 && e.code == SD_ENOTFOUND && !strcmp(p.name, "x"),
           "probe: a missing file fails (named x)", "%d %s", e.code, p.name);
    return t_done();
}
