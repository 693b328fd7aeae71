// The product's main flow, end to end (issue 8): the extension signs a user in, spawns the bundled
// daemon on the user's machine in supabase mode with ONLY the project URL and the public anon key,
// and connects with the user's JWT; the daemon records the session through the Data API as that
// user. Then nothing privileged may be found on the "laptop": settings, discovery file, the
// daemon's environment, logs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { startAuthServer, type AuthServer } from '../auth-server/server';
import { answerPasswordSignIn, freePort, launchBrowser, newRunDir, openWorkbench, ROOT, runCommand, startCodeServer, type CodeServer } from '../helpers/codeServer';
import { ADMIN_URL, createTestDatabase, type TestDatabase } from '../helpers/pg';
import { JAZEEL } from '../helpers/tokens';
import { startPostgrest, type Postgrest } from '../postgrest/server';
import { readDiscovery } from '../../server/auth/localMode';

const OUT = path.join(ROOT, 'test-results', 'e2e');
const VSIX = path.join(ROOT, `exai-vscode-${require(path.join(ROOT, 'package.json')).version}.vsix`);
const PASSWORD = 'spawned-Jazeel-1';

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

describe('the spawned daemon in supabase mode, through the Data API (real VS Code)', function () {
  this.timeout(240_000);
  let db: TestDatabase;
  let auth: AuthServer;
  let gateway: Postgrest;
  let server: CodeServer;
  let browser: BrowserContext;
  let page: Page;

  before(async function () {
    assert.ok(fs.existsSync(VSIX), `run npm run package first (${VSIX})`);
    db = await createTestDatabase();
    await db.addUser(JAZEEL.id, JAZEEL.email);
    // One project URL serves /auth/v1 (the test auth server) and /rest/v1 (the PostgREST stand-in),
    // as Supabase's gateway does; the auth server stamps that URL into the tokens' iss.
    const gatewayPort = await freePort();
    auth = await startAuthServer({ publicUrl: `http://127.0.0.1:${gatewayPort}` });
    auth.createUser({ id: JAZEEL.id, email: JAZEEL.email, password: PASSWORD });
    const direct = `http://127.0.0.1:${auth.port}`;
    gateway = await startPostgrest({
      databaseUrl: db.url, anonKey: auth.anonKey, serviceRoleKey: auth.serviceRoleKey, jwtSecret: auth.jwtSecret,
      jwksUrl: `${direct}/auth/v1/.well-known/jwks.json`, authUpstream: direct, port: gatewayPort,
    });
    server = await startCodeServer({
      runDir: newRunDir('spawned-supabase'),
      vsix: VSIX,
      settings: { 'exai.supabase.url': auth.url, 'exai.supabase.anonKey': auth.anonKey, 'exai.daemon.idleExitMinutes': 0.05 },
    });
    browser = await launchBrowser(path.join(OUT, 'browser-spawned'));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await gateway?.close();
    await auth?.close();
    await db?.drop();
  });

  const daemonDirs = () => fs.globSync?.(path.join(server.userDataDir, 'User', 'globalStorage', 'exai.exai-vscode', 'daemon', 'project-*')) ?? [];

  it('signs in, spawns the daemon in supabase mode and connects; the session row is written as the user', async function () {
    page = browser.pages()[0] ?? (await browser.newPage());
    await openWorkbench(page, server);
    await page.locator('#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="EXAI signed out"]').waitFor({ timeout: 60_000 });
    await runCommand(page, 'EXAI: Sign In');
    await answerPasswordSignIn(page, JAZEEL.email, PASSWORD);
    await page.locator(`#workbench\\.parts\\.statusbar .statusbar-item[aria-label="EXAI connected as ${JAZEEL.email}"]`).waitFor({ timeout: 60_000 });
    await page.screenshot({ path: path.join(OUT, 'spawned-supabase-connected.png') });

    const [dir] = daemonDirs();
    const info = readDiscovery(dir);
    assert.ok(info, 'the extension spawned a daemon for this project');
    assert.equal(info!.mode, 'supabase');
    assert.equal(info!.supabase_url, auth.url);
    const health: any = await (await fetch(`http://127.0.0.1:${info!.port}/health`)).json();
    assert.equal(health.mode, 'supabase');
    assert.equal(health.connections, 1);

    const rows = await db.query<{ user_id: string; connection_status: string }>('select user_id, connection_status from public.mcp_sessions');
    assert.deepEqual(rows, [{ user_id: JAZEEL.id, connection_status: 'connected' }]);
    assert.ok(gateway.requests().some((r) => r.fn === 'mcp_claim_session' && r.bearer), 'claimed through the Data API with the user\'s own token');
  });

  it('leaves nothing privileged on the machine: settings, discovery file, daemon environment, logs', async function () {
    const [dir] = daemonDirs();
    const info = readDiscovery(dir)!;
    const password = decodeURIComponent(new URL(ADMIN_URL).password);
    const forbidden: [string, string][] = [
      ['the service_role key', auth.serviceRoleKey],
      ['the JWT secret', auth.jwtSecret],
      ['the database password', password],
      ['the database URL', db.url],
    ];
    const places: [string, string][] = [
      ['settings.json', fs.readFileSync(path.join(server.userDataDir, 'User', 'settings.json'), 'utf8')],
      ['daemon.json', fs.readFileSync(path.join(dir, 'daemon.json'), 'utf8')],
      ["the daemon's environment", fs.readFileSync(`/proc/${info.pid}/environ`, 'utf8')],
      ...filesUnder(path.join(dir, 'logs')).map((f): [string, string] => [`daemon log ${path.basename(f)}`, fs.readFileSync(f, 'utf8')]),
      ...filesUnder(path.join(server.userDataDir, 'logs')).filter((f) => f.includes('exai')).map((f): [string, string] => [`window log ${path.basename(f)}`, fs.readFileSync(f, 'utf8')]),
    ];
    assert.ok(places.length >= 5, places.map(([p]) => p).join(', '));
    for (const [place, text] of places) {
      for (const [what, value] of forbidden) assert.ok(!text.includes(value), `${what} found in ${place}`);
      // The public anon key may be configured; no other JWT (an access token) may be written down.
      const jwts = (text.match(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g) ?? []).filter((t) => t !== auth.anonKey);
      assert.deepEqual(jwts, [], `a token in ${place}`);
    }
  });
});
