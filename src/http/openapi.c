/* openapi.c — fills the served OpenAPI document's server URL and version (openapi.h). */
#include "openapi.h"

#include <jansson.h>

char *openapi_document(const char *public_url, const char *version)
{
    json_t *doc = json_loads(openapi_source, 0, NULL);
    if (!doc) return NULL;
    json_object_set_new(doc, "servers", json_pack("[{s:s}]", "url", public_url));
    json_t *info = json_object_get(doc, "info");
    if (info && version) json_object_set_new(info, "version", json_string(version));
    char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    return text;
}
