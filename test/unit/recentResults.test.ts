// server/transport/recentResults.ts: the per-connection memory behind call_tool dedup, bounded in
// time, in count and in bytes (per connection and across the daemon).
import assert from 'node:assert/strict';
import {
  DEDUP_WINDOW_MS, ENTRY_OVERHEAD_BYTES, MAX_BYTES_PER_CONNECTION, MAX_BYTES_PER_DAEMON, RecentResults, ResultBudget,
} from '../../server/transport/recentResults';

const KiB = 1024;
const MiB = 1024 * KiB;
/** What one entry with this id and reply is accounted as. */
const cost = (id: string, text: string) => ENTRY_OVERHEAD_BYTES + Buffer.byteLength(id) + Buffer.byteLength(text);

describe('RecentResults (call_tool dedup window)', function () {
  it('returns a result within 5 minutes and forgets it after', function () {
    let now = 0;
    const results = new RecentResults(new ResultBudget(), { maxEntries: 100 }, () => now);
    results.set('r1', 'first');
    now = DEDUP_WINDOW_MS - 1;
    assert.deepEqual(results.get('r1'), { kept: true, text: 'first' });
    now = DEDUP_WINDOW_MS;
    assert.equal(results.get('r1'), undefined);
  });

  it('drops aged-out entries when new ones arrive, oldest first', function () {
    let now = 0;
    const budget = new ResultBudget();
    const results = new RecentResults(budget, { windowMs: 1000, maxEntries: 100 }, () => now);
    for (let i = 0; i < 10; i++) results.set(`r${i}`, String(i));
    now = 1500;
    results.set('new', '99');
    assert.equal(results.size, 1);
    assert.equal(results.bytes, cost('new', '99'));
    assert.equal(budget.bytes, cost('new', '99'));
  });

  it('sweeps each entry once it ages out, whenever that falls between later arrivals', function () {
    let now = 0;
    const results = new RecentResults(new ResultBudget(), { windowMs: 1000, maxEntries: 100 }, () => now);
    results.set('a', 'A');
    now = 600;
    results.set('b', 'B');
    now = 1100; // a aged out, b not yet
    results.set('c', 'C');
    assert.equal(results.size, 2);
    now = 1700; // b aged out too
    results.set('d', 'D');
    assert.equal(results.size, 2);
    assert.deepEqual([results.get('c'), results.get('d')], [{ kept: true, text: 'C' }, { kept: true, text: 'D' }]);
    now = 5000; // everything aged out; a new entry starts the clock again
    results.set('e', 'E');
    assert.equal(results.size, 1);
    now = 5999;
    results.set('f', 'F');
    assert.equal(results.size, 2);
  });

  it('the same request id set again and again keeps one entry, and its bookkeeping stays bounded', function () {
    const budget = new ResultBudget();
    const results = new RecentResults(budget, { maxEntries: 50 }, () => 0);
    for (let i = 0; i < 100_000; i++) results.set('same', String(i % 10));
    assert.equal(results.size, 1);
    assert.equal(budget.bytes, cost('same', '9'));
    const queued = (results as unknown as { queue: unknown[] }).queue.length;
    assert.ok(queued <= 2 * 1 + 1024 + 1, `internal queue of ${queued} entries for 1 kept`);
  });

  it('stays within its count bound under a flood of distinct request ids', function () {
    const results = new RecentResults(new ResultBudget(), { maxEntries: 50 }, () => 0);
    for (let i = 0; i < 1000; i++) results.set(`r${i}`, String(i));
    assert.equal(results.size, 50);
    assert.deepEqual(results.get('r999'), { kept: true, text: '999' });
    assert.equal(results.get('r0'), undefined);
  });

  it('has the documented default bounds: 8 MiB per connection, 128 MiB per daemon', function () {
    assert.equal(MAX_BYTES_PER_CONNECTION, 8 * MiB);
    assert.equal(MAX_BYTES_PER_DAEMON, 128 * MiB);
    assert.equal(new ResultBudget().maxBytes, 128 * MiB);
  });

  describe('byte bounds', function () {
    it('accounts each entry as its reply (UTF-8 bytes), its id and a fixed overhead', function () {
      const budget = new ResultBudget();
      const results = new RecentResults(budget);
      results.set('a', 'x'.repeat(1000));
      results.set('b', 'é'.repeat(1000)); // 2 bytes each in UTF-8
      assert.equal(results.bytes, cost('a', 'x'.repeat(1000)) + ENTRY_OVERHEAD_BYTES + 1 + 2000);
      assert.equal(budget.bytes, results.bytes);
    });

    it('keeps at most maxBytes per connection: the oldest replies are dropped first, their markers stay', function () {
      const results = new RecentResults(new ResultBudget(), { maxBytes: 10 * KiB });
      const reply = 'x'.repeat(3 * KiB);
      for (let i = 0; i < 10; i++) results.set(`r${i}`, reply);
      assert.ok(results.bytes <= 10 * KiB, `kept ${results.bytes} bytes`);
      assert.deepEqual(results.get('r9'), { kept: true, text: reply });
      assert.deepEqual(results.get('r0'), { kept: false }, 'the oldest reply is gone but its id is remembered');
      assert.equal(results.size, 10);
    });

    it('never keeps a reply bigger than the per-connection bound, only its marker', function () {
      const budget = new ResultBudget();
      const results = new RecentResults(budget, { maxBytes: 64 * KiB });
      results.set('small', 'ok');
      results.set('huge', 'x'.repeat(65 * KiB));
      assert.deepEqual(results.get('huge'), { kept: false });
      assert.deepEqual(results.get('small'), { kept: true, text: 'ok' }, 'a too-big reply does not push out the others');
      assert.equal(results.bytes, cost('small', 'ok') + ENTRY_OVERHEAD_BYTES + 4);
      assert.equal(budget.bytes, results.bytes);
    });

    it('removes the oldest markers too when markers alone exceed the bound', function () {
      const results = new RecentResults(new ResultBudget(), { maxBytes: 10 * (ENTRY_OVERHEAD_BYTES + 3) });
      for (let i = 100; i < 130; i++) results.set(`${i}`, 'x'.repeat(5000)); // each reply too big: markers only
      assert.ok(results.bytes <= 10 * (ENTRY_OVERHEAD_BYTES + 3));
      assert.equal(results.size, 10);
      assert.equal(results.get('100'), undefined);
      assert.deepEqual(results.get('129'), { kept: false });
    });

    it('a repeated id replaces its entry without counting it twice', function () {
      const budget = new ResultBudget();
      const results = new RecentResults(budget);
      results.set('a', 'x'.repeat(1000));
      results.set('a', 'y'.repeat(10));
      assert.equal(results.size, 1);
      assert.equal(results.bytes, cost('a', 'y'.repeat(10)));
      assert.equal(budget.bytes, results.bytes);
    });

    it('shares one daemon-wide budget: past it, the oldest replies of any connection are dropped first', function () {
      let now = 0;
      const budget = new ResultBudget(100 * KiB);
      const a = new RecentResults(budget, { maxBytes: 80 * KiB }, () => now);
      const b = new RecentResults(budget, { maxBytes: 80 * KiB }, () => now);
      const reply = 'x'.repeat(20 * KiB);
      for (let i = 0; i < 3; i++) { now++; a.set(`a${i}`, reply); }
      for (let i = 0; i < 3; i++) { now++; b.set(`b${i}`, reply); }
      assert.ok(budget.bytes <= 100 * KiB, `daemon keeps ${budget.bytes} bytes`);
      assert.equal(budget.bytes, a.bytes + b.bytes);
      assert.deepEqual(a.get('a0'), { kept: false }, "connection a's oldest reply made room for b");
      assert.deepEqual(b.get('b2'), { kept: true, text: reply });
      assert.deepEqual(a.get('a2'), { kept: true, text: reply });
    });

    it('gives its bytes back to the daemon budget when the connection closes (clear)', function () {
      const budget = new ResultBudget();
      const a = new RecentResults(budget);
      const b = new RecentResults(budget);
      a.set('1', 'x'.repeat(5000));
      b.set('1', 'y'.repeat(7000));
      a.clear();
      assert.equal(a.size, 0);
      assert.equal(a.bytes, 0);
      assert.equal(budget.bytes, b.bytes);
      b.clear();
      assert.equal(budget.bytes, 0);
    });

    it('stays within both bounds under a flood of 1 MiB replies over many connections', function () {
      const budget = new ResultBudget(16 * MiB);
      const connections = Array.from({ length: 6 }, () => new RecentResults(budget, { maxBytes: 4 * MiB }));
      const reply = 'x'.repeat(MiB);
      for (let i = 0; i < 200; i++) {
        const c = connections[i % connections.length];
        c.set(`r${i}`, reply);
        assert.ok(c.bytes <= 4 * MiB, `connection keeps ${c.bytes}`);
        assert.ok(budget.bytes <= 16 * MiB, `daemon keeps ${budget.bytes}`);
      }
      assert.equal(budget.bytes, connections.reduce((sum, c) => sum + c.bytes, 0));
    });
  });
});
