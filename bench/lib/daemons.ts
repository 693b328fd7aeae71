// The daemon under test, started the way the test suites start it (test/helpers/daemon.ts: the real
// dist/server.js as a child process on a free loopback port), in each mode the bench measures:
//   local                     the in-memory store, the local secret as token
//   supabase + Postgres       DATABASE_URL on a fresh database with the migrations (test/helpers/pg.ts)
//   supabase + Data API       SUPABASE_URL + SUPABASE_ANON_KEY in front of the PostgREST stand-in
// Supabase users are rows of auth.users with ES256 access tokens from a loopback JWKS
// (test/helpers/tokens.ts), as Supabase Auth would issue them. Every session index presents its own
// token (each window signs in and refreshes on its own): a daemon that remembered verified tokens
// would gain nothing here that it would not gain in real use.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startDaemon, type RunningDaemon } from '../../test/helpers/daemon';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/pg';
import { JWKS_PATH, mintAccessToken, mintAnonKey, startJwksServer, type JwksServer, type TestUser } from '../../test/helpers/tokens';
import { sleep, startProgram } from './processes';
import type { DaemonUnderTest } from './protocols';

export interface BenchDaemon extends DaemonUnderTest {
  running: RunningDaemon;
  /** Things worth printing under the table (e.g. a limit the daemon would not take). */
  notes: string[];
  stop(): Promise<void>;
}

/** Settings the bench controls; anything the caller's shell exported is cleared. */
const CLEAN_ENV: Record<string, string | undefined> = {
  MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, DATABASE_URL: undefined, SUPABASE_ANON_KEY: undefined,
  SUPABASE_JWT_SECRET: undefined, MCP_SESSION_TIMEOUT: undefined, MCP_MAX_CONNECTIONS_PER_USER: undefined,
  EXAI_WS_HOST: undefined, EXAI_DAEMON_ID: undefined, EXAI_IDLE_EXIT_SECONDS: '0', EXAI_HEARTBEAT_SECONDS: undefined,
  EXAI_TLS_CERT: undefined, EXAI_TLS_KEY: undefined, EXAI_BEHIND_PROXY: undefined,
  EXAI_PROVIDER_BASE_URL: undefined, KIMI_API_KEY: undefined, GLM_API_KEY: undefined,
  // BENCH_DAEMON_NODE_OPTIONS reaches the daemons only (not the baselines or the bench), e.g.
  // `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile the daemon under the bench's load.
  NODE_OPTIONS: process.env.BENCH_DAEMON_NODE_OPTIONS || undefined,
};

/** Polls GET /health until it counts no WebSocket connection and no MCP session (at most `timeoutMs`). */
export async function waitUntilIdle(port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { connections: number; mcp_sessions?: number };
      if (health.connections === 0 && !health.mcp_sessions) return;
    } catch {}
    await sleep(5);
  }
}

function wrap(running: RunningDaemon, mode: string, token: (i: number) => string, notes: string[]): BenchDaemon {
  return {
    mode, port: running.port, pid: running.pid, token, running, notes,
    idle: () => waitUntilIdle(running.port),
    async stop() {
      const timer = setTimeout(() => void running.kill9(), 20_000);
      await running.stop();
      clearTimeout(timer);
      fs.rmSync(running.stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * A local-mode daemon that admits `maxPerUser` connections of the (one) local user. A daemon whose
 * configuration does not accept that many refuses to start (exit 2); the bench then runs it with the
 * highest value it accepts (1000 today) and notes it, so refusals are counted rather than fatal.
 */
export async function startLocalDaemon(maxPerUser = 1000, extraEnv: Record<string, string> = {}): Promise<BenchDaemon> {
  const notes: string[] = [];
  let limit = maxPerUser;
  let running: RunningDaemon;
  try {
    running = await startDaemon({ env: { ...CLEAN_ENV, MCP_MAX_CONNECTIONS_PER_USER: String(limit), ...extraEnv } });
  } catch (err) {
    if (limit <= 1000 || !/MCP_MAX_CONNECTIONS_PER_USER/.test((err as Error).message)) throw err;
    // The configuration error names the variable: this daemon caps the per-user limit lower.
    notes.push(`local daemon refused MCP_MAX_CONNECTIONS_PER_USER=${limit}; ran with 1000`);
    limit = 1000;
    running = await startDaemon({ env: { ...CLEAN_ENV, MCP_MAX_CONNECTIONS_PER_USER: String(limit), ...extraEnv } });
  }
  const secret = JSON.parse(fs.readFileSync(path.join(running.stateDir, 'daemon.json'), 'utf8')).secret as string;
  return wrap(running, 'local', () => secret, notes);
}

/** A Supabase project for the bench: signing keys, a database with the migrations, users and their tokens. */
export interface BenchProject {
  jwks: JwksServer;
  db: TestDatabase;
  users: TestUser[];
  /** Session i's access token (user i mod users), issued by the JWKS server's project URL; no two alike. */
  tokens: string[];
  close(): Promise<void>;
}

/** `tokenCount` distinct access tokens, the i-th for user i mod users, minted before anything is timed. */
async function mintTokens(key: JwksServer['keys']['es256'], issuer: string, users: TestUser[], tokenCount: number): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < tokenCount; i++) tokens.push(await mintAccessToken({ key, issuer, user: users[i % users.length], expiresInSec: 3600 }));
  return tokens;
}

/** Session i presents tokens[i]; past the last one the bench stops rather than present a token twice. */
function tokenOf(tokens: string[]): (i: number) => string {
  return (i) => {
    if (i >= tokens.length) throw new Error(`bench: session ${i} has no token of its own (${tokens.length} minted); mint more in the case`);
    return tokens[i];
  };
}

export async function startProject(userCount: number, tokenCount = userCount): Promise<BenchProject> {
  const [jwks, db] = await Promise.all([startJwksServer(), createTestDatabase()]);
  const users: TestUser[] = Array.from({ length: userCount }, (_, k) => ({ id: crypto.randomUUID(), email: `bench-${k}@example.test` }));
  // One statement for all of them: 400 single inserts would dominate the set-up time.
  await db.query('insert into auth.users (id, email) select * from unnest($1::uuid[], $2::text[])', [users.map((u) => u.id), users.map((u) => u.email)]);
  const tokens = await mintTokens(jwks.keys.es256, jwks.issuer, users, tokenCount);
  return {
    jwks, db, users, tokens,
    async close() {
      await jwks.close();
      await db.drop();
    },
  };
}

/** supabase mode, sessions through DATABASE_URL. The i-th session is user i mod users. */
export async function startPgDaemon(project: BenchProject, maxPerUser = 5, extraEnv: Record<string, string> = {}): Promise<BenchDaemon> {
  const running = await startDaemon({
    env: { ...CLEAN_ENV, MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: project.jwks.url, DATABASE_URL: project.db.url, MCP_MAX_CONNECTIONS_PER_USER: String(maxPerUser), ...extraEnv },
  });
  return wrap(running, 'supabase + Postgres', tokenOf(project.tokens), []);
}

const LEGACY_SECRET = 'bench-only-legacy-jwt-secret-of-the-test-project';

/** supabase mode, sessions through the Data API (the PostgREST stand-in in its own process). */
export async function startDataApiDaemon(project: BenchProject, maxPerUser = 5): Promise<BenchDaemon> {
  const anonKey = await mintAnonKey(LEGACY_SECRET);
  const rest = await startProgram<{ url: string }>('postgrest', [], {
    ...process.env,
    BENCH_POSTGREST_OPTIONS: JSON.stringify({
      databaseUrl: project.db.url, anonKey, jwtSecret: LEGACY_SECRET,
      jwksUrl: `${project.jwks.url}${JWKS_PATH}`, authUpstream: project.jwks.url,
    }),
  });
  let running: RunningDaemon;
  try {
    running = await startDaemon({
      env: { ...CLEAN_ENV, MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: rest.line.url, SUPABASE_ANON_KEY: anonKey, MCP_MAX_CONNECTIONS_PER_USER: String(maxPerUser) },
    });
  } catch (err) {
    await rest.stop();
    throw err;
  }
  // The daemon trusts tokens whose issuer is its own SUPABASE_URL (the stand-in proxies /auth/v1 to the JWKS).
  const tokens = await mintTokens(project.jwks.keys.es256, `${rest.line.url}/auth/v1`, project.users, project.tokens.length);
  const daemon = wrap(running, 'supabase + Data API', tokenOf(tokens), []);
  const stopDaemon = daemon.stop;
  daemon.stop = async () => {
    await stopDaemon();
    await rest.stop();
  };
  return daemon;
}
