/* settings.c — defaults, environment and flags from one table (settings.h). */
#include "settings.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { SRC_DEFAULT, SRC_ENV, SRC_FLAG };
/* Where each value came from, for the start-up summary; tables are small. */
#define SD_SETTINGS_MAX 64
static unsigned char g_src[SD_SETTINGS_MAX];
static const sd_setting *g_src_table;

void sd_settings_env_name(const sd_setting *s, char *buf, size_t size)
{
    size_t k = (size_t)snprintf(buf, size, "SDSERVE_");
    for (const char *p = s->name; *p && k + 1 < size; p++)
        buf[k++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    if (k < size) buf[k] = 0;
}

static int set_value(const sd_setting *s, const char *text, const char *origin, sd_err *err)
{
    if (s->type == SD_SET_STR || s->type == SD_SET_SECRET) {
        char **d = s->dst;
        free(*d);
        *d = text ? strdup(text) : NULL;
        if (text && !*d) return sd_errf(err, SD_ENOMEM, s->name, "out of memory");
        return 0;
    }
    if (!text || !*text)
        return sd_errf(err, SD_EINVAL, s->name, "%s: --%s needs a number", origin, s->name);
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return sd_errf(err, SD_EINVAL, s->name, "%s: --%s must be a number, got '%s'", origin, s->name, text);
    if (s->type == SD_SET_INT && v != floor(v))
        return sd_errf(err, SD_EINVAL, s->name, "%s: --%s must be a whole number, got '%s'", origin, s->name, text);
    if (v < s->min || v > s->max)
        return sd_errf(err, SD_EINVAL, s->name, "%s: --%s must be in [%g, %g], got %s", origin, s->name,
                       s->min, s->max, text);
    if (s->type == SD_SET_INT) *(int64_t *)s->dst = (int64_t)v;
    else *(double *)s->dst = v;
    return 0;
}

int sd_settings_load(const sd_setting *t, int n, int argc, char **argv, sd_err *err)
{
    if (n > SD_SETTINGS_MAX) return sd_errf(err, SD_EINTERNAL, "", "settings table too long");
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    g_src_table = t;
    for (int i = 0; i < n; i++) {
        if (t[i].type == SD_SET_STR || t[i].type == SD_SET_SECRET) *(char **)t[i].dst = NULL;
        if (set_value(&t[i], t[i].def, "default", err)) return -1;
        g_src[i] = SRC_DEFAULT;
        char env[96];
        sd_settings_env_name(&t[i], env, sizeof env);
        const char *v = getenv(env);
        if (v) {
            if (set_value(&t[i], v, env, err)) return -1;
            g_src[i] = SRC_ENV;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2))
            return sd_errf(err, SD_EINVAL, "", "unexpected argument '%s' (see --help)", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int k = -1;
        for (int j = 0; j < n; j++)
            if (strlen(t[j].name) == len && !strncmp(t[j].name, name, len)) k = j;
        if (k < 0) return sd_errf(err, SD_EINVAL, "", "unknown option '%.*s' (see --help)", (int)len + 2, a);
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) return sd_errf(err, SD_EINVAL, t[k].name, "--%s needs a value", t[k].name);
            val = argv[++i];
        }
        if (set_value(&t[k], val, "command line", err)) return -1;
        g_src[k] = SRC_FLAG;
    }
    return 0;
}

static void value_text(const sd_setting *s, char *buf, size_t size)
{
    if (s->type == SD_SET_SECRET) {
        const char *v = *(char **)s->dst;
        snprintf(buf, size, "%s", v && *v ? "(set, not shown)" : "(none)");
    } else if (s->type == SD_SET_STR) {
        const char *v = *(char **)s->dst;
        snprintf(buf, size, "%s", v ? v : "(none)");
    } else if (s->type == SD_SET_INT) {
        snprintf(buf, size, "%lld", (long long)*(int64_t *)s->dst);
    } else {
        snprintf(buf, size, "%g", *(double *)s->dst);
    }
}

void sd_settings_usage(FILE *f, const char *usage_line, const sd_setting *t, int n)
{
    fprintf(f, "%s\n\noptions (each also read from an environment variable):\n", usage_line);
    for (int i = 0; i < n; i++) {
        char env[96], flag[80];
        sd_settings_env_name(&t[i], env, sizeof env);
        snprintf(flag, sizeof flag, "--%s %s", t[i].name,
                 t[i].type == SD_SET_STR || t[i].type == SD_SET_SECRET ? "TEXT" : t[i].type == SD_SET_INT ? "N" : "X");
        fprintf(f, "  %-24s %s\n  %-24s [%s, default %s]\n", flag, t[i].help, "", env,
                t[i].def ? t[i].def : "none");
    }
}

void sd_settings_print(FILE *f, const sd_setting *t, int n)
{
    static const char *src_name[] = {"default", "environment", "flag"};
    for (int i = 0; i < n; i++) {
        char v[512];
        value_text(&t[i], v, sizeof v);
        fprintf(f, "  %-18s %-40s (%s)\n", t[i].name, v,
                t == g_src_table && i < SD_SETTINGS_MAX ? src_name[g_src[i]] : "set");
    }
}

void sd_settings_free(const sd_setting *t, int n)
{
    for (int i = 0; i < n; i++)
        if (t[i].type == SD_SET_STR || t[i].type == SD_SET_SECRET) {
            free(*(char **)t[i].dst);
            *(char **)t[i].dst = NULL;
        }
}
