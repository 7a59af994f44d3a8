'use strict';
// Fastify 5 hello world for benchmarks/run_hosts.sh, default settings.
//   node fastify_hello.js piston|node PORT
// On Piston, through serverFactory: (handler) => piston.createServer(handler).
const [flavour, port] = process.argv.slice(2);
if (flavour !== 'piston' && flavour !== 'node') throw new Error('usage: fastify_hello.js piston|node PORT');
const Fastify = require('fastify');

const opts = { logger: false };
if (flavour === 'piston') {
  const piston = require('../../..');
  opts.serverFactory = (handler) => piston.createServer(handler);
}
const app = Fastify(opts);
app.get('/hello', (req, reply) => {
  reply.type('text/plain').send('Hello, World!');
});
app.listen({ port: Number(port), host: '127.0.0.1' }).then(
  () => console.log(`fastify on ${flavour} listening on ${port}`),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
