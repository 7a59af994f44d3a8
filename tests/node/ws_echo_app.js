#!/usr/bin/env node
'use strict';
// The native App's WebSocket echo, for tests/node/test_ws_conformance.py
// (the cases of tests/protocol/wsconf.py, run as against the C test
// server's /ws-echo), started the way util.Server starts piston-testserver:
//
//   ws_echo_app.js --bind 127.0.0.1:0 [--maxPayloadLength N] [--<option> V]
//
// Other --<option> pairs go to new App(options). It prints
// "ws_echo_app.js: listening on http://HOST:PORT" on stderr once listening.
//
// Routes:
//   WS   /ws-echo   every message back as it came (text as text, binary as
//                   binary); a text "close" ends the session with 1000 "bye",
//                   "close-now" with 4000; the first subprotocol offered is
//                   chosen (the default upgrade)
//   GET  /hello     "Hello, World!" (an HTTP route next to the WebSocket one)
//   GET  /stats     "k=v" pairs (util.stats): live (request handles JS
//                   holds, this request's not counted), opened and closed
//                   (WebSocket sessions), sessions (open now), and
//                   last_code (the close code of the last session closed)
// SIGTERM: app.close(); the process then exits once the engine drained.

const path = require('node:path');
// the reliability tests' Node start-up: the package and the command line
const { piston, parseArgs } = require(path.join(__dirname, '..', 'reliability', 'node_common'));
const { native } = require(path.join(__dirname, '..', '..', 'node', 'binding'));

const { host, port, options } = parseArgs();
const { maxPayloadLength } = options;
delete options.maxPayloadLength;

const n = { opened: 0, closed: 0, last_code: 0 };
const CLOSE = Buffer.from('close');
const CLOSE_NOW = Buffer.from('close-now');

const app = new piston.App(options);
app.ws('/ws-echo', {
  maxPayloadLength,
  open() {
    n.opened++;
  },
  message(ws, data, isBinary) {
    if (!isBinary && data.byteLength <= 9) {
      const b = Buffer.from(data);
      if (b.equals(CLOSE)) return ws.end(1000, 'bye');
      if (b.equals(CLOSE_NOW)) return ws.end(4000);
    }
    ws.send(data, isBinary);
  },
  close(ws, code) {
    n.closed++;
    n.last_code = code;
  },
});
app.get('/hello', (req, res) => res.end('Hello, World!'));
app.get('/stats', (req, res) => {
  const out = { live: native.live() - 1, sessions: n.opened - n.closed, ...n };
  res.end(Object.entries(out).map(([k, v]) => `${k}=${v}`).join(' '));
});

app.listen(port, host, (err, p) => {
  if (err) throw err;
  process.stderr.write(`ws_echo_app.js: listening on http://${host}:${p}\n`);
});
process.on('SIGTERM', () => app.close());
