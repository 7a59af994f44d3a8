#!/usr/bin/env bash
# The working tree against an earlier commit, in the same run: does a change
# cost speed? Builds REV (default HEAD~1) in a temporary worktree with the
# same commands as `make all dev node`, then measures both builds side by
# side on the engine's and the hosts' hello cases.
#
#   benchmarks/compare_rev.sh [REV]
#
# Knobs (environment):
#   BENCH_RUNS=5         repetitions per case (each measures both builds)
#   BENCH_SECONDS=5      seconds per wrk run
#   BENCH_CASES="static static-pipe wsgi asgi node-http native"
#   BENCH_COMPARE_OUT=benchmarks/results/compare.md
#
# Method (as run.sh): servers pinned to CPU 0, wrk -t1 -c64 keep-alive pinned
# to CPU 1; per repetition both builds are measured back to back, the order
# alternating. Server CPU time per request is CPU 0's busy time over the run
# (from /proc/stat; the servers' threads and workers inherit the pin) divided
# by the requests answered: it compares builds even where wrk's core is the
# bottleneck. The report gives medians, min-max and the ratio head/base.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REV=${1:-HEAD~1}
RUNS=${BENCH_RUNS:-5}
SECS=${BENCH_SECONDS:-5}
CASES=${BENCH_CASES:-static static-pipe wsgi asgi node-http native}
OUT=${BENCH_COMPARE_OUT:-$HERE/results/compare.md}
PYTHON=/usr/bin/python3
NODE_BIN=${NODE_BIN:-node}
HELLO_BODY='Hello, World!'
CONNS=64
SERVER_CPU=0
CLIENT_CPU=1

exec 3>&2
LOG_TAG=compare
PIDS=()
FAILURES=()
NOTES=()
. "$HERE/lib.sh"

for tool in wrk taskset git make "$NODE_BIN"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/setup-deps.sh bench)"
done
BASE_SHA=$(git -C "$ROOT" rev-parse --verify "$REV^{commit}" 2>/dev/null) || die "no commit $REV"
HEAD_SHA=$(git -C "$ROOT" rev-parse HEAD)
DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no | grep -q . && echo " with uncommitted changes")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/piston-compare.XXXXXX") || die "mktemp failed"
BASE=$TMP/base
cleanup() {
  local p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do stop_pid "$p" 3 2>/dev/null; done
  git -C "$ROOT" worktree remove --force "$BASE" >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---------------------------------------------------------------- the builds
log "building base $REV (${BASE_SHA:0:7}) in $BASE"
git -C "$ROOT" worktree add --detach "$BASE" "$BASE_SHA" >/dev/null 2>&1 || die "git worktree add failed"
build_tree() {   # DIR: the binaries, the Python package in DIR/.venv, the addon
  local dir=$1
  (cd "$dir" && make -s all >/dev/null &&
    { [ -x .venv/bin/python ] || "$PYTHON" -m venv --system-site-packages .venv; } &&
    .venv/bin/python -m pip install -q --no-build-isolation --no-deps -e . >/dev/null &&
    npm install --no-audit --no-fund --silent >/dev/null 2>&1) >&3 2>&1
}
build_tree "$BASE" || die "building $REV failed"
log "building the working tree"
build_tree "$ROOT" || die "building the working tree failed"

# ---------------------------------------------------------------- servers
# server_cmd CASE DIR PORT -> CMD
server_cmd() {
  local c=$1 dir=$2 port=$3 apps=$2/benchmarks/apps
  case $c in
    static | static-pipe)
      CMD=("$dir/build/piston-static" --bind "127.0.0.1:$port" --threads 1 --idle-timeout 600
           --text "/hello=$HELLO_BODY") ;;
    wsgi)
      CMD=("$dir/.venv/bin/piston" wsgi_hello:app --chdir "$apps/python" --bind "127.0.0.1:$port"
           --workers 1 --threads 1 --log-level warning) ;;
    asgi)
      CMD=("$dir/.venv/bin/piston" asgi_hello:app --chdir "$apps/python" --bind "127.0.0.1:$port"
           --workers 1 --log-level warning) ;;
    node-http)  # each tree's app requires that tree's package
      CMD=("$NODE_BIN" "$apps/js/http_hello.js" piston "$port") ;;
    native)
      CMD=("$NODE_BIN" "$apps/js/native_hello.js" "$port") ;;
    *) die "unknown case $c" ;;
  esac
}

declare -A SRV_PID SRV_PORT
start() {   # TAG CASE DIR
  local tag=$1 port pid i
  port=$(free_port)
  server_cmd "$2" "$3" "$port"
  taskset -c "$SERVER_CPU" "${CMD[@]}" </dev/null >"$TMP/$tag.log" 2>&1 3>&- &
  pid=$!
  PIDS+=("$pid")
  for ((i = 0; i < 1000; i++)); do
    alive "$pid" || { cat "$TMP/$tag.log" >&3; die "$tag exited during startup"; }
    curl -fs "http://127.0.0.1:$port/hello" >/dev/null 2>&1 && break
    sleep 0.01
  done
  SRV_PID[$tag]=$pid SRV_PORT[$tag]=$port
}

cpu0_busy() {   # busy and total jiffies of the server's CPU
  awk -v s="cpu$SERVER_CPU" '$1 == s {b = $2 + $3 + $4 + $7 + $8; print b, b + $5 + $6 + $9}' /proc/stat
}

# measure TAG CASE -> M_RPS M_US (server CPU us per request)
measure() {
  local tag=$1 c=$2 out=$TMP/wrk.out b0 t0 b1 t1 pipe=() depth=()
  if [ "$c" = static-pipe ]; then pipe=(-s "$HERE/pipeline.lua"); depth=(-- 16); fi
  read -r b0 t0 <<<"$(cpu0_busy)"
  run_client taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 5s "${pipe[@]}" \
    "http://127.0.0.1:${SRV_PORT[$tag]}/hello" "${depth[@]}" >"$out" 2>&1
  read -r b1 t1 <<<"$(cpu0_busy)"
  alive "${SRV_PID[$tag]}" || die "$tag died during the run"
  local rps
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  [ -n "$rps" ] || { cat "$out" >&3; die "$tag: wrk gave no result"; }
  grep -q 'Non-2xx' "$out" && FAILURES+=("$tag: non-2xx responses")
  M_RPS=$rps
  # one jiffy is 1/100 s (USER_HZ)
  M_US=$(calc "($b1 - $b0) * 10000 / ($rps * $SECS)")
}

declare -A RPS US
for c in $CASES; do
  log "case $c"
  start "base-$c" "$c" "$BASE"
  start "head-$c" "$c" "$ROOT"
  for tag in "base-$c" "head-$c"; do   # warm-up, not recorded
    run_client taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:${SRV_PORT[$tag]}/hello" >/dev/null 2>&1
  done
  for ((r = 0; r < RUNS; r++)); do
    order=("base-$c" "head-$c")
    [ $((r % 2)) = 1 ] && order=("head-$c" "base-$c")
    for tag in "${order[@]}"; do
      measure "$tag" "$c"
      RPS[$tag]+="$M_RPS " US[$tag]+="$M_US "
      log "  $tag: $(fmt_int "$M_RPS") req/s, $(printf '%.2f' "$M_US") us/req"
    done
  done
  stop_pid "${SRV_PID[base-$c]}" 3
  stop_pid "${SRV_PID[head-$c]}" 3
done

# ---------------------------------------------------------------- report
{
  echo "# Working tree against $REV, same run"
  echo
  echo "Base: \`${BASE_SHA:0:7}\` ($(git -C "$ROOT" log -1 --format=%s "$BASE_SHA" | cut -c1-80))."
  echo "Head: \`${HEAD_SHA:0:7}\`$DIRTY. $(date -u '+%Y-%m-%d %H:%M UTC'), $RUNS runs of ${SECS} s per build and case,"
  echo "alternating; wrk -t1 -c$CONNS on CPU $CLIENT_CPU, the server on CPU $SERVER_CPU (\`benchmarks/compare_rev.sh\`)."
  echo
  echo "| case | base req/s (min-max) | head req/s (min-max) | head/base | base us/req | head us/req | head/base CPU |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  for c in $CASES; do
    read -r bm bl bh <<<"$(stats "${RPS[base-$c]}")"
    read -r hm hl hh <<<"$(stats "${RPS[head-$c]}")"
    read -r bu _ _ <<<"$(stats "${US[base-$c]}")"
    read -r hu _ _ <<<"$(stats "${US[head-$c]}")"
    printf '| %s | %s (%s-%s) | %s (%s-%s) | %.3f | %.2f | %.2f | %.3f |\n' "$c" \
      "$(fmt_int "$bm")" "$(fmt_int "$bl")" "$(fmt_int "$bh")" \
      "$(fmt_int "$hm")" "$(fmt_int "$hl")" "$(fmt_int "$hh")" \
      "$(calc "$hm / $bm")" "$bu" "$hu" "$(calc "$hu / $bu")"
  done
  for f in "${FAILURES[@]}"; do echo; echo "- FAILURE: $f"; done
} >"$TMP/report.md"
mkdir -p "$(dirname "$OUT")"
cp "$TMP/report.md" "$OUT"
cat "$TMP/report.md"
[ ${#FAILURES[@]} -eq 0 ]
