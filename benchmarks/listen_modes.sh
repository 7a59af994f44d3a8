#!/usr/bin/env bash
# The supervisor's two ways of listening, compared: one socket shared by
# every worker (the default) and one SO_REUSEPORT socket per worker
# (--reuse-port). For each: requests/s and the CPU time of the server's
# processes (supervisor + workers) per request, with keep-alive and with a
# new connection per request, over BENCH_RUNS alternating runs.
# Needs wrk and `make dev`. Usage: benchmarks/listen_modes.sh
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
RUNS=${BENCH_RUNS:-5}
SECS=${BENCH_SECONDS:-4}
WORKERS=${BENCH_WORKERS:-2}
PORT=${BENCH_PORT:-18299}
PISTON_CLI=${PISTON_CLI:-$ROOT/.venv/bin/piston}

ticks() {  # utime + stime of pid $1 and its children, in clock ticks
  local t=0 p
  for p in "$1" $(pgrep -P "$1"); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}

hz=$(getconf CLK_TCK)
for _ in $(seq "$RUNS"); do
  for mode in --no-reuse-port --reuse-port; do
    (cd "$HERE/apps/python" && exec "$PISTON_CLI" wsgi_hello:app --bind 127.0.0.1:$PORT \
      --workers "$WORKERS" $mode 2>/dev/null) &
    pid=$!
    for _ in $(seq 100); do
      curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
      sleep 0.1
    done
    for conn in keep-alive close; do
      hdr=()
      [ "$conn" = close ] && hdr=(-H "Connection: close")
      t0=$(ticks "$pid")
      out=$(wrk -t1 -c32 -d"${SECS}s" "${hdr[@]}" "http://127.0.0.1:$PORT/" 2>&1)
      t1=$(ticks "$pid")
      n=$(awk '/requests in/ {print $1}' <<<"$out")
      rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
      errs=$(grep -i 'socket errors' <<<"$out" || true)
      printf '%-16s %-10s %10s req/s %6d us CPU/request %s\n' "$mode" "$conn" "$rps" \
        $(( (t1 - t0) * 1000000 / hz / n )) "$errs"
    done
    kill "$pid"
    wait "$pid" || true
  done
done
