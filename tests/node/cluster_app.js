'use strict';
// A node:cluster app as its users write one: the primary forks WORKERS
// workers, each serves PORT with Piston's createServer (argv[2] 'http') or
// App ('app'), answering its pid. The primary prints 'ready' once every
// worker listens, a worker's listen error as 'error <code> <message>', and
// forks a new worker when one dies (as PM2 does).
const cluster = require('node:cluster');
const piston = require('../..');

const kind = process.argv[2] || 'http';
const port = Number(process.env.PORT);
const workers = Number(process.env.WORKERS || 2);

if (cluster.isPrimary) {
  let listening = 0;
  cluster.on('message', (w, m) => {
    if (m.listening && ++listening === workers) console.log('ready');
    if (m.error) console.log(`error ${m.error}`);
  });
  cluster.on('exit', (w, code, signal) => {
    if (!w.exitedAfterDisconnect && !stopping) cluster.fork();
  });
  let stopping = false;
  process.on('SIGTERM', () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
  });
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  // METRICS=1: Prometheus text at /metrics, summed over the workers
  const options = process.env.METRICS ? { metrics: '/metrics' } : {};
  const reply = (res) => res.end(String(process.pid));
  const report = (err) => process.send(err ? { error: `${err.code} ${err.message}` } : { listening: true });
  let server;
  if (kind === 'app') {
    server = new piston.App(options);
    server.get('/', (req, res) => reply(res));
    server.listen(port, '127.0.0.1', (err) => report(err));
  } else {
    server = piston.createServer(options, (req, res) => reply(res));
    server.on('error', report);
    server.listen(port, '127.0.0.1', () => report(null));
  }
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
