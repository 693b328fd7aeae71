// The services behind a supabase-mode VS Code test: the GoTrue-compatible auth server with the
// two test users, a fresh Postgres database with the migrations, and the daemon in supabase mode.
// Used by the in-host suite in code-server (test/e2e/inHost.test.ts) and on desktop VS Code
// (test/desktop/run.ts).
import { startAuthServer, type AuthServer } from '../auth-server/server';
import { startDaemon, type RunningDaemon } from './daemon';
import { createTestDatabase, type TestDatabase } from './pg';
import { JAZEEL, MICHELLE } from './tokens';

export const STACK_PASSWORDS = { jazeel: 'in-host-Jazeel-1', michelle: 'in-host-Michelle-1' };

export interface TestStack {
  auth: AuthServer;
  db: TestDatabase;
  daemon: RunningDaemon;
  /** VS Code user settings that point the extension at this stack. */
  settings: Record<string, unknown>;
  /** Environment for the in-host suite (test/vscode). */
  testEnv: Record<string, string>;
  stop(): Promise<void>;
}

export async function startStack(opts: { jwtExpirySec?: number } = {}): Promise<TestStack> {
  const auth = await startAuthServer({ jwtExpirySec: opts.jwtExpirySec });
  const db = await createTestDatabase();
  for (const [user, password] of [[JAZEEL, STACK_PASSWORDS.jazeel], [MICHELLE, STACK_PASSWORDS.michelle]] as const) {
    auth.createUser({ id: user.id, email: user.email, password });
    await db.addUser(user.id, user.email);
  }
  const daemon = await startDaemon({ env: { MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: auth.url, DATABASE_URL: db.url } });
  return {
    auth, db, daemon,
    settings: {
      'exai.supabase.url': auth.url,
      'exai.supabase.anonKey': auth.anonKey,
      'exai.daemon.url': daemon.url,
      // A daemon the extension spawns (the local-mode test) exits 3 s after the window goes away.
      'exai.daemon.idleExitMinutes': 0.05,
    },
    testEnv: { EXAI_TEST_JAZEEL_PASSWORD: STACK_PASSWORDS.jazeel, EXAI_TEST_MICHELLE_PASSWORD: STACK_PASSWORDS.michelle },
    async stop() {
      await daemon.stop();
      await auth.close();
      await db.drop();
    },
  };
}
