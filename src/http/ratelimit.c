/* ratelimit.c — token buckets by client name in an open-addressing table
 * (ratelimit.h). */
#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RL_NAME 80

typedef struct bucket {
    char who[RL_NAME];   /* "" = empty slot */
    double tokens, last;
} bucket;

struct ratelimit {
    pthread_mutex_t mu;
    double rate, burst;  /* tokens per second, bucket size */
    int max, count;
    size_t cap;          /* power of two, >= 2 * max */
    bucket *b;
};

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h ^ (h >> 15);
}

ratelimit *rl_create(double per_minute, double burst, int max_clients)
{
    if (!(per_minute > 0)) return NULL;
    ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl) return NULL;
    rl->rate = per_minute / 60.0;
    rl->burst = burst >= 1 ? burst : (per_minute >= 1 ? per_minute : 1);
    rl->max = max_clients > 0 ? max_clients : 10000;
    rl->cap = 16;
    while (rl->cap < (size_t)rl->max * 2) rl->cap *= 2;
    rl->b = calloc(rl->cap, sizeof *rl->b);
    if (!rl->b) {
        free(rl);
        return NULL;
    }
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void rl_free(ratelimit *rl)
{
    if (!rl) return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->b);
    free(rl);
}

static void refill(const ratelimit *rl, bucket *e, double now)
{
    if (now > e->last) {
        e->tokens = fmin(rl->burst, e->tokens + (now - e->last) * rl->rate);
        e->last = now;
    }
}

/* Drops every bucket that is full again and re-inserts the others. */
static void sweep(ratelimit *rl, double now)
{
    bucket *old = rl->b;
    bucket *nb = calloc(rl->cap, sizeof *nb);
    if (!nb) return;
    rl->b = nb;
    rl->count = 0;
    for (size_t i = 0; i < rl->cap; i++) {
        if (!old[i].who[0]) continue;
        refill(rl, &old[i], now);
        if (old[i].tokens >= rl->burst) continue;
        size_t j = name_hash(old[i].who) & (rl->cap - 1);
        while (nb[j].who[0]) j = (j + 1) & (rl->cap - 1);
        nb[j] = old[i];
        rl->count++;
    }
    free(old);
}

int rl_take(ratelimit *rl, const char *who, double now)
{
    if (!rl) return 0;
    char name[RL_NAME];
    snprintf(name, sizeof name, "%s", who && *who ? who : "-");
    pthread_mutex_lock(&rl->mu);
    size_t mask = rl->cap - 1, j = name_hash(name) & mask;
    while (rl->b[j].who[0] && strcmp(rl->b[j].who, name)) j = (j + 1) & mask;
    bucket *e = &rl->b[j];
    if (!e->who[0]) {
        if (rl->count >= rl->max) {
            sweep(rl, now);
            j = name_hash(name) & mask;
            while (rl->b[j].who[0]) j = (j + 1) & mask;
            e = &rl->b[j];
            if (rl->count >= rl->max) {   /* every tracked client is busy: let this one through */
                pthread_mutex_unlock(&rl->mu);
                return 0;
            }
        }
        memcpy(e->who, name, sizeof name);
        e->tokens = rl->burst;
        e->last = now;
        rl->count++;
    }
    refill(rl, e, now);
    int wait = 0;
    if (e->tokens >= 1) {
        e->tokens -= 1;
    } else {
        wait = (int)ceil((1 - e->tokens) / rl->rate);
        if (wait < 1) wait = 1;
    }
    pthread_mutex_unlock(&rl->mu);
    return wait;
}

int rl_clients(ratelimit *rl)
{
    if (!rl) return 0;
    pthread_mutex_lock(&rl->mu);
    int n = rl->count;
    pthread_mutex_unlock(&rl->mu);
    return n;
}
