'use strict';
// Loads the addon and routes its callbacks: onRequest(serverId, slot,
// method, url, httpMinor, connId, path, query) once per request at the
// engine's batch end (path and query split by the engine, which handles
// absolute-form targets; query undefined when empty),
// onEvent(slot, events) for body/drain/closed, onClosed(serverId) once a
// server drained, onConnEvent(serverId, kind, ...) after a pass for the
// engine's own rejections (CONN_CLIENT_ERROR, status, remoteAddr, remotePort)
// and closed connections (CONN_CLOSED, connId) of servers that watch them.
// Both faces (http.js, app.js) register servers and per-request handlers here.

const path = require('node:path');

// build/Release (a source build) first, else the package's prebuilt addon
// for this platform (prebuilds/<platform>-<arch>/), through node-gyp-build
function load() {
  try {
    return require('node-gyp-build')(path.join(__dirname, '..'));
  } catch (e) {
    if (!/No native build was found/.test(e.message)) throw e;
    throw new Error('piston: the addon is not built and no prebuilt one fits this platform ' +
      '(run `npm rebuild piston`, which says what it needs): ' + e.message.trim());
  }
}

const native = load();
const { CONN_CLOSED } = native; // onConnEvent kinds; else CONN_CLIENT_ERROR
const servers = new Map(); // serverId -> { _onRequest(slot, method, url), _onClosed() }
const slots = []; // slot -> request state with _onEvent(events)
let nextServerId = 1;

native.init(
  function onRequest(sid, slot, method, url, minor, connId, path, query) {
    const s = servers.get(sid);
    if (s === undefined) {
      native.respAbort(slot);
      native.release(slot);
      return;
    }
    s._onRequest(slot, method, url, minor, connId, path, query);
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
  // slot: a rejected connection JS answers itself (a raw stream), or -1
  function onConnEvent(sid, kind, a, addr, port, code, reason, slot, parsed, raw, connId) {
    const s = servers.get(sid);
    if (kind === CONN_CLOSED) {
      if (s !== undefined && s._onConnClosed) s._onConnClosed(a);
    } else if (s !== undefined && s._onClientError) {
      s._onClientError(a, addr, port, code, reason, slot, parsed, raw, connId);
    } else if (slot >= 0) {
      native.respAbort(slot);
      native.release(slot);
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

// Option names as the JS faces take them, from the addon's OPT_* (built
// from piston.h's PISTON_OPTION_MAP, so a new engine option arrives here
// without a copy): OPT_MAX_HEAD_SIZE -> maxHeadSize, OPT_SHARE_PORT ->
// sharePort, ...
const OPTION_NAMES = {};
for (const k of Object.keys(native)) {
  if (!k.startsWith('OPT_')) continue;
  const camel = k.slice(4).toLowerCase().replace(/_([a-z])/g, (_, c) => c.toUpperCase());
  OPTION_NAMES[camel] = native[k];
}
// node's convention for a timeout is ms without a suffix (server.timeout,
// keepAliveTimeout); handlerTimeout is the documented name of this one
OPTION_NAMES.handlerTimeout = OPTION_NAMES.handlerTimeoutMs;
delete OPTION_NAMES.handlerTimeoutMs;

// server.cache and app.cache: the engine's response cache of one server
// (responses marked with a Piston-Cache field, see docs/architecture.md).
class CacheFace {
  constructor(owner) {
    this._owner = owner;
  }
  // Drops the stored responses whose target (path and query, as req.url)
  // is target, or starts with it with { prefix: true }; returns how many.
  purge(target, { prefix = false } = {}) {
    if (typeof target !== 'string') throw new TypeError('cache.purge: target must be a string');
    const h = this._owner._h;
    return h ? native.cachePurge(h, target, !!prefix) : 0;
  }
  // { hits, staleHits, misses, coalesced, stores, uncacheable, evictions,
  //   purged, bytes, entries }
  stats() {
    const h = this._owner._h;
    return h ? native.cacheStats(h) : null;
  }
}

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
  // trustedProxies: the addresses whose X-Forwarded-*/Forwarded fields and
  // PROXY headers the engine believes (a string or an array of addresses,
  // CIDRs, 'unix:', '*'); none by default, as node:http believes none
  if (options.trustedProxies !== undefined && options.trustedProxies !== null) {
    const t = options.trustedProxies;
    native.trustProxies(h, Array.isArray(t) ? t.join(',') : String(t));
  }
  // the access log's file ('-': stdout) and format (common, combined,
  // json, gunicorn's atoms); either turns the log on
  if (options.accessLogFile != null || options.accessLogFormat != null) {
    native.accessLog(h, options.accessLogFile ?? null, options.accessLogFormat ?? null);
  }
  // Prometheus text at options.metrics, readiness at options.health (C)
  if (options.metrics) {
    // cluster workers count into one region, so that any worker answering
    // a scrape sums them all, as the Python supervisor's workers do
    const file = inClusterWorker(options, listen) ? clusterMetricsFile(listen) : null;
    native.opsRoute(h, 0, String(options.metrics), file, CLUSTER_METRICS_SLOTS);
  }
  if (options.health) native.opsRoute(h, 1, String(options.health));
  // { '/api': 5 } or { '/api': { ttl: 5, swr: 30, sie: 60 } }: GET
  // responses under a prefix cacheable without a Piston-Cache field
  for (const [prefix, v] of Object.entries(options.cacheRoutes || {})) {
    const c = typeof v === 'number' ? { ttl: v } : v;
    native.cacheRoute(h, prefix, c.ttl, c.swr || 0, c.sie || 0);
  }
  for (const r of routes || []) {
    if (r.kind === 'fixed') native.routeFixed(h, r.method, r.path, r.status, r.headers, r.body);
    else native.routeDir(h, r.prefix, r.dir);
  }
  if (listen.path !== undefined) native.listenUnix(h, listen.path);
  else {
    if (inClusterWorker(options, listen)) native.serverSet(h, OPTION_NAMES.sharePort, 1);
    native.listenTcp(h, listen.host, listen.port);
  }
  return h;
}

// Under node:cluster (and PM2's cluster mode) the workers share a port as
// node:http's do. The engine binds its own socket, which cluster's handle
// sharing never sees, so each worker joins the port with SO_REUSEPORT
// instead (the kernel spreads the connections); sharePort: false opts out.
// Port 0 cannot be shared so: each worker would get a port of its own.
function inClusterWorker(options, listen) {
  if (!require('node:cluster').isWorker || options.sharePort !== undefined) return false;
  if (!listen.port) {
    throw Object.assign(new Error('listen(0) in a cluster worker: every worker would get a port of its own; listen on a port number (or set sharePort: false)'), { code: 'ERR_CLUSTER_PORT_0' });
  }
  return true;
}

// The file through which the workers of one cluster share their metrics:
// named by the user, the primary (its pid and start time, so a later
// primary with a reused pid starts from zero) and the port, so two apps
// under one PM2 daemon count apart. Files of primaries that are gone are
// removed on the way.
const CLUSTER_METRICS_SLOTS = 256;

function startTime(pid) {
  try {
    // field 22 of /proc/PID/stat, after the ')' that ends the command name
    const stat = require('node:fs').readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] || '0';
  } catch {
    return null; // gone
  }
}

function metricsDir() {
  const fs = require('node:fs');
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK);
    return '/dev/shm';
  } catch {
    return require('node:os').tmpdir();
  }
}

// Removes the metrics files of this user whose primary is gone (or, at a
// primary's exit, its own: gone: (pid, start) -> bool).
function removeMetricsFiles(gone) {
  const fs = require('node:fs');
  const dir = metricsDir();
  const prefix = `piston-metrics-${process.getuid()}-`;
  let names = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return; // an unreadable directory: nothing to tidy
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const [pid, start] = name.slice(prefix.length).split('-');
    if (!gone(Number(pid), start)) continue;
    try {
      fs.unlinkSync(require('node:path').join(dir, name));
    } catch {
      // another process removed it first
    }
  }
}

function clusterMetricsFile(listen) {
  const ppid = process.ppid;
  removeMetricsFiles((pid, start) => pid !== ppid && startTime(pid) !== start);
  return require('node:path').join(metricsDir(),
    `piston-metrics-${process.getuid()}-${ppid}-${startTime(ppid) || '0'}-${listen.port}`);
}

// A primary that loads Piston removes its workers' file when it exits (one
// that does not, PM2's daemon, leaves it to the next worker's sweep above).
require('node:cluster').once('fork', () => {
  process.once('exit', () => removeMetricsFiles((pid) => pid === process.pid));
});

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
  CacheFace,
};
