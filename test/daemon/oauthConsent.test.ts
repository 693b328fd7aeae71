// The daemon's consent and grants pages (server/oauth/) over real HTTP, as a browser without
// JavaScript uses them (a cookie jar and forms), against the real daemon and the test Supabase Auth
// with its OAuth 2.1 server on and its Site URL = the daemon. Chromium drives them in
// test/e2e/oauthConsentBrowser.test.ts; the pure parts are in test/unit/oauthPages.test.ts.
import assert from 'node:assert/strict';
import http from 'node:http';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { startConsentStack, type ConsentStack, type RegisteredClient } from '../helpers/consentStack';

/** A browser without JavaScript: one cookie jar, forms, redirects not followed (each hop is asserted). */
class FormBrowser {
  private cookie: string | null = null;
  lastHtml = '';

  constructor(private readonly origin: string) {}

  get cookieValue(): string | null {
    return this.cookie;
  }

  async get(pathOrUrl: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.remember(await fetch(new URL(pathOrUrl, this.origin), { redirect: 'manual', headers: { ...this.cookieHeader(), ...headers } }));
  }

  async post(path: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    return this.remember(await fetch(new URL(path, this.origin), {
      method: 'POST', redirect: 'manual', body: new URLSearchParams(fields),
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...this.cookieHeader(), ...headers },
    }));
  }

  /** The hidden form token of the last page. */
  csrf(): string {
    const token = /name="csrf" value="([^"]+)"/.exec(this.lastHtml)?.[1];
    assert.ok(token, `the page has a form token: ${this.lastHtml.slice(0, 300)}`);
    return token;
  }

  /** Opens the consent page and signs in with the password form; returns the consent page's HTML. */
  async signIn(consentUrl: string, email: string, password: string): Promise<string> {
    await this.text(await this.get(consentUrl));
    const authorizationId = new URL(consentUrl).searchParams.get('authorization_id')!;
    const res = await this.post('/oauth/sign-in', { csrf: this.csrf(), authorization_id: authorizationId, step: 'password', email, password });
    assert.equal(res.status, 303, await res.text());
    assert.equal(res.headers.get('location'), `/oauth/consent?authorization_id=${authorizationId}`);
    const page = await this.get(res.headers.get('location')!);
    const html = await this.text(page);
    assert.equal(page.status, 200, html);
    return html;
  }

  async text(res: Response): Promise<string> {
    this.lastHtml = await res.text();
    return this.lastHtml;
  }

  private cookieHeader(): Record<string, string> {
    return this.cookie ? { cookie: `exai_oauth_session=${this.cookie}` } : {};
  }

  private remember(res: Response): Response {
    for (const line of res.headers.getSetCookie()) {
      const m = /^exai_oauth_session=([^;]*)/.exec(line);
      if (m) this.cookie = /Max-Age=0/i.test(line) ? null : m[1];
    }
    return res;
  }
}

/** The alert sentence of a page, as text. */
function alertOf(html: string): string {
  return /role="alert">([^<]*)</.exec(html)?.[1].replace(/&#39;/g, "'") ?? '';
}

describe('daemon: OAuth consent and grants pages (HTTP)', function () {
  this.timeout(60_000);
  let stack: ConsentStack;
  let client: RegisteredClient;

  /** A client of its own per test: consent given in one test would otherwise approve the next test's requests at once. */
  const freshClient = () => stack.registerClient({ name: 'Test MCP Client', redirectUri: 'http://127.0.0.1:9/callback' });

  before(async function () {
    stack = await startConsentStack();
    client = await stack.registerClient({ name: 'Test MCP Client' });
  });
  after(async function () {
    await stack?.stop();
  });

  it('signed out: the sign-in form, a session cookie (HttpOnly, SameSite=Lax, Path=/oauth) and strict security headers', async function () {
    const { consentUrl } = await stack.authorize(client);
    const res = await fetch(consentUrl, { redirect: 'manual' });
    const html = await res.text();
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('exai_oauth_session='));
    assert.match(cookie ?? '', /^exai_oauth_session=[A-Za-z0-9_-]{43}; Path=\/oauth; HttpOnly; SameSite=Lax$/);
    const csp = res.headers.get('content-security-policy') ?? '';
    for (const directive of ["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"]) assert.ok(csp.includes(directive), directive);
    assert.doesNotMatch(csp, /script-src|unsafe-inline/);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.equal(res.headers.get('referrer-policy'), 'same-origin');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.doesNotMatch(html, /<script/i);
    for (const selector of ['name="email"', 'name="password"', 'id="sign-in-password"', 'id="send-code"', 'id="sign-in-github"']) assert.ok(html.includes(selector), selector);
  });

  it('password sign-in, then the details (client, its redirect origin, account, scopes); approve -> 303 to the redirect URI with code and state; the code works', async function () {
    const started = await stack.authorize(client, { scope: 'openid email' });
    const browser = new FormBrowser(stack.origin);
    const html = await browser.signIn(started.consentUrl, stack.user.email, stack.user.password);
    const details = /<section id="consent-details"[\s\S]*?<\/section>/.exec(html)?.[0] ?? '';
    assert.match(details, /Test MCP Client/);
    assert.match(details, /http:\/\/127\.0\.0\.1:9(?![\d/])/);
    assert.ok(details.includes(stack.user.email));
    assert.match(details, /Confirm who you are/);
    assert.match(details, /See your email address/);
    // Chromium checks form-action on the redirect after a form: the client's origin is allowed on this page.
    const page = await browser.get(started.consentUrl);
    assert.match(page.headers.get('content-security-policy') ?? '', /form-action 'self' http:\/\/127\.0\.0\.1:9(;|$)/);
    await browser.text(page);

    const res = await browser.post('/oauth/consent', { csrf: browser.csrf(), authorization_id: started.authorizationId, action: 'approve' });
    assert.equal(res.status, 303, await res.text());
    const back = new URL(res.headers.get('location')!);
    assert.equal(`${back.origin}${back.pathname}`, client.redirectUri);
    assert.equal(back.searchParams.get('state'), started.state);
    const code = back.searchParams.get('code');
    assert.ok(code);
    const tokens = await stack.exchangeCode(client, code, started.verifier);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.ok(tokens.body.access_token);

    // Consent now covers these scopes: the next request from this client is approved at once (Supabase's {redirect_url}).
    const again = await stack.authorize(client, { scope: 'email' });
    const direct = await browser.get(again.consentUrl);
    assert.equal(direct.status, 303);
    const directBack = new URL(direct.headers.get('location')!);
    assert.equal(directBack.searchParams.get('state'), again.state);
    assert.ok(directBack.searchParams.get('code'));
  });

  it('deny -> 303 to the redirect URI with error=access_denied and the state', async function () {
    const other = await stack.registerClient({ name: 'Denied Client', redirectUri: 'http://127.0.0.1:9/denied' });
    const started = await stack.authorize(other);
    const browser = new FormBrowser(stack.origin);
    await browser.signIn(started.consentUrl, stack.user.email, stack.user.password);
    const res = await browser.post('/oauth/consent', { csrf: browser.csrf(), authorization_id: started.authorizationId, action: 'deny' });
    assert.equal(res.status, 303);
    const back = new URL(res.headers.get('location')!);
    assert.equal(`${back.origin}${back.pathname}`, other.redirectUri);
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.equal(back.searchParams.get('state'), started.state);
    assert.equal(back.searchParams.get('code'), null);
  });

  it('unknown, expired and already-answered authorization ids get sentences that say what to do', async function () {
    const started = await stack.authorize(await freshClient(), { scope: 'profile' });
    const browser = new FormBrowser(stack.origin);
    await browser.signIn(started.consentUrl, stack.user.email, stack.user.password);
    const csrf = browser.csrf();

    const unknown = await browser.get('/oauth/consent?authorization_id=abcdefghijklmnopqrstuvwxyz012345');
    assert.equal(unknown.status, 404);
    assert.match(alertOf(await browser.text(unknown)), /unknown or has expired .*Go back to the application and connect again\./);
    assert.ok(browser.lastHtml.includes('action="/oauth/sign-out"'), 'a request of another account: the page offers to sign out');

    const none = await browser.get('/oauth/consent');
    assert.equal(none.status, 400);
    assert.match(alertOf(await browser.text(none)), /open it through the application you are connecting/);

    const res = await browser.post('/oauth/consent', { csrf, authorization_id: started.authorizationId, action: 'approve' });
    assert.equal(res.status, 303);
    const answered = await browser.get(started.consentUrl);
    assert.equal(answered.status, 400);
    assert.match(alertOf(await browser.text(answered)), /already been answered/);

    const late = await stack.authorize(await freshClient(), { scope: 'phone' });
    const lateBrowser = new FormBrowser(stack.origin);
    await lateBrowser.text(await lateBrowser.get(late.consentUrl));
    stack.auth.advanceClock(11 * 60_000); // an authorization lasts 10 minutes
    try {
      const signIn = await lateBrowser.post('/oauth/sign-in', { csrf: lateBrowser.csrf(), authorization_id: late.authorizationId, step: 'password', email: stack.user.email, password: stack.user.password });
      assert.equal(signIn.status, 303);
      const expired = await lateBrowser.get(signIn.headers.get('location')!);
      assert.equal(expired.status, 404);
      assert.match(alertOf(await lateBrowser.text(expired)), /has expired \(a request lasts 10 minutes\)/);
    } finally {
      stack.auth.setNow(undefined);
    }
  });

  it('wrong password: 401 and the sentence; signed out at Supabase: the sign-in form says so', async function () {
    const started = await stack.authorize(await freshClient());
    const browser = new FormBrowser(stack.origin);
    await browser.text(await browser.get(started.consentUrl));
    const wrong = await browser.post('/oauth/sign-in', { csrf: browser.csrf(), authorization_id: started.authorizationId, step: 'password', email: stack.user.email, password: 'not-the-password' });
    assert.equal(wrong.status, 401);
    const wrongHtml = await browser.text(wrong);
    assert.match(alertOf(wrongHtml), /Wrong email or password/);
    assert.ok(wrongHtml.includes(`value="${stack.user.email}"`), 'the email is kept in the form');

    await browser.signIn(started.consentUrl, stack.user.email, stack.user.password);
    // The person signs out everywhere (another device): the daemon's copy of the session is dead.
    const signedIn = await fetch(`${stack.auth.url}/auth/v1/token?grant_type=password`, {
      method: 'POST', headers: { apikey: stack.auth.anonKey, 'content-type': 'application/json' }, body: JSON.stringify({ email: stack.user.email, password: stack.user.password }),
    }).then((r) => r.json() as Promise<{ access_token: string }>);
    const out = await fetch(`${stack.auth.url}/auth/v1/logout?scope=global`, { method: 'POST', headers: { apikey: stack.auth.anonKey, authorization: `Bearer ${signedIn.access_token}` } });
    assert.equal(out.status, 204);
    const page = await browser.get(started.consentUrl);
    const html = await browser.text(page);
    assert.equal(page.status, 200);
    assert.match(alertOf(html), /Your sign-in has ended .*Sign in again to continue\./);
    assert.ok(html.includes('id="sign-in-password"'));
    // Approving with the old form now asks to sign in again instead.
    const post = await browser.post('/oauth/consent', { csrf: browser.csrf(), authorization_id: started.authorizationId, action: 'approve' });
    assert.equal(post.status, 401);
    assert.match(alertOf(await browser.text(post)), /You are signed out\. Sign in again, then approve or deny\./);
  });

  it('signing in issues a new cookie and form token: values planted or seen before the sign-in are worthless (session fixation)', async function () {
    const started = await stack.authorize(await freshClient());
    const browser = new FormBrowser(stack.origin);
    await browser.text(await browser.get(started.consentUrl));
    const [plantedCookie, plantedCsrf] = [browser.cookieValue!, browser.csrf()];
    await browser.signIn(started.consentUrl, stack.user.email, stack.user.password);
    assert.notEqual(browser.cookieValue, plantedCookie);
    assert.notEqual(browser.csrf(), plantedCsrf);
    const attacker = await fetch(started.consentUrl, { redirect: 'manual', headers: { cookie: `exai_oauth_session=${plantedCookie}` } });
    const html = await attacker.text();
    assert.ok(html.includes('id="sign-in-password"') && !html.includes('id="consent-details"'), 'the planted cookie is not signed in');
    const approve = await fetch(`${stack.origin}/oauth/consent`, {
      method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `exai_oauth_session=${browser.cookieValue}` },
      body: new URLSearchParams({ csrf: plantedCsrf, authorization_id: started.authorizationId, action: 'approve' }),
    });
    assert.equal(approve.status, 403, 'the form token from before the sign-in no longer works');
  });

  it('refreshes the person\'s session when its access token is near expiry', async function () {
    stack.auth.setJwtExpiry(60); // inside supabase-js's 90-second margin: every use refreshes
    try {
      const started = await stack.authorize(await freshClient(), { scope: 'email profile' });
      const browser = new FormBrowser(stack.origin);
      await browser.signIn(started.consentUrl, stack.user.email, stack.user.password);
      const before = stack.auth.refreshRequests();
      const page = await browser.get(started.consentUrl);
      assert.equal(page.status, 200);
      assert.match(await browser.text(page), /id="consent-details"/);
      assert.ok(stack.auth.refreshRequests() > before, 'the daemon refreshed the session before asking for the details');
    } finally {
      stack.auth.setJwtExpiry(3600);
    }
  });

  it('refuses POSTs without the form token, with a wrong one, from another site, or larger than 16 KiB; nothing is approved', async function () {
    const started = await stack.authorize(await freshClient(), { scope: 'email openid profile' });
    const browser = new FormBrowser(stack.origin);
    await browser.signIn(started.consentUrl, stack.user.email, stack.user.password);
    const csrf = browser.csrf();
    const base = { authorization_id: started.authorizationId, action: 'approve' };

    const missing = await browser.post('/oauth/consent', base);
    assert.equal(missing.status, 403);
    assert.match(alertOf(await missing.text()), /security token is missing or wrong/);
    const wrong = await browser.post('/oauth/consent', { ...base, csrf: `${csrf.slice(0, -2)}AA` });
    assert.equal(wrong.status, 403);
    const crossOrigin = await browser.post('/oauth/consent', { ...base, csrf }, { origin: 'http://evil.example' });
    assert.equal(crossOrigin.status, 403);
    assert.match(alertOf(await crossOrigin.text()), /sent from another web site/);
    const crossSite = await browser.post('/oauth/consent', { ...base, csrf }, { 'sec-fetch-site': 'cross-site' });
    assert.equal(crossSite.status, 403);
    const otherSession = new FormBrowser(stack.origin);
    await otherSession.text(await otherSession.get(started.consentUrl));
    const someoneElsesToken = await browser.post('/oauth/consent', { ...base, csrf: otherSession.csrf() });
    assert.equal(someoneElsesToken.status, 403, "another browser's token is not this one's");

    const big = await browser.post('/oauth/consent', { ...base, csrf, padding: 'x'.repeat(17 * 1024) });
    assert.equal(big.status, 413);
    assert.match(alertOf(await big.text()), /larger than 16384 bytes/);

    // None of these answered the authorization: it is still pending, and the real form approves it.
    const ok = await browser.post('/oauth/consent', { ...base, csrf }, { origin: stack.origin, 'sec-fetch-site': 'same-origin' });
    assert.equal(ok.status, 303);
    assert.ok(new URL(ok.headers.get('location')!).searchParams.get('code'));
  });

  it('escapes a hostile client name and shows a missing one as "An unnamed application"', async function () {
    const hostile = await stack.registerClient({ name: '<script>alert(1)</script><img src=x onerror=alert(2)>', redirectUri: 'http://127.0.0.1:9/hostile' });
    const started = await stack.authorize(hostile);
    const browser = new FormBrowser(stack.origin);
    const html = await browser.signIn(started.consentUrl, stack.user.email, stack.user.password);
    assert.doesNotMatch(html, /<script>alert|<img src=x/);
    assert.ok(html.includes('&#60;script&#62;alert(1)&#60;/script&#62;'));

    const nameless = await stack.registerClient({ name: '', redirectUri: 'http://127.0.0.1:9/nameless' });
    const second = await stack.authorize(nameless);
    await browser.text(await browser.get(second.consentUrl));
    assert.match(browser.lastHtml, /Allow An unnamed application to use EXAI as you\?/);
  });

  it('sign-in with a code sent by email (signInWithOtp, then verifyOtp); a wrong code says so', async function () {
    const started = await stack.authorize(await freshClient(), { scope: 'email phone' });
    const browser = new FormBrowser(stack.origin);
    await browser.text(await browser.get(started.consentUrl));
    const sent = await browser.post('/oauth/sign-in', { csrf: browser.csrf(), authorization_id: started.authorizationId, step: 'send-code', email: stack.user.email });
    assert.equal(sent.status, 303);
    const codeForm = await browser.text(await browser.get(sent.headers.get('location')!));
    assert.match(codeForm, /We sent a sign-in code to consent-jazeel@example\.com/);
    assert.ok(codeForm.includes('id="verify-code"'));
    const code = stack.auth.lastOtp(stack.user.email)!;
    assert.match(code, /^\d{6}$/);

    const wrongCode = code === '000000' ? '111111' : '000000';
    const wrong = await browser.post('/oauth/sign-in', { csrf: browser.csrf(), authorization_id: started.authorizationId, step: 'verify-code', email: stack.user.email, code: wrongCode });
    assert.equal(wrong.status, 401);
    assert.match(alertOf(await browser.text(wrong)), /That code is wrong or has expired/);

    // "Use another address or get a new code" goes back to the address form, and a new code can be sent.
    const restart = await browser.post('/oauth/sign-in', { csrf: browser.csrf(), authorization_id: started.authorizationId, step: 'new-code', email: stack.user.email, code: '' });
    assert.equal(restart.status, 303);
    const addressForm = await browser.text(await browser.get(restart.headers.get('location')!));
    assert.ok(addressForm.includes('id="send-code"') && !addressForm.includes('id="verify-code"'));
    const resent = await browser.post('/oauth/sign-in', { csrf: browser.csrf(), authorization_id: started.authorizationId, step: 'send-code', email: stack.user.email });
    assert.equal(resent.status, 303);
    await browser.text(await browser.get(resent.headers.get('location')!));
    const newCode = stack.auth.lastOtp(stack.user.email)!;

    const right = await browser.post('/oauth/sign-in', { csrf: browser.csrf(), authorization_id: started.authorizationId, step: 'verify-code', email: stack.user.email, code: newCode });
    assert.equal(right.status, 303);
    const page = await browser.get(right.headers.get('location')!);
    assert.equal(page.status, 200);
    assert.match(await browser.text(page), /id="consent-details"[\s\S]*See your phone number/);
  });

  it('grants: lists what the person allowed and revokes it; the client\'s refresh token then fails', async function () {
    const granted = await stack.registerClient({ name: 'Revocable Client', redirectUri: 'http://127.0.0.1:9/revocable' });
    const started = await stack.authorize(granted, { scope: 'email' });
    const browser = new FormBrowser(stack.origin);
    await browser.signIn(started.consentUrl, stack.user.email, stack.user.password);
    const approved = await browser.post('/oauth/consent', { csrf: browser.csrf(), authorization_id: started.authorizationId, action: 'approve' });
    const code = new URL(approved.headers.get('location')!).searchParams.get('code')!;
    const tokens = await stack.exchangeCode(granted, code, started.verifier);
    assert.equal(tokens.status, 200);
    const refreshed = await stack.refresh(granted, tokens.body.refresh_token);
    assert.equal(refreshed.status, 200, 'the refresh token works before the revoke');

    const list = await browser.get('/oauth/grants');
    const html = await browser.text(list);
    assert.equal(list.status, 200);
    assert.match(html, /Applications you allowed/);
    assert.ok(html.includes('Revocable Client'));
    assert.ok(html.includes(`name="revoke" value="${granted.clientId}"`));

    const revoke = await browser.post('/oauth/grants', { csrf: browser.csrf(), revoke: granted.clientId });
    assert.equal(revoke.status, 303);
    assert.equal(revoke.headers.get('location'), '/oauth/grants');
    const after = await browser.text(await browser.get('/oauth/grants'));
    assert.match(alertOf(after), /Revoked\./);
    assert.ok(!after.includes(`value="${granted.clientId}"`), 'the revoked client is no longer listed');

    const refused = await stack.refresh(granted, refreshed.body.refresh_token);
    assert.notEqual(refused.status, 200, `the revoked client's refresh token is refused: ${JSON.stringify(refused.body)}`);

    // Revoking needs the form token too.
    const forged = await browser.post('/oauth/grants', { revoke: client.clientId });
    assert.equal(forged.status, 403);
  });

  it('grants signed out: the sign-in form, which returns to the grants page', async function () {
    const browser = new FormBrowser(stack.origin);
    const html = await browser.text(await browser.get('/oauth/grants'));
    assert.ok(html.includes('id="sign-in-password"'));
    assert.doesNotMatch(html, /name="authorization_id"/);
    const res = await browser.post('/oauth/sign-in', { csrf: browser.csrf(), step: 'password', email: stack.user.email, password: stack.user.password });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/oauth/grants');
  });

  it('the GitHub callback: a cancelled sign-in and a stale one get fixed sentences (never the query\'s own text)', async function () {
    const started = await stack.authorize(await freshClient());
    const browser = new FormBrowser(stack.origin);
    const start = await browser.get(`/oauth/github?authorization_id=${started.authorizationId}`);
    assert.equal(start.status, 303);
    const toSupabase = new URL(start.headers.get('location')!);
    assert.equal(`${toSupabase.origin}${toSupabase.pathname}`, `${stack.auth.url}/auth/v1/authorize`);
    assert.equal(toSupabase.searchParams.get('provider'), 'github');
    assert.equal(toSupabase.searchParams.get('code_challenge_method'), 's256');
    const back = new URL(toSupabase.searchParams.get('redirect_to')!);
    assert.equal(`${back.origin}${back.pathname}`, `${stack.origin}/oauth/callback`);
    assert.equal(back.searchParams.get('authorization_id'), started.authorizationId);

    const cancelled = await browser.get(`/oauth/callback?authorization_id=${started.authorizationId}&error=access_denied&error_description=${encodeURIComponent('Call +1 555 0100 to unlock your account')}`);
    assert.equal(cancelled.status, 401);
    const html = await browser.text(cancelled);
    assert.match(alertOf(html), /GitHub sign-in was cancelled\. Sign in another way, or try GitHub again\./);
    assert.ok(!html.includes('555 0100'), 'the description from the query is not shown');
    assert.ok(html.includes('id="sign-in-password"'));

    const forged = await browser.get(`/oauth/callback?authorization_id=${started.authorizationId}&code=${'a'.repeat(36)}`);
    assert.equal(forged.status, 400, 'a code this browser did not start (no PKCE verifier for it) signs nobody in');
    assert.doesNotMatch(await browser.text(forged), /id="consent-details"/);

    const stale = await fetch(`${stack.origin}/oauth/callback?code=x`, { redirect: 'manual' });
    assert.equal(stale.status, 400);
    assert.match(alertOf(await stale.text()), /took longer than 15 minutes, was started in another browser, or the daemon restarted/);
  });

  it('sign-out ends the Supabase session and clears the cookie; the old cookie no longer works', async function () {
    const started = await stack.authorize(await freshClient());
    const browser = new FormBrowser(stack.origin);
    await browser.signIn(started.consentUrl, stack.user.email, stack.user.password);
    const sessionsBefore = stack.auth.sessionIds(stack.user.id).length;
    const oldCookie = browser.cookieValue!;
    const csrf = browser.csrf();
    const res = await browser.post('/oauth/sign-out', { csrf, authorization_id: started.authorizationId });
    assert.equal(res.status, 303);
    assert.match(res.headers.getSetCookie().join('\n'), /exai_oauth_session=; Path=\/oauth; HttpOnly; SameSite=Lax; Max-Age=0/);
    assert.equal(stack.auth.sessionIds(stack.user.id).length, sessionsBefore - 1, 'the Supabase session was ended (signOut scope local)');
    const replay = await fetch(`${stack.origin}/oauth/consent`, {
      method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `exai_oauth_session=${oldCookie}` },
      body: new URLSearchParams({ csrf, authorization_id: started.authorizationId, action: 'approve' }),
    });
    assert.equal(replay.status, 403);
    assert.match(alertOf(await replay.text()), /Open the page again/);
  });

  it('keeps at most 1,000 browser sessions: a flood of new cookies evicts signed-out ones first, not a signed-in person', async function () {
    const started = await stack.authorize(await freshClient(), { scope: 'openid' });
    const person = new FormBrowser(stack.origin);
    await person.signIn(started.consentUrl, stack.user.email, stack.user.password);
    const stranger = new FormBrowser(stack.origin);
    await stranger.text(await stranger.get(started.consentUrl));
    const strangerCsrf = stranger.csrf();
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(Array.from({ length: 50 }, () => fetch(started.consentUrl).then((r) => r.text())));
    }
    const evicted = await stranger.post('/oauth/sign-in', { csrf: strangerCsrf, authorization_id: started.authorizationId, step: 'password', email: stack.user.email, password: stack.user.password });
    assert.equal(evicted.status, 403, 'the oldest signed-out session was evicted');
    const page = await person.get(started.consentUrl);
    assert.equal(page.status, 200);
    assert.match(await person.text(page), /id="consent-details"/, 'the signed-in person is still signed in');
  });

  it('answers only to its own Host names (DNS rebinding), unknown /oauth paths with 404 and wrong methods with 405', async function () {
    const rebinding = await new Promise<number>((resolve, reject) => {
      http.get(`${stack.origin}/oauth/consent?authorization_id=x`, { headers: { host: 'evil.example' } }, (res) => { res.resume(); resolve(res.statusCode!); }).on('error', reject);
    });
    assert.equal(rebinding, 421);
    const unknown = await fetch(`${stack.origin}/oauth/nothing`);
    assert.equal(unknown.status, 404);
    assert.match(alertOf(await unknown.text()), /Applications send you to \/oauth\/consent/);
    const method = await fetch(`${stack.origin}/oauth/sign-out`);
    assert.equal(method.status, 405);
    assert.equal(method.headers.get('allow'), 'POST');
  });

  it('never logs a token, a cookie, a form token or a password', async function () {
    const started = await stack.authorize(await freshClient(), { scope: 'email openid' });
    const browser = new FormBrowser(stack.origin);
    await browser.signIn(started.consentUrl, stack.user.email, stack.user.password);
    const csrf = browser.csrf();
    await browser.post('/oauth/consent', { csrf, authorization_id: started.authorizationId, action: 'approve' });
    const logs = stack.daemon.logs();
    assert.match(logs, /OAuth consent: approved/);
    for (const secret of [browser.cookieValue!, csrf, stack.user.password]) assert.ok(!logs.includes(secret), 'a secret reached the log');
    assert.doesNotMatch(logs, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, 'no JWT in the log');
  });
});

describe('daemon: OAuth consent pages in local mode, without an anon key, behind a proxy', function () {
  this.timeout(60_000);

  it('local mode answers 404 with a sentence', async function () {
    let daemon: RunningDaemon | undefined;
    try {
      daemon = await startDaemon();
      const res = await fetch(`http://127.0.0.1:${daemon.port}/oauth/consent?authorization_id=abc`);
      assert.equal(res.status, 404);
      assert.match(alertOf(await res.text()), /runs in local mode: it has no sign-in or consent pages/);
    } finally {
      await daemon?.stop();
    }
  });

  it('behind a proxy that ends TLS: the cookie is Secure and a form from the plain-http origin counts as another site', async function () {
    const stack = await startConsentStack({ daemonEnv: { EXAI_BEHIND_PROXY: 'true', EXAI_PUBLIC_HOSTS: 'exai.example.com' } });
    try {
      const client = await stack.registerClient();
      const { consentUrl, authorizationId } = await stack.authorize(client);
      const res = await fetch(consentUrl, { redirect: 'manual' });
      const html = await res.text();
      assert.match(res.headers.getSetCookie().join('\n'), /exai_oauth_session=[^;]+; Path=\/oauth; HttpOnly; SameSite=Lax; Secure/);
      assert.ok(html.includes(`https://127.0.0.1:${stack.daemon.port}`), 'the page names the https origin the browser uses');
      const cookie = res.headers.getSetCookie()[0].split(';')[0];
      const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1];
      const post = (origin: string) => fetch(`${stack.origin}/oauth/sign-in`, {
        method: 'POST', redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, origin },
        body: new URLSearchParams({ csrf, authorization_id: authorizationId, step: 'password', email: stack.user.email, password: stack.user.password }),
      });
      assert.equal((await post(stack.origin)).status, 403);
      assert.equal((await post(`https://127.0.0.1:${stack.daemon.port}`)).status, 303);
    } finally {
      await stack.stop();
    }
  });

  it('a Postgres-store daemon without SUPABASE_ANON_KEY says the operator must set it', async function () {
    const stack = await startConsentStack({ anonKey: false });
    try {
      const res = await fetch(`${stack.origin}/oauth/consent?authorization_id=abc`);
      assert.equal(res.status, 503);
      assert.match(alertOf(await res.text()), /the daemon's operator must set SUPABASE_ANON_KEY/);
    } finally {
      await stack.stop();
    }
  });
});
