#!/usr/bin/env bash
# Piston against the servers people rewrite their apps for, in one run, on
# the same pinning: Actix-web, Axum and Go's net/http beside piston-static,
# the native App, the `--route` of the piston CLI, nginx, Bun and node:http
# (hello world, 16-deep pipelining, a 1 MiB file, 10,000 idle connections);
# granian (WSGI, ASGI, RSGI) and socketify.py beside Piston's WSGI and ASGI
# hosts, gunicorn and uvicorn (raw apps, Flask, FastAPI); and a floor: a
# minimal epoll loop of our own (benchmarks/floor.c) that answers without
# parsing, to which every server's CPU time per request is compared.
#
#   benchmarks/peers_run.sh                 full run (15 to 20 minutes)
#   BENCH_QUICK=1 benchmarks/peers_run.sh   smoke run: 1 run of 1 s per
#                                           server and case (and 500 idle
#                                           connections); exits non-zero if
#                                           a server fails to start or to
#                                           answer right
# run.sh calls this script (BENCH_PEERS_RUN=0 skips it there).
#
# Knobs (environment):
#   BENCH_RUNS=3            repetitions of each measurement
#   BENCH_SECONDS=5         seconds per measured run
#   BENCH_QUICK=1           smoke run (forces BENCH_RUNS=1, BENCH_SECONDS=1)
#   BENCH_IDLE_CONNS=10000  idle keep-alive connections per server
#   BENCH_PEERS_OUT=benchmarks/results/peers.md   the Markdown report; the
#                           chart (.png) and the figures (.tsv) go beside it
#   BENCH_PEERS=benchmarks/.peers   the peers built by
#                           `scripts/setup-deps.sh bench` (bin/bench-actix,
#                           bin/bench-axum, bin/bench-gohttp, venv/ with
#                           granian and socketify, node/ with Bun); a peer
#                           that is missing is reported as not measured
#   PISTON_BIN=build/piston-static  PISTON_CLI=.venv/bin/piston
#   PISTON_PY_THREADS=1     --threads for Piston's WSGI host
#   NGINX_BIN=nginx  NODE_BIN=node
#
# Method (as the other scripts, lib.sh): every server is one worker (one
# process, or a master and one worker) pinned to CPU 0 with taskset, its
# threads inheriting the pin; wrk -t1 -c64 keep-alive pinned to CPU 1. The
# servers of a group run side by side and are measured in turn, the order
# rotating each repetition. Server CPU per request: user+system time of the
# server's processes (/proc/PID/stat) over the wrk run, over the responses.
# Every number printed is measured in this run. See benchmarks/README.md.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LOG_TAG=peers
exec 3>&2
. "$HERE/lib.sh"
bench_settings

PIPELINE_DEPTH=16
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
[ "$QUICK" = 1 ] && IDLE_CONNS=${BENCH_IDLE_CONNS:-500}
OUT=${BENCH_PEERS_OUT:-$HERE/results/peers.md}
CHART=${OUT%.md}.png
DATA=${OUT%.md}.tsv
GUNICORN=${BENCH_PYTHON:-/usr/bin/python3}
PV=$PEERS/venv/bin/python

# ---------------------------------------------------------------- preflight
bench_preflight wrk taskset curl cc "$NGINX_BIN" "$NODE_BIN"
[ -x "$PISTON_BIN" ] || die "$PISTON_BIN not found: run 'make'"
[ -x "$PISTON_CLI" ] || die "$PISTON_CLI not found: run 'make dev'"
[ -f "$ROOT/build/Release/piston.node" ] || die "the Node addon build/Release/piston.node is missing: run 'make node'"
for mod in gunicorn uvicorn httptools uvloop flask fastapi; do
  "$PYTHON" -c "import $mod" 2>/dev/null || die "$PYTHON cannot import $mod (scripts/setup-deps.sh bench installs it)"
done
for v in RUNS SECS IDLE_CONNS PISTON_PY_THREADS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
if [ "$(ulimit -n)" -lt $((IDLE_CONNS + 256)) ]; then
  IDLE_CONNS=$(($(ulimit -n) - 256))
  log "warning: the fd limit $(ulimit -n) allows only $IDLE_CONNS idle connections"
fi

# ---------------------------------------------------------------- setup
make_tmp piston-peers
chmod 755 "$TMP"
FAILURES=()
NOTES=()
declare -A SRV_PID SRV_PORT SRV_LOG SRV_DESC SRV_SIZE UNAVAIL
declare -A SAMPLES CPUUS SBUSY CBUSY MBPS STEAL IDLE

mkdir -p "$TMP/www"
printf '%s' "$HELLO_BODY" >"$TMP/www/hello.txt"
head -c 1048576 /dev/urandom >"$TMP/www/$BIGFILE"
chmod -R a+rX "$TMP/www"

# The floor: its responses are piston-static's, byte for byte in shape (the
# same headers, a Date fixed at the start).
FLOOR=$TMP/floor
cc -O2 $(grep '^-' "$ROOT/csrc/cflags.txt" | grep -v visibility) -o "$FLOOR" "$HERE/floor.c" ||
  die "cannot compile benchmarks/floor.c"
NOW=$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')
MTIME=$(LC_ALL=C date -u -r "$TMP/www/$BIGFILE" '+%a, %d %b %Y %H:%M:%S GMT')
printf 'HTTP/1.1 200 OK\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s' \
  "$NOW" "${#HELLO_BODY}" "$HELLO_BODY" >"$TMP/floor-hello.head"
printf 'HTTP/1.1 200 OK\r\nDate: %s\r\nContent-Type: application/octet-stream\r\nLast-Modified: %s\r\nETag: "%x-%x"\r\nAccept-Ranges: bytes\r\nContent-Length: 1048576\r\n\r\n' \
  "$NOW" "$MTIME" "$(stat -c %Y "$TMP/www/$BIGFILE")" 1048576 >"$TMP/floor-file.head"

# What the peers' folder has (scripts/setup-deps.sh bench): a missing peer
# is not measured, with the reason.
need_bin() {   # need_bin TAG PATH WHAT
  [ -x "$2" ] || UNAVAIL[$1]="not measured: $3 is not built ($2 missing: run scripts/setup-deps.sh bench)"
}
need_bin actix "$PEERS/bin/bench-actix" "the Actix-web peer"
need_bin axum "$PEERS/bin/bench-axum" "the Axum peer"
need_bin go "$PEERS/bin/bench-gohttp" "the Go net/http peer"
BUN_BIN=$PEERS/node/node_modules/.bin/bun
"$BUN_BIN" --version >/dev/null 2>&1 || UNAVAIL[bun]="not measured: Bun is not installed ($BUN_BIN: run scripts/setup-deps.sh bench)"
GRANIAN_MISSING=""
"$PV" -c 'import granian' 2>/dev/null || GRANIAN_MISSING="not measured: granian is not installed in $PEERS/venv (run scripts/setup-deps.sh bench)"
SOCKETIFY_MISSING=""
"$PV" -c 'import socketify' 2>/dev/null || SOCKETIFY_MISSING="not measured: socketify.py is not installed in $PEERS/venv (scripts/setup-deps.sh bench tries; its message says why it could not)"
for t in wsgi-granian asgi-granian rsgi-granian flask-granian fastapi-granian; do
  [ -n "$GRANIAN_MISSING" ] && UNAVAIL[$t]=$GRANIAN_MISSING
done
for t in wsgi-socketify asgi-socketify; do
  [ -n "$SOCKETIFY_MISSING" ] && UNAVAIL[$t]=$SOCKETIFY_MISSING
done
for t in "${!UNAVAIL[@]}"; do log "$t: ${UNAVAIL[$t]}"; done

# ---------------------------------------------------------------- the servers
# server_cmd TAG PORT sets CMD (run under taskset -c SERVER_CPU) and DESC.
# granian: one worker process (granian keeps a master beside it; both are
# counted), a single-threaded runtime, one blocking thread (the one that runs
# a WSGI app), uvloop (as Piston's ASGI host and uvicorn use), HTTP/1 only.
# --backlog and --backpressure raised from granian's 1024 (backpressure is
# backlog / workers, the requests a worker takes on at once): at the
# defaults it answered only about 4,100 of the idle case's 10,000
# connections within 120 s and had closed nearly all of them by the end;
# with 16384 it answers and keeps all. At 64 connections (the other cases)
# the limit is never reached.
GRANIAN_OPTS=(--workers 1 --runtime-mode st --runtime-threads 1 --blocking-threads 1 --http 1 --no-ws
              --loop uvloop --backlog 16384 --backpressure 16384 --log-level warning)
server_cmd() {
  local tag=$1 port=$2 mod
  case $tag in
    floor) CMD=("$FLOOR" "$port" "$TMP/floor-hello.head")
      DESC="benchmarks/floor.c PORT (a fixed response per \\r\\n\\r\\n)" ;;
    floor-file) CMD=("$FLOOR" "$port" "$TMP/floor-file.head" "$TMP/www/$BIGFILE")
      DESC="benchmarks/floor.c PORT (fixed head + sendfile per \\r\\n\\r\\n)" ;;
    static-piston)
      CMD=("$PISTON_BIN" --bind "127.0.0.1:$port" --threads 1 --idle-timeout 600 --text "/hello=$HELLO_BODY"
           --dir "$TMP/www")
      DESC="build/piston-static --threads 1 --idle-timeout 600 --text '/hello=$HELLO_BODY' --dir DIR" ;;
    route-piston)
      CMD=("$PISTON_CLI" wsgi_hello:app --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1 --threads 1
           --route "/hello=$HELLO_BODY" --log-level warning)
      DESC="piston wsgi_hello:app --workers 1 --threads 1 --route '/hello=$HELLO_BODY'" ;;
    native-piston)
      CMD=("$NODE_BIN" "$JS_APPS/native_hello.js" "$port")
      DESC="node apps/js/native_hello.js (Piston's native App, a JS handler)" ;;
    actix) CMD=("$PEERS/bin/bench-actix" "$port" "$TMP/www")
      DESC="benchmarks/peers/actix (actix-web $(lock_ver actix actix-web), actix-files $(lock_ver actix actix-files); 1 worker)" ;;
    axum) CMD=("$PEERS/bin/bench-axum" "$port" "$TMP/www")
      DESC="benchmarks/peers/axum (axum $(lock_ver axum axum), hyper $(lock_ver axum hyper), tower-http $(lock_ver axum tower-http) ServeDir; current-thread tokio)" ;;
    go) CMD=(env GOMAXPROCS=1 "$PEERS/bin/bench-gohttp" "$port" "$TMP/www")
      DESC="benchmarks/peers/gohttp (net/http, $(go_ver); GOMAXPROCS=1)" ;;
    nginx)
      nginx_conf "$TMP/nginx" "$port" "$TMP/www" $((IDLE_CONNS + IDLE_CONNS / 4 + 256)) "$HELLO_BODY"
      CMD=("$NGINX_BIN" -e "$TMP/nginx/error.log" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf")
      DESC="nginx (worker_processes 1, master_process off, access_log off, sendfile on)" ;;
    bun) CMD=("$BUN_BIN" "$JS_APPS/bun_hello.js" "$port")
      DESC="bun apps/js/bun_hello.js (Bun.serve)" ;;
    node-http) CMD=("$NODE_BIN" "$JS_APPS/http_hello.js" node "$port")
      DESC="node apps/js/http_hello.js node (node:http)" ;;
    wsgi-piston | flask-piston)
      mod=wsgi_hello; [ "$tag" = flask-piston ] && mod=flask_hello
      CMD=("$PISTON_CLI" "$mod:app" --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1
           --threads "$PISTON_PY_THREADS" --log-level warning)
      DESC="piston $mod:app --workers 1 --threads $PISTON_PY_THREADS" ;;
    asgi-piston | fastapi-piston)
      mod=asgi_hello; [ "$tag" = fastapi-piston ] && mod=fastapi_hello
      CMD=("$PISTON_CLI" "$mod:app" --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1 --log-level warning)
      DESC="piston $mod:app --workers 1 (ASGI, uvloop)" ;;
    wsgi-granian | flask-granian | asgi-granian | fastapi-granian | rsgi-granian)
      local iface=${tag%%-*}
      case $iface in
        wsgi) mod=wsgi_hello ;; flask) mod=flask_hello iface=wsgi ;;
        asgi) mod=asgi_hello ;; fastapi) mod=fastapi_hello iface=asgi ;;
        rsgi) mod=rsgi_hello ;;
      esac
      CMD=("$PV" -m granian --interface "$iface" --working-dir "$PY_APPS" --host 127.0.0.1 --port "$port"
           "${GRANIAN_OPTS[@]}" "$mod:app")
      DESC="granian --interface $iface ${GRANIAN_OPTS[*]} $mod:app" ;;
    wsgi-socketify | asgi-socketify)
      mod=${tag%%-*}_hello
      CMD=(env PYTHONPATH="$PY_APPS" "$PV" -m socketify "$mod:app" --interface "${tag%%-*}" --host 127.0.0.1
           --port "$port" --workers 1 --ws none --disable-listen-log true)
      DESC="python -m socketify $mod:app --interface ${tag%%-*} --workers 1 --ws none" ;;
    wsgi-gunicorn | flask-gunicorn)
      mod=wsgi_hello; [ "$tag" = flask-gunicorn ] && mod=flask_hello
      CMD=("$GUNICORN" -m gunicorn --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1 --worker-class gthread
           --threads 1 --log-level warning "$mod:app")
      DESC="gunicorn -w 1 -k gthread --threads 1 $mod:app" ;;
    asgi-uvicorn | fastapi-uvicorn)
      mod=asgi_hello; [ "$tag" = fastapi-uvicorn ] && mod=fastapi_hello
      CMD=("$UV_PY" -W ignore::DeprecationWarning -m uvicorn --app-dir "$PY_APPS" --host 127.0.0.1 --port "$port"
           --http httptools --loop uvloop --workers 1 --no-access-log --log-level warning "$mod:app")
      DESC="uvicorn $UVICORN_VER --http httptools --loop uvloop --workers 1 --no-access-log $mod:app" ;;
    *) die "unknown server tag $tag" ;;
  esac
}

# lock_ver PEER CRATE: the crate's version in benchmarks/peers/PEER/Cargo.lock
lock_ver() {
  awk -v n="$2" '$1 == "name" && $3 == "\"" n "\"" {getline; gsub(/"/, "", $3); print $3; exit}' \
    "$HERE/peers/$1/Cargo.lock"
}
# The toolchains the peers were built with (scripts/setup-deps.sh bench
# writes them beside the binaries).
go_ver() { cat "$PEERS/bin/bench-gohttp.version" 2>/dev/null || echo 'Go ?'; }
cargo_ver() { cat "$PEERS/bin/rust.version" 2>/dev/null || echo 'rustc ?'; }
pyver_dist() { "$PV" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || echo '?'; }
fmt1() { printf '%.1f' "$1"; }

# uvicorn: the peers' venv's (newer) when there, else Debian's (as tls_run.sh).
UV_PY=$PYTHON
"$PV" -c 'import uvicorn' 2>/dev/null && UV_PY=$PV
UVICORN_VER=$("$UV_PY" -c 'import uvicorn; print(uvicorn.__version__)')

# Servers that also serve the 1 MiB file (the others answer /hello only).
serves_file() { case $1 in floor-file | static-piston | actix | axum | go | nginx) return 0 ;; esac; return 1; }

# The servers of the pipelining case (the Python hosts are measured on
# hello world only: gunicorn's gthread worker answers one request per read).
pipelines() { case " ${ENGINE[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

# start_server TAG: starts it and checks it before anything is measured:
# GET /hello answers 200, the exact body, text/plain, on a reused
# connection, and 16 pipelined requests get 16 answers; a file server serves
# the file byte for byte. The floor-file serves only the file.
start_server() {
  local tag=$1 port log pid ctype conns url
  spawn_server "$tag"
  url="http://127.0.0.1:$port/hello"
  if [ "$tag" != floor-file ]; then
    check_hello "$tag" "$url"
    conns=$(curl -s -m 10 -o /dev/null -o /dev/null -w '%{num_connects} ' "$url" "$url") || conns=fail
    [ "$conns" = "1 0 " ] || NOTES+=("$tag: curl could not reuse the connection for a second request (num_connects: $conns)")
    SRV_SIZE[$tag]=$(curl -si -m 10 "$url" | wc -c)
    if pipelines "$tag"; then
      local got
      got=$(pipelined "$port" /hello $PIPELINE_DEPTH)
      [ "$got" = $PIPELINE_DEPTH ] || die "$tag ($DESC): $PIPELINE_DEPTH pipelined GET /hello got $got complete responses"
    fi
  fi
  if serves_file "$tag"; then
    curl -s -m 20 -o "$TMP/big" "http://127.0.0.1:$port/$BIGFILE" || die "$tag: GET /$BIGFILE failed"
    cmp -s "$TMP/big" "$TMP/www/$BIGFILE" || die "$tag: /$BIGFILE differs from the file on disk"
    SRV_SIZE[$tag.file]=$(curl -si -m 20 "http://127.0.0.1:$port/$BIGFILE" | wc -c)
  fi
  log "$tag up on port $port: $DESC (pid $pid)"
}

# pipelined PORT PATH N: N requests in one write; prints how many complete
# 200 responses came back on that connection within 5 s.
pipelined() {
  "$PYTHON" - "$@" <<'EOF'
import socket, sys, time
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * n).encode())
buf, got, deadline = b"", 0, time.monotonic() + 5
while got < n and time.monotonic() < deadline:
    try:
        data = s.recv(65536)
    except socket.timeout:
        break
    if not data:
        break
    buf += data
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            break
        head = buf[:end].decode("latin-1").lower().split("\r\n")
        length = next((int(h.split(":", 1)[1]) for h in head if h.startswith("content-length:")), 0)
        if len(buf) < end + 4 + length:
            break
        got += head[0].split(" ")[1:2] == ["200"]
        buf = buf[end + 4 + length:]
print(got)
EOF
}

# m_wrk TAG PATH SECONDS [SCRIPT ARG]: wrk -t1 -c64 keep-alive -> lib.sh's
# run_metrics (M_RATE, M_MBPS, M_US, M_SB, M_CB). A run with no response
# at all is run once more (noted): on this shared machine a 1 s run of the
# smoke mode now and then falls in a stall of the load generator's core;
# a server that does not answer fails both.
m_wrk() {
  local url="http://127.0.0.1:${SRV_PORT[$1]}$2" n=${#FAILURES[@]}
  wrk_run "$1" "$url" "${@:3}" && return 0
  [ ${#FAILURES[@]} -gt "$n" ] && [[ ${FAILURES[-1]} == *": no responses" ]] || return 1
  unset 'FAILURES[-1]'
  NOTES+=("$1 $2: wrk got no response in a run of $3 s; run once more")
  wrk_run "$1" "$url" "${@:3}"
}

# measure_kind KIND TAG SECONDS (lib.sh's measure and bench_group): hello
# (keep-alive GET /hello), pipe (16 pipelined), file (keep-alive GET of the
# 1 MiB file)
measure_kind() {
  case $1 in
    hello) m_wrk "$2" /hello "$3" ;;
    pipe) m_wrk "$2" /hello "$3" "$HERE/pipeline.lua" "$PIPELINE_DEPTH" ;;
    file) m_wrk "$2" "/$BIGFILE" "$3" ;;
  esac
}

# idle TAG: the server alone, IDLE_CONNS keep-alive connections opened, one
# request each, left open; RSS (the sum over its processes) before and after.
idle() {
  local tag=$1 line rc port log pid
  [ -n "${UNAVAIL[$tag]:-}" ] && return
  spawn_server "$tag"
  sleep 0.3
  run_client taskset -c "$CLIENT_CPU" "$PYTHON" "$HERE/idle_conns.py" --port "$port" \
    --pid "$(tree_pids "$pid")" --conns "$IDLE_CONNS" --timeout 120 >"$TMP/idle.out" 2>&1
  rc=$?
  check_alive "$tag"
  line=$(grep '^IDLE_RESULT' "$TMP/idle.out")
  if [ -z "$line" ]; then
    cat "$TMP/idle.out" >&3; fail "$tag: the idle connection client gave no result"
  else
    log "idle $tag: ${line#IDLE_RESULT }"
    local kv
    for kv in ${line#IDLE_RESULT }; do IDLE[$tag.${kv%%=*}]=${kv#*=}; done
    [ $rc = 0 ] || NOTES+=("$tag: not every idle connection got a 200 and stayed open (${line#IDLE_RESULT })")
  fi
  stop_pid "$pid" 5 || NOTES+=("$tag did not exit within 5 s of SIGTERM (killed)")
}

declare -A BOUND
LOADGEN_BOUND=()

# ================================================================ measure
START_TS=$(date +%s)
ARTIFACTS=$(stat -c '%n %s %Y' "$PISTON_BIN" "$ROOT/build/Release/piston.node" 2>/dev/null)
log "runs: $RUNS x ${SECS}s; wrk -t1 -c$CONNS keep-alive; servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU"
ENGINE=(floor static-piston route-piston native-piston actix axum go nginx bun node-http)
FILES=(floor-file static-piston actix axum go nginx)
G_WSGI=(wsgi-piston wsgi-granian wsgi-socketify wsgi-gunicorn)
G_ASGI=(asgi-piston asgi-granian rsgi-granian asgi-socketify asgi-uvicorn)
G_FLASK=(flask-piston flask-granian flask-gunicorn)
G_FASTAPI=(fastapi-piston fastapi-granian fastapi-uvicorn)
bench_group "hello world and 16-deep pipelining" "hello pipe" "${ENGINE[@]}"
bench_group "1 MiB file" file "${FILES[@]}"
bench_group "raw WSGI" hello "${G_WSGI[@]}"
bench_group "raw ASGI and RSGI" hello "${G_ASGI[@]}"
bench_group "Flask" hello "${G_FLASK[@]}"
bench_group "FastAPI" hello "${G_FASTAPI[@]}"
log "== $IDLE_CONNS idle connections, one server at a time"
IDLE_TAGS=(floor static-piston route-piston native-piston actix axum go nginx bun node-http
           wsgi-piston asgi-piston wsgi-granian asgi-granian rsgi-granian asgi-uvicorn)
for tag in "${IDLE_TAGS[@]}"; do idle "$tag"; done

# ================================================================ report
for k in "${!SAMPLES[@]}"; do check_bound "$k" wrk; done

# floor_of KIND: the key of the floor's figures for that kind
floor_of() { [ "$1" = file ] && echo file.floor-file || echo "$1.floor"; }
cpu_of() { med "${CPUUS[$1]}"; }
rate_of() { med "${SAMPLES[$1]}"; }
x_floor() {   # x_floor KEY: the server's CPU per request over the floor's
  local f
  f=$(floor_of "${1%%.*}")
  [ -n "${CPUUS[$f]:-}" ] && [ -n "${CPUUS[$1]:-}" ] || { echo "—"; return; }
  echo "$(fmt2 "$(calc "$(cpu_of "$1") / $(cpu_of "$f")")")×"
}

T_ROWS=()
# target TEXT PISTON_KEY PEER_KEY MIN_RATE [MAX_CPU]: Piston's req/s over
# the peer's must be at least MIN_RATE, and (with MAX_CPU) its CPU per
# request over the peer's at most MAX_CPU.
target() {
  local text=$1 pk=$2 qk=$3 min=$4 max=${5:-} rr cr res goal
  goal="req/s ≥ ${min}×"
  [ -n "$max" ] && goal+=", CPU/req ≤ ${max}×"
  if [ -z "${SAMPLES[$pk]:-}" ] || [ -z "${SAMPLES[$qk]:-}" ]; then
    local miss=$pk
    [ -n "${SAMPLES[$pk]:-}" ] && miss=$qk
    T_ROWS+=("| $text | | | | | $goal | not measured: $miss $(why_not "$miss") |"); return
  fi
  rr=$(calc "$(rate_of "$pk") / $(rate_of "$qk")")
  cr=$(calc "$(cpu_of "$pk") / $(cpu_of "$qk")")
  res=PASS
  ge "$rr" "$min" || res="MISS (req/s)"
  if [ -n "$max" ] && ! ge "$max" "$cr"; then
    [ "$res" = PASS ] && res="MISS (CPU/req)" || res="MISS (req/s, CPU/req)"
  fi
  [ -n "${BOUND[$pk]:-}${BOUND[$qk]:-}" ] && res+="; wrk-bound, see notes"
  T_ROWS+=("| $text | $(cell "$pk") | $(cell "$qk") | $(fmt2 "$rr")× | $(fmt2 "$cr")× | $goal | $res |")
}
# floor_target TEXT KEY: the server's CPU per request within 1.1× the floor's
floor_target() {
  local text=$1 k=$2 f cr res
  f=$(floor_of "${k%%.*}")
  if [ -z "${CPUUS[$k]:-}" ] || [ -z "${CPUUS[$f]:-}" ]; then
    T_ROWS+=("| $text | | | | | CPU/req ≤ 1.1× the floor's | not measured |"); return
  fi
  cr=$(calc "$(cpu_of "$k") / $(cpu_of "$f")")
  res=PASS
  ge 1.1 "$cr" || res="MISS (CPU/req)"
  T_ROWS+=("| $text | $(cell "$k") | $(cell "$f") | $(fmt2 "$(calc "$(rate_of "$k") / $(rate_of "$f")")")× | $(fmt2 "$cr")× | CPU/req ≤ 1.1× the floor's | $res |")
}

for peer in actix axum; do
  name=Actix-web; [ $peer = axum ] && name=Axum
  target "piston-static vs $name: hello world" hello.static-piston hello.$peer 1.0 1.0
  target "piston-static vs $name: 16-deep pipelining" pipe.static-piston pipe.$peer 1.0 1.0
  target "piston-static vs $name: 1 MiB file" file.static-piston file.$peer 1.0 1.0
done
target "Native \`App\` (JS handler) vs Axum: hello world" hello.native-piston hello.axum 1.0
target "Native \`App\` (JS handler) vs Axum: 16-deep pipelining" pipe.native-piston pipe.axum 1.0
target "Piston WSGI vs granian WSGI: raw app" hello.wsgi-piston hello.wsgi-granian 1.2
target "Piston WSGI vs granian WSGI: Flask" hello.flask-piston hello.flask-granian 1.2
target "Piston ASGI vs granian ASGI: raw app" hello.asgi-piston hello.asgi-granian 1.2
target "Piston ASGI vs granian RSGI (its own interface): raw app" hello.asgi-piston hello.rsgi-granian 1.2
target "Piston ASGI vs granian ASGI: FastAPI" hello.fastapi-piston hello.fastapi-granian 1.2
floor_target "piston-static vs the floor: hello world" hello.static-piston
floor_target "piston-static vs the floor: 16-deep pipelining" pipe.static-piston
floor_target "piston-static vs the floor: 1 MiB file" file.static-piston
floor_target "\`piston --route\` vs the floor: hello world" hello.route-piston
floor_target "\`piston --route\` vs the floor: 16-deep pipelining" pipe.route-piston

# Every measured row: the Markdown table and the chart's data.
case_name() {
  case $1 in
    hello) echo "hello world" ;; pipe) echo "16-deep pipelining" ;; file) echo "1 MiB file" ;;
  esac
}
S_ROWS=()
printf 'case\tserver\treq_per_s\tcpu_us_per_req\tpiston\n' >"$TMP/data.tsv"
# srow KIND GROUP_LABEL TAG...
srow() {
  local kind=$1 label=$2 tag k size mb piston
  shift 2
  for tag in "$@"; do
    k=$kind.$tag
    if [ -z "${SAMPLES[$k]:-}" ]; then
      S_ROWS+=("| $label | $tag | \`${SRV_DESC[$tag]:-}\` | $(why_not "$k") | | | | | | | |"); continue
    fi
    size=${SRV_SIZE[$tag]:-?}
    mb=""
    if [ "$kind" = file ]; then size=${SRV_SIZE[$tag.file]:-?}; mb=" ($(fmt_int "$(med "${MBPS[$k]}")") MB/s)"; fi
    S_ROWS+=("| $label | $tag | \`${SRV_DESC[$tag]}\` | $(fmt_int "$(rate_of "$k")")$mb | $(spread "$k") | $(fmt2 "$(cpu_of "$k")") µs | $(x_floor "$k") | $(fmt_int "$(med "${SBUSY[$k]}")")% | $(fmt_int "$(med "${CBUSY[$k]}")")% | $(fmt_int "$(med "${STEAL[$k]}")")% | $size B |")
    piston=0
    case $tag in *piston*) piston=1 ;; esac
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "${tag%-file}" "$(rate_of "$k")" "$(cpu_of "$k")" "$piston" >>"$TMP/data.tsv"
  done
}
srow hello "hello world" "${ENGINE[@]}"
srow pipe "16-deep pipelining" "${ENGINE[@]}"
srow file "1 MiB file" "${FILES[@]}"
srow hello "raw WSGI" "${G_WSGI[@]}"
srow hello "raw ASGI / RSGI" "${G_ASGI[@]}"
srow hello "Flask" "${G_FLASK[@]}"
srow hello "FastAPI" "${G_FASTAPI[@]}"

I_ROWS=()
for tag in "${IDLE_TAGS[@]}"; do
  if [ -z "${IDLE[$tag.rss_after_kb]:-}" ]; then
    I_ROWS+=("| $tag | ${UNAVAIL[$tag]:-not measured} | | | |"); continue
  fi
  I_ROWS+=("| $tag | $(fmt1 "$(calc "${IDLE[$tag.rss_after_kb]} / 1024")") | $(fmt2 "$(calc "(${IDLE[$tag.rss_after_kb]} - ${IDLE[$tag.rss_before_kb]}) / ${IDLE[$tag.conns]}")") | $(fmt1 "$(calc "${IDLE[$tag.rss_before_kb]} / 1024")") | ${IDLE[$tag.ok]} / ${IDLE[$tag.open]} |")
done

steal_note
if [ ${#LOADGEN_BOUND[@]} -gt 0 ]; then
  NOTES+=("Held back by wrk (the server used under 90% of its CPU while wrk's CPU was 90% or more busy): these req/s are floors set by the load generator's one core, and a req/s ratio with them says little; the server CPU per request is the comparison that holds. $(printf '%s; ' "${LOADGEN_BOUND[@]}" | sed 's/; $//')")
fi
if [ "$(stat -c '%n %s %Y' "$PISTON_BIN" "$ROOT/build/Release/piston.node" 2>/dev/null)" != "$ARTIFACTS" ]; then
  NOTES+=("piston-static or the Node addon was rebuilt during this run: servers started before and after ran different builds")
fi

ELAPSED=$(($(date +%s) - START_TS))
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && GIT_REV+=" with uncommitted changes"
MODE_TXT="full"; [ "$QUICK" = 1 ] && MODE_TXT="quick (smoke test: numbers are not meaningful)"
pyver() { "$1" -c "import $2; print(getattr($2, '__version__', '?'))" 2>/dev/null || echo '?'; }
BUN_VER=$("$BUN_BIN" --version 2>/dev/null || echo 'not installed')
{
  echo "# Piston against Actix-web, Axum, Go, granian and the others, with a floor"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Kernel: $(uname -srm); CPU: $CPU_MODEL, $NCPU CPUs online, shared with other work while this ran: the rates are noisy, the server CPU per request is the steadier figure"
  echo "- Piston: git $GIT_REV; ${PISTON_BIN#"$ROOT/"}, \`piston\` CLI ${PISTON_CLI#"$ROOT/"}, Node addon build/Release/piston.node"
  echo "- Rust peers (\`benchmarks/peers/\`, versions from their Cargo.lock, \`cargo build --release\`, $(cargo_ver)); Go peer: $(go_ver); $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'); Node $("$NODE_BIN" --version); Bun $BUN_VER"
  echo "- Python $("$PYTHON" -c 'import platform; print(platform.python_version())'): granian $(pyver "$PV" granian), socketify.py $(pyver_dist socketify), uvicorn $UVICORN_VER, gunicorn $(pyver "$GUNICORN" gunicorn), uvloop $(pyver "$PYTHON" uvloop), Flask $(pyver "$PYTHON" flask), FastAPI $(pyver "$PYTHON" fastapi)"
  echo "- Load: wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}') \`-t1 -c$CONNS\` keep-alive; pipelining with \`benchmarks/pipeline.lua\` ($PIPELINE_DEPTH requests per write); $RUNS runs × $SECS s per server and case after a 1 s warm-up; the servers of a group run side by side and are measured in turn, the order rotating each run; every server pinned to CPU $SERVER_CPU, wrk to CPU $CLIENT_CPU (\`taskset\`)"
  echo "- Mode: $MODE_TXT; total time ${ELAPSED} s"
  echo
  echo "![req/s and server CPU per request by case](peers.png)"
  echo
  echo "## Targets"
  echo
  echo "| Target | Piston req/s (server CPU per request) | Peer req/s (server CPU per request) | req/s ratio | CPU/req ratio | Goal | Result |"
  echo "| --- | ---: | ---: | ---: | ---: | --- | --- |"
  printf '%s\n' "${T_ROWS[@]}"
  echo
  echo "Medians of the runs; ratios are Piston's over the peer's (CPU/req: lower is better). The floor is \`benchmarks/floor.c\`: one epoll loop that counts \`\\r\\n\\r\\n\` and writes a fixed response (piston-static's headers and body) per request, without parsing; for the file, the same head and \`sendfile(2)\`."
  echo
  echo "## Every server"
  echo
  echo "| Case | Server | Command (pinned with \`taskset -c $SERVER_CPU\`) | req/s (median) | min–max | server CPU per request | × the floor's | server's CPU use | wrk's CPU busy | CPU $SERVER_CPU stolen | Response (\`curl -si \| wc -c\`) |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${S_ROWS[@]}"
  echo
  echo "Server CPU per request: user+system time of the server's processes (\`/proc/PID/stat\`: the process and its children, e.g. granian's master and worker) read before and after each wrk run, over the responses in it; median of the runs. × the floor's: that over the floor's in the same case. Server's CPU use: that time over the run's length (100% = one CPU: the server was the bottleneck). wrk's CPU busy: CPU $CLIENT_CPU's busy share (\`/proc/stat\`). CPU $SERVER_CPU stolen: time the hypervisor gave to other guests."
  echo
  echo "## $(fmt_int "$IDLE_CONNS") idle keep-alive connections"
  echo
  echo "| Server | RSS with them open, MB | KB per connection (RSS growth) | RSS before, MB | 200s / still open |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${I_ROWS[@]}"
  echo
  echo "Each server alone, started fresh; \`benchmarks/idle_conns.py\` opens the connections, sends one \`GET /hello\` on each, reads the response, keeps them open, and reads VmRSS (summed over the server's processes) before and after. One run."
  echo
  echo "Every server was checked before measuring: \`GET /hello\` answers 200 with \`$HELLO_BODY\` and text/plain, a second request reuses the connection (or the notes say it did not), $PIPELINE_DEPTH pipelined requests get $PIPELINE_DEPTH responses (the servers of the pipelining case), and the file servers send the 1 MiB file byte for byte. Apps: \`benchmarks/apps/\`, peers' sources: \`benchmarks/peers/\`."
  report_notes
} >"$TMP/report.md"
mkdir -p "$(dirname "$OUT")"
cp "$TMP/data.tsv" "$DATA"
if "$PYTHON" -c 'import matplotlib' 2>/dev/null; then
  "$PYTHON" "$HERE/chart.py" "$DATA" "$CHART" || fail "benchmarks/chart.py could not draw $CHART"
else
  fail "python3-matplotlib is missing (scripts/setup-deps.sh bench installs it): no chart"
fi
publish_and_exit
