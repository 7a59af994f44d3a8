'use strict';
// A node:http-compatible server on the Piston engine. req and res are real
// http.IncomingMessage / http.ServerResponse instances whose hot paths
// (body stream, header storage, write/end) talk to the engine instead of a
// net.Socket. Framing, keep-alive, Date, chunking and limits are the
// engine's; this file only translates.

const http = require('node:http');
const net = require('node:net');
const util = require('node:util');
const { EventEmitter } = require('node:events');
const { validateHeaderName, validateHeaderValue } = http;
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const B = require('./binding');
const TLS = require('./tls');
const U = require('./upgrade');

const { native } = B;
const EAGAIN = native.EAGAIN;
const EV_BODY = native.EV_BODY;
const EV_DRAIN = native.EV_DRAIN;
const EV_CLOSED = native.EV_CLOSED;

// The symbol node keeps setHeader() storage under ({lower: [name, value]}),
// so that _storeHeader can tell it from a writeHead(status, obj) object.
const kOutHeaders = (() => {
  const m = new http.OutgoingMessage();
  m.setHeader('x', '1');
  return Object.getOwnPropertySymbols(m).find((s) => {
    const v = m[s];
    return v && typeof v === 'object' && v.x && Array.isArray(v.x);
  });
})();

// Where OutgoingMessage keeps what res.errored returns (set by destroy(err)).
const kErrored = Object.getOwnPropertySymbols(new http.OutgoingMessage()).find((s) => s.description === 'errored');

// An error made from an engine's report. Its stack would hold only this
// file's dispatch frames, and node's stream destroy() formats it at once
// (it reads err.stack), which for a burst of reports (a timeout that hit
// hundreds of stalled bodies in one pass) cost milliseconds of the loop:
// so it has none, as an error from a native callback.
function engineError(msg) {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const e = new Error(msg);
  Error.stackTraceLimit = limit;
  return e;
}

function connReset(msg) {
  const e = engineError(msg);
  e.code = 'ECONNRESET';
  return e;
}

// ---- the socket stand-in ---------------------------------------------------
// One per connection: made at the connection's first request (the engine
// reports connections only through their requests), shared by every request
// of a keep-alive connection, dropped when the engine reports the connection
// closed. It carries the peer address and the few methods frameworks call on
// req.socket; it is not a stream (the engine owns the bytes).

const NO_INFO = [1, 0, '', 0, 0];

// What both socket stand-ins answer: TCP tuning is the engine's, and the
// engine's fd, not these objects, keeps the event loop alive.
class SocketBase extends EventEmitter {
  // asked for when read: net.isIPv6 is a regular expression
  get remoteFamily() {
    const a = this.remoteAddress;
    return a === undefined ? undefined : net.isIPv6(a) ? 'IPv6' : 'IPv4';
  }
  // OutgoingMessage adds its own count to this (cork() is a no-op here)
  get writableCorked() {
    return 0;
  }
  setNoDelay() {
    return this;
  }
  // as node's server sockets: the bytes are HTTP's
  setEncoding() {
    const err = new Error('Changing the socket encoding is not allowed per RFC7230 Section 3.');
    err.code = 'ERR_HTTP_SOCKET_ENCODING';
    throw err;
  }
  setKeepAlive() {
    return this;
  }
  ref() {
    return this;
  }
  unref() {
    return this;
  }
}

class PistonSocket extends SocketBase {
  constructor(server, connId, ex) {
    super();
    this.server = server;
    this._connId = connId;
    // the peer is the connection's: read it once, while a handle is live
    const info = native.info(ex.slot);
    this._info = typeof info === 'number' ? NO_INFO : info;
    // HTTP/2 (ALPN h2, or h2c's preface) is the connection's from its start
    this._h2 = native.httpVersion(ex.slot) === 20;
    this.connecting = false;
    this.pending = false;
    // a trusted proxy's X-Forwarded-Proto: https makes the connection count
    // as encrypted, as Express's req.secure reads it without 'trust proxy'
    this.encrypted = this._info[7] === 1;
    this._open(ex);
  }
  // open, with ex in flight (a stream's socket starts so too)
  _open(ex) {
    this._ex = ex; // the exchange in flight (the latest one)
    this._closeEmitted = false;
    this._destroyError = undefined;
    this._upgraded = undefined; // the stream of an upgrade on this connection
    this.destroyed = false;
    this.readable = true;
    this.writable = true;
    this.writableLength = 0;
    this._bytes = null; // [read, written], once asked for: see _bytesNow
    this.timeout = 0;
    this._timer = null; // setTimeout()'s
    if (this.server.timeout > 0) this.setTimeout(this.server.timeout);
  }
  // The connection's counts, as net.Socket's: bytes read, and bytes written
  // (queued for the client included). Asked through the request in flight;
  // between requests (or once closed), the counts of the last one's end.
  _bytesNow(i) {
    const ex = this._ex;
    if (this._bytes === null) this._bytes = [0, 0];
    if (ex !== null && ex.slot >= 0) {
      const n = native.connBytes(ex.slot, i === 1);
      if (n >= 0) this._bytes[i] = n;
    }
    return this._bytes[i];
  }
  get bytesRead() {
    return this._bytesNow(0);
  }
  get bytesWritten() {
    return this._bytesNow(1);
  }
  // Behind a trusted proxy each request names its own client (a proxy's
  // pooled connection carries many): the peer is read again per request.
  _forwardedRefresh(slot) {
    const info = native.info(slot);
    if (typeof info === 'number') return;
    this._info = info;
    if (!this.server._tls) this.encrypted = info[7] === 1;
  }
  _i() {
    return this._info;
  }
  // what IncomingMessage/ServerResponse size their buffers by: the server's
  // highWaterMark option, else the streams' default
  get readableHighWaterMark() {
    return this.server._highWaterMark;
  }
  get writableHighWaterMark() {
    return this.server._highWaterMark;
  }
  get remoteAddress() {
    const a = this._i()[2];
    return a === '' ? undefined : a;
  }
  get remotePort() {
    const p = this._i()[3];
    return p || undefined;
  }
  get localPort() {
    return this._i()[4] || undefined;
  }
  get localAddress() {
    return this.server._host;
  }
  address() {
    return { address: this.localAddress, family: net.isIPv6(this.localAddress || '') ? 'IPv6' : 'IPv4', port: this.localPort };
  }
  // With a request in flight its exchange is aborted, which closes the
  // connection. Without one the engine offers no way to close this one
  // connection: it closes at keepAliveTimeout, closeIdleConnections() or
  // close(), and 'close' is emitted then.
  // destroy(err), as net.Socket's: 'error' (err), then 'close' (true), both
  // after the call (Koa's app.on('error') hears of it through on-finished's
  // 'error' listener on the socket).
  destroy(err) {
    // the connection was upgraded: its stream is what destroy() ends
    if (this._upgraded !== undefined) {
      this._upgraded.destroy(err);
      return this;
    }
    if (this.destroyed) return this;
    this.destroyed = true;
    this.readable = false;
    this.writable = false;
    if (err) this._destroyError = err;
    const ex = this._ex;
    if (ex !== null && !ex.closed && ex.slot >= 0) ex.destroy(err);
    else if (err) {
      // idle: the connection closes later (see above); the error is now
      this._destroyError = undefined;
      process.nextTick(emitSocketError, this, err);
    }
    return this;
  }
  // The connection is gone (the engine closed it, or its request died).
  _closed() {
    this._ex = null;
    if (this._timer) clearTimeout(this._timer);
    this._timer = null;
    this.destroyed = true;
    this.readable = false;
    this.writable = false;
    if (this._closeEmitted) return;
    this._closeEmitted = true;
    const err = this._destroyError;
    if (err === undefined) {
      this.emit('close', false);
      return;
    }
    this._destroyError = undefined;
    process.nextTick(() => {
      emitSocketError(this, err);
      this.emit('close', true);
    });
  }
  destroySoon() {
    this.destroy();
  }
  end() {
    this.destroy();
    return this;
  }
  // net.Socket's idle timeout, kept in JS (the engine's own timeouts are
  // its limits): 'timeout' after ms without a request, body bytes or a
  // write on the connection; then, as node:http's socketOnTimeout, the
  // request (if incomplete), the response and the server hear of it, and
  // the socket is destroyed when none of them listens
  setTimeout(ms, cb) {
    this.timeout = ms;
    if (cb) this.once('timeout', cb);
    if (this._timer) clearTimeout(this._timer);
    this._timer = ms > 0 && !this.destroyed ? setTimeout(socketTimedOut, ms, this).unref() : null;
    return this;
  }
  _touch() {
    if (this._timer) this._timer.refresh();
  }
  cork() {}
  uncork() {}
  pause() {
    return this;
  }
  resume() {
    return this;
  }
  write() {
    return true;
  }
}

function socketTimedOut(socket) {
  socket._timer = null;
  const ex = socket._ex;
  const req = ex ? ex.req : null;
  const res = ex && !ex.resDone ? ex.res : null;
  if (req !== null && !req.complete && ex.slot >= 0) {
    // node's req.complete is the parser's: a request without a body is
    // complete from its head on, read or not
    const info = native.info(ex.slot);
    if (typeof info !== 'number' && info[1] === 0) req.complete = true;
  }
  const reqHeard = req !== null && !req.complete && req.emit('timeout', socket);
  const resHeard = res !== null && res.emit('timeout', socket);
  const heard = socket.emit('timeout');
  const serverHeard = socket.server.emit('timeout', socket);
  if (!reqHeard && !resHeard && !serverHeard && !heard) socket.destroy();
}

// A TLS server's connections: tls.TLSSocket's properties and methods too
const PistonTLSSocket = TLS.socketClass(PistonSocket);

// HTTP/2: each stream gets a req.socket of its own, as node:http2's
// compatibility API gives each a proxy of its stream: destroy() (node's
// IncomingMessage calls it when a request is aborted), 'close' and
// destroyed are the stream's, so one stream's reset or abort never ends
// the others'. The connection's facts (peer, TLS) are read through its
// socket, the prototype.
function streamSocket(conn, ex) {
  const s = Object.create(conn);
  EventEmitter.call(s); // listeners of its own
  s._open(ex);
  return s;
}

// Without a listener nothing happens: node's server listens on its sockets
// ('clientError' or a quiet destroy), so a socket error never crashes it.
function emitSocketError(socket, err) {
  if (socket.listenerCount('error') > 0) socket.emit('error', err);
}

// The socket of a 'clientError' the engine answered itself (a rejection
// after the handler had the request, or a connection it could not hand
// over): it closes the connection, so nothing can be written; destroy()
// and end() are harmless no-ops.
class ClientErrorSocket extends SocketBase {
  constructor(server, addr, port) {
    super();
    this.server = server;
    this.remoteAddress = addr === '' ? undefined : addr;
    this.remotePort = port || undefined;
    this.localAddress = server._host;
    this.localPort = server._address && typeof server._address === 'object' ? server._address.port : undefined;
    this.encrypted = false;
    this.destroyed = true;
    this.readable = false;
    this.writable = false;
    this.bytesWritten = 0;
  }
  destroy() {
    return this;
  }
  destroySoon() {}
  end() {
    return this;
  }
  write() {
    return false;
  }
  setTimeout() {
    return this;
  }
}

// err.code for the engine's own rejections: node:http's code where node has
// one for the same condition, else HPE_INVALID_<status>.
const CLIENT_ERROR_CODES = {
  408: 'ERR_HTTP_REQUEST_TIMEOUT', // slow head or body (node: headersTimeout/requestTimeout)
  414: 'HPE_HEADER_OVERFLOW', // node counts the URL in maxHeaderSize (431)
  431: 'HPE_HEADER_OVERFLOW',
  505: 'HPE_INVALID_VERSION',
};

// parseCode/parseReason: llhttp's, when the engine rejected a parse error
// (node's own err.code and message then)
function clientError(status, parseCode, parseReason) {
  const code = parseCode || CLIENT_ERROR_CODES[status] || `HPE_INVALID_${status}`;
  const what = `${status} ${http.STATUS_CODES[status] || 'Unknown'}`;
  const err = engineError(parseReason ? `Parse Error: ${parseReason}` : status === 408 ? `Request timeout (the engine answered ${what})` : `Parse Error: the engine answered ${what}`);
  err.code = code;
  err.status = status;
  return err;
}

// The reason phrase to send: undefined for the default one (the engine's),
// else res.statusMessage (set by writeHead(status, reason) or directly).
function reasonOf(res) {
  const m = res.statusMessage;
  if (m === undefined || m === null) return undefined;
  const std = http.STATUS_CODES[res._pistonStatus ?? res.statusCode];
  if (m === std || (std === undefined && m === 'unknown')) return undefined;
  return String(m);
}

function hasField(flat, lower) {
  for (let i = 0; i < flat.length; i += 2) if (flat[i].length === lower.length && flat[i].toLowerCase() === lower) return true;
  return false;
}

// A 1xx before the response (writeContinue, writeProcessing,
// writeEarlyHints): fields as [name, value, ...]; cb after, as node's.
function inform(res, status, fields, cb) {
  const ex = res._ex;
  if (ex.slot >= 0 && !res._headerSent) {
    const rc = native.respInform(ex.slot, status, fields);
    if (rc < 0 && rc !== native.ECLOSED) {
      const err = new Error(`piston: ${status} rejected by the engine (${native.errName(rc)})`);
      err.code = native.errName(rc);
      throw err;
    }
  }
  if (cb) process.nextTick(cb);
}

// node's writeEarlyHints writes its head with _writeRaw: run it on a
// stand-in that keeps the head, so its validation and errors are node's,
// and send the fields it made through the engine
const nodeEarlyHints = http.ServerResponse.prototype.writeEarlyHints;
function earlyHintFields(hints) {
  let head = null;
  nodeEarlyHints.call(
    {
      _writeRaw(h) {
        head = h;
      },
    },
    hints,
  );
  if (head === null) return null;
  const fields = [];
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(': ');
    if (i > 0) fields.push(line.slice(0, i), line.slice(i + 2));
  }
  return fields;
}

// ---- request -----------------------------------------------------------------

class PistonIncomingMessage extends http.IncomingMessage {
  _read() {
    const ex = this._ex;
    if (!this._consuming) {
      this._readableState.readingMore = false;
      this._consuming = true;
    }
    ex.pull();
  }
}

// ---- response -----------------------------------------------------------------

function streamError(code, message) {
  const err = new Error(message);
  err.code = code;
  return err;
}

// write()/end(chunk) after end(), as node's: the callback gets the error,
// then 'error' is emitted unless the response is destroyed (closed) by then.
function writeAfterEnd(res, cb) {
  const err = streamError('ERR_STREAM_WRITE_AFTER_END', 'write after end');
  if (res.destroyed || res._ex.closed) {
    if (cb) process.nextTick(cb, err);
    return;
  }
  process.nextTick(() => {
    if (cb) cb(err);
    if (!res.destroyed) res.emit('error', err);
  });
}

class PistonServerResponse extends http.ServerResponse {
  // writeHead() ends here: remember what to send, send nothing yet (the
  // first write or end does, so end(body) is one engine call).
  _storeHeader(firstLine, headers) {
    const flat = [];
    let te = false;
    let cl = false;
    let trailer = false;
    if (headers && kOutHeaders && headers === this[kOutHeaders]) {
      // setHeader() validated these already
      for (const k in headers) {
        const [name, value] = headers[k];
        B.flattenHeaders([[name, value]], flat);
        if (k === 'transfer-encoding') te = true;
        else if (k === 'content-length') cl = true;
        else if (k === 'trailer') trailer = true;
      }
    } else if (headers) {
      // writeHead(status, headers) alone: node's _storeHeader validates
      // them, with the same errors as setHeader (ERR_INVALID_CHAR, ...)
      B.flattenHeaders(headers, flat);
      for (let i = 0; i < flat.length; i += 2) {
        // node's rules (RFC 9110 token; field-vchar, SP, HTAB, obs-text);
        // node's own validators throw its errors for what fails them
        if (!TOKEN.test(flat[i])) validateHeaderName(flat[i]);
        if (BAD_VALUE.test(flat[i + 1])) validateHeaderValue(flat[i], flat[i + 1]);
        const n = flat[i].length;
        if (n === 17 && flat[i].toLowerCase() === 'transfer-encoding') te = true;
        else if (n === 14 && flat[i].toLowerCase() === 'content-length') cl = true;
        else if (n === 7 && flat[i].toLowerCase() === 'trailer') trailer = true;
      }
    }
    const maxReq = this._pistonMaxRequests;
    if (maxReq !== undefined && !hasField(flat, 'connection')) {
      if (maxReq === 0) flat.push('Connection', 'close');
      else if (this.socket.server.keepAliveTimeout > 0) flat.push('Keep-Alive', `timeout=${Math.floor(this.socket.server.keepAliveTimeout / 1000)}, max=${maxReq}`);
    }
    // sendDate = false (or removeHeader('Date')): an empty Date is the
    // engine's "no Date at all"
    if (!this.sendDate && !hasField(flat, 'date')) flat.push('Date', '');
    // node's rule: a Trailer header needs a chunked body
    if (trailer && (cl || this._hasBody === false || this.req?.httpVersionMinor === 0)) {
      const err = new Error('Trailers are invalid with this transfer encoding');
      err.code = 'ERR_HTTP_TRAILER_INVALID';
      throw err;
    }
    // A Transfer-Encoding set by the app (Koa's ctx.set) asks for a chunked
    // body: end(body) must not turn it into a Content-Length response. The
    // engine writes the Transfer-Encoding header itself.
    this._pistonTE = te;
    // node closes a 204 or 304 that the app called chunked, with its own
    // Connection after Date (the host's fields go before the engine's Date)
    if (te && (this.statusCode === 204 || this.statusCode === 304) && !hasField(flat, 'connection')) {
      if (this.sendDate && !hasField(flat, 'date')) flat.push('Date', new Date().toUTCString());
      flat.push('Connection', 'close');
    }
    this._pistonCL = cl;
    this._pistonHeaders = flat;
    // the status of the stored head: a later res.statusCode = n changes
    // nothing, as in node (whose head is already a string)
    this._pistonStatus = this.statusCode;
    this._header = firstLine; // headersSent
    this._headerSent = false;
  }

  _pistonStart() {
    if (!this._header) this._implicitHeader();
    if (this._headerSent) return 0;
    this._headerSent = true;
    const ex = this._ex;
    if (ex.slot < 0) return native.ECLOSED;
    const rc = native.respStart(ex.slot, this._pistonStatus, this._pistonHeaders, reasonOf(this));
    if (rc < 0) this._pistonFail(rc);
    return rc;
  }

  _pistonFail(rc) {
    const name = native.errName(rc);
    if (rc === native.ECLOSED) return;
    const st = this._pistonStatus ?? this.statusCode;
    // node:http sends a 1xx without an upgrade as a bodyless final response;
    // the engine sends no 1xx of the host's (its own 100 Continue only)
    const why = st >= 100 && st < 200 ? ': the engine cannot send a 1xx status as a response' : '';
    const err = new Error(`piston: response rejected by the engine (${name}), status ${st}${why}`);
    err.code = name;
    this._ex.abort();
    throw err;
  }

  write(chunk, encoding, cb) {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (chunk === null) {
      const err = new TypeError('May not write null values to stream');
      err.code = 'ERR_STREAM_NULL_VALUES';
      throw err;
    }
    if (this.finished) {
      writeAfterEnd(this, cb);
      return false;
    }
    if (this.destroyed) {
      if (cb) process.nextTick(cb, streamError('ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed'));
      return false;
    }
    const ex = this._ex;
    if (this._pistonStart() < 0 || ex.slot < 0) {
      if (cb) process.nextTick(cb);
      return true;
    }
    if (typeof chunk === 'string' && encoding && encoding !== 'utf8' && encoding !== 'utf-8') {
      chunk = Buffer.from(chunk, encoding);
    }
    const rc = native.respWrite(ex.slot, chunk);
    if (rc < 0) this._pistonFail(rc);
    if (ex.socket._timer) ex.socket._timer.refresh();
    if (cb) process.nextTick(cb);
    if (rc === 1) {
      ex.needDrain = true;
      return false;
    }
    return true;
  }

  end(chunk, encoding, cb) {
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.finished) {
      // node's OutgoingMessage.end on an ended message
      if (chunk !== undefined && chunk !== null && chunk !== '' && chunk.length !== 0) writeAfterEnd(this, cb);
      else if (cb) {
        if (!this.writableFinished) this.once('finish', cb);
        else cb(streamError('ERR_STREAM_ALREADY_FINISHED', 'Cannot call end after a stream was finished'));
      }
      return this;
    }
    const ex = this._ex;
    if (chunk !== undefined && chunk !== null && typeof chunk === 'string' && encoding && encoding !== 'utf8' && encoding !== 'utf-8') {
      chunk = Buffer.from(chunk, encoding);
    }
    if (cb) this.once('finish', cb);
    this.finished = true;
    if (this.destroyed || ex.slot < 0) return this;
    let rc;
    const implicit = !this._header; // node's end() then sends Content-Length: 0
    if (implicit) this._implicitHeader();
    if (this._hasBody === false && this._pistonCL) {
      // HEAD (or 204/304): node sends the head with the app's Content-Length,
      // whatever the body given to end() (without one, the body's length is
      // announced, as before)
      chunk = undefined;
    }
    const empty = chunk === undefined || chunk === null || chunk.length === 0;
    if (!this._headerSent && (!empty || (implicit && this._hasBody !== false)) && !this._pistonTrailers && !this._pistonTE) {
      // the whole response in one engine call, with a Content-Length (0
      // for an end() without a body, as node's)
      this._headerSent = true;
      rc = native.respSend(ex.slot, this._pistonStatus, this._pistonHeaders, empty ? undefined : chunk, reasonOf(this));
    } else {
      rc = this._pistonStart();
      if (rc >= 0) rc = native.respEnd(ex.slot, chunk === null ? undefined : chunk, this._pistonTrailers);
    }
    if (rc < 0) this._pistonFail(rc);
    ex.responseEnded();
    return this;
  }

  flushHeaders() {
    this._pistonStart();
  }

  // (without a call, the engine sends 100 Continue when the body is first
  // read)
  writeContinue(cb) {
    inform(this, 100, [], cb);
    this._sent100 = true;
  }

  writeProcessing(cb) {
    inform(this, 102, [], cb);
  }

  writeEarlyHints(hints, cb) {
    const fields = earlyHintFields(hints);
    if (fields !== null) inform(this, 103, fields, cb);
  }

  // Sent by the engine after a chunked body (ignored with Content-Length).
  addTrailers(headers) {
    this._pistonTrailers = B.flattenHeaders(headers, this._pistonTrailers || []);
  }

  setTimeout(ms, cb) {
    if (cb) this.on('timeout', cb);
    this.socket.setTimeout(ms);
    return this;
  }

  destroy(err) {
    if (this.destroyed) return this;
    if (kErrored) this[kErrored] = err; // undefined for destroy(), as node's
    this._ex.destroy(err);
    return this;
  }

  get writableNeedDrain() {
    return !this.destroyed && !this.finished && this._ex.needDrain;
  }
}

const P_REQ = PistonIncomingMessage.prototype;
const P_RES = PistonServerResponse.prototype;

// The Expect field's value, if any (HTTP/1.1 only, as node looks at it)
function expectOf(raw) {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 6 && raw[i].toLowerCase() === 'expect') return raw[i + 1];
  return undefined;
}
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

// ---- one exchange: a request handle and its req/res pair ------------------------

class Exchange {
  constructor(server, slot, method, url, minor, connId) {
    this.server = server;
    this.slot = slot;
    this.needDrain = false;
    this.waitingBody = false;
    this.bodyDone = false; // no more engine reads (end, error, or dumped)
    this.unreadEnd = false; // dropped unread: the stream's end is still due
    this.resDone = false;
    this.closed = false;
    let socket = server._sockets.get(connId);
    this.newSocket = socket === undefined;
    if (socket === undefined) {
      socket = server._tls ? new PistonTLSSocket(server, connId, this) : new PistonSocket(server, connId, this);
      server._sockets.set(connId, socket);
      if (socket._h2) socket._ex = null; // its streams have their own
    } else if (!socket._h2) {
      socket._ex = this;
      if (socket._timer) socket._timer.refresh();
      if (server._options.trustedProxies) socket._forwardedRefresh(slot);
      if (socket.destroyed && !socket._closeEmitted) {
        // destroy() found it idle and could not close it: it lives on
        socket.destroyed = false;
        socket.readable = true;
        socket.writable = true;
      }
    }
    this.connSocket = socket;
    if (socket._h2) socket = streamSocket(socket, this);
    this.socket = socket;
    const req = new server._IncomingMessage(socket);
    req._ex = this;
    req._read = P_REQ._read; // own: Express swaps the prototype
    req.method = method;
    req.url = url;
    let raw = native.headers(slot);
    const maxFields = server.maxHeadersCount;
    if (maxFields > 0 && raw.length > 2 * maxFields) raw = raw.slice(0, 2 * maxFields);
    req._addHeaderLines(raw, raw.length); // rawHeaders; headers parse lazily
    this.expect = minor === 1 ? expectOf(raw) : undefined;
    if (socket._h2) {
      req.httpVersionMajor = 2; // as node:http2's compatibility API
      req.httpVersionMinor = 0;
      req.httpVersion = '2.0';
    } else {
      req.httpVersionMajor = 1;
      req.httpVersionMinor = minor;
      req.httpVersion = minor ? '1.1' : '1.0';
    }
    req.upgrade = false; // node's: an upgrade nobody listens for is plain HTTP
    this.req = req;
    if (server._joinDuplicateHeaders) req.joinDuplicateHeaders = true;
    const res = server._highWaterMark === undefined ? new server._ServerResponse(req) : new server._ServerResponse(req, { highWaterMark: server._highWaterMark });
    res._ex = this;
    res.socket = socket;
    // Own properties, because Express re-parents res onto its own prototype
    // (which inherits http.ServerResponse.prototype, not ours).
    res._storeHeader = P_RES._storeHeader;
    res._pistonStart = P_RES._pistonStart;
    res._pistonFail = P_RES._pistonFail;
    res.write = P_RES.write;
    res.end = P_RES.end;
    res.flushHeaders = P_RES.flushHeaders;
    res.writeContinue = P_RES.writeContinue;
    res.writeProcessing = P_RES.writeProcessing;
    res.writeEarlyHints = P_RES.writeEarlyHints;
    res.addTrailers = P_RES.addTrailers;
    res.setTimeout = P_RES.setTimeout;
    res.destroy = P_RES.destroy;
    if (minor === 0) res.shouldKeepAlive = false;
    this.res = res;
    B.bindSlot(slot, this);
  }

  // Moves buffered body bytes into the request stream.
  pull() {
    const req = this.req;
    if (this.bodyDone) {
      // Dropped unread (maybeRelease), then read (req._dump() after the
      // response, or the app): the stream ends, as node's dump ends it, for
      // whoever listens for it. Ending streams nobody listens to measured
      // ~1 us per request (createServer hello), so those are left as they are.
      if (this.unreadEnd && (req.listenerCount('end') > 0 || req.listenerCount('close') > 0)) {
        this.unreadEnd = false;
        req.complete = true;
        req.push(null);
      }
      return;
    }
    if (this.resDone || this.slot < 0) {
      // the response has ended: the engine discards the rest of the body
      this.bodyDone = true;
      req.complete = true;
      req.push(null);
      this.maybeRelease();
      return;
    }
    for (;;) {
      const r = native.read(this.slot);
      if (typeof r !== 'number') {
        if (this.socket._timer) this.socket._timer.refresh();
        if (!req.push(r)) return;
        continue;
      }
      if (r === 0) {
        this.bodyDone = true;
        req.complete = true;
        req.push(null);
        this.maybeRelease();
      } else if (r === EAGAIN) {
        this.waitingBody = true;
      } else {
        this.bodyDone = true;
        const err = r === native.ETOOBIG ? Object.assign(new Error('request body too large'), { code: 'ERR_PISTON_TOOBIG', status: 413 }) : connReset('aborted');
        if (r === native.ETOOBIG) this.tooBig = true;
        req.destroy(err);
        this.maybeRelease();
      }
      return;
    }
  }

  _onEvent(ev) {
    if (ev & EV_BODY && this.waitingBody) {
      this.waitingBody = false;
      this.pull();
    }
    if (ev & EV_DRAIN && this.needDrain) {
      this.needDrain = false;
      if (!this.res.finished) this.res.emit('drain');
    }
    if (ev & EV_CLOSED) this.onClosed(connReset('aborted'));
  }

  // The client went away (or the host destroyed the exchange).
  // The request died. connGone: its connection is closing too (the client
  // went away, or an abort made the engine close it), so the socket closes.
  onClosed(err, connGone = true) {
    if (this.closed) return;
    this.closed = true;
    const { req, res, socket } = this;
    this.server._active.delete(this);
    if (socket._ex === this) socket._ex = null;
    if (connGone) {
      socket.destroyed = true;
      socket.writable = false;
      socket.readable = false;
    }
    this.bodyDone = true;
    this.release();
    if (!res.finished || !this.resDone) {
      req.destroy(err);
      res.destroyed = true;
      res._closed = true;
      res.emit('close');
    } else if (!req.readableEnded) {
      req.destroy();
    }
    if (connGone) socket._closed();
  }

  destroy(err) {
    if (this.closed) return;
    // the connection closes with what was written, as node's destroyed
    // socket: no status of the engine's (its 500 is for a handler's throw)
    const aborting = this.slot >= 0 && !this.resDone;
    if (aborting) native.respAbort(this.slot, true);
    this.onClosed(err || connReset('aborted'), aborting);
  }

  abort() {
    if (this.slot >= 0) native.respAbort(this.slot);
    this.resDone = true;
    this.res.finished = true;
    this.res._headerSent = true;
    this.maybeRelease();
  }

  responseEnded() {
    this.resDone = true;
    const { req, res, socket } = this;
    // a timeout set through req/res was theirs; the idle connection has
    // the server's (node replaces it with the keep-alive wait)
    if (socket._timer || this.server.timeout > 0) socket.setTimeout(this.server.timeout);
    this.server._active.delete(this);
    process.nextTick(() => {
      if (this.closed && res.destroyed) return;
      res.emit('finish');
      process.nextTick(() => {
        if (!res._closed) {
          res.destroyed = true;
          res._closed = true;
          res.emit('close');
        }
      });
    });
    if (!req._consuming && !req._readableState.resumeScheduled) {
      req._dump();
    }
    if (this.waitingBody) {
      // the engine drops the rest of the body: end the stream here
      this.waitingBody = false;
      this.pull();
    }
    this.maybeRelease();
  }

  maybeRelease() {
    if (this.resDone && this.bodyDone) this.release();
    else if (this.resDone && !this.waitingBody && !this.req._consuming) {
      // nobody reads the body: the engine drops it
      this.bodyDone = true;
      this.unreadEnd = true;
      this.release();
    }
  }

  release() {
    if (this.slot < 0) return;
    const s = this.slot;
    // counts asked for before: keep them as they are at the request's end
    if (this.socket._bytes !== null) {
      this.socket._bytesNow(0);
      this.socket._bytesNow(1);
    }
    this.slot = -1;
    if (this.socket._ex === this) this.socket._ex = null;
    B.releaseSlot(s);
  }
}

// ---- the server ----------------------------------------------------------------

const DEFAULT_CLOSE_MS = 30000;
// what binding '::' fails with where the machine has no IPv6
const NO_IPV6 = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'ERESOLVE', 'EPROTONOSUPPORT']);

// "Received ..." of node's argument errors (its determineSpecificType).
function received(v) {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'function') return `function ${v.name}`;
  if (typeof v === 'object') return v.constructor && v.constructor.name ? `an instance of ${v.constructor.name}` : util.inspect(v, { depth: -1 });
  let shown;
  if (typeof v === 'string') shown = util.inspect(v.length > 28 ? `${v.slice(0, 25)}...` : v);
  else {
    shown = util.inspect(v, { colors: false });
    if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  }
  return `type ${typeof v} (${shown})`;
}

// A timeout option as node's validateInteger(v, name, 0) takes it.
function msOption(v, name) {
  if (typeof v !== 'number') {
    const err = new TypeError(`The "${name}" argument must be of type number. Received ${received(v)}`);
    err.code = 'ERR_INVALID_ARG_TYPE';
    throw err;
  }
  if (!Number.isInteger(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) {
    const err = new RangeError(`The value of "${name}" is out of range. It must be ${Number.isInteger(v) ? '>= 0 && <= 9007199254740991' : 'an integer'}. Received ${v}`);
    err.code = 'ERR_OUT_OF_RANGE';
    throw err;
  }
  return v;
}

// A port as net.Server.listen() takes it: a number or a numeric string
// (process.env.PORT), 0..65535, else node's ERR_SOCKET_BAD_PORT.
function toPort(v, name) {
  if ((typeof v === 'number' || (typeof v === 'string' && v.trim() !== '')) && +v === +v >>> 0 && +v <= 0xffff) return +v;
  const err = new RangeError(`${name} should be >= 0 and < 65536. Received ${received(v)}.`);
  err.code = 'ERR_SOCKET_BAD_PORT';
  throw err;
}

// What server._handle is while the server listens (null before listen()
// and from close() on, as net.Server's): code such as supertest (before
// 7.2) and net.Server's own `listening` getter only test that it is there.
class PistonServerHandle {
  constructor(server) {
    this._server = server;
    this.fd = -1; // the engine's sockets are not a libuv stream
  }
  ref() {
    this._server.ref();
  }
  unref() {
    this._server.unref();
  }
  hasRef() {
    return this._server._refed;
  }
  getsockname(out) {
    const a = this._server._address;
    if (a && typeof a === 'object') Object.assign(out, a);
    return 0;
  }
}

const REFUSED_OPTIONS = [
  ['insecureHTTPParser', true, "the engine has one parser (llhttp, strict) for every request; fix the client that sends what it refuses, or keep node:http's server for it"],
  ['requireHostHeader', false, 'an HTTP/1.1 request without Host is always a 400 (RFC 9112 3.2)'],
];

// A function constructor, as node's: Server(handler) without `new` and
// Server.call(this) subclassing work, and instances are http.Server and
// net.Server instances (the prototype chain; none of their own state is
// used: listen, close, address and the rest are the methods below).
function Server(options, handler) {
  if (!(this instanceof Server)) return new Server(options, handler);
  EventEmitter.call(this);
  if (typeof options === 'function') {
    handler = options;
    options = {};
  }
  if (options === undefined || options === null) options = {};
  else if (typeof options !== 'object' || Array.isArray(options)) {
    const err = new TypeError(`The "options" argument must be of type object. Received ${received(options)}`);
    err.code = 'ERR_INVALID_ARG_TYPE';
    throw err;
  }
  // options node has and the engine cannot honour: refused, with what to do
  for (const [name, bad, why] of REFUSED_OPTIONS) {
    if (options[name] === bad) {
      const err = new Error(`piston: the ${name}: ${bad} option is not offered: ${why}`);
      err.code = 'ERR_PISTON_OPTION';
      throw err;
    }
  }
  this._options = options;
  this.on('newListener', (name) => {
    if (name === 'clientError') this._syncClientErrors(true);
  });
  this.on('removeListener', (name) => {
    if (name === 'clientError') this._syncClientErrors(false);
  });
  // node's options.IncomingMessage / options.ServerResponse: the classes
  // req and res are made of (subclasses of node's; the engine's hot paths
  // are grafted onto them as own properties, as for Express's prototypes)
  this._IncomingMessage = options.IncomingMessage || PistonIncomingMessage;
  this._ServerResponse = options.ServerResponse || PistonServerResponse;
  this._highWaterMark = options.highWaterMark; // undefined: the default
  this._joinDuplicateHeaders = options.joinDuplicateHeaders === true;
  // node:https's key/cert/ca/requestCert/... (null: plain HTTP); checked
  // now, as node's createSecureContext does
  this._tls = TLS.fromOptions(options);
  if (this._tls) TLS.validate(this._tls);
  this._h = null;
  this._handle = null; // net.Server's `listening` getter reads it
  this._id = 0;
  this._address = null;
  this._host = undefined;
  this._closing = false;
  this._refed = true;
  this._active = new Set();
  this._sockets = new Map(); // engine connection id -> PistonSocket
  this.keepAliveTimeout = options.keepAliveTimeout ?? 5000;
  // node's rules: integers >= 0; headersTimeout defaults to at most
  // requestTimeout and may not exceed it
  this.requestTimeout = options.requestTimeout === undefined ? 300000 : msOption(options.requestTimeout, 'requestTimeout');
  this.headersTimeout = options.headersTimeout === undefined ? Math.min(60000, this.requestTimeout) : msOption(options.headersTimeout, 'headersTimeout');
  if (this.requestTimeout > 0 && this.headersTimeout > 0 && this.headersTimeout > this.requestTimeout) {
    const err = new RangeError(`The value of "headersTimeout" is out of range. It must be <= requestTimeout. Received ${options.headersTimeout}`);
    err.code = 'ERR_OUT_OF_RANGE';
    throw err;
  }
  this.maxHeadersCount = options.maxHeadersCount ?? null;
  this.maxHeaderSize = options.maxHeaderSize;
  // ms; 0: off, as node:http has no such limit. Past it without a started
  // response the engine answers 503 and the req/res get 'close'.
  this.handlerTimeout = options.handlerTimeout ?? 0;
  this.timeout = 0;
  this.maxRequestsPerSocket = 0;
  // net.Server's socket options as http.Server sets them (TCP tuning is
  // the engine's: these are what the server reports)
  this.noDelay = options.noDelay ?? true;
  this.keepAlive = options.keepAlive ?? false;
  this.keepAliveInitialDelay = options.keepAliveInitialDelay ?? 0;
  this.cache = new B.CacheFace(this);
  if (handler) this.on('request', handler);
}
Object.setPrototypeOf(Server.prototype, http.Server.prototype);
Object.setPrototypeOf(Server, http.Server);

class ServerMethods {
  _engineOptions() {
    const ms = (v) => (v > 0 ? v : 24 * 3600 * 1000);
    const o = this._options;
    const out = {
      idleTimeoutMs: ms(this.keepAliveTimeout),
      headTimeoutMs: ms(this.headersTimeout),
      bodyTimeoutMs: ms(this.requestTimeout),
      maxHeadSize: this.maxHeaderSize ?? o.maxHeaderSize,
      // node's maxHeadersCount keeps the first N fields (the request goes
      // on, see Exchange); the engine refuses (431) only past node's 2000
      maxHeaders: 2000,
      // node:http's heads: Connection: keep-alive and Keep-Alive: timeout=N
      // (none without a keepAliveTimeout), Date after the app's fields, and
      // the second of grace past N; every Expect is the host's to answer
      headStyle: this.keepAliveTimeout > 0 ? 1 : 2,
      expectToHost: 1,
    };
    for (const k of Object.keys(B.OPTION_NAMES)) if (o[k] !== undefined) out[k] = o[k];
    out.trustedProxies = o.trustedProxies;
    out.accessLogFile = o.accessLogFile;
    out.accessLogFormat = o.accessLogFormat;
    out.metrics = o.metrics;
    out.health = o.health;
    out.handlerTimeout = this.handlerTimeout > 0 ? this.handlerTimeout : 0;
    out.cacheRoutes = o.cacheRoutes;
    return out;
  }

  listen(...args) {
    let cb;
    if (typeof args[args.length - 1] === 'function') cb = args.pop();
    let port = 0;
    let host;
    let path;
    let backlog;
    let ipv6Only = false;
    const a0 = args[0];
    if (a0 !== null && typeof a0 === 'object') {
      const p = a0.port;
      if (p !== undefined && p !== null && typeof p !== 'number' && typeof p !== 'string') {
        const err = new TypeError(`The argument 'options' is invalid. Received ${util.inspect(a0)}`);
        err.code = 'ERR_INVALID_ARG_VALUE';
        throw err;
      }
      port = p === undefined || p === null ? 0 : toPort(p, 'options.port');
      host = a0.host;
      path = a0.path;
      backlog = a0.backlog;
      ipv6Only = a0.ipv6Only === true;
    } else if (typeof a0 === 'string' && !(Number(a0) >= 0)) {
      path = a0; // node's rule: a string that is not a number >= 0 is a path
      backlog = args[1];
    } else {
      port = a0 === undefined || a0 === null ? 0 : toPort(a0, 'port');
      if (typeof args[1] === 'string') {
        host = args[1];
        backlog = args[2];
      } else if (typeof args[1] === 'number') {
        backlog = args[1];
      }
    }
    if (this._h && !this._closing) {
      const err = new Error('Listen method has been called more than once without closing.');
      err.code = 'ERR_SERVER_ALREADY_LISTEN';
      throw err;
    }
    // listen() again while a close() drains, as net.Server allows
    if (this._h) this._detachClosing();
    if (cb) this.once('listening', cb);
    this._closing = false;
    this._id = B.registerServer(this);
    const opts = this._engineOptions();
    if (backlog) opts.backlog = backlog;
    // As node's: '::' with IPv4 mapped (unless ipv6Only), or 0.0.0.0 on a
    // machine without IPv6
    opts.ipv6Only = ipv6Only ? 1 : 0;
    const listenSpec = path !== undefined ? { path } : { host: host ?? '::', port };
    let boundPort = 0;
    const bind = () => {
      this._h = B.makeNative(this._id, opts, listenSpec, this._routes);
      if (this._tls) TLS.apply(this._h, this._tls);
      native.watch(this._h, true, true); // 'clientError', per-connection sockets
      this._syncClientErrors(false);
      boundPort = TLS.start(this._h);
    };
    try {
      try {
        bind();
      } catch (e) {
        if (host !== undefined || path !== undefined || !NO_IPV6.has(e.code)) throw e;
        if (this._h) native.stop(this._h, 0);
        listenSpec.host = '0.0.0.0';
        bind();
      }
    } catch (e) {
      if (this._h) native.stop(this._h, 0);
      this._h = null;
      B.servers.delete(this._id);
      e.syscall = 'listen';
      if (path === undefined) {
        e.address = listenSpec.host;
        e.port = port;
      } else e.address = path;
      if (cb) this.removeListener('listening', cb);
      process.nextTick(() => this.emit('error', e));
      return this;
    }
    if (path !== undefined) {
      this._address = path;
    } else {
      const h = listenSpec.host;
      const addr = h === 'localhost' ? '127.0.0.1' : h;
      this._address = { address: addr, family: net.isIPv6(addr) ? 'IPv6' : 'IPv4', port: boundPort };
      this._host = addr;
    }
    this._handle = new PistonServerHandle(this);
    if (!this._refed) native.ref(this._h, false);
    process.nextTick(() => this.emit('listening'));
    return this;
  }

  // Opens the access log file again (after logrotate moved it).
  reopenLogs() {
    if (this._h) native.reopenLogs(this._h);
  }

  address() {
    return this._handle ? this._address : null;
  }

  _onRequest(slot, method, url, minor, connId) {
    // node:http's 'upgrade' (only while something listens) and 'connect'
    // (always taken; closed without a listener): node/upgrade.js. HTTP/2
    // has no connection to take (an HTTP/2 CONNECT is a 'request').
    if (method === 'CONNECT' && native.httpVersion(slot) !== 20) {
      U.takeOver(this, slot, this.listenerCount('connect') > 0 ? 'connect' : null, method, url, minor, connId, native.headers(slot));
      return;
    }
    if (this.listenerCount('upgrade') > 0 && native.header(slot, 'upgrade') !== undefined) {
      const raw = native.headers(slot);
      if (U.asksUpgrade(raw) && native.httpVersion(slot) !== 20) {
        U.takeOver(this, slot, 'upgrade', method, url, minor, connId, raw);
        return;
      }
    }
    let ex;
    try {
      ex = new Exchange(this, slot, method, url, minor, connId);
    } catch (e) {
      native.respAbort(slot);
      B.releaseSlot(slot);
      this._report(e, null);
      return;
    }
    this._active.add(ex);
    try {
      // a connection is known from its first request: 'connection' then
      if (ex.newSocket) this.emit('connection', ex.connSocket);
      const max = this.maxRequestsPerSocket;
      if (max > 0 && minor === 1 && !ex.connSocket._h2 && this._countRequest(ex, max)) {
        // past node's maxRequestsPerSocket: 'dropRequest' and a 503
        this.emit('dropRequest', ex.req, ex.socket);
        ex.res.writeHead(503);
        ex.res.end();
      } else if (ex.expect === undefined || ex.connSocket._h2) this.emit('request', ex.req, ex.res);
      else this._onExpect(ex);
    } catch (e) {
      if (!ex.res.headersSent || !ex.res._headerSent) {
        if (ex.slot >= 0 && !ex.resDone) {
          ex.abort(); // 500 from the engine
          ex.res.statusCode = 500;
          ex.responseEnded();
        }
      } else if (!ex.resDone) {
        ex.destroy(e);
      }
      this._report(e, ex.socket);
    }
  }

  // maxRequestsPerSocket as node's: the response to the last request
  // allowed says Connection: close, the others Keep-Alive: timeout=N, max=M;
  // true for a request past the limit
  _countRequest(ex, max) {
    const n = (ex.socket._requests = (ex.socket._requests || 0) + 1);
    ex.res._pistonMaxRequests = n >= max ? 0 : max;
    return n > max;
  }

  // node's handling of Expect (the engine hands every Expect over)
  _onExpect(ex) {
    const { req, res } = ex;
    if (CONTINUE.test(ex.expect)) {
      res._expect_continue = true;
      if (this.listenerCount('checkContinue') > 0) this.emit('checkContinue', req, res);
      else {
        res.writeContinue();
        this.emit('request', req, res);
      }
    } else if (this.listenerCount('checkExpectation') > 0) this.emit('checkExpectation', req, res);
    else {
      res.writeHead(417);
      res.end();
    }
  }

  // A handler's throw (the client has had its 500 already): to the server's
  // 'error' listener if it has one, else where node:http would let it go,
  // process 'uncaughtException' (an app's error monitor), with node's
  // (err, origin) arguments, when something listens there.
  _report(err, socket) {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else if (process.listenerCount('uncaughtException') > 0) {
      process.emit('uncaughtExceptionMonitor', err, 'uncaughtException');
      process.emit('uncaughtException', err, 'uncaughtException');
    }
    else if (this.listenerCount('clientError') > 0) this.emit('clientError', err, socket);
    else console.error('piston: request handler threw:', err);
  }

  // The engine rejected a request the host never saw (400, 408, 413, 414,
  // 431, 505, ...) on connection connId. slot >= 0: the connection is ours
  // to answer (a raw stream, node/upgrade.js), as node leaves it to
  // 'clientError' listeners; else the engine answered and closes it.
  _onClientError(status, addr, port, code, reason, slot, parsed, raw, connId) {
    const errors = status !== 0 && this.listenerCount('clientError') > 0;
    // the socket the app has for the connection (from an earlier request),
    // else, for one whose first request was the rejected one, none yet:
    // node emits 'connection' at the accept, so the app has not had it
    const known = this._sockets.get(connId);
    const unseen = known === undefined && this.listenerCount('connection') > 0;
    if (slot < 0 && !errors && !unseen && known === undefined) return;
    const err = clientError(status, code, reason);
    if (raw !== undefined) {
      err.bytesParsed = parsed;
      err.rawPacket = raw;
    }
    if (slot >= 0) {
      U.answerClientError(this, slot, err, connId);
      return;
    }
    if (known !== undefined) {
      // The engine answered and closes it. As node's socket destroyed with
      // the error when no 'clientError' listener answered: its 'error',
      // then 'close', when the engine reports the connection closed.
      known.destroyed = true;
      known.readable = false;
      known.writable = false;
      if (errors) this.emit('clientError', err, known);
      else if (known._destroyError === undefined) known._destroyError = err;
      return;
    }
    const socket = new ClientErrorSocket(this, addr, port);
    if (unseen) this.emit('connection', socket);
    // status 0: the client ended within a head, and nothing was sent
    if (errors) this.emit('clientError', err, socket);
    // The connection is closed (the engine's answer has gone): 'error' (to
    // its listeners, as above) and 'close', for the apps that track their
    // sockets.
    process.nextTick(() => {
      if (!errors) emitSocketError(socket, err);
      socket.emit('close', !errors);
    });
  }

  // Whether the engine hands rejected connections over to the 'clientError'
  // listeners: kept in step with them. Without one, the engine answers (the
  // bytes node's own answer has) and the app's 'connection' listeners get
  // a closed socket.
  _syncClientErrors(adding) {
    if (!this._h) return;
    native.answerClientErrors(this._h, this.listenerCount('clientError') + (adding ? 1 : 0) > 0);
  }

  _onConnClosed(connId) {
    const socket = this._sockets.get(connId);
    if (socket === undefined) return;
    this._sockets.delete(connId);
    socket._closed();
  }

  // The closing native server goes on draining on its own: its connections
  // (their ids are its own) and the close() callbacks go with it, and
  // 'close' is emitted when it has drained; the server is free to listen.
  _detachClosing() {
    const sockets = this._sockets;
    const cbs = this._closeCbs || [];
    const server = this;
    B.servers.set(this._id, {
      _onRequest: (...a) => server._onRequest(...a),
      _onClientError: (...a) => server._onClientError(...a),
      _onConnClosed(connId) {
        const sock = sockets.get(connId);
        if (sock === undefined) return;
        sockets.delete(connId);
        sock._closed();
      },
      _onClosed() {
        for (const sock of sockets.values()) sock._closed();
        sockets.clear();
        server.emit('close');
        for (const cb of cbs) cb();
      },
    });
    this._sockets = new Map();
    this._closeCbs = null;
    this._h = null;
    this._closing = false;
  }

  _onClosed() {
    this._h = null;
    this._handle = null;
    // every connection is closed once the loop drained
    const sockets = [...this._sockets.values()];
    this._sockets.clear();
    for (const s of sockets) s._closed();
    const cbs = this._closeCbs || [];
    this._closeCbs = null;
    this.emit('close');
    for (const cb of cbs) cb();
  }

  close(cb) {
    if (!this._h) {
      if (cb) {
        const err = new Error('Server is not running.');
        err.code = 'ERR_SERVER_NOT_RUNNING';
        process.nextTick(cb, err);
      }
      return this;
    }
    if (cb) (this._closeCbs ||= []).push(cb);
    if (!this._closing) {
      this._closing = true;
      this._handle = null;
      // the drain must run even for an unref()'d server: node closes its
      // handle (and calls back) whatever the ref state
      if (!this._refed) native.ref(this._h, true);
      native.stop(this._h, this._options.closeTimeoutMs ?? DEFAULT_CLOSE_MS);
    }
    return this;
  }

  // Closes the keep-alive connections waiting for their next request (at the
  // engine's next pass); requests in flight go on. close() does it too.
  closeIdleConnections() {
    if (this._h) native.closeIdle(this._h);
  }

  // Ends every request in flight (500 if nothing was sent, else the
  // connection is closed); with close(), nothing is left open.
  closeAllConnections() {
    for (const ex of [...this._active]) ex.destroy();
  }

  getConnections(cb) {
    const n = this._h ? native.connections(this._h) : 0;
    if (cb) process.nextTick(cb, null, n);
    return this;
  }

  setTimeout(ms, cb) {
    this.timeout = ms;
    if (cb) this.on('timeout', cb);
    return this;
  }

  ref() {
    this._refed = true;
    if (this._h) native.ref(this._h, true);
    return this;
  }

  unref() {
    this._refed = false;
    if (this._h) native.ref(this._h, false);
    return this;
  }

  // node:https's: new key/cert for new connections; open ones keep theirs
  setSecureContext(options) {
    TLS.setSecureContext(this, options);
  }

  getTicketKeys() {
    return TLS.getTicketKeys(this);
  }

  setTicketKeys(keys) {
    TLS.setTicketKeys(this, keys);
  }

  [Symbol.asyncDispose]() {
    return new Promise((resolve) => this.close(() => resolve()));
  }
}
for (const k of Reflect.ownKeys(ServerMethods.prototype)) {
  if (k !== 'constructor') Object.defineProperty(Server.prototype, k, Object.getOwnPropertyDescriptor(ServerMethods.prototype, k));
}

function createServer(options, handler) {
  return new Server(options, handler);
}

module.exports = { createServer, Server, IncomingMessage: PistonIncomingMessage, ServerResponse: PistonServerResponse };
