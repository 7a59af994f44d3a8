// A small Node app on Piston: node:http's request/response API, with the
// HTTP work done by the engine in C.
//
//     npm install piston && node node_app.mjs      (PORT=8000 by default)
//
// examples/node_app.mts is the same app in TypeScript.
import piston from 'piston';

const port = Number(process.env.PORT ?? 8000);
const server = piston.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(`Hello from Piston: ${req.method} ${req.url}\n`);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
