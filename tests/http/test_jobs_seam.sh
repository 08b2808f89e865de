#!/usr/bin/env bash
# test_jobs_seam.sh — the HTTP layer reaches jobs only through the jobs
# interface (src/jobs/backend.h): no file under src/http/ calls the
# in-process queue (jobq_*, job_release, job_id) or includes its header
# directly, so another backend (issue 17's Redis queue) plugs in without
# touching them.  The one allowed mention is http_server_start's wrapper
# for a caller's jobq (jobs_inproc_wrap), which is not a queue call.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

calls=$(grep -nE '\b(jobq_(create|destroy|shutdown|submit|find|find_owned|cancel|status|wait_change|get_stats)|job_release|job_id)\(' src/http/*.c src/http/*.h)
check "src/http calls nothing of the in-process queue" $([ -z "$calls" ]; echo $?) "$calls"
incl=$(grep -n '#include "../jobs/jobs.h"' src/http/*.c src/http/*.h)
check "src/http includes the jobs interface, not the queue's header" $([ -z "$incl" ]; echo $?) "$incl"
uses=$(grep -lE '\bjobs_(submit|find|status|cancel|wait_change|get_stats|release|shutdown)\(' src/http/*.c)
check "the HTTP layer talks to the jobs interface" $([ -n "$uses" ]; echo $?) "no jobs_* calls in src/http"
