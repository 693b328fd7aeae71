// `npm run bench`: measures the daemon and the extension against bare baselines in the same run and
// prints one markdown table; a full run also writes it, with the machine and date, to bench/RESULTS.md
// (and a JSON copy to bench/results/results.json). scripts/bench.sh builds everything first.
//
//   BENCH_ONLY=calls,handshake   run only these case groups (calls, handshake, connections, extension);
//                                such a partial run does not rewrite bench/RESULTS.md
//   BENCH_ROUNDS=7               measured rounds (default 7, at least 5), BENCH_WARMUP=2 warm-up rounds
//   BENCH_WINDOWS=3              code-server windows for the extension timings
//   BENCH_DEADLINE_S=270         no group starts after this; every loop inside a group is bounded too
//   BENCH_DAEMON_NODE_OPTIONS    NODE_OPTIONS for the daemons only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"
import path from 'node:path';
import { CALLS_METHOD, callCases } from './cases/calls';
import { CONNECTIONS_METHOD, connectionCases } from './cases/connections';
import { EXTENSION_METHOD, extensionCases } from './cases/extension';
import { HANDSHAKE_METHOD, handshakeCases } from './cases/handshake';
import { failedRow, type BenchContext } from './lib/context';
import { describeMachine, loadAverage, markdownTable, writeResults, type Row } from './lib/report';
import { MIN_MEASURED_ROUNDS } from './lib/rounds';

const ROOT = path.resolve(__dirname, '../../..'); // out/bench/run/main.js -> the repository

interface Group {
  name: string;
  run(ctx: BenchContext): Promise<Row[]>;
  /** How the group measures, for bench/RESULTS.md. */
  method: string[];
}

const GROUPS: Group[] = [
  { name: 'calls', run: callCases, method: CALLS_METHOD },
  { name: 'handshake', run: handshakeCases, method: HANDSHAKE_METHOD },
  { name: 'connections', run: connectionCases, method: CONNECTIONS_METHOD },
  { name: 'extension', run: extensionCases, method: EXTENSION_METHOD },
];

function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max} (got "${raw}").`);
  return n;
}

function methodNotes(ctx: BenchContext, groups: Group[]): string[] {
  return [
    `Interleaved rounds (bench/lib/rounds.ts): ${ctx.warmup} warm-up rounds, then ${ctx.rounds} measured rounds in which the daemon and every baseline take turns (operation by operation for latencies, chunk by chunk for throughput) in an order that rotates. Figures are medians over rounds of each round's p50, p99 or throughput; ratios are medians of the per-round ratios (min–max in brackets). Percentiles interpolate linearly between ranks (bench/lib/stats.ts).`,
    'Baselines (bench/programs/baselineServer.ts), each its own Node process on loopback as the daemon is: a bare `ws` server that parses each frame and answers one `call_tool_res` ("echo"); the same answering `call_tool_ack` first ("ack+echo": the frames the protocol itself requires, so the gap between the two is the protocol\'s cost and the rest the implementation\'s); for /mcp a bare node:http JSON-RPC server. The same client code (bench/lib/wsClient.ts, bench/lib/mcpClient.ts) drives both sides.',
    'The daemon is the dist/server.js that `npm run package` built (the minified bundle the VSIX ships), started as the test suites start it (test/helpers/daemon.ts).',
    ...groups.flatMap((g) => g.method),
  ];
}

async function main(): Promise<void> {
  const started = performance.now();
  const only = (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = only.filter((o) => !GROUPS.some((g) => g.name === o));
  if (unknown.length) throw new Error(`BENCH_ONLY: unknown group(s) ${unknown.join(', ')}; known: ${GROUPS.map((g) => g.name).join(', ')}`);
  const deadlineMs = intFromEnv('BENCH_DEADLINE_S', 270, 10, 3600) * 1000;
  const ctx: BenchContext = {
    rounds: intFromEnv('BENCH_ROUNDS', 7, MIN_MEASURED_ROUNDS, 100),
    warmup: intFromEnv('BENCH_WARMUP', 2, 1, 20),
    windows: intFromEnv('BENCH_WINDOWS', 3, 1, 10),
    notes: [],
    failures: [],
    remainingMs: () => deadlineMs - (performance.now() - started),
    log: (m) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${m}\n`),
  };
  const machine = describeMachine();
  ctx.log(`${machine.cores} cores, ${machine.cpu}, Node ${machine.node}, load ${machine.loadAtStart}`);

  const rows: Row[] = [];
  const ran: Group[] = [];
  for (const group of GROUPS) {
    if (only.length && !only.includes(group.name)) continue;
    ran.push(group);
    if (ctx.remainingMs() <= 0) {
      rows.push(failedRow(ctx, `${group.name} cases`, new Error(`not started: the bench passed BENCH_DEADLINE_S (${deadlineMs / 1000} s)`)));
      continue;
    }
    try {
      rows.push(...(await group.run(ctx)));
    } catch (err) {
      rows.push(failedRow(ctx, `${group.name} cases`, err));
    }
  }
  machine.loadAtEnd = loadAverage();
  const durationSec = (performance.now() - started) / 1000;
  const notes = [...ctx.failures.map((f) => `FAILED: ${f}`), ...ctx.notes];
  const cores = machine.cores;
  const load = Number(machine.loadAtStart.split(' / ')[0]);
  if (load > cores / 2) notes.push(`The machine was busy (load ${load.toFixed(1)} on ${cores} cores when the bench started): absolute figures are noisy; the per-round ratios much less so.`);
  const report = { machine, rows, notes, method: methodNotes(ctx, ran), durationSec };
  process.stdout.write(`\n${markdownTable(rows)}\n\n`);
  for (const n of notes) process.stdout.write(`- ${n}\n`);
  const full = only.length === 0;
  const written = writeResults(ROOT, report, full);
  ctx.log(`done in ${durationSec.toFixed(0)} s; wrote ${written.map((w) => path.relative(ROOT, w)).join(', ')}${full ? '' : ' (a partial run leaves bench/RESULTS.md alone)'}`);
  // Every child was stopped by its group; exit now rather than wait on a stray handle.
  process.exit(ctx.failures.length ? 1 : 0);
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
