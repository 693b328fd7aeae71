// The consent pages' parts as pure code (server/oauth/): the form token and cross-site check, the
// bounded browser-session map, where a browser may be redirected, and the HTML's escaping and
// headers. Over real HTTP against the daemon and the test Supabase Auth: test/daemon/oauthConsent.test.ts.
import assert from 'node:assert/strict';
import type http from 'node:http';
import type { GoTrueClient } from '@supabase/supabase-js';
import { BrowserSessions, STORAGE_KEY, StorageFull, type BrowserSessionLimits } from '../../server/oauth/browserSessions';
import { crossSiteRefusal, csrfTokenMatches, newCsrfToken } from '../../server/oauth/csrf';
import { readSessionCookie, sessionCookie } from '../../server/oauth/httpForms';
import { consentPage, grantsPage, scopeInWords, securityHeaders, signInPage, text } from '../../server/oauth/pages';
import { displayOrigin, formActionSource, safeClientRedirect } from '../../server/oauth/redirects';

const noAuth = () => ({}) as GoTrueClient;

function request(headers: http.IncomingHttpHeaders): http.IncomingMessage {
  return { headers } as http.IncomingMessage;
}

describe('consent pages: CSRF', function () {
  it('a form token matches only itself, and never an empty or missing one', function () {
    const token = newCsrfToken();
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(newCsrfToken(), token);
    assert.equal(csrfTokenMatches(token, token), true);
    for (const wrong of [undefined, null, '', token.slice(1), `${token}x`, newCsrfToken(), token.toUpperCase()]) assert.equal(csrfTokenMatches(token, wrong), false, String(wrong));
  });

  it('refuses a POST whose Origin is another site or whose Sec-Fetch-Site is not same-origin', function () {
    const own = 'http://127.0.0.1:8079';
    assert.equal(crossSiteRefusal(request({}), own), null);
    assert.equal(crossSiteRefusal(request({ origin: own, 'sec-fetch-site': 'same-origin' }), own), null);
    for (const origin of ['http://evil.example', 'null', 'http://127.0.0.1:8080', 'https://127.0.0.1:8079', 'http://localhost:8079']) {
      assert.match(crossSiteRefusal(request({ origin }), own) ?? '', /another web site/, origin);
    }
    for (const site of ['cross-site', 'same-site']) assert.match(crossSiteRefusal(request({ 'sec-fetch-site': site }), own) ?? '', /another web site/, site);
  });

  it('reads only a well-formed session cookie, among others', function () {
    const id = 'a'.repeat(43);
    assert.equal(readSessionCookie(request({ cookie: `other=1; exai_oauth_session=${id}; x=y` })), id);
    assert.equal(readSessionCookie(request({ cookie: 'exai_oauth_session=<script>' })), undefined);
    assert.equal(readSessionCookie(request({ cookie: `exai_oauth_session=${'a'.repeat(101)}` })), undefined);
    assert.equal(readSessionCookie(request({})), undefined);
    assert.equal(sessionCookie(id, false), `exai_oauth_session=${id}; Path=/oauth; HttpOnly; SameSite=Lax`);
    assert.match(sessionCookie(id, true), /; Secure$/);
  });
});

describe('consent pages: the browser-session map', function () {
  const limits = (over: Partial<BrowserSessionLimits> = {}): BrowserSessionLimits => ({ maxSessions: 3, maxBytes: 10_000, maxBytesPerSession: 4000, idleMs: 60_000, ...over });

  it('holds at most maxSessions; a new one evicts the least recently used signed-out session before any signed-in one', async function () {
    const map = new BrowserSessions(limits(), noAuth);
    const signedIn = map.create();
    await signedIn.storage.setItem(STORAGE_KEY, '{"access_token":"x"}');
    const a = map.create();
    const b = map.create();
    map.get(a.id); // a used more recently than b
    const c = map.create();
    assert.equal(map.size, 3);
    assert.equal(map.get(b.id), null, 'the least recently used signed-out session went first');
    assert.ok(map.get(signedIn.id), 'the signed-in session stayed although it is older');
    assert.ok(map.get(a.id) && map.get(c.id));
    // Only signed-in sessions left: then the least recently used one goes.
    await a.storage.setItem(STORAGE_KEY, '{}');
    await c.storage.setItem(STORAGE_KEY, '{}');
    map.get(a.id);
    map.get(c.id);
    map.create();
    assert.equal(map.get(signedIn.id), null);
    assert.equal(map.size, 3);
  });

  it('forgets a session idle for idleMs, and counts the bytes it held back', async function () {
    let now = 1_000_000;
    const map = new BrowserSessions(limits(), noAuth, () => now);
    const s = map.create();
    await s.storage.setItem(STORAGE_KEY, 'x'.repeat(100));
    assert.equal(map.bytes, STORAGE_KEY.length + 100);
    now += 59_000;
    assert.ok(map.get(s.id), 'used within idleMs');
    now += 60_001;
    assert.equal(map.get(s.id), null);
    assert.equal(map.size, 0);
    assert.equal(map.bytes, 0);
  });

  it('bounds the bytes of one session (refused) and of all (others evicted)', async function () {
    const map = new BrowserSessions(limits({ maxSessions: 100 }), noAuth);
    const one = map.create();
    assert.throws(() => one.storage.setItem('k', 'x'.repeat(4000)), StorageFull);
    assert.equal(map.bytes, 0);
    const sessions = [];
    for (let i = 0; i < 4; i++) {
      const s = map.create();
      await s.storage.setItem(STORAGE_KEY, 'x'.repeat(3000));
      sessions.push(s);
    }
    assert.ok(map.bytes <= 10_000, `bytes ${map.bytes}`);
    assert.equal(map.get(sessions[0].id), null, 'the oldest signed-in session went to make room');
    assert.ok(map.get(sessions[3].id), 'the one that grew stays');
    await sessions[3].storage.removeItem(STORAGE_KEY);
    assert.equal(map.bytes, 2 * (STORAGE_KEY.length + 3000));
  });

  it('gives every session its own random cookie value, form token and storage', async function () {
    const map = new BrowserSessions(limits(), noAuth);
    const a = map.create();
    const b = map.create();
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.csrfToken, b.csrfToken);
    assert.match(a.id, /^[A-Za-z0-9_-]{43}$/);
    await a.storage.setItem(STORAGE_KEY, 'a-session');
    assert.equal(await b.storage.getItem(STORAGE_KEY), null);
    assert.equal(a.signedIn, true);
    assert.equal(b.signedIn, false);
    map.delete(a.id);
    assert.equal(await a.storage.getItem(STORAGE_KEY), null, 'deleting a session drops its tokens');
  });
});

describe('consent pages: session fixation', function () {
  it('reissue gives a session a new cookie value and form token; the old value finds nothing', async function () {
    const map = new BrowserSessions({ maxSessions: 3, maxBytes: 10_000, maxBytesPerSession: 4000, idleMs: 60_000 }, noAuth);
    const s = map.create();
    await s.storage.setItem(STORAGE_KEY, 'session');
    const [oldId, oldToken] = [s.id, s.csrfToken];
    map.reissue(s);
    assert.notEqual(s.id, oldId);
    assert.notEqual(s.csrfToken, oldToken);
    assert.equal(map.get(oldId), null);
    assert.equal(map.get(s.id), s);
    assert.equal(s.signedIn, true, 'the session itself is kept');
    assert.equal(map.size, 1);
  });
});

describe('consent pages: where a browser may be sent', function () {
  it('accepts absolute http(s) URLs and custom schemes; refuses dangerous schemes, relative URLs and credentials', function () {
    for (const ok of ['http://127.0.0.1:33418/callback?code=1&state=2', 'https://app.example/cb', 'cursor://anysphere.cursor-retrieval/oauth/cb?code=1', 'com.example.app:/oauth']) {
      assert.ok(safeClientRedirect(ok), ok);
    }
    for (const bad of ['javascript:alert(1)', 'JavaScript:alert(1)', 'data:text/html,<script>', 'file:///etc/passwd', 'vbscript:x', 'about:blank', 'blob:https://a/b',
      '/relative', '//evil.example/x', 'http://user:pw@evil.example/', 'view-source:https://a', 'x'.repeat(5000), 42, null]) {
      assert.equal(safeClientRedirect(bad), null, String(bad).slice(0, 40));
    }
  });

  it('shows and allows (CSP form-action) the origin of http(s) URLs and the scheme of custom ones', function () {
    const web = safeClientRedirect('http://127.0.0.1:33418/callback?code=1')!;
    assert.equal(displayOrigin(web), 'http://127.0.0.1:33418');
    assert.equal(formActionSource(web), 'http://127.0.0.1:33418');
    const app = safeClientRedirect('cursor://anysphere.cursor-retrieval/oauth/cb')!;
    assert.equal(displayOrigin(app), 'cursor://anysphere.cursor-retrieval');
    assert.equal(formActionSource(app), 'cursor:');
  });
});

describe('consent pages: HTML', function () {
  const ctx = { csrfToken: 'tok"en', authorizationId: 'abc123' };
  const hostile = '<img src=x onerror=alert(1)>"\'&\u202eevil';

  it('escapes every value that came from outside, drops bidi controls, and shortens long names', function () {
    const page = consentPage(ctx, {
      client: { id: 'c1', name: hostile, uri: 'javascript:alert(1)"><script>' },
      redirectOrigin: 'http://127.0.0.1:1', email: '<b>me</b>@example.com', scopes: ['email', '<x>'], daemonOrigin: 'http://127.0.0.1:8079',
    }, ['http://127.0.0.1:1']);
    assert.doesNotMatch(page.html, /<img|<script|<b>|<x>|\u202e/);
    assert.match(page.html, /&#60;img src=x onerror=alert\(1\)&#62;&#34;&#39;&#38;evil/);
    assert.match(page.html, /name="csrf" value="tok&#34;en"/);
    assert.equal(text('x'.repeat(300), 100).length, 100);
  });

  it('names a nameless client "An unnamed application" and each scope in words', function () {
    const page = consentPage(ctx, { client: { id: 'c1', name: '  ', uri: '' }, redirectOrigin: 'http://127.0.0.1:1', email: 'me@example.com', scopes: ['openid', 'email', 'profile', 'offline_access'], daemonOrigin: 'http://d' }, []);
    assert.match(page.html, /Allow An unnamed application to use EXAI as you\?/);
    for (const words of ['Confirm who you are', 'See your email address', 'See your name and profile picture', 'Stay connected']) assert.ok(page.html.includes(words), words);
    assert.match(scopeInWords('admin'), /cannot describe/);
  });

  it('has the stable selectors the browser tests use, and autofocus on the first field', function () {
    const signIn = signInPage(ctx, { daemonOrigin: 'http://d' }).html;
    for (const selector of ['name="email"', 'name="password"', 'id="sign-in-password"', 'id="send-code"', 'id="sign-in-github"', 'name="authorization_id" value="abc123"']) assert.ok(signIn.includes(selector), selector);
    assert.equal(signIn.match(/autofocus/g)?.length, 1);
    assert.match(signIn, /<input id="email"[^>]*autofocus/);
    assert.match(signIn, /<label for="password">/);
    const code = signInPage(ctx, { daemonOrigin: 'http://d', pendingEmail: 'me@example.com' }).html;
    assert.match(code, /<input id="code" name="code"[^>]*autofocus/);
    assert.ok(code.includes('id="verify-code"'));
    const consent = consentPage(ctx, { client: { id: 'c', name: 'App', uri: '' }, redirectOrigin: 'o', email: 'e', scopes: [], daemonOrigin: 'd' }, []).html;
    assert.match(consent, /id="consent-details"/);
    assert.ok(consent.indexOf('value="approve"') < consent.indexOf('value="deny"'), 'Approve comes first in the tab order');
    const grants = grantsPage(ctx, 'me@example.com', [{ client: { id: '0b0d4a1e-1111-4a5b-8c9d-123456789abc', name: 'App', uri: '' }, scopes: ['email'], grantedAt: '2026-12-01' }]).html;
    assert.match(grants, /<button type="submit" name="revoke" value="0b0d4a1e-1111-4a5b-8c9d-123456789abc"/);
  });

  it('sends a strict CSP (no script, hashed style, forms to self and the client only, no framing) and the other security headers', function () {
    const h = securityHeaders(['http://127.0.0.1:1']);
    const csp = h['content-security-policy'];
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/=]+'/);
    assert.match(csp, /form-action 'self' http:\/\/127\.0\.0\.1:1(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /base-uri 'none'/);
    assert.doesNotMatch(csp, /script-src|unsafe/);
    assert.equal(h['x-frame-options'], 'DENY');
    assert.equal(h['referrer-policy'], 'same-origin');
    assert.equal(h['cache-control'], 'no-store');
    assert.equal(h['x-content-type-options'], 'nosniff');
  });
});
