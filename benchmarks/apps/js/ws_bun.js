// Bun.serve with the same WebSocket routes as ws_native.js, for
// benchmarks/ws_run.sh.
//   bun ws_bun.js PORT
//   WS /ws      echo: every message back as it came
//   WS /pubsub  "sub T" -> ws.subscribe(T), answered "subscribed T";
//               "pub T MSG" -> server.publish(T, MSG), answered "published"
const port = Number(process.argv[2]);
const server = Bun.serve({
  hostname: '127.0.0.1',
  port,
  fetch(req, srv) {
    const { pathname } = new URL(req.url);
    if ((pathname === '/ws' || pathname === '/pubsub') && srv.upgrade(req, { data: { pathname } })) return;
    return new Response('ok');
  },
  websocket: {
    message(ws, msg) {
      if (ws.data.pathname === '/ws') {
        ws.send(msg);
        return;
      }
      const s = typeof msg === 'string' ? msg : Buffer.from(msg).toString('latin1');
      const sp = s.indexOf(' ');
      const cmd = s.slice(0, sp);
      if (cmd === 'sub') {
        ws.subscribe(s.slice(sp + 1));
        ws.send(`subscribed ${s.slice(sp + 1)}`);
      } else if (cmd === 'pub') {
        const sp2 = s.indexOf(' ', sp + 1);
        server.publish(s.slice(sp + 1, sp2), s.slice(sp2 + 1));
        ws.send('published');
      }
    },
  },
});
console.log(`bun listening on ${port}`);
