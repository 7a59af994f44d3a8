/* The access log: its format, compiled once when the server is configured
 * (common, combined, json, or gunicorn's --access-logformat atoms), and
 * the file it goes to. Lines are formatted when a response ends and left
 * in the loop's log buffer (logbuf.h), written once per pass. Owned by
 * accesslog.c. */
#ifndef PISTON_ACCESSLOG_H
#define PISTON_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint8_t kind;
  uint32_t off, len; /* a literal, or a header name, in text */
} piston__alog_atom;

typedef struct piston__alog {
  int fd;    /* where lines go: 1, 2, or a file of ours */
  bool own;  /* fd is ours (a file: reopened by piston_server_reopen_logs) */
  bool json; /* one JSON object per line */
  bool resp_headers; /* some atom reads a response header: capture them */
  char *path;        /* the file, for reopening */
  piston__alog_atom *atoms;
  size_t natoms;
  char *text;
} piston__alog;

/* format: "common", "combined", "json", or a gunicorn-style string; NULL
 * is "combined". path: NULL or "" is stderr, "-" stdout, else a file
 * opened for appending (created 0644). Returns 0 or PISTON_EINVAL (an
 * atom it does not know: err names it) or a PISTON_E* from open. */
int piston__alog_new(const char *path, const char *format, piston__alog **out,
                     char *err, size_t errcap);
void piston__alog_free(piston__alog *a);
/* Opens the file again and puts it in place of the old one (dup2: every
 * loop's buffer keeps its fd number). 0 or a PISTON_E* code. */
int piston__alog_reopen(piston__alog *a);

#endif
