'use strict';
// The addon's per-environment state: worker_threads each load it and run
// servers of their own next to the main thread's.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const piston = require('../..');
const { raw, request } = require('./helpers');

const { App } = piston;

function start(app) {
  return new Promise((resolve, reject) => {
    app.listen(0, '127.0.0.1', (err, port) => (err ? reject(err) : resolve(port)));
  });
}
function stop(app) {
  return new Promise((r) => app.close(r, 0));
}

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
