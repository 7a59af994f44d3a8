'use strict';
// node:http's 'upgrade' and 'connect' events on createServer (http.js): the
// connection is taken from the engine as a raw byte stream
// (piston_raw_takeover) and handed to the listener as a stream.Duplex that
// stands for node's net.Socket, with the bytes that came behind the
// request's head as `head`. The listener writes its own status line
// (HTTP/1.1 101 ..., 200 Connection Established) and whatever its protocol
// says; the engine neither frames nor times the stream.
//
// Node 20's rules, which this follows (lib/_http_server.js):
// - a request with Upgrade and Connection: upgrade is an upgrade only while
//   the server has an 'upgrade' listener; without one it goes to 'request'
//   as plain HTTP (req.upgrade false);
// - a CONNECT is always taken: to 'connect' if something listens, else the
//   connection is destroyed without an answer;
// - head is what the read that ended the head brought behind it; the rest
//   comes as the socket's data;
// - the socket is allowHalfOpen (http.Server's net.Server is): the client's
//   end() is the socket's 'end', and the listener may still write;
// - the upgraded socket leaves the server's HTTP bookkeeping:
//   closeAllConnections()/closeIdleConnections() do not touch it, but
//   close()'s 'close' waits for it (net.Server counts it), up to the
//   engine's stop deadline (closeTimeoutMs), where piston's close() differs
//   from node's for any open connection.

const net = require('node:net');
const { Duplex } = require('node:stream');
const B = require('./binding');

const { native } = B;
const EAGAIN = native.EAGAIN;
const EV_BODY = native.EV_BODY;
const EV_DRAIN = native.EV_DRAIN;
const EV_CLOSED = native.EV_CLOSED;
const EMPTY = Buffer.alloc(0);

function sysError(code, message) {
  const e = new Error(message);
  e.code = code;
  e.errno = code === 'EPIPE' ? -32 : -104;
  e.syscall = code === 'EPIPE' ? 'write' : 'read';
  return e;
}

// Does the request ask for an upgrade as llhttp decides it (an Upgrade
// field, and "upgrade" among the Connection tokens)? raw: [name, value, ...]
function asksUpgrade(raw) {
  let up = false;
  let conn = false;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (n.length === 7) {
      if (n.toLowerCase() === 'upgrade') up = true;
    } else if (n.length === 10 && n.toLowerCase() === 'connection') {
      for (const t of raw[i + 1].split(',')) if (t.trim().toLowerCase() === 'upgrade') conn = true;
    }
  }
  return up && conn;
}

class UpgradedSocket extends Duplex {
  constructor(server, slot) {
    // 'close' is emitted by hand, with net.Socket's hadError argument, once
    // the engine has closed the connection
    super({ allowHalfOpen: true, emitClose: false, decodeStrings: false });
    this.server = server;
    this._slot = slot;
    const info = native.info(slot); // [minor, length, addr, port, localPort, ...]
    this._info = typeof info === 'number' ? [1, 0, '', 0, 0] : info;
    this._waiting = false; // a read found nothing: pull at the next EV_BODY
    this._eof = false; // the client shut its direction (read 0 seen)
    this._drainCb = null; // a write's callback held until EV_DRAIN
    this._engineClosed = false;
    this._destroyCb = null; // _destroy waits for the engine's EV_CLOSED
    this._pending = null; // the event to emit once head is known
    this._inRead = false;
    this._timer = null;
    this.timeout = 0;
    this.bytesRead = 0;
    this._bytesWritten = 0;
    this.connecting = false;
    this.pending = false;
    this.parser = null; // node frees the socket's HTTP parser before the event
    // net.Socket's own 'end' listener (its half-open handling), which code
    // written against node's counts (listenerCount('end') is 1)
    this.on('end', noop);
  }

  // ---- what net.Socket offers ----

  get bytesWritten() {
    return this._bytesWritten;
  }
  get remoteAddress() {
    return this._info[2] === '' ? undefined : this._info[2];
  }
  get remotePort() {
    return this._info[3] || undefined;
  }
  get remoteFamily() {
    const a = this.remoteAddress;
    return a === undefined ? undefined : net.isIPv6(a) ? 'IPv6' : 'IPv4';
  }
  get localAddress() {
    return this.server._host;
  }
  get localPort() {
    return this._info[4] || undefined;
  }
  get localFamily() {
    const a = this.localAddress;
    return a === undefined ? undefined : net.isIPv6(a) ? 'IPv6' : 'IPv4';
  }
  address() {
    return { address: this.localAddress, family: this.localFamily, port: this.localPort };
  }
  // net.Socket's: 'open', 'readOnly', 'writeOnly' or 'closed'
  get readyState() {
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }
  // TCP tuning is the engine's (TCP_NODELAY is on); the engine's fd, not
  // this object, keeps the event loop alive
  setNoDelay() {
    return this;
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
  // net.Socket's idle timer: 'timeout' after ms without a read or a write;
  // nothing else happens (the listener ends or destroys the socket)
  setTimeout(ms, cb) {
    ms = Number(ms) || 0;
    if (this._timer) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    this.timeout = ms;
    if (ms > 0 && !this.destroyed) {
      this._timer = setTimeout(() => {
        this._timer = null;
        this.emit('timeout');
      }, ms);
      this._timer.unref();
    }
    if (cb) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    return this;
  }
  _touch() {
    if (this._timer) this._timer.refresh();
  }
  destroySoon() {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', this.destroy);
  }

  // ---- the event, once the bytes behind the head are known ----

  // The engine hands the bytes read behind the head over in the pass that
  // took the connection (one EV_BODY); with none, the event goes out after
  // that pass (setImmediate) with an empty head.
  _emitLater(name, req, sockStandIn) {
    this._pending = { name, req };
    if (sockStandIn) sockStandIn._upgraded = this;
    setImmediate(() => this._emitNow(false));
  }

  _emitNow(withHead) {
    const p = this._pending;
    if (p === null) return;
    this._pending = null;
    let head = EMPTY;
    if (withHead && this._slot >= 0) {
      const parts = [];
      for (;;) {
        const r = native.read(this._slot);
        if (typeof r !== 'number') {
          parts.push(r);
          continue;
        }
        if (r === 0) this._eof = true;
        break;
      }
      if (parts.length) {
        head = parts.length === 1 ? parts[0] : Buffer.concat(parts);
        this.bytesRead += head.length;
      }
    }
    if (this.server.listenerCount(p.name) === 0) {
      this.destroy(); // the listener went away meanwhile
      return;
    }
    try {
      this.server.emit(p.name, p.req, this, head);
    } catch (e) {
      this.destroy();
      this.server._report(e, this);
      return;
    }
    // node's socket goes on reading into its buffer (up to its high-water
    // mark) whoever listens, so that the client's end is seen ('end')
    if (!this.destroyed) this.read(0);
  }

  // ---- engine events ----

  _onEvent(ev) {
    if (this._pending !== null && ev & (EV_BODY | EV_CLOSED)) this._emitNow(true);
    if (ev & EV_BODY && this._waiting) {
      this._waiting = false;
      this._pull();
    }
    if (ev & EV_DRAIN && this._drainCb !== null) {
      const cb = this._drainCb;
      this._drainCb = null;
      cb();
    }
    if (ev & EV_CLOSED) this._onEngineClosed();
  }

  // The connection is closed: what the client sent before is kept (the
  // handle goes back now), then the stream ends, or fails if the client's
  // direction did not end cleanly.
  _onEngineClosed() {
    this._engineClosed = true;
    let reset = false;
    if (!this._eof && this._slot >= 0) {
      for (;;) {
        const r = native.read(this._slot);
        if (typeof r !== 'number') {
          this.bytesRead += r.length;
          if (!this.destroyed) this.push(r);
          continue;
        }
        if (r === 0) this._eof = true;
        else reset = true;
        break;
      }
    }
    this._release();
    // the connection broke; but at a close()'s deadline it is the engine
    // that closed it, which node never does: no error then
    const srv = this.server;
    const err = reset && !srv._closing && srv._h !== null ? sysError('ECONNRESET', 'read ECONNRESET') : undefined;
    if (this._drainCb !== null) {
      const cb = this._drainCb;
      this._drainCb = null;
      cb(err);
    }
    if (this._destroyCb !== null) {
      this._finishDestroy();
      return;
    }
    if (this.destroyed) return;
    if (reset) {
      this.destroy(err);
      return;
    }
    if (this._eof) this._end();
    // an engine close of a stream the host had not ended (its stop
    // deadline): nothing more can be written
    if (!this.writableFinished) this.destroy();
  }

  _release() {
    if (this._slot < 0) return;
    const s = this._slot;
    this._slot = -1;
    B.releaseSlot(s);
  }

  // ---- the stream ----

  _read() {
    this._inRead = true;
    this._pull();
    this._inRead = false;
  }

  // The client shut its direction: the stream ends, and, as net.Socket's
  // read(0) after its EOF, 'end' comes even if nobody reads (once the
  // buffer is empty), so that the socket can close.
  _end() {
    this._eof = true;
    if (this._readableState.ended) return;
    this.push(null);
    if (!this._inRead) this.read(0);
  }

  _pull() {
    if (this._eof) {
      this._end();
      return;
    }
    while (this._slot >= 0 && !this.destroyed) {
      const r = native.read(this._slot);
      if (typeof r !== 'number') {
        this.bytesRead += r.length;
        this._touch();
        if (!this.push(r)) return;
        continue;
      }
      if (r === 0) {
        this._end();
      } else if (r === EAGAIN) {
        this._waiting = true;
      } else if (!this._engineClosed) {
        this.destroy(sysError('ECONNRESET', 'read ECONNRESET'));
      }
      return;
    }
  }

  _write(chunk, encoding, cb) {
    if (this._slot < 0) {
      cb(sysError('EPIPE', 'write EPIPE'));
      return;
    }
    if (typeof chunk === 'string') chunk = Buffer.from(chunk, encoding);
    const rc = native.rawWrite(this._slot, chunk);
    if (rc < 0) {
      cb(sysError('EPIPE', 'write EPIPE'));
      return;
    }
    this._bytesWritten += chunk.length;
    this._touch();
    if (rc === 1) this._drainCb = cb; // the engine's queue is over its mark
    else cb();
  }

  _writev(chunks, cb) {
    let rc = 0;
    for (let i = 0; i < chunks.length && rc >= 0; i++) {
      let c = chunks[i].chunk;
      if (typeof c === 'string') c = Buffer.from(c, chunks[i].encoding);
      rc = this._slot < 0 ? native.ECLOSED : native.rawWrite(this._slot, c);
      if (rc >= 0) this._bytesWritten += c.length;
      if (rc === 1) rc = 2; // the queue only grows here: the last rc tells
    }
    if (rc < 0) {
      cb(sysError('EPIPE', 'write EPIPE'));
      return;
    }
    this._touch();
    if (rc === 2) this._drainCb = cb;
    else cb();
  }

  // end(): a FIN once what is queued has gone out; the client's bytes are
  // still read until it ends too
  _final(cb) {
    if (this._slot >= 0) native.rawShutdown(this._slot);
    cb();
  }

  _destroy(err, cb) {
    if (this._timer) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    this._destroyErr = err;
    this._destroyCb = cb;
    if (this._slot < 0) {
      this._finishDestroy();
      return;
    }
    // both directions ended: the engine closes by itself once the FIN is
    // out; otherwise what is queued goes out and the connection closes
    if (!(this._eof && this.writableFinished)) native.respAbort(this._slot);
  }

  _finishDestroy() {
    const cb = this._destroyCb;
    const err = this._destroyErr;
    this._destroyCb = null;
    this._destroyErr = undefined;
    this._release();
    cb(err);
    process.nextTick(() => this.emit('close', !!err));
  }
}

// On a TLS server the socket has tls.TLSSocket's face too (encrypted,
// getPeerCertificate(), alpnProtocol, ...: node/tls.js's TlsState), as
// node:https hands a TLSSocket to 'upgrade'.
let TlsUpgradedSocket = null;
function tlsSocketClass() {
  if (TlsUpgradedSocket === null) {
    const { TlsState } = require('./tls');
    TlsUpgradedSocket = class TlsUpgradedSocket extends UpgradedSocket {
      constructor(server, slot) {
        super(server, slot);
        Object.assign(this, new TlsState(native.tlsInfo(slot), server._tls.requestCert));
      }
    };
    for (const k of Object.getOwnPropertyNames(TlsState.prototype)) {
      if (k !== 'constructor') TlsUpgradedSocket.prototype[k] = TlsState.prototype[k];
    }
  }
  return TlsUpgradedSocket;
}

// Takes the request on slot as an upgrade or a CONNECT: the connection
// leaves HTTP, and the event goes out once the bytes behind the head are
// known. name: 'upgrade', 'connect', or null for a CONNECT nobody listens
// to (the connection is closed, as node destroys its socket).
function takeOver(server, slot, name, method, url, minor, connId, raw) {
  if (native.rawTakeover(slot) < 0) {
    B.releaseSlot(slot);
    return;
  }
  const socket = server._tls ? new (tlsSocketClass())(server, slot) : new UpgradedSocket(server, slot);
  B.bindSlot(slot, socket);
  const standIn = server._sockets.get(connId);
  if (standIn === undefined) server.emit('connection', socket);
  if (name === null) {
    socket.destroy();
    return;
  }
  const req = new server._IncomingMessage(socket);
  req.method = method;
  req.url = url;
  req._addHeaderLines(raw, raw.length);
  req.httpVersionMajor = 1;
  req.httpVersionMinor = minor;
  req.httpVersion = minor ? '1.1' : '1.0';
  req.upgrade = true;
  if (server._joinDuplicateHeaders) req.joinDuplicateHeaders = true;
  // the request has no body: its stream ends (IncomingMessage's own _read
  // would resume the socket, whose bytes are the new protocol's)
  req._read = noop;
  req.complete = true;
  req.push(null);
  socket._emitLater(name, req, standIn);
}

// What node's socketOnError does with a parse error: to the 'clientError'
// listeners, which answer on the socket themselves (or not at all). The
// engine hands a connection over only while there is one; if the last was
// removed since, the connection closes without an answer (HTTP is the
// engine's to write, and it has let this connection go).
function socketOnError(server, socket, err) {
  if (server.listenerCount('clientError') > 0) {
    server.emit('clientError', err, socket);
    return;
  }
  socket.destroy(err);
}

// A connection the engine rejected and handed over (slot: its raw stream,
// piston_loop_client_error_take) because the server listens for
// 'clientError' or 'connection': the socket is node's as after its parse
// error, writable, and left to the listener. As node's, its parser stays
// failed: each later chunk from the client is the same error again, and
// the client's end ends the socket (http.Server is not half-open). After a
// timeout (no parse error: node's parser is fine) later bytes are dropped.
function answerClientError(server, slot, err, connId) {
  const socket = server._tls ? new (tlsSocketClass())(server, slot) : new UpgradedSocket(server, slot);
  B.bindSlot(slot, socket);
  // node's socket has had its 'connection' at the accept
  if (server._sockets.get(connId) === undefined) server.emit('connection', socket);
  socket.on('error', noop); // as node's socketOnError: errors from now on are ignored
  socket.on('end', () => {
    if (socket.writable) socket.end();
  });
  socket.on('data', (chunk) => {
    if (err.rawPacket === undefined) return;
    const again = new Error(err.message);
    again.code = err.code;
    again.status = err.status;
    again.bytesParsed = 0;
    again.rawPacket = chunk;
    socketOnError(server, socket, again);
  });
  try {
    socketOnError(server, socket, err);
  } catch (e) {
    socket.destroy();
    server._report(e, socket);
  }
}

function noop() {}

module.exports = { asksUpgrade, takeOver, answerClientError, UpgradedSocket };
