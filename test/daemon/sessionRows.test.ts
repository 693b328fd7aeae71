// Both transports hold their `mcp_sessions` rows through one lease (server/sessions/lease.ts): a
// row ended outside the daemon ends the WebSocket connection (4006) and the MCP session (404) at
// their next heartbeat; an MCP session that ends while the Data API is unreachable gets its ending
// written once the API is back (the daemon-wide PendingEndings queue, as WebSocket endings do), is
// dropped, never sent with a dead token, once its user's token expires meanwhile, and its failing
// heartbeats are logged once, not once a beat. The real daemon behind a proxy that can cut /rest/v1,
// the PostgREST stand-in (test/postgrest) on a fresh test database. Every wait is bounded.
import assert from 'node:assert/strict';
import type { HelloAck } from '../../server/protocol';
import { helloClient, type TestClient } from '../helpers/client';
import type { RunningDaemon } from '../helpers/daemon';
import { mcpConnect, rawMcp, type McpTestClient } from '../helpers/mcp';
import type { TestDatabase } from '../helpers/pg';
import { startDataApiCutStack, type DataApiCutStack, type RestCut } from '../helpers/restCut';
import { JAZEEL, MICHELLE, type TestUser } from '../helpers/tokens';
import { sleep, waitFor, within } from '../helpers/wait';

type OkAck = Extract<HelloAck, { ok: true }>;

const LEGACY_SECRET = 'legacy-project-jwt-secret-for-the-session-row-tests';

describe('session rows: one lease for WebSocket connections and MCP sessions (Data API behind a cut)', function () {
  this.timeout(40_000);
  let stack: DataApiCutStack;
  let db: TestDatabase;
  /** In front of the gateway: while `cut.restDown`, every /rest/v1 request has its socket destroyed. */
  let cut: RestCut;
  let daemon: RunningDaemon;
  const clients: TestClient[] = [];
  const mcpClients: McpTestClient[] = [];

  const mint = (user: TestUser, expiresInSec?: number) => stack.mint(user, expiresInSec);
  const helloOk = async (token: string, instance: string) => {
    const { client, ack } = await helloClient(daemon.url, token, instance);
    clients.push(client);
    assert.ok(ack.op === 'hello_ack' && ack.ok, `hello refused: ${JSON.stringify(ack)}`);
    return { client, sessionId: (ack as OkAck).session_id };
  };
  const mcpOpen = async (token: string) => {
    const c = await mcpConnect(daemon.port, token, 'session-rows');
    mcpClients.push(c);
    return c;
  };
  /** A ping on an MCP session, raw: the HTTP status (404 once the daemon no longer holds it). */
  const mcpPing = async (sessionId: string, token: string) =>
    (await rawMcp(daemon.port, {
      body: { jsonrpc: '2.0', id: 'p', method: 'ping' },
      headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
    })).status;
  const statusOf = async (sessionId: string) =>
    (await db.query('select connection_status from public.mcp_sessions where session_id = $1', [sessionId]))[0]?.connection_status as string | undefined;
  const logLines = () => daemon.logLines();

  before(async function () {
    this.timeout(60_000);
    stack = await startDataApiCutStack({ legacySecret: LEGACY_SECRET, daemonId: 'session-rows', env: { MCP_SESSION_TIMEOUT: undefined, MCP_MAX_CONNECTIONS_PER_USER: undefined } });
    ({ db, cut, daemon } = stack);
  });

  afterEach(async () => {
    if (cut) cut.restDown = false;
    await Promise.all(mcpClients.splice(0).map((c) => c.close()));
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  after(async function () {
    this.timeout(30_000);
    await stack?.stop();
  });

  it('a row ended outside the daemon ends its WebSocket (4006) and its MCP session (404) at the next heartbeat', async function () {
    const wsToken = await mint(JAZEEL);
    const mcpToken = await mint(MICHELLE);
    const { client, sessionId: wsSession } = await helloOk(wsToken, 'ended-elsewhere');
    const mcp = await mcpOpen(mcpToken);
    const bystander = await helloOk(await mint(JAZEEL), 'bystander');
    assert.equal(await mcpPing(mcp.sessionId, mcpToken), 200);

    await db.query("update public.mcp_sessions set connection_status = 'disconnected' where session_id = any($1)", [[wsSession, mcp.sessionId]]);
    const closed = await within(client.closed, 8000, 'the WebSocket closed');
    assert.equal(closed.code, 4006, JSON.stringify(closed));
    assert.equal(closed.reason, 'session_ended');
    await waitFor(async () => (await mcpPing(mcp.sessionId, mcpToken)) === 404, 8000, 'the MCP session ended', { everyMs: 100 });
    assert.equal(await statusOf(wsSession), 'disconnected');
    assert.equal(await statusOf(mcp.sessionId), 'disconnected');
    // Only the ended rows: another window of the same user goes on.
    assert.equal(bystander.client.ws.readyState, bystander.client.ws.OPEN);
    assert.equal(await statusOf(bystander.sessionId), 'connected');
  });

  it('an MCP session ended during the cut has its row ended once the API is back; its heartbeat failures are logged once', async function () {
    const leaving = await mcpOpen(await mint(JAZEEL));
    // Another MCP session stays open: its heartbeat notices when the API is back.
    const staying = await mcpOpen(await mint(MICHELLE));
    const cutAt = Date.now();
    cut.restDown = true;
    await within(leaving.transport.terminateSession(), 8000, 'DELETE answered during the cut (the ending is queued, not awaited)');
    await sleep(3500); // several heartbeats fail; longer than the 3 quick retries MCP endings once gave up after
    assert.equal(await statusOf(leaving.sessionId), 'connected');
    const restoredAt = Date.now();
    cut.restDown = false;
    await waitFor(async () => (await statusOf(leaving.sessionId)) === 'disconnected', 20_000, 'the row ended after the cut', { everyMs: 100 });
    const failures = logLines().filter((l) => /^heartbeat could not update/.test(l.msg) && l.session === staying.sessionId
      && Date.parse(l.t) >= cutAt && Date.parse(l.t) <= restoredAt);
    assert.equal(failures.length, 1, `heartbeat failure lines of the staying session: ${failures.length}`);
    assert.equal(await statusOf(staying.sessionId), 'connected');
  });

  it("an MCP session ended during the cut whose token expires meanwhile: its ending is dropped, never sent with the dead token", async function () {
    const shortLived = await mint(JAZEEL, 4);
    const leaving = await mcpOpen(shortLived);
    await mcpOpen(await mint(MICHELLE));
    cut.restDown = true;
    await within(leaving.transport.terminateSession(), 8000, 'DELETE answered during the cut');
    const exp = JSON.parse(Buffer.from(shortLived.split('.')[1], 'base64url').toString()).exp as number;
    await waitFor(() => Date.now() > exp * 1000 + 500, 10_000, 'the token to expire', { everyMs: 100 });
    const restoredAt = Date.now();
    cut.restDown = false;
    await waitFor(
      () => logLines().find((l) => /token expired while the session store was unavailable/.test(l.msg) && l.session === leaving.sessionId),
      20_000,
      'a log line saying the ending was dropped',
      { everyMs: 100 },
    );
    const sentAfter = stack.gateway.requests().filter((r) => r.at >= restoredAt && r.fn === 'mcp_close_session' && r.bearer === shortLived);
    assert.deepEqual(sentAfter, [], 'no request with the expired token');
    assert.equal(await statusOf(leaving.sessionId), 'connected', 'left for the liveness bound');
  });
});
