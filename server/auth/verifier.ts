// Verifies Supabase access tokens (and, in local mode, the daemon's local secret).
//
// Supabase mode: ES256/RS256 tokens are checked against the project's JWKS
// (`<SUPABASE_URL>/auth/v1/.well-known/jwks.json`); legacy HS256 tokens only when the
// project's JWT secret was configured. All JWT work is done by `jose`; this file only picks
// the key source, states the claim rules, and turns jose's errors into TokenRejected with a
// message a user can act on. No message ever contains the token.
import crypto from 'node:crypto';
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
  type ProtectedHeaderParameters,
} from 'jose';
import { type Identity, TokenRejected, type TokenVerifier } from './identity';

export interface SupabaseJwtVerifierOptions {
  /** The project URL, e.g. `https://<ref>.supabase.co` or `http://127.0.0.1:54321`. */
  supabaseUrl: string;
  /** The project's legacy JWT secret. Only when set are HS256 tokens accepted. */
  jwtSecret?: string;
  /** Leeway for exp / nbf / iat, in seconds. Default 5. */
  clockToleranceSec?: number;
  /** How long a fetched JWKS is trusted before it is refetched. Default 10 min (jose's default; Supabase's edge cache is 10 min too). */
  jwksCacheMaxAgeMs?: number;
  /** Minimum time between refetches triggered by an unknown `kid`. Default 30 s (jose's default). */
  jwksCooldownMs?: number;
  /** Timeout of one JWKS HTTP request. Default 5 s (jose's default). */
  jwksTimeoutMs?: number;
  /**
   * Accept tokens of anonymous Supabase users (`is_anonymous: true`). Default false: anyone can
   * create an anonymous user with the public anon key, so accepting them opens a hosted daemon (and
   * its provider keys) to everybody. EXAI_ALLOW_ANONYMOUS=true opts in.
   */
  allowAnonymous?: boolean;
  /**
   * Which clients of the project's OAuth 2.1 server may use their tokens here (EXAI_OAUTH_CLIENTS).
   * Default: none. See OAuthClients.
   */
  oauthClients?: OAuthClients;
}

/**
 * Audience binding for tokens issued by the project's OAuth 2.1 server (they carry a `client_id`
 * claim; the extension's own sign-in tokens do not). Supabase ignores RFC 8707 `resource` and keeps
 * `aud: authenticated`, so a token cannot say it was issued for this daemon; the operator names the
 * clients instead: `'*'` any client registered in the project (its OAuth server serves only this
 * daemon), or a list of client ids. An empty list refuses every OAuth-issued token.
 */
export type OAuthClients = '*' | readonly string[];

const ASYMMETRIC_ALGS = ['ES256', 'RS256'];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Supabase access tokens are a few KB at most; anything far bigger is not one. */
const MAX_TOKEN_LENGTH = 64 * 1024;

const SIGN_IN_AGAIN = 'Sign in again.';
const EXPIRED_MESSAGE = 'Your sign-in expired. Sign in again (or let the extension refresh the token).';
const API_KEY_MESSAGE = "This is the project's anon key (or service_role key), not a user's access token; sign in to get one.";

/** Thrown by the JWKS key resolver when the key set could not be obtained (network, timeout, bad response). */
class JwksUnavailable extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

export class SupabaseJwtVerifier implements TokenVerifier {
  private readonly issuer: string;
  private readonly jwksUrl: URL;
  private readonly secret: Uint8Array | null;
  private readonly clockTolerance: number;
  private readonly jwks: JWTVerifyGetKey;
  private readonly allowAnonymous: boolean;
  private readonly oauthClients: OAuthClients;

  constructor(options: SupabaseJwtVerifierOptions) {
    this.allowAnonymous = options.allowAnonymous ?? false;
    this.oauthClients = options.oauthClients === '*' ? '*' : (options.oauthClients ?? []).map((id) => id.toLowerCase());
    const base = options.supabaseUrl.trim().replace(/\/+$/, '');
    let parsed: URL;
    try {
      parsed = new URL(base);
    } catch {
      throw new Error(`SUPABASE_URL is not a valid URL: ${JSON.stringify(options.supabaseUrl)}`);
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new Error(`SUPABASE_URL must be an http(s) URL, got ${JSON.stringify(options.supabaseUrl)}`);
    }
    this.issuer = `${base}/auth/v1`;
    this.jwksUrl = new URL(`${base}/auth/v1/.well-known/jwks.json`);
    this.secret = options.jwtSecret ? new TextEncoder().encode(options.jwtSecret) : null;
    this.clockTolerance = options.clockToleranceSec ?? 5;

    const remote = createRemoteJWKSet(this.jwksUrl, {
      cacheMaxAge: options.jwksCacheMaxAgeMs,
      cooldownDuration: options.jwksCooldownMs,
      timeoutDuration: options.jwksTimeoutMs,
    });
    // Key selection (by kid and alg) and refetch-on-unknown-kid are jose's. Here we only
    // separate "the key set could not be fetched" from "the token's key is not in it".
    this.jwks = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (err) {
        if (isKeySelectionError(err)) throw err;
        throw new JwksUnavailable(describeFetchFailure(err));
      }
    };
  }

  async verify(token: string): Promise<Identity> {
    if (typeof token !== 'string' || token.length === 0) {
      throw invalid('No access token was sent. Sign in to get one.');
    }
    if (token.length > MAX_TOKEN_LENGTH) {
      throw invalid(`The access token is ${token.length} characters long, far larger than a Supabase access token; sign in again.`);
    }
    if (/^sb_(publishable|secret)_/.test(token)) {
      throw invalid("This is one of the project's API keys (sb_publishable_… / sb_secret_…), not a user's access token; sign in to get one.");
    }

    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw invalid('The access token is not a JWT (expected header.payload.signature in base64url). Sign in again so the extension sends a fresh token.');
    }

    // The unverified payload is used only to choose a clearer message for the project's API keys.
    if (looksLikeApiKey(token)) throw invalid(API_KEY_MESSAGE);

    const alg = header.alg;
    let payload: JWTPayload;
    try {
      if (alg === 'HS256') {
        if (!this.secret) {
          throw invalid(
            "The access token is signed with HS256 but this daemon only trusts the project's JWKS (ES256/RS256 signing keys). " +
              'Set SUPABASE_JWT_SECRET on the daemon if the project still uses the legacy JWT secret, or migrate the project to signing keys.',
          );
        }
        ({ payload } = await jwtVerify(token, this.secret, this.joseOptions(['HS256'])));
      } else if (typeof alg === 'string' && ASYMMETRIC_ALGS.includes(alg)) {
        ({ payload } = await jwtVerify(token, this.jwks, this.joseOptions(ASYMMETRIC_ALGS)));
      } else {
        throw invalid(
          `The access token uses alg ${describeValue(alg)}, which this daemon does not accept; ` +
            `Supabase access tokens are signed with ES256 or RS256${this.secret ? ' (or HS256 with the legacy secret)' : ''}. Sign in again.`,
        );
      }
    } catch (err) {
      throw this.toRejection(err, alg);
    }

    return this.toIdentity(payload, token);
  }

  private joseOptions(algorithms: string[]) {
    return {
      algorithms,
      issuer: this.issuer,
      audience: 'authenticated',
      requiredClaims: ['exp', 'sub'],
      clockTolerance: this.clockTolerance,
    };
  }

  /** The checks jose does not do for us, then the mapping to Identity. */
  private toIdentity(payload: JWTPayload, token: string): Identity {
    if (payload.role !== 'authenticated') {
      throw invalid(
        `The access token's role is ${describeValue(payload.role)}, not 'authenticated', so it does not belong to a signed-in user. ` +
          'Sign in to get a user access token.',
      );
    }
    if (payload.is_anonymous === true && !this.allowAnonymous) {
      throw invalid(
        'This token belongs to an anonymous (guest) Supabase user, and this daemon accepts only signed-in accounts. ' +
          'Sign in with email, a code or GitHub; an operator who wants guests sets EXAI_ALLOW_ANONYMOUS=true.',
      );
    }
    this.checkOAuthClient(payload.client_id);
    const sub = payload.sub;
    if (typeof sub !== 'string' || !UUID_RE.test(sub)) {
      throw invalid("The access token's sub claim is not a user id (UUID); it was not issued by Supabase Auth for a user. Sign in again.");
    }
    const sessionId = payload.session_id;
    if (typeof sessionId !== 'string' || sessionId.length === 0) {
      throw invalid('The access token has no session_id claim, so it was not issued by a Supabase Auth sign-in. Sign in again.');
    }
    const now = Math.floor(Date.now() / 1000);
    if (typeof payload.iat === 'number' && payload.iat > now + this.clockTolerance) {
      throw invalid(
        `The access token says it was issued ${payload.iat - now} s in the future. Check this machine's clock (and the daemon host's), then sign in again.`,
      );
    }
    const exp = payload.exp as number; // required and checked to be a number by jose
    const email = typeof payload.email === 'string' && payload.email !== '' ? payload.email : null;
    return {
      userId: sub,
      email,
      authSessionId: sessionId,
      expiresAt: exp,
      claims: { ...payload },
      accessToken: token,
    };
  }

  /** A token with a `client_id` claim was issued by the project's OAuth server: only the clients the operator allows. */
  private checkOAuthClient(clientId: unknown): void {
    if (clientId === undefined) return; // the extension's own sign-in (password, code, GitHub)
    if (typeof clientId !== 'string' || !UUID_RE.test(clientId)) {
      throw invalid(`The access token's client_id claim is ${describeValue(clientId)}, not an OAuth client id (UUID) of the project's OAuth server. Sign in again.`);
    }
    if (this.oauthClients === '*' || this.oauthClients.includes(clientId.toLowerCase())) return;
    throw invalid(
      this.oauthClients.length === 0
        ? `This access token was issued by the project's OAuth server to the client ${clientId}, and this daemon accepts no OAuth-issued tokens. ` +
            'The operator lets OAuth clients (MCP agents) in with EXAI_OAUTH_CLIENTS: * for every client of the project, or a comma list of client ids.'
        : `This access token was issued by the project's OAuth server to the client ${clientId}, which is not in this daemon's EXAI_OAUTH_CLIENTS. ` +
            'Ask the operator to add that client id (or to set EXAI_OAUTH_CLIENTS=*).',
    );
  }

  private toRejection(err: unknown, alg: unknown): TokenRejected {
    if (err instanceof TokenRejected) return err;
    if (err instanceof JwksUnavailable) {
      return new TokenRejected(
        'auth_unavailable',
        `Could not fetch the Supabase signing keys from ${this.jwksUrl.host} (${this.jwksUrl.pathname}): ${err.reason}. ` +
          'Retry in a moment; if it keeps failing, check SUPABASE_URL and that Supabase Auth is reachable from the daemon.',
      );
    }
    const code = (err as { code?: unknown } | null)?.code;
    switch (code) {
      case 'ERR_JWT_EXPIRED':
        return new TokenRejected('token_expired', EXPIRED_MESSAGE);
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
        return invalid(this.describeClaimFailure(err as { claim?: string; reason?: string; payload?: Record<string, unknown> }));
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        return invalid(
          alg === 'HS256'
            ? 'The access token signature does not match the configured SUPABASE_JWT_SECRET; the token comes from another project or the secret is wrong. Sign in again, or check SUPABASE_JWT_SECRET.'
            : `The access token signature does not verify with the project's signing key from ${this.jwksUrl.host}; the token was altered or issued by another project. Sign in again.`,
        );
      case 'ERR_JWKS_NO_MATCHING_KEY':
        return invalid(
          `The access token's signing key is not in the project's key set at ${this.jwksUrl.host} (it was revoked, or the token comes from another project). ` +
            'Sign in again; if this happens right after a key rotation, check SUPABASE_URL.',
        );
      case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
        return invalid("The access token has no kid header and several keys in the project's key set could match it. Sign in again.");
      case 'ERR_JOSE_ALG_NOT_ALLOWED':
      case 'ERR_JOSE_NOT_SUPPORTED':
        return invalid(`The access token uses alg ${describeValue(alg)}, which this daemon does not accept. Sign in again.`);
      case 'ERR_JWS_INVALID':
      case 'ERR_JWT_INVALID':
        return invalid('The access token is malformed (its header, payload or signature does not decode). Sign in again.');
      default:
        return invalid('The access token could not be verified. Sign in again.');
    }
  }

  private describeClaimFailure(err: { claim?: string; reason?: string; payload?: Record<string, unknown> }): string {
    const { claim, reason } = err;
    if (reason === 'missing') {
      if (claim === 'exp') return 'The access token has no exp (expiry) claim; Supabase access tokens always expire. Sign in again.';
      if (claim === 'sub') return 'The access token has no sub claim (user id), so it does not identify a user. Sign in to get a user access token.';
      if (claim === 'iss') return `The access token has no iss claim; expected ${this.issuer}. Sign in again.`;
      if (claim === 'aud') return "The access token has no aud claim; expected 'authenticated'. Sign in to get a user access token.";
      return `The access token is missing the ${describeValue(claim)} claim. Sign in again.`;
    }
    switch (claim) {
      case 'iss':
        return (
          `The access token was issued by ${describeValue(err.payload?.iss)}, but this daemon trusts only ${this.issuer}. ` +
          'Sign in to the same Supabase project the daemon uses, or fix SUPABASE_URL.'
        );
      case 'aud':
        return `The access token's audience is ${describeValue(err.payload?.aud)}, not 'authenticated'. Sign in to get a user access token.`;
      case 'nbf':
        return "The access token is not valid yet (nbf is in the future). Check this machine's clock (and the daemon host's), then sign in again.";
      case 'iat':
        return "The access token says it was issued in the future. Check this machine's clock, then sign in again.";
      default:
        return `The access token's ${describeValue(claim)} claim is invalid. Sign in again.`;
    }
  }
}

/**
 * Local mode: the connection must present the secret from the discovery file. Compared in
 * constant time on sha256 digests (equal length whatever the input length).
 */
export function createLocalSecretVerifier(secret: string, osUser: string): TokenVerifier {
  if (!secret) throw new Error('createLocalSecretVerifier: the local secret must not be empty');
  const expected = sha256(secret);
  const userId = `local:${osUser}`;
  return {
    async verify(token: string): Promise<Identity> {
      const ok = typeof token === 'string' && crypto.timingSafeEqual(sha256(token), expected);
      if (!ok) {
        throw invalid('The local daemon secret did not match; the extension re-reads it from the discovery file — reconnect.');
      }
      return {
        userId,
        email: null,
        authSessionId: null,
        expiresAt: null,
        claims: { sub: userId, role: 'local' },
        accessToken: token,
      };
    },
  };
}

function sha256(value: string): Buffer {
  return crypto.createHash('sha256').update(value, 'utf8').digest();
}

function invalid(message: string): TokenRejected {
  return new TokenRejected('token_invalid', message);
}

/** A claim/header value echoed in a message: JSON, and cut short (it is attacker-controlled). */
function describeValue(value: unknown): string {
  if (value === undefined) return '(none)';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The legacy anon / service_role API keys and the CLI demo keys: `{iss:'supabase'|'supabase-demo', role, no sub}`. */
function looksLikeApiKey(token: string): boolean {
  let payload: JWTPayload;
  try {
    payload = decodeJwt(token);
  } catch {
    return false;
  }
  return (
    (payload.role === 'anon' || payload.role === 'service_role') &&
    (payload.iss === 'supabase' || payload.iss === 'supabase-demo') &&
    payload.sub === undefined
  );
}

/** Errors from the JWKS resolver that are about the token's key, not about fetching the set. */
function isKeySelectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ERR_JWKS_NO_MATCHING_KEY' || code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS' || code === 'ERR_JOSE_NOT_SUPPORTED';
}

function describeFetchFailure(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; message?: unknown; cause?: { code?: unknown } } | null;
  if (e?.code === 'ERR_JWKS_TIMEOUT') return 'the request timed out';
  const causeCode = typeof e?.cause?.code === 'string' ? e.cause.code : undefined;
  if (causeCode === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED)';
  if (causeCode === 'ENOTFOUND' || causeCode === 'EAI_AGAIN') return `the host name did not resolve (${causeCode})`;
  if (causeCode) return `network error (${causeCode})`;
  if (e?.code === 'ERR_JOSE_GENERIC' && typeof e.message === 'string' && e.message.includes('200 OK')) {
    return 'the server did not answer 200 OK';
  }
  if (e?.code === 'ERR_JWKS_INVALID' || e?.code === 'ERR_JOSE_GENERIC' || e?.code === 'ERR_JWK_INVALID') {
    return 'the response is not a valid JSON Web Key Set';
  }
  if (e?.name === 'TypeError') return 'network error';
  return 'unexpected error';
}
