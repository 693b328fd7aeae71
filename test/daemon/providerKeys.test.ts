// Provider keys set at run time (set_provider_key / remove_provider_key, server/tools/providerKeys.ts):
// the real daemon (dist/server.js) against fake OpenAI-compatible servers on loopback. Local mode: a
// key set on a connection that said hello with the local secret is used by the next chat call, with
// no restart; the last key set wins; removing it falls back to nothing. Refused: before hello, with a
// wrong secret, from a browser Origin, and always in supabase mode (a hosted daemon keeps its own
// keys). The keys never reach a frame, the log, the daemon's argv or its environment. Every wait is bounded.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { ServerFrame } from '../../server/protocol';
import { connect, helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { JAZEEL, mintAccessToken, startJwksServer, type JwksServer } from '../helpers/tokens';
import { callTool, errorOf, okText } from '../helpers/toolCalls';
import { startFakeOpenAI, type FakeOpenAI } from '../providers/fakeOpenAI';

const KEY_A = 'sk-runtime-key-A-0123456789abcdefghij';
const KEY_B = 'sk-runtime-key-B-klmnopqrstuvwxyz9876';
const GLM_KEY = 'glm-runtime-key-C-0123456789zyxwvuts';
const HOSTED_KEY = 'sk-hosted-env-key-D-abcdefghij012345';
/** The daemon inherits none of the runner's provider settings. */
const CLEAN_ENV: Record<string, undefined> = {
  MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, SUPABASE_JWT_SECRET: undefined, DATABASE_URL: undefined, SUPABASE_ANON_KEY: undefined,
  EXAI_PROVIDER_BASE_URL: undefined, EXAI_PROVIDER_API_KEY: undefined, EXAI_DEFAULT_MODEL: undefined,
  KIMI_API_KEY: undefined, KIMI_API_URL: undefined, GLM_API_KEY: undefined, GLM_API_URL: undefined, EXAI_IDLE_EXIT_SECONDS: undefined, EXAI_DAEMON_ID: undefined,
};

type KeyAck = Extract<ServerFrame, { op: 'provider_key_ack' }>;
let seq = 0;

async function setKey(client: TestClient, frame: Record<string, unknown>): Promise<KeyAck> {
  const request_id = `key-${++seq}`;
  client.send({ op: 'set_provider_key', request_id, ...frame });
  return client.next<KeyAck>((f) => f.op === 'provider_key_ack' && f.request_id === request_id);
}

async function removeKey(client: TestClient, provider: string): Promise<KeyAck> {
  const request_id = `key-${++seq}`;
  client.send({ op: 'remove_provider_key', request_id, provider });
  return client.next<KeyAck>((f) => f.op === 'provider_key_ack' && f.request_id === request_id);
}

function ackProviders(ack: KeyAck) {
  assert.ok(ack.ok, `the key was refused: ${JSON.stringify(ack)}`);
  return ack.providers;
}

/** NUL-separated /proc files of the daemon (Linux); null elsewhere. */
function procText(pid: number, file: 'cmdline' | 'environ'): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`).toString('utf8');
  } catch {
    return null;
  }
}

describe('provider keys set at run time: local mode', function () {
  this.timeout(30000);
  let fakeA: FakeOpenAI;
  let fakeB: FakeOpenAI;
  let glm: FakeOpenAI;
  let ollama: FakeOpenAI;
  let daemon: RunningDaemon;
  const clients: TestClient[] = [];
  const seen: ServerFrame[] = [];
  const secret = () => JSON.parse(fs.readFileSync(path.join(daemon.stateDir, 'daemon.json'), 'utf8')).secret as string;
  const open = async (instance = `vscode-keys-${clients.length}`) => {
    const { client, ack } = await helloClient(daemon.url, secret(), instance);
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    clients.push(client);
    return client;
  };

  before(async function () {
    [fakeA, fakeB, glm, ollama] = await Promise.all([
      startFakeOpenAI({ apiKey: KEY_A }), startFakeOpenAI({ apiKey: KEY_B }), startFakeOpenAI({ apiKey: GLM_KEY }), startFakeOpenAI({ apiKey: null }),
    ]);
    daemon = await startDaemon({ env: { ...CLEAN_ENV } });
  });

  afterEach(async function () {
    for (const c of clients.splice(0)) {
      await c.close();
      seen.push(...c.frames);
    }
  });

  after(async function () {
    await daemon?.stop();
    await Promise.all([fakeA?.close(), fakeB?.close(), glm?.close(), ollama?.close()]);
  });

  it('a key set on a connection is used by the next chat call, without a restart; the last key set wins; removing it unconfigures the provider', async function () {
    const first = await open('vscode-window-1');
    const before = errorOf(await callTool(first, 'chat', { prompt: 'hi', model: 'fake-model' }));
    assert.equal(before.code, 'provider_not_configured');
    assert.match(before.message, /run 'EXAI: Set Provider Key'/);

    fakeA.set({ chunks: ['answer from A'] });
    const providers = ackProviders(await setKey(first, { provider: 'custom', api_key: KEY_A, base_url: `${fakeA.baseUrl}/` }));
    assert.deepEqual(providers, [{ name: 'custom', host: new URL(fakeA.baseUrl).host, source: 'client' }]);
    assert.match(okText(await callTool(first, 'chat', { prompt: 'hi', model: 'fake-model' })), /answer from A/);
    assert.equal(fakeA.requests().at(-1)!.authorization, `Bearer ${KEY_A}`);

    // listmodels says where the key came from.
    fakeA.set({ models: ['fake-model'] });
    const listed = JSON.parse(okText(await callTool(first, 'listmodels', {})));
    const custom = listed.providers.find((p: { provider: string }) => p.provider === 'custom');
    assert.equal(custom.configured, true);
    assert.equal(custom.key_source, "set with 'EXAI: Set Provider Key'");
    assert.deepEqual(custom.models, ['fake-model']);

    // Another window sets another key for the same provider: it applies to every connection.
    const second = await open('vscode-window-2');
    fakeB.set({ chunks: ['answer from B'] });
    ackProviders(await setKey(second, { provider: 'custom', api_key: KEY_B, base_url: fakeB.baseUrl }));
    const countA = fakeA.requests().length;
    assert.match(okText(await callTool(first, 'chat', { prompt: 'hi', model: 'fake-model' })), /answer from B/);
    assert.equal(fakeA.requests().length, countA, 'the replaced endpoint is not asked any more');
    assert.equal(fakeB.requests().at(-1)!.authorization, `Bearer ${KEY_B}`);

    // GLM by its own key (here at a fake base URL): glm-* models and the default model go there.
    glm.set({ chunks: ['answer from GLM'] });
    const both = ackProviders(await setKey(first, { provider: 'glm', api_key: GLM_KEY, base_url: glm.baseUrl }));
    assert.deepEqual(both.map((p) => p.name).sort(), ['custom', 'glm']);
    assert.match(okText(await callTool(first, 'chat', { prompt: 'hi' })), /answer from GLM/);
    assert.equal(glm.requests().at(-1)!.model, 'glm-4.5-flash');

    assert.deepEqual(ackProviders(await removeKey(second, 'glm')).map((p) => p.name), ['custom']);
    assert.deepEqual(ackProviders(await removeKey(second, 'custom')), []);
    const after = errorOf(await callTool(first, 'chat', { prompt: 'hi', model: 'fake-model' }));
    assert.equal(after.code, 'provider_not_configured');
  });

  it('a custom endpoint may have no key (a local server such as Ollama)', async function () {
    const client = await open();
    ollama.set({ chunks: ['answer from a local server'] });
    ackProviders(await setKey(client, { provider: 'custom', api_key: '', base_url: ollama.baseUrl }));
    assert.match(okText(await callTool(client, 'chat', { prompt: 'hi', model: 'llama3' })), /answer from a local server/);
    // Without a model and without EXAI_DEFAULT_MODEL: says to name one, not that nothing is configured.
    const unnamed = errorOf(await callTool(client, 'chat', { prompt: 'hi' }));
    assert.match(unnamed.message, /^No model was named, and this daemon has no default model/);
    ackProviders(await removeKey(client, 'custom'));
  });

  it('refuses an unusable key or URL with a sentence that says what to do, and never quotes the key', async function () {
    const client = await open();
    const refusals: [Record<string, unknown>, RegExp][] = [
      [{ provider: 'glm', api_key: '  ' }, /^The GLM \(Z\.ai\) key is empty; paste the API key/],
      [{ provider: 'custom', api_key: KEY_A }, /^A custom OpenAI-compatible endpoint needs its base URL/],
      [{ provider: 'custom', api_key: KEY_A, base_url: 'not a url' }, /is not a valid URL/],
      [{ provider: 'custom', api_key: KEY_A, base_url: 'file:///etc/passwd' }, /must start with https:\/\//],
      [{ provider: 'custom', api_key: KEY_A, base_url: 'https://user:pw@example.com/v1' }, /must not contain a user name or password/],
      [{ provider: 'kimi', api_key: `${KEY_A}\r\nX-Injected: 1` }, /contains spaces or characters outside printable ASCII/],
    ];
    for (const [frame, message] of refusals) {
      const ack = await setKey(client, frame);
      assert.ok(!ack.ok, JSON.stringify(ack));
      assert.equal(ack.error.code, 'invalid_arguments');
      assert.match(ack.error.message, message);
      assert.ok(!ack.error.message.includes(KEY_A));
    }
    client.send({ op: 'set_provider_key', request_id: 'unknown-provider', provider: 'openai', api_key: KEY_A });
    const unknown = await client.next((f) => f.op === 'error' && f.request_id === 'unknown-provider');
    assert.ok(unknown.op === 'error' && unknown.error.code === 'invalid_frame');
    assert.match(unknown.error.message, /provider: .*"glm"\|"kimi"\|"custom"/);
    assert.ok(!unknown.error.message.includes(KEY_A));
  });

  it('is refused before hello, with a wrong local secret, and from a browser Origin', async function () {
    const early = await connect(daemon.url);
    early.send({ op: 'set_provider_key', request_id: 'early', provider: 'custom', api_key: KEY_A, base_url: fakeA.baseUrl });
    const refused = await early.next((f) => f.op === 'hello_ack');
    assert.ok(refused.op === 'hello_ack' && !refused.ok && refused.error.code === 'hello_required');
    await early.closed;

    const { client: wrong, ack } = await helloClient(daemon.url, 'not-the-local-secret-0123456789');
    assert.ok(ack.op === 'hello_ack' && !ack.ok);
    await wrong.closed;

    await assert.rejects(connect(daemon.url, { headers: { Origin: 'https://evil.example' } }), (err: { statusCode?: number }) => err.statusCode === 403);

    // None of them configured anything.
    const client = await open();
    assert.equal(errorOf(await callTool(client, 'chat', { prompt: 'hi', model: 'fake-model' })).code, 'provider_not_configured');
  });

  it('the keys never reach a frame, the log, or the daemon\'s argv and environment', async function () {
    // Set every key once more, so the daemon holds them while we look.
    const client = await open();
    ackProviders(await setKey(client, { provider: 'custom', api_key: KEY_A, base_url: fakeA.baseUrl }));
    ackProviders(await setKey(client, { provider: 'glm', api_key: GLM_KEY, base_url: glm.baseUrl }));
    fakeA.set({ status: 401 }); // a rejected key: the error names where to set it, never the key
    const rejected = errorOf(await callTool(client, 'chat', { prompt: 'hi', model: 'fake-model' }));
    assert.equal(rejected.code, 'provider_key_rejected');
    assert.match(rejected.message, /run 'EXAI: Set Provider Key' to give the OpenAI-compatible endpoint key again\.$/);
    fakeA.set({});
    await client.close();
    seen.push(...client.frames);

    const frames = JSON.stringify(seen);
    const logs = daemon.logs();
    assert.match(logs, /provider key set by a local client/);
    for (const key of [KEY_A, KEY_B, GLM_KEY]) {
      assert.ok(!frames.includes(key), 'a key reached a frame');
      assert.ok(!logs.includes(key), 'a key reached the log');
      assert.ok(!daemon.stderr().includes(key), 'a key reached stderr');
      for (const file of ['cmdline', 'environ'] as const) {
        const text = procText(daemon.pid, file);
        if (text === null) this.skip(); // not Linux
        assert.ok(!text.includes(key), `a key is in /proc/${daemon.pid}/${file}`);
      }
    }
  });
});

describe('provider keys set at run time: refused in supabase mode', function () {
  this.timeout(30000);
  let db: TestDatabase;
  let jwks: JwksServer;
  let hosted: FakeOpenAI;
  let attacker: FakeOpenAI;
  let daemon: RunningDaemon;

  before(async function () {
    [db, jwks, hosted, attacker] = await Promise.all([
      createTestDatabase(), startJwksServer(), startFakeOpenAI({ apiKey: HOSTED_KEY }), startFakeOpenAI({ apiKey: null }),
    ]);
    await db.addUser(JAZEEL.id, JAZEEL.email);
    daemon = await startDaemon({
      env: {
        ...CLEAN_ENV, MCP_ENABLE_MULTI_USER: 'true', EXAI_DAEMON_ID: 'provider-keys-test', SUPABASE_URL: jwks.url, DATABASE_URL: db.url,
        EXAI_PROVIDER_BASE_URL: hosted.baseUrl, EXAI_PROVIDER_API_KEY: HOSTED_KEY, EXAI_DEFAULT_MODEL: 'fake-model',
      },
    });
  });

  after(async function () {
    await daemon?.stop();
    await Promise.all([hosted?.close(), attacker?.close(), db?.drop()]);
    await jwks?.close();
  });

  it('a signed-in user cannot replace or remove the hosted daemon\'s keys', async function () {
    const token = await mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, user: JAZEEL });
    const { client, ack } = await helloClient(daemon.url, token, 'vscode-hosted');
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    try {
      const set = await setKey(client, { provider: 'custom', api_key: 'sk-attacker-0123456789', base_url: attacker.baseUrl });
      assert.ok(!set.ok && set.error.code === 'not_allowed', JSON.stringify(set));
      assert.match(set.error.message, /uses the provider keys of its own environment; a client cannot set them/);
      const removed = await removeKey(client, 'custom');
      assert.ok(!removed.ok && removed.error.code === 'not_allowed');

      hosted.set({ chunks: ['answer from the hosted key'] });
      assert.match(okText(await callTool(client, 'chat', { prompt: 'hi' })), /answer from the hosted key/);
      assert.equal(hosted.requests().at(-1)!.authorization, `Bearer ${HOSTED_KEY}`);
      assert.equal(attacker.requests().length, 0);
      assert.match(daemon.logs(), /refused a provider key from a client/);
      assert.ok(!daemon.logs().includes('sk-attacker-0123456789'));
    } finally {
      await client.close();
    }
  });
});
