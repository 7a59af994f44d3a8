#!/usr/bin/env bash
# Prints the Debian mirror this machine's apt already uses (from
# /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list); fails if none.
# Used to fetch packages of another release (scripts/setup-deps.sh) or a
# source package (tests/node-compat/fetch-tests.sh).
set -euo pipefail
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  m=$(awk '/^URIs:/ {print $2; exit}' "$f")
  case "$m" in *debian.org/debian|*/debian) mirror=$m; break ;; esac
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1=="deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || exit 1
echo "$mirror"
