'use strict';
// The native App's WebSocket routes (app.ws) with a real client: `ws` from
// npm. The protocol itself (framing, UTF-8, close codes, limits) is
// checked byte by byte by tests/node/test_ws_conformance.py.

const { test, describe, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { App } = require('../..');
const { native } = require('../../node/binding');
const { raw, sleep } = require('./helpers');

function start(app) {
  return new Promise((resolve, reject) => {
    app.listen(0, '127.0.0.1', (err, port) => (err ? reject(err) : resolve(port)));
  });
}
function stop(app) {
  return new Promise((r) => app.close(r, 0));
}
function connect(port, path = '/ws', protocols, opts) {
  return new Promise((resolve, reject) => {
    const c = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols, opts);
    c.once('open', () => resolve(c));
    c.once('error', reject);
  });
}
function next(c, event = 'message') {
  return new Promise((resolve) => c.once(event, (...a) => resolve(a)));
}
function closed(c) {
  return new Promise((resolve) => c.once('close', (code, reason) => resolve([code, reason.toString()])));
}
// Resolves once fn() is true (polled), or fails after ms.
async function until(fn, ms = 5000) {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not met in ' + ms + ' ms');
    await sleep(5);
  }
}

// An echo route that records what its handlers saw.
function echoApp(extra = {}, options) {
  const app = new App(options);
  const seen = { open: 0, messages: [], close: [] };
  app.ws('/ws', {
    open(ws) {
      seen.open++;
    },
    message(ws, data, isBinary) {
      seen.messages.push({ data, isBinary });
      seen.sendRc = ws.send(data, isBinary);
    },
    close(ws, code, message) {
      seen.close.push({ code, message, userData: ws.getUserData() });
    },
    ...extra,
  });
  return { app, seen };
}

const live0 = native.live();
afterEach(async () => {
  // every session's handle goes back once its connection is gone
  await until(() => native.live() === live0);
});

describe('App.ws with the ws client', () => {
  test('text and binary echo; data is an ArrayBuffer, send returns 1', async () => {
    const { app, seen } = echoApp();
    const port = await start(app);
    const c = await connect(port);
    c.send('héllo wörld');
    let [data, isBinary] = await next(c);
    assert.equal(isBinary, false);
    assert.equal(data.toString(), 'héllo wörld');
    const bin = Buffer.alloc(300000);
    for (let i = 0; i < bin.length; i++) bin[i] = (i * 7) & 0xff;
    c.send(bin);
    [data, isBinary] = await next(c);
    assert.equal(isBinary, true);
    assert.ok(Buffer.compare(data, bin) === 0);
    c.send(Buffer.alloc(0), { binary: true });
    [data, isBinary] = await next(c);
    assert.deepEqual([data.length, isBinary], [0, true]);
    assert.equal(seen.open, 1);
    assert.equal(seen.messages.length, 3);
    assert.ok(seen.messages[0].data instanceof ArrayBuffer);
    assert.deepEqual(Buffer.from(seen.messages[0].data), Buffer.from('héllo wörld'));
    assert.equal(seen.messages[0].isBinary, false);
    assert.equal(seen.messages[1].data.byteLength, 300000);
    assert.equal(seen.messages[1].isBinary, true);
    assert.equal(seen.sendRc, 1);
    c.close();
    await closed(c);
    await until(() => seen.close.length === 1);
    await stop(app);
  });

  test('ping is answered by the engine with the same payload', async () => {
    const { app, seen } = echoApp();
    const port = await start(app);
    const c = await connect(port);
    c.ping(Buffer.from('are you there'));
    const [payload] = await next(c, 'pong');
    assert.equal(payload.toString(), 'are you there');
    assert.equal(seen.messages.length, 0); // pings are not messages
    c.close();
    await closed(c);
    await stop(app);
  });

  test("client close code reaches close(ws, code); the server's end(code, reason) reaches the client", async () => {
    const { app, seen } = echoApp({
      message(ws, data) {
        if (Buffer.from(data).toString() === 'bye') ws.end(4002, 'server says bye');
      },
    });
    const port = await start(app);
    let c = await connect(port);
    c.close(4001, 'client says bye');
    assert.deepEqual(await closed(c), [4001, '']); // the engine echoes the code only
    await until(() => seen.close.length === 1);
    assert.equal(seen.close[0].code, 4001);
    assert.ok(seen.close[0].message instanceof ArrayBuffer);

    c = await connect(port);
    c.send('bye');
    assert.deepEqual(await closed(c), [4002, 'server says bye']);
    await until(() => seen.close.length === 2);
    assert.equal(seen.close[1].code, 4002); // the client answered with it

    c = await connect(port);
    c.terminate(); // no close frame
    await until(() => seen.close.length === 3);
    assert.equal(seen.close[2].code, 1006);

    // end() without a code: a close frame with none (the client sees 1005)
    const ends = echoApp({ message: (ws) => ws.end() });
    const port2 = await start(ends.app);
    c = await connect(port2);
    c.send('x');
    assert.deepEqual(await closed(c), [1005, '']);
    await stop(ends.app);
    await stop(app);
  });

  test('an invalid close code or a long reason throws; send after the close returns 2', async () => {
    let err;
    let long;
    let after;
    const { app } = echoApp({
      message(ws) {
        try {
          ws.end(1005);
        } catch (e) {
          err = e;
        }
        try {
          ws.end(1000, 'x'.repeat(124));
        } catch (e) {
          long = e;
        }
        ws.end(1000, 'ok');
        after = ws.send('late');
      },
    });
    const port = await start(app);
    const c = await connect(port);
    c.send('x');
    assert.deepEqual(await closed(c), [1000, 'ok']);
    assert.equal(err.code, 'PISTON_EINVAL');
    assert.equal(long.code, 'PISTON_EINVAL');
    assert.equal(after, 2);
    await stop(app);
  });

  test('subprotocol: the first offered by default; chosen by upgrade(); userData and headers', async () => {
    const { app } = echoApp();
    const port = await start(app);
    let c = await connect(port, '/ws', ['chat', 'v2']);
    assert.equal(c.protocol, 'chat');
    c.close();
    await closed(c);
    c = await connect(port, '/ws');
    assert.equal(c.protocol, '');
    c.close();
    await closed(c);
    await stop(app);

    const ctx = [];
    const up = echoApp({
      upgrade(res, req, context) {
        ctx.push(context.pattern);
        const offered = req.getHeader('sec-websocket-protocol').split(',').map((s) => s.trim());
        res.setHeader('X-Chosen', 'yes');
        res.upgrade({ user: req.query.user }, req.getHeader('sec-websocket-key'), offered.includes('v2') ? 'v2' : '', '', context);
      },
    });
    const port2 = await start(up.app);
    const headers = [];
    c = new WebSocket(`ws://127.0.0.1:${port2}/ws?user=ann`, ['chat', 'v2']);
    c.on('upgrade', (r) => headers.push(r.headers['x-chosen']));
    await next(c, 'open');
    assert.equal(c.protocol, 'v2');
    assert.deepEqual(headers, ['yes']);
    assert.deepEqual(ctx, ['/ws']);
    c.close(1000);
    await closed(c);
    await until(() => up.seen.close.length === 1);
    assert.deepEqual(up.seen.close[0].userData, { user: 'ann' });
    await stop(up.app);
  });

  test('upgrade() may deny as HTTP, and may accept after an await', async () => {
    const { app, seen } = echoApp({
      async upgrade(res, req) {
        if (req.query.token !== 'ok') return res.status(401).end('no entry');
        await sleep(20);
        res.upgrade({ late: true });
      },
    });
    const port = await start(app);
    const c0 = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const [, r] = await next(c0, 'unexpected-response');
    assert.equal(r.statusCode, 401);
    r.destroy();
    c0.on('error', () => {});
    const c = await connect(port, '/ws?token=ok');
    c.send('still echoed');
    const [data] = await next(c);
    assert.equal(data.toString(), 'still echoed');
    c.close();
    await closed(c);
    await until(() => seen.close.length === 1);
    assert.deepEqual(seen.close[0].userData, { late: true });
    await stop(app);
  });

  test('1,000 messages arrive, and come back, in order', async () => {
    const { app, seen } = echoApp();
    const port = await start(app);
    const c = await connect(port);
    const got = [];
    const done = new Promise((resolve) =>
      c.on('message', (d) => {
        got.push(d.toString());
        if (got.length === 1000) resolve();
      }),
    );
    const sent = [];
    for (let i = 0; i < 1000; i++) {
      sent.push('message ' + i);
      c.send('message ' + i);
    }
    await done;
    assert.deepEqual(got, sent);
    assert.deepEqual(
      seen.messages.map((m) => Buffer.from(m.data).toString()),
      sent,
    );
    c.close();
    await closed(c);
    await stop(app);
  });

  test('backpressure: send returns 0 for a slow reader, drain() lets the sender go on', async () => {
    const CHUNK = 64 * 1024;
    const HIGH = 256 * 1024;
    const TOTAL = 256; // chunks: 16 MiB, more than the socket buffers hold
    const log = { zero: 0, drains: 0, buffered: [], drained: [], sentWhilePressured: 0 };
    let sent = 0;
    let pressured = false;
    const chunk = (i) => Buffer.alloc(CHUNK, i & 0xff);
    const pump = (ws) => {
      while (sent < TOTAL) {
        const rc = ws.send(chunk(sent), true);
        sent++;
        if (rc === 0) {
          log.zero++;
          pressured = true;
          log.buffered.push(ws.getBufferedAmount());
          return;
        }
        assert.equal(rc, 1);
      }
      ws.send('done');
    };
    const app = new App({ writeHighWater: HIGH });
    app.ws('/ws', {
      open: pump,
      drain(ws) {
        log.drains++;
        assert.ok(pressured);
        pressured = false;
        // the queue fell to its low-water mark (exact: the engine's count)
        log.drained.push(ws.getBufferedAmount());
        pump(ws);
      },
    });
    const port = await start(app);
    const c = await connect(port);
    c.pause(); // a slow reader: nothing is read for a while
    await sleep(300);
    const atPause = { sent, zero: log.zero, drains: log.drains };
    let n = 0;
    let bad = 0;
    const done = new Promise((resolve) =>
      c.on('message', (d, isBinary) => {
        if (!isBinary) return resolve(d.toString());
        if (d.length !== CHUNK || d[0] !== (n & 0xff) || d[CHUNK - 1] !== (n & 0xff)) bad++;
        n++;
      }),
    );
    c.resume();
    assert.equal(await done, 'done');
    assert.equal(n, TOTAL);
    assert.equal(bad, 0);
    // the sender was held back while nobody read...
    assert.ok(atPause.sent < TOTAL, `sent ${atPause.sent} chunks to a reader that read none`);
    assert.ok(atPause.zero >= 1);
    // ...and each 0 was followed by one drain
    assert.equal(log.drains, log.zero);
    // at pressure the queue holds more than HIGH; at a drain at most HIGH / 2
    // (the low-water mark)
    assert.ok(log.buffered.every((b) => b > HIGH), String(log.buffered));
    assert.ok(log.drained.length >= 1 && log.drained.every((b) => b <= HIGH / 2), String(log.drained));
    c.close();
    await closed(c);
    await stop(app);
  });
});

// A masked client frame (RFC 6455 5.2), for the raw-socket tests.
function frame(op, payload) {
  const p = Buffer.from(payload);
  assert.ok(p.length < 126);
  const key = Buffer.from([1, 2, 3, 4]);
  const out = Buffer.alloc(6 + p.length);
  out[0] = 0x80 | op;
  out[1] = 0x80 | p.length;
  key.copy(out, 2);
  for (let i = 0; i < p.length; i++) out[6 + i] = p[i] ^ key[i % 4];
  return out;
}

describe('App.ws batching', () => {
  test("the messages of one read reach JS in one call: a handler's microtask runs after all of them", async () => {
    const seen = [];
    const ticks = [];
    const app = new App();
    app.ws('/ws', {
      message(ws, data) {
        seen.push(Buffer.from(data).toString());
        queueMicrotask(() => ticks.push(seen.length));
        if (seen.length === 100) ws.end(1000);
      },
    });
    const port = await start(app);
    const frames = [];
    for (let i = 0; i < 100; i++) frames.push(frame(1, 'm' + i));
    const r = await raw(
      port,
      Buffer.concat([
        Buffer.from(
          'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        ),
        ...frames,
      ]),
    );
    assert.match(r, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.deepEqual(seen, frames.map((_, i) => 'm' + i));
    // one call for the batch, so every microtask ran after the 100th message
    assert.deepEqual(ticks, new Array(100).fill(100));
    await stop(app);
  });
});

describe('App.ws routing and limits', () => {
  test('a request without an upgrade gets the engine 400; another version 426', async () => {
    const { app } = echoApp();
    const port = await start(app);
    let r = await raw(port, 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(r, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.ok(r.endsWith('\r\n\r\nBad Request\n'), r);
    r = await raw(
      port,
      'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\nConnection: close\r\n\r\n',
    );
    assert.match(r, /^HTTP\/1\.1 426 Upgrade Required\r\n/);
    assert.ok(r.includes('\r\nSec-WebSocket-Version: 13\r\n'), r);
    await stop(app);
  });

  test('an HTTP route on the same path takes the plain requests; params reach upgrade()', async () => {
    const { app } = echoApp();
    const params = [];
    app.get('/ws', (req, res) => res.end('plain'));
    app.ws('/rooms/:room', {
      upgrade(res, req) {
        params.push(req.params.room);
        res.upgrade({});
      },
      message: (ws, d) => ws.send('room ' + Buffer.from(d)),
    });
    const port = await start(app);
    const r = await raw(port, 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.ok(r.endsWith('\r\n\r\nplain'), r);
    const c = await connect(port, '/rooms/k%C3%BCche');
    c.send('hi');
    const [d] = await next(c);
    assert.equal(d.toString(), 'room hi');
    assert.deepEqual(params, ['küche']);
    c.close();
    await closed(c);
    await stop(app);
  });

  test('maxPayloadLength is the engine limit: 1009 past it', async () => {
    const { app, seen } = echoApp({ maxPayloadLength: 1000 });
    const port = await start(app);
    const c = await connect(port);
    c.send(Buffer.alloc(1000, 1));
    const [d] = await next(c);
    assert.equal(d.length, 1000);
    c.send(Buffer.alloc(1001, 1));
    assert.deepEqual(await closed(c), [1009, '']);
    await until(() => seen.close.length === 1);
    assert.equal(seen.close[0].code, 1009);
    await stop(app);
  });

  test('routes with different maxPayloadLength cannot listen', async () => {
    const app = new App();
    app.ws('/a', { maxPayloadLength: 1000 });
    app.ws('/b', { maxPayloadLength: 2000 });
    await assert.rejects(start(app), /different maxPayloadLength \(1000, 2000\)/);
    assert.throws(() => new App().ws('/c', { message: 'not a function' }), TypeError);
  });

  test('close() of the app sends 1001 and runs close handlers', async () => {
    const { app, seen } = echoApp();
    const port = await start(app);
    const c = await connect(port);
    const cl = closed(c);
    await new Promise((r) => app.close(r, 5000));
    assert.deepEqual(await cl, [1001, '']);
    assert.equal(seen.close.length, 1);
    assert.equal(seen.close[0].code, 1001);
  });
});

// A route whose clients drive it with text commands.
function commandApp(extra = {}) {
  const app = new App();
  const seen = { close: [], pings: [], pongs: [], results: [] };
  app.ws('/ws', {
    message(ws, data) {
      const [cmd, ...rest] = Buffer.from(data).toString().split(' ');
      const arg = rest.join(' ');
      if (cmd === 'sub') ws.send('subscribed ' + ws.subscribe(arg));
      else if (cmd === 'unsub') ws.send('unsubscribed ' + ws.unsubscribe(arg));
      else if (cmd === 'issub') ws.send('issub ' + ws.isSubscribed(arg));
      else if (cmd === 'topics') ws.send('topics ' + ws.getTopics().sort().join(','));
      else if (cmd === 'pub') {
        const [topic, ...msg] = rest;
        ws.send('published ' + ws.publish(topic, msg.join(' ')));
      } else if (cmd === 'kill') {
        ws.close();
        seen.results.push({ afterClose: seen.close.length, send: ws.send('late') });
      } else if (cmd === 'ping') {
        try {
          ws.send('pinged ' + ws.ping(arg));
        } catch (e) {
          ws.send('ping threw ' + e.code);
        }
      }
    },
    close(ws, code, message) {
      seen.close.push({ code, reason: Buffer.from(message).toString(), ab: message instanceof ArrayBuffer });
    },
    ...extra,
  });
  return { app, seen };
}
// Sends a command and resolves with the next text message.
async function ask(c, text) {
  const p = next(c);
  c.send(text);
  const [d] = await p;
  return d.toString();
}
// Resolves with every message c gets until it has n.
function collect(c, n) {
  const got = [];
  return new Promise((resolve) => {
    const on = (d, isBinary) => {
      got.push({ text: d.toString(), isBinary });
      if (got.length === n) {
        c.off('message', on);
        resolve(got);
      }
    };
    c.on('message', on);
  });
}

describe('App.ws publish/subscribe, pings, close reasons', () => {
  test('fan-out to many clients: ws.publish skips the publisher, app.publish reaches all', async () => {
    const { app } = commandApp();
    const port = await start(app);
    const N = 25;
    const cs = await Promise.all(Array.from({ length: N }, () => connect(port)));
    for (const c of cs) assert.equal(await ask(c, 'sub room'), 'subscribed true');
    assert.equal(app.numSubscribers('room'), N);
    assert.equal(app.numSubscribers('elsewhere'), 0);

    const others = cs.slice(1).map((c) => collect(c, 1));
    // the publisher's next message is its own answer, not the publication
    assert.equal(await ask(cs[0], 'pub room hello all'), 'published true');
    for (const got of await Promise.all(others)) assert.deepEqual(got, [{ text: 'hello all', isBinary: false }]);

    const all = cs.map((c) => collect(c, 1));
    assert.equal(app.publish('room', Buffer.from([1, 2, 3]), true), true);
    for (const got of await Promise.all(all)) {
      assert.equal(got[0].isBinary, true);
      assert.equal(got[0].text, '\x01\x02\x03');
    }
    // a topic nobody follows: false, as uWebSockets.js
    assert.equal(app.publish('nobody', 'x'), false);
    assert.equal(await ask(cs[3], 'pub nobody x'), 'published false');
    // the publisher alone on its topic: the topic exists (true), nobody gets it
    assert.equal(await ask(cs[3], 'sub solo'), 'subscribed true');
    assert.equal(await ask(cs[3], 'pub solo x'), 'published true');

    for (const c of cs) c.close();
    await Promise.all(cs.map(closed));
    // the sessions' subscriptions ended with them
    await until(() => app.numSubscribers('room') === 0);
    assert.equal(app.numSubscribers('solo'), 0);
    await stop(app);
  });

  test('unsubscribe, isSubscribed, getTopics; subscriptions end with the session', async () => {
    const { app } = commandApp();
    const port = await start(app);
    const a = await connect(port);
    const b = await connect(port);
    assert.equal(await ask(a, 'issub t1'), 'issub false');
    await ask(a, 'sub t1');
    await ask(a, 'sub t2');
    await ask(b, 'sub t1');
    assert.equal(await ask(a, 'issub t1'), 'issub true');
    assert.equal(await ask(a, 'topics'), 'topics t1,t2');
    assert.equal(app.numSubscribers('t1'), 2);
    assert.equal(await ask(a, 'unsub t1'), 'unsubscribed true');
    assert.equal(await ask(a, 'unsub t1'), 'unsubscribed false');
    assert.equal(await ask(a, 'issub t1'), 'issub false');
    assert.equal(await ask(a, 'topics'), 'topics t2');
    assert.equal(app.numSubscribers('t1'), 1);
    // a publication to t1 reaches b only
    const bGot = collect(b, 1);
    assert.equal(await ask(a, 'pub t1 only b'), 'published true');
    assert.deepEqual(await bGot, [{ text: 'only b', isBinary: false }]);
    b.terminate();
    await until(() => app.numSubscribers('t1') === 0);
    assert.equal(app.numSubscribers('t2'), 1);
    a.close();
    await closed(a);
    await until(() => app.numSubscribers('t2') === 0);
    await stop(app);
  });

  test("the peer's close reason reaches close(ws, code, message) as an ArrayBuffer", async () => {
    const { app, seen } = commandApp();
    const port = await start(app);
    const c = await connect(port);
    c.close(4001, 'client says bye');
    await closed(c);
    await until(() => seen.close.length === 1);
    assert.deepEqual(seen.close[0], { code: 4001, reason: 'client says bye', ab: true });
    // none given: empty
    const d = await connect(port);
    d.close(1000);
    await closed(d);
    await until(() => seen.close.length === 2);
    assert.deepEqual(seen.close[1], { code: 1000, reason: '', ab: true });
    await stop(app);
  });

  test('ws.close() is abrupt: no close frame (the client sees 1006), close runs at once', async () => {
    const { app, seen } = commandApp();
    const port = await start(app);
    const c = await connect(port);
    await ask(c, 'sub doomed');
    c.send('kill');
    const [code] = await closed(c);
    assert.equal(code, 1006);
    // the route's close ran inside ws.close(), with 1006; later sends drop
    assert.deepEqual(seen.results, [{ afterClose: 1, send: 2 }]);
    assert.deepEqual(seen.close, [{ code: 1006, reason: '', ab: true }]);
    assert.equal(app.numSubscribers('doomed'), 0);
    await stop(app);
  });

  test('ping and pong handlers; ws.ping()', async () => {
    const { app, seen } = commandApp({
      ping(ws, message) {
        seen.pings.push(Buffer.from(message).toString());
      },
      pong(ws, message) {
        seen.pongs.push(Buffer.from(message).toString());
      },
    });
    const port = await start(app);
    const c = await connect(port);
    // the client's ping: the engine answers it, the handler sees it
    const pong = next(c, 'pong');
    c.ping('from client');
    assert.equal((await pong)[0].toString(), 'from client');
    await until(() => seen.pings.length === 1);
    assert.deepEqual(seen.pings, ['from client']);
    // the server's ping: the client (ws answers pings itself) pongs back
    const ping = next(c, 'ping');
    assert.equal(await ask(c, 'ping from server'), 'pinged 1');
    assert.equal((await ping)[0].toString(), 'from server');
    await until(() => seen.pongs.length === 1);
    assert.deepEqual(seen.pongs, ['from server']);
    // an unsolicited pong
    c.pong('unasked');
    await until(() => seen.pongs.length === 2);
    assert.equal(seen.pongs[1], 'unasked');
    // more than a control frame holds
    assert.equal(await ask(c, 'ping ' + 'x'.repeat(126)), 'ping threw PISTON_EINVAL');
    c.close();
    await closed(c);
    await stop(app);
  });

  test('getBufferedAmount is the engine queue: exact after sends, falls as a slow reader reads', async () => {
    const CHUNK = 64 * 1024;
    const N = 64;
    const log = {};
    const app = new App();
    let session;
    app.ws('/ws', {
      open(ws) {
        session = ws;
        log.before = ws.getBufferedAmount();
        for (let i = 0; i < N; i++) ws.send(Buffer.alloc(CHUNK, i), true);
        log.after = ws.getBufferedAmount();
      },
    });
    const port = await start(app);
    const c = await connect(port);
    c.pause();
    await sleep(300);
    // part went into the socket buffers, most waits in the engine
    const later = session.getBufferedAmount();
    // in open() the 101 has not been written yet: it counts
    assert.ok(log.before > 0 && log.before < 256, String(log.before));
    // 10 bytes of frame header for each 64 KiB message
    assert.equal(log.after - log.before, N * (CHUNK + 10));
    assert.ok(later > 0 && later < log.after, String(later));
    const all = collect(c, N);
    c.resume();
    assert.equal((await all).length, N);
    await until(() => session.getBufferedAmount() === 0);
    c.close();
    await closed(c);
    assert.equal(session.getBufferedAmount(), 0);
    await stop(app);
  });

  test('compression maps on the engine switch; routes must agree', async () => {
    const { DISABLED, SHARED_COMPRESSOR } = require('../..');
    const app = new App();
    app.ws('/ws', { compression: SHARED_COMPRESSOR, message: (ws, d) => ws.send(d) });
    const port = await start(app);
    const c = await connect(port, '/ws', undefined, { perMessageDeflate: true });
    assert.match(c.extensions, /permessage-deflate/);
    c.close();
    await closed(c);
    await stop(app);

    const off = new App();
    off.ws('/ws', { compression: DISABLED });
    const port2 = await start(off);
    const d = await connect(port2, '/ws', undefined, { perMessageDeflate: true });
    assert.equal(d.extensions, '');
    d.close();
    await closed(d);
    await stop(off);

    const both = new App();
    both.ws('/a', { compression: DISABLED });
    both.ws('/b', { compression: SHARED_COMPRESSOR });
    await assert.rejects(start(both), /different compression/);
  });
});
