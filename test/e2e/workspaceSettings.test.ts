// A repository cannot redirect a window's tokens. Its .vscode/settings.json (and a multi-root
// workspace file, and a folder's settings in it) name another Supabase project and another daemon;
// the folder is trusted. Real VS Code (code-server) + Chromium, the extension from its .vsix: the
// window signs in to the project the USER's settings name and connects to the user's daemon; the
// repository's project gets no request and its daemon no connection. Then the user's own setting
// moves the window to that other daemon at once, so it was reachable all along.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { startAuthServer, type AuthServer } from '../auth-server/server';
import { answerPasswordSignIn, launchBrowser, newRunDir, openWorkbench, ROOT, runCommand, startCodeServer, type CodeServer } from '../helpers/codeServer';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { JAZEEL } from '../helpers/tokens';
import { waitFor } from '../helpers/wait';

const OUT = path.join(ROOT, 'test-results', 'e2e');
const VSIX = path.join(ROOT, `exai-vscode-${require(path.join(ROOT, 'package.json')).version}.vsix`);
const PASSWORD = 'jazeel-Passw0rd!';
/** A window-scoped setting the repository also sets: its title proves VS Code read the repository's settings. */
const REPO_TITLE = 'REPOSITORY-SETTINGS-LOADED';

const connectedAs = (page: Page, email: string) =>
  page.locator(`#workbench\\.parts\\.statusbar .statusbar-item[aria-label="EXAI connected as ${email}"]`).waitFor({ timeout: 60_000 });

describe("a workspace's settings cannot choose where the window's tokens go (code-server)", function () {
  this.timeout(300_000);
  let auth: AuthServer; // the user's project
  let repoAuth: AuthServer; // the project the repository names
  const repoAuthRequests: string[] = [];
  let db: TestDatabase;
  let daemon: RunningDaemon; // the user's daemon
  let repoDaemon: RunningDaemon; // the daemon the repository names
  let server: CodeServer;
  let browser: BrowserContext;

  const connections = async (d: RunningDaemon) => ((await (await fetch(`http://127.0.0.1:${d.port}/health`)).json()) as { connections: number }).connections;
  const until = (what: string, check: () => Promise<boolean>, ms = 60_000) => waitFor(check, ms, what, { everyMs: 250 });
  const writeRepoSettings = (folder: string, settings: Record<string, unknown>) => {
    fs.mkdirSync(path.join(folder, '.vscode'), { recursive: true });
    fs.writeFileSync(path.join(folder, '.vscode', 'settings.json'), JSON.stringify(settings, null, 2));
  };

  before(async function () {
    assert.ok(fs.existsSync(VSIX), `run npm run package first (${VSIX})`);
    auth = await startAuthServer();
    auth.createUser({ id: JAZEEL.id, email: JAZEEL.email, password: PASSWORD });
    // Knows the same email and password: if the window signed in there, it would succeed (and hand over its tokens).
    repoAuth = await startAuthServer({ log: (line) => repoAuthRequests.push(line) });
    repoAuth.createUser({ id: JAZEEL.id, email: JAZEEL.email, password: PASSWORD });
    db = await createTestDatabase();
    await db.addUser(JAZEEL.id, JAZEEL.email);
    const env = { MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: auth.url, DATABASE_URL: db.url };
    daemon = await startDaemon({ env });
    // Accepts the user's tokens too: only the settings decide whether the window goes there.
    repoDaemon = await startDaemon({ env });
    const userSettings = { 'exai.supabase.url': auth.url, 'exai.supabase.anonKey': auth.anonKey, 'exai.daemon.url': daemon.url };
    server = await startCodeServer({ runDir: newRunDir('workspace-settings'), vsix: VSIX, workspaces: ['repo', 'multi/a', 'multi/b'], settings: userSettings });
    const repoSettings = { 'exai.supabase.url': repoAuth.url, 'exai.supabase.anonKey': repoAuth.anonKey, 'exai.daemon.url': repoDaemon.url, 'window.title': REPO_TITLE };
    writeRepoSettings(path.join(server.runDir, 'repo'), repoSettings);
    // A multi-root workspace: the .code-workspace file's settings and folder b's settings both try.
    writeRepoSettings(path.join(server.runDir, 'multi', 'b'), { 'exai.daemon.url': repoDaemon.url, 'exai.supabase.url': repoAuth.url });
    fs.writeFileSync(path.join(server.runDir, 'multi', 'team.code-workspace'), JSON.stringify({ folders: [{ path: 'a' }, { path: 'b' }], settings: repoSettings }, null, 2));
    browser = await launchBrowser(path.join(OUT, 'browser-workspace-settings'));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await daemon?.stop();
    await repoDaemon?.stop();
    await auth?.close();
    await repoAuth?.close();
    await db?.drop();
  });

  let repoWindow: Page;
  it("a trusted folder whose .vscode/settings.json names another project and daemon: signs in and connects where the user's settings say", async function () {
    repoWindow = browser.pages()[0] ?? (await browser.newPage());
    await openWorkbench(repoWindow, server, path.join(server.runDir, 'repo'));
    await until('the repository settings to apply (window.title)', async () => (await repoWindow.title()).includes(REPO_TITLE));
    await repoWindow.locator('#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="EXAI signed out"]').waitFor({ timeout: 60_000 });
    await runCommand(repoWindow, 'EXAI: Sign In');
    await answerPasswordSignIn(repoWindow, JAZEEL.email, PASSWORD);
    await connectedAs(repoWindow, JAZEEL.email);
    await repoWindow.screenshot({ path: path.join(OUT, 'workspace-settings-ignored.png') });
    assert.equal(await connections(daemon), 1);
    assert.equal(await connections(repoDaemon), 0, "the repository's daemon got a connection");
    assert.deepEqual(repoAuthRequests, [], "the repository's project got a request");
  });

  it('a multi-root workspace whose .code-workspace and folder settings name them: the same', async function () {
    const page = await browser.newPage();
    await page.goto(`${server.url}/?workspace=${encodeURIComponent(path.join(server.runDir, 'multi', 'team.code-workspace'))}`);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await until('the workspace file settings to apply (window.title)', async () => (await page.title()).includes(REPO_TITLE));
    await connectedAs(page, JAZEEL.email); // the account signed in above, from the shared store
    await until('two connections on the user daemon', async () => (await connections(daemon)) === 2);
    assert.equal(await connections(repoDaemon), 0);
    assert.deepEqual(repoAuthRequests, []);
    await page.close();
    await until('the second window to leave', async () => (await connections(daemon)) === 1);
  });

  it("the user's own setting still works: changing exai.daemon.url in the Settings editor moves the window there at once", async function () {
    await runCommand(repoWindow, 'EXAI: Open Settings'); // the Settings editor, User tab, filtered to EXAI
    const input = repoWindow.locator('.settings-editor [data-key="exai.daemon.url"] input').first();
    await input.waitFor({ timeout: 30_000 });
    await input.fill(repoDaemon.url);
    await input.press('Tab');
    await until("the window on the daemon the user's setting names", async () => (await connections(repoDaemon)) === 1 && (await connections(daemon)) === 0)
      .catch(async (err) => {
        await repoWindow.screenshot({ path: path.join(OUT, 'workspace-settings-user-change-failed.png') });
        throw err;
      });
    await connectedAs(repoWindow, JAZEEL.email);
    const written = JSON.parse(fs.readFileSync(path.join(server.userDataDir, 'User', 'settings.json'), 'utf8'));
    assert.equal(written['exai.daemon.url'], repoDaemon.url, 'written to the user settings');
    assert.deepEqual(repoAuthRequests, [], 'the project still comes from the user settings');
  });
});
