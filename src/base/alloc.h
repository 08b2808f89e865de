/* alloc.h — the one allocation seam of sdserve, and the one place that may
 * abort.
 *
 * Every allocation our code makes goes through sd_malloc / sd_calloc /
 * sd_realloc / sd_strdup / sd_strndup / sd_aligned_alloc (free with plain
 * free()).  They behave exactly like the libc calls, NULL on failure, and the
 * caller turns NULL into SD_ENOMEM (503) — an allocation failure is an error
 * that travels up, never an abort in the middle of a request.
 *
 * Tests count the calls (sd_alloc_count) and make the N-th call from now
 * fail (sd_alloc_fail_at), like sqlite's fault injection; the sweep in
 * tests/unit/test_alloc_fail.c fails each allocation of a request in turn.
 * Allocations inside oneDNN, libpng, libjpeg, libwebp, libcurl, jansson and
 * libmicrohttpd do not pass here (docs/RELIABILITY.md).
 *
 * sd_panic() is the declared place for programming errors (an impossible
 * oneDNN argument, a broken invariant): it prints the reason and aborts.
 * Nothing a client sends may reach it.  SD_ASSERT(cond) checks invariants
 * (shapes at op entries) in builds without NDEBUG — the ASan build and any
 * -O0/-O1 build — and compiles to nothing in the -O2 release build, which
 * defines NDEBUG. */
#ifndef SD_ALLOC_H
#define SD_ALLOC_H

#include <stddef.h>

void *sd_malloc(size_t n);
void *sd_calloc(size_t count, size_t size);
void *sd_realloc(void *p, size_t n);
char *sd_strdup(const char *s);
char *sd_strndup(const char *s, size_t n);
/* size is rounded up to a multiple of align (a power of two) */
void *sd_aligned_alloc(size_t align, size_t size);

/* Test hooks.  The count of seam calls so far (all threads). */
unsigned long sd_alloc_count(void);
/* Make the n-th seam call from now fail (n >= 1), once; 0 = never. */
void sd_alloc_fail_at(unsigned long n);
/* 1 if the failure armed by sd_alloc_fail_at has happened. */
int sd_alloc_failed(void);

/* A programming error: print "sdserve: internal error: ..." and abort. */
_Noreturn void sd_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef NDEBUG
#define SD_ASSERT(cond) ((void)0)
#else
#define SD_ASSERT(cond) \
    ((cond) ? (void)0 : sd_panic("%s:%d: %s: assertion failed: %s", __FILE__, __LINE__, __func__, #cond))
#endif

#endif
