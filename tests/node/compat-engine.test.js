'use strict';
// Issue #14's engine bugs through createServer (the same cases as
// tests/protocol/test_compat.py and tests/python/test_compat_engine.py),
// raw bytes over sockets, exact bytes back with the Date masked:
// - a FIN ends only the client's sending direction: requests received are
//   answered, then the connection closes; only a reset is a disconnect;
// - an invalid Host value is a 400 before the handler runs;
// - a body longer than the handler's Content-Length: the 8 bytes
//   announced, then the close, and one log line;
// - `Transfer-Encoding: ,chunked` is chunked; `5;a=` is answered at once.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const piston = require('../..');
const { listen, close, connect, sleep } = require('./helpers');

const ROOT = path.join(__dirname, '..', '..');

// Routes with the bytes of tests/python/compat_apps.py.
function handler(req, res) {
  const url = new URL(req.url, 'http://x');
  const send = (body) => {
    res.setHeader('Content-Type', 'text/plain');
    res.end(body);
  };
  if (url.pathname === '/echo') {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const ms = Number(url.searchParams.get('sleep') || 0) * 1000;
      setTimeout(() => send(Buffer.concat(chunks)), ms);
    });
  } else if (url.pathname === '/slow') {
    setTimeout(() => send('slow'), 10);
  } else if (url.pathname === '/hello') {
    send('Hello, World!');
  } else if (url.pathname === '/host') {
    send('host=' + (req.headers.host ?? ''));
  } else if (url.pathname === '/wait') {
    res.on('close', () => handler.events.push('wait:close'));
  } else {
    res.statusCode = 404;
    send('no');
  }
}
handler.events = [];

const maskAll = (s) => s.replace(/\r\nDate: [^\r]*\r\n/g, '\r\nDate: DATE\r\n');
// node:http's layout (tests/node/node-heads.test.js): the app's fields,
// then Date, Connection and Keep-Alive, then the framing
const text = (body) =>
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: DATE\r\nConnection: keep-alive\r\n' +
  `Keep-Alive: timeout=5\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const get = (target, host = 'x') => `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;

// Sends bytes (then a FIN unless shut is false); resolves with every byte
// until the server closes or `until` bytes came, rejects if neither
// happens within ms. The cases that are not about a FIN send none, so
// that each fails only for its own bug.
function exchange(port, bytes, { shut = true, ms = 3000, until } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks = [];
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error('no close within ' + ms + ' ms; got ' + Buffer.concat(chunks).toString('latin1')));
    }, ms);
    s.on('data', (d) => {
      chunks.push(d);
      if (until !== undefined && Buffer.concat(chunks).length >= until) s.destroy();
    });
    s.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve(maskAll(Buffer.concat(chunks).toString('latin1')));
    });
    if (shut) s.end(bytes);
    else s.write(bytes);
  });
}

async function withServer(fn) {
  const server = piston.createServer(handler);
  const { port } = await listen(server);
  try {
    return await fn(port);
  } finally {
    await close(server);
  }
}

describe('issue 14: a FIN after complete requests', () => {
  test('a POST then FIN is answered, then closed', () =>
    withServer(async (port) => {
      const got = await exchange(port, 'POST /echo?sleep=0.1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello');
      assert.equal(got, text('hello'));
    }));

  test('ten pipelined GETs then FIN get ten answers', () =>
    withServer(async (port) => {
      assert.equal(await exchange(port, get('/slow').repeat(10)), text('slow').repeat(10));
    }));

  test('pipelined requests, a partial head, FIN: the requests are answered, then closed', () =>
    withServer(async (port) => {
      const got = await exchange(port, get('/slow') + get('/hello') + 'GET /hello HTTP/1.1\r\nHo', { ms: 1500 });
      assert.equal(got, text('slow') + text('Hello, World!'));
    }));

  test('a FIN is not a disconnect; a reset is', () =>
    withServer(async (port) => {
      handler.events = [];
      const s = await connect(port);
      s.write(get('/wait'));
      await sleep(100);
      s.end();
      await sleep(300);
      assert.deepEqual(handler.events, []);
      s.resetAndDestroy();
      for (let i = 0; i < 100 && handler.events.length === 0; i++) await sleep(20);
      assert.deepEqual(handler.events, ['wait:close']);
    }));
});

describe('issue 14: Host values', () => {
  const bad = ['bad host', 'a/b', 'a@b', '[::1', 'a:b:c', 'a?b', 'a#b', 'exa\\mple'];
  // node:http's own 400 (the engine's, in node's style)
  const error = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';
  for (const value of bad) {
    test(`Host: ${value} is a 400`, () =>
      withServer(async (port) => {
        assert.equal(await exchange(port, get('/host', value), { shut: false }), error);
      }));
  }
  for (const value of ['', 'example.com:8080', '[::1]:80', '127.0.0.1', 'a%41b']) {
    test(`Host: ${value || '(empty)'} reaches the handler`, () =>
      withServer(async (port) => {
        const want = text('host=' + value);
        assert.equal(await exchange(port, get('/host', value), { shut: false, until: want.length }), want);
      }));
  }
});

// In a child process, so that its stderr (where the engine logs) is ours
// to read.
const OVERFLOW_APP = `
const piston = require(${JSON.stringify(ROOT)});
const s = piston.createServer((req, res) => {
  if (req.url === '/hello') return res.end('Hello, World!');
  res.setHeader('Content-Length', '8');
  if (req.url === '/overflow?one=1') return res.end('0123456789abcdefghij');
  res.write('012345');
  res.end('6789abcdefghij');
});
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
process.on('SIGTERM', () => s.close(() => process.exit(0)));
`;

describe('issue 14: a body longer than the handler\'s Content-Length', () => {
  for (const query of ['', '?one=1']) {
    test(`the 8 bytes announced, then the close, one log line (${query || 'write + end'})`, async () => {
      const child = spawn(process.execPath, ['-e', OVERFLOW_APP], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const port = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(Number(String(d)))));
      try {
        const got = await exchange(port, get('/overflow' + query) + get('/hello'), { shut: false });
        // the head went out before the body overflowed: it still says keep-alive
        assert.equal(got, 'HTTP/1.1 200 OK\r\nContent-Length: 8\r\nDate: DATE\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n01234567');
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      const lines = stderr.split('\n').filter((l) => l.includes('Content-Length'));
      assert.deepEqual(lines, [
        'piston: response body longer than its Content-Length: GET /overflow: sent the 8 bytes announced, dropped the rest, closing',
      ]);
    });
  }
});

describe('issue 14: Transfer-Encoding list and chunk extensions', () => {
  const cases = {
    te_leading_comma: ['Transfer-Encoding: ,chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'],
    ext_empty_value: ['Transfer-Encoding: chunked\r\n', '5;a=\r\nhello\r\n0\r\n\r\n'],
  };
  for (const [name, [fields, body]] of Object.entries(cases)) {
    test(`${name}: answered at once`, () =>
      withServer(async (port) => {
        const want = text('hello') + text('Hello, World!');
        const got = await exchange(port, 'POST /echo HTTP/1.1\r\nHost: x\r\n' + fields + '\r\n' + body + get('/hello'), {
          shut: false,
          until: want.length,
        });
        assert.equal(got, want);
      }));
  }
});
