'use strict';
// Express on Piston's createServer behind a proxy: what Express makes of the
// request (req.ip, req.secure, req.protocol) with the 'trust proxy' setting
// of $TRUST_PROXY (unset: Express's default, off).
const express = require('express');
const { createServer } = require('../..');

const app = express();
const trust = process.env.TRUST_PROXY;
if (trust) app.set('trust proxy', trust === 'true' ? true : trust);
app.get('/whoami', (req, res) => {
  res.json({ ip: req.ip, secure: req.secure, protocol: req.protocol, remote: req.socket.remoteAddress });
});
const srv = createServer({
  trustedProxies: process.env.TRUSTED_PROXIES || '127.0.0.1',
  proxyProtocol: process.env.PROXY_PROTOCOL === '1',
}, app);
srv.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => srv.close(() => process.exit(0)));
