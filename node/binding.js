'use strict';
// Loads the addon and routes its callbacks: onRequest(serverId, slot,
// method, url, httpMinor, connId) once per request at the engine's batch end,
// onEvent(slot, events) for body/drain/closed, onClosed(serverId) once a
// server drained, onConnEvent(serverId, kind, ...) after a pass for the
// engine's own rejections (CONN_CLIENT_ERROR, status, remoteAddr, remotePort)
// and closed connections (CONN_CLOSED, connId) of servers that watch them.
// Both faces (http.js, app.js) register servers and per-request handlers here.

const path = require('node:path');

function load() {
  const tried = [];
  for (const p of ['../build/Release/piston.node', '../build/Debug/piston.node']) {
    try {
      return require(path.join(__dirname, p));
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
      tried.push(p);
    }
  }
  throw new Error('piston: the addon is not built (run `npm install` or `npm run build`); looked for ' + tried.join(', '));
}

const native = load();
// onConnEvent kinds (addon.c)
const CONN_CLIENT_ERROR = 1;
const CONN_CLOSED = 2;
const servers = new Map(); // serverId -> { _onRequest(slot, method, url), _onClosed() }
const slots = []; // slot -> request state with _onEvent(events)
let nextServerId = 1;

native.init(
  function onRequest(sid, slot, method, url, minor, connId) {
    const s = servers.get(sid);
    if (s === undefined) {
      native.respAbort(slot);
      native.release(slot);
      return;
    }
    s._onRequest(slot, method, url, minor, connId);
  },
  function onEvent(slot, events) {
    const st = slots[slot];
    if (st !== undefined) st._onEvent(events);
  },
  function onClosed(sid) {
    const s = servers.get(sid);
    if (s !== undefined) {
      servers.delete(sid);
      s._onClosed();
    }
  },
  function onConnEvent(sid, kind, a, addr, port) {
    const s = servers.get(sid);
    if (s === undefined) return;
    if (kind === CONN_CLOSED) {
      if (s._onConnClosed) s._onConnClosed(a);
    } else if (s._onClientError) {
      s._onClientError(a, addr, port);
    }
  },
);

function registerServer(obj) {
  const id = nextServerId++;
  servers.set(id, obj);
  return id;
}

function bindSlot(slot, state) {
  slots[slot] = state;
}

// Drops the request handle: the slot may be reused at once.
function releaseSlot(slot) {
  slots[slot] = undefined;
  native.release(slot);
}

const OPTION_NAMES = {
  maxHeadSize: native.OPT_MAX_HEAD_SIZE,
  maxUrlSize: native.OPT_MAX_URL_SIZE,
  maxHeaders: native.OPT_MAX_HEADERS,
  maxBodySize: native.OPT_MAX_BODY_SIZE,
  headTimeoutMs: native.OPT_HEAD_TIMEOUT_MS,
  bodyTimeoutMs: native.OPT_BODY_TIMEOUT_MS,
  idleTimeoutMs: native.OPT_IDLE_TIMEOUT_MS,
  writeTimeoutMs: native.OPT_WRITE_TIMEOUT_MS,
  bodyHighWater: native.OPT_BODY_HIGH_WATER,
  writeHighWater: native.OPT_WRITE_HIGH_WATER,
  backlog: native.OPT_BACKLOG,
  maxConnections: native.OPT_MAX_CONNECTIONS,
  accessLog: native.OPT_ACCESS_LOG,
  // ms for the handler to start its response, else the engine answers 503
  handlerTimeout: native.OPT_HANDLER_TIMEOUT_MS,
};

// A native server with options set and listening addresses added; start()
// binds. `listen` is {port, host} or {path}.
function makeNative(id, options, listen, routes) {
  const h = native.serverNew(id);
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined || v === null) continue;
    const opt = OPTION_NAMES[k];
    if (opt === undefined) continue;
    native.serverSet(h, opt, typeof v === 'boolean' ? (v ? 1 : 0) : Number(v));
  }
  for (const r of routes || []) {
    if (r.kind === 'fixed') native.routeFixed(h, r.method, r.path, r.status, r.headers, r.body);
    else native.routeDir(h, r.prefix, r.dir);
  }
  if (listen.path !== undefined) native.listenUnix(h, listen.path);
  else native.listenTcp(h, listen.host, listen.port);
  return h;
}

// Flattens header objects/arrays into [name, value, ...] strings.
function flattenHeaders(obj, out) {
  if (!obj) return out;
  if (Array.isArray(obj)) {
    if (obj.length && Array.isArray(obj[0])) {
      for (const [k, v] of obj) pushHeader(out, k, v);
    } else {
      for (let i = 0; i + 1 < obj.length; i += 2) pushHeader(out, obj[i], obj[i + 1]);
    }
    return out;
  }
  for (const k of Object.keys(obj)) pushHeader(out, k, obj[k]);
  return out;
}

function pushHeader(out, k, v) {
  if (v === undefined) return;
  if (Array.isArray(v)) {
    for (const x of v) out.push(String(k), String(x));
  } else {
    out.push(String(k), String(v));
  }
}

module.exports = {
  native,
  registerServer,
  bindSlot,
  releaseSlot,
  makeNative,
  flattenHeaders,
  servers,
  OPTION_NAMES,
};
