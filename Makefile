# Piston: `make test` sets up what is missing, builds everything and runs
# every suite; `make run` serves the example. See README.md.

CC      ?= cc
BUILD   ?= build
PYTHON  ?= /usr/bin/python3
# Standard, warnings and visibility: csrc/cflags.txt, which setup.py and
# binding.gyp read too.
CFLAGS_SHARED := $(shell grep '^-' csrc/cflags.txt)
CFLAGS_BASE := $(CFLAGS_SHARED) -fPIC -g -MMD -MP -Icsrc
OPT     ?= -O2
CFLAGS  ?=
ALL_CFLAGS = $(CFLAGS_BASE) $(OPT) $(SAN) $(CFLAGS)
LLHTTP_A := $(firstword $(wildcard /usr/lib/*/libllhttp.a) /usr/lib/libllhttp.a)
LIBS    := $(LLHTTP_A) -lnghttp2 -lssl -lcrypto -lz -lpthread

ENGINE_SRC := $(filter-out csrc/bin/%,$(wildcard csrc/*.c))
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ    := $(BUILD)/csrc/bin/cli.o
UNIT_SRC   := $(wildcard tests/c/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/c/%.c=$(BUILD)/tests/%)

# The version is written once, in piston.h; the shared library's file name
# and soname follow it (libpiston.so.0.1.0, soname libpiston.so.0).
version_of = $(shell awk '$$2 == "PISTON_VERSION_$(1)" { print $$3 }' csrc/piston.h)
SO_MAJOR   := $(call version_of,MAJOR)
SO_VERSION := $(SO_MAJOR).$(call version_of,MINOR).$(call version_of,PATCH)
SONAME     := libpiston.so.$(SO_MAJOR)

VENV    := .venv
VPY     := $(VENV)/bin/python
# Each pytest run gets a fresh temporary directory of its own: with the
# default one, suites running at once (make test's two streams) number
# theirs in one place, and pytest removes all but the newest three, the
# directories of a suite still running among them.
PYTEST  := -m pytest -q --basetemp="$$(mktemp -d)"
# The Python extension and the Node addon link a static libnghttp2 built
# with -fPIC (Debian's is not; scripts/build-nghttp2-pic.sh, run by
# setup-deps): the same link as the wheel's and the prebuilt addon's. Until
# it is built (make dev or make node on a fresh clone: their deps step
# builds it), the shared libnghttp2.
NGHTTP2_PIC := $(CURDIR)/.tools/nghttp2
WITH_NGHTTP2_PIC = $(if $(wildcard $(NGHTTP2_PIC)/lib/libnghttp2.a),PISTON_NGHTTP2_PREFIX=$(NGHTTP2_PIC))

.PHONY: all test test-c test-protocol test-protocol-tls test-reliability test-reliability-tls test-python test-node \
        test-engine-stream test-hosts-stream test-node-compat test-browser test-deploy test-asan test-tsan test-abi test-package package fuzz soak run run-static \
        bench bench-ws bench-tls bench-h2 bench-peers \
        deps deps-bench dev node clean format format-check

all: $(BUILD)/libpiston.a $(BUILD)/libpiston.so $(BUILD)/$(SONAME) \
     $(BUILD)/piston-static $(BUILD)/piston-testserver

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libpiston.a: $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libpiston.so.$(SO_VERSION): $(ENGINE_OBJ) csrc/piston.sym
	$(CC) -shared $(SAN) -Wl,-soname,$(SONAME) \
	    -Wl,--version-script=csrc/piston.sym -o $@ $(ENGINE_OBJ) $(LIBS)

# The soname link (what the loader looks for) and the link-time name (-lpiston)
$(BUILD)/$(SONAME) $(BUILD)/libpiston.so: $(BUILD)/libpiston.so.$(SO_VERSION)
	ln -sf $(notdir $<) $@

$(BUILD)/piston-static: $(BUILD)/csrc/bin/piston_static.o $(CLI_OBJ) $(BUILD)/libpiston.a
	$(CC) $(SAN) -o $@ $^ $(LIBS)

$(BUILD)/piston-testserver: $(BUILD)/tests/c/testserver.o $(CLI_OBJ) $(BUILD)/libpiston.a
	$(CC) $(SAN) -o $@ $^ $(LIBS)

$(BUILD)/tests/c/testserver.o: CFLAGS_BASE += -Icsrc/bin

$(BUILD)/tests/%: tests/c/%.c $(BUILD)/libpiston.a tests/c/check.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/c -o $@ $< $(BUILD)/libpiston.a $(LIBS)

# Set-up: installs only what is missing (see scripts/setup-deps.sh).
deps:
	@scripts/setup-deps.sh
deps-bench:
	@scripts/setup-deps.sh bench

# Two streams of suites at once (make -j2, each stream's output kept
# together by -O): most suites wait on sockets and timers more than they
# compute, so on two cores the pair takes little more than the longer one.
# Everything both streams build is built first (the engine, the Python
# package, the addon, the ASan build that test-reliability and test-asan
# share). format-check comes last so that a formatting slip does not hide
# what the suites found.
test: deps
	$(MAKE) all dev node
	$(ASAN_MAKE) all
	$(MAKE) -j2 -O test-engine-stream test-hosts-stream
	$(MAKE) format-check

# The engine's suites: unit tests, the protocol suite plain, over TLS and
# under ASan and TSan, the fuzzer.
test-engine-stream:
	$(MAKE) test-c
	$(MAKE) test-protocol
	$(MAKE) test-protocol-tls
	$(MAKE) test-asan
	$(MAKE) test-tsan
	$(MAKE) fuzz FUZZ_SECONDS=15 FUZZ_SEED=1

# The hosts' suites, the reliability suite (plain and over TLS), the
# packages.
test-hosts-stream:
	$(MAKE) test-reliability
	$(MAKE) test-reliability-tls
	$(MAKE) test-python
	$(MAKE) test-node
	$(MAKE) test-browser
	$(MAKE) test-deploy
	$(MAKE) test-abi
	$(MAKE) test-package

# The unit tests, then the layering check on the engine's objects (no
# lower layer calls up; tests/c/check_layers.py lists the layers).
test-c: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do $$t; done
	$(PYTHON) tests/c/check_layers.py $(BUILD)

test-protocol: all
	PISTON_BUILD=$(BUILD) $(PYTHON) $(PYTEST) tests/protocol

# The same suite with every server on TLS and every client through ssl
test-protocol-tls: all
	PISTON_TEST_TLS=1 PISTON_BUILD=$(BUILD) $(PYTHON) $(PYTEST) tests/protocol

# The Python package in .venv (system site-packages: Debian's Flask, Django,
# gunicorn), installed editable with the extension built in place.
dev: deps
	@test -x $(VPY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	PISTON_WERROR=1 $(WITH_NGHTTP2_PIC) \
	    $(VPY) -m pip install -q --no-build-isolation --no-deps -e .

test-python: dev
	$(VPY) $(PYTEST) tests/python

# The Node addon (node-gyp, from the system's Node headers) and its tests:
# node --test, then the WebSocket conformance cases against the native App
# and through ws on createServer and on node:http (the same results).
node: deps
	PISTON_WERROR=1 $(WITH_NGHTTP2_PIC) npm install --no-audit --no-fund

test-node: node
	npm test
	$(PYTHON) $(PYTEST) tests/node

# Headless Chromium: its WebSocket (text, binary, 1 MiB, permessage-deflate)
# through the C test server, the ASGI host and the native App, and a page of
# 60 assets over HTTPS and HTTP/2 from every host: about 30 s.
test-browser: all dev node
	PISTON_BUILD=$(BUILD) $(PYTHON) $(PYTEST) tests/browser

# Behind real proxies (docs/deploy.md's recipes): Debian's nginx (TLS,
# X-Forwarded-*, a Unix socket, WebSocket) and HAProxy (PROXY v1/v2, in
# clear and TLS to Piston) in front of Django, FastAPI, Express and the C
# test server: about 10 s.
test-deploy: all dev node
	PISTON_BUILD=$(BUILD) $(PYTHON) $(PYTEST) tests/deploy

# Node's own test/parallel/test-http-*.js through createServer (issue #14):
# fails if a file of tests/node-compat/expected-pass.txt fails. Not in
# `make test`: it takes about 3 minutes. Node's files are fetched (from
# Debian's nodejs source package) into $(BUILD)/node-tests, never committed.
test-node-compat: node
	tests/node-compat/fetch-tests.sh $(BUILD)/node-tests
	node tests/node-compat/run.js --tests $(BUILD)/node-tests

# What libpiston.so, the Python extension and the Node addon export
# (nm -D), the soname and the version everywhere it is written.
test-abi: all dev node
	PISTON_BUILD=$(BUILD) $(PYTHON) $(PYTEST) tests/abi

# What users install: the sdist and the wheel (python3 -m build, offline;
# auditwheel repair gives the wheel the manylinux tag its glibc symbols
# allow) and the npm tarball with its prebuilt addon (npm pack,
# scripts/prebuild.js) in $(BUILD)/dist. Both link llhttp, OpenSSL, nghttp2
# (a -fPIC build, scripts/build-nghttp2-pic.sh) and zlib statically: they
# need only libc.
DIST := $(BUILD)/dist
AUDITWHEEL := $(CURDIR)/.tools/auditwheel/bin
package: deps
	@test -d node_modules/prebuildify || $(MAKE) node
	@rm -rf $(DIST) && mkdir -p $(DIST)
	PISTON_NGHTTP2_PREFIX=$(NGHTTP2_PIC) $(PYTHON) -m build --no-isolation --outdir $(DIST) .
	PATH=$(AUDITWHEEL):$$PATH auditwheel repair -w $(DIST) $(DIST)/piston-*-linux_*.whl
	rm -f $(DIST)/piston-*-linux_*.whl
	PISTON_NGHTTP2_PREFIX=$(NGHTTP2_PIC) npm pack --pack-destination $(DIST)

# Each of them installed into a fresh environment in a temporary directory
# (a plain venv; a new npm project), the example app started from it and
# answered; the wheel with no compiler on PATH (tests/package).
test-package: package
	PISTON_DIST=$(DIST) PISTON_AUDITWHEEL=$(AUDITWHEEL)/auditwheel $(PYTHON) $(PYTEST) tests/package

# Load, slow clients, resets under ASan/LSan, graceful shutdown, traversal,
# framing compared with nginx, handler faults through the Python and Node
# hosts (tests/reliability, figures in docs/reliability.md). The long
# versions: make soak.
ASAN_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
# One build-asan for test-reliability and test-asan: the same variables, so
# the second finds it up to date and builds only what it adds (unit tests).
ASAN_MAKE = $(MAKE) BUILD=build-asan CC=clang OPT=-O1 SAN="$(ASAN_SAN)"
test-reliability: all dev node
	$(ASAN_MAKE) all
	PISTON_BUILD=$(BUILD) PISTON_ASAN_BUILD=build-asan \
	    $(PYTHON) $(PYTEST) tests/reliability

# The same suite over TLS (as test-protocol-tls): every server it starts gets
# a certificate, every client goes through ssl; smaller counts for the long
# scenarios (the soak keeps its sizes), see docs/reliability.md.
test-reliability-tls: all dev node
	$(ASAN_MAKE) all
	PISTON_TEST_TLS=1 PISTON_BUILD=$(BUILD) PISTON_ASAN_BUILD=build-asan \
	    $(PYTHON) $(PYTEST) tests/reliability

soak: deps
	scripts/soak.sh

# The same suites under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps
	$(ASAN_MAKE) all test-c test-protocol

# The protocol suite under ThreadSanitizer: the test server's worker-thread
# handlers (/echo-thread, /big-thread, /ws-thread) make every response and
# WebSocket call from another thread, through the loop's inbox.
test-tsan: deps
	$(MAKE) BUILD=build-tsan CC=clang OPT=-O1 SAN=-fsanitize=thread all
	PISTON_BUILD=build-tsan $(PYTHON) $(PYTEST) tests/protocol

# libFuzzer over the connection path (fuzz/fuzz_conn.c), ASan + UBSan.
# New inputs it finds go to build-fuzz/corpus; crashes to build-fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_SEED ?= 0
FUZZ_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
fuzz: deps
	$(MAKE) BUILD=build-fuzz CC=clang OPT=-O1 \
	    SAN="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" build-fuzz/libpiston.a
	clang $(CFLAGS_BASE) -O1 -fsanitize=fuzzer $(FUZZ_SAN) \
	    -o build-fuzz/fuzz_conn fuzz/fuzz_conn.c build-fuzz/libpiston.a $(LIBS)
	@mkdir -p build-fuzz/corpus
	cd build-fuzz && ./fuzz_conn -max_total_time=$(FUZZ_SECONDS) -seed=$(FUZZ_SEED) -timeout=10 \
	    -dict=../fuzz/http.dict -max_len=4096 -print_final_stats=1 \
	    corpus ../fuzz/corpus

run: dev
	$(VENV)/bin/piston examples.wsgi_app:app --bind 127.0.0.1:8080 \
	    --static /static=examples/static --route /health=OK

run-static: all
	$(BUILD)/piston-static --bind 127.0.0.1:8080 --dir examples/static \
	    --text /hello='Hello, World!'

bench: deps-bench
	$(MAKE) all dev node
	benchmarks/run.sh

# WebSocket only: benchmarks/ws_run.sh (`make bench` runs it at its end).
bench-ws: deps-bench
	$(MAKE) all dev node
	benchmarks/ws_run.sh

# TLS only: benchmarks/tls_run.sh (`make bench` runs it at its end).
bench-tls: deps-bench
	$(MAKE) all dev node
	benchmarks/tls_run.sh

# Actix-web, Axum, Go, granian and the floor only: benchmarks/peers_run.sh
# (`make bench` runs it at its end; it writes results/peers.md and .png).
bench-peers: deps-bench
	$(MAKE) all dev node
	benchmarks/peers_run.sh

# HTTP/2 only: benchmarks/h2_run.sh (`make bench` runs it at its end).
bench-h2: deps-bench
	$(MAKE) all dev node
	benchmarks/h2_run.sh

# All our C: the engine, its programs and tests, both bindings, the fuzzer.
FORMAT_SRC = $(wildcard csrc/*.[ch] csrc/bin/*.[ch] tests/c/*.[ch] \
                        python/*.[ch] node/*.[ch] fuzz/*.[ch])
format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run -Werror $(FORMAT_SRC)

clean:
	rm -rf build build-asan build-fuzz prebuilds python/*.egg-info python/piston/*.so

# only our own objects' dependency files: node-gyp keeps its own in build/
-include $(shell find $(BUILD)/csrc $(BUILD)/tests -name '*.d' 2>/dev/null)
