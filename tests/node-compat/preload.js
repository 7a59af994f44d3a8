'use strict';
// Loaded with --require before one of Node's own test files: node:http's
// createServer and Server become Piston's, so the test's servers run on
// the engine while its clients stay node's. Piston is loaded first, while
// http.Server is still node's (its Server inherits from it).
const http = require('node:http');
// PISTON_MODULE: another checkout of piston to measure (default: this one)
const piston = require(process.env.PISTON_MODULE || '../..');

http.createServer = piston.createServer;
http.Server = piston.Server;
