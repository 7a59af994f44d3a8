#!/usr/bin/env node
'use strict';
// The Node hosts of tests/reliability/test_handler_faults.py, started the
// way util.Server starts piston-testserver (node_common.js):
//
//   handler_faults_app.js --bind 127.0.0.1:0 --framework http|express
//                         [--handlerTimeout MS]
//
// http: piston.createServer(handler); express: piston.createServer(app)
// with an Express 5 app. It prints "handler_faults_app.js: listening on
// http://HOST:PORT" on stderr once listening (https in the TLS run, with
// PISTON_TEST_TLS_CERT/KEY's certificate). Routes (as fault_wsgi.py):
//
//   GET  /ok          200 "ok"
//   GET  /raise       throws before responding (Error handler-fault-a)
//   GET  /raise-mid   writes the first chunk of a streamed response, then
//                     throws (http: at once, as a synchronous handler can;
//                     express: 100 ms later, from an async handler)
//   GET  /hang        never responds
//   POST /upload      reads the request body; what it saw is kept
//   GET  /last-upload what the last /upload saw: "ok <n>", or its events
//                     ("aborted,error:ECONNRESET,close", ...); "" if none yet
//   GET  /gc          runs a full garbage collection; the JS heap in use
//                     after it, in bytes
// SIGTERM: server.close(); the process then exits on its own.

const { piston, gc, parseArgs, listen, tls } = require('./node_common');

const { host, port, options } = parseArgs();
const { framework = 'http', handlerTimeout = 0, ...rest } = options;
const unknown = Object.keys(rest);
if (unknown.length) throw new Error('unknown option --' + unknown[0]);

function collect() {
  gc();
  return String(process.memoryUsage().heapUsed);
}

let lastUpload = null; // {seen: [event, ...], n: body bytes}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function text(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

// Records what a body reader sees: data, 'end', 'aborted', 'error', 'close'.
function watchUpload(req) {
  const st = { seen: [], n: 0 };
  lastUpload = st;
  req.on('data', (d) => (st.n += d.length));
  req.on('end', () => st.seen.push('end'));
  req.on('aborted', () => st.seen.push('aborted'));
  req.on('error', (e) => st.seen.push('error:' + e.code));
  req.on('close', () => st.seen.push('close'));
}

function describeUpload() {
  if (lastUpload === null) return '';
  const { seen, n } = lastUpload;
  return seen.includes('end') ? 'ok ' + n : seen.join(',');
}

function plain(req, res) {
  const p = req.url;
  if (p === '/ok') return text(res, 200, 'ok');
  if (p === '/raise') throw new Error('handler-fault-a');
  if (p === '/raise-mid') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('part-1\n');
    throw new Error('handler-fault-b');
  }
  if (p === '/hang') return;
  if (p === '/upload') {
    watchUpload(req);
    req.on('end', () => text(res, 200, 'got it'));
    return;
  }
  if (p === '/last-upload') return text(res, 200, describeUpload());
  if (p === '/gc') return text(res, 200, collect());
  text(res, 404, 'not found');
}

function expressApp() {
  const express = require('express');
  const app = express();
  app.get('/ok', (req, res) => res.type('text/plain').send('ok'));
  app.get('/raise', () => {
    throw new Error('handler-fault-a');
  });
  app.get('/raise-mid', async (req, res) => {
    res.type('text/plain');
    res.write('part-1\n');
    await sleep(100);
    throw new Error('handler-fault-b');
  });
  app.get('/hang', () => {});
  app.post(
    '/upload',
    (req, res, next) => {
      watchUpload(req);
      next();
    },
    express.raw({ type: () => true, limit: '10mb' }),
    (req, res) => res.type('text/plain').send('got it'),
  );
  // body-parser reports an aborted body as an error: note it, then let
  // Express's final handler try (and fail) to answer
  app.use((err, req, res, next) => {
    if (req.path === '/upload' && lastUpload !== null) lastUpload.seen.push('next(' + err.type + ')');
    next(err);
  });
  app.get('/last-upload', (req, res) => res.type('text/plain').send(describeUpload()));
  app.get('/gc', (req, res) => res.type('text/plain').send(collect()));
  return app;
}

const handler = framework === 'express' ? expressApp() : plain;
// over TLS (node_common.js's tls()): {key, cert} too, node:https's way
const server = piston.createServer({ closeTimeoutMs: 2000, ...tls() }, handler);
server.handlerTimeout = Number(handlerTimeout);
server.keepAliveTimeout = 5000;
listen(server, host, port);
process.on('SIGTERM', () => server.close());
