'use strict';
// The ws package's WebSocketServer on a node:http-style server, echo at /ws,
// for benchmarks/ws_run.sh.
//   node ws_http.js piston|node PORT
// piston: the server is Piston's createServer (ws takes the 'upgrade' event).
const [flavour, port] = process.argv.slice(2);
if (flavour !== 'piston' && flavour !== 'node') throw new Error('usage: ws_http.js piston|node PORT');
const http = flavour === 'piston' ? require('../../..') : require('node:http');
const { WebSocketServer } = require('ws');

const server = http.createServer((req, res) => res.end('ok'));
const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen(Number(port), '127.0.0.1', () => console.log(`${flavour} ws listening on ${port}`));
