#!/usr/bin/env bash
# test_cluster.sh — the cluster of docs/SCALE.md behind a real nginx (issue
# 17): a redis-server running deploy/redis/sdserve.conf (append-only file,
# noeviction, sdserve's ACL user: all its commands pass) on a free loopback port,
# s3rver for the images, 2 API nodes (--workers 0) and 3 `sdserve worker`
# processes (--threads 1) on the demo model, and nginx (non-daemon, its own
# prefix in $TMP) running deploy/nginx/sdserve.conf with its addresses
# replaced by these ports:
#   the config is docs/SCALE.md's, byte for byte, and `nginx -t` accepts it;
#   deploy/systemd's examples name only variables sdserve reads;
#   100 mixed sync/async jobs (30 in the sanitizer tier) through nginx all succeed, each exactly once
#   (its Redis record: attempts 1, one finish, one image), spread over both
#   API nodes and all 3 workers; every image URL (the bucket behind the same
#   nginx) fetchable; a body over --max-body-mb: 413 in the dialect's shape;
#   kill -9 of the node holding a synchronous request: the client gets 502
#   and the POST was not sent again (one job record), later POSTs go to the
#   other node, the async jobs stay readable through nginx.
# nginx, redis-server or s3rver missing = FAIL (scripts/setup.sh installs them).
cd "$(dirname "$0")/../.."
. tests/http/lib.sh
. tests/storage/lib_s3.sh

CONF=deploy/nginx/sdserve.conf
# 100 jobs (an even number: half sync, half async); the sanitizer tier runs 30
N=${SD_CLUSTER_JOBS:-$([ "${SD_SANITIZED:-}" ] && echo 30 || echo 100)}; H=$((N / 2)); MIN=$((N / 5))
for c in nginx redis-server redis-cli; do
  command -v "$c" >/dev/null || { echo "FAIL - $c is installed (scripts/setup.sh)"; exit 0; }
done
MODEL=$(demo_model)
RPORT=$(free_port); NGX=$(free_port)
NG=http://127.0.0.1:$NGX
REDIS_PID=; NGINX_PID=
declare -A NODE_PID NODE_PORT WORKER_PID
R() { redis-cli -p "$RPORT" "$@"; }

cluster_cleanup() {
  for p in "${NODE_PID[@]}" "${WORKER_PID[@]}"; do kill -0 "$p" 2>/dev/null && stop_pid "$p" 50; done
  [ -n "$NGINX_PID" ] && stop_pid "$NGINX_PID" 30
  [ -n "$REDIS_PID" ] && stop_pid "$REDIS_PID" 30
  [ -n "${SD_KEEP:-}" ] && cp -r "$TMP" "$SD_KEEP"
  cleanup
}
trap cluster_cleanup EXIT

# ---- the config: docs/SCALE.md's copy, then templated for these ports -------------
check "docs/SCALE.md shows deploy/nginx/sdserve.conf byte for byte" \
  $(python3 - "$CONF" <<'EOF'
import re, sys
doc = open("docs/SCALE.md").read()
blocks = re.findall(r"```nginx\n(.*?)```", doc, re.S)
sys.exit(0 if open(sys.argv[1]).read() in blocks else 1)
EOF
  echo $?) "the \`\`\`nginx block of docs/SCALE.md differs from $CONF"

# the systemd examples: every variable one sdserve knows, every unit restarts on failure
"$SDSERVE" serve --help 2>&1 | grep -oE 'SDSERVE_[A-Z0-9_]+' | sort -u >"$TMP/known-vars"
unknown=$(cat deploy/systemd/*.env | grep -oE '^SDSERVE_[A-Z0-9_]+' | sort -u | comm -23 - "$TMP/known-vars")
check "deploy/systemd: the .env files use only variables sdserve reads, units Restart=on-failure" \
  $([ -z "$unknown" ] && [ "$(grep -L '^Restart=on-failure$' deploy/systemd/*.service)" = "" ]; echo $?) \
  "unknown: $unknown; without Restart=on-failure: $(grep -L '^Restart=on-failure$' deploy/systemd/*.service)"

# every Redis command src/jobs/redis.c sends (its Lua scripts' included) is
# one the ACL user of deploy/redis/sdserve.conf may run, and docs/SCALE.md lists them
acl=$(python3 - <<'PY'
import re
src = open("src/jobs/redis.c").read()
used = set(c.upper() for c in re.findall(r"redis\.call\('([A-Za-z]+)'", src))
used |= set(re.findall(r'(?:rc_cmd|redisCommand)\([^"]*"([A-Z]+)[ "]', src))
line = [l for l in open("deploy/redis/sdserve.conf") if l.startswith("user sdserve ")][0]
allowed = set(w[1:].split("|")[0].upper() for w in line.split() if w.startswith("+"))
doc = open("docs/SCALE.md").read()
missing = sorted(used - allowed)
undoc = sorted(c for c in used if "`%s" % c not in doc)
print("ok" if used and not missing and not undoc else "not allowed: %s; not in SCALE.md: %s" % (missing, undoc))
PY
)
check "the ACL user may run every command src/jobs/redis.c sends (and SCALE.md lists them)" \
  $([ "$acl" = ok ]; echo $?) "$acl"

s3_setup || exit 0
PA=$(free_port); PB=$(free_port)
mkdir -p "$TMP/nginx/logs"
# template FROM TO: replace one line's text in the config, FAIL when it is not there once
tmpl_sed=()
template() {
  [ "$(grep -cF -- "$1" "$CONF")" = 1 ] || { echo "FAIL - $CONF has '$1' once (the test templates it)"; exit 0; }
  tmpl_sed+=(-e "s|$1|$2|")
}
template "server 10.0.0.11:8080" "server 127.0.0.1:$PA"
template "server 10.0.0.12:8080" "server 127.0.0.1:$PB"
template "listen 80;" "listen 127.0.0.1:$NGX;"
template "http://10.0.0.20:9000/sdserve-images/;" "http://127.0.0.1:$S3_PORT/$S3_BUCKET/;"
sed "${tmpl_sed[@]}" "$CONF" >"$TMP/nginx/sdserve.conf"
# as root, nginx's workers would run as nobody, who cannot enter $TMP (0700)
cat >"$TMP/nginx/nginx.conf" <<EOF
$([ "$(id -u)" = 0 ] && echo "user root;")
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 512; }
http {
    log_format up '\$request_method \$uri \$status \$upstream_addr';
    access_log $TMP/nginx/logs/access.log up;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    include $TMP/nginx/sdserve.conf;
}
EOF
NGX_ARGS=(-p "$TMP/nginx/" -e "$TMP/nginx/logs/error.log" -c "$TMP/nginx/nginx.conf")
out=$(nginx -t "${NGX_ARGS[@]}" 2>&1)
check "nginx -t accepts the config" $(echo "$out" | grep -q 'syntax is ok'; echo $?) "$out"

# ---- Redis, the API nodes, the workers, nginx --------------------------------------
# deploy/redis/sdserve.conf on loopback; the default user (this test's
# redis-cli) left on to read the records, sdserve logs in as its ACL user
RCONF=deploy/redis/sdserve.conf; RPASS=test$RANDOM$RANDOM
for l in "bind 10.0.0.30" "port 6379" "dir /var/lib/redis" "user default off" ">CHANGE-ME"; do
  [ "$(grep -c -- "$l" "$RCONF")" = 1 ] || { echo "FAIL - $RCONF has '$l' once (the test templates it)"; exit 0; }
done
sed -e "s|^bind 10.0.0.30|bind 127.0.0.1|" -e "s|^port 6379|port $RPORT|" -e "s|^dir /var/lib/redis|dir $TMP|" \
  -e "s|^user default off|user default on nopass ~* \&* +@all|" -e "s|>CHANGE-ME|>$RPASS|" "$RCONF" >"$TMP/redis.conf"
redis-server "$TMP/redis.conf" >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do R ping >/dev/null 2>&1 && break; sleep 0.1; done
check "redis-server runs deploy/redis/sdserve.conf (AOF on, noeviction, the sdserve ACL user)" \
  $([ "$(R config get appendonly | tail -1) $(R config get maxmemory-policy | tail -1) $(R acl users | tr '\n' ' ')" = \
      "yes noeviction default sdserve " ]; echo $?) "$(tail -3 "$TMP/redis.log")"
export SDSERVE_S3_ACCESS_KEY=$S3_AK SDSERVE_S3_SECRET_KEY=$S3_SK
COMMON=(--queue "redis://sdserve:$RPASS@127.0.0.1:$RPORT/0" --claim-timeout 5 --model "$MODEL" --data-dir "$TMP/data"
        --storage s3 --s3-endpoint "$EP" --s3-addressing path --s3-bucket "$S3_BUCKET"
        --s3-public-url "$NG/bucket" --public-url "$NG")
start_node() {   # start_node NAME PORT
  "$SDSERVE" serve --bind 127.0.0.1 --port "$2" --workers 0 --max-conn-per-ip 0 "${COMMON[@]}" \
    >"$TMP/node-$1.log" 2>&1 &
  NODE_PID[$1]=$!; NODE_PORT[$1]=$2
  wait_ready "http://127.0.0.1:$2/health" "${NODE_PID[$1]}" 600 ||
    { echo "FAIL - API node $1 starts: $(tail -5 "$TMP/node-$1.log" | tr '\n' ' ')"; exit 0; }
}
start_node a "$PA"; start_node b "$PB"
for w in 1 2 3; do
  "$SDSERVE" worker "${COMMON[@]}" --threads 1 >"$TMP/worker-$w.log" 2>&1 &
  WORKER_PID[$w]=$!
done
for w in 1 2 3; do
  for _ in $(seq 600); do grep -q '^ready' "$TMP/worker-$w.log" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready' "$TMP/worker-$w.log" || { echo "FAIL - worker $w starts: $(tail -5 "$TMP/worker-$w.log")"; exit 0; }
done
unset SDSERVE_S3_ACCESS_KEY SDSERVE_S3_SECRET_KEY
nginx "${NGX_ARGS[@]}" -g 'daemon off;' >"$TMP/nginx/logs/stdout.log" 2>&1 &
NGINX_PID=$!
wait_ready "$NG/health" "$NGINX_PID" 100
curl -s -o "$TMP/health.json" "$NG/health"
check "GET /health through nginx: ok, 3 workers alive" \
  $([ "$(json "$TMP/health.json" 'j["status"], j["queue"]["workers"]')" = "('ok', 3)" ]; echo $?) "$(cat "$TMP/health.json")"

# every connection but this test's redis-cli is sdserve's ACL user
users=$(R client list | grep -o ' user=[^ ]*' | sort | uniq -c | tr -s ' ' | tr '\n' ';')
check "the nodes and workers are logged in as the ACL user sdserve (CLIENT LIST)" \
  $(! R client list | grep -v ' cmd=client' | grep -q ' user=default' && R client list | grep -q ' user=sdserve'
    echo $?) "$users"

# ---- N mixed sync/async jobs through nginx ---------------------------------------------
python3 tests/http/cluster_load.py mixed "$NG" "$N" 8 "$TMP/jobs.json"
res=$(json "$TMP/jobs.json" '[sum(r["state"] in ("success", "succeeded") and len(r["images"]) == 1 for r in j if r["kind"] == k) for k in ("sync", "async")]')
check "$N mixed jobs through nginx ($H sync, $H async): all succeed with one image" \
  $([ "$res" = "[$H, $H]" ]; echo $?) "succeeded [sync, async] $res; first failure: $(json "$TMP/jobs.json" '[r for r in j if r["error"]][:1]')"
# each exactly once: one record per job, run once, finished once, one image
# (one line per record: state attempts finishes listed worker images; the
# images counted by one python3 for all records, not one per record)
R --scan --pattern 'sdserve:job:*' >"$TMP/keys"
nrec=0
while read -r k; do
  nrec=$((nrec + 1))
  R hmget "$k" state attempts finishes listed worker | tr '\n' ' ' >"$TMP/rec.$nrec"
  R hget "$k" result >"$TMP/res.$nrec"
done <"$TMP/keys"
python3 - "$TMP" "$nrec" >"$TMP/records" <<'EOF'
import json, sys
for n in range(1, int(sys.argv[2]) + 1):
    try:
        images = str(len(json.load(open("%s/res.%d" % (sys.argv[1], n)))["images"]))
    except Exception:
        images = ""
    print(open("%s/rec.%d" % (sys.argv[1], n)).read() + images)
EOF
once=$(awk '$1 == "succeeded" && $2 == 1 && $3 == 1 && $6 == 1' "$TMP/records" | wc -l)
listed=$(awk '{n[$4]++} END {print n[0] + 0, n[1] + 0}' "$TMP/records")
check "each job exactly once: $N records ($H sync, $H async), each succeeded, attempts 1, 1 finish, 1 image" \
  $([ "$(wc -l <"$TMP/keys")" = "$N" ] && [ "$once" = "$N" ] && [ "$listed" = "$H $H" ]; echo $?) \
  "$(wc -l <"$TMP/keys") records, $once as expected, sync/async $listed; $(sort "$TMP/records" | uniq -c | head -5)"
got=$(R hmget sdserve:stats submitted succeeded images | tr '\n' ' ')
check "the cluster's counters: $N submitted, $N succeeded, $N images" $([ "$got" = "$N $N $N " ]; echo $?) "$got"
workers=$(awk '{print $5}' "$TMP/records" | sort -u | wc -l)
check "all 3 workers ran jobs" $([ "$workers" = 3 ]; echo $?) "$(awk '{print $5}' "$TMP/records" | sort | uniq -c)"
na=$(grep -c "^POST .* 127.0.0.1:$PA\$" "$TMP/nginx/logs/access.log"); nb=$(grep -c "^POST .* 127.0.0.1:$PB\$" "$TMP/nginx/logs/access.log")
check "nginx spread the $N submissions over both API nodes ($na + $nb, each at least $MIN)" \
  $([ $((na + nb)) = "$N" ] && [ "$na" -ge "$MIN" ] && [ "$nb" -ge "$MIN" ]; echo $?) "$(grep '^POST' "$TMP/nginx/logs/access.log" | head -3)"
# every image URL: through nginx (its /bucket/ location), a PNG, all different
fetched=$(python3 - "$TMP/jobs.json" "$NG/bucket/" <<'EOF'
import json, sys, urllib.request
urls = [u for r in json.load(open(sys.argv[1])) for u in r["images"]]
ok = 0
for u in urls:
    try:
        with urllib.request.urlopen(u, timeout=30) as r:
            ok += u.startswith(sys.argv[2]) and r.status == 200 and r.read(8) == b"\x89PNG\r\n\x1a\n"
    except Exception as e:
        print(u, e, file=sys.stderr)
print(len(urls), len(set(urls)), ok)
EOF
)
check "every image URL is fetchable through nginx ($N URLs, $N different, $N PNGs)" \
  $([ "$fetched" = "$N $N $N" ]; echo $?) "urls, distinct, fetched: $fetched"

# ---- limits through nginx -----------------------------------------------------------------
head -c $(( (20 << 20) + 65536 )) /dev/zero | tr '\0' a >"$TMP/big.txt"
big=
for p in /txt2img:'j["status"], j["code"]' /sdapi/v1/txt2img:'"detail" in j' /v1/images/generations:'j["error"]["code"]'; do
  st=$(curl -s -o "$TMP/big.json" -w '%{http_code}' --data-binary @"$TMP/big.txt" "$NG${p%%:*}")
  big+="$st $(json "$TMP/big.json" "${p#*:}"); "
done
check "a body over --max-body-mb 20 through nginx: 413 in each dialect's JSON shape" \
  $([ "$big" = "413 ('error', 'too_large'); 413 True; 413 too_large; " ]; echo $?) "$big"

# ---- an API node killed under a synchronous request: the POST is not sent twice --------------
R --scan --pattern 'sdserve:job:*' | sort >"$TMP/keys.before"
before=$(wc -l <"$TMP/keys.before")
curl -s -o /dev/null -w '%{http_code}' -d prompt=slow -d width=256 -d height=256 -d num_inference_steps=150 \
  "$NG/txt2img" >"$TMP/slow.status" &
CURL_PID=$!
node=
for _ in $(seq 300); do
  k=$(R --scan --pattern 'sdserve:job:*' | sort | comm -13 "$TMP/keys.before" -)
  [ -n "$k" ] && [ "$(R hget "$k" step)" -ge 1 ] 2>/dev/null && node=$(R hget "$k" node) && break
  sleep 0.1
done
pid=${node#*:}; pid=${pid%%:*}; victim=
for n in a b; do [ "${NODE_PID[$n]}" = "$pid" ] && victim=$n; done
[ -n "$victim" ] && kill -9 "$pid"; wait "$pid" 2>/dev/null; wait "$CURL_PID"
after=$(R --scan --pattern 'sdserve:job:*' | wc -l)
check "kill -9 of the node holding a sync request: the client gets 502, the POST was not resent (1 job)" \
  $([ -n "$victim" ] && [ "$(cat "$TMP/slow.status")" = 502 ] && [ $((after - before)) = 1 ]; echo $?) \
  "node '$node' (ours: '$victim'), status $(cat "$TMP/slow.status"), $((after - before)) new jobs"
ok_n=0
for s in 1 2 3 4 5 6; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -d prompt=after -d seed=$s -d width=32 -d height=32 \
    -d num_inference_steps=1 "$NG/txt2img")" = 200 ] && ok_n=$((ok_n + 1))
done
final=$(R --scan --pattern 'sdserve:job:*' | wc -l)
check "then 6 sync POSTs through nginx: all 200 on the other node, 6 jobs (none sent twice)" \
  $([ "$ok_n" = 6 ] && [ $((final - after)) = 6 ]; echo $?) "$ok_n of 6, $((final - after)) new jobs"
readable=$(python3 - "$TMP/jobs.json" "$NG" <<'EOF'
import json, sys, urllib.request
n = 0
for r in json.load(open(sys.argv[1])):
    if r["id"]:
        with urllib.request.urlopen("%s/jobs/%s" % (sys.argv[2], r["id"]), timeout=30) as f:
            n += json.load(f)["state"] == "succeeded"
print(n)
EOF
)
check "the $H async jobs are still readable through nginx" $([ "$readable" = "$H" ]; echo $?) "$readable of $H"

# every process we stop must stop cleanly
w=0
for p in "${WORKER_PID[@]}"; do kill -TERM "$p"; wait "$p"; w=$((w + $?)); done
for n in a b; do
  [ "$n" = "$victim" ] && continue
  kill -TERM "${NODE_PID[$n]}"; wait "${NODE_PID[$n]}"; w=$((w + $?))
done
check "the workers and the surviving API node stop cleanly (exit 0)" $([ "$w" = 0 ]; echo $?) "sum of statuses $w"
bad=$(grep -lE 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$TMP"/*.log 2>/dev/null)
check "no sanitizer report in any log" $([ -z "$bad" ]; echo $?) "$bad"
