#include <string.h>

#include "check.h"
#include "piston.h"

#define BIN "application/octet-stream"

static const struct {
  const char *name, *want;
} cases[] = {
    {"index.html", "text/html; charset=utf-8"},
    {"INDEX.HTML", "text/html; charset=utf-8"},
    {"page.htm", "text/html; charset=utf-8"},
    {"app.js", "application/javascript; charset=utf-8"},
    {"mod.mjs", "application/javascript; charset=utf-8"},
    {"site.css", "text/css; charset=utf-8"},
    {"data.json", "application/json"},
    {"logo.PNG", "image/png"},
    {"icon.svg", "image/svg+xml"},
    {"photo.jpeg", "image/jpeg"},
    {"photo.JpG", "image/jpeg"},
    {"module.wasm", "application/wasm"},
    {"font.woff2", "font/woff2"},
    {"font.woff", "font/woff"},
    {"readme.txt", "text/plain; charset=utf-8"},
    {"site.webmanifest", "application/manifest+json"},
    {"a.7z", "application/x-7z-compressed"},
    {"a.zst", "application/zstd"},
    {"archive.tar.gz", "application/gzip"},
    {"/static/v1.2/app.js", "application/javascript; charset=utf-8"},
    {"dir.d/README", BIN},
    {"README", BIN},
    {"", BIN},
    {"trailing.", BIN},
    {".", BIN},
    {"file.unknownext", BIN},
    {"file.averyveryverylongextension", BIN},
    {"file.htmlx", BIN},
    {"file.htm ", BIN},
};

int main(void) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *got = piston_mime_type(cases[i].name, strlen(cases[i].name));
    CHECK_EQ_MEM(got, strlen(got), cases[i].want);
  }
  /* Only len bytes count: "x.css" read as "x.c". */
  const char *got = piston_mime_type("x.css", 3);
  CHECK_EQ_MEM(got, strlen(got), BIN);
  got = piston_mime_type("x.png\0.txt", 10);
  CHECK_EQ_MEM(got, strlen(got), "text/plain; charset=utf-8");
  got = piston_mime_type("x.p\0g", 5);
  CHECK_EQ_MEM(got, strlen(got), BIN);
  return CHECK_DONE();
}
