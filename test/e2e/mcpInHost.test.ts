// VS Code's own MCP client uses the EXAI server as each window's user: two windows of one code-server,
// each running its part of the in-host suite (test/vscode/mcp/windowA.test.ts, windowB.test.ts) at
// the same time, as Jazeel and as Michelle, against the real daemon (supabase mode) with tokens that
// live 15 s. Every request to the daemon passes a recording proxy, so what VS Code sent and got
// (401s, 404s, OAuth discovery, whose bearer) is checked on the wire.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { launchBrowser, newRunDir, ROOT, startCodeServer, type CodeServer } from '../helpers/codeServer';
import { failuresOf, runInHostSuite } from '../helpers/inHost';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recordingProxy';
import { startStack, type TestStack } from '../helpers/stack';

const JWT_EXPIRY_SEC = 15;
const OUT = path.join(ROOT, 'test-results', 'e2e');

describe('the EXAI MCP server in VS Code, two windows as two users (in-host, code-server)', function () {
  this.timeout(240_000);
  let stack: TestStack;
  let proxy: RecordingProxy;
  let server: CodeServer;
  let browser: BrowserContext;
  let syncDir: string;

  before(async function () {
    stack = await startStack({ jwtExpirySec: JWT_EXPIRY_SEC });
    proxy = await startRecordingProxy(stack.daemon.port);
    server = await startCodeServer({
      runDir: newRunDir('mcp-in-host'),
      workspaces: ['ws-a', 'ws-b'],
      // The extension reaches the daemon (WebSocket and /mcp) through the proxy.
      settings: { ...stack.settings, 'exai.daemon.url': proxy.url },
    });
    syncDir = fs.mkdtempSync(path.join(server.runDir, 'sync-'));
    browser = await launchBrowser(path.join(OUT, 'browser-mcp-in-host'));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await proxy?.close();
    await stack?.stop();
  });

  it('each window calls the tools as its own user, across token refreshes and a Switch User, with no 401', async function () {
    const env = {
      ...stack.testEnv,
      EXAI_TEST_JWT_EXPIRY_SEC: String(JWT_EXPIRY_SEC),
      EXAI_TEST_RECORDS_URL: `http://127.0.0.1:${proxy.port}/__records`,
      EXAI_TEST_SYNC_DIR: syncDir,
    };
    const pageA = browser.pages()[0] ?? (await browser.newPage());
    const pageB = await browser.newPage();
    const [a, b] = await Promise.all([
      runInHostSuite(pageA, server, {
        folder: path.join(server.runDir, 'ws-a'), label: 'window A', timeoutMs: 200_000,
        resultsFile: path.join(OUT, 'mcp-in-host-a.json'), env: { ...env, EXAI_INHOST_FILES: 'mcp/windowA.test.js' },
      }),
      runInHostSuite(pageB, server, {
        folder: path.join(server.runDir, 'ws-b'), label: 'window B', timeoutMs: 200_000,
        resultsFile: path.join(OUT, 'mcp-in-host-b.json'), env: { ...env, EXAI_INHOST_FILES: 'mcp/windowB.test.js' },
      }),
    ]);
    await pageA.screenshot({ path: path.join(OUT, 'mcp-in-host-a.png') }).catch(() => {});
    fs.writeFileSync(path.join(OUT, 'mcp-in-host-requests.json'), JSON.stringify(proxy.records(), null, 1)); // what VS Code sent, for a failure's diagnosis
    for (const [name, run] of [['A', a], ['B', b]] as const) {
      assert.ok(run.results, `window ${name} wrote no results (exit ${run.code}); server log: ${server.serverLog().slice(-1500)}`);
      assert.deepEqual(failuresOf(run), [], `window ${name}`);
      assert.equal(run.code, 0, `window ${name}`);
    }
    assert.equal(a.results!.passes.length, 6);
    assert.equal(b.results!.passes.length, 1);

    // On the wire, for the whole run: both users' sessions, never a 401, never OAuth discovery.
    const mcp = proxy.records().filter((r) => r.path !== '/' && r.path !== '/health');
    assert.deepEqual(mcp.filter((r) => r.path !== '/mcp').map((r) => `${r.method} ${r.path}`), [], 'no OAuth discovery or client registration');
    assert.deepEqual(mcp.filter((r) => r.status === 401), [], 'no 401');
    const users = new Set(mcp.filter((r) => r.rpc === 'initialize' && r.status === 200).map((r) => r.bearer));
    assert.deepEqual([...users].sort(), ['jazeel@example.com', 'michelle@example.com']);
    // The MCP bearer and the WebSocket share one refresh path: no refresh token was ever used twice.
    assert.ok(stack.auth.refreshRequests() >= 3, `refreshes: ${stack.auth.refreshRequests()}`);
    assert.equal(stack.auth.errorCounts()['refresh_token_already_used'] ?? 0, 0);
  });
});
