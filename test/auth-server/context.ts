// Shared state of one test server and the helpers every route uses (request parsing, token issue).
import type http from 'node:http';
import { AuthHttpError, badRequest } from './errors';
import type { OAuthServerConfig } from './oauthServer';
import type { SessionRow, SessionStore } from './refreshTokens';
import type { AccessTokenClaims, Signer } from './tokens';
import type { UserJson, UserRecord, UserStore } from './users';

export interface OutboxMessage {
  /** Recipient (lower-cased email). */
  to: string;
  /** Which template GoTrue would have sent: `magiclink` (existing user) or `signup` (confirmation). */
  type: 'magiclink' | 'signup';
  /** The 6-digit code ({{ .Token }} in the email templates). */
  otp: string;
  /** sha224(email + otp) in hex ({{ .TokenHash }}), accepted by POST /verify `{type, token_hash}`. */
  tokenHash: string;
  /** The link GoTrue mails ({{ .ConfirmationURL }}). */
  actionLink: string;
  redirectTo: string;
  sentAt: number;
}

export interface FlowState {
  id: string;
  providerType: string;
  authenticationMethod: 'oauth' | 'magiclink' | 'email/signup';
  codeChallenge: string | null;
  codeChallengeMethod: 's256' | 'plain' | null;
  /** UUID auth code (PKCE flows only). */
  authCode: string | null;
  referrer: string;
  userId: string | null;
  createdAt: number;
  authCodeIssuedAt: number | null;
  providerAccessToken: string | null;
}

export interface AuthConfig {
  jwtExpirySec: number;
  reuseIntervalSec: number;
  autoConfirm: boolean;
  siteUrl: string;
  /** GOTRUE_URI_ALLOW_LIST entries (exact URLs or `*` / `**` globs). */
  uriAllowList: string[];
  /** GOTRUE_MAILER_OTP_EXP, default 86400 s. */
  otpExpSec: number;
  /** GOTRUE_EXTERNAL_FLOW_STATE_EXPIRY_DURATION: 300 s (default and minimum). */
  flowStateExpirySec: number;
  /** The OAuth 2.1 server's settings (oauthServer.ts); mutable, like siteUrl, through AuthServer.setConfig. */
  oauthServer: OAuthServerConfig;
}

export interface AuthContext {
  /** SUPABASE_URL, e.g. http://127.0.0.1:PORT */
  url: string;
  issuer: string;
  config: AuthConfig;
  now: () => number;
  users: UserStore;
  sessions: SessionStore;
  signer: Signer;
  outbox: OutboxMessage[];
  flowStates: Map<string, FlowState>;
  /** Counts an error code answered (JSON error or error redirect) for the test hooks. */
  countError: (code: string) => void;
}

export interface AccessTokenResponse {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  expires_at: number;
  refresh_token: string;
  user: UserJson;
  provider_token?: string;
  provider_refresh_token?: string;
}

/** GenerateAccessToken (internal/tokens/service.go): claims in GoTrue's order. */
export async function generateAccessToken(ctx: AuthContext, user: UserRecord, session: SessionRow): Promise<{ token: string; expiresAt: number }> {
  const iat = Math.floor(ctx.now() / 1000);
  const exp = iat + ctx.config.jwtExpirySec;
  const claims: AccessTokenClaims = {
    iss: ctx.issuer,
    sub: user.id,
    aud: user.aud,
    exp,
    iat,
    email: user.email,
    phone: user.phone,
    app_metadata: { ...user.appMetadata },
    user_metadata: { ...user.userMetadata },
    role: user.role,
    aal: session.aal,
    amr: session.amr.map((a) => ({ ...a })),
    session_id: session.id,
    is_anonymous: false,
  };
  // OAuth 2.1 server sessions (oauthServer.ts): the client and the granted scopes, `omitempty` otherwise.
  if (session.oauthClientId) claims.client_id = session.oauthClientId;
  if (session.scopes) claims.scope = session.scopes;
  return { token: await ctx.signer.sign(claims), expiresAt: exp };
}

export async function tokenResponse(ctx: AuthContext, user: UserRecord, session: SessionRow, refreshToken: string): Promise<AccessTokenResponse> {
  const { token, expiresAt } = await generateAccessToken(ctx, user, session);
  return {
    access_token: token,
    token_type: 'bearer',
    expires_in: expiresAt - Math.floor(ctx.now() / 1000),
    expires_at: expiresAt,
    refresh_token: refreshToken,
    user: ctx.users.toJson(user),
  };
}

/** IssueRefreshToken: a new session for `user` signed in with `method` (amr), and its tokens. */
export async function issueSession(ctx: AuthContext, user: UserRecord, method: string, req?: http.IncomingMessage): Promise<AccessTokenResponse> {
  user.lastSignInAt = ctx.now();
  const ua = req?.headers['user-agent'];
  const { session, token } = ctx.sessions.createSession(user.id, method, typeof ua === 'string' ? ua : null);
  return tokenResponse(ctx, user, session, token.token);
}

// ---------------------------------------------------------------------------------------------
// Request helpers

export interface Request {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  method: string;
  /** Path below /auth/v1 (e.g. `/token`), or the full path for non-auth routes. */
  path: string;
  query: URLSearchParams;
  body: Record<string, unknown>;
}

const MAX_BODY = 1024 * 1024;

export async function readBody(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  if (req.method === 'GET' || req.method === 'HEAD') return {};
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new AuthHttpError(413, 'validation_failed', 'Request body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  const type = String(req.headers['content-type'] ?? '');
  if (type.startsWith('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
    throw new Error('not an object');
  } catch (err) {
    throw badRequest('bad_json', `Could not parse request body as JSON: ${(err as Error).message}`);
  }
}

export function str(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  return typeof v === 'string' ? v : '';
}

export function obj(body: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const v = body[key];
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** api/mail.go validateEmail (checkmail.ValidateFormat, approximated). Returns the lower-cased address. */
export function validateEmail(email: string): string {
  if (email === '') throw badRequest('validation_failed', 'An email address is required');
  if (email.length > 255) throw badRequest('validation_failed', 'An email address is too long');
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) throw badRequest('validation_failed', 'Unable to validate email address: invalid format');
  return email.toLowerCase();
}

/** api/pkce.go validatePKCEParams. */
export function validatePKCEParams(method: string, challenge: string): void {
  if ((challenge === '') !== (method === '')) {
    throw badRequest('validation_failed', 'PKCE flow requires code_challenge_method and code_challenge');
  }
  if (challenge === '') return;
  if (challenge.length < 43 || challenge.length > 128) {
    throw badRequest('validation_failed', 'code challenge has to be between 43 and 128 characters');
  }
  if (!/^[a-zA-Z._~0-9-]+$/.test(challenge)) {
    throw badRequest('validation_failed', 'code challenge can only contain alphanumeric characters, hyphens, periods, underscores and tildes');
  }
  if (!['s256', 'plain'].includes(method.toLowerCase())) {
    throw badRequest('validation_failed', 'Invalid code_challenge_method');
  }
}

/**
 * utilities/request.go IsRedirectURLValid: the site URL's host (any port for loopback), any
 * loopback IP literal (RFC 8252 §7.3), or an allow-list match.
 */
export function isRedirectURLValid(config: AuthConfig, redirectURL: string): boolean {
  if (!redirectURL) return false;
  let base: URL;
  let ref: URL;
  try {
    base = new URL(config.siteUrl);
    ref = new URL(redirectURL);
  } catch {
    return false;
  }
  const host = ref.hostname.replace(/^\[|\]$/g, '');
  const isLocalhost = host === 'localhost' || isLoopbackIp(host);
  if (base.hostname === ref.hostname && base.protocol === ref.protocol && (base.port === ref.port || isLocalhost)) return true;
  if (/^[0-9]+$/.test(host)) return false;
  if (isIpLiteral(host)) return isLoopbackIp(host);
  const matchAgainst = redirectURL.split('#')[0];
  return config.uriAllowList.some((pattern) => globMatch(pattern, matchAgainst));
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');
}

function isLoopbackIp(host: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::1' || host === '0:0:0:0:0:0:0:1';
}

/** gobwas/glob with '.' and '/' separators, as GoTrue compiles URIAllowList entries. */
function globMatch(pattern: string, value: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^./]*';
    else if (c === '?') re += '[^./]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(value);
}

/** utilities.GetReferrer: `redirect_to` if valid, else the Referer header if valid, else the site URL. */
export function getReferrer(ctx: AuthContext, r: Request): string {
  const header = r.req.headers['redirect_to'];
  const requested = (typeof header === 'string' && header) || r.query.get('redirect_to') || str(r.body, 'redirect_to');
  if (isRedirectURLValid(ctx.config, requested)) return requested;
  const referer = String(r.req.headers.referer ?? '');
  if (isRedirectURLValid(ctx.config, referer)) return referer;
  return ctx.config.siteUrl;
}
