// ONE behavioural suite for every SessionStore backend: the same cases run on
//   - PgSessionStore (direct Postgres, a fresh PostgreSQL 15 database),
//   - DataApiSessionStore through test/postgrest (a PostgREST-compatible endpoint on the same kind of
//     database) with access tokens from the GoTrue-compatible test auth server,
//   - DataApiSessionStore against a real Supabase project, when SUPABASE_URL, SUPABASE_ANON_KEY and
//     SUPABASE_SERVICE_ROLE_KEY are set (users created with the admin API, signed in with supabase-js;
//     the service key stays in this test process: it inspects rows, the stores never see it).
// The rules themselves are the SQL functions in supabase/migrations/; both backends only call them.
// Backend specifics: test/daemon/pgStore.test.ts, test/daemon/dataApiStore.test.ts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createClient } from '@supabase/supabase-js';
import { decodeJwt } from 'jose';
import type { Identity } from '../../server/auth/identity';
import { DataApiSessionStore } from '../../server/sessions/dataApiStore';
import { PgSessionStore } from '../../server/sessions/pgStore';
import type { SessionMetadata, SessionStore } from '../../server/sessions/store';
import { startDataApiFixture } from '../helpers/dataApi';
import { createTestDatabase } from '../helpers/pg';
import { sleep } from '../helpers/wait';

/** A row as stored (read around RLS, for assertions only). */
interface StoredRow {
  user_id: string;
  connection_status: string;
  /** ISO 8601. */
  last_active: string;
  metadata: Record<string, unknown>;
}

export interface StoreHarness {
  /** Two stores on the same backend, as two daemons would hold them. */
  stores: [SessionStore, SessionStore];
  /** A new user of the backend, as the daemon's verifier would hand it to the store. */
  newUser(): Promise<Identity>;
  /** The stored row, read with the backend's owner rights (bypassing RLS); undefined when absent. */
  row(sessionId: string): Promise<StoredRow | undefined>;
  /** Moves the row's last_active `seconds` into the past (as if its heartbeats had stopped). */
  age(sessionId: string, seconds: number): Promise<void>;
  close(): Promise<void>;
}

function meta(daemonId = 'daemon-test', extra: Record<string, unknown> = {}): SessionMetadata {
  return { daemon_id: daemonId, instance: null, client_version: '1.2.3', pid: 4242, ...extra };
}

export function describeStoreBehaviour(name: string, makeHarness: () => Promise<StoreHarness>): void {
  describe(`SessionStore behaviour: ${name}`, function () {
    this.timeout(30000);
    let h: StoreHarness;
    let store: SessionStore;
    let store2: SessionStore;

    before(async function () {
      this.timeout(60000);
      h = await makeHarness();
      [store, store2] = h.stores;
    });

    after(async function () {
      this.timeout(60000);
      await h?.close();
    });

    it("claim inserts a connected row owned by the caller, with the daemon's metadata keys only", async function () {
      const a = await h.newUser();
      const sid = randomUUID();
      assert.deepEqual(await store.claim(a, sid, 5, meta('d-claim', { extra: 'x' })), { ok: true });
      const r = await h.row(sid);
      assert.ok(r, 'a row');
      assert.equal(r.user_id, a.userId);
      assert.equal(r.connection_status, 'connected');
      assert.deepEqual(r.metadata, { daemon_id: 'd-claim', instance: null, client_version: '1.2.3', pid: 4242, transport: 'websocket', client_name: null }, 'other keys are not stored');
    });

    it('refuses a claim over the per-user limit without inserting; another user has their own budget', async function () {
      const a = await h.newUser();
      assert.deepEqual(await store.claim(a, randomUUID(), 2, meta()), { ok: true });
      assert.deepEqual(await store2.claim(a, randomUUID(), 2, meta()), { ok: true });
      const third = randomUUID();
      assert.deepEqual(await store.claim(a, third, 2, meta()), { ok: false, active: 2 });
      assert.equal(await h.row(third), undefined);
      const b = await h.newUser();
      assert.deepEqual(await store.claim(b, randomUUID(), 2, meta()), { ok: true });
    });

    it('admits exactly the limit when 20 claims race through two stores (two daemons) at limit 5', async function () {
      const a = await h.newUser();
      const ids = Array.from({ length: 20 }, () => randomUUID());
      const results = await Promise.all(ids.map((sid, i) => (i % 2 === 0 ? store : store2).claim(a, sid, 5, meta(`d${i % 2}`))));
      assert.equal(results.filter((r) => r.ok).length, 5, JSON.stringify(results));
      for (const r of results) if (!r.ok) assert.equal(r.active, 5);
      const live = (await store.listOwn(a)).filter((r) => r.connection_status === 'connected');
      assert.equal(live.length, 5);
      let inserted = 0;
      for (const sid of ids) if (await h.row(sid)) inserted++;
      assert.equal(inserted, 5, 'refused claims inserted nothing');
    });

    it("reads a connected row not refreshed within the bound as 'stale', and does not count it", async function () {
      const a = await h.newUser();
      const old = randomUUID();
      const fresh = randomUUID();
      await store.claim(a, old, 2, meta());
      await store.claim(a, fresh, 2, meta());
      await h.age(old, 600);

      const list = await store2.listOwn(a);
      assert.equal(list.find((r) => r.session_id === old)?.connection_status, 'stale');
      assert.equal(list.find((r) => r.session_id === fresh)?.connection_status, 'connected');
      assert.equal((await h.row(old))?.connection_status, 'connected', 'the stored status is unchanged');

      assert.deepEqual(await store.claim(a, randomUUID(), 2, meta()), { ok: true }, 'the stale row leaves room');
      assert.deepEqual(await store2.claim(a, randomUUID(), 2, meta()), { ok: false, active: 2 });
    });

    it('listOwn returns own rows newest first with ISO timestamps and metadata', async function () {
      const a = await h.newUser();
      const first = randomUUID();
      const second = randomUUID();
      await store.claim(a, first, 5, meta('d-list'));
      await sleep(5);
      await store2.claim(a, second, 5, meta('d-list'));
      const list = await store.listOwn(a);
      assert.deepEqual(list.map((r) => r.session_id), [second, first]);
      for (const r of list) {
        assert.equal(new Date(r.created_at).toISOString(), r.created_at);
        assert.equal(new Date(r.last_active).toISOString(), r.last_active);
        assert.ok(Math.abs(Date.parse(r.created_at) - Date.now()) < 120_000, `created_at ${r.created_at} is about now`);
        assert.equal(r.connection_status, 'connected');
        assert.equal(r.metadata.daemon_id, 'd-list');
      }
    });

    it('close sets disconnected or expired, only on a connected row', async function () {
      const a = await h.newUser();
      const s1 = randomUUID();
      const s2 = randomUUID();
      await store.claim(a, s1, 5, meta());
      await store.claim(a, s2, 5, meta());
      await store.close(a, s1, 'disconnected');
      await store2.close(a, s2, 'expired');
      assert.equal((await h.row(s1))?.connection_status, 'disconnected');
      assert.equal((await h.row(s2))?.connection_status, 'expired');
      await store.close(a, s1, 'expired'); // already ended: no change, no error
      assert.equal((await h.row(s1))?.connection_status, 'disconnected');
      await store.close(a, randomUUID(), 'disconnected'); // unknown: no error
      const list = await store.listOwn(a);
      assert.deepEqual(new Map(list.map((r) => [r.session_id, r.connection_status])), new Map([[s2, 'expired'], [s1, 'disconnected']]));
    });

    it('touch refreshes last_active of a connected row', async function () {
      const a = await h.newUser();
      const sid = randomUUID();
      await store.claim(a, sid, 5, meta());
      await h.age(sid, 60);
      const before = Date.parse((await h.row(sid))!.last_active);
      assert.equal(await store.touch(a, sid), true);
      const after = Date.parse((await h.row(sid))!.last_active);
      assert.ok(after > before + 30_000, `${new Date(after).toISOString()} > ${new Date(before).toISOString()}`);
    });

    it('touch returns false for a row ended elsewhere (closed through the other daemon) and for an unknown session', async function () {
      const a = await h.newUser();
      const sid = randomUUID();
      await store.claim(a, sid, 5, meta());
      assert.equal(await store.touch(a, sid), true);
      await store2.close(a, sid, 'disconnected');
      assert.equal(await store.touch(a, sid), false);
      assert.equal((await h.row(sid))?.connection_status, 'disconnected', 'a touch does not revive an ended row');
      assert.equal(await store.touch(a, randomUUID()), false);
    });

    it("isolates users: B never sees, touches or closes A's rows", async function () {
      const a = await h.newUser();
      const b = await h.newUser();
      const sidA = randomUUID();
      const sidB = randomUUID();
      await store.claim(a, sidA, 5, meta());
      await store2.claim(b, sidB, 5, meta());
      await h.age(sidA, 30);
      const stamp = (await h.row(sidA))!.last_active;

      for (const s of [store, store2]) {
        const listB = await s.listOwn(b);
        assert.deepEqual(listB.map((r) => r.session_id), [sidB]);
        assert.equal(await s.touch(b, sidA), false);
        await s.close(b, sidA, 'expired');
      }
      const r = await h.row(sidA);
      assert.equal(r?.connection_status, 'connected');
      assert.equal(r?.last_active, stamp, "B's touch did not refresh A's row");
      assert.deepEqual((await store.listOwn(a)).map((x) => x.session_id), [sidA]);
    });
  });
}

// ------------------------------------------------------------------ the backends

describeStoreBehaviour('PgSessionStore (direct Postgres)', async () => {
  const db = await createTestDatabase();
  const stores: [PgSessionStore, PgSessionStore] = [
    new PgSessionStore({ connectionString: db.url, max: 10 }),
    new PgSessionStore({ connectionString: db.url, max: 10 }),
  ];
  return {
    stores,
    async newUser() {
      const id = randomUUID();
      const email = `${id.slice(0, 8)}@example.test`;
      await db.addUser(id, email);
      return {
        userId: id,
        email,
        authSessionId: randomUUID(),
        expiresAt: null,
        claims: { sub: id, role: 'authenticated', aud: 'authenticated', email },
        accessToken: 'unused by the pg store',
      };
    },
    async row(sessionId) {
      const [r] = await db.query('select user_id, connection_status, last_active, metadata from public.mcp_sessions where session_id = $1', [sessionId]);
      return r ? { ...r, last_active: (r.last_active as Date).toISOString() } : undefined;
    },
    async age(sessionId, seconds) {
      await db.query('update public.mcp_sessions set last_active = last_active - make_interval(secs => $2) where session_id = $1', [sessionId, seconds]);
    },
    async close() {
      await Promise.all(stores.map((s) => s.end()));
      await db.drop();
    },
  };
});

describeStoreBehaviour('DataApiSessionStore (test PostgREST + test auth server tokens)', async () => {
  const { db, auth, rest, stores, newUser, close } = await startDataApiFixture();
  return {
    stores,
    newUser,
    async row(sessionId) {
      const [r] = await db.query('select user_id, connection_status, last_active, metadata from public.mcp_sessions where session_id = $1', [sessionId]);
      return r ? { ...r, last_active: (r.last_active as Date).toISOString() } : undefined;
    },
    async age(sessionId, seconds) {
      await db.query('update public.mcp_sessions set last_active = last_active - make_interval(secs => $2) where session_id = $1', [sessionId, seconds]);
    },
    close,
  };
});

// ------------------------------------------------------------------ a real Supabase project (opt-in)

const REAL_URL = process.env.SUPABASE_URL?.replace(/\/+$/, '') ?? '';
const REAL_ANON_KEY = process.env.SUPABASE_ANON_KEY ?? '';
const REAL_SERVICE_KEY = process.env.SUPABASE_SERVICE_ROLE_KEY ?? '';

if (REAL_URL && REAL_ANON_KEY && REAL_SERVICE_KEY) {
  const [url, anonKey, serviceKey] = [REAL_URL, REAL_ANON_KEY, REAL_SERVICE_KEY];
  describeStoreBehaviour(`DataApiSessionStore against the real Supabase project ${new URL(url).host}`, async () => {
    const admin = { apikey: serviceKey, Authorization: `Bearer ${serviceKey}`, 'Content-Type': 'application/json' };
    const created: string[] = [];
    const stores: [DataApiSessionStore, DataApiSessionStore] = [
      new DataApiSessionStore({ supabaseUrl: url, anonKey }),
      new DataApiSessionStore({ supabaseUrl: url, anonKey }),
    ];
    const rest = async (path: string, init: RequestInit = {}) => {
      const res = await fetch(`${url}/rest/v1/${path}`, { ...init, headers: { ...admin, ...(init.headers as Record<string, string>) } });
      const text = await res.text();
      if (!res.ok) throw new Error(`${init.method ?? 'GET'} /rest/v1/${path.split('?')[0]}: HTTP ${res.status} ${text}`);
      return text ? JSON.parse(text) : null;
    };
    const row = async (sessionId: string): Promise<StoredRow | undefined> => {
      const rows = await rest(`mcp_sessions?select=user_id,connection_status,last_active,metadata&session_id=eq.${encodeURIComponent(sessionId)}`);
      const r = rows[0];
      return r ? { ...r, last_active: new Date(r.last_active).toISOString() } : undefined;
    };
    return {
      stores,
      async newUser() {
        const email = `exai-store-test-${randomUUID().slice(0, 12)}@example.com`;
        const password = `pw-${randomUUID()}`;
        const res = await fetch(`${url}/auth/v1/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ email, password, email_confirm: true }) });
        const user = (await res.json()) as { id?: string; msg?: string; message?: string };
        if (!res.ok || !user.id) throw new Error(`admin create user: HTTP ${res.status} ${user.msg ?? user.message ?? ''}`);
        created.push(user.id);
        const client = createClient(url, anonKey, { auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false } });
        const { data, error } = await client.auth.signInWithPassword({ email, password });
        if (error || !data.session) throw new Error(`sign-in: ${error?.message ?? 'no session'}`);
        const token = data.session.access_token;
        const claims = decodeJwt(token);
        return {
          userId: String(claims.sub),
          email,
          authSessionId: typeof claims.session_id === 'string' ? claims.session_id : null,
          expiresAt: claims.exp ?? null,
          claims: claims as Record<string, unknown>,
          accessToken: token,
        };
      },
      row,
      async age(sessionId, seconds) {
        const r = await row(sessionId);
        assert.ok(r, `row ${sessionId}`);
        const lastActive = new Date(Date.parse(r.last_active) - seconds * 1000).toISOString();
        await rest(`mcp_sessions?session_id=eq.${encodeURIComponent(sessionId)}`, { method: 'PATCH', body: JSON.stringify({ last_active: lastActive }) });
      },
      async close() {
        // Deleting the users deletes their rows (on delete cascade).
        await Promise.all(created.map((id) => fetch(`${url}/auth/v1/admin/users/${id}`, { method: 'DELETE', headers: admin }).then((r) => r.body?.cancel())));
      },
    };
  });
} else {
  describe('SessionStore behaviour: DataApiSessionStore against a real Supabase project', function () {
    it.skip('skipped: set SUPABASE_URL, SUPABASE_ANON_KEY and SUPABASE_SERVICE_ROLE_KEY to run the Data API cases against a real project');
  });
}
