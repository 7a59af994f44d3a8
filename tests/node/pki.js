'use strict';
// Throwaway certificates for the Node TLS tests, made with the openssl
// command as tests/protocol/pki.py makes them: a CA, server and client
// certificates it signs, and a self-signed one no CA knows.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function openssl(...args) {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

class PKI {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'piston-node-pki-'));
    this.caFile = this.path('ca.pem');
    this.caKey = this.path('ca.key');
    openssl('req', '-x509', ...EC, '-days', '2', '-keyout', this.caKey, '-out', this.caFile, '-subj', '/CN=Piston Test CA');
    this.ca = fs.readFileSync(this.caFile);
    this.server = this.issue('localhost', { san: 'DNS:localhost,IP:127.0.0.1' });
    this.client = this.issue('client one', { client: true });
    this.stranger = this.selfSigned('stranger');
  }
  path(name) {
    return path.join(this.dir, name);
  }
  // { cert, key } as Buffers, plus their files (certFile, keyFile)
  issue(cn, { san, client = false } = {}) {
    const stem = cn.replace(/ /g, '_');
    const keyFile = this.path(`${stem}.key`);
    const csr = this.path(`${stem}.csr`);
    const certFile = this.path(`${stem}.pem`);
    const ext = this.path(`${stem}.ext`);
    openssl('req', ...EC, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${cn}`);
    fs.writeFileSync(ext, `subjectAltName=${san || `DNS:${stem}`}\nextendedKeyUsage=${client ? 'clientAuth' : 'serverAuth'}\n`);
    openssl('x509', '-req', '-in', csr, '-CA', this.caFile, '-CAkey', this.caKey, '-CAcreateserial', '-days', '2', '-out', certFile, '-extfile', ext);
    return { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), certFile, keyFile };
  }
  selfSigned(cn) {
    const keyFile = this.path(`${cn}-ss.key`);
    const certFile = this.path(`${cn}-ss.pem`);
    openssl('req', '-x509', ...EC, '-days', '2', '-keyout', keyFile, '-out', certFile, '-subj', `/CN=${cn}`);
    return { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), certFile, keyFile };
  }
  remove() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { PKI };
