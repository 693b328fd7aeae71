// The daemon's OAuth consent and grants pages, for MCP clients that connect through the Supabase
// project's OAuth 2.1 server: Supabase sends the person's browser to `/oauth/consent?authorization_id=…`
// (the project's Site URL is the daemon's origin), the person signs in here and approves or denies,
// and this page sends the browser back to the client.
//
//   GET  /oauth/consent?authorization_id=  sign-in form, or the client/account/scopes with Approve and Deny
//   POST /oauth/consent                    action=approve|deny -> 303 to the client's redirect URI
//   POST /oauth/sign-in                    step=password | send-code | verify-code | new-code
//   GET  /oauth/github[?authorization_id=] -> 303 to Supabase's GitHub sign-in (PKCE)
//   GET  /oauth/callback                   GitHub sign-in comes back here: code -> session
//   POST /oauth/sign-out                   ends the Supabase session and forgets the cookie
//   GET  /oauth/grants                     the applications this person allowed
//   POST /oauth/grants                     revoke=<client id>
//
// The browser never holds a Supabase token: the daemon keeps each person's session in memory
// (browserSessions.ts) under an opaque cookie and calls Supabase Auth itself with supabase-js.
// Every POST passes the cross-site and form-token checks (csrf.ts). Supabase mode only.
import type http from 'node:http';
import { GoTrueClient, isAuthApiError, isAuthSessionMissingError, type AuthError, type OAuthGrant, type SupportedStorage } from '@supabase/supabase-js';
import type { Logger } from '../log';
import { requestOrigin } from '../mcp/protectedResource';
import { explainAuthorizationError, explainGrantError, explainSignInError, type Explained } from './authErrors';
import { BrowserSessions, DEFAULT_BROWSER_SESSION_LIMITS, StorageFull, type BrowserSession, type BrowserSessionLimits } from './browserSessions';
import { crossSiteRefusal, csrfTokenMatches } from './csrf';
import { clearedSessionCookie, FormRefused, MAX_FORM_BYTES, readForm, readSessionCookie, sessionCookie } from './httpForms';
import { consentPage, grantsPage, messagePage, securityHeaders, signInPage, type FormContext, type Page } from './pages';
import { displayOrigin, formActionSource, safeClientRedirect } from './redirects';

export const OAUTH_PATH_PREFIX = '/oauth/';
/** Bound on each call to Supabase Auth. */
const AUTH_CALL_TIMEOUT_MS = 15_000;
/** GoTrue's ids are 32 alphanumerics; anything else never reaches a URL. */
const AUTHORIZATION_ID = /^[A-Za-z0-9_-]{1,128}$/;
const CLIENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_EMAIL_LENGTH = 320;
const MAX_PASSWORD_LENGTH = 1024;
const OTP_CODE = /^[0-9A-Za-z]{4,10}$/;
/** GitHub's answer in the callback: only well-formed values are looked at. */
const MAX_CODE_LENGTH = 512;
/** Supabase's answers that mean the person's session is over: they must sign in again. */
const ENDED_SESSION_CODES = new Set(['session_not_found', 'session_expired', 'refresh_token_not_found', 'refresh_token_already_used', 'user_not_found', 'bad_jwt', 'no_authorization']);

export interface OAuthPagesOptions {
  mode: 'local' | 'supabase';
  /** `<SUPABASE_URL>` without a trailing slash; null in local mode. */
  supabaseUrl: string | null;
  /** The project's anon (publishable) key: supabase-js needs it to call Auth. Null: the pages say the operator must set it. */
  anonKey: string | null;
  /** Browsers reach the daemon over https (its own certificate or a proxy that ends TLS): the cookie is Secure. */
  https: boolean;
  limits?: BrowserSessionLimits;
  maxFormBytes?: number;
}

export interface OAuthPages {
  serves(path: string): boolean;
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** Browser sessions held now (tests, /health-style introspection). */
  sessionCount(): number;
}

type Outcome = Page | { redirect: string };

interface RequestState {
  req: http.IncomingMessage;
  origin: string;
  /** Set-Cookie headers to send with the answer. */
  cookies: string[];
}

const ROUTES: Record<string, string[]> = {
  '/oauth/consent': ['GET', 'POST'],
  '/oauth/sign-in': ['POST'],
  '/oauth/github': ['GET'],
  '/oauth/callback': ['GET'],
  '/oauth/sign-out': ['POST'],
  '/oauth/grants': ['GET', 'POST'],
};

export function createOAuthPages(opts: OAuthPagesOptions, baseLog: Logger): OAuthPages {
  const log = baseLog.child({ component: 'oauth-pages' });
  const supabaseUrl = opts.supabaseUrl;
  const anonKey = opts.anonKey;
  const maxFormBytes = opts.maxFormBytes ?? MAX_FORM_BYTES;
  const sessions = new BrowserSessions(opts.limits ?? DEFAULT_BROWSER_SESSION_LIMITS, (storage, storageKey) => makeAuthClient(storage, storageKey));

  /** One Supabase Auth client per browser session, over that session's storage; it never refreshes on a timer. */
  function makeAuthClient(storage: SupportedStorage, storageKey: string): GoTrueClient {
    return new GoTrueClient({
      url: `${supabaseUrl}/auth/v1`,
      // What supabase-js's createClient sends to Auth; the user's token replaces Authorization on user calls.
      headers: { Authorization: `Bearer ${anonKey}`, apikey: anonKey! },
      storage,
      storageKey,
      persistSession: true,
      autoRefreshToken: false,
      detectSessionInUrl: false,
      flowType: 'pkce',
      fetch: (input, init) => fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(AUTH_CALL_TIMEOUT_MS) }),
    });
  }

  function formContext(session: BrowserSession, authorizationId: string | null): FormContext {
    return { csrfToken: session.csrfToken, authorizationId };
  }

  /** The page to come back to after signing in or out: the consent page of this authorization, else the grants page. */
  function returnPath(authorizationId: string | null): string {
    return authorizationId ? `/oauth/consent?authorization_id=${encodeURIComponent(authorizationId)}` : '/oauth/grants';
  }

  function sessionOf(state: RequestState, create: boolean): BrowserSession | null {
    const existing = sessions.get(readSessionCookie(state.req));
    if (existing || !create) return existing;
    const created = sessions.create();
    state.cookies.push(sessionCookie(created.id, opts.https));
    return created;
  }

  function signIn(state: RequestState, session: BrowserSession, authorizationId: string | null, message?: string, status?: number, email?: string): Page {
    return signInPage(formContext(session, authorizationId), { message, status, email, pendingEmail: session.pendingEmail, daemonOrigin: state.origin });
  }

  /**
   * After a failed call: true when the person's Supabase session is over (signed out elsewhere,
   * revoked, its refresh token spent or expired). supabase-js drops a session whose refresh failed;
   * one that Supabase no longer knows while its access token is still valid is dropped here.
   */
  function signedOutAfter(session: BrowserSession, error: AuthError): boolean {
    // supabase-js turns `session_not_found` (signed out elsewhere) into AuthSessionMissingError.
    if (isAuthSessionMissingError(error) || (isAuthApiError(error) && ENDED_SESSION_CODES.has(error.code ?? ''))) session.clear();
    return !session.signedIn;
  }

  const SIGNED_OUT = 'Your sign-in has ended (it expired, or you signed out elsewhere). Sign in again to continue.';

  // -------------------------------------------------------------------------------------------
  // GET /oauth/consent

  async function showConsent(state: RequestState, query: URLSearchParams): Promise<Outcome> {
    const authorizationId = query.get('authorization_id');
    if (!authorizationId || !AUTHORIZATION_ID.test(authorizationId)) {
      return messagePage(400, 'Nothing to approve', 'This page needs an authorization request: open it through the application you are connecting (the application sends you here), not directly.',
        [{ href: '/oauth/grants', label: 'See the applications you allowed' }]);
    }
    const session = sessionOf(state, true)!;
    if (!session.signedIn) return signIn(state, session, authorizationId);
    const { data, error } = await session.auth.oauth.getAuthorizationDetails(authorizationId);
    if (error) {
      if (signedOutAfter(session, error)) return signIn(state, session, authorizationId, SIGNED_OUT);
      return explainedPage(authorizationId, explainAuthorizationError(error, supabaseUrl!), 'authorization details', error, session);
    }
    if (!('authorization_id' in data)) {
      // Consent given before covers every scope asked: Supabase approved at once.
      return redirectToClient(data.redirect_url, 'already consented');
    }
    const redirectUri = safeClientRedirect(data.redirect_uri);
    if (!redirectUri) {
      log.warn('refused to show a consent page: the redirect URI is not one a browser may be sent to', { client_id: data.client?.id });
      return messagePage(502, 'Cannot continue', "This application's return address is not one a browser may be sent to, so its request cannot be answered here. Tell the application's developer.");
    }
    return consentPage(formContext(session, authorizationId), {
      client: { id: String(data.client?.id ?? ''), name: String(data.client?.name ?? ''), uri: String(data.client?.uri ?? '') },
      redirectOrigin: displayOrigin(redirectUri),
      email: String(data.user?.email ?? ''),
      scopes: String(data.scope ?? '').split(/\s+/).filter(Boolean),
      daemonOrigin: state.origin,
    }, [formActionSource(redirectUri)]);
  }

  function redirectToClient(raw: unknown, why: string): Outcome {
    const url = safeClientRedirect(raw);
    if (!url) {
      log.warn('refused to redirect to a client: not an http(s) or safe custom-scheme URL', { why });
      return messagePage(502, 'Cannot continue', "Supabase answered with a return address a browser may not be sent to, so this page stops here. Tell the daemon's operator.");
    }
    return { redirect: url.toString() };
  }

  /** `session`: signed in, so the page offers to sign out (the request may belong to another account). */
  function explainedPage(authorizationId: string | null, explained: Explained, what: string, error: AuthError, session?: BrowserSession): Page {
    if (explained.status >= 500) log.warn(`Supabase Auth refused or failed: ${what}`, { status: error.status, code: error.code, error_name: error.name });
    const links = [
      ...(authorizationId && explained.status === 503 ? [{ href: returnPath(authorizationId), label: 'Try again' }] : []),
      { href: '/oauth/grants', label: 'See the applications you allowed' },
    ];
    const signOut = session?.signedIn && explained.status === 404 ? formContext(session, authorizationId) : undefined;
    return messagePage(explained.status, explained.status === 503 ? 'Try again shortly' : 'This request cannot be answered', explained.message, links, signOut);
  }

  // -------------------------------------------------------------------------------------------
  // POST /oauth/consent

  async function answerConsent(state: RequestState, session: BrowserSession, form: URLSearchParams): Promise<Outcome> {
    const authorizationId = validAuthorizationId(form);
    if (!authorizationId) return messagePage(400, 'Nothing to approve', 'This form names no authorization request. Go back to the application and connect again.');
    const action = form.get('action');
    if (action !== 'approve' && action !== 'deny') return messagePage(400, 'Choose Approve or Deny', 'Choose Approve or Deny on the consent page.', [{ href: returnPath(authorizationId), label: 'Back to the consent page' }]);
    if (!session.signedIn) return signIn(state, session, authorizationId, 'You are signed out. Sign in again, then approve or deny.', 401);
    const answer = action === 'approve'
      ? await session.auth.oauth.approveAuthorization(authorizationId, { skipBrowserRedirect: true })
      : await session.auth.oauth.denyAuthorization(authorizationId, { skipBrowserRedirect: true });
    if (answer.error) {
      if (signedOutAfter(session, answer.error)) return signIn(state, session, authorizationId, SIGNED_OUT, 401);
      return explainedPage(authorizationId, explainAuthorizationError(answer.error, supabaseUrl!), `consent (${action})`, answer.error, session);
    }
    log.info(`OAuth consent: ${action === 'approve' ? 'approved' : 'denied'}`, { user: (await userOf(session))?.id });
    return redirectToClient(answer.data.redirect_url, action);
  }

  async function userOf(session: BrowserSession): Promise<{ id: string; email: string } | null> {
    const { data } = await session.auth.getSession();
    const user = data.session?.user;
    return user ? { id: user.id, email: user.email ?? '' } : null;
  }

  // -------------------------------------------------------------------------------------------
  // POST /oauth/sign-in, GET /oauth/github, GET /oauth/callback, POST /oauth/sign-out

  async function signInWithForm(state: RequestState, session: BrowserSession, form: URLSearchParams): Promise<Outcome> {
    const authorizationId = validAuthorizationId(form);
    const step = form.get('step');
    if (step === 'new-code') {
      session.pendingEmail = null;
      return { redirect: returnPath(authorizationId) };
    }
    const email = (form.get('email') ?? '').trim().toLowerCase();
    if (!email || email.length > MAX_EMAIL_LENGTH || !/^[^\s@]+@[^\s@]+$/.test(email)) {
      return signIn(state, session, authorizationId, 'Enter the email address of your EXAI account.', 400);
    }
    if (step === 'password') {
      const password = form.get('password') ?? '';
      if (!password || password.length > MAX_PASSWORD_LENGTH) return signIn(state, session, authorizationId, 'Enter your password.', 400, email);
      if (session.signedIn) await session.auth.signOut({ scope: 'local' });
      const { error } = await session.auth.signInWithPassword({ email, password });
      if (error) return signInFailed(state, session, authorizationId, error, email);
      return signedIn(state, session, authorizationId, 'password');
    }
    if (step === 'send-code') {
      const { error } = await session.auth.signInWithOtp({ email, options: { shouldCreateUser: false } });
      if (error) return signInFailed(state, session, authorizationId, error, email);
      session.pendingEmail = email;
      return { redirect: returnPath(authorizationId) };
    }
    if (step === 'verify-code') {
      const code = (form.get('code') ?? '').trim();
      if (!OTP_CODE.test(code)) return signIn(state, session, authorizationId, 'Enter the code from the email (digits only).', 400);
      if (session.signedIn) await session.auth.signOut({ scope: 'local' });
      const { error } = await session.auth.verifyOtp({ email, token: code, type: 'email' });
      if (error) return signInFailed(state, session, authorizationId, error, email);
      session.pendingEmail = null;
      return signedIn(state, session, authorizationId, 'email code');
    }
    return signIn(state, session, authorizationId, 'Choose a way to sign in below.', 400);
  }

  function signInFailed(state: RequestState, session: BrowserSession, authorizationId: string | null, error: AuthError, email: string): Page {
    const explained = explainSignInError(error, supabaseUrl!);
    if (explained.status >= 500) log.warn('Supabase Auth failed a sign-in', { status: error.status, code: error.code, error_name: error.name });
    return signIn(state, session, authorizationId, explained.message, explained.status, email);
  }

  async function signedIn(state: RequestState, session: BrowserSession, authorizationId: string | null, method: string): Promise<Outcome> {
    sessions.reissue(session);
    state.cookies.push(sessionCookie(session.id, opts.https));
    log.info('signed in on the consent pages', { method, user: (await userOf(session))?.id });
    return { redirect: returnPath(authorizationId) };
  }

  async function startGithub(state: RequestState, query: URLSearchParams): Promise<Outcome> {
    const authorizationId = validAuthorizationId(query);
    const session = sessionOf(state, true)!;
    const back = `${state.origin}/oauth/callback${authorizationId ? `?authorization_id=${encodeURIComponent(authorizationId)}` : ''}`;
    const { data, error } = await session.auth.signInWithOAuth({ provider: 'github', options: { redirectTo: back, skipBrowserRedirect: true } });
    if (error || !data.url) return error ? signInFailed(state, session, authorizationId, error, '') : signIn(state, session, authorizationId, 'GitHub sign-in could not start. Try again.', 502);
    return { redirect: data.url };
  }

  async function finishGithub(state: RequestState, query: URLSearchParams): Promise<Outcome> {
    const authorizationId = validAuthorizationId(query);
    const session = sessionOf(state, false);
    if (!session) {
      return messagePage(400, 'Sign in again', 'This GitHub sign-in took longer than 15 minutes, was started in another browser, or the daemon restarted in between. Start again.',
        [{ href: returnPath(authorizationId), label: 'Start again' }]);
    }
    const providerError = query.get('error');
    if (providerError) {
      // The query is anyone's to write: only fixed sentences are shown, never its description.
      const message = providerError === 'access_denied'
        ? 'GitHub sign-in was cancelled. Sign in another way, or try GitHub again.'
        : 'GitHub sign-in did not finish. Try again, or sign in another way.';
      return signIn(state, session, authorizationId, message, 401);
    }
    const code = query.get('code') ?? '';
    if (!code || code.length > MAX_CODE_LENGTH) return signIn(state, session, authorizationId, 'GitHub sign-in did not finish. Try again, or sign in another way.', 400);
    const flowId = query.get('sb_flow_id');
    if (session.signedIn) await session.auth.signOut({ scope: 'local' });
    const { error } = await session.auth.exchangeCodeForSession(code, flowId ? { flowId } : undefined);
    if (error) return signInFailed(state, session, authorizationId, error, '');
    return signedIn(state, session, authorizationId, 'github');
  }

  async function signOut(state: RequestState, session: BrowserSession, form: URLSearchParams): Promise<Outcome> {
    const authorizationId = validAuthorizationId(form);
    if (session.signedIn) {
      const { error } = await session.auth.signOut({ scope: 'local' });
      if (error) log.warn('Supabase Auth did not end a session at sign-out; the daemon forgot it anyway', { status: error.status, code: error.code });
    }
    sessions.delete(session.id);
    state.cookies.push(clearedSessionCookie(opts.https));
    return { redirect: returnPath(authorizationId) };
  }

  // -------------------------------------------------------------------------------------------
  // GET and POST /oauth/grants

  async function showGrants(state: RequestState, session: BrowserSession, message?: string | null): Promise<Page> {
    if (!session.signedIn) return signIn(state, session, null, message ?? undefined);
    const { data, error } = await session.auth.oauth.listGrants();
    if (error) {
      if (signedOutAfter(session, error)) return signIn(state, session, null, SIGNED_OUT);
      return explainedPage(null, explainGrantError(error, supabaseUrl!), 'list grants', error);
    }
    const user = await userOf(session);
    return grantsPage(formContext(session, null), user?.email ?? '', (data ?? []).map((g: OAuthGrant) => ({
      client: { id: String(g.client?.id ?? ''), name: String(g.client?.name ?? ''), uri: String(g.client?.uri ?? '') },
      scopes: Array.isArray(g.scopes) ? g.scopes.map(String) : [],
      grantedAt: String(g.granted_at ?? ''),
    })), message);
  }

  async function revokeGrant(state: RequestState, session: BrowserSession, form: URLSearchParams): Promise<Outcome> {
    const clientId = form.get('revoke') ?? '';
    if (!CLIENT_ID.test(clientId)) return messagePage(400, 'Nothing to revoke', 'Choose Revoke next to an application on the list.', [{ href: '/oauth/grants', label: 'Back to the list' }]);
    if (!session.signedIn) return signIn(state, session, null, 'You are signed out. Sign in again to revoke an application.', 401);
    const { error } = await session.auth.oauth.revokeGrant({ clientId });
    if (error) {
      if (signedOutAfter(session, error)) return signIn(state, session, null, SIGNED_OUT, 401);
      const explained = explainGrantError(error, supabaseUrl!);
      if (explained.status !== 404) return explainedPage(null, explained, 'revoke grant', error);
      session.flash = explained.message;
      return { redirect: '/oauth/grants' };
    }
    log.info('OAuth grant revoked on the grants page', { client_id: clientId, user: (await userOf(session))?.id });
    session.flash = 'Revoked. That application can no longer renew its access.';
    return { redirect: '/oauth/grants' };
  }

  // -------------------------------------------------------------------------------------------
  // Dispatch

  async function route(state: RequestState, path: string, query: URLSearchParams): Promise<Outcome> {
    const req = state.req;
    if (opts.mode !== 'supabase' || !supabaseUrl) {
      return messagePage(404, 'Not available', 'This EXAI daemon runs in local mode: it has no sign-in or consent pages. Applications connect to a daemon in supabase mode through OAuth.');
    }
    if (!anonKey) {
      return messagePage(503, 'Not set up', "These sign-in and consent pages need the Supabase project's anon (publishable) key: the daemon's operator must set SUPABASE_ANON_KEY. Until then, applications cannot be connected through OAuth.");
    }
    const methods = ROUTES[path];
    if (!methods) {
      return messagePage(404, 'No such page', 'There is no such page. Applications send you to /oauth/consent; the applications you allowed are listed at /oauth/grants.',
        [{ href: '/oauth/grants', label: 'See the applications you allowed' }]);
    }
    if (!methods.includes(req.method ?? '')) {
      return { ...messagePage(405, 'Not allowed', `This page answers ${methods.join(' and ')} only.`), headers: { allow: methods.join(', ') } };
    }
    if (req.method === 'GET') {
      if (path === '/oauth/consent') return showConsent(state, query);
      if (path === '/oauth/github') return startGithub(state, query);
      if (path === '/oauth/callback') return finishGithub(state, query);
      const session = sessionOf(state, true)!;
      const flash = session.flash;
      session.flash = null;
      return showGrants(state, session, flash);
    }

    // Every POST: same origin, a bounded form, a live session, its form token.
    const crossSite = crossSiteRefusal(req, state.origin);
    if (crossSite) return messagePage(403, 'Refused', crossSite);
    const form = await readForm(req, maxFormBytes);
    const authorizationId = validAuthorizationId(form);
    const session = sessionOf(state, false);
    if (!session) {
      return messagePage(403, 'Page expired', 'This page was open for more than 15 minutes without use, or the daemon restarted, so the form was not sent. Open the page again.',
        [{ href: returnPath(authorizationId), label: 'Open the page again' }]);
    }
    if (!csrfTokenMatches(session.csrfToken, form.get('csrf'))) {
      return messagePage(403, 'Refused', "This form's security token is missing or wrong, so it was not sent. Open the page again and send the form from there.",
        [{ href: returnPath(authorizationId), label: 'Open the page again' }]);
    }
    if (path === '/oauth/consent') return answerConsent(state, session, form);
    if (path === '/oauth/sign-in') return signInWithForm(state, session, form);
    if (path === '/oauth/sign-out') return signOut(state, session, form);
    return revokeGrant(state, session, form);
  }

  function send(res: http.ServerResponse, state: RequestState, outcome: Outcome): void {
    if (res.headersSent || res.destroyed) return;
    const cookies: Record<string, string[]> = state.cookies.length ? { 'set-cookie': state.cookies } : {};
    if ('redirect' in outcome) {
      // A redirect carries no page: Referrer-Policy keeps this URL (with its authorization_id) from the next site.
      res.writeHead(303, { location: outcome.redirect, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', ...cookies });
      res.end();
      return;
    }
    const headers: Record<string, string | string[]> = { ...securityHeaders(outcome.formAction), ...outcome.headers, ...cookies };
    if (!state.req.complete) headers.connection = 'close'; // a refused body is not read to its end
    res.writeHead(outcome.status, headers);
    res.end(outcome.html);
  }

  return {
    serves: (path) => path === '/oauth' || path.startsWith(OAUTH_PATH_PREFIX),
    sessionCount: () => sessions.size,
    handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://daemon.invalid');
      const state: RequestState = { req, origin: requestOrigin(req, { https: opts.https }), cookies: [] };
      route(state, url.pathname, url.searchParams).then(
        (outcome) => send(res, state, outcome),
        (err) => {
          if (err instanceof FormRefused) return send(res, state, messagePage(err.status, 'Refused', err.message));
          if (err instanceof StorageFull) {
            return send(res, state, messagePage(500, 'Cannot sign in here', "This account's sign-in data is larger than these pages keep for one person. Tell the daemon's operator."));
          }
          log.error('a consent page failed', { error: (err as Error)?.message, path: url.pathname });
          send(res, state, messagePage(500, 'Something went wrong', "The daemon could not show this page. Try again; if this keeps happening, tell the daemon's operator (its log says more)."));
        },
      );
    },
  };
}

function validAuthorizationId(params: URLSearchParams): string | null {
  const id = params.get('authorization_id');
  return id && AUTHORIZATION_ID.test(id) ? id : null;
}
