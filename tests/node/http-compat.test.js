'use strict';
// piston.createServer: the node:http surface, event order, bodies,
// backpressure, aborts, pipelining and the engine's rejections, over raw
// sockets on 127.0.0.1.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');
const piston = require('../..');
const { listen, close, connect, raw, parseResponses, request, sleep } = require('./helpers');

async function withServer(handler, fn, options) {
  const server = piston.createServer(options || {}, handler);
  const { port } = await listen(server);
  try {
    return await fn(port, server);
  } finally {
    await close(server);
  }
}

describe('createServer: request and response surface', () => {
  test('req and res are real IncomingMessage / ServerResponse', async () => {
    let seen;
    await withServer(
      (req, res) => {
        seen = {
          isReq: req instanceof http.IncomingMessage,
          isRes: res instanceof http.ServerResponse,
          method: req.method,
          url: req.url,
          httpVersion: req.httpVersion,
          major: req.httpVersionMajor,
          minor: req.httpVersionMinor,
          headers: req.headers,
          rawHeaders: req.rawHeaders,
          remoteAddress: req.socket.remoteAddress,
          remotePort: req.socket.remotePort,
          localPort: req.socket.localPort,
          encrypted: req.socket.encrypted,
          sameSocket: req.socket === res.socket && req.connection === req.socket,
        };
        res.end('ok');
      },
      async (port) => {
        const text = await raw(
          port,
          'GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nx-dup: 2\r\nCookie: a=1\r\nSet-Cookie: s1\r\nSet-Cookie: s2\r\nConnection: close\r\n\r\n',
        );
        assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
        assert.equal(seen.isReq, true);
        assert.equal(seen.isRes, true);
        assert.equal(seen.method, 'GET');
        assert.equal(seen.url, '/a/b?x=1&y=%20');
        assert.equal(seen.httpVersion, '1.1');
        assert.equal(seen.major, 1);
        assert.equal(seen.minor, 1);
        assert.equal(seen.headers.host, 'h');
        assert.equal(seen.headers['x-dup'], '1, 2');
        assert.deepEqual(seen.headers['set-cookie'], ['s1', 's2']);
        assert.deepEqual(seen.rawHeaders.slice(0, 6), ['Host', 'h', 'X-Dup', '1', 'x-dup', '2']);
        assert.equal(seen.remoteAddress, '127.0.0.1');
        assert.equal(typeof seen.remotePort, 'number');
        assert.equal(seen.localPort, port);
        assert.equal(seen.encrypted, false);
        assert.equal(seen.sameSocket, true);
      },
    );
  });

  test('setHeader/getHeader/hasHeader/removeHeader/getHeaders, writeHead, headersSent', async () => {
    const log = [];
    await withServer(
      (req, res) => {
        res.statusCode = 201;
        res.setHeader('X-One', '1');
        res.setHeader('Set-Cookie', ['a=1', 'b=2']);
        res.setHeader('X-Gone', 'x');
        log.push(res.getHeader('x-one'), res.hasHeader('X-GONE'));
        res.removeHeader('x-gone');
        log.push(res.hasHeader('x-gone'), JSON.stringify(res.getHeaders()), res.headersSent);
        res.writeHead(202, { 'Content-Type': 'text/plain', 'X-Two': 2 });
        log.push(res.headersSent, res.statusCode);
        res.end('body!');
        log.push(res.writableEnded);
      },
      async (port) => {
        const [r] = parseResponses(await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'));
        assert.equal(r.status, 202);
        assert.equal(r.headers['x-one'], '1');
        assert.equal(r.headers['x-two'], '2');
        assert.equal(r.headers['content-type'], 'text/plain');
        assert.equal(r.headers['x-gone'], undefined);
        assert.equal(r.headers['content-length'], '5');
        assert.equal(r.body, 'body!');
        assert.deepEqual(log, ['1', true, false, '{"x-one":"1","set-cookie":["a=1","b=2"]}', false, true, 202, true]);
      },
    );
  });

  test('writeHead with an array of raw headers, and repeated Set-Cookie on the wire', async () => {
    await withServer(
      (req, res) => {
        res.setHeader('Set-Cookie', ['a=1', 'b=2']);
        res.writeHead(200, ['X-A', '1', 'X-B', '2']);
        res.end();
      },
      async (port) => {
        const text = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        assert.match(text, /\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n/);
        assert.match(text, /\r\nX-A: 1\r\n/);
      },
    );
  });

  test('chunked streaming response, then keep-alive on the same connection', async () => {
    await withServer(
      (req, res) => {
        res.write('hello ');
        setTimeout(() => res.end('world'), 5);
      },
      async (port) => {
        const text = await raw(port, 'GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        const rs = parseResponses(text);
        assert.equal(rs.length, 2);
        for (const r of rs) {
          assert.equal(r.headers['transfer-encoding'], 'chunked');
          assert.equal(r.body, 'hello world');
        }
      },
    );
  });

  test('addTrailers() after a chunked body (exact bytes)', async () => {
    await withServer(
      (req, res) => {
        res.setHeader('Trailer', 'X-Sum');
        res.write('abc');
        res.addTrailers({ 'X-Sum': '42' });
        res.end();
      },
      async (port) => {
        const text = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        assert.equal(
          text.replace(/Date: [^\r]*\r\n/, ''),
          'HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n',
        );
      },
    );
  });

  test('HEAD carries no body; 204 and 304 carry none either', async () => {
    await withServer(
      (req, res) => {
        if (req.url === '/204') res.statusCode = 204;
        if (req.url === '/304') res.statusCode = 304;
        res.end('ignored');
      },
      async (port) => {
        const text = await raw(
          port,
          'HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET /204 HTTP/1.1\r\nHost: h\r\n\r\nGET /304 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
        );
        assert.equal((text.match(/ignored/g) || []).length, 0);
        assert.match(text, /HTTP\/1\.1 200 OK\r\n/);
        assert.match(text, /HTTP\/1\.1 204 No Content\r\n/);
        assert.match(text, /HTTP\/1\.1 304 Not Modified\r\n/);
      },
    );
  });

  test('HTTP/1.0: version reported, response ends with the connection', async () => {
    let v;
    await withServer(
      (req, res) => {
        v = req.httpVersion;
        res.write('a');
        res.end('b');
      },
      async (port) => {
        const text = await raw(port, 'GET / HTTP/1.0\r\n\r\n');
        assert.equal(v, '1.0');
        assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
        assert.match(text, /Connection: close\r\n/);
        assert.ok(text.endsWith('\r\n\r\nab'));
      },
    );
  });
});

describe('createServer: request bodies', () => {
  test("'data'/'end', async iteration and pipe", async () => {
    await withServer(
      async (req, res) => {
        if (req.url === '/data') {
          const chunks = [];
          req.on('data', (c) => chunks.push(c));
          req.on('end', () => res.end('data:' + Buffer.concat(chunks).length));
        } else if (req.url === '/iter') {
          let n = 0;
          for await (const c of req) n += c.length;
          res.end('iter:' + n);
        } else {
          res.setHeader('Content-Type', 'application/octet-stream');
          req.pipe(res);
        }
      },
      async (port) => {
        const big = 'x'.repeat(1024 * 1024 + 7);
        assert.equal((await request(port, 'POST', '/data', { body: big })).body, 'data:' + big.length);
        assert.equal((await request(port, 'POST', '/iter', { body: big })).body, 'iter:' + big.length);
        const r = await request(port, 'POST', '/pipe', { body: big });
        assert.equal(r.body.length, big.length);
        assert.equal(r.body, big);
      },
    );
  });

  test('Expect: 100-continue gets its interim response when the body is read', async () => {
    await withServer(
      (req, res) => {
        let n = 0;
        req.on('data', (d) => (n += d.length));
        req.on('end', () => res.end('n=' + n));
      },
      async (port) => {
        const c = await connect(port);
        let got = '';
        c.on('data', (d) => (got += d));
        c.write('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
        for (let i = 0; i < 100 && !got; i++) await sleep(5);
        assert.equal(got, 'HTTP/1.1 100 Continue\r\n\r\n');
        c.write('abc');
        await new Promise((r) => c.on('close', r));
        assert.match(got, /\r\n\r\nn=3$/);
      },
    );
  });

  test('chunked request body arrives in pieces', async () => {
    await withServer(
      (req, res) => {
        let s = '';
        req.setEncoding('utf8');
        req.on('data', (c) => (s += c));
        req.on('end', () => res.end(s.toUpperCase()));
      },
      async (port) => {
        const s = await connect(port);
        const got = [];
        s.on('data', (d) => got.push(d));
        s.write('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n');
        await sleep(30);
        s.write('2\r\nde\r\n0\r\n\r\n');
        await new Promise((r) => s.on('close', r));
        const [r] = parseResponses(Buffer.concat(got).toString());
        assert.equal(r.body, 'ABCDE');
      },
    );
  });

  test('an unread body is dumped and the connection stays usable', async () => {
    await withServer(
      (req, res) => res.end('ignored body'),
      async (port) => {
        const body = 'y'.repeat(100000);
        const text = await raw(
          port,
          `POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ${body.length}\r\n\r\n${body}GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`,
        );
        const rs = parseResponses(text);
        assert.equal(rs.length, 2);
        assert.equal(rs[1].body, 'ignored body');
      },
    );
  });
});

describe('createServer: event order', () => {
  test("req 'end'/'close' and res 'finish'/'close' come in node:http's order", async () => {
    const run = async (mk) => {
      const events = [];
      const server = mk((req, res) => {
        req.on('end', () => events.push('req end'));
        req.on('close', () => events.push('req close'));
        res.on('finish', () => events.push('res finish'));
        res.on('close', () => events.push('res close'));
        req.resume();
        req.on('end', () => {
          res.end('x');
          events.push('end() returned');
        });
      });
      const { port } = await listen(server);
      await request(port, 'POST', '/', { body: 'abc' });
      await sleep(20);
      await request(port, 'GET', '/');
      await sleep(20);
      await close(server);
      return events;
    };
    const expected = await run(http.createServer);
    assert.deepEqual(await run(piston.createServer), expected);
    assert.deepEqual(expected.slice(0, 5), ['req end', 'end() returned', 'res finish', 'res close', 'req close']);
  });

  test('the same handler on node:http gives the same res order', async () => {
    const order = (server) =>
      new Promise((resolve) => {
        const ev = [];
        server.on('request', (req, res) => {
          res.on('finish', () => ev.push('finish'));
          res.on('close', () => {
            ev.push('close');
            resolve(ev);
          });
          res.end('x');
          ev.push('ended');
        });
      });
    for (const mk of [http.createServer, piston.createServer]) {
      const s = mk();
      const p = order(s);
      const { port } = await listen(s);
      await request(port, 'GET', '/');
      assert.deepEqual(await p, ['ended', 'finish', 'close']);
      await close(s);
    }
  });
});

describe('createServer: backpressure', () => {
  test("write() returns false under pressure and 'drain' follows", async () => {
    const CHUNK = Buffer.alloc(64 * 1024, 97);
    const TOTAL = 64; // 4 MiB
    let falses = 0;
    let drains = 0;
    await withServer(
      (req, res) => {
        let sent = 0;
        res.on('drain', () => drains++);
        const pump = () => {
          while (sent < TOTAL) {
            sent++;
            if (!res.write(CHUNK)) {
              falses++;
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
      },
      async (port) => {
        const s = await connect(port);
        s.write('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        s.pause(); // a slow reader: let the queue fill
        await sleep(100);
        assert.ok(falses >= 1, 'write() should have returned false');
        let n = 0;
        s.on('data', (d) => (n += d.length));
        s.resume();
        await new Promise((r) => s.on('close', r));
        assert.ok(n > TOTAL * CHUNK.length);
        assert.ok(drains >= 1);
      },
      { writeHighWater: 128 * 1024 },
    );
  });

  test('pipe() from a file stream respects backpressure and delivers every byte', async () => {
    const file = path.join(os.tmpdir(), `piston-pipe-${process.pid}.bin`);
    const data = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 255;
    fs.writeFileSync(file, data);
    try {
      await withServer(
        (req, res) => fs.createReadStream(file).pipe(res),
        async (port) => {
          const s = await connect(port);
          const got = [];
          s.on('data', (d) => got.push(d));
          s.write('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
          await new Promise((r) => s.on('close', r));
          const [r] = parseResponses(Buffer.concat(got).toString('latin1'));
          assert.equal(Buffer.from(r.body, 'latin1').equals(data), true);
        },
      );
    } finally {
      fs.unlinkSync(file);
    }
  });
});

describe('createServer: handlerTimeout', () => {
  test('off by default, as in node:http', async () => {
    const server = piston.createServer(() => {});
    assert.equal(server.handlerTimeout, 0);
  });

  test("no response in time: the engine's 503, req 'aborted' and 'close', res 'close'", async () => {
    const ev = [];
    let done;
    const finished = new Promise((r) => (done = r));
    const server = piston.createServer((req, res) => {
      if (req.url === '/ok') return res.end('ok');
      req.on('aborted', () => ev.push('aborted'));
      req.on('error', (e) => ev.push('req error ' + e.code));
      req.on('close', () => ev.push('req close'));
      res.on('finish', () => ev.push('finish'));
      res.on('close', () => {
        ev.push('res close');
        // a late answer is dropped, without throwing
        res.writeHead(200).end('late');
        done();
      });
    });
    server.on('checkContinue', (req, res) => server.emit('request', req, res));
    server.handlerTimeout = 200; // settable before listen
    const { port } = await listen(server);
    try {
      const t0 = Date.now();
      // the client waits for 100 Continue (which a read would send: the
      // 'checkContinue' listener sends none itself), so the wait is on the
      // handler; the body is incomplete: 'aborted' too
      const text = await raw(port, 'POST /hang HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n', 3000);
      const took = Date.now() - t0;
      await finished;
      const [r] = parseResponses(text);
      assert.equal(r.statusLine, 'HTTP/1.1 503 Service Unavailable');
      assert.equal(r.headers.connection, 'close');
      assert.ok(took < 1500, String(took));
      assert.ok(ev.includes('aborted'), ev.join());
      assert.ok(ev.includes('req close'), ev.join());
      assert.ok(ev.includes('res close'), ev.join());
      assert.equal(ev.includes('finish'), false);
      assert.equal((await request(port, 'GET', '/ok')).body, 'ok');
    } finally {
      await close(server);
    }
  });

  test('a started response is not cut', async () => {
    await withServer(
      (req, res) => {
        res.write('a');
        setTimeout(() => res.end('b'), 400);
      },
      async (port) => {
        const [r] = parseResponses(await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', 3000));
        assert.equal(r.status, 200);
        assert.equal(r.body, 'ab');
      },
      { handlerTimeout: 200 },
    );
  });
});

describe('createServer: aborts', () => {
  test("client gone mid-body: req 'aborted', res 'close' without 'finish'", async () => {
    const events = [];
    let done;
    const finished = new Promise((r) => (done = r));
    await withServer(
      (req, res) => {
        req.on('aborted', () => events.push('aborted'));
        req.on('error', (e) => events.push('req error ' + e.code));
        req.on('close', () => {
          events.push('req close');
          done();
        });
        res.on('finish', () => events.push('finish'));
        res.on('close', () => events.push('res close'));
        req.resume();
      },
      async (port) => {
        const s = await connect(port);
        s.write('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\nabc');
        await sleep(50);
        s.destroy();
        await finished;
      },
    );
    assert.equal(events.includes('finish'), false);
    assert.ok(events.includes('aborted'));
    assert.ok(events.includes('res close'));
    assert.ok(events.indexOf('aborted') < events.indexOf('req close'));
  });

  test("abort events come in node:http's order", async () => {
    const run = async (mk) => {
      const ev = [];
      const server = mk((req, res) => {
        req.on('aborted', () => ev.push('aborted'));
        req.on('error', (e) => ev.push('req error ' + e.code));
        req.on('end', () => ev.push('req end'));
        req.on('close', () => ev.push('req close'));
        res.on('finish', () => ev.push('finish'));
        res.on('close', () => ev.push('res close'));
        req.socket.on('close', () => ev.push('socket close'));
        req.resume();
      });
      const { port } = await listen(server);
      const c = await connect(port);
      c.write('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\nabc');
      await sleep(40);
      c.destroy();
      for (let i = 0; i < 100 && !ev.includes('req close'); i++) await sleep(5);
      await close(server);
      return ev;
    };
    const expected = await run(http.createServer);
    assert.deepEqual(await run(piston.createServer), expected);
  });

  test('client gone while the response waits on drain: close fires, server keeps serving', async () => {
    let closed = false;
    await withServer(
      (req, res) => {
        if (req.url === '/ok') return res.end('still here');
        res.on('close', () => (closed = true));
        const chunk = Buffer.alloc(256 * 1024);
        const pump = () => {
          while (res.write(chunk));
          res.once('drain', pump);
        };
        pump();
      },
      async (port) => {
        const s = await connect(port);
        s.write('GET /big HTTP/1.1\r\nHost: h\r\n\r\n');
        s.pause();
        await sleep(50);
        s.destroy();
        for (let i = 0; i < 50 && !closed; i++) await sleep(10);
        assert.equal(closed, true);
        assert.equal((await request(port, 'GET', '/ok')).body, 'still here');
      },
      { writeHighWater: 64 * 1024 },
    );
  });

  test('socket.destroy() from the handler closes the connection', async () => {
    await withServer(
      (req, res) => {
        res.write('partial');
        req.socket.destroy();
      },
      async (port) => {
        const text = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n');
        assert.match(text, /^HTTP\/1\.1 200 OK/);
        assert.ok(!text.includes('0\r\n\r\n'), 'a destroyed response must not be terminated normally');
      },
    );
  });
});

describe('createServer: many connections', () => {
  test('1000 keep-alive requests over 50 connections, sync and async handlers mixed', async () => {
    await withServer(
      async (req, res) => {
        if (req.url.endsWith('1')) await null;
        if (req.url.endsWith('2')) await new Promise((r) => setImmediate(r));
        let body = '';
        for await (const c of req) body += c;
        res.setHeader('Content-Type', 'text/plain');
        res.end(req.url + ':' + body);
      },
      async (port) => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
        const one = (i) =>
          new Promise((resolve, reject) => {
            const r = http.request({ port, host: '127.0.0.1', path: `/r${i}`, method: i % 3 ? 'GET' : 'POST', agent }, (res) => {
              let b = '';
              res.setEncoding('utf8');
              res.on('data', (c) => (b += c));
              res.on('end', () => resolve(b));
            });
            r.on('error', reject);
            r.end(i % 3 ? undefined : 'p' + i);
          });
        const out = await Promise.all(Array.from({ length: 1000 }, (_, i) => one(i)));
        agent.destroy();
        for (let i = 0; i < 1000; i++) assert.equal(out[i], `/r${i}:` + (i % 3 ? '' : 'p' + i));
      },
    );
  });
});

describe('createServer: pipelining (exact bytes)', () => {
  test('three pipelined requests answered in order, bodies exact', async () => {
    await withServer(
      (req, res) => {
        const delay = req.url === '/1' ? 30 : 0;
        setTimeout(() => {
          res.setHeader('Content-Type', 'text/plain');
          res.end('r' + req.url);
        }, delay);
      },
      async (port) => {
        const text = await raw(
          port,
          'GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
        );
        const stripped = text.replace(/Date: [^\r]*\r\n/g, '');
        assert.equal(
          stripped,
          'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\nr/1' +
            'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\nr/2' +
            'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 3\r\n\r\nr/3',
        );
      },
    );
  });
});

describe("createServer: the engine's rejections through the Node host", () => {
  const cases = [
    ['missing Host on HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n', 400],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
    ['HTTP/2.0 request line', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505],
    ['garbage', 'HELLO\r\n\r\n', 400],
    ['head too large', 'GET / HTTP/1.1\r\nHost: a\r\nX-Big: ' + 'a'.repeat(20000) + '\r\n\r\n', 431],
    ['URL too long', 'GET /' + 'u'.repeat(9000) + ' HTTP/1.1\r\nHost: a\r\n\r\n', 414],
    ['body over the limit', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n', 413],
    ['Transfer-Encoding on HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ];
  for (const [name, bytes, status] of cases) {
    test(`${name} -> ${status} and close, handler not called`, async () => {
      let called = false;
      await withServer(
        (req, res) => {
          called = true;
          res.end();
        },
        async (port) => {
          const text = await raw(port, bytes);
          assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `));
          assert.match(text, /Connection: close\r\n/);
          assert.equal(called, false);
        },
        { maxBodySize: 1000 },
      );
    });
  }
});

describe('createServer: errors in handlers', () => {
  test("a throwing handler -> 500 and 'error'; other requests still served", async () => {
    const errors = [];
    const server = piston.createServer((req, res) => {
      if (req.url === '/throw') throw new Error('boom');
      res.end('fine');
    });
    server.on('error', (e) => errors.push(e.message));
    const { port } = await listen(server);
    const s1 = await connect(port); // a keep-alive connection held open meanwhile
    const r = await request(port, 'GET', '/throw');
    assert.equal(r.status, 500);
    assert.deepEqual(errors, ['boom']);
    assert.equal((await request(port, 'GET', '/x')).body, 'fine');
    const got = [];
    s1.on('data', (d) => got.push(d));
    s1.write('GET /y HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    await new Promise((res) => s1.on('close', res));
    assert.equal(parseResponses(Buffer.concat(got).toString())[0].body, 'fine');
    await close(server);
  });
});

describe('createServer: listen, address, close', () => {
  test('listen({port, host}), port 0, address(), listening event, close(cb)', async () => {
    const server = piston.createServer((req, res) => res.end('ok'));
    const events = [];
    server.on('listening', () => events.push('listening'));
    server.on('close', () => events.push('close'));
    await new Promise((r) => server.listen({ port: 0, host: '127.0.0.1' }, r));
    const a = server.address();
    assert.equal(a.address, '127.0.0.1');
    assert.equal(a.family, 'IPv4');
    assert.ok(a.port > 0);
    assert.equal(server.listening, true);
    assert.equal((await request(a.port, 'GET', '/')).body, 'ok');
    await new Promise((r) => server.close(r));
    assert.deepEqual(events, ['listening', 'close']);
    assert.equal(server.address(), null);
    await assert.rejects(connect(a.port));
  });

  test('listen(port, host, backlog, cb) and the default host', async () => {
    const server = piston.createServer((req, res) => res.end('ok'));
    await new Promise((r) => server.listen(0, '127.0.0.1', 511, r));
    assert.equal((await request(server.address().port, 'GET', '/')).body, 'ok');
    await close(server);
    const s2 = piston.createServer((req, res) => res.end('any'));
    await new Promise((r) => s2.listen(0, r));
    assert.equal((await request(s2.address().port, 'GET', '/')).body, 'any');
    await close(s2);
  });

  test('a Unix socket path', async () => {
    const sock = path.join(os.tmpdir(), `piston-${process.pid}.sock`);
    const server = piston.createServer((req, res) => res.end('unix ' + req.url));
    await new Promise((r) => server.listen(sock, r));
    assert.equal(server.address(), sock);
    const body = await new Promise((resolve, reject) => {
      http.get({ socketPath: sock, path: '/u' }, (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve(b));
      }).on('error', reject);
    });
    assert.equal(body, 'unix /u');
    await close(server);
    fs.rmSync(sock, { force: true });
  });

  test("EADDRINUSE arrives as an 'error' event", async () => {
    const a = piston.createServer(() => {});
    const { port } = await listen(a);
    const b = piston.createServer(() => {});
    const err = await new Promise((resolve) => {
      b.on('error', resolve);
      b.listen(port, '127.0.0.1');
    });
    assert.equal(err.code, 'EADDRINUSE');
    await close(a);
  });

  test('close(cb) on a server that is not running reports ERR_SERVER_NOT_RUNNING', async () => {
    const s = piston.createServer(() => {});
    const err = await new Promise((r) => s.close(r));
    assert.equal(err.code, 'ERR_SERVER_NOT_RUNNING');
  });

  test('close() waits for the request in flight, then closeAllConnections() ends the rest', async () => {
    let release;
    const server = piston.createServer((req, res) => {
      if (req.url === '/slow') release = () => res.end('late');
      else res.end('quick');
    });
    const { port } = await listen(server);
    const slow = request(port, 'GET', '/slow');
    while (!release) await sleep(5);
    let closed = false;
    server.close(() => (closed = true));
    await sleep(30);
    assert.equal(closed, false, 'close waits for the request in flight');
    release();
    assert.equal((await slow).body, 'late');
    for (let i = 0; i < 100 && !closed; i++) await sleep(10);
    assert.equal(closed, true);
  });

  test('closeAllConnections() ends a hanging request', async () => {
    const server = piston.createServer(() => {});
    const { port } = await listen(server);
    const pending = raw(port, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', 3000);
    await sleep(50);
    const done = new Promise((r) => server.close(r));
    server.closeAllConnections();
    await done;
    await pending;
  });

  test('keepAliveTimeout maps onto the engine: an idle connection is closed', async () => {
    const server = piston.createServer((req, res) => res.end('k'));
    server.keepAliveTimeout = 150;
    const { port } = await listen(server);
    const s = await connect(port);
    const t0 = Date.now();
    s.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
    s.resume();
    await new Promise((r) => s.on('close', r));
    const dt = Date.now() - t0;
    assert.ok(dt >= 100 && dt < 2000, `closed after ${dt} ms`);
    await close(server);
  });

  test('a process whose servers are closed exits on its own; an unref()d one too', () => {
    const code = `
      const piston = require(${JSON.stringify(path.resolve(__dirname, '../..'))});
      const a = piston.createServer((q, s) => s.end());
      a.listen(0, '127.0.0.1', () => a.close(() => console.log('closed')));
      const b = piston.createServer((q, s) => s.end());
      b.listen(0, '127.0.0.1', () => { b.unref(); console.log('unref'); });
    `;
    const r = spawnSync(process.execPath, ['-e', code], { timeout: 5000, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /closed/);
    assert.match(r.stdout, /unref/);
  });
});

test('every request handle was released once the servers closed', async () => {
  const { native } = require('../../node/binding');
  for (let i = 0; i < 100 && native.live() !== 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(native.live(), 0);
});
