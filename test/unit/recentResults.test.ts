// server/transport/recentResults.ts: the per-connection memory behind call_tool dedup.
import assert from 'node:assert/strict';
import { DEDUP_WINDOW_MS, RecentResults } from '../../server/transport/recentResults';

describe('RecentResults (call_tool dedup window)', function () {
  it('returns a result within 5 minutes and forgets it after', function () {
    let now = 0;
    const results = new RecentResults<string>(DEDUP_WINDOW_MS, 100, () => now);
    results.set('r1', 'first');
    now = DEDUP_WINDOW_MS - 1;
    assert.equal(results.get('r1'), 'first');
    now = DEDUP_WINDOW_MS;
    assert.equal(results.get('r1'), undefined);
  });
  it('drops aged-out entries when new ones arrive, oldest first', function () {
    let now = 0;
    const results = new RecentResults<number>(1000, 100, () => now);
    for (let i = 0; i < 10; i++) results.set(`r${i}`, i);
    now = 1500;
    results.set('new', 99);
    assert.equal(results.size, 1);
  });
  it('stays within its bound under a flood of distinct request ids', function () {
    const results = new RecentResults<number>(DEDUP_WINDOW_MS, 50, () => 0);
    for (let i = 0; i < 1000; i++) results.set(`r${i}`, i);
    assert.equal(results.size, 50);
    assert.equal(results.get('r999'), 999);
    assert.equal(results.get('r0'), undefined);
  });
});
