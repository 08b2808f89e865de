/* gate.h — the gate a fake job runner holds at, for the tests that drive the
 * job queue without the engine (tests/http/test_jobs.c, test_server.c).
 *
 * The runner calls gate_enter() first: it counts one start and blocks while
 * the gate is closed.  The test closes and opens the gate (gate_set) and
 * waits for starts (gate_wait_started), so a job can be held "running" at a
 * known point.  gate_steps() then walks the job's steps the way the engine
 * reports them.  The gate starts closed. */
#ifndef SD_TEST_GATE_H
#define SD_TEST_GATE_H

#include "../../src/engine/sd.h"

void gate_set(int open);
/* Starts counted so far. */
int gate_started(void);
/* Block until at least n starts have been counted. */
void gate_wait_started(int n);
/* In the runner: count a start, then wait while the gate is closed. */
void gate_enter(void);
/* In the runner: steps 1..total, sleeping usec before each and reporting it
 * with progress(pud, step, total); 1 as soon as progress asks to stop (the
 * job was cancelled), else 0. */
int gate_steps(int total, int usec, sd_progress_fn progress, void *pud);

#endif
