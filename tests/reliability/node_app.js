#!/usr/bin/env node
'use strict';
// The Node host of tests/reliability/test_node_host.py: require('piston')
// .createServer (node:http compatible) with a few routes, started the way
// util.Server starts piston-testserver:
//
//   node_app.js --bind 127.0.0.1:0 [--<option> <value> ...]
//
// Each --<option> <value> pair goes to createServer's options as it is
// spelled (keepAliveTimeout, headersTimeout, requestTimeout, closeTimeoutMs,
// writeTimeoutMs, writeHighWater, ...; numbers as numbers). It prints
// "node_app.js: listening on http://HOST:PORT" on stderr once listening
// (https, with the certificate of PISTON_TEST_TLS_CERT/KEY, in the TLS run).
//
// Routes:
//   GET  /hello             200 "Hello, World!"
//   POST /echo              the request body, collected, with Content-Length
//   POST /echo?stream=1     the request body piped back (chunked)
//   GET  /big?bytes=N       N bytes of the /big pattern (byte k = 'a' + k % 26)
//                           in 64 KiB writes, waiting for 'drain' whenever
//                           res.write() returns false
//   GET  /slow?ms=N         "slow" after N ms
//   GET  /gc                runs full garbage collections, "ok"
//   GET  /stats             "k=v" pairs (util.stats): the engine's live
//                           connections, this app's own counts, rss
// SIGTERM: server.close(); the process then exits on its own once the engine
// has drained (nothing else keeps the event loop alive).

const v8 = require('node:v8');

const { piston, gc, NAME, parseArgs, listen, tls } = require('./node_common');

const { host, port, options } = parseArgs();

const CHUNK = 64 * 1024;
const ALPHA = 'abcdefghijklmnopqrstuvwxyz';
// CHUNK bytes of the pattern starting at any offset k % 26: a view of this.
const PATTERN = Buffer.from(ALPHA.repeat(Math.ceil((CHUNK + 26) / 26)), 'latin1');

const n = {
  requests: 0, // handler calls
  closed: 0, // res 'close' events (every request ends with one)
  ended: 0, // responses the app ended
  aborted: 0, // res 'close' before the app ended the response
  req_errors: 0, // req 'error' (the client went away mid-body, 408 body timeout)
  connections: 0, // 'connection' events (one per connection with a request)
  sockets_closed: 0, // req.socket 'close' events
  client_errors: 0, // 'clientError' (the listener below answers)
  client_408: 0,
  big_started: 0,
  big_done: 0,
  big_aborted: 0,
  drain_waits: 0, // res.write() returned false
  drains: 0, // 'drain' events
  body_bytes: 0, // request body bytes the handlers received
  handler_errors: 0,
};

function hello(req, res) {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('Hello, World!');
}

function echo(req, res, stream) {
  req.on('error', () => n.req_errors++);
  if (stream) {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    req.on('data', (c) => (n.body_bytes += c.length));
    req.pipe(res);
    return;
  }
  const chunks = [];
  req.on('data', (c) => {
    n.body_bytes += c.length;
    chunks.push(c);
  });
  req.on('end', () => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    res.end(Buffer.concat(chunks));
  });
}

function big(req, res, total) {
  n.big_started++;
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(total) });
  let off = 0;
  let gone = false;
  res.on('close', () => {
    gone = true;
    if (off < total) n.big_aborted++;
  });
  const pump = () => {
    if (gone) return;
    n.drains += off > 0 ? 1 : 0;
    while (off < total) {
      const len = Math.min(CHUNK, total - off);
      const k = off % 26;
      const chunk = PATTERN.subarray(k, k + len);
      off += len;
      if (off === total) {
        res.end(chunk);
        n.big_done++;
        return;
      }
      if (!res.write(chunk)) {
        n.drain_waits++;
        res.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

function slow(req, res, ms) {
  const t = setTimeout(() => res.end('slow'), ms);
  res.on('close', () => clearTimeout(t));
}

let server;
let open = 0; // requests whose res has not emitted 'close' yet
let sockets = 0; // connections seen by the app and not closed yet

function stats(req, res) {
  server.getConnections((err, conns) => {
    const mem = process.memoryUsage();
    const out = {
      conns, // the engine's live connections, this one included
      inflight: open - 1, // not counting this request
      sockets: sockets - 1, // nor its connection
      ...n,
      rss_kb: Math.round(mem.rss / 1024),
      heap_kb: Math.round(mem.heapUsed / 1024),
      heap_total_kb: Math.round(mem.heapTotal / 1024),
      // the part of V8's heap that is resident: RSS minus this is native
      // memory (the engine, the addon, Buffers, malloc's arenas)
      heap_physical_kb: Math.round(v8.getHeapStatistics().total_physical_size / 1024),
      external_kb: Math.round(mem.external / 1024),
    };
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(Object.entries(out).map(([k, v]) => `${k}=${v}`).join(' '));
  });
}

function handle(req, res) {
  n.requests++;
  open++;
  res.on('close', () => {
    open--;
    n.closed++;
    if (!res.writableEnded) n.aborted++;
  });
  res.on('finish', () => n.ended++);
  const q = req.url.indexOf('?');
  const p = q < 0 ? req.url : req.url.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1));
  if (req.method === 'GET' && p === '/hello') return hello(req, res);
  if (req.method === 'POST' && p === '/echo') return echo(req, res, params.get('stream') === '1');
  if (req.method === 'GET' && p === '/big') return big(req, res, Number(params.get('bytes') || 1 << 20));
  if (req.method === 'GET' && p === '/slow') return slow(req, res, Number(params.get('ms') || 100));
  if (req.method === 'GET' && p === '/stats') return stats(req, res);
  if (req.method === 'GET' && p === '/gc') {
    // twice, a turn apart: finalizers of external memory (Buffers the addon
    // made) run after the first collection, and free it in the second
    gc();
    return setImmediate(() => {
      gc();
      res.end('ok');
    });
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found\n');
}

// over TLS (node_common.js's tls()): {key, cert} too, node:https's way
server = piston.createServer({ ...options, ...tls() }, (req, res) => {
  try {
    handle(req, res);
  } catch (e) {
    n.handler_errors++;
    console.error(`${NAME}: handler threw:`, e);
    throw e;
  }
});
server.on('connection', (socket) => {
  n.connections++;
  sockets++;
  socket.on('close', () => {
    n.sockets_closed++;
    sockets--;
  });
});
server.on('clientError', (err, socket) => {
  n.client_errors++;
  if (err.status === 408) n.client_408++;
  // a node:http app's listener answers by itself (a socket the engine has
  // answered already is not writable)
  if (socket.writable) {
    const line = err.status === 408 ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${line}\r\nConnection: close\r\n\r\n`);
  }
});
server.on('error', (e) => {
  console.error(`${NAME}: server error:`, e);
  process.exitCode = 1;
});
listen(server, host, port);

process.on('SIGTERM', () => {
  console.error(`${NAME}: SIGTERM, closing`);
  server.close(() => console.error(`${NAME}: closed`));
});
