// examples/node_app.mjs in TypeScript (tsc --noEmit checks it against the
// package's index.d.ts: tests/node/types.test.js, make test-package).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import piston, { type Server } from 'piston';

const port = Number(process.env.PORT ?? 8000);
const server: Server = piston.createServer((req: IncomingMessage, res: ServerResponse) => {
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(`Hello from Piston: ${req.method} ${req.url}\n`);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
