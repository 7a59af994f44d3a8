'use strict';
// npm's prepack (`npm pack`, `make package`): builds the prebuilt addon the
// tarball ships, prebuilds/linux-x64/piston.napi.glibc.node (Node-API: one
// binary for every Node >= 18, loaded by node-gyp-build), with prebuildify.
// It builds in a copy of the package's files, so the checkout's own
// build/Release (make node) stays as it is. llhttp, OpenSSL, nghttp2 and
// zlib are linked in (native_deps.py; PISTON_NGHTTP2_PREFIX names a -fPIC
// libnghttp2.a, scripts/build-nghttp2-pic.sh), so the addon needs only libc.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const prefix = path.resolve(process.execPath, '..', '..');

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.error(`prebuild: ${path.basename(cmd)} ${args.join(' ')} exited with ${r.status}`);
    process.exit(1);
  }
  return r;
}

// the files `npm pack` takes (package.json's "files"), without this step
const listed = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
if (listed.status !== 0) throw new Error('npm pack --dry-run failed: ' + listed.stderr);
const files = JSON.parse(listed.stdout)[0].files.map((f) => f.path)
  .filter((f) => !f.startsWith('prebuilds/') && !f.startsWith('node_modules/'));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'piston-prebuild-'));
try {
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(tmp, f)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, f), path.join(tmp, f));
  }
  const nodeGyp = path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  // the -fPIC libnghttp2.a of scripts/build-nghttp2-pic.sh unless one is
  // named: Debian's cannot go into the addon, which would then need
  // libnghttp2.so
  const pic = path.join(ROOT, '.tools', 'nghttp2');
  const env = {
    ...process.env,
    ...(!process.env.PISTON_NGHTTP2_PREFIX && fs.existsSync(pic) ? { PISTON_NGHTTP2_PREFIX: pic } : {}),
    PISTON_WERROR: '1',
    // the installed Node's headers, nothing downloaded
    npm_config_nodedir: prefix,
    ...(fs.existsSync(nodeGyp) ? { PREBUILD_NODE_GYP: nodeGyp } : {}),
  };
  const bin = path.join(path.dirname(require.resolve('prebuildify/package.json')), 'bin.js');
  run(process.execPath, [bin, '--napi', '--tag-libc', '--strip'], { cwd: tmp, env });
  fs.rmSync(path.join(ROOT, 'prebuilds'), { recursive: true, force: true });
  fs.cpSync(path.join(tmp, 'prebuilds'), path.join(ROOT, 'prebuilds'), { recursive: true });
  for (const f of fs.readdirSync(path.join(ROOT, 'prebuilds'), { recursive: true })) {
    console.log(`prebuild: prebuilds/${f}`);
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
