'use strict';
// HTTP/2 hello world for benchmarks/h2_run.sh: node:http2 (createServer for
// h2c, createSecureServer over TLS) or Piston's createServer ({ http2: 2 }
// for h2c, { key, cert } over TLS: HTTP/2 by ALPN), on the same handler
// (node:http2's compatibility API).
//   node h2_hello.js piston|node h2c|tls PORT [CERT.pem KEY.pem]
const fs = require('node:fs');
const [flavour, mode, port, certFile, keyFile] = process.argv.slice(2);
if ((flavour !== 'piston' && flavour !== 'node') || (mode !== 'h2c' && mode !== 'tls') || (mode === 'tls' && !keyFile)) {
  throw new Error('usage: h2_hello.js piston|node h2c|tls PORT [CERT KEY]');
}

const BODY = 'Hello, World!';
function handler(req, res) {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
  res.end(BODY);
}

let server;
const tls = mode === 'tls' ? { key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile), minVersion: 'TLSv1.3' } : null;
if (flavour === 'piston') {
  server = require('../../..').createServer(tls || { http2: 2 }, handler);
  server.keepAliveTimeout = 600000;
} else {
  const http2 = require('node:http2');
  server = tls ? http2.createSecureServer(tls, handler) : http2.createServer(handler);
}
server.listen(Number(port), '127.0.0.1', () => console.log(`${flavour} ${mode} listening on ${port}`));
