// PgSessionStore and the mcp_sessions migrations against a real PostgreSQL (one fresh DB for this file):
// what is specific to the direct Postgres backend (the migrations, RLS at the SQL level, recovery with
// the daemon's own role, connection failures). The behaviour every store shares (claim, limit, race,
// stale rows, list, touch, close, isolation) is in test/daemon/storeBehaviour.test.ts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { PgSessionStore } from '../../server/sessions/pgStore';
import { StoreUnavailable, type SessionMetadata } from '../../server/sessions/store';
import type { Identity } from '../../server/auth/identity';

function identity(userId: string, email: string | null = `${userId.slice(0, 8)}@example.test`): Identity {
  return {
    userId,
    email,
    authSessionId: randomUUID(),
    expiresAt: null,
    claims: { sub: userId, role: 'authenticated', aud: 'authenticated', email },
    accessToken: 'unused',
  };
}

function meta(daemonId = 'daemon-test', extra: Record<string, unknown> = {}): SessionMetadata {
  return { daemon_id: daemonId, instance: null, client_version: '1.2.3', pid: 4242, ...extra };
}

describe('PgSessionStore (real Postgres)', function () {
  let db: TestDatabase;
  let store: PgSessionStore;
  let store2: PgSessionStore;

  before(async function () {
    db = await createTestDatabase();
    store = new PgSessionStore({ connectionString: db.url, max: 10 });
    store2 = new PgSessionStore({ connectionString: db.url, max: 10 });
  });

  after(async function () {
    await store?.end();
    await store2?.end();
    await db?.drop();
  });

  async function newUser(): Promise<Identity> {
    const id = randomUUID();
    const who = identity(id);
    await db.addUser(id, who.email!);
    return who;
  }

  async function row(sessionId: string) {
    const rows = await db.query('select * from public.mcp_sessions where session_id = $1', [sessionId]);
    return rows[0];
  }

  /** Runs `fn` in a transaction on a separate connection as `role`, with `claims`; always rolls back. */
  async function asRole<T>(role: string, claims: Record<string, unknown> | null, fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query('begin');
      await c.query(`set local role ${role}`);
      if (claims) await c.query("select set_config('request.jwt.claims', $1, true)", [JSON.stringify(claims)]);
      return await fn(c);
    } finally {
      await c.query('rollback').catch(() => {});
      await c.end();
    }
  }

  it('applies the migrations: table with RLS, policies and functions', async function () {
    const [t] = await db.query(
      "select c.relrowsecurity from pg_class c where c.oid = 'public.mcp_sessions'::regclass",
    );
    assert.equal(t.relrowsecurity, true);
    const policies = await db.query("select policyname, cmd from pg_policies where tablename = 'mcp_sessions' order by cmd");
    assert.deepEqual(policies.map((p) => p.cmd), ['INSERT', 'SELECT', 'UPDATE']);
    const fns = await db.query(
      "select p.proname, p.prosecdef from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname like 'mcp\\_%' order by 1",
    );
    assert.deepEqual(fns.map((f) => f.proname), [
      'mcp_claim_session', 'mcp_close_session', 'mcp_disconnect_daemon_sessions', 'mcp_list_sessions',
      'mcp_session_stale_after', 'mcp_thread_append', 'mcp_thread_create', 'mcp_thread_list', 'mcp_thread_messages', 'mcp_touch_session',
    ]);
    assert.ok(fns.every((f) => f.prosecdef === false), 'all functions are security invoker');
    const [s] = await db.query('select extract(epoch from public.mcp_session_stale_after())::int as secs');
    assert.equal(s.secs, 180);
  });

  it('mcp_close_session refuses a final status other than disconnected or expired', async function () {
    const a = await newUser();
    const sid = randomUUID();
    await store.claim(a, sid, 5, meta());
    await assert.rejects(
      asRole('authenticated', a.claims, (c) => c.query("select public.mcp_close_session($1, 'connected')", [sid])),
      /status must be disconnected or expired/,
    );
    assert.equal((await row(sid)).connection_status, 'connected');
  });

  it("RLS at the SQL level: as B, no statement reads, ends, takes over or deletes A's rows", async function () {
    const a = await newUser();
    const b = await newUser();
    const sidA = randomUUID();
    await store.claim(a, sidA, 5, meta());
    await store.claim(b, randomUUID(), 5, meta());

    await asRole('authenticated', b.claims, async (c) => {
      assert.equal((await c.query('select public.mcp_touch_session($1) as ok', [sidA])).rows[0].ok, false);
      assert.equal((await c.query("select public.mcp_close_session($1, 'expired') as ok", [sidA])).rows[0].ok, false);
      const visible = await c.query('select session_id from public.mcp_sessions');
      assert.ok(visible.rows.every((x) => x.session_id !== sidA));
      await c.query("update public.mcp_sessions set connection_status = 'expired'"); // no WHERE: all rows B may touch
      const [{ n }] = (await c.query(
        "select count(*)::int as n from public.mcp_sessions where user_id = $1", [a.userId])).rows;
      assert.equal(n, 0);
    });
    assert.equal((await row(sidA)).connection_status, 'connected');

    await assert.rejects(
      asRole('authenticated', b.claims, (c) =>
        c.query('insert into public.mcp_sessions (session_id, user_id) values ($1, $2)', [randomUUID(), a.userId])),
      /row-level security/,
    );
    await assert.rejects(
      asRole('authenticated', b.claims, (c) =>
        c.query("update public.mcp_sessions set user_id = $1 where user_id = $2", [a.userId, b.userId])),
      /row-level security/,
    );
    await assert.rejects(
      asRole('authenticated', b.claims, (c) => c.query('delete from public.mcp_sessions')),
      /permission denied/,
    );
  });

  it('denies anon and unauthenticated callers', async function () {
    const a = await newUser();
    await store.claim(a, randomUUID(), 5, meta());
    await assert.rejects(asRole('anon', null, (c) => c.query('select * from public.mcp_sessions')), /permission denied/);
    await assert.rejects(asRole('anon', a.claims, (c) => c.query('select * from public.mcp_list_sessions()')), /permission denied/);
    await assert.rejects(
      asRole('anon', null, (c) => c.query("select * from public.mcp_claim_session('x', 5, '{}')")),
      /permission denied/,
    );
    // authenticated without a sub claim: no user to claim for.
    await assert.rejects(
      asRole('authenticated', { role: 'authenticated' }, (c) => c.query("select * from public.mcp_claim_session('x', 5, '{}')")),
      /no authenticated user/,
    );
    // The recovery function is not for users.
    await assert.rejects(
      asRole('authenticated', a.claims, (c) => c.query("select public.mcp_disconnect_daemon_sessions('d')")),
      /permission denied/,
    );
  });

  it('recoverAbandoned marks only that daemon\'s connected rows disconnected', async function () {
    const a = await newUser();
    const b = await newUser();
    const daemon = `daemon-${randomUUID()}`;
    const other = `daemon-${randomUUID()}`;
    const mine = [randomUUID(), randomUUID(), randomUUID()];
    const theirs = randomUUID();
    await store.claim(a, mine[0], 5, meta(daemon));
    await store.claim(b, mine[1], 5, meta(daemon));
    await store.claim(a, mine[2], 5, meta(daemon));
    await store.close(a, mine[2], 'expired');
    await store.claim(a, theirs, 5, meta(other));

    assert.equal(await store2.recoverAbandoned(daemon), 2);
    assert.equal((await row(mine[0])).connection_status, 'disconnected');
    assert.equal((await row(mine[1])).connection_status, 'disconnected');
    assert.equal((await row(mine[2])).connection_status, 'expired');
    assert.equal((await row(theirs)).connection_status, 'connected');
    assert.equal(await store2.recoverAbandoned(daemon), 0);
  });

  it('deleting the auth user deletes their sessions', async function () {
    const a = await newUser();
    const sid = randomUUID();
    await store.claim(a, sid, 5, meta());
    await db.query('delete from auth.users where id = $1', [a.userId]);
    assert.equal(await row(sid), undefined);
  });

  it('throws StoreUnavailable, without the password, when the database is unreachable', async function () {
    const password = 'S3cret-Pa55word';
    const down = new PgSessionStore({ connectionString: `postgres://exai_user:${password}@127.0.0.1:1/exai` });
    try {
      const a = identity(randomUUID());
      for (const call of [
        () => down.claim(a, randomUUID(), 5, meta()),
        () => down.listOwn(a),
        () => down.recoverAbandoned('d'),
      ]) {
        await assert.rejects(call(), (err: unknown) => {
          assert.ok(err instanceof StoreUnavailable, `expected StoreUnavailable, got ${String(err)}`);
          assert.match(err.message, /unreachable/);
          assert.ok(!err.message.includes(password));
          assert.ok(!err.message.includes('postgres://'));
          return true;
        });
      }
    } finally {
      await down.end();
    }
  });
});
