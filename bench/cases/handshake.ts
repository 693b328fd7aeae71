// Handshakes: a new client's connect + hello → hello_ack (or MCP initialize), in local mode and in
// supabase mode with each session store, against a bare server's connect + one echo. The daemon and
// the baselines take turns handshake by handshake; each session is closed, and the server has
// finished with it (the daemon's final session-row write), untimed, before the next handshake.
import { startBaselines, type Baseline, type BaselineKind } from '../lib/baseline';
import { comparisonRows, failedRow, roundsOptions, skippedRow, type BenchContext, type Target } from '../lib/context';
import { startDataApiDaemon, startLocalDaemon, startPgDaemon, startProject, type BenchDaemon, type BenchProject } from '../lib/daemons';
import { PROTOCOLS, WEBSOCKET, type Endpoint } from '../lib/protocols';
import type { Row } from '../lib/report';
import { runAlternating, type OpSide } from '../lib/rounds';

const LOCAL_HANDSHAKES = 40;
const SUPABASE_HANDSHAKES = 20;
/** Handshakes cycle through this many users, so no user nears the per-user limit (5). */
const SUPABASE_USERS = 50;
const CHUNK_DEADLINE_MS = 10_000;
const MODE_BUDGET_MS = 25_000;
/** Untimed handshakes per side before the rounds, so V8 has optimized the hello path (see JIT_WARMUP_CALLS in calls.ts). */
const JIT_WARMUP_HANDSHAKES = 100;
const JIT_WARMUP_MS = 10_000;

interface Mode {
  name: string;
  handshakes: number;
  target?: Target;
  start(project: () => Promise<BenchProject>): Promise<BenchDaemon>;
}

const MODES: Mode[] = [
  { name: 'local', handshakes: LOCAL_HANDSHAKES, target: { text: '≤ 1.2×', met: (r) => r <= 1.2 }, start: () => startLocalDaemon(1000) },
  { name: 'supabase + Postgres', handshakes: SUPABASE_HANDSHAKES, target: { text: '≤ 2.0×', met: (r) => r <= 2.0 }, start: async (p) => startPgDaemon(await p()) },
  { name: 'supabase + Data API', handshakes: SUPABASE_HANDSHAKES, start: async (p) => startDataApiDaemon(await p()) },
];

/** Timed: open; untimed: close. Every handshake of a mode presents a token of its own (see startProject). */
function handshakeSide(endpoint: Endpoint, counter: { next: number }): OpSide {
  return {
    name: endpoint.name,
    async op() {
      const t0 = performance.now();
      const session = await endpoint.open(counter.next++);
      const ms = performance.now() - t0;
      await session.close();
      await endpoint.settle();
      return ms;
    },
  };
}

export const HANDSHAKE_METHOD = [
  `Handshakes: first ${JIT_WARMUP_HANDSHAKES} untimed per side (V8 warm-up), then ${LOCAL_HANDSHAKES} per side per round in local mode, ${SUPABASE_HANDSHAKES} in supabase mode (cycling through ${SUPABASE_USERS} users, each handshake with an access token of its own, as each window has), the daemon and the baselines taking turns handshake by handshake; after each, the session is closed and the daemon has written its final status (untimed) before the next turn.`,
  'Supabase mode: ES256 access tokens from a loopback JWKS (test/helpers/tokens.ts); a fresh PostgreSQL 15 database with the migrations (test/helpers/pg.ts) reached through DATABASE_URL, or through the PostgREST-compatible test endpoint (test/postgrest, a Node stand-in in its own process, not PostgREST itself) for the Data API.',
];

export async function handshakeCases(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const kinds = [...new Set(PROTOCOLS.flatMap((p) => p.baselines))] as BaselineKind[];
  const baselines: Baseline[] = await startBaselines(kinds);
  let project: Promise<BenchProject> | null = null;
  // The counter advances on every side's turn (the baselines ignore it): per protocol, (warm-up +
  // measured rounds) × handshakes × sides.
  const tokensNeeded = PROTOCOLS.reduce((n, p) => n + (1 + p.baselines.length) * (JIT_WARMUP_HANDSHAKES + SUPABASE_HANDSHAKES * (ctx.warmup + ctx.rounds)), 0);
  const sharedProject = () => (project ??= startProject(SUPABASE_USERS, tokensNeeded));
  try {
    for (const mode of MODES) {
      ctx.log(`handshake: ${mode.name}`);
      let daemon: BenchDaemon;
      try {
        daemon = await mode.start(sharedProject);
      } catch (err) {
        rows.push(failedRow(ctx, `handshake, ${mode.name}`, err));
        continue;
      }
      const counter = { next: 0 }; // shared by the protocols: no token is presented twice
      try {
        for (const protocol of PROTOCOLS) {
          const caseName = `handshake, ${mode.name}, ${protocol.name} (${protocol.handshake}), p50`;
          const why = await protocol.unavailable(daemon);
          if (why) {
            rows.push(skippedRow(caseName, why));
            continue;
          }
          const bases = protocol.baselines.map((k) => baselines.find((b) => b.kind === k)!);
          const endpoints = [protocol.daemon(daemon), ...bases.map((b) => protocol.bare(b))];
          let result;
          try {
            const sides = endpoints.map((e) => handshakeSide(e, counter));
            for (const side of sides) {
              const started = Date.now();
              for (let i = 0; i < JIT_WARMUP_HANDSHAKES && Date.now() - started < JIT_WARMUP_MS; i++) await side.op();
            }
            result = await runAlternating(sides, mode.handshakes, CHUNK_DEADLINE_MS, roundsOptions(ctx, MODE_BUDGET_MS));
          } catch (err) {
            rows.push(failedRow(ctx, caseName, err));
            continue;
          }
          rows.push(...comparisonRows({
            case: caseName, result, daemonSide: endpoints[0].name, metric: 'p50',
            baselines: bases.map((b, k) => ({ side: endpoints[k + 1].name, label: `${b.label}: ${protocol.bareHandshake}` })),
            target: protocol === WEBSOCKET ? mode.target : undefined, // the targets are for the WebSocket protocol
          }));
        }
      } finally {
        await daemon.stop();
        ctx.notes.push(...daemon.notes);
      }
    }
  } finally {
    await Promise.all(baselines.map((b) => b.stop()));
    if (project) await project.then((p) => p.close()).catch(() => {});
  }
  return rows;
}
