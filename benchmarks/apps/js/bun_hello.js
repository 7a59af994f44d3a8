// Bun.serve hello world for benchmarks/run_hosts.sh.
//   bun bun_hello.js PORT
const port = Number(process.argv[2]);
Bun.serve({
  hostname: '127.0.0.1',
  port,
  fetch() {
    return new Response('Hello, World!', { headers: { 'Content-Type': 'text/plain' } });
  },
});
console.log(`bun listening on ${port}`);
