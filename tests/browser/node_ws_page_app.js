'use strict';
// The native App for tests/browser/test_ws_chromium.py: the page's folder
// under /page (app.static), the WebSocket echo at /ws-echo (app.ws).
//   node node_ws_page_app.js --bind HOST:PORT --page DIR [--<option> V]
// Other --<option> pairs go to new App(options) (wsDeflate 1: accept
// permessage-deflate). Prints "node_ws_page_app.js: listening on
// http://HOST:PORT" on stderr; SIGTERM closes it.
const path = require('node:path');
const { piston, parseArgs } = require(path.join(__dirname, '..', 'reliability', 'node_common'));

const { host, port, options } = parseArgs();
const { page } = options;
delete options.page;

const app = new piston.App(options);
app.static('/page', page);
app.ws('/ws-echo', {
  message(ws, data, isBinary) {
    ws.send(data, isBinary);
  },
});
app.listen(port, host, (err, p) => {
  if (err) throw err;
  process.stderr.write(`node_ws_page_app.js: listening on http://${host}:${p}\n`);
});
process.on('SIGTERM', () => app.close());
