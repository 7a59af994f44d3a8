# Shell helpers shared by run.sh, run_hosts.sh and ws_run.sh (sourced after
# they define log, die and the PIDS/FAILURES arrays).

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
