// Contract tests of Supabase Auth's OAuth 2.1 server (Supabase as the authorization server of an MCP
// server), driven through plain HTTP as an OAuth client would, the real supabase-js `auth.oauth.*` /
// `auth.admin.oauth.*` as a consent page and an operator would, and the MCP SDK's discovery. They run
// against the GoTrue-compatible test server by default, and against a real Supabase project when
// SUPABASE_URL, SUPABASE_ANON_KEY and SUPABASE_SERVICE_ROLE_KEY are set. On a real project, a test
// that needs something the project may not have turned on (the OAuth server, dynamic registration,
// an authorization path) or a test-server-only hook is skipped with the reason in its title.
// The expected behaviour is GoTrue's (supabase/auth bc32168e), see /work/shared/supabase-auth-facts.md §8.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { discoverAuthorizationServerMetadata, exchangeAuthorization, refreshAuthorization, registerClient, startAuthorization as sdkStartAuthorization } from '@modelcontextprotocol/sdk/client/auth.js';
import { isAuthApiError, type SupabaseClient } from '@supabase/supabase-js';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import { realProject, type Target, type TestAccount, testServerTarget } from './target';

const REDIRECT_URI = 'http://127.0.0.1:54997/callback';
const SITE_URL = 'http://127.0.0.1:54998';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const API_VERSION = { 'X-Supabase-Api-Version': '2024-01-01' };

let target: Target;
/** Why OAuth tests cannot run on this target (the OAuth server is off), else undefined. */
let oauthOff: string | undefined;
let dcrOff: string | undefined;
const createdClients: string[] = [];

function skipWith(ctx: Mocha.Context, why: string): never {
  ctx.test!.title += ` [skipped: ${why}]`;
  console.log(`      skipped "${ctx.test!.title}"`);
  ctx.skip();
}

function testServerOnly(ctx: Mocha.Context, why: string): void {
  if (target.kind !== 'test-server') skipWith(ctx, `on a real project: ${why}`);
}

function server() {
  assert.ok(target.server, 'test server');
  return target.server;
}

// ---------------------------------------------------------------------------------------------
// OAuth client side helpers

interface Client {
  client_id: string;
  client_secret?: string;
  token_endpoint_auth_method: string;
  redirect_uris: string[];
  [k: string]: unknown;
}

async function postJson(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${target.issuer}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

/** Registers a client: through dynamic registration when the project allows it, else the admin API. */
async function newClient(opts: { name?: string; confidential?: boolean; redirectUris?: string[]; grantTypes?: string[] } = {}): Promise<Client> {
  const body = {
    client_name: opts.name ?? `exai-contract-${crypto.randomBytes(3).toString('hex')}`,
    redirect_uris: opts.redirectUris ?? [REDIRECT_URI],
    token_endpoint_auth_method: opts.confidential ? 'client_secret_basic' : 'none',
    ...(opts.grantTypes ? { grant_types: opts.grantTypes } : {}),
  };
  let client: Client;
  if (!dcrOff) {
    const res = await postJson('/oauth/clients/register', body);
    assert.equal(res.status, 201, await res.clone().text());
    client = (await res.json()) as Client;
  } else {
    const { data, error } = await target.admin.auth.admin.oauth.createClient(body as never);
    assert.equal(error, null, error?.message);
    client = data as unknown as Client;
  }
  createdClients.push(client.client_id);
  return client;
}

function pkce(method: 'S256' | 'plain' = 'S256'): { verifier: string; challenge: string; method: string } {
  const verifier = crypto.randomBytes(48).toString('base64url');
  const challenge = method === 'S256' ? crypto.createHash('sha256').update(verifier).digest('base64url') : verifier;
  return { verifier, challenge, method };
}

function authorizeUrl(client: Client, params: Record<string, string | undefined>): string {
  const q = new URLSearchParams({ client_id: client.client_id, redirect_uri: client.redirect_uris[0], response_type: 'code' });
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) q.delete(k);
    else q.set(k, v);
  }
  return `${target.issuer}/oauth/authorize?${q}`;
}

/** GET /oauth/authorize (no apikey, as a browser), returning the redirect. */
async function authorize(client: Client, params: Record<string, string | undefined> = {}): Promise<{ res: Response; location: URL | undefined }> {
  const res = await fetch(authorizeUrl(client, params), { redirect: 'manual' });
  const loc = res.headers.get('location');
  return { res, location: loc ? new URL(loc) : undefined };
}

/** Starts an authorization and returns its id (from the redirect to the consent page). */
async function startAuthorization(ctx: Mocha.Context, client: Client, p = pkce(), params: Record<string, string | undefined> = {}): Promise<string> {
  const { res, location } = await authorize(client, { code_challenge: p.challenge, code_challenge_method: p.method, state: 'st-1', scope: 'email', ...params });
  assert.equal(res.status, 302);
  assert.ok(location);
  if (location.searchParams.get('error') === 'server_error') skipWith(ctx, 'the project has no OAuth authorization path configured');
  const id = location.searchParams.get('authorization_id');
  assert.ok(id, `redirect to the consent page: ${location}`);
  return id;
}

async function signedIn(account: TestAccount): Promise<SupabaseClient> {
  const { supabase } = target.client();
  const { error } = await supabase.auth.signInWithPassword({ email: account.email, password: account.password });
  assert.equal(error, null, error?.message);
  return supabase;
}

/** The consent page's part: details, then approve through supabase-js; returns the redirect URL with the code. */
async function approve(ctx: Mocha.Context, supabase: SupabaseClient, client: Client, p = pkce(), params: Record<string, string | undefined> = {}): Promise<URL> {
  const id = await startAuthorization(ctx, client, p, params);
  const details = await supabase.auth.oauth.getAuthorizationDetails(id);
  assert.equal(details.error, null, details.error?.message);
  if ('redirect_url' in details.data! && !('authorization_id' in details.data!)) return new URL(details.data.redirect_url as string);
  const { data, error } = await supabase.auth.oauth.approveAuthorization(id, { skipBrowserRedirect: true });
  assert.equal(error, null, error?.message);
  return new URL(data!.redirect_url);
}

async function tokenRequest(params: Record<string, string>, opts: { basic?: [string, string]; json?: boolean; headers?: Record<string, string> } = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.basic) headers.authorization = `Basic ${Buffer.from(`${opts.basic[0]}:${opts.basic[1]}`).toString('base64')}`;
  headers['content-type'] = opts.json ? 'application/json' : 'application/x-www-form-urlencoded';
  const res = await fetch(`${target.issuer}/oauth/token`, { method: 'POST', headers, body: opts.json ? JSON.stringify(params) : new URLSearchParams(params) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

/** Runs the whole flow for `account` and exchanges the code (public client). */
async function tokensFor(ctx: Mocha.Context, account: TestAccount, client: Client, scope = 'email'): Promise<{ access_token: string; refresh_token: string; [k: string]: unknown }> {
  const supabase = await signedIn(account);
  const p = pkce();
  const redirect = await approve(ctx, supabase, client, p, { scope });
  const code = redirect.searchParams.get('code')!;
  const { status, body } = await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: client.client_id, redirect_uri: client.redirect_uris[0] });
  assert.equal(status, 200, JSON.stringify(body));
  return body as { access_token: string; refresh_token: string };
}

async function jwks(): Promise<JSONWebKeySet> {
  const res = await fetch(`${target.issuer}/.well-known/jwks.json`);
  return (await res.json()) as JSONWebKeySet;
}

function assertOAuthError(r: { status: number; body: Record<string, unknown> }, error: string, description?: RegExp): void {
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal(r.body.error, error, JSON.stringify(r.body));
  assert.equal(typeof r.body.error_description, 'string');
  if (description) assert.match(r.body.error_description as string, description);
  assert.equal(r.body.code, undefined, 'OAuth-shaped errors have no GoTrue code');
}

async function assertGoTrueError(res: Response, status: number, code: string, message?: RegExp): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  const body = JSON.parse(text) as Record<string, unknown>;
  const got = body.error_code ?? body.code;
  assert.equal(got, code, text);
  if (message) assert.match(String(body.msg ?? body.message), message);
  assert.equal(res.headers.get('x-sb-error-code'), code);
}

// ---------------------------------------------------------------------------------------------

describe(`Supabase Auth OAuth 2.1 server contract (${process.env.SUPABASE_URL ? 'real project' : 'test server'})`, function () {
  let alice: TestAccount;
  let bob: TestAccount;

  before(async function () {
    this.timeout(30000);
    target = process.env.SUPABASE_URL
      ? await realProject()
      : await testServerTarget({
          siteUrl: SITE_URL,
          oauthServer: { enabled: true, allowDynamicRegistration: true, authorizationPath: '/oauth/consent', registrationRateLimit: false },
        });
    const meta = await fetch(`${target.issuer}/.well-known/oauth-authorization-server`);
    if (meta.status === 404) oauthOff = 'the project has the OAuth 2.1 server turned off (Authentication → OAuth Server)';
    else if (!((await meta.json()) as Record<string, unknown>).registration_endpoint) dcrOff = 'the project does not allow dynamic client registration';
    if (oauthOff) console.log(`      OAuth server contract: ${oauthOff}; its tests are skipped`);
    alice = await target.createAccount({ label: 'oauth-alice' });
    bob = await target.createAccount({ label: 'oauth-bob' });
  });

  /** The one test that also runs on a project whose OAuth server is off. */
  let runsWithOAuthOff: Mocha.Test | undefined;

  beforeEach(function () {
    if (oauthOff && this.currentTest !== runsWithOAuthOff) {
      this.currentTest!.title += ` [skipped: ${oauthOff}]`;
      this.skip();
    }
  });

  afterEach(function () {
    target?.server?.setNow(undefined);
  });

  after(async function () {
    this.timeout(30000);
    if (target?.kind === 'real-project') for (const id of createdClients) await target.admin.auth.admin.oauth.deleteClient(id);
    await target?.close();
  });

  describe('metadata', function () {
    it('serves the authorization server metadata without an apikey, with Cache-Control public, max-age=600', async function () {
      const res = await fetch(`${target.issuer}/.well-known/oauth-authorization-server`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('cache-control'), 'public, max-age=600');
      const m = (await res.json()) as Record<string, unknown>;
      assert.equal(m.issuer, target.issuer);
      assert.equal(m.authorization_endpoint, `${target.issuer}/oauth/authorize`);
      assert.equal(m.token_endpoint, `${target.issuer}/oauth/token`);
      assert.equal(m.jwks_uri, `${target.issuer}/.well-known/jwks.json`);
      assert.equal(m.userinfo_endpoint, `${target.issuer}/oauth/userinfo`);
      if (!dcrOff) assert.equal(m.registration_endpoint, `${target.issuer}/oauth/clients/register`);
      assert.deepEqual(m.response_types_supported, ['code']);
      assert.deepEqual(m.grant_types_supported, ['authorization_code', 'refresh_token']);
      assert.deepEqual(m.code_challenge_methods_supported, ['S256', 'plain']);
      assert.deepEqual(m.token_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post', 'none']);
      assert.deepEqual(m.scopes_supported, ['openid', 'profile', 'email', 'phone', 'offline_access']);
      assert.equal(m.revocation_endpoint, undefined);
      assert.equal(m.introspection_endpoint, undefined);
    });

    it('serves the same body at the path-inserted /.well-known/oauth-authorization-server/auth/v1 and at /auth/v1/.well-known/openid-configuration', async function () {
      const canonical = await (await fetch(`${target.issuer}/.well-known/oauth-authorization-server`)).json();
      const urls: Array<[string, Record<string, string>]> = [
        [`${target.url}/.well-known/oauth-authorization-server/auth/v1`, {}],
        [`${target.issuer}/.well-known/openid-configuration`, { apikey: target.anonKey }],
      ];
      // The OIDC path-inserted variant is served by the test server for the SDK's second try (oauth-design.md item 1).
      if (target.kind === 'test-server') urls.push([`${target.url}/.well-known/openid-configuration/auth/v1`, {}], [`${target.issuer}/.well-known/openid-configuration`, {}]);
      for (const [url, headers] of urls) {
        const res = await fetch(url, { headers });
        assert.equal(res.status, 200, url);
        assert.deepEqual(await res.json(), canonical, url);
      }
    });

    it("the MCP SDK's discoverAuthorizationServerMetadata('<url>/auth/v1') finds it (path-inserted first)", async function () {
      const seen: string[] = [];
      const fetchFn = (input: string | URL | Request, init?: RequestInit) => {
        seen.push(String(input instanceof Request ? input.url : input));
        return fetch(input, init);
      };
      const meta = await discoverAuthorizationServerMetadata(`${target.url}/auth/v1`, { fetchFn });
      assert.ok(meta, 'metadata found');
      assert.equal(meta.issuer, target.issuer);
      assert.equal(meta.token_endpoint, `${target.issuer}/oauth/token`);
      assert.ok(meta.code_challenge_methods_supported?.includes('S256'));
      assert.equal(seen[0], `${target.url}/.well-known/oauth-authorization-server/auth/v1`, 'the first URL tried answers');
      assert.equal(seen.length, 1);
    });

    it("the MCP SDK's registerClient, startAuthorization (with resource), exchangeAuthorization and refreshAuthorization work against it", async function () {
      if (dcrOff) skipWith(this, dcrOff);
      const asUrl = `${target.url}/auth/v1`;
      const metadata = await discoverAuthorizationServerMetadata(asUrl);
      assert.ok(metadata);
      const info = await registerClient(asUrl, {
        metadata,
        clientMetadata: { client_name: 'MCP SDK client', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none', scope: 'email' },
      });
      createdClients.push(info.client_id);
      assert.equal(info.client_secret, undefined);
      const resource = 'http://127.0.0.1:54990/mcp';
      const { authorizationUrl, codeVerifier } = await sdkStartAuthorization(asUrl, { metadata, clientInformation: info, redirectUrl: REDIRECT_URI, scope: 'email', state: 'sdk', resource });
      assert.equal(authorizationUrl.searchParams.get('resource'), resource);
      const start = await fetch(authorizationUrl, { redirect: 'manual' });
      const consent = new URL(start.headers.get('location')!);
      if (consent.searchParams.get('error') === 'server_error') skipWith(this, 'the project has no OAuth authorization path configured');
      const id = consent.searchParams.get('authorization_id')!;
      const a = await signedIn(alice);
      assert.equal((await a.auth.oauth.getAuthorizationDetails(id)).error, null);
      const approved = await a.auth.oauth.approveAuthorization(id, { skipBrowserRedirect: true });
      const code = new URL(approved.data!.redirect_url).searchParams.get('code')!;
      const tokens = await exchangeAuthorization(asUrl, { metadata, clientInformation: info, authorizationCode: code, codeVerifier, redirectUri: REDIRECT_URI, resource });
      assert.equal(tokens.token_type, 'bearer');
      assert.equal(decodeJwt(tokens.access_token).client_id, info.client_id);
      assert.equal(decodeJwt(tokens.access_token).aud, 'authenticated', 'Supabase ignores RFC 8707 resource: aud stays authenticated');
      const refreshed = await refreshAuthorization(asUrl, { metadata, clientInformation: info, refreshToken: tokens.refresh_token!, resource });
      assert.ok(refreshed.access_token && refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token);
    });
  });

  describe('dynamic client registration', function () {
    beforeEach(function () {
      if (dcrOff) skipWith(this, dcrOff);
    });

    it('registers a public client (token_endpoint_auth_method none): 201, no secret, GoTrue fields, ignores unknown fields', async function () {
      const res = await postJson('/oauth/clients/register', {
        client_name: 'Contract public',
        redirect_uris: [REDIRECT_URI, 'myapp://callback'],
        token_endpoint_auth_method: 'none',
        scope: 'email profile',
        response_types: ['code'],
        software_id: 'ignored',
      });
      assert.equal(res.status, 201);
      const c = (await res.json()) as Record<string, unknown>;
      createdClients.push(c.client_id as string);
      assert.match(c.client_id as string, UUID);
      assert.equal(c.client_secret, undefined);
      assert.equal(c.client_type, 'public');
      assert.equal(c.token_endpoint_auth_method, 'none');
      assert.deepEqual(c.redirect_uris, [REDIRECT_URI, 'myapp://callback']);
      assert.deepEqual(c.grant_types, ['authorization_code', 'refresh_token']);
      assert.deepEqual(c.response_types, ['code']);
      assert.equal(c.client_name, 'Contract public');
      assert.equal(c.registration_type, 'dynamic');
      assert.ok(!Number.isNaN(Date.parse(c.created_at as string)) && !Number.isNaN(Date.parse(c.updated_at as string)));
      assert.equal(c.client_id_issued_at, undefined);
      assert.equal(c.scope, undefined);
    });

    it('with no auth method given registers a confidential client_secret_basic client and returns its secret once', async function () {
      const res = await postJson('/oauth/clients/register', { redirect_uris: ['https://app.example.com/cb'] });
      assert.equal(res.status, 201);
      const c = (await res.json()) as Record<string, unknown>;
      createdClients.push(c.client_id as string);
      assert.equal(c.client_type, 'confidential');
      assert.equal(c.token_endpoint_auth_method, 'client_secret_basic');
      assert.equal(typeof c.client_secret, 'string');
      assert.ok((c.client_secret as string).length >= 40);
    });

    it('refuses bad redirect URIs, too many, inconsistent types and bad JSON with 400 validation_failed / bad_json', async function () {
      const cases: Array<[unknown, string, RegExp]> = [
        [{}, 'validation_failed', /^400: redirect_uris is required$/],
        [{ redirect_uris: ['http://app.example.com/cb'] }, 'validation_failed', /HTTP scheme only allowed for localhost/],
        [{ redirect_uris: ['javascript://x/alert(1)'] }, 'validation_failed', /not allowed for security reasons/],
        [{ redirect_uris: ['https://app.example.com/cb#frag'] }, 'validation_failed', /fragment not allowed/],
        [{ redirect_uris: ['/relative'] }, 'validation_failed', /invalid redirect_uri '\/relative': must have scheme and host/],
        [{ redirect_uris: Array.from({ length: 11 }, (_, i) => `https://a.example.com/${i}`) }, 'validation_failed', /cannot exceed 10 items/],
        [{ redirect_uris: [REDIRECT_URI], grant_types: ['password'] }, 'validation_failed', /grant_types must only contain/],
        [{ redirect_uris: [REDIRECT_URI], client_type: 'public', token_endpoint_auth_method: 'client_secret_post' }, 'validation_failed', /inconsistent/],
        [{ redirect_uris: 'not-a-list' }, 'bad_json', /Invalid JSON body/],
      ];
      for (const [body, code, message] of cases) {
        await assertGoTrueError(await postJson('/oauth/clients/register', body, API_VERSION), 400, code, message);
      }
    });

    it('answers 403 oauth_dynamic_client_registration_disabled, and no registration_endpoint, when DCR is off', async function () {
      testServerOnly(this, 'needs the test server to turn dynamic registration off');
      server().setConfig({ oauthServer: { allowDynamicRegistration: false } });
      try {
        await assertGoTrueError(await postJson('/oauth/clients/register', { redirect_uris: [REDIRECT_URI] }), 403, 'oauth_dynamic_client_registration_disabled');
        const meta = (await (await fetch(`${target.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
        assert.equal(meta.registration_endpoint, undefined);
      } finally {
        server().setConfig({ oauthServer: { allowDynamicRegistration: true } });
      }
    });

    it('rate-limits registration per IP (burst, then 429 over_request_rate_limit; refills over 5 minutes)', async function () {
      testServerOnly(this, 'needs the test server clock and a small limit');
      server().setConfig({ oauthServer: { registrationRateLimit: { perFiveMinutes: 10, burst: 3 } } });
      try {
        for (let i = 0; i < 3; i++) {
          const res = await postJson('/oauth/clients/register', { redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' });
          assert.equal(res.status, 201);
        }
        await assertGoTrueError(await postJson('/oauth/clients/register', { redirect_uris: [REDIRECT_URI] }), 429, 'over_request_rate_limit');
        server().advanceClock(30_000); // 10 per 300 s: one more after 30 s
        assert.equal((await postJson('/oauth/clients/register', { redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' })).status, 201);
        assert.equal((await postJson('/oauth/clients/register', { redirect_uris: [REDIRECT_URI] })).status, 429);
      } finally {
        server().setConfig({ oauthServer: { registrationRateLimit: false } });
      }
    });
  });

  describe('authorize', function () {
    let client: Client;
    before(async function () {
      if (oauthOff) return;
      client = await newClient({ name: 'Authorize client' });
    });

    it('answers GoTrue-shaped JSON errors, no redirect, until client and redirect_uri are trusted', async function () {
      const p = pkce();
      const base = { code_challenge: p.challenge, code_challenge_method: 'S256' };
      const json = async (params: Record<string, string | undefined>, code: string, msg: RegExp) => {
        const { res } = await authorize(client, { ...base, ...params });
        await assertGoTrueError(res, 400, code, msg);
      };
      await json({ client_id: '' }, 'validation_failed', /client_id is required/);
      await json({ redirect_uri: '' }, 'validation_failed', /redirect_uri is required/);
      await json({ client_id: 'not-a-uuid' }, 'oauth_client_not_found', /invalid client_id format/);
      await json({ client_id: crypto.randomUUID() }, 'oauth_client_not_found', /invalid client_id/);
      // Exact string match only: another loopback port, a trailing slash, a different case.
      for (const other of ['http://127.0.0.1:54996/callback', `${REDIRECT_URI}/`, REDIRECT_URI.toUpperCase(), `${REDIRECT_URI}?x=1`]) {
        await json({ redirect_uri: other }, 'validation_failed', /invalid redirect_uri/);
      }
    });

    it('redirects other parameter errors to the client as error=invalid_request with the state', async function () {
      const p = pkce();
      const cases: Array<[Record<string, string | undefined>, RegExp]> = [
        [{ code_challenge: undefined, code_challenge_method: undefined }, /PKCE flow requires both/],
        [{ code_challenge: p.challenge, code_challenge_method: 'S512' }, /code_challenge_method must be 'S256' or 'plain'/],
        [{ code_challenge: 'short', code_challenge_method: 'S256' }, /between 43 and 128/],
        [{ code_challenge: p.challenge, code_challenge_method: 'S256', response_type: 'token' }, /only response_type=code/],
        [{ code_challenge: p.challenge, code_challenge_method: 'S256', scope: 'email admin' }, /unsupported scope: admin/],
        [{ code_challenge: p.challenge, code_challenge_method: 'S256', resource: 'https://mcp.example.com/mcp?x=1' }, /resource must not include a query/],
      ];
      for (const [params, description] of cases) {
        const { res, location } = await authorize(client, { state: 'xyz', ...params });
        assert.equal(res.status, 302);
        assert.equal(`${location!.origin}${location!.pathname}`, REDIRECT_URI);
        assert.equal(location!.searchParams.get('error'), 'invalid_request');
        assert.match(location!.searchParams.get('error_description')!, description);
        assert.equal(location!.searchParams.get('state'), 'xyz');
      }
    });

    it('redirects to Site URL + authorization path + ?authorization_id=<32 characters>, without looking at any session', async function () {
      const p = pkce();
      const { res, location } = await authorize(client, { code_challenge: p.challenge, code_challenge_method: 'S256', state: 's' });
      assert.equal(res.status, 302);
      if (location!.searchParams.get('error') === 'server_error') skipWith(this, 'the project has no OAuth authorization path configured');
      assert.match(location!.searchParams.get('authorization_id')!, /^[a-z2-7]{32}$/);
      if (target.kind === 'test-server') assert.equal(`${location!.origin}${location!.pathname}`, `${SITE_URL}/oauth/consent`);
    });

    it('with no authorization path configured redirects error=server_error to the client', async function () {
      testServerOnly(this, "needs to change the project's authorization path");
      server().setConfig({ oauthServer: { authorizationPath: '' } });
      try {
        const p = pkce();
        const { location } = await authorize(client, { code_challenge: p.challenge, code_challenge_method: 'S256', state: 's' });
        assert.equal(location!.searchParams.get('error'), 'server_error');
        assert.equal(location!.searchParams.get('error_description'), 'oauth authorization path not configured');
      } finally {
        server().setConfig({ oauthServer: { authorizationPath: '/oauth/consent' } });
      }
    });

    it('setConfig({siteUrl}) moves the consent redirect (how a test points it at a daemon started later)', async function () {
      testServerOnly(this, 'changes the site URL');
      server().setConfig({ siteUrl: 'http://127.0.0.1:61234/' });
      try {
        const id = await startAuthorization(this, client);
        assert.ok(id);
        const { location } = await authorize(client, { code_challenge: pkce().challenge, code_challenge_method: 'S256' });
        assert.equal(`${location!.origin}${location!.pathname}`, 'http://127.0.0.1:61234/oauth/consent');
      } finally {
        server().setConfig({ siteUrl: SITE_URL });
      }
    });
  });

  describe('consent (supabase-js auth.oauth.*)', function () {
    let client: Client;
    before(async function () {
      if (oauthOff) return;
      client = await newClient({ name: 'Consent client', redirectUris: ['http://127.0.0.1:54997/callback?keep=1'] });
    });

    it('getAuthorizationDetails binds the authorization to the first caller; anyone else gets 404 oauth_authorization_not_found', async function () {
      const id = await startAuthorization(this, client, pkce(), { scope: 'email profile' });
      const a = await signedIn(alice);
      const { data, error } = await a.auth.oauth.getAuthorizationDetails(id);
      assert.equal(error, null, error?.message);
      assert.ok(data && 'authorization_id' in data);
      assert.equal(data.authorization_id, id);
      assert.equal(data.redirect_uri, 'http://127.0.0.1:54997/callback?keep=1');
      assert.deepEqual(data.client, { id: client.client_id, name: 'Consent client' });
      assert.deepEqual(data.user, { id: alice.id, email: alice.email });
      assert.equal(data.scope, 'email profile');

      const again = await a.auth.oauth.getAuthorizationDetails(id);
      assert.equal(again.error, null, 'the same person may read it again');

      const b = await signedIn(bob);
      const other = await b.auth.oauth.getAuthorizationDetails(id);
      assert.ok(isAuthApiError(other.error));
      assert.equal(other.error.status, 404);
      assert.equal(other.error.code, 'oauth_authorization_not_found');
      const approveOther = await b.auth.oauth.approveAuthorization(id, { skipBrowserRedirect: true });
      assert.equal((approveOther.error as { code?: string })?.code, 'oauth_authorization_not_found');
    });

    it('needs a signed-in user: no session in supabase-js, no Bearer (401 no_authorization), an unknown id (404)', async function () {
      const id = await startAuthorization(this, client);
      const { supabase } = target.client();
      const none = await supabase.auth.oauth.getAuthorizationDetails(id);
      assert.equal(none.error?.name, 'AuthSessionMissingError');
      await assertGoTrueError(await fetch(`${target.issuer}/oauth/authorizations/${id}`, { headers: { apikey: target.anonKey, ...API_VERSION } }), 401, 'no_authorization');
      const a = await signedIn(alice);
      const unknown = await a.auth.oauth.getAuthorizationDetails('a'.repeat(32));
      assert.equal((unknown.error as { code?: string })?.code, 'oauth_authorization_not_found');
    });

    it('refuses an Origin that is not the site URL, loopback or allow-listed (400 validation_failed)', async function () {
      const id = await startAuthorization(this, client);
      const a = await signedIn(alice);
      const token = (await a.auth.getSession()).data.session!.access_token;
      const res = await fetch(`${target.issuer}/oauth/authorizations/${id}`, {
        headers: { apikey: target.anonKey, authorization: `Bearer ${token}`, origin: 'https://evil.example.com', ...API_VERSION },
      });
      await assertGoTrueError(res, 400, 'validation_failed', /unauthorized request origin/);
    });

    it('approveAuthorization({skipBrowserRedirect}) answers {redirect_url} = the redirect URI (query kept) + code (UUID) + state', async function () {
      const a = await signedIn(alice);
      const id = await startAuthorization(this, client, pkce(), { state: 'state with spaces&more' });
      assert.equal((await a.auth.oauth.getAuthorizationDetails(id)).error, null);
      const { data, error } = await a.auth.oauth.approveAuthorization(id, { skipBrowserRedirect: true });
      assert.equal(error, null, error?.message);
      const url = new URL(data!.redirect_url);
      assert.equal(`${url.origin}${url.pathname}`, 'http://127.0.0.1:54997/callback');
      assert.equal(url.searchParams.get('keep'), '1');
      assert.match(url.searchParams.get('code')!, UUID);
      assert.equal(url.searchParams.get('state'), 'state with spaces&more');

      const twice = await a.auth.oauth.approveAuthorization(id, { skipBrowserRedirect: true });
      assert.ok(isAuthApiError(twice.error));
      assert.equal(twice.error.status, 400);
      assert.equal(twice.error.code, 'validation_failed');
    });

    it('approving before reading the details is 404 (the GET binds the user first)', async function () {
      const a = await signedIn(alice);
      const id = await startAuthorization(this, client);
      const { error } = await a.auth.oauth.approveAuthorization(id, { skipBrowserRedirect: true });
      assert.equal((error as { code?: string })?.code, 'oauth_authorization_not_found');
    });

    it('denyAuthorization answers {redirect_url} with error=access_denied, "User denied the request" and the state', async function () {
      const b = await signedIn(bob);
      const fresh = await newClient({ name: 'Deny client' });
      const id = await startAuthorization(this, fresh, pkce(), { state: 'deny-state' });
      assert.equal((await b.auth.oauth.getAuthorizationDetails(id)).error, null);
      const { data, error } = await b.auth.oauth.denyAuthorization(id, { skipBrowserRedirect: true });
      assert.equal(error, null, error?.message);
      const url = new URL(data!.redirect_url);
      assert.equal(`${url.origin}${url.pathname}`, REDIRECT_URI);
      assert.equal(url.searchParams.get('error'), 'access_denied');
      assert.equal(url.searchParams.get('error_description'), 'User denied the request');
      assert.equal(url.searchParams.get('state'), 'deny-state');
      assert.equal(url.searchParams.get('code'), null);
      assert.match(data!.redirect_url, /error_description=User\+denied\+the\+request/);
      const { data: grants } = await b.auth.oauth.listGrants();
      assert.ok(!grants!.some((g) => g.client.id === fresh.client_id), 'a denial stores no consent');
    });

    it('a consent already covering the scopes approves at once: getAuthorizationDetails returns {redirect_url} only', async function () {
      const fresh = await newClient({ name: 'Auto-approve client' });
      const a = await signedIn(alice);
      await approve(this, a, fresh, pkce(), { scope: 'email profile' });

      const id = await startAuthorization(this, fresh, pkce(), { scope: 'profile', state: 'auto' });
      const { data, error } = await a.auth.oauth.getAuthorizationDetails(id);
      assert.equal(error, null, error?.message);
      assert.ok(data && 'redirect_url' in data && !('authorization_id' in data), JSON.stringify(data));
      const url = new URL(data.redirect_url as string);
      assert.match(url.searchParams.get('code')!, UUID);
      assert.equal(url.searchParams.get('state'), 'auto');

      // More scopes than granted: the details again, for the person to decide.
      const wider = await startAuthorization(this, fresh, pkce(), { scope: 'email phone' });
      const second = await a.auth.oauth.getAuthorizationDetails(wider);
      assert.ok(second.data && 'authorization_id' in second.data);
    });

    it('an authorization expires 10 minutes after authorize (404 oauth_authorization_not_found)', async function () {
      testServerOnly(this, 'needs the test server clock');
      const a = await signedIn(alice);
      const id = await startAuthorization(this, client);
      server().advanceClock(601_000);
      const { error } = await a.auth.oauth.getAuthorizationDetails(id);
      assert.ok(isAuthApiError(error));
      assert.equal(error.status, 404);
      assert.equal(error.code, 'oauth_authorization_not_found');
    });
  });

  describe('token endpoint: authorization_code', function () {
    let pub: Client;
    let conf: Client;
    before(async function () {
      if (oauthOff) return;
      pub = await newClient({ name: 'Token public' });
      conf = await newClient({ name: 'Token confidential', confidential: true });
    });

    it('exchanges the code once: {access_token, token_type, expires_in, refresh_token} only; the access token carries client_id, scope, amr, session_id', async function () {
      const a = await signedIn(alice);
      const p = pkce();
      const code = (await approve(this, a, pub, p, { scope: 'email profile' })).searchParams.get('code')!;
      const r = await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: pub.client_id, redirect_uri: REDIRECT_URI });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(Object.keys(r.body).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type']);
      assert.equal(r.body.token_type, 'bearer');
      assert.ok((r.body.expires_in as number) > 0);

      const claims = decodeJwt(r.body.access_token as string);
      assert.equal(claims.client_id, pub.client_id);
      assert.equal(claims.scope, 'email profile');
      assert.equal(claims.aud, 'authenticated');
      assert.equal(claims.role, 'authenticated');
      assert.equal(claims.sub, alice.id);
      assert.equal(claims.iss, target.issuer);
      assert.match(claims.session_id as string, UUID);
      const aliceSession = (await a.auth.getSession()).data.session!;
      assert.notEqual(claims.session_id, decodeJwt(aliceSession.access_token).session_id, 'a new session bound to the client');
      const amr = claims.amr as Array<{ method: string; timestamp: number }>;
      assert.equal(amr[0].method, 'oauth_provider/authorization_code');
      assert.equal(typeof amr[0].timestamp, 'number');
      const keys = await jwks();
      if (keys.keys.length) await jwtVerify(r.body.access_token as string, createLocalJWKSet(keys), { issuer: target.issuer, audience: 'authenticated' });
      const user = await fetch(`${target.issuer}/user`, { headers: { apikey: target.anonKey, authorization: `Bearer ${r.body.access_token as string}` } });
      assert.equal(user.status, 200, 'GoTrue accepts the OAuth access token as any other');
      assert.equal(((await user.json()) as Record<string, unknown>).id, alice.id);

      const again = await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: pub.client_id });
      assertOAuthError(again, 'invalid_grant', /Invalid authorization code/);
    });

    it('refuses a wrong verifier, another redirect_uri, another client and an unknown code with invalid_grant', async function () {
      const a = await signedIn(alice);
      const p = pkce();
      const code = (await approve(this, a, pub, p)).searchParams.get('code')!;
      assertOAuthError(await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: pkce().verifier, client_id: pub.client_id }), 'invalid_grant', /PKCE verification failed/);
      assertOAuthError(await tokenRequest({ grant_type: 'authorization_code', code, client_id: pub.client_id }), 'invalid_grant', /code_verifier is required/);
      assertOAuthError(await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: pub.client_id, redirect_uri: 'http://127.0.0.1:1/x' }), 'invalid_grant', /Invalid redirect_uri/);
      const other = await newClient({ name: 'Other' });
      assertOAuthError(await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: other.client_id }), 'invalid_grant', /not issued for this client/);
      assertOAuthError(await tokenRequest({ grant_type: 'authorization_code', code: crypto.randomUUID(), code_verifier: p.verifier, client_id: pub.client_id }), 'invalid_grant');
      assertOAuthError(await tokenRequest({ grant_type: 'authorization_code', client_id: pub.client_id }), 'invalid_request', /code is required/);
      // Failed attempts do not use the code up.
      assert.equal((await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: pub.client_id })).status, 200);
    });

    it('accepts PKCE "plain" too, as GoTrue does (the metadata lists S256 and plain)', async function () {
      const a = await signedIn(alice);
      const p = pkce('plain');
      const code = (await approve(this, a, pub, p)).searchParams.get('code')!;
      const r = await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: pub.client_id });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    });

    it('a confidential client authenticates with HTTP Basic; every client-auth failure is GoTrue-shaped 400 invalid_credentials', async function () {
      const a = await signedIn(alice);
      const p = pkce();
      const code = (await approve(this, a, conf, p)).searchParams.get('code')!;
      const fail = async (params: Record<string, string>, opts: Parameters<typeof tokenRequest>[1], message: RegExp) => {
        const r = await tokenRequest(params, { ...opts, headers: API_VERSION });
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.equal(r.body.code, 'invalid_credentials', JSON.stringify(r.body));
        assert.match(r.body.message as string, message);
        assert.equal(r.headers.get('x-sb-error-code'), 'invalid_credentials');
      };
      const grant = { grant_type: 'authorization_code', code, code_verifier: p.verifier };
      await fail(grant, {}, /client_id is required/);
      await fail({ ...grant, client_id: 'nope' }, {}, /Invalid client_id format/);
      await fail({ ...grant, client_id: crypto.randomUUID() }, {}, /Invalid client credentials/);
      await fail(grant, { basic: [conf.client_id, 'wrong-secret'] }, /invalid client credentials/);
      await fail({ ...grant, client_id: conf.client_id, client_secret: conf.client_secret! }, {}, /registered for 'client_secret_basic' but 'client_secret_post'/);
      await fail({ ...grant, client_id: conf.client_id }, {}, /registered for 'client_secret_basic' but 'none'/);
      await fail({ ...grant, client_id: pub.client_id, client_secret: 'x' }, {}, /registered for 'none' but 'client_secret_post'/);
      const ok = await tokenRequest(grant, { basic: [conf.client_id, conf.client_secret!] });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(decodeJwt(ok.body.access_token as string).client_id, conf.client_id);
    });

    it('missing grant_type is OAuth invalid_request; a grant the client lacks is unsupported_grant_type', async function () {
      assertOAuthError(await tokenRequest({ client_id: pub.client_id }), 'invalid_request', /grant_type is required/);
      assertOAuthError(await tokenRequest({ grant_type: 'password', client_id: pub.client_id }), 'unsupported_grant_type');
      const codeOnly = await newClient({ name: 'Code only', grantTypes: ['authorization_code'] });
      assertOAuthError(await tokenRequest({ grant_type: 'refresh_token', refresh_token: 'x', client_id: codeOnly.client_id }), 'unsupported_grant_type', /refresh_token/);
    });

    it('accepts a JSON body as well as a form', async function () {
      const a = await signedIn(alice);
      const p = pkce();
      const code = (await approve(this, a, pub, p)).searchParams.get('code')!;
      const r = await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: pub.client_id }, { json: true });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    });

    it('with the openid scope adds an ID token (aud = client_id, nonce); none without it', async function () {
      const a = await signedIn(alice);
      const p = pkce();
      const code = (await approve(this, a, pub, p, { scope: 'openid email', nonce: 'n-0S6' })).searchParams.get('code')!;
      const r = await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: pub.client_id });
      if (r.status === 500) skipWith(this, 'the project signs with HS256, which GoTrue refuses for ID tokens');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const id = decodeJwt(r.body.id_token as string);
      assert.equal(id.aud, pub.client_id);
      assert.equal(id.sub, alice.id);
      assert.equal(id.nonce, 'n-0S6');
      assert.equal(id.email, alice.email);
      assert.equal(id.iss, target.issuer);
      assert.equal((id.exp as number) - (id.iat as number), 3600);
    });

    it('an approved code expires with its authorization (invalid_grant "Authorization code has expired")', async function () {
      testServerOnly(this, 'needs the test server clock');
      const a = await signedIn(alice);
      const p = pkce();
      const code = (await approve(this, a, pub, p)).searchParams.get('code')!;
      server().advanceClock(601_000);
      assertOAuthError(await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: pub.client_id }), 'invalid_grant', /expired/);
    });
  });

  describe('token endpoint: refresh_token', function () {
    let client: Client;
    before(async function () {
      if (oauthOff) return;
      client = await newClient({ name: 'Refresh client' });
    });

    it('rotates the refresh token; the new access token keeps client_id, scope and the session', async function () {
      const first = await tokensFor(this, alice, client, 'email profile');
      const r = await tokenRequest({ grant_type: 'refresh_token', refresh_token: first.refresh_token, client_id: client.client_id });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(Object.keys(r.body).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type']);
      assert.notEqual(r.body.refresh_token, first.refresh_token);
      const before = decodeJwt(first.access_token);
      const after = decodeJwt(r.body.access_token as string);
      assert.equal(after.client_id, client.client_id);
      assert.equal(after.scope, 'email profile');
      assert.equal(after.session_id, before.session_id);
      assertOAuthError(await tokenRequest({ grant_type: 'refresh_token', client_id: client.client_id }), 'invalid_request', /refresh_token is required/);
    });

    it("another client's refresh is invalid_client, and so is the OAuth refresh token at the normal /token endpoint", async function () {
      const t = await tokensFor(this, alice, client);
      const other = await newClient({ name: 'Not the session client' });
      assertOAuthError(await tokenRequest({ grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: other.client_id }), 'invalid_client', /does not match/);

      const res = await fetch(`${target.issuer}/token?grant_type=refresh_token`, {
        method: 'POST',
        headers: { apikey: target.anonKey, 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: t.refresh_token }),
      });
      assertOAuthError({ status: res.status, body: (await res.json()) as Record<string, unknown> }, 'invalid_client', /Client authentication required/);
      const { supabase } = target.client();
      const viaJs = await supabase.auth.refreshSession({ refresh_token: t.refresh_token });
      assert.ok(isAuthApiError(viaJs.error) && viaJs.error.status === 400, 'supabase-js sees a 400');

      // And a normal session's refresh token at the OAuth endpoint.
      const normal = (await (await signedIn(alice)).auth.getSession()).data.session!;
      assertOAuthError(await tokenRequest({ grant_type: 'refresh_token', refresh_token: normal.refresh_token, client_id: client.client_id }), 'invalid_client', /non-OAuth session/);
      // None of these refused requests rotated the token.
      assert.equal((await tokenRequest({ grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: client.client_id })).status, 200);
    });

    it('reuse outside the interval revokes the family: GoTrue-shaped 400 refresh_token_already_used', async function () {
      testServerOnly(this, 'needs the test server clock');
      const t = await tokensFor(this, alice, client);
      const r1 = await tokenRequest({ grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: client.client_id });
      const r2 = await tokenRequest({ grant_type: 'refresh_token', refresh_token: r1.body.refresh_token as string, client_id: client.client_id });
      assert.equal(r2.status, 200);
      server().advanceClock(11_000);
      const reused = await tokenRequest({ grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: client.client_id }, { headers: API_VERSION });
      assert.equal(reused.status, 400);
      assert.equal(reused.body.code, 'refresh_token_already_used');
    });
  });

  describe('grants (supabase-js listGrants / revokeGrant) and userinfo', function () {
    it('listGrants shows each consented client with its scopes; revokeGrant ends the refresh at once, the access token verifies until exp', async function () {
      const client = await newClient({ name: 'Grant client' });
      const t = await tokensFor(this, bob, client, 'email profile');
      const b = await signedIn(bob);
      const { data: grants, error } = await b.auth.oauth.listGrants();
      assert.equal(error, null, error?.message);
      const grant = grants!.find((g) => g.client.id === client.client_id);
      assert.ok(grant, JSON.stringify(grants));
      assert.equal(grant.client.name, 'Grant client');
      assert.deepEqual(grant.scopes, ['email', 'profile']);
      assert.ok(!Number.isNaN(Date.parse(grant.granted_at)));

      const revoked = await b.auth.oauth.revokeGrant({ clientId: client.client_id });
      assert.equal(revoked.error, null, revoked.error?.message);
      const after = await b.auth.oauth.listGrants();
      assert.ok(!after.data!.some((g) => g.client.id === client.client_id));

      const refresh = await tokenRequest({ grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: client.client_id }, { headers: API_VERSION });
      assert.equal(refresh.status, 400);
      assert.equal(refresh.body.code, 'refresh_token_not_found', 'the session and its refresh tokens are gone');
      // The access token is a signed JWT: a resource server verifying signatures accepts it until exp.
      const keys = await jwks();
      if (keys.keys.length) await jwtVerify(t.access_token, createLocalJWKSet(keys), { issuer: target.issuer, audience: 'authenticated' });
      // GoTrue itself knows the session is gone.
      await assertGoTrueError(await fetch(`${target.issuer}/user`, { headers: { apikey: target.anonKey, authorization: `Bearer ${t.access_token}`, ...API_VERSION } }), 403, 'session_not_found');

      const again = await b.auth.oauth.revokeGrant({ clientId: client.client_id });
      assert.ok(isAuthApiError(again.error));
      assert.equal(again.error.status, 404);
      assert.equal(again.error.code, 'oauth_consent_not_found');

      // With the consent gone, the next authorization asks again.
      const id = await startAuthorization(this, client);
      const details = await b.auth.oauth.getAuthorizationDetails(id);
      assert.ok(details.data && 'authorization_id' in details.data);
    });

    it("revoking deletes only that client's sessions of that user", async function () {
      const c1 = await newClient({ name: 'Keep' });
      const c2 = await newClient({ name: 'Drop' });
      const keep = await tokensFor(this, bob, c1);
      await tokensFor(this, bob, c2);
      const ownSession = await signedIn(bob);
      assert.equal((await ownSession.auth.oauth.revokeGrant({ clientId: c2.client_id })).error, null);
      assert.equal((await tokenRequest({ grant_type: 'refresh_token', refresh_token: keep.refresh_token, client_id: c1.client_id })).status, 200);
      assert.equal((await ownSession.auth.getUser()).error, null, "the person's own session stays");
    });

    it('revokeGrant validates client_id (400 validation_failed)', async function () {
      const b = await signedIn(bob);
      const token = (await b.auth.getSession()).data.session!.access_token;
      const del = (q: string) => fetch(`${target.issuer}/user/oauth/grants${q}`, { method: 'DELETE', headers: { apikey: target.anonKey, authorization: `Bearer ${token}`, ...API_VERSION } });
      await assertGoTrueError(await del(''), 400, 'validation_failed', /client_id query parameter is required/);
      await assertGoTrueError(await del('?client_id=nope'), 400, 'validation_failed', /invalid client_id format/);
    });

    it('userinfo answers sub plus the claims of the granted scopes; a normal session gets sub only', async function () {
      const client = await newClient({ name: 'Userinfo client' });
      const t = await tokensFor(this, alice, client, 'email');
      const info = (await (await fetch(`${target.issuer}/oauth/userinfo`, { headers: { authorization: `Bearer ${t.access_token}` } })).json()) as Record<string, unknown>;
      assert.deepEqual(info, { sub: alice.id, email: alice.email, email_verified: true });
      const own = (await (await signedIn(alice)).auth.getSession()).data.session!;
      const plain = (await (await fetch(`${target.issuer}/oauth/userinfo`, { headers: { authorization: `Bearer ${own.access_token}` } })).json()) as Record<string, unknown>;
      assert.deepEqual(plain, { sub: alice.id });
    });
  });

  describe('admin clients (supabase-js auth.admin.oauth.*)', function () {
    it('create, get, list, update, regenerate the secret and delete (soft: the client is gone for authorize and token)', async function () {
      const { data: created, error } = await target.admin.auth.admin.oauth.createClient({ client_name: 'Admin made', redirect_uris: [REDIRECT_URI] });
      assert.equal(error, null, error?.message);
      createdClients.push(created!.client_id);
      assert.equal(created!.registration_type, 'manual');
      assert.equal(created!.client_type, 'confidential');
      assert.ok(created!.client_secret);

      const got = await target.admin.auth.admin.oauth.getClient(created!.client_id);
      assert.equal(got.data?.client_name, 'Admin made');
      assert.equal(got.data?.client_secret, undefined, 'the secret is shown only once');
      const list = await target.admin.auth.admin.oauth.listClients();
      assert.ok(list.data.clients.some((c) => c.client_id === created!.client_id));

      const updated = await target.admin.auth.admin.oauth.updateClient(created!.client_id, { client_name: 'Renamed', redirect_uris: [REDIRECT_URI, 'https://x.example.com/cb'] });
      assert.equal(updated.error, null, updated.error?.message);
      assert.equal(updated.data?.client_name, 'Renamed');
      assert.equal(updated.data?.redirect_uris.length, 2);

      const regenerated = await target.admin.auth.admin.oauth.regenerateClientSecret(created!.client_id);
      assert.ok(regenerated.data?.client_secret && regenerated.data.client_secret !== created!.client_secret);

      assert.equal((await target.admin.auth.admin.oauth.deleteClient(created!.client_id)).error, null);
      const gone = await target.admin.auth.admin.oauth.getClient(created!.client_id);
      assert.equal((gone.error as { code?: string })?.code, 'oauth_client_not_found');
      const { res } = await authorize({ client_id: created!.client_id, redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' }, { code_challenge: pkce().challenge, code_challenge_method: 'S256' });
      await assertGoTrueError(res, 400, 'oauth_client_not_found');
    });

    it('needs the service role (anon key -> 403 not_admin); a public client has no secret to regenerate', async function () {
      const res = await fetch(`${target.issuer}/admin/oauth/clients`, { headers: { apikey: target.anonKey, authorization: `Bearer ${target.anonKey}`, ...API_VERSION } });
      await assertGoTrueError(res, 403, 'not_admin');
      const pub = await newClient({ name: 'Public for admin' });
      const r = await target.admin.auth.admin.oauth.regenerateClientSecret(pub.client_id);
      assert.equal((r.error as { code?: string })?.code, 'validation_failed');
    });
  });

  describe('feature off and bounds (test server)', function () {
    runsWithOAuthOff = it('with the OAuth server off every OAuth route answers 404 feature_disabled; openid-configuration still answers', async function () {
      if (target.kind === 'real-project' && !oauthOff) skipWith(this, 'the project has its OAuth server on');
      target.server?.setConfig({ oauthServer: { enabled: false } });
      try {
        const anon = { apikey: target.anonKey, ...API_VERSION };
        const b = await signedIn(bob);
        const bearer = { ...anon, authorization: `Bearer ${(await b.auth.getSession()).data.session!.access_token}` };
        const admin = { ...anon, apikey: target.serviceRoleKey, authorization: `Bearer ${target.serviceRoleKey}` };
        const requests: Array<[string, string, Record<string, string>]> = [
          ['GET', '/.well-known/oauth-authorization-server', {}],
          ['POST', '/oauth/clients/register', {}],
          ['GET', '/oauth/authorize', {}],
          ['POST', '/oauth/token', {}],
          ['GET', '/oauth/userinfo', bearer],
          ['GET', `/oauth/authorizations/${'a'.repeat(32)}`, bearer],
          ['POST', `/oauth/authorizations/${'a'.repeat(32)}/consent`, bearer],
          ['GET', '/user/oauth/grants', bearer],
          ['DELETE', '/user/oauth/grants', bearer],
          ['GET', '/admin/oauth/clients', admin],
          ['POST', '/admin/oauth/clients', admin],
        ];
        for (const [method, path, headers] of requests) {
          const res = await fetch(`${target.issuer}${path}`, { method, headers: { ...API_VERSION, ...headers } });
          await assertGoTrueError(res, 404, 'feature_disabled', /OAuth server is disabled/);
        }
        const legacy = await fetch(`${target.url}/.well-known/oauth-authorization-server/auth/v1`);
        assert.equal(legacy.status, 404);
        assert.equal(((await legacy.json()) as Record<string, unknown>).error_code, 'feature_disabled');
        const oidc = await fetch(`${target.issuer}/.well-known/openid-configuration`, { headers: { apikey: target.anonKey } });
        assert.equal(oidc.status, 200);
        assert.equal(((await oidc.json()) as Record<string, unknown>).registration_endpoint, undefined);
      } finally {
        target.server?.setConfig({ oauthServer: { enabled: true } });
      }
    });

    it("deleting a user deletes the user's consents and authorizations", async function () {
      testServerOnly(this, "inspects the test server's consents");
      const client = await newClient({ name: 'Deleted user' });
      const carol = await target.createAccount({ label: 'oauth-carol' });
      await tokensFor(this, carol, client);
      assert.deepEqual(server().oauthServer.consentOf(carol.id, client.client_id), { scopes: ['email'], revoked: false });
      assert.equal((await target.admin.auth.admin.deleteUser(carol.id)).error, null);
      assert.equal(server().oauthServer.consentOf(carol.id, client.client_id), undefined);
    });

    it('holds at most limits.authorizations authorizations and limits.clients clients, redirect URIs of at most 2048 characters', async function () {
      testServerOnly(this, "the test server's own bounds");
      const client = await newClient({ name: 'Bounds' });
      server().setConfig({ oauthServer: { limits: { authorizations: 5, clients: server().oauthServer.clients.list().length + 1 } } });
      try {
        for (let i = 0; i < 8; i++) await startAuthorization(this, client);
        assert.ok(server().oauthServer.authorizationCount() <= 5, `held ${server().oauthServer.authorizationCount()}`);
        await newClient({ name: 'The last one that fits' });
        await assertGoTrueError(await postJson('/oauth/clients/register', { redirect_uris: [REDIRECT_URI] }), 400, 'validation_failed', /at most/);
        const long = `https://app.example.com/${'a'.repeat(2100)}`;
        await assertGoTrueError(await postJson('/oauth/clients/register', { redirect_uris: [long] }), 400, 'validation_failed', /longer than 2048 characters/);
      } finally {
        server().setConfig({ oauthServer: { limits: { authorizations: 1000, clients: 1000 } } });
      }
    });
  });
});

describe('Supabase Auth OAuth 2.1 server contract: HS256 project and ID tokens (test server)', function () {
  it('answers 500 for an openid code exchange when the project signs with HS256 (GoTrue refuses HS256 ID tokens)', async function () {
    if (process.env.SUPABASE_URL) this.skip(); // the signing mode of a real project is not ours to choose
    const hs = await testServerTarget({ signing: 'HS256', siteUrl: SITE_URL, oauthServer: { enabled: true, allowDynamicRegistration: true, authorizationPath: '/oauth/consent' } });
    try {
      const account = await hs.createAccount({ label: 'hs' });
      const reg = await fetch(`${hs.issuer}/oauth/clients/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' }) });
      const client = (await reg.json()) as Client;
      const p = pkce();
      const loc = new URL((await fetch(`${hs.issuer}/oauth/authorize?${new URLSearchParams({ client_id: client.client_id, redirect_uri: REDIRECT_URI, scope: 'openid email', code_challenge: p.challenge, code_challenge_method: 'S256' })}`, { redirect: 'manual' })).headers.get('location')!);
      const { supabase } = hs.client();
      await supabase.auth.signInWithPassword({ email: account.email, password: account.password });
      const id = loc.searchParams.get('authorization_id')!;
      await supabase.auth.oauth.getAuthorizationDetails(id);
      const { data } = await supabase.auth.oauth.approveAuthorization(id, { skipBrowserRedirect: true });
      const code = new URL(data!.redirect_url).searchParams.get('code')!;
      const res = await fetch(`${hs.issuer}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: client.client_id }) });
      assert.equal(res.status, 500);
    } finally {
      await hs.close();
    }
  });
});
