// PendingEndings: the daemon-wide queue of session endings that the store could not take during an
// outage. A fake store that can be "down"; short backoffs; every wait bounded. Timing assertions are
// lower bounds only (a slow machine makes waits longer, never shorter) or generous upper bounds on
// how many tries were made.
import assert from 'node:assert/strict';
import type { Identity } from '../../server/auth/identity';
import { createLogger, Redactor, type LogSink } from '../../server/log';
import { PendingEndings, retryDelayMs, type PendingEndingsOptions } from '../../server/sessions/pendingEndings';
import { StoreUnavailable } from '../../server/sessions/store';
import { sleep, waitFor } from '../helpers/wait';

class FakeStore {
  up = true;
  /** An error for this session instead of the store's usual answer. */
  failFor = new Map<string, Error>();
  attempts: { sessionId: string; at: number }[] = [];
  written = new Map<string, string>();
  private inFlight = 0;
  maxInFlight = 0;

  async close(_caller: Identity, sessionId: string, status: 'disconnected' | 'expired'): Promise<void> {
    this.attempts.push({ sessionId, at: Date.now() });
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    await sleep(1);
    this.inFlight--;
    const special = this.failFor.get(sessionId);
    if (special) throw special;
    if (!this.up) throw new StoreUnavailable('The session database is unreachable (ECONNREFUSED); test.');
    this.written.set(sessionId, status);
  }
}

function identity(n: number, expiresAt: number | null = Math.floor(Date.now() / 1000) + 3600, claimsPadding = ''): Identity {
  const userId = `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
  return { userId, email: `u${n}@example.com`, authSessionId: null, expiresAt, claims: { sub: userId, pad: claimsPadding }, accessToken: `token-${n}` };
}

function setup(options: Partial<PendingEndingsOptions> = {}) {
  const store = new FakeStore();
  const lines: string[] = [];
  const sink: LogSink = { file: null, write: (l) => void lines.push(l), close: async () => {} };
  const endings = new PendingEndings({ store, log: createLogger(sink, new Redactor()), firstRetryMs: 20, maxRetryMs: 80, ...options });
  const logged = () => lines.map((l) => JSON.parse(l) as Record<string, any>);
  return { store, endings, logged };
}

describe('PendingEndings (final session statuses during a store outage)', function () {
  this.timeout(15_000);
  const live: PendingEndings[] = [];
  afterEach(async () => {
    for (const e of live.splice(0)) await e.flush(0); // stops their timers
  });
  const make = (options: Partial<PendingEndingsOptions> = {}) => {
    const s = setup(options);
    live.push(s.endings);
    return s;
  };

  it('writes at once when the store answers; nothing is queued', async function () {
    const { store, endings } = make();
    await endings.end(identity(1), 's1', 'expired');
    assert.equal(store.written.get('s1'), 'expired');
    assert.equal(endings.size, 0);
  });

  it('store down: end() resolves without waiting for it; the ending is written once the store is back, with no new call', async function () {
    const { store, endings, logged } = make();
    store.up = false;
    for (let i = 1; i <= 5; i++) await endings.end(identity(i), `s${i}`, 'disconnected');
    assert.equal(endings.size, 5);
    assert.equal(store.written.size, 0);
    assert.equal(logged().filter((l) => /queued and written once it is back/.test(l.msg)).length, 1, 'the outage is logged once, not per ending');
    store.up = true;
    await waitFor(() => store.written.size === 5, 5000, 'all five written', { everyMs: 10 });
    assert.equal(endings.size, 0);
    const back = logged().find((l) => /the session store is back/.test(l.msg));
    assert.equal(back?.written, 5);
  });

  it('store down: one ending is tried per backoff step (never several at once), waiting first, 2×first, … up to the cap', async function () {
    const { store, endings } = make({ firstRetryMs: 20, maxRetryMs: 80 });
    store.up = false;
    for (let i = 1; i <= 50; i++) await endings.end(identity(i), `s${i}`, 'disconnected');
    const direct = store.attempts.length; // end() tried the first one itself
    assert.equal(direct, 1);
    await sleep(700);
    const retries = store.attempts.slice(direct);
    assert.ok(retries.length >= 2, `retried: ${retries.length}`);
    // Without the one-probe rule each round would try all 50.
    assert.ok(retries.length <= 15, `tries while down: ${retries.length}`);
    assert.equal(store.maxInFlight, 1);
    // Waits between tries are at least the backoff (timers never fire early; ±2 ms of rounding).
    let previous = store.attempts[0].at;
    retries.forEach((a, i) => {
      assert.ok(a.at - previous >= retryDelayMs(i, 20, 80) - 2, `wait before retry ${i + 1}: ${a.at - previous} ms`);
      previous = a.at;
    });
    assert.equal(endings.size, 50);
  });

  it('retryDelayMs doubles from the first wait and stops at the cap', function () {
    assert.deepEqual([0, 1, 2, 3, 4, 10, 1000].map((n) => retryDelayMs(n, 1000, 15_000)), [1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
  });

  it('bounded in count: past maxEntries the oldest endings are dropped, and that is logged once', async function () {
    const { store, endings, logged } = make({ maxEntries: 3 });
    store.up = false;
    for (let i = 1; i <= 6; i++) await endings.end(identity(i), `s${i}`, 'disconnected');
    assert.equal(endings.size, 3);
    assert.equal(logged().filter((l) => /too many final session statuses/.test(l.msg)).length, 1);
    store.up = true;
    await waitFor(() => endings.size === 0, 5000, 'queue empty', { everyMs: 10 });
    assert.deepEqual([...store.written.keys()].sort(), ['s4', 's5', 's6']);
  });

  it('bounded in bytes: identities with big claims are dropped oldest first to stay under maxBytes', async function () {
    const pad = 'x'.repeat(10_000);
    const { store, endings } = make({ maxBytes: 25_000 });
    store.up = false;
    for (let i = 1; i <= 5; i++) await endings.end(identity(i, undefined, pad), `s${i}`, 'disconnected');
    assert.equal(endings.size, 2);
    store.up = true;
    await waitFor(() => endings.size === 0, 5000, 'queue empty', { everyMs: 10 });
    assert.deepEqual([...store.written.keys()].sort(), ['s4', 's5']);
  });

  it("needsLiveToken (the Data API): an ending whose token expired while the store was down is dropped, never sent with the dead token", async function () {
    const { store, endings, logged } = make({ needsLiveToken: true });
    store.up = false;
    const expiresAt = Math.floor(Date.now() / 1000) + 1; // within the next second
    await endings.end(identity(1, expiresAt), 'short-lived', 'disconnected');
    await endings.end(identity(2), 'long-lived', 'disconnected');
    await waitFor(() => Date.now() > expiresAt * 1000 + 50, 3000, 'the token to expire', { everyMs: 10 });
    const attemptsAtExpiry = store.attempts.length;
    store.up = true;
    await waitFor(() => endings.size === 0, 5000, 'queue empty', { everyMs: 10 });
    assert.deepEqual([...store.written.keys()], ['long-lived']);
    assert.ok(!store.attempts.slice(attemptsAtExpiry).some((a) => a.sessionId === 'short-lived'), 'no try after the token expired');
    assert.ok(logged().some((l) => /token expired/.test(l.msg) && l.session === 'short-lived'));
    assert.equal(logged().find((l) => /the session store is back/.test(l.msg))?.dropped_token_expired, 1);
  });

  it('without needsLiveToken (direct Postgres) the same ending is still written after its token expired', async function () {
    const { store, endings } = make();
    store.up = false;
    const expiresAt = Math.floor(Date.now() / 1000) + 1;
    await endings.end(identity(1, expiresAt), 'short-lived', 'disconnected');
    await waitFor(() => Date.now() > expiresAt * 1000 + 50, 3000, 'the token to expire', { everyMs: 10 });
    store.up = true;
    await waitFor(() => store.written.has('short-lived'), 5000, 'written', { everyMs: 10 });
  });

  it('an error other than StoreUnavailable is not retried (repeating the call cannot help); it is logged', async function () {
    const { store, endings, logged } = make();
    store.failFor.set('s1', Object.assign(new Error('invalid input'), { code: '22023' }));
    await endings.end(identity(1), 's1', 'disconnected');
    assert.equal(endings.size, 0);
    await sleep(100);
    assert.equal(store.attempts.length, 1);
    assert.ok(logged().some((l) => l.level === 'error' && l.session === 's1'));
  });

  it('an ending that keeps failing does not hold up the ones queued behind it', async function () {
    const { store, endings } = make();
    store.failFor.set('stuck', new StoreUnavailable("Supabase refused this session's token (expired or revoked); refresh and reconnect."));
    await endings.end(identity(1), 'stuck', 'disconnected');
    for (let i = 2; i <= 4; i++) await endings.end(identity(i), `s${i}`, 'disconnected');
    await waitFor(() => store.written.size === 3, 5000, 'the three others written', { everyMs: 10 });
    assert.equal(endings.size, 1);
  });

  it('retryNow (the store answered elsewhere) tries at once instead of waiting out the backoff', async function () {
    const { store, endings } = make({ firstRetryMs: 60_000, maxRetryMs: 60_000 });
    store.up = false;
    await endings.end(identity(1), 's1', 'disconnected');
    store.up = true;
    endings.retryNow();
    await waitFor(() => store.written.has('s1'), 3000, 'written without waiting 60 s', { everyMs: 10 });
  });

  it('flush (graceful shutdown): writes what it can within the bound, then stops retrying and says how many are left', async function () {
    const down = make({ firstRetryMs: 60_000, maxRetryMs: 60_000 });
    down.store.up = false;
    for (let i = 1; i <= 3; i++) await down.endings.end(identity(i), `s${i}`, 'disconnected');
    const started = Date.now();
    assert.equal(await down.endings.flush(300), 3);
    assert.ok(Date.now() - started >= 290 && Date.now() - started < 5000);
    assert.ok(down.store.attempts.length > 1, 'it tried again during the flush despite the 60 s backoff');
    const attempts = down.store.attempts.length;
    down.store.up = true;
    await sleep(400);
    assert.ok(down.store.attempts.length <= attempts + 1, 'no more tries after the flush (one may have been in flight)');

    const back = make({ firstRetryMs: 60_000, maxRetryMs: 60_000 });
    back.store.up = false;
    for (let i = 1; i <= 3; i++) await back.endings.end(identity(i), `s${i}`, 'disconnected');
    back.store.up = true;
    assert.equal(await back.endings.flush(5000), 0);
    assert.equal(back.store.written.size, 3);
  });
});
