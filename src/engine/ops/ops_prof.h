/* ops_prof.h — internal to the ops layer: the SD_PROFILE timers each public
 * op wraps itself in (PROF_BEGIN ... PROF_END(kind)).  Cheap when off: one
 * load and a branch. */
#ifndef SD_OPS_PROF_H
#define SD_OPS_PROF_H

#include "ops.h"

extern int ops_prof_on;
double ops_prof_now(void);
void ops_prof_add(int kind, double t0);

/* Thread accounts of a parallel region (SD_PROFILE only): ops_prof_cpu is
 * the calling thread's CPU time in seconds; ops_prof_team adds, for an op
 * kind, the threads' CPU seconds spent working inside a region of `wall`
 * seconds run by `threads` threads (busy: not waiting at its barriers),
 * against the team's seconds, threads x wall.  The difference is waiting: the team's start, barriers, the
 * last tiles' imbalance, and threads descheduled by other processes. */
double ops_prof_cpu(void);
void ops_prof_team(int kind, double busy_cpu, double wall, int threads);

/* Add FLOPs of an op kind: the model's (nominal) and the executed ones. */
void ops_flops_add(int kind, double model, double exec);

#define PROF_BEGIN double prof_t0_ = ops_prof_on ? ops_prof_now() : 0
#define PROF_END(kind) do { if (ops_prof_on) ops_prof_add((kind), prof_t0_); } while (0)

#endif
