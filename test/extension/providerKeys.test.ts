// Provider keys from the window to the daemon it spawns: WindowConnection as the extension wires it
// (local mode: the launcher starts the bundled daemon with only whitelisted variables), with keys in a
// SecretStorage stand-in. On connect the window gives the daemon its keys, and `chat` answers from the
// fake OpenAI-compatible provider; a key changed later is used at once by the same daemon process. The
// keys never reach the daemon's argv, environment or log, nor the window's log. Every wait is bounded.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readDiscovery } from '../../server/auth/localMode';
import { Redactor } from '../../server/log';
import { parseConfig } from '../../src/config';
import { ProviderKeyStore, type SecretStorageLike } from '../../src/daemon/providerKeyStore';
import { WindowConnection } from '../../src/daemon/windowConnection';
import type { Status } from '../../src/ui/status';
import { DAEMON_JS } from '../helpers/daemon';
import { startFakeOpenAI, type FakeOpenAI } from '../providers/fakeOpenAI';
import pkg from '../../package.json';

const KEY_1 = 'sk-window-key-1-0123456789abcdefghij';
const KEY_2 = 'sk-window-key-2-klmnopqrstuvwxyz0123';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class MemorySecrets implements SecretStorageLike {
  readonly values = new Map<string, string>();
  async get(key: string) { return this.values.get(key); }
  async store(key: string, value: string) { this.values.set(key, value); }
  async delete(key: string) { this.values.delete(key); }
}

describe('provider keys: the window gives them to the daemon it spawned (WindowConnection, real daemon)', function () {
  this.timeout(60_000);
  let dir: string;
  let fake: FakeOpenAI;
  let connection: WindowConnection;
  const secrets = new MemorySecrets();
  const store = new ProviderKeyStore(secrets);
  const statuses: Status[] = [];
  /** What the window's log would show (through its redactor, as src/ui/log.ts does). */
  const windowLog: string[] = [];
  const redactor = new Redactor();
  const line = (level: string) => (m: string) => void windowLog.push(`${level} ${redactor.redact(m)}`);

  const until = async (what: string, check: () => boolean | Promise<boolean>, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(statuses.slice(-3))} ${windowLog.slice(-5).join(' | ')}`);
      await sleep(50);
    }
  };
  const chatText = async () => {
    const result = await connection.callTool('chat', { prompt: 'hi', model: 'fake-model' });
    assert.ok(result.ok, JSON.stringify(result));
    return result.outputs.map((o) => o.text).join('');
  };

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-provider-keys-'));
    fake = await startFakeOpenAI({ apiKey: null });
    await store.set('custom', { apiKey: KEY_1, baseUrl: fake.baseUrl });
    connection = new WindowConnection({
      config: parseConfig({}), accounts: null, windowUser: null, instance: 'vscode-provider-keys', version: pkg.version,
      log: { info: line('info'), warn: line('warn'), error: line('error'), addSecret: (v) => redactor.addSecret(v) },
      launcher: { serverJs: DAEMON_JS, nodePath: process.execPath, stateDir: path.join(dir, 'daemon'), logDir: path.join(dir, 'logs'), expectedVersion: pkg.version, idleExitSec: 60 },
      onStatus: (s) => statuses.push(s),
      notify: () => {},
      providerKeys: store,
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

  it('on connect the daemon gets the stored key, and chat answers from the provider', async function () {
    await until('connected', () => statuses.at(-1)?.kind === 'connected');
    await until('the key given to the daemon', () => windowLog.some((l) => l.includes('gave the daemon the custom provider key')));
    fake.set({ chunks: ['answer with key 1'] });
    assert.match(await chatText(), /answer with key 1/);
    assert.equal(fake.requests().at(-1)!.authorization, `Bearer ${KEY_1}`);
  });

  it('a changed key is used at once by the same daemon process (no restart)', async function () {
    const pid = readDiscovery(path.join(dir, 'daemon'))!.pid;
    await store.set('custom', { apiKey: KEY_2, baseUrl: fake.baseUrl });
    const providers = await connection.setProviderKey('custom', await store.get('custom'));
    assert.deepEqual(providers, [{ name: 'custom', host: new URL(fake.baseUrl).host, source: 'client' }]);
    fake.set({ chunks: ['answer with key 2'] });
    assert.match(await chatText(), /answer with key 2/);
    assert.equal(fake.requests().at(-1)!.authorization, `Bearer ${KEY_2}`);
    assert.equal(readDiscovery(path.join(dir, 'daemon'))!.pid, pid, 'the same daemon');
  });

  it('the keys are absent from the daemon\'s argv, environment and log, and from the window\'s log', async function () {
    const pid = readDiscovery(path.join(dir, 'daemon'))!.pid;
    const logs = fs.readdirSync(path.join(dir, 'logs')).map((f) => fs.readFileSync(path.join(dir, 'logs', f), 'utf8')).join('');
    assert.match(logs, /provider key set by a local client/);
    for (const key of [KEY_1, KEY_2]) {
      assert.ok(!logs.includes(key), 'a key reached the daemon log');
      assert.ok(!windowLog.join('\n').includes(key), 'a key reached the window log');
      for (const file of ['cmdline', 'environ']) {
        let text: string;
        try {
          text = fs.readFileSync(`/proc/${pid}/${file}`).toString('utf8');
        } catch {
          this.skip(); // not Linux
        }
        assert.ok(!text.includes(key), `a key is in /proc/${pid}/${file}`);
      }
    }
  });
});
