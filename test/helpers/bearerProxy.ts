// Test-only: a loopback HTTP proxy that adds `Authorization: Bearer <token>` to every request it
// forwards to the daemon, for clients that cannot send one (the MCP conformance runner). Everything
// else passes unchanged in both directions, Host and Origin included (the DNS-rebinding scenario
// depends on the daemon seeing them), and responses stream through (SSE).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BearerProxy {
  port: number;
  close(): Promise<void>;
}

export async function startBearerProxy(targetPort: number, token: string): Promise<BearerProxy> {
  const server = http.createServer((req, res) => {
    const upstream = http.request(
      { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: { ...req.headers, authorization: `Bearer ${token}` } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    // The client went away before the answer was complete (e.g. it closed an SSE stream): so does the proxy.
    res.on('close', () => { if (!res.writableFinished) upstream.destroy(); });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
