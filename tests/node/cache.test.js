'use strict';
// The engine's response cache under the Node hosts: a Piston-Cache field
// set with res.setHeader (plain handler, Express) or on App's response is
// taken by the engine, and the next requests are answered without calling
// JS. Raw requests; each handler counts its calls.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const piston = require('../..');
const { listen, close, request, raw, parseResponses, sleep } = require('./helpers');

let calls = 0;

// /c/... answers "call K" marked with the query's fields
function handler(req, res) {
  const u = new URL(req.url, 'http://x');
  const q = u.searchParams;
  const answer = () => {
    calls++;
    const ttl = q.get('ttl') ?? '30';
    if (ttl !== '0') res.setHeader('Piston-Cache', `ttl=${ttl}`);
    if (q.get('vary')) res.setHeader('Vary', q.get('vary'));
    if (q.get('cc')) res.setHeader('Cache-Control', q.get('cc'));
    if (q.get('setcookie')) res.setHeader('Set-Cookie', 'sid=1');
    if (q.get('etag')) res.setHeader('ETag', '"v1"');
    res.setHeader('Content-Type', 'text/plain');
    res.end(`call ${calls}\n`);
  };
  if (q.get('ms')) setTimeout(answer, Number(q.get('ms')));
  else answer();
}

describe('createServer with the cache', () => {
  let server;
  let port;
  before(async () => {
    server = piston.createServer({ cacheSize: 1000000 }, handler);
    ({ port } = await listen(server));
  });
  after(() => close(server));

  test('a hit is served without the handler, field removed, Age added', async () => {
    const a = await request(port, 'GET', '/c/a');
    assert.equal(a.headers['piston-cache'], undefined);
    const before = calls;
    const b = await request(port, 'GET', '/c/a');
    assert.equal(b.body, a.body);
    assert.equal(b.headers.age, '0');
    assert.equal(calls, before);
    const st = server.cache.stats();
    assert.ok(st.hits >= 1 && st.entries >= 1 && st.bytes > 0);
  });

  test('HEAD and 304 from the entry', async () => {
    const a = await request(port, 'GET', '/c/cond?etag=1');
    const before = calls;
    const h = await request(port, 'HEAD', '/c/cond?etag=1');
    assert.equal(h.status, 200);
    assert.equal(h.headers['content-length'], String(a.body.length));
    const n = await request(port, 'GET', '/c/cond?etag=1', { headers: { 'If-None-Match': '"v1"' } });
    assert.equal(n.status, 304);
    assert.equal(calls, before);
  });

  test('Vary', async () => {
    const t = '/c/vary?vary=Accept-Language';
    const en = await request(port, 'GET', t, { headers: { 'Accept-Language': 'en' } });
    const fr = await request(port, 'GET', t, { headers: { 'Accept-Language': 'fr' } });
    assert.notEqual(en.body, fr.body);
    const en2 = await request(port, 'GET', t, { headers: { 'Accept-Language': 'en' } });
    assert.equal(en2.body, en.body);
  });

  for (const [q, headers] of [
    ['cc=private', {}],
    ['cc=no-store', {}],
    ['setcookie=1', {}],
    ['', { Authorization: 'Bearer x' }],
    ['ttl=0', {}],
  ]) {
    test(`not stored: ${q || 'Authorization'}`, async () => {
      const t = `/c/no?${q}`;
      const a = await request(port, 'GET', t, { headers });
      const b = await request(port, 'GET', t, { headers });
      assert.notEqual(a.body, b.body);
    });
  }

  test('TTL expiry', async () => {
    const a = await request(port, 'GET', '/c/ttl?ttl=1');
    assert.equal((await request(port, 'GET', '/c/ttl?ttl=1')).body, a.body);
    await sleep(1300);
    assert.notEqual((await request(port, 'GET', '/c/ttl?ttl=1')).body, a.body);
  });

  test('200 concurrent requests on an expired key call the handler once', async () => {
    const t = '/c/herd?ttl=1&ms=300';
    await request(port, 'GET', t);
    await sleep(1300);
    const before = calls;
    const rs = await Promise.all(Array.from({ length: 200 }, () => request(port, 'GET', t)));
    assert.equal(calls, before + 1);
    assert.equal(new Set(rs.map((r) => r.body)).size, 1);
    assert.ok(server.cache.stats().coalesced > 0);
  });

  test('server.cache.purge by key and by prefix', async () => {
    const a = await request(port, 'GET', '/c/p/1');
    const b = await request(port, 'GET', '/c/p/2');
    assert.equal(server.cache.purge('/c/p/1'), 1);
    assert.notEqual((await request(port, 'GET', '/c/p/1')).body, a.body);
    assert.equal((await request(port, 'GET', '/c/p/2')).body, b.body);
    assert.equal(server.cache.purge('/c/p/', { prefix: true }), 2);
    assert.throws(() => server.cache.purge(42), TypeError);
  });

  test('pipelined hits on one connection', async () => {
    await request(port, 'GET', '/c/pipe');
    const text = await raw(port, 'GET /c/pipe HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(10) +
      'GET /c/pipe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const rs = parseResponses(text);
    assert.equal(rs.length, 11);
    assert.equal(new Set(rs.map((r) => r.body)).size, 1);
  });
});

test('the memory bound holds under a key flood', async () => {
  const server = piston.createServer({ cacheSize: 40000 }, (req, res) => {
    res.setHeader('Piston-Cache', 'ttl=60');
    res.end('x'.repeat(1000));
  });
  const { port } = await listen(server);
  try {
    for (let i = 0; i < 300; i++) await request(port, 'GET', `/flood/${i}`);
    const st = server.cache.stats();
    assert.ok(st.bytes <= 40000, JSON.stringify(st));
    assert.ok(st.evictions >= 250 && st.entries >= 20, JSON.stringify(st));
  } finally {
    await close(server);
  }
});

test('Express: res.set("Piston-Cache") works unchanged', async () => {
  let n = 0;
  const app = express();
  app.get('/product/:id', (req, res) => {
    n++;
    res.set('Piston-Cache', 'ttl=30').json({ id: req.params.id, n });
  });
  app.get('/user', (req, res) => {
    n++;
    res.json({ n });
  });
  const server = piston.createServer({ cacheSize: 100000 }, app);
  const { port } = await listen(server);
  try {
    const a = await request(port, 'GET', '/product/1');
    assert.equal(a.headers['content-type'], 'application/json; charset=utf-8');
    assert.ok(a.headers.etag);
    const b = await request(port, 'GET', '/product/1');
    assert.equal(b.body, a.body);
    assert.equal(n, 1);
    const c = await request(port, 'GET', '/product/1', { headers: { 'If-None-Match': a.headers.etag } });
    assert.equal(c.status, 304);
    await request(port, 'GET', '/user');
    await request(port, 'GET', '/user');
    assert.equal(n, 3);
  } finally {
    await close(server);
  }
});

test('App: the same field, app.cache.purge and stats', async () => {
  let n = 0;
  const app = new piston.App({ cacheSize: 100000 });
  app.get('/hello', (req, res) => {
    n++;
    res.setHeader('Piston-Cache', 'ttl=30');
    res.end(`hello ${n}`);
  });
  await new Promise((resolve, reject) => app.listen(0, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  try {
    const a = await request(app.port, 'GET', '/hello');
    const b = await request(app.port, 'GET', '/hello');
    assert.equal(a.body, 'hello 1');
    assert.equal(b.body, 'hello 1');
    assert.equal(b.headers['piston-cache'], undefined);
    assert.equal(app.cache.stats().hits, 1);
    assert.equal(app.cache.purge('/hello'), 1);
    assert.equal((await request(app.port, 'GET', '/hello')).body, 'hello 2');
  } finally {
    await new Promise((resolve) => app.close(resolve));
  }
});

test('cacheRoutes: responses under a prefix stored without the field', async () => {
  let n = 0;
  const server = piston.createServer({ cacheSize: 100000, cacheRoutes: { '/api': 30 } }, (req, res) => {
    n++;
    res.end(`n=${n}`);
  });
  const { port } = await listen(server);
  try {
    const a = await request(port, 'GET', '/api/config');
    assert.equal((await request(port, 'GET', '/api/config')).body, a.body);
    assert.notEqual((await request(port, 'GET', '/other')).body, (await request(port, 'GET', '/other')).body);
  } finally {
    await close(server);
  }
  // a prefix without its leading '/': listen() reports it as node:http reports errors
  const bad = piston.createServer({ cacheRoutes: { nope: 5 } });
  const err = await new Promise((resolve) => bad.once('error', resolve).listen(0, '127.0.0.1'));
  assert.match(err.message, /piston_server_cache_route/);
});
