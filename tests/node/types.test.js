'use strict';
// node/index.d.ts under TypeScript (tsc --noEmit, with @types/node): the
// Server goes where an http.Server / net.Server is expected, and the
// README's examples type-check (tests/node/types/usage.ts), and so does
// examples/node_app.mts.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const DIR = path.join(__dirname, 'types');
// the package's bin (its exports map does not list it)
const TSC = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');

function tsc(project) {
  return spawnSync(process.execPath, [TSC, '-p', path.join(DIR, project)], { encoding: 'utf8', timeout: 60000 });
}

test('usage.ts type-checks against node/index.d.ts', () => {
  const r = tsc('tsconfig.json');
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('examples/node_app.mts type-checks (default import, as ESM)', () => {
  const r = tsc('tsconfig.examples.json');
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('a wrong use is reported (tsc really reads the declarations)', () => {
  const r = tsc('tsconfig.must-fail.json');
  assert.notEqual(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /must-fail\.ts\(5,7\): error TS2322: Type 'Server' is not assignable to type 'number'/);
});
