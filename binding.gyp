# Builds the Node-API addon (node/addon.c) with the engine (csrc/*.c)
# compiled in. Plain C, Node-API version 8: one binary for every Node >= 18.
# node/install.js runs it (when no prebuilt addon fits), giving node-gyp
# --nodedir=<node's prefix> so the build uses the installed Node headers
# (/usr/include/node on Debian), offline. native_deps.py finds llhttp
# (static: pkg-config, Debian's or Homebrew's prefix, PISTON_LLHTTP_PREFIX),
# OpenSSL, nghttp2 and zlib (static where installed), and fails with a
# line that says what to install.
{
  "targets": [
    {
      "target_name": "piston",
      # the engine is every csrc/*.c (not csrc/bin/), listed at configure time
      "sources": ["node/addon.c", "<!@(ls csrc/*.c)"],
      # the llhttp.h found, alone in a directory of its own: the header of
      # the library linked below, whatever else is on the include path
      "include_dirs": ["csrc", "<!@(python3 native_deps.py node-include)"],
      "defines": ["NAPI_VERSION=8"],
      # standard, warnings and visibility shared with the Makefile and
      # setup.py (-Werror only in the project's own builds)
      "cflags_c": ["<!@(python3 native_deps.py node-cflags)", "-O2"],
      # node-gyp adds -Wno-unused-parameter, which would win over -Wextra
      "cflags!": ["-fno-exceptions", "-Wno-unused-parameter"],
      # Node carries its own llhttp and OpenSSL: bind our references to the
      # copies linked in here and export nothing of them. The version script
      # exports only the Node-API registration symbols: the engine compiled
      # in here must not clash with a libpiston.so or another copy in the
      # process. --require-defined: an addon without llhttp linked in would
      # load and bind to Node's llhttp (another version): fail the link.
      "ldflags": ["-Wl,--exclude-libs,ALL", "-Wl,-Bsymbolic",
                  "-Wl,--require-defined=llhttp_init",
                  "-Wl,--version-script=<(module_root_dir)/node/addon.map"],
      "libraries": ["<!@(python3 native_deps.py node-libs)"]
    }
  ]
}
