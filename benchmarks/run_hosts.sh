#!/usr/bin/env bash
# Piston on its hosts: hello world through the Python (WSGI) and Node
# bindings against the servers their users run today.
#
#   benchmarks/run_hosts.sh                 full run (about 5 minutes)
#   BENCH_QUICK=1 benchmarks/run_hosts.sh   smoke run: 1 run of 1 s per server;
#                                           exits non-zero if a server fails to
#                                           start or to serve
# run.sh calls this script at its end (BENCH_HOSTS=0 skips it there).
#
# Knobs (environment):
#   BENCH_RUNS=3          repetitions of each server's wrk run
#   BENCH_SECONDS=5       seconds per wrk run
#   BENCH_QUICK=1         smoke run (forces BENCH_RUNS=1, BENCH_SECONDS=1)
#   BENCH_HOSTS_OUT=benchmarks/results/hosts.md   where the Markdown report goes
#   BENCH_PYTHON=/usr/bin/python3   Python for gunicorn and uvicorn (Debian's)
#   PISTON_CLI=.venv/bin/piston     the Python binding's CLI (`make dev`)
#   PISTON_BIN=build/piston-static  the C reference for the native-route case
#   PISTON_PY_THREADS="1 8"         --threads values tried for Piston's WSGI cases
#   GUNICORN_THREADS=8              gunicorn gthread --threads
#   NODE_BIN=node
#   BUN_BIN=                        a bun binary to use; empty: npm-install
#                                   @oven/bun-linux-x64 into the temp dir
#   BUN_PACKAGE=@oven/bun-linux-x64 (append @VERSION to pin one)
#   BENCH_BUN=1                     0: skip Bun (the case is reported as not measured)
#
# Method (as run.sh): every server is one worker process pinned to CPU 0
# (taskset; its threads inherit the pin), wrk -t1 -c64 keep-alive pinned to
# CPU 1. The servers of one comparison run side by side and are measured in
# turn, the order rotating between repetitions; the report gives medians,
# ratios of the medians and the min-max spread. Every number printed is
# measured in this run. See benchmarks/README.md.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
APPS=$HERE/apps

QUICK=${BENCH_QUICK:-0}
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECONDS:-5}
if [ "$QUICK" = 1 ]; then RUNS=1; SECS=1; fi
CONNS=64
OUT=${BENCH_HOSTS_OUT:-$HERE/results/hosts.md}
PYTHON=${BENCH_PYTHON:-/usr/bin/python3}
PISTON_CLI=${PISTON_CLI:-$ROOT/.venv/bin/piston}
PISTON_BIN=${PISTON_BIN:-$ROOT/build/piston-static}
PISTON_PY_THREADS=${PISTON_PY_THREADS:-1 8}
GUNICORN_THREADS=${GUNICORN_THREADS:-8}
NODE_BIN=${NODE_BIN:-node}
BUN_BIN=${BUN_BIN:-}
BUN_PACKAGE=${BUN_PACKAGE:-@oven/bun-linux-x64}
BENCH_BUN=${BENCH_BUN:-1}
HELLO_BODY='Hello, World!'
START_TIMEOUT=30   # seconds for a server to listen (Python imports are slow)

LOG_TAG=hosts
exec 3>&2
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- preflight
bench_preflight wrk taskset curl "$NODE_BIN"
[ -x "$PYTHON" ] || die "$PYTHON not found"
[ -x "$PISTON_CLI" ] || die "$PISTON_CLI not found: run 'make dev' (builds .venv with the piston CLI)"
[ -x "$PISTON_BIN" ] || die "$PISTON_BIN not found or not executable: run 'make'"
[ -f "$ROOT/build/Release/piston.node" ] || die "the Node addon build/Release/piston.node is missing: run 'make node' (npm install)"
for mod in gunicorn uvicorn httptools uvloop flask fastapi; do
  "$PYTHON" -c "import $mod" 2>/dev/null || die "$PYTHON cannot import $mod (scripts/setup-deps.sh bench installs it)"
done
for mod in express fastify; do
  (cd "$APPS/js" && "$NODE_BIN" -e "require.resolve('$mod')" 2>/dev/null) || die "node cannot find $mod: run 'make node' (npm install)"
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive integer"
for t in $PISTON_PY_THREADS; do [[ "$t" =~ ^[1-9][0-9]*$ ]] || die "PISTON_PY_THREADS: bad value '$t'"; done
[ -n "${PISTON_PY_THREADS// /}" ] || die "PISTON_PY_THREADS is empty"

# ---------------------------------------------------------------- processes
make_tmp piston-hosts

gt() { awk "BEGIN {exit !(($1) > ($2))}"; }

FAILURES=()
NOTES=()

# ---------------------------------------------------------------- the servers
# Each server is a TAG. server_cmd TAG PORT sets CMD (the argv, run under
# taskset -c SERVER_CPU) and DESC (the command as the report shows it).
PY_APPS=$APPS/python
JS_APPS=$APPS/js
server_cmd() {
  local tag=$1 port=$2 t
  case $tag in
    wsgi-piston-t* | flask-piston-t*)
      t=${tag##*-t}
      local mod=wsgi_hello
      [ "${tag%%-*}" = flask ] && mod=flask_hello
      CMD=("$PISTON_CLI" "$mod:app" --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1
           --threads "$t" --log-level warning)
      DESC="piston $mod:app --workers 1 --threads $t" ;;
    wsgi-gunicorn | flask-gunicorn)
      local mod=wsgi_hello
      [ "$tag" = flask-gunicorn ] && mod=flask_hello
      CMD=("$PYTHON" -m gunicorn --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1
           --worker-class gthread --threads "$GUNICORN_THREADS" --log-level warning "$mod:app")
      DESC="gunicorn -w 1 -k gthread --threads $GUNICORN_THREADS $mod:app" ;;
    asgi-uvicorn | fastapi-uvicorn | fastapi-sync-uvicorn)
      local mod=asgi_hello
      [ "$tag" = fastapi-uvicorn ] && mod=fastapi_hello
      [ "$tag" = fastapi-sync-uvicorn ] && mod=fastapi_sync_hello
      CMD=("$PYTHON" -m uvicorn --app-dir "$PY_APPS" --host 127.0.0.1 --port "$port"
           --http httptools --loop uvloop --workers 1 --no-access-log --log-level warning "$mod:app")
      DESC="uvicorn --http httptools --loop uvloop --workers 1 --no-access-log $mod:app" ;;
    asgi-piston | fastapi-piston | fastapi-sync-piston)
      local mod=asgi_hello
      [ "$tag" = fastapi-piston ] && mod=fastapi_hello
      [ "$tag" = fastapi-sync-piston ] && mod=fastapi_sync_hello
      CMD=("$PISTON_CLI" "$mod:app" --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1
           --log-level warning)
      DESC="piston $mod:app --workers 1 (ASGI, uvloop)" ;;
    route-piston-cli)
      CMD=("$PISTON_CLI" wsgi_hello:app --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1
           --threads 1 --route "/hello=$HELLO_BODY" --log-level warning)
      DESC="piston wsgi_hello:app --workers 1 --threads 1 --route '/hello=$HELLO_BODY'" ;;
    route-piston-static)
      CMD=("$PISTON_BIN" --bind "127.0.0.1:$port" --threads 1 --text "/hello=$HELLO_BODY")
      DESC="build/piston-static --threads 1 --text '/hello=$HELLO_BODY'" ;;
    http-piston | http-node)
      CMD=("$NODE_BIN" "$JS_APPS/http_hello.js" "${tag#http-}" "$port")
      DESC="node apps/js/http_hello.js ${tag#http-}" ;;
    express-piston | express-node)
      CMD=("$NODE_BIN" "$JS_APPS/express_hello.js" "${tag#express-}" "$port")
      DESC="node apps/js/express_hello.js ${tag#express-}" ;;
    fastify-piston | fastify-node)
      CMD=("$NODE_BIN" "$JS_APPS/fastify_hello.js" "${tag#fastify-}" "$port")
      DESC="node apps/js/fastify_hello.js ${tag#fastify-}" ;;
    native-piston)
      CMD=("$NODE_BIN" "$JS_APPS/native_hello.js" "$port")
      DESC="node apps/js/native_hello.js" ;;
    native-bun)
      CMD=("$BUN_BIN" "$JS_APPS/bun_hello.js" "$port")
      DESC="bun apps/js/bun_hello.js" ;;
    *) die "unknown server tag $tag" ;;
  esac
}

declare -A SRV_PID SRV_PORT SRV_LOG SRV_DESC SRV_SIZE SRV_CTYPE SAMPLES CPU0 CPU1

# start_server TAG: starts, waits for the port, checks the response; dies if
# the server exits, does not listen within START_TIMEOUT, or answers wrongly.
start_server() {
  local tag=$1 port log pid code ctype conns
  spawn_server "$tag"
  # Same answer from everyone: 200, the exact body, text/plain; and the
  # connection is reused for a second request (keep-alive).
  local url="http://127.0.0.1:$port/hello"
  check_hello "$tag" "$url"
  conns=$(curl -s -m 10 -o /dev/null -o /dev/null -w '%{num_connects} ' "$url" "$url") || conns=fail
  [ "$conns" = "1 0 " ] || die "$tag ($DESC): curl could not reuse the connection for a second request (num_connects: $conns)"
  SRV_SIZE[$tag]=$(curl -si -m 10 "$url" | wc -c)
  SRV_CTYPE[$tag]=$ctype
  log "$tag up on port $port: $DESC (pid $pid)"
}

stop_server() {
  local tag=$1
  stop_pid "${SRV_PID[$tag]}" 5 || NOTES+=("$tag did not exit within 5 s of SIGTERM (killed)")
}

# run_wrk TAG -> W_RPS, W_CPU0 and W_CPU1 (% busy of CPU 0 and 1 during the run)
run_wrk() {
  local tag=$1 out line sb0 st0 cb0 ct0 sb1 st1 cb1 ct1
  out="$TMP/wrk.out"
  read -r sb0 st0 cb0 ct0 <<<"$(cpu_snap)"
  run_client taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 5s -s "$HERE/report.lua" \
    "http://127.0.0.1:${SRV_PORT[$tag]}/hello" >"$out" 2>&1
  read -r sb1 st1 cb1 ct1 <<<"$(cpu_snap)"
  W_CPU0=$(calc "($st1 > $st0) ? 100 * ($sb1 - $sb0) / ($st1 - $st0) : 0")
  W_CPU1=$(calc "($ct1 > $ct0) ? 100 * ($cb1 - $cb0) / ($ct1 - $ct0) : 0")
  check_alive "$tag"
  line=$(grep '^WRK_RESULT' "$out")
  W_RPS=0
  if [ -z "$line" ]; then cat "$out" >&3; fail "$tag: wrk gave no result"; return; fi
  local requests duration_us bytes err_connect err_read err_write err_status err_timeout
  eval "$(printf '%s\n' "${line#WRK_RESULT }" | tr ' ' '\n' | grep -E '^[a-z_0-9]+=[0-9]+$')"
  W_RPS=$(calc "$requests / ($duration_us / 1e6)")
  [ "$requests" -eq 0 ] && fail "$tag: no responses"
  [ "$err_status" -gt 0 ] && fail "$tag: $err_status non-2xx/3xx responses"
  local sock=$((err_connect + err_read + err_write + err_timeout))
  [ "$sock" -gt 0 ] && NOTES+=("$tag: wrk socket errors connect=$err_connect read=$err_read write=$err_write timeout=$err_timeout")
}

# bench_group NAME TAG...: starts the group's servers, warms each up (1 s,
# not recorded), then RUNS repetitions measuring every server once, the order
# rotating by one per repetition; stops them.
bench_group() {
  local name=$1 r i n tag
  shift
  local tags=("$@")
  n=${#tags[@]}
  log "== $name: ${tags[*]}"
  for tag in "${tags[@]}"; do start_server "$tag"; SAMPLES[$tag]="" CPU0[$tag]="" CPU1[$tag]=""; done
  if [ "$QUICK" != 1 ]; then
    local save=$SECS; SECS=1
    for tag in "${tags[@]}"; do run_wrk "$tag"; done
    SECS=$save
  fi
  for ((r = 0; r < RUNS; r++)); do
    for ((i = 0; i < n; i++)); do
      tag=${tags[$(((r + i) % n))]}
      run_wrk "$tag"
      SAMPLES[$tag]+=" $W_RPS" CPU0[$tag]+=" $W_CPU0" CPU1[$tag]+=" $W_CPU1"
      log "$name run $((r + 1))/$RUNS $tag: $(fmt_int "$W_RPS") req/s, CPU $SERVER_CPU $(fmt_int "$W_CPU0")% busy, CPU $CLIENT_CPU $(fmt_int "$W_CPU1")%"
    done
  done
  for tag in "${tags[@]}"; do stop_server "$tag"; done
}

median_of() { local m; read -r m _ _ <<<"$(stats "${SAMPLES[$1]}")"; echo "$m"; }
cpu0_of() { local m; read -r m _ _ <<<"$(stats "${CPU0[$1]}")"; echo "$m"; }
cpu1_of() { local m; read -r m _ _ <<<"$(stats "${CPU1[$1]}")"; echo "$m"; }

# A server that left its CPU partly idle (under 95% busy) while wrk's CPU was
# full (90% or more) was held back by the load generator: its req/s is a
# floor, and a ratio between two such servers says little. Noted in the report.
LOADGEN_BOUND=()
declare -A BOUND
check_wrk_bound() {
  local tag=$1 c0 c1
  c0=$(cpu0_of "$tag") c1=$(cpu1_of "$tag")
  if ! ge "$c0" 95 && ge "$c1" 90; then
    BOUND[$tag]=1
    LOADGEN_BOUND+=("$tag (CPU $SERVER_CPU $(fmt_int "$c0")% busy, wrk's CPU $CLIENT_CPU $(fmt_int "$c1")%)")
  fi
}

# best_of TAG...: the tag with the highest median
best_of() {
  local best="" bm=-1 tag m
  for tag in "$@"; do
    [ -n "${SAMPLES[$tag]:-}" ] || continue
    m=$(median_of "$tag")
    if gt "$m" "$bm"; then best=$tag bm=$m; fi
  done
  echo "$best"
}


ROWS=()
# row CASE PISTON_TAG PEER_TAG TARGET_TEXT MIN_RATIO [PISTON_NOTE]
row() {
  local case=$1 pt=$2 qt=$3 target=$4 min=$5 note=${6:-} pm qm ratio
  if [ -z "$pt" ] || [ -z "${SAMPLES[$pt]:-}" ]; then
    ROWS+=("| $case | not measured | | | | | $target | — |"); return
  fi
  pm=$(median_of "$pt")
  if [ -z "$qt" ] || [ -z "${SAMPLES[$qt]:-}" ]; then
    ROWS+=("| $case | $(fmt_int "$pm")$note | not measured | — | $(spread "$pt") | — | $target | not measured |"); return
  fi
  qm=$(median_of "$qt")
  ratio=$(calc "($qm > 0) ? $pm / $qm : 0")
  local res=MISS
  if [ -z "$min" ]; then res="—"; elif ge "$ratio" "$min"; then res=PASS; fi
  [ -n "${BOUND[$pt]:-}${BOUND[$qt]:-}" ] && res+=" (held back by wrk: see notes)"
  ROWS+=("| $case | $(fmt_int "$pm")$note | $(fmt_int "$qm") | $(fmt2 "$ratio")× | $(spread "$pt") | $(spread "$qt") | $target | $res |")
}

# ================================================================ Bun
START_TS=$(date +%s)
# The binaries under test; if one is rebuilt during the run, the report says so.
artifacts() {
  local py_ext
  py_ext=$("$(dirname "$PISTON_CLI")/python" -c 'import piston._piston as m; print(m.__file__)' 2>/dev/null)
  stat -c '%n %s %Y' "$ROOT/build/Release/piston.node" "$PISTON_BIN" ${py_ext:+"$py_ext"} 2>/dev/null
}
ARTIFACTS_START=$(artifacts)
BUN_STATUS=""
if [ "$BENCH_BUN" = 0 ]; then
  BUN_STATUS="skipped (BENCH_BUN=0)"
elif [ -z "$BUN_BIN" ]; then
  command -v npm >/dev/null 2>&1 || BUN_STATUS="not measured: npm not found"
  if [ -z "$BUN_STATUS" ]; then
    log "installing $BUN_PACKAGE into $TMP/bun (npm install --no-save)"
    mkdir -p "$TMP/bun"
    if run_client timeout 300 npm install --no-save --no-package-lock --no-audit --no-fund \
         --prefix "$TMP/bun" "$BUN_PACKAGE" >"$TMP/bun-install.log" 2>&1; then
      BUN_BIN=$(ls "$TMP"/bun/node_modules/@oven/bun-linux-*/bin/bun 2>/dev/null | head -n 1)
      [ -n "$BUN_BIN" ] || BUN_STATUS="not measured: npm installed $BUN_PACKAGE but no bin/bun is in it"
    else
      tail -n 20 "$TMP/bun-install.log" >&3
      BUN_STATUS="not measured: 'npm install $BUN_PACKAGE' failed ($(grep -m1 -E 'npm (ERR|error)' "$TMP/bun-install.log" | sed 's/|/\\|/g' | cut -c1-160))"
    fi
  fi
fi
if [ -z "$BUN_STATUS" ]; then
  if BUN_VER=$("$BUN_BIN" --version 2>"$TMP/bun-version.err"); then
    log "bun $BUN_VER: $BUN_BIN"
  else
    cat "$TMP/bun-version.err" >&3
    BUN_STATUS="not measured: '$BUN_BIN --version' failed ($(head -c 160 "$TMP/bun-version.err" | tr '\n|' '  '))"
  fi
fi
[ -n "$BUN_STATUS" ] && { log "Bun: $BUN_STATUS"; NOTES+=("Bun: $BUN_STATUS"); }

# ================================================================ measure
log "runs: $RUNS x ${SECS}s, $CONNS connections, servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU"
PY_PISTON_WSGI=() PY_PISTON_FLASK=()
for t in $PISTON_PY_THREADS; do PY_PISTON_WSGI+=("wsgi-piston-t$t"); PY_PISTON_FLASK+=("flask-piston-t$t"); done

bench_group "Python raw hello" "${PY_PISTON_WSGI[@]}" wsgi-gunicorn asgi-uvicorn
bench_group "Flask hello" "${PY_PISTON_FLASK[@]}" flask-gunicorn
bench_group "ASGI raw hello" asgi-piston asgi-uvicorn
bench_group "FastAPI hello" fastapi-piston fastapi-uvicorn
bench_group "FastAPI hello, plain def" fastapi-sync-piston fastapi-sync-uvicorn
bench_group "native route" route-piston-cli route-piston-static
bench_group "node:http hello" http-piston http-node
bench_group "Express hello" express-piston express-node
bench_group "Fastify hello" fastify-piston fastify-node
if [ -z "$BUN_STATUS" ]; then
  bench_group "native App vs Bun.serve" native-piston native-bun
else
  bench_group "native App" native-piston
fi

# ================================================================ report
ALL_TAGS=("${PY_PISTON_WSGI[@]}" wsgi-gunicorn asgi-uvicorn "${PY_PISTON_FLASK[@]}" flask-gunicorn
          asgi-piston fastapi-piston fastapi-uvicorn fastapi-sync-piston fastapi-sync-uvicorn
          route-piston-cli route-piston-static http-piston http-node express-piston express-node
          fastify-piston fastify-node native-piston native-bun)
for tag in "${ALL_TAGS[@]}"; do [ -n "${SAMPLES[$tag]:-}" ] && check_wrk_bound "$tag"; done

W_BEST=$(best_of "${PY_PISTON_WSGI[@]}")
F_BEST=$(best_of "${PY_PISTON_FLASK[@]}")
w_note=" (--threads ${W_BEST##*-t})"
f_note=" (--threads ${F_BEST##*-t})"
row "Raw WSGI on Piston vs raw WSGI on gunicorn gthread" "$W_BEST" wsgi-gunicorn "≥ 5×" 5 "$w_note"
row "Raw WSGI on Piston vs raw ASGI on uvicorn (httptools, uvloop)" "$W_BEST" asgi-uvicorn "≥ 1.3×" 1.3 "$w_note"
row "Flask on Piston vs Flask on gunicorn gthread" "$F_BEST" flask-gunicorn "≥ 2×" 2 "$f_note"
row "Raw ASGI on Piston vs raw ASGI on uvicorn (httptools, uvloop)" asgi-piston asgi-uvicorn "≥ 1.5×" 1.5
row "FastAPI on Piston vs FastAPI on uvicorn (httptools, uvloop)" fastapi-piston fastapi-uvicorn "≥ 1.3×" 1.3
row "FastAPI with a plain \`def\` endpoint (FastAPI's thread pool), same pair" fastapi-sync-piston fastapi-sync-uvicorn "— (no target)" ""
row "\`--route\` on the \`piston\` CLI vs \`piston-static --text\`" route-piston-cli route-piston-static "≥ 0.95×" 0.95
row "\`piston.createServer\` vs \`node:http\`" http-piston http-node "≥ 1.5×" 1.5
row "Express 5 on Piston vs Express 5 on node:http" express-piston express-node "≥ 1.3×" 1.3
row "Fastify 5 on Piston (serverFactory) vs Fastify 5 on node:http" fastify-piston fastify-node "≥ 1.3×" 1.3
row "Native \`App\` vs Bun \`Bun.serve\`" native-piston native-bun "≥ 1.0×" 1.0

S_ROWS=()
for tag in "${ALL_TAGS[@]}"; do
  [ -n "${SAMPLES[$tag]:-}" ] || continue
  c0=$(cpu0_of "$tag")
  per=$(calc "($c0 > 0) ? $(median_of "$tag") * 100 / $c0 : 0")
  S_ROWS+=("| $tag | \`${SRV_DESC[$tag]}\` | $(fmt_int "$(median_of "$tag")") | $(spread "$tag") | $(fmt_int "$c0")% | $(fmt_int "$(cpu1_of "$tag")")% | $(fmt_int "$per") | ${SRV_SIZE[$tag]} B, ${SRV_CTYPE[$tag]} |")
done
if [ ${#LOADGEN_BOUND[@]} -gt 0 ]; then
  NOTES+=("Held back by the load generator (server CPU under 95% busy while wrk's CPU was 90% or more busy): these req/s are floors, and a ratio between two such servers says little. Compare their req per busy CPU-$SERVER_CPU second instead. $(printf '%s; ' "${LOADGEN_BOUND[@]}" | sed 's/; $//')")
fi

ELAPSED=$(( $(date +%s) - START_TS ))
if [ "$(artifacts)" != "$ARTIFACTS_START" ]; then
  changed=$(diff <(echo "$ARTIFACTS_START") <(artifacts) | awk '/^[<>]/ {print $2}' | sort -u | sed "s|^$ROOT/||" | tr '\n' ' ')
  log "warning: binaries under test changed during the run: $changed"
  NOTES+=("Rebuilt during this run, so servers started before and after the rebuild ran different builds: $changed")
fi
pyver() { "$PYTHON" -c "import $1; print(getattr($1, '__version__', '?'))" 2>/dev/null || echo '?'; }
jsver() { (cd "$JS_APPS" && "$NODE_BIN" -p "require('$1/package.json').version" 2>/dev/null) || echo '?'; }
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && GIT_REV+=" with uncommitted changes"
WRK_VER=$(wrk -v 2>&1 | awk 'NR == 1 {print $2}')
MODE="full"; [ "$QUICK" = 1 ] && MODE="quick (smoke test: numbers are not meaningful)"
[ -n "$BUN_STATUS" ] && BUN_TXT="Bun $BUN_STATUS" || BUN_TXT="Bun $BUN_VER ($BUN_PACKAGE from npm)"

{
  echo "# Piston on Python and Node: hello world against the peers"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Kernel: $(uname -srm); CPU: $CPU_MODEL, $NCPU CPUs online"
  echo "- Piston: git $GIT_REV; \`piston\` CLI ${PISTON_CLI#"$ROOT/"}, Node addon build/Release/piston.node"
  echo "- Python $("$PYTHON" -c 'import platform; print(platform.python_version())'): gunicorn $(pyver gunicorn), uvicorn $(pyver uvicorn), httptools $(pyver httptools), uvloop $(pyver uvloop), Flask $(pyver flask) (Debian packages)"
  echo "- Node $("$NODE_BIN" --version): Express $(jsver express), Fastify $(jsver fastify); $BUN_TXT"
  echo "- Load: wrk $WRK_VER \`-t1 -c$CONNS\`, keep-alive, \`GET /hello\`; $RUNS runs × ${SECS} s per server after a 1 s warm-up; the servers of a comparison run side by side and are measured in turn, the order rotating each run; every server one process pinned to CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU (\`taskset\`)"
  echo "- Mode: $MODE; total time ${ELAPSED} s"
  echo
  echo "## Targets"
  echo
  echo "| Case | Piston req/s (median) | Peer req/s (median) | Piston/peer | Piston min–max | Peer min–max | Target | Result |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Ratios are of the medians. For the Python WSGI cases Piston ran with each of \`--threads\` $PISTON_PY_THREADS, and the row uses the faster of them (named in the row); every setting is in the table below."
  echo
  echo "## Every server"
  echo
  echo "| Server | Command (pinned with \`taskset -c $SERVER_CPU\`) | req/s (median) | min–max | CPU $SERVER_CPU busy (server) | CPU $CLIENT_CPU busy (wrk) | req per busy CPU-$SERVER_CPU second | Response (\`curl -si \| wc -c\`), Content-Type |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
  printf '%s\n' "${S_ROWS[@]}"
  echo
  echo "CPU busy: the share of each CPU's time in user, nice, system, irq and softirq during the wrk run (from \`/proc/stat\`; idle, iowait and steal count as not busy), median of the runs. It covers everything on that CPU, including the kernel's loopback work. Req per busy CPU-$SERVER_CPU second is the req/s median divided by the CPU $SERVER_CPU busy median: the cost per request, also for a server that the load generator held back."
  echo
  echo "Apps: \`benchmarks/apps/python/\` (raw WSGI, raw ASGI, Flask) and \`benchmarks/apps/js/\`. Every server was checked before measuring: \`GET /hello\` answers 200 with the body \`$HELLO_BODY\` and a text/plain Content-Type, and a second request reuses the connection."
  report_notes
} >"$TMP/report.md"
publish_and_exit
