'use strict';
// TLS for both faces (http.js, app.js). The TLS itself is the engine's
// (csrc/tls.c, tlsctx.c); this file maps node:https's options onto the
// engine's settings (piston.h's TLS section) and builds node's objects
// (tls.TLSSocket's properties and methods) from what a connection's
// handshake negotiated (piston_req_tls).

const tls = require('node:tls');
const { X509Certificate, randomBytes } = require('node:crypto');
const { native } = require('./binding');

const kSecure = Symbol('piston.https'); // createServer options: TLS even without key/cert

function optionError(message, code = 'ERR_PISTON_TLS_OPTION') {
  const err = new Error(`piston: ${message}`);
  err.code = code;
  return err;
}

// node's options that need what the engine does not have: a clear refusal
// rather than a server that silently does something else
const REFUSED = {
  pfx: 'pfx (PKCS#12) is not supported: the engine reads PEM. Convert it once (openssl pkcs12 -in server.pfx -nodes -out server.pem) and pass the key and certificate as key and cert',
  passphrase: 'the engine reads no passphrase-protected keys: decrypt the key once (openssl pkey -in key.pem -out key-plain.pem) and pass that as key',
  SNICallback: 'SNICallback is not supported: give every certificate in key/cert (arrays of the same length); the engine chooses by the name the client asks for against each certificate\'s subject alternative names',
  ALPNCallback: 'ALPNCallback is not supported: list the protocols in ALPNProtocols (the engine chooses the first the client also offers)',
  secureContext: 'secureContext is not supported: pass key, cert, ca, ciphers and minVersion themselves',
  secureProtocol: 'secureProtocol is not supported: use minVersion (TLSv1.2 or TLSv1.3)',
  crl: 'crl is not supported: the engine does not check revocation lists',
  privateKeyEngine: 'privateKeyEngine is not supported: pass the key as PEM',
  clientCertEngine: 'clientCertEngine is not supported',
};

function list(v) {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

// A PEM option as node takes it: a string, a Buffer (or typed array), or
// for keys {pem, passphrase}.
function pem(v, name) {
  if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v)) {
    if (v.passphrase) throw optionError(REFUSED.passphrase);
    v = v.pem;
  }
  if (typeof v === 'string') return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  const err = new TypeError(`piston: ${name} must be PEM text (a string or a Buffer)`);
  err.code = 'ERR_INVALID_ARG_TYPE';
  throw err;
}

function version(v, name) {
  if (v === 'TLSv1.2') return '1.2';
  if (v === 'TLSv1.3') return '1.3';
  throw optionError(`${name} "${v}": the engine speaks TLS 1.2 and 1.3 only; say TLSv1.2 or TLSv1.3`);
}

function ticketKeys(v) {
  if (!ArrayBuffer.isView(v) || v.byteLength !== 48) {
    const err = new TypeError('piston: ticketKeys must be a Buffer of 48 bytes (crypto.randomBytes(48))');
    err.code = 'ERR_INVALID_ARG_TYPE';
    throw err;
  }
  return Buffer.from(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
}

// server.getTicketKeys() / setTicketKeys(keys), node:tls's: the 48 bytes
// the ticket keys derive from; set before listen() (the engine fixes its
// TLS settings when it starts).
function getTicketKeys(owner) {
  if (!owner._tls) throw optionError('getTicketKeys on a server without TLS: give key and cert to createServer');
  return Buffer.from(owner._tls.ticketKeys);
}

function setTicketKeys(owner, keys) {
  if (!owner._tls) throw optionError('setTicketKeys on a server without TLS: give key and cert to createServer');
  const k = ticketKeys(keys);
  if (owner._h) throw optionError('setTicketKeys after listen(): give ticketKeys to createServer, or call setTicketKeys before listen()');
  owner._tls.ticketKeys = k;
  owner._tls.settings = owner._tls.settings.filter(([opt]) => opt !== native.TLS_TICKET_SECRET);
  owner._tls.settings.push([native.TLS_TICKET_SECRET, k.toString('hex')]);
}

// ALPNProtocols: an array of strings or Buffers, or node's wire format (one
// Buffer of length-prefixed names) -> the engine's comma-separated list
function alpnList(v) {
  let names;
  if (Array.isArray(v)) names = v.map((x) => (typeof x === 'string' ? x : Buffer.from(x).toString('latin1')));
  else if (ArrayBuffer.isView(v)) {
    const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    names = [];
    for (let i = 0; i < b.length; i += 1 + b[i]) names.push(b.toString('latin1', i + 1, i + 1 + b[i]));
  } else throw optionError('ALPNProtocols must be an array of protocol names');
  if (names.some((n) => n === '' || n.includes(','))) throw optionError(`ALPNProtocols ${JSON.stringify(names)}: names must be non-empty and without commas`);
  return names.join(',');
}

// node:https's (and tls.createServer's) options -> the engine's TLS
// configuration, or null when they ask for no TLS: { raw, requestCert,
// certs: [{cert, key}] (PEM), files: [{cert, key, ocsp}] (paths), settings:
// [[TLS_<option>, value]] }. Throws what to fix.
function fromOptions(o, files) {
  if (o === undefined || o === null) return null;
  const secure = o[kSecure] === true || o.key !== undefined || o.cert !== undefined || o.pfx !== undefined || (files !== undefined && files.length > 0);
  if (!secure) return null;
  for (const k of Object.keys(REFUSED)) if (o[k] !== undefined && o[k] !== null && o[k] !== '') throw optionError(REFUSED[k]);
  const keys = list(o.key);
  const certs = list(o.cert);
  if (keys.length !== certs.length) throw optionError(`key and cert must come in pairs: ${keys.length} key(s), ${certs.length} certificate(s); the i-th key goes with the i-th certificate chain`);
  const cfg = { raw: o, requestCert: o.requestCert === true, certs: [], files: files || [], settings: [] };
  for (let i = 0; i < keys.length; i++) cfg.certs.push({ cert: pem(certs[i], 'cert'), key: pem(keys[i], 'key') });
  const set = (opt, value) => cfg.settings.push([opt, value]);
  const ca = list(o.ca).map((c) => pem(c, 'ca').toString('latin1'));
  if (cfg.requestCert) {
    // node: rejectUnauthorized (default true) refuses clients without a
    // certificate that verifies; false takes any, reporting the verdict
    set(native.TLS_VERIFY_CLIENT, o.rejectUnauthorized === false ? 'optional_no_ca' : 'required');
    // without ca, node verifies against its own root store
    if (ca.length === 0 && o.caFile === undefined) ca.push(...tls.rootCertificates);
  }
  if (ca.length) set(native.TLS_CA_PEM, ca.join('\n'));
  if (o.caFile !== undefined) set(native.TLS_CA_FILE, String(o.caFile));
  let minVersion = o.minVersion === undefined ? undefined : version(o.minVersion, 'minVersion');
  let maxVersion = o.maxVersion === undefined ? undefined : version(o.maxVersion, 'maxVersion');
  if (o.ciphers !== undefined) {
    // node's split: TLS_* names are TLS 1.3 suites, the rest the TLS 1.2
    // list. No TLS 1.2 cipher turns TLS 1.2 off, no TLS 1.3 suite turns
    // TLS 1.3 off, as in node
    const parts = String(o.ciphers).split(':').filter((s) => s !== '');
    const v13 = parts.filter((s) => s.startsWith('TLS_'));
    const v12 = parts.filter((s) => !s.startsWith('TLS_'));
    if (v13.length) set(native.TLS_CIPHERSUITES, v13.join(':'));
    else if (v12.length) maxVersion = '1.2';
    if (v12.length) set(native.TLS_CIPHERS, v12.join(':'));
    else minVersion = '1.3';
  }
  if (minVersion === '1.3' && maxVersion === '1.2') throw optionError('minVersion TLSv1.3 is above maxVersion TLSv1.2 (or ciphers that leave only one of them)');
  if (minVersion !== undefined) set(native.TLS_MIN_VERSION, minVersion);
  if (maxVersion !== undefined) set(native.TLS_MAX_VERSION, maxVersion);
  // Session tickets: keys derived from 48 bytes as node's ticketKeys (the
  // engine's shared ticket secret), random unless given, so that servers
  // given the same ticketKeys (cluster workers, several machines) resume
  // each other's sessions, and getTicketKeys() has them to share.
  cfg.ticketKeys = o.ticketKeys === undefined ? randomBytes(48) : ticketKeys(o.ticketKeys);
  set(native.TLS_TICKET_SECRET, cfg.ticketKeys.toString('hex'));
  if (o.ALPNProtocols !== undefined) set(native.TLS_ALPN, alpnList(o.ALPNProtocols));
  return cfg;
}

// The native App's `tls` option: node:https's names, plus uWebSockets.js's
// SSLApp file names (key_file_name, cert_file_name, ca_file_name), which
// the engine reads itself (and reads again on a reload).
function fromAppOptions(t) {
  if (t === undefined || t === null || t === false) return null;
  if (typeof t !== 'object') throw optionError('the tls option must be an object ({ key, cert, ... })');
  const files = [];
  if (t.key_file_name !== undefined || t.cert_file_name !== undefined) {
    if (!t.key_file_name || !t.cert_file_name) throw optionError('tls: key_file_name and cert_file_name go together');
    files.push({ cert: String(t.cert_file_name), key: String(t.key_file_name) });
  }
  const o = { ...t, [kSecure]: true };
  if (t.ca_file_name !== undefined) o.caFile = String(t.ca_file_name);
  return fromOptions(o, files);
}

// An engine error: code ETLS carries only "see piston_server_tls_error";
// the message becomes what the engine found.
function engineCall(h, fn) {
  try {
    return fn();
  } catch (e) {
    if (e.code === 'ETLS') {
      e.message = `piston: TLS: ${native.tlsError(h)}`;
      e.tlsError = native.tlsError(h);
    }
    throw e;
  }
}

function applyConfig(h, cfg) {
  for (const c of cfg.certs) native.tlsCertPem(h, c.cert, c.key);
  for (const f of cfg.files) native.tlsCert(h, f.cert, f.key, f.ocsp ?? null);
  for (const [opt, v] of cfg.settings) native.tlsSet(h, opt, v);
}

// Before listen(): the configuration on the engine server h (made by
// makeNative, its one listener added), which then speaks TLS.
function apply(h, cfg) {
  // the engine would fail without saying why (it has no TLS state yet)
  if (cfg.certs.length === 0 && cfg.files.length === 0) throw Object.assign(optionError('TLS needs a certificate and its key: give key and cert to createServer, or call setSecureContext({ key, cert }) before listen()'), { code: 'ETLS' });
  engineCall(h, () => {
    applyConfig(h, cfg);
    native.listenerTls(h, 0);
  });
}

// At createServer (as node's createSecureContext throws there): builds the
// configuration on a throwaway engine server, so a bad key or certificate
// is reported now, with what to fix.
function validate(cfg) {
  if (cfg.certs.length === 0 && cfg.files.length === 0) return cfg; // setSecureContext may come before listen()
  const h = native.serverNew(0);
  try {
    engineCall(h, () => {
      applyConfig(h, cfg);
      native.tlsReload(h);
    });
  } finally {
    native.stop(h, 0); // never started: freed at once
  }
  return cfg;
}

// native.start(h) with an ETLS failure's message made useful.
function start(h) {
  return engineCall(h, () => native.start(h));
}

// server.setSecureContext(options): new key/cert pairs for new
// connections (open ones keep theirs). Before listen() the whole
// configuration is replaced; while listening the engine swaps certificates
// (piston_server_tls_replace_pem), so only key and cert may change.
function setSecureContext(owner, options) {
  if (options === null || typeof options !== 'object') {
    const err = new TypeError('piston: setSecureContext(options) needs an options object with key and cert');
    err.code = 'ERR_INVALID_ARG_TYPE';
    throw err;
  }
  const cur = owner._tls;
  if (!cur) throw optionError('setSecureContext on a server without TLS: give key and cert to createServer');
  const merged = { ...cur.raw, ...options, [kSecure]: true };
  if (merged.ticketKeys === undefined) merged.ticketKeys = cur.ticketKeys; // the sessions stay resumable
  const next = validate(fromOptions(merged, cur.files));
  if (owner._h) {
    if (JSON.stringify(next.settings) !== JSON.stringify(cur.settings)) throw optionError('while listening, setSecureContext replaces key and cert only (the other TLS options are fixed at listen())');
    if (next.certs.length !== cur.certs.length) throw optionError(`while listening, setSecureContext replaces the ${cur.certs.length} key/cert pair(s) given at listen(), no more, no fewer`);
    engineCall(owner._h, () => next.certs.forEach((c, i) => native.tlsReplacePem(owner._h, i, c.cert, c.key)));
  }
  owner._tls = next;
}

// ---- what a connection negotiated, as node's TLSSocket says it -------------

// node's authorizationError codes for OpenSSL's verify messages (the engine
// reports X509_verify_cert_error_string's text; node the X509_V_ERR name)
const VERIFY_CODES = {
  'unable to get issuer certificate': 'UNABLE_TO_GET_ISSUER_CERT',
  'unable to get certificate CRL': 'UNABLE_TO_GET_CRL',
  "unable to decrypt certificate's signature": 'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'unable to decode issuer public key': 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'certificate signature failure': 'CERT_SIGNATURE_FAILURE',
  'certificate is not yet valid': 'CERT_NOT_YET_VALID',
  'certificate has expired': 'CERT_HAS_EXPIRED',
  "format error in certificate's notBefore field": 'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  "format error in certificate's notAfter field": 'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'self-signed certificate': 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'self-signed certificate in certificate chain': 'SELF_SIGNED_CERT_IN_CHAIN',
  'unable to get local issuer certificate': 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'unable to verify the first certificate': 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'certificate chain too long': 'CERT_CHAIN_TOO_LONG',
  'certificate revoked': 'CERT_REVOKED',
  'invalid CA certificate': 'INVALID_CA',
  'path length constraint exceeded': 'PATH_LENGTH_EXCEEDED',
  'unsupported certificate purpose': 'INVALID_PURPOSE',
  'certificate not trusted': 'CERT_UNTRUSTED',
  'certificate rejected': 'CERT_REJECTED',
};

// node's standardName (IANA) for OpenSSL's names of the ECDHE AEAD suites
// (the engine's TLS 1.2 defaults); TLS 1.3 names are the IANA ones
function standardName(name) {
  if (name.startsWith('TLS_')) return name;
  const m = /^(ECDHE|DHE)-(RSA|ECDSA)-(?:AES(128|256)-GCM-(SHA256|SHA384)|(CHACHA20-POLY1305))$/.exec(name);
  if (!m) return undefined;
  const kx = m[1] === 'ECDHE' ? `ECDHE_${m[2]}` : `DHE_${m[2]}`;
  return m[5] ? `TLS_${kx}_WITH_CHACHA20_POLY1305_SHA256` : `TLS_${kx}_WITH_AES_${m[3]}_GCM_${m[4]}`;
}

const EMPTY_INFO = [];

// The TLSSocket face of a connection, from tlsInfo(slot) (one array,
// read once per connection). requestCert: the server asked for client
// certificates (node reports authorized/authorizationError only then).
class TlsState {
  constructor(info, requestCert) {
    this._tlsInfo = Array.isArray(info) ? info : EMPTY_INFO;
    this._peerX509 = undefined;
    const t = this._tlsInfo;
    this.encrypted = (t[native.TLSI_VERSION] || '') !== '';
    this.authorized = false;
    this.authorizationError = null;
    if (this.encrypted && requestCert) {
      const v = t[native.TLSI_VERIFY];
      if (v === 'SUCCESS') this.authorized = true;
      else if (v === 'NONE') this.authorizationError = 'UNABLE_TO_GET_ISSUER_CERT'; // node's word for no certificate
      else {
        const reason = v.startsWith('FAILED:') ? v.slice(7) : v;
        this.authorizationError = VERIFY_CODES[reason] || reason;
      }
    }
    this.alpnProtocol = t[native.TLSI_ALPN] || false;
    this.servername = t[native.TLSI_SNI] || false;
  }
  getProtocol() {
    return this.encrypted ? this._tlsInfo[native.TLSI_VERSION] : null;
  }
  getCipher() {
    if (!this.encrypted) return undefined;
    const name = this._tlsInfo[native.TLSI_CIPHER];
    const std = standardName(name);
    // node's version is the suite's minimum protocol; for the AEAD suites
    // the engine allows that is the protocol in use
    return { name, standardName: std, version: this.getProtocol() };
  }
  getPeerX509Certificate() {
    if (this._peerX509 === undefined) {
      const der = this._tlsInfo[native.TLSI_PEER_CERT];
      this._peerX509 = der && der.length ? new X509Certificate(der) : null;
    }
    return this._peerX509 || undefined;
  }
  getX509Certificate() {
    const der = this._tlsInfo[native.TLSI_LOCAL_CERT];
    return der && der.length ? new X509Certificate(der) : undefined;
  }
  // node's legacy certificate object ({} when the client sent none; null
  // once the connection is closed); `detailed` cannot add the issuer chain
  // (the engine keeps the client's leaf certificate only)
  getPeerCertificate(detailed) {
    if (this.destroyed) return null;
    const x = this.getPeerX509Certificate();
    return x ? x.toLegacyObject() : {};
  }
  getCertificate() {
    const x = this.getX509Certificate();
    return x ? x.toLegacyObject() : null;
  }
  getEphemeralKeyInfo() {
    return null; // node's answer on a server socket
  }
  getSession() {
    return undefined;
  }
  getTLSTicket() {
    return undefined;
  }
  isSessionReused() {
    return false; // not reported by the engine
  }
  setMaxSendFragment() {
    return false;
  }
}

// http.js's socket stand-in with TlsState's face, for TLS servers' connections
function socketClass(Base) {
  class PistonTLSSocket extends Base {
    constructor(server, connId, ex) {
      super(server, connId, ex);
      const st = new TlsState(native.tlsInfo(ex.slot), server._tls.requestCert);
      Object.assign(this, st);
    }
  }
  for (const k of Object.getOwnPropertyNames(TlsState.prototype)) {
    if (k !== 'constructor') PistonTLSSocket.prototype[k] = TlsState.prototype[k];
  }
  return PistonTLSSocket;
}

module.exports = { kSecure, fromOptions, fromAppOptions, validate, apply, start, setSecureContext, getTicketKeys, setTicketKeys, socketClass, TlsState };
