# bench/lib.sh — shell helpers shared by the bench/ scripts; source it with
#   . "$(dirname "$0")/lib.sh"
# Each helper sits in its own commented block below.  Helpers that report an
# error call the sourcing script's own `die` (which prints its prefix and
# exits 2), so a script defines `die` before calling them.

# --- need_positive_ints (option checks of peers.sh, peer_sdcpp.sh) ---------
# need_positive_ints NAME...: each named shell variable must hold a decimal
# integer > 0; otherwise `die` names the variable and the value it got.
need_positive_ints() {
    local v
    for v in "$@"; do
        case "${!v}" in ''|*[!0-9]*) die "$v must be a positive integer, got '${!v}'" ;; esac
        [ "${!v}" -gt 0 ] || die "$v must be > 0"
    done
}
# --- end need_positive_ints ------------------------------------------------

# --- need_sd15_model, server_tmp, start_sd15_server (seeds_sd15.sh, e2e_sd15.sh)
# need_sd15_model SDSERVE FILE: writes FILE with `make-model --preset sd15`
# when it does not exist; non-zero when that fails.
need_sd15_model() {
    [ -f "$2" ] && return 0
    echo "# making $2 (make-model --preset sd15)"
    "$1" make-model --preset sd15 -o "$2" --quiet
}

# server_tmp NAME: a fresh folder `tmp` (/tmp/NAME.XXXXXX), removed at exit
# together with the server `pid` (start_sd15_server) if one still runs.
server_tmp() {
    tmp=$(mktemp -d "/tmp/$1.XXXXXX")
    pid=
    trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
}

# start_sd15_server SDSERVE MODEL VOCAB PRECISION DATA_DIR LOG: `sdserve
# serve` on a free loopback port, synchronous requests waiting up to an
# hour; sets `pid` and `base` (http://127.0.0.1:PORT) and returns once
# GET /health answers 200 (503 while the model loads); 1, with `pid`
# empty, when the server exits first.
start_sd15_server() {
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    base=http://127.0.0.1:$port
    "$1" serve --bind 127.0.0.1 --port "$port" --data-dir "$5" --model "$2" --vocab "$3" \
        --precision "$4" --sync-wait 3600 >"$6" 2>&1 &
    pid=$!
    until curl -sf -o /dev/null "$base/health"; do
        kill -0 "$pid" 2>/dev/null || { pid=; return 1; }
        sleep 0.2
    done
}
# --- end need_sd15_model, server_tmp, start_sd15_server ----------------------
