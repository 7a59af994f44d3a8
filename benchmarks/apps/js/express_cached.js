'use strict';
// express_hello.js with its answer marked for a response cache, for
// benchmarks/cache_run.sh: on Piston with a 64 MB cache, or on node:http
// behind nginx's proxy_cache.
//   node express_cached.js piston|node PORT
const [flavour, port] = process.argv.slice(2);
if (flavour !== 'piston' && flavour !== 'node') throw new Error('usage: express_cached.js piston|node PORT');
const express = require('express');

const app = express();
app.get('/hello', (req, res) => {
  res.set('Piston-Cache', 'ttl=60').type('text/plain').send('Hello, World!');
});

const done = () => console.log(`express on ${flavour} listening on ${port}`);
if (flavour === 'piston') require('../../..').createServer({ cacheSize: 64e6 }, app).listen(Number(port), '127.0.0.1', done);
else app.listen(Number(port), '127.0.0.1', done);
