'use strict';
// piston.createServer: connections and the engine's own answers, over raw
// sockets on 127.0.0.1: 'clientError' for requests the engine rejects, one
// req.socket per connection and the 'connection' event,
// closeIdleConnections(), and res.statusMessage on the wire.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const piston = require('../..');
const { listen, close, connect, raw, parseResponses, sleep } = require('./helpers');

// the engine's own answer to a slow head (node:http's bytes for it)
const ENGINE_408 = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n';

async function withServer(handler, fn, options) {
  const server = handler ? piston.createServer(options || {}, handler) : piston.createServer(options || {});
  const { port } = await listen(server);
  try {
    return await fn(port, server);
  } finally {
    await close(server);
  }
}

// A client socket that collects what it receives and notes the server's EOF.
function client(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.text = '';
    s.ended = false;
    s.setEncoding('latin1');
    s.on('data', (d) => (s.text += d));
    s.on('end', () => (s.ended = true));
    s.on('close', () => (s.ended = true));
    s.on('error', (e) => {
      s.error = e;
      s.ended = true;
      reject(e); // a no-op once connected
    });
  });
}

async function until(pred, ms = 2000) {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) return false;
    await sleep(5);
  }
  return true;
}

// Waits for `n` complete responses on a client socket.
async function responses(s, n) {
  let r = [];
  await until(() => (r = parseResponses(s.text)).length >= n && r[n - 1].body !== undefined);
  return r;
}

describe("'clientError': requests the engine rejects", () => {
  const cases = [
    ['garbage', 'HELLO\r\n\r\n', 400, 'HPE_INVALID_METHOD'], // llhttp's, as node's
    ['missing Host on HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n', 400, 'HPE_INVALID_400'],
    ['head too large', 'GET / HTTP/1.1\r\nHost: a\r\nX-Big: ' + 'a'.repeat(20000) + '\r\n\r\n', 431, 'HPE_HEADER_OVERFLOW'],
    ['URL too long', 'GET /' + 'u'.repeat(9000) + ' HTTP/1.1\r\nHost: a\r\n\r\n', 414, 'HPE_HEADER_OVERFLOW'],
    ['HTTP/2.0 request line', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505, 'HPE_INVALID_VERSION'],
    ['body over the limit', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n', 413, 'HPE_INVALID_413'],
  ];
  for (const [name, bytes, status, code] of cases) {
    test(`${name}: 'clientError' has ${code} and a writable socket; the client gets the listener's bytes only`, async () => {
      const seen = [];
      let called = false;
      await withServer(
        (req, res) => {
          called = true;
          res.end();
        },
        async (port, server) => {
          server.on('clientError', (err, socket) => {
            seen.push({ err, socket, writable: socket.writable });
            // the usual node:http handler
            if (err.code === 'ECONNRESET' || !socket.writable) return;
            socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
          });
          const s = await client(port);
          const localPort = s.localPort;
          s.write(bytes);
          assert.ok(await until(() => s.ended));
          assert.equal(s.text, 'HTTP/1.1 400 Bad Request\r\n\r\n', 'the engine sent nothing of its own');
          assert.equal(seen.length, 1);
          const { err, socket, writable } = seen[0];
          assert.ok(err instanceof Error);
          assert.equal(err.code, code);
          assert.equal(err.status, status);
          assert.equal(writable, true);
          // node's: the bytes of the read the parser failed in, and how far it got
          assert.ok(Buffer.isBuffer(err.rawPacket));
          assert.ok(bytes.endsWith(err.rawPacket.toString('latin1')));
          assert.ok(err.bytesParsed >= 0 && err.bytesParsed <= err.rawPacket.length);
          assert.equal(socket.remoteAddress, '127.0.0.1');
          assert.equal(socket.remotePort, localPort);
          assert.equal(socket.remoteFamily, 'IPv4');
          assert.equal(called, false);
        },
        { maxBodySize: 1000 },
      );
    });
  }

  test("the parse error's bytes: err.rawPacket and err.bytesParsed as node's", async () => {
    const errors = [];
    await withServer(null, async (port, server) => {
      server.on('clientError', (err, socket) => {
        errors.push(err);
        socket.destroy();
      });
      await raw(port, 'Oopsie-doopsie\r\n');
      assert.equal(errors.length, 1);
      assert.equal(errors[0].message, 'Parse Error: Invalid method encountered');
      assert.equal(errors[0].bytesParsed, 1);
      assert.equal(errors[0].rawPacket.toString(), 'Oopsie-doopsie\r\n');
    });
  });

  test('a listener that destroys the socket: the connection closes without a byte', async () => {
    await withServer(null, async (port, server) => {
      server.on('clientError', (err, socket) => socket.destroy());
      const s = await client(port);
      s.write('HELLO\r\n\r\n');
      assert.ok(await until(() => s.ended));
      assert.equal(s.text, '');
    });
  });

  test('a listener that does nothing: the connection closes at keepAliveTimeout, without a byte', async () => {
    await withServer(null, async (port, server) => {
      let n = 0;
      server.on('clientError', () => n++);
      const s = await client(port);
      const t0 = Date.now();
      s.write('HELLO\r\n\r\n');
      assert.ok(await until(() => s.ended, 3000));
      assert.ok(Date.now() - t0 >= 150, 'held until the timeout');
      assert.equal(s.text, '');
      assert.equal(n, 1);
    }, { keepAliveTimeout: 200 });
  });

  test("a slow head: the engine answers 408, 'clientError' has ERR_HTTP_REQUEST_TIMEOUT", async () => {
    // a timeout is not handed to the listener (unlike node:http): a
    // slowloris flood then costs no JS per attacker; the listener hears of
    // it on a socket that is no longer writable
    const server = piston.createServer((req, res) => res.end());
    server.headersTimeout = 150;
    const errors = [];
    server.on('clientError', (err, socket) => {
      errors.push(err);
      socket.end('HTTP/1.1 499 Mine\r\n\r\n');
    });
    const { port } = await listen(server);
    const s = await client(port);
    s.write('GET / HTTP/1.1\r\nHost: a\r\n'); // never finished
    assert.ok(await until(() => s.ended, 3000), 'the connection closes');
    assert.equal(s.text, ENGINE_408);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].code, 'ERR_HTTP_REQUEST_TIMEOUT');
    assert.equal(errors[0].status, 408);
    // on a connection that carried a request before: the listener has that
    // connection's own socket (req.socket), no longer writable
    const sockets = [];
    server.on('request', (req) => sockets.push(req.socket));
    const seen = [];
    server.on('clientError', (err, socket) => seen.push([socket, socket.writable]));
    const k = await client(port);
    k.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    await responses(k, 1);
    k.write('GET / HTTP/1.1\r\nHost: a\r\n'); // never finished
    assert.ok(await until(() => k.ended, 3000), 'the connection closes');
    assert.equal(parseResponses(k.text).length, 2);
    assert.ok(k.text.endsWith(ENGINE_408));
    assert.equal(seen.length, 1);
    assert.equal(sockets.length, 1);
    assert.equal(seen[0][0], sockets[0]);
    assert.equal(seen[0][1], false);
    await close(server);
  });

  test("no 'clientError' listener: the engine's answer alone, nothing thrown", async () => {
    await withServer(
      (req, res) => res.end('ok'),
      async (port) => {
        const text = await raw(port, 'HELLO\r\n\r\n');
        assert.equal(text, 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
        const again = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        assert.equal(parseResponses(again)[0].body, 'ok');
      },
    );
  });

  test("a 'connection' listener alone: the engine's 400 (node's bytes); 'connection' with a closed socket, the error and 'close' on it", async () => {
    await withServer(
      (req, res) => res.end('ok'),
      async (port, server) => {
        const errs = [];
        const closes = [];
        let conns = 0;
        server.on('connection', (socket) => {
          conns++;
          socket.on('error', (e) => errs.push(e));
          socket.on('close', (hadError) => closes.push([hadError, socket.writable]));
        });
        const text = await raw(port, 'FOO /\r\n');
        assert.equal(text, 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
        assert.ok(await until(() => closes.length === 1));
        assert.equal(conns, 1);
        assert.equal(errs.length, 1);
        assert.equal(errs[0].code, 'HPE_INVALID_METHOD');
        assert.equal(errs[0].bytesParsed, 1);
        assert.equal(errs[0].rawPacket.toString(), 'FOO /\r\n');
        assert.deepEqual(closes, [[true, false]]);
        // a connection that carried a request before has had its
        // 'connection': none again for its rejection
        const s = await client(port);
        s.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
        await responses(s, 1);
        assert.equal(conns, 2);
        s.write('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
        assert.ok(await until(() => s.ended));
        assert.deepEqual(
          parseResponses(s.text).map((r) => r.status),
          [200, 400],
        );
        // its socket, the one 'connection' had: the error, then 'close'
        assert.ok(await until(() => closes.length === 2));
        assert.equal(conns, 2);
        assert.equal(errs.length, 2);
        assert.equal(errs[1].code, 'HPE_INVALID_400');
        assert.deepEqual(closes, [
          [true, false],
          [true, false],
        ]);
      },
    );
  });

  test('the client ends within a head: HPE_INVALID_EOF_STATE to the listener; without one, a close', async () => {
    await withServer(null, async (port, server) => {
      const quiet = await client(port);
      quiet.end('GET / HTTP/1.1\r\nContent-Length:');
      assert.ok(await until(() => quiet.ended));
      assert.equal(quiet.text, '');
      const codes = [];
      server.on('clientError', (err, socket) => {
        codes.push(err.code);
        socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      });
      const s = await client(port);
      s.end('GET / HTTP/1.1\r\nContent-Length:');
      assert.ok(await until(() => s.ended));
      assert.equal(s.text, 'HTTP/1.1 400 Bad Request\r\n\r\n');
      assert.deepEqual(codes, ['HPE_INVALID_EOF_STATE']);
    });
  });

  test('bytes after the error are the same error again, each chunk its rawPacket (as node)', async () => {
    await withServer(null, async (port, server) => {
      const packets = [];
      server.on('clientError', (err, socket) => {
        packets.push(err.rawPacket.toString());
        if (packets.length === 3) socket.destroy();
      });
      const s = await client(port);
      s.write('*');
      assert.ok(await until(() => packets.length === 1));
      s.write('+');
      assert.ok(await until(() => packets.length === 2));
      s.write('-');
      assert.ok(await until(() => s.ended));
      assert.deepEqual(packets, ['*', '+', '-']);
    });
  });

  test('a good request, then a malformed one on the same connection', async () => {
    const errors = [];
    let requests = 0;
    let conns = 0;
    await withServer(
      (req, res) => {
        requests++;
        res.end('first');
      },
      async (port, server) => {
        server.on('connection', () => conns++);
        server.on('clientError', (err, socket) => {
          errors.push(err.code);
          socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
        });
        const s = await client(port);
        s.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
        await responses(s, 1);
        s.write('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
        assert.ok(await until(() => s.ended));
        const rs = parseResponses(s.text);
        assert.deepEqual(
          rs.map((r) => r.status),
          [200, 400],
        );
        assert.deepEqual(errors, ['HPE_INVALID_400']);
        assert.equal(requests, 1);
        assert.equal(conns, 1, "one 'connection' for the connection");
      },
    );
  });
});

describe('req.socket: one object per connection', () => {
  test("same socket for every request of a keep-alive connection, a new one per connection; 'connection' first", async () => {
    const events = [];
    const sockets = [];
    await withServer(
      (req, res) => {
        events.push('request ' + req.url);
        sockets.push({ url: req.url, req: req.socket, res: res.socket, conn: req.connection });
        res.end(req.url);
      },
      async (port, server) => {
        const conns = [];
        server.on('connection', (socket) => {
          events.push('connection');
          conns.push(socket);
        });
        const a = await client(port);
        a.write('GET /a1 HTTP/1.1\r\nHost: h\r\n\r\n');
        await responses(a, 1);
        a.write('GET /a2 HTTP/1.1\r\nHost: h\r\n\r\n');
        await responses(a, 2);
        const b = await client(port);
        b.write('GET /b1 HTTP/1.1\r\nHost: h\r\n\r\nGET /b2 HTTP/1.1\r\nHost: h\r\n\r\n'); // pipelined
        const rb = await responses(b, 2);
        assert.deepEqual(
          rb.map((r) => r.body),
          ['/b1', '/b2'],
        );
        assert.deepEqual(events, ['connection', 'request /a1', 'request /a2', 'connection', 'request /b1', 'request /b2']);
        const [a1, a2, b1, b2] = sockets;
        for (const x of sockets) {
          assert.equal(x.req, x.res, 'res.socket is req.socket');
          assert.equal(x.conn, x.req, 'req.connection is req.socket');
        }
        assert.equal(a1.req, a2.req, 'one socket for the keep-alive connection');
        assert.equal(b1.req, b2.req);
        assert.notEqual(a1.req, b1.req, 'another connection, another socket');
        assert.deepEqual(conns, [a1.req, b1.req]);
        const sa = a1.req;
        assert.equal(sa.remoteAddress, '127.0.0.1');
        assert.equal(sa.remotePort, a.localPort);
        assert.equal(sa.localPort, port);
        assert.equal(sa.encrypted, false);
        assert.equal(b1.req.remotePort, b.localPort);
        // the client closes: the socket emits 'close' and is destroyed
        let closed = false;
        sa.on('close', () => (closed = true));
        assert.equal(sa.destroyed, false);
        a.end();
        assert.ok(await until(() => closed), "socket 'close' when the connection closes");
        assert.equal(sa.destroyed, true);
        assert.equal(b1.req.destroyed, false);
        b.destroy();
        assert.ok(await until(() => b1.req.destroyed));
        assert.equal(server._sockets.size, 0, 'closed connections are dropped');
      },
    );
  });

  test('the peer address outlives the request (read after the response ended)', async () => {
    let sock;
    await withServer(
      (req, res) => {
        sock = req.socket;
        res.end('x');
      },
      async (port) => {
        const s = await client(port);
        s.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
        await responses(s, 1);
        await sleep(20);
        assert.equal(sock.remoteAddress, '127.0.0.1');
        assert.equal(sock.remotePort, s.localPort);
        s.destroy();
      },
    );
  });

  test('socket.destroy() mid-request closes that connection only', async () => {
    let first = true;
    await withServer(
      (req, res) => {
        if (req.url === '/kill') {
          res.write('partial');
          req.socket.destroy();
          return;
        }
        res.end('alive');
      },
      async (port) => {
        const keep = await client(port);
        keep.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
        await responses(keep, 1);
        const k = await client(port);
        k.write('GET /kill HTTP/1.1\r\nHost: h\r\n\r\n');
        assert.ok(await until(() => k.ended));
        keep.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
        const r = await responses(keep, 2);
        assert.equal(r[1].body, 'alive');
        assert.equal(keep.ended, false);
        keep.destroy();
        first = false;
      },
    );
    assert.equal(first, false);
  });
});

describe('closeIdleConnections()', () => {
  test('closes an idle keep-alive connection, not one with a request in flight', async () => {
    let release;
    const socks = [];
    await withServer(
      (req, res) => {
        socks.push(req.socket);
        if (req.url === '/slow') release = () => res.end('late');
        else res.end('quick');
      },
      async (port, server) => {
        const idle = await client(port);
        idle.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
        assert.equal((await responses(idle, 1))[0].body, 'quick');
        const busy = await client(port);
        busy.write('GET /slow HTTP/1.1\r\nHost: h\r\n\r\n');
        assert.ok(await until(() => release !== undefined));
        // accepted, no request yet: the engine counts its request as on its
        // way (as its graceful stop does), so it is not idle
        const fresh = await client(port);
        await sleep(20);
        server.closeIdleConnections();
        assert.ok(await until(() => idle.ended), 'the idle connection sees EOF');
        assert.ok(await until(() => socks[0].destroyed), "its req.socket is closed ('close')");
        assert.equal(socks[1].destroyed, false);
        assert.equal(idle.text.length, parseResponses(idle.text)[0].body.length + idle.text.indexOf('\r\n\r\n') + 4, 'EOF, nothing more');
        await sleep(50);
        assert.equal(busy.ended, false, 'the request in flight goes on');
        fresh.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
        assert.equal((await responses(fresh, 1))[0].body, 'quick');
        fresh.destroy();
        release();
        const r = await responses(busy, 1);
        assert.equal(r[0].body, 'late');
        // the connection was not marked: it serves its next request
        busy.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
        assert.equal((await responses(busy, 2))[1].body, 'quick');
        assert.equal(busy.ended, false);
        busy.destroy();
      },
    );
  });

  test('is a no-op on a server that is not listening', () => {
    const server = piston.createServer(() => {});
    assert.doesNotThrow(() => server.closeIdleConnections());
  });
});

describe('res.statusMessage: the reason phrase on the wire', () => {
  test('statusMessage set before end(body): status line and Content-Length', async () => {
    await withServer(
      (req, res) => {
        res.statusMessage = 'Fine';
        res.end('body');
      },
      async (port) => {
        const text = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        assert.match(text, /^HTTP\/1\.1 200 Fine\r\n/);
        const [r] = parseResponses(text);
        assert.equal(r.headers['content-length'], '4');
        assert.equal(r.body, 'body');
      },
    );
  });

  test('writeHead(status, reason, headers) with a streamed body, then keep-alive', async () => {
    await withServer(
      (req, res) => {
        if (req.url === '/custom') {
          res.writeHead(201, 'Made It', { 'X-A': '1' });
          res.write('a');
          res.end('b');
        } else {
          res.writeHead(404);
          res.end();
        }
      },
      async (port) => {
        const s = await client(port);
        s.write('GET /custom HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n');
        const r = await responses(s, 2);
        assert.equal(r[0].statusLine, 'HTTP/1.1 201 Made It');
        assert.equal(r[0].headers['x-a'], '1');
        assert.equal(r[0].body, 'ab');
        assert.equal(r[1].statusLine, 'HTTP/1.1 404 Not Found', "the default phrase stays the engine's");
        s.destroy();
      },
    );
  });

  test('an empty reason, a custom phrase on a HEAD and on a 204', async () => {
    await withServer(
      (req, res) => {
        if (req.url === '/empty') res.writeHead(200, '');
        else if (req.url === '/204') res.writeHead(204, 'Nothing Here');
        else res.statusMessage = 'Heads Up';
        res.end(req.url === '/204' ? undefined : 'xyz');
      },
      async (port) => {
        const e = await raw(port, 'GET /empty HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        assert.match(e, /^HTTP\/1\.1 200 \r\n/);
        assert.equal(parseResponses(e)[0].body, 'xyz');
        const h = await raw(port, 'HEAD / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        assert.match(h, /^HTTP\/1\.1 200 Heads Up\r\n/);
        assert.match(h, /Content-Length: 3\r\n/);
        assert.ok(h.endsWith('\r\n\r\n'), 'HEAD has no body');
        const n = await raw(port, 'GET /204 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        assert.match(n, /^HTTP\/1\.1 204 Nothing Here\r\n/);
      },
    );
  });

  test('a reason with CR/LF is refused by writeHead, as node:http does', async () => {
    let thrown;
    await withServer(
      (req, res) => {
        try {
          res.writeHead(200, 'bad\r\nX-Injected: 1');
        } catch (e) {
          thrown = e;
        }
        if (!res.headersSent) res.writeHead(200, 'OK');
        res.end('safe');
      },
      async (port) => {
        const text = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        assert.equal(thrown?.code, 'ERR_INVALID_CHAR');
        assert.ok(!text.includes('X-Injected'));
        assert.match(text, /^HTTP\/1\.1 200 /);
      },
    );
  });
});

test('every request handle was released once the servers closed', async () => {
  const { native } = require('../../node/binding');
  for (let i = 0; i < 100 && native.live() !== 0; i++) await sleep(10);
  assert.equal(native.live(), 0);
});
