'use strict';
// `npm install` / `npm run build`: builds the addon with node-gyp against
// the headers of the Node that runs this script (<prefix>/include/node,
// e.g. /usr/include/node on Debian), so nothing is downloaded.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const prefix = path.resolve(process.execPath, '..', '..');
const args = ['configure', 'build'];
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
const r = spawnSync(cmd, [...pre, ...args], { stdio: 'inherit', cwd: path.join(__dirname, '..') });
if (r.error) throw r.error;
process.exit(r.status ?? 1);
