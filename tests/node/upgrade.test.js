'use strict';
// node:http's 'upgrade' and 'connect' events on piston.createServer
// (node/upgrade.js), with the libraries that use them: ws (with
// { server } and with noServer + handleUpgrade), socket.io, http-proxy's
// WebSocket proxying, and CONNECT tunnels. Where node:http's behaviour is
// the assertion (the 101's bytes, head, half-closes, a CONNECT nobody
// listens to, close() with an upgraded socket open), the same app runs on
// node:http and on piston and the results are compared.

const { test, describe, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const { once } = require('node:events');
const WebSocket = require('ws');
const { WebSocketServer } = WebSocket;
const piston = require('../..');
const { native } = require('../../node/binding');
const { listen, sleep, raw } = require('./helpers');

// Both servers, for the cases whose assertion is node:http's behaviour.
const BOTH = [
  ['node:http', (h) => http.createServer(h)],
  ['piston', (h) => piston.createServer(h)],
];

// Every request handle goes back once the test's sockets have closed.
const live0 = native.live();
afterEach(async () => {
  await until(() => native.live() === live0);
});

async function until(fn, ms = 5000) {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not met in ' + ms + ' ms');
    await sleep(5);
  }
}

function closeServer(server) {
  return new Promise((resolve) => server.close(() => resolve()));
}

function wsOpen(url, protocols, opts) {
  return new Promise((resolve, reject) => {
    const c = new WebSocket(url, protocols, opts);
    c.once('open', () => resolve(c));
    c.once('error', reject);
  });
}

function nextMessage(c) {
  return new Promise((resolve) => c.once('message', (data, isBinary) => resolve({ data, isBinary })));
}

function wsClosed(c) {
  return new Promise((resolve) => c.once('close', (code, reason) => resolve([code, reason.toString()])));
}

// A raw client: write bytes, read until `until(text)` holds or the server
// closes; resolves { text, ended } (ended: the server's FIN/close came).
function rawClient(port) {
  const s = net.connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  let ended = false;
  const waiters = [];
  const check = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].fn(buf.toString('latin1')) || ended) {
        waiters[i].resolve(buf.toString('latin1'));
        waiters.splice(i, 1);
      }
    }
  };
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    check();
  });
  s.on('end', () => {
    ended = true;
    check();
  });
  s.on('close', () => {
    ended = true;
    check();
  });
  s.on('error', () => {});
  return {
    sock: s,
    get ended() {
      return ended;
    },
    get text() {
      return buf.toString('latin1');
    },
    wait(fn, ms = 5000) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('timed out; got ' + JSON.stringify(buf.toString('latin1').slice(0, 200)))), ms);
        waiters.push({ fn, resolve: (v) => (clearTimeout(t), resolve(v)) });
        check();
      });
    },
    closed() {
      return ended ? Promise.resolve() : once(s, 'close');
    },
  };
}

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
function handshake(path = '/', extra = '') {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
}
// A masked client frame.
function frame(op, payload, fin = true) {
  payload = Buffer.from(payload);
  const n = payload.length;
  const head = n < 126 ? Buffer.from([(fin ? 0x80 : 0) | op, 0x80 | n]) : Buffer.from([(fin ? 0x80 : 0) | op, 0x80 | 126, n >> 8, n & 255]);
  const mask = Buffer.from([1, 2, 3, 4]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
}

// A ws echo on server: every message back as it came.
function wsEcho(server, options = {}) {
  const wss = new WebSocketServer({ server, ...options });
  const seen = { closes: [], errors: [] };
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
      if (!isBinary && data.toString() === 'close-please') return ws.close(4001, 'asked');
      if (!isBinary && data.toString() === 'terminate') return ws.terminate();
      ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code, reason) => seen.closes.push([code, reason.toString()]));
    ws.on('error', (e) => seen.errors.push(e));
  });
  return { wss, seen };
}

describe("ws's WebSocketServer({ server }) on createServer", () => {
  test('text, binary, 1 MiB, ping/pong, close codes both ways', async () => {
    const server = piston.createServer((req, res) => res.end('plain'));
    const { wss, seen } = wsEcho(server);
    const { port } = await listen(server);
    const c = await wsOpen(`ws://127.0.0.1:${port}/chat`);

    c.send('hello');
    let m = await nextMessage(c);
    assert.deepEqual([m.data.toString(), m.isBinary], ['hello', false]);

    c.send(Buffer.from([0, 1, 2, 255]));
    m = await nextMessage(c);
    assert.deepEqual([m.data, m.isBinary], [Buffer.from([0, 1, 2, 255]), true]);

    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
    c.send(big);
    m = await nextMessage(c);
    assert.equal(m.isBinary, true);
    assert.ok(m.data.equals(big), '1 MiB back unchanged');

    // ping -> the server's automatic pong with the same payload
    c.ping(Buffer.from('are you there'));
    const [pong] = await once(c, 'pong');
    assert.equal(pong.toString(), 'are you there');

    // the server closes with its own code
    c.send('close-please');
    assert.deepEqual(await wsClosed(c), [4001, 'asked']);
    await until(() => seen.closes.length === 1);
    assert.equal(seen.closes[0][0], 4001);

    // the client closes with its code and reason; the server sees them
    const c2 = await wsOpen(`ws://127.0.0.1:${port}/`);
    c2.close(4000, 'client done');
    assert.deepEqual(await wsClosed(c2), [4000, 'client done']);
    await until(() => seen.closes.length === 2);
    assert.deepEqual(seen.closes[1], [4000, 'client done']);

    // plain HTTP goes on next to it
    const r = await fetch(`http://127.0.0.1:${port}/x`);
    assert.equal(await r.text(), 'plain');
    assert.deepEqual(seen.errors, []);
    wss.close();
    await closeServer(server);
  });

  test('many clients at once, each with its own echo', async () => {
    const server = piston.createServer();
    const { wss } = wsEcho(server);
    const { port } = await listen(server);
    const N = 64;
    const clients = await Promise.all(Array.from({ length: N }, () => wsOpen(`ws://127.0.0.1:${port}/`)));
    assert.equal(wss.clients.size, N);
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < 20; k++) {
          const p = nextMessage(c);
          c.send(`client ${i} message ${k}`);
          assert.equal((await p).data.toString(), `client ${i} message ${k}`);
        }
      }),
    );
    await Promise.all(clients.map((c) => (c.close(1000), wsClosed(c))));
    await until(() => wss.clients.size === 0);
    wss.close();
    await closeServer(server);
  });

  test('a client vanishing mid-frame: its session ends with 1006, the server serves on', async () => {
    const server = piston.createServer();
    const { wss, seen } = wsEcho(server);
    const { port } = await listen(server);
    const c = rawClient(port);
    c.sock.write(handshake());
    await c.wait((t) => t.includes('\r\n\r\n'));
    assert.match(c.text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    // half of a 200-byte frame, then the connection is cut
    c.sock.write(frame(2, Buffer.alloc(200, 1)).subarray(0, 60));
    await sleep(20);
    c.sock.destroy();
    await until(() => seen.closes.length === 1);
    assert.equal(seen.closes[0][0], 1006);
    // and once more with a reset instead of a FIN
    const d = rawClient(port);
    d.sock.write(handshake());
    await d.wait((t) => t.includes('\r\n\r\n'));
    d.sock.write(frame(1, 'x'.repeat(100)).subarray(0, 30));
    await sleep(20);
    d.sock.resetAndDestroy();
    await until(() => seen.closes.length === 2);
    assert.equal(seen.closes[1][0], 1006);
    const ok = await wsOpen(`ws://127.0.0.1:${port}/`);
    ok.send('still here');
    assert.equal((await nextMessage(ok)).data.toString(), 'still here');
    ok.close();
    await wsClosed(ok);
    wss.close();
    await closeServer(server);
  });

  test('an upgrade after plain requests on the same keep-alive connection', async () => {
    const server = piston.createServer((req, res) => res.end('plain ' + req.url));
    const { wss } = wsEcho(server);
    let connections = 0;
    server.on('connection', () => connections++);
    const { port } = await listen(server);
    const c = rawClient(port);
    c.sock.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.wait((t) => t.includes('plain /one'));
    // the second request and the upgrade behind it in one write
    c.sock.write('GET /two HTTP/1.1\r\nHost: x\r\n\r\n' + handshake());
    await c.wait((t) => t.includes('Sec-WebSocket-Accept'));
    const at = c.text.length;
    c.sock.write(frame(1, 'over the same connection'));
    await c.wait((t) => t.slice(at).includes('over the same connection'));
    assert.match(c.text, /plain \/one[\s\S]*plain \/two[\s\S]*HTTP\/1\.1 101 Switching Protocols/);
    assert.equal(connections, 1);
    c.sock.destroy();
    await until(() => wss.clients.size === 0);
    wss.close();
    await closeServer(server);
  });

  test("the server's terminate(): the client sees 1006 at once", async () => {
    const server = piston.createServer();
    const { wss, seen } = wsEcho(server);
    const { port } = await listen(server);
    const c = await wsOpen(`ws://127.0.0.1:${port}/`);
    const t0 = Date.now();
    c.send('terminate');
    assert.deepEqual(await wsClosed(c), [1006, '']);
    assert.ok(Date.now() - t0 < 2000);
    await until(() => seen.closes.length === 1);
    assert.equal(seen.closes[0][0], 1006);
    wss.close();
    await closeServer(server);
  });

  test('a path option: other paths are refused with 400 by ws itself', async () => {
    const server = piston.createServer();
    const { wss } = wsEcho(server, { path: '/only' });
    const { port } = await listen(server);
    const c = await wsOpen(`ws://127.0.0.1:${port}/only`);
    c.close();
    await wsClosed(c);
    const err = await new Promise((resolve) => {
      const w = new WebSocket(`ws://127.0.0.1:${port}/other`);
      w.on('unexpected-response', (req, res) => resolve(res.statusCode));
      w.on('error', (e) => resolve(e.message));
    });
    assert.equal(err, 400);
    wss.close();
    await closeServer(server);
  });
});

describe("noServer + handleUpgrade from an 'upgrade' listener", () => {
  function app() {
    const server = piston.createServer((req, res) => res.end('http ' + req.url));
    const wss = new WebSocketServer({ noServer: true });
    wss.on('connection', (ws, req) => {
      ws.send(`welcome ${req.url} ${req.headers['x-user']}`);
      ws.on('message', (d, b) => ws.send(d, { binary: b }));
    });
    server.on('upgrade', (req, socket, head) => {
      if (req.headers['x-user'] !== 'alice') {
        socket.write('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
        socket.destroy();
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    });
    return { server, wss };
  }

  test('an accepted upgrade, with the request as ws got it', async () => {
    const { server, wss } = app();
    const { port } = await listen(server);
    const c = new WebSocket(`ws://127.0.0.1:${port}/room/1?x=y`, { headers: { 'x-user': 'alice' } });
    const [first] = await once(c, 'message');
    assert.equal(first.toString(), 'welcome /room/1?x=y alice');
    c.send('ping?');
    assert.equal((await nextMessage(c)).data.toString(), 'ping?');
    c.close(1000);
    await wsClosed(c);
    wss.close();
    await closeServer(server);
  });

  test('a refused upgrade: the 401 the listener wrote, then the close', async () => {
    const { server, wss } = app();
    const { port } = await listen(server);
    const status = await new Promise((resolve) => {
      const c = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { 'x-user': 'mallory' } });
      c.on('unexpected-response', (req, res) => resolve(res.statusCode));
      c.on('error', (e) => resolve(e.message));
    });
    assert.equal(status, 401);
    const text = await raw(port, handshake('/', 'X-User: eve\r\n'));
    assert.equal(text, 'HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
    // plain HTTP is untouched by the listener
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/p`)).text(), 'http /p');
    wss.close();
    await closeServer(server);
  });
});

describe('socket.io', () => {
  const { Server } = require('socket.io');
  const { io } = require('socket.io-client');

  async function roundTrip(transports) {
    const server = piston.createServer();
    const ioServer = new Server(server);
    ioServer.on('connection', (socket) => {
      socket.on('hello', (arg, ack) => ack({ got: arg, transport: socket.conn.transport.name }));
      socket.on('shout', (arg) => socket.emit('echo', arg.toUpperCase()));
    });
    const { port } = await listen(server);
    const client = io(`http://127.0.0.1:${port}`, { transports, reconnection: false, forceNew: true });
    await once(client, 'connect');
    const answer = await client.timeout(5000).emitWithAck('hello', { n: 42 });
    const echoed = new Promise((resolve) => client.once('echo', resolve));
    client.emit('shout', 'quiet');
    const out = { answer, echo: await echoed };
    client.disconnect();
    await new Promise((resolve) => ioServer.close(resolve));
    return out;
  }

  test('the websocket transport: emit and ack', async () => {
    const r = await roundTrip(['websocket']);
    assert.deepEqual(r, { answer: { got: { n: 42 }, transport: 'websocket' }, echo: 'QUIET' });
  });

  test('the polling transport (plain requests through "request")', async () => {
    const r = await roundTrip(['polling']);
    assert.deepEqual(r, { answer: { got: { n: 42 }, transport: 'polling' }, echo: 'QUIET' });
  });

  test('polling upgraded to websocket (the default)', async () => {
    const server = piston.createServer();
    const ioServer = new Server(server);
    const upgraded = new Promise((resolve) => ioServer.on('connection', (s) => s.conn.once('upgrade', (t) => resolve(t.name))));
    ioServer.on('connection', (socket) => socket.on('hello', (arg, ack) => ack(arg + 1)));
    const { port } = await listen(server);
    const client = io(`http://127.0.0.1:${port}`, { reconnection: false, forceNew: true });
    await once(client, 'connect');
    assert.equal(await upgraded, 'websocket');
    assert.equal(await client.timeout(5000).emitWithAck('hello', 1), 2);
    client.disconnect();
    await new Promise((resolve) => ioServer.close(resolve));
  });
});

describe('http-proxy in front of a ws backend', () => {
  const httpProxy = require('http-proxy');

  test('WebSocket (proxy.ws) and plain HTTP (proxy.web) through a piston server', async () => {
    const backend = http.createServer((req, res) => res.end(`backend ${req.method} ${req.url}`));
    const { wss } = wsEcho(backend);
    const b = await listen(backend);
    const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${b.port}`, ws: true });
    const proxyErrors = [];
    proxy.on('error', (e) => proxyErrors.push(e));
    const front = piston.createServer((req, res) => proxy.web(req, res));
    front.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head));
    const { port } = await listen(front);

    const r = await fetch(`http://127.0.0.1:${port}/some/path?q=1`);
    assert.equal(await r.text(), 'backend GET /some/path?q=1');

    const c = await wsOpen(`ws://127.0.0.1:${port}/through`);
    c.send('via the proxy');
    assert.equal((await nextMessage(c)).data.toString(), 'via the proxy');
    const big = Buffer.alloc(256 * 1024, 9);
    c.send(big);
    assert.ok((await nextMessage(c)).data.equals(big));
    c.close(4002, 'bye');
    assert.deepEqual(await wsClosed(c), [4002, 'bye']);
    assert.deepEqual(proxyErrors, []);
    proxy.close();
    wss.close();
    await closeServer(front);
    backend.closeAllConnections();
    await closeServer(backend);
  });
});

// A local TCP echo (what a CONNECT tunnels to).
async function echoServer() {
  const s = net.createServer({ allowHalfOpen: true }, (c) => {
    c.on('data', (d) => c.write(d));
    c.on('end', () => c.end());
  });
  await listen(s);
  return s;
}

// node's documented CONNECT proxy: a tunnel to the target of the request.
function tunnel(server) {
  server.on('connect', (req, clientSocket, head) => {
    const [host, port] = req.url.split(':');
    const up = net.connect(Number(port), host, () => {
      clientSocket.write('HTTP/1.1 200 Connection Established\r\nProxy-agent: test\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(clientSocket);
      clientSocket.pipe(up);
    });
    up.on('error', () => clientSocket.destroy());
    clientSocket.on('error', () => up.destroy());
  });
}

describe("'connect'", () => {
  test('a tunnel to a TCP echo: bytes both ways (4 MiB with backpressure), then the close', async () => {
    const target = await echoServer();
    const server = piston.createServer();
    tunnel(server);
    const { port } = await listen(server);
    const c = rawClient(port);
    const tport = target.address().port;
    c.sock.write(`CONNECT 127.0.0.1:${tport} HTTP/1.1\r\nHost: 127.0.0.1:${tport}\r\n\r\n`);
    await c.wait((t) => t.includes('\r\n\r\n'));
    assert.equal(c.text, 'HTTP/1.1 200 Connection Established\r\nProxy-agent: test\r\n\r\n');
    const headLen = c.text.length;
    const data = Buffer.alloc(4 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 12)) & 255;
    c.sock.write(data);
    c.sock.end();
    await c.closed();
    const got = Buffer.from(c.text.slice(headLen), 'latin1');
    assert.equal(got.length, data.length);
    assert.ok(got.equals(data), 'every byte back, in order');
    await closeServer(server);
    await closeServer(target);
  });

  for (const [name, make] of BOTH) {
    test(`${name}: head is the bytes that came with the request; a half-close as node:http allows`, async () => {
      const server = make();
      const log = [];
      server.on('connect', (req, socket, head) => {
        log.push(`connect ${req.url} head=${head.toString()} upgrade=${req.upgrade}`);
        socket.write('HTTP/1.1 200 OK\r\n\r\n');
        socket.on('data', (d) => log.push('data ' + d));
        socket.on('end', () => {
          log.push('end');
          // the client's direction is shut; this one is still open
          socket.write('after your end');
          setTimeout(() => socket.end(' and goodbye'), 20);
        });
        socket.on('finish', () => log.push('finish'));
        socket.on('close', (hadError) => log.push('close ' + hadError));
      });
      const { port } = await listen(server);
      const c = rawClient(port);
      c.sock.write('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\nearly bytes');
      await c.wait((t) => t.includes('\r\n\r\n'));
      c.sock.write('later');
      await sleep(50);
      c.sock.end();
      await c.closed();
      assert.equal(c.text, 'HTTP/1.1 200 OK\r\n\r\nafter your end and goodbye');
      await until(() => log.includes('close false'));
      assert.deepEqual(log, ['connect example.test:443 head=early bytes upgrade=true', 'data later', 'end', 'finish', 'close false']);
      await closeServer(server);
    });

    test(`${name}: a client's reset is the socket's ECONNRESET 'error', then 'close' (hadError)`, async () => {
      const server = make();
      const log = [];
      server.on('connect', (req, socket) => {
        socket.write('HTTP/1.1 200 OK\r\n\r\n');
        socket.on('data', (d) => log.push('data ' + d));
        socket.on('error', (e) => log.push('error ' + e.code));
        socket.on('close', (hadError) => log.push('close ' + hadError));
      });
      const { port } = await listen(server);
      const c = rawClient(port);
      c.sock.write('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n');
      await c.wait((t) => t.includes('\r\n\r\n'));
      c.sock.write('some');
      await until(() => log.length === 1);
      c.sock.resetAndDestroy();
      await until(() => log.length === 3);
      assert.deepEqual(log, ['data some', 'error ECONNRESET', 'close true']);
      await closeServer(server);
    });

    test(`${name}: CONNECT without a 'connect' listener closes the connection unanswered`, async () => {
      let requests = 0;
      const server = make(() => requests++);
      const { port } = await listen(server);
      const text = await raw(port, 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n');
      assert.equal(text, '');
      assert.equal(requests, 0);
      await closeServer(server);
    });

    test(`${name}: an upgrade without an 'upgrade' listener is a plain request`, async () => {
      const seen = [];
      const server = make((req, res) => {
        seen.push(req.upgrade);
        res.end('plain answer');
      });
      const { port } = await listen(server);
      const c = rawClient(port);
      c.sock.write(handshake('/ws'));
      await c.wait((t) => t.includes('plain answer'));
      assert.match(c.text, /^HTTP\/1\.1 200 OK\r\n/);
      c.sock.destroy();
      assert.deepEqual(seen, [false]);
      await closeServer(server);
    });

    test(`${name}: the bytes behind the head of an upgrade are its head`, async () => {
      const server = make();
      const heads = [];
      server.on('upgrade', (req, socket, head) => {
        heads.push(head.toString());
        socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n');
      });
      const { port } = await listen(server);
      const a = await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n', 1000);
      const b = await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: x\r\n\r\nfirst frame', 1000);
      assert.equal(a, 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n');
      assert.equal(b, a);
      assert.deepEqual(heads, ['', 'first frame']);
      await closeServer(server);
    });
  }
});

describe('the bytes on the wire, as on node:http', () => {
  // What ws sends for the same handshakes on both servers: the 101, a
  // frame sent with the handshake, a refused handshake.
  async function wireOf(make) {
    const server = make((req, res) => res.end('x'));
    const wss = new WebSocketServer({ server, path: '/ws' });
    wss.on('connection', (ws) => ws.on('message', (d, b) => ws.send(d, { binary: b })));
    const { port } = await listen(server);
    const c = rawClient(port);
    c.sock.write(Buffer.concat([Buffer.from(handshake('/ws', 'Sec-WebSocket-Protocol: chat, superchat\r\n')), frame(1, 'with the head')]));
    await c.wait((t) => t.includes('with the head'));
    const accepted = c.text;
    c.sock.destroy();
    const refused = await raw(port, handshake('/elsewhere'), 1000);
    const badVersion = await raw(port, handshake('/ws').replace('Version: 13', 'Version: 8'), 1000);
    wss.close();
    await closeServer(server);
    const noDate = (t) => t.replace(/\r\nDate: [^\r]*/g, '');
    return { accepted, refused: noDate(refused), badVersion: noDate(badVersion) };
  }

  test("ws's 101 and its refusals: the same bytes from both servers", async () => {
    const onNode = await wireOf(BOTH[0][1]);
    const onPiston = await wireOf(BOTH[1][1]);
    assert.deepEqual(onPiston, onNode);
    assert.match(onPiston.accepted, /^HTTP\/1\.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
  });
});

describe('over TLS', () => {
  const { PKI } = require('./pki');

  test("wss: ws on a TLS createServer; the socket has TLSSocket's face", async () => {
    const pki = new PKI();
    try {
      const server = piston.createServer({ key: pki.server.key, cert: pki.server.cert });
      const seen = {};
      server.on('upgrade', (req) => {
        seen.encrypted = req.socket.encrypted;
        seen.protocol = req.socket.getProtocol();
        seen.alpn = req.socket.alpnProtocol;
      });
      const { wss } = wsEcho(server);
      const { port } = await listen(server);
      const c = await wsOpen(`wss://127.0.0.1:${port}/`, undefined, { ca: pki.ca });
      c.send('over tls');
      assert.equal((await nextMessage(c)).data.toString(), 'over tls');
      const big = Buffer.alloc(1 << 20, 3);
      c.send(big);
      assert.ok((await nextMessage(c)).data.equals(big));
      c.close(1000, 'done');
      assert.deepEqual(await wsClosed(c), [1000, 'done']);
      assert.equal(seen.encrypted, true);
      assert.match(seen.protocol, /^TLSv1\.[23]$/);
      assert.equal(seen.alpn, false); // ws's client offers no ALPN
      wss.close();
      await closeServer(server);
    } finally {
      pki.remove();
    }
  });
});

describe('the socket', () => {
  test("net.Socket's face: addresses, readyState, the same object as req.socket and 'connection', setTimeout", async () => {
    const server = piston.createServer();
    const got = {};
    let conn;
    server.on('connection', (s) => (conn = s));
    server.on('upgrade', (req, socket, head) => {
      Object.assign(got, {
        same: req.socket === socket && conn === socket,
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        localPort: socket.localPort,
        remoteFamily: socket.remoteFamily,
        readyState: socket.readyState,
        readable: socket.readable,
        writable: socket.writable,
        chain: [socket.setNoDelay(true), socket.setKeepAlive(true, 0), socket.setTimeout(0)].every((x) => x === socket),
        headIsBuffer: Buffer.isBuffer(head),
      });
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n');
      got.bytesWritten = socket.bytesWritten;
      const t0 = Date.now();
      socket.setTimeout(80, () => {
        got.timeoutAfter = Date.now() - t0;
        socket.end('timed out');
      });
      socket.on('close', () => (got.closed = true));
    });
    const { port } = await listen(server);
    const c = rawClient(port);
    c.sock.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n');
    await c.wait((t) => t.endsWith('timed out'));
    assert.equal(got.same, true);
    assert.equal(got.remoteAddress, '127.0.0.1');
    assert.equal(got.remotePort, c.sock.localPort);
    assert.equal(got.localPort, port);
    assert.equal(got.remoteFamily, 'IPv4');
    assert.equal(got.readyState, 'open');
    assert.equal(got.readable && got.writable, true);
    assert.equal(got.chain, true);
    assert.equal(got.headIsBuffer, true);
    assert.equal(got.bytesWritten, 69); // the 101 above
    assert.ok(got.timeoutAfter >= 70, `timeout after ${got.timeoutAfter} ms`);
    c.sock.end();
    await until(() => got.closed);
    await closeServer(server);
  });

  test("write() returns false under the engine's pressure and 'drain' follows; reading pauses with the stream's buffer", async () => {
    const server = piston.createServer();
    const TOTAL = 32 << 20;
    const r = { falses: 0, drains: 0, written: 0 };
    let serverSocket;
    let headLength = 0;
    server.on('upgrade', (req, socket, head) => {
      serverSocket = socket;
      headLength = head.length; // the client's first bytes may come with the head
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n');
      // the writer of node's docs: until write() says no, then at 'drain'
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = () => {
        while (r.written < TOTAL) {
          r.written += chunk.length;
          if (!socket.write(chunk)) {
            r.falses++;
            return;
          }
        }
        socket.end();
      };
      socket.on('drain', () => {
        r.drains++;
        pump();
      });
      pump();
      // and reads nothing of what the client sends, for now
      socket.pause();
    });
    const { port } = await listen(server);
    const c = net.connect(port, '127.0.0.1');
    const clientClosed = once(c, 'close');
    c.pause();
    c.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n');
    // 8 MiB from the client while the server reads nothing: the server's
    // stream holds a bounded amount, the rest waits in the engine (which
    // stops reading) and in the kernel
    const data = Buffer.alloc(8 << 20, 2);
    c.write(data);
    await sleep(300);
    // the client reads nothing either: the server's writer is held back
    assert.ok(r.falses >= 1, 'write() returned false');
    assert.ok(r.written < TOTAL, `all ${r.written} bytes written while the client read nothing`);
    assert.ok(serverSocket.readableLength <= 1 << 20, `buffered ${serverSocket.readableLength}`);
    // now both read: every byte arrives, through many drains
    let received = 0;
    c.on('data', (d) => (received += d.length));
    c.resume();
    let got = 0;
    serverSocket.on('data', (d) => (got += d.length));
    serverSocket.resume();
    await once(c, 'end');
    await until(() => headLength + got === data.length, 10000);
    assert.equal(received, TOTAL + 69);
    assert.ok(r.drains >= 1 && r.drains === r.falses, `${r.falses} false, ${r.drains} drains`);
    // the client ended its side at our end (allowHalfOpen: false)
    await clientClosed;
    await closeServer(server);
  });
});

describe('next to HTTP, and close()', () => {
  test('keep-alive requests on other connections are served while tunnels and WebSockets are open', async () => {
    const target = await echoServer();
    const server = piston.createServer((req, res) => res.end('ok ' + req.url));
    tunnel(server);
    const { wss } = wsEcho(server);
    const { port } = await listen(server);
    const sockets = await Promise.all(Array.from({ length: 10 }, () => wsOpen(`ws://127.0.0.1:${port}/`)));
    const t = rawClient(port);
    t.sock.write(`CONNECT 127.0.0.1:${target.address().port} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await t.wait((x) => x.includes('\r\n\r\n'));
    t.sock.write('through the tunnel');
    await t.wait((x) => x.endsWith('through the tunnel'));
    // one keep-alive connection, several requests
    const k = rawClient(port);
    for (let i = 0; i < 5; i++) {
      k.sock.write(`GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await k.wait((x) => x.includes(`ok /${i}`));
    }
    assert.equal(k.ended, false);
    k.sock.destroy();
    for (const s of sockets) {
      s.send('still');
      assert.equal((await nextMessage(s)).data.toString(), 'still');
    }
    await Promise.all(sockets.map((s) => (s.close(), wsClosed(s))));
    t.sock.end();
    await t.closed();
    wss.close();
    await closeServer(server);
    await closeServer(target);
  });

  for (const [name, make] of BOTH) {
    test(`${name}: close() leaves an upgraded socket open and calls back once it has closed`, async () => {
      const server = make((req, res) => res.end('x'));
      const { wss } = wsEcho(server);
      const { port } = await listen(server);
      const c = await wsOpen(`ws://127.0.0.1:${port}/`);
      let closed = false;
      server.close(() => (closed = true));
      // closeAllConnections() is for HTTP connections: not this one
      server.closeAllConnections();
      await sleep(100);
      assert.equal(closed, false);
      c.send('still open');
      assert.equal((await nextMessage(c)).data.toString(), 'still open');
      // no new connections
      await assert.rejects(fetch(`http://127.0.0.1:${port}/`));
      c.close(1000);
      await wsClosed(c);
      await until(() => closed);
      wss.close();
    });
  }
});
