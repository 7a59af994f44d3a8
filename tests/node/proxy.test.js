'use strict';
// Behind proxies: trustedProxies (X-Forwarded-*, Forwarded) and
// proxyProtocol through createServer, Express and the native App, in raw
// bytes on 127.0.0.1 (the trusted proxy here).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const { createServer, App } = require('../..');
const { listen, close, raw, parseResponses } = require('./helpers');

const XFF = 'X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n';

function get(path, extra = '', close = true) {
  return `GET ${path} HTTP/1.1\r\nHost: app.example\r\n${extra}${close ? 'Connection: close\r\n' : ''}\r\n`;
}

async function ask(port, bytes) {
  const rs = parseResponses(await raw(port, bytes));
  return rs.map((r) => JSON.parse(r.body));
}

function peer(req, res) {
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({ addr: req.socket.remoteAddress, port: req.socket.remotePort, encrypted: req.socket.encrypted }));
}

test('createServer: a trusted proxy names the client and the scheme', async () => {
  const srv = createServer({ trustedProxies: '127.0.0.1' }, peer);
  const { port } = await listen(srv);
  try {
    const [a] = await ask(port, get('/', XFF));
    assert.deepEqual(a, { addr: '203.0.113.9', encrypted: true });
    // keep-alive: each request its own client (a proxy's pooled connection)
    const rs = await ask(port, get('/', XFF, false) + get('/', '', false) + get('/', 'X-Forwarded-For: 198.51.100.4\r\n'));
    assert.equal(rs[0].addr, '203.0.113.9');
    assert.equal(rs[0].encrypted, true);
    assert.equal(rs[1].addr, '127.0.0.1');
    assert.equal(rs[1].encrypted, false);
    assert.equal(rs[2].addr, '198.51.100.4');
  } finally {
    await close(srv);
  }
});

test('createServer: without trustedProxies the fields are only fields', async () => {
  const srv = createServer(peer);
  const { port } = await listen(srv);
  try {
    const [a] = await ask(port, get('/', XFF));
    assert.equal(a.addr, '127.0.0.1');
    assert.equal(a.encrypted, false);
  } finally {
    await close(srv);
  }
});

test('createServer: an array of CIDRs, and an untrusted peer', async () => {
  const srv = createServer({ trustedProxies: ['10.0.0.0/8', '::1'] }, peer);
  const { port } = await listen(srv);
  try {
    const [a] = await ask(port, get('/', XFF));
    assert.equal(a.addr, '127.0.0.1');
  } finally {
    await close(srv);
  }
  const bad = createServer({ trustedProxies: 'not-an-ip' }, peer);
  const err = await new Promise((resolve) => {
    bad.once('error', resolve);
    bad.listen(0, '127.0.0.1');
  });
  assert.match(err.message, /trustedProxies/);
});

for (const trust of [false, 'loopback', true]) {
  test(`Express req.ip/req.secure/req.protocol behind a proxy, trust proxy ${trust}`, async () => {
    const app = express();
    app.set('trust proxy', trust);
    app.get('/', (req, res) => res.json({ ip: req.ip, secure: req.secure, protocol: req.protocol }));
    const srv = createServer({ trustedProxies: '127.0.0.1' }, app);
    const { port } = await listen(srv);
    try {
      const [a] = await ask(port, get('/', 'X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n'));
      assert.deepEqual(a, { ip: '203.0.113.9', secure: true, protocol: 'https' });
      const [b] = await ask(port, get('/'));
      assert.deepEqual(b, { ip: '127.0.0.1', secure: false, protocol: 'http' });
    } finally {
      await close(srv);
    }
  });
}

test('createServer: proxyProtocol v1 and v2 from a trusted proxy', async () => {
  const srv = createServer({ trustedProxies: '127.0.0.1', proxyProtocol: true }, peer);
  const { port } = await listen(srv);
  try {
    const [a] = await ask(port, 'PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\n' + get('/'));
    assert.deepEqual(a, { addr: '192.0.2.1', port: 5555, encrypted: false });
    const body = Buffer.concat([Buffer.from([192, 0, 2, 7, 192, 0, 2, 2, 0x1a, 0x0a, 0, 80])]);
    const v2 = Buffer.concat([
      Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1'),
      Buffer.from([0x21, 0x11, 0, body.length]),
      body,
    ]);
    const [b] = await ask(port, Buffer.concat([v2, Buffer.from(get('/'))]));
    assert.deepEqual(b, { addr: '192.0.2.7', port: 6666, encrypted: false });
    // no header: closed, no answer
    assert.equal(await raw(port, get('/')), '');
  } finally {
    await close(srv);
  }
});

test('App: req.remoteAddress and req.secure from a trusted proxy', async () => {
  const app = new App({ trustedProxies: '127.0.0.1' });
  app.get('/', (req, res) => res.json({ addr: req.remoteAddress, secure: req.secure }));
  const port = await new Promise((resolve, reject) =>
    app.listen(0, '127.0.0.1', (err, p) => (err ? reject(err) : resolve(p))));
  try {
    assert.deepEqual((await ask(port, get('/', XFF)))[0], { addr: '203.0.113.9', secure: true });
    assert.deepEqual((await ask(port, get('/')))[0], { addr: '127.0.0.1', secure: false });
  } finally {
    await new Promise((r) => app.close(r, 0));
  }
});

test('access log: file, gunicorn atoms, reopenLogs after a rename', async () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'piston-alog-'));
  const file = path.join(dir, 'access.log');
  const srv = createServer({ accessLogFile: file, accessLogFormat: '%(h)s %(u)s "%(r)s" %(s)s %(b)s' }, (req, res) => res.end('hi'));
  const { port } = await listen(srv);
  const lines = async (f, n) => {
    for (let i = 0; i < 200; i++) {
      const got = fs.existsSync(f) ? fs.readFileSync(f, 'latin1').split('\n').filter(Boolean) : [];
      if (got.length >= n) return got;
      await new Promise((r) => setTimeout(r, 20));
    }
    return [];
  };
  try {
    await raw(port, get('/one', 'Authorization: Basic YWxpY2U6cHc=\r\n')); // alice:pw
    assert.deepEqual(await lines(file, 1), ['127.0.0.1 alice "GET /one HTTP/1.1" 200 2']);
    fs.renameSync(file, file + '.1');
    srv.reopenLogs();
    await raw(port, get('/two'));
    assert.deepEqual(await lines(file, 1), ['127.0.0.1 - "GET /two HTTP/1.1" 200 2']);
  } finally {
    await close(srv);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('metrics, health and limitConcurrency in C', async () => {
  let release;
  const held = new Promise((r) => (release = r));
  const srv = createServer({ metrics: '/metrics', health: '/ready', limitConcurrency: 1 }, async (req, res) => {
    if (req.url === '/hold') await held;
    res.end('ok');
  });
  const { port } = await listen(srv);
  try {
    const net = require('node:net');
    const s = net.connect(port, '127.0.0.1');
    s.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 200));
    const [busy] = parseResponses(await raw(port, get('/other')));
    assert.equal(busy.status, 503);
    const [ready] = parseResponses(await raw(port, get('/ready')));
    assert.equal(ready.body, 'OK\n');
    const [m] = parseResponses(await raw(port, get('/metrics')));
    assert.match(m.headers['content-type'], /version=0\.0\.4/);
    assert.match(m.body, /^piston_in_flight_requests 1$/m);
    assert.match(m.body, /^piston_rejected_total\{status="503"\} 1$/m);
    release();
    s.destroy();
  } finally {
    await close(srv);
  }
});
