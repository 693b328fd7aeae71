// The idle timeout (MCP_SESSION_TIMEOUT) counts what a person or agent does — call_tool, list_tools,
// cancel of a running call — and not keepalive traffic: the extension pings every 30 s (op "ping",
// and ws answers the daemon's WebSocket pings), and re-authenticates by itself before its token
// expires; neither may keep an unused window connected forever. Local and supabase mode, with
// clients that ping the way the extension does (only faster, so the test stays short).
import assert from 'node:assert/strict';
import { helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { JAZEEL, mintAccessToken, startJwksServer, type JwksServer } from '../helpers/tokens';
import { sleep, within } from '../helpers/wait';
import { readDiscovery } from '../../server/auth/localMode';
import type { HelloAck } from '../../server/protocol';

const TICK_MS = 200;

/** Sends `frame(n)` every TICK_MS until stopped (or the socket closes). */
function every(client: TestClient, what: (n: number) => void): () => void {
  let n = 0;
  const timer = setInterval(() => {
    if (client.ws.readyState === client.ws.OPEN) what(n++);
  }, TICK_MS);
  return () => clearInterval(timer);
}

/** What the extension does while a window sits unused: op "ping" and WebSocket pings. */
const pingLikeTheExtension = (client: TestClient) =>
  every(client, (n) => {
    client.send({ op: 'ping', request_id: `ping-${n}` });
    client.ws.ping();
  });

/** Asserts the client stays open for `ms` while `traffic` runs, then is closed with 4005 within `closeMs` after it stops. */
async function staysOpenWhile(client: TestClient, traffic: () => () => void, ms = 2500, closeMs = 5000): Promise<void> {
  const stop = traffic();
  try {
    await sleep(ms);
    assert.equal(client.ws.readyState, client.ws.OPEN, `closed during activity: ${JSON.stringify(client.frames.slice(-3))}`);
  } finally {
    stop();
  }
  assert.equal((await within(client.closed, closeMs, 'idle close after the activity stopped')).code, 4005);
}

/** Asserts the client is closed with 4005 although `traffic` keeps running. */
async function closedDespite(client: TestClient, traffic: () => () => void, closeMs = 6000): Promise<void> {
  const stop = traffic();
  try {
    assert.equal((await within(client.closed, closeMs, 'idle close despite keepalive traffic')).code, 4005);
  } finally {
    stop();
  }
}

describe('idle timeout counts work, not keepalives', function () {
  this.timeout(30000);
  const clients: TestClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  describe('local mode (MCP_SESSION_TIMEOUT=1)', function () {
    let daemon: RunningDaemon;
    let secret: string;
    const open = async (instance: string) => {
      const { client, ack } = await helloClient(daemon.url, secret, instance);
      clients.push(client);
      assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
      return client;
    };

    before(async () => {
      daemon = await startDaemon({ env: { MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, DATABASE_URL: undefined, MCP_SESSION_TIMEOUT: '1' } });
      secret = readDiscovery(daemon.stateDir)!.secret!;
    });
    after(async () => {
      assert.equal(await within(daemon.stop(), 15000, 'daemon stop'), 0);
    });

    it('closes a window that only pings like the extension (op ping + WebSocket pings) with 4005', async function () {
      const client = await open('vscode-pinging');
      await closedDespite(client, () => pingLikeTheExtension(client));
      assert.ok(client.frames.filter((f) => f.op === 'pong').length >= 2, 'its pings were answered until then');
    });

    it('re-authentication (the extension refreshes its token by itself) does not count as activity', async function () {
      const client = await open('vscode-reauth');
      await closedDespite(client, () => every(client, (n) => client.send({ op: 'auth', request_id: `a${n}`, token: secret })));
      assert.ok(client.frames.some((f) => f.op === 'auth_ack' && f.ok), 'the re-auths were answered');
    });

    it('a cancel of no running call does not count as activity', async function () {
      const client = await open('vscode-cancel-nothing');
      await closedDespite(client, () => every(client, (n) => client.send({ op: 'cancel', request_id: `nothing-${n}` })));
    });

    it('call_tool counts: a window calling a tool every 200 ms (and pinging) stays open, then times out', async function () {
      const client = await open('vscode-calling');
      await staysOpenWhile(client, () => {
        const stopPings = pingLikeTheExtension(client);
        const stopCalls = every(client, (n) => client.send({ op: 'call_tool', request_id: `c${n}`, name: 'version', arguments: {} }));
        return () => { stopPings(); stopCalls(); };
      });
    });

    it('list_tools counts as activity', async function () {
      const client = await open('vscode-listing');
      await staysOpenWhile(client, () => every(client, (n) => client.send({ op: 'list_tools', request_id: `l${n}` })));
    });
  });

  describe('supabase mode (MCP_SESSION_TIMEOUT=1)', function () {
    let db: TestDatabase;
    let jwks: JwksServer;
    let daemon: RunningDaemon;
    const mint = () => mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, user: JAZEEL });
    const open = async (instance: string) => {
      const { client, ack } = await helloClient(daemon.url, await mint(), instance);
      clients.push(client);
      assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
      return { client, sessionId: (ack as Extract<HelloAck, { ok: true }>).session_id };
    };
    const statusOf = async (sessionId: string) =>
      (await db.query('select connection_status from public.mcp_sessions where session_id = $1', [sessionId]))[0]?.connection_status as string | undefined;
    const waitStatus = async (sessionId: string, status: string) => {
      const deadline = Date.now() + 5000;
      while ((await statusOf(sessionId)) !== status) {
        if (Date.now() > deadline) assert.fail(`row ${sessionId} is ${await statusOf(sessionId)}, not ${status}`);
        await sleep(50);
      }
    };

    before(async function () {
      this.timeout(30000);
      [db, jwks] = await Promise.all([createTestDatabase(), startJwksServer()]);
      await db.addUser(JAZEEL.id, JAZEEL.email);
      daemon = await startDaemon({
        env: {
          MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: jwks.url, DATABASE_URL: db.url, SUPABASE_JWT_SECRET: undefined,
          EXAI_DAEMON_ID: 'idle-daemon', MCP_SESSION_TIMEOUT: '1', MCP_MAX_CONNECTIONS_PER_USER: '20',
        },
      });
    });
    after(async function () {
      this.timeout(20000);
      try {
        if (daemon) assert.equal(await within(daemon.stop(), 15000, 'daemon stop'), 0);
      } finally {
        if (daemon) await daemon.kill9();
        await jwks?.close();
        await db?.drop();
      }
    });

    it('closes a window that only pings like the extension with 4005 and marks its row expired', async function () {
      const { client, sessionId } = await open('sb-pinging');
      await closedDespite(client, () => pingLikeTheExtension(client));
      await waitStatus(sessionId, 'expired');
    });

    it('re-authentication with fresh tokens does not count as activity', async function () {
      const { client, sessionId } = await open('sb-reauth');
      const tokens = await Promise.all(Array.from({ length: 30 }, () => mint()));
      await closedDespite(client, () => every(client, (n) => client.send({ op: 'auth', request_id: `a${n}`, token: tokens[n % tokens.length] })));
      assert.ok(client.frames.some((f) => f.op === 'auth_ack' && f.ok), 'the re-auths were answered');
      await waitStatus(sessionId, 'expired');
    });

    it('a window making calls (and pinging) stays connected, then times out once the calls stop', async function () {
      const { client, sessionId } = await open('sb-calling');
      await staysOpenWhile(client, () => {
        const stopPings = pingLikeTheExtension(client);
        const stopCalls = every(client, (n) => client.send({ op: 'call_tool', request_id: `c${n}`, name: 'whoami', arguments: {} }));
        return () => { stopPings(); stopCalls(); };
      });
      await waitStatus(sessionId, 'expired');
    });
  });
});
