#!/usr/bin/env bash
# Piston benchmark suite: piston-static against single-worker nginx.
#
#   benchmarks/run.sh                 full run (about 5 minutes)
#   BENCH_QUICK=1 benchmarks/run.sh   smoke run: 1 run of 1 s per case; exits
#                                     non-zero if a server fails to start or serve
# At the end it runs benchmarks/run_hosts.sh (the Python and Node bindings
# against their peers, about 5 more minutes; BENCH_HOSTS=0 skips it), then
# benchmarks/ws_run.sh (WebSocket, about 8 minutes; BENCH_WS=0 skips it),
# then benchmarks/tls_run.sh (TLS, about 6 minutes; BENCH_TLS=0 skips it)
# and benchmarks/h2_run.sh (HTTP/2, about 6 minutes; BENCH_H2=0 skips it),
# then benchmarks/peers_run.sh (Actix-web, Axum, Go, granian and the floor,
# with a chart; 15 to 20 minutes; BENCH_PEERS_RUN=0 skips it).
#
# Knobs (environment):
#   BENCH_RUNS=5          repetitions of each throughput case
#   BENCH_SECONDS=5       seconds per wrk run
#   BENCH_QUICK=1         smoke run (forces BENCH_RUNS=1, BENCH_SECONDS=1)
#   BENCH_IDLE_CONNS=10000  idle keep-alive connections in case 4
#   BENCH_STARTUP_RUNS=20   spawns timed for the exec-to-first-response target
#   BENCH_OUT=benchmarks/results/latest.md   where the Markdown table goes
#   PISTON_BIN=build/piston-static   server under test
#   PISTON_THREADS=1      --threads for piston-static (nginx runs 1 worker)
#   BENCH_HOSTS=1         0: do not run benchmarks/run_hosts.sh at the end
#   BENCH_WS=1            0: do not run benchmarks/ws_run.sh at the end
#   BENCH_TLS=1           0: do not run benchmarks/tls_run.sh at the end
#   BENCH_H2=1            0: do not run benchmarks/h2_run.sh at the end
#   BENCH_PEERS_RUN=1     0: do not run benchmarks/peers_run.sh at the end
#
# Method: the server is pinned to CPU 0 and the load generator to CPU 1
# (taskset); wrk -t1 -c64 with keep-alive. Every repetition runs piston and
# nginx back to back, alternating which goes first, so drift on this noisy
# machine hits both; the table gives medians, the piston/nginx ratio of the
# medians and the min-max spread. Every number printed is measured in this run.
# See benchmarks/README.md.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

QUICK=${BENCH_QUICK:-0}
RUNS=${BENCH_RUNS:-5}
SECS=${BENCH_SECONDS:-5}
STARTUP_RUNS=${BENCH_STARTUP_RUNS:-20}
if [ "$QUICK" = 1 ]; then RUNS=1; SECS=1; STARTUP_RUNS=5; fi
CONNS=64
PIPELINE_DEPTH=16
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
OUT=${BENCH_OUT:-$HERE/results/latest.md}
PISTON_BIN=${PISTON_BIN:-$ROOT/build/piston-static}
PISTON_THREADS=${PISTON_THREADS:-1}
NGINX_BIN=${NGINX_BIN:-nginx}
PYTHON=${BENCH_PYTHON:-/usr/bin/python3}
HELLO_BODY='Hello, World!'
BIGFILE=file-1MiB.bin

# Messages go to fd 3, a copy of the script's stderr, so they are seen even
# when a signal arrives while a client's output is redirected to a file.
LOG_TAG=bench
exec 3>&2
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- preflight
for tool in wrk taskset curl cc "$NGINX_BIN"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/setup-deps.sh bench installs the bench tools)"
done
[ -x "$PYTHON" ] || die "$PYTHON not found"
[ -x "$PISTON_BIN" ] || die "$PISTON_BIN not found or not executable (run make first)"
PISTON_BIN=$(cd "$(dirname "$PISTON_BIN")" && pwd)/$(basename "$PISTON_BIN")
if [ "$NCPU" -lt 2 ]; then
  log "warning: only $NCPU CPU; server and load generator share CPU 0"
  CLIENT_CPU=0
fi
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive integer"

# File descriptors: up to the hard limit, for the servers and the idle client.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard" 2>/dev/null || log "warning: cannot raise the fd limit to $hard"
if [ "$(ulimit -n)" -lt $((IDLE_CONNS + 128)) ]; then
  IDLE_CONNS=$(( $(ulimit -n) - 128 ))
  log "warning: fd limit $(ulimit -n) allows only $IDLE_CONNS idle connections"
fi

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d "${TMPDIR:-/tmp}/piston-bench.XXXXXX") || die "mktemp failed"
chmod 755 "$TMP"
PIDS=()

cleanup() {
  local p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do stop_pid "$p" 2 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

declare -A SRV_PID SRV_PORT SRV_LOG

# start_server KIND TAG: KIND is piston or nginx; TAG names the instance.
# Waits until the port listens; dies if the server exits or takes over 10 s.
start_server() {
  local kind=$1 tag=$2 port dir log pid i
  port=$(free_port)
  log="$TMP/$tag.log"
  if [ "$kind" = piston ]; then
    taskset -c "$SERVER_CPU" "$PISTON_BIN" --bind "127.0.0.1:$port" --dir "$TMP/www" \
      --text "/hello=$HELLO_BODY" --threads "$PISTON_THREADS" --idle-timeout 600 \
      </dev/null >"$log" 2>&1 3>&- &
    pid=$!
  else
    dir="$TMP/nginx-$tag"
    write_nginx_conf "$dir" "$port"
    taskset -c "$SERVER_CPU" "$NGINX_BIN" -e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf" \
      </dev/null >"$log" 2>&1 3>&- &
    pid=$!
  fi
  PIDS+=("$pid")
  for ((i = 0; i < 1000; i++)); do
    alive "$pid" || { cat "$log" "${dir:-/dev/null}/error.log" >&3 2>/dev/null; die "$kind ($tag) exited during startup"; }
    listening "$port" && break
    sleep 0.01
  done
  listening "$port" || die "$kind ($tag) is not listening on $port after 10 s"
  if [ "$kind" = piston ] && ! grep -q 'listening on http://127.0.0.1:' "$log"; then
    sleep 0.2
    grep -q 'listening on http://127.0.0.1:' "$log" || log "note: piston-static did not print its 'listening on' line"
  fi
  SRV_PID[$tag]=$pid SRV_PORT[$tag]=$port SRV_LOG[$tag]=$log
}

stop_server() {
  local tag=$1
  stop_pid "${SRV_PID[$tag]}" 5 || { log "note: $tag did not exit within 5 s of SIGTERM"; NOTES+=("$tag did not exit within 5 s of SIGTERM (killed)"); }
}

check_alive() {
  local tag=$1 rc
  alive "${SRV_PID[$tag]}" && return 0
  wait "${SRV_PID[$tag]}" 2>/dev/null; rc=$?
  forget_pid "${SRV_PID[$tag]}"
  tail -n 20 "${SRV_LOG[$tag]}" "$TMP/nginx-$tag/error.log" >&3 2>/dev/null
  if [ $rc -gt 128 ]; then
    die "$tag died during the benchmark (signal $((rc - 128)))"
  fi
  die "$tag died during the benchmark (exit status $rc)"
}

write_nginx_conf() {
  nginx_conf "$1" "$2" "$TMP/www" $((IDLE_CONNS + IDLE_CONNS / 4 + 256)) "$HELLO_BODY"
}

fmt1() { printf '%.1f' "$1"; }
fmt2() { printf '%.2f' "$1"; }
le() { awk "BEGIN {exit !(($1) <= ($2))}"; }
verdict() { if "$@"; then echo PASS; else echo MISS; fi; }

FAILURES=()
NOTES=()

# ---------------------------------------------------------------- wrk runs
# run_wrk TAG PATH [SCRIPT [ARGS]] -> sets W_RPS W_MBPS; appends failures.
run_wrk() {
  local tag=$1 path=$2 script=${3:-$HERE/report.lua} out line
  shift 3 2>/dev/null || shift $#
  out="$TMP/wrk.out"
  local extra=()
  [ $# -gt 0 ] && extra=(-- "$@")
  run_client taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 5s -s "$script" \
    "http://127.0.0.1:${SRV_PORT[$tag]}$path" "${extra[@]}" >"$out" 2>&1
  check_alive "$tag"
  line=$(grep '^WRK_RESULT' "$out")
  W_RPS=0 W_MBPS=0
  if [ -z "$line" ]; then cat "$out" >&3; fail "$tag $path: wrk gave no result"; return; fi
  local requests duration_us bytes err_connect err_read err_write err_status err_timeout
  eval "$(printf '%s\n' "${line#WRK_RESULT }" | tr ' ' '\n' | grep -E '^[a-z_0-9]+=[0-9]+$')"
  W_RPS=$(calc "$requests / ($duration_us / 1e6)")
  W_MBPS=$(calc "$bytes / $duration_us")   # bytes/us = MB/s (10^6 bytes)
  if [ "$requests" -eq 0 ]; then fail "$tag $path: no responses"; fi
  if [ "$err_status" -gt 0 ]; then fail "$tag $path: $err_status non-2xx/3xx responses"; fi
  local sock=$((err_connect + err_read + err_write + err_timeout))
  if [ "$sock" -gt 0 ]; then
    NOTES+=("$tag $path: wrk socket errors connect=$err_connect read=$err_read write=$err_write timeout=$err_timeout")
  fi
}

# bench_case NAME PATH [SCRIPT ARGS...]: RUNS interleaved repetitions.
# Sets R_piston_rps R_nginx_rps R_piston_mbps R_nginx_mbps (space-separated samples).
bench_case() {
  local name=$1 path=$2 r srv order
  shift 2
  R_piston_rps="" R_nginx_rps="" R_piston_mbps="" R_nginx_mbps=""
  if [ "$QUICK" != 1 ]; then   # warm-up, not recorded
    local save=$SECS; SECS=1
    for srv in piston nginx; do run_wrk "$srv" "$path" "$@"; done
    SECS=$save
  fi
  for ((r = 1; r <= RUNS; r++)); do
    if ((r % 2)); then order="piston nginx"; else order="nginx piston"; fi
    for srv in $order; do
      run_wrk "$srv" "$path" "$@"
      log "$name run $r/$RUNS $srv: $(fmt_int "$W_RPS") req/s, $(fmt1 "$W_MBPS") MB/s"
      eval "R_${srv}_rps+=\" $W_RPS\"; R_${srv}_mbps+=\" $W_MBPS\""
    done
  done
}

ROWS=()
# table_row CASE METRIC "piston samples" "nginx samples" FORMAT TARGET_TEXT MIN_RATIO
table_row() {
  local case=$1 metric=$2 ps=$3 ns=$4 fmt=$5 target=$6 min_ratio=$7
  local pm pmin pmax nm nmin nmax ratio res
  read -r pm pmin pmax <<<"$(stats "$ps")"
  read -r nm nmin nmax <<<"$(stats "$ns")"
  ratio=$(calc "($nm > 0) ? $pm / $nm : 0")
  res=$(verdict ge "$ratio" "$min_ratio")
  ROWS+=("| $case | $metric | $($fmt "$pm") | $($fmt "$nm") | $(fmt2 "$ratio")× | $($fmt "$pmin")–$($fmt "$pmax") | $($fmt "$nmin")–$($fmt "$nmax") | $target | $res |")
}

# ================================================================ setup
START_TS=$(date +%s)
mkdir -p "$TMP/www"
printf '%s' "$HELLO_BODY" >"$TMP/www/hello.txt"
head -c 1048576 /dev/urandom >"$TMP/www/$BIGFILE"
chmod -R a+rX "$TMP/www"

log "piston-static: $PISTON_BIN"
log "runs: $RUNS x ${SECS}s, $CONNS connections, server on CPU $SERVER_CPU, load on CPU $CLIENT_CPU"
start_server piston piston
start_server nginx nginx

# Both must serve the same content before anything is measured.
SIZE_LINES=()
for srv in piston nginx; do
  base="http://127.0.0.1:${SRV_PORT[$srv]}"
  code=$(curl -s -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' "$base/hello") || code=000
  [ "$code" = 200 ] || die "$srv: GET /hello answered $code"
  [ "$(cat "$TMP/body")" = "$HELLO_BODY" ] || die "$srv: GET /hello body is not '$HELLO_BODY'"
  grep -qi '^content-type: *text/plain' "$TMP/head" || fail "$srv: /hello Content-Type is not text/plain"
  curl -s -o "$TMP/big" "$base/$BIGFILE" || die "$srv: GET /$BIGFILE failed"
  cmp -s "$TMP/big" "$TMP/www/$BIGFILE" || die "$srv: /$BIGFILE differs from the file on disk"
  hello_size=$(curl -si "$base/hello" | wc -c)
  big_size=$(curl -si "$base/$BIGFILE" | wc -c)
  # Keep-alive: two requests in one curl must share one connection.
  nconn=$(curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' "$base/hello" "$base/hello" | awk "{s += \$1} END {print s}")
  [ "$nconn" = 1 ] || NOTES+=("$srv: two requests with curl used $nconn connections (keep-alive?)")
  eval "SIZE_${srv}_hello=$hello_size SIZE_${srv}_big=$big_size"
  log "$srv: /hello response $hello_size bytes (headers + body), /$BIGFILE response $big_size bytes"
done

# ================================================================ cases 1-3
bench_case "1 fixed response" /hello
C1_P=$R_piston_rps C1_N=$R_nginx_rps
table_row "1. Fixed response, $CONNS conns" "req/s" "$C1_P" "$C1_N" fmt_int "≥ 1.0×" 1.0

bench_case "2 pipelined x$PIPELINE_DEPTH" /hello "$HERE/pipeline.lua" "$PIPELINE_DEPTH"
table_row "2. Pipelined ×$PIPELINE_DEPTH, $CONNS conns" "req/s" "$R_piston_rps" "$R_nginx_rps" fmt_int "≥ 1.5×" 1.5

bench_case "3 1 MiB file" "/$BIGFILE"
table_row "3. 1 MiB static file, $CONNS conns" "req/s" "$R_piston_rps" "$R_nginx_rps" fmt_int "≥ 0.9×" 0.9
table_row "3. 1 MiB static file, $CONNS conns" "MB/s" "$R_piston_mbps" "$R_nginx_mbps" fmt_int "≥ 0.9×" 0.9

# ================================================================ case 5c: latency at 80% of peak
LOADGEN="$TMP/loadgen"
cc -O2 -o "$LOADGEN" "$HERE/loadgen.c" || die "cannot compile benchmarks/loadgen.c"
LAT_SECS=$SECS
LAT_WARM=1
[ "$QUICK" = 1 ] && LAT_WARM=0.5
# Two loads per server: 80% of its case-1 median (the target) and 10%, a
# reference for the machine's own noise floor.
declare -A LAT_RATE LAT_P50 LAT_P99 LAT_ACH LAT_WIRE99
LAT_LOADS="80 10"
for srv in piston nginx; do
  if [ $srv = piston ]; then samples=$C1_P; else samples=$C1_N; fi
  read -r peak _ _ <<<"$(stats "$samples")"
  for pct in $LAT_LOADS; do
    LAT_RATE[$srv.$pct]=$(calc "$pct / 100 * $peak")
    LAT_P50[$srv.$pct]="" LAT_P99[$srv.$pct]="" LAT_ACH[$srv.$pct]="" LAT_WIRE99[$srv.$pct]=""
  done
  log "latency: $srv at $(fmt_int "${LAT_RATE[$srv.80]}") and $(fmt_int "${LAT_RATE[$srv.10]}") req/s (80% and 10% of its case-1 median $(fmt_int "$peak"))"
done
for ((r = 1; r <= RUNS; r++)); do
  if ((r % 2)); then order="piston nginx"; else order="nginx piston"; fi
  for pct in $LAT_LOADS; do
    for srv in $order; do
      run_client taskset -c "$CLIENT_CPU" "$LOADGEN" -p "${SRV_PORT[$srv]}" -u /hello -c "$CONNS" \
        -r "${LAT_RATE[$srv.$pct]}" -d "$LAT_SECS" -w "$LAT_WARM" >"$TMP/loadgen.out" 2>&1
      lg_rc=$?
      check_alive "$srv"
      line=$(grep '^LOADGEN_RESULT' "$TMP/loadgen.out")
      if [ -z "$line" ]; then cat "$TMP/loadgen.out" >&3; fail "$srv: loadgen gave no result"; continue; fi
      log "latency run $r/$RUNS $srv at $pct%: ${line#LOADGEN_RESULT }"
      [ $lg_rc = 0 ] || fail "$srv latency run $r at $pct%: errors or unanswered requests (${line#LOADGEN_RESULT })"
      for kv in ${line#LOADGEN_RESULT }; do
        case ${kv%%=*} in
          p50_us) LAT_P50[$srv.$pct]+=" ${kv#*=}" ;;
          p99_us) LAT_P99[$srv.$pct]+=" ${kv#*=}" ;;
          wire_p99_us) LAT_WIRE99[$srv.$pct]+=" ${kv#*=}" ;;
          achieved) LAT_ACH[$srv.$pct]+=" ${kv#*=}" ;;
        esac
      done
    done
  done
done
stop_server piston
stop_server nginx

# ================================================================ case 4 + idle RSS
declare -A IDLE
for srv in piston nginx; do
  tag="idle-$srv"
  start_server "$srv" "$tag"
  sleep 0.2
  IDLE[$srv.rss_start]=$(rss_kb "${SRV_PID[$tag]}")
  log "$srv: RSS right after start ${IDLE[$srv.rss_start]} kB; opening $IDLE_CONNS idle connections"
  run_client taskset -c "$CLIENT_CPU" "$PYTHON" "$HERE/idle_conns.py" --port "${SRV_PORT[$tag]}" \
    --pid "${SRV_PID[$tag]}" --conns "$IDLE_CONNS" >"$TMP/idle.out" 2>&1
  idle_rc=$?
  check_alive "$tag"
  line=$(grep '^IDLE_RESULT' "$TMP/idle.out")
  if [ -z "$line" ]; then cat "$TMP/idle.out" >&3; fail "$srv: idle connection client gave no result"; stop_server "$tag"; continue; fi
  log "  ${line#IDLE_RESULT }"
  [ $idle_rc = 0 ] || fail "$srv: not every idle connection got a 200 and stayed open (${line#IDLE_RESULT })"
  for kv in ${line#IDLE_RESULT }; do IDLE[$srv.${kv%%=*}]=${kv#*=}; done
  stop_server "$tag"
done

# ================================================================ case 5b: exec to first response
declare -A STARTUP
nginx_start_dir="$TMP/nginx-startup"
write_nginx_conf "$nginx_start_dir" "$(free_port)"
start_port=$(awk '/listen 127.0.0.1:/ {sub(/.*:/, ""); sub(/;/, ""); print}' "$nginx_start_dir/nginx.conf")
for srv in piston nginx; do
  if [ $srv = piston ]; then
    cmd=("$PISTON_BIN" --bind '127.0.0.1:{port}' --dir "$TMP/www" --text "/hello=$HELLO_BODY"
         --threads "$PISTON_THREADS")
  else
    cmd=("$NGINX_BIN" -e "$nginx_start_dir/error.log" -p "$nginx_start_dir/" -c "$nginx_start_dir/nginx.conf")
  fi
  run_client "$PYTHON" "$HERE/startup_time.py" --runs "$STARTUP_RUNS" --port "$start_port" \
    --server-cpu "$SERVER_CPU" --client-cpu "$CLIENT_CPU" -- "${cmd[@]}" >"$TMP/startup.out" 2>&1
  line=$(grep '^STARTUP_RESULT' "$TMP/startup.out")
  if [ -z "$line" ]; then cat "$TMP/startup.out" >&3; fail "$srv: startup timing failed"; continue; fi
  log "$srv startup: ${line#STARTUP_RESULT }"
  for kv in ${line#STARTUP_RESULT }; do STARTUP[$srv.${kv%%=*}]=${kv#*=}; done
done

# ================================================================ report

# Case 4 rows
if [ -n "${IDLE[piston.rss_after_kb]:-}" ] && [ -n "${IDLE[nginx.rss_after_kb]:-}" ]; then
  pa=$(calc "${IDLE[piston.rss_after_kb]} / 1024") na=$(calc "${IDLE[nginx.rss_after_kb]} / 1024")
  pk=$(calc "(${IDLE[piston.rss_after_kb]} - ${IDLE[piston.rss_before_kb]}) / $IDLE_CONNS")
  nk=$(calc "(${IDLE[nginx.rss_after_kb]} - ${IDLE[nginx.rss_before_kb]}) / $IDLE_CONNS")
  ROWS+=("| 4. $(fmt_int "$IDLE_CONNS") idle keep-alive conns | RSS, MB | $(fmt1 "$pa") | $(fmt1 "$na") | $(fmt2 "$(calc "$pa / $na")")× | one run | one run | ≤ 50 MB | $(verdict le "$pa" 50) |")
  ROWS+=("| 4. $(fmt_int "$IDLE_CONNS") idle keep-alive conns | KB per conn (RSS growth) | $(fmt2 "$pk") | $(fmt2 "$nk") | $(fmt2 "$(calc "($nk > 0) ? $pk / $nk : 0")")× | | | — | — |")
fi

T_ROWS=()
if [ -n "${IDLE[piston.rss_start]:-}" ]; then
  prs=$(calc "${IDLE[piston.rss_start]} / 1024") nrs=$(calc "${IDLE[nginx.rss_start]:-0} / 1024")
  T_ROWS+=("| Idle RSS right after start | $(fmt2 "$prs") MB | $(fmt2 "$nrs") MB | < 5 MB | $(verdict awk "BEGIN {exit !($prs < 5)}") |")
fi
if [ -n "${STARTUP[piston.median_ms]:-}" ]; then
  ns_txt="—"
  [ -n "${STARTUP[nginx.median_ms]:-}" ] && ns_txt="${STARTUP[nginx.median_ms]} ms (${STARTUP[nginx.min_ms]}–${STARTUP[nginx.max_ms]})"
  T_ROWS+=("| Exec → first 200 response, median of $STARTUP_RUNS (min–max) | ${STARTUP[piston.median_ms]} ms (${STARTUP[piston.min_ms]}–${STARTUP[piston.max_ms]}) | $ns_txt | < 10 ms | $(verdict awk "BEGIN {exit !(${STARTUP[piston.median_ms]} < 10)}") |")
fi
# lat_txt KEY (srv.pct) -> "rate req/s (got x): p50 .., p99 .. (min–max), p99/p50 .."
lat_txt() {
  local key=$1 p50 p99 p99min p99max ach wire
  [ -n "${LAT_P50[$key]:-}" ] || { printf '—'; return; }
  read -r p50 _ _ <<<"$(stats "${LAT_P50[$key]}")"
  read -r p99 p99min p99max <<<"$(stats "${LAT_P99[$key]}")"
  read -r ach _ _ <<<"$(stats "${LAT_ACH[$key]}")"
  read -r wire _ _ <<<"$(stats "${LAT_WIRE99[$key]}")"
  printf '%s req/s (got %s): p50 %s µs, p99 %s µs (%s–%s), p99/p50 %s×; p99 from the actual send %s µs' \
    "$(fmt_int "${LAT_RATE[$key]}")" "$(fmt_int "$ach")" "$(fmt1 "$p50")" "$(fmt_int "$p99")" \
    "$(fmt_int "$p99min")" "$(fmt_int "$p99max")" "$(fmt1 "$(calc "($p50 > 0) ? $p99 / $p50 : 0")")" \
    "$(fmt_int "$wire")"
}
if [ -n "${LAT_P50[piston.80]:-}" ]; then
  read -r p50 _ _ <<<"$(stats "${LAT_P50[piston.80]}")"
  read -r p99 _ _ <<<"$(stats "${LAT_P99[piston.80]}")"
  T_ROWS+=("| Latency at 80% of own peak, fixed rate, $CONNS conns: median p50 and p99 of $RUNS runs (p99 min–max) | $(lat_txt piston.80) | $(lat_txt nginx.80) | p99 ≤ 3× p50 | $(verdict le "$p99" "3 * $p50") |")
  T_ROWS+=("| Reference: the same at 10% of own peak (machine noise floor) | $(lat_txt piston.10) | $(lat_txt nginx.10) | — | — |")
fi

ELAPSED=$(( $(date +%s) - START_TS ))
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
NGINX_VER=$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')
WRK_VER=$(wrk -v 2>&1 | awk 'NR == 1 {print $2}')
MODE="full"; [ "$QUICK" = 1 ] && MODE="quick (smoke test: numbers are not meaningful)"

{
  echo "# Piston benchmark results"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Kernel: $(uname -srm)"
  echo "- CPU: $CPU_MODEL, $NCPU CPUs online"
  echo "- Server under test: \`${PISTON_BIN#"$ROOT/"}\` (git $GIT_REV), --threads $PISTON_THREADS"
  echo "- Peer: $NGINX_VER, one process (\`worker_processes 1; master_process off\`), access_log off, keepalive_requests 1000000, sendfile on"
  echo "- Load: wrk $WRK_VER \`-t1 -c$CONNS\`, keep-alive; $RUNS runs × ${SECS} s per case, piston and nginx interleaved (alternating first); server on CPU $SERVER_CPU, load generator on CPU $CLIENT_CPU (\`taskset\`)"
  echo "- Mode: $MODE; total time ${ELAPSED} s"
  echo "- Response sizes, \`curl -si | wc -c\` (status line + headers + body): \`/hello\` piston ${SIZE_piston_hello} B, nginx ${SIZE_nginx_hello} B; \`/$BIGFILE\` piston ${SIZE_piston_big} B, nginx ${SIZE_nginx_big} B"
  echo
  echo "## piston-static vs nginx"
  echo
  echo "| Case | Metric | piston (median) | nginx (median) | piston/nginx | piston min–max | nginx min–max | Target | Result |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Ratios are of the medians. MB/s counts 10^6 bytes of response (headers + body) per second as wrk received them."
  echo "Case 4: RSS (VmRSS) of the server process with $(fmt_int "$IDLE_CONNS") keep-alive connections open, each after one request; KB per connection is (RSS after − RSS before) / connections."
  echo
  echo "## Standing targets for piston-static"
  echo
  echo "| Target | piston-static | nginx (reference) | Goal | Result |"
  echo "| --- | --- | --- | --- | --- |"
  [ ${#T_ROWS[@]} -gt 0 ] && printf '%s\n' "${T_ROWS[@]}"
  echo
  echo "Latency: benchmarks/loadgen.c sends requests on a fixed schedule (open loop, $CONNS connections, one request in flight each) at 80% (and, for reference, 10%) of each server's own case-1 median; $RUNS runs of ${LAT_SECS} s (after ${LAT_WARM} s of warm-up each), piston and nginx interleaved; latency runs from the scheduled send time to the end of the response, so queueing delay counts. \"p99 from the actual send\" times the same responses from when loadgen got each request out: the difference is time a request waited in the load generator (its loop busy, or every connection taken)."
  report_notes
} >"$TMP/report.md"
publish_report

# ================================================================ the bindings
# The Python and Node bindings against their peers: benchmarks/run_hosts.sh
# (same BENCH_RUNS/BENCH_SECONDS/BENCH_QUICK; its own report, results/hosts.md).
if [ "${BENCH_HOSTS:-1}" != 0 ]; then
  log "running benchmarks/run_hosts.sh (BENCH_HOSTS=0 skips it)"
  run_client "$HERE/run_hosts.sh" || fail "benchmarks/run_hosts.sh failed (its messages are above)"
fi
# WebSocket against the peers: benchmarks/ws_run.sh (results/ws.md).
if [ "${BENCH_WS:-1}" != 0 ]; then
  log "running benchmarks/ws_run.sh (BENCH_WS=0 skips it)"
  run_client "$HERE/ws_run.sh" || fail "benchmarks/ws_run.sh failed (its messages are above)"
fi
# TLS against the peers: benchmarks/tls_run.sh (results/tls.md).
if [ "${BENCH_TLS:-1}" != 0 ]; then
  log "running benchmarks/tls_run.sh (BENCH_TLS=0 skips it)"
  run_client "$HERE/tls_run.sh" || fail "benchmarks/tls_run.sh failed (its messages are above)"
fi
# HTTP/2 against the peers: benchmarks/h2_run.sh (results/h2.md).
if [ "${BENCH_H2:-1}" != 0 ]; then
  log "running benchmarks/h2_run.sh (BENCH_H2=0 skips it)"
  run_client "$HERE/h2_run.sh" || fail "benchmarks/h2_run.sh failed (its messages are above)"
fi
# Actix-web, Axum, Go, granian, socketify.py and the floor:
# benchmarks/peers_run.sh (results/peers.md, peers.png).
if [ "${BENCH_PEERS_RUN:-1}" != 0 ]; then
  log "running benchmarks/peers_run.sh (BENCH_PEERS_RUN=0 skips it)"
  run_client "$HERE/peers_run.sh" || fail "benchmarks/peers_run.sh failed (its messages are above)"
fi

if [ ${#FAILURES[@]} -gt 0 ]; then
  log "${#FAILURES[@]} failure(s)"
  exit 1
fi
exit 0
