// PgSessionStore and the mcp_sessions migrations against a real PostgreSQL (one fresh DB for this file):
// what is specific to the direct Postgres backend (the migrations, RLS at the SQL level, recovery with
// the daemon's own role, connection failures). The behaviour every store shares (claim, limit, race,
// stale rows, list, touch, close, isolation) is in test/daemon/storeBehaviour.test.ts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { PgSessionStore, sql } from '../../server/sessions/pgStore';
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

  it('applies the migrations: table with RLS, a read-only policy, SECURITY DEFINER functions with an empty search_path', async function () {
    const [t] = await db.query(
      "select c.relrowsecurity from pg_class c where c.oid = 'public.mcp_sessions'::regclass",
    );
    assert.equal(t.relrowsecurity, true);
    for (const table of ['mcp_sessions', 'mcp_threads', 'mcp_thread_messages']) {
      const policies = await db.query('select cmd from pg_policies where tablename = $1 order by cmd', [table]);
      assert.deepEqual(policies.map((p) => p.cmd), ['SELECT'], `${table}: only the read policy is left`);
      const [grants] = await db.query(
        `select has_table_privilege('authenticated', $1, 'SELECT') as sel, has_table_privilege('authenticated', $1, 'INSERT') as ins,
                has_table_privilege('authenticated', $1, 'UPDATE') as upd, has_table_privilege('authenticated', $1, 'DELETE') as del,
                has_table_privilege('anon', $1, 'SELECT,INSERT,UPDATE,DELETE') as anon`,
        [`public.${table}`],
      );
      assert.deepEqual(grants, { sel: true, ins: false, upd: false, del: false, anon: false }, table);
    }
    const fns = await db.query(
      `select p.proname, p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner) as owner,
              has_function_privilege('anon', p.oid, 'EXECUTE') as anon, has_function_privilege('authenticated', p.oid, 'EXECUTE') as authenticated
         from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname like 'mcp\_%' order by 1`,
    );
    assert.deepEqual(fns.map((f) => f.proname), [
      'mcp_claim_session', 'mcp_close_session', 'mcp_disconnect_daemon_sessions', 'mcp_list_sessions',
      'mcp_session_stale_after', 'mcp_thread_append', 'mcp_thread_create', 'mcp_thread_delete', 'mcp_thread_list',
      'mcp_thread_messages', 'mcp_touch_session',
      'mcp_usage_max_calls_per_day', 'mcp_usage_reserve', 'mcp_usage_settle', 'mcp_usage_summary',
    ]);
    const [{ owner }] = await db.query("select pg_get_userbyid(relowner) as owner from pg_class where oid = 'public.mcp_sessions'::regclass");
    for (const f of fns) {
      assert.deepEqual(f.proconfig, ['search_path=""'], `${f.proname}: pinned empty search_path`);
      assert.equal(f.anon, false, `${f.proname}: no EXECUTE for anon`);
      assert.equal(f.owner, owner, `${f.proname}: owned by the tables' owner`);
      // The constant and the daemon's own recovery run with the caller's rights; everything a user calls checks auth.uid() itself.
      const invoker = ['mcp_session_stale_after', 'mcp_usage_max_calls_per_day', 'mcp_disconnect_daemon_sessions'].includes(f.proname);
      assert.equal(f.prosecdef, !invoker, `${f.proname}: security ${invoker ? 'invoker' : 'definer'}`);
      assert.equal(f.authenticated, f.proname !== 'mcp_disconnect_daemon_sessions', `${f.proname}: EXECUTE for authenticated`);
    }
    const [s] = await db.query('select extract(epoch from public.mcp_session_stale_after())::int as secs');
    assert.equal(s.secs, 45);
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

  it("at the SQL level, a user writes no table directly (not even own rows) and reads only own rows; the functions never reach A's rows", async function () {
    const a = await newUser();
    const b = await newUser();
    const sidA = randomUUID();
    const sidB = randomUUID();
    await store.claim(a, sidA, 5, meta());
    await store.claim(b, sidB, 5, meta());

    await asRole('authenticated', b.claims, async (c) => {
      assert.equal((await c.query('select public.mcp_touch_session($1) as ok', [sidA])).rows[0].ok, false);
      assert.equal((await c.query("select public.mcp_close_session($1, 'expired') as ok", [sidA])).rows[0].ok, false);
      const visible = await c.query('select session_id from public.mcp_sessions');
      assert.deepEqual(visible.rows.map((x) => x.session_id), [sidB]);
    });
    assert.equal((await row(sidA)).connection_status, 'connected');

    const refused: [string, unknown[]][] = [
      ['insert into public.mcp_sessions (session_id, user_id) values ($1, $2)', [randomUUID(), b.userId]],
      ['insert into public.mcp_sessions (session_id, user_id) values ($1, $2)', [randomUUID(), a.userId]],
      ["update public.mcp_sessions set last_active = now() - interval '1 hour' where session_id = $1", [sidB]],
      ['update public.mcp_sessions set user_id = $1 where session_id = $2', [a.userId, sidB]],
      ['delete from public.mcp_sessions where session_id = $1', [sidB]],
      ['insert into public.mcp_threads (user_id, title) values ($1, $2)', [b.userId, 'x']],
      ['update public.mcp_threads set title = $1', ['x']],
      ['delete from public.mcp_threads', []],
      ['delete from public.mcp_thread_messages', []],
    ];
    for (const [sql, params] of refused) {
      await assert.rejects(asRole('authenticated', b.claims, (c) => c.query(sql, params)), /permission denied for table/, sql);
    }
    const rowB = await row(sidB);
    assert.equal(rowB.user_id, b.userId);
    assert.ok(Date.now() - (rowB.last_active as Date).getTime() < 60_000, 'last_active was not backdated');
  });

  it('p_max_per_user is clamped to 1000: a direct call with a huge limit inserts at most 1000 live rows', async function () {
    this.timeout(60000);
    const a = await newUser();
    const results = await asRole('authenticated', a.claims, async (c) => {
      const out: { claimed: boolean; active: number }[] = [];
      for (let i = 0; i < 1002; i++) {
        const { rows } = await c.query(`select claimed, active from public.mcp_claim_session(gen_random_uuid()::text, 2147483647, '{"daemon_id": "attacker"}')`);
        out.push(rows[0]);
      }
      return out;
    });
    assert.equal(results.filter((r) => r.claimed).length, 1000);
    assert.deepEqual(results.slice(1000), [{ claimed: false, active: 1000 }, { claimed: false, active: 1000 }]);
  });

  it('claim bounds what it stores: a lowercase UUID session id, only the daemon\'s metadata keys, each of bounded size', async function () {
    const a = await newUser();
    const sid = randomUUID();
    await store.claim(a, sid, 5, meta('d-bounds', { extra: 'x'.repeat(100_000), nested: { deep: [1, 2, 3] } }));
    assert.deepEqual((await row(sid)).metadata, { daemon_id: 'd-bounds', instance: null, client_version: '1.2.3', pid: 4242, transport: 'websocket', client_name: null });
    const refusedClaims: [string, string, SessionMetadata][] = [
      ['a session id that is no UUID', 'x'.repeat(200), meta()],
      ['an upper-case UUID', randomUUID().toUpperCase(), meta()],
      ['a daemon_id of 513 characters', randomUUID(), meta('d'.repeat(513))],
      ['no daemon_id', randomUUID(), { instance: null, client_version: null, pid: 1 } as unknown as SessionMetadata],
      ['an instance of 129 characters', randomUUID(), { ...meta(), instance: 'i'.repeat(129) }],
      ['a client_version of 65 characters', randomUUID(), { ...meta(), client_version: 'v'.repeat(65) }],
      ['a pid that is not an integer', randomUUID(), { ...meta(), pid: -1.5 }],
      ['an instance that is an object', randomUUID(), { ...meta(), instance: { a: 1 } as unknown as string }],
      ['a transport other than websocket or mcp', randomUUID(), { ...meta(), transport: 'carrier-pigeon' as 'mcp' }],
      ['a client_name of 65 characters', randomUUID(), { ...meta(), transport: 'mcp', client_name: 'n'.repeat(65) }],
    ];
    for (const [what, id, metadata] of refusedClaims) {
      await assert.rejects(store.claim(a, id, 5, metadata), (err: unknown) => (err as { code?: string }).code === '22023', what);
      assert.equal(await row(id), undefined, `${what}: nothing inserted`);
    }
  });

  it('each user-scoped call is one round trip: transaction, role, claims, statement and commit go as one message', async function () {
    const a = await newUser();
    const sid = randomUUID();
    const sent: string[] = [];
    const original = Client.prototype.query;
    Client.prototype.query = function (this: Client, ...args: unknown[]) {
      if (typeof args[0] === 'string') sent.push(args[0]);
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof original;
    try {
      assert.deepEqual(await store.claim(a, sid, 5, meta('d-one-trip')), { ok: true });
      assert.equal(await store.touch(a, sid), true);
    } finally {
      Client.prototype.query = original;
    }
    assert.equal(sent.length, 2, `one query per call, got: ${sent.join(' | ')}`);
    assert.match(sent[0], /^begin isolation level read committed; set local role authenticated; select set_config\('request\.jwt\.claims', .*mcp_claim_session.*; commit$/s);
    assert.equal((await row(sid)).user_id, a.userId);
  });

  it("values reach the database verbatim, never as SQL: quotes, backslashes and comment markers in an instance and a thread message", async function () {
    const a = await newUser();
    const sid = randomUUID();
    const hostile = "x'); drop table public.mcp_sessions; -- \\' \\\\ $1 \u00e9";
    assert.deepEqual(await store.claim(a, sid, 5, { ...meta('d-verbatim'), instance: hostile.slice(0, 128) }), { ok: true });
    assert.equal((await row(sid)).metadata.instance, hostile.slice(0, 128));
    const thread = await store.createThread(a, hostile);
    await store.appendMessage(a, thread, 'user', hostile);
    assert.deepEqual((await store.threadMessages(a, thread, 10)).map((m) => m.content), [hostile]);
    assert.equal((await store.listThreads(a)).find((t) => t.id === thread)?.title, hostile);
  });

  it('sql`...` inlines only escaped strings, finite numbers (negative ones in brackets) and null; a NUL character is refused', function () {
    assert.equal(sql`select f(${"it's"}, ${-1}, ${null})`.text, "select f('it''s', (-1), NULL)");
    assert.equal(sql`select 1 - ${-1}`.text, 'select 1 - (-1)');
    assert.throws(() => sql`select ${'a\0b'}`, /NUL/);
    assert.throws(() => sql`select ${Number.NaN}`, /cannot inline/);
    assert.throws(() => sql`select ${{ a: 1 } as unknown as string}`, /cannot inline/);
  });

  it('claim keeps only the 50 most recently active rows of a user that are not live; other users keep theirs', async function () {
    this.timeout(60000);
    const a = await newUser();
    const b = await newUser();
    const bSid = randomUUID();
    await store.claim(b, bSid, 5, meta());
    await store.close(b, bSid, 'disconnected');
    const live = randomUUID();
    await store.claim(a, live, 5, meta());
    await db.query("update public.mcp_sessions set last_active = now() - interval '1 hour' where session_id = $1", [live]); // stale: also history
    for (let i = 0; i < 60; i++) {
      const sid = randomUUID();
      await store.claim(a, sid, 5, meta());
      await store.close(a, sid, i % 2 ? 'expired' : 'disconnected');
    }
    const current = randomUUID();
    await store.claim(a, current, 5, meta());
    const rows = await db.query('select session_id, connection_status from public.mcp_sessions where user_id = $1', [a.userId]);
    assert.equal(rows.length, 51, 'the live row + 50 of history');
    assert.ok(rows.some((r) => r.session_id === current && r.connection_status === 'connected'));
    assert.ok(!rows.some((r) => r.session_id === live), 'the oldest (a stale row) went first');
    assert.equal((await row(bSid))?.connection_status, 'disconnected', "B's history is untouched");
  });

  it('a heartbeat is a HOT update: it rewrites no index entry (last_active is in no index)', async function () {
    const a = await newUser();
    const sid = randomUUID();
    await store.claim(a, sid, 5, meta());
    const stats = await asRole('authenticated', a.claims, async (c) => {
      assert.equal((await c.query('select public.mcp_touch_session($1) as ok', [sid])).rows[0].ok, true);
      return (await c.query("select n_tup_upd::int as upd, n_tup_hot_upd::int as hot from pg_stat_xact_user_tables where relname = 'mcp_sessions'")).rows[0];
    });
    assert.deepEqual(stats, { upd: 1, hot: 1 });
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
    for (const sql of ["select public.mcp_touch_session('x')", "select public.mcp_close_session('x', 'expired')", "select public.mcp_thread_delete(gen_random_uuid())"]) {
      await assert.rejects(asRole('anon', a.claims, (c) => c.query(sql)), /permission denied/, sql);
      // authenticated without a sub claim: the function refuses by itself (it no longer leans on RLS).
      await assert.rejects(asRole('authenticated', { role: 'authenticated' }, (c) => c.query(sql)), /no authenticated user/, sql);
    }
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
