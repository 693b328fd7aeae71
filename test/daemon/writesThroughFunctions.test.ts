// A signed-in user holds the anon key (it ships with the extension) and their own access token, so
// they can call the Supabase Data API directly, not only through the daemon. Here they try, through
// test/postgrest (the PostgREST-compatible endpoint) with tokens from the GoTrue-compatible test
// server: writing mcp_sessions / mcp_threads / mcp_thread_messages directly is refused (only the SQL
// functions write: supabase/migrations/20261201000000_writes_through_functions.sql), the old trick of
// backdating last_active to free a slot no longer works, and what the functions accept is bounded.
// The 20-way claim race over two stores: test/daemon/storeBehaviour.test.ts (both database backends).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Identity } from '../../server/auth/identity';
import type { SessionMetadata } from '../../server/sessions/store';
import { startDataApiFixture, type DataApiFixture } from '../helpers/dataApi';

const meta = (daemonId = 'direct-writes-test'): SessionMetadata => ({ daemon_id: daemonId, instance: 'vscode-1', client_version: '1.0.0', pid: 4242 });

interface Answer {
  status: number;
  body: any;
}

describe('Writes only through the SQL functions: a signed-in user calling the Data API directly', function () {
  this.timeout(30000);
  let f: DataApiFixture;

  before(async function () {
    this.timeout(60000);
    f = await startDataApiFixture();
  });
  after(async function () {
    this.timeout(30000);
    await f?.close();
  });

  /** One request as `who` (the anon key as apikey, their token as Bearer), as supabase-js would send it. */
  const asUser = async (who: Identity, method: string, path: string, body?: unknown): Promise<Answer> => {
    const res = await fetch(`${f.rest.restUrl}/${path}`, {
      method,
      headers: { apikey: f.auth.anonKey, Authorization: `Bearer ${who.accessToken}`, 'Content-Type': 'application/json', Prefer: 'return=representation' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const rpc = (who: Identity, fn: string, args: Record<string, unknown>) => asUser(who, 'POST', `rpc/${fn}`, args);
  const assertRefused = (answer: Answer, what: string) => {
    assert.equal(answer.status, 403, `${what}: ${JSON.stringify(answer)}`);
    assert.equal(answer.body.code, '42501', what);
    assert.match(answer.body.message, /^permission denied for table mcp_/, what);
  };
  /** `sql` in a transaction as role authenticated with `who`'s claims, as PostgREST runs a request; rolled back. */
  const asUserInSql = async (who: Identity, sql: string, params: unknown[]) => {
    await f.db.query('begin');
    try {
      await f.db.query('set local role authenticated');
      await f.db.query("select set_config('request.jwt.claims', $1, true)", [JSON.stringify({ sub: who.userId, role: 'authenticated' })]);
      return await f.db.query(sql, params);
    } finally {
      await f.db.query('rollback');
    }
  };
  const sessionRow = async (sessionId: string) =>
    (await f.db.query('select user_id, connection_status, last_active, created_at, metadata from public.mcp_sessions where session_id = $1', [sessionId]))[0];

  it('INSERT, UPDATE and DELETE on mcp_sessions, mcp_threads and mcp_thread_messages are refused (403, 42501); nothing changes', async function () {
    const a = await f.newUser();
    const [store] = f.stores;
    const sid = randomUUID();
    assert.deepEqual(await store.claim(a, sid, 5, meta()), { ok: true });
    const threadId = await store.createThread(a, 'mine');
    await store.appendMessage(a, threadId, 'user', 'hello');
    const before = {
      sessions: await f.db.query('select * from public.mcp_sessions where user_id = $1 order by id', [a.userId]),
      threads: await f.db.query('select * from public.mcp_threads where user_id = $1 order by id', [a.userId]),
      messages: await f.db.query('select * from public.mcp_thread_messages where user_id = $1 order by id', [a.userId]),
    };
    const hourAgo = new Date(Date.now() - 3600_000).toISOString();

    const attempts: [string, Promise<Answer>][] = [
      ['insert a session row', asUser(a, 'POST', 'mcp_sessions', { session_id: randomUUID(), user_id: a.userId, metadata: { blob: 'x'.repeat(100_000) } })],
      ['insert a backdated session row', asUser(a, 'POST', 'mcp_sessions', [{ session_id: randomUUID(), user_id: a.userId, created_at: hourAgo, last_active: hourAgo }])],
      ['backdate last_active', asUser(a, 'PATCH', `mcp_sessions?session_id=eq.${sid}`, { last_active: hourAgo })],
      ['end the own row directly', asUser(a, 'PATCH', `mcp_sessions?session_id=eq.${sid}`, { connection_status: 'disconnected' })],
      ['delete the own session row', asUser(a, 'DELETE', `mcp_sessions?session_id=eq.${sid}`)],
      ['insert a thread', asUser(a, 'POST', 'mcp_threads', { user_id: a.userId, title: 'direct' })],
      ['rename a thread', asUser(a, 'PATCH', `mcp_threads?id=eq.${threadId}`, { title: 'renamed' })],
      ['delete a thread', asUser(a, 'DELETE', `mcp_threads?id=eq.${threadId}`)],
      ['insert a message of any size', asUser(a, 'POST', 'mcp_thread_messages', { thread_id: threadId, user_id: a.userId, role: 'user', content: 'x'.repeat(500_000) })],
      ['edit a message', asUser(a, 'PATCH', `mcp_thread_messages?thread_id=eq.${threadId}`, { content: 'edited' })],
      ['delete a message', asUser(a, 'DELETE', `mcp_thread_messages?thread_id=eq.${threadId}`)],
    ];
    for (const [what, answer] of attempts) assertRefused(await answer, what);

    assert.deepEqual(await f.db.query('select * from public.mcp_sessions where user_id = $1 order by id', [a.userId]), before.sessions);
    assert.deepEqual(await f.db.query('select * from public.mcp_threads where user_id = $1 order by id', [a.userId]), before.threads);
    assert.deepEqual(await f.db.query('select * from public.mcp_thread_messages where user_id = $1 order by id', [a.userId]), before.messages);

    // Reading one's own rows stays allowed (and RLS keeps it to them).
    const own = await asUser(a, 'GET', `mcp_sessions?select=session_id,connection_status`);
    assert.deepEqual(own, { status: 200, body: [{ session_id: sid, connection_status: 'connected' }] });
    const b = await f.newUser();
    assert.deepEqual(await asUser(b, 'GET', `mcp_sessions?select=session_id&session_id=eq.${sid}`), { status: 200, body: [] });
  });

  it('backdating last_active frees no slot: at the limit, a further claim is still refused', async function () {
    const a = await f.newUser();
    const [store, store2] = f.stores;
    const sids = [randomUUID(), randomUUID()];
    assert.deepEqual(await store.claim(a, sids[0], 2, meta('d-a')), { ok: true });
    assert.deepEqual(await store2.claim(a, sids[1], 2, meta('d-b')), { ok: true });
    const stamps = await Promise.all(sids.map(async (s) => (await sessionRow(s)).last_active.toISOString()));

    const longAgo = new Date(Date.now() - 24 * 3600_000).toISOString();
    for (const sid of sids) assertRefused(await asUser(a, 'PATCH', `mcp_sessions?session_id=eq.${sid}`, { last_active: longAgo }), 'backdate');
    assertRefused(await asUser(a, 'PATCH', 'mcp_sessions?connection_status=eq.connected', { last_active: longAgo }), 'backdate all');

    const third = randomUUID();
    assert.deepEqual(await store.claim(a, third, 2, meta('d-a')), { ok: false, active: 2 });
    assert.equal(await sessionRow(third), undefined);
    assert.deepEqual(await Promise.all(sids.map(async (s) => (await sessionRow(s)).last_active.toISOString())), stamps);
    assert.deepEqual((await store.listOwn(a)).map((r) => r.connection_status), ['connected', 'connected']);
  });

  // The clamp of p_max_per_user to 1000 takes 1000 claims to show: test/daemon/pgStore.test.ts.
  it('the functions called directly: no caller-set time, no foreign session, no unbounded metadata or content, no bad id', async function () {
    const a = await f.newUser();
    const b = await f.newUser();
    const [store] = f.stores;
    const bSid = randomUUID();
    assert.deepEqual(await store.claim(b, bSid, 5, meta()), { ok: true });

    // Liveness is the database's: a touch or a claim takes now(), and no argument names a time.
    const sid = randomUUID();
    const claim = await rpc(a, 'mcp_claim_session', { p_session_id: sid, p_max_per_user: 2147483647, p_metadata: { ...meta(), blob: 'x'.repeat(200_000), pid: 7 } });
    assert.deepEqual(claim, { status: 200, body: [{ claimed: true, active: 1 }] });
    const r = await sessionRow(sid);
    assert.deepEqual(r.metadata, { daemon_id: 'direct-writes-test', instance: 'vscode-1', client_version: '1.0.0', pid: 7, transport: 'websocket', client_name: null }, 'only the daemon\'s keys are stored');
    const [{ db_now: dbNow }] = await f.db.query('select now() as db_now');
    assert.ok(Math.abs(r.created_at.getTime() - dbNow.getTime()) < 60_000 && r.last_active.getTime() === r.created_at.getTime());
    assert.equal((await rpc(a, 'mcp_touch_session', { p_session_id: sid, p_last_active: '2000-01-01T00:00:00Z' })).body.code, 'PGRST202');

    // B's session: A can neither touch nor end it (the functions filter by auth.uid() themselves).
    assert.deepEqual(await rpc(a, 'mcp_touch_session', { p_session_id: bSid }), { status: 200, body: false });
    assert.deepEqual(await rpc(a, 'mcp_close_session', { p_session_id: bSid, p_status: 'expired' }), { status: 200, body: false });
    assert.equal((await sessionRow(bSid)).connection_status, 'connected');

    const refused: [string, Record<string, unknown>][] = [
      ['a session id that is no UUID', { p_session_id: 'x'.repeat(5000), p_max_per_user: 5, p_metadata: meta() }],
      ['a daemon_id of 10,000 characters', { p_session_id: randomUUID(), p_max_per_user: 5, p_metadata: { ...meta(), daemon_id: 'd'.repeat(10_000) } }],
      ['metadata that is no object', { p_session_id: randomUUID(), p_max_per_user: 5, p_metadata: ['a'] }],
      ['a negative limit', { p_session_id: randomUUID(), p_max_per_user: -1, p_metadata: meta() }],
    ];
    for (const [what, args] of refused) {
      const answer = await rpc(a, 'mcp_claim_session', args);
      assert.equal(answer.status, 400, `${what}: ${JSON.stringify(answer).slice(0, 300)}`);
      assert.equal(answer.body.code, '22023', what);
    }
    assert.equal(Number((await f.db.query('select count(*) as n from public.mcp_sessions where user_id = $1', [a.userId]))[0].n), 1, 'nothing else inserted');

    // Thread content is bounded too.
    const threadId = await store.createThread(a, 't'.repeat(1000));
    assert.equal((await store.listThreads(a))[0].title, 't'.repeat(200), 'titles are cut to 200 characters');
    // Over the Data API a body that large is refused before it reaches the database, so ask the function itself.
    await assert.rejects(
      asUserInSql(a, "select public.mcp_thread_append($1, 'user', repeat('x', 1000001))", [threadId]),
      (err: { code?: string; message?: string }) => err.code === '22001' && /longer than 1,000,000 characters/.test(err.message ?? ''),
    );
  });

  it('deleting a thread is a function: own threads only, messages go with it', async function () {
    const a = await f.newUser();
    const b = await f.newUser();
    const [store] = f.stores;
    const mine = await store.createThread(a, 'to delete');
    await store.appendMessage(a, mine, 'user', 'bye');
    const theirs = await store.createThread(b, 'not yours');
    assert.deepEqual(await rpc(a, 'mcp_thread_delete', { p_thread_id: theirs }), { status: 200, body: false });
    assert.equal((await store.listThreads(b)).length, 1);
    assert.deepEqual(await rpc(a, 'mcp_thread_delete', { p_thread_id: mine }), { status: 200, body: true });
    assert.deepEqual(await store.listThreads(a), []);
    assert.deepEqual(await f.db.query('select 1 from public.mcp_thread_messages where thread_id = $1', [mine]), []);
    assert.deepEqual(await rpc(a, 'mcp_thread_delete', { p_thread_id: mine }), { status: 200, body: false });
  });
});
