/* api_models.c — GET /models: the checkpoints a request's model field may
 * name (server_config.list_models; without it the one model the server
 * was started with), each with family, short hash, file, size, whether it
 * is resident, which is the default, and whether requests may use it
 * (usable, reason) (docs/SERVER.md "Several models").
 * server_models() is the list every dialect and GET /health read. */
#include "server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int server_models(http_server *s, server_model *out, int max, sd_err *err)
{
    if (s->cfg.list_models) {
        int n = s->cfg.list_models(s->cfg.check_ctx, out, max, err);
        return n > max ? max : n;   /* the ones written */
    }
    if (max < 1) return 1;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", s->cfg.model_name ? s->cfg.model_name : "");
    snprintf(out->family, sizeof out->family, "%s", s->cfg.model_family ? s->cfg.model_family : "");
    snprintf(out->hash, sizeof out->hash, "%s", s->cfg.model_hash ? s->cfg.model_hash : "");
    out->loaded = !atomic_load(&s->loading);
    out->is_default = 1;
    return 1;
}

static int model_default(const server_model *ms, int n)
{
    for (int i = 0; i < n; i++)
        if (ms[i].is_default) return i;
    return n > 0 ? 0 : -1;
}

int server_model_pick(const server_model *ms, int n, const char *name, size_t len, const model_naming *how)
{
    if (!name) return model_default(ms, n);
    if (memchr(name, 0, len)) return -1;
    for (const char *const *d = how ? how->defaults : NULL; d && *d; d++)
        if (len >= strlen(*d) && !strncmp(name, *d, strlen(*d))) return model_default(ms, n);
    const char *br = how && how->titles ? strstr(name, " [") : NULL;
    if (br && len && name[len - 1] == ']') len = (size_t)(br - name);   /* "name [hash]" -> name */
    for (int i = 0; i < n; i++)
        if (strlen(ms[i].name) == len && !strncmp(ms[i].name, name, len)) return i;
    return -1;
}

/* "" as JSON null */
static json_t *str_or_null(const char *v) { return *v ? json_string(v) : json_null(); }

/* usable / reason: whether requests may name it, and why not (its header,
 * or its checker, failed on the file as it is now) */
static json_t *model_json(const server_model *m)
{
    return json_pack("{s:s, s:o, s:o, s:o, s:s, s:I, s:b, s:b, s:b, s:o}", "name", m->name, "family",
                     str_or_null(m->family), "hash", str_or_null(m->hash), "sha256", str_or_null(m->sha256), "file",
                     m->file, "size", (json_int_t)m->size, "loaded", m->loaded, "default", m->is_default, "usable",
                     !m->refused[0], "reason", str_or_null(m->refused));
}

enum MHD_Result get_models(http_server *s, req *r, struct MHD_Connection *c)
{
    sd_err e;
    sd_err_clear(&e);
    server_model *v = calloc(SERVER_MODELS_MAX, sizeof *v);
    if (!v) return reply_errorf(c, &r->ri, SD_ENOMEM, "", "out of memory");
    int n = server_models(s, v, SERVER_MODELS_MAX, &e);
    if (n < 0) {
        free(v);
        return reply_error(c, &r->ri, &e, 0, NULL);
    }
    json_t *arr = json_array();
    for (int i = 0; arr && i < n && i < SERVER_MODELS_MAX; i++)
        if (json_array_append_new(arr, model_json(&v[i]))) {
            json_decref(arr);
            arr = NULL;
        }
    free(v);
    json_t *b = arr ? json_pack("{s:o}", "models", arr) : NULL;
    if (!b) return reply_errorf(c, &r->ri, SD_ENOMEM, "", "out of memory");
    return reply_json(c, &r->ri, 200, b);
}
