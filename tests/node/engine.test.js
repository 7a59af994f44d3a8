'use strict';
// What the binding takes from the engine instead of keeping its own copy:
// the constants of piston.h's X-macro maps, the MIME table, the split of
// the request target, the percent-decoder; and the addon's per-environment
// state (worker_threads).

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const piston = require('../..');
const B = require('../../node/binding');
const { listen, close, raw, parseResponses, request } = require('./helpers');

const { native } = B;
const { App } = piston;

function start(app) {
  return new Promise((resolve, reject) => {
    app.listen(0, '127.0.0.1', (err, port) => (err ? reject(err) : resolve(port)));
  });
}
function stop(app) {
  return new Promise((r) => app.close(r, 0));
}

// X(...) entries of one map in piston.h, each as its list of arguments
// (strings unquoted).
function mapEntries(header, map) {
  const start = header.indexOf(`#define ${map}(X)`);
  assert.ok(start >= 0, `${map} not found in piston.h`);
  const lines = [];
  for (const line of header.slice(start).split('\n').slice(1)) {
    lines.push(line);
    if (!line.trimEnd().endsWith('\\')) break;
  }
  const body = lines.map((l) => l.replace(/\\\s*$/, '')).join(' ');
  const out = [];
  for (const m of body.matchAll(/X\(\s*([A-Z_0-9]+)\s*(?:,\s*(-?\d+))?/g)) out.push({ name: m[1], value: m[2] });
  return out;
}

describe('constants from the X-macro maps of piston.h', () => {
  const header = fs.readFileSync(path.join(__dirname, '..', '..', 'csrc', 'piston.h'), 'utf8');

  test('every PISTON_ERRNO_MAP entry is exported as E<name> with its value', () => {
    const errs = mapEntries(header, 'PISTON_ERRNO_MAP');
    assert.ok(errs.length >= 11);
    for (const e of errs) {
      assert.equal(native['E' + e.name], Number(e.value), 'E' + e.name);
      assert.equal(native.errName(Number(e.value)), 'PISTON_E' + e.name);
    }
  });

  test('every PISTON_OPTION_MAP entry is exported as OPT_<name> and has a JS option name', () => {
    const opts = mapEntries(header, 'PISTON_OPTION_MAP');
    assert.ok(opts.length >= 15);
    const jsNames = new Map(Object.entries(B.OPTION_NAMES).map(([k, v]) => [v, k]));
    opts.forEach((o, i) => {
      assert.equal(native['OPT_' + o.name], i, 'OPT_' + o.name); // enum order
      assert.ok(jsNames.has(i), `no JS option name for OPT_${o.name}`);
    });
    assert.equal(B.OPTION_NAMES.sharePort, native.OPT_SHARE_PORT);
    assert.equal(B.OPTION_NAMES.handlerTimeout, native.OPT_HANDLER_TIMEOUT_MS);
    assert.equal(B.OPTION_NAMES.maxBodySize, native.OPT_MAX_BODY_SIZE);
    assert.equal(Object.keys(B.OPTION_NAMES).length, opts.length);
  });

  test('every PISTON_EVENT_MAP entry is exported as EV_<name> with its bit', () => {
    const evs = mapEntries(header, 'PISTON_EVENT_MAP');
    assert.deepEqual(
      evs.map((e) => e.name),
      ['BODY', 'DRAIN', 'CLOSED', 'TIMEOUT', 'MESSAGE'],
    );
    for (const e of evs) assert.equal(native['EV_' + e.name], Number(e.value), 'EV_' + e.name);
  });

  test('sharePort reaches the engine: two servers can share a TCP port', async () => {
    const a = new App({ sharePort: true });
    a.get('/', (req, res) => res.end('a'));
    const port = await start(a);
    const b = new App({ sharePort: true });
    b.get('/', (req, res) => res.end('b'));
    await new Promise((resolve, reject) => b.listen(port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
    const c = new App(); // without it the port is in use
    const err = await new Promise((resolve) => c.listen(port, '127.0.0.1', (e) => resolve(e)));
    assert.equal(err?.code, 'EADDRINUSE');
    assert.match((await request(port, 'GET', '/')).body, /^[ab]$/);
    await stop(a);
    await stop(b);
  });
});

describe('Content-Type: res.sendFile and app.static use the engine table', () => {
  let dir;
  const names = ['x.js', 'x.mjs', 'x.css', 'x.html', 'x.json', 'x.wasm', 'x.unknownext', 'X.JS', 'noext'];
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'piston-mime-'));
    for (const n of names) fs.writeFileSync(path.join(dir, n), 'content of ' + n);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('the same Content-Type from the file mount and from sendFile, for each type', async () => {
    const app = new App();
    app.static('/static', dir);
    app.get('/send/:name', (req, res) => res.sendFile(path.join(dir, req.params.name)));
    const port = await start(app);
    try {
      for (const n of names) {
        const viaMount = parseResponses(await raw(port, `GET /static/${n} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`))[0];
        const viaSend = parseResponses(await raw(port, `GET /send/${n} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`))[0];
        assert.equal(viaMount.status, 200, n);
        assert.equal(viaSend.status, 200, n);
        assert.equal(viaMount.body, 'content of ' + n);
        assert.equal(viaSend.body, 'content of ' + n);
        assert.ok(viaMount.headers['content-type'], n);
        assert.equal(viaSend.headers['content-type'], viaMount.headers['content-type'], n);
        assert.equal(native.mimeType(n), viaMount.headers['content-type'], n);
      }
      assert.equal(native.mimeType('x.unknownext'), 'application/octet-stream');
      assert.equal(native.mimeType('/a/b.c/x.json'), native.mimeType('x.json'));
    } finally {
      await stop(app);
    }
  });
});

describe('absolute-form request targets', () => {
  const target = 'http://example.test:8080/a/b?x=1&y=%20';
  const bytes = `GET ${target} HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n`;

  test('the native App routes by the engine path and reads the engine query', async () => {
    const app = new App();
    app.get('/a/:p', (req, res) => res.json({ url: req.url, path: req.path, params: req.params, query: req.query }));
    app.get('/a/b', (req, res) => res.json({ url: req.url, path: req.path, query: req.query, exact: true }));
    const port = await start(app);
    try {
      const [r] = parseResponses(await raw(port, bytes));
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { url: target, path: '/a/b', query: { x: '1', y: ' ' }, exact: true });
      const [r2] = parseResponses(await raw(port, `GET http://h/a/c%2Fd HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`));
      assert.deepEqual(JSON.parse(r2.body), { url: 'http://h/a/c%2Fd', path: '/a/c%2Fd', params: { p: 'c/d' }, query: {} });
    } finally {
      await stop(app);
    }
  });

  test('createServer keeps the raw target in req.url, as node:http does', async () => {
    const seen = {};
    const handler = (name) => (req, res) => {
      seen[name] = req.url;
      res.end('ok');
    };
    const ref = http.createServer(handler('node'));
    const ours = piston.createServer(handler('piston'));
    const a = await listen(ref, 0, '127.0.0.1');
    const b = await listen(ours, 0, '127.0.0.1');
    try {
      assert.match(await raw(a.port, bytes), /^HTTP\/1\.1 200 /);
      assert.match(await raw(b.port, bytes), /^HTTP\/1\.1 200 /);
      assert.equal(seen.node, target);
      assert.equal(seen.piston, seen.node);
    } finally {
      await close(ref);
      await close(ours);
    }
  });
});

describe('route parameters are decoded by the engine decoder', () => {
  test('UTF-8 escapes decode; a stray % leaves the parameter as sent', async () => {
    const app = new App();
    app.get('/p/:v', (req, res) => res.json(req.params.v));
    const port = await start(app);
    try {
      // raw() reads latin1: the body is UTF-8
      const get = async (p) => JSON.parse(Buffer.from((await request(port, 'GET', p)).body, 'latin1').toString('utf8'));
      assert.equal(await get('/p/%E2%82%AC%20x'), '\u20ac x');
      assert.equal(await get('/p/100%'), '100%');
      assert.equal(await get('/p/a%zz'), 'a%zz');
      assert.equal(await get('/p/plain'), 'plain');
      assert.equal(await get('/p/%FF'), '\ufffd'); // not UTF-8: replaced

      assert.equal(native.percentDecode('a%2Fb'), 'a/b');
      assert.equal(native.percentDecode('%'), undefined);
    } finally {
      await stop(app);
    }
  });
});

describe('worker_threads: each environment has its own addon state', () => {
  const entry = path.join(__dirname, '..', '..');
  // A worker that serves on a port of its own and reports its port, then
  // its request count and live handles when asked to stop; `leave` makes it
  // exit with its server still open (the environment's teardown closes it).
  const workerSrc = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { App } = require(workerData.entry);
    const B = require(workerData.entry + '/node/binding');
    let n = 0;
    const app = new App();
    app.get('/', (req, res) => { n++; res.end('worker ' + workerData.name); });
    app.get('/hold', (req, res) => { res.write('held'); parentPort.postMessage('holding'); });
    app.listen(0, '127.0.0.1', (err, port) => parentPort.postMessage({ port }));
    parentPort.on('message', (m) => {
      if (m === 'leave') { parentPort.postMessage({ n }); process.exit(0); }
      app.close(() => { parentPort.postMessage({ n, live: B.native.live() }); parentPort.close(); }, 0);
    });`;

  function spawn(name) {
    const w = new Worker(workerSrc, { eval: true, workerData: { entry, name } });
    const messages = [];
    let wake = null;
    w.on('message', (m) => {
      messages.push(m);
      if (wake) wake();
    });
    const next = async () => {
      while (messages.length === 0) await new Promise((r) => (wake = r));
      return messages.shift();
    };
    const exited = new Promise((r) => w.once('exit', r));
    return { w, next, exited };
  }

  test('two workers and the main thread serve at once; a worker may exit or be terminated with its server open', async () => {
    const main = new App();
    main.get('/', (req, res) => res.end('main'));
    const mainPort = await start(main);
    const w1 = spawn('one');
    const w2 = spawn('two');
    const p1 = (await w1.next()).port;
    const p2 = (await w2.next()).port;
    try {
      const rounds = await Promise.all(
        Array.from({ length: 20 }, (_, i) => request([mainPort, p1, p2][i % 3], 'GET', '/')),
      );
      rounds.forEach((r, i) => assert.equal(r.body, ['main', 'worker one', 'worker two'][i % 3]));
      w1.w.postMessage('stop');
      assert.deepEqual(await w1.next(), { n: 7, live: 0 });
      assert.equal(await w1.exited, 0);
      // the second leaves with its server listening
      w2.w.postMessage('leave');
      assert.deepEqual(await w2.next(), { n: 6 });
      assert.equal(await w2.exited, 0);
      assert.equal((await request(mainPort, 'GET', '/')).body, 'main');
      // a third is terminated while it holds a request mid-response: its
      // client sees the connection close, the process goes on
      const w3 = spawn('three');
      const p3 = (await w3.next()).port;
      const text = raw(p3, 'GET /hold HTTP/1.1\r\nHost: h\r\n\r\n', 5000);
      assert.equal(await w3.next(), 'holding');
      await w3.w.terminate();
      const t = await text;
      assert.match(t, /^HTTP\/1\.1 200 OK\r\n/);
      assert.ok(t.includes('4\r\nheld\r\n') && !t.includes('0\r\n\r\n'), t);
      assert.equal((await request(mainPort, 'GET', '/')).body, 'main');
    } finally {
      await stop(main);
    }
  });
});
