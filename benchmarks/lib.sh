# Shell helpers shared by run.sh, run_hosts.sh, ws_run.sh and tls_run.sh
# (sourced after they set LOG_TAG, open fd 3 and define the PIDS/FAILURES
# arrays).

# Messages go to fd 3 (the caller does exec 3>&2 before sourcing this), a
# copy of the script's stderr, so they are seen even when a signal arrives
# while a client's output is redirected to a file; LOG_TAG names the script.
log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&3; }
die() { printf '[%s] FATAL: %s\n' "$LOG_TAG" "$*" >&3; exit 1; }

# bench_settings: what tls_run.sh and h2_run.sh share (after they set HERE
# and ROOT): the run's length (BENCH_QUICK, BENCH_RUNS, BENCH_SECONDS), the
# apps, the peers' folder, the programs under test and the peers' (from the
# environment when set there), the response, the file.
bench_settings() {
  QUICK=${BENCH_QUICK:-0}
  RUNS=${BENCH_RUNS:-3}
  SECS=${BENCH_SECONDS:-5}
  if [ "$QUICK" = 1 ]; then RUNS=1; SECS=1; fi
  APPS=$HERE/apps
  PY_APPS=$APPS/python
  JS_APPS=$APPS/js
  PEERS=${BENCH_PEERS:-$HERE/.peers}
  PYTHON=/usr/bin/python3
  PISTON_BIN=${PISTON_BIN:-$ROOT/build/piston-static}
  PISTON_CLI=${PISTON_CLI:-$ROOT/.venv/bin/piston}
  PISTON_PY_THREADS=${PISTON_PY_THREADS:-1}
  NGINX_BIN=${NGINX_BIN:-nginx}
  NODE_BIN=${NODE_BIN:-node}
  HELLO_BODY='Hello, World!'
  BIGFILE=file-1MiB.bin
  START_TIMEOUT=30
  CONNS=64
}

# Servers on CPU 0, the load generator on CPU 1 (both on CPU 0 with one CPU).
SERVER_CPU=0
CLIENT_CPU=1
NCPU=$(nproc)

# bench_preflight TOOL...: dies if a tool is missing; shares CPU 0 on a
# one-CPU machine; raises the fd limit to the hard limit.
bench_preflight() {
  local tool hard
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/setup-deps.sh bench installs the bench tools)"
  done
  if [ "$NCPU" -lt 2 ]; then
    log "warning: only $NCPU CPU; servers and load generator share CPU 0"
    CLIENT_CPU=0
  fi
  hard=$(ulimit -Hn)
  [ "$hard" = unlimited ] && hard=1048576
  ulimit -n "$hard" 2>/dev/null || log "warning: cannot raise the fd limit to $hard"
}

forget_pid() {
  local p=$1 i
  for i in "${!PIDS[@]}"; do [ "${PIDS[$i]}" = "$p" ] && unset 'PIDS[i]'; done
}

alive() {   # running and not a zombie
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# Stop one process: SIGTERM, then SIGKILL after $2 seconds. Returns 0 if it
# exited on SIGTERM.
stop_pid() {
  local p=$1 grace=${2:-3} i rc=0
  kill -TERM "$p" 2>/dev/null
  for ((i = 0; i < grace * 100; i++)); do alive "$p" || break; sleep 0.01; done
  if alive "$p"; then kill -KILL "$p" 2>/dev/null; rc=1; fi
  wait "$p" 2>/dev/null
  forget_pid "$p"
  return $rc
}

# Run a client in the background and wait for it, so a signal to this script
# is handled at once and cleanup can kill the client too.
run_client() {
  "$@" 3>&- &
  local p=$! rc
  PIDS+=("$p")
  wait "$p"; rc=$?
  forget_pid "$p"
  return $rc
}

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

listening() {   # is something LISTENing on 127.0.0.1:$1 (or 0.0.0.0)?
  local hex
  hex=$(printf '%04X' "$1")
  awk -v h=":$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == h {f = 1} END {exit !f}' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# ---------------------------------------------------------------- statistics
# stats "v1 v2 ..." -> "median min max"
stats() {
  printf '%s\n' $1 | sort -g | awk '{a[NR] = $1}
    END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print m, a[1], a[NR]}'
}

fmt_int() { printf '%.0f' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/; ta'; }

calc() { awk "BEGIN {printf \"%.6f\", $1}"; }

ge() { awk "BEGIN {exit !(($1) >= ($2))}"; }

fail() { log "FAIL: $*"; FAILURES+=("$*"); }

# The report's Notes section: failures first, then notes (inside the report's
# output block).
report_notes() {
  if [ ${#NOTES[@]} -gt 0 ] || [ ${#FAILURES[@]} -gt 0 ]; then
    echo
    echo "## Notes"
    echo
    for n in "${FAILURES[@]}"; do echo "- FAILURE: $n"; done
    for n in "${NOTES[@]}"; do echo "- $n"; done
  fi
}

# Copies the finished report from $TMP to $OUT and shows it.
publish_report() {
  mkdir -p "$(dirname "$OUT")"
  cp "$TMP/report.md" "$OUT"
  cat "$TMP/report.md"
  log "written to $OUT (${ELAPSED} s)"
}

# publish_report, then the exit status: 1 if anything failed, else 0.
publish_and_exit() {
  publish_report
  if [ ${#FAILURES[@]} -gt 0 ]; then
    log "${#FAILURES[@]} failure(s)"
    exit 1
  fi
  exit 0
}

# med "v1 v2 ...": the median; spread KEY: "min–max" of SAMPLES[KEY]
med() { local m; read -r m _ _ <<<"$(stats "$1")"; echo "$m"; }
spread() { local m lo hi; read -r m lo hi <<<"$(stats "${SAMPLES[$1]}")"; echo "$(fmt_int "$lo")–$(fmt_int "$hi")"; }

# check_bound KEY LOADGEN: a server that used under 90% of its CPU
# (SBUSY[KEY]'s median) while the load generator's CPU was 90% or more
# busy (CBUSY[KEY]'s) was held back by the load generator: its rate is a
# floor, its CPU per request still holds. Sets BOUND[KEY] and adds to
# LOADGEN_BOUND (both the caller's).
check_bound() {
  local k=$1 name=$2 sb cb
  sb=$(med "${SBUSY[$k]}") cb=$(med "${CBUSY[$k]}")
  if ! ge "$sb" 90 && ge "$cb" 90; then
    BOUND[$k]=1
    LOADGEN_BOUND+=("$k (server $(fmt_int "$sb")% of CPU $SERVER_CPU, $name $(fmt_int "$cb")% of CPU $CLIENT_CPU)")
  fi
}

fmt2() { printf '%.2f' "$1"; }

# ---------------------------------------------------------------- servers
# make_tmp PREFIX: TMP, a fresh temp dir, and the traps that stop every
# process in PIDS and remove TMP on exit, Ctrl-C or SIGTERM.
make_tmp() {
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || die "mktemp failed"
  PIDS=()
  trap cleanup_tmp EXIT
  trap 'log "interrupted"; exit 130' INT
  trap 'log "terminated"; exit 143' TERM
}
cleanup_tmp() {
  local p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do stop_pid "$p" 3 2>/dev/null; done
  rm -rf "$TMP"
}

# wait_listening TAG PID PORT LOG DESC: dies if PID exits or does not
# listen on PORT within START_TIMEOUT seconds (LOG's tail shown).
wait_listening() {
  local tag=$1 pid=$2 port=$3 log=$4 desc=$5 i
  for ((i = 0; i < START_TIMEOUT * 100; i++)); do
    alive "$pid" || { tail -n 30 "$log" >&3; die "$tag ($desc) exited during startup"; }
    listening "$port" && return 0
    sleep 0.01
  done
  tail -n 30 "$log" >&3
  die "$tag ($desc) is not listening on $port after $START_TIMEOUT s"
}

# spawn_server TAG: a free port, the caller's server_cmd TAG PORT (CMD,
# DESC), the server started pinned to SERVER_CPU with its output in
# $TMP/TAG.log, tracked in PIDS and SRV_PID/SRV_PORT/SRV_LOG/SRV_DESC; waits
# for it to listen. Sets port, log and pid in the caller's scope (it
# declares them local).
spawn_server() {
  local tag=$1
  port=$(free_port)
  log="$TMP/$tag.log"
  server_cmd "$tag" "$port"
  taskset -c "$SERVER_CPU" "${CMD[@]}" </dev/null >"$log" 2>&1 3>&- &
  pid=$!
  PIDS+=("$pid")
  SRV_PID[$tag]=$pid SRV_PORT[$tag]=$port SRV_LOG[$tag]=$log SRV_DESC[$tag]=$DESC
  wait_listening "$tag" "$pid" "$port" "$log" "$DESC"
}

# check_hello TAG URL [CURL_OPTION...]: dies unless GET URL answers 200
# with HELLO_BODY and a text/plain Content-Type (the certificate is not
# verified); sets ctype and hver (the HTTP version curl spoke: 1.1, 2) in
# the caller's scope. The head is left in $TMP/head.
check_hello() {
  local tag=$1 url=$2 code
  read -r code hver <<<"$(curl -sk -m 10 "${@:3}" -o "$TMP/body" -D "$TMP/head" -w '%{http_code} %{http_version}' "$url")" || code=000
  [ "$code" = 200 ] || { tail -n 30 "${SRV_LOG[$tag]}" >&3; die "$tag (${SRV_DESC[$tag]}): GET $url answered $code"; }
  [ "$(cat "$TMP/body")" = "$HELLO_BODY" ] || die "$tag (${SRV_DESC[$tag]}): GET $url body is '$(head -c 200 "$TMP/body")', not '$HELLO_BODY'"
  ctype=$(awk -F': *' 'tolower($1) == "content-type" {sub(/\r$/, "", $2); print $2}' "$TMP/head")
  case $ctype in text/plain*) ;; *) die "$tag (${SRV_DESC[$tag]}): Content-Type is '$ctype', not text/plain" ;; esac
}

# check_alive TAG: dies if the server SRV_PID[TAG] is gone (SRV_LOG[TAG]'s
# tail shown).
check_alive() {
  local tag=$1 rc
  alive "${SRV_PID[$tag]}" && return 0
  wait "${SRV_PID[$tag]}" 2>/dev/null; rc=$?
  forget_pid "${SRV_PID[$tag]}"
  tail -n 30 "${SRV_LOG[$tag]}" >&3 2>/dev/null
  [ $rc -gt 128 ] && die "$tag died during the benchmark (signal $((rc - 128)))"
  die "$tag died during the benchmark (exit status $rc)"
}

# The server's processes: PID and its descendants (a host may fork workers),
# comma-separated.
tree_pids() {
  local all=$1 p
  for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do all+=",$(tree_pids "$p")"; done
  echo "$all"
}

# proc_cpu_ms PID,PID...: the user+system time those processes have used so
# far, in ms (/proc/PID/stat; a process that is gone counts 0).
proc_cpu_ms() {
  local p files=()
  for p in ${1//,/ }; do [ -r "/proc/$p/stat" ] && files+=("/proc/$p/stat"); done
  [ ${#files[@]} -gt 0 ] || { echo 0; return; }
  awk -v tck="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); s += $12 + $13} END {printf "%.0f", s * 1000 / tck}' "${files[@]}"
}

# run_metrics N SECONDS BYTES SERVER_CPU_MS "CB0 CT0" "CB1 CT1": a
# run's figures from N requests in SECONDS, BYTES received, the server's CPU
# time over it and cpu_snap's load-generator halves before and after:
# M_RATE (/s), M_MBPS (MB/s), M_US (server CPU us per request), M_SB (% of
# a CPU the server used), M_CB (% busy of the load generator's CPU).
run_metrics() {
  local n=$1 secs=$2 bytes=$3 ms=$4 cb0 ct0 cb1 ct1
  read -r cb0 ct0 <<<"$5"
  read -r cb1 ct1 <<<"$6"
  M_RATE=$(calc "$n / $secs")
  M_MBPS=$(calc "$bytes / $secs / 1e6")
  M_US=$(calc "$ms * 1000 / $n")
  M_SB=$(calc "100 * $ms / ($secs * 1000)")
  M_CB=$(calc "($ct1 > $ct0) ? 100 * ($cb1 - $cb0) / ($ct1 - $ct0) : 0")
}

# wrk_run TAG URL SECONDS [SCRIPT [ARG]]: wrk -t1 -c$CONNS keep-alive
# (benchmarks/report.lua, or SCRIPT with ARG after `--`) against the server
# SRV_PID[TAG], pinned to CLIENT_CPU -> run_metrics' M_RATE, M_MBPS, M_US,
# M_SB, M_CB; the server's CPU time is read before and after wrk. Returns 1
# (and records a failure) if wrk gave no result or no responses.
wrk_run() {
  local tag=$1 url=$2 secs=$3 script=${4:-$HERE/report.lua} arg=${5:-} out=$TMP/wrk.out line pids c0 c1
  local sb0 st0 cb0 ct0 sb1 st1 cb1 ct1 extra=()
  [ -n "$arg" ] && extra=(-- "$arg")
  pids=$(tree_pids "${SRV_PID[$tag]}")
  read -r sb0 st0 cb0 ct0 <<<"$(cpu_snap)"
  c0=$(proc_cpu_ms "$pids")
  run_client taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${secs}s" --timeout 5s -s "$script" \
    "$url" "${extra[@]}" >"$out" 2>&1
  c1=$(proc_cpu_ms "$pids")
  read -r sb1 st1 cb1 ct1 <<<"$(cpu_snap)"
  check_alive "$tag"
  M_RATE=0 M_US=0 M_SB=0 M_CB=0 M_MBPS=0
  line=$(grep '^WRK_RESULT' "$out")
  if [ -z "$line" ]; then cat "$out" >&3; fail "$tag $url: wrk gave no result"; return 1; fi
  local requests duration_us bytes err_connect err_read err_write err_status err_timeout
  eval "$(printf '%s\n' "${line#WRK_RESULT }" | tr ' ' '\n' | grep -E '^[a-z_0-9]+=[0-9]+$')"
  [ "$requests" -gt 0 ] || { fail "$tag $url: no responses"; return 1; }
  [ "$err_status" -gt 0 ] && fail "$tag $url: $err_status non-2xx/3xx responses"
  local sock=$((err_connect + err_read + err_write + err_timeout))
  [ "$sock" -gt 0 ] && NOTES+=("$tag $url: wrk socket errors connect=$err_connect read=$err_read write=$err_write timeout=$err_timeout")
  run_metrics "$requests" "$(calc "$duration_us / 1e6")" "$bytes" "$((c1 - c0))" "$cb0 $ct0" "$cb1 $ct1"
}

# CPU time of the server's and the load generator's CPUs from /proc/stat:
# "busy total" for each; busy is user+nice+system+irq+softirq, total adds
# idle, iowait, steal.
cpu_snap() {
  awk -v s="cpu$SERVER_CPU" -v c="cpu$CLIENT_CPU" '$1 == s || $1 == c {
      b = $2 + $3 + $4 + $7 + $8; t = b + $5 + $6 + $9
      if ($1 == s) {sb = b; st = t}
      if ($1 == c) {cb = b; ct = t}
    } END {print sb, st, cb, ct}' /proc/stat
}

# cpu_steal: "steal total" of the server's CPU from /proc/stat (time the
# hypervisor gave to other guests, and all time).
cpu_steal() {
  awk -v s="cpu$SERVER_CPU" '$1 == s {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}

# nginx_common DIR CONNS: the start of every benchmark nginx.conf (one
# process in the foreground, no access log, keep-alive forever, sendfile,
# temp paths in DIR), up to inside its http block; the caller adds its
# server blocks and the closing brace.
nginx_common() {
  local dir=$1 conns=$2
  cat <<EOF
# Generated by benchmarks/lib.sh: one process, no logging, keep-alive forever.
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile $(ulimit -n);
events {
    # nginx closes idle keep-alive connections once fewer than 1/16 of
    # worker_connections are free: leave ample headroom.
    worker_connections $conns;
}
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    sendfile on;
    default_type application/octet-stream;
EOF
}

# nginx_conf DIR PORT ROOT CONNS BODY [CERT KEY [http2]]: writes DIR/nginx.conf
# (and DIR/tmp) for nginx -p DIR/ -c DIR/nginx.conf: one process in the
# foreground, no access log, keep-alive forever, sendfile, ROOT at /, and
# `location = /hello` answering BODY as text/plain. With CERT and KEY it
# listens with TLS 1.3 only, on that certificate (session tickets and the
# session cache left at nginx's defaults). With http2 (CERT and KEY may be
# empty) the listener speaks HTTP/2: by ALPN over TLS, and with prior
# knowledge (h2c) on a plain port: nginx 1.22's `listen ... http2` (its
# `http2 on;` came in 1.25.1); its other HTTP/2 settings are its defaults
# (128 concurrent streams; keepalive_requests and keepalive_timeout bound
# HTTP/2 connections too since 1.19.7).
nginx_conf() {
  local dir=$1 port=$2 root=$3 conns=$4 body=$5 cert=${6:-} key=${7:-} h2=${8:-} listen tls=""
  mkdir -p "$dir/tmp"
  listen="listen 127.0.0.1:$port"
  if [ -n "$cert" ]; then
    listen+=" ssl"
    tls="ssl_certificate $cert; ssl_certificate_key $key; ssl_protocols TLSv1.3;"
  fi
  [ "$h2" = http2 ] && listen+=" http2"
  listen+=";"
  { nginx_common "$dir" "$conns"; cat <<EOF
    server {
        $listen
        $tls
        root $root;
        location = /hello {
            default_type "text/plain; charset=utf-8";
            return 200 "$body";
        }
        location / {
        }
    }
}
EOF
  } >"$dir/nginx.conf"
}

# ---------------------------------------------------------------- TLS
# make_cert: one certificate for every server of the run, ECDSA P-256,
# self-signed, for localhost and 127.0.0.1: CERT, KEY (in $TMP) and CERT_FP
# (its SHA-256 fingerprint).
make_cert() {
  CERT=$TMP/cert.pem KEY=$TMP/key.pem
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$KEY" -out "$CERT" \
    -days 2 -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' >"$TMP/openssl.log" 2>&1 ||
    { cat "$TMP/openssl.log" >&3; die "openssl could not make the certificate"; }
  chmod 644 "$KEY"
  CERT_FP=$(openssl x509 -in "$CERT" -noout -fingerprint -sha256 | sed 's/.*=//')
}

# tls_check TAG: the server's certificate is ours, the protocol TLS 1.3;
# sets SRV_TLS[TAG] (protocol, cipher suite, key exchange). Returns 1 if
# the server does not speak TLS.
tls_check() {
  local tag=$1 out fp
  out=$(openssl s_client -connect "127.0.0.1:${SRV_PORT[$tag]}" -servername localhost -brief </dev/null 2>&1)
  fp=$(openssl s_client -connect "127.0.0.1:${SRV_PORT[$tag]}" -servername localhost </dev/null 2>/dev/null |
       openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//')
  [ -n "$fp" ] || return 1
  [ "$fp" = "$CERT_FP" ] || die "$tag: the server's certificate is not the benchmark's ($fp)"
  local proto suite kex
  proto=$(awk -F': *' '/^Protocol version/ {print $2}' <<<"$out")
  suite=$(awk -F': *' '/^Ciphersuite/ {print $2}' <<<"$out")
  kex=$(awk -F': *' '/^Server Temp Key/ {print $2}' <<<"$out" | cut -d, -f1)
  [ "$proto" = TLSv1.3 ] || die "$tag: negotiated '$proto', not TLSv1.3"
  SRV_TLS[$tag]="$proto $suite $kex"
}

# ---------------------------------------------------------------- groups
# measure KIND TAG SECONDS: the caller's measure_kind KIND TAG SECONDS (it
# sets M_RATE, M_US, M_SB, M_CB, M_MBPS); M_ST: the share of CPU
# SERVER_CPU's time stolen by the hypervisor meanwhile.
measure() {
  local s0 t0 s1 t1 rc
  read -r s0 t0 <<<"$(cpu_steal)"
  measure_kind "$@"
  rc=$?
  read -r s1 t1 <<<"$(cpu_steal)"
  M_ST=$(calc "($t1 > $t0) ? 100 * ($s1 - $s0) / ($t1 - $t0) : 0")
  return $rc
}

# warm_up KIND TAG: a 1 s run, not recorded (none in a quick run); a script
# may define its own after sourcing this file.
warm_up() { [ "$QUICK" = 1 ] || measure "$1" "$2" 1 >/dev/null; }

# bench_group NAME KINDS TAG...: starts the group's servers (the caller's
# start_server TAG; those in UNAVAIL or whose start returns 1 are left out);
# for each KIND, warm_up of each server, then RUNS repetitions measuring
# every server once, the order rotating by one per repetition. Samples go to
# SAMPLES[KIND.TAG] (and CPUUS, SBUSY, CBUSY, MBPS, STEAL); the servers are
# stopped at the end.
bench_group() {
  local name=$1 kinds=$2 r i n tag kind k
  shift 2
  local tags=()
  log "== $name: $*"
  for tag in "$@"; do
    [ -n "${UNAVAIL[$tag]:-}" ] && continue
    start_server "$tag" && tags+=("$tag")
  done
  n=${#tags[@]}
  for kind in $kinds; do
    for tag in "${tags[@]}"; do warm_up "$kind" "$tag"; done
    for ((r = 0; r < RUNS; r++)); do
      for ((i = 0; i < n; i++)); do
        tag=${tags[$(((r + i) % n))]}
        measure "$kind" "$tag" "$SECS" || continue
        k=$kind.$tag
        SAMPLES[$k]+=" $M_RATE" CPUUS[$k]+=" $M_US" SBUSY[$k]+=" $M_SB" CBUSY[$k]+=" $M_CB" MBPS[$k]+=" $M_MBPS" STEAL[$k]+=" $M_ST"
        log "$name $kind run $((r + 1))/$RUNS $tag: $(fmt_int "$M_RATE")/s, server $(fmt2 "$M_US") us CPU each, server $(fmt_int "$M_SB")% of a CPU, load CPU $(fmt_int "$M_CB")%, CPU $SERVER_CPU stolen $(fmt_int "$M_ST")%"
      done
    done
  done
  for tag in "${tags[@]}"; do stop_pid "${SRV_PID[$tag]}" 5 || NOTES+=("$tag did not exit within 5 s of SIGTERM (killed)"); done
}

# ---------------------------------------------------------------- rows
why_not() { echo "${UNAVAIL[${1#*.}]:-not measured}"; }
cell() { echo "$(fmt_int "$(med "${SAMPLES[$1]}")") ($(fmt2 "$(med "${CPUUS[$1]}")") µs)"; }
ratio_of() { calc "$(med "${SAMPLES[$1]}") / $(med "${SAMPLES[$2]}")"; }

# row CASE PISTON_KEY PEER_KEY TARGET_TEXT MIN_RATIO: a line for ROWS (the
# caller's), judged on the rate medians (no MIN_RATIO: no verdict); the
# server CPU per request of both beside them.
row() {
  local case=$1 pk=$2 qk=$3 target=$4 min=$5 ratio res
  if [ -z "${SAMPLES[$pk]:-}" ] || [ -z "${SAMPLES[$qk]:-}" ]; then
    local pc qc
    pc=$([ -n "${SAMPLES[$pk]:-}" ] && cell "$pk" || why_not "$pk")
    qc=$([ -n "${SAMPLES[$qk]:-}" ] && cell "$qk" || why_not "$qk")
    ROWS+=("| $case | $pc | $qc | — | | | $target | not measured |"); return
  fi
  ratio=$(ratio_of "$pk" "$qk")
  res=MISS
  if [ -z "$min" ]; then res="—"; elif ge "$ratio" "$min"; then res=PASS; fi
  [ -n "${BOUND[$pk]:-}${BOUND[$qk]:-}" ] && res+=" (held back by the load generator: see notes)"
  ROWS+=("| $case | $(cell "$pk") | $(cell "$qk") | $(fmt2 "$ratio")× | $(spread "$pk") | $(spread "$qk") | $target | $res |")
}

# steal_note: a note naming the cases during which the hypervisor took 5%
# or more of CPU SERVER_CPU's time (STEAL's medians), if any.
steal_note() {
  local k st stolen=()
  for k in "${!STEAL[@]}"; do
    st=$(med "${STEAL[$k]}")
    ge "$st" 5 && stolen+=("$k $(fmt_int "$st")%")
  done
  [ ${#stolen[@]} -gt 0 ] || return 0
  NOTES+=("The hypervisor took 5% or more of CPU $SERVER_CPU's time during these runs (median; the machine is shared): $(printf '%s\n' "${stolen[@]}" | sort | tr '\n' ';' | sed 's/;$//; s/;/; /g'). Their rates are low and spread; the server CPU per request is the steadier figure.")
}
