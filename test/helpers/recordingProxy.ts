// Test-only: a loopback proxy in front of the daemon that passes everything through unchanged
// (HTTP, SSE, WebSocket upgrades) and records each HTTP request it forwarded: method, path, status,
// Mcp-Session-Id, the JSON-RPC method of a POST, and whose bearer it carried (the JWT's email and
// expiry, read without verifying; "secret" for anything else). What VS Code's MCP client really
// sent and got, for the e2e tests. GET /__records on the proxy returns the records so far.
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface ProxyRecord {
  at: number;
  method: string;
  path: string;
  status: number;
  session: string | null;
  rpc: string | null;
  /** The bearer's `email` claim, "secret" for a non-JWT bearer, null without one. */
  bearer: string | null;
  /** The bearer's `exp` claim. */
  exp: number | null;
  /** A short fingerprint telling tokens apart (never the token). */
  tokenId: string | null;
}

export interface RecordingProxy {
  port: number;
  url: string;
  records(): ProxyRecord[];
  close(): Promise<void>;
}

const MAX_RECORDS = 20_000;
const MAX_PEEK_BYTES = 64 * 1024;

export async function startRecordingProxy(targetPort: number): Promise<RecordingProxy> {
  const records: ProxyRecord[] = [];
  const sockets = new Set<net.Socket>();

  const server = http.createServer((req, res) => {
    if (req.url === '/__records') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify(records));
    }
    const chunks: Buffer[] = [];
    let peeked = 0;
    req.on('data', (c: Buffer) => {
      if (peeked < MAX_PEEK_BYTES) chunks.push(c);
      peeked += c.length;
    });
    const record: ProxyRecord = {
      at: Date.now(), method: req.method ?? '', path: (req.url ?? '').split('?')[0], status: 0,
      session: (req.headers['mcp-session-id'] as string | undefined) ?? null, rpc: null, ...bearerOf(req.headers.authorization),
    };
    const upstream = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      record.status = answer.statusCode ?? 0;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      record.status ||= 502;
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.on('end', () => {
      try {
        record.rpc = JSON.parse(Buffer.concat(chunks).toString('utf8')).method ?? 'response';
      } catch {}
      if (records.length < MAX_RECORDS) records.push(record);
    });
    res.on('close', () => { if (!res.writableFinished) upstream.destroy(); });
    req.pipe(upstream);
  });

  // WebSocket upgrades (the extension's own connection): a byte pipe after replaying the request head.
  server.on('upgrade', (req, socket: net.Socket, head: Buffer) => {
    const upstream = net.connect(targetPort, '127.0.0.1', () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    for (const s of [socket, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { socket.destroy(); upstream.destroy(); });
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `ws://127.0.0.1:${port}/`,
    records: () => [...records],
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      }),
  };
}

function bearerOf(header: string | undefined): Pick<ProxyRecord, 'bearer' | 'exp' | 'tokenId'> {
  const token = header && /^Bearer\s+(\S+)/i.exec(header)?.[1];
  if (!token) return { bearer: null, exp: null, tokenId: null };
  const tokenId = crypto.createHash('sha256').update(token).digest('hex').slice(0, 8);
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
    return { bearer: claims.email ?? claims.sub ?? 'jwt', exp: claims.exp ?? null, tokenId };
  } catch {
    return { bearer: 'secret', exp: null, tokenId };
  }
}
