// The Data API (SUPABASE_URL + SUPABASE_ANON_KEY) going away while sessions end: the real daemon
// behind a proxy that can cut /rest/v1 (the network between the daemon and Supabase going down),
// the PostgREST stand-in (test/postgrest) on a fresh test database. A session that ends during the
// cut is ended once the API is back; one whose user's token expires meanwhile can no longer be
// written (the Data API writes with the user's own token) and is dropped, never sent with a dead
// token: its row reads stale after the liveness bound. Every wait is bounded.
import assert from 'node:assert/strict';
import type { HelloAck } from '../../server/protocol';
import { helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { startRestCut, type RestCut } from '../helpers/restCut';
import { JAZEEL, JWKS_PATH, MICHELLE, mintAccessToken, mintAnonKey, startJwksServer, type JwksServer, type TestUser } from '../helpers/tokens';
import { sleep, waitFor, within } from '../helpers/wait';
import { startPostgrest, type Postgrest } from '../postgrest/server';

type OkAck = Extract<HelloAck, { ok: true }>;

const LEGACY_SECRET = 'legacy-project-jwt-secret-for-the-data-api-fault-tests';

describe('Data API outages while sessions end (SUPABASE_URL + SUPABASE_ANON_KEY)', function () {
  this.timeout(40_000);
  let db: TestDatabase;
  let jwks: JwksServer;
  let gateway: Postgrest;
  /** In front of the gateway: while `cut.restDown`, every /rest/v1 request has its socket destroyed. */
  let cut: RestCut;
  let daemon: RunningDaemon;
  const clients: TestClient[] = [];

  const mint = (user: TestUser, expiresInSec = 3600) =>
    mintAccessToken({ key: jwks.keys.es256, issuer: `${cut.url}/auth/v1`, user, expiresInSec });
  const helloOk = async (token: string, instance: string) => {
    const { client, ack } = await helloClient(daemon.url, token, instance);
    clients.push(client);
    assert.ok(ack.op === 'hello_ack' && ack.ok, `hello refused: ${JSON.stringify(ack)}`);
    return { client, sessionId: (ack as OkAck).session_id };
  };
  const statusOf = async (sessionId: string) =>
    (await db.query('select connection_status from public.mcp_sessions where session_id = $1', [sessionId]))[0]?.connection_status as string | undefined;
  const logLines = () => daemon.logs().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);

  before(async function () {
    this.timeout(60_000);
    let anonKey: string;
    [db, jwks, anonKey] = await Promise.all([createTestDatabase(), startJwksServer(), mintAnonKey(LEGACY_SECRET)]);
    for (const u of [JAZEEL, MICHELLE]) await db.addUser(u.id, u.email);
    // Clock skew 0 (PostgREST allows 30 s): a token used after its exp is refused at once.
    gateway = await startPostgrest({
      databaseUrl: db.url, jwksUrl: `${jwks.url}${JWKS_PATH}`, jwtSecret: LEGACY_SECRET, anonKey, authUpstream: jwks.url, clockSkewSec: 0,
    });
    cut = await startRestCut(() => gateway.url);
    daemon = await startDaemon({
      env: {
        MCP_ENABLE_MULTI_USER: 'true',
        SUPABASE_URL: cut.url,
        SUPABASE_ANON_KEY: anonKey,
        EXAI_DAEMON_ID: 'data-api-faults',
        EXAI_HEARTBEAT_SECONDS: '1',
        DATABASE_URL: undefined,
        SUPABASE_JWT_SECRET: undefined,
      },
    });
  });

  afterEach(async () => {
    if (cut) cut.restDown = false;
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  after(async function () {
    this.timeout(30_000);
    try {
      if (daemon) await within(daemon.stop(), 15_000, 'daemon stop').catch(() => daemon.kill9());
      await cut?.close();
      await gateway?.close();
      await jwks?.close();
    } finally {
      await db?.drop();
    }
  });

  it('a window closed while the Data API is unreachable has its row ended once the API is back (the daemon does not give up)', async function () {
    const { client, sessionId } = await helloOk(await mint(JAZEEL), 'closed-during-cut');
    // Another window stays open: its heartbeat notices when the API is back.
    await helloOk(await mint(MICHELLE), 'stays-open');
    cut.restDown = true;
    await client.close();
    await sleep(3000); // longer than the 3 quick retries the daemon used to give up after
    assert.equal(await statusOf(sessionId), 'connected');
    cut.restDown = false;
    await waitFor(async () => (await statusOf(sessionId)) === 'disconnected', 20_000, 'the row ended after the cut', { everyMs: 100 });
    assert.equal(daemon.proc.exitCode, null, 'the daemon is still running');
  });

  it("a window whose token expires during the cut: its ending is dropped, never sent with the dead token; the row reads stale later", async function () {
    const shortLived = await mint(JAZEEL, 4);
    const { client, sessionId } = await helloOk(shortLived, 'token-expires-during-cut');
    await helloOk(await mint(MICHELLE), 'stays-open-2');
    cut.restDown = true;
    await client.close();
    const exp = JSON.parse(Buffer.from(shortLived.split('.')[1], 'base64url').toString()).exp as number;
    await waitFor(() => Date.now() > exp * 1000 + 500, 10_000, 'the token to expire', { everyMs: 100 });
    const restoredAt = Date.now();
    cut.restDown = false;
    const dropped = await waitFor(
      () => logLines().find((l) => /token expired while the session store was unavailable/.test(l.msg) && l.session === sessionId),
      20_000,
      'a log line saying the ending was dropped',
      { everyMs: 100 },
    );
    assert.ok(dropped);
    const sentAfter = gateway.requests().filter((r) => r.at >= restoredAt && r.fn === 'mcp_close_session' && r.bearer === shortLived);
    assert.deepEqual(sentAfter, [], 'no request with the expired token');
    assert.equal(await statusOf(sessionId), 'connected', 'left for the liveness bound');
    assert.equal(daemon.proc.exitCode, null);
  });
});
