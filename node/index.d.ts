// Types for piston: a node:http-compatible server and a lean native API over
// the Piston HTTP/1.1 engine.

import * as http from 'node:http';
import * as nodeHttps from 'node:https';
import { PeerCertificate, DetailedPeerCertificate, CipherNameAndProtocol } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { Duplex, Readable } from 'node:stream';
import { EventEmitter } from 'node:events';

/** Engine limits and timeouts, shared by createServer and App. */
export interface EngineOptions {
  /** Bytes of request line + headers (431 beyond). Default 16 KiB. */
  maxHeadSize?: number;
  /** Bytes of the request target (414 beyond). Default 8 KiB. */
  maxUrlSize?: number;
  /** Header fields per request (431 beyond). Default 100. */
  maxHeaders?: number;
  /** Request body bytes (413 beyond); 0 = no limit. Default 1 GiB. */
  maxBodySize?: number;
  headTimeoutMs?: number;
  bodyTimeoutMs?: number;
  idleTimeoutMs?: number;
  writeTimeoutMs?: number;
  /** Buffered request body before socket reads pause. */
  bodyHighWater?: number;
  /** Queued response bytes before write() returns false. */
  writeHighWater?: number;
  backlog?: number;
  maxConnections?: number;
  /** One line per response on stderr. */
  accessLog?: boolean;
  /**
   * Join a TCP port that other processes of this user listen on (prefork
   * workers); otherwise a port in use fails with EADDRINUSE.
   */
  sharePort?: boolean;
  /**
   * Milliseconds for a handler to start its response (status and headers).
   * Past it the engine answers 503 with Connection: close; the request gets
   * 'aborted' (if its body was incomplete) and 'close', the response 'close',
   * and later writes do nothing. 0 (the default) = no limit.
   */
  handlerTimeout?: number;
  /**
   * Bytes of one received WebSocket message (close 1009 beyond). Default
   * 16 MiB. An app.ws route's maxPayloadLength sets it.
   */
  wsMaxMessage?: number;
  /**
   * Proxies whose X-Forwarded-For/-Proto/-Host/-Port and Forwarded fields
   * (and PROXY protocol headers) the engine believes: IPv4/IPv6 addresses,
   * CIDR blocks ('10.0.0.0/8'), 'unix:' for Unix-socket peers, '*' for all.
   * From them, req.socket.remoteAddress is the client and an https
   * X-Forwarded-Proto makes req.socket.encrypted true (so Express's req.ip
   * and req.secure are the client's, with or without its 'trust proxy').
   * Default: none.
   */
  trustedProxies?: string | string[];
  /** Believe trustedProxies' forwarding fields (default true). */
  proxyHeaders?: boolean;
  /** Connections from trustedProxies open with a PROXY v1/v2 header. */
  proxyProtocol?: boolean;
  /** A path answered in C with Prometheus text (this process's counters). */
  metrics?: string;
  /** A path answered in C: 200 "OK", 503 "draining" once the server stops. */
  health?: string;
  /** Requests with the handlers at once; 503 beyond (uvicorn's --limit-concurrency). */
  limitConcurrency?: number;
  /** The access log's file ('-': stdout; default stderr); turns it on. */
  accessLogFile?: string;
  /** 'common', 'combined' (default), 'json', or gunicorn's atoms ('%(h)s "%(r)s" %(s)s %(D)s'). */
  accessLogFormat?: string;
  /**
   * Bytes the response cache may hold (LRU beyond); 0 (the default) = no
   * cache. A response with a `Piston-Cache: ttl=N[, swr=N][, sie=N]` field
   * (removed before it is sent) is stored and answered by the engine for N
   * seconds without calling the handler.
   */
  cacheSize?: number;
  /** The largest response the cache stores, head and body. Default 1 MiB. */
  cacheMaxEntry?: number;
  /** Store responses with Cache-Control: s-maxage=N too (the CLI's --cache-honour-s-maxage). */
  cacheSMaxage?: boolean;
  /** How long requests wait on another's miss of the same key. Default 5000. */
  cacheWaitMs?: number;
  /** Requests that may wait on one miss. Default 1024. */
  cacheMaxWaiters?: number;
  /** PURGE requests from loopback drop cached responses. */
  cachePurge?: boolean;
  /**
   * GET responses under each path prefix are cacheable for ttl seconds
   * without a Piston-Cache field: { '/api': 5 } or
   * { '/api': { ttl: 5, swr: 30, sie: 60 } }.
   */
  cacheRoutes?: Record<string, number | { ttl: number; swr?: number; sie?: number }>;
}

/** The response cache's counters (piston_cache_stats). */
export interface CacheStats {
  hits: number;
  staleHits: number;
  misses: number;
  coalesced: number;
  stores: number;
  uncacheable: number;
  evictions: number;
  purged: number;
  bytes: number;
  entries: number;
}

/** server.cache and app.cache: the engine's response cache. */
export interface Cache {
  /** Drops the responses stored for target (path and query), or for every
   * target starting with it with { prefix: true }; returns how many. */
  purge(target: string, options?: { prefix?: boolean }): number;
  /** null before listen() and after close(). */
  stats(): CacheStats | null;
}

/** PEM text: a string or a Buffer. */
export type Pem = string | Buffer;

/**
 * node:https's options as the engine takes them. Given key and cert, the
 * server speaks TLS (HTTP/1.1, and HTTP/2 by ALPN h2). pfx, passphrase,
 * SNICallback, ALPNCallback, secureContext, secureProtocol and crl throw
 * with what to do instead; other tls options are ignored.
 */
export interface TlsOptions {
  /**
   * The private key(s), PEM without a passphrase; the i-th goes with the
   * i-th cert. Several: the first is the default, the others are chosen by
   * the name the client asks for (SNI) against their subject alternative names.
   */
  key?: Pem | Pem[] | { pem: Pem }[];
  /** Certificate chain(s), PEM, leaf first. */
  cert?: Pem | Pem[];
  /** CAs that client certificates must chain to (node's root store without it). */
  ca?: Pem | Pem[];
  /** Ask clients for a certificate. Default false. */
  requestCert?: boolean;
  /** With requestCert: refuse clients without a valid one (default true); false takes any and reports it. */
  rejectUnauthorized?: boolean;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /**
   * OpenSSL's syntax; TLS_* names are TLS 1.3 suites, the rest TLS 1.2
   * ciphers (no TLS 1.2 cipher: TLS 1.2 off; no TLS 1.3 suite: TLS 1.3 off).
   */
  ciphers?: string;
  /**
   * 48 bytes the session-ticket keys derive from (random by default):
   * servers given the same resume each other's sessions.
   */
  ticketKeys?: Uint8Array;
  /** Default ['h2', 'http/1.1'] (node's https offers none). */
  ALPNProtocols?: string[] | Uint8Array;
}

export interface ServerOptions extends EngineOptions, TlsOptions {
  keepAliveTimeout?: number;
  headersTimeout?: number;
  requestTimeout?: number;
  maxHeaderSize?: number;
  /** Deadline given to in-flight requests by close(). Default 30000. */
  closeTimeoutMs?: number;
}

export type RequestListener = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/**
 * The socket of an 'upgrade' or 'connect' event (and its req.socket): the
 * connection taken from the engine as a raw byte stream, a stream.Duplex
 * that stands for node's net.Socket (allowHalfOpen). 'close' comes once the
 * engine has closed the connection.
 */
export interface UpgradedSocket extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: 'IPv4' | 'IPv6' | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  readonly readyState: 'open' | 'readOnly' | 'writeOnly' | 'closed';
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly connecting: false;
  timeout: number;
  address(): { address: string | undefined; family: string | undefined; port: number | undefined };
  /** 'timeout' after ms without a read or a write (0: off); nothing else. */
  setTimeout(ms: number, cb?: () => void): this;
  setNoDelay(noDelay?: boolean): this;
  setKeepAlive(enable?: boolean, delay?: number): this;
  destroySoon(): void;
  ref(): this;
  unref(): this;
}

/**
 * `req.socket` / `res.socket`: one object per connection, shared by every
 * request of a keep-alive connection, made at the connection's first request
 * (when 'connection' is emitted). Not a stream: the engine owns the bytes.
 * 'close' is emitted when the connection closes.
 */
export interface PistonSocket extends EventEmitter {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: 'IPv4' | 'IPv6' | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  /** true on a TLS server's connections (see PistonTLSSocket). */
  readonly encrypted: boolean;
  readonly destroyed: boolean;
  readonly readable: boolean;
  readonly writable: boolean;
  address(): { address: string | undefined; family: string; port: number | undefined };
  /**
   * With a request in flight: aborts it and closes the connection. Without
   * one the connection closes at keepAliveTimeout, closeIdleConnections() or
   * close().
   */
  destroy(err?: Error): this;
  end(): this;
  setTimeout(ms: number, cb?: () => void): this;
  setNoDelay(noDelay?: boolean): this;
  setKeepAlive(enable?: boolean, delay?: number): this;
  ref(): this;
  unref(): this;
  on(event: 'close', listener: (hadError: boolean) => void): this;
  on(event: string, listener: (...args: any[]) => void): this;
}

/** What a TLS connection negotiated, with tls.TLSSocket's names. */
export interface TlsInfo {
  readonly encrypted: boolean;
  /** With requestCert: the client's certificate verified. */
  readonly authorized: boolean;
  /** With requestCert: node's code of why not ('UNABLE_TO_GET_ISSUER_CERT' for none), else null. */
  readonly authorizationError: string | null;
  readonly alpnProtocol: string | false;
  readonly servername: string | false;
  getProtocol(): string | null;
  getCipher(): CipherNameAndProtocol;
  /** {} without a client certificate; null once the connection closed; no issuer chain. */
  getPeerCertificate(detailed: true): DetailedPeerCertificate;
  getPeerCertificate(detailed?: boolean): PeerCertificate;
  getCertificate(): PeerCertificate | null;
  getPeerX509Certificate(): X509Certificate | undefined;
  getX509Certificate(): X509Certificate | undefined;
  getEphemeralKeyInfo(): null;
  isSessionReused(): boolean;
}

/** req.socket on a TLS server. */
export interface PistonTLSSocket extends PistonSocket, TlsInfo {
  readonly encrypted: boolean;
}

/** The socket of an 'upgrade' or 'connect' event on a TLS server (wss). */
export interface TlsUpgradedSocket extends UpgradedSocket, TlsInfo {
  readonly encrypted: boolean;
}

/**
 * The error of a 'clientError': a request the engine rejected. When the
 * handler never saw it and it is not a timeout, the socket is the
 * connection, left to the listener to answer (as node:http's); else the
 * engine answered and closes it.
 *
 * code: llhttp's for a parse error (as node's: 'HPE_INVALID_METHOD', ...),
 * else by status: 400 'HPE_INVALID_400', 408 'ERR_HTTP_REQUEST_TIMEOUT',
 * 413 'HPE_INVALID_413', 414 and 431 'HPE_HEADER_OVERFLOW', 417
 * 'HPE_INVALID_417', 505 'HPE_INVALID_VERSION', any other status
 * 'HPE_INVALID_<status>'.
 */
export interface ClientError extends Error {
  code: string;
  /** The status the engine sends when nobody else answers (0: the client
   * ended within a head, and nothing is sent). */
  status: number;
  /** For a parse error, as node's: how many bytes of rawPacket the parser
   * took before it failed. */
  bytesParsed?: number;
  /** For a parse error: the bytes of the read the parser failed in. */
  rawPacket?: Buffer;
}

/**
 * The socket of a 'clientError' for a request the handler had already, or
 * a timeout:
 * the peer's address. The engine has answered, so it is not writable;
 * destroy() and end() do nothing.
 */
export interface ClientErrorSocket extends EventEmitter {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: 'IPv4' | 'IPv6' | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  readonly encrypted: false;
  readonly destroyed: true;
  readonly writable: false;
  destroy(): this;
  end(): this;
}

/** listen()'s options; the port may be a numeric string, as process.env.PORT is. */
export interface ListenOptions {
  port?: number | string;
  host?: string;
  path?: string;
  backlog?: number;
}

/**
 * A node:http-style server; req and res are real IncomingMessage /
 * ServerResponse. It is an `http.Server` (and `net.Server`) instance, so it
 * goes wherever one is expected (ws, socket.io, supertest).
 */
export interface Server extends http.Server {
  /** See EngineOptions.handlerTimeout; settable before listen(). Default 0 (off). */
  handlerTimeout: number;
  readonly cache: Cache;
  /**
   * New key/cert for new connections (open ones keep theirs). While
   * listening only key and cert may change, as many pairs as given before.
   */
  setSecureContext(options: TlsOptions): void;
  /** The 48 bytes the session-ticket keys derive from (TLS servers). */
  getTicketKeys(): Buffer;
  /** Before listen(): new ticketKeys. */
  setTicketKeys(keys: Uint8Array): void;
  listen(port?: number | string, host?: string, backlog?: number, cb?: () => void): this;
  listen(port?: number | string, host?: string, cb?: () => void): this;
  listen(port?: number | string, cb?: () => void): this;
  listen(path: string, cb?: () => void): this;
  listen(options: ListenOptions, cb?: () => void): this;
  listen(handle: any, backlog?: number, listeningListener?: () => void): this;
  listen(handle: any, listeningListener?: () => void): this;
  /** Closes the keep-alive connections waiting for their next request; requests in flight go on. */
  closeIdleConnections(): void;
  /** Ends every request in flight (500 if nothing was sent, else the connection is closed). */
  closeAllConnections(): void;
  on(event: 'request', listener: RequestListener): this;
  on(event: 'listening' | 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  /**
   * A request the engine rejected (400, 408, 413, 414, 431, 505, ...): before
   * the handler saw it (ClientError, UpgradedSocket), the connection for the
   * listener to answer (socket.end(bytes)) or destroy; after,
   * (ClientError, ClientErrorSocket), already answered. Also a handler's
   * throw when no 'error' listener is set: (Error, PistonSocket).
   */
  on(event: 'clientError', listener: (err: ClientError | Error, socket: UpgradedSocket | TlsUpgradedSocket | ClientErrorSocket | PistonSocket) => void): this;
  /**
   * At a connection's first request (not at accept), before its 'request';
   * for a connection whose first request is an upgrade or a CONNECT, its
   * UpgradedSocket.
   */
  on(event: 'connection', listener: (socket: PistonSocket | UpgradedSocket) => void): this;
  /**
   * A request with Upgrade (and "upgrade" in Connection), while this event
   * has a listener (without one it is a 'request'); a CONNECT (without a
   * listener its connection is closed). The listener writes the status line
   * itself. head: the bytes that came behind the request's head.
   */
  on(event: 'upgrade' | 'connect', listener: (req: http.IncomingMessage, socket: UpgradedSocket | TlsUpgradedSocket, head: Buffer) => void): this;
  on(event: string, listener: (...args: any[]) => void): this;
}

/** `new Server(...)`, `Server(...)` and `Server.call(this, ...)`, as node's. */
export interface ServerConstructor {
  new (options?: ServerOptions, handler?: RequestListener): Server;
  new (handler?: RequestListener): Server;
  (options?: ServerOptions, handler?: RequestListener): Server;
  (handler?: RequestListener): Server;
  readonly prototype: Server;
}
export declare const Server: ServerConstructor;

export declare function createServer(handler?: RequestListener): Server;
export declare function createServer(options: ServerOptions, handler?: RequestListener): Server;

/**
 * For `const https = require('piston').https`: node:https with Piston's
 * createServer (TLS always; its certificate may come by setSecureContext
 * before listen()); request, get and Agent are node's.
 */
export declare const https: Omit<typeof nodeHttps, 'createServer' | 'Server'> & {
  createServer(handler?: RequestListener): Server;
  createServer(options: ServerOptions, handler?: RequestListener): Server;
  Server: ServerConstructor;
};

// ---- native API ----

export interface AppRequest extends AsyncIterable<Buffer> {
  readonly method: string;
  /**
   * The request target as sent, percent-encoded (absolute-form targets
   * such as `http://host/a?b` included, as node:http's req.url).
   */
  readonly url: string;
  /** The target's path, percent-encoded; what routes match. */
  readonly path: string;
  readonly query: Record<string, string | string[]>;
  readonly params: Record<string, string>;
  /** Lower-cased names; built on first access. */
  readonly headers: Record<string, string | string[]>;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** https: the connection is TLS, or a trusted proxy said so. */
  readonly secure: boolean;
  readonly httpVersion: '1.0' | '1.1' | '2.0';
  /** On a TLS app: what the connection negotiated; undefined otherwise or once the response ended. */
  readonly tls: TlsInfo | undefined;
  /** Case-insensitive; undefined once the response has ended. */
  getHeader(name: string): string | undefined;
  body(): Promise<Buffer>;
  text(): Promise<string>;
  json<T = unknown>(): Promise<T>;
  stream(): Readable;
}

export interface AppResponse {
  statusCode: number;
  readonly started: boolean;
  readonly ended: boolean;
  readonly aborted: boolean;
  status(code: number): this;
  setHeader(name: string, value: string | number | readonly string[]): this;
  getHeader(name: string): string | undefined;
  /** false when the client is slower than the writer: wait for 'drain'. */
  write(chunk: string | Uint8Array): boolean;
  end(body?: string | Uint8Array): this;
  json(value: unknown): this;
  sendFile(path: string, headers?: Record<string, string>): Promise<void>;
  on(event: 'drain' | 'close', listener: () => void): this;
  once(event: 'drain' | 'close', listener: () => void): this;
  off(event: 'drain' | 'close', listener: () => void): this;
  onAborted(cb: () => void): this;
}

/** Its return value is ignored, but a returned promise's rejection goes to onError. */
export type AppHandler = (req: AppRequest, res: AppResponse) => unknown;

/** The response of an opening handshake to an app.ws route. */
export interface AppUpgradeResponse extends AppResponse {
  /**
   * Accepts the handshake: the engine sends the 101 (with
   * Sec-WebSocket-Accept and the headers set with setHeader()) and the
   * route's open() runs. protocol: the subprotocol chosen, or the client's
   * list (its first entry is taken). key, extensions and context are taken
   * for uWebSockets.js's signature and not used. Returns null if the client
   * went away first.
   */
  upgrade<UserData>(
    userData: UserData,
    key?: string,
    protocol?: string,
    extensions?: string,
    context?: WebSocketContext,
  ): WebSocket<UserData> | null;
}

/** What upgrade() gets as its context: the route. */
export interface WebSocketContext {
  readonly pattern: string;
}

/** A topic or a message: a string is taken as UTF-8. */
export type RecognizedString = string | ArrayBuffer | ArrayBufferView;

/** An accepted WebSocket session. */
export interface WebSocket<UserData = unknown> {
  /**
   * Sends one message (text unless isBinary; a string is sent as UTF-8, the
   * bytes of a text message must be UTF-8). 1: queued; 0: queued, but over
   * the write high-water mark (wait for the route's drain); 2: dropped, the
   * session is closing or closed.
   */
  send(message: string | ArrayBuffer | ArrayBufferView, isBinary?: boolean): 0 | 1 | 2;
  /**
   * Starts the closing handshake with code (none if omitted; 1000-1003,
   * 1007-1014, 3000-4999, else it throws) and a reason of at most 123 bytes.
   */
  end(code?: number, reason?: string | ArrayBuffer | ArrayBufferView): void;
  /**
   * Abrupt: no close frame, the connection is dropped (the client sees
   * 1006); the route's close runs at once with 1006.
   */
  close(): this;
  /** A ping with at most 125 bytes of payload (more throws); returns as send. */
  ping(message?: RecognizedString): 0 | 1 | 2;
  /** Subscribes to topic; false once the session has ended. */
  subscribe(topic: RecognizedString): boolean;
  /** Whether the session was subscribed to topic. */
  unsubscribe(topic: RecognizedString): boolean;
  isSubscribed(topic: RecognizedString): boolean;
  /** The session's topics, as strings. */
  getTopics(): string[];
  /**
   * Publishes to topic's subscribers but this session. true if the topic
   * has subscribers (this session included), as uWebSockets.js. compress is
   * ignored: the engine compresses as it negotiated.
   */
  publish(topic: RecognizedString, message: RecognizedString, isBinary?: boolean, compress?: boolean): boolean;
  /** The bytes queued for the connection that the socket has not taken yet. */
  getBufferedAmount(): number;
  getUserData(): UserData;
  /** Runs cb at once: the engine batches a pass's sends already. */
  cork(cb: () => void): this;
}

export interface WebSocketBehavior<UserData = unknown> {
  /** Default: accept, with the first subprotocol the client offers. */
  upgrade?: (res: AppUpgradeResponse, req: AppRequest, context: WebSocketContext) => void | Promise<void>;
  open?: (ws: WebSocket<UserData>) => void;
  /** message: a copy the handler may keep (not detached on return, unlike uWebSockets.js). */
  message?: (ws: WebSocket<UserData>, message: ArrayBuffer, isBinary: boolean) => void;
  drain?: (ws: WebSocket<UserData>) => void;
  /**
   * Once the connection is gone. code: the peer's close code (1005 if its
   * close frame had none), the engine's (1002, 1007, 1009, 1001 at a stop),
   * 1006 if it vanished or ws.close() dropped it. message: the reason the
   * peer's close frame gave (empty if none).
   */
  close?: (ws: WebSocket<UserData>, code: number, message: ArrayBuffer) => void;
  /** A ping from the peer (the engine has answered it already). */
  ping?: (ws: WebSocket<UserData>, message: ArrayBuffer) => void;
  /** A pong from the peer. */
  pong?: (ws: WebSocket<UserData>, message: ArrayBuffer) => void;
  /** The engine's wsMaxMessage (one per server: routes must agree). Default 16 MiB. */
  maxPayloadLength?: number;
  /**
   * DISABLED (the default) or SHARED_COMPRESSOR: the engine's wsDeflate,
   * one per server (routes must agree); any other compressor is taken as
   * SHARED_COMPRESSOR.
   */
  compression?: number;
  /**
   * Accepted for uWebSockets.js's signature and ignored: the engine has no
   * idle timeout or ping for WebSockets yet.
   */
  idleTimeout?: number;
}

/** App's tls: node:https's options, or uWebSockets.js's SSLApp file names. */
export interface AppTlsOptions extends TlsOptions {
  key_file_name?: string;
  cert_file_name?: string;
  ca_file_name?: string;
}

export interface AppOptions extends EngineOptions {
  tls?: AppTlsOptions;
}

export declare class App {
  constructor(options?: AppOptions);
  /** New key/cert for new connections (open ones keep theirs). */
  setSecureContext(options: TlsOptions): this;
  readonly port: number;
  readonly cache: Cache;
  onError: (err: unknown, req: AppRequest, res: AppResponse) => void;
  notFound: AppHandler;
  get(path: string, handler: AppHandler): this;
  post(path: string, handler: AppHandler): this;
  put(path: string, handler: AppHandler): this;
  patch(path: string, handler: AppHandler): this;
  delete(path: string, handler: AppHandler): this;
  all(path: string, handler: AppHandler): this;
  /**
   * A WebSocket route (any method: a request that is no opening handshake
   * gets the engine's 400, or 426 for another version, unless an HTTP route
   * takes it).
   */
  ws<UserData = unknown>(pattern: string, behavior: WebSocketBehavior<UserData>): this;
  /** Files under dir for paths starting with prefix, served by the engine. */
  static(prefix: string, dir: string): this;
  /** A fixed response served by the engine (GET/HEAD unless opts.method). */
  fixed(
    path: string,
    body: string | Uint8Array,
    headers?: Record<string, string>,
    opts?: { method?: string; status?: number },
  ): this;
  listen(port: number | string, host?: string, cb?: (err: Error | null, port?: number) => void): this;
  listen(port: number | string, cb?: (err: Error | null, port?: number) => void): this;
  close(cb?: () => void, deadlineMs?: number): this;
  /** Publishes to every subscriber of topic; true if it has any. */
  publish(topic: RecognizedString, message: RecognizedString, isBinary?: boolean, compress?: boolean): boolean;
  /** How many sessions are subscribed to topic. */
  numSubscribers(topic: RecognizedString): number;
}

/** A route's compression: off. */
export declare const DISABLED: 0;
/** A route's compression: permessage-deflate (the engine's one kind). */
export declare const SHARED_COMPRESSOR: 1;

export declare const STATUS_CODES: typeof http.STATUS_CODES;
export declare const METHODS: typeof http.METHODS;
