// Throughput chunks a side runs per round (bench/lib/rounds.ts runInterleaved), bounded in count and
// in time: a chunk that reaches its deadline starts no more operations and reports what completed.
import type { RoundSample } from './rounds';

/** Times `fn` (for ops whose latency is all of it). */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/**
 * Keeps `inFlight` operations running until `count` have completed (or the deadline passed, after
 * which none is started): throughput only.
 */
export function pipelinedChunk(count: number, inFlight: number, deadlineMs: number, op: () => Promise<void>): Promise<RoundSample> {
  const started = performance.now();
  let startedOps = 0;
  let done = 0;
  let running = 0;
  return new Promise((resolve, reject) => {
    let failed = false;
    const next = () => {
      if (failed) return;
      if (running === 0 && (startedOps >= count || performance.now() - started >= deadlineMs)) {
        return resolve({ latenciesMs: [], ops: done, elapsedMs: performance.now() - started });
      }
      while (running < inFlight && startedOps < count && performance.now() - started < deadlineMs) {
        startedOps++;
        running++;
        op().then(
          () => { running--; done++; next(); },
          (err) => { failed = true; reject(err); },
        );
      }
    };
    next();
  });
}

/** Several pipelined chunks at once (one per connection), reported as one: all ops over the wall time. */
export async function parallelChunks(chunks: (() => Promise<RoundSample>)[]): Promise<RoundSample> {
  const started = performance.now();
  const results = await Promise.all(chunks.map((c) => c()));
  return { latenciesMs: [], ops: results.reduce((n, r) => n + r.ops, 0), elapsedMs: performance.now() - started };
}
