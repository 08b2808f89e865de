/* choice.c — the sampler choice of a request as sd.h exposes it: which
 * names select diffusers semantics (samplers.h) and which select A1111's
 * k-diffusion samplers (kdiff_sched.h), the scheduler and timestep-spacing
 * names, and the consistency check of the three fields.  The public enums
 * are the kdiff ones plus one (0 = none / not given). */
#include <string.h>

#include "kdiff_sched.h"
#include "samplers.h"

static const char *const SPACINGS[SD_TSPACING_END] = {
    [SD_TSPACING_LEADING] = "leading", [SD_TSPACING_LINSPACE] = "linspace", [SD_TSPACING_TRAILING] = "trailing",
};

int sd_sampler_parse(const char *name, sd_sampler *s, sd_ksampler *ks, sd_scheduler *name_sched)
{
    if (!name) return -1;
    if (!sd_sampler_from_name(name, s)) {
        *ks = SD_KSAMPLER_NONE;
        *name_sched = SD_SCHEDULER_UNSET;
        return 0;
    }
    kd_choice c;
    if (!kd_is_name(name) || kd_parse(name, NULL, &c, NULL)) return -1;
    *s = SD_SAMPLER_EULER;   /* unused by a k-diffusion run */
    *ks = (sd_ksampler)(c.sampler + 1);
    /* "DPM++ 2M" carries no schedule; "DPM++ 2M Automatic" names Automatic */
    *name_sched = strcmp(name, kd_sampler_label(c.sampler)) && strcmp(name, kd_sampler_kname(c.sampler))
                      ? (sd_scheduler)(c.schedule + 1) : SD_SCHEDULER_UNSET;
    return 0;
}

const char *sd_ksampler_label(sd_ksampler ks) { return ks > 0 && ks < SD_KSAMPLER_END ? kd_sampler_label(ks - 1) : NULL; }
const char *sd_ksampler_kname(sd_ksampler ks) { return ks > 0 && ks < SD_KSAMPLER_END ? kd_sampler_kname(ks - 1) : NULL; }

sd_scheduler sd_ksampler_auto_schedule(sd_ksampler ks)
{
    if (ks <= 0 || ks >= SD_KSAMPLER_END) return SD_SCHEDULER_UNSET;
    return (sd_scheduler)(kd_schedule_resolve(ks - 1, KD_SCHED_AUTOMATIC) + 1);
}

const char *sd_scheduler_name(sd_scheduler s) { return s > 0 && s < SD_SCHEDULER_END ? kd_schedule_name(s - 1) : NULL; }
const char *sd_scheduler_label(sd_scheduler s) { return s > 0 && s < SD_SCHEDULER_END ? kd_schedule_label(s - 1) : NULL; }

int sd_scheduler_from_name(const char *name, sd_scheduler *out)
{
    for (int s = 1; name && s < SD_SCHEDULER_END; s++)
        if (!strcmp(name, sd_scheduler_name((sd_scheduler)s))) { *out = (sd_scheduler)s; return 0; }
    return -1;
}

const char *sd_spacing_name(sd_timestep_spacing s) { return s > 0 && s < SD_TSPACING_END ? SPACINGS[s] : NULL; }

int sd_spacing_from_name(const char *name, sd_timestep_spacing *out)
{
    for (int s = 1; name && s < SD_TSPACING_END; s++)
        if (!strcmp(name, SPACINGS[s])) { *out = (sd_timestep_spacing)s; return 0; }
    return -1;
}

int sd_check_sampler(const sd_gen_params *p, sd_err *err)
{
    if ((unsigned)p->ksampler >= SD_KSAMPLER_END)
        return sd_errf(err, SD_EINVAL, "sampler", "unknown k-diffusion sampler %d", (int)p->ksampler);
    if ((unsigned)p->scheduler >= SD_SCHEDULER_END || (unsigned)p->name_schedule >= SD_SCHEDULER_END)
        return sd_errf(err, SD_EINVAL, "scheduler", "unknown scheduler %d", (int)p->scheduler);
    if ((unsigned)p->spacing >= SD_TSPACING_END)
        return sd_errf(err, SD_EINVAL, "timestep_spacing", "unknown timestep spacing %d", (int)p->spacing);
    if (!p->ksampler) {
        if (p->scheduler)
            return sd_errf(err, SD_EINVAL, "scheduler", "a scheduler applies to the A1111 (k-diffusion) samplers only; "
                           "sampler %s has diffusers semantics and its own schedule: leave scheduler out, or use an "
                           "A1111 name such as \"DPM++ 2M\" or k_dpmpp_2m", sd_sampler_name(p->sampler));
        return 0;
    }
    if (p->spacing)
        return sd_errf(err, SD_EINVAL, "timestep_spacing", "timestep_spacing applies to the diffusers-semantics "
                       "samplers only; %s takes a scheduler (e.g. sgm_uniform)", sd_ksampler_label(p->ksampler));
    if (p->scheduler && p->name_schedule && p->scheduler != p->name_schedule)
        return sd_errf(err, SD_EINVAL, "scheduler", "scheduler %s contradicts the schedule in the sampler name (%s %s)",
                       sd_scheduler_name(p->scheduler), sd_ksampler_label(p->ksampler),
                       sd_scheduler_label(p->name_schedule));
    return 0;
}

sd_scheduler sd_requested_schedule(const sd_gen_params *p)
{
    return p->scheduler ? p->scheduler : p->name_schedule ? p->name_schedule : SD_SCHEDULER_AUTOMATIC;
}

int sd_prediction_parse(const char *name, sd_prediction *out)
{
    static const struct { const char *name; sd_prediction p; } names[] = {
        {"auto", SD_PRED_AUTO}, {"eps", SD_PRED_EPS}, {"epsilon", SD_PRED_EPS}, {"v", SD_PRED_V}, {"v_prediction", SD_PRED_V},
    };
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].name)) { *out = names[i].p; return 0; }
    return -1;
}

int sd_zero_snr_parse(const char *name, int *out)
{
    int v = !name ? 2 : !strcmp(name, "auto") ? 0 : !strcmp(name, "on") ? 1 : !strcmp(name, "off") ? -1 : 2;
    if (v == 2) return -1;
    *out = v;
    return 0;
}

/* ---- the steps a hires run counts (sd.h, samplers.h) ---- */
int sd_hires_pass2_steps(const sd_gen_params *p)
{
    int steps = p->hr_steps ? p->hr_steps : p->steps;
    if (p->ksampler != SD_KSAMPLER_NONE) return steps - kd_img2img_first(steps, p->hr_strength);
    return steps - sd_img2img_start(steps, p->hr_strength);
}

int sd_hires_total_steps(const sd_gen_params *p)
{
    if (p->hr_upscaler == SD_HR_NONE || p->init_rgb) return p->steps;
    return p->steps + p->n * sd_hires_pass2_steps(p);
}
