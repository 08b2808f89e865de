/* etag.h — entity tags and the If-None-Match condition (RFC 9110 8.8.3,
 * 13.1.2) for GET /images/{name}, whose names are content-derived: the
 * name in quotes is a strong tag that never changes.  A parser of one
 * header value; it allocates nothing and reads no further than the value's
 * NUL.  Fuzzed by tests/fuzz/fuzz_etag.c.  Private to src/http. */
#ifndef SD_HTTP_ETAG_H
#define SD_HTTP_ETAG_H

/* 1 when the If-None-Match field value `field` matches `etag` (a whole
 * entity tag with its quotes: "\"a61b...\""): the value is "*", or a list
 * (comma-separated, empty elements and blanks allowed) holding an entity
 * tag whose opaque part equals etag's, weak (W/"...") or not, as the weak
 * comparison this condition uses wants.  0 when nothing matches, and for
 * a value that is not such a list (it is then ignored: a full answer is
 * always a safe one). */
int http_if_none_match(const char *field, const char *etag);

#endif
