/* test_jobs.c — the job queue (src/jobs/queue.c) with a fake runner: FIFO
 * order, bounded queue (EBUSY), cancel while queued and while running,
 * job time limit, retention, statistics, shutdown, and lookups by owner
 * (API key); the structured job result (src/jobs/result.c) as snapshots
 * copy it. */
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gate.h"
#include "t.h"
#include "../../src/jobs/jobs.h"

/* The fake runner records the order jobs start in (one worker thread; the
 * test reads it once the jobs are done), then holds at the gate (gate.h). */
static uint64_t order[16];
static int norder;

static int fake_run(void *ud, const sd_request *in, sd_progress_fn progress, void *pud, job_result **result,
                    sd_err *err)
{
    order[norder++ & 15] = in->gen.seed;
    gate_enter();
    if (gate_steps(in->gen.steps, 2000, progress, pud)) return sd_errf(err, SD_ECANCELLED, "", "cancelled");
    if (in->gen.seed == 666) return sd_errf(err, SD_EINTERNAL, "", "fake failure");
    job_result *r = job_result_new(1);
    if (!r) return sd_errf(err, SD_ENOMEM, "", "out of memory");
    char buf[64];
    snprintf(buf, sizeof buf, "u%llu", (unsigned long long)in->gen.seed);
    r->images[0].url = strdup(buf);
    r->images[0].key = strdup(buf + 1);
    r->images[0].mime = "image/png";
    r->images[0].seed = in->gen.seed;
    r->prompt = strdup(in->gen.prompt);
    r->steps = in->gen.steps;
    *result = r;
    return 0;
}

/* job_result_dup: a deep copy (nothing shared with the original), NULL stays NULL. */
static void test_result_copy(void)
{
    job_result *r = job_result_new(2);
    CHECK(r && r->n == 2 && r->denoise < 0 && !r->images[1].url, "job_result_new: n empty images, txt2img");
    r->images[0].url = strdup("http://h/images/a.png");
    r->images[0].key = strdup("a.png");
    r->images[0].mime = "image/png";
    r->images[0].seed = 7;
    r->images[1].url = strdup("http://h/images/b.webp");
    r->images[1].key = strdup("b.webp");
    r->images[1].mime = "image/webp";
    r->images[1].seed = 8;
    r->prompt = strdup("a fox");
    r->negative = strdup("");
    r->model_hash = strdup("abcd");
    r->width = 64;
    r->height = 48;
    r->steps = 4;
    r->cfg = 7.5f;
    r->denoise = 0.6f;
    r->sampler = "Euler a";
    job_result *c = job_result_dup(r);
    CHECK(c && c->n == 2 && c->images != r->images && c->images[1].url != r->images[1].url &&
              !strcmp(c->images[1].url, "http://h/images/b.webp") && !strcmp(c->images[0].key, "a.png") &&
              !strcmp(c->images[1].mime, "image/webp") && c->images[1].seed == 8,
          "job_result_dup: images copied, not shared");
    CHECK(c && c->prompt != r->prompt && !strcmp(c->prompt, "a fox") && !strcmp(c->negative, "") &&
              c->model_name == NULL && !strcmp(c->model_hash, "abcd") && c->width == 64 && c->height == 48 &&
              c->steps == 4 && c->cfg == 7.5f && c->denoise == 0.6f && !strcmp(c->sampler, "Euler a"),
          "job_result_dup: generation info copied (NULL stays NULL)");
    job_result_free(r);
    CHECK(c && !strcmp(c->images[0].url, "http://h/images/a.png"), "the copy outlives the original");
    job_result_free(c);
    CHECK(job_result_dup(NULL) == NULL, "job_result_dup(NULL) = NULL");
    job_result_free(NULL);
}

static sd_request input(uint64_t seed, int steps)
{
    sd_request in = {0};
    in.gen.prompt = strdup("p");
    in.gen.negative = strdup("");
    in.gen.seed = seed;
    in.gen.n = 1;
    in.gen.width = in.gen.height = 64;
    in.gen.steps = steps;
    in.gen.cfg = 7;
    return in;
}

static job_state wait_done(jobq *q, job *j, job_status *st)
{
    unsigned gen = 0;
    for (;;) {
        jobq_status(q, j, st);
        if (job_finished(st->state)) return st->state;
        job_result_free(st->result);
        jobq_wait_change(q, &gen, 200);
    }
}

/* job_units_upto: what ETAs and Retry-After weigh jobs by.  A hires job's
 * second pass counts at its own size (it was counted as first-pass steps:
 * a 2x hires job ran ~4x its units, and the queue's seconds per unit and
 * every later ETA came out that much too long). */
static void test_units(void)
{
    sd_request in = input(1, 10);   /* 64x64: 0.004096 MP */
    in.gen.n = 2;
    const double mp = 64.0 * 64 / 1e6;
    CHECK(fabs(job_units_upto(&in, INT_MAX) - 10 * 2 * mp) < 1e-12 && fabs(job_units_upto(&in, 4) - 4 * 2 * mp) < 1e-12,
          "txt2img: steps x images x megapixels, and a share of them per step");
    in.gen.hr_upscaler = SD_HR_LATENT;
    in.gen.hr_width = in.gen.hr_height = 128;
    in.gen.hr_strength = 0.5f;   /* pass 2: the steps after strength's start */
    int s2 = (sd_hires_total_steps(&in.gen) - 10) / 2;
    double all = job_units_upto(&in, INT_MAX), hmp = 128.0 * 128 / 1e6;
    CHECKF(s2 >= 1 && fabs(all - (10 * 2 * mp + 2 * s2 * hmp)) < 1e-12,
           "hires: pass 2 counted per image at its own size", "%d pass-2 steps each, all %g", s2, all);
    CHECK(fabs(job_units_upto(&in, 10) - 10 * 2 * mp) < 1e-12 &&
              fabs(job_units_upto(&in, 11) - (10 * 2 * mp + hmp)) < 1e-12,
          "hires: a pass-2 step costs its 4x the pixels of one image");
    in.img2img = 1;
    in.gen.init_width = in.gen.init_height = 64;
    in.gen.strength = 0.5f;
    CHECK(fabs(job_units_upto(&in, INT_MAX) - 5 * 2 * mp) < 1e-12, "img2img: the steps strength leaves, no hires");
    free((char *)in.gen.prompt);
    free((char *)in.gen.negative);
}

int main(void)
{
    test_units();
    sd_err e;
    sd_err_clear(&e);
    jobq_config cfg = {.queue_size = 2, .job_timeout = 0, .retention = 3600, .max_retained = 100};
    jobq *q = jobq_create(&cfg, fake_run, NULL, &e);
    CHECK(q != NULL, "create");

    job *a, *b, *c, *d;
    sd_request in = input(1, 3);
    CHECK(!jobq_submit(q, &in, 1, &a, NULL, &e) && in.gen.prompt == NULL, "submit a (takes ownership)");
    gate_wait_started(1);
    in = input(2, 3);
    CHECK(!jobq_submit(q, &in, 1, &b, NULL, &e), "submit b");
    in = input(3, 3);
    CHECK(!jobq_submit(q, &in, 0, &c, NULL, &e), "submit c (unlisted)");
    in = input(4, 3);
    int retry = 0;
    sd_err_clear(&e);
    CHECK(jobq_submit(q, &in, 1, &d, &retry, &e) == -1 && e.code == SD_EBUSY && retry >= 1 && d == NULL,
          "queue full -> EBUSY with retry");

    job_status st;
    jobq_status(q, a, &st);
    CHECK(st.state == JOB_RUNNING && st.position == -1, "a running");
    jobq_status(q, b, &st);
    CHECK(st.state == JOB_QUEUED && st.position == 0, "b queued at position 0");
    jobq_status(q, c, &st);
    CHECK(st.state == JOB_QUEUED && st.position == 1, "c queued at position 1");

    job *f = jobq_find(q, job_id(b));
    CHECK(f == b, "find listed job by id");
    job_release(f);
    f = jobq_find_owned(q, job_id(b), 0);
    CHECK(f == b, "no keys (owner 0): found by its owner");
    job_release(f);
    CHECK(jobq_find_owned(q, job_id(b), 2) == NULL, "another owner: not found, like an unknown id");
    CHECK(jobq_find(q, job_id(c)) == NULL, "unlisted job not findable");
    CHECK(jobq_find(q, "nope") == NULL, "unknown id");

    CHECK(jobq_cancel(q, b, "client asked") == JOB_CANCELLED, "cancel queued b");
    jobq_status(q, c, &st);
    CHECK(st.position == 0, "c moved up");
    jobq_status(q, b, &st);
    CHECK(st.state == JOB_CANCELLED && st.err.code == SD_ECANCELLED && strstr(st.err.msg, "client asked"),
          "b cancelled with reason");

    gate_set(1);
    CHECK(wait_done(q, a, &st) == JOB_SUCCEEDED && st.result && st.result->n == 1 && st.result->images[0].seed == 1 &&
              !strcmp(st.result->images[0].url, "u1") && !strcmp(st.result->prompt, "p") && st.step == 3 &&
              st.total == 3, "a succeeded with its structured result");
    job_result_free(st.result);
    CHECK(wait_done(q, c, &st) == JOB_SUCCEEDED && st.result && st.result->images[0].seed == 3, "c succeeded");
    job_result_free(st.result);
    CHECK(norder == 2 && order[0] == 1 && order[1] == 3, "FIFO order, cancelled job never ran");

    in = input(666, 2);
    jobq_submit(q, &in, 1, &d, NULL, &e);
    CHECK(wait_done(q, d, &st) == JOB_FAILED && st.err.code == SD_EINTERNAL && strstr(st.err.msg, "fake failure"),
          "runner failure -> failed with message");
    job_release(d);

    /* cancel while running: hold the gate, cancel, open */
    gate_set(0);
    int s0 = gate_started();
    in = input(7, 1000);
    jobq_submit(q, &in, 1, &d, NULL, &e);
    gate_wait_started(s0 + 1);
    CHECK(jobq_cancel(q, d, "stop now") == JOB_RUNNING, "cancel running returns running");
    gate_set(1);
    CHECK(wait_done(q, d, &st) == JOB_CANCELLED && st.step <= 1 && strstr(st.err.msg, "stop now"),
          "running job stops at the next step");
    job_release(d);

    jobq_stats ss;
    jobq_get_stats(q, &ss);
    CHECK(ss.succeeded == 2 && ss.failed == 1 && ss.cancelled == 2 && ss.rejected == 1 && ss.images == 2 &&
              ss.latency_count == 2 && ss.steps == 6 && ss.depth == 0 && ss.running == 0, "stats");
    job_release(a);
    job_release(b);
    job_release(c);
    jobq_destroy(q, NULL);

    /* time limit and retention */
    cfg.job_timeout = 0.05;
    cfg.retention = 0;
    q = jobq_create(&cfg, fake_run, NULL, &e);
    in = input(8, 100000);
    jobq_submit(q, &in, 1, &a, NULL, &e);
    CHECK(wait_done(q, a, &st) == JOB_FAILED && st.err.code == SD_ETIMEOUT, "job time limit -> failed, timeout");
    char id[40];
    snprintf(id, sizeof id, "%s", job_id(a));
    usleep(10000);
    CHECK(jobq_find(q, id) == NULL, "finished job forgotten after retention");
    job_release(a);

    /* shutdown cancels queued and running */
    cfg.job_timeout = 0;
    cfg.retention = 60;
    gate_set(0);
    jobq_destroy(q, NULL);
    q = jobq_create(&cfg, fake_run, NULL, &e);
    s0 = gate_started();
    in = input(9, 1000);
    jobq_submit(q, &in, 1, &a, NULL, &e);
    in = input(10, 10);
    jobq_submit(q, &in, 1, &b, NULL, &e);
    gate_wait_started(s0 + 1);
    jobq_shutdown(q, "shutting down");
    jobq_status(q, b, &st);
    CHECK(st.state == JOB_CANCELLED && strstr(st.err.msg, "shutting down"), "shutdown cancels queued job");
    in = input(11, 1);
    sd_err_clear(&e);
    CHECK(jobq_submit(q, &in, 1, &c, NULL, &e) == -1 && e.code == SD_EBUSY, "no submissions after shutdown");
    gate_set(1);
    CHECK(wait_done(q, a, &st) == JOB_CANCELLED, "shutdown cancels running job");
    jobq_destroy(q, NULL);
    job_release(a);
    job_release(b);

    /* ownership: API key index + 1 set at submission */
    q = jobq_create(&cfg, fake_run, NULL, &e);
    in = input(12, 1);
    in.owner = 3;
    jobq_submit(q, &in, 1, &a, NULL, &e);
    f = jobq_find_owned(q, job_id(a), 3);
    CHECK(f == a, "owner 3 finds its job");
    job_release(f);
    CHECK(jobq_find_owned(q, job_id(a), 1) == NULL && jobq_find_owned(q, job_id(a), 0) == NULL,
          "owner 1 and owner 0 (no key) do not");
    jobq_destroy(q, NULL);
    job_release(a);
    test_result_copy();
    return t_done();
}
