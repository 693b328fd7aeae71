// What every case group gets from bench/main.ts, and the rows it builds from interleaved rounds.
import { fmtMs, fmtPerSec, fmtShare, fmtTimes, type Row } from './report';
import { compare, summarizeSide, type RoundsOptions, type RoundsResult } from './rounds';

export interface BenchContext {
  /** Measured rounds (≥ 5) and warm-up rounds for the interleaved cases. */
  rounds: number;
  warmup: number;
  /** Code-server windows opened for the extension cases. */
  windows: number;
  /** Lines printed under the table (skips, limits the bench had to work around). */
  notes: string[];
  /** Progress on stderr. */
  log(message: string): void;
  /** Cases that failed (the bench then exits 1, after printing everything else). */
  failures: string[];
  /** Milliseconds left before BENCH_DEADLINE_S; open-ended loops (windows) stop starting work at 0. */
  remainingMs(): number;
}

export function roundsOptions(ctx: BenchContext, budgetMs: number): RoundsOptions {
  return { warmupRounds: ctx.warmup, rounds: ctx.rounds, budgetMs };
}

export function roundsCell(r: RoundsResult): string {
  return r.stoppedBy === 'budget' ? `${r.completedRounds} of ${r.requestedRounds} (time budget)` : String(r.completedRounds);
}

export interface Target {
  text: string;
  /** Given the median ratio against the first baseline. */
  met(ratio: number): boolean;
}

/**
 * One row per baseline: the daemon's median p50, p99 or throughput against that baseline's, with
 * the median (and range) of the per-round ratios. `target` applies to the first baseline.
 */
export function comparisonRows(opts: {
  case: string;
  result: RoundsResult;
  daemonSide: string;
  baselines: { side: string; label: string }[];
  metric: 'p50' | 'p99' | 'throughput';
  target?: Target;
  unit?: string;
}): Row[] {
  const daemon = summarizeSide(opts.result.samples[opts.daemonSide]);
  return opts.baselines.map((b, index) => {
    const base = summarizeSide(opts.result.samples[b.side]);
    const cmp = compare(opts.result.samples[opts.daemonSide], opts.result.samples[b.side]);
    const ratio = opts.metric === 'throughput' ? cmp.throughput : cmp[opts.metric];
    const value = (s: typeof daemon) => (opts.metric === 'throughput' ? fmtPerSec(s.opsPerSec, opts.unit) : fmtMs(opts.metric === 'p50' ? s.p50Ms : s.p99Ms));
    const target = index === 0 ? opts.target : undefined;
    return {
      case: opts.case,
      daemon: value(daemon),
      baseline: b.label,
      baselineValue: value(base),
      ratio: opts.metric === 'throughput' ? `${fmtShare(ratio)} of bare` : fmtTimes(ratio),
      target: target?.text,
      met: target && Number.isFinite(ratio.median) ? target.met(ratio.median) : undefined,
      rounds: roundsCell(opts.result),
    };
  });
}

export function skippedRow(caseName: string, reason: string): Row {
  return { case: caseName, daemon: `skipped: ${reason}` };
}

/** A case that could not be measured: a row saying why, and the run is marked failed. */
export function failedRow(ctx: BenchContext, caseName: string, err: unknown): Row {
  const message = (err as Error)?.message?.split('\n')[0] ?? String(err);
  ctx.failures.push(`${caseName}: ${message}`);
  ctx.log(`${caseName} failed: ${(err as Error)?.stack ?? err}`);
  return { case: caseName, daemon: `failed: ${message}` };
}
