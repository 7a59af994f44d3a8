#!/usr/bin/env bash
# Piston over TLS against the servers people run today, all on one ECDSA
# P-256 certificate made at the start, TLS 1.3: piston-static against nginx
# (keep-alive requests, new full handshakes, a 1 MiB file), the Python hosts
# against gunicorn and uvicorn (over TLS and over plain HTTP in the same
# run), Piston's Node host against node:https (and node:http in the same run).
#
#   benchmarks/tls_run.sh                 full run (about 6 minutes)
#   BENCH_QUICK=1 benchmarks/tls_run.sh   smoke run: 1 run of 1 s per server;
#                                         exits non-zero if a server fails to
#                                         start or to answer over TLS
# run.sh calls this script at its end (BENCH_TLS=0 skips it there).
#
# Knobs (environment):
#   BENCH_RUNS=3            repetitions of each measurement
#   BENCH_SECONDS=5         seconds per measured run
#   BENCH_QUICK=1           smoke run (forces BENCH_RUNS=1, BENCH_SECONDS=1)
#   BENCH_TLS_OUT=benchmarks/results/tls.md   where the Markdown report goes
#   BENCH_HS_CONNS=32       handshakes in progress at once (tlsload -c)
#   BENCH_PEERS=benchmarks/.peers   a newer uvicorn in venv/ if there (as
#                           ws_run.sh); else Debian's
#   PISTON_BIN=build/piston-static  PISTON_CLI=.venv/bin/piston
#   PISTON_PY_THREADS=1     --threads for Piston's WSGI host
#   NGINX_BIN=nginx  NODE_BIN=node
#
# Method (as the other scripts): every server is one process (one worker)
# pinned to CPU 0 (taskset), the load generator pinned to CPU 1: wrk -t1
# -c64 (keep-alive, https) or benchmarks/tlsload.c (a new connection and a
# full handshake per request: wrk resumes TLS sessions when it reconnects,
# so it cannot measure full handshakes). The servers of one comparison run
# side by side and are measured in turn, the order rotating between
# repetitions; the report gives medians, ratios of the medians, the min-max
# spread, and the server's CPU time per request: user+system of its
# processes (/proc/PID/stat) over the measured run, over the requests.
# Every number printed is measured in this run. See benchmarks/README.md.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LOG_TAG=tls
exec 3>&2
. "$HERE/lib.sh"
bench_settings

WARM=1
[ "$QUICK" = 1 ] && WARM=0.3
HS_CONNS=${BENCH_HS_CONNS:-32}
OUT=${BENCH_TLS_OUT:-$HERE/results/tls.md}

# ---------------------------------------------------------------- preflight
bench_preflight wrk taskset curl cc openssl "$NGINX_BIN" "$NODE_BIN"
[ -x "$PISTON_BIN" ] || die "$PISTON_BIN not found: run 'make'"
[ -x "$PISTON_CLI" ] || die "$PISTON_CLI not found: run 'make dev'"
[ -f "$ROOT/build/Release/piston.node" ] || die "the Node addon build/Release/piston.node is missing: run 'make node'"
for mod in gunicorn uvicorn httptools uvloop; do
  "$PYTHON" -c "import $mod" 2>/dev/null || die "$PYTHON cannot import $mod (scripts/setup-deps.sh bench installs it)"
done
for v in RUNS SECS HS_CONNS PISTON_PY_THREADS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done

# ---------------------------------------------------------------- setup
make_tmp piston-tls
chmod 755 "$TMP"
FAILURES=()
NOTES=()
TLSLOAD=$TMP/tlsload
cc -O2 $(grep '^-' "$ROOT/csrc/cflags.txt" | grep -v visibility) -o "$TLSLOAD" "$HERE/tlsload.c" -lssl -lcrypto ||
  die "cannot compile benchmarks/tlsload.c (libssl-dev)"

# One certificate for every server (lib.sh).
make_cert
mkdir -p "$TMP/www"
head -c 1048576 /dev/urandom >"$TMP/www/$BIGFILE"
chmod -R a+rX "$TMP/www"

# uvicorn: the peers' venv when it has one (ws_run.sh's), else Debian's.
UV_PY=$PYTHON
if [ -x "$PEERS/venv/bin/python" ] && "$PEERS/venv/bin/python" -c 'import uvicorn' 2>/dev/null; then
  UV_PY=$PEERS/venv/bin/python
fi
UVICORN_VER=$("$UV_PY" -c 'import uvicorn; print(uvicorn.__version__)')
UV_FROM="Debian's"; [ "$UV_PY" != "$PYTHON" ] && UV_FROM="${UV_PY#"$ROOT/"}"

# ---------------------------------------------------------------- the servers
# server_cmd TAG PORT sets CMD (run under taskset -c SERVER_CPU), DESC, and
# SCHEME (https, or http for the plain-HTTP twins named *-plain). OPTIONAL=1:
# the path may not be in this build (the check decides: 'not available').
server_cmd() {
  local tag=$1 port=$2 base=${1%-plain} tls=() dir
  SCHEME=https OPTIONAL=0
  [ "$tag" != "$base" ] && SCHEME=http
  case $base in
    static-piston)
      CMD=("$PISTON_BIN" --bind "127.0.0.1:$port" --threads 1 --idle-timeout 600 --cert "$CERT" --key "$KEY"
           --tls-min-version 1.3 --text "/hello=$HELLO_BODY" --dir "$TMP/www")
      DESC="build/piston-static --threads 1 --cert C --key K --tls-min-version 1.3 --text '/hello=$HELLO_BODY' --dir DIR" ;;
    static-nginx)
      dir="$TMP/nginx-$tag"
      nginx_conf "$dir" "$port" "$TMP/www" 4096 "$HELLO_BODY" "$CERT" "$KEY"
      CMD=("$NGINX_BIN" -e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf")
      DESC="nginx (worker_processes 1, master_process off, ssl_protocols TLSv1.3, access_log off, sendfile on, root DIR)" ;;
    wsgi-piston | asgi-piston)
      local mod=wsgi_hello extra=(--threads "$PISTON_PY_THREADS")
      [ "$base" = asgi-piston ] && mod=asgi_hello extra=()
      [ "$SCHEME" = https ] && tls=(--certfile "$CERT" --keyfile "$KEY")
      CMD=("$PISTON_CLI" "$mod:app" --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1 "${extra[@]}"
           "${tls[@]}" --log-level warning)
      DESC="piston $mod:app --workers 1${extra[*]:+ ${extra[*]}}"
      [ "$SCHEME" = https ] && DESC+=" --certfile C --keyfile K" ;;
    wsgi-gunicorn)
      [ "$SCHEME" = https ] && tls=(--certfile "$CERT" --keyfile "$KEY")
      CMD=("$PYTHON" -m gunicorn --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1 --worker-class sync
           "${tls[@]}" --log-level warning wsgi_hello:app)
      DESC="gunicorn -w 1 -k sync"
      [ "$SCHEME" = https ] && DESC+=" --certfile C --keyfile K"
      DESC+=" wsgi_hello:app" ;;
    asgi-uvicorn)
      [ "$SCHEME" = https ] && tls=(--ssl-certfile "$CERT" --ssl-keyfile "$KEY")
      CMD=("$UV_PY" -W ignore::DeprecationWarning -m uvicorn --app-dir "$PY_APPS" --host 127.0.0.1 --port "$port"
           --http httptools --loop uvloop --workers 1 --no-access-log --log-level warning "${tls[@]}" asgi_hello:app)
      DESC="uvicorn --http httptools --loop uvloop --workers 1 --no-access-log"
      [ "$SCHEME" = https ] && DESC+=" --ssl-certfile C --ssl-keyfile K"
      DESC+=" asgi_hello:app" ;;
    node-node | node-piston)
      local flavour=${base#node-} files=("$CERT" "$KEY")
      [ "$SCHEME" = http ] && files=(- -)
      CMD=("$NODE_BIN" "$JS_APPS/https_hello.js" "$flavour" "$port" "${files[@]}")
      if [ "$SCHEME" = https ]; then
        DESC="node apps/js/https_hello.js node (node:https)"
        [ "$base" = node-piston ] && { DESC="node apps/js/https_hello.js piston (require('piston').createServer({key, cert}, handler))"; OPTIONAL=1; }
      else
        DESC="node apps/js/https_hello.js node - - (node:http)"
        [ "$base" = node-piston ] && DESC="node apps/js/https_hello.js piston - - (require('piston').createServer(handler))"
      fi ;;
    *) die "unknown server tag $tag" ;;
  esac
}

declare -A SRV_PID SRV_PORT SRV_LOG SRV_DESC SRV_SCHEME SRV_SIZE SRV_TLS UNAVAIL
declare -A SAMPLES CPUUS SBUSY CBUSY MBPS STEAL

# start_server TAG: starts it, waits for the port, checks the answer: over
# TLS with the benchmark's certificate (or plain HTTP for *-plain), GET
# /hello -> 200, the exact body, text/plain, and a second request on the
# same connection. A server that fails dies the script, except an OPTIONAL
# one, which is 'not available'.
start_server() {
  local tag=$1 port log pid code ctype conns url
  spawn_server "$tag"
  SRV_SCHEME[$tag]=$SCHEME
  if [ "$SCHEME" = https ] && ! tls_check "$tag"; then
    if [ "$OPTIONAL" = 1 ]; then
      local plain
      plain=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/hello")
      UNAVAIL[$tag]="not available in this build (no TLS handshake on its port; plain http answered $plain: the {key, cert} options are not used)"
      log "$tag: ${UNAVAIL[$tag]}"
      stop_pid "$pid" 5
      return 1
    fi
    tail -n 30 "$log" >&3
    die "$tag ($DESC): no TLS handshake"
  fi
  url="$SCHEME://127.0.0.1:$port/hello"
  check_hello "$tag" "$url"
  conns=$(curl -sk -m 10 -o /dev/null -o /dev/null -w '%{num_connects} ' "$url" "$url") || conns=fail
  [ "$conns" = "1 0 " ] || NOTES+=("$tag: curl could not reuse the connection for a second request (num_connects: $conns): it closes every connection, so each of its requests is a new connection")
  SRV_SIZE[$tag]=$(curl -sik -m 10 "$url" | wc -c)
  case $tag in static-*)
    curl -sk -m 20 -o "$TMP/big" "https://127.0.0.1:$port/$BIGFILE" || die "$tag: GET /$BIGFILE failed"
    cmp -s "$TMP/big" "$TMP/www/$BIGFILE" || die "$tag: /$BIGFILE over TLS differs from the file on disk"
    SRV_SIZE[$tag.big]=$(curl -sik -m 20 "https://127.0.0.1:$port/$BIGFILE" | wc -c) ;;
  esac
  log "$tag up on port $port: $DESC (pid $pid${SRV_TLS[$tag]:+; ${SRV_TLS[$tag]}})"
}

# m_wrk TAG PATH SECONDS: wrk -t1 -c64 keep-alive -> M_RATE (req/s), M_MBPS,
# M_US (server CPU us per request), M_SB (% of a CPU the server used),
# M_CB (% busy of the load generator's CPU, /proc/stat)
m_wrk() { wrk_run "$1" "${SRV_SCHEME[$1]}://127.0.0.1:${SRV_PORT[$1]}$2" "$3"; }

# m_hs TAG SECONDS: tlsload, a new connection and full handshake per
# request -> M_RATE (handshakes/s), M_US (server CPU us per handshake),
# M_SB, M_CB (% of a CPU the server and tlsload used in the window)
m_hs() {
  local tag=$1 secs=$2 line rc
  run_client timeout $((secs + 60)) taskset -c "$CLIENT_CPU" "$TLSLOAD" -p "${SRV_PORT[$tag]}" -u /hello \
    -c "$HS_CONNS" -d "$secs" -w "$WARM" -P "$(tree_pids "${SRV_PID[$tag]}")" >"$TMP/tlsload.out" 2>&1
  rc=$?
  check_alive "$tag"
  M_RATE=0 M_US=0 M_SB=0 M_CB=0 M_MBPS=0
  line=$(grep '^TLSLOAD_RESULT' "$TMP/tlsload.out")
  if [ -z "$line" ]; then cat "$TMP/tlsload.out" >&3; fail "$tag: tlsload gave no result"; return 1; fi
  local handshakes seconds resumed errors server_cpu_ms client_cpu_ms
  eval "$(printf '%s\n' "${line#* }" | tr ' ' '\n' | grep -E '^[a-z_0-9]+=-?[0-9.]+$')"
  [ "$rc" = 0 ] || fail "$tag: tlsload: $resumed resumed handshakes, $errors failed connections ($(head -n 1 "$TMP/tlsload.out"))"
  [ "$handshakes" -gt 0 ] || { fail "$tag: no handshakes in the measured window"; return 1; }
  M_RATE=$(calc "$handshakes / $seconds")
  M_US=$(calc "$server_cpu_ms * 1000 / $handshakes")
  M_SB=$(calc "100 * $server_cpu_ms / ($seconds * 1000)")
  M_CB=$(calc "100 * $client_cpu_ms / ($seconds * 1000)")
}

# measure_kind KIND TAG SECONDS (for lib.sh's measure and bench_group):
# KIND is hello (keep-alive GET /hello), big (keep-alive GET of the 1 MiB
# file) or hs (new handshakes)
measure_kind() {
  case $1 in
    hello) m_wrk "$2" /hello "$3" ;;
    big) m_wrk "$2" "/$BIGFILE" "$3" ;;
    hs) m_hs "$2" "$3" ;;
  esac
}

# Held back by the load generator (lib.sh's check_bound): BOUND, LOADGEN_BOUND.
declare -A BOUND
LOADGEN_BOUND=()

ROWS=()
H_ROWS=()
# host_row CASE PISTON_TAG PEER_TAG: the ratio over TLS against the same
# ratio over plain HTTP, both measured in this run; target: TLS ratio >=
# plain ratio.
host_row() {
  local case=$1 pt=$2 qt=$3 tr pr res
  local k=(hello.$pt hello.$qt hello.$pt-plain hello.$qt-plain) x
  for x in "${k[@]}"; do
    [ -n "${SAMPLES[$x]:-}" ] || { H_ROWS+=("| $case | $x: $(why_not "$x") | | | | | | not measured |"); return; }
  done
  tr=$(ratio_of "${k[0]}" "${k[1]}") pr=$(ratio_of "${k[2]}" "${k[3]}")
  res=MISS
  ge "$tr" "$pr" && res=PASS
  for x in "${k[@]}"; do [ -n "${BOUND[$x]:-}" ] && { res+=" (held back by wrk: see notes)"; break; }; done
  H_ROWS+=("| $case | $(cell "${k[0]}") | $(cell "${k[1]}") | **$(fmt2 "$tr")×** | $(cell "${k[2]}") | $(cell "${k[3]}") | **$(fmt2 "$pr")×** | $res |")
}

# ================================================================ measure
START_TS=$(date +%s)
log "runs: $RUNS x ${SECS}s; wrk -t1 -c$CONNS keep-alive; tlsload $HS_CONNS handshakes in progress; servers on CPU $SERVER_CPU, load on CPU $CLIENT_CPU; certificate SHA-256 $CERT_FP"
bench_group "piston-static vs nginx" "hello hs big" static-piston static-nginx
bench_group "WSGI" hello wsgi-piston wsgi-gunicorn wsgi-piston-plain wsgi-gunicorn-plain
bench_group "ASGI" hello asgi-piston asgi-uvicorn asgi-piston-plain asgi-uvicorn-plain
bench_group "Node" hello node-piston node-node node-piston-plain node-node-plain

# ================================================================ report
for k in "${!SAMPLES[@]}"; do check_bound "$k" "the load generator"; done

row "Keep-alive \`GET /hello\` over TLS, $CONNS conns (req/s)" hello.static-piston hello.static-nginx "≥ 1.0×" 1.0
row "New connection + full TLS 1.3 handshake + one request, $HS_CONNS in progress (handshakes/s)" hs.static-piston hs.static-nginx "≥ 0.9×" 0.9
row "1 MiB file over TLS, $CONNS conns (req/s)" big.static-piston big.static-nginx "≥ 0.9×" 0.9

host_row "Raw WSGI: \`piston\` vs gunicorn sync (1 worker)" wsgi-piston wsgi-gunicorn
host_row "Raw ASGI: \`piston\` vs uvicorn (httptools, uvloop)" asgi-piston asgi-uvicorn
host_row "\`https_hello.js\`: Piston's \`createServer\` vs \`node:https\` / \`node:http\`" node-piston node-node

ALL=(static-piston static-nginx wsgi-piston wsgi-gunicorn wsgi-piston-plain wsgi-gunicorn-plain
     asgi-piston asgi-uvicorn asgi-piston-plain asgi-uvicorn-plain node-piston node-node
     node-piston-plain node-node-plain)
S_ROWS=()
for tag in "${ALL[@]}"; do
  for kind in hello hs big; do
    k=$kind.$tag
    case $kind.$tag in hs.static-* | big.static-* | hello.*) ;; *) continue ;; esac
    what="keep-alive GET /hello"
    [ "$kind" = hs ] && what="new handshake + GET /hello"
    [ "$kind" = big ] && what="keep-alive GET /$BIGFILE"
    if [ -z "${SAMPLES[$k]:-}" ]; then
      S_ROWS+=("| $tag | $what | \`${SRV_DESC[$tag]:-}\` | $(why_not "$k") | | | | | | | |"); continue
    fi
    size=${SRV_SIZE[$tag]:-?}
    [ "$kind" = big ] && size=${SRV_SIZE[$tag.big]:-?}
    mb=""
    [ "$kind" = big ] && mb=" ($(fmt_int "$(med "${MBPS[$k]}")") MB/s)"
    S_ROWS+=("| $tag | $what | \`${SRV_DESC[$tag]}\` | $(fmt_int "$(med "${SAMPLES[$k]}")")$mb | $(spread "$k") | $(fmt2 "$(med "${CPUUS[$k]}")") µs | $(fmt_int "$(med "${SBUSY[$k]}")")% | $(fmt_int "$(med "${CBUSY[$k]}")")% | $(fmt_int "$(med "${STEAL[$k]}")")% | ${SRV_TLS[$tag]:-plain HTTP} | $size B |")
  done
done
if [ -n "${SAMPLES[hello.wsgi-gunicorn]:-}" ]; then
  NOTES+=("gunicorn's sync worker closes the connection after every response (plain and TLS alike), so each of its requests is a new connection, and over TLS a new TLS handshake; wrk reconnects at once and offers the session it had (wrk resumes TLS sessions: it did against nginx in a check by hand; whether gunicorn's Python ssl resumed them was not measured here). Its TLS rate mostly measures handshakes and wrk's own reconnect path, which is why its TLS ratio is so much larger than the plain one.")
fi
steal_note
if [ ${#LOADGEN_BOUND[@]} -gt 0 ]; then
  NOTES+=("Held back by the load generator (the server used under 90% of its CPU while the load generator's CPU was 90% or more busy): these rates are floors and a ratio with them says little; compare the server CPU per request instead. New handshakes: the client's half of a handshake (an ECDSA verify, key generation) costs more CPU than the server's (an ECDSA sign), so one client core cannot keep one server core busy; the server CPU per handshake is the comparison that holds. $(printf '%s; ' "${LOADGEN_BOUND[@]}" | sed 's/; $//')")
fi

ELAPSED=$(($(date +%s) - START_TS))
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && GIT_REV+=" with uncommitted changes"
MODE_TXT="full"; [ "$QUICK" = 1 ] && MODE_TXT="quick (smoke test: numbers are not meaningful)"
pyver() { "$PYTHON" -c "import $1; print(getattr($1, '__version__', '?'))" 2>/dev/null || echo '?'; }
{
  echo "# Piston over TLS against nginx, gunicorn, uvicorn and node:https"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Kernel: $(uname -srm); CPU: $CPU_MODEL, $NCPU CPUs online (shared with other work: noisy)"
  echo "- Piston: git $GIT_REV; ${PISTON_BIN#"$ROOT/"}, \`piston\` CLI ${PISTON_CLI#"$ROOT/"}, Node addon build/Release/piston.node"
  echo "- Peers: $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //') (Debian's nginx-light); gunicorn $(pyver gunicorn) (Debian's); uvicorn $UVICORN_VER ($UV_FROM), httptools $(pyver httptools), uvloop $(pyver uvloop); Node $("$NODE_BIN" --version)"
  echo "- TLS: one certificate made at the start of the run, ECDSA P-256, self-signed (SHA-256 fingerprint checked on every server); TLS 1.3 only on piston-static and nginx, TLS 1.3 negotiated everywhere (the last column below); $(openssl version)"
  echo "- Load: wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}') (Debian's, OpenSSL) \`-t1 -c$CONNS\` keep-alive over https; new handshakes with \`benchmarks/tlsload.c\` ($HS_CONNS connections in progress, each a full handshake, no resumption: checked per handshake)"
  echo "- $RUNS runs × $SECS s per server and case after a 1 s warm-up run; the servers of a group run side by side and are measured in turn, the order rotating each run; every server one process pinned to CPU $SERVER_CPU, the load generator on CPU $CLIENT_CPU (\`taskset\`)"
  echo "- Mode: $MODE_TXT; total time ${ELAPSED} s"
  echo
  echo "## piston-static vs nginx over TLS"
  echo
  echo "| Case | Piston /s (server CPU per request) | Peer /s (server CPU per request) | Piston/peer | Piston min–max | Peer min–max | Target | Result |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "## The Python and Node hosts: the ratio over TLS beside the ratio over plain HTTP"
  echo
  echo "| Case | Piston, TLS | Peer, TLS | TLS ratio | Piston, plain | Peer, plain | Plain ratio | TLS ratio ≥ plain ratio |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  printf '%s\n' "${H_ROWS[@]}"
  echo
  echo "req/s medians of keep-alive \`GET /hello\` (wrk \`-t1 -c$CONNS\`), server CPU per request in brackets; all four servers of a row ran in the same group, interleaved. Target (the issue's): the same ratio over TLS as over plain HTTP, or better."
  echo
  echo "## Every server"
  echo
  echo "| Server | Load | Command (pinned with \`taskset -c $SERVER_CPU\`) | /s (median) | min–max | server CPU per request | server's CPU use | load generator's CPU busy | CPU $SERVER_CPU stolen | TLS (\`openssl s_client\`) | Response (\`curl -si \| wc -c\`) |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
  printf '%s\n' "${S_ROWS[@]}"
  echo
  echo "Server CPU per request: user+system time of the server's processes (\`/proc/PID/stat\`: the process and its children) over the measured run (wrk: read before and after wrk, so its 64 connections' handshakes are in it; tlsload: inside its measured window, after ${WARM} s of warm-up), over the requests (handshakes) in it; median of the runs. Server's CPU use: that time over the run's length. Load generator's CPU busy: CPU $CLIENT_CPU's busy share from \`/proc/stat\` for wrk, tlsload's own CPU time for handshakes. CPU $SERVER_CPU stolen: the share of the server's CPU's time that the hypervisor gave to other guests during the run (\`/proc/stat\` steal): when it is high, the server had less than a whole CPU and its rate says little; its CPU per request holds better."
  echo
  echo "Every server was checked before measuring: its certificate is the benchmark's (SHA-256 fingerprint), TLS 1.3, \`GET /hello\` answers 200 with \`$HELLO_BODY\` and text/plain, a second request reuses the connection (or the notes say it does not); piston-static and nginx serve the 1 MiB file byte for byte over TLS. Apps: \`benchmarks/apps/python/wsgi_hello.py\`, \`asgi_hello.py\`, \`benchmarks/apps/js/https_hello.js\`."
  report_notes
} >"$TMP/report.md"
publish_and_exit
