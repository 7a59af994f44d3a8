'use strict';
// TLS and HTTP/2 in the Node host: createServer with node:https's options,
// the TLSSocket face of req.socket, setSecureContext, the native App over
// TLS, with real clients (node's https and http2, fetch in a child process,
// curl) and certificates made by the openssl command (pki.js).

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const { X509Certificate } = require('node:crypto');
const https = require('node:https');
const tls = require('node:tls');
const http2 = require('node:http2');
const express = require('express');
const piston = require('../..');
const { App } = piston;
const { listen, close, raw } = require('./helpers');
const { PKI } = require('./pki');

let pki;
before(() => {
  pki = new PKI();
});
after(() => pki.remove());

// What the handlers below answer: the TLS facts of req.socket.
function facts(req) {
  const s = req.socket;
  const peer = s.getPeerCertificate();
  return {
    httpVersion: req.httpVersion,
    major: req.httpVersionMajor,
    encrypted: s.encrypted,
    sameConnection: req.connection === s,
    protocol: s.getProtocol(),
    cipher: s.getCipher(),
    alpn: s.alpnProtocol,
    servername: s.servername,
    authorized: s.authorized,
    authorizationError: s.authorizationError,
    peerCN: peer.subject ? peer.subject.CN : null,
    peerIssuerCN: peer.issuer ? peer.issuer.CN : null,
    peerSerial: peer.serialNumber,
    peerFingerprint256: peer.fingerprint256,
    peerRaw: peer.raw ? peer.raw.toString('base64') : null,
    localCN: s.getCertificate().subject.CN,
  };
}
const factsHandler = (req, res) => {
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(facts(req)));
};

// An https request with node's client: { status, headers, body, socket
// facts of the client's side }.
function get(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/', ca: pki.ca, ...opts }, (res) => {
      const serverCN = res.socket.getPeerCertificate().subject?.CN; // before a keep-alive agent takes the socket back
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body,
          json: res.headers['content-type'] === 'application/json' ? JSON.parse(body) : undefined,
          serverCN,
          reused: req.reusedSocket,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function run(cmd, args, env) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 20000 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr }));
      else resolve(stdout);
    });
  });
}

const serverOpts = () => ({ key: pki.server.key, cert: pki.server.cert });

describe('createServer over TLS', () => {
  test('createServer({key, cert}) serves https to node, fetch and curl', async (t) => {
    const server = piston.createServer(serverOpts(), factsHandler);
    const { port } = await listen(server);
    t.after(() => close(server));

    const r = await get(port, { servername: 'localhost' });
    assert.equal(r.status, 200);
    assert.equal(r.serverCN, 'localhost');
    const f = r.json;
    assert.equal(f.encrypted, true);
    assert.equal(f.sameConnection, true);
    assert.equal(f.httpVersion, '1.1');
    assert.equal(f.protocol, 'TLSv1.3');
    assert.deepEqual(f.cipher, { name: 'TLS_AES_256_GCM_SHA384', standardName: 'TLS_AES_256_GCM_SHA384', version: 'TLSv1.3' });
    assert.equal(f.alpn, false); // node's https client offers no ALPN
    assert.equal(f.servername, 'localhost');
    // without requestCert node reports no verdict, and no peer certificate
    assert.equal(f.authorized, false);
    assert.equal(f.authorizationError, null);
    assert.equal(f.peerCN, null);
    assert.equal(f.localCN, 'localhost');

    // TLS 1.2, as node names its suites
    const r12 = await get(port, { maxVersion: 'TLSv1.2' });
    assert.equal(r12.json.protocol, 'TLSv1.2');
    assert.equal(r12.json.cipher.name, 'ECDHE-ECDSA-AES128-GCM-SHA256'); // the server's preference
    assert.equal(r12.json.cipher.standardName, 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
    assert.equal(r12.json.servername, false); // no SNI for an IP address

    // fetch (undici) trusts the CA through NODE_EXTRA_CA_CERTS
    const script = `fetch('https://127.0.0.1:${port}/').then((r) => r.json()).then((j) => console.log(JSON.stringify(j)), (e) => { console.error(e); process.exit(1); })`;
    const out = JSON.parse(await run(process.execPath, ['-e', script], { NODE_EXTRA_CA_CERTS: pki.caFile }));
    assert.equal(out.encrypted, true);
    assert.equal(out.httpVersion, '1.1');

    const c = JSON.parse(await run('curl', ['-sS', '--http1.1', '--cacert', pki.caFile, `https://localhost:${port}/`]));
    assert.equal(c.httpVersion, '1.1');
    assert.equal(c.alpn, 'http/1.1');
    assert.equal(c.servername, 'localhost');
  });

  test('piston.https.createServer swaps for node:https, whose client side it keeps', async (t) => {
    const server = piston.https.createServer(serverOpts(), (req, res) => res.end(`secure ${req.socket.encrypted}`));
    assert.equal(piston.https.request, https.request);
    const { port } = await listen(server);
    t.after(() => close(server));
    assert.equal((await get(port)).body, 'secure true');
  });

  test('Express sees req.secure and req.protocol https', async (t) => {
    const app = express();
    app.get('/', (req, res) => res.json({ secure: req.secure, protocol: req.protocol, ip: req.ip }));
    const server = piston.createServer(serverOpts(), app);
    const { port } = await listen(server);
    t.after(() => close(server));
    const r = await get(port);
    assert.deepEqual(r.json || JSON.parse(r.body), { secure: true, protocol: 'https', ip: '127.0.0.1' });
    // and a plain server stays http
    const plain = piston.createServer(app);
    const p = await listen(plain);
    t.after(() => close(plain));
    const body = await run('curl', ['-sS', `http://127.0.0.1:${p.port}/`]);
    assert.deepEqual(JSON.parse(body), { secure: false, protocol: 'http', ip: '127.0.0.1' });
  });

  test('plain HTTP sent to the TLS port gets the 400', async (t) => {
    const server = piston.createServer(serverOpts(), factsHandler);
    const { port } = await listen(server);
    t.after(() => close(server));
    const text = await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /The plain HTTP request was sent to HTTPS port/);
  });

  test('several certificates: SNI chooses', async (t) => {
    const other = pki.issue('other.test', { san: 'DNS:other.test' });
    const server = piston.createServer({ key: [pki.server.key, other.key], cert: [pki.server.cert, other.cert] }, factsHandler);
    const { port } = await listen(server);
    t.after(() => close(server));
    const a = await get(port, { servername: 'other.test' });
    assert.equal(a.serverCN, 'other.test');
    assert.equal(a.json.localCN, 'other.test');
    assert.equal(a.json.servername, 'other.test');
    const b = await get(port, { servername: 'localhost' });
    assert.equal(b.serverCN, 'localhost');
  });

  test('minVersion and ciphers as node splits them', async (t) => {
    const server = piston.createServer({ ...serverOpts(), minVersion: 'TLSv1.3' }, factsHandler);
    const { port } = await listen(server);
    t.after(() => close(server));
    await assert.rejects(get(port, { maxVersion: 'TLSv1.2' }), /alert|protocol version|socket hang up|ECONNRESET/i);
    assert.equal((await get(port)).json.protocol, 'TLSv1.3');

    // node's split of ciphers: TLS_* suites are TLS 1.3's, the rest TLS 1.2's
    const s12 = piston.createServer({ ...serverOpts(), ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305:TLS_CHACHA20_POLY1305_SHA256' }, factsHandler);
    const p12 = await listen(s12);
    t.after(() => close(s12));
    const r = await get(p12.port, { maxVersion: 'TLSv1.2' });
    assert.equal(r.json.protocol, 'TLSv1.2');
    assert.deepEqual(r.json.cipher, { name: 'ECDHE-ECDSA-CHACHA20-POLY1305', standardName: 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', version: 'TLSv1.2' });
    assert.equal((await get(p12.port)).json.cipher.name, 'TLS_CHACHA20_POLY1305_SHA256');
    // TLS 1.3 suites only: TLS 1.2 is off, as in node
    const s13 = piston.createServer({ ...serverOpts(), ciphers: 'TLS_AES_128_GCM_SHA256' }, factsHandler);
    const p13 = await listen(s13);
    t.after(() => close(s13));
    await assert.rejects(get(p13.port, { maxVersion: 'TLSv1.2' }), /alert|protocol version|ECONNRESET/i);
    assert.equal((await get(p13.port)).json.cipher.name, 'TLS_AES_128_GCM_SHA256');
    // TLS 1.2 ciphers only: TLS 1.3 is off, as in node (since 18.5)
    const only12 = piston.createServer({ ...serverOpts(), ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' }, factsHandler);
    const p12only = await listen(only12);
    t.after(() => close(only12));
    assert.equal((await get(p12only.port)).json.protocol, 'TLSv1.2');
  });

  test('maxVersion', async (t) => {
    const server = piston.createServer({ ...serverOpts(), maxVersion: 'TLSv1.2' }, factsHandler);
    const { port } = await listen(server);
    t.after(() => close(server));
    assert.equal((await get(port)).json.protocol, 'TLSv1.2');
    await assert.rejects(get(port, { minVersion: 'TLSv1.3' }), /alert|protocol version|socket hang up|ECONNRESET/i);
    assert.throws(() => piston.createServer({ ...serverOpts(), maxVersion: 'TLSv1.1' }), /say TLSv1.2 or TLSv1.3/);
    assert.throws(() => piston.createServer({ ...serverOpts(), minVersion: 'TLSv1.3', maxVersion: 'TLSv1.2' }), /above maxVersion/);
  });

  test('ticketKeys: servers given the same keys resume each other\'s sessions', async (t) => {
    const keys = require('node:crypto').randomBytes(48);
    const servers = [{ ticketKeys: keys }, {}, {}].map((o) => piston.createServer({ ...serverOpts(), ...o }, factsHandler));
    servers[1].setTicketKeys(keys);
    assert.deepEqual(servers[0].getTicketKeys(), keys);
    assert.deepEqual(servers[1].getTicketKeys(), keys);
    assert.equal(servers[2].getTicketKeys().length, 48);
    assert.notDeepEqual(servers[2].getTicketKeys(), keys);
    const ports = [];
    for (const s of servers) {
      ports.push((await listen(s)).port);
      t.after(() => close(s));
    }
    assert.throws(() => servers[0].setTicketKeys(keys), /before listen/);
    assert.throws(() => piston.createServer({ ...serverOpts(), ticketKeys: Buffer.alloc(16) }), /48 bytes/);
    // one TLS connection and its session, then a new connection offering it
    const connect = (port, session) => new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: pki.ca, servername: 'localhost', session, maxVersion: 'TLSv1.2' }, () => {
        s.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      });
      s.on('data', () => {});
      s.on('end', () => resolve({ reused: s.isSessionReused(), session: s.getSession() }));
      s.on('error', reject);
    });
    const first = await connect(ports[0]);
    assert.equal(first.reused, false);
    assert.equal((await connect(ports[1], first.session)).reused, true);
    assert.equal((await connect(ports[0], first.session)).reused, true);
    assert.equal((await connect(ports[2], first.session)).reused, false);
  });
});

describe('client certificates', () => {
  test('requestCert: refused without one, authorized with one', async (t) => {
    const server = piston.createServer({ ...serverOpts(), ca: pki.ca, requestCert: true }, factsHandler);
    const { port } = await listen(server);
    t.after(() => close(server));
    await assert.rejects(get(port), (e) => /certificate required|alert|ECONNRESET|socket hang up/i.test(`${e.code} ${e.message}`));
    // a certificate no CA signed is refused too
    await assert.rejects(get(port, { key: pki.stranger.key, cert: pki.stranger.cert }), (e) => /alert|ECONNRESET|socket hang up/i.test(`${e.code} ${e.message}`));

    const r = await get(port, { key: pki.client.key, cert: pki.client.cert });
    assert.equal(r.status, 200);
    const f = r.json;
    assert.equal(f.authorized, true);
    assert.equal(f.authorizationError, null);
    assert.equal(f.peerCN, 'client one');
    assert.equal(f.peerIssuerCN, 'Piston Test CA');
    const x = new X509Certificate(pki.client.cert);
    assert.equal(f.peerSerial, x.serialNumber);
    assert.equal(f.peerFingerprint256, x.fingerprint256);
    assert.equal(f.peerRaw, x.raw.toString('base64'));
  });

  test('rejectUnauthorized false: any certificate, with the verdict', async (t) => {
    const server = piston.createServer({ ...serverOpts(), ca: pki.ca, requestCert: true, rejectUnauthorized: false }, factsHandler);
    const { port } = await listen(server);
    t.after(() => close(server));
    const s = (await get(port, { key: pki.stranger.key, cert: pki.stranger.cert })).json;
    assert.equal(s.authorized, false);
    assert.equal(s.authorizationError, 'DEPTH_ZERO_SELF_SIGNED_CERT');
    assert.equal(s.peerCN, 'stranger');
    const none = (await get(port)).json;
    assert.equal(none.authorized, false);
    assert.equal(none.authorizationError, 'UNABLE_TO_GET_ISSUER_CERT'); // node's word for none
    assert.equal(none.peerCN, null);
    const ok = (await get(port, { key: pki.client.key, cert: pki.client.cert })).json;
    assert.equal(ok.authorized, true);
    assert.equal(ok.peerCN, 'client one');
  });

  test('curl with a client certificate', async (t) => {
    const server = piston.createServer({ ...serverOpts(), ca: pki.ca, requestCert: true }, factsHandler);
    const { port } = await listen(server);
    t.after(() => close(server));
    const c = JSON.parse(await run('curl', ['-sS', '--cacert', pki.caFile, '--cert', pki.client.certFile, '--key', pki.client.keyFile, `https://localhost:${port}/`]));
    assert.equal(c.authorized, true);
    assert.equal(c.peerCN, 'client one');
    assert.equal(c.httpVersion, '2.0'); // curl offers h2 by ALPN
  });
});

describe('configuration errors say what to fix', () => {
  test('a key that does not match, a broken certificate, a broken key', () => {
    const other = pki.issue('mismatch', { san: 'DNS:mismatch' });
    assert.throws(() => piston.createServer({ key: other.key, cert: pki.server.cert }), (e) => e.code === 'ETLS' && /does not match the certificate/.test(e.message));
    assert.throws(() => piston.createServer({ key: pki.server.key, cert: 'not a certificate' }), (e) => e.code === 'ETLS' && /no PEM certificate/.test(e.message));
    assert.throws(() => piston.createServer({ key: 'not a key', cert: pki.server.cert }), (e) => e.code === 'ETLS' && /no PEM private key/.test(e.message));
    assert.throws(() => piston.createServer({ key: [pki.server.key], cert: [] }), /key and cert must come in pairs/);
  });

  test('what the engine does not do is refused with what to do instead', () => {
    assert.throws(() => piston.createServer({ pfx: Buffer.from('x') }), /pfx \(PKCS#12\) is not supported.*openssl pkcs12/);
    assert.throws(() => piston.createServer({ ...serverOpts(), passphrase: 'secret' }), /no passphrase-protected keys.*openssl pkey/);
    assert.throws(() => piston.createServer({ key: [{ pem: pki.server.key, passphrase: 'x' }], cert: pki.server.cert }), /no passphrase-protected keys/);
    assert.throws(() => piston.createServer({ ...serverOpts(), SNICallback: () => {} }), /SNICallback is not supported/);
    assert.throws(() => piston.createServer({ ...serverOpts(), minVersion: 'TLSv1' }), /TLS 1\.2 and 1\.3 only/);
    assert.throws(() => piston.createServer({ ...serverOpts(), ciphers: 'NO-SUCH-CIPHER' }), (e) => e.code === 'ETLS' && /no usable cipher/.test(e.message));
  });

  test('https.createServer without a certificate fails at listen with the engine\'s sentence', async () => {
    const server = piston.https.createServer(() => {});
    await assert.rejects(listen(server), (e) => e.code === 'ETLS' && /needs a certificate and its key/.test(e.message));
  });
});

describe('setSecureContext', () => {
  test('new connections get the new certificate, an open one goes on', async (t) => {
    const server = piston.createServer(serverOpts(), factsHandler);
    const { port } = await listen(server);
    t.after(() => close(server));
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const first = await get(port, { agent, servername: 'localhost' });
    assert.equal(first.serverCN, 'localhost');

    const next = pki.issue('localhost renewed', { san: 'DNS:localhost,IP:127.0.0.1' });
    // a bad pair changes nothing
    assert.throws(() => server.setSecureContext({ key: pki.client.key, cert: next.cert }), (e) => e.code === 'ETLS' && /does not match/.test(e.message));
    server.setSecureContext({ key: next.key, cert: next.cert });

    const again = await get(port, { agent, servername: 'localhost' });
    assert.equal(again.reused, true); // the keep-alive connection went on
    assert.equal(again.serverCN, 'localhost'); // with the certificate it began with
    assert.equal(again.json.localCN, 'localhost');
    const fresh = await get(port, { servername: 'localhost', agent: false });
    assert.equal(fresh.serverCN, 'localhost renewed');
    assert.equal(fresh.json.localCN, 'localhost renewed');
    assert.throws(() => server.setSecureContext({ ...serverOpts(), minVersion: 'TLSv1.3' }), /replaces key and cert only/);
  });
});

describe('HTTP/2', () => {
  test('curl --http2 over TLS and node\'s http2 client: httpVersion 2.0', async (t) => {
    const bodies = [];
    const server = piston.createServer(serverOpts(), (req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        bodies.push(body);
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ ...facts(req), major: req.httpVersionMajor, minor: req.httpVersionMinor, host: req.headers.host, method: req.method }));
      });
    });
    const { port } = await listen(server);
    t.after(() => close(server));

    const c = JSON.parse(await run('curl', ['-sS', '--http2', '--cacert', pki.caFile, `https://localhost:${port}/`]));
    assert.equal(c.httpVersion, '2.0');
    assert.equal(c.major, 2);
    assert.equal(c.minor, 0);
    assert.equal(c.alpn, 'h2');
    assert.equal(c.encrypted, true);

    const session = http2.connect(`https://localhost:${port}`, { ca: pki.ca });
    t.after(() => session.close());
    const answer = await new Promise((resolve, reject) => {
      const s = session.request({ ':method': 'POST', ':path': '/up' });
      let data = '';
      s.setEncoding('utf8');
      s.on('data', (d) => (data += d));
      s.on('end', () => resolve(JSON.parse(data)));
      s.on('error', reject);
      s.end('hello h2');
    });
    assert.equal(answer.httpVersion, '2.0');
    assert.equal(answer.method, 'POST');
    assert.equal(answer.alpn, 'h2');
    assert.equal(answer.host, `localhost:${port}`);
    assert.ok(bodies.includes('hello h2'));
  });

  test('h2c with prior knowledge on a plain server, when asked for', async (t) => {
    // h2c is opt-in (the engine's http2 option: 2), as --h2c is elsewhere
    const server = piston.createServer({ http2: 2 }, (req, res) => res.end(`${req.httpVersion} ${req.socket.encrypted}`));
    const { port } = await listen(server);
    t.after(() => close(server));
    const session = http2.connect(`http://127.0.0.1:${port}`);
    t.after(() => session.close());
    const body = await new Promise((resolve, reject) => {
      const s = session.request({ ':path': '/' });
      let data = '';
      s.setEncoding('utf8');
      s.on('data', (d) => (data += d));
      s.on('end', () => resolve(data));
      s.on('error', reject);
    });
    assert.equal(body, '2.0 false');
    assert.equal(await run('curl', ['-sS', `http://127.0.0.1:${port}/`]), '1.1 false');
  });
});

describe('the native App over TLS', () => {
  function start(app) {
    return new Promise((resolve, reject) => app.listen(0, '127.0.0.1', (err, port) => (err ? reject(err) : resolve(port))));
  }
  const tlsFacts = (req, res) => {
    const t = req.tls;
    const peer = t.getPeerCertificate();
    res.json({ httpVersion: req.httpVersion, encrypted: t.encrypted, protocol: t.getProtocol(), alpn: t.alpnProtocol, authorized: t.authorized, authorizationError: t.authorizationError, peerCN: peer.subject ? peer.subject.CN : null });
  };

  test('App({ tls: { key, cert, ca, requestCert } }): https, HTTP/2, client certificates, setSecureContext', async (t) => {
    const app = new App({ tls: { ...serverOpts(), ca: pki.ca, requestCert: true, rejectUnauthorized: false } });
    app.get('/', tlsFacts);
    app.fixed('/health', 'ok'); // answered in C, over TLS too
    const port = await start(app);
    t.after(() => new Promise((r) => app.close(r, 0)));

    const r = (await get(port, { key: pki.client.key, cert: pki.client.cert })).json;
    assert.deepEqual(r, { httpVersion: '1.1', encrypted: true, protocol: 'TLSv1.3', alpn: false, authorized: true, authorizationError: null, peerCN: 'client one' });
    const none = (await get(port)).json;
    assert.equal(none.authorizationError, 'UNABLE_TO_GET_ISSUER_CERT');
    assert.equal((await get(port, { path: '/health' })).body, 'ok');

    const c = JSON.parse(await run('curl', ['-sS', '--http2', '--cacert', pki.caFile, `https://localhost:${port}/`]));
    assert.equal(c.httpVersion, '2.0');
    assert.equal(c.alpn, 'h2');

    const next = pki.issue('app renewed', { san: 'DNS:localhost,IP:127.0.0.1' });
    app.setSecureContext({ key: next.key, cert: next.cert });
    assert.equal((await get(port, { agent: false })).serverCN, 'app renewed');
  });

  test('App({ tls: { key_file_name, cert_file_name } }) as uWebSockets.js\'s SSLApp; a plain App has no req.tls', async (t) => {
    const app = new App({ tls: { key_file_name: pki.server.keyFile, cert_file_name: pki.server.certFile } });
    app.get('/', (req, res) => res.end(`${req.tls.encrypted} ${req.tls.getProtocol()}`));
    const port = await start(app);
    t.after(() => new Promise((r) => app.close(r, 0)));
    assert.equal((await get(port)).body, 'true TLSv1.3');

    assert.throws(() => new App({ tls: { key_file_name: pki.client.keyFile, cert_file_name: pki.server.certFile } }), (e) => e.code === 'ETLS' && /does not match/.test(e.message));

    const plain = new App();
    plain.get('/', (req, res) => res.end(String(req.tls)));
    const p = await start(plain);
    t.after(() => new Promise((r) => plain.close(r, 0)));
    assert.equal(await run('curl', ['-sS', `http://127.0.0.1:${p}/`]), 'undefined');
  });
});
