// One port serves them all: GET /health (counts only), the WebSocket endpoint at `/`, and MCP
// Streamable HTTP at `/mcp` with its OAuth metadata (server/mcp/endpoint.ts) — over plain
// HTTP + WS, or over HTTPS + WSS when the daemon has its own certificate (--tls-cert/--tls-key).
// Browser pages are refused at the upgrade (any Origin header -> 403): a web page must never be
// able to drive a daemon that holds a user's identity. Model: ws's lib/websocket-server.js.
// Strangers are bounded before they authenticate: a Host check against DNS rebinding (hostCheck.ts),
// caps and timeouts on unauthenticated sockets (unauthenticated.ts), and a shared budget for the
// log lines they cause (LogBudget).
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { LogBudget } from '../log';
import { CloseCode, type HealthBody } from '../protocol';
import type { McpEndpoint } from '../mcp/endpoint';
import type { OAuthPages } from '../oauth/routes';
import { VERSION } from '../version';
import { Connection, type ConnectionDeps } from './connection';
import { MISDIRECTED, checkHost, hostName, isAllowedHost, misdirectedMessage, type PublicHosts } from './hostCheck';
import { UnauthenticatedSockets } from './unauthenticated';
import { KeepAlive } from './keepAlive';

/** X-Forwarded-For is client-controlled text: only this much of its first hop reaches the log. */
const MAX_FORWARDED_LENGTH = 100;
/** How often Node looks for sockets past their header or request timeout (its default, 30 s, let a half-sent request live 90 s). */
const TIMEOUT_CHECK_INTERVAL_MS = 1000;
/**
 * The daemon-wide allowance for log lines caused by connections that have not authenticated
 * (about 400 bytes each): a burst of 100, then 2 a second, and one summary line per 10 s.
 */
const UNAUTHENTICATED_LOG = { burst: 100, perSecond: 2, summaryEveryMs: 10_000 };

export interface DaemonServer {
  readonly http: http.Server | https.Server;
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /** Live (authenticated) connections. */
  connections(): Connection[];
  /**
   * Stops accepting (upgrades and /health answer 503), tells clients, lets calls finish within
   * `graceMs`, cancels the rest, closes every connection with 1001 and waits for the rows.
   */
  drain(graceMs: number): Promise<void>;
  /** Closes every connection with 1001 now (calls are cancelled) and waits at most `boundMs` for the rows. */
  closeNow(boundMs: number): Promise<void>;
  /** TLS only: serves this certificate and key to new connections from now on. */
  setCertificate(cert: Buffer, key: Buffer): void;
  /** Called whenever the number of open connections (WebSocket connections and MCP sessions) changes. */
  onConnectionCountChange(listener: (count: number) => void): void;
}

export interface DaemonServerOptions {
  maxPayloadBytes: number;
  mode: 'local' | 'supabase';
  /** PEM certificate (chain) and key: serve HTTPS + WSS. Absent: plain HTTP + WS. */
  tls?: { cert: Buffer; key: Buffer } | null;
  /** A reverse proxy ends TLS: log the first X-Forwarded-For hop as the client address (logs only). */
  behindProxy?: boolean;
  /** The Host names a hosted daemon answers to besides loopback names and IP addresses; null: loopback names only. */
  publicHosts: PublicHosts;
  /** Sockets not yet past hello_ack, at once: in all, and from one address (not applied behind a proxy, where all share the proxy's). */
  maxUnauthenticated: number;
  maxUnauthenticatedPerAddress: number;
  /** MCP Streamable HTTP at /mcp (absent: the daemon serves no MCP). */
  mcp?: McpEndpoint | null;
  /** The OAuth consent and grants pages under /oauth/ (server/oauth/routes.ts; they answer 404 in local mode). */
  oauth?: OAuthPages | null;
}

export function createDaemonServer(deps: ConnectionDeps, opts: DaemonServerOptions): DaemonServer {
  const startedAt = Date.now();
  const all = new Set<Connection>(); // every socket, including ones still in hello
  const open = new Set<Connection>();
  const countListeners: ((n: number) => void)[] = [];
  let draining = false;
  const keepAlive = new KeepAlive();
  // Lines caused by strangers spend this budget; a connection's lines are free once it has an identity.
  const unauthenticatedLog = new LogBudget(deps.log, 'unauthenticated connections', UNAUTHENTICATED_LOG);
  const strangerLog = unauthenticatedLog.limit(deps.log);
  const unauthenticated = new UnauthenticatedSockets(
    { total: opts.maxUnauthenticated, perAddress: opts.behindProxy ? null : opts.maxUnauthenticatedPerAddress },
    (e) => strangerLog.warn('closed the oldest unauthenticated socket: too many at once', { client_address: e.address, cap: e.cap, unauthenticated: e.unauthenticated }),
  );

  const mcp = opts.mcp ?? null;
  const health = (): HealthBody => ({
    status: draining ? 'draining' : 'ok',
    version: VERSION,
    mode: opts.mode,
    uptime_s: Math.round((Date.now() - startedAt) / 1000),
    connections: open.size,
    mcp_sessions: mcp?.count() ?? 0,
    users: new Set([...[...open].map((c) => c.identity?.userId), ...(mcp?.userIds() ?? [])]).size,
  });

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!checkHost(req, res, opts.publicHosts)) return logMisdirected(req); // before any route, including ones added later
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health') return json(res, draining ? 503 : 200, health());
    if (mcp?.serves(path)) return mcp.handle(req, res, { strangerLog, authenticated: () => unauthenticated.authenticated(req.socket) });
    if (opts.oauth?.serves(path)) return opts.oauth.handle(req, res);
    json(res, 404, { error: 'not_found', message: `This is the EXAI daemon: GET /health, a WebSocket at /${mcp ? ', or MCP at /mcp' : ''}.` });
  };
  // Every step before hello has the hello timeout as its bound: the TLS handshake, the request's
  // headers (a half-sent upgrade), the whole request; then the hello frame itself (connection.ts).
  const stepMs = deps.options.helloTimeoutMs;
  const timeouts = { headersTimeout: stepMs, requestTimeout: stepMs, connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS };
  const server = opts.tls
    ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key, handshakeTimeout: stepMs, ...timeouts }, onRequest)
    : http.createServer(timeouts, onRequest);
  server.on('connection', (socket) => unauthenticated.admit(socket));

  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayloadBytes, perMessageDeflate: false });

  server.on('upgrade', (req, socket, head) => {
    if (!isAllowedHost(req.headers.host, opts.publicHosts)) {
      logMisdirected(req);
      return reject(socket, MISDIRECTED, misdirectedMessage(opts.publicHosts));
    }
    if (req.headers.origin !== undefined) return reject(socket, 403, 'Browser origins may not connect to the EXAI daemon.');
    if ((req.url ?? '/').split('?')[0] !== '/') return reject(socket, 404, 'The WebSocket endpoint is /.');
    if (draining) return reject(socket, 503, 'The daemon is shutting down.');
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? null;
    const address = peer(req);
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, req.socket, bearer, address));
  });

  function logMisdirected(req: http.IncomingMessage): void {
    const host = req.headers.host ?? '';
    strangerLog.warn('refused a request for another host name (Host header)', { host: (hostName(host) ?? host).slice(0, MAX_FORWARDED_LENGTH), ...peer(req) });
  }

  /**
   * Who is on the other end, for the log only — never for a decision. Behind a proxy the socket's
   * address is the proxy's, and the first X-Forwarded-For hop is what the proxy says the client is;
   * otherwise X-Forwarded-For is ignored (anyone can send one).
   */
  function peer(req: http.IncomingMessage): Record<string, string> {
    const socketAddress = req.socket.remoteAddress ?? 'unknown';
    if (!opts.behindProxy) return { client_address: socketAddress };
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0].trim().slice(0, MAX_FORWARDED_LENGTH);
    return first ? { client_address: first, proxy_address: socketAddress } : { client_address: socketAddress };
  }

  function accept(ws: WebSocket, socket: net.Socket, bearer: string | null, address: Record<string, string>): void {
    // Every line this connection logs carries its client address. Until the connection has a
    // verified identity (set just before its `connected` line) its lines spend the shared budget.
    let connection: Connection | undefined;
    const log = unauthenticatedLog.limit(deps.log.child(address), () => !connection?.identity);
    connection = new Connection(ws, { ...deps, log }, bearer,
      (c) => { unauthenticated.authenticated(socket); open.add(c); changed(); }, // at hello_ack
      (c) => { all.delete(c); if (open.delete(c)) changed(); },
      socket);
    all.add(connection);
    log.info('websocket opened', { session: connection.sessionId });
    keepAlive.watch(ws);
  }

  function changed(): void {
    for (const listener of countListeners) listener(open.size + (mcp?.count() ?? 0));
  }
  mcp?.onCountChange(changed);

  return {
    http: server,
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address();
          resolve({ host, port: typeof address === 'object' && address ? address.port : port });
        });
      }),
    connections: () => [...open],
    onConnectionCountChange: (listener) => void countListeners.push(listener),
    async drain(graceMs) {
      // Still listening while draining: /health answers 503 "draining" (load balancers take the
      // daemon out of rotation) and new upgrades are refused with 503.
      draining = true;
      const deadline = Date.now() + graceMs;
      for (const c of open) c.notifyShutdown(`The daemon is shutting down; calls in flight have ${Math.round(graceMs / 1000)} s to finish. Reconnect to another daemon.`);
      await Promise.all([...[...all].map((c) => c.drain(deadline)), mcp?.drain(deadline)]);
      keepAlive.stop();
      server.close();
      server.closeAllConnections();
      unauthenticatedLog.flush();
    },
    async closeNow(boundMs) {
      draining = true;
      const closing = [...all];
      for (const c of closing) c.close(CloseCode.goingAway, 'daemon shutting down', 'disconnected');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...closing.map((c) => c.finished), mcp?.closeNow()]),
        new Promise((r) => (timer = setTimeout(r, boundMs))),
      ]);
      clearTimeout(timer);
      keepAlive.stop();
      server.close();
      server.closeAllConnections();
      unauthenticatedLog.flush();
    },
    setCertificate(cert, key) {
      if (!(server instanceof https.Server)) throw new Error('this daemon serves plain HTTP; it has no certificate to replace');
      server.setSecureContext({ cert, key });
    },
  };
}

function reject(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: http.STATUS_CODES[status], message });
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}
