#!/usr/bin/env python3
"""The engine's layering, checked on its object files.

Each csrc/*.c belongs to one layer; an object may call only functions
defined in its own layer or a lower one, so that (for example) the loop
never calls into connections and connections never call into HTTP. The
calls are read from the objects themselves (`nm`), so a new call upward
fails `make test` whatever the headers say. A new engine file must be given
its layer here.

usage: check_layers.py BUILD_DIR
"""
import os
import subprocess
import sys

# lowest first
LAYERS = [
    ("util", "bufpool cachestore date errors field fileserve httpdate listen metrics mime outq "
             "logbuf pct status tlsctx tlsticket trust utf8 version wsdeflate wskey"),
    ("loop", "loop timer"),
    ("conn", "conn proxyproto tls transport"),
    ("exchange", "accesslog forwarded request"),
    ("protocol", "cache h2 http1 parse raw router ws"),
    ("writer", "cachecap response wswrite pubsub"),
    ("server", "server"),
]


def nm(path, *flags):
    out = subprocess.run(["nm", *flags, path], check=True,
                         capture_output=True, text=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    level = {}
    for i, (_, files) in enumerate(LAYERS):
        for f in files.split():
            level[f] = i
    sources = sorted(f[:-2] for f in os.listdir(os.path.join(top, "csrc"))
                     if f.endswith(".c"))
    problems = [f"csrc/{s}.c has no layer in tests/c/check_layers.py"
                for s in sources if s not in level]
    defined = {}
    for s in sources:
        obj = os.path.join(build, "csrc", s + ".o")
        if not os.path.exists(obj):
            sys.exit(f"check_layers: {obj} missing; build the engine first")
        for sym in nm(obj, "--defined-only", "-g"):
            defined[sym] = s
    calls = 0
    for s in sources:
        if s not in level:
            continue
        for sym in nm(os.path.join(build, "csrc", s + ".o"), "-u"):
            owner = defined.get(sym)
            if owner is None or owner == s:
                continue  # libc, llhttp
            calls += 1
            if level.get(owner, -1) > level[s]:
                problems.append(
                    f"{s}.o ({LAYERS[level[s]][0]}) calls {sym} of {owner}.o "
                    f"({LAYERS[level[owner]][0]}): a lower layer calls up")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"layers: {len(sources)} engine files in {len(LAYERS)} layers, "
          f"{calls} calls between files, none upward")


if __name__ == "__main__":
    main()
