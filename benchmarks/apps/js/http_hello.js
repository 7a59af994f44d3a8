'use strict';
// node:http-style hello world for benchmarks/run_hosts.sh.
//   node http_hello.js piston|node PORT
const [flavour, port] = process.argv.slice(2);
const http = flavour === 'piston' ? require('../../..') : require('node:http');
if (flavour !== 'piston' && flavour !== 'node') throw new Error('usage: http_hello.js piston|node PORT');

const BODY = 'Hello, World!';
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
  res.end(BODY);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`${flavour} http listening on ${port}`));
