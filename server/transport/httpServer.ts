// One port serves both: GET /health (counts only) and the WebSocket endpoint at `/`.
// Browser pages are refused at the upgrade (any Origin header -> 403): a web page must never be
// able to drive a daemon that holds a user's identity. Model: ws's lib/websocket-server.js.
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { HealthBody } from '../protocol';
import { VERSION } from '../version';
import { Connection, type ConnectionDeps } from './connection';

const PING_INTERVAL_MS = 30_000;

export interface DaemonServer {
  readonly http: http.Server;
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /** Live (authenticated) connections. */
  connections(): Connection[];
  /** Stops accepting, tells clients, lets calls finish within `graceMs`, closes every connection. */
  drain(graceMs: number): Promise<void>;
  /** Called whenever the number of open connections changes. */
  onConnectionCountChange(listener: (count: number) => void): void;
}

export function createDaemonServer(deps: ConnectionDeps, opts: { maxPayloadBytes: number; mode: 'local' | 'supabase' }): DaemonServer {
  const startedAt = Date.now();
  const all = new Set<Connection>(); // every socket, including ones still in hello
  const open = new Set<Connection>();
  const countListeners: ((n: number) => void)[] = [];
  let draining = false;

  const health = (): HealthBody => ({
    status: draining ? 'draining' : 'ok',
    version: VERSION,
    mode: opts.mode,
    uptime_s: Math.round((Date.now() - startedAt) / 1000),
    connections: open.size,
    users: new Set([...open].map((c) => c.identity?.userId)).size,
  });

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health') return json(res, draining ? 503 : 200, health());
    json(res, 404, { error: 'not_found', message: 'This is the EXAI daemon: GET /health, or a WebSocket at /.' });
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayloadBytes, perMessageDeflate: false });

  server.on('upgrade', (req, socket, head) => {
    if (req.headers.origin !== undefined) return reject(socket, 403, 'Browser origins may not connect to the EXAI daemon.');
    if ((req.url ?? '/').split('?')[0] !== '/') return reject(socket, 404, 'The WebSocket endpoint is /.');
    if (draining) return reject(socket, 503, 'The daemon is shutting down.');
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? null;
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, bearer));
  });

  function accept(ws: WebSocket, bearer: string | null): void {
    const connection = new Connection(ws, deps, bearer,
      (c) => { open.add(c); changed(); },
      (c) => { all.delete(c); if (open.delete(c)) changed(); });
    all.add(connection);
    keepAlive(ws);
  }

  function changed(): void {
    for (const listener of countListeners) listener(open.size);
  }

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
      await Promise.all([...all].map((c) => c.drain(deadline)));
      server.close();
      server.closeAllConnections();
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
