/* test_assert.c — the programming-error half of the failure policy
 * (src/base/alloc.h): SD_ASSERT at the ops' entry points stops a call with
 * an impossible shape through sd_panic (SIGABRT) in builds without NDEBUG
 * (the ASan tier), and is compiled out of the -O2 release build (NDEBUG,
 * Makefile), where the same calls are not made.  Each bad call runs in a
 * forked child. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"
#include "../../src/base/alloc.h"
#include "../../src/engine/ops/ops.h"
#include "tops.h"

#ifndef NDEBUG
static float g_buf[64];

static void bad_linear(void) { op_linear(t_ops(), g_buf, 2, 0, t_w(g_buf, 4), NULL, 2, g_buf); }             /* IN = 0 */
static void bad_group_norm(void) { op_group_norm_nhwc(t_ops(), g_buf, 1, 6, 2, 4, NULL, NULL, NULL, 1e-5f, 0, g_buf); }  /* C % G */
static void bad_conv(void) { op_conv2d_nhwc(t_ops(), g_buf, 1, 1, 2, 2, t_w(g_buf, (size_t)1 * 1 * 5 * 5), NULL, 1, 5, 5, 1, 0, g_buf, 0); }  /* kernel > input */
static void bad_attention(void) { op_attention(t_ops(), g_buf, 4, g_buf, 4, g_buf, 4, 1, 2, 2, 2, 4, 1.f, g_buf); }  /* ld < H*D */
#endif

static void false_assert(void) { SD_ASSERT(0); }

/* The signal that ended a child running f (0 if it returned). */
static int child_signal(void (*f)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);   /* the panic message */
        f();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}

int main(void)
{
    t_ops_init(1);
#ifdef NDEBUG
    printf("# NDEBUG build: the bad op calls run in the ASan tier only\n");
    int sig = child_signal(false_assert);
    CHECKF(sig == 0, "release build: SD_ASSERT(0) is compiled out", "child ended with signal %d", sig);
#else
    int sig = child_signal(false_assert);
    CHECKF(sig == SIGABRT, "debug build: SD_ASSERT(0) panics", "child ended with signal %d", sig);
    struct { const char *name; void (*f)(void); } cases[] = {
        {"op_linear with IN = 0 panics", bad_linear},
        {"op_group_norm_nhwc with C not a multiple of G panics", bad_group_norm},
        {"op_conv2d_nhwc with a kernel larger than the padded input panics", bad_conv},
        {"op_attention with a leading dimension below H*D panics", bad_attention},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sig = child_signal(cases[i].f);
        CHECKF(sig == SIGABRT, cases[i].name, "child ended with signal %d, not SIGABRT", sig);
    }
#endif
    return t_done();
}
