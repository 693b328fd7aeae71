// One port serves them all: GET /health (counts only), the WebSocket endpoint at `/`, and MCP
// Streamable HTTP at `/mcp` with its OAuth metadata (server/mcp/endpoint.ts) — over plain
// HTTP + WS, or over HTTPS + WSS when the daemon has its own certificate (--tls-cert/--tls-key).
// Browser pages are refused at the upgrade (any Origin header -> 403): a web page must never be
// able to drive a daemon that holds a user's identity. Model: ws's lib/websocket-server.js.
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CloseCode, type HealthBody } from '../protocol';
import type { McpEndpoint } from '../mcp/endpoint';
import { VERSION } from '../version';
import { Connection, type ConnectionDeps } from './connection';

const PING_INTERVAL_MS = 30_000;
/** X-Forwarded-For is client-controlled text: only this much of its first hop reaches the log. */
const MAX_FORWARDED_LENGTH = 100;

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
  /** MCP Streamable HTTP at /mcp (absent: the daemon serves no MCP). */
  mcp?: McpEndpoint | null;
}

export function createDaemonServer(deps: ConnectionDeps, opts: DaemonServerOptions): DaemonServer {
  const startedAt = Date.now();
  const all = new Set<Connection>(); // every socket, including ones still in hello
  const open = new Set<Connection>();
  const countListeners: ((n: number) => void)[] = [];
  let draining = false;

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
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health') return json(res, draining ? 503 : 200, health());
    if (mcp?.serves(path)) return mcp.handle(req, res);
    json(res, 404, { error: 'not_found', message: `This is the EXAI daemon: GET /health, a WebSocket at /${mcp ? ', or MCP at /mcp' : ''}.` });
  };
  const server = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest) : http.createServer(onRequest);

  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayloadBytes, perMessageDeflate: false });

  server.on('upgrade', (req, socket, head) => {
    if (req.headers.origin !== undefined) return reject(socket, 403, 'Browser origins may not connect to the EXAI daemon.');
    if ((req.url ?? '/').split('?')[0] !== '/') return reject(socket, 404, 'The WebSocket endpoint is /.');
    if (draining) return reject(socket, 503, 'The daemon is shutting down.');
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? null;
    const address = peer(req);
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, bearer, address));
  });

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

  function accept(ws: WebSocket, bearer: string | null, address: Record<string, string>): void {
    // Every line this connection logs carries its client address.
    const connection = new Connection(ws, { ...deps, log: deps.log.child(address) }, bearer,
      (c) => { open.add(c); changed(); },
      (c) => { all.delete(c); if (open.delete(c)) changed(); });
    all.add(connection);
    deps.log.info('websocket opened', { session: connection.sessionId, ...address });
    keepAlive(ws);
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
      server.close();
      server.closeAllConnections();
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
      server.close();
      server.closeAllConnections();
    },
    setCertificate(cert, key) {
      if (!(server instanceof https.Server)) throw new Error('this daemon serves plain HTTP; it has no certificate to replace');
      server.setSecureContext({ cert, key });
    },
  };
}

/** Protocol-level pings find peers that vanished without a close (sleep, network loss). */
function keepAlive(ws: WebSocket): void {
  let alive = true;
  ws.on('pong', () => (alive = true));
  const timer = setInterval(() => {
    if (!alive) return ws.terminate();
    alive = false;
    ws.ping();
  }, PING_INTERVAL_MS);
  timer.unref();
  ws.on('close', () => clearInterval(timer));
}

function reject(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: http.STATUS_CODES[status], message });
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}
