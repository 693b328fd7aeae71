// A Supabase project URL whose Data API (/rest/v1) a test can cut, as if the network between the
// daemon and Supabase went down: a loopback proxy in front of the test servers that, while
// `restDown`, destroys the socket of every /rest/v1 request. Everything else passes through.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startPostgrest, type Postgrest } from '../postgrest/server';
import { startDaemon, type RunningDaemon } from './daemon';
import { createTestDatabase, type TestDatabase } from './pg';
import { JAZEEL, JWKS_PATH, MICHELLE, mintAccessToken, mintAnonKey, startJwksServer, type JwksServer, type TestUser } from './tokens';
import { within } from './wait';

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

/**
 * The whole stack the Data API outage tests run on: a fresh database with the two test users, a
 * JWKS server, the PostgREST stand-in (clock skew 0, so a token used after its exp is refused at
 * once) behind a cut, and a supabase-mode daemon on the Data API store with a 1 s heartbeat.
 */
export interface DataApiCutStack {
  db: TestDatabase;
  jwks: JwksServer;
  gateway: Postgrest;
  cut: RestCut;
  daemon: RunningDaemon;
  /** An access token of `user` as this project's Auth would issue it. */
  mint(user: TestUser, expiresInSec?: number): Promise<string>;
  /** Stops everything, the database last. */
  stop(): Promise<void>;
}

export async function startDataApiCutStack(opts: { legacySecret: string; daemonId: string; env?: Record<string, string | undefined> }): Promise<DataApiCutStack> {
  const [db, jwks, anonKey] = await Promise.all([createTestDatabase(), startJwksServer(), mintAnonKey(opts.legacySecret)]);
  for (const u of [JAZEEL, MICHELLE]) await db.addUser(u.id, u.email);
  const gateway = await startPostgrest({
    databaseUrl: db.url, jwksUrl: `${jwks.url}${JWKS_PATH}`, jwtSecret: opts.legacySecret, anonKey, authUpstream: jwks.url, clockSkewSec: 0,
  });
  const cut = await startRestCut(() => gateway.url);
  const daemon = await startDaemon({
    env: {
      MCP_ENABLE_MULTI_USER: 'true',
      SUPABASE_URL: cut.url,
      SUPABASE_ANON_KEY: anonKey,
      EXAI_DAEMON_ID: opts.daemonId,
      EXAI_HEARTBEAT_SECONDS: '1',
      DATABASE_URL: undefined,
      SUPABASE_JWT_SECRET: undefined,
      ...opts.env,
    },
  });
  return {
    db, jwks, gateway, cut, daemon,
    mint: (user, expiresInSec = 3600) => mintAccessToken({ key: jwks.keys.es256, issuer: `${cut.url}/auth/v1`, user, expiresInSec }),
    async stop() {
      try {
        await within(daemon.stop(), 15_000, 'daemon stop').catch(() => daemon.kill9());
        await cut.close();
        await gateway.close();
        await jwks.close();
      } finally {
        await db.drop();
      }
    },
  };
}
