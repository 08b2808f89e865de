/* settings.h — one table of settings drives command-line flags, SDSERVE_*
 * environment variables, --help and the start-up summary.
 *
 * A subcommand declares a static array of sd_setting (name, type, where to
 * store, default, bounds, help) and calls sd_settings_load(): defaults first,
 * then the environment (SDSERVE_<NAME> with '-' as '_'), then flags
 * (--name VALUE or --name=VALUE).  Bad values fail through sd_err naming the
 * flag; nothing here exits. */
#ifndef SD_SETTINGS_H
#define SD_SETTINGS_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"

/* SD_SET_SECRET: a string never printed back (summary shows "(set, not shown)"). */
typedef enum { SD_SET_STR, SD_SET_INT, SD_SET_DOUBLE, SD_SET_SECRET } sd_set_type;

typedef struct sd_setting {
    const char *name;     /* flag without dashes: "port" -> --port, SDSERVE_PORT */
    sd_set_type type;
    void *dst;            /* char ** (malloc'd, may stay NULL) / int64_t * / double * */
    const char *def;      /* default as text; NULL = unset (strings only) */
    double min, max;      /* bounds for numbers, inclusive */
    const char *help;
} sd_setting;

/* Fills every dst.  Returns 0, 1 when --help/-h was given (nothing else
 * checked), or -1 with err naming the flag or variable. */
int sd_settings_load(const sd_setting *t, int n, int argc, char **argv, sd_err *err);
/* "--port N   (SDSERVE_PORT, default 8080)  help" lines. */
void sd_settings_usage(FILE *f, const char *usage_line, const sd_setting *t, int n);
/* "  port = 8080  (flag)" lines: the values in effect and where they came from. */
void sd_settings_print(FILE *f, const sd_setting *t, int n);
/* Frees the strings sd_settings_load allocated. */
void sd_settings_free(const sd_setting *t, int n);
/* Environment variable name of a setting into buf. */
void sd_settings_env_name(const sd_setting *s, char *buf, size_t size);

#endif
