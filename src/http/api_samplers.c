/* api_samplers.c — GET /samplers: every sampler name a request may give,
 * with its semantics (diffusers or A1111's k-diffusion), what else it takes
 * (timestep_spacing or scheduler) and, for the k-diffusion ones, their
 * k_ name, the schedule "automatic" means and the display names with a
 * schedule; then the scheduler names with their A1111 labels.  Built from
 * the engine's name tables (sd.h), so it never disagrees with what the
 * `sampler` field accepts (docs/KDIFFUSION.md). */
#include "server_int.h"

#include <stdio.h>

static json_t *name_list(const char *(*name)(int), int from, int end)
{
    json_t *a = json_array();
    for (int i = from; a && i < end; i++) json_array_append_new(a, json_string(name(i)));
    return a;
}

static const char *spacing_at(int i) { return sd_spacing_name((sd_timestep_spacing)i); }
static const char *scheduler_at(int i) { return sd_scheduler_name((sd_scheduler)i); }

static json_t *diffusers_entry(sd_sampler s)
{
    return json_pack("{s:s, s:s, s:o}", "name", sd_sampler_name(s), "semantics", "diffusers", "timestep_spacing",
                     name_list(spacing_at, 1, SD_TSPACING_END));
}

/* "DPM++ 2M" with its k_ name, automatic schedule and "DPM++ 2M Karras"-style names */
static json_t *kdiff_entry(sd_ksampler ks)
{
    json_t *names = json_array();
    for (int k = 1; names && k < SD_SCHEDULER_END; k++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s %s", sd_ksampler_label(ks), sd_scheduler_label((sd_scheduler)k));
        json_array_append_new(names, json_string(buf));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "name", sd_ksampler_label(ks), "semantics", "k-diffusion",
                     "k_name", sd_ksampler_kname(ks), "automatic", sd_scheduler_name(sd_ksampler_auto_schedule(ks)),
                     "schedulers", name_list(scheduler_at, 1, SD_SCHEDULER_END), "with_schedule", names);
}

static json_t *samplers_doc(void)
{
    json_t *list = json_array(), *sch = json_array();
    for (int s = 0; list && s < SD_SAMPLER_COUNT; s++) json_array_append_new(list, diffusers_entry((sd_sampler)s));
    for (int k = 1; list && k < SD_KSAMPLER_END; k++) json_array_append_new(list, kdiff_entry((sd_ksampler)k));
    for (int k = 1; sch && k < SD_SCHEDULER_END; k++)
        json_array_append_new(sch, json_pack("{s:s, s:s}", "name", sd_scheduler_name((sd_scheduler)k), "label",
                                             sd_scheduler_label((sd_scheduler)k)));
    if (!list || !sch) {
        json_decref(list);
        json_decref(sch);
        return NULL;
    }
    return json_pack("{s:o, s:o, s:s}", "samplers", list, "schedulers", sch, "default", "euler_a");
}

enum MHD_Result get_samplers(http_server *s, req *r, struct MHD_Connection *c)
{
    (void)s;
    return reply_json(c, &r->ri, 200, samplers_doc());
}
