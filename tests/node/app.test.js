'use strict';
// The lean native API: const { App } = require('piston').

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { App } = require('../..');
const { connect, raw, parseResponses, request, sleep } = require('./helpers');

function start(app, options) {
  return new Promise((resolve, reject) => {
    app.listen(0, '127.0.0.1', (err, port) => (err ? reject(err) : resolve(port)));
  });
}
function stop(app) {
  return new Promise((r) => app.close(r, 0));
}

let dir;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'piston-app-'));
  fs.writeFileSync(path.join(dir, 'a.txt'), 'static file\n');
  fs.writeFileSync(path.join(dir, 'b.json'), '{"b":1}');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('App: routing and request views', () => {
  test('params, query, path, headers, methods, 404', async () => {
    const app = new App();
    app.get('/users/:id/posts/:post', (req, res) =>
      res.json({
        method: req.method,
        url: req.url,
        path: req.path,
        params: req.params,
        query: req.query,
        ua: req.getHeader('X-Agent'),
        none: req.getHeader('x-none') ?? null,
        headers: req.headers,
        remote: req.remoteAddress,
      }),
    );
    app.post('/m', (req, res) => res.end('post'));
    app.put('/m', (req, res) => res.end('put'));
    app.delete('/m', (req, res) => res.end('delete'));
    app.all('/any', (req, res) => res.end('any ' + req.method));
    const port = await start(app);
    try {
      const r = await request(port, 'GET', '/users/7/posts/x%20y?a=1&a=2&b=', { headers: { 'X-Agent': 't', 'X-Dup': '1' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'application/json');
      const j = JSON.parse(r.body);
      assert.equal(j.method, 'GET');
      assert.equal(j.url, '/users/7/posts/x%20y?a=1&a=2&b=');
      assert.equal(j.path, '/users/7/posts/x%20y');
      assert.deepEqual(j.params, { id: '7', post: 'x y' });
      assert.deepEqual(j.query, { a: ['1', '2'], b: '' });
      assert.equal(j.ua, 't');
      assert.equal(j.none, null);
      assert.equal(j.headers['x-dup'], '1');
      assert.equal(j.headers.host, `127.0.0.1:${port}`);
      assert.equal(j.remote, '127.0.0.1');
      for (const m of ['POST', 'PUT', 'DELETE']) assert.equal((await request(port, m, '/m', { body: '' })).body, m.toLowerCase());
      assert.equal((await request(port, 'PATCH', '/any', { body: '' })).body, 'any PATCH');
      assert.equal((await request(port, 'GET', '/m')).status, 404);
      assert.equal((await request(port, 'HEAD', '/users/1/posts/2')).status, 200);
    } finally {
      await stop(app);
    }
  });
});

describe('App: bodies', () => {
  test('await req.body() / req.json(), and req/res stay valid after await', async () => {
    const app = new App();
    app.post('/echo', async (req, res) => {
      const b = await req.body();
      await sleep(5);
      res.status(200).setHeader('X-Len', b.length).setHeader('X-Path', req.path);
      res.end(b);
    });
    app.post('/json', async (req, res) => {
      const v = await req.json();
      res.json({ got: v, ct: req.getHeader('content-type') });
    });
    const port = await start(app);
    try {
      const big = 'z'.repeat(2 * 1024 * 1024 + 3);
      const r = await request(port, 'POST', '/echo', { body: big });
      assert.equal(r.headers['x-len'], String(big.length));
      assert.equal(r.headers['x-path'], '/echo');
      assert.equal(r.body, big);
      const j = await request(port, 'POST', '/json', { headers: { 'Content-Type': 'application/json' }, body: '{"a":[1,{"b":null}]}' });
      assert.deepEqual(JSON.parse(j.body), { got: { a: [1, { b: null }] }, ct: 'application/json' });
    } finally {
      await stop(app);
    }
  });

  test('streaming body: for await over req, chunked upload in pieces', async () => {
    const app = new App();
    app.post('/count', async (req, res) => {
      let n = 0;
      let chunks = 0;
      for await (const c of req) {
        n += c.length;
        chunks++;
      }
      res.end(`${n} ${chunks > 0}`);
    });
    const port = await start(app);
    try {
      const s = await connect(port);
      const got = [];
      s.on('data', (d) => got.push(d));
      s.write('POST /count HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n');
      await sleep(30);
      s.write('6\r\n world\r\n0\r\n\r\n');
      await new Promise((r) => s.on('close', r));
      assert.equal(parseResponses(Buffer.concat(got).toString())[0].body, '11 true');
    } finally {
      await stop(app);
    }
  });

  test('a body over maxBodySize is rejected by the engine (413)', async () => {
    const app = new App({ maxBodySize: 100 });
    let called = false;
    app.post('/', async (req, res) => {
      called = true;
      res.end(await req.body());
    });
    const port = await start(app);
    try {
      const text = await raw(port, 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n' + 'a'.repeat(1000));
      assert.match(text, /^HTTP\/1\.1 413 /);
      assert.equal(called, false);
    } finally {
      await stop(app);
    }
  });
});

describe('App: responses', () => {
  test('status, headers, write + end (chunked), json, sendFile, handler errors -> 500', async () => {
    const app = new App();
    app.get('/chunks', (req, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.write('a');
      res.write(Buffer.from('b'));
      setTimeout(() => res.end('c'), 5);
    });
    app.get('/status', (req, res) => res.status(418).end());
    app.get('/file', (req, res) => res.sendFile(path.join(dir, 'b.json')));
    app.get('/nofile', (req, res) => res.sendFile(path.join(dir, 'nope')));
    app.get('/throw', () => {
      throw new Error('sync');
    });
    app.get('/reject', async () => {
      throw new Error('async');
    });
    const errors = [];
    app.onError = (err, req, res) => {
      errors.push(err.message);
      res.status(500).end('failed: ' + err.message);
    };
    const port = await start(app);
    try {
      const c = await request(port, 'GET', '/chunks');
      assert.equal(c.headers['transfer-encoding'], 'chunked');
      assert.equal(c.body, 'abc');
      assert.equal((await request(port, 'GET', '/status')).status, 418);
      const f = await request(port, 'GET', '/file');
      assert.equal(f.headers['content-type'], 'application/json');
      assert.equal(f.headers['content-length'], '7');
      assert.equal(f.body, '{"b":1}');
      assert.equal((await request(port, 'GET', '/nofile')).status, 404);
      const t = await request(port, 'GET', '/throw');
      assert.equal(t.status, 500);
      assert.equal(t.body, 'failed: sync');
      assert.equal((await request(port, 'GET', '/reject')).body, 'failed: async');
      assert.deepEqual(errors, ['sync', 'async']);
    } finally {
      await stop(app);
    }
  });

  test("res.write() returns false under pressure, then 'drain'", async () => {
    const app = new App({ writeHighWater: 64 * 1024 });
    let falses = 0;
    app.get('/big', (req, res) => {
      const chunk = Buffer.alloc(32 * 1024, 98);
      let left = 100;
      const pump = () => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) {
            falses++;
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const port = await start(app);
    try {
      const s = await connect(port);
      s.write('GET /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
      s.pause();
      await sleep(50);
      assert.ok(falses >= 1);
      let n = 0;
      s.on('data', (d) => (n += d.length));
      s.resume();
      await new Promise((r) => s.on('close', r));
      assert.ok(n > 100 * 32 * 1024);
    } finally {
      await stop(app);
    }
  });

  test('res.onAborted fires when the client goes away', async () => {
    const app = new App();
    let aborted = false;
    app.get('/hang', (req, res) => {
      res.onAborted(() => (aborted = true));
    });
    const port = await start(app);
    try {
      const s = await connect(port);
      s.write('GET /hang HTTP/1.1\r\nHost: h\r\n\r\n');
      await sleep(30);
      // a reset: a plain FIN after a complete request is a half-close, and
      // the engine still answers it
      s.resetAndDestroy();
      for (let i = 0; i < 50 && !aborted; i++) await sleep(10);
      assert.equal(aborted, true);
    } finally {
      await stop(app);
    }
  });
});

describe('App: handlerTimeout', () => {
  test('a handler that never responds: the engine answers 503, res gets close', async () => {
    const app = new App({ handlerTimeout: 200 });
    let closed = false;
    let later;
    app.get('/hang', (req, res) => {
      res.on('close', () => {
        closed = true;
        // a late answer does nothing (and does not throw)
        later = res.status(200).end('late').ended;
      });
    });
    app.get('/ok', (req, res) => res.end('ok'));
    const port = await start(app);
    try {
      const t0 = Date.now();
      const text = await raw(port, 'GET /hang HTTP/1.1\r\nHost: h\r\n\r\n', 3000);
      const took = Date.now() - t0;
      const [r] = parseResponses(text);
      assert.equal(r.statusLine, 'HTTP/1.1 503 Service Unavailable');
      assert.equal(r.headers.connection, 'close');
      assert.equal(r.body, 'Service Unavailable\n');
      assert.ok(took >= 180 && took < 1500, String(took));
      assert.equal(closed, true);
      assert.equal(later, true);
      assert.equal((await request(port, 'GET', '/ok')).body, 'ok');
    } finally {
      await stop(app);
    }
  });
});

describe('App: many connections', () => {
  test('600 keep-alive requests over 30 connections', async () => {
    const app = new App();
    app.post('/p/:i', async (req, res) => res.end(req.params.i + ':' + (await req.text())));
    app.get('/g/:i', (req, res) => res.end(req.params.i));
    const port = await start(app);
    try {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 30 });
      const one = (i) =>
        new Promise((resolve, reject) => {
          const post = i % 2 === 0;
          const r = http.request({ port, host: '127.0.0.1', path: (post ? '/p/' : '/g/') + i, method: post ? 'POST' : 'GET', agent }, (res) => {
            let b = '';
            res.on('data', (c) => (b += c));
            res.on('end', () => resolve(b));
          });
          r.on('error', reject);
          r.end(post ? 'x'.repeat(i) : undefined);
        });
      const out = await Promise.all(Array.from({ length: 600 }, (_, i) => one(i)));
      agent.destroy();
      for (let i = 0; i < 600; i++) assert.equal(out[i], i % 2 === 0 ? `${i}:` + 'x'.repeat(i) : String(i));
    } finally {
      await stop(app);
    }
  });
});

describe('App: native routes answered by the engine', () => {
  test('app.fixed and app.static never reach JS', async () => {
    const app = new App();
    let jsCalls = 0;
    app.all('/*', (req, res) => {
      jsCalls++;
      res.status(404).end('js');
    });
    app.fixed('/health', 'ok', { 'Content-Type': 'text/plain' });
    app.fixed('/ready', '{"ready":true}', { 'Content-Type': 'application/json' }, { status: 200 });
    app.static('/static', dir);
    const port = await start(app);
    try {
      const h = await request(port, 'GET', '/health');
      assert.equal(h.status, 200);
      assert.equal(h.body, 'ok');
      assert.equal(h.headers['content-type'], 'text/plain');
      assert.equal((await request(port, 'GET', '/ready')).body, '{"ready":true}');
      const s = await request(port, 'GET', '/static/a.txt');
      assert.equal(s.body, 'static file\n');
      assert.ok(s.headers.etag);
      assert.equal((await request(port, 'GET', '/static/../../etc/passwd')).status, 404);
      assert.equal(jsCalls, 0);
      // pipelined fixed responses, exact bytes
      const text = await raw(port, 'GET /health HTTP/1.1\r\nHost: h\r\n\r\nGET /health HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
      assert.equal(parseResponses(text).map((r) => r.body).join(','), 'ok,ok');
      assert.equal((await request(port, 'GET', '/other')).body, 'js');
      assert.equal(jsCalls, 1);
    } finally {
      await stop(app);
    }
  });

  test('listen on a busy port fails with EADDRINUSE; close(cb) lets the process go', async () => {
    const a = new App();
    const port = await start(a);
    const b = new App();
    const err = await new Promise((r) => b.listen(port, '127.0.0.1', r));
    assert.equal(err && err.code, 'EADDRINUSE');
    await stop(a);
  });
});

test('every request handle was released once the servers closed', async () => {
  const { native } = require('../../node/binding');
  for (let i = 0; i < 100 && native.live() !== 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(native.live(), 0);
});
