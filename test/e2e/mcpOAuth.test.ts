// MCP agents signing in to the daemon over OAuth 2.1, end to end, as Claude Code or MCP Inspector
// would: the MCP SDK's own OAuth client (test/helpers/mcpOAuthClient.ts: its `auth()` flow driven by
// StreamableHTTPClientTransport's authProvider) against the real daemon (dist/server.js, supabase
// mode, real Postgres) and the GoTrue-compatible test server with its OAuth 2.1 server on. The
// person answers the daemon's consent page in Chromium (test/helpers/oauthConsent.ts).
//
//   401 -> protected-resource metadata -> authorization-server metadata -> dynamic registration ->
//   authorize -> consent page (sign in, approve) -> redirect to the agent's loopback listener ->
//   token -> tools/call whoami as that person -> refresh -> still that person.
//
// Also: a denied consent gives no token; a token of a client the daemon does not accept
// (EXAI_OAUTH_CLIENTS) is refused; two agents as two people at once stay apart; after the person
// revokes the grant on the daemon's grants page, the agent's refresh fails and /mcp answers 401.
// Every wait is bounded.
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import { decodeJwt } from 'jose';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startAuthServer, type AuthServer } from '../auth-server/server';
import { CHROME_ARGS, freePort } from '../helpers/codeServer';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { initializeBody, rawMcp } from '../helpers/mcp';
import { OAuthAgent, startRedirectListener, type RedirectListener } from '../helpers/mcpOAuthClient';
import { approveInBrowser, denyInBrowser } from '../helpers/oauthConsent';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { JAZEEL, MICHELLE, type TestUser } from '../helpers/tokens';
import { within } from '../helpers/wait';

const PASSWORD: Record<string, string> = { [JAZEEL.email]: 'oauth-Jazeel-Passw0rd', [MICHELLE.email]: 'oauth-Michelle-Passw0rd' };
const who = (user: TestUser) => ({ email: user.email, password: PASSWORD[user.email] });

describe('MCP agents over OAuth 2.1: the SDK client, the daemon and its consent page in Chromium', function () {
  this.timeout(120_000);

  let auth: AuthServer;
  let db: TestDatabase;
  let daemon: RunningDaemon;
  let browser: Browser;
  let redirect: RedirectListener;
  const agents: OAuthAgent[] = [];
  const contexts: BrowserContext[] = [];
  const extraDaemons: RunningDaemon[] = [];

  const mcpUrl = (d: RunningDaemon) => new URL(`http://127.0.0.1:${d.port}/mcp`);
  const newAgent = (name: string, d = daemon, preRegistered?: { client_id: string }) => {
    const agent = new OAuthAgent(mcpUrl(d), redirect, name, preRegistered);
    agents.push(agent);
    return agent;
  };
  /** A fresh browser profile: the person is not signed in on the consent page yet. */
  const newPage = async (): Promise<Page> => {
    const context = await browser.newContext();
    contexts.push(context);
    return context.newPage();
  };
  /** The person opens the authorization URL and answers the consent page. */
  const approveAs = (page: Page, user: TestUser) => async (url: URL) => {
    await page.goto(url.toString());
    return approveInBrowser(page, who(user));
  };

  before(async function () {
    this.timeout(60_000);
    // The consent redirect is Site URL + authorization path, so the daemon's port is chosen first.
    const port = await freePort();
    auth = await startAuthServer({
      siteUrl: `http://127.0.0.1:${port}`,
      oauthServer: { enabled: true, allowDynamicRegistration: true, authorizationPath: '/oauth/consent', registrationRateLimit: false },
    });
    db = await createTestDatabase();
    for (const user of [JAZEEL, MICHELLE]) {
      auth.createUser({ id: user.id, email: user.email, password: PASSWORD[user.email] });
      await db.addUser(user.id, user.email);
    }
    daemon = await startDaemon({ env: daemonEnv({ EXAI_WS_PORT: String(port), EXAI_OAUTH_CLIENTS: '*' }) });
    redirect = await startRedirectListener();
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: CHROME_ARGS });
  });

  function daemonEnv(more: Record<string, string>): Record<string, string | undefined> {
    return {
      MCP_ENABLE_MULTI_USER: 'true',
      SUPABASE_URL: auth.url,
      DATABASE_URL: db.url,
      SUPABASE_ANON_KEY: auth.anonKey, // the consent page calls Supabase Auth with it
      SUPABASE_JWT_SECRET: undefined,
      EXAI_OAUTH_CLIENTS: undefined,
      ...more,
    };
  }

  afterEach(async function () {
    this.timeout(30_000);
    await Promise.all(agents.splice(0).map((a) => a.disconnect()));
    await Promise.all(contexts.splice(0).map((c) => c.close().catch(() => {})));
    await Promise.all(extraDaemons.splice(0).map((d) => within(d.stop(), 15_000, 'daemon stop').catch(() => d.kill9())));
  });

  after(async function () {
    this.timeout(30_000);
    try {
      if (daemon) {
        const logs = daemon.logs();
        assert.ok(!/eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]{10,}/.test(logs), 'no token in the daemon log');
        assert.equal(await within(daemon.stop(), 15_000, 'daemon stop'), 0);
      }
    } finally {
      await daemon?.kill9();
      await browser?.close().catch(() => {});
      await redirect?.close();
      await auth?.close();
      await db?.drop();
    }
  });

  it('signs in: 401 -> metadata -> registration -> authorize -> consent in Chromium -> token -> whoami as that person; a refresh keeps the person', async function () {
    const agent = newAgent('exai-e2e-agent');
    const first = await agent.connect();
    assert.ok('authorizationUrl' in first, 'the daemon asked the agent to authorize');
    const authorizationUrl = first.authorizationUrl;

    // What the SDK did before it needed the person: discovery through the daemon, then registration.
    assert.deepEqual(agent.requests, [
      `POST http://127.0.0.1:${daemon.port}/mcp -> 401`,
      `GET http://127.0.0.1:${daemon.port}/.well-known/oauth-protected-resource/mcp -> 200`,
      `GET ${auth.url}/.well-known/oauth-authorization-server/auth/v1 -> 200`,
      `POST ${auth.url}/auth/v1/oauth/clients/register -> 201`,
    ]);
    const clientId = agent.provider.clientId();
    assert.match(clientId ?? '', /^[0-9a-f-]{36}$/, 'a dynamically registered client id');
    assert.equal(authorizationUrl.origin + authorizationUrl.pathname, `${auth.url}/auth/v1/oauth/authorize`);
    const params = authorizationUrl.searchParams;
    assert.equal(params.get('client_id'), clientId);
    assert.equal(params.get('redirect_uri'), redirect.redirectUri);
    assert.equal(params.get('code_challenge_method'), 'S256');
    assert.equal(params.get('scope'), 'email', "the daemon's scopes_supported");
    assert.equal(params.get('resource'), `http://127.0.0.1:${daemon.port}/mcp`);

    // The person, in a browser: Supabase sends it to the daemon's consent page; sign in, approve.
    const page = await newPage();
    const landed = await approveAs(page, JAZEEL)(authorizationUrl);
    const capture = await redirect.next();
    assert.ok(landed.startsWith(`${redirect.redirectUri}?`), `the consent page sent the browser to the agent (${landed})`);
    assert.ok(capture.code, `a code arrived at the agent's listener: ${capture.url}`);
    assert.equal(capture.state, params.get('state'));

    await agent.finishAuthorization(capture);
    const tokens = agent.provider.tokens();
    assert.ok(tokens?.access_token && tokens.refresh_token, 'access and refresh token');
    const claims = decodeJwt(tokens.access_token);
    assert.equal(claims.sub, JAZEEL.id);
    assert.equal(claims.client_id, clientId);
    assert.equal(claims.aud, 'authenticated', 'Supabase keeps aud: authenticated (the gap EXAI_OAUTH_CLIENTS covers)');

    const connected = await agent.connect();
    assert.ok('client' in connected, 'connected with the token');
    const me = await agent.whoami();
    assert.equal(me.user_id, JAZEEL.id);
    assert.equal(me.email, JAZEEL.email);
    const rows = await db.query('select user_id, connection_status from public.mcp_sessions where session_id = $1', [agent.sessionId()]);
    assert.deepEqual(rows, [{ user_id: JAZEEL.id, connection_status: 'connected' }]);

    // The access token "expires": the daemon answers 401, the SDK refreshes, the call goes through
    // on the same session, as the same person, with rotated tokens of the same client.
    agent.provider.spoilAccessToken();
    const again = await agent.whoami();
    assert.equal(again.user_id, JAZEEL.id);
    assert.equal(again.session_id, me.session_id, 'the same MCP session');
    assert.deepEqual(agent.tokenRequests.map((r) => `${r.grantType} ${r.status}`), ['authorization_code 200', 'refresh_token 200']);
    const refreshed = agent.provider.tokens()!;
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'the refresh token rotated');
    assert.equal(decodeJwt(refreshed.access_token).client_id, clientId);
    assert.equal(decodeJwt(refreshed.access_token).sub, JAZEEL.id);
  });

  it('a denied consent gives the agent no token, and it stays unauthorized', async function () {
    const agent = newAgent('exai-e2e-denied');
    const first = await agent.connect();
    assert.ok('authorizationUrl' in first);
    const page = await newPage();
    await page.goto(first.authorizationUrl.toString());
    const landed = await denyInBrowser(page, who(MICHELLE));
    const capture = await redirect.next();
    assert.ok(landed.startsWith(`${redirect.redirectUri}?`), landed);
    assert.equal(capture.code, null);
    assert.equal(capture.error, 'access_denied');
    assert.equal(capture.state, first.authorizationUrl.searchParams.get('state'));
    await assert.rejects(agent.finishAuthorization(capture), /without a code: access_denied/);
    assert.equal(agent.provider.tokens(), undefined);
    assert.deepEqual(agent.tokenRequests, [], 'no token request at all');
    const next = await agent.connect();
    assert.ok('authorizationUrl' in next, 'still asked to authorize');
  });

  it('a token of a client the daemon does not accept is refused (EXAI_OAUTH_CLIENTS lists another client)', async function () {
    // The operator pre-registers the agent it trusts and lists only that client.
    const admin = createClient(auth.url, auth.serviceRoleKey, { auth: { persistSession: false, autoRefreshToken: false } });
    const { data: trusted, error } = await admin.auth.admin.oauth.createClient({
      client_name: 'exai-e2e-trusted', redirect_uris: [redirect.redirectUri], token_endpoint_auth_method: 'none',
    });
    assert.ifError(error);
    const strict = await startDaemon({ env: daemonEnv({ EXAI_OAUTH_CLIENTS: trusted!.client_id }) });
    extraDaemons.push(strict);

    // The trusted client: its token works. (The consent page is the main daemon's: the Site URL.)
    const good = newAgent('exai-e2e-trusted', strict, { client_id: trusted!.client_id });
    await good.signIn(approveAs(await newPage(), JAZEEL));
    assert.ok(!good.requests.some((r) => r.includes('/oauth/clients/register')), 'no dynamic registration for a pre-registered client');
    assert.equal((await good.whoami()).user_id, JAZEEL.id);

    // Another client of the same project, registered by itself: the person approves, Supabase
    // issues a token, and the daemon still refuses it, refresh or not.
    const other = newAgent('exai-e2e-other', strict);
    await assert.rejects(other.signIn(approveAs(await newPage(), JAZEEL)), /401/);
    const otherClient = other.provider.clientId()!;
    assert.ok(other.provider.tokens()?.access_token, 'Supabase did issue a token');
    assert.equal(decodeJwt(other.provider.tokens()!.access_token).client_id, otherClient);
    const answer = await rawMcp(strict.port, { body: initializeBody(), headers: { authorization: `Bearer ${other.provider.tokens()!.access_token}` } });
    assert.equal(answer.status, 401);
    assert.match(String(answer.headers['www-authenticate']), /error="invalid_token"/);
    assert.match(answer.json.error.message, new RegExp(`client ${otherClient}, which is not in this daemon's EXAI_OAUTH_CLIENTS`));
    // The main daemon (EXAI_OAUTH_CLIENTS=*) takes the same token.
    assert.equal((await rawMcp(daemon.port, { body: initializeBody(), headers: { authorization: `Bearer ${other.provider.tokens()!.access_token}` } })).status, 200);
  });

  it('two agents as two people at once stay apart', async function () {
    const [forJazeel, forMichelle] = [newAgent('exai-e2e-jazeel'), newAgent('exai-e2e-michelle')];
    const [pageJ, pageM] = await Promise.all([newPage(), newPage()]);
    // Both sign-ins at the same time: two authorizations, two consent pages, one redirect listener
    // (each agent checks that the state is its own).
    const firstJ = await forJazeel.connect();
    const firstM = await forMichelle.connect();
    assert.ok('authorizationUrl' in firstJ && 'authorizationUrl' in firstM);
    await Promise.all([approveAs(pageJ, JAZEEL)(firstJ.authorizationUrl), approveAs(pageM, MICHELLE)(firstM.authorizationUrl)]);
    const captures = [await redirect.next(), await redirect.next()];
    const stateJ = firstJ.authorizationUrl.searchParams.get('state');
    const captureJ = captures.find((c) => c.state === stateJ)!;
    const captureM = captures.find((c) => c.state !== stateJ)!;
    await assert.rejects(forJazeel.finishAuthorization(captureM), /state/, "an agent refuses another agent's redirect");
    await Promise.all([forJazeel.finishAuthorization(captureJ), forMichelle.finishAuthorization(captureM)]);
    for (const agent of [forJazeel, forMichelle]) assert.ok('client' in (await agent.connect()));

    const [j, m] = await Promise.all([forJazeel.whoami(), forMichelle.whoami()]);
    assert.equal(j.user_id, JAZEEL.id);
    assert.equal(m.user_id, MICHELLE.id);
    assert.notEqual(j.session_id, m.session_id);
    // Jazeel's token on Michelle's session: that session does not exist for him.
    const hijack = await rawMcp(daemon.port, {
      body: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } },
      headers: { authorization: `Bearer ${forJazeel.provider.tokens()!.access_token}`, 'mcp-session-id': forMichelle.sessionId()!, 'mcp-protocol-version': '2025-11-25' },
    });
    assert.equal(hijack.status, 404, hijack.text);
    // And each still answers as themselves.
    assert.equal((await forMichelle.whoami()).user_id, MICHELLE.id);
    assert.equal((await forJazeel.whoami()).user_id, JAZEEL.id);
  });

  it("after the person revokes the grant on the daemon's grants page, the agent's refresh fails and /mcp answers 401", async function () {
    const agent = newAgent('exai-e2e-revoked');
    const page = await newPage();
    await agent.signIn(approveAs(page, MICHELLE));
    assert.equal((await agent.whoami()).user_id, MICHELLE.id);
    const clientId = agent.provider.clientId()!;
    const issued = agent.provider.tokens()!;

    // The person, still signed in on the daemon's pages in that browser, revokes the grant.
    await page.goto(`http://127.0.0.1:${daemon.port}/oauth/grants`);
    const revoke = page.locator(`button[name="revoke"][value="${clientId}"]`);
    await revoke.click({ timeout: 30_000 });
    await revoke.waitFor({ state: 'detached', timeout: 30_000 });
    const person = createClient(auth.url, auth.anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
    assert.ifError((await person.auth.signInWithPassword(who(MICHELLE))).error);
    assert.deepEqual((await person.auth.oauth.listGrants()).data?.filter((g) => g.client.id === clientId), [], 'Supabase no longer holds the grant');

    // The documented gap: the access token already issued stays valid until its exp.
    assert.equal((await rawMcp(daemon.port, { body: initializeBody(), headers: { authorization: `Bearer ${issued.access_token}` } })).status, 200);

    // Once it has expired (spoiled here), /mcp answers 401, the SDK's refresh fails, and the agent
    // is back to asking the person.
    agent.provider.spoilAccessToken();
    const urlsBefore = agent.provider.authorizationUrls.length;
    await assert.rejects(agent.whoami());
    assert.ok(agent.requests.some((r) => r.endsWith('/mcp -> 401')), agent.requests.join('\n'));
    const refresh = agent.tokenRequests.filter((r) => r.grantType === 'refresh_token');
    assert.equal(refresh.length, 1, JSON.stringify(agent.tokenRequests));
    assert.ok(refresh[0].status >= 400, `the refresh failed: ${JSON.stringify(refresh[0])}`);
    assert.equal(agent.provider.authorizationUrls.length, urlsBefore + 1, 'the SDK started a new authorization');
    const fresh = await agent.connect();
    assert.ok('authorizationUrl' in fresh, 'a new connection is asked to authorize again');
  });
});
