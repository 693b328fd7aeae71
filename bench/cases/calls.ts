// Calls on open sessions, local mode: the `echo` round trip one at a time (p50/p99; the daemon and
// the baselines take turns call by call), then pipelined throughput with 32 calls in flight on one
// connection and on each of 100 connections (turns chunk by chunk). Method: bench/lib/rounds.ts.
import { startBaselines, type Baseline } from '../lib/baseline';
import { parallelChunks, pipelinedChunk, timed } from '../lib/chunks';
import { comparisonRows, failedRow, roundsOptions, skippedRow, type BenchContext } from '../lib/context';
import { startLocalDaemon } from '../lib/daemons';
import { ECHO_TEXT, PROTOCOLS, WEBSOCKET, type DaemonUnderTest, type Endpoint, type Protocol, type Session } from '../lib/protocols';
import type { Row } from '../lib/report';
import { runAlternating, runInterleaved, type Side } from '../lib/rounds';

const SEQUENTIAL_CALLS = 500;
const PIPELINED_CALLS = 6000;
const IN_FLIGHT = 32;
const CONNECTIONS = 100;
const CALLS_PER_CONNECTION = 60;
const CHUNK_DEADLINE_MS = 10_000;
const CASE_BUDGET_MS = 30_000;
/**
 * Untimed calls on each side before its rounds. A daemon just started runs its call path in V8's
 * lower tiers for its first few thousand calls (measured: a fresh daemon 1.5–1.7× bare echo over
 * the first 4,500 calls, 1.1–1.2× from then on), while a daemon in use has long been warm; the
 * warm-up rounds alone (1,000 calls) did not get there. The baselines get the same.
 */
const JIT_WARMUP_CALLS = 5000;
const JIT_WARMUP_MS = 15_000;

export const CALLS_METHOD = [
  `Calls (local mode, sessions opened once; first ${JIT_WARMUP_CALLS.toLocaleString('en-US')} untimed calls per side, so V8 has optimized the call path as in a daemon that has been running): ${SEQUENTIAL_CALLS} sequential \`echo\` calls per side per round, the daemon and the baselines taking turns call by call; pipelined: ${PIPELINED_CALLS.toLocaleString('en-US')} calls on 1 connection and ${CALLS_PER_CONNECTION} calls on each of ${CONNECTIONS} connections at once, ${IN_FLIGHT} in flight per connection, turns chunk by chunk.`,
];

export async function callCases(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const daemon = await startLocalDaemon(1000);
  const baselines: Baseline[] = [];
  const sessions: Session[] = [];
  try {
    for (const protocol of PROTOCOLS) {
      const why = await protocol.unavailable(daemon);
      if (why) {
        rows.push(skippedRow(`\`echo\` round trip, sequential, ${protocol.name}`, why));
        ctx.notes.push(`${protocol.name} skipped: ${why}.`);
        continue;
      }
      try {
        const bases = await startBaselines(protocol.baselines);
        baselines.push(...bases);
        rows.push(...(await measureProtocol(ctx, protocol, daemon, bases, sessions)));
      } catch (err) {
        rows.push(failedRow(ctx, `calls over ${protocol.name}`, err));
      }
    }
  } finally {
    await Promise.all(sessions.map((s) => s.close().catch(() => {})));
    await Promise.all([daemon.stop(), ...baselines.map((b) => b.stop())]);
    ctx.notes.push(...daemon.notes);
  }
  return rows;
}

/** The call cases over one protocol; every session it opens goes into `sessions` (closed by the caller). */
async function measureProtocol(ctx: BenchContext, protocol: Protocol, daemon: DaemonUnderTest, bases: Baseline[], sessions: Session[]): Promise<Row[]> {
  const rows: Row[] = [];
  const caseName = `\`echo\` round trip, sequential, ${protocol.name}`;
  const endpoints = [protocol.daemon(daemon), ...bases.map((b) => protocol.bare(b))];
  const labels = bases.map((b, k) => ({ side: endpoints[k + 1].name, label: b.label }));
  const open = async (endpoint: Endpoint, i: number) => {
    const s = await endpoint.open(i);
    sessions.push(s);
    return s;
  };

  ctx.log(`calls: sequential echo over ${protocol.name}`);
  // One session per side, opened once: this case times calls, not handshakes.
  const single: Session[] = [];
  for (const endpoint of endpoints) single.push(await open(endpoint, 0));
  for (const session of single) {
    const started = Date.now();
    for (let i = 0; i < JIT_WARMUP_CALLS && Date.now() - started < JIT_WARMUP_MS; i++) await session.call(ECHO_TEXT);
  }
  const result = await runAlternating(
    endpoints.map((endpoint, k) => ({ name: endpoint.name, op: () => timed(() => single[k].call(ECHO_TEXT)) })),
    SEQUENTIAL_CALLS, CHUNK_DEADLINE_MS, roundsOptions(ctx, CASE_BUDGET_MS),
  );
  // The target is for the WebSocket protocol; /mcp is reported without one.
  const target = protocol === WEBSOCKET ? { text: '≤ 1.25×', met: (r: number) => r <= 1.25 } : undefined;
  rows.push(...comparisonRows({ case: `${caseName}, p50`, result, daemonSide: endpoints[0].name, baselines: labels, metric: 'p50', target }));
  rows.push(...comparisonRows({ case: `${caseName}, p99`, result, daemonSide: endpoints[0].name, baselines: labels, metric: 'p99' }));

  if (protocol !== WEBSOCKET) return rows; // pipelining is measured on the WebSocket protocol

  ctx.log('calls: pipelined, 1 connection');
  const one = await runInterleaved(
    endpoints.map((endpoint, k) => ({
      name: endpoint.name,
      runChunk: () => pipelinedChunk(PIPELINED_CALLS, IN_FLIGHT, CHUNK_DEADLINE_MS, () => single[k].call(ECHO_TEXT)),
    })),
    roundsOptions(ctx, CASE_BUDGET_MS),
  );
  rows.push(...comparisonRows({
    case: `pipelined throughput, ${IN_FLIGHT} in flight, 1 connection`, result: one, daemonSide: endpoints[0].name, baselines: labels,
    metric: 'throughput', target: { text: '≥ 60 % of bare', met: (r) => r >= 0.6 },
  }));

  ctx.log(`calls: pipelined, ${CONNECTIONS} connections`);
  const many: Side[] = [];
  for (const endpoint of endpoints) {
    const group: Session[] = [];
    for (let i = 0; i < CONNECTIONS; i++) group.push(await open(endpoint, i));
    many.push({
      name: endpoint.name,
      runChunk: () => parallelChunks(group.map((s) => () => pipelinedChunk(CALLS_PER_CONNECTION, IN_FLIGHT, CHUNK_DEADLINE_MS, () => s.call(ECHO_TEXT)))),
    });
  }
  const hundred = await runInterleaved(many, roundsOptions(ctx, CASE_BUDGET_MS));
  rows.push(...comparisonRows({
    case: `pipelined throughput, ${IN_FLIGHT} in flight on each of ${CONNECTIONS} connections`, result: hundred, daemonSide: endpoints[0].name,
    baselines: labels, metric: 'throughput', target: { text: '≥ 60 % of bare', met: (r) => r >= 0.6 },
  }));
  return rows;
}
