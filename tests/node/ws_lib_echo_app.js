#!/usr/bin/env node
'use strict';
// ws (npm) serving a WebSocket echo on piston.createServer or on node:http,
// for tests/node/test_ws_lib_conformance.py: the cases of
// tests/protocol/wsconf.py through the same library on both servers.
// Started as util.Server starts piston-testserver:
//
//   ws_lib_echo_app.js --bind 127.0.0.1:0 --server piston|node
//
// It prints "ws_lib_echo_app.js: listening on http://HOST:PORT" on stderr.
//
// Routes:
//   WS   /ws-echo   ws's WebSocketServer({ server, path }): every message
//                   back as it came; a text "close" closes with 1000 "bye",
//                   "close-now" with 4000; the first subprotocol offered is
//                   chosen
//   GET  /hello     "Hello, World!"
//   GET  /stats     "k=v" pairs: live (piston's request handles JS holds,
//                   this request's not counted; 0 on node:http), sessions
//                   (ws clients open now), opened, closed, last_code
// SIGTERM: every session is closed with 1001, then the server; the process
// exits once it has closed.

const http = require('node:http');
const path = require('node:path');
const { WebSocketServer } = require('ws');
const { piston, parseArgs, listen } = require(path.join(__dirname, '..', 'reliability', 'node_common'));
const { native } = require(path.join(__dirname, '..', '..', 'node', 'binding'));

const { host, port, options } = parseArgs();
const onPiston = options.server !== 'node';
const n = { opened: 0, closed: 0, last_code: 0 };

function handler(req, res) {
  if (req.url === '/hello') return res.end('Hello, World!');
  if (req.url === '/stats') {
    const live = onPiston ? native.live() - 1 : 0;
    const out = { live, sessions: n.opened - n.closed, ...n };
    return res.end(Object.entries(out).map(([k, v]) => `${k}=${v}`).join(' '));
  }
  res.statusCode = 404;
  res.end('not found');
}

const server = onPiston ? piston.createServer(handler) : http.createServer(handler);
const wss = new WebSocketServer({
  server,
  path: '/ws-echo',
  handleProtocols: (protocols) => protocols.values().next().value ?? false,
});
const CLOSE = Buffer.from('close');
const CLOSE_NOW = Buffer.from('close-now');
wss.on('connection', (ws) => {
  n.opened++;
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length <= 9) {
      if (data.equals(CLOSE)) return ws.close(1000, 'bye');
      if (data.equals(CLOSE_NOW)) return ws.close(4000);
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code) => {
    n.closed++;
    n.last_code = code;
  });
});

listen(server, host, port);
process.on('SIGTERM', () => {
  for (const c of wss.clients) c.close(1001);
  wss.close();
  server.close(() => process.exit(0));
});
