'use strict';
// What real apps hit first (issue #14): listen() forms, the http.Server
// class, supertest, framing details Koa and HEAD handlers rely on, header
// validation, socket errors, handler throws and close(). Wire behaviour is
// checked on raw bytes.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const util = require('node:util');
const { spawnSync } = require('node:child_process');
const piston = require('../..');
const { listen, close, raw, request } = require('./helpers');

const ROOT = path.resolve(__dirname, '../..');

async function withServer(handler, fn) {
  const server = piston.createServer(handler);
  const { port } = await listen(server);
  try {
    return await fn(port, server);
  } finally {
    await close(server);
  }
}

// A port that is free now (bound and released by node:net).
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function runChild(code, timeout = 10000) {
  return spawnSync(process.execPath, ['-e', code], { cwd: ROOT, timeout, encoding: 'utf8' });
}

describe('listen() forms', () => {
  test("listen({ port: '<n>' }) binds that port (process.env.PORT is a string)", async () => {
    const port = await freePort();
    const server = piston.createServer((req, res) => res.end('ok'));
    await listen(server, { port: String(port), host: '127.0.0.1' });
    try {
      assert.equal(server.address().port, port);
      assert.equal((await request(port, 'GET', '/')).body, 'ok');
    } finally {
      await close(server);
    }
  });

  test("listen('<n>', host) binds that port too", async () => {
    const port = await freePort();
    const server = piston.createServer((req, res) => res.end('ok'));
    await listen(server, String(port), '127.0.0.1');
    try {
      assert.equal(server.address().port, port);
    } finally {
      await close(server);
    }
  });

  test('a bad port throws ERR_SOCKET_BAD_PORT as net.Server does', () => {
    for (const bad of [{ port: 'abc' }, { port: 70000 }, { port: -1 }]) {
      const expected = (() => {
        try {
          http.createServer().listen(bad);
        } catch (e) {
          return e;
        }
      })();
      assert.throws(
        () => piston.createServer().listen(bad),
        (e) => e.code === 'ERR_SOCKET_BAD_PORT' && e.message === expected.message && e instanceof RangeError,
      );
    }
  });
});

describe('the Server class, as http.Server', () => {
  test('Server(handler) without new; instanceof http.Server and net.Server', async () => {
    const server = piston.Server((req, res) => res.end('no new'));
    assert.ok(server instanceof piston.Server);
    assert.ok(server instanceof http.Server);
    assert.ok(server instanceof net.Server);
    assert.equal(server.listening, false);
    const { port } = await listen(server);
    assert.equal(server.listening, true);
    assert.equal((await request(port, 'GET', '/')).body, 'no new');
    await close(server);
    assert.equal(server.listening, false);
  });

  test('Server.call(this) with util.inherits, and class extends', async () => {
    function Legacy(handler) {
      piston.Server.call(this, handler);
      this.tag = 'legacy';
    }
    util.inherits(Legacy, piston.Server);
    const a = new Legacy((req, res) => res.end('legacy'));
    assert.ok(a instanceof http.Server);
    assert.equal(a.tag, 'legacy');
    const pa = await listen(a);
    assert.equal((await request(pa.port, 'GET', '/')).body, 'legacy');
    await close(a);

    class Modern extends piston.Server {
      constructor() {
        super((req, res) => res.end('modern'));
      }
    }
    const b = new Modern();
    assert.ok(b instanceof net.Server);
    const pb = await listen(b);
    assert.equal((await request(pb.port, 'GET', '/')).body, 'modern');
    await close(b);
  });

  test('server._handle is there while listening and null from close() on', async () => {
    const server = piston.createServer((req, res) => res.end());
    assert.equal(server._handle, null);
    await listen(server);
    assert.ok(server._handle);
    const closed = new Promise((r) => server.close(r));
    assert.equal(server._handle, null);
    assert.equal(server.address(), null);
    await closed;
  });
});

describe('supertest', () => {
  // Both generations: before 7.2 supertest closes only a server with a
  // _handle (a server without one is never closed and the process never
  // exits); from 7.2 on it tracks the servers it started.
  for (const mod of ['supertest', 'supertest-legacy']) {
    test(`${mod}: requests run and the process exits on its own`, () => {
      const r = runChild(`
        const request = require(${JSON.stringify(mod)});
        const piston = require('.');
        const server = piston.createServer((req, res) => {
          res.setHeader('Content-Type', 'text/plain');
          res.end('hi ' + req.url);
        });
        (async () => {
          const a = await request(server).get('/a').expect(200, 'hi /a');
          const b = await request(server).get('/b').expect('Content-Type', 'text/plain');
          console.log('done', a.text, b.text, server.listening);
        })().catch((e) => { console.error(e); process.exit(1); });
      `);
      assert.equal(r.signal, null, `the process did not exit (${mod} left the server open)`);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'done hi /a hi /b false');
    });
  }
});

describe('framing details', () => {
  test("Koa's ctx.set('Transfer-Encoding', 'chunked') gives a chunked body", async () => {
    const Koa = require('koa');
    const app = new Koa();
    app.use((ctx) => {
      ctx.set('Transfer-Encoding', 'chunked');
      ctx.body = 'hello koa';
    });
    await withServer(app.callback(), async (port) => {
      const text = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
      assert.match(text, /\r\nTransfer-Encoding: chunked\r\n/i);
      assert.doesNotMatch(text, /Content-Length/i);
      assert.ok(text.endsWith('\r\n\r\n9\r\nhello koa\r\n0\r\n\r\n'), JSON.stringify(text));
    });
  });

  test('Transfer-Encoding from setHeader() and from writeHead() with end(body)', async () => {
    await withServer(
      (req, res) => {
        if (req.url === '/set') res.setHeader('Transfer-Encoding', 'chunked');
        else res.writeHead(200, { 'transfer-encoding': 'chunked' });
        res.end('abc');
      },
      async (port) => {
        for (const url of ['/set', '/head']) {
          const text = await raw(port, `GET ${url} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`);
          assert.match(text, /\r\nTransfer-Encoding: chunked\r\n/i, url);
          assert.ok(text.endsWith('\r\n\r\n3\r\nabc\r\n0\r\n\r\n'), `${url}: ${JSON.stringify(text)}`);
        }
      },
    );
  });

  test("a HEAD whose end(body) differs from its Content-Length gets the head (node:http's)", async () => {
    await withServer(
      (req, res) => {
        if (req.url === '/ok') return res.end('ok');
        if (req.url === '/obj') res.writeHead(200, { 'Content-Length': 10 });
        else res.setHeader('Content-Length', '10');
        res.end('abc');
      },
      async (port) => {
        const text = await raw(
          port,
          'HEAD /set HTTP/1.1\r\nHost: h\r\n\r\nHEAD /obj HTTP/1.1\r\nHost: h\r\n\r\nGET /ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
        );
        const heads = text.split('HTTP/1.1 ').slice(1);
        assert.equal(heads.length, 3, text);
        assert.match(heads[0], /^200 OK\r\n/);
        assert.match(heads[0], /Content-Length: 10\r\n/);
        assert.ok(heads[0].endsWith('\r\n\r\n'), 'no body on a HEAD');
        assert.match(heads[1], /^200 OK\r\n/);
        assert.match(heads[1], /Content-Length: 10\r\n/);
        // the connection stays usable
        assert.match(heads[2], /^200 OK\r\n/);
        assert.ok(heads[2].endsWith('\r\n\r\nok'));
      },
    );
  });

  test('writeHead() headers with invalid characters throw ERR_INVALID_CHAR at the call', async () => {
    // node:http's own errors for the same calls
    const nodeErr = (fn) => {
      const res = new http.ServerResponse(new http.IncomingMessage(null));
      try {
        fn(res);
      } catch (e) {
        return e;
      }
      assert.fail('node:http did not throw');
    };
    const calls = [
      (res) => res.writeHead(200, { 'X-Bad': 'a\nb' }),
      (res) => res.writeHead(200, ['X-Bad', 'a\rb']),
      (res) => res.writeHead(200, 'OK', { 'X-Bad': 'a\u0000b' }),
      (res) => res.writeHead(200, { 'Bad Name': 'v' }),
    ];
    const expected = calls.map(nodeErr);
    assert.deepEqual(
      expected.map((e) => e.code),
      ['ERR_INVALID_CHAR', 'ERR_INVALID_CHAR', 'ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN'],
    );
    const got = [];
    await withServer(
      (req, res) => {
        try {
          calls[Number(req.url.slice(1))](res);
        } catch (e) {
          got.push(e);
        }
        res.statusCode = 200;
        if (res.headersSent) got.push(new Error('head stored after a bad header'));
        res.end('safe');
      },
      async (port) => {
        for (let i = 0; i < calls.length; i++) {
          const r = await request(port, 'GET', `/${i}`);
          assert.equal(r.status, 200);
          assert.equal(r.body, 'safe');
        }
      },
    );
    assert.equal(got.length, calls.length);
    for (let i = 0; i < calls.length; i++) {
      assert.equal(got[i].code, expected[i].code);
      assert.equal(got[i].message, expected[i].message);
      assert.equal(got[i].name, expected[i].name);
    }
  });

  test('writeHead(101) without an upgrade: a clear error, the client a 500 (the engine sends no 1xx)', async () => {
    const errors = [];
    const server = piston.createServer((req, res) => {
      res.writeHead(101);
      res.end();
    });
    server.on('error', (e) => errors.push(e));
    const { port } = await listen(server);
    try {
      const text = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
      assert.match(text, /^HTTP\/1\.1 500 /);
      assert.equal(errors.length, 1);
      assert.match(errors[0].message, /status 101: the engine cannot send a 1xx status/);
    } finally {
      await close(server);
    }
  });
});

describe('errors', () => {
  test("socket.destroy(err) emits 'error' then 'close' (true) on the socket", async () => {
    const seen = [];
    await withServer(
      (req, res) => {
        req.socket.on('error', (e) => seen.push(`error:${e.message}`));
        req.socket.on('close', (hadError) => seen.push(`close:${hadError}`));
        req.socket.destroy(new Error('gone'));
        seen.push('returned');
      },
      async (port) => {
        await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', 1000);
        for (let i = 0; i < 50 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      },
    );
    assert.deepEqual(seen, ['returned', 'error:gone', 'close:true']);
  });

  test("Koa's app.on('error') hears of socket.destroy(err)", async () => {
    const Koa = require('koa');
    const app = new Koa();
    const errors = [];
    app.on('error', (e) => errors.push(e.message));
    app.use((ctx) => {
      ctx.respond = false;
      setImmediate(() => ctx.req.socket.destroy(new Error('koa socket gone')));
    });
    await withServer(app.callback(), async (port) => {
      await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', 1000);
      for (let i = 0; i < 50 && errors.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
    });
    assert.deepEqual(errors, ['koa socket gone']);
  });

  test("a handler's throw reaches process 'uncaughtException' (the client gets its 500)", () => {
    // a child process: node's test runner has an 'uncaughtException' listener of its own
    const r = runChild(`
      const net = require('node:net');
      const piston = require('.');
      process.on('uncaughtException', (err, origin) => console.log('caught', err.message, origin));
      const server = piston.createServer((req, res) => { throw new Error('boom'); });
      server.listen(0, '127.0.0.1', () => {
        const s = net.connect(server.address().port, '127.0.0.1');
        let got = '';
        s.on('data', (d) => (got += d));
        s.on('close', () => {
          console.log(got.split('\\r\\n')[0]);
          server.close();
        });
        s.write('GET / HTTP/1.1\\r\\nHost: h\\r\\nConnection: close\\r\\n\\r\\n');
      });
    `);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['caught boom uncaughtException', 'HTTP/1.1 500 Internal Server Error']);
    assert.doesNotMatch(r.stderr, /boom/, 'not logged when the app listens');
  });
});

describe('close()', () => {
  test("an unref()'d server's close() completes", () => {
    const r = runChild(`
      const piston = require('.');
      const server = piston.createServer((req, res) => res.end());
      server.listen(0, '127.0.0.1', () => {
        server.unref();
        server.close(() => console.log('closed'));
      });
    `);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'closed');
  });

  test('close() callbacks come after the request in flight', async () => {
    const server = piston.createServer((req, res) => setTimeout(() => res.end('late'), 100));
    const { port } = await listen(server);
    const p = request(port, 'GET', '/');
    await new Promise((r) => setTimeout(r, 30));
    const order = [];
    const closed = new Promise((r) =>
      server.close(() => {
        order.push('closed');
        r();
      }),
    );
    const res = await p;
    order.push('response');
    await closed;
    assert.equal(res.body, 'late');
    assert.deepEqual(order, ['response', 'closed']);
  });
});


describe("found by node's own tests (make test-node-compat)", () => {
  test('listen() again while close() drains: both work, close(cb) and the close event come once the old drained', async () => {
    let release;
    const server = piston.createServer((req, res) => {
      if (req.url === '/slow') release = () => res.end('slow');
      else res.end('new');
    });
    const { port: p1 } = await listen(server);
    const slow = request(p1, 'GET', '/slow');
    for (let i = 0; i < 100 && !release; i++) await new Promise((r) => setTimeout(r, 10));
    const events = [];
    server.on('close', () => events.push('close event'));
    const closed = new Promise((r) => server.close(() => r(events.push('close cb'))));
    const { port: p2 } = await listen(server);
    assert.equal(server.listening, true);
    assert.equal((await request(p2, 'GET', '/')).body, 'new');
    assert.deepEqual(events, []);
    release();
    assert.equal((await slow).body, 'slow');
    await closed;
    assert.deepEqual(events, ['close event', 'close cb']);
    assert.equal(server.listening, true, 'the new listen is untouched');
    assert.equal((await request(p2, 'GET', '/')).body, 'new');
    await close(server);
    assert.equal(server.listening, false);
  });

  test("server.noDelay as http.Server's; a server socket's setEncoding() throws ERR_HTTP_SOCKET_ENCODING", async () => {
    const seen = [];
    const server = piston.createServer((req, res) => {
      try {
        req.socket.setEncoding('utf8');
      } catch (e) {
        seen.push(e.code, e.message);
      }
      res.end();
    });
    assert.equal(server.noDelay, http.createServer().noDelay);
    assert.equal(server.keepAlive, http.createServer().keepAlive);
    const { port } = await listen(server);
    try {
      await request(port, 'GET', '/');
    } finally {
      await close(server);
    }
    assert.deepEqual(seen, ['ERR_HTTP_SOCKET_ENCODING', 'Changing the socket encoding is not allowed per RFC7230 Section 3.']);
  });

  test("write()/end(chunk) after end: the callback's ERR_STREAM_WRITE_AFTER_END, end(cb) after finish ERR_STREAM_ALREADY_FINISHED", async () => {
    const seen = [];
    let done;
    const finished = new Promise((r) => (done = r));
    await withServer(
      (req, res) => {
        res.on('error', (e) => seen.push(`error:${e.code}`));
        res.end('first', () => seen.push('end cb'));
        res.end(() => seen.push('second end: on finish'));
        res.end('more', (e) => seen.push(`end(chunk) cb:${e.code}`));
        res.on('finish', () => {
          res.end((e) => seen.push(`end after finish:${e.code}`));
          setImmediate(() => {
            // closed by now: the callback only, no 'error'
            res.write('late', (e) => {
              seen.push(`late write cb:${e.code}`);
              done();
            });
          });
        });
      },
      async (port) => {
        assert.equal((await request(port, 'GET', '/')).body, 'first');
        await finished;
      },
    );
    assert.deepEqual(seen.sort(), [
      'end after finish:ERR_STREAM_ALREADY_FINISHED',
      'end cb',
      'end(chunk) cb:ERR_STREAM_WRITE_AFTER_END',
      'error:ERR_STREAM_WRITE_AFTER_END',
      'late write cb:ERR_STREAM_WRITE_AFTER_END',
      'second end: on finish',
    ]);
  });

  test('createServer options: IncomingMessage/ServerResponse classes; a non-object throws ERR_INVALID_ARG_TYPE', async () => {
    class MyReq extends http.IncomingMessage {
      hello() {
        return 'req ' + this.url;
      }
    }
    class MyRes extends http.ServerResponse {
      shout(s) {
        this.end(s.toUpperCase());
      }
    }
    const server = piston.createServer({ IncomingMessage: MyReq, ServerResponse: MyRes }, (req, res) => {
      assert.ok(req instanceof MyReq);
      assert.ok(res instanceof MyRes);
      res.shout(req.hello());
    });
    const { port } = await listen(server);
    try {
      assert.equal((await request(port, 'GET', '/x')).body, 'REQ /X');
    } finally {
      await close(server);
    }
    for (const bad of ['foo', 42, true, []]) {
      assert.throws(() => new piston.Server(bad), { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
    }
  });

  test('createServer options: highWaterMark sizes req and res; joinDuplicateHeaders joins', async () => {
    const seen = [];
    const server = piston.createServer({ highWaterMark: 65536, joinDuplicateHeaders: true }, (req, res) => {
      seen.push(req.readableHighWaterMark, res.writableHighWaterMark, req.headers['x-dup']);
      res.end();
    });
    const { port } = await listen(server);
    try {
      await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nX-Dup: a\r\nX-Dup: b\r\nConnection: close\r\n\r\n');
    } finally {
      await close(server);
    }
    assert.deepEqual(seen, [65536, 65536, 'a, b']);
  });

  test("headersTimeout/requestTimeout: node's defaults and errors", () => {
    const cases = [
      {},
      { requestTimeout: 20000 },
      { headersTimeout: 10000 },
      { requestTimeout: 100000 },
      { headersTimeout: 10000, requestTimeout: 1000 },
      { requestTimeout: -1 },
      { requestTimeout: 1.5 },
      { headersTimeout: 'a very long string indeed, longer than 28' },
      { requestTimeout: null },
    ];
    const outcome = (make) => {
      try {
        const s = make();
        return [s.headersTimeout, s.requestTimeout];
      } catch (e) {
        return [e.name, e.code, e.message];
      }
    };
    for (const o of cases) {
      assert.deepEqual(
        outcome(() => piston.createServer(o)),
        outcome(() => http.createServer(o)),
        JSON.stringify(o),
      );
    }
    // and listen()'s, for a port that is neither a number nor a string
    const err = (fn) => {
      try {
        fn();
      } catch (e) {
        return [e.name, e.code, e.message];
      }
    };
    assert.deepEqual(
      err(() => piston.createServer().listen({ port: true })),
      err(() => http.createServer().listen({ port: true })),
    );
  });

  test("an unread request ended by res.end() still gets 'end' and 'close' (after res 'close')", async () => {
    const seen = [];
    await withServer(
      (req, res) => {
        res.end('ok');
        res.on('finish', () => seen.push('res finish'));
        res.on('close', () => seen.push('res close'));
        req.on('end', () => seen.push('req end'));
        req.on('close', () => seen.push(`req close ${req.destroyed}`));
      },
      async (port) => {
        assert.equal((await request(port, 'GET', '/')).body, 'ok');
        for (let i = 0; i < 50 && seen.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
      },
    );
    assert.deepEqual(seen, ['res finish', 'res close', 'req end', 'req close true']); // node:http's order
  });

  test('a Trailer header with a Content-Length throws ERR_HTTP_TRAILER_INVALID at writeHead', async () => {
    const seen = [];
    await withServer(
      (req, res) => {
        res.setHeader('Trailer', 'baz');
        try {
          res.writeHead(200, { 'Content-Length': '2' });
        } catch (e) {
          seen.push(e.code, e.message, res.headersSent);
        }
        res.removeHeader('Trailer');
        res.end('ok');
      },
      async (port) => {
        assert.equal((await request(port, 'GET', '/')).body, 'ok');
      },
    );
    assert.deepEqual(seen, ['ERR_HTTP_TRAILER_INVALID', 'Trailers are invalid with this transfer encoding', false]);
  });

  test('res.statusCode set after writeHead() changes nothing (the head is stored)', async () => {
    await withServer(
      (req, res) => {
        res.writeHead(200, { 'x-foo': 'bar' });
        res.statusCode = 201;
        res.end('body');
      },
      async (port) => {
        const text = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
      },
    );
  });

  test("res.end(chunk) after end() and destroy(): no 'error'; res.errored stays undefined", async () => {
    const seen = [];
    await withServer(
      (req, res) => {
        res.on('error', (e) => seen.push(`error ${e.code}`));
        res.end();
        res.destroy();
        res.end('asd');
        seen.push(`errored ${res.errored}`);
      },
      async (port) => {
        await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', 1000);
        await new Promise((r) => setTimeout(r, 50));
      },
    );
    assert.deepEqual(seen, ['errored undefined']);
  });

  test("res.destroy(err) sets res.errored; res.writableCorked is a number", async () => {
    const seen = [];
    await withServer(
      (req, res) => {
        seen.push(res.writableCorked);
        const err = new Error('Destroy test');
        res.destroy(err);
        seen.push(res.errored === err);
      },
      async (port) => {
        await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', 1000);
      },
    );
    assert.deepEqual(seen, [0, true]);
  });
});
