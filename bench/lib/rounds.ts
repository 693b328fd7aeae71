// The measuring method every comparative case uses: warm-up rounds, then measured rounds in which
// the daemon and its baselines take turns — operation by operation for latencies (runAlternating),
// chunk by chunk for throughput (runInterleaved) — in an order that rotates (A B C, B C A, C A B, ...).
// A slow spell on a shared machine then lands on every side alike instead of on whichever side
// happened to run second, and each round gives a paired ratio (daemon vs baseline measured at the
// same time). Reported: per side, the median over rounds of each round's p50, p99 and throughput;
// per comparison, the median of the per-round ratios.
import { max, median, min, percentile } from './stats';

/** What one side did in one round. */
export interface RoundSample {
  /** Each operation's latency in ms (p50/p99 come from these); empty for throughput-only work. */
  latenciesMs: number[];
  /** Operations completed. */
  ops: number;
  /** Wall time of the whole chunk in ms. */
  elapsedMs: number;
}

/** One contender: runs one bounded chunk of work per call (it must bound its own count and time). */
export interface Side {
  name: string;
  runChunk(): Promise<RoundSample>;
}

export interface RoundsOptions {
  /** Rounds run and discarded first (JIT, caches, connection pools). */
  warmupRounds: number;
  /** Measured rounds wanted; the bench asks for at least MIN_MEASURED_ROUNDS. */
  rounds: number;
  /** No new round starts once this much time (warm-up included) has passed. */
  budgetMs: number;
  /** For tests. */
  clock?: () => number;
}

export const MIN_MEASURED_ROUNDS = 5;

export interface RoundsResult {
  /** Measured samples per side name, in round order. */
  samples: Record<string, RoundSample[]>;
  /** The order the sides ran in, per measured round (for the record, and for tests). */
  order: string[][];
  requestedRounds: number;
  completedRounds: number;
  /** 'budget' when the time budget ended the run before `rounds` measured rounds. */
  stoppedBy: 'rounds' | 'budget';
}

/** The sides rotated left by `round`: round 0 = as given, round 1 starts with the second side, ... */
export function roundOrder<T>(sides: readonly T[], round: number): T[] {
  const n = sides.length;
  const shift = ((round % n) + n) % n;
  return [...sides.slice(shift), ...sides.slice(0, shift)];
}

/**
 * Chunk by chunk: in each round every side runs one chunk (its own bounded batch of work), in the
 * round's rotated order. For throughput, where a chunk must keep its own pipeline full.
 */
export function runInterleaved(sides: readonly Side[], opts: RoundsOptions): Promise<RoundsResult> {
  return runRounds(sides.map((s) => s.name), opts, async (order) => {
    const out: Record<string, RoundSample> = {};
    for (const name of order) out[name] = await sides.find((s) => s.name === name)!.runChunk();
    return out;
  });
}

/** One contender whose work is single timed operations (a call, a handshake). */
export interface OpSide {
  name: string;
  /** Runs one operation; resolves with its latency in ms. */
  op(): Promise<number>;
}

/**
 * Operation by operation: in each round the sides take turns, one operation each, `opsPerRound`
 * times (or until `deadlineMs` of the round has passed), the turn order rotating with every
 * operation. Both sides' latencies are then sampled at the same moments, which is what makes a
 * latency ratio robust on a busy machine. A side's elapsed time is the sum of its latencies.
 */
export function runAlternating(sides: readonly OpSide[], opsPerRound: number, deadlineMs: number, opts: RoundsOptions): Promise<RoundsResult> {
  return runRounds(sides.map((s) => s.name), opts, async (order, clock) => {
    const inOrder = order.map((name) => sides.find((s) => s.name === name)!);
    const latencies: Record<string, number[]> = Object.fromEntries(order.map((n) => [n, []]));
    const started = clock();
    for (let k = 0; k < opsPerRound && clock() - started < deadlineMs; k++) {
      for (const side of roundOrder(inOrder, k)) latencies[side.name].push(await side.op());
    }
    return Object.fromEntries(order.map((n) => [n, { latenciesMs: latencies[n], ops: latencies[n].length, elapsedMs: latencies[n].reduce((a, b) => a + b, 0) }]));
  });
}

/** The round loop shared by both: warm-up rounds discarded, rotation, the time budget. */
async function runRounds(
  names: readonly string[],
  opts: RoundsOptions,
  runRound: (order: string[], clock: () => number) => Promise<Record<string, RoundSample>>,
): Promise<RoundsResult> {
  if (names.length === 0) throw new Error('interleaved rounds need at least one side');
  if (new Set(names).size !== names.length) throw new Error('side names must be unique');
  const clock = opts.clock ?? (() => performance.now());
  const started = clock();
  const samples: Record<string, RoundSample[]> = Object.fromEntries(names.map((n) => [n, []]));
  const order: string[][] = [];
  const total = opts.warmupRounds + opts.rounds;
  for (let round = 0; round < total; round++) {
    if (clock() - started > opts.budgetMs) break;
    const thisOrder = roundOrder(names, round);
    const result = await runRound(thisOrder, clock);
    if (round < opts.warmupRounds) continue;
    for (const n of names) samples[n].push(result[n]);
    order.push(thisOrder);
  }
  return {
    samples,
    order,
    requestedRounds: opts.rounds,
    completedRounds: order.length,
    stoppedBy: order.length < opts.rounds ? 'budget' : 'rounds',
  };
}

/** One side's figures: medians over rounds of each round's p50, p99 and throughput. */
export interface SideSummary {
  p50Ms: number;
  p99Ms: number;
  opsPerSec: number;
  rounds: number;
}

export function summarizeSide(samples: readonly RoundSample[]): SideSummary {
  if (samples.length === 0) return { p50Ms: NaN, p99Ms: NaN, opsPerSec: NaN, rounds: 0 };
  const withLatencies = samples.filter((s) => s.latenciesMs.length > 0);
  return {
    p50Ms: withLatencies.length ? median(withLatencies.map((s) => percentile(s.latenciesMs, 50))) : NaN,
    p99Ms: withLatencies.length ? median(withLatencies.map((s) => percentile(s.latenciesMs, 99))) : NaN,
    opsPerSec: median(samples.map(opsPerSec)),
    rounds: samples.length,
  };
}

/** A median of per-round ratios, with the spread across rounds so a reader can judge the noise. */
export interface Ratio {
  median: number;
  min: number;
  max: number;
}

/** The daemon against one baseline, round by round (round i of one is paired with round i of the other). */
export interface Comparison {
  /** daemon p50 ÷ baseline p50 (>1: the daemon is slower). */
  p50: Ratio;
  p99: Ratio;
  /** daemon throughput ÷ baseline throughput (<1: the daemon does less per second). */
  throughput: Ratio;
}

export function compare(subject: readonly RoundSample[], baseline: readonly RoundSample[]): Comparison {
  const n = Math.min(subject.length, baseline.length);
  const pairs = Array.from({ length: n }, (_, i) => [subject[i], baseline[i]] as const);
  const latencyPairs = pairs.filter(([s, b]) => s.latenciesMs.length > 0 && b.latenciesMs.length > 0);
  return {
    p50: ratio(latencyPairs.map(([s, b]) => percentile(s.latenciesMs, 50) / percentile(b.latenciesMs, 50))),
    p99: ratio(latencyPairs.map(([s, b]) => percentile(s.latenciesMs, 99) / percentile(b.latenciesMs, 99))),
    throughput: ratio(pairs.map(([s, b]) => opsPerSec(s) / opsPerSec(b))),
  };
}

function ratio(values: number[]): Ratio {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return { median: NaN, min: NaN, max: NaN };
  return { median: median(finite), min: min(finite), max: max(finite) };
}

function opsPerSec(s: RoundSample): number {
  return s.elapsedMs > 0 ? (s.ops / s.elapsedMs) * 1000 : NaN;
}
