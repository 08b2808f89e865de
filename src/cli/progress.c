/* progress.c — see progress.h. */
#include "progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_duration(char *b, size_t cap, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(b, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(b, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(b, cap, "%lds", t);
}

char *progress_format(char *buf, size_t cap, int step, int total, double elapsed)
{
    char rate[32] = "? it/s", eta[32] = "?";
    if (step > 0 && elapsed > 0) {
        double r = step / elapsed;
        if (r >= 1) snprintf(rate, sizeof rate, "%.2f it/s", r);
        else snprintf(rate, sizeof rate, "%.2f s/it", 1 / r);
        fmt_duration(eta, sizeof eta, (total - step) / r);
    }
    snprintf(buf, cap, "step %d/%d, %s, ETA %s", step, total, rate, eta);
    return buf;
}

void progress_start(progress *p, FILE *f, const char *label, int tty)
{
    memset(p, 0, sizeof *p);
    p->f = f;
    p->tty = tty < 0 ? isatty(fileno(f)) : tty;
    p->t0 = now_s();
    p->label = label ? label : "";
}

void progress_step(progress *p, int step, int total)
{
    char text[128];
    progress_format(text, sizeof text, step, total, now_s() - p->t0);
    if (p->tty) {
        enum { BAR = 24 };
        char bar[BAR + 1];
        int fill = total > 0 ? step * BAR / total : 0;
        for (int i = 0; i < BAR; i++) bar[i] = i < fill ? '#' : '.';
        bar[BAR] = 0;
        /* \033[K clears what a longer previous line left behind */
        fprintf(p->f, "\r%s[%s] %s\033[K", p->label, bar, text);
        p->drawn = 1;
    } else {
        fprintf(p->f, "%s%s\n", p->label, text);
    }
    fflush(p->f);
}

void progress_end(progress *p)
{
    if (p->tty && p->drawn) fputc('\n', p->f);
    p->drawn = 0;
    fflush(p->f);
}
