/* alloc.c — the allocation seam (alloc.h): libc's allocator behind one
 * counter that a test can make fail at the N-th call, and sd_panic, the one
 * abort of the tree. */
#include "alloc.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong g_calls;     /* seam calls so far */
static atomic_ulong g_fail_at;   /* the call number that fails; 0 = none */
static atomic_int g_failed;

/* 1 if this call is the one armed to fail. */
static int fail_now(void)
{
    unsigned long k = atomic_fetch_add(&g_calls, 1) + 1;
    unsigned long at = atomic_load(&g_fail_at);
    if (!at || k != at) return 0;
    atomic_store(&g_fail_at, 0);
    atomic_store(&g_failed, 1);
    return 1;
}

void *sd_malloc(size_t n) { return fail_now() ? NULL : malloc(n); }

void *sd_calloc(size_t count, size_t size) { return fail_now() ? NULL : calloc(count, size); }

void *sd_realloc(void *p, size_t n) { return fail_now() ? NULL : realloc(p, n); }

char *sd_strdup(const char *s) { return fail_now() ? NULL : strdup(s); }

char *sd_strndup(const char *s, size_t n) { return fail_now() ? NULL : strndup(s, n); }

void *sd_aligned_alloc(size_t align, size_t size)
{
    if (fail_now()) return NULL;
    return aligned_alloc(align, (size + align - 1) & ~(align - 1));
}

unsigned long sd_alloc_count(void) { return atomic_load(&g_calls); }

void sd_alloc_fail_at(unsigned long n)
{
    atomic_store(&g_failed, 0);
    atomic_store(&g_fail_at, n ? atomic_load(&g_calls) + n : 0);
}

int sd_alloc_failed(void) { return atomic_load(&g_failed); }

void sd_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sdserve: internal error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
