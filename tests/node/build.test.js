'use strict';
// The addon's source build (node/build.js, binding.gyp, native_deps.py)
// against llhttp installations laid out in a temporary directory
// (PISTON_LLHTTP_PREFIX): a header with only the shared library beside it
// once built an addon whose llhttp references bound to Node's own llhttp
// (another version: every request got 505); now the build refuses it in
// one line. No header at all, or no compiler: one line naming the package
// per distribution. Header and static library: the addon builds and serves.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..', '..');

// the installed llhttp: header and library (static or shared)
function installedLlhttp() {
  const r = spawnSync('python3', [path.join(ROOT, 'native_deps.py'), 'llhttp'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [header, library] = r.stdout.trim().split('\n');
  const dir = path.dirname(library);
  const shared = fs.readdirSync(dir).filter((f) => /^libllhttp\.so/.test(f)).map((f) => path.join(dir, f));
  return { header, staticLib: path.join(dir, 'libllhttp.a'), shared };
}

// a copy of the package's sources (what npm pack ships) in a temp dir
function packageCopy(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'piston-build-test-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const f of ['package.json', 'binding.gyp', 'native_deps.py']) fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
  fs.cpSync(path.join(ROOT, 'node'), path.join(dir, 'node'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'csrc'));
  for (const f of fs.readdirSync(path.join(ROOT, 'csrc'))) {
    if (/\.[ch]$|^cflags\.txt$/.test(f)) fs.copyFileSync(path.join(ROOT, 'csrc', f), path.join(dir, 'csrc', f));
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

function prefixWith(pkg, files) {
  const prefix = path.join(pkg, 'llhttp-prefix');
  fs.mkdirSync(path.join(prefix, 'include'), { recursive: true });
  fs.mkdirSync(path.join(prefix, 'lib'), { recursive: true });
  for (const [name, target] of Object.entries(files)) fs.symlinkSync(target, path.join(prefix, name));
  return prefix;
}

function build(pkg, prefix) {
  return spawnSync(process.execPath, [path.join(pkg, 'node', 'build.js')], {
    cwd: pkg, encoding: 'utf8', timeout: 600000, env: { ...process.env, PISTON_LLHTTP_PREFIX: prefix },
  });
}

test('llhttp.h with only a shared libllhttp: the build refuses, in one line', (t) => {
  const ll = installedLlhttp();
  assert.ok(ll.shared.length, 'no libllhttp.so installed to lay out the case');
  const pkg = packageCopy(t);
  const files = { 'include/llhttp.h': ll.header };
  for (const so of ll.shared) files[`lib/${path.basename(so)}`] = so;
  const prefix = prefixWith(pkg, files);
  const r = build(pkg, prefix);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^piston: found ${prefix}/include/llhttp\\.h but no libllhttp\\.a beside it .*Node carries its own`));
  assert.ok(!fs.existsSync(path.join(pkg, 'build', 'Release', 'piston.node')), 'an addon was built');
});

test('no llhttp.h: one line saying what to install on each distribution', (t) => {
  const pkg = packageCopy(t);
  const r = build(pkg, prefixWith(pkg, {}));
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^piston: llhttp\.h not found under .*; install it \(Debian\/Ubuntu: apt install libllhttp-dev; Fedora: dnf install llhttp-devel; Alpine: apk add llhttp-dev; Homebrew: brew install llhttp\)$/m);
});

test('no C compiler on PATH: one line saying what to install', (t) => {
  const pkg = packageCopy(t);
  // node-gyp's Python and make are there, no compiler
  const bin = path.join(pkg, 'bin');
  fs.mkdirSync(bin);
  const py = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).stdout.trim();
  assert.ok(py, 'python3');
  fs.symlinkSync(py, path.join(bin, 'python3'));
  for (const tool of ['make', 'sh']) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    assert.ok(found, tool);
    fs.symlinkSync(found, path.join(bin, tool));
  }
  const env = { ...process.env, PATH: bin };
  delete env.CC;
  const r = spawnSync(process.execPath, [path.join(pkg, 'node', 'build.js')], { cwd: pkg, encoding: 'utf8', env });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^piston: no C compiler \(cc\) on PATH; install it \(Debian\/Ubuntu: apt install build-essential; Fedora: dnf install gcc make; Alpine: apk add build-base; Homebrew: xcode-select --install\)$/m);
});

test('llhttp.h with libllhttp.a: the addon builds against them and serves', async (t) => {
  const ll = installedLlhttp();
  assert.ok(fs.existsSync(ll.staticLib), `no ${ll.staticLib} installed to lay out the case`);
  const pkg = packageCopy(t);
  const prefix = prefixWith(pkg, { 'include/llhttp.h': ll.header, 'lib/libllhttp.a': ll.staticLib });
  const r = build(pkg, prefix);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  // the header compiled is the prefix's (the pinned include directory)
  assert.equal(fs.realpathSync(path.join(pkg, 'build', 'llhttp-include', 'llhttp.h')), fs.realpathSync(ll.header));
  const piston = require(path.join(pkg, 'node', 'index.js'));
  const server = piston.createServer((req, res) => res.end('ok'));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const res = await fetch(`http://127.0.0.1:${server.address().port}/`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'ok');
});
