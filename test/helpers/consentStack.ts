// The services behind the daemon's consent pages (server/oauth/): the test Supabase Auth with its
// OAuth 2.1 server on and its Site URL set to the daemon's origin, a fresh database, one user with a
// password, and the daemon in supabase mode (Postgres store, with the anon key unless told not to).
// Plus the OAuth client's side of the flow: register, authorize, exchange the code, refresh.
import crypto from 'node:crypto';
import { startAuthServer, type AuthServer } from '../auth-server/server';
import { startDaemon, type RunningDaemon } from './daemon';
import { createTestDatabase, type TestDatabase } from './pg';

export interface ConsentUser {
  id: string;
  email: string;
  password: string;
}

export interface RegisteredClient {
  clientId: string;
  redirectUri: string;
}

export interface StartedAuthorization {
  /** Where Supabase sends the browser: `<daemon>/oauth/consent?authorization_id=…`. */
  consentUrl: string;
  authorizationId: string;
  state: string;
  verifier: string;
}

export interface ConsentStack {
  auth: AuthServer;
  db: TestDatabase;
  daemon: RunningDaemon;
  /** `http://127.0.0.1:<daemon port>` */
  origin: string;
  user: ConsentUser;
  registerClient(opts?: { name?: string; redirectUri?: string }): Promise<RegisteredClient>;
  /** The client's GET /oauth/authorize (the authorize URL, and where it redirects). */
  authorizeUrl(client: RegisteredClient, opts?: { scope?: string; state?: string; verifier?: string }): { url: string; state: string; verifier: string };
  authorize(client: RegisteredClient, opts?: { scope?: string }): Promise<StartedAuthorization>;
  /** POST /oauth/token grant_type=authorization_code: the tokens, or the error body. */
  exchangeCode(client: RegisteredClient, code: string, verifier: string): Promise<{ status: number; body: any }>;
  refresh(client: RegisteredClient, refreshToken: string): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export async function startConsentStack(opts: { anonKey?: boolean; daemonEnv?: Record<string, string> } = {}): Promise<ConsentStack> {
  const auth = await startAuthServer({
    oauthServer: { enabled: true, allowDynamicRegistration: true, authorizationPath: '/oauth/consent', registrationRateLimit: false },
  });
  const db = await createTestDatabase();
  const user: ConsentUser = { id: crypto.randomUUID(), email: 'consent-jazeel@example.com', password: 'consent-Jazeel-1' };
  auth.createUser({ id: user.id, email: user.email, password: user.password });
  await db.addUser(user.id, user.email);
  const daemon = await startDaemon({
    env: {
      MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: auth.url, DATABASE_URL: db.url,
      ...(opts.anonKey === false ? {} : { SUPABASE_ANON_KEY: auth.anonKey }),
      ...opts.daemonEnv,
    },
  });
  const origin = `http://127.0.0.1:${daemon.port}`;
  auth.setConfig({ siteUrl: origin });

  const authorizeUrl: ConsentStack['authorizeUrl'] = (client, o = {}) => {
    const verifier = o.verifier ?? crypto.randomBytes(32).toString('base64url');
    const state = o.state ?? crypto.randomBytes(8).toString('hex');
    const url = new URL(`${auth.url}/auth/v1/oauth/authorize`);
    url.search = new URLSearchParams({
      client_id: client.clientId, redirect_uri: client.redirectUri, response_type: 'code', scope: o.scope ?? 'email', state,
      code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
    }).toString();
    return { url: url.toString(), state, verifier };
  };

  const tokenRequest = async (body: Record<string, string>) => {
    const res = await fetch(`${auth.url}/auth/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });
    return { status: res.status, body: await res.json().catch(() => null) };
  };

  return {
    auth, db, daemon, origin, user,
    async registerClient(o = {}) {
      const redirectUri = o.redirectUri ?? 'http://127.0.0.1:9/callback';
      const res = await fetch(`${auth.url}/auth/v1/oauth/clients/register`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ redirect_uris: [redirectUri], client_name: o.name ?? 'Test MCP Client', token_endpoint_auth_method: 'none' }),
      });
      const body = (await res.json()) as { client_id: string };
      if (res.status !== 201) throw new Error(`registering an OAuth client failed: ${res.status} ${JSON.stringify(body)}`);
      return { clientId: body.client_id, redirectUri };
    },
    authorizeUrl,
    async authorize(client, o = {}) {
      const { url, state, verifier } = authorizeUrl(client, o);
      const res = await fetch(url, { redirect: 'manual' });
      const location = res.headers.get('location') ?? '';
      if (res.status !== 302 || !location.startsWith(`${origin}/oauth/consent?`)) throw new Error(`authorize did not redirect to the consent page: ${res.status} ${location} ${await res.text()}`);
      return { consentUrl: location, authorizationId: new URL(location).searchParams.get('authorization_id')!, state, verifier };
    },
    exchangeCode: (client, code, verifier) => tokenRequest({ grant_type: 'authorization_code', code, code_verifier: verifier, client_id: client.clientId, redirect_uri: client.redirectUri }),
    refresh: (client, refreshToken) => tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.clientId }),
    async stop() {
      await daemon.stop();
      await auth.close();
      await db.drop();
    },
  };
}
