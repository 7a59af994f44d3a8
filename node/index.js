'use strict';
// piston: a node:http-compatible server and a lean native API over the
// Piston HTTP/1.1 engine (csrc/), through a Node-API addon (node/addon.c).

const http = require('node:http');
const { createServer, Server, IncomingMessage, ServerResponse } = require('./http');
const { App, DISABLED, SHARED_COMPRESSOR } = require('./app');

module.exports = {
  createServer,
  Server,
  IncomingMessage,
  ServerResponse,
  App,
  DISABLED,
  SHARED_COMPRESSOR,
  STATUS_CODES: http.STATUS_CODES,
  METHODS: http.METHODS,
};
