'use strict';
// piston: a node:http-compatible server and a lean native API over the
// Piston HTTP/1.1 engine (csrc/), through a Node-API addon (node/addon.c).

const http = require('node:http');
const nodeHttps = require('node:https');
const { createServer, Server, IncomingMessage, ServerResponse } = require('./http');
const { App, DISABLED, SHARED_COMPRESSOR } = require('./app');
const { kSecure } = require('./tls');

// node:https's createServer: TLS always (createServer serves TLS too when
// given key and cert); its certificate may also come by setSecureContext
// before listen()
function createHttpsServer(options, handler) {
  if (typeof options === 'function') {
    handler = options;
    options = {};
  }
  return createServer({ ...options, [kSecure]: true }, handler);
}

// A stand-in for require('node:https'): createServer is Piston's, the client
// side (request, get, Agent) is node's
const https = {
  ...nodeHttps,
  createServer: createHttpsServer,
  Server,
};

module.exports = {
  createServer,
  https,
  Server,
  IncomingMessage,
  ServerResponse,
  App,
  DISABLED,
  SHARED_COMPRESSOR,
  STATUS_CODES: http.STATUS_CODES,
  METHODS: http.METHODS,
};
