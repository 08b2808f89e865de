/* openapi.h — the OpenAPI 3 document of the HTTP API (docs/openapi.json,
 * compiled in as openapi_doc.c by scripts/openapi-to-c.py). */
#ifndef SD_HTTP_OPENAPI_H
#define SD_HTTP_OPENAPI_H

extern const char openapi_source[];
/* The document with servers[0].url = public_url and info.version = version:
 * malloc'd JSON text, or NULL on OOM. */
char *openapi_document(const char *public_url, const char *version);

#endif
