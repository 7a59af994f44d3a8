'use strict';
// Node's own test/parallel/test-http-*.js through Piston's createServer
// (issue #14): each file runs with preload.js, which swaps node:http's
// createServer/Server for Piston's; a file passes when it exits 0 in time,
// as under Node's own runner.
//
//   node tests/node-compat/run.js [--tests DIR] [--jobs N] [--timeout MS] [FILTER]
//       runs the files of candidates.txt; fails if a file of expected-pass.txt
//       fails (twice: one retry), lists the files that pass beyond it
//   ... --update     rewrites expected-pass.txt with the files that pass now
//   ... --baseline   runs every test-http-*.js that creates a server on stock
//                    Node (no preload) and rewrites candidates.txt with those
//                    that pass there
// DIR (default build/node-tests) is where fetch-tests.sh put Node's tests.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const HERE = __dirname;
const CANDIDATES = path.join(HERE, 'candidates.txt');
const EXPECTED = path.join(HERE, 'expected-pass.txt');
const PRELOAD = path.join(HERE, 'preload.js');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const flag = (name) => {
  const i = args.indexOf(name);
  if (i >= 0) args.splice(i, 1);
  return i >= 0;
};
const testsDir = path.resolve(opt('--tests', path.join(HERE, '../../build/node-tests')));
const jobs = Number(opt('--jobs', Math.max(1, Math.min(4, os.availableParallelism()))));
const timeoutMs = Number(opt('--timeout', 10000));
const baseline = flag('--baseline');
const update = flag('--update');
const filter = args[0] ? new RegExp(args[0]) : null;
const parallel = path.join(testsDir, 'test', 'parallel');

function readList(file) {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

function writeList(file, header, names) {
  fs.writeFileSync(file, `${header.map((l) => `# ${l}`).join('\n')}\n${[...names].sort().join('\n')}\n`);
}

// A file "creates a server" when it calls node:http's createServer or Server.
function createsServer(src) {
  return /require\(['"](node:)?http['"]\)/.test(src) && /\b(createServer|Server)\s*\(/.test(src);
}

// Node's runner reads "// Flags: ..." from the file (tools/test.py).
function flagsOf(src) {
  const m = /^\/\/ Flags:(.*)$/m.exec(src);
  return m ? m[1].trim().split(/\s+/).filter(Boolean) : [];
}

// worker: which job slot runs it; common/tmpdir.js makes one temporary
// directory per TEST_THREAD_ID, as under Node's own runner, so parallel
// files do not wipe each other's sockets and files
function runOne(name, withPiston, worker) {
  const file = path.join(parallel, name);
  const src = fs.readFileSync(file, 'utf8');
  const argv = [...flagsOf(src), ...(withPiston ? ['--require', PRELOAD] : []), file];
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, argv, {
      cwd: parallel,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: children it spawns go with it
      env: { ...process.env, NODE_TEST_DIR: path.join(testsDir, 'test'), NODE_OPTIONS: '', TEST_THREAD_ID: String(worker) },
    });
    let out = '';
    const keep = (d) => {
      if (out.length < 4000) out += d;
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const killGroup = () => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    // what the test left running (a child holding the pipes) goes too
    child.on('exit', killGroup);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ name, pass: code === 0 && !timedOut, code, signal, timedOut, ms: Date.now() - t0, out });
    });
  });
}

async function runAll(names, withPiston) {
  const results = new Map();
  let next = 0;
  async function worker(id) {
    while (next < names.length) {
      const name = names[next++];
      results.set(name, await runOne(name, withPiston, id));
    }
  }
  await Promise.all(Array.from({ length: jobs }, (_, id) => worker(id)));
  return results;
}

async function main() {
  if (!fs.existsSync(parallel)) {
    console.error(`node-compat: no ${parallel}; run tests/node-compat/fetch-tests.sh first`);
    process.exit(2);
  }
  const t0 = Date.now();
  if (baseline) {
    const all = fs
      .readdirSync(parallel)
      .filter((f) => /^test-http-.*\.js$/.test(f))
      .filter((f) => createsServer(fs.readFileSync(path.join(parallel, f), 'utf8')));
    const res = await runAll(all, false);
    const pass = all.filter((n) => res.get(n).pass);
    writeList(
      CANDIDATES,
      [
        `Node's test/parallel/test-http-*.js that create a server and pass on stock Node`,
        `(${process.version}, tests of the Debian nodejs source package). Made by run.js --baseline.`,
      ],
      pass,
    );
    console.log(`node-compat: ${pass.length} of ${all.length} files that create a server pass on stock Node (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    return;
  }
  let names = readList(CANDIDATES);
  if (filter) names = names.filter((n) => filter.test(n));
  const res = await runAll(names, true);
  // one retry for an expected file that failed, so a machine under load
  // does not fail the run (the other failures are not run twice)
  const expectedAll = new Set(readList(EXPECTED));
  const again = names.filter((n) => !res.get(n).pass && expectedAll.has(n));
  if (again.length && !update) for (const [n, r] of await runAll(again, true)) if (r.pass) res.set(n, r);
  const pass = names.filter((n) => res.get(n).pass);
  const secs = ((Date.now() - t0) / 1000).toFixed(0);
  if (process.env.NODE_COMPAT_VERBOSE) {
    for (const n of names) {
      const r = res.get(n);
      if (!r.pass) console.log(`FAIL ${n} (${r.timedOut ? 'timeout' : `exit ${r.code ?? r.signal}`})\n${r.out.split('\n').slice(0, 12).join('\n')}\n`);
    }
  }
  if (update) {
    writeList(
      EXPECTED,
      [
        `Node's own http tests (candidates.txt) that pass with Piston's createServer.`,
        `A file here that fails fails make test-node-compat. Made by run.js --update.`,
      ],
      pass,
    );
    console.log(`node-compat: ${pass.length} of ${names.length} pass through Piston; expected-pass.txt updated (${secs} s)`);
    return;
  }
  const expected = readList(EXPECTED).filter((n) => !filter || filter.test(n));
  const lost = expected.filter((n) => !res.has(n) || !res.get(n).pass);
  const gained = pass.filter((n) => !expected.includes(n));
  console.log(`node-compat: ${pass.length} of ${names.length} of Node's http test files pass through Piston (expected ${expected.length}; ${secs} s)`);
  if (gained.length) console.log(`node-compat: passing beyond expected-pass.txt (run with --update): ${gained.join(' ')}`);
  if (lost.length) {
    for (const n of lost) {
      const r = res.get(n);
      console.log(`node-compat: REGRESSION ${n} (${r.timedOut ? 'timeout' : `exit ${r.code ?? r.signal}`})\n${r.out.split('\n').slice(0, 20).join('\n')}`);
    }
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
