// A GoTrue-compatible Supabase Auth test server: node:http on 127.0.0.1, routes under /auth/v1 as
// behind the Supabase gateway, all state in memory. Follows supabase/auth v2.196.0 and
// /work/shared/supabase-auth-facts.md; each handler names the GoTrue function it mirrors.
//
//   const auth = await startAuthServer({ now: () => clock });
//   const supabase = createClient(auth.url, auth.anonKey, { auth: { storage, flowType: 'pkce' } });
//   auth.createUser({ email: 'jazeel@example.com', password: 'pw-123456' });
//   ...
//   await auth.close();
//
// The OAuth 2.1 server (Supabase Auth as an authorization server) is in oauthServer.ts, off unless
// `oauthServer: {enabled: true, …}`; its metadata is also served at the gateway's path-inserted
// /.well-known/oauth-authorization-server/auth/v1 (and openid-configuration) as on Supabase.
//
// Not implemented (answered 404 or as noted): phone/SMS, MFA, anonymous sign-in, SSO/SAML,
// id_token/web3 grants (`unsupported_grant_type`), email change, GET /verify links, rate limits
// (except the OAuth server's dynamic registration limit), session timebox/inactivity limits,
// refresh-token algorithm v2, custom access token hooks.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWTPayload } from 'jose';
import {
  type AuthContext,
  type AuthConfig,
  type FlowState,
  issueSession,
  obj,
  type OutboxMessage,
  readBody,
  type Request,
  str,
  tokenResponse,
  validateEmail,
  validatePKCEParams,
} from './context';
import {
  AuthHttpError,
  AuthOAuthError,
  badRequest,
  forbidden,
  notFound,
  sendJson,
  unprocessable,
  writeAuthError,
  writeGatewayError,
} from './errors';
import { OAuthRoutes } from './oauth';
import { checkSessionClient, OAuthServer, type OAuthServerOptions, resolveOAuthServerConfig } from './oauthServer';
import { type SessionRow, SessionStore } from './refreshTokens';
import { createSigner, mintApiKey, randomSecret, type SigningMode } from './tokens';
import { type UserJson, type UserRecord, UserStore } from './users';

export type { OutboxMessage } from './context';
export type { OAuthServerOptions } from './oauthServer';
export type { UserJson } from './users';

export interface AuthServerOptions {
  /** Port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** GOTRUE_JWT_EXP, default 3600. */
  jwtExpirySec?: number;
  /** GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL; hosted/CLI default 10. */
  reuseIntervalSec?: number;
  /** ES256 (default, an asymmetric signing key with kid) or HS256 (legacy secret project, empty JWKS). */
  signing?: SigningMode;
  /** The project's legacy JWT secret (signs HS256 access tokens and the anon/service_role keys). Default: random 40 chars. */
  jwtSecret?: string;
  /** GOTRUE_MAILER_AUTOCONFIRM, default true. */
  autoConfirm?: boolean;
  /** GOTRUE_SITE_URL, default `http://127.0.0.1:3000`. */
  siteUrl?: string;
  /** GOTRUE_URI_ALLOW_LIST. */
  uriAllowList?: string[];
  /** Clock in ms (default Date.now). Every expiry, iat/exp and the reuse interval use it. */
  now?: () => number;
  /** Called with one line per request (method, path, status). */
  log?: (line: string) => void;
  /**
   * The project URL clients use, when a gateway in front serves /auth/v1 (and /rest/v1) at another
   * address, as Kong does on Supabase: it becomes `url` and the tokens' `iss`. Default: this server.
   */
  publicUrl?: string;
  /**
   * The OAuth 2.1 server (GOTRUE_OAUTH_SERVER_*), off by default. The consent redirect is
   * `siteUrl + authorizationPath + '?authorization_id=<id>'`; change either later with setConfig.
   */
  oauthServer?: OAuthServerOptions;
}

/** What setConfig (and POST /__test/config) may change on a running server. */
export interface AuthServerConfigUpdate {
  /** GOTRUE_SITE_URL, e.g. the daemon's origin once its port is known. */
  siteUrl?: string;
  uriAllowList?: string[];
  /** Merged over the current OAuth server settings (fields left out stay as they are). */
  oauthServer?: Partial<OAuthServerOptions>;
}

export interface AuthServer {
  /** SUPABASE_URL, e.g. `http://127.0.0.1:PORT` (no trailing slash). */
  url: string;
  /** `${url}/auth/v1`, the `iss` of the access tokens. */
  issuer: string;
  port: number;
  signing: SigningMode;
  /** The ES256 key's `kid` (undefined for HS256). */
  kid: string | undefined;
  anonKey: string;
  serviceRoleKey: string;
  jwtSecret: string;
  /** Creates a user directly (as the admin API with `email_confirm: confirmed`, default true). */
  createUser(opts: { email: string; password?: string; confirmed?: boolean; userMetadata?: Record<string, unknown>; id?: string }): UserJson;
  /** Mails "sent" to `email` (all mails when omitted), oldest first. */
  outbox(email?: string): OutboxMessage[];
  /** The 6-digit code of the last mail sent to `email`. */
  lastOtp(email: string): string | undefined;
  /** How many times each error code was answered (gateway refusals count as `gateway:…`). */
  errorCounts(): Record<string, number>;
  /** How many `grant_type=refresh_token` requests arrived. */
  refreshRequests(): number;
  resetCounters(): void;
  setJwtExpiry(sec: number): void;
  setReuseInterval(sec: number): void;
  /** Changes the site URL / allow list / OAuth server settings of the running server. */
  setConfig(update: AuthServerConfigUpdate): void;
  /** The OAuth 2.1 server's state (clients, consents), for test inspection. */
  oauthServer: OAuthServer;
  /** Replaces the clock (undefined = Date.now) and clears any advanceClock offset. */
  setNow(fn: (() => number) | undefined): void;
  /** Moves the clock forward by `ms`. */
  advanceClock(ms: number): void;
  now(): number;
  /** Whether an `auth.sessions` row with this id exists. */
  sessionExists(sessionId: string): boolean;
  /** Session ids of a user. */
  sessionIds(userId: string): string[];
  /** The session's refresh tokens, oldest first (test inspection). */
  refreshTokens(sessionId: string): Array<{ token: string; parent: string | null; revoked: boolean }>;
  close(): Promise<void>;
}

type Handler = (r: Request) => Promise<void> | void;
interface Route {
  method: string;
  path: string | RegExp;
  /** Reachable without an `apikey` (the gateway's open routes). */
  open?: boolean;
  handler: Handler;
}

const ADMIN_ROLES = ['service_role', 'supabase_admin'];
const MIN_PASSWORD_LENGTH = 6;

export async function startAuthServer(options: AuthServerOptions = {}): Promise<AuthServer> {
  let baseNow = options.now ?? Date.now;
  let offset = 0;
  const now = () => baseNow() + offset;
  const signing = options.signing ?? 'ES256';
  const jwtSecret = options.jwtSecret ?? randomSecret(40);
  const config: AuthConfig = {
    jwtExpirySec: options.jwtExpirySec ?? 3600,
    reuseIntervalSec: options.reuseIntervalSec ?? 10,
    autoConfirm: options.autoConfirm ?? true,
    siteUrl: options.siteUrl ?? 'http://127.0.0.1:3000',
    uriAllowList: options.uriAllowList ?? [],
    otpExpSec: 86400,
    flowStateExpirySec: 300,
    oauthServer: resolveOAuthServerConfig(options.oauthServer),
  };
  const errorCounts: Record<string, number> = {};
  let refreshCount = 0;
  const countError = (code: string) => {
    errorCounts[code] = (errorCounts[code] ?? 0) + 1;
  };

  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = options.publicUrl?.replace(/\/+$/, '') ?? `http://127.0.0.1:${port}`;
  const issuer = `${url}/auth/v1`;

  const ctx: AuthContext = {
    url,
    issuer,
    config,
    now,
    users: new UserStore(now),
    sessions: new SessionStore(now),
    signer: await createSigner(signing, issuer, jwtSecret),
    outbox: [],
    flowStates: new Map<string, FlowState>(),
    countError,
  };
  const nowSec = Math.floor(now() / 1000);
  const anonKey = await mintApiKey(jwtSecret, 'anon', 'test', nowSec);
  const serviceRoleKey = await mintApiKey(jwtSecret, 'service_role', 'test', nowSec);
  const oauth = new OAuthRoutes(ctx);
  const oauthServer = new OAuthServer(ctx, { requireAuthentication, requireAdmin: (r) => requireAdmin(r) });

  // ---------------------------------------------------------------------------------------------
  // Authentication of the caller (internal/api/auth.go)

  interface Authenticated {
    claims: JWTPayload & { session_id?: string; role?: string };
    user?: UserRecord;
    session?: SessionRow;
  }

  /** extractBearerToken + parseJWTClaims. */
  async function parseBearer(r: Request): Promise<Authenticated['claims']> {
    const m = /^Bearer\s+(\S+)$/i.exec(String(r.req.headers.authorization ?? ''));
    if (!m) throw new AuthHttpError(401, 'no_authorization', 'This endpoint requires a valid Bearer token');
    try {
      return await ctx.signer.verify(m[1], now());
    } catch (err) {
      throw forbidden('bad_jwt', `invalid JWT: unable to parse or verify signature, ${(err as Error).message}`);
    }
  }

  /** maybeLoadUserOrSession. */
  function loadUserOrSession(claims: Authenticated['claims']): Authenticated {
    if (!claims.sub) throw forbidden('bad_jwt', 'invalid claim: missing sub claim');
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(claims.sub)) {
      throw badRequest('bad_jwt', 'invalid claim: sub claim must be a UUID');
    }
    const user = ctx.users.get(claims.sub);
    if (!user) throw forbidden('user_not_found', 'User from sub claim in JWT does not exist');
    let session: SessionRow | undefined;
    const sid = claims.session_id;
    if (sid && sid !== '00000000-0000-0000-0000-000000000000') {
      session = ctx.sessions.sessions.get(sid);
      if (!session) throw forbidden('session_not_found', 'Session from session_id claim in JWT does not exist');
    }
    return { claims, user, session };
  }

  /** requireAuthentication. */
  async function requireAuthentication(r: Request): Promise<Required<Pick<Authenticated, 'user'>> & Authenticated> {
    const a = loadUserOrSession(await parseBearer(r));
    return a as Required<Pick<Authenticated, 'user'>> & Authenticated;
  }

  /** requireAdminCredentials + requireAdmin. */
  async function requireAdmin(r: Request): Promise<void> {
    const claims = await parseBearer(r);
    if (claims.session_id && claims.session_id !== '00000000-0000-0000-0000-000000000000') loadUserOrSession(claims);
    if (!ADMIN_ROLES.includes(String(claims.role ?? ''))) throw forbidden('not_admin', 'User not allowed');
  }

  // ---------------------------------------------------------------------------------------------
  // Handlers

  function checkPasswordStrength(password: string): void {
    if (password.length < MIN_PASSWORD_LENGTH) {
      throw new AuthHttpError(422, 'weak_password', `Password should be at least ${MIN_PASSWORD_LENGTH} characters.`, {
        weak_password: { reasons: ['length'] },
      });
    }
  }

  /** POST /token (api/token.go Token). */
  async function token(r: Request): Promise<void> {
    const grantType = r.query.get('grant_type') ?? str(r.body, 'grant_type');
    switch (grantType) {
      case 'password':
        return passwordGrant(r);
      case 'refresh_token':
        return refreshTokenGrant(r);
      case 'pkce':
        return oauth.pkceGrant(r);
      default:
        throw badRequest('invalid_credentials', 'unsupported_grant_type');
    }
  }

  /** ResourceOwnerPasswordGrant. */
  async function passwordGrant(r: Request): Promise<void> {
    const email = str(r.body, 'email');
    const phone = str(r.body, 'phone');
    const password = str(r.body, 'password');
    if (email && phone) throw badRequest('validation_failed', 'Only an email address or phone number should be provided on login.');
    if (!email && !phone) throw badRequest('validation_failed', 'missing email or phone');
    const user = email ? ctx.users.findByEmail(email) : undefined; // no phone users on this server
    if (!user || !user.passwordHash) throw badRequest('invalid_credentials', 'Invalid login credentials');
    if (!ctx.users.passwordMatches(user, password)) throw badRequest('invalid_credentials', 'Invalid login credentials');
    if (!user.emailConfirmedAt) throw badRequest('email_not_confirmed', 'Email not confirmed');
    sendJson(r.res, 200, await issueSession(ctx, user, 'password', r.req));
  }

  /** RefreshTokenGrant (rules in refreshTokens.ts). */
  async function refreshTokenGrant(r: Request): Promise<void> {
    refreshCount++;
    const refreshToken = str(r.body, 'refresh_token');
    if (!refreshToken) throw new AuthOAuthError('invalid_request', 'refresh_token required');
    const response = await ctx.sessions.refresh(
      refreshToken,
      config.reuseIntervalSec,
      async (session, issued) => {
        const user = ctx.users.get(session.userId);
        if (!user) throw badRequest('refresh_token_not_found', 'Invalid Refresh Token: Refresh Token Not Found');
        return tokenResponse(ctx, user, session, issued);
      },
      (session) => checkSessionClient(session, undefined), // an OAuth client's refresh token -> invalid_client
    );
    sendJson(r.res, 200, response);
  }

  /** GET /user (UserGet). */
  async function getUser(r: Request): Promise<void> {
    const { user } = await requireAuthentication(r);
    sendJson(r.res, 200, ctx.users.toJson(user));
  }

  /** PUT /user (UserUpdate): `data` (user_metadata) and `password`. */
  async function updateUser(r: Request): Promise<void> {
    const { user } = await requireAuthentication(r);
    if (str(r.body, 'email') && str(r.body, 'email').toLowerCase() !== user.email) {
      throw badRequest('validation_failed', 'Email changes are not supported by the test auth server');
    }
    if (str(r.body, 'phone')) throw badRequest('validation_failed', 'Phone changes are not supported by the test auth server');
    const data = obj(r.body, 'data');
    const password = r.body.password;
    if (typeof password === 'string' && password !== '') {
      checkPasswordStrength(password);
      if (ctx.users.passwordMatches(user, password)) {
        throw unprocessable('same_password', 'New password should be different from the old password.');
      }
      ctx.users.setPassword(user, password);
    }
    if (data) {
      // UpdateUserMetaData: keys set, null deletes.
      const md = { ...user.userMetadata };
      for (const [k, v] of Object.entries(data)) {
        if (v === null) delete md[k];
        else md[k] = v;
      }
      user.userMetadata = md;
    }
    user.updatedAt = now();
    sendJson(r.res, 200, ctx.users.toJson(user));
  }

  /** POST /logout (api/logout.go). */
  async function logout(r: Request): Promise<void> {
    const { user, session } = await requireAuthentication(r);
    const scope = r.query.get('scope') ?? '';
    if (!['', 'global', 'local', 'others'].includes(scope)) {
      throw badRequest('validation_failed', `Unsupported logout scope "${scope}"`);
    }
    if (session && scope === 'local') ctx.sessions.logoutSession(session.id);
    else if (session && scope === 'others') ctx.sessions.logoutOthers(session.id, user.id);
    else ctx.sessions.logoutUser(user.id);
    r.res.writeHead(204).end();
  }

  /** POST /signup (api/signup.go Signup), email only. */
  async function signup(r: Request): Promise<void> {
    const password = str(r.body, 'password');
    if (!password) throw badRequest('validation_failed', 'Signup requires a valid password');
    checkPasswordStrength(password);
    if (str(r.body, 'phone')) throw badRequest('validation_failed', 'Sign up only available with email provider');
    validatePKCEParams(str(r.body, 'code_challenge_method'), str(r.body, 'code_challenge'));
    const email = validateEmail(str(r.body, 'email'));
    const data = obj(r.body, 'data') ?? {};
    let user = ctx.users.findByEmail(email);
    if (user && user.emailConfirmedAt) {
      if (config.autoConfirm) throw unprocessable('user_already_exists', 'User already registered');
      // Email confirmation on: an obfuscated user, so the response does not reveal the account.
      const t = new Date(now()).toISOString();
      sendJson(r.res, 200, {
        id: crypto.randomUUID(), aud: 'authenticated', role: '', email, phone: '', confirmation_sent_at: t,
        app_metadata: { provider: 'email', providers: ['email'] }, user_metadata: {}, identities: [], created_at: t, updated_at: t, is_anonymous: false,
      });
      return;
    }
    if (!user) {
      user = ctx.users.create({ email, password, confirmed: false, userMetadata: data });
      user.userMetadata = { ...data, email, email_verified: false, phone_verified: false, sub: user.id };
    }
    if (config.autoConfirm) {
      ctx.users.confirm(user);
      sendJson(r.res, 200, await issueSession(ctx, user, 'password', r.req));
      return;
    }
    sendMail(user, 'signup', r);
    sendJson(r.res, 200, ctx.users.toJson(user));
  }

  /** sendConfirmation / sendMagicLink: stores sha224(email+otp) and "mails" it to the outbox. */
  function sendMail(user: UserRecord, type: 'signup' | 'magiclink', r: Request): OutboxMessage {
    const otp = String(crypto.randomInt(0, 1_000_000)).padStart(6, '0');
    const tokenHash = crypto.createHash('sha224').update(user.email + otp).digest('hex');
    const pkce = str(r.body, 'code_challenge') !== '';
    const stored = pkce ? `pkce_${tokenHash}` : tokenHash; // addFlowPrefixToToken
    const t = now();
    if (type === 'signup') {
      user.confirmationToken = stored;
      user.confirmationSentAt = t;
    } else {
      user.recoveryToken = stored;
      user.recoverySentAt = t;
    }
    const redirectTo = r.query.get('redirect_to') ?? '';
    const link = new URL(`${issuer}/verify`);
    link.searchParams.set('token', stored);
    link.searchParams.set('type', type);
    link.searchParams.set('redirect_to', redirectTo || config.siteUrl);
    const msg: OutboxMessage = { to: user.email, type, otp, tokenHash: stored, actionLink: link.toString(), redirectTo, sentAt: t };
    ctx.outbox.push(msg);
    return msg;
  }

  /** POST /otp (api/otp.go Otp -> magic_link.go MagicLink), email only. */
  async function otp(r: Request): Promise<void> {
    const emailParam = str(r.body, 'email');
    const phone = str(r.body, 'phone');
    if (emailParam && phone) throw badRequest('validation_failed', 'Only an email address or phone number should be provided');
    if (phone) throw badRequest('validation_failed', 'Unsupported phone provider');
    if (!emailParam) throw badRequest('validation_failed', 'One of email or phone must be set');
    const email = validateEmail(emailParam);
    validatePKCEParams(str(r.body, 'code_challenge_method'), str(r.body, 'code_challenge'));
    const createUser = r.body.create_user === undefined ? true : r.body.create_user === true;
    let user = ctx.users.findByEmail(email);
    if (!user && !createUser) throw unprocessable('otp_disabled', 'Signups not allowed for otp');
    if (!user || !user.emailConfirmedAt) {
      // New or unconfirmed: sign up with a temporary password.
      if (!user) {
        const data = obj(r.body, 'data') ?? {};
        user = ctx.users.create({ email, password: randomSecret(33), confirmed: false, userMetadata: data });
        user.userMetadata = { ...data, email, email_verified: false, phone_verified: false, sub: user.id };
      }
      if (!config.autoConfirm) {
        sendMail(user, 'signup', r); // the confirmation mail doubles as the magic link
        sendJson(r.res, 200, {});
        return;
      }
      ctx.users.confirm(user);
    }
    sendMail(user, 'magiclink', r);
    sendJson(r.res, 200, {});
  }

  /** POST /verify (api/verify.go verifyPost) for email types. */
  async function verify(r: Request): Promise<void> {
    let type = str(r.body, 'type');
    const tokenParam = str(r.body, 'token');
    let tokenHash = str(r.body, 'token_hash');
    const emailParam = str(r.body, 'email');
    if (!type) throw badRequest('validation_failed', 'Verify requires a verification type');
    if ((!tokenParam && !tokenHash) || (tokenParam && tokenHash)) {
      throw badRequest('validation_failed', 'Verify requires either a token or a token hash');
    }
    if (!['signup', 'invite', 'magiclink', 'recovery', 'email'].includes(type)) {
      throw badRequest('validation_failed', 'Unsupported verification type');
    }
    let user: UserRecord | undefined;
    const t = now();
    const expired = (sentAt: number | null) => sentAt === null || t > sentAt + config.otpExpSec * 1000;
    const matches = (actual: string, expected: string) => expected !== '' && (actual === expected || `pkce_${actual}` === expected);
    if (tokenParam) {
      if (str(r.body, 'phone')) throw badRequest('validation_failed', 'Only an email address or phone number should be provided on verify');
      let email: string;
      try {
        email = validateEmail(emailParam);
      } catch (err) {
        throw unprocessable('validation_failed', (err as Error).message);
      }
      tokenHash = crypto.createHash('sha224').update(email + tokenParam).digest('hex');
      user = ctx.users.findByEmail(email);
      if (!user) throw forbidden('otp_expired', 'Token has expired or is invalid');
      let valid = false;
      const confirmationOk = matches(tokenHash, user.confirmationToken) && !expired(user.confirmationSentAt);
      const recoveryOk = matches(tokenHash, user.recoveryToken) && !expired(user.recoverySentAt);
      if (type === 'email') {
        if (confirmationOk) [valid, type] = [true, 'signup'];
        else if (recoveryOk) [valid, type] = [true, 'magiclink'];
      } else if (type === 'signup' || type === 'invite') valid = confirmationOk;
      else valid = recoveryOk;
      if (!valid) throw forbidden('otp_expired', 'Token has expired or is invalid');
    } else {
      if (emailParam || str(r.body, 'phone')) throw badRequest('validation_failed', 'Only the token_hash and type should be provided');
      const candidates = ctx.users.all();
      if (type === 'email') {
        user = candidates.find((u) => u.confirmationToken === tokenHash || u.recoveryToken === tokenHash);
        if (user) type = user.recoveryToken === tokenHash ? 'magiclink' : 'signup';
      } else if (type === 'signup' || type === 'invite') user = candidates.find((u) => u.confirmationToken === tokenHash);
      else user = candidates.find((u) => u.recoveryToken === tokenHash);
      if (!user) throw forbidden('otp_expired', 'Email link is invalid or has expired');
      const sentAt = type === 'signup' || type === 'invite' ? user.confirmationSentAt : user.recoverySentAt;
      if (expired(sentAt)) throw forbidden('otp_expired', 'Email link is invalid or has expired');
    }
    if (type === 'signup' || type === 'invite') {
      ctx.users.confirm(user); // signupVerify
    } else {
      user.recoveryToken = ''; // recoverVerify
      user.recoverySentAt = null;
      if (!user.emailConfirmedAt) ctx.users.confirm(user);
    }
    sendJson(r.res, 200, await issueSession(ctx, user, 'otp', r.req));
  }

  /** POST /admin/users (api/admin.go adminUserCreate), email only. */
  async function adminCreateUser(r: Request): Promise<void> {
    await requireAdmin(r);
    const emailParam = str(r.body, 'email');
    if (!emailParam && !str(r.body, 'phone')) throw badRequest('validation_failed', 'Cannot create a user without either an email or phone');
    if (str(r.body, 'phone')) throw badRequest('validation_failed', 'Phone users are not supported by the test auth server');
    const email = validateEmail(emailParam);
    if (ctx.users.findByEmail(email)) throw unprocessable('email_exists', 'A user with this email address has already been registered');
    // As signup and admin update do: GoTrue checks a given plaintext password's strength here too.
    const password = str(r.body, 'password');
    if (password) checkPasswordStrength(password);
    const id = str(r.body, 'id');
    if (id && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
      throw badRequest('validation_failed', 'ID must conform to the uuid v4 format');
    }
    const user = createUserRecord({
      email,
      password: str(r.body, 'password') || undefined,
      confirmed: r.body.email_confirm === true,
      userMetadata: obj(r.body, 'user_metadata'),
      appMetadata: obj(r.body, 'app_metadata'),
      id: id || undefined,
      role: str(r.body, 'role') || undefined,
    });
    sendJson(r.res, 200, ctx.users.toJson(user));
  }

  function createUserRecord(o: { email: string; password?: string; confirmed: boolean; userMetadata?: Record<string, unknown>; appMetadata?: Record<string, unknown>; id?: string; role?: string }): UserRecord {
    const user = ctx.users.create({
      email: o.email,
      password: o.password ?? randomSecret(64),
      confirmed: false,
      userMetadata: o.userMetadata,
      appMetadata: o.appMetadata,
      id: o.id,
      role: o.role,
    });
    if (o.confirmed) ctx.users.confirm(user);
    return user;
  }

  /**
   * GET /admin/users (api/admin.go adminUsers, api/pagination.go): `page` (default 1) and `per_page`
   * (default 50), newest first (created_at desc), `filter` matching the email (LIKE, case-sensitive)
   * or user_metadata.full_name (ILIKE); `X-Total-Count` and a `Link` header with rel="next" (when
   * there is a next page) and rel="last", built from the request URI with the query keys sorted as
   * Go's url.Values.Encode does.
   */
  async function adminListUsers(r: Request): Promise<void> {
    await requireAdmin(r);
    const whole = (name: string, fallback: number, min: number) => {
      const raw = r.query.get(name);
      if (raw === null || raw === '') return fallback;
      if (!/^\d+$/.test(raw)) throw badRequest('validation_failed', `Bad Pagination Parameters: strconv.ParseUint: parsing "${raw}": invalid syntax`);
      const n = Number(raw);
      if (n < min) throw badRequest('validation_failed', `Bad Pagination Parameters: ${name} must be greater than 0`);
      return n;
    };
    const page = whole('page', 1, 0);
    const perPage = whole('per_page', 50, 1);
    const filter = r.query.get('filter') ?? '';
    const matching = ctx.users.all()
      .map((u, i) => ({ u, i }))
      .filter(({ u }) => !filter || (u.email ?? '').includes(filter)
        || String((u.userMetadata as Record<string, unknown>)?.full_name ?? '').toLowerCase().includes(filter.toLowerCase()))
      .sort((a, b) => b.u.createdAt - a.u.createdAt || b.i - a.i)
      .map(({ u }) => u);
    const offset = (Math.max(page, 1) - 1) * perPage;
    const users = matching.slice(offset, offset + perPage).map((u) => ctx.users.toJson(u));
    const totalPages = Math.ceil(matching.length / perPage);
    const link = (p: number) => {
      const q = new URLSearchParams(r.query);
      q.set('page', String(p));
      q.sort();
      return `<${r.path}?${q.toString()}>`;
    };
    const links = [...(totalPages > page ? [`${link(page + 1)}; rel="next"`] : []), `${link(totalPages)}; rel="last"`];
    sendJson(r.res, 200, { users, aud: 'authenticated' }, { 'x-total-count': String(matching.length), link: links.join(', ') });
  }

  /** GET / DELETE /admin/users/{id} (api/admin.go loadUser: an id that is no UUID is 404 validation_failed). */
  async function adminUser(r: Request): Promise<void> {
    await requireAdmin(r);
    const id = r.path.split('/')[3];
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) throw notFound('validation_failed', 'user_id must be an UUID');
    const user = ctx.users.get(id);
    if (!user) throw notFound('user_not_found', 'User not found');
    if (r.method === 'DELETE') {
      ctx.sessions.logoutUser(user.id); // sessions and refresh tokens cascade
      for (const [k, f] of ctx.flowStates) if (f.userId === user.id) ctx.flowStates.delete(k);
      oauthServer.forgetUser(user.id);
      ctx.users.delete(user.id);
      sendJson(r.res, 200, {});
      return;
    }
    sendJson(r.res, 200, ctx.users.toJson(user));
  }

  /** GET /.well-known/jwks.json (api/jwks.go). */
  function jwks(r: Request): void {
    sendJson(r.res, 200, ctx.signer.jwks(), { 'cache-control': 'public, max-age=600' });
  }

  function settings(r: Request): void {
    sendJson(r.res, 200, {
      external: { email: true, phone: false, github: true, anonymous_users: false },
      disable_signup: false,
      mailer_autoconfirm: config.autoConfirm,
      phone_autoconfirm: false,
      sms_provider: '',
      saml_enabled: false,
    });
  }

  function health(r: Request): void {
    sendJson(r.res, 200, { version: 'exai-test', name: 'GoTrue', description: 'GoTrue is a user registration and authentication API' });
  }

  const routes: Route[] = [
    { method: 'GET', path: '/.well-known/jwks.json', open: true, handler: jwks },
    // Open: MCP clients (the SDK's discovery) send no apikey.
    { method: 'GET', path: '/.well-known/openid-configuration', open: true, handler: (r) => oauthServer.metadata(r) },
    { method: 'GET', path: '/health', handler: health },
    { method: 'GET', path: '/settings', handler: settings },
    { method: 'GET', path: '/authorize', open: true, handler: (r) => oauth.authorize(r) },
    { method: 'GET', path: '/callback', open: true, handler: (r) => oauth.callback(r) },
    { method: 'POST', path: '/callback', open: true, handler: (r) => oauth.callback(r) },
    { method: 'GET', path: '/_github/authorize', open: true, handler: (r) => oauth.consentPage(r) },
    { method: 'POST', path: '/_github/authorize', open: true, handler: (r) => oauth.consentSubmit(r) },
    { method: 'POST', path: '/token', handler: token },
    { method: 'GET', path: '/user', handler: getUser },
    { method: 'PUT', path: '/user', handler: updateUser },
    { method: 'POST', path: '/logout', handler: logout },
    { method: 'POST', path: '/signup', handler: signup },
    { method: 'POST', path: '/otp', handler: otp },
    // Kong's `auth-v1-open` route: /auth/v1/verify needs no apikey (email links are opened in browsers).
    { method: 'POST', path: '/verify', open: true, handler: verify },
    { method: 'POST', path: '/admin/users', handler: adminCreateUser },
    { method: 'GET', path: '/admin/users', handler: adminListUsers },
    { method: 'GET', path: /^\/admin\/users\/[^/]+$/, handler: adminUser },
    { method: 'DELETE', path: /^\/admin\/users\/[^/]+$/, handler: adminUser },
    ...oauthServer.routes(),
  ];

  function apikeyStatus(req: http.IncomingMessage, query: URLSearchParams): 'ok' | 'missing' | 'invalid' {
    const header = req.headers.apikey;
    const key = (Array.isArray(header) ? header[0] : header) ?? query.get('apikey') ?? '';
    if (!key) return 'missing';
    return key === anonKey || key === serviceRoleKey ? 'ok' : 'invalid';
  }

  // ---------------------------------------------------------------------------------------------
  // Test hooks (only on this test server; not under /auth/v1)

  async function testHook(req: http.IncomingMessage, res: http.ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    const body = await readBody(req);
    const num = (k: string) => (typeof body[k] === 'number' ? (body[k] as number) : undefined);
    switch (`${req.method} ${path}`) {
      case 'GET /__test/outbox': {
        const email = query.get('email')?.toLowerCase();
        return sendJson(res, 200, { messages: ctx.outbox.filter((m) => !email || m.to === email) });
      }
      case 'GET /__test/otp': {
        const email = (query.get('email') ?? '').toLowerCase();
        const last = ctx.outbox.filter((m) => m.to === email).at(-1);
        return last ? sendJson(res, 200, last) : sendJson(res, 404, { message: `no mail sent to ${email}` });
      }
      case 'GET /__test/stats':
        return sendJson(res, 200, { errorCounts: { ...errorCounts }, refreshRequests: refreshCount, now: now() });
      case 'POST /__test/stats/reset':
        api.resetCounters();
        return sendJson(res, 200, {});
      case 'POST /__test/users': {
        const user = api.createUser({ email: str(body, 'email'), password: str(body, 'password') || undefined, confirmed: body.confirmed !== false });
        return sendJson(res, 200, user);
      }
      case 'POST /__test/clock': {
        if (body.reset === true) api.setNow(undefined);
        const nowMs = num('nowMs');
        if (nowMs !== undefined) {
          const realStart = Date.now(); // the clock keeps running from nowMs
          api.setNow(() => nowMs + (Date.now() - realStart));
        }
        if (num('advanceMs') !== undefined) api.advanceClock(num('advanceMs')!);
        if (num('advanceSec') !== undefined) api.advanceClock(num('advanceSec')! * 1000);
        return sendJson(res, 200, { now: now() });
      }
      case 'POST /__test/config': {
        if (num('jwtExpirySec') !== undefined) api.setJwtExpiry(num('jwtExpirySec')!);
        if (num('reuseIntervalSec') !== undefined) api.setReuseInterval(num('reuseIntervalSec')!);
        api.setConfig({
          siteUrl: typeof body.siteUrl === 'string' ? body.siteUrl : undefined,
          oauthServer: obj(body, 'oauthServer') as Partial<OAuthServerOptions> | undefined,
        });
        return sendJson(res, 200, {
          jwtExpirySec: config.jwtExpirySec,
          reuseIntervalSec: config.reuseIntervalSec,
          siteUrl: config.siteUrl,
          oauthServer: config.oauthServer,
        });
      }
      default:
        return sendJson(res, 404, { message: 'unknown test hook' });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Dispatch

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', url);
    const method = req.method ?? 'GET';
    if (u.pathname.startsWith('/__test/')) {
      try {
        await testHook(req, res, u.pathname, u.searchParams);
      } catch (err) {
        if (!res.headersSent) sendJson(res, 400, { message: (err as Error).message });
      }
      return;
    }
    // The gateway's RFC 8414 path-inserted metadata URLs (what the MCP SDK tries first for an issuer with a path).
    const pathInserted = /^\/\.well-known\/(oauth-authorization-server|openid-configuration)\/auth\/v1\/?$/.exec(u.pathname);
    if (pathInserted) u.pathname = `/auth/v1/.well-known/${pathInserted[1]}`;
    if (u.pathname !== '/auth/v1' && !u.pathname.startsWith('/auth/v1/')) {
      sendJson(res, 404, { message: 'no Route matched with those values' }); // Kong
      return;
    }
    const path = u.pathname.slice('/auth/v1'.length).replace(/\/+$/, '') || '/';
    const route = routes.find((rt) => rt.method === method && (typeof rt.path === 'string' ? rt.path === path : rt.path.test(path)));
    if (!route?.open) {
      const status = apikeyStatus(req, u.searchParams);
      if (status !== 'ok') {
        countError(writeGatewayError(res, status));
        return;
      }
    }
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n'); // chi
      return;
    }
    const r: Request = { req, res, method, path, query: u.searchParams, body: {} };
    try {
      r.body = await readBody(req);
      await route.handler(r);
    } catch (err) {
      if (res.headersSent) {
        console.error('[auth-server] error after response started:', err);
        res.destroy();
        return;
      }
      countError(writeAuthError(req, res, err));
    }
  }

  server.on('request', (req, res) => {
    res.on('finish', () => options.log?.(`${req.method} ${req.url?.split('?')[0]} ${res.statusCode}`));
    handle(req, res).catch((err) => {
      console.error('[auth-server] request failed:', err);
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });

  const api: AuthServer = {
    url,
    issuer,
    port,
    signing,
    kid: ctx.signer.kid,
    anonKey,
    serviceRoleKey,
    jwtSecret,
    createUser({ email, password, confirmed = true, userMetadata, id }) {
      const e = validateEmail(email);
      if (ctx.users.findByEmail(e)) throw new Error(`createUser: ${e} already exists`);
      if (id && ctx.users.get(id)) throw new Error(`createUser: id ${id} already exists`);
      return ctx.users.toJson(createUserRecord({ email: e, password, confirmed, userMetadata, id }));
    },
    outbox: (email) => ctx.outbox.filter((m) => !email || m.to === email.toLowerCase()).map((m) => ({ ...m })),
    lastOtp: (email) => ctx.outbox.filter((m) => m.to === email.toLowerCase()).at(-1)?.otp,
    errorCounts: () => ({ ...errorCounts }),
    refreshRequests: () => refreshCount,
    resetCounters() {
      for (const k of Object.keys(errorCounts)) delete errorCounts[k];
      refreshCount = 0;
    },
    setJwtExpiry(sec) {
      config.jwtExpirySec = sec;
    },
    setReuseInterval(sec) {
      config.reuseIntervalSec = sec;
    },
    setConfig(update) {
      if (update.siteUrl !== undefined) {
        new URL(update.siteUrl); // throws on a malformed URL before anything changes
        config.siteUrl = update.siteUrl;
      }
      if (update.uriAllowList !== undefined) config.uriAllowList = [...update.uriAllowList];
      if (update.oauthServer !== undefined) config.oauthServer = resolveOAuthServerConfig(update.oauthServer, config.oauthServer);
    },
    oauthServer,
    setNow(fn) {
      baseNow = fn ?? Date.now;
      offset = 0;
    },
    advanceClock(ms) {
      offset += ms;
    },
    now,
    sessionExists: (id) => ctx.sessions.sessions.has(id),
    sessionIds: (userId) => [...ctx.sessions.sessions.values()].filter((s) => s.userId === userId).map((s) => s.id),
    refreshTokens: (sessionId) => ctx.sessions.tokensOfSession(sessionId).map((t) => ({ token: t.token, parent: t.parent, revoked: t.revoked })),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return api;
}
