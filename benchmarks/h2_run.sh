#!/usr/bin/env bash
# Piston over HTTP/2 against the HTTP/2 servers people run today, with
# h2load: piston-static against nginx (a fixed response and a 1 MiB file,
# h2c and TLS), the Python hosts (`piston --h2c`) against hypercorn (raw
# ASGI and raw WSGI), Piston's Node host against node:http2 (h2c, and TLS
# with createSecureServer). TLS: one ECDSA P-256 certificate made at the
# start, TLS 1.3, HTTP/2 by ALPN.
#
#   benchmarks/h2_run.sh                 full run (about 6 minutes)
#   BENCH_QUICK=1 benchmarks/h2_run.sh   smoke run (under a minute): one
#                                        short h2load run per server and case;
#                                        exits non-zero if a server fails to
#                                        start or to answer correctly over
#                                        HTTP/2
# run.sh calls this script at its end (BENCH_H2=0 skips it there).
#
# Knobs (environment):
#   BENCH_RUNS=3            repetitions of each measurement
#   BENCH_SECONDS=5         about how long each measured run lasts (h2load
#                           is given a request count, calibrated per server)
#   BENCH_QUICK=1           smoke run (forces BENCH_RUNS=1, BENCH_SECONDS=1)
#   BENCH_H2_OUT=benchmarks/results/h2.md   where the Markdown report goes
#   BENCH_H2_STREAMS=100    h2load -m (concurrent streams per connection)
#   BENCH_H2_FILE_STREAMS=10   h2load -m for the 1 MiB file (see below)
#   BENCH_PEERS=benchmarks/.peers   hypercorn in venv/ (scripts/setup-deps.sh bench)
#   PISTON_BIN=build/piston-static  PISTON_CLI=.venv/bin/piston
#   PISTON_PY_THREADS=1     --threads for Piston's WSGI host
#   NGINX_BIN=nginx  NODE_BIN=node
#
# Method (as the other scripts): every server is one process (one worker)
# pinned to CPU 0 (taskset), h2load (one thread) pinned to CPU 1, with
# `-c 64 -m 100`: 64 connections, each with up to 100 streams in flight
# (6,400 requests outstanding; Piston and hypercorn allow 100 concurrent
# streams per connection, nginx 128, node:http2 more). h2load is given a request count, not a duration: a
# server that answers in bursts (hypercorn) is then timed to its last
# response, not cut mid-burst. The count is calibrated per server from its
# warm-up runs to last about BENCH_SECONDS, in whole multiples of 64 x 100.
# The servers of one comparison run side by side and are measured in turn,
# the order rotating between repetitions; the report gives medians, ratios
# of the medians, the min-max spread, and the server's CPU time per request:
# user+system of its processes (/proc/PID/stat) over the h2load run, over
# the requests. Every number printed is measured in this run.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LOG_TAG=h2
exec 3>&2
. "$HERE/lib.sh"
bench_settings

STREAMS=${BENCH_H2_STREAMS:-100}
FILE_STREAMS=${BENCH_H2_FILE_STREAMS:-10}
OUT=${BENCH_H2_OUT:-$HERE/results/h2.md}

# ---------------------------------------------------------------- preflight
bench_preflight h2load taskset curl openssl "$NGINX_BIN" "$NODE_BIN"
[ -x "$PISTON_BIN" ] || die "$PISTON_BIN not found: run 'make'"
[ -x "$PISTON_CLI" ] || die "$PISTON_CLI not found: run 'make dev'"
[ -f "$ROOT/build/Release/piston.node" ] || die "the Node addon build/Release/piston.node is missing: run 'make node'"
"$NGINX_BIN" -V 2>&1 | grep -q -- --with-http_v2_module || die "$NGINX_BIN has no http_v2 module"
curl -V | grep -qw HTTP2 || die "curl has no HTTP/2"
for v in RUNS SECS STREAMS FILE_STREAMS PISTON_PY_THREADS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done

# ---------------------------------------------------------------- setup
make_tmp piston-h2
chmod 755 "$TMP"
FAILURES=()
NOTES=()
declare -A UNAVAIL
make_cert
mkdir -p "$TMP/www"
head -c 1048576 /dev/urandom >"$TMP/www/$BIGFILE"
chmod -R a+rX "$TMP/www"

# hypercorn: the peers' venv (Debian has none).
HC_PY=$PEERS/venv/bin/python HYPERCORN_VER=""
if "$HC_PY" -c 'import hypercorn' 2>/dev/null; then
  HYPERCORN_VER=$("$HC_PY" -c 'import importlib.metadata as m; print(m.version("hypercorn"), "(h2", m.version("h2") + ")")')
  "$HC_PY" -c 'import uvloop' 2>/dev/null || die "$HC_PY cannot import uvloop (Debian's python3-uvloop)"
else
  for t in wsgi-hypercorn asgi-hypercorn; do
    UNAVAIL[$t]="not available: hypercorn is not in ${PEERS#"$ROOT/"}/venv (scripts/setup-deps.sh bench installs it)"
  done
fi

# ---------------------------------------------------------------- the servers
# server_cmd TAG PORT sets CMD (run under taskset -c SERVER_CPU), DESC and
# SCHEME: http (h2c, prior knowledge) or https for the *-tls twins.
server_cmd() {
  local tag=$1 port=$2 base=${1%-tls} tls=() dir
  SCHEME=http
  if [ "$tag" != "$base" ]; then SCHEME=https tls=(--cert "$CERT" --key "$KEY" --tls-min-version 1.3); fi
  case $base in
    static-piston)
      [ "$SCHEME" = http ] && tls=(--h2c)
      CMD=("$PISTON_BIN" --bind "127.0.0.1:$port" --threads 1 --idle-timeout 600 "${tls[@]}"
           --text "/hello=$HELLO_BODY" --dir "$TMP/www")
      DESC="build/piston-static --threads 1 $([ "$SCHEME" = http ] && echo --h2c || echo '--cert C --key K --tls-min-version 1.3') --text '/hello=$HELLO_BODY' --dir DIR" ;;
    static-nginx)
      dir="$TMP/nginx-$tag"
      if [ "$SCHEME" = https ]; then
        nginx_conf "$dir" "$port" "$TMP/www" 4096 "$HELLO_BODY" "$CERT" "$KEY" http2
        DESC="nginx (listen ... ssl http2, ssl_protocols TLSv1.3, worker_processes 1, master_process off, access_log off, sendfile on, root DIR)"
      else
        nginx_conf "$dir" "$port" "$TMP/www" 4096 "$HELLO_BODY" "" "" http2
        DESC="nginx (listen ... http2: h2c, worker_processes 1, master_process off, access_log off, sendfile on, root DIR)"
      fi
      CMD=("$NGINX_BIN" -e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf") ;;
    wsgi-piston | asgi-piston)
      local mod=wsgi_hello extra=(--threads "$PISTON_PY_THREADS")
      [ "$base" = asgi-piston ] && mod=asgi_hello extra=()
      CMD=("$PISTON_CLI" "$mod:app" --chdir "$PY_APPS" --bind "127.0.0.1:$port" --workers 1 "${extra[@]}"
           --h2c --log-level warning)
      DESC="piston $mod:app --workers 1${extra[*]:+ ${extra[*]}} --h2c" ;;
    wsgi-hypercorn | asgi-hypercorn)
      local mod=${base%-hypercorn}_hello
      CMD=(env "PYTHONPATH=$PY_APPS" "$HC_PY" -m hypercorn --bind "127.0.0.1:$port" --workers 1
           --worker-class uvloop --keep-alive 600 --log-level warning "$mod:app")
      DESC="hypercorn --workers 1 --worker-class uvloop $mod:app (h2c by prior knowledge on its plain port)" ;;
    node-node | node-piston)
      local flavour=${base#node-}
      CMD=("$NODE_BIN" "$JS_APPS/h2_hello.js" "$flavour" h2c "$port")
      [ "$SCHEME" = https ] && CMD=("$NODE_BIN" "$JS_APPS/h2_hello.js" "$flavour" tls "$port" "$CERT" "$KEY")
      case $flavour.$SCHEME in
        node.http) DESC="node apps/js/h2_hello.js node h2c (node:http2 createServer)" ;;
        node.https) DESC="node apps/js/h2_hello.js node tls (node:http2 createSecureServer({key, cert}))" ;;
        piston.http) DESC="node apps/js/h2_hello.js piston h2c (require('piston').createServer({ http2: 2 }))" ;;
        piston.https) DESC="node apps/js/h2_hello.js piston tls (require('piston').createServer({key, cert}))" ;;
      esac ;;
    *) die "unknown server tag $tag" ;;
  esac
}

declare -A SRV_PID SRV_PORT SRV_LOG SRV_DESC SRV_SCHEME SRV_TLS SRV_PROTO SRV_FRAMES NREQ
declare -A SAMPLES CPUUS SBUSY CBUSY MBPS STEAL

# curl's options for HTTP/2 on TAG: prior knowledge in clear text, ALPN over
# TLS.
h2_curl_opts() { [ "${SRV_SCHEME[$1]}" = https ] && echo --http2 || echo --http2-prior-knowledge; }

# start_server TAG: starts it, waits for the port, checks the answer over
# HTTP/2 with curl: over TLS with the benchmark's certificate and TLS 1.3,
# GET /hello -> HTTP/2 200, the exact body, text/plain; the static servers
# also serve the 1 MiB file byte for byte. A server that fails dies the
# script.
start_server() {
  local tag=$1 port log pid ctype hver url
  spawn_server "$tag"
  SRV_SCHEME[$tag]=$SCHEME
  if [ "$SCHEME" = https ] && ! tls_check "$tag"; then
    tail -n 30 "$log" >&3
    die "$tag ($DESC): no TLS handshake"
  fi
  url="$SCHEME://127.0.0.1:$port/hello"
  check_hello "$tag" "$url" "$(h2_curl_opts "$tag")"
  [ "$hver" = 2 ] || die "$tag ($DESC): curl $(h2_curl_opts "$tag") $url spoke HTTP/$hver, not HTTP/2"
  case $tag in static-*)
    curl -sk -m 60 "$(h2_curl_opts "$tag")" -o "$TMP/big" "$SCHEME://127.0.0.1:$port/$BIGFILE" || die "$tag: GET /$BIGFILE over HTTP/2 failed"
    cmp -s "$TMP/big" "$TMP/www/$BIGFILE" || die "$tag: /$BIGFILE over HTTP/2 differs from the file on disk"
    # how the server cuts the file into DATA frames (nghttp -v's count)
    SRV_FRAMES[$tag]=$(nghttp -nv "$SCHEME://127.0.0.1:$port/$BIGFILE" 2>/dev/null | grep -c 'recv DATA frame')
    ;;
  esac
  log "$tag up on port $port: $DESC (pid $pid${SRV_TLS[$tag]:+; ${SRV_TLS[$tag]}})"
}

# m_h2load TAG PATH REQUESTS STREAMS [H2LOAD_OPTION...]: taskset -c
# CLIENT_CPU h2load -t1 -c64 -m STREAMS -n REQUESTS -> M_RATE (req/s: succeeded requests over
# h2load's "finished in"), M_MBPS, M_US (server CPU us per request), M_SB
# (% of a CPU the server used), M_CB (% busy of h2load's CPU, /proc/stat).
# Checks that h2load spoke h2c or h2 (by ALPN), that every request
# succeeded and every status was 2xx; a failure names the exact command.
m_h2load() {
  local tag=$1 path=$2 n=$3 m=$4 out=$TMP/h2load.out pids c0 c1 sb0 st0 cb0 ct0 sb1 st1 cb1 ct1 url
  url="${SRV_SCHEME[$tag]}://127.0.0.1:${SRV_PORT[$tag]}$path"
  local cmd=(h2load -t1 -c"$CONNS" -m"$m" -n"$n" "${@:5}" "$url")
  pids=$(tree_pids "${SRV_PID[$tag]}")
  read -r sb0 st0 cb0 ct0 <<<"$(cpu_snap)"
  c0=$(proc_cpu_ms "$pids")
  run_client timeout 300 taskset -c "$CLIENT_CPU" "${cmd[@]}" >"$out" 2>&1
  c1=$(proc_cpu_ms "$pids")
  read -r sb1 st1 cb1 ct1 <<<"$(cpu_snap)"
  check_alive "$tag"
  M_RATE=0 M_US=0 M_SB=0 M_CB=0 M_MBPS=0
  local what="$tag (${SRV_DESC[$tag]}): \`${cmd[*]}\`"
  local fin proto secs total started done succeeded failed errored timeout s2xx bytes
  fin=$(sed -n 's/^finished in \([0-9.]*\)\(m\?s\),.*/\1 \2/p' "$out")
  proto=$(sed -n 's/^Application protocol: *//p' "$out")
  read -r total started done succeeded failed errored timeout <<<"$(sed -n \
    's/^requests: \([0-9]*\) total, \([0-9]*\) started, \([0-9]*\) done, \([0-9]*\) succeeded, \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/\1 \2 \3 \4 \5 \6 \7/p' "$out")"
  s2xx=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' "$out")
  bytes=$(sed -n 's/^traffic: [^(]*(\([0-9]*\)) total.*/\1/p' "$out")
  if [ -z "$fin" ] || [ -z "$succeeded" ]; then
    tail -n 20 "$out" >&3; fail "$what gave no result"; return 1
  fi
  local want=h2c; [ "${SRV_SCHEME[$tag]}" = https ] && want=h2
  [ "$proto" = "$want" ] || { fail "$what: h2load spoke '$proto', not $want"; return 1; }
  M_PROTO=$proto
  [ -n "${SRV_TLS[$tag]:-}" ] && M_PROTO+=" ($(sed -n 's/^TLS Protocol: *//p' "$out"), $(sed -n 's/^Cipher: *//p' "$out"))"
  if [ "$succeeded" != "$n" ] || [ "${s2xx:-0}" != "$n" ]; then
    fail "$what: $succeeded of $n requests succeeded ($failed failed, $errored errored, $timeout timed out; ${s2xx:-0} 2xx)"
    return 1
  fi
  read -r secs _ <<<"$fin"
  [ "${fin#* }" = ms ] && secs=$(calc "$secs / 1000")
  run_metrics "$succeeded" "$secs" "${bytes:-0}" "$((c1 - c0))" "$cb0 $ct0" "$cb1 $ct1"
}

# kind_args KIND: the path, the streams per connection and h2load's other
# options of a case: file-aes128 is the file over TLS with h2load offering
# TLS_AES_128_GCM_SHA256 only, so that every server uses the same suite.
kind_args() {
  case $1 in
    hello) echo "/hello $STREAMS" ;;
    file) echo "/$BIGFILE $FILE_STREAMS" ;;
    file-aes128) echo "/$BIGFILE $FILE_STREAMS --tls13-ciphers=TLS_AES_128_GCM_SHA256" ;;
  esac
}

# measure_kind KIND TAG SECONDS (lib.sh's measure and bench_group): h2load
# with the request count the warm-up calibrated (NREQ[KIND.TAG]); the
# protocol h2load reported goes to SRV_PROTO[KIND.TAG].
measure_kind() {
  local path m opt
  read -r path m opt <<<"$(kind_args "$1")"
  m_h2load "$2" "$path" "${NREQ[$1.$2]}" "$m" $opt || return 1
  SRV_PROTO[$1.$2]=$M_PROTO
}

# warm_up KIND TAG (lib.sh's bench_group calls it): one request per stream
# slot (64 x streams), then about a second's worth; NREQ[KIND.TAG] = about
# SECS seconds' worth from the last one, in whole multiples of the slots
# (at least one). A quick run only checks: one request per stream slot (the
# file: one per connection), and the same count for its one measured run.
warm_up() {
  local kind=$1 tag=$2 path m opt slots n
  read -r path m opt <<<"$(kind_args "$kind")"
  slots=$((CONNS * m)) n=$slots
  if [ "$QUICK" = 1 ]; then
    [ "$kind" != hello ] && n=$CONNS
    NREQ[$kind.$tag]=$n
    return
  fi
  m_h2load "$tag" "$path" "$n" "$m" $opt || die "$tag: the warm-up failed (above)"
  n=$(awk -v r="$M_RATE" -v s="$slots" 'BEGIN {k = int(r / s + 0.999); print (k < 1 ? 1 : k) * s}')
  m_h2load "$tag" "$path" "$n" "$m" $opt || die "$tag: the warm-up failed (above)"
  NREQ[$kind.$tag]=$(awk -v r="$M_RATE" -v t="$SECS" -v s="$slots" 'BEGIN {k = int(r * t / s + 0.5); print (k < 1 ? 1 : k) * s}')
}

# Held back by the load generator (lib.sh's check_bound): BOUND, LOADGEN_BOUND.
declare -A BOUND
LOADGEN_BOUND=()
ROWS=()

# ================================================================ measure
START_TS=$(date +%s)
log "runs: $RUNS x ~${SECS}s; h2load -t1 -c$CONNS -m$STREAMS (file: -m$FILE_STREAMS); servers on CPU $SERVER_CPU, load on CPU $CLIENT_CPU; certificate SHA-256 $CERT_FP"
bench_group "piston-static vs nginx" "hello file" static-piston static-nginx static-piston-tls static-nginx-tls

# nginx at -m 100 on the file: whether it serves it (its HTTP/2 flood
# check), once per static server, outside the measured runs.
probe_file_streams() {
  local tag out=$TMP/probe.out n=$((CONNS * STREAMS)) url res
  for tag in static-piston static-nginx; do
    start_server "$tag"
    url="http://127.0.0.1:${SRV_PORT[$tag]}/$BIGFILE"
    run_client timeout 300 taskset -c "$CLIENT_CPU" h2load -t1 -c"$CONNS" -m"$STREAMS" -n"$n" "$url" >"$out" 2>&1
    res=$(sed -n 's/^requests: //p' "$out")
    PROBE+=("$tag: \`h2load -c$CONNS -m$STREAMS -n$n\` (h2c) on the 1 MiB file: ${res:-no result}")
    stop_pid "${SRV_PID[$tag]}" 5
  done
}
PROBE=()
if [ "$QUICK" != 1 ] && [ "$FILE_STREAMS" != "$STREAMS" ]; then probe_file_streams; fi
# The file over TLS again with one suite for both (nginx takes the client's
# first, AES-128-GCM, where piston-static may choose another).
bench_group "piston-static vs nginx, TLS, one suite" file-aes128 static-piston-tls static-nginx-tls

bench_group "Python hosts" hello asgi-piston asgi-hypercorn wsgi-piston wsgi-hypercorn
bench_group "Node" hello node-piston node-node node-piston-tls node-node-tls

# ================================================================ report
for k in "${!SAMPLES[@]}"; do check_bound "$k" h2load; done

row "\`GET /hello\`, h2c, $CONNS conns × $STREAMS streams" hello.static-piston hello.static-nginx "≥ 1.0×" 1.0
row "\`GET /hello\`, TLS 1.3 + h2 (ALPN), $CONNS conns × $STREAMS streams" hello.static-piston-tls hello.static-nginx-tls "≥ 1.0×" 1.0
row "1 MiB file, h2c, $CONNS conns × $FILE_STREAMS streams" file.static-piston file.static-nginx "≥ 1.0×" 1.0
row "1 MiB file, TLS 1.3 + h2, $CONNS conns × $FILE_STREAMS streams" file.static-piston-tls file.static-nginx-tls "≥ 1.0×" 1.0
row "1 MiB file, TLS 1.3 + h2, both on TLS_AES_128_GCM_SHA256 (h2load offers only it)" file-aes128.static-piston-tls file-aes128.static-nginx-tls "— (a check)" ""
P_ROWS=("${ROWS[@]}") ROWS=()
row "Raw ASGI (\`asgi_hello.py\`), h2c: \`piston --h2c\` vs hypercorn (uvloop)" hello.asgi-piston hello.asgi-hypercorn "≥ 3×" 3
row "Raw WSGI (\`wsgi_hello.py\`), h2c: \`piston --h2c\` vs hypercorn's WSGI mode (uvloop)" hello.wsgi-piston hello.wsgi-hypercorn "≥ 3×" 3
row "\`h2_hello.js\`, h2c: \`createServer({ http2: 2 })\` vs node:http2 \`createServer\`" hello.node-piston hello.node-node "≥ 1.5×" 1.5
row "\`h2_hello.js\`, TLS 1.3 + h2: \`createServer({key, cert})\` vs node:http2 \`createSecureServer\`" hello.node-piston-tls hello.node-node-tls "≥ 1.5×" 1.5
H_ROWS=("${ROWS[@]}")

ALL=(static-piston static-nginx static-piston-tls static-nginx-tls asgi-piston asgi-hypercorn wsgi-piston wsgi-hypercorn
     node-piston node-node node-piston-tls node-node-tls)
S_ROWS=()
for tag in "${ALL[@]}"; do
  for kind in hello file file-aes128; do
    k=$kind.$tag
    case $k in file.static-* | file-aes128.static-*-tls | hello.*) ;; *) continue ;; esac
    read -r path m opt <<<"$(kind_args "$kind")"
    what="GET $path, -m$m${opt:+ $opt}"
    if [ -z "${SAMPLES[$k]:-}" ]; then
      S_ROWS+=("| $tag | $what | \`${SRV_DESC[$tag]:-}\` | $(why_not "$k") | | | | | | | |"); continue
    fi
    mb=""
    [ "$kind" = file ] && mb=" ($(fmt_int "$(med "${MBPS[$k]}")") MB/s)"
    S_ROWS+=("| $tag | $what | \`${SRV_DESC[$tag]}\` | $(fmt_int "$(med "${SAMPLES[$k]}")")$mb | $(spread "$k") | $(fmt2 "$(med "${CPUUS[$k]}")") µs | $(fmt_int "$(med "${SBUSY[$k]}")")% | $(fmt_int "$(med "${CBUSY[$k]}")")% | $(fmt_int "$(med "${STEAL[$k]}")")% | ${SRV_PROTO[$k]:-?} | $(fmt_int "${NREQ[$k]}") |")
  done
done
if [ ${#PROBE[@]} -gt 0 ]; then
  NOTES+=("Why the file runs at -m$FILE_STREAMS: the same file at -m$STREAMS ($((CONNS * STREAMS)) MiB in flight), once per server outside the measured runs: $(printf '%s; ' "${PROBE[@]}" | sed 's/; $//'). When nginx fails there it is its HTTP/2 flood check closing the connections (its error log at level info says \"http2 flood detected\": seen in a check by hand, not in this run; nginx is left at its defaults here), so the measured comparison runs where both servers serve every request.")
fi
FR=()
for tag in static-piston static-nginx static-piston-tls static-nginx-tls; do
  [ -n "${SRV_FRAMES[$tag]:-}" ] && FR+=("$tag ${SRV_FRAMES[$tag]}")
done
[ ${#FR[@]} -gt 0 ] && NOTES+=("DATA frames per 1 MiB response (\`nghttp -nv\`, one GET before measuring): $(printf '%s; ' "${FR[@]}" | sed 's/; $//'). More frames cost the client more: where h2load's CPU is the limit, a server that cuts the file finer is held back sooner.")
steal_note
if [ ${#LOADGEN_BOUND[@]} -gt 0 ]; then
  NOTES+=("Held back by the load generator (the server used under 90% of its CPU while h2load's CPU was 90% or more busy): these rates are floors and a ratio with them says little; compare the server CPU per request instead: $(printf '%s; ' "${LOADGEN_BOUND[@]}" | sed 's/; $//')")
fi
if [ -n "${SAMPLES[hello.wsgi-hypercorn]:-}" ]; then
  NOTES+=("hypercorn runs a WSGI app in a thread pool (its WSGI mode: each request's app call goes to a worker thread and back to the event loop); Piston's WSGI host runs it with --threads $PISTON_PY_THREADS.")
fi

ELAPSED=$(($(date +%s) - START_TS))
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && GIT_REV+=" with uncommitted changes"
MODE_TXT="full"; [ "$QUICK" = 1 ] && MODE_TXT="quick (smoke test: numbers are not meaningful)"
TABLE_HEAD="| Case | Piston /s (server CPU per request) | Peer /s (server CPU per request) | Piston/peer | Piston min–max | Peer min–max | Target | Result |
| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
{
  echo "# Piston over HTTP/2 against nginx, hypercorn and node:http2"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Kernel: $(uname -srm); CPU: $CPU_MODEL, $NCPU CPUs online (shared with other work: noisy)"
  echo "- Piston: git $GIT_REV; ${PISTON_BIN#"$ROOT/"}, \`piston\` CLI ${PISTON_CLI#"$ROOT/"}, Node addon build/Release/piston.node"
  echo "- Peers: $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //') (Debian's nginx-light, http_v2 module); hypercorn ${HYPERCORN_VER:-not installed} (${PEERS#"$ROOT/"}/venv, from the Python package index) on uvloop $("$PYTHON" -c 'import uvloop; print(uvloop.__version__)' 2>/dev/null) (Debian's); Node $("$NODE_BIN" --version) (node:http2)"
  echo "- Load: $(h2load --version 2>&1 | head -n 1) (Debian's nghttp2-client), one thread: \`h2load -t1 -c$CONNS -m$STREAMS -n N\` (\"100 streams over 64 connections\" read as h2load's \`-m 100\` on each of 64 connections: up to $((CONNS * STREAMS)) requests in flight); the 1 MiB file with \`-m$FILE_STREAMS\` (see the notes); N calibrated per server from its warm-up to last about ${SECS} s (the last column below)"
  echo "- TLS: one certificate made at the start of the run, ECDSA P-256, self-signed (SHA-256 fingerprint checked on every TLS server); TLS 1.3 only; HTTP/2 by ALPN; $(openssl version)"
  echo "- $RUNS runs per server and case after the warm-up runs; the servers of a group run side by side and are measured in turn, the order rotating each run; every server one process (hypercorn: its one worker process beside its parent) pinned to CPU $SERVER_CPU, h2load on CPU $CLIENT_CPU (\`taskset\`)"
  echo "- Mode: $MODE_TXT; total time ${ELAPSED} s"
  echo
  echo "## piston-static vs nginx over HTTP/2"
  echo
  echo "$TABLE_HEAD"
  printf '%s\n' "${P_ROWS[@]}"
  echo
  echo "## The Python and Node hosts over HTTP/2"
  echo
  echo "$TABLE_HEAD"
  printf '%s\n' "${H_ROWS[@]}"
  echo
  echo "req/s: medians of the runs (succeeded requests over h2load's \"finished in\"); server CPU per request in brackets; the ratio is of the rate medians, and the targets (the issue's) are judged on it."
  echo
  echo "## Every server"
  echo
  echo "| Server | Load | Command (pinned with \`taskset -c $SERVER_CPU\`) | req/s (median) | min–max | server CPU per request | server's CPU use | h2load's CPU busy | CPU $SERVER_CPU stolen | Protocol (h2load) | Requests per run (N) |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
  printf '%s\n' "${S_ROWS[@]}"
  echo
  echo "Server CPU per request: user+system time of the server's processes (\`/proc/PID/stat\`: the process and its children) from just before h2load starts to just after it exits (its $CONNS connections' set-up, and over TLS their handshakes, are in it), over the requests; median of the runs. Server's CPU use: that time over h2load's \"finished in\". h2load's CPU busy: CPU $CLIENT_CPU's busy share from \`/proc/stat\`. CPU $SERVER_CPU stolen: the share of the server's CPU's time that the hypervisor gave to other guests during the run (\`/proc/stat\` steal)."
  echo
  echo "Every server was checked before measuring, with curl over HTTP/2 (\`--http2-prior-knowledge\` for h2c, \`--http2\` by ALPN over TLS): \`GET /hello\` answers HTTP/2 200 with \`$HELLO_BODY\` and text/plain; over TLS its certificate is the benchmark's and the protocol TLS 1.3 (\`openssl s_client\`); piston-static and nginx serve the 1 MiB file byte for byte. Every h2load run must report the protocol (h2c, or h2 by ALPN) and every request succeeded with a 2xx status, or the run is a failure below. Apps: \`benchmarks/apps/python/wsgi_hello.py\`, \`asgi_hello.py\`, \`benchmarks/apps/js/h2_hello.js\`."
  report_notes
} >"$TMP/report.md"
publish_and_exit
