// The daemon in supabase mode, end to end: the real dist/server.js, a loopback JWKS endpoint and
// a real PostgreSQL 15 database holding mcp_sessions. Covers the handshake and its close codes,
// the session rows, re-auth across an expiry, expiry / idle timeouts, the per-user limit across
// two daemon processes, isolation between users, crash recovery, graceful shutdown, /health, logs
// and the liveness bound. Every wait is bounded.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { decodeJwt } from 'jose';
import { Client } from 'pg';
import { connect, helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { getJson } from '../helpers/getJson';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import {
  JAZEEL,
  MICHELLE,
  mintAccessToken,
  mintAnonKey,
  mintServiceRoleKey,
  startJwksServer,
  unsignedToken,
  type JwksServer,
  type MintOptions,
  type TestUser,
} from '../helpers/tokens';
import { sleep, waitFor, within } from '../helpers/wait';
import type { CallToolResult, HelloAck, ServerFrame } from '../../server/protocol';

type OkAck = Extract<HelloAck, { ok: true }>;
type FailAck = Extract<HelloAck, { ok: false }>;

const LEGACY_SECRET = 'legacy-project-jwt-secret-at-least-32-characters';
const DB_PASSWORD = 'exai_test';

const nowSec = () => Math.floor(Date.now() / 1000);
const isResult = (id: string) => (f: ServerFrame) => f.op === 'call_tool_res' && f.request_id === id;

describe('supabase mode daemon (JWKS + real Postgres)', function () {
  this.timeout(20000);

  let db: TestDatabase;
  let jwks: JwksServer;
  let main: RunningDaemon;
  /** Clients opened by the current test; closed after it. */
  const clients: TestClient[] = [];
  /** Daemons started by the current test; stopped after it. */
  const extra: RunningDaemon[] = [];
  /** Every token minted in this file, to check none reaches a log. */
  const minted: string[] = [];

  const mint = async (opts: Partial<MintOptions> = {}) => {
    const token = await mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, ...opts });
    minted.push(token);
    return token;
  };
  const expOf = (token: string) => decodeJwt(token).exp as number;

  const baseEnv = (daemonId: string, env: Record<string, string> = {}): Record<string, string | undefined> => ({
    MCP_ENABLE_MULTI_USER: 'true',
    SUPABASE_URL: jwks.url,
    DATABASE_URL: db.url,
    EXAI_DAEMON_ID: daemonId,
    EXAI_HELLO_TIMEOUT_MS: '2000',
    SUPABASE_JWT_SECRET: undefined, // never inherit one from the environment
    ...env,
  });
  const startSupabaseDaemon = async (daemonId: string, env: Record<string, string> = {}) => {
    const d = await startDaemon({ env: baseEnv(daemonId, env) });
    extra.push(d);
    return d;
  };

  /** Connects, says hello, and tracks the client for cleanup. */
  const hello = async (url: string, token: string, instance: string) => {
    const { client, ack } = await helloClient(url, token, instance);
    clients.push(client);
    return { client, ack };
  };
  const helloOk = async (url: string, token: string, instance: string) => {
    const { client, ack } = await hello(url, token, instance);
    assert.ok(ack.op === 'hello_ack' && ack.ok, `hello refused: ${JSON.stringify(ack)}`);
    return { client, ack: ack as OkAck };
  };
  const call = async (client: TestClient, requestId: string, name: string, args: Record<string, unknown> = {}, timeoutMs = 10000) => {
    client.send({ op: 'call_tool', request_id: requestId, name, arguments: args });
    return client.next<CallToolResult>(isResult(requestId), timeoutMs);
  };
  const callJson = async (client: TestClient, requestId: string, name: string) => {
    const res = await call(client, requestId, name);
    assert.ok(res.ok, `${name} failed: ${JSON.stringify(res)}`);
    return JSON.parse(res.outputs[0].text);
  };

  const row = async (sessionId: string) =>
    (await db.query('select * from public.mcp_sessions where session_id = $1', [sessionId]))[0];
  const statusOf = async (sessionId: string) => (await row(sessionId))?.connection_status as string | undefined;
  const waitStatus = async (sessionId: string, status: string, ms = 3000) => {
    try {
      await waitFor(async () => (await statusOf(sessionId)) === status, ms, `row ${sessionId} -> ${status}`);
    } catch (err) {
      throw new Error(`${(err as Error).message}; row is ${JSON.stringify(await row(sessionId))}`);
    }
  };
  const liveConnected = async (userId?: string) =>
    Number(
      (
        await db.query(
          `select count(*)::int as n from public.mcp_sessions
            where connection_status = 'connected' and last_active > now() - public.mcp_session_stale_after()
              and ($1::uuid is null or user_id = $1::uuid)`,
          [userId ?? null],
        )
      )[0].n,
    );

  before(async function () {
    this.timeout(30000);
    [db, jwks] = await Promise.all([createTestDatabase(), startJwksServer()]);
    await db.addUser(JAZEEL.id, JAZEEL.email);
    await db.addUser(MICHELLE.id, MICHELLE.email);
    main = await startDaemon({
      env: baseEnv('main-daemon', { EXAI_HEARTBEAT_SECONDS: '1', MCP_MAX_CONNECTIONS_PER_USER: '50' }),
    });
  });

  afterEach(async function () {
    this.timeout(15000);
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(extra.splice(0).map((d) => within(d.stop(), 12000, 'daemon stop').catch(() => d.kill9())));
    // Every connection of this test is closed and every extra daemon stopped, so each row must have its
    // final status. A row left `connected` (and still fresh) is a leak: fail, naming it.
    try {
      await waitFor(async () => (await liveConnected()) === 0, 5000, 'all rows closed');
    } catch (err) {
      const left = await db.query(
        `select session_id, metadata->>'daemon_id' as daemon_id, metadata->>'instance' as instance, last_active
           from public.mcp_sessions
          where connection_status = 'connected' and last_active > now() - public.mcp_session_stale_after()`,
      );
      throw new Error(`${(err as Error).message}: rows left connected after "${this.currentTest?.title}": ${JSON.stringify(left)}`);
    }
  });

  after(async function () {
    this.timeout(20000);
    try {
      if (main) assert.equal(await within(main.stop(), 15000, 'main daemon stop'), 0);
    } finally {
      if (main) await main.kill9();
      await jwks?.close();
      await db?.drop();
    }
  });

  // ------------------------------------------------------------------ 1

  it('1. accepts a valid ES256 token: hello_ack with user, exp and session id; a connected row with metadata', async function () {
    const token = await mint({ user: JAZEEL });
    const { ack } = await helloOk(main.url, token, 'sb-first');
    assert.deepEqual(ack.user, { id: JAZEEL.id, email: JAZEEL.email });
    assert.equal(ack.expires_at, expOf(token));
    assert.match(ack.session_id, /^[0-9a-f-]{36}$/);
    assert.equal(ack.server.version, main.line.version);

    const r = await row(ack.session_id);
    assert.ok(r, 'a row for the session');
    assert.equal(r.user_id, JAZEEL.id);
    assert.equal(r.connection_status, 'connected');
    assert.equal(r.metadata.instance, 'sb-first');
    assert.equal(r.metadata.daemon_id, 'main-daemon');
    assert.equal(r.metadata.client_version, 'test');
  });

  // ------------------------------------------------------------------ 2

  // 2. A flat table (not a nested describe: mocha would run it after all the tests below, and test
  // 13 reads the log these refusals write).
  {
    const cases: [string, () => Promise<string>, number, string][] = [
      ['an expired token', () => mint({ expiresInSec: -120, claims: { iat: nowSec() - 3720 } }), 4004, 'token_expired'],
      ['a wrong signature', () => mint({ key: jwks.keys.es256Rotated, header: { kid: jwks.keys.es256.kid } }), 4003, 'token_invalid'],
      ['a wrong iss', () => mint({ issuer: 'https://another-project.supabase.co/auth/v1' }), 4003, 'token_invalid'],
      ['a wrong aud', () => mint({ claims: { aud: 'some-other-audience' } }), 4003, 'token_invalid'],
      ["the project's anon key", async () => { const t = await mintAnonKey(LEGACY_SECRET); minted.push(t); return t; }, 4003, 'token_invalid'],
      ["the project's service_role key", async () => { const t = await mintServiceRoleKey(LEGACY_SECRET); minted.push(t); return t; }, 4003, 'token_invalid'],
      ['a token without sub', () => mint({ claims: { sub: undefined } }), 4003, 'token_invalid'],
      ['a token without session_id', () => mint({ claims: { session_id: undefined } }), 4003, 'token_invalid'],
      [
        "an alg 'none' token",
        async () => {
          const t = unsignedToken({
            iss: jwks.issuer, sub: JAZEEL.id, aud: 'authenticated', exp: nowSec() + 3600, iat: nowSec(),
            email: JAZEEL.email, role: 'authenticated', session_id: crypto.randomUUID(),
          });
          minted.push(t);
          return t;
        },
        4003,
        'token_invalid',
      ],
    ];
    for (const [what, makeToken, closeCode, errorCode] of cases) {
      it(`2. refuses ${what}: hello_ack ok:false ${errorCode}, close ${closeCode}`, async function () {
        const token = await makeToken();
        const { client, ack } = await hello(main.url, token, `refused-${errorCode}`);
        assert.equal(ack.op, 'hello_ack');
        assert.equal((ack as FailAck).ok, false, JSON.stringify(ack));
        assert.equal((ack as FailAck).error.code, errorCode, (ack as FailAck).error.message);
        assert.ok((ack as FailAck).error.message.length > 10, 'a message a person can act on');
        for (const part of token.split('.')) {
          if (part.length >= 16) assert.ok(!(ack as FailAck).error.message.includes(part), 'no part of the token in the message');
        }
        assert.equal((await within(client.closed, 5000, 'close')).code, closeCode);
      });
    }

    it('2. refuses any token while the JWKS endpoint is unreachable: auth_unavailable, close 1013', async function () {
      const gone = await startJwksServer();
      const token = await mintAccessToken({ key: gone.keys.es256, issuer: gone.issuer, user: JAZEEL });
      minted.push(token);
      await gone.close();
      const d = await startSupabaseDaemon('jwks-down', { SUPABASE_URL: gone.url });
      const { client, ack } = await hello(d.url, token, 'refused-auth-unavailable');
      assert.equal((ack as FailAck).ok, false, JSON.stringify(ack));
      assert.equal((ack as FailAck).error.code, 'auth_unavailable');
      assert.equal((await within(client.closed, 8000, 'close')).code, 1013);
    });

    it('2. wrote no row for any refused hello', async function () {
      const rows = await db.query("select session_id, metadata from public.mcp_sessions where metadata->>'instance' like 'refused-%'");
      assert.deepEqual(rows, []);
    });
  }

  // ------------------------------------------------------------------ 3

  it('3. graceful client close -> row disconnected', async function () {
    const { client, ack } = await helloOk(main.url, await mint(), 'sb-graceful');
    assert.equal(await statusOf(ack.session_id), 'connected');
    await client.close();
    await waitStatus(ack.session_id, 'disconnected');
  });

  // ------------------------------------------------------------------ 4

  it('4a. per-user limit across two daemons on one database: the third connection gets 4008; Michelle is unaffected', async function () {
    const [a, b] = await Promise.all([
      startSupabaseDaemon('limit-a', { MCP_MAX_CONNECTIONS_PER_USER: '2' }),
      startSupabaseDaemon('limit-b', { MCP_MAX_CONNECTIONS_PER_USER: '2' }),
    ]);
    const jazeel = await mint({ user: JAZEEL });
    await helloOk(a.url, jazeel, 'limit-j1');
    await helloOk(b.url, jazeel, 'limit-j2');
    for (const [d, name] of [[a, 'a'], [b, 'b']] as const) {
      const { client, ack } = await hello(d.url, jazeel, `limit-j3-${name}`);
      assert.equal((ack as FailAck).ok, false, `third connection on daemon ${name} must be refused: ${JSON.stringify(ack)}`);
      assert.equal((ack as FailAck).error.code, 'too_many_connections');
      assert.match((ack as FailAck).error.message, /limit is 2/);
      assert.equal((await within(client.closed, 5000, 'close')).code, 4008);
    }
    await helloOk(a.url, await mint({ user: MICHELLE }), 'limit-m1');
    await helloOk(b.url, await mint({ user: MICHELLE }), 'limit-m2');
    assert.equal(await liveConnected(JAZEEL.id), 2);
    assert.equal(await liveConnected(MICHELLE.id), 2);
  });

  it('4b. race: 20 concurrent connects over two daemons with limit 5 -> exactly 5 accepted, 15 closed with 4008', async function () {
    assert.equal(await liveConnected(JAZEEL.id), 0, 'starts from zero live rows');
    const [a, b] = await Promise.all([
      startSupabaseDaemon('race-a', { MCP_MAX_CONNECTIONS_PER_USER: '5' }),
      startSupabaseDaemon('race-b', { MCP_MAX_CONNECTIONS_PER_USER: '5' }),
    ]);
    const token = await mint({ user: JAZEEL });
    const results = await within(
      Promise.all(Array.from({ length: 20 }, (_, i) => hello(i % 2 ? a.url : b.url, token, `race-${i}`))),
      15000,
      '20 hellos',
    );
    const accepted = results.filter((r) => r.ack.op === 'hello_ack' && r.ack.ok);
    const refused = results.filter((r) => r.ack.op === 'hello_ack' && !r.ack.ok);
    assert.equal(accepted.length, 5, `accepted: ${accepted.length}`);
    assert.equal(refused.length, 15);
    for (const r of refused) assert.equal((r.ack as FailAck).error.code, 'too_many_connections');
    const codes = await within(Promise.all(refused.map((r) => r.client.closed)), 5000, 'refused closes');
    assert.ok(codes.every((c) => c.code === 4008), JSON.stringify(codes));
    assert.equal(await liveConnected(JAZEEL.id), 5);
    for (const r of accepted) assert.equal(await statusOf((r.ack as OkAck).session_id), 'connected');
  });

  // ------------------------------------------------------------------ 5

  it('5. re-auth across an expiry with calls in flight keeps the connection and its calls', async function () {
    const tokenA = await mint({ user: JAZEEL, expiresInSec: 4 });
    const expA = expOf(tokenA);
    const { client, ack } = await helloOk(main.url, tokenA, 'sb-reauth');
    assert.equal(ack.expires_at, expA);
    const expiring = await client.next((f) => f.op === 'auth_expiring', 2000);
    assert.deepEqual(expiring, { op: 'auth_expiring', expires_at: expA });

    client.send({ op: 'call_tool', request_id: 'long', name: 'echo', arguments: { text: 'long one', delay_ms: 6000 } });
    await client.next((f) => f.op === 'call_tool_ack' && f.request_id === 'long');
    for (let i = 0; i < 5; i++) client.send({ op: 'call_tool', request_id: `short-${i}`, name: 'echo', arguments: { text: `s${i}`, delay_ms: 50 } });

    const tokenB = await mint({ user: JAZEEL, expiresInSec: 3600 });
    assert.ok(Date.now() < expA * 1000, 'still before A expires');
    client.send({ op: 'auth', request_id: 'reauth-1', token: tokenB });
    const authAck = await client.next((f) => f.op === 'auth_ack' && f.request_id === 'reauth-1', 3000);
    assert.deepEqual(authAck, { op: 'auth_ack', request_id: 'reauth-1', ok: true, expires_at: expOf(tokenB) });
    const shorts = await Promise.all(Array.from({ length: 5 }, (_, i) => client.next<CallToolResult>(isResult(`short-${i}`))));
    assert.ok(shorts.every((r, i) => r.ok && r.outputs[0].text === `s${i}`));

    // Past A's exp (plus a margin): still open, the long call completes.
    await sleep(Math.max(0, expA * 1000 + 1500 - Date.now()));
    let closedEarly: unknown = null;
    void client.closed.then((c) => (closedEarly = c));
    await sleep(0);
    assert.equal(closedEarly, null, `connection closed: ${JSON.stringify(closedEarly)}`);
    const long = await client.next<CallToolResult>(isResult('long'), 6000);
    assert.deepEqual(long, { op: 'call_tool_res', request_id: 'long', ok: true, outputs: [{ type: 'text', text: 'long one' }] });
    const who = await callJson(client, 'who-after', 'whoami');
    assert.equal(who.user_id, JAZEEL.id);
    assert.equal(who.session_id, ack.session_id);
    assert.equal(who.token_expires_at, expOf(tokenB));
    assert.equal(await statusOf(ack.session_id), 'connected');
    assert.equal(closedEarly, null);
  });

  // ------------------------------------------------------------------ 6

  it('6. expiry without re-auth -> close 4004, row expired', async function () {
    const token = await mint({ user: MICHELLE, expiresInSec: 2 });
    const { client, ack } = await helloOk(main.url, token, 'sb-expiry');
    const closed = await within(client.closed, 5000, 'close on expiry');
    assert.equal(closed.code, 4004);
    assert.ok(Date.now() >= expOf(token) * 1000 - 50, 'not closed before exp');
    await waitStatus(ack.session_id, 'expired');
  });

  // ------------------------------------------------------------------ 7

  it("7. re-auth with another user's token -> user_mismatch; an expired token -> token_expired; the connection stays", async function () {
    const { client, ack } = await helloOk(main.url, await mint({ user: JAZEEL }), 'sb-mismatch');
    client.send({ op: 'auth', request_id: 'as-michelle', token: await mint({ user: MICHELLE }) });
    const mismatch = await client.next((f) => f.op === 'auth_ack' && f.request_id === 'as-michelle');
    assert.equal(mismatch.op === 'auth_ack' && !mismatch.ok && mismatch.error.code, 'user_mismatch');
    const who = await callJson(client, 'who-1', 'whoami');
    assert.equal(who.user_id, JAZEEL.id);
    assert.equal(who.email, JAZEEL.email);
    assert.equal(who.session_id, ack.session_id);

    client.send({ op: 'auth', request_id: 'expired', token: await mint({ user: JAZEEL, expiresInSec: -120, claims: { iat: nowSec() - 3720 } }) });
    const expired = await client.next((f) => f.op === 'auth_ack' && f.request_id === 'expired');
    assert.equal(expired.op === 'auth_ack' && !expired.ok && expired.error.code, 'token_expired');
    client.send({ op: 'ping', request_id: 'still-there' });
    await client.next((f) => f.op === 'pong' && f.request_id === 'still-there');
    assert.equal((await callJson(client, 'who-2', 'whoami')).user_id, JAZEEL.id);
    assert.equal(client.ws.readyState, client.ws.OPEN);
    assert.equal(await statusOf(ack.session_id), 'connected');
  });

  // ------------------------------------------------------------------ 8

  it("8. isolation: the sessions tool lists only the caller's own sessions and marks the current one", async function () {
    const j1 = await helloOk(main.url, await mint({ user: JAZEEL }), 'iso-j1');
    const j2 = await helloOk(main.url, await mint({ user: JAZEEL }), 'iso-j2');
    const m1 = await helloOk(main.url, await mint({ user: MICHELLE }), 'iso-m1');
    const m2 = await helloOk(main.url, await mint({ user: MICHELLE }), 'iso-m2');
    const allOf = async (user: TestUser) =>
      new Set((await db.query('select session_id from public.mcp_sessions where user_id = $1', [user.id])).map((r) => r.session_id as string));
    const jazeelRows = await allOf(JAZEEL);
    const michelleRows = await allOf(MICHELLE);

    for (const [me, other, mine, theirs, myRows, theirRows] of [
      [j1, j2, JAZEEL, MICHELLE, jazeelRows, michelleRows],
      [m1, m2, MICHELLE, JAZEEL, michelleRows, jazeelRows],
    ] as const) {
      const list: any[] = await callJson(me.client, `sessions-${mine.email}`, 'sessions');
      const ids = list.map((s) => s.session_id);
      assert.ok(ids.includes(me.ack.session_id) && ids.includes(other.ack.session_id), `${mine.email} sees both own connections`);
      for (const id of ids) {
        assert.ok(myRows.has(id), `${mine.email} sees a session that is not theirs: ${id}`);
        assert.ok(!theirRows.has(id), `${mine.email} sees ${theirs.email}'s session ${id}`);
      }
      assert.deepEqual(list.filter((s) => s.current).map((s) => s.session_id), [me.ack.session_id]);
      assert.equal(list.find((s) => s.session_id === other.ack.session_id).connection_status, 'connected');
      assert.ok(!JSON.stringify(list).includes(theirs.id) && !JSON.stringify(list).includes(theirs.email));
    }
    assert.ok(michelleRows.has(m1.ack.session_id) && jazeelRows.has(j1.ack.session_id));
  });

  // ------------------------------------------------------------------ 9

  it('9. idle timeout: MCP_SESSION_TIMEOUT=1 -> close 4005 after ~1 s without frames, row expired', async function () {
    const d = await startSupabaseDaemon('idle', { MCP_SESSION_TIMEOUT: '1' });
    const { client, ack } = await helloOk(d.url, await mint(), 'sb-idle');
    const started = Date.now();
    const closed = await within(client.closed, 5000, 'idle close');
    assert.equal(closed.code, 4005);
    const after = Date.now() - started;
    assert.ok(after >= 700 && after < 4000, `closed after ${after} ms`);
    await waitStatus(ack.session_id, 'expired');
  });

  // ------------------------------------------------------------------ 10

  it("10. crash-restart: kill -9 leaves rows connected; a restart with the same EXAI_DAEMON_ID disconnects them, not another daemon's", async function () {
    const [crash, other] = await Promise.all([startSupabaseDaemon('crash-test'), startSupabaseDaemon('crash-other')]);
    const c1 = await helloOk(crash.url, await mint({ user: JAZEEL }), 'crash-1');
    const c2 = await helloOk(crash.url, await mint({ user: MICHELLE }), 'crash-2');
    const o1 = await helloOk(other.url, await mint({ user: JAZEEL }), 'crash-other-1');

    await within(crash.kill9(), 5000, 'kill -9');
    await within(c1.client.closed, 5000, 'client sees the crash');
    await sleep(200);
    assert.equal(await statusOf(c1.ack.session_id), 'connected');
    assert.equal(await statusOf(c2.ack.session_id), 'connected');

    const restarted = await startSupabaseDaemon('crash-test');
    // Recovery runs before the daemon listens; allow a short poll anyway.
    await waitStatus(c1.ack.session_id, 'disconnected');
    await waitStatus(c2.ack.session_id, 'disconnected');
    const left = await db.query("select session_id from public.mcp_sessions where metadata->>'daemon_id' = 'crash-test' and connection_status = 'connected'");
    assert.deepEqual(left, [], 'no row of crash-test left connected');
    assert.equal(await statusOf(o1.ack.session_id), 'connected', "the other daemon's row is untouched");
    o1.client.send({ op: 'ping', request_id: 'other-alive' });
    await o1.client.next((f) => f.op === 'pong' && f.request_id === 'other-alive');
    const recoveredLine = restarted.logLines().find((l) => /previous instance/.test(l.msg));
    assert.equal(recoveredLine?.count, 2, 'the restart logged how many rows it recovered');
  });

  // ------------------------------------------------------------------ 11

  it('11. SIGTERM: shutdown frame, then close 1001, exit code 0, row disconnected', async function () {
    const d = await startSupabaseDaemon('sigterm');
    const { client, ack } = await helloOk(d.url, await mint(), 'sb-sigterm');
    const exit = d.stop();
    const closed = await within(client.closed, 12000, 'close on SIGTERM');
    assert.equal(closed.code, 1001);
    const shutdownAt = client.frames.findIndex((f) => f.op === 'shutdown');
    assert.ok(shutdownAt >= 0, `a shutdown frame: ${JSON.stringify(client.frames)}`);
    assert.equal(shutdownAt, client.frames.length - 1, 'shutdown is the last frame before the close');
    assert.equal(await within(exit, 12000, 'exit'), 0);
    assert.equal(await statusOf(ack.session_id), 'disconnected');
  });

  // ------------------------------------------------------------------ 12

  it('12. GET /health counts connections and users, and shows no email or user id', async function () {
    const d = await startSupabaseDaemon('health');
    await helloOk(d.url, await mint({ user: JAZEEL }), 'health-j1');
    await helloOk(d.url, await mint({ user: JAZEEL }), 'health-j2');
    await helloOk(d.url, await mint({ user: MICHELLE }), 'health-m1');
    const { status, text, body } = await getJson(d.port, '/health');
    assert.equal(status, 200);
    assert.equal(body.mode, 'supabase');
    assert.equal(body.status, 'ok');
    assert.equal(body.connections, 3);
    assert.equal(body.users, 2);
    for (const secret of [JAZEEL.id, JAZEEL.email, MICHELLE.id, MICHELLE.email, '@']) assert.ok(!text.includes(secret), `health shows ${secret}`);
  });

  // ------------------------------------------------------------------ 13

  it('13. logs: lines tagged with instance and session; no access token and no database password', async function () {
    const lines = main.logLines();
    assert.ok(lines.length > 10, `log lines: ${lines.length}`);
    const tagged = lines.filter((l) => typeof l.instance === 'string' && typeof l.session === 'string');
    assert.ok(tagged.length > 0, 'some lines carry instance and session');
    assert.ok(tagged.some((l) => l.instance === 'sb-first' && l.msg === 'connected'), 'the connect of test 1 is tagged');
    assert.ok(tagged.some((l) => l.instance === 'sb-reauth' && l.msg === 're-authenticated'), 'the re-auth of test 5 is tagged');
    assert.ok(tagged.some((l) => l.instance === 'refused-token_invalid' && l.msg === 'token refused'), 'the refusals of test 2 are tagged');

    const text = main.logs();
    assert.ok(minted.length > 20);
    for (const token of minted) {
      const signature = token.split('.')[2];
      assert.ok(!text.includes(token), 'a token in the log');
      if (signature) assert.ok(!text.includes(signature), 'a token signature in the log');
    }
    assert.ok(!text.includes(DB_PASSWORD), 'the database password in the log');
  });

  // ------------------------------------------------------------------ 14

  it("14. liveness: a connected row not refreshed for 10 min does not count toward the limit and reads 'stale'", async function () {
    const d = await startSupabaseDaemon('liveness', { MCP_MAX_CONNECTIONS_PER_USER: '1' });
    const first = await helloOk(d.url, await mint({ user: JAZEEL }), 'live-1');
    const refused = await hello(d.url, await mint({ user: JAZEEL }), 'live-refused');
    assert.equal((refused.ack as FailAck).ok, false, 'the limit of 1 applies while the row is fresh');
    assert.equal((await within(refused.client.closed, 5000, 'close')).code, 4008);

    await db.query("update public.mcp_sessions set last_active = now() - interval '10 minutes' where session_id = $1", [first.ack.session_id]);
    const second = await helloOk(d.url, await mint({ user: JAZEEL }), 'live-2');
    const list: any[] = await callJson(second.client, 'live-sessions', 'sessions');
    const byId = new Map(list.map((s) => [s.session_id, s]));
    assert.equal(byId.get(first.ack.session_id)?.connection_status, 'stale');
    assert.equal(byId.get(second.ack.session_id)?.connection_status, 'connected');
    assert.equal(byId.get(second.ack.session_id)?.current, true);
    assert.equal((await row(first.ack.session_id)).connection_status, 'connected', 'stored status unchanged');
  });

  // ------------------------------------------------------------------ 15 (bug found while writing this file)

  it('15. a client that leaves while its session is being claimed leaves no row connected', async function () {
    // Hold the per-user claim lock (the one mcp_claim_session takes) so the daemon's claim waits.
    const locker = new Client({ connectionString: db.url });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query("select pg_advisory_xact_lock(hashtextextended('mcp_sessions:' || $1::text, 0))", [JAZEEL.id]);
      const client = await connect(main.url);
      clients.push(client);
      client.send({ op: 'hello', protocol: 2, token: await mint({ user: JAZEEL }), client: { instance: 'leave-during-claim' } });
      const waiting = async () =>
        Number(
          (
            await db.query(
              `select count(*)::int as n from pg_locks
                where locktype = 'advisory' and not granted
                  and database = (select oid from pg_database where datname = current_database())`,
            )
          )[0].n,
        );
      await waitFor(
        async () => (await waiting()) > 0,
        3000,
        'daemon waits on the claim lock',
      );
      client.ws.terminate();
      await within(client.closed, 3000, 'client closed');
      await sleep(300); // the daemon sees the socket close while the claim is still blocked
      await locker.query('commit');
    } finally {
      await locker.query('rollback').catch(() => {});
      await locker.end();
    }
    const inserted = await waitFor(
      async () => (await db.query("select session_id from public.mcp_sessions where metadata->>'instance' = 'leave-during-claim'"))[0],
      3000,
      'the claim completes',
    );
    await waitStatus(inserted.session_id, 'disconnected');
  });
});
