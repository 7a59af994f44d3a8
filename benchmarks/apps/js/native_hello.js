'use strict';
// Piston's native App API, hello world answered by a JS handler (not
// app.fixed, which the engine answers in C), for benchmarks/run_hosts.sh.
//   node native_hello.js PORT
const { App } = require('../../..');
const port = Number(process.argv[2]);

const app = new App();
app.get('/hello', (req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end('Hello, World!');
});
app.listen(port, '127.0.0.1', (err) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log(`piston App listening on ${port}`);
});
