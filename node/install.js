'use strict';
// npm's install script: nothing to do when the prebuilt addon of the
// package (prebuilds/linux-x64/, Node-API: one binary for every Node >= 18)
// loads here; else a source build (node/build.js), which says what to
// install when a compiler or llhttp is missing. In a git checkout, or with
// `npm install --build-from-source`, always the source build: the engine
// there is the one being worked on.

const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');

function prebuilt() {
  let file;
  try {
    file = require('node-gyp-build').path(ROOT);
  } catch (e) {
    console.warn(`piston: no prebuilt addon for ${process.platform}-${process.arch} here; building from source`);
    return false;
  }
  try {
    require(file);
    return true;
  } catch (e) {
    console.warn(`piston: the prebuilt addon ${path.relative(ROOT, file)} does not load here ` +
      `(${e.message.split('\n')[0]}); building from source`);
    return false;
  }
}

const fromSource = fs.existsSync(path.join(ROOT, '.git')) ||
  process.env.npm_config_build_from_source === 'true' || process.env.PISTON_BUILD_FROM_SOURCE === '1';
if (fromSource || !prebuilt()) require('./build').build();
