// Signing out from VS Code's Accounts menu (the AuthenticationProvider's removeSession) signs the
// account out in every window, in a real VS Code (code-server) clicked through with Chromium.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { answerPasswordSignIn, launchBrowser, newRunDir, openWorkbench, ROOT, runCommand, startCodeServer, type CodeServer } from '../helpers/codeServer';
import { STACK_PASSWORDS, startStack, type TestStack } from '../helpers/stack';
import { JAZEEL } from '../helpers/tokens';
import { sleep } from '../helpers/wait';

const OUT = path.join(ROOT, 'test-results', 'e2e');
const VSIX = path.join(ROOT, `exai-vscode-${require(path.join(ROOT, 'package.json')).version}.vsix`);
const item = (page: Page, label: string) => page.locator(`#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="${label}"]`).first();

describe('signing out from the Accounts menu (real VS Code)', function () {
  this.timeout(180_000);
  let stack: TestStack;
  let server: CodeServer;
  let browser: BrowserContext;

  before(async function () {
    assert.ok(fs.existsSync(VSIX), `run npm run package first (${VSIX})`);
    stack = await startStack();
    server = await startCodeServer({ runDir: newRunDir('accounts-menu'), vsix: VSIX, workspaces: ['ws-a', 'ws-b'], settings: stack.settings });
    browser = await launchBrowser(path.join(OUT, 'browser-accounts'));
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await stack?.stop();
  });

  it('signs the account out in every window', async function () {
    const a = browser.pages()[0] ?? (await browser.newPage());
    await openWorkbench(a, server, path.join(server.runDir, 'ws-a'));
    await item(a, 'EXAI signed out').waitFor({ timeout: 60_000 });
    await runCommand(a, 'EXAI: Sign In');
    await answerPasswordSignIn(a, JAZEEL.email, STACK_PASSWORDS.jazeel);
    await item(a, `EXAI connected as ${JAZEEL.email}`).waitFor({ timeout: 60_000 });
    const b = await browser.newPage();
    await openWorkbench(b, server, path.join(server.runDir, 'ws-b'));
    await item(b, `EXAI connected as ${JAZEEL.email}`).waitFor({ timeout: 60_000 });

    await a.bringToFront();
    await a.locator('.activitybar a[aria-label^="Accounts"], .activitybar .codicon-accounts-view-bar-icon').first().click();
    await a.locator('.monaco-menu .action-label', { hasText: JAZEEL.email }).first().hover();
    const signOut = a.locator('.monaco-menu .action-label', { hasText: /^Sign Out$/ }).first();
    await signOut.waitFor({ timeout: 10_000 });
    // The submenu slides in; a click during the animation can land on nothing.
    await a.waitForTimeout(500);
    await a.screenshot({ path: path.join(OUT, 'accounts-menu-submenu.png') });
    await signOut.click();
    // VS Code may ask for confirmation first (when other extensions used the account).
    const confirm = a.locator('.monaco-dialog-box .monaco-button', { hasText: 'Sign Out' }).first();
    const first = await Promise.race([
      confirm.waitFor({ timeout: 10_000 }).then(() => 'dialog', () => 'none'),
      item(a, 'EXAI signed out').waitFor({ timeout: 10_000 }).then(() => 'signed out', () => 'none'),
    ]);
    if (first === 'dialog') await confirm.click();

    for (const w of [a, b]) await item(w, 'EXAI signed out').waitFor({ timeout: 30_000 });
    await b.screenshot({ path: path.join(OUT, 'accounts-menu-signed-out.png') });
    const rows = await stack.db.query<{ n: number }>("select count(*)::int as n from public.mcp_sessions where connection_status = 'connected'");
    for (let i = 0; i < 50 && rows[0].n > 0; i++) {
      await sleep(200);
      rows.splice(0, 1, ...(await stack.db.query<{ n: number }>("select count(*)::int as n from public.mcp_sessions where connection_status = 'connected'")));
    }
    assert.equal(rows[0].n, 0, 'no connection left for the signed-out account');
  });
});
