#!/usr/bin/env bash
# The response cache: Flask, FastAPI and Express "hello" endpoints whose
# answer is marked cacheable, on Piston with the cache on, against the same
# endpoint uncached on Piston, piston-static --text (the native route), and
# nginx proxy_cache in front of gunicorn / uvicorn / node:http running the
# same app. Also Flask with the cache on and every request a miss (a new
# URL each time: capture, store and eviction on every request).
#
#   benchmarks/cache_run.sh                 full run (about 6 minutes)
#   BENCH_QUICK=1 benchmarks/cache_run.sh   smoke run (1 run of 1 s each)
#
# Knobs: BENCH_RUNS=3, BENCH_SECONDS=5, BENCH_CACHE_OUT=benchmarks/results/cache.md
#
# Method (as run_hosts.sh): every server one process pinned to CPU 0 (for
# nginx + upstream, both processes pinned to CPU 0, so the pair has one
# core as the others do), wrk -t1 -c64 keep-alive pinned to CPU 1. The
# servers of a group run side by side and are measured in turn, the order
# rotating between repetitions; medians and min-max spreads. CPU per
# request is the server's (and upstream's) user+system time over the run
# divided by the responses: on this shared machine it is steadier than
# req/s.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${BENCH_CACHE_OUT:-$HERE/results/cache.md}
LOG_TAG=cache
exec 3>&2
. "$HERE/lib.sh"
bench_settings
PY_APPS=$HERE/apps/python
JS_APPS=$HERE/apps/js
CACHE_SIZE=64000000
export BENCH_DIR=$HERE

bench_preflight wrk taskset curl "$NODE_BIN" "$NGINX_BIN"
[ -x "$PISTON_CLI" ] || die "$PISTON_CLI not found: run 'make dev'"
[ -x "$PISTON_BIN" ] || die "$PISTON_BIN not found: run 'make'"
[ -f "$ROOT/build/Release/piston.node" ] || die "the Node addon is missing: run 'make node'"
for mod in gunicorn uvicorn httptools uvloop flask fastapi; do
  "$PYTHON" -c "import $mod" 2>/dev/null || die "$PYTHON cannot import $mod (scripts/setup-deps.sh bench)"
done

make_tmp piston-cache
FAILURES=()
NOTES=()
declare -A SRV_PID SRV_PORT SRV_LOG SRV_DESC UP_PID SAMPLES USPR

# server_cmd TAG PORT: CMD and DESC (spawn_server's contract)
server_cmd() {
  local tag=$1 port=$2
  local pyc=("$PISTON_CLI" --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1 --log-level warning)
  case $tag in
    flask-cached | flask-miss)
      CMD=("${pyc[@]}" flask_cached:app --threads 1 --cache-size $CACHE_SIZE)
      DESC="piston flask_cached:app --threads 1 --cache-size $CACHE_SIZE" ;;
    flask-plain)
      CMD=("${pyc[@]}" flask_hello:app --threads 1)
      DESC="piston flask_hello:app --threads 1" ;;
    fastapi-cached)
      CMD=("${pyc[@]}" fastapi_cached:app --cache-size $CACHE_SIZE)
      DESC="piston fastapi_cached:app --cache-size $CACHE_SIZE (ASGI, uvloop)" ;;
    fastapi-plain)
      CMD=("${pyc[@]}" fastapi_hello:app)
      DESC="piston fastapi_hello:app (ASGI, uvloop)" ;;
    express-cached)
      CMD=("$NODE_BIN" "$JS_APPS/express_cached.js" piston "$port")
      DESC="node apps/js/express_cached.js piston (cacheSize 64e6)" ;;
    express-plain)
      CMD=("$NODE_BIN" "$JS_APPS/express_hello.js" piston "$port")
      DESC="node apps/js/express_hello.js piston" ;;
    static-*)
      CMD=("$PISTON_BIN" --bind "127.0.0.1:$port" --threads 1 --text "/hello=$HELLO_BODY")
      DESC="build/piston-static --threads 1 --text '/hello=$HELLO_BODY'" ;;
    up-flask)
      CMD=("$PYTHON" -m gunicorn --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1
           --worker-class gthread --threads 8 --log-level warning flask_cached:app)
      DESC="gunicorn -w 1 -k gthread --threads 8 flask_cached:app" ;;
    up-fastapi)
      CMD=("$PYTHON" -m uvicorn --app-dir "$PY_APPS" --host 127.0.0.1 --port "$port"
           --http httptools --loop uvloop --workers 1 --no-access-log --log-level warning fastapi_cached:app)
      DESC="uvicorn --http httptools --loop uvloop fastapi_cached:app" ;;
    up-express)
      CMD=("$NODE_BIN" "$JS_APPS/express_cached.js" node "$port")
      DESC="node apps/js/express_cached.js node" ;;
    ngx-*)
      proxy_conf "$TMP/$tag" "$port" "${SRV_PORT[up-${tag#ngx-}]}"
      CMD=("$NGINX_BIN" -p "$TMP/$tag/" -c "$TMP/$tag/nginx.conf")
      DESC="nginx proxy_cache (1 process, proxy_cache_valid 200 60s, proxy_cache_lock) -> ${SRV_DESC[up-${tag#ngx-}]}" ;;
    *) die "unknown server tag $tag" ;;
  esac
}

# proxy_conf DIR PORT UPSTREAM_PORT: nginx micro-caching as its users set
# it up: one process, keep-alive to the upstream, a memory+disk cache zone,
# the cache lock (coalescing), no access log.
proxy_conf() {
  local dir=$1 port=$2 up=$3
  mkdir -p "$dir/tmp" "$dir/cache"
  { nginx_common "$dir" 4096; cat <<EOF
    proxy_cache_path $dir/cache levels=1:2 keys_zone=micro:10m max_size=100m inactive=10m use_temp_path=off;
    upstream app { server 127.0.0.1:$up; keepalive 16; }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache micro;
            proxy_cache_valid 200 60s;
            proxy_cache_lock on;
            proxy_hide_header Piston-Cache;
        }
    }
}
EOF
  } >"$dir/nginx.conf"
}

start() {
  local tag=$1 port log pid
  case $tag in ngx-*) spawn_server "up-${tag#ngx-}"; UP_PID[$tag]=$pid ;; esac
  spawn_server "$tag"
  check_hello "$tag" "http://127.0.0.1:$port/hello"
  # the first answer was a miss; on Piston's cache the next is a hit (Age)
  if [[ $tag == *-cached || $tag == *-miss ]]; then
    curl -s -D - -o /dev/null "http://127.0.0.1:$port/hello" | grep -qi '^Age:' ||
      die "$tag: a second GET /hello was not answered from the cache (no Age)"
  fi
  log "$tag up on port $port: $DESC"
}

# measure TAG -> R_RPS, R_US (server CPU µs per response)
measure_one() {
  local tag=$1 secs=$2 url="http://127.0.0.1:${SRV_PORT[$tag]}/hello" script=$HERE/report.lua
  local pids="${SRV_PID[$tag]}" ms0 ms1 out=$TMP/wrk.out line
  [ -n "${UP_PID[$tag]:-}" ] && pids+=",${UP_PID[$tag]}"
  pids=$(for p in ${pids//,/ }; do tree_pids "$p"; done | paste -sd,)
  [ "$tag" = flask-miss ] && script=$HERE/unique.lua
  ms0=$(proc_cpu_ms "$pids")
  RUN_NO=$((${RUN_NO:-0} + 1))
  export BENCH_UNIQUE="$$-$RUN_NO"
  run_client taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${secs}s" --timeout 5s -s "$script" "$url" >"$out" 2>&1
  ms1=$(proc_cpu_ms "$pids")
  check_alive "$tag"
  line=$(grep '^WRK_RESULT' "$out") || { cat "$out" >&3; fail "$tag: wrk gave no result"; R_RPS=0 R_US=0; return; }
  local requests duration_us bytes err_connect err_read err_write err_status err_timeout
  eval "$(printf '%s\n' "${line#WRK_RESULT }" | tr ' ' '\n' | grep -E '^[a-z_0-9]+=[0-9]+$')"
  [ "$err_status" -gt 0 ] && fail "$tag: $err_status non-2xx responses"
  R_RPS=$(calc "$requests / ($duration_us / 1e6)")
  R_US=$(calc "($requests > 0) ? ($ms1 - $ms0) * 1000 / $requests : 0")
}

group() {
  local name=$1 r i n tag
  shift
  local tags=("$@")
  n=${#tags[@]}
  log "== $name: ${tags[*]}"
  for tag in "${tags[@]}"; do start "$tag"; SAMPLES[$tag]="" USPR[$tag]=""; done
  [ "$QUICK" = 1 ] || for tag in "${tags[@]}"; do measure_one "$tag" 1; done
  for ((r = 0; r < RUNS; r++)); do
    for ((i = 0; i < n; i++)); do
      tag=${tags[$(((r + i) % n))]}
      measure_one "$tag" "$SECS"
      SAMPLES[$tag]+=" $R_RPS" USPR[$tag]+=" $R_US"
      log "$name $((r + 1))/$RUNS $tag: $(fmt_int "$R_RPS") req/s, $(fmt2 "$R_US") µs CPU/req"
    done
  done
  for tag in "${tags[@]}"; do
    stop_pid "${SRV_PID[$tag]}" 5 || NOTES+=("$tag: killed after 5 s")
    [ -n "${UP_PID[$tag]:-}" ] && stop_pid "${UP_PID[$tag]}" 5
  done
}

T0=$(date +%s)
group Flask flask-cached flask-plain flask-miss static-flask ngx-flask
group FastAPI fastapi-cached fastapi-plain static-fastapi ngx-fastapi
group Express express-cached express-plain static-express ngx-express
ELAPSED=$(($(date +%s) - T0))

m() { med "${SAMPLES[$1]}"; }
u() { med "${USPR[$1]}"; }
ratio() { calc "$(m "$1") / $(m "$2")"; }
cpu_ratio() { calc "$(u "$2") / $(u "$1")"; }  # how many times less CPU per request
check() {  # check TAG OTHER MIN WHAT
  local x
  x=$(ratio "$1" "$2")
  local c="; by CPU per request $(fmt2 "$(cpu_ratio "$1" "$2")")×"
  ge "$x" "$4" && echo "$(fmt2 "$x")× (target ≥ $4×: met$c)" && return
  echo "$(fmt2 "$x")× (target ≥ $4×: NOT met$c)"
  NOTES+=("$1 vs $2: $(fmt2 "$x")×, under the $4× target ($3)")
}

{
  echo "# The response cache: hello endpoints cached in the engine"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"
  echo "$RUNS runs of $SECS s per server, wrk -t1 -c$CONNS keep-alive on CPU $CLIENT_CPU, servers on CPU $SERVER_CPU;"
  echo "medians (min–max). A shared, noisy machine: read the CPU µs per request first."
  echo
  echo "| server | req/s | CPU µs/req | server busy | command |"
  echo "| --- | --- | --- | --- | --- |"
  for tag in flask-cached flask-plain flask-miss static-flask ngx-flask \
             fastapi-cached fastapi-plain static-fastapi ngx-fastapi \
             express-cached express-plain static-express ngx-express; do
    [ -n "${SAMPLES[$tag]:-}" ] || continue
    echo "| $tag | $(fmt_int "$(m "$tag")") ($(spread "$tag")) | $(fmt2 "$(u "$tag")") | $(fmt_int "$(calc "$(m "$tag") * $(u "$tag") / 1e4")")% | \`${SRV_DESC[$tag]}\` |"
  done
  echo
  echo "server busy: req/s × CPU per request, the share of its core the server"
  echo "(with its upstream) used. Well under 100%, the server was waiting for"
  echo "requests: the rate then measures the load generator and the other load"
  echo "on the machine, and the CPU per request is the figure to compare."
  echo
  echo "## Ratios (same group, medians of req/s)"
  echo
  for fw in flask fastapi express; do
    echo "- $fw cached vs uncached on Piston: $(check "$fw-cached" "$fw-plain" "cached vs uncached" 10)"
    echo "- $fw cached vs piston-static --text: $(check "$fw-cached" "static-$fw" "vs the native route" 0.9)"
    echo "- $fw cached vs nginx proxy_cache in front: $(check "$fw-cached" "ngx-$fw" "vs nginx proxy_cache" 2)"
  done
  echo "- flask with the cache on, every request a miss (new URL each), vs uncached: $(fmt2 "$(ratio flask-miss flask-plain)")× (CPU per request $(fmt2 "$(u flask-miss)") vs $(fmt2 "$(u flask-plain)") µs)"
  report_notes
} >"$TMP/report.md"
publish_and_exit
