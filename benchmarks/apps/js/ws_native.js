'use strict';
// Piston's native App with WebSocket routes, for benchmarks/ws_run.sh.
//   node ws_native.js PORT
//   WS /ws      echo: every message back as it came
//   WS /pubsub  the command protocol of the C test server's /ws-pubsub:
//               "sub T" subscribes (answered "subscribed T"), "pub T MSG"
//               publishes MSG to T with app.publish (answered "published")
// /pubsub needs ws.subscribe and app.publish (uWebSockets.js semantics);
// without them it is left out and a line saying so goes to stderr.
const { App } = require('../../..');
const port = Number(process.argv[2]);

const app = new App();
app.ws('/ws', {
  message(ws, data, isBinary) {
    ws.send(data, isBinary);
  },
});
if (typeof app.publish === 'function') {
  app.ws('/pubsub', {
    message(ws, data) {
      const b = Buffer.from(data);
      const sp = b.indexOf(32);
      const cmd = b.toString('latin1', 0, sp);
      if (cmd === 'sub') {
        const topic = b.toString('latin1', sp + 1);
        ws.subscribe(topic);
        ws.send(`subscribed ${topic}`);
      } else if (cmd === 'pub') {
        const sp2 = b.indexOf(32, sp + 1);
        app.publish(b.toString('latin1', sp + 1, sp2), b.subarray(sp2 + 1), false);
        ws.send('published');
      }
    },
  });
} else {
  console.error('ws_native.js: no app.publish in this build: /pubsub left out');
}
app.listen(port, '127.0.0.1', (err) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log(`piston App listening on ${port}`);
});
