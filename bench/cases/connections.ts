// 2,000 concurrent authenticated connections, opened in concurrent batches of 50 and held: how long
// opening takes, every refusal counted by its code, the server's RSS as the OS sees it (VmRSS of
// /proc/<pid>/status) at 500, 1,000 and 2,000 opened, and — after a full garbage collection
// (bench/programs/memoryProbe.ts) — the memory each held connection costs and whether it comes back
// once they have all closed (two open → hold → close cycles). Local mode: every connection is the one local user; supabase mode
// (Postgres store): 400 users × 5. The baseline is the bare echo server holding as many sockets,
// each after one echo. One run per side, the baseline first.
import { startBaseline } from '../lib/baseline';
import { failedRow, type BenchContext } from '../lib/context';
import { startLocalDaemon, startPgDaemon, startProject, type BenchDaemon, type BenchProject } from '../lib/daemons';
import { memoryProbeEnv, probeMemory, type MemorySnapshot } from '../lib/memory';
import { rssKiB, sleep } from '../lib/processes';
import { WEBSOCKET, type Endpoint, type Session } from '../lib/protocols';
import type { Row } from '../lib/report';
import { Refused } from '../lib/wsClient';

const TOTAL = 2000;
const BATCH = 50;
const CHECKPOINTS = [500, 1000, 2000];
const SUPABASE_USERS = 400;
const PER_USER = TOTAL / SUPABASE_USERS;
/** No batch starts after this (each handshake is also bounded by WAIT_MS). */
const OPEN_DEADLINE_MS = 90_000;
const SETTLE_MS = 1000;
const TARGET_KIB_PER_CONNECTION = 25;
/**
 * "Memory returned": a second open → hold → close cycle may leave at most this share of the first
 * cycle's JS heap growth on top of what the first left (which may be one-off: pools, compiled code).
 * A leak proportional to connections shows up as the second cycle adding as much as the first kept
 * (about 15 % of the growth for the daemon today); the bare baseline's cycles differ by about 5 %.
 */
const LEAK_SHARE = 0.1;

/** One open → hold → close cycle. */
export interface Cycle {
  openMs: number;
  held: number;
  refused: Map<string, number>;
  /** VmRSS right after the batch that reached each checkpoint (no forced collection). */
  rssAtKiB: Map<number, number>;
  /** After a full collection: while holding, and once all have closed. */
  holding: MemorySnapshot;
  afterClose: MemorySnapshot;
}

export interface HoldResult {
  /** After a full collection, before the first cycle. */
  before: MemorySnapshot;
  /** Two cycles: memory the first leaves behind may be one-off (pools, compiled code); the second must not add to it. */
  cycles: [Cycle, Cycle];
}

/** Opens `TOTAL` sessions in batches of `BATCH`, holds them, closes them all; watches `pid`'s memory. */
async function cycle(endpoint: Endpoint, pid: number): Promise<Cycle> {
  const sessions: Session[] = [];
  const refused = new Map<string, number>();
  const rssAtKiB = new Map<number, number>();
  const started = performance.now();
  let attempted = 0;
  while (attempted < TOTAL && performance.now() - started < OPEN_DEADLINE_MS) {
    const batch = Array.from({ length: Math.min(BATCH, TOTAL - attempted) }, (_, k) => endpoint.open(attempted + k));
    attempted += batch.length;
    for (const r of await Promise.allSettled(batch)) {
      if (r.status === 'fulfilled') sessions.push(r.value);
      else {
        const code = r.reason instanceof Refused ? r.reason.code : ((r.reason as NodeJS.ErrnoException)?.code ?? 'error');
        refused.set(code, (refused.get(code) ?? 0) + 1);
      }
    }
    if (CHECKPOINTS.includes(attempted)) rssAtKiB.set(attempted, rssKiB(pid));
  }
  const openMs = performance.now() - started;
  if (attempted < TOTAL) refused.set('not_attempted_within_time_budget', TOTAL - attempted);
  await sleep(SETTLE_MS);
  const holding = await probeMemory(pid);
  await Promise.all(sessions.map((s) => s.close().catch(() => {})));
  await endpoint.settle();
  await sleep(SETTLE_MS);
  const afterClose = await probeMemory(pid);
  return { openMs, held: sessions.length, refused, rssAtKiB, holding, afterClose };
}

export async function holdConnections(endpoint: Endpoint, pid: number): Promise<HoldResult> {
  await sleep(SETTLE_MS);
  const before = await probeMemory(pid);
  const first = await cycle(endpoint, pid);
  const second = await cycle(endpoint, pid);
  return { before, cycles: [first, second] };
}

const kib = (bytes: number) => bytes / 1024;
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const pct = (x: number) => (Number.isFinite(x) ? `${Math.round(x * 100)} %` : 'n/a');
const times = (x: number, y: number) => (Number.isFinite(x / y) ? `${(x / y).toFixed(2)}×` : 'n/a');
/** Growth of `key` per held connection in the first cycle (after GC), KiB. */
const perConnection = (r: HoldResult, key: 'rss' | 'heapUsed') => (r.cycles[0].held > 0 ? kib(r.cycles[0].holding[key] - r.before[key]) / r.cycles[0].held : NaN);
/** What the second cycle left on top of the first, as a share of the first cycle's heap growth. */
const addedBySecond = (r: HoldResult) => {
  const growth = r.cycles[0].holding.heapUsed - r.before.heapUsed;
  return growth > 0 ? (r.cycles[1].afterClose.heapUsed - r.cycles[0].afterClose.heapUsed) / growth : NaN;
};

function describeRefusals(c: Cycle): string {
  const total = [...c.refused.values()].reduce((x, y) => x + y, 0);
  if (total === 0) return '0 refused';
  return `${total.toLocaleString('en-US')} refused (${[...c.refused].map(([code, n]) => `${n} × ${code}`).join(', ')})`;
}

function rows(mode: string, d: HoldResult, b: HoldResult, kibTarget: boolean): Row[] {
  const name = `${TOTAL.toLocaleString('en-US')} connections, ${mode}`;
  const bare = 'bare ws (echo), its own process';
  const [d1] = d.cycles;
  const held = (r: HoldResult) => `${r.cycles[0].held.toLocaleString('en-US')} held, ${describeRefusals(r.cycles[0])}`;
  const open = (r: HoldResult) => `${(r.cycles[0].openMs / 1000).toFixed(2)} s (2nd cycle ${(r.cycles[1].openMs / 1000).toFixed(2)} s)`;
  const rss = (r: HoldResult) => CHECKPOINTS.map((c) => `${mib((r.cycles[0].rssAtKiB.get(c) ?? NaN) * 1024)}`).join(' / ') + ' MiB';
  const cost = (r: HoldResult) => `${perConnection(r, 'rss').toFixed(1)} KiB RSS (JS heap ${perConnection(r, 'heapUsed').toFixed(1)} KiB)`;
  const cycles = (r: HoldResult) => {
    const [c1, c2] = r.cycles;
    return `JS heap ${mib(r.before.heapUsed)} → ${mib(c1.holding.heapUsed)} → ${mib(c1.afterClose.heapUsed)}, 2nd cycle → ${mib(c2.holding.heapUsed)} → ${mib(c2.afterClose.heapUsed)} MiB `
      + `(the 2nd adds ${pct(addedBySecond(r))} of the growth); RSS after close ${mib(c1.afterClose.rss)}, ${mib(c2.afterClose.rss)} MiB`;
  };
  const added = addedBySecond(d);
  const refusedNote = d1.held < TOTAL ? ` — the ${(TOTAL - d1.held).toLocaleString('en-US')} refused connections also passed through` : '';
  return [
    { case: `${name}: held`, daemon: held(d), baseline: bare, baselineValue: held(b), target: `${TOTAL.toLocaleString('en-US')} held`, met: d1.held === TOTAL, rounds: '2 cycles' },
    { case: `${name}: time to open (batches of ${BATCH})`, daemon: open(d), baseline: bare, baselineValue: open(b), ratio: times(d1.openMs, b.cycles[0].openMs), rounds: '2 cycles' },
    { case: `${name}: RSS at ${CHECKPOINTS.map((c) => c.toLocaleString('en-US')).join(' / ')} opened`, daemon: rss(d), baseline: bare, baselineValue: rss(b), rounds: '1' },
    {
      case: `${name}: memory per held connection (growth after GC ÷ held${refusedNote})`, daemon: cost(d), baseline: bare, baselineValue: cost(b),
      ratio: `RSS ${times(perConnection(d, 'rss'), perConnection(b, 'rss'))}`,
      ...(kibTarget ? { target: `≤ ${TARGET_KIB_PER_CONNECTION} KiB, ${TOTAL.toLocaleString('en-US')} held`, met: d1.held === TOTAL && perConnection(d, 'rss') <= TARGET_KIB_PER_CONNECTION } : {}),
      rounds: '1',
    },
    {
      case: `${name}: before → holding → all closed, twice (after GC)`, daemon: cycles(d), baseline: bare, baselineValue: cycles(b),
      target: `memory returned (2nd cycle adds ≤ ${LEAK_SHARE * 100} % of the growth)`, met: Number.isFinite(added) && added <= LEAK_SHARE,
      rounds: '2 cycles',
    },
  ];
}

async function measure(ctx: BenchContext, mode: string, start: (env: Record<string, string>) => Promise<BenchDaemon>, kibTarget: boolean): Promise<Row[]> {
  ctx.log(`connections: ${mode}, bare baseline`);
  const bare = await startBaseline('ws-echo', memoryProbeEnv());
  let b: HoldResult;
  try {
    b = await holdConnections(WEBSOCKET.bare(bare), bare.pid);
  } finally {
    await bare.stop();
  }
  ctx.log(`connections: ${mode}, daemon`);
  const daemon = await start(memoryProbeEnv());
  try {
    const d = await holdConnections(WEBSOCKET.daemon(daemon), daemon.pid);
    return rows(mode, d, b, kibTarget);
  } finally {
    await daemon.stop();
    ctx.notes.push(...daemon.notes);
  }
}

export const CONNECTIONS_METHOD = [
  `${TOTAL.toLocaleString('en-US')} connections: opened in concurrent batches of ${BATCH} (refusals counted by code), held, closed; twice per side, the bare baseline first. RSS at ${CHECKPOINTS.join(' / ')} is VmRSS as the OS sees it. Memory per connection and after close is read after a full garbage collection (bench/programs/memoryProbe.ts, preloaded with NODE_OPTIONS; no daemon code involved): per connection = growth while holding ÷ held; "returned" = the second open → hold → close cycle leaves at most ${LEAK_SHARE * 100} % of the first cycle's JS-heap growth on top of what the first left.`,
];

export async function connectionCases(ctx: BenchContext): Promise<Row[]> {
  const out: Row[] = [];
  // Local: one user holds every connection, so the per-user limit must allow 2,000.
  try {
    out.push(...(await measure(ctx, 'local', (env) => startLocalDaemon(TOTAL, env), true)));
  } catch (err) {
    out.push(failedRow(ctx, `${TOTAL} connections, local`, err));
  }
  const mode = `supabase + Postgres, ${SUPABASE_USERS} users × ${PER_USER}`;
  let project: BenchProject | null = null;
  try {
    project = await startProject(SUPABASE_USERS, TOTAL);
    const p = project;
    out.push(...(await measure(ctx, mode, (env) => startPgDaemon(p, PER_USER, env), false)));
  } catch (err) {
    out.push(failedRow(ctx, `${TOTAL} connections, ${mode}`, err));
  } finally {
    await project?.close();
  }
  return out;
}
