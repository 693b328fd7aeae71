// The bench's measuring method (bench/lib/stats.ts, rounds.ts, chunks.ts): percentiles, the rotating
// turn order of interleaved rounds, warm-up rounds discarded, the time budget, paired ratios, and
// pipelined chunks that keep exactly N in flight. `npm run bench` itself is not part of `npm test`.
import assert from 'node:assert/strict';
import { pipelinedChunk } from '../../bench/lib/chunks';
import { compare, roundOrder, runAlternating, runInterleaved, summarizeSide, type RoundSample } from '../../bench/lib/rounds';
import { median, percentile } from '../../bench/lib/stats';
import { sleep } from '../helpers/wait';

const sample = (latenciesMs: number[], ops = latenciesMs.length, elapsedMs = latenciesMs.reduce((a, b) => a + b, 0)): RoundSample => ({ latenciesMs, ops, elapsedMs });

describe('bench statistics', function () {
  it('interpolates percentiles linearly between ranks and leaves the input unsorted', function () {
    const values = [4, 1, 3, 2];
    assert.equal(percentile(values, 50), 2.5);
    assert.equal(percentile(values, 0), 1);
    assert.equal(percentile(values, 100), 4);
    assert.deepEqual(values, [4, 1, 3, 2]);
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.ok(Math.abs(percentile(hundred, 99) - 99.01) < 1e-9);
    assert.equal(percentile([7], 99), 7);
  });
  it('takes the middle value (or the mean of the two middle ones) as the median', function () {
    assert.equal(median([5, 1, 3]), 3);
    assert.equal(median([1, 2, 3, 10]), 2.5);
  });
  it('refuses an empty list or a percentile outside 0..100', function () {
    assert.throws(() => percentile([], 50), /empty/);
    assert.throws(() => percentile([1], 101), /outside/);
  });
});

describe('bench interleaved rounds', function () {
  it('rotates the turn order from round to round', function () {
    assert.deepEqual([0, 1, 2, 3].map((r) => roundOrder(['d', 'e', 'a'], r).join('')), ['dea', 'ead', 'ade', 'dea']);
  });

  it('chunk by chunk: every side runs once per round in the rotated order; warm-up rounds are discarded', async function () {
    const ran: string[] = [];
    let n = 0;
    const side = (name: string) => ({ name, runChunk: async () => { ran.push(name); return sample([++n]); } });
    const result = await runInterleaved([side('daemon'), side('bare')], { warmupRounds: 2, rounds: 5, budgetMs: 60_000 });
    assert.deepEqual(ran.join(' '), 'daemon bare bare daemon daemon bare bare daemon daemon bare bare daemon daemon bare');
    assert.equal(result.completedRounds, 5);
    assert.equal(result.stoppedBy, 'rounds');
    assert.deepEqual(result.order, [['daemon', 'bare'], ['bare', 'daemon'], ['daemon', 'bare'], ['bare', 'daemon'], ['daemon', 'bare']]);
    // The first two rounds (4 chunks) were warm-up: the measured samples start at the 5th chunk.
    assert.deepEqual(result.samples.daemon.map((s) => s.latenciesMs[0]), [5, 8, 9, 12, 13]);
    assert.deepEqual(result.samples.bare.map((s) => s.latenciesMs[0]), [6, 7, 10, 11, 14]);
  });

  it('operation by operation: the sides take turns within a round, the order rotating with every operation', async function () {
    const ran: string[] = [];
    const side = (name: string, ms: number) => ({ name, op: async () => { ran.push(name); return ms; } });
    const result = await runAlternating([side('d', 3), side('b', 1)], 3, 60_000, { warmupRounds: 1, rounds: 1, budgetMs: 60_000 });
    // Warm-up round (d first): d b, b d, d b; measured round (b first): b d, d b, b d.
    assert.equal(ran.join(''), 'dbbddb' + 'bddbbd');
    assert.deepEqual(result.samples.d, [sample([3, 3, 3], 3, 9)]);
    assert.deepEqual(result.samples.b, [sample([1, 1, 1], 3, 3)]);
  });

  it('starts no round once the time budget is spent, and says so', async function () {
    let now = 0;
    const side = { name: 'only', runChunk: async () => { now += 400; return sample([1]); } };
    const result = await runInterleaved([side], { warmupRounds: 1, rounds: 5, budgetMs: 1000, clock: () => now });
    // Rounds start at t = 0 (warm-up), 400, 800; at 1200 the budget is spent.
    assert.equal(result.completedRounds, 2);
    assert.equal(result.requestedRounds, 5);
    assert.equal(result.stoppedBy, 'budget');
  });

  it('pairs round i of the daemon with round i of the baseline and reports the median ratio and its range', function () {
    const daemon = [sample([2, 2, 2]), sample([3, 3, 3]), sample([10, 10, 10])];
    const bare = [sample([1, 1, 1]), sample([1, 1, 1]), sample([10, 10, 10])];
    const cmp = compare(daemon, bare);
    assert.deepEqual(cmp.p50, { median: 2, min: 1, max: 3 });
    // Throughput: 3 ops in 6 ms vs 3 in 3 ms -> 0.5; 1/3; 1.
    assert.equal(cmp.throughput.median, 0.5);
    assert.ok(Math.abs(cmp.throughput.min - 1 / 3) < 1e-12);
    assert.equal(cmp.throughput.max, 1);
    const summary = summarizeSide(daemon);
    assert.equal(summary.p50Ms, 3);
    assert.equal(summary.rounds, 3);
    assert.equal(summary.opsPerSec, 1000 / 3);
  });
});

describe('bench pipelined chunks', function () {
  it('keeps exactly the given number in flight and completes the given count', async function () {
    let running = 0;
    let peak = 0;
    const op = () => new Promise<void>((resolve) => {
      running++;
      peak = Math.max(peak, running);
      setImmediate(() => { running--; resolve(); });
    });
    const result = await pipelinedChunk(1000, 32, 60_000, op);
    assert.equal(result.ops, 1000);
    assert.equal(peak, 32);
    assert.equal(running, 0);
  });

  it('starts nothing after its deadline and reports what completed', async function () {
    let started = 0;
    const op = () => { started++; return sleep(20); };
    const result = await pipelinedChunk(1_000_000, 4, 100, op);
    assert.ok(result.ops > 0 && result.ops < 200, `completed ${result.ops}`);
    assert.equal(result.ops, started);
  });
});
