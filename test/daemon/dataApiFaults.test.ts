// The Data API (SUPABASE_URL + SUPABASE_ANON_KEY) going away while sessions end: the real daemon
// behind a proxy that can cut /rest/v1 (the network between the daemon and Supabase going down),
// the PostgREST stand-in (test/postgrest) on a fresh test database. A session that ends during the
// cut is ended once the API is back; one whose user's token expires meanwhile can no longer be
// written (the Data API writes with the user's own token) and is dropped, never sent with a dead
// token: its row reads stale after the liveness bound. Every wait is bounded.
import assert from 'node:assert/strict';
import type { HelloAck } from '../../server/protocol';
import { helloClient, type TestClient } from '../helpers/client';
import type { RunningDaemon } from '../helpers/daemon';
import type { TestDatabase } from '../helpers/pg';
import { startDataApiCutStack, type DataApiCutStack, type RestCut } from '../helpers/restCut';
import { JAZEEL, MICHELLE, type TestUser } from '../helpers/tokens';
import { sleep, waitFor } from '../helpers/wait';

type OkAck = Extract<HelloAck, { ok: true }>;

const LEGACY_SECRET = 'legacy-project-jwt-secret-for-the-data-api-fault-tests';

describe('Data API outages while sessions end (SUPABASE_URL + SUPABASE_ANON_KEY)', function () {
  this.timeout(40_000);
  let stack: DataApiCutStack;
  let db: TestDatabase;
  /** In front of the gateway: while `cut.restDown`, every /rest/v1 request has its socket destroyed. */
  let cut: RestCut;
  let daemon: RunningDaemon;
  const clients: TestClient[] = [];

  const mint = (user: TestUser, expiresInSec?: number) => stack.mint(user, expiresInSec);
  const helloOk = async (token: string, instance: string) => {
    const { client, ack } = await helloClient(daemon.url, token, instance);
    clients.push(client);
    assert.ok(ack.op === 'hello_ack' && ack.ok, `hello refused: ${JSON.stringify(ack)}`);
    return { client, sessionId: (ack as OkAck).session_id };
  };
  const statusOf = async (sessionId: string) =>
    (await db.query('select connection_status from public.mcp_sessions where session_id = $1', [sessionId]))[0]?.connection_status as string | undefined;
  const logLines = () => daemon.logLines();

  before(async function () {
    this.timeout(60_000);
    stack = await startDataApiCutStack({ legacySecret: LEGACY_SECRET, daemonId: 'data-api-faults' });
    ({ db, cut, daemon } = stack);
  });

  afterEach(async () => {
    if (cut) cut.restDown = false;
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  after(async function () {
    this.timeout(30_000);
    await stack?.stop();
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
    const sentAfter = stack.gateway.requests().filter((r) => r.at >= restoredAt && r.fn === 'mcp_close_session' && r.bearer === shortLived);
    assert.deepEqual(sentAfter, [], 'no request with the expired token');
    assert.equal(await statusOf(sessionId), 'connected', 'left for the liveness bound');
    assert.equal(daemon.proc.exitCode, null);
  });
});
