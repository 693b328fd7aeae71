// Real VS Code (code-server) + Chromium, the extension installed from its .vsix, against the
// GoTrue-compatible test server, the real daemon in supabase mode and the real Postgres:
//   F1 → "EXAI: Sign In" → email/password → "connected as jazeel@example.com";
//   a second window switches to michelle@example.com while the first stays Jazeel; both
//   connections are live in the daemon with the right users; tokens that expire every 20 s are
//   renewed without dropping either connection; two windows on one account share its refreshes.
// Screenshots go to test-results/e2e/ (and the ones worth showing to media/).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { startAuthServer, type AuthServer } from '../auth-server/server';
import { answerPasswordSignIn, newRunDir, launchBrowser, openWorkbench, ROOT, runCommand, startCodeServer, type CodeServer } from '../helpers/codeServer';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { JAZEEL, MICHELLE } from '../helpers/tokens';
import { sleep } from '../helpers/wait';

const OUT = path.join(ROOT, 'test-results', 'e2e');
const VSIX = path.join(ROOT, `exai-vscode-${require(path.join(ROOT, 'package.json')).version}.vsix`);
const PASSWORD = { jazeel: 'jazeel-Passw0rd!', michelle: 'michelle-Passw0rd!' };
const JWT_EXPIRY_SEC = 20;

const exaiItem = (page: Page) => page.locator('#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="EXAI"]').first();
const connectedAs = (page: Page, email: string) =>
  page.locator(`#workbench\\.parts\\.statusbar .statusbar-item[aria-label="EXAI connected as ${email}"]`).waitFor({ timeout: 60_000 });

describe('two users in two windows of a real VS Code (supabase mode)', function () {
  this.timeout(300_000);
  let auth: AuthServer;
  let db: TestDatabase;
  let daemon: RunningDaemon;
  let server: CodeServer;
  let browser: BrowserContext;
  let windowA: Page;
  let windowB: Page;

  const connectedRows = () =>
    db.query<{ session_id: string; email: string; instance: string }>(
      `select s.session_id, u.email, s.metadata->>'instance' as instance from public.mcp_sessions s join auth.users u on u.id = s.user_id
        where s.connection_status = 'connected' order by u.email`,
    );

  before(async function () {
    assert.ok(fs.existsSync(VSIX), `run npm run package first (${VSIX})`);
    auth = await startAuthServer({ jwtExpirySec: JWT_EXPIRY_SEC });
    db = await createTestDatabase();
    for (const [user, password] of [[JAZEEL, PASSWORD.jazeel], [MICHELLE, PASSWORD.michelle]] as const) {
      auth.createUser({ id: user.id, email: user.email, password });
      await db.addUser(user.id, user.email);
    }
    daemon = await startDaemon({ env: { MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: auth.url, DATABASE_URL: db.url, EXAI_HEARTBEAT_SECONDS: '5' } });
    server = await startCodeServer({
      runDir: newRunDir('multi-user'),
      vsix: VSIX,
      workspaces: ['ws-a', 'ws-b', 'ws-d'],
      settings: { 'exai.supabase.url': auth.url, 'exai.supabase.anonKey': auth.anonKey, 'exai.daemon.url': daemon.url },
    });
    browser = await launchBrowser(path.join(OUT, 'browser-multi'));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await daemon?.stop();
    await auth?.close();
    await db?.drop();
  });

  it('F1 → EXAI: Sign In with email and password connects window A as Jazeel', async function () {
    windowA = browser.pages()[0] ?? (await browser.newPage());
    await openWorkbench(windowA, server, path.join(server.runDir, 'ws-a'));
    await windowA.locator('#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="EXAI signed out"]').waitFor({ timeout: 60_000 });
    await runCommand(windowA, 'EXAI: Sign In');
    await answerPasswordSignIn(windowA, JAZEEL.email, PASSWORD.jazeel);
    await connectedAs(windowA, JAZEEL.email);
    assert.match(await exaiItem(windowA).innerText(), /EXAI: jazeel@example\.com/);
    await windowA.screenshot({ path: path.join(OUT, 'window-a-jazeel.png') });
    const rows = await connectedRows();
    assert.deepEqual(rows.map((r) => r.email), [JAZEEL.email]);
  });

  it('window B starts as the signed-in account, then switches to Michelle; A stays Jazeel', async function () {
    windowB = await browser.newPage();
    await openWorkbench(windowB, server, path.join(server.runDir, 'ws-b'));
    await connectedAs(windowB, JAZEEL.email); // the only account: used by default
    await runCommand(windowB, 'EXAI: Switch User');
    const qi = windowB.locator('.quick-input-widget');
    await qi.locator('.quick-input-list .monaco-list-row', { hasText: 'Sign in another account' }).first().waitFor();
    await windowB.keyboard.type('Sign in another account');
    await windowB.keyboard.press('Enter');
    await answerPasswordSignIn(windowB, MICHELLE.email, PASSWORD.michelle);
    await connectedAs(windowB, MICHELLE.email);
    await connectedAs(windowA, JAZEEL.email);
    await windowB.screenshot({ path: path.join(OUT, 'window-b-michelle.png') });

    // Both connections live in the daemon at once, each as its own user, from its own window.
    let rows = await connectedRows();
    for (let i = 0; i < 50 && rows.length !== 2; i++) {
      await sleep(200); // B's Jazeel connection closing
      rows = await connectedRows();
    }
    assert.deepEqual(rows.map((r) => r.email), [JAZEEL.email, MICHELLE.email]);
    assert.notEqual(rows[0].instance, rows[1].instance);
    const health: any = await (await fetch(`http://127.0.0.1:${daemon.port}/health`)).json();
    assert.equal(health.users, 2);
    assert.equal(health.connections, 2);
  });

  it('shows both accounts in the Accounts menu', async function () {
    await windowA.locator('.activitybar a[aria-label^="Accounts"], .activitybar .codicon-accounts-view-bar-icon').first().click();
    const menu = windowA.locator('.monaco-menu .action-label');
    await menu.first().waitFor({ timeout: 10_000 });
    const labels = (await menu.allInnerTexts()).join(' | ');
    // The part of the window with the Accounts menu (the README's screenshot: media/accounts-menu.png).
    const box = await windowA.locator('.monaco-menu').first().boundingBox();
    const clip = box ? { x: 0, y: Math.max(0, box.y - 40), width: Math.min(900, box.x + box.width + 40), height: box.height + 80 } : undefined;
    await windowA.screenshot({ path: path.join(OUT, 'accounts-menu.png'), clip });
    await windowA.keyboard.press('Escape');
    assert.match(labels, /jazeel@example\.com/);
    assert.match(labels, /michelle@example\.com/);
  });

  it('keeps both connections through several token expiries (refresh + in-band re-auth)', async function () {
    const before = await connectedRows();
    const refreshesBefore = auth.refreshRequests();
    await sleep((JWT_EXPIRY_SEC * 2 + 5) * 1000); // > two token lifetimes
    await connectedAs(windowA, JAZEEL.email);
    await connectedAs(windowB, MICHELLE.email);
    const after = await connectedRows();
    assert.deepEqual(after.map((r) => r.session_id), before.map((r) => r.session_id), 'same connections: none dropped and reconnected');
    assert.ok(auth.refreshRequests() - refreshesBefore >= 4, `two accounts refreshed at least twice each (${auth.refreshRequests() - refreshesBefore})`);
    assert.equal(auth.errorCounts()['refresh_token_already_used'] ?? 0, 0);
    assert.ok(!daemon.logs().includes('"token expired"'), 'the daemon never closed a connection for expiry');
  });

  let windowC: Page;
  it('two windows on one account share its refreshes: the other adopts, nobody is signed out', async function () {
    // Window C opens folder A, whose saved choice is Jazeel: now A and C both use Jazeel.
    windowC = await browser.newPage();
    await openWorkbench(windowC, server, path.join(server.runDir, 'ws-a'));
    await connectedAs(windowC, JAZEEL.email);
    await windowB.close(); // only Jazeel's refreshes count from here
    auth.resetCounters();
    const rowsBefore = (await connectedRows()).filter((r) => r.email === JAZEEL.email);
    assert.equal(rowsBefore.length, 2);
    await sleep((JWT_EXPIRY_SEC * 2 + 3) * 1000);
    await connectedAs(windowA, JAZEEL.email);
    await connectedAs(windowC, JAZEEL.email);
    const rowsAfter = (await connectedRows()).filter((r) => r.email === JAZEEL.email);
    assert.deepEqual(rowsAfter.map((r) => r.session_id).sort(), rowsBefore.map((r) => r.session_id).sort(), 'both connections lived through the expiries');
    const refreshes = auth.refreshRequests();
    // One refresh per token lifetime for the account, not one per window: a refresh every ~14-16 s
    // (6 s before a 20 s token's expiry) fits 2 to 4 times into the 43 s window, depending on where
    // the window starts; two windows refreshing on their own would make 6 or more.
    assert.ok(refreshes >= 2 && refreshes <= 4, `refresh requests for one account over two lifetimes: ${refreshes}`);
    assert.equal(auth.errorCounts()['refresh_token_already_used'] ?? 0, 0);
    await windowC.screenshot({ path: path.join(OUT, 'window-c-jazeel.png') });
  });

  it('a window reload keeps the window\'s user', async function () {
    await windowA.reload();
    await windowA.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await connectedAs(windowA, JAZEEL.email);
  });

  it('signs in with GitHub (OAuth + PKCE) through code-server\'s proxy to the extension\'s callback', async function () {
    const windowD = await browser.newPage();
    await openWorkbench(windowD, server, path.join(server.runDir, 'ws-d'));
    // Two accounts are signed in and this folder has no choice yet: the window waits for one.
    await windowD.locator('#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="EXAI signed out"]').waitFor({ timeout: 60_000 });
    await runCommand(windowD, 'EXAI: Sign In');
    const qi = windowD.locator('.quick-input-widget');
    await qi.locator('.quick-input-list .monaco-list-row', { hasText: 'GitHub' }).first().waitFor();
    const popup = browser.waitForEvent('page', { timeout: 30_000 });
    await windowD.keyboard.type('GitHub');
    await windowD.keyboard.press('Enter');
    // code-server may ask before opening an external link.
    const open = windowD.locator('.monaco-dialog-box .monaco-button', { hasText: 'Open' }).first();
    const first = await Promise.race([popup.then(() => 'popup'), open.waitFor({ timeout: 15_000 }).then(() => 'dialog', () => 'none')]);
    if (first === 'dialog') await open.click();
    const github = await popup;
    await github.waitForLoadState().catch(() => {});
    await github.locator('#authorize').waitFor({ timeout: 30_000 }).catch(async (err) => {
      await github.screenshot({ path: path.join(OUT, 'github-popup-failed.png') }).catch(() => {});
      throw new Error(`the GitHub stand-in did not load in the popup (at ${github.url()}): ${err.message}`);
    });
    await github.locator('#email').fill(MICHELLE.email); // the GitHub identity's verified email links to Michelle
    await github.screenshot({ path: path.join(OUT, 'github-stand-in.png') });
    await github.locator('#authorize').click();
    await github.locator('text=Signed in to EXAI').waitFor({ timeout: 30_000 });
    await connectedAs(windowD, MICHELLE.email);
    await github.close();
    await windowD.close();
  });

  it('signing an account out in one window signs it out in every window', async function () {
    await runCommand(windowC, 'EXAI: Sign Out');
    const qi = windowC.locator('.quick-input-widget');
    await qi.locator('.quick-input-list .monaco-list-row', { hasText: JAZEEL.email }).first().waitFor();
    await windowC.keyboard.type(JAZEEL.email);
    await windowC.keyboard.press('Enter');
    for (const w of [windowA, windowC]) {
      await w.locator('#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="EXAI signed out"]').waitFor({ timeout: 30_000 });
    }
    await windowA.screenshot({ path: path.join(OUT, 'signed-out-everywhere.png') });
    let rows = await connectedRows();
    for (let i = 0; i < 50 && rows.some((r) => r.email === JAZEEL.email); i++) {
      await sleep(200);
      rows = await connectedRows();
    }
    assert.deepEqual(rows.filter((r) => r.email === JAZEEL.email), [], 'no Jazeel connection left');
  });
});
