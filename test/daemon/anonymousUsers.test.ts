// Anonymous (guest) Supabase users over the wire: anyone holding the public anon key can create one,
// so a daemon refuses their tokens unless its operator sets EXAI_ALLOW_ANONYMOUS=true. The rule itself
// is pinned in verifier.test.ts; this pins that the daemon's setting reaches the verifier and that a
// refused guest leaves no session row.
import assert from 'node:assert/strict';
import { helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { JAZEEL, mintAccessToken, startJwksServer, type JwksServer } from '../helpers/tokens';
import type { HelloAck } from '../../server/protocol';

describe('anonymous Supabase users (is_anonymous: true)', function () {
  this.timeout(30000);
  let db: TestDatabase;
  let jwks: JwksServer;
  const daemons: RunningDaemon[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    [db, jwks] = await Promise.all([createTestDatabase(), startJwksServer()]);
    await db.addUser(JAZEEL.id, JAZEEL.email);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(daemons.splice(0).map((d) => d.stop()));
  });
  after(async () => {
    await jwks?.close();
    await db?.drop();
  });

  const daemon = async (env: Record<string, string> = {}) => {
    const d = await startDaemon({ env: { MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: jwks.url, DATABASE_URL: db.url, SUPABASE_JWT_SECRET: undefined as unknown as string, ...env } });
    daemons.push(d);
    return d;
  };
  const guestToken = () => mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, user: JAZEEL, claims: { is_anonymous: true, email: undefined } });
  const rows = async () => Number((await db.query('select count(*)::int as n from public.mcp_sessions where user_id = $1', [JAZEEL.id]))[0].n);

  it('are refused by default with 4003 and a sentence that says how to sign in, and get no row', async () => {
    const d = await daemon();
    const before = await rows();
    const { client, ack } = await helloClient(d.url, await guestToken(), 'guest-window');
    clients.push(client);
    const refused = ack as Extract<HelloAck, { ok: false }>;
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, 'token_invalid');
    assert.match(refused.error.message, /anonymous \(guest\) Supabase user.*Sign in/);
    assert.equal((await client.closed).code, 4003);
    assert.equal(await rows(), before, 'a refused guest writes no session row');
  });

  it('are accepted when the operator sets EXAI_ALLOW_ANONYMOUS=true', async () => {
    const d = await daemon({ EXAI_ALLOW_ANONYMOUS: 'true' });
    const { client, ack } = await helloClient(d.url, await guestToken(), 'guest-window');
    clients.push(client);
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    assert.equal(ack.user.id, JAZEEL.id);
  });
});
