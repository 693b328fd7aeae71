// 'EXAI: Set Provider Key' in a real VS Code (code-server + Chromium), local mode: the extension
// spawned the daemon with only whitelisted variables, so it has no provider; a person sets a custom
// OpenAI-compatible endpoint's key from the command palette (F1 → EXAI: Set Provider Key → Custom… →
// the fake provider's URL → the key in a password box), and `chat` through that same daemon answers
// from the fake provider. Then the key may be found nowhere: settings.json, the daemon's and the
// window's logs, the daemon's argv and environment.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { launchBrowser, newRunDir, openWorkbench, ROOT, runCommand, startCodeServer, type CodeServer } from '../helpers/codeServer';
import { helloClient } from '../helpers/client';
import { callTool, errorOf, okText } from '../helpers/toolCalls';
import { startFakeOpenAI, type FakeOpenAI } from '../providers/fakeOpenAI';
import { readDiscovery } from '../../server/auth/localMode';

const OUT = path.join(ROOT, 'test-results', 'e2e');
const VSIX = path.join(ROOT, `exai-vscode-${require(path.join(ROOT, 'package.json')).version}.vsix`);
const KEY = 'sk-palette-key-0123456789abcdefghijklmn';

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

describe('EXAI: Set Provider Key in a real VS Code (code-server + Chromium, local mode)', function () {
  this.timeout(240_000);
  let fake: FakeOpenAI;
  let server: CodeServer;
  let browser: BrowserContext;
  let page: Page;
  const stateDir = () => path.join(server.userDataDir, 'User', 'globalStorage', 'exai.exai-vscode', 'daemon', 'local');
  /** A tool call through the daemon the extension spawned (signed in with its local secret, as a window is). */
  const call = async (name: string, args: Record<string, unknown>) => {
    const info = readDiscovery(stateDir())!;
    const { client, ack } = await helloClient(`ws://127.0.0.1:${info.port}/`, info.secret!, 'e2e-provider-key');
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    try {
      return await callTool(client, name, args);
    } finally {
      await client.close();
    }
  };
  const chat = () => call('chat', { prompt: 'hello from the palette test', model: 'fake-model' });

  before(async function () {
    assert.ok(fs.existsSync(VSIX), `run npm run package first (${VSIX})`);
    fake = await startFakeOpenAI({ apiKey: KEY });
    server = await startCodeServer({ runDir: newRunDir('provider-key'), vsix: VSIX });
    browser = await launchBrowser(path.join(OUT, 'browser-provider-key'));
  });
  after(async () => {
    const info = server && readDiscovery(stateDir());
    await browser?.close();
    await server?.stop();
    if (info) try { process.kill(info.pid, 'SIGTERM'); } catch { /* gone */ }
    await fake?.close();
  });

  it('sets a custom endpoint\'s key from the command palette; chat through the spawned daemon answers from it', async function () {
    page = browser.pages()[0] ?? (await browser.newPage());
    await openWorkbench(page, server);
    await page.locator('#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="EXAI connected as"]').waitFor({ timeout: 60_000 });
    assert.equal(errorOf(await chat()).code, 'provider_not_configured', 'the spawned daemon starts without a provider');

    await runCommand(page, 'EXAI: Set Provider Key');
    const qi = page.locator('.quick-input-widget');
    await qi.locator('.quick-input-list .monaco-list-row', { hasText: 'Custom OpenAI-compatible endpoint' }).first().waitFor();
    await page.keyboard.type('Custom');
    await page.keyboard.press('Enter');
    await qi.locator('.quick-input-title', { hasText: '1 of 2' }).waitFor();
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type(fake.baseUrl);
    await page.keyboard.press('Enter');
    await qi.locator('input[type="password"]').waitFor({ state: 'visible' });
    await page.keyboard.type(KEY);
    await page.keyboard.press('Enter');
    await page.locator('.notification-toast', { hasText: 'is set; the daemon uses it from now on' }).waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(OUT, 'provider-key-set.png') });

    fake.set({ chunks: ['answer from the fake provider'] });
    assert.match(okText(await chat()), /answer from the fake provider/);
    assert.equal(fake.requests().at(-1)!.authorization, `Bearer ${KEY}`);

    // listmodels shows the provider as configured, and where its key came from.
    fake.set({ models: ['fake-model'] });
    const listed = JSON.parse(okText(await call('listmodels', {})));
    const custom = listed.providers.find((p: { provider: string }) => p.provider === 'custom');
    assert.equal(custom.configured, true);
    assert.equal(custom.key_source, "set with 'EXAI: Set Provider Key'");
    assert.deepEqual(custom.models, ['fake-model']);
    fake.set({});
  });

  it('the key is absent from settings.json, the logs, and the daemon\'s argv and environment', async function () {
    const info = readDiscovery(stateDir())!;
    const places: [string, string][] = [
      ['settings.json', fs.readFileSync(path.join(server.userDataDir, 'User', 'settings.json'), 'utf8')],
      ['daemon.json', fs.readFileSync(path.join(stateDir(), 'daemon.json'), 'utf8')],
      ["the daemon's argv", fs.readFileSync(`/proc/${info.pid}/cmdline`, 'utf8')],
      ["the daemon's environment", fs.readFileSync(`/proc/${info.pid}/environ`, 'utf8')],
      ...filesUnder(path.join(stateDir(), 'logs')).map((f): [string, string] => [`daemon log ${path.basename(f)}`, fs.readFileSync(f, 'utf8')]),
      ...filesUnder(path.join(server.userDataDir, 'logs')).filter((f) => f.includes('exai')).map((f): [string, string] => [`window log ${path.basename(f)}`, fs.readFileSync(f, 'utf8')]),
    ];
    const daemonLogs = places.filter(([p]) => p.startsWith('daemon log')).map(([, t]) => t).join('');
    assert.match(daemonLogs, /provider key set by a local client/, 'the daemon logged the change (without the key)');
    assert.ok(places.some(([p]) => p.startsWith('window log')), places.map(([p]) => p).join(', '));
    for (const [place, text] of places) assert.ok(!text.includes(KEY), `the key found in ${place}`);
  });

  it('"Remove a provider key" takes it away from the daemon at once', async function () {
    await runCommand(page, 'EXAI: Set Provider Key');
    const qi = page.locator('.quick-input-widget');
    await qi.locator('.quick-input-list .monaco-list-row', { hasText: 'Remove a provider key' }).first().waitFor();
    await page.keyboard.type('Remove a provider key');
    await page.keyboard.press('Enter');
    await qi.locator('.quick-input-title', { hasText: 'Remove a provider key' }).waitFor();
    await qi.locator('.quick-input-list .monaco-list-row', { hasText: 'Custom OpenAI-compatible endpoint' }).first().waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.notification-toast', { hasText: 'is removed; the daemon now has no provider' }).waitFor({ timeout: 30_000 });
    assert.equal(errorOf(await chat()).code, 'provider_not_configured');
  });
});
