// Type-checked by tests/node/types.test.js (tsc --noEmit): piston's Server
// where an http.Server is expected (ws, socket.io, supertest, ...), and the
// examples of node/README.md.
import * as http from 'node:http';
import * as net from 'node:net';
import * as piston from 'piston';
import { App, createServer, Server } from 'piston';

// what ws's `new WebSocketServer({ server })` and socket.io's `new Server(httpServer)` take
function attachHttp(server: http.Server): http.Server {
  return server;
}
function attachNet(server: net.Server): void {
  void server;
}

const server = piston.createServer((req, res) => res.end('hello'));
server.listen(3000, '127.0.0.1', () => console.log(server.address()));
attachHttp(server);
attachNet(server);
const asHttp: http.Server = createServer({ maxBodySize: 1 << 20 }, (req, res) => {
  res.statusCode = 200;
  res.end(req.url);
});
void asHttp;

// listen forms, a string port (process.env.PORT) included
server.listen({ port: process.env.PORT ?? '3000', host: '::' });
server.listen('3000');
server.listen(0, () => {});
server.keepAliveTimeout = 5000;
server.handlerTimeout = 1000;
server.on('clientError', (err, socket) => {
  void err;
  void socket;
});
// node:http's upgrade and CONNECT events, as ws's handleUpgrade takes them
server.on('upgrade', (req, socket, head) => {
  const h: Buffer = head;
  const addr: string | undefined = socket.remoteAddress;
  socket.setTimeout(0).setNoDelay(true).setKeepAlive(true, 0);
  if (req.headers['x-user'] === undefined) {
    socket.write('HTTP/1.1 401 Unauthorized\r\n\r\n');
    socket.destroy();
  }
  void h;
  void addr;
});
server.on('connect', (req, socket: import('node:stream').Duplex, head) => {
  socket.end(head);
  void req.url;
});

// without new, and subclassed
const s2: Server = Server((req, res) => res.end());
attachHttp(s2);
class MyServer extends Server {
  extra = 1;
}
attachHttp(new MyServer());

// node/README.md, "Native API"
const app = new App({ maxBodySize: 1 << 20 });
app.get('/users/:id', (req, res) => res.json({ id: req.params.id, q: req.query }));
app.post('/echo', async (req, res) => res.end(await req.body()));
app.fixed('/health', 'ok', { 'Content-Type': 'text/plain' }); // answered in C
app.static('/static', './public'); // answered in C
app.listen(3000, '127.0.0.1', (err, port) => {
  void err;
  void port;
});
