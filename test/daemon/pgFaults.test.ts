// PostgreSQL going away under load, end to end: the real daemon (dist/server.js) in supabase mode on
// a PostgreSQL 15 cluster this file owns (test/helpers/pgCluster.ts), 50 clients calling tools.
// The cluster is restarted (every backend terminated with 57P01), stopped, and started again:
// the daemon must stay up, refuse what needs the database with store_unavailable while it is
// down, write the endings of sessions that ended meanwhile once it is back, and serve again
// without a restart. The tests run in order and share the daemon and the clients. Every wait is
// bounded; nothing depends on how fast the machine is.
import assert from 'node:assert/strict';
import { helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { startPgCluster, type PgCluster } from '../helpers/pgCluster';
import { JAZEEL, MICHELLE, mintAccessToken, startJwksServer, type JwksServer, type TestUser } from '../helpers/tokens';
import { sleep, waitFor, within } from '../helpers/wait';
import type { CallToolResult, HelloAck, ServerFrame } from '../../server/protocol';

type FailAck = Extract<HelloAck, { ok: false }>;

/** Each user is at the per-user limit: a row left `connected` for a gone client means a 4008 for the next hello. */
const PER_USER = 25;
const USERS = [JAZEEL, MICHELLE];
/** Bound on each client's calls in one load run. */
const MAX_CALLS_PER_CLIENT = 400;
/** Short, so that calls are always in flight when PostgreSQL terminates its backends. */
const PAUSE_AFTER_OK_MS = 10;
/** Longer after a failure (they come fast while the database is down), so the bound above lasts. */
const PAUSE_AFTER_FAILURE_MS = 100;

interface LiveClient {
  client: TestClient;
  sessionId: string;
  user: TestUser;
}

interface Outcome {
  at: number;
  tool: string;
  code: string | null; // null: ok
}

describe('PostgreSQL restarts and outages under load (a cluster this file owns)', function () {
  this.timeout(60_000);

  let cluster: PgCluster;
  let jwks: JwksServer;
  let daemon: RunningDaemon;
  const tokens = new Map<string, string>();
  const live: LiveClient[] = [];
  const gone: LiveClient[] = [];
  let seq = 0;

  const alive = () => daemon.proc.exitCode === null && daemon.proc.signalCode === null;
  const assertAlive = () => assert.ok(alive(), `the daemon exited (${daemon.proc.exitCode ?? daemon.proc.signalCode}): ${daemon.stderr()}`);
  /** waitFor, failing at once when the daemon has died. */
  const waitUp = <T>(check: () => Promise<T> | T, ms: number, what: string) => waitFor(check, ms, what, { everyMs: 100, failFast: assertAlive });
  const logLines = () => daemon.logLines();
  const rowsOf = async (ids: string[]) =>
    cluster.query<{ session_id: string; connection_status: string; fresh: boolean }>(
      `select session_id, connection_status, last_active > now() - interval '30 seconds' as fresh
         from public.mcp_sessions where session_id = any($1)`,
      [ids],
    );

  /** One tool call; rejects if the connection closes first (a daemon that died closes every socket). */
  const call = async (client: TestClient, name: string): Promise<CallToolResult> => {
    const id = `call-${++seq}`;
    client.send({ op: 'call_tool', request_id: id, name, arguments: {} });
    return within(
      Promise.race([
        client.next<CallToolResult>((f: ServerFrame) => f.op === 'call_tool_res' && f.request_id === id, 30_000),
        client.closed.then((c) => { throw new Error(`connection closed (${c.code}) during ${name}`); }),
      ]),
      30_000,
      `${name} call`,
    );
  };

  /** Every live client calls `sessions` (needs the store) and `whoami` (does not) in turns until stop(). */
  const startLoad = () => {
    const outcomes: Outcome[] = [];
    let running = true;
    const loops = live.map(async ({ client }, n) => {
      for (let i = 0; running && i < MAX_CALLS_PER_CLIENT; i++) {
        const tool = (i + n) % 2 ? 'whoami' : 'sessions';
        const res = await call(client, tool);
        outcomes.push({ at: Date.now(), tool, code: res.ok ? null : res.error.code });
        await sleep(res.ok ? PAUSE_AFTER_OK_MS : PAUSE_AFTER_FAILURE_MS);
      }
    });
    return {
      outcomes,
      async stop() {
        running = false;
        await within(Promise.all(loops), 40_000, 'the load to stop');
        return outcomes;
      },
    };
  };

  const helloAs = async (user: TestUser, instance: string) => helloClient(daemon.url, tokens.get(user.id)!, instance);

  before(async function () {
    this.timeout(90_000);
    [cluster, jwks] = await Promise.all([startPgCluster(), startJwksServer()]);
    for (const user of USERS) {
      await cluster.addUser(user.id, user.email);
      tokens.set(user.id, await mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, user }));
    }
    daemon = await startDaemon({
      env: {
        MCP_ENABLE_MULTI_USER: 'true',
        SUPABASE_URL: jwks.url,
        SUPABASE_JWT_SECRET: undefined,
        SUPABASE_ANON_KEY: undefined,
        DATABASE_URL: cluster.url,
        EXAI_DAEMON_ID: 'pg-faults',
        EXAI_HEARTBEAT_SECONDS: '1',
        MCP_MAX_CONNECTIONS_PER_USER: String(PER_USER),
        EXAI_DRAIN_SECONDS: '2',
      },
    });
    const hellos = await within(
      Promise.all(USERS.flatMap((user) => Array.from({ length: PER_USER }, (_, i) => helloAs(user, `load-${user.email}-${i}`).then((r) => ({ ...r, user }))))),
      60_000,
      '50 hellos',
    );
    for (const { client, ack, user } of hellos) {
      assert.ok(ack.op === 'hello_ack' && ack.ok, `hello refused: ${JSON.stringify(ack)}`);
      live.push({ client, sessionId: ack.session_id, user });
    }
  });

  after(async function () {
    this.timeout(60_000);
    try {
      await Promise.all([...live, ...gone].map((c) => c.client.close()));
      if (daemon) await within(daemon.stop(), 20_000, 'daemon stop').catch(() => daemon.kill9());
      await jwks?.close();
    } finally {
      await cluster?.destroy();
    }
  });

  it('a restart of PostgreSQL under load (57P01 on every backend): the daemon stays up, every call is answered, service resumes by itself', async function () {
    const load = startLoad();
    await waitUp(() => load.outcomes.filter((o) => o.code === null).length >= 50, 20_000, '50 calls answered before the restart');
    await cluster.restart();
    const restartedAt = Date.now();
    await waitUp(
      () => load.outcomes.filter((o) => o.at > restartedAt && o.tool === 'sessions' && o.code === null).length >= 50,
      30_000,
      '50 sessions calls answered after the restart',
    );
    const outcomes = await load.stop();
    assertAlive();
    const unexpected = outcomes.filter((o) => o.code !== null && o.code !== 'store_unavailable');
    assert.deepEqual(unexpected, [], 'calls fail only with store_unavailable');
    // Every connection is still open, and its own next call that needs the database succeeds.
    for (const c of live) {
      const text = await waitUp(async () => { const r = await call(c.client, 'sessions'); return r.ok ? r.outputs[0].text : ''; }, 15_000, 'a sessions call after the restart');
      assert.ok(JSON.parse(text).some((r: any) => r.current && r.connection_status === 'connected'), text);
    }
    const rows = await rowsOf(live.map((c) => c.sessionId));
    assert.equal(rows.filter((r) => r.connection_status === 'connected').length, live.length);
  });

  let stoppedAt = 0;

  it('PostgreSQL stopped under load: the daemon stays up; hellos get store_unavailable + 1013, the sessions tool store_unavailable, whoami still works', async function () {
    const load = startLoad();
    await waitUp(() => load.outcomes.filter((o) => o.code === null).length >= 20, 20_000, '20 calls answered before the stop');
    await cluster.stop();
    stoppedAt = Date.now();

    const { client, ack } = await helloAs(JAZEEL, 'hello-while-down');
    gone.push({ client, sessionId: '', user: JAZEEL });
    assert.equal(ack.op, 'hello_ack');
    assert.equal((ack as FailAck).ok, false, JSON.stringify(ack));
    assert.equal((ack as FailAck).error.code, 'store_unavailable');
    assert.match((ack as FailAck).error.message, /session database/);
    assert.equal((await within(client.closed, 15_000, 'close')).code, 1013);

    await waitUp(
      () => load.outcomes.some((o) => o.at > stoppedAt && o.tool === 'sessions' && o.code === 'store_unavailable')
        && load.outcomes.some((o) => o.at > stoppedAt && o.tool === 'whoami' && o.code === null),
      20_000,
      'sessions -> store_unavailable and whoami -> ok while the database is down',
    );
    const outcomes = await load.stop();
    assertAlive();
    assert.deepEqual(outcomes.filter((o) => o.code !== null && o.code !== 'store_unavailable'), [], 'calls fail only with store_unavailable');
    assert.deepEqual(outcomes.filter((o) => o.tool === 'whoami' && o.code !== null), [], 'whoami needs no database');

    const res = await call(live[0].client, 'sessions');
    assert.ok(!res.ok && res.error.code === 'store_unavailable', JSON.stringify(res));
    assert.match(res.error.message, /session database/);
  });

  it('sessions that end while it is down end in the database once it is back; heartbeat failures are logged once per connection; the user is not refused with 4008', async function () {
    // 10 of Jazeel's and 5 of Michelle's windows close during the outage.
    const leaving = [...live.filter((c) => c.user === JAZEEL).slice(0, 10), ...live.filter((c) => c.user === MICHELLE).slice(0, 5)];
    for (const c of leaving) live.splice(live.indexOf(c), 1);
    gone.push(...leaving);
    await Promise.all(leaving.map((c) => c.client.close()));
    // Let several heartbeats (1 s apart) fail.
    await sleep(4000);
    assertAlive();

    await cluster.start();
    const startedAt = Date.now();
    await waitUp(
      async () => (await rowsOf(leaving.map((c) => c.sessionId))).every((r) => r.connection_status === 'disconnected'),
      30_000,
      'the rows of the sessions that ended during the outage marked disconnected',
    );
    // The connections that stayed are still live in the database (refreshed since the start).
    await waitUp(
      async () => (await rowsOf(live.map((c) => c.sessionId))).every((r) => r.connection_status === 'connected' && r.fresh),
      15_000,
      'the live rows refreshed by their heartbeats',
    );

    // Heartbeats failed for every live connection, but each logged it once, not once a second.
    const failures = logLines().filter((l) => /^heartbeat could not update/.test(l.msg) && Date.parse(l.t) >= stoppedAt && Date.parse(l.t) <= startedAt);
    assert.ok(failures.length > 0, 'heartbeat failures were logged');
    const perSession = new Map<string, number>();
    for (const l of failures) perSession.set(l.session, (perSession.get(l.session) ?? 0) + 1);
    assert.ok([...perSession.values()].every((n) => n === 1), `heartbeat failure lines per session: ${JSON.stringify([...perSession.values()])}`);

    // Back at the limit, not over it: the freed slots can be used again, and the limit still holds.
    const again = await within(
      Promise.all(leaving.map((c, i) => helloAs(c.user, `after-outage-${i}`).then((r) => ({ ...r, user: c.user })))),
      30_000,
      'hellos after the outage',
    );
    for (const { client, ack, user } of again) {
      if (ack.op === 'hello_ack' && ack.ok) live.push({ client, sessionId: ack.session_id, user });
      else gone.push({ client, sessionId: '', user });
    }
    assert.deepEqual(again.map((r) => (r.ack.op === 'hello_ack' && !r.ack.ok ? r.ack.error.code : 'ok')), leaving.map(() => 'ok'));
    const over = await helloAs(JAZEEL, 'over-the-limit');
    gone.push({ client: over.client, sessionId: '', user: JAZEEL });
    assert.equal((over.ack as FailAck).error?.code, 'too_many_connections', JSON.stringify(over.ack));

    // No `connected` row for a client that is gone.
    const connected = await cluster.query<{ session_id: string }>("select session_id from public.mcp_sessions where connection_status = 'connected'");
    assert.deepEqual(connected.map((r) => r.session_id).sort(), live.map((c) => c.sessionId).sort());
    assertAlive();
  });

  it('a live row that read stale after a long outage is revived by its next heartbeat', async function () {
    const ids = live.map((c) => c.sessionId);
    // As if the heartbeats had failed for longer than the liveness bound.
    await cluster.query("update public.mcp_sessions set last_active = now() - interval '10 minutes' where session_id = any($1)", [ids]);
    await waitUp(async () => (await rowsOf(ids)).every((r) => r.connection_status === 'connected' && r.fresh), 15_000, 'every live row refreshed');
    const res = await call(live[0].client, 'sessions');
    assert.ok(res.ok, JSON.stringify(res));
    const own = JSON.parse(res.outputs[0].text).find((r: any) => r.current);
    assert.equal(own.connection_status, 'connected');
  });

  it('SIGTERM while it is down: the daemon drains, tries to write the endings for a bounded time, logs how many are left, exits 0', async function () {
    await cluster.stop();
    const stopping = Date.now();
    const code = await within(daemon.stop(), 30_000, 'the daemon to exit');
    assert.equal(code, 0, daemon.stderr());
    assert.ok(Date.now() - stopping < 25_000);
    const left = logLines().find((l) => /final session statuses? (were|was) not written/.test(l.msg));
    assert.ok(left, `a log line counting the unwritten endings: ${JSON.stringify(logLines().slice(-5))}`);
    assert.equal(left.unwritten, live.length);

    await cluster.start();
    const rows = await rowsOf(live.map((c) => c.sessionId));
    assert.equal(rows.filter((r) => r.connection_status === 'connected').length, live.length, 'they read stale after the liveness bound');
  });
});
