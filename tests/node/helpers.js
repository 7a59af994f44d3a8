'use strict';
// Shared helpers for the Node binding's tests: raw sockets (exact bytes),
// a tiny HTTP/1.1 response reader, and starting servers on 127.0.0.1.

const net = require('node:net');

function listen(server, ...args) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(...(args.length ? args : [0, '127.0.0.1']), () => {
      server.removeListener('error', reject);
      resolve(server.address());
    });
  });
}

function close(server) {
  return new Promise((resolve) => {
    if (server.closeAllConnections) server.closeAllConnections();
    server.close(() => resolve());
  });
}

function connect(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

// Sends bytes, resolves with everything received until the server closes
// the connection (or `ms` passes, then resolves with what came).
function raw(port, bytes, ms = 2000) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks = [];
    const t = setTimeout(() => {
      s.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, ms);
    s.on('data', (d) => chunks.push(d));
    s.on('error', (e) => {
      clearTimeout(t);
      if (e.code === 'ECONNRESET') resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(e);
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    s.write(bytes);
  });
}

// Parses concatenated HTTP/1.1 responses (Content-Length or chunked).
function parseResponses(text, { head = false } = {}) {
  const out = [];
  let i = 0;
  while (i < text.length) {
    const end = text.indexOf('\r\n\r\n', i);
    if (end < 0) break;
    const lines = text.slice(i, end).split('\r\n');
    const [, status] = lines[0].split(' ');
    const headers = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
    }
    i = end + 4;
    let body = '';
    if (head || status === '204' || status === '304') {
      // no body
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      body = text.slice(i, i + n);
      i += n;
    } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
      for (;;) {
        const le = text.indexOf('\r\n', i);
        const n = parseInt(text.slice(i, le), 16);
        i = le + 2;
        if (n === 0) {
          i = text.indexOf('\r\n', i) + 2;
          break;
        }
        body += text.slice(i, i + n);
        i += n + 2;
      }
    } else {
      body = text.slice(i);
      i = text.length;
    }
    out.push({ status: Number(status), headers, body, statusLine: lines[0] });
  }
  return out;
}

// One request on a fresh connection; resolves {status, headers, body}.
async function request(port, method, path, { headers = {}, body } = {}) {
  let h = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n`;
  for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
  if (body !== undefined) h += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  const text = await raw(port, h + '\r\n' + (body ?? ''), 5000);
  const [r] = parseResponses(text, { head: method === 'HEAD' });
  return r;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { listen, close, connect, raw, parseResponses, request, sleep };
