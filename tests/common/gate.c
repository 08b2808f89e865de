/* gate.c — see gate.h. */
#include "gate.h"

#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int gate_open, started;

void gate_set(int open)
{
    pthread_mutex_lock(&mu);
    gate_open = open;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

int gate_started(void)
{
    pthread_mutex_lock(&mu);
    int n = started;
    pthread_mutex_unlock(&mu);
    return n;
}

void gate_wait_started(int n)
{
    pthread_mutex_lock(&mu);
    while (started < n) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

void gate_enter(void)
{
    pthread_mutex_lock(&mu);
    started++;
    pthread_cond_broadcast(&cv);
    while (!gate_open) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

int gate_steps(int total, int usec, sd_progress_fn progress, void *pud)
{
    for (int s = 1; s <= total; s++) {
        usleep(usec);
        if (progress(pud, s, total)) return 1;
    }
    return 0;
}
