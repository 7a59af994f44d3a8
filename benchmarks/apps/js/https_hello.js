'use strict';
// HTTPS hello world for benchmarks/tls_run.sh: node:https, or Piston's
// createServer given the same { key, cert } options; with '-' for both files,
// the same app over plain HTTP (node:http, or Piston's createServer without
// TLS options), for the plain-HTTP ratio beside the TLS one.
//   node https_hello.js piston|node PORT CERT.pem|- KEY.pem|-
const fs = require('node:fs');
const [flavour, port, certFile, keyFile] = process.argv.slice(2);
if ((flavour !== 'piston' && flavour !== 'node') || !keyFile) throw new Error('usage: https_hello.js piston|node PORT CERT KEY');
const plain = certFile === '-';
const https = flavour === 'piston' ? require('../../..') : require(plain ? 'node:http' : 'node:https');

const options = plain ? {} : { key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile), minVersion: 'TLSv1.3' };
const BODY = 'Hello, World!';
const server = https.createServer(options, (req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
  res.end(BODY);
});
server.keepAliveTimeout = 600000;
server.listen(Number(port), '127.0.0.1', () => console.log(`${flavour} ${plain ? 'http' : 'https'} listening on ${port}`));
