'use strict';
// HTTP/2 in the Node host (h2c here; ALPN h2 is tls.test.js's): many
// streams of one connection as createServer's req/res, each on its own
// (a reset stream aborts only its own pair), Expect: 100-continue on a
// stream, HTTP/1.1's Upgrade: h2c, and the per-stream body and handler
// timeouts, with node's http2.connect and curl as the clients.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const http2 = require('node:http2');
const piston = require('../..');
const { listen, close } = require('./helpers');

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 20000 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr }));
      else resolve({ stdout, stderr });
    });
  });
}

async function h2server(t, opts, handler) {
  const server = piston.createServer({ http2: 2, ...opts }, handler);
  const { port } = await listen(server);
  t.after(() => close(server));
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  t.after(() => session.destroy());
  return { server, port, session };
}

// One stream's answer: status, body, and how it ended (rstCode).
function exchange(session, headers, body) {
  return new Promise((resolve) => {
    const s = session.request(headers);
    let status;
    const chunks = [];
    s.on('response', (h) => (status = h[':status']));
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => resolve({ status, body: Buffer.concat(chunks).toString(), rstCode: s.rstCode }));
    if (body !== undefined) s.end(body);
  });
}

test('50 streams on one connection, a few reset mid-body: only their own req/res abort', async (t) => {
  const seen = new Map(); // id -> what its req/res and socket saw
  const sockets = new Set();
  const { server, session } = await h2server(t, {}, (req, res) => {
    const id = req.headers['x-id'];
    const rec = { aborted: false, reqClose: false, resClose: false, finish: false, error: null };
    seen.set(id, rec);
    req.socket.setMaxListeners(100); // shared by all 50 if streams shared one
    req.socket.on('close', () => (rec.socketClosed = true));
    sockets.add(req.socket);
    req.on('aborted', () => (rec.aborted = true));
    req.on('error', (e) => (rec.error = e.code));
    req.on('close', () => (rec.reqClose = true));
    res.on('close', () => (rec.resClose = true));
    res.on('finish', () => (rec.finish = true));
    let n = 0;
    req.on('data', (d) => (n += d.length));
    req.on('end', () => {
      // a socket shared by the streams must not look closed to the others
      rec.socketDestroyedAtEnd = req.socket.destroyed;
      rec.socketWritableAtEnd = req.socket.writable;
      rec.socketClosedAtEnd = rec.socketClosed === true;
      res.end(`${id}:${n}`);
    });
  });
  let connections = 0;
  server.on('connection', () => connections++);
  const resets = new Set([3, 17, 29, 41]);
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => new Promise((resolve) => {
    const s = session.request({ ':method': 'POST', ':path': '/', 'x-id': String(i) });
    const chunks = [];
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => resolve({ i, body: Buffer.concat(chunks).toString(), rstCode: s.rstCode }));
    s.write(Buffer.alloc(1000, 'a'));
    if (resets.has(i)) {
      // mid-body: the server has the request and part of its body
      // (destroy: a bare RST_STREAM; close() would end the body first)
      const wait = () => (seen.has(String(i)) ? s.destroy(new Error('cut')) : setTimeout(wait, 5));
      wait();
    } else {
      setTimeout(() => s.end(Buffer.alloc(1000, 'b')), 50);
    }
  })));
  for (const r of results) {
    if (resets.has(r.i)) continue;
    assert.equal(r.body, `${r.i}:2000`, `stream ${r.i}`);
    assert.equal(r.rstCode, http2.constants.NGHTTP2_NO_ERROR);
  }
  // give the reset streams' events time to arrive
  const deadline = Date.now() + 5000;
  while ([...resets].some((i) => !seen.get(String(i)).resClose) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const [id, rec] of seen) {
    if (resets.has(Number(id))) {
      assert.ok(rec.aborted && rec.reqClose && rec.resClose && !rec.finish, `reset stream ${id}: ${JSON.stringify(rec)}`);
    } else {
      assert.ok(!rec.aborted && rec.finish && rec.error === null, `stream ${id}: ${JSON.stringify(rec)}`);
      assert.equal(rec.socketDestroyedAtEnd, false, `stream ${id}`);
      assert.equal(rec.socketWritableAtEnd, true, `stream ${id}`);
      assert.equal(rec.socketClosedAtEnd, false, `stream ${id}`);
    }
  }
  // the connection still serves
  const r = await exchange(session, { ':method': 'POST', ':path': '/', 'x-id': 'after' }, 'xyz');
  assert.equal(r.body, 'after:3');
  // each stream its own req.socket (as node:http2's compatibility API), all
  // of one connection: one 'connection' event, one peer port
  assert.equal(sockets.size, 51);
  assert.equal(new Set([...sockets].map((s) => s.remotePort)).size, 1);
  assert.equal(connections, 1);
});

test('res.destroy() on one stream resets that stream only', async (t) => {
  const { session } = await h2server(t, {}, (req, res) => {
    if (req.url === '/destroy') {
      res.write('partial');
      setTimeout(() => res.destroy(), 20);
    } else {
      setTimeout(() => res.end(`ok ${req.url} ${req.socket.destroyed}`), 200);
    }
  });
  const [a, b, c] = await Promise.all([
    exchange(session, { ':path': '/a' }),
    exchange(session, { ':path': '/destroy' }),
    exchange(session, { ':path': '/c' }),
  ]);
  assert.equal(a.body, 'ok /a false');
  assert.equal(c.body, 'ok /c false');
  assert.equal(b.status, 200);
  assert.notEqual(b.rstCode, http2.constants.NGHTTP2_NO_ERROR); // reset, not ended
  assert.equal((await exchange(session, { ':path': '/d' })).body, 'ok /d false');
});

test('backpressure per stream: a stream whose client does not read waits for its drain, the others flow', async (t) => {
  let drained = false;
  const { session } = await h2server(t, {}, (req, res) => {
    if (req.url === '/big') {
      const chunk = Buffer.alloc(64 * 1024, 'z');
      let sent = 0;
      const pump = () => {
        while (sent < 4 << 20) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', () => {
              drained = true;
              pump();
            });
            return;
          }
        }
        res.end();
      };
      pump();
    } else {
      res.end('small');
    }
  });
  const big = session.request({ ':path': '/big' });
  big.pause(); // node's client stops reading: its window closes
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await exchange(session, { ':path': '/small' })).body, 'small');
  let n = 0;
  big.on('data', (d) => (n += d.length));
  big.resume();
  await new Promise((r) => big.on('end', r));
  assert.equal(n, 4 << 20);
  assert.ok(drained);
});

test("Expect: 100-continue on a stream: node's client gets 'continue' on the app's first read", async (t) => {
  const { session } = await h2server(t, {}, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', () => res.end(`got ${body}`));
  });
  const s = session.request({ ':method': 'POST', ':path': '/', expect: '100-continue' });
  const chunks = [];
  s.on('data', (d) => chunks.push(d));
  await new Promise((resolve) => s.once('continue', resolve));
  s.end('the body');
  await new Promise((r) => s.on('end', r));
  assert.equal(Buffer.concat(chunks).toString(), 'got the body');
});

test('Upgrade: h2c (curl --http2 on http://): the 101, then req.httpVersion 2.0 on stream 1', async (t) => {
  const { port } = await h2server(t, {}, (req, res) => res.end(`${req.httpVersion} ${req.method} ${req.url} ${req.headers.host}`));
  const { stdout, stderr } = await run('curl', ['-sS', '-v', '--http2', `http://127.0.0.1:${port}/up?x=1`]);
  assert.equal(stdout, `2.0 GET /up?x=1 127.0.0.1:${port}`);
  assert.match(stderr, /< HTTP\/1\.1 101 Switching Protocols/);
});

test('Upgrade: h2c without h2c is a plain HTTP/1.1 request', async (t) => {
  const server = piston.createServer((req, res) => res.end(`${req.httpVersion} ${req.headers.upgrade}`));
  const { port } = await listen(server);
  t.after(() => close(server));
  const url = `http://127.0.0.1:${port}/`;
  const { stdout } = await run('curl', ['-sS', '--http2', '-w', ' %{num_connects}\n', url, url]);
  assert.equal(stdout, '1.1 h2c 1\n1.1 h2c 0\n');
});

test('per-stream timeouts: a stalled body is answered 408, an unanswered stream 503, the others go on', async (t) => {
  const { session } = await h2server(t, { requestTimeout: 1000, handlerTimeout: 1000 }, (req, res) => {
    if (req.url === '/never') return; // never answered
    let n = 0;
    req.on('data', (d) => (n += d.length));
    req.on('end', () => res.end(`read ${n}`));
  });
  const stalled = new Promise((resolve) => {
    const s = session.request({ ':method': 'POST', ':path': '/upload', 'content-length': '100' });
    let status;
    s.on('response', (h) => (status = h[':status']));
    s.on('error', () => {});
    s.resume();
    s.on('close', () => resolve({ status, rstCode: s.rstCode }));
    s.write('0123456789'); // then nothing
  });
  const t0 = Date.now();
  const [st, never, ok] = await Promise.all([
    stalled,
    exchange(session, { ':path': '/never' }),
    exchange(session, { ':method': 'POST', ':path': '/ok' }, 'abc'),
  ]);
  assert.equal(st.status, 408);
  assert.equal(never.status, 503);
  assert.equal(ok.body, 'read 3');
  assert.ok(Date.now() - t0 >= 900);
});
