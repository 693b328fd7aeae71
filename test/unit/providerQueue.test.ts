// ProviderQueue (server/tools/providerQueue.ts) and Retry-After parsing (server/tools/providers.ts)
// in isolation: slots, FIFO hand-over, positions, the queue's bound, cancel while waiting.
import assert from 'node:assert/strict';
import { ProviderQueue, QueueFull, type QueuePosition } from '../../server/tools/providerQueue';
import { parseRetryAfter } from '../../server/tools/providers';

const never = new AbortController().signal;

describe('ProviderQueue', function () {
  it('runs up to the limit at once, queues the rest in order, and hands each freed slot to the next', async function () {
    const q = new ProviderQueue(2, 3);
    const a = await q.acquire(never);
    const b = await q.acquire(never);
    const order: string[] = [];
    const positions: Record<string, number[]> = { c: [], d: [] };
    const c = q.acquire(never, (p) => positions.c.push(p.position)).then((r) => { order.push('c'); return r; });
    const d = q.acquire(never, (p) => positions.d.push(p.position)).then((r) => { order.push('d'); return r; });
    assert.deepEqual(q.stats, { running: 2, waiting: 2 });
    a();
    a(); // idempotent: a second release frees nothing more
    const releaseC = await c;
    assert.deepEqual(q.stats, { running: 2, waiting: 1 });
    assert.deepEqual(positions, { c: [1], d: [2, 1] });
    b();
    const releaseD = await d;
    assert.deepEqual(order, ['c', 'd']);
    releaseC();
    releaseD();
    assert.deepEqual(q.stats, { running: 0, waiting: 0 });
  });

  it('refuses at once past the queue bound, saying how many run and wait', async function () {
    const q = new ProviderQueue(1, 1);
    const first = await q.acquire(never);
    const waiting = q.acquire(never);
    await assert.rejects(q.acquire(never), (err: unknown) => err instanceof QueueFull && err.running === 1 && err.waiting === 1);
    first();
    (await waiting)();
    const zero = new ProviderQueue(1, 0);
    const only = await zero.acquire(never);
    await assert.rejects(zero.acquire(never), QueueFull);
    only();
  });

  it('a waiter that is cancelled leaves the queue without taking a slot, and the others move up', async function () {
    const q = new ProviderQueue(1, 5);
    const holder = await q.acquire(never);
    const cancel = new AbortController();
    const seenByLast: QueuePosition[] = [];
    const cancelled = q.acquire(cancel.signal);
    const last = q.acquire(never, (p) => seenByLast.push(p));
    cancel.abort(new Error('cancelled by the caller'));
    await assert.rejects(cancelled, /cancelled by the caller/);
    assert.deepEqual(seenByLast.map((p) => p.position), [2, 1]);
    assert.deepEqual(q.stats, { running: 1, waiting: 1 });
    holder();
    (await last)();
    assert.deepEqual(q.stats, { running: 0, waiting: 0 });
    await assert.rejects(q.acquire(AbortSignal.abort(new Error('already gone'))), /already gone/);
    assert.deepEqual(q.stats, { running: 0, waiting: 0 });
  });
});

describe('parseRetryAfter', function () {
  it('reads delta-seconds and HTTP dates; anything else is no retry', function () {
    const now = Date.parse('2026-12-01T10:00:00Z');
    assert.equal(parseRetryAfter('2', now), 2000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('1.5', now), 1500);
    assert.equal(parseRetryAfter('Tue, 01 Dec 2026 10:00:07 GMT', now), 7000);
    assert.equal(parseRetryAfter('Tue, 01 Dec 2026 09:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter(null, now), null);
    assert.equal(parseRetryAfter('', now), null);
    assert.equal(parseRetryAfter('-3', now), null);
    assert.equal(parseRetryAfter('soon', now), null);
  });
});
