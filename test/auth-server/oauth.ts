// OAuth sign-in with a "GitHub stand-in", and the PKCE code exchange.
//
// Flow (as supabase/auth v2.196.0 internal/api/external.go, external_oauth.go, token.go PKCE):
//   GET  /auth/v1/authorize?provider=github&redirect_to=…&code_challenge=…&code_challenge_method=s256
//        -> flow state (id = OAuth `state`, UUID auth code when PKCE) -> 302 to the provider.
//   GET  /auth/v1/_github/authorize?…&state=…   the stand-in for github.com's consent page (HTML
//        form: `login`, `email`, button#authorize).
//   POST /auth/v1/_github/authorize             -> 302 to GoTrue's callback with `code` and `state`.
//   GET  /auth/v1/callback?code=…&state=…       -> find/link/create the user; PKCE: store the user on
//        the flow state and 302 to `redirect_to?code=<auth code>` (prepPKCERedirectURL); implicit:
//        issue a session and 302 to `redirect_to#access_token=…` (AsRedirectURL). Errors 302 to the
//        redirect URL with `error`, `error_code`, `error_description` (redirectErrors).
//   POST /auth/v1/token?grant_type=pkce {auth_code, code_verifier} -> 404 flow_state_not_found,
//        422 flow_state_expired (300 s after the flow state was created), 400 bad_code_verifier,
//        else a session (the flow state is deleted).
import crypto from 'node:crypto';
import { type AuthContext, type FlowState, getReferrer, issueSession, type Request, str, validatePKCEParams } from './context';
import { AuthHttpError, AuthOAuthError, badRequest, notFound, sendJson, unprocessable, type ErrorCode } from './errors';
import type { UserRecord } from './users';

/** What the stand-in "GitHub" knows about an authorization it granted. */
interface GithubGrant {
  login: string;
  email: string;
  state: string;
  expiresAt: number;
}

const GITHUB_CLIENT_ID = 'test-github-client-id';
const PROVIDER_PATH = '/_github/authorize';

export class OAuthRoutes {
  private readonly grants = new Map<string, GithubGrant>();

  constructor(private readonly ctx: AuthContext) {}

  /** GET /authorize (ExternalProviderRedirect). Open route at the gateway (no apikey). */
  authorize(r: Request): void {
    const provider = r.query.get('provider') ?? '';
    if (provider !== 'github') {
      throw badRequest('validation_failed', `Unsupported provider: provider ${provider} could not be found`);
    }
    const referrer = getReferrer(this.ctx, r);
    const challenge = r.query.get('code_challenge') ?? '';
    const method = r.query.get('code_challenge_method') ?? '';
    validatePKCEParams(method, challenge);

    const flow: FlowState = {
      id: crypto.randomUUID(),
      providerType: 'github',
      authenticationMethod: 'oauth',
      codeChallenge: challenge || null,
      codeChallengeMethod: challenge ? (method.toLowerCase() as 's256' | 'plain') : null,
      authCode: challenge ? crypto.randomUUID() : null,
      referrer,
      userId: null,
      createdAt: this.ctx.now(),
      authCodeIssuedAt: null,
      providerAccessToken: null,
    };
    this.ctx.flowStates.set(flow.id, flow);

    // Every non-reserved query parameter is passed on to the provider (e.g. GitHub's `login` hint).
    const reserved = new Set(['provider', 'scopes', 'client_id', 'client_secret', 'redirect_uri', 'response_type', 'state', 'code_challenge', 'code_challenge_method', 'code_verifier']);
    const out = new URL(`${this.ctx.issuer}${PROVIDER_PATH}`);
    for (const [k, v] of r.query) if (!reserved.has(k.toLowerCase())) out.searchParams.set(k, v);
    out.searchParams.set('client_id', GITHUB_CLIENT_ID);
    out.searchParams.set('redirect_uri', `${this.ctx.issuer}/callback`);
    out.searchParams.set('response_type', 'code');
    out.searchParams.set('scope', ['user:email', ...(r.query.get('scopes') ?? '').split(/[\s,]+/).filter(Boolean)].join(' '));
    out.searchParams.set('state', flow.id);
    redirect(r, out.toString());
  }

  /** GET /_github/authorize: the consent page (stands in for https://github.com/login/oauth/authorize). */
  consentPage(r: Request): void {
    const state = r.query.get('state') ?? '';
    const redirectUri = r.query.get('redirect_uri') ?? '';
    const login = r.query.get('login') || 'octocat';
    const email = r.query.get('email') || `${login}@example.com`;
    const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorize application · GitHub (test stand-in)</title></head>
<body>
  <h1>Authorize Supabase test project</h1>
  <p>GitHub stand-in of the EXAI auth test server. Nothing here talks to github.com.</p>
  <form method="post" action="${esc(`/auth/v1${PROVIDER_PATH}`)}" id="consent">
    <input type="hidden" name="state" value="${esc(state)}">
    <input type="hidden" name="redirect_uri" value="${esc(redirectUri)}">
    <label>GitHub login <input type="text" id="login" name="login" value="${esc(login)}"></label>
    <label>Primary email <input type="email" id="email" name="email" value="${esc(email)}"></label>
    <button type="submit" id="authorize" name="decision" value="authorize">Authorize</button>
    <button type="submit" id="cancel" name="decision" value="cancel">Cancel</button>
  </form>
</body></html>`;
    r.res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    r.res.end(html);
  }

  /** POST /_github/authorize: the user clicked Authorize (or Cancel) on the stand-in. */
  consentSubmit(r: Request): void {
    const state = str(r.body, 'state');
    const redirectUri = str(r.body, 'redirect_uri');
    if (redirectUri !== `${this.ctx.issuer}/callback`) {
      // GitHub refuses a redirect_uri that is not the OAuth app's callback URL.
      sendJson(r.res, 400, { error: 'redirect_uri_mismatch', error_description: 'The redirect_uri MUST match the registered callback URL for this application.' });
      return;
    }
    const back = new URL(redirectUri);
    back.searchParams.set('state', state);
    if (str(r.body, 'decision') === 'cancel') {
      back.searchParams.set('error', 'access_denied');
      back.searchParams.set('error_description', 'The user has denied your application access.');
      redirect(r, back.toString());
      return;
    }
    const login = str(r.body, 'login').trim() || 'octocat';
    const email = (str(r.body, 'email').trim() || `${login}@example.com`).toLowerCase();
    const code = crypto.randomBytes(10).toString('hex');
    this.grants.set(code, { login, email, state, expiresAt: this.ctx.now() + 10 * 60_000 });
    back.searchParams.set('code', code);
    redirect(r, back.toString());
  }

  /** GET|POST /callback (ExternalProviderCallback). Open route at the gateway. */
  async callback(r: Request): Promise<void> {
    const q = r.method === 'POST' ? new URLSearchParams(Object.entries(r.body).map(([k, v]): [string, string] => [k, String(v)])) : r.query;
    const siteUrl = this.ctx.config.siteUrl;

    // loadFlowState: a bad state 303s to the site URL with the error in the query.
    let flow: FlowState;
    try {
      flow = this.loadFlowState(q.get('state') ?? '');
    } catch (err) {
      const u = new URL(siteUrl);
      this.ctx.countError(setErrorParams(u.searchParams, err));
      redirect(r, u.toString(), 303);
      return;
    }

    const target = new URL(flow.referrer || siteUrl);
    try {
      const location = await this.completeCallback(r, q, flow, target);
      redirect(r, location);
    } catch (err) {
      // redirectErrors: error in the query and (deprecated) in the fragment.
      this.ctx.countError(setErrorParams(target.searchParams, err));
      const hq = new URLSearchParams();
      for (const k of ['error', 'error_description', 'error_code']) {
        const v = target.searchParams.get(k);
        if (v) hq.set(k, v);
      }
      hq.set('sb', '');
      target.hash = hq.toString();
      redirect(r, target.toString());
    }
  }

  private loadFlowState(state: string): FlowState {
    if (!state) throw badRequest('bad_oauth_callback', 'OAuth state parameter missing');
    if (!/^[0-9a-f-]{36}$/i.test(state)) throw badRequest('bad_oauth_state', 'OAuth state parameter is invalid');
    const flow = this.ctx.flowStates.get(state);
    if (!flow) throw badRequest('bad_oauth_state', 'OAuth state not found or expired');
    if (this.isExpired(flow)) throw badRequest('bad_oauth_state', 'OAuth state has expired');
    if (flow.authCode && flow.userId) throw badRequest('flow_state_already_used', 'State has already been used');
    return flow;
  }

  private async completeCallback(r: Request, q: URLSearchParams, flow: FlowState, target: URL): Promise<string> {
    const extError = q.get('error');
    if (extError) throw new AuthOAuthError(extError, q.get('error_description') ?? '');
    const code = q.get('code') ?? '';
    if (!code) throw badRequest('bad_oauth_callback', 'OAuth callback with missing authorization code missing');
    const grant = this.grants.get(code);
    this.grants.delete(code);
    if (!grant || grant.state !== flow.id || grant.expiresAt < this.ctx.now()) {
      throw new AuthHttpError(500, 'unexpected_failure', `Unable to exchange external code: ${code.slice(0, 4)}`);
    }
    const providerToken = `gho_${crypto.randomBytes(18).toString('hex')}`;
    const user = this.findOrCreateUser(grant);

    if (flow.authCode) {
      flow.userId = user.id;
      flow.authCodeIssuedAt = this.ctx.now();
      flow.providerAccessToken = providerToken;
      target.searchParams.set('code', flow.authCode); // prepPKCERedirectURL
      return target.toString();
    }
    // Implicit flow: tokens in the fragment.
    const token = await issueSession(this.ctx, user, 'oauth', r.req);
    this.ctx.flowStates.delete(flow.id);
    const frag = new URLSearchParams({
      provider_token: providerToken,
      access_token: token.access_token,
      token_type: token.token_type,
      expires_in: String(token.expires_in),
      expires_at: String(token.expires_at),
      refresh_token: token.refresh_token,
      sb: '',
    });
    return `${target.toString().split('#')[0]}#${frag.toString()}`;
  }

  /** createAccountFromExternalIdentity: same GitHub identity -> that user; same verified email -> link; else new user. */
  private findOrCreateUser(grant: GithubGrant): UserRecord {
    const providerId = String(parseInt(crypto.createHash('sha256').update(grant.login).digest('hex').slice(0, 8), 16) % 100_000_000);
    const identityData = {
      avatar_url: `https://avatars.githubusercontent.com/u/${providerId}?v=4`,
      email: grant.email,
      email_verified: true,
      full_name: grant.login,
      iss: 'https://api.github.com',
      name: grant.login,
      phone_verified: false,
      preferred_username: grant.login,
      provider_id: providerId,
      sub: providerId,
      user_name: grant.login,
    };
    const users = this.ctx.users;
    for (const u of users.all()) {
      const id = u.identities.find((i) => i.provider === 'github' && i.providerId === providerId);
      if (id) {
        id.identityData = identityData;
        id.lastSignInAt = this.ctx.now();
        return u;
      }
    }
    const existing = users.findByEmail(grant.email);
    if (existing) {
      users.addIdentity(existing, 'github', providerId, identityData);
      users.confirm(existing);
      return existing;
    }
    return users.create({
      email: grant.email,
      confirmed: true,
      provider: 'github',
      providerId,
      identityData,
      userMetadata: identityData,
    });
  }

  private isExpired(flow: FlowState): boolean {
    return this.ctx.now() > flow.createdAt + this.ctx.config.flowStateExpirySec * 1000;
  }

  /** POST /token?grant_type=pkce (api/token.go PKCE). */
  async pkceGrant(r: Request): Promise<void> {
    const authCode = str(r.body, 'auth_code');
    const verifier = str(r.body, 'code_verifier');
    if (!authCode || !verifier) {
      throw badRequest('validation_failed', 'invalid request: both auth code and code verifier should be non-empty');
    }
    const flow = [...this.ctx.flowStates.values()].find((f) => f.authCode === authCode);
    if (!flow || !flow.userId) throw notFound('flow_state_not_found', 'invalid flow state, no valid flow state found');
    if (this.isExpired(flow)) throw unprocessable('flow_state_expired', 'invalid flow state, flow state has expired');
    const user = this.ctx.users.get(flow.userId);
    if (!user) throw notFound('flow_state_not_found', 'invalid flow state, no valid flow state found');
    if (!verifyPKCE(flow, verifier)) {
      throw badRequest('bad_code_verifier', 'code challenge does not match previously saved code verifier');
    }
    const method = flow.authenticationMethod === 'oauth' ? 'oauth' : flow.authenticationMethod === 'magiclink' ? 'magiclink' : 'email/signup';
    const token = await issueSession(this.ctx, user, method, r.req);
    if (flow.providerAccessToken) token.provider_token = flow.providerAccessToken;
    this.ctx.flowStates.delete(flow.id);
    sendJson(r.res, 200, token);
  }
}

/** security/pkce.go VerifyPKCEChallenge. */
function verifyPKCE(flow: FlowState, verifier: string): boolean {
  const expected = flow.codeChallenge ?? '';
  const actual = flow.codeChallengeMethod === 'plain' ? verifier : crypto.createHash('sha256').update(verifier).digest('base64url');
  const a = Buffer.from(expected);
  const b = Buffer.from(actual);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function redirect(r: Request, location: string, status = 302): void {
  r.res.writeHead(status, { location, 'cache-control': 'no-store' });
  r.res.end();
}

/** getErrorQueryString. Returns the code to count. */
function setErrorParams(q: URLSearchParams, err: unknown): string {
  const oauthErrorMap: Record<number, string> = { 400: 'invalid_request', 401: 'unauthorized_client', 403: 'access_denied', 500: 'server_error', 503: 'temporarily_unavailable' };
  if (err instanceof AuthHttpError) {
    q.set('error', oauthErrorMap[err.status] ?? 'server_error');
    q.set('error_description', err.message);
    q.set('error_code', err.code as ErrorCode);
    return err.code;
  }
  if (err instanceof AuthOAuthError) {
    q.set('error', err.error);
    q.set('error_description', err.description);
    return `oauth:${err.error}`;
  }
  q.set('error', 'server_error');
  q.set('error_description', String((err as Error)?.message ?? err));
  return 'unexpected_failure';
}
