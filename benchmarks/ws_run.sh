#!/usr/bin/env bash
# Piston's WebSocket against the servers people run today: echo through the
# C test server, the ASGI host (raw and FastAPI) against uvicorn, the Node
# native App against Bun, the ws package on Piston's createServer against ws
# on node:http; fan-out to 1,000 subscribers; 10,000 idle sessions.
#
#   benchmarks/ws_run.sh                 full run (about 8 minutes)
#   BENCH_QUICK=1 benchmarks/ws_run.sh   smoke run: 1 run of 1 s per server;
#                                        exits non-zero if a server fails to
#                                        start or to echo
# run.sh calls this script at its end (BENCH_WS=0 skips it there).
#
# Knobs (environment):
#   BENCH_RUNS=3            repetitions of each server's wsload run
#   BENCH_SECONDS=5         seconds per measured run (after 1 s of warm-up)
#   BENCH_QUICK=1           smoke run (forces BENCH_RUNS=1, BENCH_SECONDS=1)
#   BENCH_WS_OUT=benchmarks/results/ws.md   where the Markdown report goes
#   BENCH_WS_CONNS=64 BENCH_WS_SIZE=24 BENCH_WS_DEPTH=1   the echo load
#   BENCH_FANOUT_SUBS=1000 BENCH_FANOUT_DEPTH=16          the fan-out load
#   BENCH_WS_IDLE=10000     idle sessions on the C test server
#   BENCH_PEERS=benchmarks/.peers   uvicorn's venv (venv/) and Bun
#                           (node/node_modules/.bin/bun), from
#                           scripts/setup-deps.sh bench
#   BUN_BIN=                a bun binary to use instead of the peers' one
#   PISTON_CLI=.venv/bin/piston  PISTON_TESTSERVER=build/piston-testserver
#   NODE_BIN=node
#
# Method (as run_hosts.sh): every server is one process pinned to CPU 0
# (taskset; its threads inherit the pin), benchmarks/wsload.c pinned to
# CPU 1. The servers of one comparison run side by side and are measured in
# turn, the order rotating between repetitions; the report gives medians,
# ratios of the medians and the min-max spread. Server CPU per message is
# the user+system time of the server's processes inside wsload's measured
# window (/proc/PID/stat) over the messages (or deliveries) in it. Every
# number printed is measured in this run. See benchmarks/README.md.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
APPS=$HERE/apps

QUICK=${BENCH_QUICK:-0}
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECONDS:-5}
WARM=1
if [ "$QUICK" = 1 ]; then RUNS=1; SECS=1; WARM=0.3; fi
OUT=${BENCH_WS_OUT:-$HERE/results/ws.md}
CONNS=${BENCH_WS_CONNS:-64}
SIZE=${BENCH_WS_SIZE:-24}
DEPTH=${BENCH_WS_DEPTH:-1}
SUBS=${BENCH_FANOUT_SUBS:-1000}
FDEPTH=${BENCH_FANOUT_DEPTH:-16}
IDLE=${BENCH_WS_IDLE:-10000}
PEERS=${BENCH_PEERS:-$HERE/.peers}
PYTHON=/usr/bin/python3
PEER_PY=$PEERS/venv/bin/python
BUN_BIN=${BUN_BIN:-$PEERS/node/node_modules/.bin/bun}
PISTON_CLI=${PISTON_CLI:-$ROOT/.venv/bin/piston}
PISTON_TESTSERVER=${PISTON_TESTSERVER:-$ROOT/build/piston-testserver}
NODE_BIN=${NODE_BIN:-node}
START_TIMEOUT=30

LOG_TAG=ws
exec 3>&2
. "$HERE/lib.sh"

# ---------------------------------------------------------------- preflight
bench_preflight taskset cc "$NODE_BIN"
[ -x "$PISTON_CLI" ] || die "$PISTON_CLI not found: run 'make dev'"
[ -x "$PISTON_TESTSERVER" ] || die "$PISTON_TESTSERVER not found: run 'make'"
[ -f "$ROOT/build/Release/piston.node" ] || die "the Node addon build/Release/piston.node is missing: run 'make node'"
(cd "$APPS/js" && "$NODE_BIN" -e "require.resolve('ws')" 2>/dev/null) || die "node cannot find ws: run 'make node' (npm install)"
for v in RUNS SECS CONNS SIZE DEPTH SUBS FDEPTH IDLE; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[ "$SIZE" -ge 16 ] || die "BENCH_WS_SIZE must be 16 or more (the fan-out payload starts with a 16-digit number)"
[ "$(ulimit -n)" -ge $((IDLE + 512)) ] || die "ulimit -n is $(ulimit -n): too low for $IDLE idle sessions"

# ---------------------------------------------------------------- processes
make_tmp piston-ws

FAILURES=()
NOTES=()
WSLOAD=$TMP/wsload
cc -O2 $(grep '^-' "$ROOT/csrc/cflags.txt" | grep -v visibility) -o "$WSLOAD" "$HERE/wsload.c" ||
  die "cannot compile benchmarks/wsload.c"

# ---------------------------------------------------------------- peers
# UNAVAIL[TAG]: why a server is not measured; its rows say so.
declare -A UNAVAIL
UVICORN_VER="" BUN_VER=""
if [ ! -x "$PEER_PY" ]; then
  why="not available: no $PEER_PY (scripts/setup-deps.sh bench makes it)"
elif ! UVICORN_VER=$("$PEER_PY" -c 'import uvicorn, websockets, wsproto; print(uvicorn.__version__, websockets.__version__, wsproto.__version__)' 2>&1); then
  why="not available: $PEER_PY cannot import uvicorn, websockets and wsproto ($(tail -n1 <<<"$UVICORN_VER"))"
  UVICORN_VER=""
else
  why=""
fi
if [ -n "$why" ]; then
  for t in asgi-uvicorn-websockets asgi-uvicorn-sansio asgi-uvicorn-wsproto fastapi-uvicorn; do UNAVAIL[$t]=$why; done
  NOTES+=("uvicorn: $why")
fi
if [ ! -x "$BUN_BIN" ]; then
  why="not available: no $BUN_BIN (scripts/setup-deps.sh bench installs the bun npm package there)"
elif ! BUN_VER=$("$BUN_BIN" --version 2>&1); then
  why="not available: '$BUN_BIN --version' failed ($(head -c 160 <<<"$BUN_VER" | tr '\n|' '  '))"
  BUN_VER=""
else
  why=""
fi
[ -n "$why" ] && { UNAVAIL[echo-bun]=$why UNAVAIL[fanout-bun]=$why; NOTES+=("Bun: $why"); }

# ---------------------------------------------------------------- the servers
# server_cmd TAG PORT sets CMD (run under taskset -c SERVER_CPU), DESC (as
# the report shows it), WSPATH and MODE (wsload's -u and -m). OPTIONAL: the
# path may not be in this build (the probe decides: 'not available').
PY_APPS=$APPS/python
JS_APPS=$APPS/js
server_cmd() {
  local tag=$1 port=$2 impl mod
  MODE=echo WSPATH=/ws OPTIONAL=0
  case $tag in
    echo-c | fanout-c | idle-c)
      CMD=("$PISTON_TESTSERVER" --bind "127.0.0.1:$port" --threads 1)
      DESC="build/piston-testserver --threads 1"
      WSPATH=/ws-echo
      [ "$tag" = fanout-c ] && WSPATH=/ws-pubsub ;;
    asgi-piston | fastapi-piston)
      mod=asgi_ws_echo
      [ "$tag" = fastapi-piston ] && mod=fastapi_ws_echo
      CMD=("$PISTON_CLI" "$mod:app" --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1 --log-level warning)
      DESC="piston $mod:app --workers 1 (ASGI, uvloop)" ;;
    asgi-uvicorn-* | fastapi-uvicorn)
      mod=asgi_ws_echo impl=${tag#asgi-uvicorn-}
      [ "$tag" = fastapi-uvicorn ] && mod=fastapi_ws_echo impl=websockets
      [ "$impl" = sansio ] && impl=websockets-sansio
      CMD=("$PEER_PY" -W ignore::DeprecationWarning -m uvicorn --app-dir "$PY_APPS" --host 127.0.0.1 --port "$port"
           --ws "$impl" --http httptools --loop uvloop --workers 1 --no-access-log --log-level warning "$mod:app")
      DESC="uvicorn --ws $impl --http httptools --loop uvloop --workers 1 $mod:app" ;;
    echo-native | fanout-native)
      CMD=("$NODE_BIN" "$JS_APPS/ws_native.js" "$port")
      DESC="node apps/js/ws_native.js (App, app.ws)"
      [ "$tag" = fanout-native ] && { WSPATH=/pubsub OPTIONAL=1; DESC="node apps/js/ws_native.js (App, ws.subscribe, app.publish)"; } ;;
    echo-bun | fanout-bun)
      CMD=("$BUN_BIN" "$JS_APPS/ws_bun.js" "$port")
      DESC="bun apps/js/ws_bun.js (Bun.serve websocket)"
      [ "$tag" = fanout-bun ] && { WSPATH=/pubsub; DESC="bun apps/js/ws_bun.js (ws.subscribe, server.publish)"; } ;;
    ws-node | ws-piston)
      CMD=("$NODE_BIN" "$JS_APPS/ws_http.js" "${tag#ws-}" "$port")
      DESC="node apps/js/ws_http.js ${tag#ws-} (ws on ${tag#ws-}'s createServer)"
      [ "$tag" = ws-node ] && DESC="node apps/js/ws_http.js node (ws on node:http)"
      [ "$tag" = ws-piston ] && OPTIONAL=1 ;;
    *) die "unknown server tag $tag" ;;
  esac
  case $tag in fanout-*) MODE=fanout ;; idle-*) MODE=idle ;; esac
}

declare -A SRV_PID SRV_PORT SRV_LOG SRV_DESC SRV_PATH SRV_MODE SAMPLES CPUUS SBUSY CBUSY P50 P99

# wsload_run TAG SECONDS WARMUP [CONNS]: runs wsload against TAG pinned to
# CLIENT_CPU; its result line goes to WS_LINE ("" if it failed).
wsload_run() {
  local tag=$1 secs=$2 warm=$3 c=${4:-}
  local args=(-m "${SRV_MODE[$tag]}" -p "${SRV_PORT[$tag]}" -u "${SRV_PATH[$tag]}" -s "$SIZE"
              -d "$secs" -w "$warm" -P "$(tree_pids "${SRV_PID[$tag]}")")
  if [ "${SRV_MODE[$tag]}" = fanout ]; then args+=(-c "${c:-$SUBS}" -k "$FDEPTH"); else args+=(-c "${c:-$CONNS}" -k "$DEPTH"); fi
  run_client timeout $((${secs%.*} + 120)) taskset -c "$CLIENT_CPU" "$WSLOAD" "${args[@]}" >"$TMP/wsload.out" 2>&1
  WS_LINE=$(grep -E '^WSLOAD_(RESULT|FANOUT)' "$TMP/wsload.out")
}

# start_server TAG: starts it, waits for the port, then a short wsload run
# (2 connections, 0.2 s) checks the WebSocket path. A server that fails it
# dies the script, except an OPTIONAL one, which is 'not available'.
start_server() {
  local tag=$1 port log pid
  spawn_server "$tag"
  SRV_PATH[$tag]=$WSPATH SRV_MODE[$tag]=$MODE
  [ "$MODE" = idle ] && return 0
  wsload_run "$tag" 0.2 0 2
  if [ -z "$WS_LINE" ]; then
    local why
    why=$(grep -m1 'wsload' "$TMP/wsload.out" | tr '\r|' ' /' | cut -c1-120)
    if [ "$OPTIONAL" = 1 ]; then
      UNAVAIL[$tag]="not available in this build (${why:-no answer}; $(grep -m1 -i 'no app.publish' "$log" || echo "handshake check at ${SRV_PATH[$tag]}"))"
      log "$tag: ${UNAVAIL[$tag]}"
      stop_pid "$pid" 5
      return 1
    fi
    cat "$TMP/wsload.out" >&3
    tail -n 30 "$log" >&3
    die "$tag ($DESC) failed the WebSocket check at ${SRV_PATH[$tag]}"
  fi
  log "$tag up on port $port: $DESC (pid $pid)"
}

# measure TAG -> M_RATE (messages or deliveries /s), M_US (server CPU us per
# message), M_SB and M_CB (% of a CPU used by the server and by wsload),
# M_P50/M_P99 (us)
measure() {
  local tag=$1 messages deliveries rate p50_us p99_us server_cpu_ms client_cpu_ms seconds
  wsload_run "$tag" "$SECS" "$WARM"
  check_alive "$tag"
  M_RATE=0 M_US=0 M_SB=0 M_CB=0 M_P50=0 M_P99=0
  if [ -z "$WS_LINE" ]; then cat "$TMP/wsload.out" >&3; fail "$tag: wsload gave no result"; return 1; fi
  eval "$(printf '%s\n' "${WS_LINE#* }" | tr ' ' '\n' | grep -E '^[a-z_0-9]+=-?[0-9.]+$')"
  local n=${messages:-${deliveries:-0}}
  [ "$n" -gt 0 ] || { fail "$tag: no messages in the measured window"; return 1; }
  M_RATE=$rate M_P50=$p50_us M_P99=$p99_us
  M_US=$(calc "$server_cpu_ms * 1000 / $n")
  M_SB=$(calc "100 * $server_cpu_ms / ($seconds * 1000)")
  M_CB=$(calc "100 * $client_cpu_ms / ($seconds * 1000)")
}

# bench_group NAME TAG...: starts the group's servers (the ones that are
# available), warms each up (1 s, not recorded), then RUNS repetitions
# measuring every server once, the order rotating by one per repetition.
bench_group() {
  local name=$1 r i n tag
  shift
  local tags=()
  log "== $name: $*"
  for tag in "$@"; do
    [ -n "${UNAVAIL[$tag]:-}" ] && continue
    start_server "$tag" && tags+=("$tag")
  done
  n=${#tags[@]}
  [ "$QUICK" = 1 ] || for tag in "${tags[@]}"; do wsload_run "$tag" 1 0; done
  for ((r = 0; r < RUNS; r++)); do
    for ((i = 0; i < n; i++)); do
      tag=${tags[$(((r + i) % n))]}
      measure "$tag" || continue
      SAMPLES[$tag]+=" $M_RATE" CPUUS[$tag]+=" $M_US" SBUSY[$tag]+=" $M_SB" CBUSY[$tag]+=" $M_CB"
      P50[$tag]+=" $M_P50" P99[$tag]+=" $M_P99"
      log "$name run $((r + 1))/$RUNS $tag: $(fmt_int "$M_RATE")/s, server $(printf '%.2f' "$M_US") us CPU each, server $(fmt_int "$M_SB")% of a CPU, wsload $(fmt_int "$M_CB")%"
    done
  done
  for tag in "${tags[@]}"; do stop_pid "${SRV_PID[$tag]}" 5 || NOTES+=("$tag did not exit within 5 s of SIGTERM (killed)"); done
}

why_not() { echo "${UNAVAIL[$1]:-not measured}"; }

# Held back by the load generator (lib.sh's check_bound): BOUND, LOADGEN_BOUND.
declare -A BOUND
LOADGEN_BOUND=()

ROWS=()
# row CASE PISTON_TAG PEER_TAG TARGET_TEXT MIN_RATIO: judged on the rate
# medians; the CPU per message of both is beside them.
row() {
  local case=$1 pt=$2 qt=$3 target=$4 min=$5 pm qm ratio res
  if [ -z "${SAMPLES[$pt]:-}" ]; then
    ROWS+=("| $case | $(why_not "$pt") | | | | | $target | not measured |"); return
  fi
  pm=$(med "${SAMPLES[$pt]}")
  if [ -z "${SAMPLES[$qt]:-}" ]; then
    ROWS+=("| $case | $(fmt_int "$pm") ($(fmt2 "$(med "${CPUUS[$pt]}")") µs) | $(why_not "$qt") | — | $(spread "$pt") | | $target | not measured |"); return
  fi
  qm=$(med "${SAMPLES[$qt]}")
  ratio=$(calc "($qm > 0) ? $pm / $qm : 0")
  res=MISS
  if [ -z "$min" ]; then res="—"; elif ge "$ratio" "$min"; then res=PASS; fi
  [ -n "${BOUND[$pt]:-}${BOUND[$qt]:-}" ] && res+=" (held back by wsload: see notes)"
  ROWS+=("| $case | $(fmt_int "$pm") ($(fmt2 "$(med "${CPUUS[$pt]}")") µs) | $(fmt_int "$qm") ($(fmt2 "$(med "${CPUUS[$qt]}")") µs) | $(fmt2 "$ratio")× | $(spread "$pt") | $(spread "$qt") | $target | $res |")
}

# ================================================================ measure
START_TS=$(date +%s)
log "runs: $RUNS x ${SECS}s; echo: $CONNS connections x $DEPTH in flight, $SIZE-byte text; fan-out: $SUBS subscribers, $FDEPTH publishes in flight; servers on CPU $SERVER_CPU, wsload on CPU $CLIENT_CPU"
bench_group "Python ASGI echo" asgi-piston asgi-uvicorn-websockets asgi-uvicorn-sansio asgi-uvicorn-wsproto \
  fastapi-piston fastapi-uvicorn
bench_group "Node echo" echo-c echo-native echo-bun ws-piston ws-node
bench_group "Fan-out" fanout-c fanout-native fanout-bun

# 10,000 idle sessions: a fresh C test server, one echo on each session.
log "== idle: $IDLE sessions on the C test server"
IDLE_RESULT=""
start_server idle-c
if run_client timeout 300 taskset -c "$CLIENT_CPU" "$WSLOAD" -m idle -p "${SRV_PORT[idle-c]}" -u /ws-echo \
     -c "$IDLE" -s "$SIZE" -P "${SRV_PID[idle-c]}" >"$TMP/idle.out" 2>&1; then
  IDLE_RESULT=$(grep '^WSLOAD_IDLE' "$TMP/idle.out")
else
  cat "$TMP/idle.out" >&3
  fail "idle: wsload -m idle failed ($(tail -n1 "$TMP/idle.out"))"
fi
check_alive idle-c
stop_pid "${SRV_PID[idle-c]}" 5

# ================================================================ report
ALL=(asgi-piston asgi-uvicorn-websockets asgi-uvicorn-sansio asgi-uvicorn-wsproto fastapi-piston fastapi-uvicorn
     echo-c echo-native echo-bun ws-piston ws-node fanout-c fanout-native fanout-bun)
for tag in "${ALL[@]}"; do [ -n "${SAMPLES[$tag]:-}" ] && check_bound "$tag" wsload; done

row "Raw ASGI echo on Piston vs uvicorn \`--ws websockets\`" asgi-piston asgi-uvicorn-websockets "≥ 3×" 3
row "Raw ASGI echo on Piston vs uvicorn \`--ws websockets-sansio\`" asgi-piston asgi-uvicorn-sansio "— (no target)" ""
row "Raw ASGI echo on Piston vs uvicorn \`--ws wsproto\`" asgi-piston asgi-uvicorn-wsproto "— (no target)" ""
row "FastAPI echo on Piston vs FastAPI on uvicorn \`--ws websockets\`" fastapi-piston fastapi-uvicorn "— (no target)" ""
row "\`ws\` on \`piston.createServer\` vs \`ws\` on \`node:http\`" ws-piston ws-node "≥ 1.0×" 1.0
row "Native \`App\` \`app.ws\` echo vs Bun \`Bun.serve\` websocket" echo-native echo-bun "≥ 1.0×" 1.0
row "Fan-out: native \`App\` \`app.publish\` vs Bun \`server.publish\` (deliveries/s)" fanout-native fanout-bun "≥ 1.0×" 1.0
row "Fan-out: C test server \`/ws-pubsub\` (\`piston_ws_publish\`) vs Bun \`server.publish\` (deliveries/s)" fanout-c fanout-bun "— (no target)" ""

IDLE_ROW="| $IDLE idle WebSockets on the C test server: VmRSS with all open | not measured | ≤ 60 MB | not measured |"
if [ -n "$IDLE_RESULT" ]; then
  eval "$(printf '%s\n' "${IDLE_RESULT#* }" | tr ' ' '\n' | grep -E '^[a-z_0-9]+=[0-9]+$')"
  [ "$ok" = "$conns" ] || fail "idle: only $ok of $conns sessions echoed"
  mb=$(calc "$rss_after_kb * 1024 / 1e6")
  res=MISS; ge 60 "$mb" && res=PASS
  IDLE_ROW="| $conns idle WebSockets on the C test server: VmRSS with all open ($ok echoed once each) | $(printf '%.1f' "$mb") MB ($(printf '%.1f' "$(calc "$rss_before_kb * 1024 / 1e6")") MB before; $(printf '%.2f' "$(calc "($rss_after_kb - $rss_before_kb) * 1.024 / $conns")") KB per session) | ≤ 60 MB | $res |"
fi

S_ROWS=()
for tag in "${ALL[@]}"; do
  if [ -z "${SAMPLES[$tag]:-}" ]; then
    S_ROWS+=("| $tag | \`${SRV_DESC[$tag]:-}\` | $(why_not "$tag") | | | | | | |"); continue
  fi
  unit=msg; [ "${SRV_MODE[$tag]}" = fanout ] && unit=delivery
  S_ROWS+=("| $tag | \`${SRV_DESC[$tag]}\` (\`${SRV_PATH[$tag]}\`) | $(fmt_int "$(med "${SAMPLES[$tag]}")") | $(spread "$tag") | $(fmt2 "$(med "${CPUUS[$tag]}")") µs/$unit | $(fmt_int "$(med "${SBUSY[$tag]}")")% | $(fmt_int "$(med "${CBUSY[$tag]}")")% | $(fmt_int "$(med "${P50[$tag]}")") | $(fmt_int "$(med "${P99[$tag]}")") |")
done
if [ ${#LOADGEN_BOUND[@]} -gt 0 ]; then
  NOTES+=("Held back by the load generator (the server used under 90% of its CPU while wsload used 90% or more of its own): these rates are floors, and a ratio with such a server says little; compare the CPU per message instead. $(printf '%s; ' "${LOADGEN_BOUND[@]}" | sed 's/; $//')")
fi

ELAPSED=$(($(date +%s) - START_TS))
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && GIT_REV+=" with uncommitted changes"
MODE_TXT="full"; [ "$QUICK" = 1 ] && MODE_TXT="quick (smoke test: numbers are not meaningful)"
jsver() { (cd "$APPS/js" && "$NODE_BIN" -p "require('$1/package.json').version" 2>/dev/null) || echo '?'; }
read -r UV_V WS_V WP_V <<<"${UVICORN_VER:-? ? ?}"
{
  echo "# Piston's WebSocket against the peers: echo, fan-out, idle sessions"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Kernel: $(uname -srm); CPU: $CPU_MODEL, $NCPU CPUs online (shared with other work: noisy)"
  echo "- Piston: git $GIT_REV; \`piston\` CLI ${PISTON_CLI#"$ROOT/"}, ${PISTON_TESTSERVER#"$ROOT/"}, Node addon build/Release/piston.node"
  echo "- Python $("$PYTHON" -c 'import platform; print(platform.python_version())'); peers' venv ${PEER_PY#"$ROOT/"}: uvicorn $UV_V, websockets $WS_V, wsproto $WP_V (from the Python package index; httptools, uvloop and FastAPI from Debian)"
  echo "- Node $("$NODE_BIN" --version), ws $(jsver ws); Bun ${BUN_VER:-not available} (the \`bun\` npm package)"
  echo "- Echo: \`benchmarks/wsload.c\`, $CONNS connections, $DEPTH message(s) in flight on each (closed loop), $SIZE-byte masked text messages, every echo checked"
  echo "- Fan-out: $SUBS subscriber connections and one publisher keeping $FDEPTH publishes of $SIZE bytes in flight; a publish is done when all $SUBS subscribers got it; every delivery checked (in order, none lost)"
  echo "- $RUNS runs × $SECS s per server after ${WARM} s of warm-up in each run and a 1 s warm-up run; the servers of a group run side by side and are measured in turn, the order rotating each run; every server one process pinned to CPU $SERVER_CPU, wsload on CPU $CLIENT_CPU (\`taskset\`)"
  echo "- Mode: $MODE_TXT; total time ${ELAPSED} s"
  echo
  echo "## Targets"
  echo
  echo "| Case | Piston /s (server CPU per message) | Peer /s (server CPU per message) | Piston/peer | Piston min–max | Peer min–max | Target | Result |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "| Case | Measured | Target | Result |"
  echo "| --- | --- | --- | --- |"
  echo "$IDLE_ROW"
  echo
  echo "Ratios are of the rate medians (messages/s for echo, deliveries/s for fan-out). The idle figure is the whole process's VmRSS with every session open (its growth per session beside it)."
  echo
  echo "## Every server"
  echo
  echo "| Server | Command (pinned with \`taskset -c $SERVER_CPU\`) | /s (median) | min–max | server CPU per message | server's CPU use | wsload's CPU use | p50 µs | p99 µs |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${S_ROWS[@]}"
  echo
  echo "Server CPU per message: user+system time of the server's processes (\`/proc/PID/stat\`, the process and its children) inside wsload's measured window, over the messages echoed (or deliveries made) in it; median of the runs. CPU use: that time (and wsload's own, \`CLOCK_PROCESS_CPUTIME_ID\`) over the window. Latency: from a message's send to its echo; for fan-out, from a publish to its delivery to the last subscriber."
  echo
  echo "Apps: \`benchmarks/apps/python/asgi_ws_echo.py\`, \`fastapi_ws_echo.py\`, \`benchmarks/apps/js/ws_native.js\`, \`ws_bun.js\`, \`ws_http.js\`; the C test server's \`/ws-echo\` and \`/ws-pubsub\`. Each server first passed a short wsload run on its path (2 connections); a path that is not in this build is reported as such."
  report_notes
} >"$TMP/report.md"
publish_and_exit
