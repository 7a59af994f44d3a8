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
      "cflags_c": ["-std=c11", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror"],
      "cflags!": ["-fno-exceptions"],
      # Node carries its own llhttp: bind our references to the copy linked
      # in here and export nothing of it.
      "ldflags": ["-Wl,--exclude-libs,ALL", "-Wl,-Bsymbolic"],
      "libraries": ["<!(ls /usr/lib/*/libllhttp.a /usr/lib/libllhttp.a 2>/dev/null | head -n1)", "-lpthread"]
    }
  ]
}
