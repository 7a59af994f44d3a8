'use strict';
// What node:http puts on the wire, and when, asserted byte for byte through
// createServer beside node:http itself (node is the spec here; the Date
// value is masked): Connection/Keep-Alive on keep-alive responses and the
// grace past the announced timeout, Date after the app's fields and
// sendDate = false, a destroy before the response (no 500: the connection
// just closes), 1xx (writeContinue, writeProcessing, writeEarlyHints,
// 'checkContinue', 'checkExpectation'), the default host '::' with IPv4
// mapped, close() with pipelined requests, and an unref()'d server's
// close().

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const piston = require('../..');
const { listen, sleep } = require('./helpers');

const SERVERS = [
  ['node:http', http.createServer],
  ['piston', piston.createServer],
];

const mask = (s) => s.replace(/Date: [^\r]+\r\n/g, 'Date: D\r\n');

// Bytes in, everything back until the server closes (or ms pass).
function exchange(port, bytes, { host = '127.0.0.1', ms = 3000, until } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host);
    let got = '';
    const done = () => {
      clearTimeout(t);
      s.destroy();
      resolve(mask(got));
    };
    const t = setTimeout(done, ms);
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (until && until(got)) done();
    });
    s.on('error', (e) => (e.code === 'ECONNRESET' ? done() : reject(e)));
    s.on('close', done);
    s.write(bytes);
  });
}

// Runs fn(port, server) against node:http and piston with the same
// handler; resolves [node's result, piston's result].
async function bothWays(handler, fn, options = {}) {
  const out = [];
  for (const [, make] of SERVERS) {
    const server = make(options, handler);
    const { port } = await listen(server, 0, '127.0.0.1');
    try {
      out.push(await fn(port, server));
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }
  return out;
}

const GET = (path, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;

describe('automatic headers as node:http writes them', () => {
  const handler = (req, res) => {
    res.setHeader('X-App', '1');
    if (req.url === '/nodate') res.sendDate = false;
    if (req.url === '/removed') res.removeHeader('Date');
    if (req.url === '/own-date') res.setHeader('Date', 'Thu, 01 Jan 1970 00:00:00 GMT');
    if (req.url === '/chunked') {
      res.write('a');
      res.end('b');
      return;
    }
    res.end('hi');
  };

  for (const path of ['/', '/nodate', '/removed', '/own-date', '/chunked']) {
    test(`${path}: keep-alive, Keep-Alive: timeout=5, Date after the app's fields`, async () => {
      const [ref, ours] = await bothWays(handler, (port) => exchange(port, GET(path), { until: (s) => /hi$|\r\n0\r\n\r\n$/.test(s) }));
      assert.equal(ours, ref);
      if (path === '/') {
        assert.equal(ours, 'HTTP/1.1 200 OK\r\nX-App: 1\r\nDate: D\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nhi');
      }
      if (path === '/nodate' || path === '/removed') assert.doesNotMatch(ours, /Date/);
    });
  }

  test('keepAliveTimeout sets the timeout announced; 0 announces none', async () => {
    for (const keepAliveTimeout of [2500, 0]) {
      const [ref, ours] = await bothWays(handler, (port) => exchange(port, GET('/'), { until: (s) => s.endsWith('hi') }), { keepAliveTimeout });
      assert.equal(ours, ref);
      assert.equal(/Keep-Alive: timeout=2\r\n/.test(ours), keepAliveTimeout === 2500);
      assert.match(ours, /Connection: keep-alive\r\n/);
    }
  });

  test('Connection: close and HTTP/1.0', async () => {
    for (const req of [GET('/', 'Connection: close\r\n'), 'GET / HTTP/1.0\r\n\r\n', 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n']) {
      const [ref, ours] = await bothWays(handler, (port) => exchange(port, req, { until: (s) => s.endsWith('hi') }));
      // node frames an HTTP/1.0 body by the close; the engine gives its
      // length too (node/README.md)
      if (req.includes('keep-alive')) {
        // node closes an HTTP/1.0 response it cannot frame; the engine
        // frames it and keeps the connection, as the client asked
        assert.equal(ref, 'HTTP/1.1 200 OK\r\nX-App: 1\r\nDate: D\r\nConnection: close\r\n\r\nhi');
        assert.equal(ours, 'HTTP/1.1 200 OK\r\nX-App: 1\r\nDate: D\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nhi');
      } else assert.equal(ours, req.includes('HTTP/1.0') ? ref.replace('\r\n\r\n', '\r\nContent-Length: 2\r\n\r\n') : ref);
    }
  });
});

test('a client reusing the connection at the announced timeout is answered (grace)', async () => {
  // node's test-http-keep-alive-timeout-race-condition.js, on the wire: the
  // second request comes 1.2 s after the first answer, past timeout=1
  const [ref, ours] = await bothWays(
    (req, res) => res.end('ok'),
    (port) =>
      new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => s.write(GET('/')));
        let got = '';
        let n = 0;
        s.on('data', (d) => {
          got += d;
          if (got.endsWith('ok') && ++n === 1) setTimeout(() => s.write(GET('/')), 1200);
          if (n === 2) {
            s.destroy();
            resolve(mask(got));
          }
        });
        s.on('error', reject);
        s.on('close', () => resolve(mask(got)));
      }),
    { keepAliveTimeout: 1000 },
  );
  assert.equal(ours, ref);
  assert.equal(ours.split('HTTP/1.1 200 OK').length, 3, ours);
});

describe('a destroy before the response sends nothing', () => {
  for (const how of ['res.destroy()', 'req.socket.destroy()', 'req.socket.destroy(err)']) {
    test(how, async () => {
      const handler = (req, res) => {
        if (how === 'res.destroy()') res.destroy();
        else if (how === 'req.socket.destroy()') req.socket.destroy();
        else {
          req.socket.on('error', () => {});
          req.socket.destroy(new Error('app gives up'));
        }
      };
      const [ref, ours] = await bothWays(handler, (port) => exchange(port, GET('/') + GET('/')));
      assert.equal(ref, '');
      assert.equal(ours, '');
    });
  }

  test('after a write the written bytes go out, then the close', async () => {
    const handler = (req, res) => {
      res.write('part');
      setTimeout(() => res.destroy(), 50);
    };
    const [ref, ours] = await bothWays(handler, (port) => exchange(port, GET('/')));
    assert.equal(ours, ref);
    assert.match(ours, /Transfer-Encoding: chunked\r\n\r\n4\r\npart\r\n$/);
  });
});

describe('1xx responses', () => {
  test('writeContinue, writeProcessing and writeEarlyHints before the response', async () => {
    const handler = (req, res) => {
      res.writeContinue();
      res.writeProcessing();
      res.writeEarlyHints({ link: ['</a.css>; rel=preload; as=style', '</b.js>; rel=preload; as=script'], 'x-trace': '7' });
      res.end('done');
    };
    const [ref, ours] = await bothWays(handler, (port) => exchange(port, GET('/'), { until: (s) => s.endsWith('done') }));
    assert.equal(ours, ref);
    assert.ok(
      ours.startsWith(
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\n' +
          'Link: </a.css>; rel=preload; as=style, </b.js>; rel=preload; as=script\r\nx-trace: 7\r\n\r\nHTTP/1.1 200 OK\r\n',
      ),
      ours,
    );
  });

  test("writeEarlyHints validates the links as node's does", async () => {
    const errs = [];
    await bothWays(
      (req, res) => {
        try {
          res.writeEarlyHints({ link: 'no angle brackets' });
        } catch (e) {
          errs.push(e.code);
        }
        res.end();
      },
      (port) => exchange(port, GET('/'), { until: (s) => s.includes('\r\n\r\n') }),
    );
    assert.deepEqual(errs, ['ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE']);
  });

  const POST_EXPECT = 'POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n';

  test("'checkContinue': the listener decides, the client waits", async () => {
    const run = (port, server) => {
      server.on('checkContinue', (req, res) => {
        if (req.headers['x-no']) {
          res.writeHead(403);
          res.end('no');
          return;
        }
        res.writeContinue();
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => res.end(`got ${body}`));
      });
      return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => s.write(POST_EXPECT));
        let got = '';
        s.on('data', (d) => {
          got += d;
          if (got === 'HTTP/1.1 100 Continue\r\n\r\n') s.write('abcd');
          if (got.endsWith('got abcd')) {
            s.destroy();
            resolve(mask(got));
          }
        });
        s.on('error', reject);
      });
    };
    const [ref, ours] = await bothWays(() => assert.fail("'request' is not emitted"), run);
    assert.equal(ours, ref);
  });

  test("without 'checkContinue' the 100 comes at once, then 'request'", async () => {
    const [ref, ours] = await bothWays(
      (req, res) => {
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => res.end(body));
      },
      (port) => exchange(port, POST_EXPECT, { until: (s) => s.startsWith('HTTP/1.1 100 Continue\r\n\r\n') }),
    );
    assert.equal(ref, 'HTTP/1.1 100 Continue\r\n\r\n');
    assert.equal(ours, ref);
  });

  test("another Expect: 'checkExpectation', else 417", async () => {
    const meow = GET('/', 'Expect: meow\r\n');
    const [ref, ours] = await bothWays(
      () => assert.fail("'request' is not emitted"),
      async (port, server) => {
        const without = await exchange(port, meow, { until: (s) => s.includes('\r\n\r\n') });
        server.on('checkExpectation', (req, res) => {
          res.writeHead(417, { 'X-Why': req.headers.expect });
          res.end();
        });
        const withListener = await exchange(port, meow, { until: (s) => s.includes('\r\n\r\n') });
        return [without, withListener];
      },
    );
    assert.deepEqual(ours, ref);
    assert.match(ours[0], /^HTTP\/1\.1 417 Expectation Failed\r\n/);
    assert.match(ours[1], /X-Why: meow\r\n/);
  });
});

test("listen() without a host: '::' with IPv4 mapped, as node's", async () => {
  const got = [];
  for (const [, make] of SERVERS) {
    const server = make((req, res) => res.end(`${req.socket.remoteFamily} ${req.socket.remoteAddress}`));
    const addr = await listen(server, 0);
    const v4 = await exchange(addr.port, GET('/', 'Connection: close\r\n'), { host: '127.0.0.1' });
    const v6 = await exchange(addr.port, GET('/', 'Connection: close\r\n'), { host: '::1' });
    got.push([addr.address, addr.family, v4.split('\r\n\r\n')[1], v6.split('\r\n\r\n')[1]]);
    await new Promise((r) => server.close(r));
  }
  assert.deepEqual(got[1], got[0]);
  assert.deepEqual(got[1], ['::', 'IPv6', 'IPv6 ::ffff:127.0.0.1', 'IPv6 ::1']);
});

test('close() answers the pipelined requests already received', async () => {
  const [ref, ours] = await bothWays(
    (req, res) => {
      if (req.url === '/first') {
        req.socket.server.close(); // while the others wait behind it
        setTimeout(() => res.end('first'), 100);
      } else res.end(req.url.slice(1));
    },
    (port, server) => {
      server.closeAllConnections = () => {}; // bothWays' cleanup: let the close finish
      return exchange(port, GET('/first') + GET('/second') + GET('/third'), { until: (s) => s.endsWith('third') });
    },
  );
  assert.equal(ref.split('HTTP/1.1 200 OK').length, 4, ref);
  assert.equal(ours.split('HTTP/1.1 200 OK').length, 4, ours);
  assert.ok(ours.endsWith('third'));
});

test("an unref()'d server's close() completes", async () => {
  for (const [, make] of SERVERS) {
    const server = make((req, res) => res.end('x'));
    await listen(server, 0, '127.0.0.1');
    server.unref();
    const t = setTimeout(() => {}, 5000); // keeps the test alive, not the server
    await new Promise((r) => server.close(r));
    clearTimeout(t);
    assert.equal(server.listening, false);
  }
  await sleep(0);
});

test("req.socket.bytesRead / bytesWritten count the connection's bytes, as node's", async () => {
  const seen = [];
  const [ref, ours] = await bothWays(
    (req, res) => {
      const before = [req.socket.bytesRead, req.socket.bytesWritten];
      res.setHeader('Date', 'Thu, 01 Jan 1970 00:00:00 GMT'); // same length both ways
      res.write('x'.repeat(1000));
      const queued = req.socket.bytesWritten; // not sent yet: counted
      res.on('finish', () => seen.push([...before, queued, req.socket.bytesRead, req.socket.bytesWritten]));
      res.end('y');
    },
    (port) =>
      new Promise((resolve, reject) => {
        // the second request once the first answer is in: a keep-alive
        // connection's counts go on
        const s = net.connect(port, '127.0.0.1', () => s.write(GET('/')));
        let got = '';
        s.on('data', (d) => {
          got += d;
          const n = got.split('\r\n0\r\n\r\n').length - 1;
          if (n === 1 && !s.second) s.second = s.write(GET('/'));
          if (n === 2) setTimeout(() => s.destroy(resolve(got)), 50);
        });
        s.on('error', reject);
      }),
  );
  assert.equal(ours, ref);
  assert.deepEqual(seen.slice(2), seen.slice(0, 2));
  assert.ok(seen[1][4] > seen[0][4] && seen[0][2] > 1000, JSON.stringify(seen));
});

test("the app's own Connection, end() without a body, a chunked 204: node's bytes", async () => {
  const handler = (req, res) => {
    if (req.url === '/conn') res.writeHead(200, { Connection: 'keep-alive' });
    if (req.url === '/204') res.writeHead(204, { 'Transfer-Encoding': 'chunked' });
    res.end();
  };
  for (const path of ['/conn', '/empty', '/204']) {
    const [ref, ours] = await bothWays(handler, (port) => exchange(port, GET(path), { until: (s) => /\r\n\r\n(0\r\n\r\n)?$/.test(s) && !s.endsWith('chunked\r\n\r\n') }));
    if (path !== '/204') assert.equal(ours, ref, path);
    else {
      // both close; node also sends the app's Transfer-Encoding, which a
      // 204 must not carry (RFC 9110 6.4.1): the engine drops it
      assert.equal(ref, 'HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nDate: D\r\nConnection: close\r\n\r\n');
      assert.equal(ours, 'HTTP/1.1 204 No Content\r\nDate: D\r\nConnection: close\r\n\r\n');
    }
  }
});

describe('timeouts: server.setTimeout, req/res.setTimeout', () => {
  // node:http's socketOnTimeout: the incomplete request, the response and
  // the server hear of it; nobody listening: the socket is destroyed
  test("server.setTimeout(ms, cb): 'timeout' with the socket of a request left unanswered", async () => {
    const got = [];
    for (const [, make] of SERVERS) {
      const server = make(() => {});
      await listen(server, 0, '127.0.0.1');
      const t0 = Date.now();
      const fired = new Promise((resolve) =>
        server.setTimeout(100, (socket) => {
          resolve([typeof socket.destroy, Date.now() - t0 >= 90]);
          socket.destroy();
        }),
      );
      const bytes = await exchange(server.address().port, GET('/'));
      got.push([await fired, bytes]);
      await new Promise((r) => server.close(r));
    }
    assert.deepEqual(got[1], got[0]);
    assert.deepEqual(got[1], [['function', true], '']);
  });

  test("res.setTimeout: the response's 'timeout', and no socket destroy when it listens", async () => {
    const events = [];
    for (const [name, make] of SERVERS) {
      const server = make((req, res) => {
        res.setTimeout(80, () => {
          events.push(`${name} res timeout`);
          res.end('late');
        });
        req.setTimeout(80, () => events.push(`${name} req timeout`)); // complete: not told
      });
      await listen(server, 0, '127.0.0.1');
      const bytes = await exchange(server.address().port, GET('/'), { until: (s) => s.endsWith('late') });
      assert.match(bytes, /late$/);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    assert.deepEqual(events, ['node:http res timeout', 'piston res timeout']);
  });
});

describe("the engine's rejections as node:http's", () => {
  const cases = {
    'two Content-Length': 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    'chunked with Content-Length': 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n',
    'a bad method': 'G@T / HTTP/1.1\r\nHost: x\r\n\r\n',
    'CR without LF': 'GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n',
  };
  for (const [name, bytes] of Object.entries(cases)) {
    test(`${name}: node's bare 400 without a listener; its err.code and message with one`, async () => {
      const [ref, ours] = await bothWays(
        () => assert.fail('no request'),
        async (port, server) => {
          const bare = await exchange(port, bytes);
          const seen = new Promise((resolve) =>
            server.on('clientError', (err, socket) => {
              resolve([err.code, err.message]);
              socket.destroy();
            }),
          );
          await exchange(port, bytes, { ms: 500 });
          return [bare, await seen];
        },
      );
      assert.deepEqual(ours, ref);
      assert.equal(ours[0], 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      assert.match(ours[1][0], /^HPE_/);
    });
  }
});

test('maxRequestsPerSocket: max= announced, the last says close', async () => {
  // the same fields as node's (their order aside: node writes its
  // Keep-Alive after Date, the app's fields go before it here)
  const fields = (s) =>
    s
      .split(/(?=HTTP\/1\.1 )/)
      .map((r) => r.split('\r\n\r\n')[0].split('\r\n').sort().join('|'));
  const [ref, ours] = await bothWays(
    (req, res) => res.end('ok'),
    (port, server) => {
      server.maxRequestsPerSocket = 2;
      return exchange(port, GET('/') + GET('/') + GET('/'), { ms: 1500 });
    },
  );
  // node then answers the third with a 503 after its close; the engine
  // sends nothing after a response that said close (RFC 9112 9.6)
  assert.deepEqual(fields(ours), fields(ref).slice(0, 2));
  assert.match(fields(ref)[2], /^Connection: close\|.*503 Service Unavailable/);
  assert.match(ours, /Keep-Alive: timeout=5, max=2\r\n/);
  assert.match(ours.split('HTTP/1.1 200 OK')[2], /Connection: close\r\n/);
});

test('options the engine cannot honour are refused with what to do', () => {
  assert.throws(() => piston.createServer({ insecureHTTPParser: true }), { code: 'ERR_PISTON_OPTION', message: /insecureHTTPParser: true option is not offered: the engine has one parser/ });
  assert.throws(() => piston.createServer({ requireHostHeader: false }), { code: 'ERR_PISTON_OPTION', message: /without Host is always a 400/ });
  // node's defaults are accepted
  piston.createServer({ insecureHTTPParser: false, requireHostHeader: true });
});

test('a destroy before the response on HTTP/2 resets the stream only', async () => {
  const http2 = require('node:http2');
  const server = piston.createServer({ http2: 2 }, (req, res) => (req.url === '/d' ? res.destroy() : res.end('ok')));
  const { port } = await listen(server, 0, '127.0.0.1');
  const c = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const code = await new Promise((resolve) => {
      const s = c.request({ ':path': '/d' });
      s.on('response', () => resolve('a response'));
      s.on('error', (e) => resolve(e.code));
    });
    assert.equal(code, 'ERR_HTTP2_STREAM_ERROR'); // RST_STREAM, no 500
    const body = await new Promise((resolve) => {
      let b = '';
      const s = c.request({ ':path': '/ok' });
      s.on('data', (d) => (b += d));
      s.on('end', () => resolve(b));
    });
    assert.equal(body, 'ok'); // the connection goes on
  } finally {
    c.close();
    await new Promise((r) => server.close(r));
  }
});
