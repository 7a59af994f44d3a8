#include "piston.h"

#include <string.h>

#define UTF8 "; charset=utf-8"

/* Sorted by extension (lowercase ASCII) for the binary search. */
static const struct {
  const char *ext;
  const char *type;
} types[] = {
    {"7z", "application/x-7z-compressed"},
    {"aac", "audio/aac"},
    {"apng", "image/apng"},
    {"avif", "image/avif"},
    {"bmp", "image/bmp"},
    {"bz2", "application/x-bzip2"},
    {"css", "text/css" UTF8},
    {"csv", "text/csv" UTF8},
    {"eot", "application/vnd.ms-fontobject"},
    {"epub", "application/epub+zip"},
    {"flac", "audio/flac"},
    {"gif", "image/gif"},
    {"gz", "application/gzip"},
    {"htm", "text/html" UTF8},
    {"html", "text/html" UTF8},
    {"ico", "image/x-icon"},
    {"ics", "text/calendar" UTF8},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"js", "application/javascript" UTF8},
    {"json", "application/json"},
    {"jsonld", "application/ld+json"},
    {"m4a", "audio/mp4"},
    {"map", "application/json"},
    {"md", "text/markdown" UTF8},
    {"mjs", "application/javascript" UTF8},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"mpeg", "video/mpeg"},
    {"oga", "audio/ogg"},
    {"ogg", "audio/ogg"},
    {"ogv", "video/ogg"},
    {"opus", "audio/opus"},
    {"otf", "font/otf"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"rss", "application/rss+xml"},
    {"rtf", "application/rtf"},
    {"svg", "image/svg+xml"},
    {"tar", "application/x-tar"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"toml", "application/toml"},
    {"ttf", "font/ttf"},
    {"txt", "text/plain" UTF8},
    {"wasm", "application/wasm"},
    {"wav", "audio/wav"},
    {"weba", "audio/webm"},
    {"webm", "video/webm"},
    {"webmanifest", "application/manifest+json"},
    {"webp", "image/webp"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"xhtml", "application/xhtml+xml"},
    {"xml", "application/xml"},
    {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
    {"zip", "application/zip"},
    {"zst", "application/zstd"},
};

const char *piston_mime_type(const char *name, size_t len) {
  static const char fallback[] = "application/octet-stream";
  char ext[16];
  size_t dot = len;
  while (dot > 0 && name[dot - 1] != '.' && name[dot - 1] != '/')
    dot--;
  if (dot == 0 || name[dot - 1] != '.' || len - dot == 0 ||
      len - dot >= sizeof ext)
    return fallback;
  size_t n = len - dot;
  for (size_t i = 0; i < n; i++) {
    char c = name[dot + i];
    if (c == '\0')
      return fallback;
    ext[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  ext[n] = '\0';
  size_t lo = 0, hi = sizeof types / sizeof types[0];
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(ext, types[mid].ext);
    if (c == 0)
      return types[mid].type;
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return fallback;
}
