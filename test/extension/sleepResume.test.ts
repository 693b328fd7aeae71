// A window's process suspended (SIGSTOP, like a laptop asleep) past its token's expiry recovers on
// its own when resumed: it refreshes, reconnects and shows connected again, without signing out.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAuthServer, type AuthServer } from '../auth-server/server';
import { bundleForChildProcess } from '../helpers/childBundle';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { JAZEEL } from '../helpers/tokens';
import { sleep, waitFor } from '../helpers/wait';

const PASSWORD = 'sleep-resume-pw';
const JWT_EXPIRY_SEC = 6;

describe('sleep and resume (a suspended window process)', function () {
  this.timeout(90_000);
  let auth: AuthServer;
  let db: TestDatabase;
  let daemon: RunningDaemon;
  let dir: string;
  let child: ChildProcess | null = null;

  before(async function () {
    auth = await startAuthServer({ jwtExpirySec: JWT_EXPIRY_SEC });
    auth.createUser({ id: JAZEEL.id, email: JAZEEL.email, password: PASSWORD });
    db = await createTestDatabase();
    await db.addUser(JAZEEL.id, JAZEEL.email);
    daemon = await startDaemon({ env: { MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: auth.url, DATABASE_URL: db.url } });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-sleep-'));
  });
  after(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await daemon?.stop();
    await auth?.close();
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refreshes, reconnects and is connected again after a suspension longer than the token lifetime', async function () {
    const program = bundleForChildProcess('test/extension/programs/window.ts', path.join(dir, 'window.js'));
    child = spawn(process.execPath, [program, JSON.stringify({
      dir: path.join(dir, 'window'), supabaseUrl: auth.url, anonKey: auth.anonKey, daemonUrl: daemon.url, email: JAZEEL.email, password: PASSWORD,
    })], { stdio: ['ignore', 'pipe', 'inherit'] });
    const events: any[] = [];
    let buffer = '';
    child.stdout!.on('data', (d) => {
      buffer += d;
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        events.push(JSON.parse(buffer.slice(0, nl)));
        buffer = buffer.slice(nl + 1);
      }
    });
    const until = (what: string, check: () => boolean, ms: number) =>
      waitFor(check, ms, what, { everyMs: 100, context: () => `last events: ${JSON.stringify(events.slice(-10))}` });
    const connectedCount = () => events.filter((e) => e.status?.kind === 'connected').length;
    await until('connected', () => connectedCount() >= 1, 20_000);

    child.kill('SIGSTOP'); // asleep: no timer runs, no refresh, no pong
    await sleep((JWT_EXPIRY_SEC + 4) * 1000);
    const before = connectedCount();
    child.kill('SIGCONT');

    await until('connected again after resume', () => connectedCount() > before || events.slice(-3).some((e) => e.log?.includes('re-authenticated')), 30_000);
    await sleep(1000);
    const last = [...events].reverse().find((e) => e.status);
    assert.equal(last.status.kind, 'connected', JSON.stringify(events.slice(-10)));
    assert.ok(!events.some((e) => e.status?.kind === 'signed_out'), 'never signed out');
    assert.equal(auth.errorCounts()['refresh_token_already_used'] ?? 0, 0);
    const rows = await db.query<{ n: number }>("select count(*)::int as n from public.mcp_sessions where connection_status = 'connected'");
    assert.equal(rows[0].n, 1, 'one live connection after resume');
  });
});
