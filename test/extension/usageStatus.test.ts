// The status bar tooltip shows the window user's usage today: WindowConnection as the extension wires
// it (local mode: it starts the bundled daemon itself) against the real daemon with a daily budget
// and the fake OpenAI-compatible provider. On connect the tooltip has the budget; after a model call
// it has the call's tokens, without the window asking for anything.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readDiscovery } from '../../server/auth/localMode';
import { parseConfig } from '../../src/config';
import { WindowConnection } from '../../src/daemon/windowConnection';
import { describeStatus, type Status } from '../../src/ui/status';
import { DAEMON_JS } from '../helpers/daemon';
import { startFakeOpenAI, type FakeOpenAI } from '../providers/fakeOpenAI';
import pkg from '../../package.json';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const API_KEY = 'sk-usage-status-0123456789abcdefghij';

describe("the status bar tooltip shows the window user's usage today (WindowConnection, real daemon, fake provider)", function () {
  this.timeout(60_000);
  let dir: string;
  let fake: FakeOpenAI;
  let connection: WindowConnection;
  const statuses: Status[] = [];

  const until = async (what: string, check: () => boolean, ms = 15_000) => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(statuses.slice(-3))}`);
      await sleep(25);
    }
  };
  const last = () => statuses[statuses.length - 1];
  const usageLine = () => describeStatus(last()).tooltip.split('\n').find((l) => l.startsWith('| Usage today |'));

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-usage-status-'));
    fake = await startFakeOpenAI({ apiKey: API_KEY });
    fake.set({ usage: { prompt_tokens: 1_200, completion_tokens: 34 } });
    // The launcher passes the daemon only whitelisted variables: set the provider and the budget in a wrapper.
    const serverJs = path.join(dir, 'server.js');
    fs.writeFileSync(serverJs, [
      `process.env.EXAI_PROVIDER_BASE_URL = ${JSON.stringify(fake.baseUrl)};`,
      `process.env.EXAI_PROVIDER_API_KEY = ${JSON.stringify(API_KEY)};`,
      "process.env.EXAI_DEFAULT_MODEL = 'fake-model';",
      "process.env.EXAI_DAILY_TOKENS_PER_USER = '100000';",
      `require(${JSON.stringify(DAEMON_JS)});`,
    ].join('\n'));
    connection = new WindowConnection({
      config: parseConfig({}), accounts: null, windowUser: null, instance: 'vscode-usage-status-test', version: pkg.version,
      log: { info() {}, warn() {}, error() {}, addSecret() {} },
      launcher: { serverJs, nodePath: process.execPath, stateDir: path.join(dir, 'daemon'), logDir: path.join(dir, 'logs'), expectedVersion: pkg.version, idleExitSec: 60 },
      onStatus: (s) => statuses.push(s),
      notify: () => {},
    });
    await connection.start();
  });
  after(async function () {
    connection?.dispose();
    const pid = readDiscovery(path.join(dir, 'daemon'))?.pid;
    if (pid) try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    await fake?.close();
    await sleep(300);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('on connect: nothing used yet, of the budget, and when it resets', async function () {
    await until('connected with usage', () => last()?.kind === 'connected' && usageLine() !== undefined);
    assert.match(usageLine()!, /^\| Usage today \| 0 tokens in 0 calls of 100,000 \(resets 00:00 UTC, in (\d+ h )?\d+ min\) \|$/);
  });

  it('after a model call: its tokens, refreshed by itself', async function () {
    const result = await connection.callTool('chat', { prompt: 'hello' });
    assert.ok(result.ok, JSON.stringify(result));
    await until('the call in the tooltip', () => /1,234 tokens in 1 call of/.test(usageLine() ?? ''));
    assert.equal(last().kind, 'connected');
  });
});
