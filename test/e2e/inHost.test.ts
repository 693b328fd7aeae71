// Runs test/vscode/*.test.ts INSIDE a real VS Code extension host: code-server loads the extension
// from this repository (extensionDevelopmentPath) and the mocha suite (extensionTestsPath), the way
// VS Code's own web integration tests do; the exit code comes back through codeAutomationExit.
// This is the offline stand-in for @vscode/test-electron (see `npm run test:desktop`).
import assert from 'node:assert/strict';
import path from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { launchBrowser, newRunDir, ROOT, startCodeServer, type CodeServer } from '../helpers/codeServer';
import { failuresOf, runInHostSuite } from '../helpers/inHost';
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
    const page = browser.pages()[0] ?? (await browser.newPage());
    const run = await runInHostSuite(page, server, { resultsFile: RESULTS, env: stack.testEnv, timeoutMs: 240_000 });
    await page.screenshot({ path: path.join(ROOT, 'test-results', 'e2e', 'in-host-end.png') }).catch(() => {});
    assert.ok(run.results, `the in-host suite wrote no results (exit ${run.code}); server log: ${server.serverLog().slice(-1500)}`);
    assert.deepEqual(failuresOf(run), []);
    assert.ok(run.results.passes.length >= 8, `in-host tests passed: ${run.results.passes.length}`);
    assert.equal(run.code, 0);
  });
});
