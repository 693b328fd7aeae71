// A Supabase project URL whose Data API (/rest/v1) a test can cut, as if the network between the
// daemon and Supabase went down: a loopback proxy in front of the test servers that, while
// `restDown`, destroys the socket of every /rest/v1 request. Everything else passes through.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RestCut {
  /** The project URL to give the daemon (SUPABASE_URL). */
  url: string;
  /** While true, every /rest/v1 request has its socket destroyed. */
  restDown: boolean;
  close(): Promise<void>;
}

/** `upstreamFor(path)`: the base URL that serves a request for `path` (e.g. the PostgREST stand-in). */
export async function startRestCut(upstreamFor: (path: string) => string): Promise<RestCut> {
  const server = http.createServer((req, res) => {
    if (cut.restDown && req.url?.startsWith('/rest/v1/')) return void req.socket.destroy();
    const proxied = http.request(new URL(req.url!, upstreamFor(req.url!)), { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    proxied.on('error', () => res.destroy());
    req.pipe(proxied);
  });
  const cut: RestCut = {
    url: '',
    restDown: false,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cut.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return cut;
}
