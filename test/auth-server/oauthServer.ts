// The OAuth 2.1 server of Supabase Auth (Supabase as the authorization server of an MCP server), for
// the test server: metadata, dynamic client registration, authorize -> the consent page's two
// calls -> the authorization-code grant, the refresh grant, userinfo, the user's grants, and the
// admin client API. All state in memory, every map bounded in count.
//
// Source: supabase/auth bc32168e (after v2.196.0); summarised in /work/shared/supabase-auth-facts.md §8.
// - internal/api/api.go: the routes and their middleware order; internal/api/middleware.go
//   requireOAuthServerEnabled (404 feature_disabled), requireOAuthClientAuth (every client-auth
//   failure a GoTrue-shaped 400 invalid_credentials), the DCR rate limiter (10 per 5 min, burst 30).
// - internal/api/jwks.go WellKnownOpenID (the metadata body, Cache-Control public, max-age=600).
// - internal/api/oauthserver/authorize.go (authorize, the consent GET/POST, redirect URL building),
//   handlers.go (register, token grants, grants list/revoke, userinfo, admin clients), auth.go
//   (ExtractClientCredentials).
// - internal/models/oauth_authorization.go (32-char id, UUID code, TTL, VerifyPKCE: s256 and plain),
//   oauth_consent.go (one consent per user and client, upsert re-grants), sessions.go RevokeOAuthSessions.
// - internal/tokens/service.go: the OAuth client consistency check of RefreshTokenGrant, GenerateIDToken.
// Not implemented: the Custom Access Token Hook, user bans, the `resource` of form-encoded token requests
// (GoTrue reads it from JSON bodies only, so do we).
import crypto from 'node:crypto';
import type { JWTPayload } from 'jose';
import { type AuthContext, isRedirectURLValid, type Request, str, tokenResponse } from './context';
import { AuthHttpError, AuthOAuthError, badRequest, forbidden, notFound, sendJson } from './errors';
import {
  clientDetails,
  clientJson,
  decodeClientParams,
  isUuid,
  type OAuthClientRecord,
  OAuthClientStore,
  REGISTER_FIELDS,
  type RegisterParams,
  UPDATE_FIELDS,
  type UpdateParams,
} from './oauthClients';
import type { SessionRow } from './refreshTokens';
import type { UserRecord } from './users';

/** What a test (or main.ts) sets; GoTrue's GOTRUE_OAUTH_SERVER_* settings plus this server's bounds. */
export interface OAuthServerOptions {
  /** GOTRUE_OAUTH_SERVER_ENABLED (default false: every OAuth route answers 404 feature_disabled). */
  enabled: boolean;
  /** GOTRUE_OAUTH_SERVER_ALLOW_DYNAMIC_REGISTRATION (default false: 403 on register, no registration_endpoint). */
  allowDynamicRegistration?: boolean;
  /** GOTRUE_OAUTH_SERVER_AUTHORIZATION_PATH, e.g. '/oauth/consent' (none: authorize redirects with server_error). */
  authorizationPath?: string;
  /** GOTRUE_OAUTH_SERVER_AUTHORIZATION_TTL in seconds (default 600). */
  authorizationTtlSeconds?: number;
  /** GOTRUE_OAUTH_SERVER_DEFAULT_SCOPE (default 'email'). */
  defaultScope?: string;
  /**
   * The DCR rate limit per client IP (GOTRUE_RATE_LIMIT_OAUTH_DYNAMIC_CLIENT_REGISTER per 5 min, burst 30);
   * `false` turns it off (tests that register many clients).
   */
  registrationRateLimit?: { perFiveMinutes: number; burst: number } | false;
  /** Bounds of this test server's maps (defaults: 1000 clients, 1000 authorizations, 10000 consents). */
  limits?: { clients?: number; authorizations?: number; consents?: number };
}

export type OAuthServerConfig = Required<Omit<OAuthServerOptions, 'limits' | 'authorizationPath'>> & {
  authorizationPath: string;
  limits: { clients: number; authorizations: number; consents: number };
};

const DEFAULTS: OAuthServerConfig = {
  enabled: false,
  allowDynamicRegistration: false,
  authorizationPath: '',
  authorizationTtlSeconds: 600,
  defaultScope: 'email',
  registrationRateLimit: { perFiveMinutes: 10, burst: 30 },
  limits: { clients: 1000, authorizations: 1000, consents: 10000 },
};

/** `options` over `base` (a partial update leaves the other settings as they are). */
export function resolveOAuthServerConfig(options: Partial<OAuthServerOptions> | undefined, base: OAuthServerConfig = DEFAULTS): OAuthServerConfig {
  const o = options ?? {};
  const pick = <K extends keyof OAuthServerOptions>(k: K) => (o[k] !== undefined ? o[k] : base[k as keyof OAuthServerConfig]);
  return {
    enabled: pick('enabled') as boolean,
    allowDynamicRegistration: pick('allowDynamicRegistration') as boolean,
    authorizationPath: pick('authorizationPath') as string,
    authorizationTtlSeconds: pick('authorizationTtlSeconds') as number,
    defaultScope: pick('defaultScope') as string,
    registrationRateLimit: pick('registrationRateLimit') as OAuthServerConfig['registrationRateLimit'],
    limits: { ...base.limits, ...(o.limits ?? {}) },
  };
}

export const SUPPORTED_SCOPES = ['openid', 'profile', 'email', 'phone', 'offline_access'];
const OAUTH_AMR_METHOD = 'oauth_provider/authorization_code';

type AuthorizationStatus = 'pending' | 'approved' | 'denied' | 'expired';

/** models.OAuthServerAuthorization. */
interface AuthorizationRecord {
  /** The 32-character id the consent page gets (`authorization_id`). */
  authorizationId: string;
  clientId: string;
  /** Bound by the consent page's first GET. */
  userId: string | null;
  redirectUri: string;
  scope: string;
  state: string;
  resource: string;
  codeChallenge: string;
  /** Lower-cased: 's256' or 'plain'. */
  codeChallengeMethod: string;
  nonce: string;
  status: AuthorizationStatus;
  /** UUID, set on approval. */
  code: string | null;
  createdAt: number;
  expiresAt: number;
}

/** models.OAuthServerConsent: one row per user and client. */
interface ConsentRecord {
  userId: string;
  clientId: string;
  scopes: string;
  grantedAt: number;
  revokedAt: number | null;
}

export interface OAuthRoute {
  method: string;
  path: string | RegExp;
  /** Reachable without an `apikey`: MCP clients discover, register, authorize and get tokens without one. */
  open?: boolean;
  handler: (r: Request) => Promise<void> | void;
}

/** The caller authentication the test server already has (internal/api/auth.go). */
export interface OAuthServerDeps {
  requireAuthentication(r: Request): Promise<{ user: UserRecord; session?: SessionRow }>;
  requireAdmin(r: Request): Promise<void>;
}

/** models.ParseScopeString. */
const parseScopes = (s: string) => s.trim().split(' ').map((x) => x.trim()).filter(Boolean);

/** crypto.SecureAlphanumeric: lowercase base32 characters. */
function secureAlphanumeric(length: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  return Array.from(crypto.randomBytes(length), (b) => alphabet[b & 31]).join('');
}

/** url.Values.Encode of the redirect URI's query with `set` applied (keys sorted, as Go does). */
function withQuery(redirectUri: string, set: Record<string, string>): string {
  const u = new URL(redirectUri);
  for (const [k, v] of Object.entries(set)) if (v !== '') u.searchParams.set(k, v);
  u.searchParams.sort();
  return u.toString();
}

/** security.VerifyPKCEChallenge. */
function pkceProblem(challenge: string, method: string, verifier: string): string | undefined {
  if (!challenge) return undefined;
  if (!verifier) return 'code_verifier is required when PKCE challenge is present';
  let expected: string;
  if (method === 's256') expected = crypto.createHash('sha256').update(verifier).digest('base64url');
  else if (method === 'plain') expected = verifier;
  else return 'code challenge method not supported';
  const a = Buffer.from(challenge);
  const b = Buffer.from(expected);
  return a.length === b.length && crypto.timingSafeEqual(a, b) ? undefined : 'code challenge does not match previously saved code verifier';
}

/** tollbooth as GoTrue configures it for DCR: a token bucket per key, `perFiveMinutes` refill, `burst` capacity. */
class RegistrationLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private static readonly MAX_KEYS = 1000;

  constructor(private readonly now: () => number) {}

  allow(key: string, limit: { perFiveMinutes: number; burst: number }): boolean {
    const t = this.now();
    const refillPerMs = limit.perFiveMinutes / 300_000;
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= RegistrationLimiter.MAX_KEYS) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: limit.burst, at: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(limit.burst, b.tokens + (t - b.at) * refillPerMs);
    b.at = t;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

export class OAuthServer {
  readonly clients: OAuthClientStore;
  private readonly authorizations = new Map<string, AuthorizationRecord>();
  /** Keyed `${userId} ${clientId}`. */
  private readonly consents = new Map<string, ConsentRecord>();
  private readonly limiter: RegistrationLimiter;

  constructor(
    private readonly ctx: AuthContext,
    private readonly deps: OAuthServerDeps,
  ) {
    this.clients = new OAuthClientStore(ctx.now, () => this.config.limits.clients);
    this.limiter = new RegistrationLimiter(ctx.now);
  }

  private get config(): OAuthServerConfig {
    return this.ctx.config.oauthServer;
  }

  routes(): OAuthRoute[] {
    const on = <T extends unknown[]>(fn: (...a: T) => Promise<void> | void) => async (...a: T) => {
      this.requireEnabled();
      await fn(...a);
    };
    return [
      { method: 'GET', path: '/.well-known/oauth-authorization-server', open: true, handler: on((r: Request) => this.metadata(r)) },
      { method: 'POST', path: '/oauth/clients/register', open: true, handler: on((r: Request) => this.registerDynamic(r)) },
      { method: 'GET', path: '/oauth/authorize', open: true, handler: on((r: Request) => this.authorize(r)) },
      { method: 'POST', path: '/oauth/token', open: true, handler: on((r: Request) => this.token(r)) },
      { method: 'GET', path: '/oauth/userinfo', open: true, handler: on((r: Request) => this.userinfo(r)) },
      { method: 'GET', path: /^\/oauth\/authorizations\/[^/]+$/, handler: on((r: Request) => this.getAuthorization(r)) },
      { method: 'POST', path: /^\/oauth\/authorizations\/[^/]+\/consent$/, handler: on((r: Request) => this.consent(r)) },
      { method: 'GET', path: '/user/oauth/grants', handler: (r) => this.listGrants(r) },
      { method: 'DELETE', path: '/user/oauth/grants', handler: (r) => this.revokeGrant(r) },
      { method: 'POST', path: '/admin/oauth/clients', handler: (r) => this.adminRegister(r) },
      { method: 'GET', path: '/admin/oauth/clients', handler: (r) => this.adminList(r) },
      { method: 'GET', path: /^\/admin\/oauth\/clients\/[^/]+$/, handler: (r) => this.adminClient(r) },
      { method: 'PUT', path: /^\/admin\/oauth\/clients\/[^/]+$/, handler: (r) => this.adminClient(r) },
      { method: 'DELETE', path: /^\/admin\/oauth\/clients\/[^/]+$/, handler: (r) => this.adminClient(r) },
      { method: 'POST', path: /^\/admin\/oauth\/clients\/[^/]+\/regenerate_secret$/, handler: (r) => this.adminClient(r) },
    ];
  }

  /** requireOAuthServerEnabled. */
  private requireEnabled(): void {
    if (!this.config.enabled) throw notFound('feature_disabled', 'OAuth server is disabled');
  }

  // -------------------------------------------------------------------------------------------
  // Metadata (jwks.go WellKnownOpenID): one body for RFC 8414 and OIDC discovery

  /** GET /.well-known/openid-configuration (always) and /.well-known/oauth-authorization-server (when enabled). */
  metadata(r: Request): void {
    const issuer = this.ctx.issuer.replace(/\/+$/, '');
    sendJson(
      r.res,
      200,
      {
        issuer: this.ctx.issuer,
        authorization_endpoint: `${issuer}/oauth/authorize`,
        token_endpoint: `${issuer}/oauth/token`,
        jwks_uri: `${issuer}/.well-known/jwks.json`,
        userinfo_endpoint: `${issuer}/oauth/userinfo`,
        ...(this.config.enabled && this.config.allowDynamicRegistration ? { registration_endpoint: `${issuer}/oauth/clients/register` } : {}),
        scopes_supported: SUPPORTED_SCOPES,
        response_types_supported: ['code'],
        response_modes_supported: ['query'],
        grant_types_supported: ['authorization_code', 'refresh_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256', 'HS256', 'ES256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
        claims_supported: ['sub', 'aud', 'iss', 'exp', 'iat', 'auth_time', 'nonce', 'email', 'email_verified', 'phone_number', 'phone_number_verified', 'name', 'picture', 'preferred_username', 'updated_at'],
        code_challenge_methods_supported: ['S256', 'plain'],
      },
      { 'cache-control': 'public, max-age=600' },
    );
  }

  // -------------------------------------------------------------------------------------------
  // Clients

  private registerParams(r: Request): RegisterParams {
    // json.NewDecoder on the body: a form body, or a field of the wrong type, is "Invalid JSON body".
    if (String(r.req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) throw badRequest('bad_json', 'Invalid JSON body');
    return decodeClientParams(r.body, REGISTER_FIELDS) as RegisterParams;
  }

  /** POST /oauth/clients/register (OAuthServerClientDynamicRegister), behind the per-IP rate limit. */
  private registerDynamic(r: Request): void {
    const limit = this.config.registrationRateLimit;
    if (limit && !this.limiter.allow(r.req.socket.remoteAddress ?? '', limit)) {
      throw new AuthHttpError(429, 'over_request_rate_limit', 'Request rate limit reached');
    }
    if (!this.config.allowDynamicRegistration) {
      throw forbidden('oauth_dynamic_client_registration_disabled', 'Dynamic client registration is not enabled');
    }
    const { client, secret } = this.clients.register(this.registerParams(r), 'dynamic');
    sendJson(r.res, 201, clientJson(client, secret));
  }

  /** POST /admin/oauth/clients (AdminOAuthServerClientRegister): registration_type "manual". */
  private async adminRegister(r: Request): Promise<void> {
    await this.deps.requireAdmin(r);
    this.requireEnabled();
    const { client, secret } = this.clients.register(this.registerParams(r), 'manual');
    sendJson(r.res, 201, clientJson(client, secret));
  }

  /** GET /admin/oauth/clients: `{clients:[…]}` newest first (`clients` is omitempty: `{}` when none). */
  private async adminList(r: Request): Promise<void> {
    await this.deps.requireAdmin(r);
    this.requireEnabled();
    const clients = this.clients.list().map((c) => clientJson(c));
    sendJson(r.res, 200, clients.length ? { clients } : {});
  }

  /** GET / PUT / DELETE /admin/oauth/clients/{id}, POST …/{id}/regenerate_secret (LoadOAuthServerClient first). */
  private async adminClient(r: Request): Promise<void> {
    await this.deps.requireAdmin(r);
    this.requireEnabled();
    const [, , , , id, action] = r.path.split('/'); // '', admin, oauth, clients, id, action?
    if (!isUuid(id)) throw badRequest('validation_failed', 'invalid client_id format');
    const client = this.clients.get(id);
    if (!client) throw notFound('oauth_client_not_found', 'OAuth client not found');
    if (action === 'regenerate_secret') {
      const secret = this.clients.regenerateSecret(client);
      sendJson(r.res, 200, clientJson(client, secret));
    } else if (r.method === 'GET') {
      sendJson(r.res, 200, clientJson(client));
    } else if (r.method === 'PUT') {
      const params = decodeClientParams(r.body, UPDATE_FIELDS) as UpdateParams;
      if (Object.keys(params).length === 0) throw badRequest('validation_failed', 'No fields provided for update');
      sendJson(r.res, 200, clientJson(this.clients.update(client, params)));
    } else {
      this.clients.softDelete(client);
      r.res.writeHead(204).end();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Authorize and consent (authorize.go)

  /** GET /oauth/authorize: JSON errors until client and redirect_uri are trusted, then error redirects. */
  private authorize(r: Request): void {
    const q = (k: string) => r.query.get(k) ?? '';
    const clientId = q('client_id');
    const redirectUri = q('redirect_uri');
    if (!clientId) throw badRequest('validation_failed', 'client_id is required');
    if (!redirectUri) throw badRequest('validation_failed', 'redirect_uri is required');
    if (!isUuid(clientId)) throw badRequest('oauth_client_not_found', 'invalid client_id format');
    const client = this.clients.get(clientId);
    if (!client) throw badRequest('oauth_client_not_found', 'invalid client_id');
    // Exact string match, no loopback-port exemption (supabase/auth#2703).
    if (!client.redirectUris.includes(redirectUri)) throw badRequest('validation_failed', 'invalid redirect_uri');

    const state = q('state');
    const redirectError = (error: string, description: string) => {
      this.ctx.countError(`oauth:${error}`);
      r.res.writeHead(302, { location: withQuery(redirectUri, { error, error_description: description, state }) }).end();
    };
    const responseType = q('response_type') || 'code';
    const scope = q('scope') || this.config.defaultScope;
    const problem = this.authorizeParamProblem(responseType, scope, q('resource'), q('code_challenge_method'), q('code_challenge'));
    if (problem) return redirectError('invalid_request', problem);

    this.pruneAuthorizations();
    const t = this.ctx.now();
    const authorization: AuthorizationRecord = {
      authorizationId: secureAlphanumeric(32),
      clientId: client.id,
      userId: null,
      redirectUri,
      scope,
      state,
      resource: q('resource'),
      codeChallenge: q('code_challenge'),
      codeChallengeMethod: q('code_challenge_method').toLowerCase(),
      nonce: q('nonce'),
      status: 'pending',
      code: null,
      createdAt: t,
      expiresAt: t + this.config.authorizationTtlSeconds * 1000,
    };
    this.authorizations.set(authorization.authorizationId, authorization);
    if (!this.config.authorizationPath) return redirectError('server_error', 'oauth authorization path not configured');
    const path = this.config.authorizationPath.startsWith('/') ? this.config.authorizationPath : `/${this.config.authorizationPath}`;
    const consentUrl = `${this.ctx.config.siteUrl.replace(/\/+$/, '')}${path}?authorization_id=${authorization.authorizationId}`;
    r.res.writeHead(302, { location: consentUrl }).end();
  }

  /** validateRemainingAuthorizeParams: the first problem, as the error_description. */
  private authorizeParamProblem(responseType: string, scope: string, resource: string, method: string, challenge: string): string | undefined {
    if (responseType !== 'code') return 'only response_type=code is supported';
    const scopes = parseScopes(scope);
    if (scopes.length === 0) return 'scope parameter cannot be empty';
    const unsupported = scopes.find((s) => !SUPPORTED_SCOPES.includes(s));
    if (unsupported) return `unsupported scope: ${unsupported}`;
    if (resource) {
      let u: URL | undefined;
      try {
        u = new URL(resource);
      } catch {
        return 'resource must be an absolute URI';
      }
      if (resource.includes('#') && u.hash) return 'resource must not include a fragment component';
      if (u.search) return 'resource must not include a query component';
    }
    if (!challenge || !method) return 'PKCE flow requires both code_challenge and code_challenge_method';
    // GoTrue accepts `plain` as well as S256 (case-insensitive); the metadata says so too.
    if (method.toLowerCase() !== 's256' && method.toLowerCase() !== 'plain') return "code_challenge_method must be 'S256' or 'plain'";
    if (challenge.length < 43 || challenge.length > 128) return 'code_challenge must be between 43 and 128 characters';
    return undefined;
  }

  /** validateRequestOrigin: an Origin, if sent, must be the site URL, a loopback URL or allow-listed. */
  private checkOrigin(r: Request): void {
    const origin = r.req.headers.origin;
    if (typeof origin === 'string' && origin !== '' && !isRedirectURLValid(this.ctx.config, origin)) {
      throw badRequest('validation_failed', 'unauthorized request origin');
    }
  }

  /** The authorization, or 404 when unknown or expired (an expired pending one is marked expired). */
  private findLiveAuthorization(id: string): AuthorizationRecord {
    const a = this.authorizations.get(id);
    if (!a) throw notFound('oauth_authorization_not_found', 'authorization not found');
    if (this.ctx.now() > a.expiresAt) {
      if (a.status === 'pending') a.status = 'expired';
      throw notFound('oauth_authorization_not_found', 'authorization not found');
    }
    return a;
  }

  private approve(a: AuthorizationRecord): string {
    a.status = 'approved';
    a.code ??= crypto.randomUUID();
    return withQuery(a.redirectUri, { code: a.code, state: a.state });
  }

  private activeConsent(userId: string, clientId: string): ConsentRecord | undefined {
    const c = this.consents.get(`${userId} ${clientId}`);
    return c && c.revokedAt === null ? c : undefined;
  }

  /**
   * GET /oauth/authorizations/{id} (OAuthServerGetAuthorization): the first caller binds the
   * authorization; an active consent covering every requested scope approves it at once.
   */
  private async getAuthorization(r: Request): Promise<void> {
    const { user } = await this.deps.requireAuthentication(r);
    this.checkOrigin(r);
    const a = this.findLiveAuthorization(decodeURIComponent(r.path.split('/')[3]));
    if (a.status !== 'pending') throw badRequest('validation_failed', 'authorization request cannot be processed');
    let autoApprove = false;
    if (a.userId === null) {
      a.userId = user.id;
      const consent = this.activeConsent(user.id, a.clientId);
      const granted = new Set(consent ? parseScopes(consent.scopes) : []);
      autoApprove = !!consent && parseScopes(a.scope).every((s) => granted.has(s));
    } else if (a.userId !== user.id) {
      throw notFound('oauth_authorization_not_found', 'authorization not found');
    }
    if (autoApprove) {
      sendJson(r.res, 200, { redirect_url: this.approve(a) });
      return;
    }
    const client = this.clients.get(a.clientId);
    if (!client) throw notFound('oauth_authorization_not_found', 'authorization not found');
    sendJson(r.res, 200, {
      authorization_id: a.authorizationId,
      redirect_uri: a.redirectUri,
      client: clientDetails(client),
      user: { id: user.id, ...(user.email ? { email: user.email } : {}) },
      scope: a.scope,
    });
  }

  /** POST /oauth/authorizations/{id}/consent {action}: approve (stores the consent) or deny; never redirects itself. */
  private async consent(r: Request): Promise<void> {
    const { user } = await this.deps.requireAuthentication(r);
    this.checkOrigin(r);
    const action = r.body.action;
    if (action !== 'approve' && action !== 'deny') throw badRequest('validation_failed', "action must be 'approve' or 'deny'");
    const a = this.findLiveAuthorization(decodeURIComponent(r.path.split('/')[3]));
    if (a.status !== 'pending') throw badRequest('validation_failed', 'authorization request is no longer pending');
    if (a.userId !== user.id) throw notFound('oauth_authorization_not_found', 'authorization not found');
    let redirectUrl: string;
    if (action === 'approve') {
      redirectUrl = this.approve(a);
      this.upsertConsent(user.id, a.clientId, parseScopes(a.scope).join(' '));
    } else {
      a.status = 'denied';
      redirectUrl = withQuery(a.redirectUri, { error: 'access_denied', error_description: 'User denied the request', state: a.state });
    }
    sendJson(r.res, 200, { redirect_url: redirectUrl });
  }

  /** UpsertOAuthServerConsent: the scopes are replaced, granted_at renewed, a revoked consent revived. */
  private upsertConsent(userId: string, clientId: string, scopes: string): void {
    const key = `${userId} ${clientId}`;
    const existing = this.consents.get(key);
    if (existing) {
      Object.assign(existing, { scopes, grantedAt: this.ctx.now(), revokedAt: null });
      return;
    }
    if (this.consents.size >= this.config.limits.consents) {
      // Revoked consents go first, then the oldest grant (its user is simply asked again).
      const victim = [...this.consents].find(([, c]) => c.revokedAt !== null)?.[0] ?? this.consents.keys().next().value!;
      this.consents.delete(victim);
    }
    this.consents.set(key, { userId, clientId, scopes, grantedAt: this.ctx.now(), revokedAt: null });
  }

  /** Authorizations past their expiry are dropped; at the bound, the oldest goes too. */
  private pruneAuthorizations(): void {
    const t = this.ctx.now();
    for (const [id, a] of this.authorizations) if (t > a.expiresAt) this.authorizations.delete(id);
    while (this.authorizations.size >= this.config.limits.authorizations) {
      this.authorizations.delete(this.authorizations.keys().next().value!);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Token endpoint (handlers.go OAuthToken, middleware.go requireOAuthClientAuth)

  /** requireOAuthClientAuth + ExtractClientCredentials: every failure is 400 invalid_credentials. */
  private authenticateClient(r: Request): OAuthClientRecord {
    const fail = (why: string) => badRequest('invalid_credentials', why);
    let clientId: string;
    let secret: string;
    let method: string;
    const header = String(r.req.headers.authorization ?? '');
    if (header.startsWith('Basic ')) {
      const encoded = header.slice('Basic '.length);
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.length % 4 !== 0) throw fail('Invalid client credentials: invalid basic auth encoding');
      const decoded = Buffer.from(encoded, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw fail('Invalid client credentials: invalid basic auth format');
      clientId = decoded.slice(0, colon);
      secret = decoded.slice(colon + 1);
      method = 'client_secret_basic';
    } else {
      clientId = str(r.body, 'client_id');
      secret = str(r.body, 'client_secret');
      if (!clientId) throw fail('Invalid client credentials: client_id is required');
      method = secret ? 'client_secret_post' : 'none';
    }
    if (!isUuid(clientId)) throw fail('Invalid client_id format');
    const client = this.clients.get(clientId);
    if (!client) throw fail('Invalid client credentials');
    if (method !== client.tokenEndpointAuthMethod) {
      throw fail(`invalid authentication method: client is registered for '${client.tokenEndpointAuthMethod}' but '${method}' was used`);
    }
    const problem = OAuthClientStore.authenticationProblem(client, secret);
    if (problem) throw fail(problem);
    return client;
  }

  /** POST /oauth/token: client authentication, then the grant. Success answers carry no `user`, `scope` or `expires_at`. */
  private async token(r: Request): Promise<void> {
    const client = this.authenticateClient(r);
    const grantType = str(r.body, 'grant_type');
    if (!grantType) throw new AuthOAuthError('invalid_request', 'grant_type is required');
    if (!client.grantTypes.includes(grantType as never)) {
      throw new AuthOAuthError('unsupported_grant_type', `Client is not allowed to use grant type: ${grantType}`);
    }
    if (grantType === 'authorization_code') return this.authorizationCodeGrant(r, client);
    return this.refreshTokenGrant(r, client);
  }

  /** handleAuthorizationCodeGrant: a new session bound to the client; the code is single-use. */
  private async authorizationCodeGrant(r: Request, client: OAuthClientRecord): Promise<void> {
    const code = str(r.body, 'code');
    if (!code) throw new AuthOAuthError('invalid_request', 'code is required for authorization_code grant');
    const a = [...this.authorizations.values()].find((x) => x.status === 'approved' && x.code === code);
    if (!a) throw new AuthOAuthError('invalid_grant', 'Invalid authorization code');
    if (this.ctx.now() > a.expiresAt) throw new AuthOAuthError('invalid_grant', 'Authorization code has expired');
    if (a.clientId !== client.id) throw new AuthOAuthError('invalid_grant', 'Authorization code was not issued for this client');
    // GoTrue reads `resource` from JSON bodies only.
    const isJson = String(r.req.headers['content-type'] ?? '').includes('application/json');
    const resource = isJson ? str(r.body, 'resource') : '';
    if (resource && resource !== a.resource) throw new AuthOAuthError('invalid_grant', 'Authorization code resource does not match the resource parameter');
    const redirectUri = str(r.body, 'redirect_uri');
    if (redirectUri && redirectUri !== a.redirectUri) throw new AuthOAuthError('invalid_grant', 'Invalid redirect_uri');
    const pkce = pkceProblem(a.codeChallenge, a.codeChallengeMethod, str(r.body, 'code_verifier'));
    if (pkce) throw new AuthOAuthError('invalid_grant', `PKCE verification failed: ${pkce}`);
    const user = a.userId ? this.ctx.users.get(a.userId) : undefined;
    if (!user) throw new AuthOAuthError('invalid_grant', a.userId ? 'User not found for authorization code' : 'Authorization code has no associated user');

    user.lastSignInAt = this.ctx.now();
    const ua = r.req.headers['user-agent'];
    const { session, token } = this.ctx.sessions.createSession(user.id, OAUTH_AMR_METHOD, typeof ua === 'string' ? ua : null, { clientId: client.id, scopes: a.scope });
    this.authorizations.delete(a.authorizationId); // single use (tx.Destroy)
    const body = await this.oauthTokenBody(user, session, token.token);
    if (parseScopes(a.scope).includes('openid')) {
      // GenerateIDToken refuses HS256 (after the session was created and the code used, as in GoTrue).
      if (this.ctx.signer.mode === 'HS256') throw new AuthHttpError(500, 'unexpected_failure', 'Error generating ID token');
      body.id_token = await this.idToken(user, client.id, a.nonce, parseScopes(a.scope));
    }
    sendJson(r.res, 200, body);
  }

  /** handleRefreshTokenGrant: the usual rotation and reuse rules, on a session of this client only. */
  private async refreshTokenGrant(r: Request, client: OAuthClientRecord): Promise<void> {
    const refreshToken = str(r.body, 'refresh_token');
    if (!refreshToken) throw new AuthOAuthError('invalid_request', 'refresh_token is required for refresh_token grant');
    const body = await this.ctx.sessions.refresh(
      refreshToken,
      this.ctx.config.reuseIntervalSec,
      async (session, issued) => {
        const user = this.ctx.users.get(session.userId);
        if (!user) throw badRequest('refresh_token_not_found', 'Invalid Refresh Token: Refresh Token Not Found');
        return this.oauthTokenBody(user, session, issued);
      },
      (session) => checkSessionClient(session, client.id),
    );
    sendJson(r.res, 200, body);
  }

  private async oauthTokenBody(user: UserRecord, session: SessionRow, refreshToken: string): Promise<Record<string, unknown>> {
    const full = await tokenResponse(this.ctx, user, session, refreshToken);
    return { access_token: full.access_token, token_type: full.token_type, expires_in: full.expires_in, refresh_token: full.refresh_token };
  }

  /** GenerateIDToken: `aud` = the client, 1 h, auth_time, nonce, and claims by scope. */
  private idToken(user: UserRecord, clientId: string, nonce: string, scopes: string[]): Promise<string> {
    const iat = Math.floor(this.ctx.now() / 1000);
    const claims: JWTPayload & Record<string, unknown> = {
      iss: this.ctx.issuer,
      sub: user.id,
      aud: clientId,
      exp: iat + 3600,
      iat,
      auth_time: Math.floor((user.lastSignInAt ?? this.ctx.now()) / 1000),
      client_id: clientId,
    };
    if (nonce) claims.nonce = nonce;
    if (scopes.includes('email')) {
      claims.email = user.email;
      claims.email_verified = user.emailConfirmedAt !== null;
    }
    if (scopes.includes('phone')) {
      claims.phone_number = user.phone;
      claims.phone_number_verified = false;
    }
    if (scopes.includes('profile')) Object.assign(claims, profileClaims(user));
    return this.ctx.signer.sign(claims);
  }

  // -------------------------------------------------------------------------------------------
  // userinfo and grants

  /** GET /oauth/userinfo (any access token): `sub`, plus claims by the session's scopes. */
  private async userinfo(r: Request): Promise<void> {
    const { user, session } = await this.deps.requireAuthentication(r);
    const info: Record<string, unknown> = { sub: user.id };
    const scopes = parseScopes(session?.scopes ?? '');
    if (scopes.includes('email')) {
      if (user.email) info.email = user.email;
      if (user.emailConfirmedAt !== null) info.email_verified = true;
    }
    if (scopes.includes('profile')) {
      Object.assign(info, profileClaims(user));
      info.user_metadata = { ...user.userMetadata };
    }
    if (scopes.includes('phone') && user.phone) info.phone = user.phone;
    sendJson(r.res, 200, info);
  }

  /** GET /user/oauth/grants: the user's active consents, newest first, clients that still exist. */
  private async listGrants(r: Request): Promise<void> {
    const { user } = await this.deps.requireAuthentication(r);
    this.requireEnabled();
    const grants = [...this.consents.values()]
      .filter((c) => c.userId === user.id && c.revokedAt === null)
      .sort((a, b) => b.grantedAt - a.grantedAt)
      .flatMap((c) => {
        const client = this.clients.get(c.clientId);
        return client ? [{ client: clientDetails(client), scopes: parseScopes(c.scopes), granted_at: new Date(c.grantedAt).toISOString() }] : [];
      });
    sendJson(r.res, 200, grants);
  }

  /** DELETE /user/oauth/grants?client_id=: revokes the consent and deletes the user's sessions for the client. */
  private async revokeGrant(r: Request): Promise<void> {
    const { user } = await this.deps.requireAuthentication(r);
    this.requireEnabled();
    const clientId = r.query.get('client_id') ?? '';
    if (!clientId) throw badRequest('validation_failed', 'client_id query parameter is required');
    if (!isUuid(clientId)) throw badRequest('validation_failed', 'invalid client_id format');
    const consent = this.activeConsent(user.id, clientId.toLowerCase());
    if (!consent) throw notFound('oauth_consent_not_found', 'No active grant found for this client');
    consent.revokedAt = this.ctx.now();
    // Refresh tokens die with the sessions; access tokens already issued stay valid until `exp`.
    this.ctx.sessions.logoutOAuthClient(user.id, consent.clientId);
    r.res.writeHead(204).end();
  }

  /** A deleted user's consents and authorizations go with it (ON DELETE CASCADE in GoTrue's schema). */
  forgetUser(userId: string): void {
    for (const [k, c] of this.consents) if (c.userId === userId) this.consents.delete(k);
    for (const [k, a] of this.authorizations) if (a.userId === userId) this.authorizations.delete(k);
  }

  /** Test inspection: the user's consent for a client (scopes, revoked). */
  consentOf(userId: string, clientId: string): { scopes: string[]; revoked: boolean } | undefined {
    const c = this.consents.get(`${userId} ${clientId}`);
    return c && { scopes: parseScopes(c.scopes), revoked: c.revokedAt !== null };
  }

  /** Test inspection: how many authorizations are held. */
  authorizationCount(): number {
    return this.authorizations.size;
  }
}

/**
 * RefreshTokenGrant's OAuth client consistency check: an OAuth session refreshes only with its own
 * client; a normal session only without one (`clientId` undefined = the normal /token endpoint).
 */
export function checkSessionClient(session: SessionRow, clientId: string | undefined): void {
  if (session.oauthClientId) {
    if (!clientId) throw new AuthOAuthError('invalid_client', 'Client authentication required for OAuth session');
    if (clientId !== session.oauthClientId) throw new AuthOAuthError('invalid_client', "Client does not match the session's OAuth client");
  } else if (clientId) {
    throw new AuthOAuthError('invalid_client', 'Client authentication not allowed for non-OAuth session');
  }
}

/** The profile-scope claims of userinfo and the ID token. */
function profileClaims(user: UserRecord): Record<string, unknown> {
  const md = user.userMetadata as Record<string, unknown>;
  const s = (k: string) => (typeof md[k] === 'string' && md[k] !== '' ? (md[k] as string) : undefined);
  const out: Record<string, unknown> = {};
  const name = s('name') ?? (user.email || undefined);
  if (name) out.name = name;
  const picture = s('picture') ?? s('avatar_url');
  if (picture) out.picture = picture;
  const username = s('preferred_username') ?? s('username');
  if (username) out.preferred_username = username;
  out.updated_at = Math.floor(user.updatedAt / 1000);
  return out;
}
