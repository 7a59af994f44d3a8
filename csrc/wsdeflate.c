/* permessage-deflate (RFC 7692) with zlib: the offer's negotiation, the
 * inflater of a session's received messages, and the deflater of sent ones.
 *
 * Memory is bounded by construction. The server always answers with
 * server_no_context_takeover (7.1.1.1 lets it add that to any offer), so a
 * sent message is compressed on its own with a deflate stream of the
 * calling thread, reset per message: no session holds a deflater. A
 * session's inflater exists only once it has received a compressed message;
 * with client_no_context_takeover (when the client offers it) it lives only
 * while a compressed message arrives. Messages shorter than PISTON__PMD_MIN
 * are sent uncompressed (RFC 7692 6: compression is per message). */
#define _GNU_SOURCE
#include "wsdeflate.h"

#include "piston.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* ---- negotiation (RFC 7692 5, 7.1) ---- */

static const char *skip_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t'))
    p++;
  return p;
}

/* Parses one offer's parameters in [p, e) (after "permessage-deflate");
 * false if the offer must be declined. */
static bool parse_params(const char *p, const char *e, piston__pmd *o) {
  bool seen[4] = {false, false, false, false};
  o->client_bits = 0; /* 0: the client did not offer client_max_window_bits */
  o->server_bits = 15;
  o->client_nct = false;
  while ((p = skip_ws(p, e)) < e) {
    if (*p != ';')
      return false;
    p = skip_ws(p + 1, e);
    const char *n = p;
    while (p < e && *p != '=' && *p != ';' && *p != ' ' && *p != '\t')
      p++;
    size_t nl = (size_t)(p - n);
    p = skip_ws(p, e);
    const char *v = NULL;
    size_t vl = 0;
    if (p < e && *p == '=') {
      p = skip_ws(p + 1, e);
      bool quoted = p < e && *p == '"';
      if (quoted)
        p++;
      v = p;
      while (p < e && *p != ';' && *p != ' ' && *p != '\t' && *p != '"')
        p++;
      vl = (size_t)(p - v);
      if (quoted && (p == e || *p++ != '"'))
        return false;
    }
    int bits = -1;
    if (v) {
      if (vl == 0 || vl > 2)
        return false;
      bits = 0;
      for (size_t i = 0; i < vl; i++) {
        if (!isdigit((unsigned char)v[i]))
          return false;
        bits = bits * 10 + (v[i] - '0');
      }
      if (vl == 2 && v[0] == '0')
        return false;
      if (bits < 8 || bits > 15)
        return false;
    }
    int k;
    if (nl == 26 && !strncasecmp(n, "server_no_context_takeover", nl) && !v)
      k = 0;
    else if (nl == 26 && !strncasecmp(n, "client_no_context_takeover", nl) &&
             !v)
      k = 1;
    else if (nl == 22 && !strncasecmp(n, "server_max_window_bits", nl) && v)
      k = 2;
    else if (nl == 22 && !strncasecmp(n, "client_max_window_bits", nl))
      k = 3;
    else
      return false; /* an unknown parameter, or a value where none goes */
    if (seen[k])
      return false; /* 7.1: the same parameter twice */
    seen[k] = true;
    if (k == 1)
      o->client_nct = true;
    else if (k == 2)
      o->server_bits = bits;
    else if (k == 3)
      o->client_bits = v ? bits : 15;
  }
  /* zlib cannot make an 8-bit window (it makes 9): a client that wants 8
   * from us is declined rather than sent what it cannot read */
  return o->server_bits >= 9;
}

bool piston__pmd_negotiate(const char *const *values, const size_t *lens,
                           size_t n, piston__pmd *out, char *resp, size_t cap) {
  for (size_t f = 0; f < n; f++) {
    const char *p = values[f], *end = p + lens[f];
    while (p < end) {
      /* one offer, up to a comma outside quotes */
      const char *s = skip_ws(p, end), *q = s;
      bool quoted = false;
      while (q < end && (quoted || *q != ',')) {
        if (*q == '"')
          quoted = !quoted;
        q++;
      }
      p = q < end ? q + 1 : q;
      static const char name[] = "permessage-deflate";
      size_t nl = sizeof name - 1;
      if ((size_t)(q - s) < nl || strncasecmp(s, name, nl) != 0 ||
          (s + nl < q && s[nl] != ';' && s[nl] != ' ' && s[nl] != '\t'))
        continue;
      piston__pmd o;
      if (!parse_params(s + nl, q, &o))
        continue;
      o.on = true;
      int w =
          snprintf(resp, cap, "permessage-deflate; server_no_context_takeover");
      if (o.client_nct)
        w +=
            snprintf(resp + w, cap - (size_t)w, "; client_no_context_takeover");
      if (o.client_bits)
        w += snprintf(resp + w, cap - (size_t)w, "; client_max_window_bits=%d",
                      o.client_bits);
      if (o.server_bits < 15)
        w += snprintf(resp + w, cap - (size_t)w, "; server_max_window_bits=%d",
                      o.server_bits);
      if (!o.client_bits)
        o.client_bits = 15; /* the client's window is then its own default */
      *out = o;
      return w > 0 && (size_t)w < cap;
    }
  }
  return false;
}

/* ---- receiving ---- */

struct piston__inflater {
  z_stream z;
  bool ended; /* this message's data held a final block (BFINAL) */
};

piston__inflater *piston__inflater_new(int bits) {
  piston__inflater *f = calloc(1, sizeof *f);
  if (f && inflateInit2(&f->z, -bits) != Z_OK) {
    free(f);
    f = NULL;
  }
  return f;
}

void piston__inflater_free(piston__inflater *f) {
  if (f) {
    inflateEnd(&f->z);
    free(f);
  }
}

int piston__inflate(piston__inflater *f, const uint8_t *in, size_t n,
                    piston__pmd_sink sink, void *ud) {
  uint8_t out[16384];
  if (f->ended)
    return n ? 1007 : 0;
  f->z.next_in = (Bytef *)in;
  f->z.avail_in = (uInt)n;
  for (;;) {
    uInt before = f->z.avail_in;
    f->z.next_out = out;
    f->z.avail_out = sizeof out;
    int rc = inflate(&f->z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END)
      return 1007; /* not a deflate stream: invalid data */
    size_t got = sizeof out - f->z.avail_out;
    if (got) {
      int code = sink(ud, out, got);
      if (code)
        return code;
    }
    if (rc == Z_STREAM_END) {
      /* a final block (BFINAL) ended the stream: the message must end
       * with it; bytes after it are not deflate data */
      f->ended = true;
      return f->z.avail_in == 0 ? 0 : 1007;
    }
    if (f->z.avail_in == 0 && f->z.avail_out != 0)
      return 0; /* all taken, all given */
    if (got == 0 && f->z.avail_in == before)
      return 0; /* no progress: it waits for more input */
  }
}

int piston__inflate_end(piston__inflater *f, bool reset, piston__pmd_sink sink,
                        void *ud) {
  if (f->ended) {
    /* the sender ended its stream (BFINAL) instead of flushing: nothing to
     * add, and the next message starts a new stream */
    f->ended = false;
    inflateReset(&f->z);
    return 0;
  }
  /* 7.2.2: the sender removed the empty block's 00 00 FF FF; put it back */
  static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
  int code = piston__inflate(f, tail, sizeof tail, sink, ud);
  if (reset)
    inflateReset(&f->z);
  return code;
}

/* ---- sending ---- */

static _Thread_local z_stream send_z;
static _Thread_local int send_z_bits;
static _Thread_local uint8_t *send_buf;
static _Thread_local size_t send_cap;

const uint8_t *piston__pmd_deflate(const piston__pmd *o, const void *data,
                                   size_t len, size_t *out_len) {
  if (send_z_bits != o->server_bits) {
    if (send_z_bits)
      deflateEnd(&send_z);
    memset(&send_z, 0, sizeof send_z);
    /* memLevel 8 and the negotiated window: the stream is the thread's,
     * not the session's, so its size does not multiply */
    if (deflateInit2(&send_z, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                     -o->server_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      send_z_bits = 0;
      return NULL;
    }
    send_z_bits = o->server_bits;
  } else {
    deflateReset(&send_z); /* server_no_context_takeover */
  }
  size_t need = deflateBound(&send_z, (uLong)len) + 16;
  if (need > send_cap) {
    uint8_t *b = realloc(send_buf, need);
    if (!b)
      return NULL;
    send_buf = b;
    send_cap = need;
  }
  send_z.next_in = (Bytef *)data;
  send_z.avail_in = (uInt)len;
  send_z.next_out = send_buf;
  send_z.avail_out = (uInt)send_cap;
  if (deflate(&send_z, Z_SYNC_FLUSH) != Z_OK || send_z.avail_in != 0)
    return NULL;
  size_t n = send_cap - send_z.avail_out;
  /* 7.2.1: the sync flush's empty block (00 00 FF FF) is left off */
  if (n < 4 || memcmp(send_buf + n - 4, "\x00\x00\xff\xff", 4) != 0)
    return NULL;
  *out_len = n - 4;
  return send_buf;
}
