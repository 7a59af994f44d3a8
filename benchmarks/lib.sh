# Shell helpers shared by run.sh, run_hosts.sh, ws_run.sh and tls_run.sh
# (sourced after they set LOG_TAG, open fd 3 and define the PIDS/FAILURES
# arrays).

# Messages go to fd 3 (the caller does exec 3>&2 before sourcing this), a
# copy of the script's stderr, so they are seen even when a signal arrives
# while a client's output is redirected to a file; LOG_TAG names the script.
log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&3; }
die() { printf '[%s] FATAL: %s\n' "$LOG_TAG" "$*" >&3; exit 1; }

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

# check_hello TAG URL: dies unless GET URL answers 200 with HELLO_BODY and
# a text/plain Content-Type (the certificate is not verified); sets ctype
# in the caller's scope. The head is left in $TMP/head.
check_hello() {
  local tag=$1 url=$2 code
  code=$(curl -sk -m 10 -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' "$url") || code=000
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

# nginx_conf DIR PORT ROOT CONNS BODY [CERT KEY]: writes DIR/nginx.conf (and
# DIR/tmp) for nginx -p DIR/ -c DIR/nginx.conf: one process in the
# foreground, no access log, keep-alive forever, sendfile, ROOT at /, and
# `location = /hello` answering BODY as text/plain. With CERT and KEY it
# listens with TLS 1.3 only, on that certificate (session tickets and the
# session cache left at nginx's defaults).
nginx_conf() {
  local dir=$1 port=$2 root=$3 conns=$4 body=$5 cert=${6:-} key=${7:-} listen tls=""
  mkdir -p "$dir/tmp"
  listen="listen 127.0.0.1:$port;"
  if [ -n "$cert" ]; then
    listen="listen 127.0.0.1:$port ssl;"
    tls="ssl_certificate $cert; ssl_certificate_key $key; ssl_protocols TLSv1.3;"
  fi
  cat >"$dir/nginx.conf" <<EOF
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
}
