'use strict';
// The Node host of tests/browser/test_h2_chromium.py: an Express app that
// serves a folder (express.static) under require('piston').createServer
// with a certificate, so HTTPS, and HTTP/2 when ALPN picks h2.
//   node node_h2_static_app.js --bind HOST:PORT --dir DIR --cert C --key K [--<option> V]
// Other --<option> pairs go to createServer's options (http2 0: HTTP/1.1
// only). SIGTERM closes it.
const fs = require('node:fs');
const path = require('node:path');
const express = require('express');
const common = path.join(__dirname, '..', 'reliability', 'node_common');
const { piston, parseArgs, listen } = require(common);

const { host, port, options } = parseArgs();
const { dir, cert, key } = options;
delete options.dir;
delete options.cert;
delete options.key;

const app = express();
app.use(express.static(dir));
const tls = { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
const server = piston.createServer({ ...options, ...tls }, app);
listen(server, host, port);
process.on('SIGTERM', () => server.close());
