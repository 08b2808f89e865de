/* openapi.c — the served OpenAPI document: docs/openapi.json as compiled in,
 * with its servers entry pointing at this server (openapi.h).  The text is
 * kept as written (not re-serialised) so numbers such as 0.7 stay exact. */
#include "openapi.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

char *openapi_document(const char *public_url, const char *version)
{
    (void)version;   /* info.version is the document's own (docs/openapi.json) */
    static const char key[] = "\"servers\":[";
    const char *at = strstr(openapi_source, key);
    const char *end = at ? strchr(at, ']') : NULL;
    json_t *servers = json_pack("[{s:s}]", "url", public_url);
    char *list = servers ? json_dumps(servers, JSON_COMPACT) : NULL;
    json_decref(servers);
    if (!list) return NULL;
    if (!at || !end) {
        free(list);
        return strdup(openapi_source);
    }
    size_t head = (size_t)(at - openapi_source) + sizeof key - 2, ll = strlen(list), tail = strlen(end + 1);
    char *doc = malloc(head + ll + tail + 1);
    if (doc) {
        memcpy(doc, openapi_source, head);
        memcpy(doc + head, list, ll);
        memcpy(doc + head + ll, end + 1, tail + 1);
    }
    free(list);
    return doc;
}
