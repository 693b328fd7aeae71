// JWT signing and verification for the GoTrue-compatible test server.
//
// Sources (supabase/auth v2.196.0; /work/shared/supabase-auth-facts.md §2):
// - internal/tokens/service.go GenerateAccessToken: the AccessTokenClaims below, `aud` a single
//   string, `iss` = config.JWT.Issuer (`<SUPABASE_URL>/auth/v1`).
// - SignJWT puts the signing JWK's `kid` in the header; a legacy HS256 secret has no kid.
// - internal/api/jwks.go: JWKS lists only asymmetric public keys (an HS256 project has `keys: []`),
//   `Cache-Control: public, max-age=600`.
// - internal/api/auth.go parseJWTClaims: find the key by `kid`, fall back to the legacy secret when
//   `alg` is HS256; any failure (bad signature, expired, unknown kid) is 403 `bad_jwt`.
//   GoTrue does not check `aud`/`iss` there.
import crypto from 'node:crypto';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export type SigningMode = 'ES256' | 'HS256';

export interface AmrEntry {
  method: string;
  timestamp: number;
}

/** internal/tokens/service.go AccessTokenClaims; `client_id` and `scope` only on OAuth-server sessions. */
export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  iat: number;
  email: string;
  phone: string;
  app_metadata: Record<string, unknown>;
  user_metadata: Record<string, unknown>;
  role: string;
  aal: 'aal1' | 'aal2';
  amr: AmrEntry[];
  session_id: string;
  is_anonymous: boolean;
  client_id?: string;
  scope?: string;
}

export interface Signer {
  readonly mode: SigningMode;
  readonly issuer: string;
  readonly jwtSecret: string;
  /** `kid` of the ES256 key (undefined in HS256 mode). */
  readonly kid: string | undefined;
  /** The published JWKS (`{keys: []}` in HS256 mode). */
  jwks(): { keys: JWK[] };
  /** Signs access tokens (AccessTokenClaims) and the OAuth server's ID tokens. */
  sign(claims: JWTPayload): Promise<string>;
  /** Verifies like GoTrue's parseJWTClaims; throws on any failure (caller maps to 403 bad_jwt). */
  verify(token: string, nowMs: number): Promise<JWTPayload>;
}

export function randomSecret(length = 40): string {
  // GoTrue requires at least 32 characters for the JWT secret; letters and digits only.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.randomBytes(length);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

export async function createSigner(mode: SigningMode, issuer: string, jwtSecret: string): Promise<Signer> {
  const secretKey = new TextEncoder().encode(jwtSecret);
  let privateKey: CryptoKey | undefined;
  let publicKey: CryptoKey | undefined;
  let publicJwk: JWK | undefined;
  let kid: string | undefined;
  if (mode === 'ES256') {
    ({ privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true }));
    kid = crypto.randomUUID();
    // The fields a Supabase signing key publishes: alg, crv, ext, key_ops, kid, kty, use, x, y.
    publicJwk = { ...(await exportJWK(publicKey)), alg: 'ES256', ext: true, key_ops: ['verify'], kid, use: 'sig' };
  }

  return {
    mode,
    issuer,
    jwtSecret,
    kid,
    jwks: () => ({ keys: publicJwk ? [publicJwk] : [] }),
    async sign(claims) {
      if (mode === 'ES256') {
        return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' }).sign(privateKey!);
      }
      return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(secretKey);
    },
    async verify(token, nowMs) {
      const currentDate = new Date(nowMs);
      const { payload } = await jwtVerify(
        token,
        async (header) => {
          if (typeof header.kid === 'string' && header.kid === kid && publicKey) return publicKey;
          if (header.alg === 'HS256') return secretKey; // legacy fallback, as parseJWTClaims
          throw new Error(`unrecognized JWT kid ${String(header.kid)} for algorithm ${String(header.alg)}`);
        },
        { algorithms: ['ES256', 'HS256'], currentDate },
      );
      return payload;
    },
  };
}

/**
 * A legacy Supabase API key (`anon` / `service_role`): a long-lived HS256 JWT signed with the
 * project's JWT secret, payload `{iss:'supabase', ref, role, iat, exp}` (facts §2).
 */
export function mintApiKey(jwtSecret: string, role: 'anon' | 'service_role', ref = 'test', nowSec = Math.floor(Date.now() / 1000)): Promise<string> {
  return new SignJWT({ iss: 'supabase', ref, role, iat: nowSec, exp: nowSec + 10 * 365 * 86400 })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(jwtSecret));
}
