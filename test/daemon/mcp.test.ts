// MCP Streamable HTTP on /mcp in supabase mode, end to end: the real dist/server.js, a loopback JWKS
// endpoint, a real PostgreSQL 15 database holding mcp_sessions and the chat threads, and the SDK's own
// client (StreamableHTTPClientTransport). Covers two users at once (sessions and threads isolated), a
// session hijack with another user's token, the per-user limit shared with WebSocket connections, the
// session rows (connected, DELETE, idle, expiry, shutdown), every refused token kind of the WebSocket
// suite, the protected-resource metadata, renewal with a fresh token, expiry after the calls in flight,
// and a session id another daemon holds. Every wait is bounded.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { decodeJwt } from 'jose';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { helloClient, type TestClient } from '../helpers/client';
import { startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon';
import { mcpConnect, rawInitialize, rawMcp, initializeBody, type McpTestClient } from '../helpers/mcp';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import {
  JAZEEL, JWKS_PATH, MICHELLE, mintAccessToken, mintAnonKey, mintServiceRoleKey, startJwksServer, unsignedToken,
  type JwksServer, type MintOptions,
} from '../helpers/tokens';
import { makeCert } from '../helpers/tlsCert';
import { sleep, waitFor, within } from '../helpers/wait';
import { startPostgrest } from '../postgrest/server';
import { startFakeOpenAI, type FakeOpenAI } from '../providers/fakeOpenAI';

const LEGACY_SECRET = 'legacy-project-jwt-secret-at-least-32-characters';
const API_KEY = 'sk-exai-mcp-sb-0123456789abcdefghijkl';
const nowSec = () => Math.floor(Date.now() / 1000);
const textOf = (result: any) => (result.content as { type: string; text: string }[]).map((c) => c.text).join('');
const jsonOf = (result: any) => JSON.parse(textOf(result));

/** The HTTP status of a failed SDK client call (StreamableHTTPError), or null when it succeeded. */
async function statusOfCall(p: Promise<unknown>): Promise<number | null> {
  try {
    await p;
    return null;
  } catch (err) {
    if (err instanceof StreamableHTTPError) return err.code ?? -1;
    throw err;
  }
}

describe('MCP Streamable HTTP at /mcp: supabase mode (JWKS + real Postgres, SDK client)', function () {
  this.timeout(30000);

  let db: TestDatabase;
  let jwks: JwksServer;
  let fake: FakeOpenAI;
  let main: RunningDaemon;
  const mcpClients: McpTestClient[] = [];
  const wsClients: TestClient[] = [];
  const extra: RunningDaemon[] = [];
  const minted: string[] = [];

  const mint = async (opts: Partial<MintOptions> = {}) => {
    const token = await mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, ...opts });
    minted.push(token);
    return token;
  };
  const env = (daemonId: string, more: Record<string, string> = {}): Record<string, string | undefined> => ({
    MCP_ENABLE_MULTI_USER: 'true',
    SUPABASE_URL: jwks.url,
    DATABASE_URL: db.url,
    SUPABASE_ANON_KEY: undefined,
    SUPABASE_JWT_SECRET: undefined,
    EXAI_DAEMON_ID: daemonId,
    MCP_SESSION_TIMEOUT: undefined,
    MCP_MAX_CONNECTIONS_PER_USER: '50',
    EXAI_PROVIDER_BASE_URL: fake.baseUrl,
    EXAI_PROVIDER_API_KEY: API_KEY,
    EXAI_DEFAULT_MODEL: 'fake-model',
    ...more,
  });
  const startExtra = async (daemonId: string, more: Record<string, string> = {}) => {
    const d = await startDaemon({ env: env(daemonId, more) });
    extra.push(d);
    return d;
  };
  const connect = async (d: RunningDaemon, token: string, name = 'exai-test') => {
    const c = await mcpConnect(d.port, token, name);
    mcpClients.push(c);
    return c;
  };
  const row = async (sessionId: string) => (await db.query('select * from public.mcp_sessions where session_id = $1', [sessionId]))[0];
  const statusOf = async (sessionId: string) => (await row(sessionId))?.connection_status as string | undefined;
  const waitStatus = (sessionId: string, status: string, ms = 5000) =>
    waitFor(async () => (await statusOf(sessionId)) === status, ms, `row ${sessionId} -> ${status}`);

  before(async function () {
    this.timeout(30000);
    [db, jwks, fake] = await Promise.all([createTestDatabase(), startJwksServer(), startFakeOpenAI({ apiKey: API_KEY })]);
    await db.addUser(JAZEEL.id, JAZEEL.email);
    await db.addUser(MICHELLE.id, MICHELLE.email);
    main = await startDaemon({ env: env('mcp-main', { EXAI_HEARTBEAT_SECONDS: '1' }) });
  });

  afterEach(async function () {
    this.timeout(20000);
    await Promise.all(mcpClients.splice(0).map((c) => c.close()));
    await Promise.all(wsClients.splice(0).map((c) => c.close()));
    await Promise.all(extra.splice(0).map((d) => within(d.stop(), 15000, 'daemon stop').catch(() => d.kill9())));
    await db.query("update public.mcp_sessions set connection_status = 'disconnected' where connection_status = 'connected'");
  });

  after(async function () {
    this.timeout(20000);
    try {
      if (main) {
        const logs = main.logs();
        for (const token of minted) {
          const signature = token.split('.')[2];
          assert.ok(!logs.includes(token), 'no token in the log');
          if (signature) assert.ok(!logs.includes(signature), 'no token signature in the log');
        }
        assert.ok(!logs.includes(API_KEY));
        assert.equal(await within(main.stop(), 15000, 'main daemon stop'), 0);
      }
    } finally {
      await main?.kill9();
      await Promise.all([jwks?.close(), fake?.close()]);
      await db?.drop();
    }
  });

  it("initialize claims a row (connected, transport mcp, the client's name), DELETE ends it", async function () {
    const c = await connect(main, await mint({ user: JAZEEL }), 'claude-code');
    const r = await row(c.sessionId);
    assert.ok(r, 'a row for the MCP session');
    assert.equal(r.user_id, JAZEEL.id);
    assert.equal(r.connection_status, 'connected');
    assert.equal(r.metadata.transport, 'mcp');
    assert.equal(r.metadata.client_name, 'claude-code');
    assert.equal(r.metadata.client_version, '1.2.3');
    assert.equal(r.metadata.daemon_id, 'mcp-main');
    await c.transport.terminateSession();
    // The DELETE answer waits for the row: it is already ended.
    assert.equal(await statusOf(c.sessionId), 'disconnected');
  });

  it('two users at once: each sees only their own identity, sessions and threads', async function () {
    const [j, m] = await Promise.all([connect(main, await mint({ user: JAZEEL })), connect(main, await mint({ user: MICHELLE }))]);
    const [whoJ, whoM] = await Promise.all([j.client.callTool({ name: 'whoami', arguments: {} }), m.client.callTool({ name: 'whoami', arguments: {} })]);
    assert.equal(jsonOf(whoJ).user_id, JAZEEL.id);
    assert.equal(jsonOf(whoJ).session_id, j.sessionId);
    assert.equal(jsonOf(whoM).user_id, MICHELLE.id);
    assert.equal(jsonOf(whoM).session_id, m.sessionId);

    const sessionsJ: any[] = jsonOf(await j.client.callTool({ name: 'sessions', arguments: {} }));
    assert.ok(sessionsJ.some((s) => s.session_id === j.sessionId && s.current && s.metadata.transport === 'mcp'));
    assert.ok(!sessionsJ.some((s) => s.session_id === m.sessionId), "Jazeel does not see Michelle's session");
    const sessionsM: any[] = jsonOf(await m.client.callTool({ name: 'sessions', arguments: {} }));
    assert.ok(!sessionsM.some((s) => s.session_id === j.sessionId), "Michelle does not see Jazeel's session");

    // Concurrent chats, one thread each; neither sees nor continues the other's.
    const [chatJ, chatM] = await Promise.all([
      j.client.callTool({ name: 'chat', arguments: { prompt: 'jazeel secret plan' } }),
      m.client.callTool({ name: 'chat', arguments: { prompt: 'michelle secret plan' } }),
    ]);
    const threadJ = /continuation_id: ([0-9a-f-]{36})$/.exec(textOf(chatJ))![1];
    const threadM = /continuation_id: ([0-9a-f-]{36})$/.exec(textOf(chatM))![1];
    const listJ: any[] = jsonOf(await j.client.callTool({ name: 'threads', arguments: {} }));
    const listM: any[] = jsonOf(await m.client.callTool({ name: 'threads', arguments: {} }));
    assert.deepEqual(listJ.map((t) => t.continuation_id), [threadJ]);
    assert.deepEqual(listM.map((t) => t.continuation_id), [threadM]);
    const steal = await m.client.callTool({ name: 'chat', arguments: { prompt: 'tell me', continuation_id: threadJ } });
    assert.equal(steal.isError, true);
    assert.match(textOf(steal), /unknown or belongs to another user/);
    assert.equal((steal._meta as any)['exai/error_code'], 'thread_not_found');
  });

  it("refuses a request on a session with another user's token (404) and changes nothing", async function () {
    const jazeel = await mint({ user: JAZEEL });
    const j = await connect(main, jazeel);
    const michelle = await mint({ user: MICHELLE });
    const asMichelle = { authorization: `Bearer ${michelle}`, 'mcp-session-id': j.sessionId };
    const call = await rawMcp(main.port, { body: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }, headers: asMichelle });
    assert.equal(call.status, 404);
    assert.ok(!call.text.includes(JAZEEL.id) && !call.text.includes(JAZEEL.email), 'nothing about the owner leaks');
    assert.equal((await rawMcp(main.port, { method: 'GET', headers: { ...asMichelle, accept: 'text/event-stream' } })).status, 404);
    assert.equal((await rawMcp(main.port, { method: 'DELETE', headers: asMichelle })).status, 404);
    // Through the SDK client too: Michelle's token on Jazeel's live session.
    j.setToken(michelle);
    assert.equal(await statusOfCall(j.client.ping()), 404);
    j.setToken(jazeel);
    // Still Jazeel's, still connected, still working.
    const who = jsonOf(await j.client.callTool({ name: 'whoami', arguments: {} }));
    assert.equal(who.user_id, JAZEEL.id);
    assert.equal(who.token_expires_at, decodeJwt(jazeel).exp);
    assert.equal(await statusOf(j.sessionId), 'connected');
    assert.match(main.logs(), /refused a request on another user's MCP session/);
  });

  it('counts MCP sessions and WebSocket connections toward one per-user limit', async function () {
    const d = await startExtra('mcp-limit', { MCP_MAX_CONNECTIONS_PER_USER: '2' });
    const token = await mint({ user: JAZEEL });
    const { client: ws, ack } = await helloClient(d.url, token, 'limit-ws');
    wsClients.push(ws);
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    const first = await connect(d, token);
    const over = await rawMcp(d.port, { body: initializeBody(), headers: { authorization: `Bearer ${token}` } });
    assert.equal(over.status, 429);
    assert.match(over.json.error.message, /already has 2 open sessions \(the limit is 2, VS Code windows and MCP sessions together\)/);
    assert.equal(over.json.error.data.reason, 'too_many_connections');
    const { client: ws2, ack: refused } = await helloClient(d.url, token, 'limit-ws-2');
    wsClients.push(ws2);
    assert.ok(refused.op === 'hello_ack' && !refused.ok && refused.error.code === 'too_many_connections', JSON.stringify(refused));
    // Michelle is not affected.
    await connect(d, await mint({ user: MICHELLE }));
    // Ending the MCP session frees the slot for a WebSocket.
    await first.transport.terminateSession();
    const { client: ws3, ack: again } = await helloClient(d.url, token, 'limit-ws-3');
    wsClients.push(ws3);
    assert.ok(again.op === 'hello_ack' && again.ok, JSON.stringify(again));
  });

  {
    const cases: [string, () => Promise<string>, string][] = [
      ['an expired token', () => mint({ expiresInSec: -120, claims: { iat: nowSec() - 3720 } }), 'token_expired'],
      ['a wrong signature', () => mint({ key: jwks.keys.es256Rotated, header: { kid: jwks.keys.es256.kid } }), 'token_invalid'],
      ['a wrong iss', () => mint({ issuer: 'https://another-project.supabase.co/auth/v1' }), 'token_invalid'],
      ['a wrong aud', () => mint({ claims: { aud: 'some-other-audience' } }), 'token_invalid'],
      ["the project's anon key", async () => { const t = await mintAnonKey(LEGACY_SECRET); minted.push(t); return t; }, 'token_invalid'],
      ["the project's service_role key", async () => { const t = await mintServiceRoleKey(LEGACY_SECRET); minted.push(t); return t; }, 'token_invalid'],
      ['a token without sub', () => mint({ claims: { sub: undefined } }), 'token_invalid'],
      ['a token without session_id', () => mint({ claims: { session_id: undefined } }), 'token_invalid'],
      ["an alg 'none' token", async () => {
        const t = unsignedToken({ iss: jwks.issuer, sub: JAZEEL.id, aud: 'authenticated', exp: nowSec() + 3600, iat: nowSec(), role: 'authenticated', session_id: crypto.randomUUID() });
        minted.push(t);
        return t;
      }, 'token_invalid'],
    ];
    for (const [what, makeToken, code] of cases) {
      it(`refuses ${what} with 401, WWW-Authenticate and the WebSocket's sentence; no row`, async function () {
        const token = await makeToken();
        const answer = await rawMcp(main.port, { body: initializeBody(), headers: { authorization: `Bearer ${token}` } });
        assert.equal(answer.status, 401, answer.text);
        const challenge = String(answer.headers['www-authenticate']);
        assert.match(challenge, new RegExp(`^Bearer resource_metadata="http://127\\.0\\.0\\.1:${main.port}/\\.well-known/oauth-protected-resource/mcp", scope="email", error="invalid_token", error_description="[^"]+"$`));
        assert.equal(answer.json.error.data.reason, code);
        const { client, ack } = await helloClient(main.url, token, 'compare');
        wsClients.push(client);
        assert.ok(ack.op === 'hello_ack' && !ack.ok);
        assert.equal(answer.json.error.message, ack.error.message, 'the same sentence as the WebSocket hello');
        for (const part of token.split('.')) if (part.length >= 16) assert.ok(!answer.text.includes(part) && !challenge.includes(part), 'no part of the token in the answer');
      });
    }
  }

  it("EXAI_OAUTH_CLIENTS: a token of the project's OAuth server (client_id claim) is refused by default on /mcp and the WebSocket, accepted with * and for listed clients only; the extension's tokens unaffected", async function () {
    this.timeout(60000);
    const CLIENT_A = '6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b';
    const CLIENT_B = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
    const oauthToken = (clientId: string, user = JAZEEL) =>
      mint({ user, claims: { client_id: clientId, scope: 'email', amr: [{ method: 'oauth_provider/authorization_code', timestamp: nowSec() }] } });
    const refusedEverywhere = async (d: RunningDaemon, token: string, sentence: RegExp) => {
      const answer = await rawMcp(d.port, { body: initializeBody(), headers: { authorization: `Bearer ${token}` } });
      assert.equal(answer.status, 401, answer.text);
      assert.match(String(answer.headers['www-authenticate']), /error="invalid_token", error_description="[^"]*EXAI_OAUTH_CLIENTS/);
      assert.match(answer.json.error.message, sentence);
      const { client, ack } = await helloClient(d.url, token, 'oauth-ws');
      wsClients.push(client);
      assert.ok(ack.op === 'hello_ack' && !ack.ok && ack.error.code === 'token_invalid', JSON.stringify(ack));
      assert.equal(ack.error.message, answer.json.error.message, 'the same sentence on both transports');
      assert.equal((await within(client.closed, 5000, 'auth-failed close')).code, 4003);
    };
    const acceptedEverywhere = async (d: RunningDaemon, token: string, user: typeof JAZEEL) => {
      const c = await connect(d, token);
      assert.equal(jsonOf(await c.client.callTool({ name: 'whoami', arguments: {} })).user_id, user.id);
      const { client, ack } = await helloClient(d.url, token, 'oauth-ws');
      wsClients.push(client);
      assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    };

    // Unset (the main daemon): no OAuth-issued token gets in; the sentence names the setting.
    await refusedEverywhere(main, await oauthToken(CLIENT_A), /accepts no OAuth-issued tokens.*EXAI_OAUTH_CLIENTS/);
    await acceptedEverywhere(main, await mint({ user: MICHELLE }), MICHELLE);

    const [any, listed] = await Promise.all([
      startExtra('mcp-oauth-any', { EXAI_OAUTH_CLIENTS: '*' }),
      startExtra('mcp-oauth-listed', { EXAI_OAUTH_CLIENTS: CLIENT_A }),
    ]);
    await acceptedEverywhere(any, await oauthToken(CLIENT_A, MICHELLE), MICHELLE);
    await acceptedEverywhere(any, await oauthToken(CLIENT_B), JAZEEL);
    await acceptedEverywhere(any, await mint({ user: JAZEEL }), JAZEEL);

    await acceptedEverywhere(listed, await oauthToken(CLIENT_A), JAZEEL);
    await refusedEverywhere(listed, await oauthToken(CLIENT_B), new RegExp(`client ${CLIENT_B}, which is not in this daemon's EXAI_OAUTH_CLIENTS`));
    await acceptedEverywhere(listed, await mint({ user: MICHELLE }), MICHELLE);
  });

  it('refuses a missing token with 401 and a bare challenge; answers 503 while the signing keys are unreachable', async function () {
    const none = await rawMcp(main.port, { body: initializeBody() });
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], `Bearer resource_metadata="http://127.0.0.1:${main.port}/.well-known/oauth-protected-resource/mcp", scope="email"`);

    const gone = await startJwksServer();
    const token = await mintAccessToken({ key: gone.keys.es256, issuer: gone.issuer });
    minted.push(token);
    await gone.close();
    const d = await startExtra('mcp-jwks-down', { SUPABASE_URL: gone.url });
    const answer = await rawMcp(d.port, { body: initializeBody(), headers: { authorization: `Bearer ${token}` } });
    assert.equal(answer.status, 503);
    assert.equal(answer.headers['retry-after'], '5');
    assert.match(answer.json.error.message, /Could not fetch the Supabase signing keys/);
    assert.deepEqual(await db.query("select session_id from public.mcp_sessions where metadata->>'daemon_id' = 'mcp-jwks-down'"), [], 'no row for refused tokens');
  });

  it('publishes RFC 9728 metadata naming <SUPABASE_URL>/auth/v1 (bare and path-inserted)', async function () {
    for (const path of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
      const meta = await rawMcp(main.port, { method: 'GET', path });
      assert.equal(meta.status, 200, path);
      assert.deepEqual(meta.json, {
        resource: `http://127.0.0.1:${main.port}/mcp`,
        authorization_servers: [`${jwks.url}/auth/v1`],
        scopes_supported: ['email'],
        bearer_methods_supported: ['header'],
        resource_name: 'EXAI daemon',
      });
    }
    const viaLocalhost = await rawMcp(main.port, { method: 'GET', path: '/.well-known/oauth-protected-resource/mcp', headers: { host: `localhost:${main.port}` } });
    assert.equal(viaLocalhost.json.resource, `http://localhost:${main.port}/mcp`, 'named as the client reached it');
  });

  it('serves /mcp over TLS on the same port: https metadata and challenge; a hosted daemon refuses any Origin and names itself by Host', async function () {
    const cert = makeCert(tempDir('mcp-tls'), 'mcp');
    const d = await startDaemon({ env: { ...env('mcp-tls'), EXAI_PUBLIC_HOSTS: 'exai.example.com' }, args: ['--tls-cert', cert.cert, '--tls-key', cert.key] });
    extra.push(d);
    const token = await mint({ user: JAZEEL });
    const init = await rawMcp(d.port, { body: initializeBody(), headers: { authorization: `Bearer ${token}` }, ca: cert.pem });
    assert.equal(init.status, 200, init.text);
    const sessionId = String(init.headers['mcp-session-id']);
    assert.equal(await statusOf(sessionId), 'connected');
    const none = await rawMcp(d.port, { body: initializeBody(), ca: cert.pem });
    assert.equal(none.headers['www-authenticate'], `Bearer resource_metadata="https://127.0.0.1:${d.port}/.well-known/oauth-protected-resource/mcp", scope="email"`);
    const meta = await rawMcp(d.port, { method: 'GET', path: '/.well-known/oauth-protected-resource', headers: { host: 'exai.example.com' }, ca: cert.pem });
    assert.equal(meta.json.resource, 'https://exai.example.com/mcp');
    const fromPage = await rawMcp(d.port, { body: initializeBody(), headers: { authorization: `Bearer ${token}`, origin: `https://localhost:${d.port}` }, ca: cert.pem });
    assert.equal(fromPage.status, 403, 'no browser origin drives a hosted daemon');
    await assert.rejects(rawMcp(d.port, { body: initializeBody(), headers: { authorization: `Bearer ${token}` } }), 'plain http to the TLS port fails');
    await rawMcp(d.port, { method: 'DELETE', headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sessionId }, ca: cert.pem });
    assert.equal(await statusOf(sessionId), 'disconnected');
  });

  it('a fresh token of the same user continues the session past the first token’s expiry', async function () {
    const short = await mint({ user: JAZEEL, expiresInSec: 3 });
    const c = await connect(main, short);
    const fresh = await mint({ user: JAZEEL, expiresInSec: 3600 });
    c.setToken(fresh);
    assert.deepEqual(await c.client.ping(), {});
    await sleep(Math.max(0, decodeJwt(short).exp! * 1000 + 1500 - Date.now()));
    const who = jsonOf(await c.client.callTool({ name: 'whoami', arguments: {} }));
    assert.equal(who.session_id, c.sessionId);
    assert.equal(who.token_expires_at, decodeJwt(fresh).exp);
    assert.equal(await statusOf(c.sessionId), 'connected');
  });

  it('expiry: a warning first, the call in flight finishes, then the session ends (404, not 401) and its row is expired', async function () {
    const token = await mint({ user: MICHELLE, expiresInSec: 3 });
    const exp = decodeJwt(token).exp!;
    const c = await connect(main, token);
    // The expiring notice (due 60 s before exp, so at once) arrives on the GET stream.
    await waitFor(async () => c.logMessages.some((m) => m.level === 'warning' && /expires at/.test(String(m.data))), 5000, 'expiring warning');
    const long = c.client.callTool({ name: 'echo', arguments: { text: 'outlived the token', delay_ms: Math.max(0, exp * 1000 + 1500 - Date.now()) } });
    assert.equal(textOf(await long), 'outlived the token', 'the call in flight at expiry delivered its result');
    await waitStatus(c.sessionId, 'expired');
    assert.equal(await statusOfCall(c.client.ping()), 404, 'the expired session is gone: 404 makes the client re-initialize');
    // A fresh token of the same user then opens a new session.
    const next = await connect(main, await mint({ user: MICHELLE }));
    assert.notEqual(next.sessionId, c.sessionId);
  });

  it("expiry while a call runs: the session's own client gets its 404 only once the call has delivered (64 requests at most); anyone else at once", async function () {
    // VS Code answers a 404 by cancelling every call of the session: an early 404 would cancel the running call.
    const token = await mint({ user: JAZEEL, expiresInSec: 3 });
    const exp = decodeJwt(token).exp!;
    const c = await connect(main, token);
    let longDoneAt = 0;
    const longEndsAt = exp * 1000 + 3000;
    const long = c.client.callTool({ name: 'echo', arguments: { text: 'delivered', delay_ms: Math.max(0, longEndsAt - Date.now()) } })
      .then((r) => ((longDoneAt = Date.now()), textOf(r)));
    await sleep(Math.max(0, exp * 1000 + 500 - Date.now())); // the token has expired; the call still runs
    const onSession = (bearer: string, method = 'POST') => rawMcp(main.port, {
      method,
      body: method === 'POST' ? { jsonrpc: '2.0', id: 'next', method: 'tools/call', params: { name: 'whoami', arguments: {} } } : undefined,
      headers: { authorization: `Bearer ${bearer}`, 'mcp-session-id': c.sessionId, accept: 'application/json, text/event-stream' },
    }).then((answer) => ({ status: answer.status, at: Date.now() }));
    const others = await Promise.all([
      onSession(await mint({ user: JAZEEL })), // a fresh token of the same user: not the session's client
      onSession(await mint({ user: MICHELLE })),
      onSession(token, 'DELETE'),
    ]);
    assert.deepEqual(others.map((o) => o.status), [404, 404, 404]);
    assert.equal(longDoneAt, 0, 'answered at once, while the call still runs');
    // Its own client's requests wait — as many as a session may have calls in flight (64); one more does not.
    const own = [onSession(token, 'GET'), ...Array.from({ length: 63 }, () => onSession(token))];
    await sleep(300);
    const beyond = await onSession(token);
    assert.equal(beyond.status, 404);
    assert.equal(longDoneAt, 0, 'the 65th waiting request was answered at once');
    const answers = await Promise.all(own);
    assert.equal(await long, 'delivered');
    assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([404]));
    const early = answers.filter((a) => a.at < longEndsAt);
    assert.deepEqual(early, [], "the session's own requests were answered once the call had finished");
    await waitStatus(c.sessionId, 'expired');
  });

  it('idle sessions time out (pings are not activity) and their rows become expired; a long call is activity', async function () {
    const d = await startExtra('mcp-idle', { MCP_SESSION_TIMEOUT: '2' });
    const token = await mint({ user: JAZEEL });
    const [quiet, pinger, busy] = await Promise.all([connect(d, token), connect(d, token), connect(d, token)]);
    const call = busy.client.callTool({ name: 'echo', arguments: { text: 'long', delay_ms: 3500 } });
    const stopPinging = Date.now() + 6000;
    let pingerGone = false;
    while (Date.now() < stopPinging && !pingerGone) {
      pingerGone = (await statusOfCall(pinger.client.ping())) === 404;
      await sleep(300);
    }
    assert.ok(pingerGone, 'a session that only pings still times out');
    assert.equal(textOf(await call), 'long');
    assert.deepEqual(await busy.client.ping(), {}, 'the session with a long call is still there right after it');
    await waitStatus(quiet.sessionId, 'expired');
    await waitStatus(pinger.sessionId, 'expired');
    assert.equal(await statusOfCall(quiet.client.ping()), 404);
  });

  it('shutdown ends MCP session rows as disconnected', async function () {
    const d = await startExtra('mcp-shutdown');
    const c = await connect(d, await mint({ user: JAZEEL }));
    assert.equal(await statusOf(c.sessionId), 'connected');
    assert.equal(await within(d.stop(), 15000, 'stop'), 0);
    assert.equal(await statusOf(c.sessionId), 'disconnected');
  });

  it('a session id held by another daemon gets 404 (the load balancer case); the owner keeps it', async function () {
    const other = await startExtra('mcp-other');
    const token = await mint({ user: JAZEEL });
    const { sessionId } = await rawInitialize(main.port, token);
    const elsewhere = await rawMcp(other.port, { body: { jsonrpc: '2.0', id: 2, method: 'tools/list' }, headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sessionId } });
    assert.equal(elsewhere.status, 404);
    assert.equal(elsewhere.json.error.code, -32001);
    const home = await rawMcp(main.port, { body: { jsonrpc: '2.0', id: 2, method: 'tools/list' }, headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sessionId } });
    assert.equal(home.status, 200);
    await rawMcp(main.port, { method: 'DELETE', headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sessionId } });
  });
});

describe('MCP sessions through the Supabase Data API (SUPABASE_ANON_KEY, each user\'s own token)', function () {
  this.timeout(30000);
  let db: TestDatabase;
  let jwks: JwksServer;
  let gateway: Awaited<ReturnType<typeof startPostgrest>>;
  let daemon: RunningDaemon;
  const clients: McpTestClient[] = [];

  before(async function () {
    [db, jwks] = await Promise.all([createTestDatabase(), startJwksServer()]);
    await db.addUser(JAZEEL.id, JAZEEL.email);
    const [anonKey, serviceRoleKey] = await Promise.all([mintAnonKey(LEGACY_SECRET), mintServiceRoleKey(LEGACY_SECRET)]);
    gateway = await startPostgrest({ databaseUrl: db.url, jwksUrl: `${jwks.url}${JWKS_PATH}`, jwtSecret: LEGACY_SECRET, anonKey, serviceRoleKey, authUpstream: jwks.url });
    daemon = await startDaemon({
      env: {
        MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: gateway.url, SUPABASE_ANON_KEY: anonKey, DATABASE_URL: undefined, SUPABASE_JWT_SECRET: undefined,
        EXAI_DAEMON_ID: 'mcp-data-api', EXAI_HEARTBEAT_SECONDS: '1', MCP_SESSION_TIMEOUT: undefined, MCP_MAX_CONNECTIONS_PER_USER: undefined,
      },
    });
  });

  after(async function () {
    this.timeout(20000);
    await Promise.all(clients.splice(0).map((c) => c.close()));
    try {
      if (daemon) assert.equal(await within(daemon.stop(), 15000, 'stop'), 0);
    } finally {
      await daemon?.kill9();
      await Promise.all([gateway?.close(), jwks?.close()]);
      await db?.drop();
    }
  });

  it("claims, renews and ends the row with the session's freshest token", async function () {
    const issuer = `${gateway.url}/auth/v1`;
    const first = await mintAccessToken({ key: jwks.keys.es256, issuer, user: JAZEEL, expiresInSec: 3 });
    const c = await mcpConnect(daemon.port, first);
    clients.push(c);
    const rowOf = async () => (await db.query('select connection_status from public.mcp_sessions where session_id = $1', [c.sessionId]))[0];
    assert.equal((await rowOf())?.connection_status, 'connected');
    const claim = gateway.requests().find((r) => r.fn === 'mcp_claim_session');
    assert.equal(claim?.bearer, first, "the row was claimed with the user's own token");

    const fresh = await mintAccessToken({ key: jwks.keys.es256, issuer, user: JAZEEL, expiresInSec: 3600 });
    c.setToken(fresh);
    assert.deepEqual(await c.client.ping(), {});
    // Past the first token's exp: heartbeats go on with the fresh token, and the session with them.
    await sleep(Math.max(0, decodeJwt(first).exp! * 1000 + 1500 - Date.now()));
    await waitFor(async () => gateway.requests().some((r) => r.fn === 'mcp_touch_session' && r.bearer === fresh && r.status === 200), 5000, 'a heartbeat with the fresh token');
    assert.equal(jsonOf(await c.client.callTool({ name: 'whoami', arguments: {} })).token_expires_at, decodeJwt(fresh).exp);
    await c.transport.terminateSession();
    assert.equal((await rowOf())?.connection_status, 'disconnected');
    assert.equal(gateway.requests().filter((r) => r.fn === 'mcp_close_session').at(-1)?.bearer, fresh);
  });
});
