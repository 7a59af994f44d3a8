#!/usr/bin/env bash
# Builds a static libnghttp2 that can go into a shared object, into
# .tools/nghttp2 (git-ignored): Debian's libnghttp2.a is compiled without
# -fPIC, so the wheel and the prebuilt Node addon, which must need nothing
# but libc, could not link it in. The source is Debian's own nghttp2
# source package of the version installed (security patches applied by
# dpkg-source), fetched through the mirror this machine already uses, built
# with upstream's CMake (library only). native_deps.py uses it when
# PISTON_NGHTTP2_PREFIX points to it (the Makefile's package target).
set -euo pipefail
dest="$(cd "$(dirname "$0")/.." && pwd)/.tools/nghttp2"
version=$(dpkg-query -W -f='${Version}' libnghttp2-dev 2>/dev/null) || {
  echo "build-nghttp2-pic: libnghttp2-dev is not installed (scripts/setup-deps.sh)" >&2
  exit 1
}
[ "$(cat "$dest/debian-version" 2>/dev/null)" = "$version" ] && [ -f "$dest/lib/libnghttp2.a" ] && exit 0

mirror=$("$(dirname "$0")/debian-mirror.sh") || {
  echo "build-nghttp2-pic: no Debian mirror in /etc/apt/sources.list{,.d}" >&2
  exit 1
}
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/archives/partial" "$tmp/src"
for suite in "$codename" "$codename-updates" "$codename-security"; do
  case $suite in
    *-security) echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/debian}/debian-security $suite main" ;;
    *) echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" ;;
  esac
done >"$tmp/sources.list"
aptopts=(-o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o Dir::State::Lists="$tmp/lists" -o Dir::Cache::Archives="$tmp/archives"
         -o Dir::State::Status=/dev/null)
echo "build-nghttp2-pic: fetching nghttp2 $version's source from Debian $codename ($mirror)"
apt-get "${aptopts[@]}" update -qq 2>/dev/null || true
(cd "$tmp/src" && apt-get "${aptopts[@]}" source -qq "nghttp2=$version" 2>&1 | grep -v '^W:' || true) >/dev/null
src=$(find "$tmp/src" -maxdepth 1 -mindepth 1 -type d -name 'nghttp2-*' | head -1)
if [ -z "$src" ]; then
  # the mirror keeps only the newest revision of a release: the same
  # upstream version with a later Debian revision, as apt would upgrade to
  echo "build-nghttp2-pic: $version's source is gone from the mirror; taking $codename's newest"
  (cd "$tmp/src" && apt-get "${aptopts[@]}" source -qq nghttp2 2>&1 | grep -v '^W:' || true) >/dev/null
  src=$(find "$tmp/src" -maxdepth 1 -mindepth 1 -type d -name 'nghttp2-*' | head -1)
fi
[ -n "$src" ] && [ -f "$src/CMakeLists.txt" ] || {
  echo "build-nghttp2-pic: nghttp2 $version's source did not download" >&2
  exit 1
}
echo "build-nghttp2-pic: building its library (-fPIC) into $dest"
rm -rf "$dest"
cmake -S "$src" -B "$tmp/build" -DENABLE_LIB_ONLY=ON -DENABLE_SHARED_LIB=OFF -DENABLE_STATIC_LIB=ON \
  -DENABLE_DOC=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$dest" -DCMAKE_INSTALL_LIBDIR=lib >"$tmp/log" 2>&1 &&
  cmake --build "$tmp/build" -j2 >>"$tmp/log" 2>&1 &&
  cmake --install "$tmp/build" >>"$tmp/log" 2>&1 || {
  cat "$tmp/log" >&2
  exit 1
}
echo "$version" >"$dest/debian-version"
