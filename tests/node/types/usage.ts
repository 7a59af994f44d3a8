// Type-checked by tests/node/types.test.js (tsc --noEmit): piston's Server
// where an http.Server is expected (ws, socket.io, supertest, ...), and the
// examples of node/README.md.
import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as piston from 'piston';
import { App, createServer, Server, SHARED_COMPRESSOR } from 'piston';

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
  // node:http's usual listener: answer on the socket, if it can be written
  if ('rawPacket' in err && err.rawPacket !== undefined) void err.rawPacket.length;
  if ('write' in socket && socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
  else socket.destroy();
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
// node/README.md, "WebSocket routes": pub/sub, pings, close reasons
app.ws<{ room: string }>('/chat', {
  compression: SHARED_COMPRESSOR,
  open(ws) {
    const joined: boolean = ws.subscribe(ws.getUserData().room);
    const topics: string[] = ws.getTopics();
    void joined;
    void topics;
  },
  message(ws, data, isBinary) {
    const reached: boolean = ws.publish(ws.getUserData().room, data, isBinary);
    const left: boolean = ws.unsubscribe('lobby');
    const queued: number = ws.getBufferedAmount();
    const rc: 0 | 1 | 2 = ws.ping(new Uint8Array([1]));
    void [reached, left, queued, rc, ws.isSubscribed('lobby')];
  },
  ping(ws, message: ArrayBuffer) {
    void message;
  },
  pong(ws, message: ArrayBuffer) {
    ws.close();
    void message;
  },
  close(ws, code, message: ArrayBuffer) {
    void [code, message];
  },
});
const everyone: boolean = app.publish('chat', 'hi');
const count: number = app.numSubscribers('chat');
void [everyone, count];
app.listen(3000, '127.0.0.1', (err, port) => {
  void err;
  void port;
});

// TLS: node:https's options, the TLSSocket face, the https stand-in, App({ tls })
const secure = piston.createServer({ key: 'PEM', cert: Buffer.from('PEM'), ca: ['PEM'], requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (req, res) => {
  const sock = req.socket as tls.TLSSocket; // as with node:https
  const cn = sock.getPeerCertificate().subject.CN;
  const own: piston.TlsInfo = req.socket as unknown as piston.PistonTLSSocket;
  void own;
  const why = sock.authorizationError;
  res.end(`${cn} ${why} ${sock.getProtocol()} ${sock.alpnProtocol} ${req.httpVersion}`);
});
secure.setSecureContext({ key: 'PEM', cert: 'PEM' });
const viaHttps: http.Server = piston.https.createServer({ key: 'k', cert: 'c' }, () => {});
void viaHttps;
piston.https.get('https://example.com/', () => {});
const tlsApp = new App({ tls: { key_file_name: 'key.pem', cert_file_name: 'cert.pem' } });
tlsApp.get('/', (req, res) => res.json({ v: req.httpVersion, authorized: req.tls?.authorized }));
tlsApp.setSecureContext({ key: 'PEM', cert: 'PEM' });
