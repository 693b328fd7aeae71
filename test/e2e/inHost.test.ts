// Runs test/vscode/*.test.ts INSIDE a real VS Code extension host: code-server loads the extension
// from this repository (extensionDevelopmentPath) and the mocha suite (extensionTestsPath), the way
// VS Code's own web integration tests do; the exit code comes back through codeAutomationExit.
// This is the offline stand-in for @vscode/test-electron (see `npm run test:desktop`).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import util from 'node:util';
import type { BrowserContext } from 'playwright-core';
import { launchBrowser, newRunDir, ROOT, startCodeServer, type CodeServer } from '../helpers/codeServer';
import { startStack, type TestStack } from '../helpers/stack';

const RESULTS = path.join(ROOT, 'test-results', 'inhost.json');

describe('in-host suite (mocha inside the code-server extension host)', function () {
  this.timeout(300_000);
  let stack: TestStack;
  let server: CodeServer;
  let browser: BrowserContext;

  before(async function () {
    stack = await startStack();
    server = await startCodeServer({ runDir: newRunDir('in-host'), settings: stack.settings });
    browser = await launchBrowser(path.join(ROOT, 'test-results', 'e2e', 'browser-inhost'));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await stack?.stop();
  });

  it('passes every in-host test', async function () {
    fs.rmSync(RESULTS, { force: true });
    const page = browser.pages()[0] ?? (await browser.newPage());
    const host = new URL(server.url).host;
    const remote = (p: string) => `vscode-remote://${host}${p}`;
    let exit!: (code: number) => void;
    const exited = new Promise<number>((r) => (exit = r));
    await page.exposeFunction('codeAutomationExit', async (code: number) => exit(code));
    // The extension host's console (the mocha reporter) arrives here.
    const NOISE = /open-vsx|ENOTFOUND|fs-copyfile|CodeExpectedError|Failed to load resource|^\s+at |^(Resolving|Resolved) connection token|^Creating a socket|^\[reconnection-grace-time\]|^Updating additional builtin|^\[Service Worker\]|^\s*$/;
    await page.exposeFunction('codeAutomationLog', (_type: string, args: unknown[]) => {
      const line = util.format(...args);
      if (!NOISE.test(line)) console.log(`    [ext host] ${line}`);
    });
    const payload = JSON.stringify([
      ['extensionDevelopmentPath', remote(ROOT)],
      ['extensionTestsPath', remote(path.join(ROOT, 'out', 'test', 'vscode', 'index.js'))],
      ['extensionEnvironment', JSON.stringify({
        EXAI_INHOST_RESULTS: RESULTS,
        ...stack.testEnv,
      })],
      ['skipWelcome', 'true'],
    ]);
    await page.goto(`${server.url}/?${new URLSearchParams({ folder: remote(server.workspace), payload })}`);
    const code = await Promise.race([exited, new Promise<number>((r) => setTimeout(() => r(-1), 240_000))]);
    await page.screenshot({ path: path.join(ROOT, 'test-results', 'e2e', 'in-host-end.png') }).catch(() => {});
    assert.ok(fs.existsSync(RESULTS), `the in-host suite wrote no results (exit ${code}); server log: ${server.serverLog().slice(-1500)}`);
    const results = JSON.parse(fs.readFileSync(RESULTS, 'utf8'));
    assert.deepEqual(results.failures.map((f: { title: string; error: string }) => `${f.title}: ${f.error.split('\n')[0]}`), []);
    assert.ok(results.passes.length >= 8, `in-host tests passed: ${results.passes.length}`);
    assert.equal(code, 0);
  });
});
