#!/usr/bin/env bash
# test_previews.sh — live previews through the server (issue 18 item 2,
# docs/SERVER.md "Previews") on tiny-sd1 with --preview-every 1 and two API
# keys: an async txt2img of 30 steps at 192x192 polled through
# GET /jobs/{id}/preview shows at least two different previews (200
# image/png, X-Preview-Step "n/30", a PNG that decodes) before it ends; its
# status carries preview_url while running; another key gets 404 naming id;
# before the first preview and once it ended 204 (no body, no Content-Type
# or Content-Length); unknown and
# malformed ids 404 naming id, DELETE 405.  A1111: /sdapi/v1/progress shows current_image (base64 of
# a PNG) during a synchronous /sdapi/v1/txt2img running in the background,
# null with skip_current_image=true.  --preview-every 0: no preview, and
# current_image stays null (204 only).  With Redis (skipped without redis-server): an
# API node without weights shows a worker process's previews (also as
# A1111's current_image), the key
# sdserve:preview:<id> has a TTL of at most 60 s while the job runs and is
# gone (204) once it ended.  Hires fix (128 -> 256, 12 + 20 steps): previews
# say n/32 with n rising, pass 2's at its size; /jobs/{id} step/total_steps
# and A1111's /progress count both passes as one run.  The sanitizer tier
# (SD_SANITIZED=1) runs the same steps at smaller sizes, 128x128 and hires
# 64 -> 128 (a 192x192 step takes ~0.4 s under ASan, a 128x128 one ~0.1 s).
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
MODEL=$REF/models/tiny-sd1
K1=previews-key-one-0123456789
K2=previews-key-two-0123456789
A1=(-H "Authorization: Bearer $K1")
A2=(-H "Authorization: Bearer $K2")
SZ=192; HR=128   # the jobs' size; the hires run's first pass (then twice it)
if [ "${SD_SANITIZED:-0}" = 1 ]; then
  SZ=128; HR=64
  echo "# sanitizer tier: jobs at 128x128 and hires 64 -> 128 (the normal tier: 192x192, 128 -> 256)"
fi
JOB='{"prompt":"a lighthouse at dawn","num_inference_steps":30,"width":'$SZ',"height":'$SZ',"seed":7}'

# submit [curl auth...]: an async job of $JOB; prints its id
submit() {
  curl -s "$@" -H 'Content-Type: application/json' -d "$JOB" "$BASE/jobs/txt2img" -o "$TMP/created.json"
  json "$TMP/created.json" 'j["id"]'
}
state() { curl -s "${A1[@]}" -o "$TMP/st.json" "$BASE/jobs/$1"; json "$TMP/st.json" 'j["state"]'; }
# preview ID NAME [curl auth...]: GET /jobs/ID/preview into $TMP/NAME.{bin,hdr}; prints the status
preview() {
  local id=$1 name=$2; shift 2
  curl -s "$@" -D "$TMP/$name.hdr" -o "$TMP/$name.bin" -w '%{http_code}' "$BASE/jobs/$id/preview"
}
err_field() { json "$TMP/$1.bin" 'j["field"]'; }

# ---- in process, --preview-every 1 ----
SDSERVE_API_KEYS=$K1,$K2 start_server --model "$MODEL" --threads 1 --preview-every 1 || exit 1
ID=$(submit "${A1[@]}")
[ -n "$ID" ] || { fail "the job is accepted" "$(cat "$TMP/created.json")"; exit 0; }
n=0; distinct=0; bad=; bad204=; other=; url=; last=
for _ in $(seq 3000); do
  st=$(state "$ID")
  [ "$st" = running ] && [ -z "$url" ] && url=$(json "$TMP/st.json" 'j.get("preview_url")')
  code=$(preview "$ID" p "${A1[@]}")
  if [ "$code" = 200 ]; then
    sum=$(md5sum <"$TMP/p.bin" | cut -c1-32)
    if [ "$sum" != "$last" ]; then
      distinct=$((distinct + 1)); last=$sum
      cp "$TMP/p.bin" "$TMP/preview-$distinct.png"; cp "$TMP/p.hdr" "$TMP/preview-$distinct.hdr"
    fi
    [ -z "$other" ] && other=$(preview "$ID" q "${A2[@]}"):$(err_field q)
  elif [ "$code" != 204 ] || [ -s "$TMP/p.bin" ]; then
    bad="$code $(head -c 200 "$TMP/p.bin")"
  elif grep -qiE '^content-(type|length):' "$TMP/p.hdr"; then
    bad204=$(tr -d '\r' <"$TMP/p.hdr" | grep -iE '^content-(type|length):' | tr '\n' ' ')
  fi
  n=$((n + 1))
  case $st in succeeded|failed|cancelled) break;; esac
done
check "an async job of 30 steps succeeds (polled $n times)" $([ "$st" = succeeded ]; echo $?) "$st"
check "GET /jobs/{id}/preview: at least two different previews while it ran ($distinct)" \
  $([ "$distinct" -ge 2 ]; echo $?) "$distinct"
check "no preview yet / any more is 204 without a body (nothing else)" $([ -z "$bad" ]; echo $?) "$bad"
hdr=$(tr -d '\r' <"$TMP/preview-1.hdr")
check "a preview is image/png with X-Preview-Step n/30" \
  $(echo "$hdr" | grep -qi '^content-type: image/png$' && echo "$hdr" | grep -qiE '^x-preview-step: [0-9]+/30$'; echo $?) "$hdr"
check "the preview is a PNG that decodes ($(png_size "$TMP/preview-2.png"))" \
  $(pixels_equal "$TMP/preview-2.png" "$TMP/preview-2.png"; echo $?) "$(pixel_diff "$TMP/preview-2.png" "$TMP/preview-2.png" 2>&1 | tail -1)"
check "the running job's status carries preview_url" \
  $([ "$url" = "$BASE/jobs/$ID/preview" ]; echo $?) "'$url'"
check "another key's job: 404 naming id, as GET /jobs/{id}" $([ "$other" = 404:id ]; echo $?) "$other"
code=$(preview "$ID" p "${A1[@]}")
check "after the job ended: 204" $([ "$code" = 204 ]; echo $?) \
  "$code $(cat "$TMP/p.bin")"
grep -qiE '^content-(type|length):' "$TMP/p.hdr" && bad204="$bad204 after the end: $(tr -d '\r' <"$TMP/p.hdr" | tr '\n' ' ')"
check "a 204 carries no Content-Type or Content-Length (no content)" $([ -z "$bad204" ]; echo $?) "$bad204"
check "the finished job's status has no preview_url" \
  $([ "$(json "$TMP/st.json" '"preview_url" in j')" = False ]; echo $?) "$(cat "$TMP/st.json")"
code=$(preview 0123456789abcdef0123456789abcdef p "${A1[@]}")
check "unknown job: 404 naming id" $([ "$code:$(err_field p)" = 404:id ]; echo $?) "$code $(cat "$TMP/p.bin")"
code=$(preview not-an-id p "${A1[@]}")
check "malformed id: 404 naming id" $([ "$code:$(err_field p)" = 404:id ]; echo $?) "$code $(cat "$TMP/p.bin")"
code=$(curl -s "${A1[@]}" -X DELETE -D "$TMP/d.hdr" -o /dev/null -w '%{http_code}' "$BASE/jobs/$ID/preview")
check "DELETE /jobs/{id}/preview: 405 + Allow: GET, HEAD" \
  $([ "$code" = 405 ] && tr -d '\r' <"$TMP/d.hdr" | grep -qi '^allow: GET, HEAD$'; echo $?) "$code"
code=$(preview "$ID" p)
check "no key: 401" $([ "$code" = 401 ]; echo $?) "$code"

# A1111: current_image during a synchronous txt2img in the background
a1111_run() {
  curl -s "${A1[@]}" -H 'Content-Type: application/json' -o "$TMP/a1111.json" \
    -d '{"prompt":"a lighthouse","steps":30,"width":'$SZ',"height":'$SZ',"seed":7}' "$BASE/sdapi/v1/txt2img" &
  A_PID=$!
}
# progress NAME [query]: GET /sdapi/v1/progress into $TMP/NAME.json; prints current_image's kind
progress() {
  curl -s "${A1[@]}" -o "$TMP/$1.json" "$BASE/sdapi/v1/progress${2:-}"
  python3 - "$TMP/$1.json" <<'PY'
import base64, json, sys
j = json.load(open(sys.argv[1]))
c = j.get("current_image", "absent")
if c is None: print("null:%d" % j["state"]["sampling_steps"])
elif isinstance(c, str): print("png" if base64.b64decode(c, validate=True)[:8] == b"\x89PNG\r\n\x1a\n" else "not-png")
else: print("other")
PY
}
# a1111_watch: runs a1111_run and polls /progress until current_image
# comes; $seen = its kind, $skipped = the same poll with skip_current_image
a1111_watch() {
  a1111_run
  seen=; skipped=
  for _ in $(seq 3000); do
    kind=$(progress pr)
    if [ "$kind" != "${kind#png}" ] || [ "$kind" = not-png ]; then
      seen=$kind; skipped=$(progress sk '?skip_current_image=true'); break
    fi
    kill -0 "$A_PID" 2>/dev/null || break
  done
  wait "$A_PID"
}
a1111_watch
check "A1111 /progress: current_image is a base64 PNG while the job runs" $([ "$seen" = png ]; echo $?) "'$seen'"
check "A1111 /progress?skip_current_image=true: null while it runs" \
  $([ "$skipped" = null:30 ]; echo $?) "'$skipped' $(head -c 200 "$TMP/sk.json")"
check "the synchronous A1111 job ends with its image" \
  $([ "$(json "$TMP/a1111.json" 'len(j["images"])')" = 1 ]; echo $?) "$(head -c 200 "$TMP/a1111.json")"
# ---- hires fix (r2follow): previews and progress count both passes ----
# 128x128 for 12 steps, then 256x256 for 20 (hr_strength 1: all 20 run):
# previews and /jobs/{id} count 1..32 once; pass 2's previews are its size
HRJOB='{"prompt":"a lighthouse at dawn","num_inference_steps":12,"width":'$HR',"height":'$HR',"seed":7,"hr_scale":2,"hr_upscaler":"lanczos","hr_steps":20,"hr_strength":1}'
curl -s "${A1[@]}" -H 'Content-Type: application/json' -d "$HRJOB" "$BASE/jobs/txt2img" -o "$TMP/hr_created.json"
HID=$(json "$TMP/hr_created.json" 'j["id"]')
seen=; last=; steps=; jsteps=
for _ in $(seq 3000); do
  st=$(state "$HID")
  [ "$st" = running ] && jsteps="$jsteps $(json "$TMP/st.json" '"%s/%s" % (j.get("step"), j.get("total_steps"))')"
  if [ "$(preview "$HID" hp "${A1[@]}")" = 200 ]; then
    step=$(tr -d '\r' <"$TMP/hp.hdr" | sed -n 's/^[Xx]-[Pp]review-[Ss]tep: //p')
    if [ "$step" != "$last" ]; then
      last=$step; steps="$steps $step@$(png_size "$TMP/hp.bin")"
    fi
  fi
  case $st in succeeded|failed|cancelled) break;; esac
done
check "hires job with previews succeeds" $([ "$st" = succeeded ]; echo $?) "$st $(head -c 300 "$TMP/st.json")"
# every preview n/32, n increasing; pass 2's (n > 12) at twice pass 1's size
# (the latent-to-RGB preview is 1 px per latent cell: 16x16 then 32x32)
hr_ok=$(python3 - "$steps" <<'PY'
import sys
seen = [w.split("@") for w in sys.argv[1].split()]
ns = [int(s.split("/")[0]) for s, _ in seen]
ok = len(seen) >= 2 and all(s.split("/")[1] == "32" for s, _ in seen) and ns == sorted(set(ns))
# the preview's size: pass 1's for n <= 12, twice it (pass 2's) after
size = {n <= 12: sz for n, (_, sz) in zip(ns, seen)}
ok = ok and len({(n <= 12, sz) for n, (_, sz) in zip(ns, seen)}) == len(size) and False in size
w = {k: [int(x) for x in v.split("x")] for k, v in size.items()}
ok = ok and (True not in w or w[False] == [2 * x for x in w[True]])
print("yes" if ok else "no")
PY
)
check "hires previews: X-Preview-Step n/32 increasing, pass 2's (n > 12) at twice pass 1's size" \
  $([ "$hr_ok" = yes ]; echo $?) "seen:$steps"
jobs_ok=$(python3 - "$jsteps" <<'PY'
import sys
v = [w.split("/") for w in sys.argv[1].split() if w != "None/None"]
ns = [int(a) for a, b in v]
print("yes" if v and all(b == "32" for a, b in v) and ns == sorted(ns) and max(ns) > 12 else "no")
PY
)
check "hires: /jobs/{id} step/total_steps while running: x/32, not decreasing, past pass 1" \
  $([ "$jobs_ok" = yes ]; echo $?) "running:$jsteps"
check "hires: the finished job reports step = total_steps = 32" \
  $([ "$(json "$TMP/st.json" '"%s/%s" % (j["step"], j["total_steps"])')" = 32/32 ]; echo $?) "$(head -c 300 "$TMP/st.json")"
# A1111 /progress during a synchronous hires txt2img: sampling_steps stays the run's total
curl -s "${A1[@]}" -H 'Content-Type: application/json' -o "$TMP/a_hr.json" -d \
  '{"prompt":"a lighthouse","steps":12,"width":'$HR',"height":'$HR',"seed":7,"sampler_name":"Euler","enable_hr":true,"hr_scale":2,"hr_upscaler":"Lanczos","hr_second_pass_steps":20,"denoising_strength":1}' \
  "$BASE/sdapi/v1/txt2img" &
A_PID=$!
asteps=
while kill -0 "$A_PID" 2>/dev/null; do
  curl -s "${A1[@]}" -o "$TMP/ap.json" "$BASE/sdapi/v1/progress?skip_current_image=true"
  asteps="$asteps $(json "$TMP/ap.json" '"%d/%d" % (j["state"]["sampling_step"], j["state"]["sampling_steps"])')"
done
wait "$A_PID"
a_ok=$(python3 - "$asteps" <<'PY'
import sys
v = [tuple(map(int, w.split("/"))) for w in sys.argv[1].split() if w != "0/0"]   # 0/0: not started
tot = {b for a, b in v}
ns = [a for a, b in v]
print("yes" if v and len(tot) == 1 and ns == sorted(ns) and max(ns) > 12 else "no")
PY
)
check "A1111 /progress in a hires run: one sampling_steps total, sampling_step rising past pass 1" \
  $([ "$a_ok" = yes ]; echo $?) "seen:$asteps"
stop_server
check "server exits cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"

# ---- --preview-every 0: none ----
SDSERVE_API_KEYS=$K1 start_server --model "$MODEL" --threads 1 --preview-every 0 || exit 1
JOB=${JOB/\"num_inference_steps\":30/\"num_inference_steps\":15}
ID=$(submit "${A1[@]}")
running=0; any=
for _ in $(seq 3000); do
  st=$(state "$ID")
  code=$(preview "$ID" p "${A1[@]}")
  [ "$code" != 204 ] && any="$code"
  if [ "$st" = running ]; then
    running=$((running + 1))
    kind=$(progress pr)
    [ "${kind%%:*}" != null ] && any="current_image $kind"
  fi
  case $st in succeeded|failed|cancelled) break;; esac
done
check "--preview-every 0: polled while running ($running times), never a preview nor current_image" \
  $([ "$running" -ge 1 ] && [ -z "$any" ]; echo $?) "$any"
stop_server

# ---- Redis: a worker process's previews through an API node ----
command -v redis-server >/dev/null || { echo "ok - # SKIP redis-server not installed"; exit 0; }
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
finish() {
  [ -n "${WORKER_PID:-}" ] && kill -9 "$WORKER_PID" 2>/dev/null
  kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null
  cleanup
}
trap finish EXIT
Q=(--queue "redis://127.0.0.1:$RPORT/0" --queue-timeout 1 --claim-timeout 2 --shared-data-dir 1 --data-dir "$TMP/data"
   --threads 1 --model "$MODEL")
SDSERVE_API_KEYS=$K1,$K2 start_server --workers 0 "${Q[@]}" || exit 1
"$SDSERVE" worker "${Q[@]}" --public-url "$BASE" --preview-every 1 >"$TMP/worker.log" 2>&1 &
WORKER_PID=$!
for _ in $(seq 600); do   # the API node routes a job once the worker has announced itself
  curl -s -o "$TMP/health.json" "$BASE/health"
  [ "$(json "$TMP/health.json" 'len(j["queue"]["live_workers"])')" = 1 ] && break
  kill -0 "$WORKER_PID" 2>/dev/null || break
  sleep 0.1
done
JOB=${JOB/\"num_inference_steps\":15/\"num_inference_steps\":60}   # polls go through Redis: more steps
ID=$(submit "${A1[@]}")
[ -n "$ID" ] || { fail "Redis: the job is accepted" "$(cat "$TMP/created.json") $(tail -3 "$TMP/worker.log")"; exit 0; }
distinct=0; last=; ttl=; other=
for _ in $(seq 6000); do
  st=$(state "$ID")
  code=$(preview "$ID" p "${A1[@]}")
  if [ "$code" = 200 ]; then
    sum=$(md5sum <"$TMP/p.bin" | cut -c1-32)
    [ "$sum" != "$last" ] && { distinct=$((distinct + 1)); last=$sum; }
    [ -z "$ttl" ] && ttl=$(redis-cli -p "$RPORT" ttl "sdserve:preview:$ID")
    [ -z "$other" ] && other=$(preview "$ID" q "${A2[@]}"):$(err_field q)
  fi
  case $st in succeeded|failed|cancelled) break;; esac
done
check "Redis: the worker's job succeeds" $([ "$st" = succeeded ]; echo $?) "$st $(tail -3 "$TMP/worker.log")"
check "Redis: the API node shows the worker's previews, at least two different ($distinct)" \
  $([ "$distinct" -ge 2 ]; echo $?) "$distinct"
check "Redis: sdserve:preview:<id> lives 60 s at most ($ttl)" \
  $([ -n "$ttl" ] && [ "$ttl" -gt 0 ] && [ "$ttl" -le 60 ]; echo $?) "'$ttl'"
check "Redis: another key's job: 404 naming id" $([ "$other" = 404:id ]; echo $?) "$other"
code=$(preview "$ID" p "${A1[@]}")
check "Redis: after the job ended, 204 and the key is gone" \
  $([ "$code" = 204 ] && [ "$(redis-cli -p "$RPORT" exists "sdserve:preview:$ID")" = 0 ]; echo $?) \
  "$code $(cat "$TMP/p.bin")"
a1111_watch
check "Redis: A1111 /progress on the API node shows the worker's preview as current_image" \
  $([ "$seen" = png ] && [ "$(json "$TMP/a1111.json" 'len(j["images"])')" = 1 ]; echo $?) "'$seen' $(head -c 200 "$TMP/a1111.json")"
kill -TERM "$WORKER_PID"; wait "$WORKER_PID"; WORKER_PID=
stop_server
check "Redis: API node exits cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"
