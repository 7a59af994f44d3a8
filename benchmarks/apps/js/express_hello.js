'use strict';
// Express 5 hello world for benchmarks/run_hosts.sh, default settings.
//   node express_hello.js piston|node PORT
// On Piston, app.listen(...) is replaced by piston.createServer(app).listen(...).
const [flavour, port] = process.argv.slice(2);
if (flavour !== 'piston' && flavour !== 'node') throw new Error('usage: express_hello.js piston|node PORT');
const express = require('express');

const app = express();
app.get('/hello', (req, res) => {
  res.type('text/plain').send('Hello, World!');
});

const done = () => console.log(`express on ${flavour} listening on ${port}`);
if (flavour === 'piston') require('../../..').createServer(app).listen(Number(port), '127.0.0.1', done);
else app.listen(Number(port), '127.0.0.1', done);
