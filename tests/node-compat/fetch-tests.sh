#!/usr/bin/env bash
# Fetches Node 20's own test/parallel/ and test/common/ from Debian's nodejs
# source package (trixie carries Node 20) into $1 (default build/node-tests),
# through the Debian mirror this machine already uses, as
# scripts/setup-deps.sh fetches llhttp. Nothing is installed; Node's files
# are never part of this repository.
set -euo pipefail
dest=${1:-build/node-tests}
[ -f "$dest/test/common/index.js" ] && [ -d "$dest/test/parallel" ] && exit 0

mirror=$("$(dirname "$0")/../../scripts/debian-mirror.sh") || {
  echo "node-compat: no Debian mirror in /etc/apt/sources.list{,.d}" >&2
  exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/archives/partial" "$tmp/src"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$tmp/sources.list"
aptopts=(-o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o Dir::State::Lists="$tmp/lists" -o Dir::Cache::Archives="$tmp/archives"
         -o Dir::State::Status=/dev/null)
echo "node-compat: fetching the nodejs source package from Debian trixie ($mirror)"
apt-get "${aptopts[@]}" update -qq
# Only the upstream tarball is needed (apt checks its hash); the Debian
# parts of a point release may be missing from the mirror, which is fine.
(cd "$tmp/src" && apt-get "${aptopts[@]}" source --download-only -qq nodejs 2>&1 | grep -v '^W:' || true)
orig=$(ls "$tmp"/src/nodejs_*+dfsg.orig.tar.* 2>/dev/null | head -1)
[ -n "$orig" ] || { echo "node-compat: the nodejs source tarball did not download" >&2; exit 1; }
mkdir -p "$dest"
# only the two directories the tests need (and the fixtures they read)
tar -xf "$orig" -C "$dest" --strip-components=1 --wildcards \
  '*/test/parallel/test-http*' '*/test/common/*' '*/test/fixtures/*'
echo "node-compat: $(ls "$dest"/test/parallel | wc -l) files in $dest/test/parallel ($(basename "$orig"))"
