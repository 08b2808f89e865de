/* queue.c — bounded FIFO, one worker thread, job table with retention (jobs.h).
 *
 * One mutex guards everything; the worker drops it while the engine runs.
 * A job holds references from: the queue/worker until it finishes, the id
 * table while listed, and each caller that got it from submit/find. */
#include "jobs.h"
#include "../base/alloc.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct job {
    char id[33];
    atomic_int refs;
    sd_request in;
    job_state state;
    int listed;
    int step, total;
    double t_submit, t_start, t_end;
    job_result *result;
    sd_err err;
    atomic_int cancel;       /* set: stop at the next step */
    int timed_out;
    sd_err cancel_err;       /* why it was cancelled */
    job *next;               /* FIFO link */
    job *tnext;              /* table link */
    struct jobq *q;          /* for the progress callback; valid while running */
    job_preview preview;     /* the latest preview while running (q->mu); none once it ended */
};

static const double latency_le[] = {1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600};
#define NBUCKETS (int)(sizeof latency_le / sizeof latency_le[0])

struct jobq {
    pthread_mutex_t mu;
    pthread_cond_t work_cv, change_cv;
    jobq_config cfg;
    job_run_fn run;
    void *run_ud;
    job *head, *tail;
    int depth;
    job *running;
    job *table;
    int nlisted;
    int stopping;
    int worker_started;
    pthread_t worker;
    unsigned gen;
    double unit_seconds;     /* EMA of seconds per (step x image x megapixel); 0 = unknown */
    jobq_stats st;
    uint64_t buckets[NBUCKETS + 1];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *job_state_name(job_state s)
{
    static const char *names[] = {"queued", "running", "succeeded", "failed", "cancelled"};
    return s <= JOB_CANCELLED ? names[s] : "unknown";
}

int job_finished(job_state s) { return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED; }

const char *job_id(const job *j) { return j->id; }

static void job_ref(job *j) { atomic_fetch_add(&j->refs, 1); }

void job_release(job *j)
{
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1) return;
    sd_request_free(&j->in);
    job_result_free(j->result);
    job_preview_free(&j->preview);
    free(j);
}

double job_units_upto(const sd_request *in, int step)
{
    const sd_gen_params *g = &in->gen;
    double steps = in->img2img ? g->steps * g->strength : g->steps;
    if (steps < 1) steps = 1;
    double w = in->img2img ? g->init_width : g->width, h = in->img2img ? g->init_height : g->height;
    double u = (step < steps ? step : steps) * g->n * (w * h / 1e6);
    /* hires fix: n x pass-2 steps after pass 1's, one image at a time, at
     * the second pass's size */
    int s2 = in->img2img ? 0 : sd_hires_total_steps(g) - g->steps;
    if (s2 > 0 && step > steps)
        u += (step - steps < s2 ? step - steps : s2) * ((double)g->hr_width * g->hr_height / 1e6);
    return u;
}

static double job_units(const sd_request *in) { return job_units_upto(in, INT_MAX); }

/* Called with q->mu held. */
static void changed(jobq *q)
{
    q->gen++;
    pthread_cond_broadcast(&q->change_cv);
}

/* Drops finished listed jobs past retention, then the oldest beyond max_retained. */
static void purge(jobq *q)
{
    double now = now_s();
    int kept = 0;
    job **pp = &q->table;
    while (*pp) {
        job *j = *pp;
        int drop = 0;
        if (job_finished(j->state)) {
            if (now - j->t_end > q->cfg.retention || kept >= q->cfg.max_retained) drop = 1;
            else kept++;
        }
        if (drop) {
            *pp = j->tnext;
            q->nlisted--;
            job_release(j);
        } else {
            pp = &j->tnext;
        }
    }
}

static int on_progress(void *ud, int step, int total)
{
    job *j = ud;
    jobq *q = j->q;
    pthread_mutex_lock(&q->mu);
    j->step = step;
    j->total = total;
    if (q->cfg.job_timeout > 0 && now_s() - j->t_start > q->cfg.job_timeout && !atomic_load(&j->cancel)) {
        j->timed_out = 1;
        sd_errf(&j->cancel_err, SD_ETIMEOUT, "", "the job ran longer than the %g s job time limit and was stopped",
                q->cfg.job_timeout);
        atomic_store(&j->cancel, 1);
    }
    int stop = atomic_load(&j->cancel);
    pthread_mutex_unlock(&q->mu);
    return stop;
}

void job_preview_free(job_preview *p)
{
    if (!p) return;
    free(p->png);
    memset(p, 0, sizeof *p);
}

/* The running job's preview sink (sd_request.preview): a copy of the PNG
 * replaces the one kept; on OOM the previous one stays. */
static void on_preview(void *ud, int step, int total, const uint8_t *png, size_t len)
{
    job *j = ud;
    uint8_t *copy = len ? malloc(len) : NULL;
    if (!copy) return;
    memcpy(copy, png, len);
    job_preview old = {0};
    pthread_mutex_lock(&j->q->mu);
    old = j->preview;
    j->preview = (job_preview){.png = copy, .len = len, .step = step, .total = total};
    pthread_mutex_unlock(&j->q->mu);
    job_preview_free(&old);
}

int jobq_preview(jobq *q, job *j, job_preview *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    if (j->state == JOB_RUNNING && j->preview.png) {
        out->png = malloc(j->preview.len);
        if (out->png) {
            memcpy(out->png, j->preview.png, j->preview.len);
            out->len = j->preview.len;
            out->step = j->preview.step;
            out->total = j->preview.total;
        } else {
            rc = sd_errf(err, SD_ENOMEM, "preview", "out of memory copying the job's preview");
        }
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* Lowers this thread's priority by `delta` nice levels (Linux: nice is per
 * thread and inherited by the threads it creates, here the engine's OpenMP
 * team).  Raising a nice value needs no privilege; failure only costs latency. */
static void lower_priority(int delta)
{
    if (delta <= 0) return;
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, tid);
    if (cur == -1 && errno) return;
    int want = cur + delta > 19 ? 19 : cur + delta;
    if (want > cur) setpriority(PRIO_PROCESS, tid, want);
}

static void *worker_main(void *arg)
{
    jobq *q = arg;
    lower_priority(q->cfg.worker_nice);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping) pthread_cond_wait(&q->work_cv, &q->mu);
        if (!q->head) break;
        job *j = q->head;
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        j->next = NULL;
        q->depth--;
        q->running = j;
        j->state = JOB_RUNNING;
        j->t_start = now_s();
        j->total = j->in.img2img ? (int)(j->in.gen.steps * j->in.gen.strength) : sd_hires_total_steps(&j->in.gen);
        j->in.preview = (req_preview_sink){.put = on_preview, .ud = j};
        changed(q);
        pthread_mutex_unlock(&q->mu);

        job_result *result = NULL;
        sd_err e;
        sd_err_clear(&e);
        int rc = q->run(q->run_ud, &j->in, on_progress, j, &result, &e);

        pthread_mutex_lock(&q->mu);
        j->t_end = now_s();
        double run_s = j->t_end - j->t_start;
        if (rc == 0 && result) {
            j->state = JOB_SUCCEEDED;
            j->result = result;
            q->st.succeeded++;
            q->st.images += (uint64_t)j->in.gen.n;
            if (j->step > 0) {
                q->st.step_seconds_sum += run_s;
                q->st.steps += (uint64_t)j->step;
            }
            double u = job_units(&j->in);
            if (u > 0) q->unit_seconds = q->unit_seconds > 0 ? 0.7 * q->unit_seconds + 0.3 * run_s / u : run_s / u;
            double lat = j->t_end - j->t_submit;
            int b = 0;
            while (b < NBUCKETS && lat > latency_le[b]) b++;
            q->buckets[b]++;
            q->st.latency_sum += lat;
            q->st.latency_count++;
        } else {
            job_result_free(result);
            if (j->timed_out) {
                j->state = JOB_FAILED;
                j->err = j->cancel_err;
                q->st.failed++;
            } else if (atomic_load(&j->cancel)) {
                j->state = JOB_CANCELLED;
                j->err = j->cancel_err;
                q->st.cancelled++;
            } else {
                j->state = JOB_FAILED;
                j->err = e;
                if (j->err.code == SD_OK) sd_errf(&j->err, SD_EINTERNAL, "", "the job failed without a reason");
                q->st.failed++;
                /* The client sees this too; the operator needs it where the access log is. */
                fprintf(stderr, "sdserve: job %s failed: %s\n", j->id, j->err.msg);
            }
        }
        /* The pixels of the init image are no longer needed. */
        free((uint8_t *)j->in.gen.init_rgb);
        j->in.gen.init_rgb = NULL;
        /* A preview is the running job's only: the finished one has its images. */
        job_preview_free(&j->preview);
        j->in.preview = (req_preview_sink){0};
        free((uint8_t *)j->in.gen.mask);   /* and of the mask */
        j->in.gen.mask = NULL;
        q->running = NULL;
        changed(q);
        purge(q);
        job_release(j);  /* the worker's reference */
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

jobq *jobq_create(const jobq_config *cfg, job_run_fn run, void *run_ud, sd_err *err)
{
    jobq *q = sd_calloc(1, sizeof *q);
    if (!q) {
        sd_errf(err, SD_ENOMEM, "", "out of memory creating the job queue");
        return NULL;
    }
    q->cfg = *cfg;
    if (q->cfg.queue_size < 1) q->cfg.queue_size = 1;
    if (q->cfg.max_retained < 1) q->cfg.max_retained = 1000;
    q->run = run;
    q->run_ud = run_ud;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work_cv, NULL);
    pthread_cond_init(&q->change_cv, NULL);
    if (pthread_create(&q->worker, NULL, worker_main, q)) {
        sd_errf(err, SD_EINTERNAL, "", "cannot start the worker thread");
        pthread_mutex_destroy(&q->mu);
        free(q);
        return NULL;
    }
    q->worker_started = 1;
    return q;
}

/* Queued job leaves the queue, cancelled (q->mu held). */
static void cancel_queued(jobq *q, job *j, const char *reason)
{
    job **pp = &q->head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp) return;
    *pp = j->next;
    if (q->tail == j) q->tail = prev;
    j->next = NULL;
    q->depth--;
    j->state = JOB_CANCELLED;
    j->t_end = now_s();
    sd_errf(&j->err, SD_ECANCELLED, "", "%s", reason);
    q->st.cancelled++;
    changed(q);
    job_release(j);   /* the queue's reference */
}

void jobq_shutdown(jobq *q, const char *reason)
{
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    while (q->head) cancel_queued(q, q->head, reason);
    if (q->running) {
        sd_errf(&q->running->cancel_err, SD_ECANCELLED, "", "%s", reason);
        atomic_store(&q->running->cancel, 1);
    }
    pthread_cond_broadcast(&q->work_cv);
    changed(q);
    pthread_mutex_unlock(&q->mu);
}

void jobq_destroy(jobq *q, const char *reason)
{
    if (!q) return;
    jobq_shutdown(q, reason ? reason : "the server is shutting down");
    if (q->worker_started) pthread_join(q->worker, NULL);
    pthread_mutex_lock(&q->mu);
    while (q->table) {
        job *j = q->table;
        q->table = j->tnext;
        job_release(j);
    }
    pthread_mutex_unlock(&q->mu);
    pthread_cond_destroy(&q->work_cv);
    pthread_cond_destroy(&q->change_cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static int retry_seconds(jobq *q)
{
    /* Time for the running job plus one queued job to clear, roughly. */
    double per = 0;
    if (q->unit_seconds > 0 && q->head) per = q->unit_seconds * job_units(&q->head->in);
    int s = per > 0 ? (int)(per + 1) : 5;
    return s < 1 ? 1 : s > 600 ? 600 : s;
}

int jobq_submit(jobq *q, sd_request *in, int listed, job **out, int *retry_after, sd_err *err)
{
    *out = NULL;
    job *j = sd_calloc(1, sizeof *j);
    if (!j) {
        sd_request_free(in);
        return sd_errf(err, SD_ENOMEM, "", "out of memory queueing the job");
    }
    uint8_t raw[16];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        for (size_t i = 0; i < sizeof raw; i++) raw[i] = (uint8_t)(rand() ^ (int)(intptr_t)j >> (i % 8));
    }
    for (int i = 0; i < 16; i++) snprintf(j->id + 2 * i, 3, "%02x", raw[i]);
    j->in = *in;
    memset(in, 0, sizeof *in);
    j->q = q;
    j->listed = listed;
    j->state = JOB_QUEUED;
    atomic_init(&j->refs, 1);   /* the caller's */
    atomic_init(&j->cancel, 0);

    pthread_mutex_lock(&q->mu);
    if (q->stopping || q->depth >= q->cfg.queue_size) {
        int stopping = q->stopping;
        if (retry_after) *retry_after = retry_seconds(q);
        q->st.rejected++;
        pthread_mutex_unlock(&q->mu);
        job_release(j);
        if (stopping) return sd_errf(err, SD_EBUSY, "", "the server is shutting down; retry on another instance");
        return sd_errf(err, SD_EBUSY, "", "the job queue is full (%d waiting); retry later", q->cfg.queue_size);
    }
    purge(q);
    j->t_submit = now_s();
    job_ref(j);                 /* the queue's / worker's */
    if (q->tail) q->tail->next = j;
    else q->head = j;
    q->tail = j;
    q->depth++;
    if (listed) {
        job_ref(j);             /* the table's */
        j->tnext = q->table;
        q->table = j;
        q->nlisted++;
    }
    q->st.submitted++;
    changed(q);
    pthread_cond_signal(&q->work_cv);
    pthread_mutex_unlock(&q->mu);
    *out = j;
    return 0;
}

job *jobq_find(jobq *q, const char *id)
{
    pthread_mutex_lock(&q->mu);
    purge(q);
    job *j = q->table;
    while (j && strcmp(j->id, id)) j = j->tnext;
    if (j) job_ref(j);
    pthread_mutex_unlock(&q->mu);
    return j;
}

job *jobq_find_owned(jobq *q, const char *id, int owner)
{
    job *j = jobq_find(q, id);
    if (j && j->in.owner != owner) {   /* owner is set at submission and never changes */
        job_release(j);
        j = NULL;
    }
    return j;
}

job_state jobq_cancel(jobq *q, job *j, const char *reason)
{
    pthread_mutex_lock(&q->mu);
    if (j->state == JOB_QUEUED) {
        cancel_queued(q, j, reason);
    } else if (j->state == JOB_RUNNING && !atomic_load(&j->cancel)) {
        sd_errf(&j->cancel_err, SD_ECANCELLED, "", "%s", reason);
        atomic_store(&j->cancel, 1);
    }
    job_state s = j->state;
    pthread_mutex_unlock(&q->mu);
    return s;
}

job_state jobq_state(jobq *q, job *j)
{
    pthread_mutex_lock(&q->mu);
    job_state s = j->state;
    pthread_mutex_unlock(&q->mu);
    return s;
}

void jobq_status(jobq *q, job *j, job_status *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&q->mu);
    double now = now_s();
    out->state = j->state;
    out->position = -1;
    out->step = j->step;
    out->total = j->total;
    out->n = j->in.gen.n;
    req_output_size(&j->in, &out->width, &out->height);
    out->eta = -1;
    out->elapsed = (job_finished(j->state) ? j->t_end : now) - j->t_submit;
    if (j->state == JOB_QUEUED) {
        int pos = 0;
        double ahead = 0;
        for (job *k = q->head; k && k != j; k = k->next) {
            pos++;
            ahead += job_units(&k->in);
        }
        out->position = pos;
        if (q->unit_seconds > 0) {
            double eta = q->unit_seconds * (ahead + job_units(&j->in));
            if (q->running) {
                const job *r = q->running;
                eta += q->unit_seconds * (job_units(&r->in) - job_units_upto(&r->in, r->step));
            }
            out->eta = eta;
        }
    } else if (j->state == JOB_RUNNING) {
        out->run_seconds = now - j->t_start;
        double done = j->step > 0 ? job_units_upto(&j->in, j->step) : 0;
        if (done > 0) out->eta = out->run_seconds / done * (job_units(&j->in) - done);
        else if (q->unit_seconds > 0) out->eta = q->unit_seconds * job_units(&j->in);
    } else {
        out->run_seconds = j->t_start > 0 ? j->t_end - j->t_start : 0;
        out->eta = 0;
        out->err = j->err;
        if (j->result && !(out->result = job_result_dup(j->result)))   /* a success whose copy failed: 503 */
            sd_errf(&out->err, SD_ENOMEM, "", "out of memory copying the job's result");
    }
    pthread_mutex_unlock(&q->mu);
}

void jobq_wait_change(jobq *q, unsigned *gen, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->mu);
    while (q->gen == *gen)
        if (pthread_cond_timedwait(&q->change_cv, &q->mu, &ts)) break;
    *gen = q->gen;
    pthread_mutex_unlock(&q->mu);
}

void jobq_get_stats(jobq *q, jobq_stats *out)
{
    pthread_mutex_lock(&q->mu);
    *out = q->st;
    out->depth = q->depth;
    out->running = q->running != NULL;
    out->listed = q->nlisted;
    out->nbuckets = NBUCKETS;
    out->bucket_le = latency_le;
    for (int b = 0; b <= NBUCKETS && b < 16; b++) out->bucket_count[b] = q->buckets[b];
    pthread_mutex_unlock(&q->mu);
}
