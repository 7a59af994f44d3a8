#define _GNU_SOURCE
#include "util.h"

#include <stdatomic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reason phrases of RFC 9110 plus the few others clients meet in practice. */
const char *piston__reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 102: return "Processing";
  case 103: return "Early Hints";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 203: return "Non-Authoritative Information";
  case 204: return "No Content";
  case 205: return "Reset Content";
  case 206: return "Partial Content";
  case 207: return "Multi-Status";
  case 300: return "Multiple Choices";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 402: return "Payment Required";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 407: return "Proxy Authentication Required";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 418: return "I'm a teapot";
  case 421: return "Misdirected Request";
  case 422: return "Unprocessable Content";
  case 425: return "Too Early";
  case 426: return "Upgrade Required";
  case 428: return "Precondition Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 451: return "Unavailable For Legal Reasons";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  case 507: return "Insufficient Storage";
  case 511: return "Network Authentication Required";
  }
  return NULL;
}

const char *piston_status_reason(int status) {
  return piston__reason(status);
}

/* Status lines are built once per status and reused: the table is filled
 * lazily and never freed (at most 900 short strings). */
static _Atomic(char *) lines[1000];
static atomic_size_t line_lens[1000];

const char *piston__status_line(int status, size_t *len) {
  if (status < 100 || status > 999)
    status = 500;
  char *s = atomic_load_explicit(&lines[status], memory_order_acquire);
  if (!s) {
    const char *reason = piston__reason(status);
    char tmp[80];
    int n = snprintf(tmp, sizeof tmp, "HTTP/1.1 %d %s\r\n", status,
                     reason ? reason : "Unknown");
    char *copy = malloc((size_t)n + 1);
    if (!copy) {
      *len = 0;
      return "";
    }
    memcpy(copy, tmp, (size_t)n + 1);
    atomic_store(&line_lens[status], (size_t)n);
    char *expected = NULL;
    if (!atomic_compare_exchange_strong(&lines[status], &expected, copy)) {
      free(copy); /* another thread won the race; use its copy */
      s = expected;
    } else {
      s = copy;
    }
  }
  *len = atomic_load(&line_lens[status]);
  return s;
}
