// Contract tests of Supabase Auth as the extension and the daemon use it, driven through the real
// supabase-js client (2.119.1). They run against the GoTrue-compatible test server by default, and
// against a real Supabase project when SUPABASE_URL, SUPABASE_ANON_KEY and
// SUPABASE_SERVICE_ROLE_KEY are set:
//   const target = process.env.SUPABASE_URL ? realProject() : await startAuthServer(...)
// Tests that need a test-server-only hook (injectable clock, mail outbox, error counters, the
// GitHub stand-in, HS256 mode) call `testServerOnly(this, why)` and are skipped on a real project.
// The expected behaviour is GoTrue's (supabase/auth v2.196.0), see /work/shared/supabase-auth-facts.md.
import assert from 'node:assert/strict';
import { AuthApiError, isAuthApiError, type AuthError, type Session } from '@supabase/supabase-js';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { realProject, type Target, type TestAccount, testServerTarget } from './target';

const REDIRECT_TO = 'http://127.0.0.1:54999/callback';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

let target: Target;

function testServerOnly(ctx: Mocha.Context, why: string): void {
  if (target.kind !== 'test-server') {
    ctx.test!.title += ` [skipped on a real project: ${why}]`;
    ctx.skip();
  }
}

function server() {
  assert.ok(target.server, 'test server');
  return target.server;
}

function assertAuthApiError(error: AuthError | null, code: string, status: number): AuthApiError {
  assert.ok(error, `expected an error ${code}, got success`);
  assert.ok(isAuthApiError(error), `expected AuthApiError, got ${error.name}: ${error.message}`);
  assert.equal(error.code, code, `code (message: ${error.message})`);
  assert.equal(error.status, status, 'HTTP status');
  return error;
}

async function signIn(account: TestAccount): Promise<Session> {
  const { supabase } = target.client();
  const { data, error } = await supabase.auth.signInWithPassword({ email: account.email, password: account.password });
  assert.equal(error, null, error?.message);
  assert.ok(data.session);
  return data.session;
}

/** Refreshes with `refreshToken` from a fresh client (its own storage), as another process would. */
async function refreshWith(refreshToken: string) {
  const { supabase } = target.client();
  return supabase.auth.refreshSession({ refresh_token: refreshToken });
}

async function refreshOk(refreshToken: string): Promise<Session> {
  const { data, error } = await refreshWith(refreshToken);
  assert.equal(error, null, error?.message);
  assert.ok(data.session);
  return data.session;
}

async function jwks(): Promise<JSONWebKeySet> {
  const res = await fetch(`${target.issuer}/.well-known/jwks.json`);
  assert.equal(res.status, 200);
  return (await res.json()) as JSONWebKeySet;
}

/** Follows the OAuth redirects like a browser would, clicking "Authorize" on the GitHub stand-in. */
async function githubConsent(authorizeUrl: string, login = 'octocat', email?: string): Promise<URL> {
  const start = await fetch(authorizeUrl, { redirect: 'manual' });
  assert.equal(start.status, 302, 'GET /authorize redirects to the provider');
  const consentUrl = new URL(start.headers.get('location')!);
  assert.equal(consentUrl.pathname, '/auth/v1/_github/authorize');

  const page = await fetch(consentUrl, { redirect: 'manual' });
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /id="authorize"/);
  assert.match(html, /id="login"[^>]*value="[^"]+"/, 'login field prefilled');
  const hidden = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1].replace(/&#(\d+);/g, (_, c) => String.fromCharCode(Number(c))) ?? '';
  const form = new URLSearchParams({ state: hidden('state'), redirect_uri: hidden('redirect_uri'), login, email: email ?? `${login}@example.com`, decision: 'authorize' });
  const submitted = await fetch(new URL('/auth/v1/_github/authorize', target.url), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
    redirect: 'manual',
  });
  assert.equal(submitted.status, 302, 'the consent form redirects to the GoTrue callback');
  const callback = new URL(submitted.headers.get('location')!);
  assert.equal(callback.pathname, '/auth/v1/callback');

  const done = await fetch(callback, { redirect: 'manual' });
  assert.equal(done.status, 302, 'the callback redirects to redirect_to');
  return new URL(done.headers.get('location')!);
}

describe(`Supabase Auth contract (${process.env.SUPABASE_URL ? 'real project' : 'test server'})`, function () {
  let alice: TestAccount;

  before(async function () {
    this.timeout(30000);
    target = process.env.SUPABASE_URL ? await realProject() : await testServerTarget();
    alice = await target.createAccount({ label: 'alice' });
  });

  afterEach(function () {
    target?.server?.setNow(undefined); // undo clock moves
  });

  after(async function () {
    this.timeout(30000);
    await target?.close();
  });

  describe('password sign-in', function () {
    it('returns a session whose access token carries GoTrue claims and verifies against the JWKS', async function () {
      const { supabase } = target.client();
      const { data, error } = await supabase.auth.signInWithPassword({ email: alice.email, password: alice.password });
      assert.equal(error, null, error?.message);
      const session = data.session!;
      assert.equal(session.token_type, 'bearer');
      assert.ok(session.expires_in > 0 && session.expires_at! > Date.now() / 1000);
      assert.match(session.refresh_token, /^[a-z0-9]{12,}$/);
      assert.equal(data.user!.id, alice.id);
      assert.equal(data.user!.email, alice.email);
      assert.equal(data.user!.aud, 'authenticated');
      assert.equal(data.user!.app_metadata.provider, 'email');

      const header = decodeProtectedHeader(session.access_token);
      const keys = await jwks();
      let claims: Record<string, unknown>;
      if (keys.keys.length > 0) {
        assert.ok(header.kid, 'asymmetric tokens carry a kid');
        assert.ok(keys.keys.some((k) => k.kid === header.kid), 'kid is published in the JWKS');
        ({ payload: claims } = await jwtVerify(session.access_token, createLocalJWKSet(keys), {
          issuer: target.issuer,
          audience: 'authenticated',
          algorithms: ['ES256', 'RS256'],
        }));
      } else {
        // A real project still on the legacy HS256 secret publishes no keys; GET /user vouches for the token.
        assert.equal(header.alg, 'HS256');
        claims = decodeJwt(session.access_token);
        assert.equal((await supabase.auth.getUser(session.access_token)).error, null);
      }
      if (target.kind === 'test-server') assert.equal(header.alg, 'ES256');
      assert.equal(claims.iss, target.issuer);
      assert.equal(claims.aud, 'authenticated');
      assert.equal(claims.role, 'authenticated');
      assert.equal(claims.sub, alice.id);
      assert.match(String(claims.session_id), UUID);
      assert.equal(claims.email, alice.email);
      assert.equal(claims.phone, '');
      assert.equal(claims.aal, 'aal1');
      assert.equal(claims.is_anonymous, false);
      assert.deepEqual((claims.app_metadata as { provider: string }).provider, 'email');
      const amr = claims.amr as Array<{ method: string; timestamp: number }>;
      assert.equal(amr[0].method, 'password');
      assert.equal(typeof amr[0].timestamp, 'number');
      assert.equal((claims.exp as number) - (claims.iat as number), session.expires_in);

      // auth-js verifies asymmetric tokens locally with the JWKS (falls back to GET /user for HS256).
      const got = await supabase.auth.getClaims();
      assert.equal(got.error, null, got.error?.message);
      assert.equal(got.data!.claims.sub, alice.id);

      const user = await supabase.auth.getUser();
      assert.equal(user.error, null);
      assert.equal(user.data.user!.id, alice.id);
    });

    it('answers invalid_credentials (400) for a wrong password and for an unknown email', async function () {
      const { supabase } = target.client();
      const wrong = await supabase.auth.signInWithPassword({ email: alice.email, password: `${alice.password}-wrong` });
      assertAuthApiError(wrong.error, 'invalid_credentials', 400);
      assert.equal(wrong.error!.message, 'Invalid login credentials');
      const unknown = await supabase.auth.signInWithPassword({ email: `nobody-${Date.now()}@example.com`, password: 'whatever-123' });
      assertAuthApiError(unknown.error, 'invalid_credentials', 400);
    });

    it('answers email_not_confirmed (400) for a user whose email is not confirmed', async function () {
      const bob = await target.createAccount({ label: 'unconfirmed', confirmed: false });
      const { supabase } = target.client();
      const { error } = await supabase.auth.signInWithPassword({ email: bob.email, password: bob.password });
      assertAuthApiError(error, 'email_not_confirmed', 400);
    });
  });

  describe('refresh tokens (v1 rotation and reuse rules)', function () {
    it('refreshSession rotates the refresh token and keeps the session', async function () {
      const s0 = await signIn(alice);
      const s1 = await refreshOk(s0.refresh_token);
      assert.notEqual(s1.refresh_token, s0.refresh_token);
      assert.notEqual(s1.access_token, s0.access_token);
      const c0 = decodeJwt(s0.access_token);
      const c1 = decodeJwt(s1.access_token);
      assert.equal(c1.session_id, c0.session_id);
      assert.equal(c1.sub, alice.id);
      // The amr keeps the sign-in method (the session's claims), not "token_refresh".
      assert.deepEqual(c1.amr, c0.amr);
    });

    it('re-using the parent of the active token returns the active token, without an error', async function () {
      const s0 = await signIn(alice);
      const s1 = await refreshOk(s0.refresh_token);
      const again = await refreshOk(s0.refresh_token); // "client failed to save the response"
      assert.equal(again.refresh_token, s1.refresh_token, 'the active refresh token is returned, not a new one');
      assert.equal(decodeJwt(again.access_token).session_id, decodeJwt(s1.access_token).session_id);
      const next = await refreshOk(s1.refresh_token); // the active token is still the active one
      assert.notEqual(next.refresh_token, s1.refresh_token);
    });

    it('an older revoked token within the reuse interval is swapped again (a sibling token)', async function () {
      const s0 = await signIn(alice);
      const s1 = await refreshOk(s0.refresh_token);
      const s2 = await refreshOk(s1.refresh_token); // active = RT2, its parent RT1
      const sibling = await refreshOk(s0.refresh_token); // RT0: revoked, not the parent of RT2, within 10 s
      assert.notEqual(sibling.refresh_token, s2.refresh_token);
      assert.notEqual(sibling.refresh_token, s1.refresh_token);
      assert.equal(decodeJwt(sibling.access_token).session_id, decodeJwt(s0.access_token).session_id);
    });

    it('after the reuse interval a revoked token gives refresh_token_already_used and revokes the family', async function () {
      testServerOnly(this, 'needs the injectable clock to pass the 10 s reuse interval');
      const srv = server();
      const before = srv.errorCounts().refresh_token_already_used ?? 0;
      const s0 = await signIn(alice);
      const s1 = await refreshOk(s0.refresh_token);
      const s2 = await refreshOk(s1.refresh_token); // active RT2 (parent RT1)
      const s3 = await refreshOk(s0.refresh_token); // sibling RT3 (parent RT0) is now the active token

      srv.advanceClock(11_000);
      const reused = await refreshWith(s1.refresh_token); // RT1: revoked 11 s ago, not the parent of RT3
      assertAuthApiError(reused.error, 'refresh_token_already_used', 400);
      assert.equal(reused.error!.message, 'Invalid Refresh Token: Already Used');
      assert.equal(srv.errorCounts().refresh_token_already_used, before + 1);

      const sessionId = String(decodeJwt(s0.access_token).session_id);
      assert.ok(srv.refreshTokens(sessionId).every((t) => t.revoked), 'every token of the session is revoked');
      assert.ok(srv.sessionExists(sessionId), 'the session row is kept (v1 family revocation)');
      const { supabase } = target.client();
      const stillValid = await supabase.auth.getUser(s3.access_token);
      assert.equal(stillValid.error, null, 'issued access tokens still pass GET /user until they expire');

      // RevokeTokenFamily sets updated_at = now(), so the family's tokens fail only once the reuse
      // interval has passed again (see the next test for the window in between).
      srv.advanceClock(11_000);
      assertAuthApiError((await refreshWith(s3.refresh_token)).error, 'refresh_token_already_used', 400);
      assertAuthApiError((await refreshWith(s2.refresh_token)).error, 'refresh_token_already_used', 400);
    });

    it('a token revoked by a family revocation is still swapped within the reuse interval (GoTrue quirk)', async function () {
      testServerOnly(this, 'needs the injectable clock to pass the 10 s reuse interval');
      const srv = server();
      const s0 = await signIn(alice);
      const s1 = await refreshOk(s0.refresh_token);
      await refreshOk(s1.refresh_token); // active RT2
      srv.advanceClock(11_000);
      assertAuthApiError((await refreshWith(s0.refresh_token)).error, 'refresh_token_already_used', 400);
      // RT2 was revoked just now by RevokeTokenFamily (updated_at = now()): rule 3 swaps it.
      const s2 = (await refreshWith(srv.refreshTokens(String(decodeJwt(s0.access_token).session_id)).at(-1)!.token)).data.session;
      assert.ok(s2, 'the just-revoked active token was swapped again');
    });

    it('concurrent refreshes with the same token all succeed and agree on one rotated token', async function () {
      const s0 = await signIn(alice);
      const results = await Promise.all(Array.from({ length: 5 }, () => refreshWith(s0.refresh_token)));
      for (const r of results) assert.equal(r.error, null, r.error?.message);
      const tokens = new Set(results.map((r) => r.data.session!.refresh_token));
      assert.equal(tokens.size, 1, 'the first swap wins; the others get the active token (parent-of-active)');
      assert.ok(!tokens.has(s0.refresh_token));
    });

    it('answers refresh_token_not_found for an unknown refresh token', async function () {
      const { error } = await refreshWith('abcdefghijkl');
      assertAuthApiError(error, 'refresh_token_not_found', 400);
      const long = await refreshWith('this-is-not-a-refresh-token-at-all');
      assertAuthApiError(long.error, 'refresh_token_not_found', 400);
    });

    it('no refresh_token_already_used was answered except by the tests that provoke it', async function () {
      testServerOnly(this, 'reads the error counters of the test server');
      const res = await fetch(`${target.url}/__test/stats`);
      const stats = (await res.json()) as { errorCounts: Record<string, number>; refreshRequests: number };
      assert.equal(stats.errorCounts.refresh_token_already_used, 4, 'only the two clock tests above');
      assert.ok(stats.refreshRequests >= 15);
      assert.equal(server().refreshRequests(), stats.refreshRequests);
    });
  });

  describe('sign-out', function () {
    it("signOut({scope:'local'}) ends the session: its refresh token is gone and /user says session_not_found", async function () {
      const { supabase } = target.client();
      const { data } = await supabase.auth.signInWithPassword({ email: alice.email, password: alice.password });
      const { refresh_token, access_token } = data.session!;
      assert.equal((await supabase.auth.signOut({ scope: 'local' })).error, null);
      assert.equal((await supabase.auth.getSession()).data.session, null);

      // The session row is deleted and its refresh tokens with it (ON DELETE CASCADE), so GoTrue
      // answers refresh_token_not_found rather than session_not_found.
      assertAuthApiError((await refreshWith(refresh_token)).error, 'refresh_token_not_found', 400);
      const user = await target.client().supabase.auth.getUser(access_token);
      assert.equal(user.error?.name, 'AuthSessionMissingError', 'GET /user: 403 session_not_found');
    });

    it("signOut({scope:'others'}) ends the user's other sessions only", async function () {
      const a = target.client();
      const b = target.client();
      const sa = (await a.supabase.auth.signInWithPassword({ email: alice.email, password: alice.password })).data.session!;
      const sb = (await b.supabase.auth.signInWithPassword({ email: alice.email, password: alice.password })).data.session!;
      assert.equal((await a.supabase.auth.signOut({ scope: 'others' })).error, null);
      assertAuthApiError((await refreshWith(sb.refresh_token)).error, 'refresh_token_not_found', 400);
      await refreshOk(sa.refresh_token);
    });
  });

  describe('user', function () {
    it('updateUser({data}) writes user_metadata (PUT /user) and the next access token carries it', async function () {
      const { supabase } = target.client();
      await supabase.auth.signInWithPassword({ email: alice.email, password: alice.password });
      const { data, error } = await supabase.auth.updateUser({ data: { display_name: 'Alice A.' } });
      assert.equal(error, null, error?.message);
      assert.equal(data.user!.user_metadata.display_name, 'Alice A.');
      const { data: refreshed } = await supabase.auth.refreshSession();
      assert.equal((decodeJwt(refreshed.session!.access_token).user_metadata as Record<string, unknown>).display_name, 'Alice A.');
    });

    it('signUp with auto-confirm returns a session; a second signUp gives user_already_exists (422)', async function () {
      testServerOnly(this, 'a real project may require email confirmation and would send mail');
      const email = `signup-${Date.now()}@example.com`;
      const { supabase } = target.client();
      const first = await supabase.auth.signUp({ email, password: 'pw-123456' });
      assert.equal(first.error, null, first.error?.message);
      assert.ok(first.data.session, 'auto-confirmed sign-up signs in');
      assert.equal(first.data.user!.email, email);
      assertAuthApiError((await target.client().supabase.auth.signUp({ email, password: 'pw-654321' })).error, 'user_already_exists', 422);
      const weak = await target.client().supabase.auth.signUp({ email: `weak-${email}`, password: '123' });
      assert.equal(weak.error?.code, 'weak_password');
      assert.equal(weak.error?.status, 422);
    });
  });

  describe('email OTP', function () {
    it('signInWithOtp + verifyOtp with the mailed code gives a session', async function () {
      testServerOnly(this, 'reads the code from the test server outbox');
      const { supabase } = target.client();
      const sent = await supabase.auth.signInWithOtp({ email: alice.email });
      assert.equal(sent.error, null, sent.error?.message);
      const code = server().lastOtp(alice.email);
      assert.match(code ?? '', /^\d{6}$/);

      const bad = await supabase.auth.verifyOtp({ email: alice.email, token: code === '000000' ? '111111' : '000000', type: 'email' });
      assertAuthApiError(bad.error, 'otp_expired', 403);

      const { data, error } = await supabase.auth.verifyOtp({ email: alice.email, token: code!, type: 'email' });
      assert.equal(error, null, error?.message);
      assert.equal(data.user!.id, alice.id);
      assert.equal((decodeJwt(data.session!.access_token).amr as Array<{ method: string }>)[0].method, 'otp');
      // One use only.
      assertAuthApiError((await supabase.auth.verifyOtp({ email: alice.email, token: code!, type: 'email' })).error, 'otp_expired', 403);

      // The HTTP hook shows the same mail.
      const hook = (await (await fetch(`${target.url}/__test/otp?email=${encodeURIComponent(alice.email)}`)).json()) as { otp: string; type: string };
      assert.equal(hook.otp, code);
      assert.equal(hook.type, 'magiclink');
    });

    it('signInWithOtp for a new address signs the user up (auto-confirm) and verifies', async function () {
      testServerOnly(this, 'reads the code from the test server outbox');
      const email = `otp-new-${Date.now()}@example.com`;
      const { supabase } = target.client();
      assert.equal((await supabase.auth.signInWithOtp({ email })).error, null);
      const { data, error } = await supabase.auth.verifyOtp({ email, token: server().lastOtp(email)!, type: 'email' });
      assert.equal(error, null, error?.message);
      assert.equal(data.user!.email, email);
      assert.ok(data.user!.email_confirmed_at);
    });
  });

  describe('OAuth (GitHub stand-in) with PKCE', function () {
    it('signInWithOAuth -> consent -> callback -> exchangeCodeForSession gives a session', async function () {
      testServerOnly(this, 'uses the GitHub stand-in consent page');
      const { supabase, storage, storageKey } = target.client();
      const { data, error } = await supabase.auth.signInWithOAuth({ provider: 'github', options: { redirectTo: REDIRECT_TO, skipBrowserRedirect: true } });
      assert.equal(error, null);
      const verifier = JSON.parse(storage.map.get(`${storageKey}-code-verifier`)!) as string;
      const authorizeUrl = new URL(data.url!);
      assert.equal(authorizeUrl.pathname, '/auth/v1/authorize');
      assert.equal(authorizeUrl.searchParams.get('code_challenge_method'), 's256');

      const back = await githubConsent(data.url!, 'octocat');
      assert.equal(`${back.origin}${back.pathname}`, REDIRECT_TO);
      const code = back.searchParams.get('code')!;
      assert.match(code, UUID);

      const exchanged = await supabase.auth.exchangeCodeForSession(code);
      assert.equal(exchanged.error, null, exchanged.error?.message);
      const claims = decodeJwt(exchanged.data.session!.access_token);
      assert.equal((claims.app_metadata as { provider: string }).provider, 'github');
      assert.equal((claims.amr as Array<{ method: string }>)[0].method, 'oauth');
      assert.equal(exchanged.data.user!.email, 'octocat@example.com');
      assert.equal((await supabase.auth.getSession()).data.session?.refresh_token, exchanged.data.session!.refresh_token);

      // The auth code is single-use: the flow state is deleted by the exchange.
      const again = await fetch(`${target.issuer}/token?grant_type=pkce`, {
        method: 'POST',
        headers: { apikey: target.anonKey, 'content-type': 'application/json', 'X-Supabase-Api-Version': '2024-01-01' },
        body: JSON.stringify({ auth_code: code, code_verifier: verifier }),
      });
      assert.equal(again.status, 404);
      assert.equal(((await again.json()) as { code: string }).code, 'flow_state_not_found');
    });

    it('links the GitHub identity to an existing user with the same email', async function () {
      testServerOnly(this, 'uses the GitHub stand-in consent page');
      const { supabase } = target.client();
      const { data } = await supabase.auth.signInWithOAuth({ provider: 'github', options: { redirectTo: REDIRECT_TO, skipBrowserRedirect: true, queryParams: { login: 'alice-gh' } } });
      const back = await githubConsent(data.url!, 'alice-gh', alice.email);
      const { data: s, error } = await supabase.auth.exchangeCodeForSession(back.searchParams.get('code')!);
      assert.equal(error, null, error?.message);
      assert.equal(s.user!.id, alice.id);
      assert.deepEqual([...(s.user!.app_metadata.providers as string[])].sort(), ['email', 'github']);
    });

    it('a wrong code verifier gives bad_code_verifier (400); a used or unknown code flow_state_not_found (404)', async function () {
      testServerOnly(this, 'uses the GitHub stand-in consent page');
      const { supabase, storage } = target.client();
      const { data } = await supabase.auth.signInWithOAuth({ provider: 'github', options: { redirectTo: REDIRECT_TO, skipBrowserRedirect: true } });
      const code = (await githubConsent(data.url!)).searchParams.get('code')!;
      for (const key of storage.map.keys()) {
        if (key.endsWith('-code-verifier') && !key.endsWith('-flows-code-verifier')) storage.map.set(key, JSON.stringify('x'.repeat(56)));
      }
      const bad = await supabase.auth.exchangeCodeForSession(code);
      assertAuthApiError(bad.error, 'bad_code_verifier', 400);

      const unknown = target.client();
      await unknown.supabase.auth.signInWithOAuth({ provider: 'github', options: { redirectTo: REDIRECT_TO, skipBrowserRedirect: true } });
      const notFound = await unknown.supabase.auth.exchangeCodeForSession('00000000-0000-4000-8000-000000000000');
      assertAuthApiError(notFound.error, 'flow_state_not_found', 404);
    });

    it('a flow state older than 300 s gives flow_state_expired (422)', async function () {
      testServerOnly(this, 'needs the injectable clock');
      const { supabase } = target.client();
      const { data } = await supabase.auth.signInWithOAuth({ provider: 'github', options: { redirectTo: REDIRECT_TO, skipBrowserRedirect: true } });
      const code = (await githubConsent(data.url!)).searchParams.get('code')!;
      server().advanceClock(301_000);
      assertAuthApiError((await supabase.auth.exchangeCodeForSession(code)).error, 'flow_state_expired', 422);
    });

    it('a redirect_to that is not loopback, the site URL or allow-listed falls back to the site URL', async function () {
      testServerOnly(this, 'uses the GitHub stand-in consent page');
      const { supabase } = target.client();
      const { data } = await supabase.auth.signInWithOAuth({ provider: 'github', options: { redirectTo: 'https://evil.example.com/cb', skipBrowserRedirect: true } });
      const back = await githubConsent(data.url!);
      assert.equal(back.origin, 'http://127.0.0.1:3000');
      assert.match(back.searchParams.get('code') ?? '', UUID);
    });
  });

  describe('gateway, error shapes and keys', function () {
    it('answers 401 "No API key found in request" without an apikey; JWKS needs none', async function () {
      const res = await fetch(`${target.issuer}/token?grant_type=password`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: alice.email, password: alice.password }),
      });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { message: string }).message, 'No API key found in request');
      const user = await fetch(`${target.issuer}/user`);
      assert.equal(user.status, 401);
      assert.equal((await fetch(`${target.issuer}/.well-known/jwks.json`)).status, 200);
    });

    it('uses the 2024-01-01 error shape when asked (supabase-js does), else the legacy shape', async function () {
      const call = (headers: Record<string, string>) =>
        fetch(`${target.issuer}/token?grant_type=password`, {
          method: 'POST',
          headers: { apikey: target.anonKey, 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ email: alice.email, password: 'definitely-wrong' }),
        });
      const v2024 = await call({ 'X-Supabase-Api-Version': '2024-01-01' });
      assert.equal(v2024.status, 400);
      assert.equal(v2024.headers.get('x-supabase-api-version'), '2024-01-01');
      assert.equal(v2024.headers.get('x-sb-error-code'), 'invalid_credentials');
      assert.deepEqual(await v2024.json(), { code: 'invalid_credentials', message: 'Invalid login credentials' });

      const legacy = await call({});
      assert.equal(legacy.status, 400);
      assert.equal(legacy.headers.get('x-supabase-api-version'), null);
      assert.equal(legacy.headers.get('x-sb-error-code'), 'invalid_credentials');
      const body = (await legacy.json()) as Record<string, unknown>;
      assert.equal(body.code, 400);
      assert.equal(body.error_code, 'invalid_credentials');
      assert.equal(body.msg, 'Invalid login credentials');
    });

    it('GET /user: no Bearer token -> 401 no_authorization; a bad token -> 403 bad_jwt', async function () {
      const noBearer = await fetch(`${target.issuer}/user`, { headers: { apikey: target.anonKey, 'X-Supabase-Api-Version': '2024-01-01' } });
      if (target.kind === 'test-server' || !target.anonKey.startsWith('sb_')) {
        assert.equal(noBearer.status, 401);
        assert.equal(((await noBearer.json()) as { code: string }).code, 'no_authorization');
      }
      const s = await signIn(alice);
      const tampered = `${s.access_token.slice(0, -4)}AAAA`;
      const { error } = await target.client().supabase.auth.getUser(tampered);
      assertAuthApiError(error, 'bad_jwt', 403);
    });

    it('admin user creation requires a service_role token (anon -> 403 not_admin)', async function () {
      const { supabase } = target.client();
      const { error } = await supabase.auth.admin.createUser({ email: `not-admin-${Date.now()}@example.com`, password: 'pw-123456', email_confirm: true });
      assertAuthApiError(error, 'not_admin', 403);
      const dup = await target.admin.auth.admin.createUser({ email: alice.email, password: 'pw-123456', email_confirm: true });
      assertAuthApiError(dup.error, 'email_exists', 422);
    });

    it('admin users: GET /admin/users pages newest first (per_page, X-Total-Count, Link), GET /admin/users/{id} reads one', async function () {
      const made = [await target.createAccount({ label: 'page-a' }), await target.createAccount({ label: 'page-b' })];
      const admin = { apikey: target.serviceRoleKey, Authorization: `Bearer ${target.serviceRoleKey}`, 'X-Supabase-Api-Version': '2024-01-01' };
      const res = await fetch(`${target.issuer}/admin/users?per_page=2&page=1`, { headers: admin });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { users: { id: string; email: string; created_at: string }[]; aud: string };
      assert.equal(body.users.length, 2);
      assert.ok(Date.parse(body.users[0].created_at) >= Date.parse(body.users[1].created_at), 'newest first');
      const total = Number(res.headers.get('x-total-count'));
      assert.ok(total >= 3, `x-total-count ${total}`);
      const link = res.headers.get('link') ?? '';
      assert.match(link, /^<\/admin\/users\?page=2&per_page=2>; rel="next", <\/admin\/users\?page=\d+&per_page=2>; rel="last"$/);
      assert.ok(link.endsWith(`</admin/users?page=${Math.ceil(total / 2)}&per_page=2>; rel="last"`), link);
      // supabase-js reads the same, and finds each created user by id.
      const { data, error } = await target.admin.auth.admin.listUsers({ page: 1, perPage: 2 });
      assert.equal(error, null);
      assert.equal(data.users.length, 2);
      assert.equal((data as { total?: number }).total, total);
      for (const account of made) {
        const one = await target.admin.auth.admin.getUserById(account.id);
        assert.equal(one.error, null);
        assert.equal(one.data.user?.email, account.email);
      }
      const missing = await target.admin.auth.admin.getUserById('00000000-0000-4000-8000-000000000000');
      assertAuthApiError(missing.error, 'user_not_found', 404);
      const notUuid = await fetch(`${target.issuer}/admin/users/not-a-uuid`, { headers: admin });
      assert.equal(notUuid.status, 404);
      assert.equal(((await notUuid.json()) as { code: string }).code, 'validation_failed');
      const anon = await fetch(`${target.issuer}/admin/users`, { headers: { apikey: target.anonKey, Authorization: `Bearer ${target.anonKey}`, 'X-Supabase-Api-Version': '2024-01-01' } });
      assert.equal(anon.status, 403);
      assert.equal(((await anon.json()) as { code: string }).code, 'not_admin');
    });

    it('publishes the issuer and JWKS location in the OpenID configuration', async function () {
      const res = await fetch(`${target.issuer}/.well-known/openid-configuration`, { headers: { apikey: target.anonKey } });
      assert.equal(res.status, 200);
      const doc = (await res.json()) as { issuer: string; jwks_uri: string };
      assert.equal(doc.issuer, target.issuer);
      assert.equal(doc.jwks_uri, `${target.issuer}/.well-known/jwks.json`);
    });

    it('publishes an ES256 public key with Cache-Control public, max-age=600, and legacy-style API keys', async function () {
      testServerOnly(this, "checks the test server's own key material");
      const res = await fetch(`${target.issuer}/.well-known/jwks.json`);
      assert.equal(res.headers.get('cache-control'), 'public, max-age=600');
      const { keys } = (await res.json()) as JSONWebKeySet;
      assert.equal(keys.length, 1);
      assert.equal(keys[0].kid, server().kid);
      assert.equal(keys[0].alg, 'ES256');
      assert.equal(keys[0].kty, 'EC');
      assert.equal(keys[0].d, undefined, 'no private part');
      const anon = decodeJwt(target.anonKey);
      assert.deepEqual({ iss: anon.iss, ref: anon.ref, role: anon.role }, { iss: 'supabase', ref: 'test', role: 'anon' });
      assert.equal(decodeJwt(target.serviceRoleKey).role, 'service_role');
      assert.equal(decodeProtectedHeader(target.anonKey).alg, 'HS256');
    });
  });
});

describe('Supabase Auth contract: legacy HS256 project (test server)', function () {
  let hs: Target;
  let carol: TestAccount;

  before(async function () {
    if (process.env.SUPABASE_URL) return; // skipped below: the signing mode of a real project is not ours to choose
    hs = await testServerTarget({ signing: 'HS256' });
    carol = await hs.createAccount({ label: 'carol' });
  });

  after(async function () {
    await hs?.close();
  });

  it('publishes an empty JWKS and signs access tokens with the JWT secret (no kid)', async function () {
    if (process.env.SUPABASE_URL) this.skip(); // needs the test server's HS256 mode and its secret
    const { keys } = (await (await fetch(`${hs.issuer}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    assert.deepEqual(keys, []);
    const { supabase } = hs.client();
    const { data, error } = await supabase.auth.signInWithPassword({ email: carol.email, password: carol.password });
    assert.equal(error, null, error?.message);
    const token = data.session!.access_token;
    const header = decodeProtectedHeader(token);
    assert.equal(header.alg, 'HS256');
    assert.equal(header.kid, undefined);
    const { payload } = await jwtVerify(token, new TextEncoder().encode(hs.server!.jwtSecret), {
      algorithms: ['HS256'],
      issuer: hs.issuer,
      audience: 'authenticated',
    });
    assert.equal(payload.sub, carol.id);
    assert.equal(payload.role, 'authenticated');
    // auth-js cannot verify HS256 locally and asks GET /user instead.
    const claims = await supabase.auth.getClaims();
    assert.equal(claims.error, null, claims.error?.message);
    assert.equal(claims.data!.claims.sub, carol.id);
  });
});

describe('Supabase Auth contract: email confirmation on (test server, autoConfirm false)', function () {
  let tc: Target;

  before(async function () {
    if (process.env.SUPABASE_URL) return;
    tc = await testServerTarget({ autoConfirm: false });
  });

  after(async function () {
    await tc?.close();
  });

  it('signUp mails a code, sign-in says email_not_confirmed until verifyOtp({type:"signup"})', async function () {
    if (process.env.SUPABASE_URL) this.skip(); // reads the test server outbox
    const email = `confirm-${Date.now()}@example.com`;
    const { supabase } = tc.client();
    const { data, error } = await supabase.auth.signUp({ email, password: 'pw-123456' });
    assert.equal(error, null, error?.message);
    assert.equal(data.session, null, 'no session before confirmation');
    assert.equal(data.user!.email, email);
    const mail = tc.server!.outbox(email).at(-1)!;
    assert.equal(mail.type, 'signup');
    assert.match(mail.tokenHash, /^pkce_[0-9a-f]{56}$/, 'sha224, with the PKCE prefix (supabase-js sent a code_challenge)');

    const early = await tc.client().supabase.auth.signInWithPassword({ email, password: 'pw-123456' });
    assert.equal(early.error?.code, 'email_not_confirmed');
    assert.equal(early.error?.status, 400);

    const verified = await supabase.auth.verifyOtp({ email, token: mail.otp, type: 'signup' });
    assert.equal(verified.error, null, verified.error?.message);
    assert.ok(verified.data.user!.email_confirmed_at);
    const later = await tc.client().supabase.auth.signInWithPassword({ email, password: 'pw-123456' });
    assert.equal(later.error, null, later.error?.message);
  });
});
