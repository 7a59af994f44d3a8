'use strict';
// Express 5, Koa 3 and Fastify 5, unchanged, on piston.createServer: each app
// runs twice, on node:http and on Piston, and the responses must match
// (status, key headers, body).

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Readable } = require('node:stream');
const piston = require('../..');
const { listen, close, request, raw, parseResponses } = require('./helpers');

const KEY_HEADERS = [
  'content-type',
  'content-length',
  'transfer-encoding',
  'location',
  'set-cookie',
  'etag',
  'last-modified',
  'cache-control',
  'content-disposition',
  'content-range',
  'accept-ranges',
  'vary',
  'x-powered-by',
  'x-custom',
  'allow',
];

function pick(r) {
  const h = {};
  for (const k of KEY_HEADERS) if (r.headers[k] !== undefined) h[k] = r.headers[k];
  return { status: r.status, headers: h, body: r.body };
}

let dir;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'piston-fw-'));
  fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello static\n');
  fs.writeFileSync(path.join(dir, 'page.html'), '<h1>page</h1>\n');
  fs.writeFileSync(path.join(dir, 'report.csv'), 'a,b\n1,2\n'.repeat(1000));
  const t = new Date('2024-01-02T03:04:05Z');
  for (const f of fs.readdirSync(dir)) fs.utimesSync(path.join(dir, f), t, t);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

// Runs `requests` against the app on node:http and on Piston; compares.
async function compare(makeStart, requests) {
  const results = [];
  for (const flavour of ['node', 'piston']) {
    const { port, stop } = await makeStart(flavour);
    try {
      const out = [];
      for (const [method, url, opts] of requests) out.push(pick(await request(port, method, url, opts)));
      results.push(out);
    } finally {
      await stop();
    }
  }
  const [node, pist] = results;
  for (let i = 0; i < requests.length; i++) {
    assert.deepEqual(pist[i], node[i], `${requests[i][0]} ${requests[i][1]}`);
  }
  return node;
}

function create(flavour, handler) {
  return flavour === 'node' ? http.createServer(handler) : piston.createServer(handler);
}

describe('Express 5', () => {
  const express = require('express');
  const cookieParser = require('cookie-parser');

  function makeApp() {
    const app = express();
    app.use(cookieParser('secret'));
    app.use(express.json());
    app.use(express.urlencoded({ extended: false }));
    app.use('/static', express.static(dir));
    app.get('/users/:id', (req, res) => res.json({ id: req.params.id, q: req.query, ip: req.ip, proto: req.protocol }));
    app.post('/json', (req, res) => res.status(201).json({ got: req.body }));
    app.post('/form', (req, res) => res.send(`name=${req.body.name}`));
    app.get('/cookies', (req, res) => {
      res.cookie('a', '1', { httpOnly: true, path: '/' });
      res.cookie('signed', 'v', { signed: true });
      res.json({ cookies: req.cookies, signed: req.signedCookies });
    });
    app.get('/redirect', (req, res) => res.redirect('/users/1'));
    app.get('/redirect301', (req, res) => res.redirect(301, '/elsewhere'));
    app.get('/download', (req, res) => res.download(path.join(dir, 'report.csv')));
    app.get('/sendfile', (req, res) => res.sendFile(path.join(dir, 'page.html')));
    app.get('/stream', (req, res) => {
      res.type('text/plain');
      Readable.from(['one ', 'two ', 'three']).pipe(res);
    });
    app.get('/write', (req, res) => {
      res.set('X-Custom', 'yes');
      res.write('a');
      setTimeout(() => res.end('b'), 5);
    });
    app.get('/boom', () => {
      throw new Error('boom');
    });
    app.get('/async-boom', async () => {
      throw new Error('async boom');
    });
    app.get('/teapot', (req, res) => res.sendStatus(418));
    app.route('/multi').get((req, res) => res.send('get')).put((req, res) => res.send('put'));
    // error middleware
    app.use((err, req, res, next) => {
      res.status(500).json({ error: err.message });
    });
    return app;
  }

  test('same responses as on node:http', async () => {
    const start = async (flavour) => {
      const server = create(flavour, makeApp());
      const { port } = await listen(server);
      return { port, stop: () => close(server) };
    };
    const node = await compare(start, [
      ['GET', '/users/42?sort=asc&tags=a'],
      ['POST', '/json', { headers: { 'Content-Type': 'application/json' }, body: '{"a":[1,2,{"b":"c"}]}' }],
      ['POST', '/json', { headers: { 'Content-Type': 'application/json' }, body: '{bad json' }],
      ['POST', '/form', { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'name=J%C3%B6rg&x=1' }],
      ['GET', '/cookies', { headers: { Cookie: 'x=1; y=two' } }],
      ['GET', '/redirect'],
      ['GET', '/redirect301'],
      ['GET', '/static/hello.txt'],
      ['HEAD', '/static/hello.txt'],
      ['GET', '/static/hello.txt', { headers: { Range: 'bytes=0-4' } }],
      ['GET', '/static/missing.txt'],
      ['GET', '/static/../package.json'],
      ['GET', '/download'],
      ['GET', '/sendfile'],
      ['GET', '/stream'],
      ['GET', '/write'],
      ['GET', '/boom'],
      ['GET', '/async-boom'],
      ['GET', '/teapot'],
      ['PUT', '/multi'],
      ['DELETE', '/multi'],
      ['GET', '/nowhere'],
    ]);
    // sanity: the apps really did their work
    assert.equal(JSON.parse(node[0].body).id, '42');
    assert.equal(node[1].status, 201);
    assert.equal(node[5].headers.location, '/users/1');
    assert.match(node[12].headers['content-disposition'], /^attachment; filename="?report.csv"?$/);
    assert.equal(node[14].body, 'one two three');
    assert.equal(JSON.parse(node[16].body).error, 'boom');
  });

  test('an If-None-Match revalidation gives 304 on both', async () => {
    const start = async (flavour) => {
      const server = create(flavour, makeApp());
      const { port } = await listen(server);
      return { port, stop: () => close(server) };
    };
    // learn the ETag from node:http, then revalidate on both
    const s = http.createServer(makeApp());
    const { port } = await listen(s);
    const first = await request(port, 'GET', '/static/hello.txt');
    await close(s);
    const out = await compare(start, [['GET', '/static/hello.txt', { headers: { 'If-None-Match': first.headers.etag } }]]);
    assert.equal(out[0].status, 304);
  });
});

describe('Koa 3 with @koa/router and @koa/bodyparser', () => {
  const Koa = require('koa');
  const Router = require('@koa/router');
  const { bodyParser } = require('@koa/bodyparser');

  function makeApp() {
    const app = new Koa();
    app.silent = true;
    const router = new Router();
    router.get('/items/:id', (ctx) => {
      ctx.body = { id: ctx.params.id, q: ctx.query, method: ctx.method, protocol: ctx.protocol, ip: ctx.ip };
    });
    router.post('/items', (ctx) => {
      ctx.status = 201;
      ctx.body = { created: ctx.request.body };
    });
    router.get('/text', (ctx) => {
      ctx.set('X-Custom', 'k');
      ctx.type = 'text/plain';
      ctx.body = 'plain text';
    });
    router.get('/stream', (ctx) => {
      ctx.type = 'text/plain';
      ctx.body = Readable.from(['s1 ', 's2 ', 's3']);
    });
    router.get('/redirect', (ctx) => ctx.redirect('/items/9'));
    router.get('/cookie', (ctx) => {
      ctx.cookies.set('k', 'v', { httpOnly: true });
      ctx.body = { seen: ctx.cookies.get('in') ?? null };
    });
    router.get('/boom', () => {
      throw new Error('koa boom');
    });
    router.get('/buffer', (ctx) => {
      ctx.body = Buffer.from('raw bytes');
    });
    router.get('/empty', (ctx) => {
      ctx.status = 204;
    });
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (err) {
        ctx.status = 500;
        ctx.body = { error: err.message };
      }
    });
    app.use(bodyParser());
    app.use(router.routes());
    app.use(router.allowedMethods());
    return app;
  }

  test('same responses as on node:http', async () => {
    const start = async (flavour) => {
      const server = create(flavour, makeApp().callback());
      const { port } = await listen(server);
      return { port, stop: () => close(server) };
    };
    const node = await compare(start, [
      ['GET', '/items/5?x=y'],
      ['POST', '/items', { headers: { 'Content-Type': 'application/json' }, body: '{"name":"n"}' }],
      ['POST', '/items', { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'a=1&b=2' }],
      ['GET', '/text'],
      ['HEAD', '/text'],
      ['GET', '/stream'],
      ['GET', '/redirect'],
      ['GET', '/cookie', { headers: { Cookie: 'in=abc' } }],
      ['GET', '/boom'],
      ['GET', '/buffer'],
      ['GET', '/empty'],
      ['PUT', '/text'],
      ['GET', '/none'],
    ]);
    assert.equal(JSON.parse(node[0].body).id, '5');
    assert.deepEqual(JSON.parse(node[1].body), { created: { name: 'n' } });
    assert.equal(node[5].body, 's1 s2 s3');
  });
});

describe('Fastify 5 through serverFactory', () => {
  const Fastify = require('fastify');

  function makeApp(flavour) {
    const opts = { logger: false, forceCloseConnections: true };
    if (flavour === 'piston') opts.serverFactory = (handler) => piston.createServer(handler);
    const app = Fastify(opts);
    app.get('/hello/:name', async (req) => ({ hello: req.params.name, q: req.query }));
    app.post('/echo', async (req, reply) => {
      reply.code(201).header('X-Custom', 'f');
      return { body: req.body };
    });
    app.get('/text', (req, reply) => {
      reply.type('text/plain').send('fastify text');
    });
    app.get('/stream', (req, reply) => {
      reply.type('text/plain').send(Readable.from(['f1 ', 'f2']));
    });
    app.get('/redirect', (req, reply) => reply.redirect('/hello/x'));
    app.get('/boom', async () => {
      throw new Error('fastify boom');
    });
    app.get('/schema', {
      schema: { querystring: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } },
      handler: async (req) => ({ n: req.query.n }),
    });
    return app;
  }

  test('same responses as on node:http', async () => {
    const start = async (flavour) => {
      const app = makeApp(flavour);
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { port: app.server.address().port, stop: () => app.close() };
    };
    const node = await compare(start, [
      ['GET', '/hello/world?a=1'],
      ['POST', '/echo', { headers: { 'Content-Type': 'application/json' }, body: '{"k":[true,null]}' }],
      ['POST', '/echo', { headers: { 'Content-Type': 'application/json' }, body: '{oops' }],
      ['GET', '/text'],
      ['HEAD', '/text'],
      ['GET', '/stream'],
      ['GET', '/redirect'],
      ['GET', '/boom'],
      ['GET', '/schema?n=3'],
      ['GET', '/schema?n=abc'],
      ['GET', '/missing'],
    ]);
    assert.equal(JSON.parse(node[0].body).hello, 'world');
    assert.equal(node[1].status, 201);
    assert.equal(node[9].status, 400);
  });

  test("Fastify's 'clientError' handler answers the engine's rejections itself, as on node:http", async () => {
    const big = 'GET /text HTTP/1.1\r\nHost: a\r\nX-Big: ' + 'a'.repeat(20000) + '\r\n\r\n';
    const bad = 'HELLO\r\n\r\n';
    const answers = {};
    for (const flavour of ['node', 'piston']) {
      const app = makeApp(flavour);
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address();
      const codes = [];
      app.server.on('clientError', (err) => codes.push(err.code));
      try {
        answers[flavour] = [await raw(port, big), await raw(port, bad)];
        for (let i = 0; i < 100 && codes.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
        assert.deepEqual(codes, ['HPE_HEADER_OVERFLOW', 'HPE_INVALID_METHOD']);
        assert.equal((await request(port, 'GET', '/text')).body, 'fastify text');
      } finally {
        await app.close();
      }
    }
    // Fastify's own bytes (a JSON body), nothing of the engine's
    assert.match(answers.piston[0], /^HTTP\/1\.1 431 [^\r]*\r\nContent-Length: \d+\r\nContent-Type: application\/json\r\n\r\n\{/);
    assert.match(answers.piston[1], /^HTTP\/1\.1 400 /);
    assert.deepEqual(answers.piston, answers.node);
  });
});

test('every request handle was released once the servers closed', async () => {
  const { native } = require('../../node/binding');
  for (let i = 0; i < 100 && native.live() !== 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(native.live(), 0);
});
