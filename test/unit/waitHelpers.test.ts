// test/helpers/wait.ts: the bounded waits every other suite relies on to fail with a sentence
// instead of hanging. Bounds here are generous; nothing asserts on speed.
import assert from 'node:assert/strict';
import { sleep, waitFor, within } from '../helpers/wait';

describe('test helpers: waitFor, within, sleep', function () {
  it('waitFor returns the first truthy value the check gives (sync or async)', async function () {
    let n = 0;
    assert.equal(await waitFor(() => (++n >= 3 ? `seen after ${n}` : ''), 5000, 'a third call', { everyMs: 1 }), 'seen after 3');
    const row = await waitFor(async () => ({ id: 7 }), 5000, 'a row');
    assert.deepEqual(row, { id: 7 });
  });

  it('waitFor fails after its bound, naming what it waited for, the bound and the last value seen', async function () {
    await assert.rejects(waitFor(() => 0, 100, 'the counter to move', { everyMs: 10 }), (err: Error) => {
      assert.equal(err.message, 'the counter to move: not within 100 ms (last: 0)');
      return true;
    });
  });

  it('waitFor shows its context when it fails, read at that moment and cut to a bounded length', async function () {
    let checks = 0;
    await assert.rejects(waitFor(() => void checks++, 50, 'never', { everyMs: 5, context: () => `checks: ${checks}` }), (err: Error) => {
      assert.match(err.message, /^never: not within 50 ms \(last: undefined\); checks: (\d+)$/);
      assert.equal(Number(/checks: (\d+)/.exec(err.message)![1]), checks, 'read when the wait failed, not when it started');
      return true;
    });
    await assert.rejects(waitFor(() => null, 10, 'never', { context: () => 'y'.repeat(5000) }), (err: Error) => {
      assert.ok(err.message.length < 2200, `message length ${err.message.length}`);
      assert.match(err.message, /y… \(5000 characters\)$/);
      return true;
    });
  });

  it('waitFor stops at once when failFast throws, without waiting out its bound', async function () {
    let alive = true;
    let checks = 0;
    setTimeout(() => (alive = false), 20);
    const started = Date.now();
    await assert.rejects(
      waitFor(() => ++checks < 0, 60_000, 'never', { everyMs: 5, failFast: () => assert.ok(alive, 'the daemon exited') }),
      /the daemon exited/,
    );
    assert.ok(Date.now() - started < 30_000, 'did not wait for the 60 s bound');
    assert.ok(checks >= 1);
  });

  it('within passes a settled promise through and rejects one that has not settled in time', async function () {
    assert.equal(await within(Promise.resolve(42), 1000, 'an answer'), 42);
    await assert.rejects(within(Promise.reject(new Error('its own error')), 1000, 'an answer'), /its own error/);
    await assert.rejects(within(new Promise(() => {}), 20, 'a stuck call'), /^Error: a stuck call: not within 20 ms$/);
    await assert.rejects(within(new Promise(() => {}), 20), /^Error: operation: not within 20 ms$/);
  });

  it('sleep waits at least as long as asked', async function () {
    const started = Date.now();
    await sleep(30);
    assert.ok(Date.now() - started >= 29);
  });
});
