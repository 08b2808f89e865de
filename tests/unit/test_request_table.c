/* test_request_table.c — the request field table (src/jobs/request.c) is
 * well formed, gives the defaults, and agrees with docs/openapi.json: each
 * endpoint's request schema lists exactly the table's fields for it, with
 * the table's ranges, defaults, text limits and sampler names. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "t.h"
#include "../../src/jobs/request.h"

/* The document, from the repository root or from beside this file. */
static json_t *load_doc(void)
{
    json_error_t je;
    json_t *d = json_load_file("docs/openapi.json", 0, &je);
    if (!d) d = json_load_file("../../docs/openapi.json", 0, &je);
    return d;
}

/* A number keyword of a property, NAN when absent. */
static double num(json_t *prop, const char *key)
{
    json_t *v = json_object_get(prop, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The property agrees with row f: bounds and default for numbers, maxLength
 * for text, the enum for the sampler. */
static void check_property(const char *schema, const req_field *f, json_t *prop)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s matches the table", schema, f->name);
    if (f->type == RF_INT || f->type == RF_FLOAT) {
        double lo = num(prop, f->lo_open ? "exclusiveMinimum" : "minimum");
        double hi = num(prop, f->hi_open ? "exclusiveMaximum" : "maximum");
        double def = num(prop, "default");
        /* a default outside the range is resolved elsewhere (width/height:
         * the model's native size): the document states none */
        if (isnan(def) && !req_field_in_range(f, f->def)) def = f->def;
        CHECKF(lo == f->lo && hi == f->hi && def == f->def, name, "doc [%g, %g] default %g, table [%g, %g] default %g",
               lo, hi, def, f->lo, f->hi, f->def);
    } else if (f->type == RF_TEXT) {
        CHECKF(num(prop, "maxLength") == f->hi, name, "maxLength %g, table %g", num(prop, "maxLength"), f->hi);
    } else if (f->type == RF_SAMPLER) {
        /* every name the field takes (diffusers, then per A1111 sampler its
         * k_ name, label and label + schedule), in that order */
        json_t *e = json_object_get(prop, "enum");
        char buf[64];
        const char *n;
        int ok = 1, i = 0;
        for (; ok && (n = req_sampler_name_at(i, buf, sizeof buf)); i++)
            ok = !strcmp(json_string_value(json_array_get(e, (size_t)i)) ?: "", n);
        const char *def = json_string_value(json_object_get(prop, "default"));
        CHECKF(ok && json_array_size(e) == (size_t)i && def && !strcmp(def, req_field_value_name(f, f->def)), name,
               "enum entry %d / %zu", i, json_array_size(e));
    } else if (f->type == RF_SCHEDULER || f->type == RF_SPACING || f->type == RF_UPSCALER) {
        json_t *e = json_object_get(prop, "enum");
        int ok = 1, i = 1;
        for (; ok && *req_field_value_name(f, i); i++)
            ok = !strcmp(json_string_value(json_array_get(e, (size_t)i - 1)) ?: "", req_field_value_name(f, i));
        CHECKF(ok && json_array_size(e) == (size_t)i - 1 && !json_object_get(prop, "default"), name, "entry %d", i);
    } else if (f->type == RF_LORAS) {
        json_t *wp = json_object_get(json_object_get(json_array_get(json_object_get(json_object_get(prop, "items"),
                                                                                     "oneOf"), 0), "properties"), "weight");
        CHECKF(num(prop, "maxItems") == SD_MAX_LORAS && num(wp, "minimum") == f->lo && num(wp, "maximum") == f->hi &&
                   num(wp, "default") == f->def, name, "maxItems %g weight [%g, %g] default %g", num(prop, "maxItems"),
               num(wp, "minimum"), num(wp, "maximum"), num(wp, "default"));
    } else {
        CHECK(json_is_object(prop), name);
    }
}

/* Schema `schema` lists the fields of `where` and no others. */
static void check_schema(json_t *doc, const char *schema, unsigned where)
{
    json_t *props = json_object_get(json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"),
                                                    schema), "properties");
    CHECKF(json_is_object(props), schema, "no properties for %s", schema);
    if (!props) return;
    size_t want = 0;
    for (int i = 0; i < req_nfields; i++) {
        const req_field *f = &req_fields[i];
        if (!(f->where & where)) continue;
        want++;
        json_t *p = json_object_get(props, f->name);
        CHECKF(p != NULL, f->name, "%s lacks %s", schema, f->name);
        if (p) check_property(schema, f, p);
    }
    const char *key;
    json_t *v;
    json_object_foreach(props, key, v) {
        const req_field *f = req_field_find(key);
        CHECKF(f && (f->where & where), key, "%s documents %s, which the table does not give it", schema, key);
    }
    CHECKF(json_object_size(props) == want, schema, "%zu documented, %zu in the table", json_object_size(props), want);
}

int main(void)
{
    /* the table itself */
    int names_unique = 1, flags_unique = 1, inside = 1;
    for (int i = 0; i < req_nfields; i++) {
        const req_field *f = &req_fields[i];
        inside &= f->offset < sizeof(sd_request) && f->where != 0 && f->help && *f->help;
        for (int j = i + 1; j < req_nfields; j++) {
            names_unique &= strcmp(f->name, req_fields[j].name) != 0;
            if (f->cli && req_fields[j].cli) flags_unique &= strcmp(f->cli, req_fields[j].cli) != 0;
        }
        if (f->engine) names_unique &= req_field_by_engine(f->engine) == f;
        if (f->cli) flags_unique &= req_field_by_flag(f->cli) == f && (!f->cli_alias || req_field_by_flag(f->cli_alias) == f);
    }
    CHECK(names_unique, "field names and engine names are unique");
    CHECK(flags_unique, "CLI flags and aliases are unique and found");
    CHECK(inside, "every row lies inside sd_request, has endpoints and help");
    CHECK(req_nfields <= 64, "at most 64 rows (the CLI's given-bitmask)");

    sd_request r;
    sd_request_defaults(&r, 0);
    CHECKF(r.gen.n == 1 && r.gen.width == 0 && r.gen.height == 0 && r.gen.steps == 30 && r.gen.cfg == 7.0f &&
               r.gen.strength == 0.7f && r.gen.sampler == SD_SAMPLER_EULER_A && r.out_quality == 90 && r.seed_was_random &&
               !r.gen.prompt && !r.img2img,
           "defaults from the table", "n=%d %dx%d steps=%d cfg=%g", r.gen.n, r.gen.width, r.gen.height, r.gen.steps,
           (double)r.gen.cfg);
    /* issue 15: no size = the model's native size, then the server's limits */
    {
        sd_request q;
        sd_request_defaults(&q, 0);
        req_resolve_size(&q, 1024);
        CHECKF(q.gen.width == 1024 && q.gen.height == 1024, "no size: the native size given (SDXL's 1024)", "%dx%d",
               q.gen.width, q.gen.height);
        sd_request_defaults(&q, 0);
        q.gen.width = 768;
        req_resolve_size(&q, 0);
        CHECKF(q.gen.width == 768 && q.gen.height == 512, "a given side is kept; no model: 512", "%dx%d", q.gen.width,
               q.gen.height);
        sd_err se = {0};
        q.gen.width = 1216, q.gen.height = 832;
        int refused = req_check_size(&q, 0, 0, &se) == -1 && !strcmp(se.field, "width") && strstr(se.msg, "1024");
        CHECKF(refused, "1216x832 refused at the default --max-side, naming width and the limit", "%s", se.msg);
        CHECK(req_check_size(&q, 1344, 1048576, &se) == 0, "1216x832 fits --max-side 1344 --max-pixels 1048576");
        q.gen.width = 1344, q.gen.height = 1024;
        se = (sd_err){0};
        refused = req_check_size(&q, 1344, 1048576, &se) == -1 && !strcmp(se.field, "width") && strstr(se.msg, "1048576");
        CHECKF(refused, "1344x1024 refused by --max-pixels 1048576, with the limit", "%s", se.msg);
        q.gen.width = 512, q.gen.height = 1100;
        se = (sd_err){0};
        CHECKF(req_check_size(&q, 0, 0, &se) == -1 && !strcmp(se.field, "height"), "a tall side names height", "%s",
               se.msg);
        CHECK(!req_gen_family("sd1") && !req_gen_family(NULL) && !strcmp(req_gen_family("sdxl"), "sdxl") &&
                  !strcmp(req_gen_family("sd2"), "sd2"), "parameters name the family but for SD1 (A1111's text)");
        const req_field *ot = req_field_find("original_width"), *ct = req_field_find("crop_top");
        CHECK(ot && ct && ot->def == 0 && req_field_in_range(ot, 0) && req_field_in_range(ot, 8192) &&
                  !req_field_in_range(ot, 8193) && !req_field_in_range(ct, -1) && ot->where == RF_BOTH,
              "SDXL size ids: [0, 8192], default 0, on both endpoints");
    }
    const req_field *cfg = req_field_find("guidance_scale"), *steps = req_field_find("num_inference_steps");
    CHECK(cfg && req_field_in_range(cfg, 20) && !req_field_in_range(cfg, 0) && !req_field_in_range(cfg, 1e-46) &&
              req_field_in_range(cfg, 20.0000001), "float ranges checked on the float the engine sees");
    CHECK(steps && req_field_in_range(steps, 150) && !req_field_in_range(steps, 0) && !req_field_in_range(steps, 2.5),
          "integer ranges: bounds and whole numbers");
    CHECK(req_field_set_name(req_field_find("sampler"), &r, "ddim") == 0 && r.gen.sampler == SD_SAMPLER_DDIM &&
              req_field_set_name(req_field_find("sampler"), &r, "heun") == -1, "sampler by name");
    /* every listed sampler name is taken, and selects what it says */
    char buf[64];
    const char *sn;
    int taken = 1, nk = 0;
    for (int i = 0; (sn = req_sampler_name_at(i, buf, sizeof buf)); i++) {
        sd_request q;
        sd_request_defaults(&q, 0);
        taken &= req_field_set_name(req_field_find("sampler"), &q, sn) == 0;
        nk += q.gen.ksampler != SD_KSAMPLER_NONE;
    }
    CHECKF(taken && nk == 6 * 7, "every sampler name is taken; 42 of them are A1111's (k-diffusion)", "%d", nk);
    const req_field *smp = req_field_find("sampler"), *sch = req_field_find("scheduler");
    CHECK(req_field_set_name(smp, &r, "DPM++ 2M Karras") == 0 && r.gen.ksampler == SD_KSAMPLER_DPMPP_2M &&
              r.gen.name_schedule == SD_SCHEDULER_KARRAS && req_field_set_name(smp, &r, "k_euler_a") == 0 &&
              r.gen.ksampler == SD_KSAMPLER_EULER_A && r.gen.name_schedule == SD_SCHEDULER_UNSET &&
              req_field_set_name(smp, &r, "euler_a") == 0 && r.gen.ksampler == SD_KSAMPLER_NONE &&
              r.gen.sampler == SD_SAMPLER_EULER_A && req_field_set_name(smp, &r, "dpm++ 2m") == -1 &&
              req_field_set_name(smp, &r, "DPM++ 2M karras") == -1 && req_field_set_name(smp, &r, "Euler a ") == -1,
          "sampler: A1111 names in exact spelling, k_ names, diffusers names; near misses refused");
    sd_err e;
    sd_err_clear(&e);
    CHECK(req_field_set_name(sch, &r, "karras") == 0 && r.gen.scheduler == SD_SCHEDULER_KARRAS &&
              sd_check_sampler(&r.gen, &e) == -1 && !strcmp(e.field, "scheduler"),
          "scheduler with a diffusers sampler: refused naming scheduler");
    req_field_set_name(smp, &r, "DPM++ 2M Exponential");
    sd_err_clear(&e);
    CHECK(sd_check_sampler(&r.gen, &e) == -1 && !strcmp(e.field, "scheduler") && strstr(e.msg, "contradicts"),
          "scheduler contradicting the name's schedule: refused naming scheduler");
    req_field_set_name(smp, &r, "DPM++ 2M Karras");
    sd_err_clear(&e);
    CHECK(sd_check_sampler(&r.gen, &e) == 0 && sd_requested_schedule(&r.gen) == SD_SCHEDULER_KARRAS &&
              req_field_set_name(req_field_find("timestep_spacing"), &r, "trailing") == 0 &&
              sd_check_sampler(&r.gen, &e) == -1 && !strcmp(e.field, "timestep_spacing"),
          "the same schedule twice is fine; timestep_spacing with a k-diffusion sampler refused");
    CHECK(req_field_set_name(sch, &r, "Karras") == -1 && req_field_set_name(sch, &r, "simple") == -1,
          "scheduler: request names only");
    CHECK(req_field_by_flag("--cfg") == cfg && req_field_by_flag("-n") == req_field_find("num_outputs") &&
              req_field_by_flag("--negative") == req_field_find("negative_prompt"), "today's CLI flags map to rows");
    sd_request_free(&r);

    json_t *doc = load_doc();
    CHECK(doc != NULL, "docs/openapi.json loads");
    if (doc) {
        check_schema(doc, "Txt2ImgRequest", RF_TXT2IMG);
        check_schema(doc, "Img2ImgRequest", RF_IMG2IMG);
        json_decref(doc);
    }
    return t_done();
}
