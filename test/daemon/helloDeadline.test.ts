// The hello deadline (EXAI_HELLO_TIMEOUT_MS) covers the whole hello: the frame, the token's
// verification (a hung JWKS endpoint) and the session claim (a hung database), and the frames a
// client queues while its hello is being claimed are bounded in bytes. A claim that completes after
// the refusal still ends its row (never left `connected`). Supabase mode, real Postgres.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Client } from 'pg';
import { connect, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { JAZEEL, mintAccessToken, startJwksServer, type JwksServer } from '../helpers/tokens';
import { waitFor, within } from '../helpers/wait';
import type { HelloAck } from '../../server/protocol';

type FailAck = Extract<HelloAck, { ok: false }>;
const KiB = 1024;

describe('hello deadline over verify and claim (supabase mode)', function () {
  this.timeout(30000);
  let db: TestDatabase;
  let jwks: JwksServer;
  const daemons: RunningDaemon[] = [];
  const clients: TestClient[] = [];

  const start = async (supabaseUrl: string, env: Record<string, string> = {}) => {
    const d = await startDaemon({
      env: {
        MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: supabaseUrl, DATABASE_URL: db.url, SUPABASE_JWT_SECRET: undefined,
        EXAI_DAEMON_ID: `deadline-${daemons.length}`, MCP_MAX_CONNECTIONS_PER_USER: '20', ...env,
      },
    });
    daemons.push(d);
    return d;
  };
  const rowOf = async (instance: string) =>
    (await db.query("select session_id, connection_status from public.mcp_sessions where metadata->>'instance' = $1", [instance]))[0] as
      | { session_id: string; connection_status: string }
      | undefined;

  /** Holds the per-user claim lock mcp_claim_session takes, so the daemon's claim waits. */
  const holdClaimLock = async () => {
    const locker = new Client({ connectionString: db.url });
    await locker.connect();
    await locker.query('begin');
    await locker.query("select pg_advisory_xact_lock(hashtextextended('mcp_sessions:' || $1::text, 0))", [JAZEEL.id]);
    return {
      release: async () => {
        await locker.query('commit').catch(() => {});
        await locker.end();
      },
    };
  };
  const waitingOnClaimLock = async () =>
    Number((await db.query("select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted"))[0].n) > 0;

  before(async function () {
    [db, jwks] = await Promise.all([createTestDatabase(), startJwksServer()]);
    await db.addUser(JAZEEL.id, JAZEEL.email);
  });
  afterEach(async function () {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    for (const d of daemons.splice(0)) await within(d.stop(), 15000, 'daemon stop').catch(() => d.kill9());
  });
  after(async function () {
    await jwks?.close();
    await db?.drop();
  });

  it('a JWKS endpoint that never answers: refused within the deadline (auth_unavailable, 1013), no row written', async function () {
    const held: Socket[] = [];
    const hung = http.createServer(() => {}); // accepts, never answers
    hung.on('connection', (s) => held.push(s));
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const hungUrl = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
    try {
      const daemon = await start(hungUrl, { EXAI_HELLO_TIMEOUT_MS: '1000' });
      const client = await connect(daemon.url);
      clients.push(client);
      const token = await mintAccessToken({ key: jwks.keys.es256, issuer: `${hungUrl}/auth/v1`, user: JAZEEL });
      client.send({ op: 'hello', protocol: 2, token, client: { instance: 'hung-jwks' } });
      const ack = (await client.next((f) => f.op === 'hello_ack', 8000)) as FailAck;
      assert.equal(ack.ok, false);
      assert.equal(ack.error.code, 'auth_unavailable');
      assert.match(ack.error.message, /could not verify the sign-in token within 1 s/);
      assert.equal((await within(client.closed, 5000, 'close')).code, 1013);
      assert.equal(await rowOf('hung-jwks'), undefined);
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => hung.close(r));
    }
  });

  it('a session claim that hangs: refused within the deadline (store_unavailable, 1013); the row ends disconnected once the claim completes', async function () {
    const daemon = await start(jwks.url, { EXAI_HELLO_TIMEOUT_MS: '1500' });
    const lock = await holdClaimLock();
    try {
      const client = await connect(daemon.url);
      clients.push(client);
      client.send({ op: 'hello', protocol: 2, token: await mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, user: JAZEEL }), client: { instance: 'hung-claim' } });
      await waitFor(waitingOnClaimLock, 5000, 'the daemon waits on the claim lock');
      const ack = (await client.next((f) => f.op === 'hello_ack', 8000)) as FailAck;
      assert.equal(ack.ok, false);
      assert.equal(ack.error.code, 'store_unavailable');
      assert.match(ack.error.message, /could not record this session within 1\.5 s/);
      assert.equal((await within(client.closed, 5000, 'close')).code, 1013);
    } finally {
      await lock.release();
    }
    const row = (await waitFor(() => rowOf('hung-claim'), 5000, 'the late claim inserts its row'))!;
    await waitFor(async () => (await rowOf('hung-claim'))?.connection_status === 'disconnected', 5000, `row ${row.session_id} disconnected`);
  });

  it('frames queued while the hello is being claimed are bounded in bytes: more than 32 KiB closes with 1009', async function () {
    const daemon = await start(jwks.url, { EXAI_HELLO_TIMEOUT_MS: '10000' });
    const lock = await holdClaimLock();
    try {
      const client = await connect(daemon.url);
      clients.push(client);
      client.send({ op: 'hello', protocol: 2, token: await mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, user: JAZEEL }), client: { instance: 'queue-flood' } });
      await waitFor(waitingOnClaimLock, 5000, 'the daemon waits on the claim lock');
      // Five 8 KiB frames: far under the old count bound (100 frames), over the byte bound.
      for (let i = 0; i < 5; i++) client.send({ op: 'ping', request_id: `q${i}`, padding: 'p'.repeat(8 * KiB) });
      const closed = await within(client.closed, 6000, 'closed while the claim still waits');
      assert.equal(closed.code, 1009);
      assert.equal((client.frames.find((f) => f.op === 'hello_ack') as FailAck | undefined)?.error.code, 'frame_too_large');
      assert.equal(client.frames.some((f) => f.op === 'pong'), false, 'no queued frame was handled');
    } finally {
      await lock.release();
    }
    await waitFor(async () => (await rowOf('queue-flood'))?.connection_status === 'disconnected', 5000, 'the late claim ends disconnected');
  });
});
