'use strict';
// Multi-core through node's own cluster module (as PM2's cluster mode
// runs it): the workers' createServer / App share one port, as node:http's
// do; a dead worker's replacement joins it; listen(0) says what to fix.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const { request, sleep } = require('./helpers');

const APP = path.join(__dirname, 'cluster_app.js');

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// The primary, once it printed 'ready' (or a worker's error line).
function startCluster(kind, port, workers = 2, env = {}) {
  const proc = spawn(process.execPath, [APP, kind], {
    env: { ...process.env, PORT: String(port), WORKERS: String(workers), ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const lines = [];
  proc.stdout.on('data', (d) => {
    out += d;
    let i;
    while ((i = out.indexOf('\n')) >= 0) {
      lines.push(out.slice(0, i));
      out = out.slice(i + 1);
    }
  });
  const first = new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (lines.length) {
        clearInterval(t);
        resolve(lines[0]);
      }
    }, 20);
    proc.on('exit', (code) => {
      clearInterval(t);
      reject(new Error(`the primary exited (${code}) before its workers listened`));
    });
  });
  return { proc, first };
}

function stopCluster(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve(proc.exitCode);
    proc.on('exit', (code) => resolve(code));
    proc.kill('SIGTERM');
  });
}

async function pidsOf(port, n) {
  const pids = new Map();
  for (let i = 0; i < n; i++) {
    const r = await request(port, 'GET', '/');
    assert.equal(r.status, 200);
    pids.set(r.body, (pids.get(r.body) || 0) + 1);
  }
  return pids;
}

for (const kind of ['http', 'app']) {
  describe(`cluster: ${kind === 'http' ? 'createServer' : 'App'}`, () => {
    test('the workers share the port, new connections reach each of them', async () => {
      const port = await freePort();
      const { proc, first } = startCluster(kind, port, 3);
      try {
        assert.equal(await first, 'ready');
        const pids = await pidsOf(port, 120);
        assert.equal(pids.size, 3, `answered by ${[...pids.keys()]}`);
        for (const n of pids.values()) assert.ok(n >= 10, `uneven: ${[...pids.values()]}`);
      } finally {
        assert.equal(await stopCluster(proc), 0);
      }
    });

    test("a killed worker's replacement joins the port", async () => {
      const port = await freePort();
      const { proc, first } = startCluster(kind, port, 2);
      try {
        assert.equal(await first, 'ready');
        const before = await pidsOf(port, 40);
        const victim = Number([...before.keys()][0]);
        process.kill(victim, 'SIGKILL');
        // the primary forks a replacement; until it listens the other serves
        let after;
        for (let i = 0; i < 100; i++) {
          await sleep(100);
          after = await pidsOf(port, 20);
          if (after.size === 2 && !after.has(String(victim))) break;
        }
        assert.equal(after.size, 2, `answered by ${[...after.keys()]}`);
        assert.ok(!after.has(String(victim)));
      } finally {
        await stopCluster(proc);
      }
    });
  });
}

// GET 2xx responses summed, and the workers named, in one scrape
async function scrape(port) {
  const r = await request(port, 'GET', '/metrics');
  assert.equal(r.status, 200);
  const m = /^piston_requests_total\{method="GET",status="2xx"\} (\d+)$/m.exec(r.body);
  const workers = [...r.body.matchAll(/^piston_worker_sent_bytes_total\{worker="(\d+)"\} \d+$/gm)]
    .map((x) => x[1]);
  return { get2xx: Number(m[1]), workers: new Set(workers) };
}

for (const kind of ['http', 'app']) {
  test(`cluster: ${kind === 'http' ? 'createServer' : 'App'}: metrics summed over the workers`, async () => {
    const port = await freePort();
    const { proc, first } = startCluster(kind, port, 2, { METRICS: '1' });
    try {
      assert.equal(await first, 'ready');
      const pids = await pidsOf(port, 60);
      assert.equal(pids.size, 2);
      // whichever worker answers, a scrape counts both (and itself once
      // answered)
      for (let i = 0; i < 12; i++) {
        const m = await scrape(port);
        assert.equal(m.get2xx, 60 + i);
        assert.deepEqual(m.workers, new Set(pids.keys()));
      }
      // a killed worker's counts stay: its replacement goes on from them
      const victim = Number([...pids.keys()][0]);
      process.kill(victim, 'SIGKILL');
      let m;
      for (let i = 0; i < 100; i++) {
        await sleep(100);
        m = await scrape(port);
        if (m.workers.size === 2 && !m.workers.has(String(victim))) break;
      }
      assert.ok(!m.workers.has(String(victim)) && m.workers.size === 2, [...m.workers].join());
      assert.ok(m.get2xx >= 72, `${m.get2xx}`);
    } finally {
      assert.equal(await stopCluster(proc), 0);
    }
  });
}

test('listen(0) in a cluster worker says what to fix', async () => {
  const { proc, first } = startCluster('http', 0, 1);
  try {
    assert.match(await first, /^error ERR_CLUSTER_PORT_0 listen\(0\) in a cluster worker: .*listen on a port number/);
  } finally {
    await stopCluster(proc);
  }
});
