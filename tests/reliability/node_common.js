'use strict';
// The start-up shared by the Node hosts of the reliability tests
// (node_app.js, handler_faults_app.js), which util.Server starts as it
// starts piston-testserver:
//
//   <app>.js --bind 127.0.0.1:0 [--<option> <value> ...]
//
// parseArgs() reads that command line; listen() prints the line util.Server
// waits for, "<app>.js: listening on http://HOST:PORT", on stderr
// (https:// over TLS).
//
// TLS (the suite's TLS run, PISTON_TEST_TLS=1): tests/reliability/rel.py
// puts the run's certificate and key (PEM files) in PISTON_TEST_TLS_CERT and
// PISTON_TEST_TLS_KEY; tls() reads them into createServer's {key, cert}, so
// that the apps serve https as an application would with node:https.

const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');

// The package's "main" (package.json: node/index.js), as an application
// that installed it would require('piston').
const piston = require(path.join(__dirname, '..', '..'));

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

// The app's file name, for its stderr lines.
const NAME = path.basename(require.main.filename);

// {host, port, options}: --bind HOST:PORT (default 127.0.0.1:0) and every
// other --<option> <value> pair in options under its name as spelled,
// integers as numbers.
function parseArgs(argv = process.argv.slice(2)) {
  let host = '127.0.0.1';
  let port = 0;
  const options = {};
  for (let i = 0; i + 1 < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[i + 1];
    if (k === 'bind') {
      const c = v.lastIndexOf(':');
      host = v.slice(0, c);
      port = Number(v.slice(c + 1));
    } else {
      options[k] = /^-?\d+$/.test(v) ? Number(v) : v;
    }
  }
  return { host, port, options };
}

// {key, cert} from PISTON_TEST_TLS_KEY/CERT, or {} for plain HTTP.
function tls() {
  const cert = process.env.PISTON_TEST_TLS_CERT;
  const key = process.env.PISTON_TEST_TLS_KEY;
  if (!cert && !key) return {};
  if (!cert || !key) throw new Error('PISTON_TEST_TLS_CERT and PISTON_TEST_TLS_KEY go together');
  return { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
}

function listen(server, host, port) {
  const scheme = Object.keys(tls()).length ? 'https' : 'http';
  server.listen(port, host, () => {
    const a = server.address();
    process.stderr.write(`${NAME}: listening on ${scheme}://${a.address}:${a.port}\n`);
  });
}

module.exports = { piston, gc, NAME, parseArgs, listen, tls };
