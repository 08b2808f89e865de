/* ops_prof.h — internal to the ops layer: the SD_PROFILE timers each public
 * op wraps itself in (PROF_BEGIN ... PROF_END(kind)).  Cheap when off: one
 * load and a branch. */
#ifndef SD_OPS_PROF_H
#define SD_OPS_PROF_H

#include "ops.h"

extern int ops_prof_on;
double ops_prof_now(void);

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

/* SD_PROFILE=2 also keeps a table by shape: PROF_SHAPE names the call
 * being timed (printf-style, e.g. "linear 8192x320 -> 2560"; the timed
 * function's name when an op gives none), and PROF_END adds its time and
 * the FLOPs executed since PROF_BEGIN to that row. */
double ops_prof_exec_total(void);
void ops_prof_shape(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ops_prof_add_call(int kind, double t0, double x0, const char *func);

#define PROF_BEGIN double prof_t0_ = ops_prof_on ? ops_prof_now() : 0, \
                          prof_x0_ = ops_prof_on > 1 ? ops_prof_exec_total() : 0
#define PROF_END(kind) do { if (ops_prof_on) ops_prof_add_call((kind), prof_t0_, prof_x0_, __func__); } while (0)
#define PROF_SHAPE(...) do { if (ops_prof_on > 1) ops_prof_shape(__VA_ARGS__); } while (0)

#endif
