# Builds the Node-API addon (node/addon.c) with the engine (csrc/*.c)
# compiled in. Plain C, Node-API version 8; llhttp from Debian's
# libllhttp-dev (static). `npm install` runs node/build.js, which gives
# node-gyp --nodedir=<node's prefix> so the build uses the installed Node
# headers (/usr/include/node on Debian), offline.
{
  "targets": [
    {
      "target_name": "piston",
      # the engine is every csrc/*.c (not csrc/bin/), listed at configure time
      "sources": ["node/addon.c", "<!@(ls csrc/*.c)"],
      "include_dirs": ["csrc"],
      "defines": ["NAPI_VERSION=8"],
      # standard, warnings and visibility shared with the Makefile and setup.py
      "cflags_c": ["<!@(grep '^-' csrc/cflags.txt)", "-O2"],
      # node-gyp adds -Wno-unused-parameter, which would win over -Wextra
      "cflags!": ["-fno-exceptions", "-Wno-unused-parameter"],
      # Node carries its own llhttp: bind our references to the copy linked
      # in here and export nothing of it. The version script exports only
      # the Node-API registration symbols: the engine compiled in here must
      # not clash with a libpiston.so or another copy in the process.
      "ldflags": ["-Wl,--exclude-libs,ALL", "-Wl,-Bsymbolic",
                  "-Wl,--version-script=<(module_root_dir)/node/addon.map"],
      "libraries": ["<!(ls /usr/lib/*/libllhttp.a /usr/lib/libllhttp.a 2>/dev/null | head -n1)", "-lnghttp2", "-lssl", "-lcrypto", "-lz", "-lpthread"]
    }
  ]
}
