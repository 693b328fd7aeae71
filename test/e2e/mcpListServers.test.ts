// The EXAI server in VS Code's own MCP UI, clicked through in a real VS Code (code-server) with the
// extension installed from its .vsix: F1 → "MCP: List Servers" → EXAI → Start Server → Running, and
// the server's output shows the tools VS Code discovered. (Chat's AI features stay enabled here: with
// chat.disableAIFeatures the MCP palette entries are hidden.)
// Screenshots go to test-results/e2e/; media/mcp-list-servers.png (the READMEs') is a copy of one.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { answerPasswordSignIn, launchBrowser, newRunDir, openWorkbench, ROOT, runCommand, startCodeServer, type CodeServer } from '../helpers/codeServer';
import { STACK_PASSWORDS, startStack, type TestStack } from '../helpers/stack';
import { JAZEEL } from '../helpers/tokens';

const OUT = path.join(ROOT, 'test-results', 'e2e');
const VSIX = path.join(ROOT, `exai-vscode-${require(path.join(ROOT, 'package.json')).version}.vsix`);
const item = (page: Page, label: string) => page.locator(`#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="${label}"]`).first();

describe("EXAI in VS Code's MCP: List Servers (real VS Code, installed .vsix)", function () {
  this.timeout(180_000);
  let stack: TestStack;
  let server: CodeServer;
  let browser: BrowserContext;

  before(async function () {
    assert.ok(fs.existsSync(VSIX), `run npm run package first (${VSIX})`);
    stack = await startStack();
    server = await startCodeServer({ runDir: newRunDir('mcp-list-servers'), vsix: VSIX, settings: { ...stack.settings, 'chat.disableAIFeatures': false } });
    browser = await launchBrowser(path.join(OUT, 'browser-mcp-list'));
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await stack?.stop();
  });

  it('F1 → MCP: List Servers → EXAI → Start Server: Running, and its output shows the tools discovered', async function () {
    const page = browser.pages()[0] ?? (await browser.newPage());
    await clickThrough(page).catch(async (err) => {
      await page.screenshot({ path: path.join(OUT, 'mcp-list-servers-failed.png') }).catch(() => {});
      throw err;
    });
  });

  async function clickThrough(page: Page): Promise<void> {
    await openWorkbench(page, server);
    await item(page, 'EXAI signed out').waitFor({ timeout: 60_000 });
    await runCommand(page, 'EXAI: Sign In');
    await answerPasswordSignIn(page, JAZEEL.email, STACK_PASSWORDS.jazeel);
    await item(page, `EXAI connected as ${JAZEEL.email}`).waitFor({ timeout: 60_000 });

    const qi = page.locator('.quick-input-widget');
    const exaiRow = qi.locator('.quick-input-list .monaco-list-row', { hasText: /^\s*EXAI/ }).first();
    // `MCP: List Servers`, until its list shows EXAI. (Starting a server or showing its output moves the
    // focus a moment later, which can close a palette opened just then: open it again.)
    const listServers = async () => {
      for (let attempt = 1; ; attempt++) {
        await page.keyboard.press('Escape');
        try {
          await runCommand(page, 'MCP: List Servers');
          await exaiRow.waitFor({ timeout: 10_000 });
          return;
        } catch (err) {
          if (attempt === 3) throw err;
        }
      }
    };
    const pick = async (text: string) => {
      const row = qi.locator('.quick-input-list .monaco-list-row', { hasText: text }).first();
      await row.waitFor({ timeout: 15_000 });
      await row.click();
    };

    await listServers();
    await exaiRow.click();
    await pick('Start Server');

    // The list shows the state it had when opened: open it again until EXAI reads Running (bounded).
    let rowText = '';
    for (let attempt = 0; attempt < 20 && !/Running/.test(rowText); attempt++) {
      await listServers();
      rowText = (await exaiRow.innerText()).replace(/\s+/g, ' ');
      if (!/Running/.test(rowText)) await page.waitForTimeout(500);
    }
    assert.match(rowText, /EXAI.*Running/, `the EXAI row: ${rowText}`);

    await exaiRow.click();
    await pick('Show Output');
    const output = page.locator('.part.panel .view-lines');
    let discovered: RegExpExecArray | null = null;
    for (let i = 0; i < 60 && !discovered; i++) {
      discovered = /Discovered\s+(\d+)\s+tools/.exec((await output.allInnerTexts()).join('\n'));
      if (!discovered) await page.waitForTimeout(500);
    }
    assert.ok(discovered, `the output: ${(await output.allInnerTexts()).join('\n')}`);
    assert.ok(Number(discovered[1]) >= 4, `tools discovered: ${discovered[0]}`);

    // The README's picture: the server Running in the list, over its output with the tools discovered.
    await listServers();
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(OUT, 'mcp-list-servers.png') });
    await page.keyboard.press('Escape');
  }
});
