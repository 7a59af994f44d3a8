'use strict';
// `npm run build`, and `npm install` when no prebuilt addon fits
// (node/install.js): builds the addon from source with node-gyp against the
// headers of the Node that runs this script (<prefix>/include/node, e.g.
// /usr/include/node on Debian), so nothing is downloaded. What the build
// needs is checked first (native_deps.py check-node), so that a missing
// compiler, Python or llhttp is one line saying what to install, not a
// compiler error deep in node-gyp's output.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');

function fail(message) {
  console.error(message);
  process.exit(1);
}

function python() {
  for (const cmd of [process.env.PYTHON, 'python3', 'python'].filter(Boolean)) {
    const r = spawnSync(cmd, ['-c', 'import sys; sys.exit(sys.version_info < (3, 6))'], { stdio: 'ignore' });
    if (!r.error && r.status === 0) return cmd;
  }
  return fail('piston: building the addon needs Python 3 (node-gyp runs on it); install it ' +
    '(Debian/Ubuntu: apt install python3; Fedora: dnf install python3; Alpine: apk add python3; Homebrew: brew install python)');
}

function preflight() {
  const py = python();
  for (const tool of ['make']) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).error) {
      fail(`piston: building the addon needs ${tool}; install it ` +
        '(Debian/Ubuntu: apt install build-essential; Fedora: dnf install gcc make; Alpine: apk add build-base; Homebrew: xcode-select --install)');
    }
  }
  const r = spawnSync(py, [path.join(ROOT, 'native_deps.py'), 'check-node'], { encoding: 'utf8' });
  if (r.status !== 0) fail((r.stderr || r.stdout || `native_deps.py exited with ${r.status}`).trim());
  return py;
}

function build() {
  const py = preflight();
  const prefix = path.resolve(process.execPath, '..', '..');
  const args = ['configure', 'build', `--python=${py}`];
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${prefix}`);
  } else {
    console.warn(`piston: no Node headers under ${prefix}/include/node; node-gyp will fetch them`);
  }
  // npm puts its bundled node-gyp on PATH for scripts; fall back to npm's copy.
  let cmd = 'node-gyp';
  let pre = [];
  const bundled = path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (spawnSync(cmd, ['--version'], { stdio: 'ignore' }).error && fs.existsSync(bundled)) {
    cmd = process.execPath;
    pre = [bundled];
  }
  const r = spawnSync(cmd, [...pre, ...args], { stdio: 'inherit', cwd: ROOT });
  if (r.error) throw r.error;
  if (r.status !== 0) fail('piston: building the addon from source failed (node-gyp output above)');
}

module.exports = { build };
if (require.main === module) build();
