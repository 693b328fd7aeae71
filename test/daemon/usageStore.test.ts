// ONE behavioural suite for every UsageStore backend (tokens per provider call and the daily budget):
//   - PgSessionStore (direct Postgres, a fresh PostgreSQL 15 database with supabase/migrations), two
//     pools standing in for two daemons on one database,
//   - DataApiSessionStore through test/postgrest with tokens from the GoTrue-compatible test server,
//   - MemorySessionStore (local mode).
// The rules are the mcp_usage_* functions of supabase/migrations/20261205000000_mcp_usage.sql; the
// memory store mirrors them. Plus what a signed-in user can do around the functions (read only their
// own rows; no writes to the table; the anon role refused) on both database backends.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import type { Identity } from '../../server/auth/identity';
import { MemorySessionStore } from '../../server/sessions/memoryStore';
import { PgSessionStore } from '../../server/sessions/pgStore';
import type { ReserveOutcome, UsageReservation, UsageReservationRequest, UsageStore } from '../../server/sessions/store';
import { startDataApiFixture } from '../helpers/dataApi';
import { createTestDatabase } from '../helpers/pg';

interface UsageHarness {
  /** Two stores on one database: two daemons. */
  stores: [UsageStore, UsageStore];
  newUser(): Promise<Identity>;
  /** The clock the store's day follows (the memory store's can be moved; the databases' is now()). */
  now(): number;
  /** Makes every row of `user` `days` older (the database: rewrites their day; memory: moves the clock on). */
  ageRows(user: Identity, days: number): Promise<void>;
  /** The user's rows as stored (around RLS); null for the memory store. */
  storedRows(user: Identity): Promise<{ state: string; input_tokens: string; output_tokens: string }[] | null>;
  /** What `user` can do to the table itself, by SQL or the Data API. Null: no database. */
  directAccess?(user: Identity, victim: Identity): Promise<{ visibleUserIds: string[]; writes: string[] }>;
  anonAttempt?(): Promise<string[]>;
  close(): Promise<void>;
}

const reserveArgs = (over: Partial<UsageReservationRequest> = {}): UsageReservationRequest =>
  ({ tool: 'chat', model: 'fake-model', tokens: 300, dailyLimit: null, holdSeconds: 60, ...over });

function reserved(outcome: ReserveOutcome): UsageReservation {
  assert.ok(outcome.ok, `reserved, got ${JSON.stringify(outcome)}`);
  return outcome.reservation;
}

function nextUtcMidnight(now: number): string {
  return new Date(Date.parse(`${new Date(now).toISOString().slice(0, 10)}T00:00:00Z`) + 86_400_000).toISOString();
}

function describeUsageStore(name: string, makeHarness: () => Promise<UsageHarness>, noDatabase?: string): void {
  describe(`UsageStore behaviour: ${name}`, function () {
    this.timeout(30000);
    let h: UsageHarness;
    let store: UsageStore;
    let store2: UsageStore;

    before(async function () {
      this.timeout(60000);
      h = await makeHarness();
      [store, store2] = h.stores;
    });
    after(async function () {
      this.timeout(60000);
      await h?.close();
    });

    it('records a call: a reservation holds its tokens while it runs, the settlement replaces them with the counts; today and this month by model', async function () {
      const a = await h.newUser();
      const r1 = reserved(await store.reserveUsage(a, reserveArgs({ model: 'model-a', tokens: 500 })));
      const during = await store2.usageSummary(a);
      assert.deepEqual(during.filter((r) => r.period === 'today'), [
        { period: 'today', model: 'model-a', calls: 0, inputTokens: 0, outputTokens: 0, heldCalls: 1, heldTokens: 500 },
      ], 'a running call is held, not yet used');
      assert.equal(await store2.settleUsage(a, r1, { inputTokens: 60, outputTokens: 40, estimated: false }), true);
      const r2 = reserved(await store2.reserveUsage(a, reserveArgs({ model: 'model-b', tool: 'consensus' })));
      assert.equal(await store.settleUsage(a, r2, { inputTokens: 7, outputTokens: 3, estimated: true }), true);
      const r3 = reserved(await store.reserveUsage(a, reserveArgs({ model: 'model-a', tool: 'codereview' })));
      assert.equal(await store.settleUsage(a, r3, { inputTokens: 1, outputTokens: 2, estimated: false }), true);

      const summary = await store.usageSummary(a);
      const row = (period: string, model: string) => summary.find((r) => r.period === period && r.model === model);
      for (const period of ['today', 'month']) {
        assert.deepEqual(row(period, 'model-a'), { period, model: 'model-a', calls: 2, inputTokens: 61, outputTokens: 42, heldCalls: 0, heldTokens: 0 });
        assert.deepEqual(row(period, 'model-b'), { period, model: 'model-b', calls: 1, inputTokens: 7, outputTokens: 3, heldCalls: 0, heldTokens: 0 });
      }
      assert.equal(summary.length, 4);
      const stored = await h.storedRows(a);
      if (stored) assert.deepEqual(stored.map((r) => [r.state, Number(r.input_tokens), Number(r.output_tokens)]), [['settled', 60, 40], ['settled', 7, 3], ['settled', 1, 2]]);
    });

    it("isolates users: B sees none of A's usage and cannot settle A's reservation, even with its id and key", async function () {
      const a = await h.newUser();
      const b = await h.newUser();
      const r = reserved(await store.reserveUsage(a, reserveArgs({ tokens: 1000 })));
      for (const s of [store, store2]) {
        assert.deepEqual(await s.usageSummary(b), []);
        assert.equal(await s.settleUsage(b, r, { inputTokens: 0, outputTokens: 0, estimated: false }), false, "B cannot settle A's hold");
      }
      // B's own budget is untouched by A's hold.
      const bOutcome = await store2.reserveUsage(b, reserveArgs({ tokens: 10, dailyLimit: 500 }));
      assert.ok(bOutcome.ok);
      assert.equal(bOutcome.heldTokens, 0);
      assert.equal(bOutcome.usedTokens, 0);
      assert.equal(await store.settleUsage(a, r, { inputTokens: 5, outputTokens: 5, estimated: false }), true, 'A settles it');
      assert.deepEqual((await store.usageSummary(a)).map((x) => [x.period, x.calls, x.inputTokens + x.outputTokens]), [['today', 1, 10], ['month', 1, 10]]);
      if (h.directAccess) {
        const seen = await h.directAccess(b, a);
        assert.deepEqual([...new Set(seen.visibleUserIds)], [b.userId], "B's own rows only, through the table itself");
      }
    });

    it('settles once, and only with its key; counts must be whole numbers from 0 (usage cannot be erased or made negative)', async function () {
      const a = await h.newUser();
      const r = reserved(await store.reserveUsage(a, reserveArgs()));
      assert.equal(await store.settleUsage(a, { id: r.id, key: `${r.key.slice(0, -2)}xx` }, { inputTokens: 0, outputTokens: 0, estimated: false }), false, 'wrong key');
      assert.equal(await store.settleUsage(a, { id: r.id + 1_000_000, key: r.key }, { inputTokens: 0, outputTokens: 0, estimated: false }), false, 'no such reservation');
      await assert.rejects(store.settleUsage(a, r, { inputTokens: -100, outputTokens: 0, estimated: false }), 'negative input');
      await assert.rejects(store.settleUsage(a, r, { inputTokens: 0, outputTokens: -1, estimated: false }), 'negative output');
      await assert.rejects(store.settleUsage(a, r, { inputTokens: 1_000_000_001, outputTokens: 0, estimated: false }), 'over the per-call bound');
      await assert.rejects(store.reserveUsage(a, reserveArgs({ tokens: -5 })), 'negative reservation');
      await assert.rejects(store.reserveUsage(a, reserveArgs({ dailyLimit: -1 })), 'negative limit');
      assert.equal(await store.settleUsage(a, r, { inputTokens: 30, outputTokens: 20, estimated: false }), true);
      assert.equal(await store2.settleUsage(a, r, { inputTokens: 0, outputTokens: 0, estimated: false }), false, 'a second settlement cannot overwrite the counts');
      assert.deepEqual((await store.usageSummary(a)).find((x) => x.period === 'today'), { period: 'today', model: 'fake-model', calls: 1, inputTokens: 30, outputTokens: 20, heldCalls: 0, heldTokens: 0 });
    });

    it('the budget admits a call while settled + held tokens are below it, and refuses at it with what is used, held, and the next 00:00 UTC', async function () {
      const a = await h.newUser();
      const limit = 1000;
      const holds: UsageReservation[] = [];
      for (const expectedHeld of [0, 300, 600, 900]) {
        const outcome = await (holds.length % 2 ? store2 : store).reserveUsage(a, reserveArgs({ dailyLimit: limit }));
        assert.equal(outcome.heldTokens, expectedHeld);
        holds.push(reserved(outcome));
      }
      const refused = await store.reserveUsage(a, reserveArgs({ dailyLimit: limit }));
      assert.deepEqual(refused, { ok: false, refused: 'budget', usedTokens: 0, heldTokens: 1200, heldCalls: 4, resetsAt: nextUtcMidnight(h.now()) });
      // Settled for less than they held: the rest comes back.
      for (const r of holds) assert.ok(await store2.settleUsage(a, r, { inputTokens: 100, outputTokens: 100, estimated: false }));
      const again = await store2.reserveUsage(a, reserveArgs({ dailyLimit: limit, tokens: 50 }));
      assert.ok(again.ok);
      assert.equal(again.usedTokens, 800);
      assert.ok(await store.settleUsage(a, again.reservation, { inputTokens: 150, outputTokens: 100, estimated: false }));
      const spent = await store.reserveUsage(a, reserveArgs({ dailyLimit: limit }));
      assert.deepEqual(spent, { ok: false, refused: 'budget', usedTokens: 1050, heldTokens: 0, heldCalls: 0, resetsAt: nextUtcMidnight(h.now()) },
        'one call past the budget (1,050 of 1,000), then refused');
      assert.ok((await store.reserveUsage(a, reserveArgs({ dailyLimit: null }))).ok, 'no budget: always recorded');
    });

    it('24 reservations racing on two stores (two daemons) never pass the budget by more than one call', async function () {
      const a = await h.newUser();
      const limit = 1000;
      const outcomes = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? store2 : store).reserveUsage(a, reserveArgs({ dailyLimit: limit }))));
      const admitted = outcomes.filter((o) => o.ok);
      // Admitted while held < 1000: at 0, 300, 600 and 900. Exactly four, whatever the order.
      assert.equal(admitted.length, 4, JSON.stringify(outcomes.map((o) => [o.ok, o.heldTokens])));
      assert.deepEqual(admitted.map((o) => o.heldTokens).sort((x, y) => x - y), [0, 300, 600, 900], 'each admission saw every earlier one');
      for (const o of outcomes.filter((x) => !x.ok)) assert.equal(o.heldTokens, 1200);
    });

    it("a hold nobody settles (its daemon died) stops counting when it ends; a late settlement still records the counts", async function () {
      this.timeout(20000);
      const a = await h.newUser();
      const r = reserved(await store.reserveUsage(a, reserveArgs({ tokens: 1000, dailyLimit: 1000, holdSeconds: 1 })));
      const blocked = await store2.reserveUsage(a, reserveArgs({ tokens: 1, dailyLimit: 1000 }));
      assert.equal(blocked.ok, false);
      // Wait until the hold has ended (bounded: a few seconds at most).
      const deadline = Date.now() + 10_000;
      let after: ReserveOutcome;
      do {
        await new Promise((resolve) => setTimeout(resolve, 300));
        after = await store2.reserveUsage(a, reserveArgs({ tokens: 1, dailyLimit: 1000 }));
      } while (!after.ok && Date.now() < deadline);
      assert.ok(after.ok, 'the lapsed hold no longer blocks the budget');
      assert.equal(after.heldTokens, 0);
      assert.equal(await store.settleUsage(a, r, { inputTokens: 10, outputTokens: 10, estimated: false }), true, 'the real counts are kept');
      assert.equal((await store.usageSummary(a)).find((x) => x.period === 'today')!.inputTokens, 10);
    });

    if (noDatabase) {
      it.skip(`a signed-in user cannot write the table, only read their own rows; the anon role is refused — not applicable: ${noDatabase}`);
    } else {
      it('a signed-in user cannot write the table (no insert, update or delete: no forging or erasing), only read their own rows; the anon role is refused', async function () {
        const a = await h.newUser();
        const b = await h.newUser();
        reserved(await store.reserveUsage(a, reserveArgs()));
        reserved(await store.reserveUsage(b, reserveArgs()));
        const { writes } = await h.directAccess!(b, a);
        assert.ok(writes.length > 0);
        for (const w of writes) assert.match(w, /refused/, w);
        const outcomes = await h.anonAttempt!();
        assert.ok(outcomes.length > 0);
        for (const o of outcomes) assert.match(o, /refused/, o);
      });
    }

    // Last: the memory store's clock moves on here.
    it('keeps rows from the first day of the previous month on; older ones go at the next reservation', async function () {
      const a = await h.newUser();
      const r = reserved(await store.reserveUsage(a, reserveArgs()));
      await store.settleUsage(a, r, { inputTokens: 1, outputTokens: 1, estimated: false });
      assert.equal((await store.usageSummary(a)).length, 2);
      await h.ageRows(a, 70);
      assert.deepEqual(await store.usageSummary(a), [], 'not this month any more');
      const stored = await h.storedRows(a);
      if (stored) assert.equal(stored.length, 1, 'still stored until the next reservation');
      reserved(await store2.reserveUsage(a, reserveArgs()));
      const after = await h.storedRows(a);
      if (after) assert.deepEqual(after.map((x) => x.state), ['reserved'], 'the 70-day-old row went');
    });
  });
}

// ------------------------------------------------------------------ the backends

function pgUser(db: { addUser(id: string, email: string): Promise<void> }) {
  return async (): Promise<Identity> => {
    const id = randomUUID();
    const email = `${id.slice(0, 8)}@example.test`;
    await db.addUser(id, email);
    return { userId: id, email, authSessionId: randomUUID(), expiresAt: null, claims: { sub: id, role: 'authenticated', aud: 'authenticated', email }, accessToken: 'unused by the pg store' };
  };
}

const storedRowsOf = (db: { query(sql: string, p?: unknown[]): Promise<any[]> }) => (user: Identity) =>
  db.query('select state, input_tokens, output_tokens from public.mcp_usage where user_id = $1 order by id', [user.userId]);
const ageRowsOf = (db: { query(sql: string, p?: unknown[]): Promise<any[]> }) => async (user: Identity, days: number) => {
  await db.query('update public.mcp_usage set day = day - $2::int, created_at = created_at - make_interval(days => $2::int) where user_id = $1', [user.userId, days]);
};

describeUsageStore('PgSessionStore (direct Postgres)', async () => {
  const db = await createTestDatabase();
  const stores: [PgSessionStore, PgSessionStore] = [new PgSessionStore({ connectionString: db.url }), new PgSessionStore({ connectionString: db.url })];
  /** One statement as `role` with `claims`, rolled back; resolves with its rows or the refusal. */
  const as = async (role: 'authenticated' | 'anon', claims: object | null, sql: string): Promise<{ rows: any[] } | { code: string }> => {
    const client = new Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query(`begin; set local role ${role}`);
      if (claims) await client.query("select set_config('request.jwt.claims', $1, true)", [JSON.stringify(claims)]);
      try {
        return { rows: (await client.query(sql)).rows };
      } catch (err) {
        return { code: (err as { code?: string }).code ?? 'unknown' };
      } finally {
        await client.query('rollback');
      }
    } finally {
      await client.end();
    }
  };
  return {
    stores,
    newUser: pgUser(db),
    now: () => Date.now(),
    ageRows: ageRowsOf(db),
    storedRows: storedRowsOf(db),
    async directAccess(user, victim) {
      const read = await as('authenticated', user.claims, 'select user_id from public.mcp_usage');
      assert.ok('rows' in read, `a user reads their own rows: ${JSON.stringify(read)}`);
      const writes: string[] = [];
      for (const sql of [
        `insert into public.mcp_usage (user_id, day, tool, model, reserved_tokens, hold_until, settle_key_hash) values ('${user.userId}', current_date, 't', 'm', 0, now(), '\\x00')`,
        `update public.mcp_usage set input_tokens = 0, output_tokens = 0 where user_id = '${user.userId}'`,
        `update public.mcp_usage set reserved_tokens = 0 where user_id = '${victim.userId}'`,
        `delete from public.mcp_usage where user_id = '${user.userId}'`,
        'select settle_key_hash from public.mcp_usage',
      ]) {
        const r = await as('authenticated', user.claims, sql);
        writes.push(`${sql.slice(0, 40)}: ${'code' in r && r.code === '42501' ? 'refused' : JSON.stringify(r)}`);
      }
      return { visibleUserIds: read.rows.map((r) => r.user_id), writes };
    },
    async anonAttempt() {
      const outcomes: string[] = [];
      for (const sql of [
        "select * from public.mcp_usage_reserve('chat', 'm', 1, null, 60, repeat('k', 40))",
        "select public.mcp_usage_settle(1, repeat('k', 40), 0, 0, false)",
        'select * from public.mcp_usage_summary()',
        'select id from public.mcp_usage',
      ]) {
        const r = await as('anon', null, sql);
        outcomes.push(`${sql}: ${'code' in r && r.code === '42501' ? 'refused' : JSON.stringify(r)}`);
      }
      return outcomes;
    },
    async close() {
      await Promise.all(stores.map((s) => s.end()));
      await db.drop();
    },
  };
});

describeUsageStore('DataApiSessionStore (test PostgREST + test auth server tokens)', async () => {
  const { db, auth, rest, stores, newUser, close } = await startDataApiFixture();
  const call = async (bearer: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${rest.restUrl}/${path}`, {
      method,
      headers: { apikey: auth.anonKey, Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10000),
    });
    const text = await res.text();
    let json: any = null;
    try {
      json = JSON.parse(text);
    } catch { /* empty */ }
    return { status: res.status, json };
  };
  return {
    stores,
    newUser,
    now: () => Date.now(),
    ageRows: ageRowsOf(db),
    storedRows: storedRowsOf(db),
    async directAccess(user, victim) {
      const read = await call(user.accessToken, 'GET', 'mcp_usage?select=user_id');
      assert.equal(read.status, 200, JSON.stringify(read));
      const writes: string[] = [];
      for (const [method, path, body] of [
        ['POST', 'mcp_usage', { user_id: user.userId, day: '2026-01-01', tool: 't', model: 'm', reserved_tokens: 0, hold_until: new Date().toISOString(), settle_key_hash: '\\x00' }],
        ['PATCH', `mcp_usage?user_id=eq.${user.userId}`, { input_tokens: 0, output_tokens: 0 }],
        ['PATCH', `mcp_usage?user_id=eq.${victim.userId}`, { reserved_tokens: 0 }],
        ['DELETE', `mcp_usage?user_id=eq.${user.userId}`, undefined],
      ] as const) {
        const r = await call(user.accessToken, method, path, body);
        writes.push(`${method} ${path}: ${r.json?.code === '42501' ? 'refused' : `HTTP ${r.status} ${JSON.stringify(r.json)}`}`);
      }
      return { visibleUserIds: (read.json as { user_id: string }[]).map((r) => r.user_id), writes };
    },
    async anonAttempt() {
      const outcomes: string[] = [];
      for (const [fn, body] of [
        ['mcp_usage_reserve', { p_tool: 'chat', p_model: 'm', p_tokens: 1, p_daily_limit: null, p_hold_seconds: 60, p_settle_key: 'k'.repeat(40) }],
        ['mcp_usage_settle', { p_reservation_id: 1, p_settle_key: 'k'.repeat(40), p_input_tokens: 0, p_output_tokens: 0, p_estimated: false }],
        ['mcp_usage_summary', {}],
      ] as const) {
        const r = await call(auth.anonKey, 'POST', `rpc/${fn}`, body);
        outcomes.push(`${fn}: ${r.status === 401 && r.json?.code === '42501' ? 'refused' : `HTTP ${r.status} ${r.json?.code}`}`);
      }
      return outcomes;
    },
    close,
  };
});

describeUsageStore('MemorySessionStore (local mode)', async () => {
  let offset = 0;
  const shared = new MemorySessionStore(() => Date.now() + offset);
  return {
    stores: [shared, shared],
    async newUser() {
      const id = `local:${randomUUID().slice(0, 8)}`;
      return { userId: id, email: null, authSessionId: null, expiresAt: null, claims: { sub: id, role: 'local' }, accessToken: 'local' };
    },
    now: () => Date.now() + offset,
    async ageRows(_user, days) {
      offset += days * 86_400_000;
    },
    storedRows: async () => null,
    async close() {},
  };
}, 'local mode has no database: one OS user, whose rows live in the daemon process');

describe('the mcp_usage functions follow the writes-through-functions model', function () {
  this.timeout(60000);
  it('each one a user can call is SECURITY DEFINER with an empty search_path, owned by the table\'s owner; anon and PUBLIC cannot call any', async function () {
    const db = await createTestDatabase();
    try {
      const fns = await db.query<{ name: string; definer: boolean; config: string[] | null; owner: string; table_owner: string; authenticated: boolean; anon: boolean; public_grant: boolean }>(
        `select p.oid::regprocedure::text as name, p.prosecdef as definer, p.proconfig as config,
                pg_get_userbyid(p.proowner) as owner,
                (select pg_get_userbyid(c.relowner) from pg_class c where c.oid = 'public.mcp_usage'::regclass) as table_owner,
                has_function_privilege('authenticated', p.oid, 'execute') as authenticated,
                has_function_privilege('anon', p.oid, 'execute') as anon,
                exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a where a.grantee = 0 and a.privilege_type = 'EXECUTE') as public_grant
           from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          where n.nspname = 'public' and p.proname like 'mcp_usage%'
          order by 1`);
      // mcp_usage_max_calls_per_day() is an immutable constant (SECURITY INVOKER, reads nothing).
      const userFunctions = fns.filter((f) => !f.name.startsWith('mcp_usage_max_calls_per_day('));
      assert.deepEqual(userFunctions.map((f) => f.name.replace(/\(.*/, '')), ['mcp_usage_reserve', 'mcp_usage_settle', 'mcp_usage_summary']);
      for (const f of userFunctions) {
        assert.equal(f.authenticated, true, `${f.name}: signed-in users call it`);
        assert.equal(f.definer, true, `${f.name} is SECURITY DEFINER`);
        assert.deepEqual(f.config, ['search_path=""'], `${f.name} has an empty search_path`);
        assert.equal(f.owner, f.table_owner, `${f.name} is owned by the table's owner`);
        assert.equal(f.anon, false, `${f.name}: anon cannot call it`);
        assert.equal(f.public_grant, false, `${f.name}: no EXECUTE for PUBLIC`);
      }
    } finally {
      await db.drop();
    }
  });
});
