// ONE behavioural suite for every ThreadStore backend (the chat tool's conversation memory):
//   - PgSessionStore (direct Postgres, a fresh PostgreSQL 15 database with supabase/migrations),
//   - DataApiSessionStore through test/postgrest with tokens from the GoTrue-compatible test server,
//   - MemorySessionStore (local mode).
// The rules are the mcp_thread_* functions of supabase/migrations/ (20261124000200_mcp_threads.sql, with
// the bounds of 20261201000000_writes_through_functions.sql); the memory store mirrors them. Plus the anon
// role being refused, on both database backends (local mode has no roles: the suite says so).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import type { Identity } from '../../server/auth/identity';
import { DataApiSessionStore } from '../../server/sessions/dataApiStore';
import { BYTES_KEPT_PER_THREAD, MemorySessionStore, MESSAGES_KEPT_PER_THREAD, THREADS_KEPT_PER_USER } from '../../server/sessions/memoryStore';
import { PgSessionStore } from '../../server/sessions/pgStore';
import { ThreadNotFound, type ThreadStore } from '../../server/sessions/store';
import { startDataApiFixture } from '../helpers/dataApi';
import { createTestDatabase } from '../helpers/pg';
import { sleep } from '../helpers/wait';

interface ThreadHarness {
  stores: [ThreadStore, ThreadStore];
  newUser(): Promise<Identity>;
  /** Rows of a thread as stored (around RLS); null for the memory store. */
  storedMessages(threadId: string): Promise<{ user_id: string; role: string; content: string }[] | null>;
  /** Tries the functions as the anon role; resolves with what happened. Null: not applicable. */
  anonAttempt?(): Promise<string[]>;
  close(): Promise<void>;
}

async function rejectsNotFound(p: Promise<unknown>, threadId: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ThreadNotFound, `ThreadNotFound, got ${String(err)}`);
    assert.equal(err.threadId, threadId);
    assert.match(err.message, /belongs to another user/);
    return true;
  });
}

/** `anonNotApplicable`: why the anon-role case cannot run on this backend (printed as the skipped test's title). */
function describeThreadStore(name: string, makeHarness: () => Promise<ThreadHarness>, anonNotApplicable?: string): void {
  describe(`ThreadStore behaviour: ${name}`, function () {
    this.timeout(30000);
    let h: ThreadHarness;
    let store: ThreadStore;
    let store2: ThreadStore;

    before(async function () {
      this.timeout(60000);
      h = await makeHarness();
      [store, store2] = h.stores;
    });
    after(async function () {
      this.timeout(60000);
      await h?.close();
    });

    it('creates a thread, appends in order and reads them back through either store', async function () {
      const a = await h.newUser();
      const id = await store.createThread(a, '  First question  ');
      assert.match(id, /^[0-9a-f-]{36}$/);
      const ids: number[] = [];
      ids.push(await store.appendMessage(a, id, 'user', 'u1'));
      ids.push(await store2.appendMessage(a, id, 'assistant', 'a1'));
      ids.push(await store.appendMessage(a, id, 'user', 'u2'));
      assert.ok(ids[0] < ids[1] && ids[1] < ids[2], `increasing ids ${ids}`);
      const messages = await store2.threadMessages(a, id, 20);
      assert.deepEqual(messages.map((m) => [m.role, m.content]), [['user', 'u1'], ['assistant', 'a1'], ['user', 'u2']]);
      assert.deepEqual(messages.map((m) => m.id), ids);
      for (const m of messages) assert.equal(new Date(m.created_at).toISOString(), m.created_at);
      const stored = await h.storedMessages(id);
      if (stored) for (const r of stored) assert.equal(r.user_id, a.userId);
    });

    it('returns the LAST n messages, oldest first', async function () {
      const a = await h.newUser();
      const id = await store.createThread(a, 'limit');
      for (let i = 1; i <= 7; i++) await store.appendMessage(a, id, i % 2 ? 'user' : 'assistant', `m${i}`);
      assert.deepEqual((await store.threadMessages(a, id, 3)).map((m) => m.content), ['m5', 'm6', 'm7']);
      assert.deepEqual((await store2.threadMessages(a, id, 1)).map((m) => m.content), ['m7']);
      assert.equal((await store.threadMessages(a, id, 100)).length, 7);
      assert.deepEqual(await store.threadMessages(a, await store.createThread(a, null), 5), [], 'a new thread is empty');
    });

    it('lists own threads newest first with titles and counts', async function () {
      const a = await h.newUser();
      const t1 = await store.createThread(a, 'one');
      await sleep(5);
      const t2 = await store2.createThread(a, 'two');
      await store.appendMessage(a, t1, 'user', 'x');
      await store.appendMessage(a, t1, 'assistant', 'y');
      const list = await store2.listThreads(a);
      assert.deepEqual(list.map((t) => t.id), [t2, t1]);
      assert.deepEqual(list.map((t) => t.title), ['two', 'one']);
      assert.deepEqual(list.map((t) => t.message_count), [0, 2]);
      for (const t of list) {
        assert.equal(new Date(t.created_at).toISOString(), t.created_at);
        assert.ok(Date.parse(t.updated_at) >= Date.parse(t.created_at));
      }
      assert.ok(Date.parse(list[1].updated_at) > Date.parse(list[1].created_at) - 1, 'append bumps updated_at');
    });

    it("isolates users: B can neither list, read nor append to A's thread", async function () {
      const a = await h.newUser();
      const b = await h.newUser();
      const id = await store.createThread(a, 'secret');
      await store.appendMessage(a, id, 'user', 'only for A');
      for (const s of [store, store2]) {
        assert.deepEqual(await s.listThreads(b), []);
        await rejectsNotFound(s.threadMessages(b, id, 20), id);
        await rejectsNotFound(s.appendMessage(b, id, 'user', 'injected by B'), id);
      }
      assert.deepEqual((await store.threadMessages(a, id, 20)).map((m) => m.content), ['only for A']);
      const stored = await h.storedMessages(id);
      if (stored) assert.deepEqual(stored.map((r) => r.content), ['only for A']);
    });

    it('an unknown or malformed thread id is ThreadNotFound', async function () {
      const a = await h.newUser();
      const unknown = randomUUID();
      await rejectsNotFound(store.threadMessages(a, unknown, 5), unknown);
      await rejectsNotFound(store.appendMessage(a, unknown, 'user', 'x'), unknown);
      await rejectsNotFound(store.threadMessages(a, 'not-a-uuid', 5), 'not-a-uuid');
    });

    if (anonNotApplicable) {
      it.skip(`refuses the anon role — not applicable: ${anonNotApplicable}`);
    } else {
      it('refuses the anon role', async function () {
        assert.ok(h.anonAttempt, 'a database backend must try the anon role');
        const outcomes = await h.anonAttempt();
        assert.ok(outcomes.length > 0);
        for (const o of outcomes) assert.match(o, /refused/, o);
      });
    }

    it(`keeps the ${THREADS_KEPT_PER_USER} newest threads of a user (older ones go with their messages); other users keep theirs`, async function () {
      this.timeout(60000);
      const a = await h.newUser();
      const b = await h.newUser();
      const bThread = await store.createThread(b, 'b');
      const first = await store.createThread(a, 'the oldest');
      await store.appendMessage(a, first, 'user', 'goes with its thread');
      for (let i = 1; i < THREADS_KEPT_PER_USER; i++) await (i % 2 ? store : store2).createThread(a, `t${i}`);
      assert.equal((await store.listThreads(a)).length, THREADS_KEPT_PER_USER, 'at the bound, nothing is dropped');
      const newest = await store.createThread(a, 'one too many');
      const list = await store2.listThreads(a);
      assert.equal(list.length, THREADS_KEPT_PER_USER);
      assert.equal(list[0].id, newest);
      assert.ok(!list.some((t) => t.id === first), 'the oldest thread is gone');
      await rejectsNotFound(store.threadMessages(a, first, 5), first);
      const stored = await h.storedMessages(first);
      if (stored) assert.deepEqual(stored, [], 'its messages went with it');
      assert.deepEqual((await store.listThreads(b)).map((t) => t.id), [bThread]);
    });

    it(`a thread keeps its newest ${MESSAGES_KEPT_PER_THREAD} messages`, async function () {
      this.timeout(60000);
      const a = await h.newUser();
      const id = await store.createThread(a, 'long');
      for (let i = 0; i < MESSAGES_KEPT_PER_THREAD + 3; i++) await store.appendMessage(a, id, i % 2 ? 'assistant' : 'user', `m${i}`);
      const all = await store2.threadMessages(a, id, 1000);
      assert.equal(all.length, MESSAGES_KEPT_PER_THREAD);
      assert.equal(all[0].content, 'm3');
      assert.equal(all.at(-1)!.content, `m${MESSAGES_KEPT_PER_THREAD + 2}`);
      assert.equal((await store.listThreads(a))[0].message_count, MESSAGES_KEPT_PER_THREAD);
    });

    it(`a thread keeps at most ${BYTES_KEPT_PER_THREAD} bytes of content (UTF-8), dropping its oldest messages`, async function () {
      this.timeout(60000);
      const a = await h.newUser();
      const id = await store.createThread(a, 'big');
      // 450,000 characters, 900,000 bytes each: three are 1.35 M characters but 2.7 MB.
      const big = (tag: string) => tag + 'é'.repeat(450_000 - 1);
      for (const tag of ['1', '2', '3']) await store.appendMessage(a, id, 'user', big(tag));
      const kept = await store2.threadMessages(a, id, 10);
      assert.deepEqual(kept.map((m) => m.content[0]), ['2', '3'], 'the oldest went');
      assert.ok(kept.every((m) => m.content.length === 450_000));
      await store.appendMessage(a, id, 'assistant', 'small');
      assert.deepEqual((await store.threadMessages(a, id, 10)).map((m) => m.content[0]), ['2', '3', 's'], 'under the bound, nothing more goes');
    });
  });
}

// ------------------------------------------------------------------ the backends

describeThreadStore('PgSessionStore (direct Postgres)', async () => {
  const db = await createTestDatabase();
  const stores: [PgSessionStore, PgSessionStore] = [new PgSessionStore({ connectionString: db.url }), new PgSessionStore({ connectionString: db.url })];
  return {
    stores,
    async newUser() {
      const id = randomUUID();
      const email = `${id.slice(0, 8)}@example.test`;
      await db.addUser(id, email);
      return { userId: id, email, authSessionId: randomUUID(), expiresAt: null, claims: { sub: id, role: 'authenticated', aud: 'authenticated', email }, accessToken: 'unused by the pg store' };
    },
    storedMessages: (threadId) => db.query('select user_id, role, content from public.mcp_thread_messages where thread_id = $1 order by id', [threadId]),
    async anonAttempt() {
      const client = new Client({ connectionString: db.url });
      await client.connect();
      const outcomes: string[] = [];
      try {
        for (const sql of [
          "select public.mcp_thread_create('x')",
          'select * from public.mcp_thread_list()',
          `select * from public.mcp_thread_messages('${randomUUID()}', 5)`,
          `select public.mcp_thread_append('${randomUUID()}', 'user', 'x')`,
          `select public.mcp_thread_delete('${randomUUID()}')`,
          'select * from public.mcp_threads',
          'select * from public.mcp_thread_messages',
        ]) {
          await client.query('begin; set local role anon');
          try {
            await client.query(sql);
            outcomes.push(`${sql}: allowed`);
          } catch (err) {
            const code = (err as { code?: string }).code;
            outcomes.push(`${sql}: ${code === '42501' ? 'refused' : `failed ${code}`}`);
          }
          await client.query('rollback');
        }
      } finally {
        await client.end();
      }
      return outcomes;
    },
    async close() {
      await Promise.all(stores.map((s) => s.end()));
      await db.drop();
    },
  };
});

describeThreadStore('DataApiSessionStore (test PostgREST + test auth server tokens)', async () => {
  const { db, auth, rest, stores, newUser, close } = await startDataApiFixture();
  return {
    stores,
    newUser,
    storedMessages: (threadId) => db.query('select user_id, role, content from public.mcp_thread_messages where thread_id = $1 order by id', [threadId]),
    async anonAttempt() {
      // The anon key as the bearer: PostgREST runs as `anon`, which has no EXECUTE on these functions.
      const outcomes: string[] = [];
      for (const [fn, body] of [
        ['mcp_thread_create', { p_title: 'x' }],
        ['mcp_thread_list', {}],
        ['mcp_thread_messages', { p_thread_id: randomUUID(), p_limit: 5 }],
        ['mcp_thread_append', { p_thread_id: randomUUID(), p_role: 'user', p_content: 'x' }],
        ['mcp_thread_delete', { p_thread_id: randomUUID() }],
      ] as const) {
        const res = await fetch(`${rest.restUrl}/rpc/${fn}`, {
          method: 'POST',
          headers: { apikey: auth.anonKey, Authorization: `Bearer ${auth.anonKey}`, 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(10000),
        });
        const json = (await res.json()) as { code?: string };
        outcomes.push(`${fn}: ${res.status === 401 && json.code === '42501' ? 'refused' : `HTTP ${res.status} ${json.code}`}`);
      }
      return outcomes;
    },
    close,
  };
});

describeThreadStore('MemorySessionStore (local mode)', async () => {
  const shared = new MemorySessionStore();
  return {
    stores: [shared, shared],
    async newUser() {
      const id = `local:${randomUUID().slice(0, 8)}`;
      return { userId: id, email: null, authSessionId: null, expiresAt: null, claims: { sub: id, role: 'local' }, accessToken: 'local' };
    },
    storedMessages: async () => null,
    async close() {},
  };
}, 'local mode has no database roles: the daemon hands this store only the one local OS user, never an anonymous caller');
