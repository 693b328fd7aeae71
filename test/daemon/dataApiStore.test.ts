// The Supabase Data API backend (server/sessions/dataApiStore.ts) and the daemon that uses it:
//   1. test/postgrest answers like PostgREST (the shapes the store relies on);
//   2. DataApiSessionStore specifics: the token of the identity passed in is what is sent, each failure
//      becomes StoreUnavailable with one sentence (and never the token);
//   3. the real daemon in supabase mode with SUPABASE_URL + SUPABASE_ANON_KEY and NO DATABASE_URL:
//      two users, re-auth past expiry, the per-user limit across two daemons, refusal of a service_role
//      key, and no secret in its environment, discovery file or log.
// The behaviour shared with the Postgres backend: test/daemon/storeBehaviour.test.ts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { decodeJwt } from 'jose';
import type { Identity } from '../../server/auth/identity';
import type { CallToolResult, HelloAck, ServerFrame } from '../../server/protocol';
import { DataApiSessionStore } from '../../server/sessions/dataApiStore';
import { StoreUnavailable, type SessionMetadata } from '../../server/sessions/store';
import { helloClient, type TestClient } from '../helpers/client';
import { runDaemon, startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon';
import { ADMIN_URL, createTestDatabase, type TestDatabase } from '../helpers/pg';
import { startRestCut } from '../helpers/restCut';
import {
  JAZEEL, JWKS_PATH, MICHELLE, mintAccessToken, mintAnonKey, mintServiceRoleKey, startJwksServer,
  type JwksServer, type MintOptions, type TestUser,
} from '../helpers/tokens';
import { sleep, waitFor, within } from '../helpers/wait';
import { AUTHENTICATOR_PASSWORD, createBareDatabase, type BareDatabase } from '../postgrest/database';
import { startPostgrest, type Postgrest, type RecordedRequest } from '../postgrest/server';

type OkAck = Extract<HelloAck, { ok: true }>;
type FailAck = Extract<HelloAck, { ok: false }>;

const LEGACY_SECRET = 'legacy-project-jwt-secret-for-the-data-api-tests';
const TOKEN_SENTENCE = "Supabase refused this session's token (expired or revoked); refresh and reconnect.";

function meta(extra: Record<string, unknown> = {}): SessionMetadata {
  return { daemon_id: 'data-api-test', instance: null, client_version: 'test', pid: 4242, ...extra };
}

/** The Identity the daemon's verifier would build from `token` (the Data API store only uses accessToken). */
function identityOf(token: string): Identity {
  const claims = decodeJwt(token) as Record<string, unknown>;
  return {
    userId: String(claims.sub),
    email: typeof claims.email === 'string' ? claims.email : null,
    authSessionId: typeof claims.session_id === 'string' ? claims.session_id : null,
    expiresAt: typeof claims.exp === 'number' ? claims.exp : null,
    claims,
    accessToken: token,
  };
}

/** Resolves with the StoreUnavailable `p` rejects with (fails on anything else). */
async function storeError(p: Promise<unknown>): Promise<StoreUnavailable> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof StoreUnavailable, `expected StoreUnavailable, got ${String(err)}`);
    return err;
  }
  assert.fail('the call succeeded');
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A loopback HTTP server answering every request with `handler` (or never, when it returns without ending). */
async function stubServer(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => { s.close(() => r()); s.closeAllConnections(); }),
  };
}

// =====================================================================================================

describe('Data API: test/postgrest answers like PostgREST', function () {
  this.timeout(20000);
  let db: TestDatabase;
  let jwks: JwksServer;
  let rest: Postgrest;
  let anonKey: string;

  before(async function () {
    this.timeout(30000);
    [db, jwks, anonKey] = await Promise.all([createTestDatabase(), startJwksServer(), mintAnonKey(LEGACY_SECRET)]);
    await db.addUser(JAZEEL.id, JAZEEL.email);
    await db.addUser(MICHELLE.id, MICHELLE.email);
    rest = await startPostgrest({ databaseUrl: db.url, jwksUrl: `${jwks.url}${JWKS_PATH}`, jwtSecret: LEGACY_SECRET, anonKey });
  });
  after(async function () {
    await rest?.close();
    await jwks?.close();
    await db?.drop();
  });

  const mint = (opts: Partial<MintOptions> = {}) => mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, ...opts });
  const post = async (fn: string, body: unknown, headers: Record<string, string>) => {
    const res = await fetch(`${rest.restUrl}/rpc/${fn}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
  };
  const asUser = async (user: TestUser = JAZEEL) => ({ apikey: anonKey, Authorization: `Bearer ${await mint({ user })}` });

  it('the gateway wants an apikey: missing -> 401 "No API key found in request", unknown -> 401 "Invalid API key"', async function () {
    const missing = await post('mcp_list_sessions', {}, { Authorization: `Bearer ${await mint()}` });
    assert.equal(missing.status, 401);
    assert.equal(missing.body.message, 'No API key found in request');
    const wrong = await post('mcp_list_sessions', {}, { apikey: await mintAnonKey('another-projects-secret-of-32-characters'), Authorization: `Bearer ${await mint()}` });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.message, 'Invalid API key');
  });

  it('a set-returning function answers a JSON array of row objects; a scalar one its JSON value', async function () {
    const sid = randomUUID();
    const headers = await asUser();
    const claim = await post('mcp_claim_session', { p_session_id: sid, p_max_per_user: 5, p_metadata: { daemon_id: 'd', pid: 1 } }, headers);
    assert.equal(claim.status, 200);
    assert.deepEqual(claim.body, [{ claimed: true, active: 1 }]);
    assert.equal((await post('mcp_touch_session', { p_session_id: sid }, headers)).body, true);
    assert.equal((await post('mcp_touch_session', { p_session_id: randomUUID() }, headers)).body, false);
    const list = await post('mcp_list_sessions', {}, headers);
    assert.equal(list.status, 200);
    assert.equal(list.body.length, 1);
    assert.equal(list.body[0].session_id, sid);
    assert.deepEqual(list.body[0].metadata, { daemon_id: 'd', instance: null, client_version: null, pid: 1, transport: 'websocket', client_name: null });
    assert.match(list.body[0].created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00$/, 'timestamptz as Postgres JSON renders it');
  });

  it('JWT errors: expired -> 401 PGRST303 "JWT expired", bad signature -> 401 PGRST301, both with WWW-Authenticate', async function () {
    const expired = await post('mcp_list_sessions', {}, { apikey: anonKey, Authorization: `Bearer ${await mint({ expiresInSec: -120 })}` });
    assert.equal(expired.status, 401);
    assert.deepEqual(expired.body, { code: 'PGRST303', message: 'JWT expired', details: null, hint: null });
    assert.match(expired.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
    const forged = await post('mcp_list_sessions', {}, { apikey: anonKey, Authorization: `Bearer ${await mint({ key: jwks.keys.es256Rotated, header: { kid: jwks.keys.es256.kid } })}` });
    assert.equal(forged.status, 401);
    assert.equal(forged.body.code, 'PGRST301');
    // Within PostgREST's 30 s clock skew a just-expired token still passes.
    assert.equal((await post('mcp_list_sessions', {}, { apikey: anonKey, Authorization: `Bearer ${await mint({ expiresInSec: -5 })}` })).status, 200);
  });

  it('an unknown function or unknown argument names -> 404 PGRST202', async function () {
    const headers = await asUser();
    const missing = await post('mcp_no_such_function', {}, headers);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'PGRST202');
    assert.match(missing.body.message, /Could not find the function public\.mcp_no_such_function without parameters in the schema cache/);
    const wrongArgs = await post('mcp_touch_session', { session: 'x' }, headers);
    assert.equal(wrongArgs.status, 404);
    assert.equal(wrongArgs.body.code, 'PGRST202');
  });

  it('insufficient privilege (42501): 401 as anon (no Bearer), 403 as a signed-in user; raise -> 400 with the SQLSTATE', async function () {
    const anon = await post('mcp_claim_session', { p_session_id: randomUUID(), p_max_per_user: 5, p_metadata: {} }, { apikey: anonKey });
    assert.equal(anon.status, 401);
    assert.equal(anon.body.code, '42501');
    assert.match(anon.body.message, /permission denied for function mcp_claim_session/);
    assert.equal(anon.headers.get('www-authenticate'), 'Bearer');
    const user = await post('mcp_disconnect_daemon_sessions', { p_daemon_id: 'd' }, await asUser());
    assert.equal(user.status, 403);
    assert.equal(user.body.code, '42501');
    const raised = await post('mcp_close_session', { p_session_id: 'x', p_status: 'connected' }, await asUser());
    assert.equal(raised.status, 400);
    assert.equal(raised.body.code, '22023');
    assert.match(raised.body.message, /status must be disconnected or expired/);
  });

  it('GET /rest/v1/mcp_sessions?select=…&col=eq.… runs as the user: own rows only', async function () {
    const j = await asUser(JAZEEL);
    const m = await asUser(MICHELLE);
    const sid = randomUUID();
    await post('mcp_claim_session', { p_session_id: sid, p_max_per_user: 5, p_metadata: { daemon_id: 'd' } }, m);
    const get = async (headers: Record<string, string>, query: string) => {
      const res = await fetch(`${rest.restUrl}/mcp_sessions?${query}`, { headers });
      return { status: res.status, body: await res.json() };
    };
    const mine = await get(m, `select=session_id,connection_status&session_id=eq.${sid}`);
    assert.deepEqual(mine, { status: 200, body: [{ session_id: sid, connection_status: 'connected' }] });
    assert.deepEqual(await get(j, `select=session_id&session_id=eq.${sid}`), { status: 200, body: [] });
    assert.equal((await get({ apikey: anonKey }, 'select=session_id')).status, 401, 'anon has no grant on the table');
  });
});

// =====================================================================================================

describe('DataApiSessionStore (Supabase Data API with the user\'s own JWT)', function () {
  this.timeout(20000);
  let db: TestDatabase;
  let jwks: JwksServer;
  let rest: Postgrest;
  let anonKey: string;
  let store: DataApiSessionStore;
  const minted: string[] = [];
  const errors: StoreUnavailable[] = [];

  before(async function () {
    this.timeout(30000);
    [db, jwks, anonKey] = await Promise.all([createTestDatabase(), startJwksServer(), mintAnonKey(LEGACY_SECRET)]);
    await db.addUser(JAZEEL.id, JAZEEL.email);
    await db.addUser(MICHELLE.id, MICHELLE.email);
    rest = await startPostgrest({ databaseUrl: db.url, jwksUrl: `${jwks.url}${JWKS_PATH}`, jwtSecret: LEGACY_SECRET, anonKey });
    store = new DataApiSessionStore({ supabaseUrl: rest.url, anonKey });
  });
  after(async function () {
    await store?.end();
    await rest?.close();
    await jwks?.close();
    await db?.drop();
  });

  const mint = async (opts: Partial<MintOptions> = {}) => {
    const token = await mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, ...opts });
    minted.push(token);
    return token;
  };
  const failing = async (p: Promise<unknown>) => {
    const err = await storeError(p);
    errors.push(err);
    return err;
  };
  const rpcsOf = (sessionId: string) =>
    rest.requests().filter((r) => (r.body as { p_session_id?: string } | undefined)?.p_session_id === sessionId);

  it('sends apikey + the identity\'s own token; after a re-auth the new token is what is sent', async function () {
    const tokenA = await mint({ user: JAZEEL });
    const tokenB = await mint({ user: JAZEEL });
    const sid = randomUUID();
    assert.deepEqual(await store.claim(identityOf(tokenA), sid, 5, meta()), { ok: true });
    assert.equal(await store.touch(identityOf(tokenA), sid), true);
    assert.equal(await store.touch(identityOf(tokenB), sid), true); // the connection's identity after in-band re-auth
    await store.close(identityOf(tokenB), sid, 'disconnected');
    const sent = rpcsOf(sid).map((r) => [r.fn, r.bearer === tokenA ? 'A' : r.bearer === tokenB ? 'B' : 'other', r.role, r.sub, r.status]);
    assert.deepEqual(sent, [
      ['mcp_claim_session', 'A', 'authenticated', JAZEEL.id, 200],
      ['mcp_touch_session', 'A', 'authenticated', JAZEEL.id, 200],
      ['mcp_touch_session', 'B', 'authenticated', JAZEEL.id, 200],
      ['mcp_close_session', 'B', 'authenticated', JAZEEL.id, 200],
    ]);
    for (const r of rpcsOf(sid)) {
      assert.equal(r.apikey, anonKey);
      assert.match(r.contentType ?? '', /^application\/json/);
    }
    assert.equal((await db.query('select connection_status from public.mcp_sessions where session_id = $1', [sid]))[0].connection_status, 'disconnected');
  });

  it("an expired token -> StoreUnavailable: the 'refresh and reconnect' sentence", async function () {
    const expired = identityOf(await mint({ user: JAZEEL, expiresInSec: -120 }));
    for (const call of [
      () => store.claim(expired, randomUUID(), 5, meta()),
      () => store.touch(expired, randomUUID()),
      () => store.close(expired, randomUUID(), 'expired'),
      () => store.listOwn(expired),
    ]) {
      assert.equal((await failing(call())).message, TOKEN_SENTENCE);
    }
  });

  it('network down (closed port), no answer within the timeout, or a 5xx -> StoreUnavailable "unreachable"', async function () {
    const who = identityOf(await mint());
    const port = await closedPort();
    const down = new DataApiSessionStore({ supabaseUrl: `http://127.0.0.1:${port}`, anonKey });
    const err = await failing(down.claim(who, randomUUID(), 5, meta()));
    assert.equal(err.message, `The Supabase Data API at 127.0.0.1:${port} is unreachable (ECONNREFUSED); the daemon will retry. Try again shortly.`);

    const silent = await stubServer(() => {}); // accepts, never answers
    const unanswered = new DataApiSessionStore({ supabaseUrl: silent.url, anonKey, timeoutMs: 300 });
    const started = Date.now();
    assert.match((await failing(unanswered.touch(who, randomUUID()))).message, /^The Supabase Data API at 127\.0\.0\.1:\d+ is unreachable \(no answer within 0\.3 s\)/);
    assert.ok(Date.now() - started < 3000, 'bounded by the timeout');
    await silent.close();

    const failingServer = await stubServer((_req, res) => res.writeHead(503, { 'content-type': 'application/json' }).end('{"message":"upstream down"}'));
    const busy = new DataApiSessionStore({ supabaseUrl: failingServer.url, anonKey });
    assert.match((await failing(busy.listOwn(who))).message, /is unreachable \(HTTP 503\)/);
    await failingServer.close();
  });

  it("the functions missing on the project (a database without the migration) -> the 'apply migrations' sentence", async function () {
    const bare: BareDatabase = await createBareDatabase(ADMIN_URL);
    const bareRest = await startPostgrest({ databaseUrl: bare.url, jwksUrl: `${jwks.url}${JWKS_PATH}`, jwtSecret: LEGACY_SECRET, anonKey });
    try {
      const s = new DataApiSessionStore({ supabaseUrl: bareRest.url, anonKey });
      const err = await failing(s.claim(identityOf(await mint()), randomUUID(), 5, meta()));
      assert.equal(err.message, 'The mcp_sessions functions are missing on the Supabase project; apply supabase/migrations (supabase db push).');
      assert.equal(bareRest.requests()[0].code, 'PGRST202');
    } finally {
      await bareRest.close();
      await bare.drop();
    }
  });

  it('anon (no Bearer, or the anon key as Bearer) cannot claim; nothing is inserted', async function () {
    const sid = randomUUID();
    const res = await fetch(`${rest.restUrl}/rpc/mcp_claim_session`, {
      method: 'POST',
      headers: { apikey: anonKey, 'Content-Type': 'application/json' },
      body: JSON.stringify({ p_session_id: sid, p_max_per_user: 5, p_metadata: {} }),
    });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { code: string }).code, '42501');
    const asAnon: Identity = { ...identityOf(anonKey), userId: 'anon', accessToken: anonKey };
    const err = await failing(store.claim(asAnon, sid, 5, meta()));
    assert.match(err.message, /^Supabase refused the request \(row-level security\); /);
    assert.deepEqual(await db.query('select 1 from public.mcp_sessions where session_id = $1', [sid]), []);
  });

  it("a signed-in token the functions refuse (no sub -> 42501) -> the 'row-level security' sentence", async function () {
    const noSub = identityOf(await mint({ claims: { sub: undefined } }));
    const err = await failing(store.claim(noSub, randomUUID(), 5, meta()));
    assert.equal(err.message, 'Supabase refused the request (row-level security); sign in again, and check that supabase/migrations are applied unchanged.');
    assert.equal(rest.requests().at(-1)?.status, 403);
  });

  it("another project's anon key -> a sentence about SUPABASE_ANON_KEY; a raised SQL error -> StoreUnavailable with its code", async function () {
    const otherKey = await mintAnonKey('another-projects-secret-of-32-characters');
    const wrongKey = new DataApiSessionStore({ supabaseUrl: rest.url, anonKey: otherKey });
    const err = await failing(wrongKey.listOwn(identityOf(await mint())));
    assert.equal(err.message, `The Supabase gateway at 127.0.0.1:${rest.port} refused the daemon's API key; set SUPABASE_ANON_KEY to this project's anon (publishable) key.`);
    const raised = await failing(store.close(identityOf(await mint()), randomUUID(), 'connected' as 'expired'));
    assert.match(raised.message, /^Supabase rejected the mcp_close_session call \(HTTP 400, 22023\)/);
  });

  it('recoverAbandoned returns 0 without a request (it cannot run as a user; rows of a dead daemon read stale after 45 s)', async function () {
    const before = rest.requests().length;
    assert.equal(await store.recoverAbandoned('any-daemon'), 0);
    assert.equal(rest.requests().length, before);
  });

  it('no error message (or its cause) carries any token', async function () {
    assert.ok(errors.length >= 10, `errors collected: ${errors.length}`);
    for (const err of errors) {
      const text = `${err.message} ${JSON.stringify(err.cause ?? null)} ${String(err.stack)}`;
      for (const token of [...minted, anonKey]) {
        assert.ok(!text.includes(token), `a token in: ${err.message}`);
        assert.ok(!text.includes(token.split('.')[2]), `a token signature in: ${err.message}`);
      }
      assert.ok(!/Bearer|eyJ/.test(text), `credential-like text in: ${err.message}`);
    }
  });
});

// =====================================================================================================

describe('daemon in supabase mode on the Data API (SUPABASE_URL + SUPABASE_ANON_KEY, no DATABASE_URL)', function () {
  this.timeout(30000);
  let db: TestDatabase;
  let jwks: JwksServer;
  /** One base URL serving /auth/v1 (proxied to the JWKS server) and /rest/v1, like a project URL. */
  let gateway: Postgrest;
  let anonKey: string;
  let serviceRoleKey: string;
  let main: RunningDaemon;
  const clients: TestClient[] = [];
  const extra: RunningDaemon[] = [];
  const minted: string[] = [];
  const RACER: TestUser = { id: randomUUID(), email: 'racer@example.com' };

  const mint = async (opts: Partial<MintOptions> = {}) => {
    // iss = <SUPABASE_URL>/auth/v1: the daemon's verifier trusts only its own project's issuer.
    const token = await mintAccessToken({ key: jwks.keys.es256, issuer: `${gateway.url}/auth/v1`, ...opts });
    minted.push(token);
    return token;
  };
  const expOf = (token: string) => decodeJwt(token).exp as number;

  const env = (daemonId: string, more: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
    MCP_ENABLE_MULTI_USER: 'true',
    SUPABASE_URL: gateway.url,
    SUPABASE_ANON_KEY: anonKey,
    EXAI_DAEMON_ID: daemonId,
    EXAI_HELLO_TIMEOUT_MS: '3000',
    // Nothing a user's machine must not hold, even if the test runner has it.
    DATABASE_URL: undefined,
    SUPABASE_JWT_SECRET: undefined,
    SUPABASE_SERVICE_ROLE_KEY: undefined,
    EXAI_TEST_PG_ADMIN_URL: undefined,
    PGPASSWORD: undefined,
    ...more,
  });
  const startExtra = async (daemonId: string, more: Record<string, string | undefined> = {}) => {
    const d = await startDaemon({ env: env(daemonId, more) });
    extra.push(d);
    return d;
  };
  const helloOk = async (url: string, token: string, instance: string) => {
    const { client, ack } = await helloClient(url, token, instance);
    clients.push(client);
    assert.ok(ack.op === 'hello_ack' && ack.ok, `hello refused: ${JSON.stringify(ack)}`);
    return { client, ack: ack as OkAck };
  };
  const callJson = async (client: TestClient, requestId: string, name: string) => {
    client.send({ op: 'call_tool', request_id: requestId, name, arguments: {} });
    const res = await client.next<CallToolResult>((f: ServerFrame) => f.op === 'call_tool_res' && f.request_id === requestId, 10000);
    assert.ok(res.ok, `${name} failed: ${JSON.stringify(res)}`);
    return JSON.parse(res.outputs[0].text);
  };
  const row = async (sessionId: string) => (await db.query('select * from public.mcp_sessions where session_id = $1', [sessionId]))[0];
  const rpcs = (sessionId: string, fn?: string): RecordedRequest[] =>
    gateway.requests().filter((r) => (r.body as { p_session_id?: string } | undefined)?.p_session_id === sessionId && (!fn || r.fn === fn));

  before(async function () {
    this.timeout(60000);
    [db, jwks, anonKey, serviceRoleKey] = await Promise.all([
      createTestDatabase(), startJwksServer(), mintAnonKey(LEGACY_SECRET), mintServiceRoleKey(LEGACY_SECRET),
    ]);
    for (const u of [JAZEEL, MICHELLE, RACER]) await db.addUser(u.id, u.email);
    // Clock skew 0 (PostgREST allows 30 s): a token used after its exp is refused at once.
    gateway = await startPostgrest({
      databaseUrl: db.url, jwksUrl: `${jwks.url}${JWKS_PATH}`, jwtSecret: LEGACY_SECRET, anonKey, serviceRoleKey,
      authUpstream: jwks.url, clockSkewSec: 0,
    });
    main = await startDaemon({ env: env('data-api-main', { EXAI_HEARTBEAT_SECONDS: '1', MCP_MAX_CONNECTIONS_PER_USER: '50' }) });
  });

  afterEach(async function () {
    this.timeout(20000);
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(extra.splice(0).map((d) => within(d.stop(), 12000, 'daemon stop').catch(() => d.kill9())));
  });

  after(async function () {
    this.timeout(30000);
    try {
      if (main) assert.equal(await within(main.stop(), 15000, 'main daemon stop'), 0);
    } finally {
      if (main) await main.kill9();
      await gateway?.close();
      await jwks?.close();
      await db?.drop();
    }
  });

  it('logs which backend it uses; recovery at start is a no-op on the Data API', async function () {
    // The log file is written asynchronously: wait for the line rather than read once.
    await waitFor(() => /Supabase Data API with each user's own token/.test(main.logs()), 3000, `the store line in the log: ${main.logs()}`);
    assert.equal(main.stderr(), '', 'no warning on stderr');
  });

  it('the Data API unreachable: hello_ack store_unavailable (1013), a tool error, never a crash or a lost row', async function () {
    // A project URL whose /auth/v1 works but whose /rest/v1 can be cut (network down, as seen by the daemon).
    const cut = await startRestCut((urlPath) => (urlPath.startsWith('/auth/v1/') ? jwks.url : gateway.url));
    try {
      const d = await startExtra('data-api-cut', { SUPABASE_URL: cut.url });
      const token = () => mintAccessToken({ key: jwks.keys.es256, issuer: `${cut.url}/auth/v1`, user: MICHELLE });

      // Down at hello: refused with a sentence, retryable close code, no row written.
      cut.restDown = true;
      const refused = await helloClient(d.url, await token(), 'vscode-cut-1');
      clients.push(refused.client);
      assert.ok(refused.ack.op === 'hello_ack' && !refused.ack.ok);
      assert.equal((refused.ack as any).error.code, 'store_unavailable');
      assert.match((refused.ack as any).error.message, /Supabase Data API at 127\.0\.0\.1:\d+ is unreachable/);
      assert.equal((await refused.client.closed).code, 1013);

      // Down after hello: the tool answers with an error, the connection stays, the row is kept.
      cut.restDown = false;
      const { client, ack } = await helloOk(d.url, await token(), 'vscode-cut-2');
      cut.restDown = true;
      client.send({ op: 'call_tool', request_id: 'cut-sessions', name: 'sessions', arguments: {} });
      const res = await client.next<CallToolResult>((f: ServerFrame) => f.op === 'call_tool_res' && f.request_id === 'cut-sessions', 15000);
      assert.ok(!res.ok && res.error.code === 'store_unavailable' && /^The Supabase Data API at .* is unreachable/.test(res.error.message), JSON.stringify(res));
      client.send({ op: 'ping', request_id: 'still-there' });
      await client.next((f: ServerFrame) => f.op === 'pong' && f.request_id === 'still-there');
      // Back up: closing writes the final status (the daemon retries the write).
      cut.restDown = false;
      await client.close();
      await waitFor(async () => (await row(ack.session_id))?.connection_status === 'disconnected', 10000, 'the row marked disconnected');
      assert.equal(d.proc.exitCode, null, 'the daemon is still running');
    } finally {
      await cut.close();
    }
  });

  it('two users on one daemon at once: each writes with their own token and sees only their own sessions', async function () {
    const jToken = await mint({ user: JAZEEL });
    const mToken = await mint({ user: MICHELLE });
    const j1 = await helloOk(main.url, jToken, 'two-j1');
    const m1 = await helloOk(main.url, mToken, 'two-m1');
    const j2 = await helloOk(main.url, jToken, 'two-j2');
    assert.equal((await row(j1.ack.session_id)).user_id, JAZEEL.id);
    assert.equal((await row(m1.ack.session_id)).user_id, MICHELLE.id);
    assert.equal(rpcs(j1.ack.session_id, 'mcp_claim_session')[0].bearer, jToken);
    assert.equal(rpcs(m1.ack.session_id, 'mcp_claim_session')[0].bearer, mToken);

    const jList: any[] = await callJson(j1.client, 'j-sessions', 'sessions');
    const mList: any[] = await callJson(m1.client, 'm-sessions', 'sessions');
    const jIds = jList.map((s) => s.session_id);
    const mIds = mList.map((s) => s.session_id);
    assert.ok(jIds.includes(j1.ack.session_id) && jIds.includes(j2.ack.session_id));
    assert.ok(!jIds.includes(m1.ack.session_id), 'Jazeel sees no session of Michelle');
    assert.ok(mIds.includes(m1.ack.session_id));
    assert.ok(!mIds.includes(j1.ack.session_id) && !mIds.includes(j2.ack.session_id), 'Michelle sees no session of Jazeel');
    const jOwned = new Set((await db.query('select session_id from public.mcp_sessions where user_id = $1', [JAZEEL.id])).map((r) => r.session_id));
    assert.ok(jIds.every((id) => jOwned.has(id)));
    assert.deepEqual(jList.filter((s) => s.current).map((s) => s.session_id), [j1.ack.session_id]);
    const lists = gateway.requests().filter((r) => r.fn === 'mcp_list_sessions' && (r.bearer === jToken || r.bearer === mToken));
    assert.deepEqual(lists.map((r) => [r.bearer === jToken ? 'J' : 'M', r.sub]).sort(), [['J', JAZEEL.id], ['M', MICHELLE.id]]);
  });

  it('a connection past its first token\'s expiry, re-authenticated in-band, keeps writing with the new token', async function () {
    const tokenA = await mint({ user: JAZEEL, expiresInSec: 4 });
    const expA = expOf(tokenA);
    const { client, ack } = await helloOk(main.url, tokenA, 'reauth');
    await sleep(1200); // a heartbeat or so with A
    const tokenB = await mint({ user: JAZEEL, expiresInSec: 3600 });
    client.send({ op: 'auth', request_id: 're-1', token: tokenB });
    const authAck = await client.next((f) => f.op === 'auth_ack' && f.request_id === 're-1', 3000);
    assert.deepEqual(authAck, { op: 'auth_ack', request_id: 're-1', ok: true, expires_at: expOf(tokenB) });
    const ackAt = Date.now();

    await sleep(Math.max(0, expA * 1000 + 2500 - Date.now()));
    assert.equal(client.ws.readyState, client.ws.OPEN, 'still open past the first token\'s exp');
    const touches = rpcs(ack.session_id, 'mcp_touch_session');
    assert.ok(touches.some((t) => t.bearer === tokenA && t.status === 200), 'heartbeats before the re-auth used A');
    const afterAck = touches.filter((t) => t.at > ackAt + 200);
    assert.ok(afterAck.length >= 2, `heartbeats after the re-auth: ${afterAck.length}`);
    assert.ok(afterAck.every((t) => t.bearer === tokenB && t.status === 200), JSON.stringify(afterAck.map((t) => [t.bearer === tokenB, t.status])));
    assert.ok(afterAck.some((t) => t.at > expA * 1000 + 500), 'a heartbeat after A expired');
    const r = await row(ack.session_id);
    assert.equal(r.connection_status, 'connected');
    assert.ok((r.last_active as Date).getTime() > expA * 1000, `last_active ${(r.last_active as Date).toISOString()} is after A's exp`);

    // auth_ack, then close: the final status is written with the new token.
    await client.close();
    await waitFor(async () => (await row(ack.session_id)).connection_status === 'disconnected', 5000, 'row disconnected');
    const closes = rpcs(ack.session_id, 'mcp_close_session');
    assert.equal(closes.length, 1);
    assert.equal(closes[0].bearer, tokenB);
    assert.equal(closes[0].status, 200);
  });

  it('an auth_ack and then a close mark the row disconnected', async function () {
    const { client, ack } = await helloOk(main.url, await mint({ user: MICHELLE }), 'ack-close');
    const next = await mint({ user: MICHELLE });
    client.send({ op: 'auth', request_id: 'a-1', token: next });
    const authAck = await client.next((f) => f.op === 'auth_ack' && f.request_id === 'a-1');
    assert.equal(authAck.op === 'auth_ack' && authAck.ok, true);
    await client.close();
    await waitFor(async () => (await row(ack.session_id)).connection_status === 'disconnected', 5000, 'row disconnected');
    assert.equal(rpcs(ack.session_id, 'mcp_close_session')[0].bearer, next);
  });

  it('the per-user limit holds under a race of 20 connects over two daemons: exactly 5 accepted, 15 closed with 4008', async function () {
    const [a, b] = await Promise.all([
      startExtra('data-api-race-a', { MCP_MAX_CONNECTIONS_PER_USER: '5' }),
      startExtra('data-api-race-b', { MCP_MAX_CONNECTIONS_PER_USER: '5' }),
    ]);
    const token = await mint({ user: RACER });
    const results = await within(
      Promise.all(Array.from({ length: 20 }, async (_, i) => {
        const r = await helloClient(i % 2 ? a.url : b.url, token, `race-${i}`);
        clients.push(r.client);
        return r;
      })),
      20000,
      '20 hellos',
    );
    const accepted = results.filter((r) => r.ack.op === 'hello_ack' && r.ack.ok);
    const refused = results.filter((r) => r.ack.op === 'hello_ack' && !r.ack.ok);
    assert.equal(accepted.length, 5, JSON.stringify(results.map((r) => r.ack)));
    assert.equal(refused.length, 15);
    for (const r of refused) assert.equal((r.ack as FailAck).error.code, 'too_many_connections');
    const codes = await within(Promise.all(refused.map((r) => r.client.closed)), 5000, 'refused closes');
    assert.ok(codes.every((c) => c.code === 4008), JSON.stringify(codes));
    const [n] = await db.query("select count(*)::int as n from public.mcp_sessions where user_id = $1 and connection_status = 'connected'", [RACER.id]);
    assert.equal(n.n, 5);
  });

  it('with DATABASE_URL and SUPABASE_ANON_KEY both set, DATABASE_URL wins and the log says so', async function () {
    const d = await startExtra('both-set', { DATABASE_URL: db.url });
    await waitFor(() => /both set; sessions use DATABASE_URL/.test(d.logs()), 3000, `the DATABASE_URL line in the log: ${d.logs()}`);
    const { ack } = await helloOk(d.url, await mint({ user: MICHELLE }), 'both-set');
    assert.equal(rpcs(ack.session_id).length, 0, 'no Data API call: the pg store wrote the row');
    assert.equal((await row(ack.session_id)).connection_status, 'connected');
  });

  {
    const SERVICE_ROLE_SENTENCE = /SUPABASE_ANON_KEY .*service_role.*a user's machine never holds the service_role key/;
    const refusals: [string, () => Promise<string>, RegExp][] = [
      ['a legacy service_role JWT', () => mintServiceRoleKey(LEGACY_SECRET), SERVICE_ROLE_SENTENCE],
      ['an sb_secret_ key', async () => `sb_secret_${randomUUID().replace(/-/g, '')}`, SERVICE_ROLE_SENTENCE],
      ['something that is no Supabase API key', async () => `not-a-key-${randomUUID()}`, /SUPABASE_ANON_KEY is not a Supabase API key/],
    ];
    for (const [what, key, sentence] of refusals) {
      it(`SUPABASE_ANON_KEY set to ${what} -> exit 2 with one clear sentence (the key is not echoed)`, async function () {
        const secret = await key();
        const stateDir = tempDir('svc');
        try {
          const res = await runDaemon({ stateDir, env: env('svc', { SUPABASE_ANON_KEY: secret }) }, 10000);
          assert.equal(res.code, 2, res.stderr);
          assert.equal(res.stdout, '');
          const lines = res.stderr.trimEnd().split('\n');
          assert.equal(lines.length, 1, res.stderr);
          assert.match(lines[0], sentence);
          assert.ok(!res.stderr.includes(secret) && !res.stderr.includes(secret.slice(-12)), 'the key is not echoed');
        } finally {
          fs.rmSync(stateDir, { recursive: true, force: true });
        }
      });
    }
  }

  it("no service_role key, database password or access token in the daemon's environment, discovery file or log", async function () {
    const environ = fs.readFileSync(`/proc/${main.pid}/environ`, 'utf8');
    const vars = new Map(environ.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    assert.equal(vars.get('SUPABASE_ANON_KEY'), anonKey, 'the environment is the one we set');
    for (const name of ['DATABASE_URL', 'SUPABASE_SERVICE_ROLE_KEY', 'SUPABASE_JWT_SECRET', 'EXAI_TEST_PG_ADMIN_URL']) assert.ok(!vars.has(name), `${name} is set`);

    const discovery = fs.readFileSync(path.join(main.stateDir, 'daemon.json'), 'utf8');
    const log = main.logs();
    assert.ok(log.length > 500, 'the log has content');
    const adminPassword = decodeURIComponent(new URL(ADMIN_URL).password);
    assert.ok(minted.length >= 8);
    const secrets: [string, string][] = [
      ['the service_role key', serviceRoleKey],
      ['the service_role key signature', serviceRoleKey.split('.')[2]],
      ['the JWT secret', LEGACY_SECRET],
      ['the database password', adminPassword],
      ['the authenticator password', AUTHENTICATOR_PASSWORD],
      ['the database URL', db.url],
      ...minted.flatMap((t, i): [string, string][] => [[`access token #${i}`, t], [`access token #${i} signature`, t.split('.')[2]]]),
    ];
    for (const [where, text] of [['environment', environ], ['discovery file', discovery], ['log', log]] as const) {
      for (const [what, secret] of secrets) assert.ok(!text.includes(secret), `${what} in the daemon's ${where}`);
    }
  });
});
