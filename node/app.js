'use strict';
// The lean native API: a router in JS over the engine, with request and
// response objects that are thin views of the engine's handle (nothing is
// copied until asked for). Native routes (app.static, app.fixed) are
// answered by the engine in C and never reach JS.

const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const { Readable } = require('node:stream');
const B = require('./binding');
const TLS = require('./tls');

const { native } = B;
const EAGAIN = native.EAGAIN;
const EV_BODY = native.EV_BODY;
const EV_DRAIN = native.EV_DRAIN;
const EV_CLOSED = native.EV_CLOSED;
const EV_MESSAGE = native.EV_MESSAGE;
const ECLOSED = native.ECLOSED;

// ---- routing ------------------------------------------------------------------

function compile(pattern) {
  if (!pattern.includes(':') && !pattern.includes('*')) return null;
  const keys = [];
  const src = pattern
    .split('/')
    .map((seg) => {
      if (seg.startsWith(':')) {
        keys.push(seg.slice(1));
        return '([^/]+)';
      }
      if (seg === '*') {
        keys.push('*');
        return '(.*)';
      }
      return seg.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return { re: new RegExp('^' + src + '/?$'), keys };
}

class Router {
  constructor() {
    this.exact = new Map(); // "METHOD path" -> handler
    this.patterns = []; // {method, re, keys, handler}
  }
  add(method, pattern, handler) {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    const c = compile(pattern);
    if (c === null) this.exact.set(method + ' ' + pattern, handler);
    else this.patterns.push({ method, re: c.re, keys: c.keys, handler });
  }
  find(method, p) {
    let h = this.exact.get(method + ' ' + p) || this.exact.get('* ' + p);
    if (h === undefined && method === 'HEAD') h = this.exact.get('GET ' + p);
    if (h !== undefined) return { handler: h, params: EMPTY };
    for (const r of this.patterns) {
      if (r.method !== method && r.method !== '*' && !(method === 'HEAD' && r.method === 'GET')) continue;
      const m = r.re.exec(p);
      if (m === null) continue;
      const params = {};
      for (let i = 0; i < r.keys.length; i++) params[r.keys[i]] = safeDecode(m[i + 1]);
      return { handler: r.handler, params };
    }
    return null;
  }
}

const EMPTY = Object.freeze({});

// A route parameter, percent-decoded by the engine's decoder (the one file
// mounts use); kept as sent when it has a stray '%'.
function safeDecode(s) {
  if (!s.includes('%')) return s;
  const d = native.percentDecode(s);
  return d === undefined ? s : d;
}

// ---- request --------------------------------------------------------------------

class Request {
  // url: the target as sent (absolute-form included, as node:http's
  // req.url); p and qs: its path and query (undefined if none), split by
  // the engine.
  constructor(ex, method, url, p, qs, params) {
    this._ex = ex;
    this.method = method;
    this.url = url;
    this.path = p;
    this.params = params;
    this._qs = qs;
    this._query = undefined;
    this._headers = undefined;
  }
  get query() {
    if (this._query === undefined) {
      const q = {};
      if (this._qs !== undefined) {
        for (const [k, v] of new URLSearchParams(this._qs)) {
          if (k in q) q[k] = [].concat(q[k], v);
          else q[k] = v;
        }
      }
      this._query = q;
    }
    return this._query;
  }
  // First header with this name (case-insensitive), or undefined.
  getHeader(name) {
    const s = this._ex.slot;
    if (s < 0) return this._headers ? this._headers[name.toLowerCase()] : undefined;
    const v = native.header(s, name);
    return typeof v === 'number' ? undefined : v;
  }
  // All headers, lower-cased names, duplicates joined with ", " (node's rule
  // for most fields); built on first use.
  get headers() {
    if (this._headers === undefined) {
      const h = {};
      const s = this._ex.slot;
      const raw = s >= 0 ? native.headers(s) : [];
      if (Array.isArray(raw)) {
        for (let i = 0; i < raw.length; i += 2) {
          const k = raw[i].toLowerCase();
          const v = raw[i + 1];
          if (k === 'set-cookie') (h[k] ||= []).push(v);
          else h[k] = k in h ? h[k] + ', ' + v : v;
        }
      }
      this._headers = h;
    }
    return this._headers;
  }
  get remoteAddress() {
    return this._ex.info()[2] || undefined;
  }
  get remotePort() {
    return this._ex.info()[3] || undefined;
  }
  // https: the connection is TLS, or a trusted proxy said so
  // (trustedProxies, X-Forwarded-Proto/Forwarded)
  get secure() {
    return this._ex.info()[7] === 1;
  }
  get httpVersion() {
    const s = this._ex.slot;
    if (s >= 0 && native.httpVersion(s) === 20) return '2.0';
    return this._ex.info()[0] ? '1.1' : '1.0';
  }
  // On a TLS app: what the connection negotiated, with node's TLSSocket
  // names (encrypted, authorized, authorizationError, alpnProtocol,
  // servername, getProtocol(), getCipher(), getPeerCertificate(), ...);
  // undefined on a plain app or once the request is over.
  get tls() {
    const app = this._ex.app;
    const s = this._ex.slot;
    if (!app._tls || s < 0) return undefined;
    return new TLS.TlsState(native.tlsInfo(s), app._tls.requestCert);
  }
  // The whole body as one Buffer.
  async body() {
    const chunks = [];
    let n = 0;
    for await (const c of this) {
      chunks.push(c);
      n += c.length;
    }
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, n);
  }
  async text() {
    return (await this.body()).toString('utf8');
  }
  async json() {
    const b = await this.body();
    return JSON.parse(b.length ? b.toString('utf8') : 'null');
  }
  // Body chunks as they arrive.
  [Symbol.asyncIterator]() {
    const ex = this._ex;
    return {
      next: () => ex.nextChunk(),
      return: async () => ({ done: true, value: undefined }),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }
  // The body as a node Readable stream.
  stream() {
    return Readable.from(this, { objectMode: false });
  }
}

// ---- response -------------------------------------------------------------------

class Response {
  constructor(ex) {
    this._ex = ex;
    this.statusCode = 200;
    this._h = []; // [name, value, ...]
    this.started = false;
    this.ended = false;
    this.aborted = false;
    this._listeners = null;
  }
  status(code) {
    this.statusCode = code;
    return this;
  }
  setHeader(name, value) {
    const h = this._h;
    const lower = name.toLowerCase();
    for (let i = h.length - 2; i >= 0; i -= 2) {
      if (h[i].toLowerCase() === lower) h.splice(i, 2);
    }
    if (Array.isArray(value)) for (const v of value) h.push(name, String(v));
    else h.push(name, String(value));
    return this;
  }
  getHeader(name) {
    const lower = name.toLowerCase();
    for (let i = 0; i < this._h.length; i += 2) if (this._h[i].toLowerCase() === lower) return this._h[i + 1];
    return undefined;
  }
  _start() {
    if (this.started) return 0;
    this.started = true;
    const s = this._ex.slot;
    if (s < 0) return native.ECLOSED;
    const rc = native.respStart(s, this.statusCode, this._h);
    if (rc < 0) this._fail(rc);
    return rc;
  }
  _fail(rc) {
    if (rc === native.ECLOSED) return;
    const err = new Error('piston: response rejected by the engine (' + native.errName(rc) + ')');
    err.code = native.errName(rc);
    throw err;
  }
  // Returns false when the client is slower than the writer: wait for 'drain'.
  write(chunk) {
    if (this.ended) throw new Error('write after end');
    if (this._start() < 0) return true;
    const s = this._ex.slot;
    if (s < 0) return true;
    const rc = native.respWrite(s, chunk);
    if (rc < 0) this._fail(rc);
    if (rc === 1) {
      this._ex.needDrain = true;
      return false;
    }
    return true;
  }
  end(body) {
    if (this.ended) return this;
    this.ended = true;
    const ex = this._ex;
    const s = ex.slot;
    if (s >= 0) {
      let rc;
      if (!this.started) {
        this.started = true;
        rc = native.respSend(s, this.statusCode, this._h, body);
      } else {
        rc = native.respEnd(s, body);
      }
      ex.finish();
      if (rc < 0) this._fail(rc);
    }
    return this;
  }
  json(value) {
    if (this.getHeader('content-type') === undefined) this._h.push('Content-Type', 'application/json');
    return this.end(JSON.stringify(value));
  }
  // Sends a file with sendfile(2). Resolves when queued; a missing file is
  // a 404.
  async sendFile(file, headers) {
    let fh;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch (e) {
      if (this._ex.slot >= 0 && !this.started) {
        this.statusCode = e.code === 'ENOENT' || e.code === 'EISDIR' ? 404 : 500;
        this.end(this.statusCode === 404 ? 'Not Found' : 'Internal Server Error');
        return;
      }
      throw e;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) {
        this.statusCode = 404;
        this.end('Not Found');
        return;
      }
      if (headers) for (const k of Object.keys(headers)) this.setHeader(k, headers[k]);
      if (this.getHeader('content-type') === undefined) this._h.push('Content-Type', native.mimeType(file)); // as app.static
      if (this.getHeader('content-length') === undefined) this._h.push('Content-Length', String(st.size));
      if (this._ex.slot < 0 || this._start() < 0) return;
      if (st.size > 0) {
        const rc = native.respSendfile(this._ex.slot, fh.fd, 0, st.size);
        if (rc < 0) this._fail(rc);
      }
      this.end();
    } finally {
      await fh.close(); // the engine holds its own dup of the fd
    }
  }
  on(event, fn) {
    (this._listeners ||= { drain: [], close: [] })[event]?.push(fn);
    return this;
  }
  once(event, fn) {
    const w = (...a) => {
      this.off(event, w);
      fn(...a);
    };
    w.fn = fn;
    return this.on(event, w);
  }
  off(event, fn) {
    const l = this._listeners && this._listeners[event];
    if (l) {
      const i = l.findIndex((x) => x === fn || x.fn === fn);
      if (i >= 0) l.splice(i, 1);
    }
    return this;
  }
  _emit(event) {
    const l = this._listeners && this._listeners[event];
    if (l) for (const fn of [...l]) fn();
  }
  // On a WebSocket route: accepts the opening handshake (the engine sends
  // the 101 with Sec-WebSocket-Accept) and opens the session, whose
  // getUserData() is userData. protocol: the subprotocol chosen, or the
  // client's list (its first entry is taken, as uWebSockets.js does); key,
  // extensions and context are accepted for uWebSockets.js's signature and
  // not used (the engine computes the accept value; no extension is
  // negotiated). Headers set with setHeader() go with the 101. Returns the
  // WebSocket, or null if the client went away first.
  upgrade(userData, key, protocol, extensions, context) {
    const ex = this._ex;
    const route = ex.wsRoute;
    if (route === undefined) throw new Error('piston: res.upgrade() outside a WebSocket route');
    if (this.started) throw new Error('piston: res.upgrade() after the response started');
    this.started = true;
    this.ended = true;
    const s = ex.slot;
    if (s < 0) return null;
    const h = this._h;
    const proto = firstToken(protocol);
    if (proto !== '') h.push('Sec-WebSocket-Protocol', proto);
    // pings and pongs reach JS only for a route that handles them
    if (route.ping !== undefined || route.pong !== undefined) native.wsControl(s, true);
    const rc = native.wsAccept(s, h);
    if (rc < 0) {
      ex.release();
      if (rc === ECLOSED) return null;
      this._fail(rc);
    }
    // the slot now names the session: the exchange lets go of it
    ex.slot = -1;
    const ws = new WebSocket(route, s, userData === undefined ? {} : userData, ex.app);
    B.bindSlot(s, ws);
    sessions[s] = ws;
    if (route.open !== undefined) route.open(ws);
    return ws;
  }
  // cb runs once if the client goes away before the response ended.
  onAborted(cb) {
    return this.on('close', () => {
      if (this.aborted) cb();
    });
  }
}

// The first entry of a comma-separated header value ('' for none).
function firstToken(v) {
  if (v === undefined || v === null) return '';
  const str = String(v);
  const c = str.indexOf(',');
  return (c < 0 ? str : str.slice(0, c)).trim();
}

// ---- WebSocket sessions ---------------------------------------------------------------

const EMPTY_AB = new ArrayBuffer(0);
const recvOp = new Int32Array(1); // wsRecv's opcode out-parameter
const sessions = []; // slot -> WebSocket, while the session lives

// After each engine pass, one call for every session with messages waiting:
// their slots are the first n entries of batch. A handler's exception is
// rethrown once the batch is delivered.
const batch = new Int32Array(1024);
native.wsInit((n) => {
  let err;
  let failed = false;
  for (let i = 0; i < n; i++) {
    const ws = sessions[batch[i]];
    if (ws === undefined) continue;
    try {
      ws._messages();
    } catch (e) {
      if (!failed) err = e;
      failed = true;
    }
  }
  if (failed) throw err;
}, batch);

// One accepted WebSocket: a view of the engine's session (framing, UTF-8,
// pings, the closing handshake and publish/subscribe are the engine's). Its
// methods after the session ended do nothing (send returns 2, subscribe and
// publish false).
class WebSocket {
  constructor(route, slot, userData, app) {
    this._route = route;
    this._slot = slot;
    this._ud = userData;
    this._app = app;
    this._needDrain = false;
    this._topics = null; // for getTopics(): the engine keeps the real table
  }
  // 1: queued; 0: queued, but the client is slower than the sender (wait
  // for the route's drain); 2: dropped (the session is closing or closed).
  send(data, isBinary = false) {
    const s = this._slot;
    if (s < 0) return 2;
    return this._sent(native.wsSend(s, data, !!isBinary), 'send');
  }
  // A ping (at most 125 bytes of payload); returns as send.
  ping(message) {
    const s = this._slot;
    if (s < 0) return 2;
    return this._sent(native.wsPing(s, message === undefined ? EMPTY_AB : message), 'ping');
  }
  _sent(rc, what) {
    if (rc === 0) return 1;
    if (rc === 1) {
      this._needDrain = true;
      return 0;
    }
    if (rc === ECLOSED) return 2;
    throw wsError(rc, what);
  }
  // The closing handshake: a close frame with code (none if omitted) and a
  // short reason; the route's close runs once the connection is gone.
  end(code, reason) {
    const s = this._slot;
    if (s < 0) return;
    const rc = native.wsClose(s, code === undefined ? 0 : code, reason);
    if (rc < 0 && rc !== ECLOSED) throw wsError(rc, 'end');
  }
  // uWebSockets.js's abrupt close: no close frame, the connection is
  // dropped (the client sees 1006) and the route's close runs at once,
  // with 1006 and an empty message.
  close() {
    const s = this._slot;
    if (s < 0) return this;
    native.wsAbort(s);
    this._ended();
    return this;
  }
  // Topics are strings or bytes (ArrayBuffer, Buffer, TypedArray); a
  // session's subscriptions end with it.
  subscribe(topic) {
    const s = this._slot;
    if (s < 0) return false;
    const rc = native.wsSubscribe(s, topic);
    if (rc === ECLOSED) return false;
    if (rc < 0) throw wsError(rc, 'subscribe');
    (this._topics ||= new Set()).add(topicString(topic));
    return true;
  }
  // Whether it was subscribed.
  unsubscribe(topic) {
    const s = this._slot;
    if (s < 0) return false;
    const was = native.wsUnsubscribe(s, topic) === 1;
    if (was) this._topics.delete(topicString(topic));
    return was;
  }
  isSubscribed(topic) {
    return this._slot >= 0 && native.wsIsSubscribed(this._slot, topic) === 1;
  }
  getTopics() {
    return this._slot >= 0 && this._topics !== null ? [...this._topics] : [];
  }
  // To every subscriber of topic but this session (as uWebSockets.js);
  // true if the topic has subscribers (this one included), as uWebSockets.js.
  publish(topic, message, isBinary = false, compress) {
    if (this._slot < 0) return false;
    return this._app._publish(topic, message, isBinary, this._slot);
  }
  // Exact: the bytes queued for the connection that the socket has not
  // taken yet.
  getBufferedAmount() {
    return this._slot < 0 ? 0 : native.wsBuffered(this._slot);
  }
  getUserData() {
    return this._ud;
  }
  // The engine batches every send of a pass already; cb runs at once.
  cork(cb) {
    cb();
    return this;
  }
  _onEvent(ev) {
    if (ev & EV_MESSAGE) this._messages();
    if (ev & EV_DRAIN && this._needDrain) {
      this._needDrain = false;
      if (this._route.drain !== undefined) this._route.drain(this);
    }
    if (ev & EV_CLOSED && this._slot >= 0) {
      this._messages();
      this._ended();
    }
  }
  // The session is over: the route's close, with the code and the peer's
  // reason, then the slot goes.
  _ended() {
    const s = this._slot;
    const code = native.wsCloseCode(s);
    const reason = native.wsCloseReason(s);
    this._slot = -1;
    sessions[s] = undefined;
    B.releaseSlot(s);
    if (this._route.close !== undefined) this._route.close(this, code, typeof reason === 'number' ? EMPTY_AB : reason);
  }
  // Every message waiting (and, for a route with ping/pong handlers, every
  // ping and pong), in order; a handler's exception is rethrown once the
  // others are delivered (they would otherwise wait for the next message
  // to be noticed).
  _messages() {
    const route = this._route;
    let err;
    let failed = false;
    while (this._slot >= 0) {
      const m = native.wsRecv(this._slot, recvOp);
      if (typeof m === 'number') break;
      const op = recvOp[0];
      const h = op === OP_PING ? route.ping : op === OP_PONG ? route.pong : route.message;
      if (h === undefined) continue;
      try {
        if (op === OP_PING || op === OP_PONG) h(this, m);
        else h(this, m, op === 2);
      } catch (e) {
        if (!failed) err = e;
        failed = true;
      }
    }
    if (failed) throw err;
  }
}

const OP_PING = 9;
const OP_PONG = 10;

// getTopics() gives strings, as uWebSockets.js does.
function topicString(t) {
  if (typeof t === 'string') return t;
  if (t instanceof ArrayBuffer) return Buffer.from(t).toString();
  return Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString();
}

function wsError(rc, what) {
  const err = new Error('piston: WebSocket ' + what + ' rejected by the engine (' + native.errName(rc) + ')');
  err.code = native.errName(rc);
  return err;
}

// ---- one exchange -------------------------------------------------------------------

class Exchange {
  constructor(app, slot) {
    this.app = app;
    this.slot = slot;
    this.needDrain = false;
    this.bodyWaiter = null;
    this.bodyEnded = false;
    this._info = null;
    this.res = null;
    this.wsRoute = undefined; // the app.ws route of an opening handshake
  }
  info() {
    if (this._info === null) {
      const i = this.slot >= 0 ? native.info(this.slot) : null;
      this._info = Array.isArray(i) ? i : [1, 0, '', 0, 0];
    }
    return this._info;
  }
  nextChunk() {
    if (this.bodyEnded) return Promise.resolve({ done: true, value: undefined });
    if (this.slot < 0) return Promise.reject(closedError());
    const r = native.read(this.slot);
    if (typeof r !== 'number') return Promise.resolve({ done: false, value: r });
    if (r === 0) {
      this.bodyEnded = true;
      return Promise.resolve({ done: true, value: undefined });
    }
    if (r === EAGAIN) {
      return new Promise((resolve, reject) => {
        this.bodyWaiter = { resolve, reject };
      });
    }
    this.bodyEnded = true;
    if (r === native.ETOOBIG) {
      const e = new Error('request body larger than the limit');
      e.code = 'ERR_PISTON_TOOBIG';
      e.status = 413;
      this.res.started = true; // the engine answers 413
      this.res.ended = true;
      return Promise.reject(e);
    }
    return Promise.reject(closedError());
  }
  _onEvent(ev) {
    if (ev & EV_BODY && this.bodyWaiter !== null) {
      const w = this.bodyWaiter;
      this.bodyWaiter = null;
      this.nextChunk().then(w.resolve, w.reject);
    }
    if (ev & EV_DRAIN && this.needDrain) {
      this.needDrain = false;
      this.res._emit('drain');
    }
    if (ev & EV_CLOSED) {
      const res = this.res;
      if (!res.ended) res.aborted = true;
      this.release();
      if (this.bodyWaiter !== null) {
        const w = this.bodyWaiter;
        this.bodyWaiter = null;
        w.reject(closedError());
      }
      res._emit('close');
    }
  }
  finish() {
    this.release();
  }
  release() {
    if (this.slot < 0) return;
    const s = this.slot;
    this.slot = -1;
    B.releaseSlot(s);
  }
}

function closedError() {
  const e = new Error('the client closed the connection');
  e.code = 'ECONNRESET';
  return e;
}

// ---- the app ----------------------------------------------------------------------

class App {
  constructor(options = {}) {
    this.options = options;
    // { key, cert, ca, requestCert, ... } as node:https's, or uWebSockets.js's
    // key_file_name/cert_file_name: checked now
    this._tls = TLS.fromAppOptions(options.tls);
    if (this._tls) TLS.validate(this._tls);
    this.router = new Router();
    this._wsRouter = null; // app.ws routes, any method
    this._wsRoutes = [];
    this._routes = [];
    this._h = null;
    this._id = 0;
    this._closeCbs = [];
    this.port = 0;
    this.cache = new B.CacheFace(this);
    this.onError = (err, req, res) => {
      console.error('piston: handler failed:', err);
      if (!res.started) res.status(500).end('Internal Server Error');
    };
    this.notFound = (req, res) => res.status(404).end('Not Found');
  }
  get(p, h) {
    this.router.add('GET', p, h);
    return this;
  }
  post(p, h) {
    this.router.add('POST', p, h);
    return this;
  }
  put(p, h) {
    this.router.add('PUT', p, h);
    return this;
  }
  patch(p, h) {
    this.router.add('PATCH', p, h);
    return this;
  }
  delete(p, h) {
    this.router.add('DELETE', p, h);
    return this;
  }
  all(p, h) {
    this.router.add('*', p, h);
    return this;
  }
  // A WebSocket route, in uWebSockets.js's style: behavior has open,
  // message(ws, ArrayBuffer, isBinary), drain, close(ws, code, message),
  // ping(ws, ArrayBuffer), pong(ws, ArrayBuffer), upgrade(res, req,
  // context), maxPayloadLength and compression (see node/README.md).
  // A request to it that is no opening handshake gets the engine's 400/426
  // (unless an HTTP route of the app takes that method and path).
  ws(pattern, behavior = {}) {
    const route = {
      open: fnOrUndefined(behavior.open, 'open'),
      message: fnOrUndefined(behavior.message, 'message'),
      drain: fnOrUndefined(behavior.drain, 'drain'),
      close: fnOrUndefined(behavior.close, 'close'),
      upgrade: fnOrUndefined(behavior.upgrade, 'upgrade'),
      ping: fnOrUndefined(behavior.ping, 'ping'),
      pong: fnOrUndefined(behavior.pong, 'pong'),
      maxPayloadLength: behavior.maxPayloadLength,
      compression: behavior.compression,
    };
    const context = { pattern };
    const up = route.upgrade;
    const handler = (req, res) => {
      res._ex.wsRoute = route;
      if (up !== undefined) return up(res, req, context);
      res.upgrade({}, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), undefined, context);
    };
    (this._wsRouter ||= new Router()).add('*', pattern, handler);
    this._wsRoutes.push(route);
    return this;
  }
  // To every subscriber of topic (any session of this app); true if the
  // topic has subscribers, as uWebSockets.js.
  publish(topic, message, isBinary = false, compress) {
    return this._publish(topic, message, isBinary, -1);
  }
  _publish(topic, message, isBinary, exceptSlot) {
    if (this._h === null) return false;
    const n = native.wsPublish(this._h, topic, message, !!isBinary, exceptSlot);
    if (n < 0) throw wsError(n, 'publish');
    // a subscriber skipped (the publisher, or one over its backpressure
    // limit) still makes the topic one that exists
    return n > 0 || native.wsSubscribers(this._h, topic) > 0;
  }
  numSubscribers(topic) {
    return this._h === null ? 0 : native.wsSubscribers(this._h, topic);
  }
  // Files under dir for paths starting with prefix, served by the engine.
  static(prefix, dir) {
    this._routes.push({ kind: 'dir', prefix, dir: path.resolve(dir) });
    return this;
  }
  // A fixed response served by the engine (GET and HEAD unless method is set).
  fixed(p, body, headers, opts = {}) {
    const flat = B.flattenHeaders(headers, []);
    this._routes.push({ kind: 'fixed', method: opts.method ?? null, path: p, status: opts.status ?? 200, headers: flat, body: body ?? '' });
    return this;
  }
  listen(port, host, cb) {
    if (typeof host === 'function') {
      cb = host;
      host = undefined;
    }
    let spec;
    if (typeof port === 'string' && !/^\d+$/.test(port)) spec = { path: port };
    else spec = { host: host ?? '0.0.0.0', port: Number(port) || 0 };
    let options;
    try {
      options = this._engineOptions();
    } catch (e) {
      if (cb) {
        process.nextTick(cb, e);
        return this;
      }
      throw e;
    }
    this._id = B.registerServer(this);
    try {
      this._h = B.makeNative(this._id, options, spec, this._routes);
      if (this._tls) TLS.apply(this._h, this._tls);
      this.port = TLS.start(this._h);
    } catch (e) {
      if (this._h) native.stop(this._h, 0);
      this._h = null;
      B.servers.delete(this._id);
      if (cb) {
        process.nextTick(cb, e);
        return this;
      }
      throw e;
    }
    this.address = spec.path ?? { address: spec.host, family: net.isIPv6(spec.host) ? 'IPv6' : 'IPv4', port: this.port };
    if (cb) process.nextTick(cb, null, this.port);
    return this;
  }
  // The app's options, with the WebSocket routes' maxPayloadLength as the
  // engine's one limit (wsMaxMessage) and their compression as its one
  // permessage-deflate switch (wsDeflate): routes that ask for different
  // ones cannot be served, as the engine's settings are per server.
  _engineOptions() {
    const opts = { ...this.options };
    const one = (name, key, of) => {
      const vals = new Set();
      for (const r of this._wsRoutes) if (r[name] !== undefined) vals.add(of(r[name]));
      if (vals.size > 1) throw new Error('piston: WebSocket routes with different ' + name + ' (' + [...vals].join(', ') + '): the engine has one setting per server');
      if (vals.size === 1) opts[key] = [...vals][0];
    };
    one('maxPayloadLength', 'wsMaxMessage', Number);
    // uWebSockets.js's DISABLED is 0; any compressor turns deflate on
    one('compression', 'wsDeflate', (c) => (Number(c) === DISABLED ? 0 : 1));
    return opts;
  }
  // New key/cert for new connections (node:https's name); open ones keep
  // theirs.
  setSecureContext(options) {
    TLS.setSecureContext(this, options);
    return this;
  }
  // Graceful: in-flight requests get up to deadlineMs.
  // Opens the access log file again (after logrotate moved it).
  reopenLogs() {
    if (this._h) native.reopenLogs(this._h);
  }

  close(cb, deadlineMs = 10000) {
    if (!this._h) {
      if (cb) process.nextTick(cb);
      return this;
    }
    if (cb) this._closeCbs.push(cb);
    native.stop(this._h, deadlineMs);
    return this;
  }
  _onClosed() {
    this._h = null;
    const cbs = this._closeCbs;
    this._closeCbs = [];
    for (const cb of cbs) cb();
  }
  _onRequest(slot, method, url, minor, connId, p, qs) {
    const ex = new Exchange(this, slot);
    const res = new Response(ex);
    ex.res = res;
    B.bindSlot(slot, ex);
    let m = null;
    if (this._wsRouter !== null) {
      m = this._wsRouter.find(method, p);
      if (m !== null) {
        const hs = native.wsHandshake(slot);
        if (hs !== 101) {
          const h = hs === 0 ? this.router.find(method, p) : null;
          if (h === null) {
            const rc = native.wsRefuse(slot);
            ex.finish();
            if (rc < 0) res._fail(rc);
            return;
          }
          m = h;
        }
      }
    }
    if (m === null) m = this.router.find(method, p);
    const req = new Request(ex, method, url, p, qs, m === null ? EMPTY : m.params);
    const handler = m === null ? this.notFound : m.handler;
    try {
      const r = handler(req, res);
      if (r !== undefined && typeof r.then === 'function') r.then(undefined, (e) => this._fail(e, req, res));
    } catch (e) {
      this._fail(e, req, res);
    }
  }
  _fail(err, req, res) {
    try {
      this.onError(err, req, res);
    } catch (e) {
      console.error('piston: onError failed:', e);
    }
    if (!res.ended && res._ex.slot >= 0) {
      native.respAbort(res._ex.slot);
      res.ended = true;
      res._ex.release();
    }
  }
}

function fnOrUndefined(f, name) {
  if (f === undefined || f === null) return undefined;
  if (typeof f !== 'function') throw new TypeError('piston: ws behavior.' + name + ' must be a function');
  return f;
}

// uWebSockets.js's names for a route's compression (its other compressors
// are taken as SHARED_COMPRESSOR: the engine has one kind).
const DISABLED = 0;
const SHARED_COMPRESSOR = 1;

module.exports = { App, Request, Response, WebSocket, DISABLED, SHARED_COMPRESSOR };
