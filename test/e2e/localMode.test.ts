// Real VS Code (code-server) + Chromium, the extension installed from its .vsix, no Supabase:
// the extension spawns the bundled daemon in local mode and the status bar shows the live
// connection. Screenshots go to test-results/e2e/.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { newRunDir, launchBrowser, openWorkbench, ROOT, startCodeServer, statusItem, type CodeServer } from '../helpers/codeServer';
import { isProcessAlive, readDiscovery } from '../../server/auth/localMode';

const OUT = path.join(ROOT, 'test-results', 'e2e');
const VSIX = path.join(ROOT, `exai-vscode-${require(path.join(ROOT, 'package.json')).version}.vsix`);

describe('local mode in a real VS Code (code-server + Chromium)', function () {
  this.timeout(180_000);
  let server: CodeServer;
  let browser: BrowserContext;

  before(async function () {
    assert.ok(fs.existsSync(VSIX), `run npm run package first (${VSIX})`);
    server = await startCodeServer({ runDir: newRunDir('local'), vsix: VSIX });
    browser = await launchBrowser(path.join(OUT, 'browser'));
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    // The window was still connected when the test stopped its daemon, so the extension started
    // another; it would otherwise outlive code-server until its idle exit.
    if (server) {
      const respawned = readDiscovery(path.join(server.userDataDir, 'User', 'globalStorage', 'exai.exai-vscode', 'daemon', 'local'));
      if (respawned && isProcessAlive(respawned.pid)) process.kill(respawned.pid, 'SIGTERM');
    }
  });

  it('spawns the daemon and shows "connected" in the status bar', async function () {
    const page = browser.pages()[0] ?? (await browser.newPage());
    await openWorkbench(page, server);
    const item = statusItem(page);
    await page.locator('#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="EXAI connected as"]').waitFor({ timeout: 60_000 });
    const label = await item.getAttribute('aria-label');
    assert.match(label ?? '', /^EXAI connected as .+ \(local\)$/);
    assert.match(await item.innerText(), /EXAI: .+ \(local\)/);
    await page.screenshot({ path: path.join(OUT, 'local-mode-connected.png') });

    // The daemon the extension spawned: one, alive, in the extension's global storage.
    const stateDir = path.join(server.userDataDir, 'User', 'globalStorage', 'exai.exai-vscode', 'daemon', 'local');
    const info = readDiscovery(stateDir);
    assert.ok(info, `discovery file in ${stateDir}`);
    assert.ok(isProcessAlive(info!.pid));
    const health: any = await (await fetch(`http://127.0.0.1:${info!.port}/health`)).json();
    assert.equal(health.connections, 1);
    process.kill(info!.pid, 'SIGTERM'); // the extension reconnects to a new one (checked elsewhere); don't leave it running
  });
});
