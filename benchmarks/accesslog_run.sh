#!/usr/bin/env bash
# What the engine's access log costs: piston-static answering a fixed
# route, with the log off, as combined lines to a file and as JSON lines
# to a file, alternated over BENCH_RUNS rounds so that the machine's noise
# falls on all three alike. Server pinned to CPU 0, wrk (-t1 -c64) to CPU
# 1. Reports req/s and the server's CPU per request (user+system from
# /proc/PID/stat over the wrk run, over the requests), median of the runs.
# usage: benchmarks/accesslog_run.sh   (BENCH_RUNS=5 BENCH_SECONDS=5)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BIN=${PISTON_BIN:-$ROOT/build/piston-static}
RUNS=${BENCH_RUNS:-5}
SECS=${BENCH_SECONDS:-5}
command -v wrk >/dev/null || { echo "wrk not found (scripts/setup-deps.sh bench)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
TICK=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

one() { # variant -> "reqs cpu_us_per_req"
  local args=() port pid t0 t1 out reqs
  case $1 in
    off) ;;
    combined) args=(--access-logfile "$TMP/a.log") ;;
    json) args=(--access-logfile "$TMP/a.log" --access-logformat json) ;;
  esac
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  taskset -c 0 "$BIN" --bind "127.0.0.1:$port" --text "/hello=Hello, World!" "${args[@]}" 2>"$TMP/err" &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$TMP/err" && break; sleep 0.05; done
  wrk -t1 -c64 -d1s "http://127.0.0.1:$port/hello" >/dev/null 2>&1 # warm up
  t0=$(cpu_ticks $pid)
  out=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" "http://127.0.0.1:$port/hello")
  t1=$(cpu_ticks $pid)
  kill $pid; wait $pid 2>/dev/null || true
  rm -f "$TMP/a.log"
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(awk -v t=$((t1 - t0)) -v n="$reqs" -v hz="$TICK" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')"
}

declare -A RPS CPU
for r in $(seq "$RUNS"); do
  for v in off combined json; do
    read -r rps cpu < <(one $v)
    RPS[$v]+="$rps "
    CPU[$v]+="$cpu "
    echo "run $r $v: $rps req/s, $cpu us/request" >&2
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| access log | req/s (median of $RUNS) | server CPU µs/request |"
echo "| --- | --- | --- |"
for v in off combined json; do
  echo "| $v | $(echo ${RPS[$v]} | median) | $(echo ${CPU[$v]} | median) |"
done
