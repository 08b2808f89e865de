/* progress.h — a sampler progress line on stderr: "step i/N, X it/s, ETA Ts".
 * On a terminal it redraws one line with '\r' (and a bar); otherwise (logs,
 * pipes) it prints plain lines, at most one per step. */
#ifndef SD_CLI_PROGRESS_H
#define SD_CLI_PROGRESS_H

#include <stdio.h>

typedef struct progress {
    FILE *f;
    int tty;          /* redraw in place */
    double t0;        /* monotonic seconds at progress_start */
    int drawn;        /* a line is open on a tty */
    const char *label;
} progress;

/* Starts timing now.  tty < 0 = detect with isatty(fileno(f)). */
void progress_start(progress *p, FILE *f, const char *label, int tty);
/* Reports that `step` of `total` steps are done. */
void progress_step(progress *p, int step, int total);
/* Ends an open tty line. */
void progress_end(progress *p);

/* The text of one report without the bar: "step 3/20, 1.52 it/s, ETA 11s"
 * (rates below 1 it/s are written as "s/it", like tqdm).  Returns buf. */
char *progress_format(char *buf, size_t cap, int step, int total, double elapsed);

#endif
