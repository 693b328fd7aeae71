// Test-only Supabase token helpers: a loopback JWKS endpoint and Supabase-shaped tokens.
//
//   const jwks = await startJwksServer();                 // publishes es256 + rs256
//   const verifier = new SupabaseJwtVerifier({ supabaseUrl: jwks.url });
//   const token = await mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, user: MICHELLE });
//   ...
//   await jwks.close();
//
// Claims follow /work/shared/supabase-auth-facts.md §2 (GoTrue AccessTokenClaims).
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JWK, type JWTHeaderParameters } from 'jose';

export interface TestUser {
  id: string;
  email: string;
}

export const JAZEEL: TestUser = { id: '3f0c1b2a-7d4e-4c8b-9a51-2e6f8d0b1c11', email: 'jazeel@example.com' };
export const MICHELLE: TestUser = { id: '9b2d4e6f-1a3c-4e5b-8d7f-0c1e2a3b4c22', email: 'michelle@example.com' };

/** An asymmetric signing key pair, as Supabase's signing keys are. */
export interface TestKey {
  kid: string;
  alg: 'ES256' | 'RS256';
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** The public key as published in the JWKS (kid, alg, use, key_ops set). */
  publicJwk: JWK;
}

export interface JwksServer {
  /** The SUPABASE_URL to give the verifier, e.g. `http://127.0.0.1:PORT` (no trailing slash). */
  url: string;
  /** The `iss` of this project's access tokens: `${url}/auth/v1`. */
  issuer: string;
  /** `es256` and `rs256` are published at start; `es256Rotated` is not (publish it to simulate a rotation). */
  keys: { es256: TestKey; rs256: TestKey; es256Rotated: TestKey };
  /** Replaces the published key set with the keys of these kids (unknown kids are an error). */
  setPublished(kids: string[]): void;
  /** Makes the JWKS endpoint answer this HTTP status (with an error body) instead of 200; `200` restores it. */
  setStatus(status: number): void;
  /** How many GET requests the JWKS endpoint has received so far. */
  requests(): number;
  /** Stops the server and drops open (keep-alive) connections. */
  close(): Promise<void>;
}

export const JWKS_PATH = '/auth/v1/.well-known/jwks.json';

async function makeKey(alg: 'ES256' | 'RS256', kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig', key_ops: ['verify'], ext: true };
  return { kid, alg, privateKey, publicKey, publicJwk };
}

/** Starts a JWKS endpoint on 127.0.0.1 (random port) serving `GET /auth/v1/.well-known/jwks.json`. */
export async function startJwksServer(): Promise<JwksServer> {
  const suffix = crypto.randomBytes(4).toString('hex');
  const keys = {
    es256: await makeKey('ES256', `es256-${suffix}`),
    rs256: await makeKey('RS256', `rs256-${suffix}`),
    es256Rotated: await makeKey('ES256', `es256-rotated-${suffix}`),
  };
  const all = [keys.es256, keys.rs256, keys.es256Rotated];
  let published: TestKey[] = [keys.es256, keys.rs256];
  let status = 200;
  let count = 0;

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== JWKS_PATH) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"not found"}');
      return;
    }
    count++;
    if (status !== 200) {
      res.writeHead(status, { 'content-type': 'application/json' }).end('{"message":"unavailable"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published.map((k) => k.publicJwk) }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    issuer: `${url}/auth/v1`,
    keys,
    setPublished(kids) {
      published = kids.map((kid) => {
        const key = all.find((k) => k.kid === kid);
        if (!key) throw new Error(`setPublished: unknown kid ${kid}`);
        return key;
      });
    },
    setStatus(s) {
      status = s;
    },
    requests: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface MintOptions {
  /** Signing key: a TestKey (ES256/RS256, its kid goes in the header) or `{ secret }` for HS256 (no kid). */
  key: TestKey | { secret: string | Uint8Array };
  /** The `iss` claim, normally `jwksServer.issuer`. */
  issuer: string;
  /** Whose token it is (sub, email). Default JAZEEL. */
  user?: TestUser;
  /** `session_id` claim. Default: a fresh random UUID. */
  sessionId?: string;
  /** Lifetime in seconds from now (`exp = iat + expiresInSec`). Default 3600. Negative = already expired. */
  expiresInSec?: number;
  /** Merged over the default claims; a key set to `undefined` removes that claim. */
  claims?: Record<string, unknown>;
  /** Merged over the default header (`{ alg, kid, typ: 'JWT' }`); `alg` here also picks the signing algorithm. A key set to `undefined` removes it. */
  header?: Partial<JWTHeaderParameters> & Record<string, unknown>;
}

/** Signs a Supabase-shaped access token (as GoTrue issues after a password sign-in). */
export async function mintAccessToken(opts: MintOptions): Promise<string> {
  const user = opts.user ?? JAZEEL;
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: opts.issuer,
    sub: user.id,
    aud: 'authenticated',
    exp: now + (opts.expiresInSec ?? 3600),
    iat: now,
    email: user.email,
    phone: '',
    app_metadata: { provider: 'email', providers: ['email'] },
    user_metadata: { email: user.email, email_verified: true },
    role: 'authenticated',
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: now }],
    session_id: opts.sessionId ?? crypto.randomUUID(),
    is_anonymous: false,
    ...opts.claims,
  };
  const isSecret = 'secret' in opts.key;
  const header: Record<string, unknown> = isSecret
    ? { alg: 'HS256', typ: 'JWT' }
    : { alg: (opts.key as TestKey).alg, kid: (opts.key as TestKey).kid, typ: 'JWT' };
  Object.assign(header, opts.header);
  const signingKey = isSecret ? toBytes((opts.key as { secret: string | Uint8Array }).secret) : (opts.key as TestKey).privateKey;
  return new SignJWT(dropUndefined(claims))
    .setProtectedHeader(dropUndefined(header) as JWTHeaderParameters)
    .sign(signingKey);
}

/** A legacy `anon` API key of a project whose JWT secret is `secret` (HS256, `{iss:'supabase', ref, role, iat, exp}`). */
export function mintAnonKey(secret: string): Promise<string> {
  return mintApiKey(secret, 'anon');
}

/** A legacy `service_role` API key of a project whose JWT secret is `secret`. */
export function mintServiceRoleKey(secret: string): Promise<string> {
  return mintApiKey(secret, 'service_role');
}

async function mintApiKey(secret: string, role: 'anon' | 'service_role'): Promise<string> {
  const iat = Math.floor(Date.now() / 1000) - 86400;
  return new SignJWT({ iss: 'supabase', ref: 'exaitestprojectref', role, iat, exp: iat + 10 * 365 * 86400 })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(toBytes(secret));
}

/** An `alg: none` JWT carrying `payload` (no signature). */
export function unsignedToken(payload: Record<string, unknown>): string {
  return new UnsecuredJWT(payload).encode();
}

function toBytes(secret: string | Uint8Array): Uint8Array {
  return typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
}

function dropUndefined(obj: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));
}
