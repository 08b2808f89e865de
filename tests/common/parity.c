/* parity.c — see parity.h. */
#include "parity.h"

#include <stdio.h>

#include "t.h"

int parity_begin(void)
{
    if (!t_have_ref()) {
        CHECKF(0, "reference data present", "no reference folder (set SD_REF)");
        return 0;
    }
    return 1;
}

sd_weights *parity_open(const char *model, const char *src, const char *path)
{
    char name[256];
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = sdw_open(t_ref(path), &err);
    snprintf(name, sizeof name, "%s/%s: weights open", model, src);
    CHECKF(w != NULL, name, "%s", err.msg);
    return w;
}

int parity_golden(const char *model, const char *component, const char *file, npy *a)
{
    char rel[256];
    snprintf(rel, sizeof rel, "goldens/%s/%s/%s.npy", model, component, file);
    return npy_load(t_ref(rel), a);
}
