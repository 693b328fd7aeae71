// The chat tool end to end: the real daemon (dist/server.js) against a fake OpenAI-compatible server
// (test/providers/fakeOpenAI.ts) on loopback. Local mode (threads in memory) and supabase mode (threads
// in a real PostgreSQL 15 database under RLS, users Jazeel and Michelle). Covers answers, streaming
// progress, continuation (history sent upstream, bounded, per user), cancel reaching the upstream
// request, provider errors (401, 404, 429, timeout, nothing configured), no cache, and the API key
// never reaching a frame or the log. Every wait is bounded.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../server/config';
import type { CallToolResult, ServerFrame, ToolDescription } from '../../server/protocol';
import { HISTORY_CHAR_BUDGET, HISTORY_TURNS } from '../../server/tools/chat';
import { helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { JAZEEL, JWKS_PATH, MICHELLE, mintAccessToken, mintAnonKey, mintServiceRoleKey, startJwksServer, type JwksServer, type TestUser } from '../helpers/tokens';
import { startPostgrest } from '../postgrest/server';
import { startFakeOpenAI, type FakeOpenAI } from '../providers/fakeOpenAI';
import { callTool } from '../helpers/toolCalls';

const API_KEY = 'sk-exai-test-0123456789abcdefghijklmnop';
const KIMI_KEY = 'sk-kimi-test-abcdefghijklmnop0123456789';
const TIMEOUT_SEC = 3;
const LEGACY_SECRET = 'legacy-project-jwt-secret-at-least-32-characters';
const CLEAN_ENV: Record<string, undefined> = {
  MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, SUPABASE_JWT_SECRET: undefined, DATABASE_URL: undefined,
  SUPABASE_ANON_KEY: undefined, MCP_SESSION_TIMEOUT: undefined, MCP_MAX_CONNECTIONS_PER_USER: undefined, EXAI_WS_HOST: undefined,
  EXAI_IDLE_EXIT_SECONDS: undefined, EXAI_DAEMON_ID: undefined,
  EXAI_PROVIDER_BASE_URL: undefined, EXAI_PROVIDER_API_KEY: undefined, EXAI_DEFAULT_MODEL: undefined, EXAI_PROVIDER_TIMEOUT_SECONDS: undefined,
  KIMI_API_KEY: undefined, KIMI_API_URL: undefined, GLM_API_KEY: undefined, GLM_API_URL: undefined,
  EXAI_PROVIDER_MAX_CONCURRENT: undefined, EXAI_PROVIDER_QUEUE_LENGTH: undefined, EXAI_PROVIDER_MAX_RETRIES: undefined,
  EXAI_FILES_MAX_FILE_BYTES: undefined, EXAI_FILES_MAX_CALL_BYTES: undefined,
};

const isResult = (id: string) => (f: ServerFrame) => f.op === 'call_tool_res' && f.request_id === id;
const progressOf = (client: TestClient, id: string) =>
  client.frames.filter((f): f is Extract<ServerFrame, { op: 'progress' }> => f.op === 'progress' && f.request_id === id);
let seq = 0;

async function chat(client: TestClient, args: Record<string, unknown>, timeoutMs = 10000): Promise<CallToolResult & { id: string }> {
  const id = `chat-${++seq}`;
  client.send({ op: 'call_tool', request_id: id, name: 'chat', arguments: args });
  return { ...(await client.next<CallToolResult>(isResult(id), timeoutMs)), id };
}

function okText(res: CallToolResult): string {
  assert.ok(res.ok, `chat failed: ${JSON.stringify(res)}`);
  return res.outputs.map((o) => o.text).join('');
}

function continuationOf(text: string): string {
  const m = /\ncontinuation_id: ([0-9a-f-]{36})$/.exec(text);
  assert.ok(m, `no continuation_id line in ${JSON.stringify(text)}`);
  return m[1];
}

function errorOf(res: CallToolResult): { code: string; message: string } {
  assert.ok(!res.ok, `expected an error, got ${JSON.stringify(res)}`);
  return res.error;
}

describe('chat tool: local mode (real daemon + fake OpenAI-compatible provider)', function () {
  this.timeout(30000);
  let fake: FakeOpenAI;
  let kimi: FakeOpenAI;
  let daemon: RunningDaemon;
  const daemons: RunningDaemon[] = [];
  const clients: TestClient[] = [];
  /** Every frame any client of this suite received. */
  const seen: ServerFrame[] = [];

  const secretOf = (d: RunningDaemon) => JSON.parse(fs.readFileSync(path.join(d.stateDir, 'daemon.json'), 'utf8')).secret as string;
  const open = async (d = daemon) => {
    const { client, ack } = await helloClient(d.url, secretOf(d), `vscode-chat-${clients.length}`);
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    clients.push(client);
    return client;
  };
  const start = async (env: Record<string, string>) => {
    const d = await startDaemon({ env: { ...CLEAN_ENV, ...env } });
    daemons.push(d);
    return d;
  };

  before(async function () {
    [fake, kimi] = await Promise.all([startFakeOpenAI({ apiKey: API_KEY }), startFakeOpenAI({ apiKey: KIMI_KEY })]);
    daemon = await start({
      EXAI_PROVIDER_BASE_URL: fake.baseUrl,
      EXAI_PROVIDER_API_KEY: API_KEY,
      EXAI_DEFAULT_MODEL: 'fake-model',
      EXAI_PROVIDER_TIMEOUT_SECONDS: String(TIMEOUT_SEC),
    });
  });

  beforeEach(function () {
    fake.set({});
    fake.clearRequests();
  });

  afterEach(async function () {
    for (const c of clients.splice(0)) {
      await c.close();
      seen.push(...c.frames);
    }
  });

  after(async function () {
    // The key must not be in any frame any client received, nor in any log line.
    const frames = JSON.stringify(seen);
    assert.ok(!frames.includes(API_KEY) && !frames.includes(KIMI_KEY), 'an API key reached a frame');
    for (const d of daemons) {
      const logs = d.logs();
      assert.ok(logs.length > 0, 'the daemon wrote a log');
      assert.ok(!logs.includes(API_KEY) && !logs.includes(KIMI_KEY), 'an API key reached the log');
      assert.ok(!d.stderr().includes(API_KEY), 'an API key reached stderr');
      await d.stop();
    }
    await Promise.all([fake?.close(), kimi?.close()]);
  });

  it('lists chat (and threads) with their JSON schemas', async function () {
    const client = await open();
    client.send({ op: 'list_tools', request_id: 'lt' });
    const res = await client.next<{ op: 'list_tools_res'; tools: ToolDescription[] }>((f) => f.op === 'list_tools_res');
    const tool = res.tools.find((t) => t.name === 'chat');
    assert.ok(tool, 'chat is listed');
    const schema = tool.inputSchema as any;
    assert.equal(schema.type, 'object');
    assert.deepEqual(schema.required, ['prompt']);
    assert.equal(schema.additionalProperties, false);
    assert.equal(schema.properties.prompt.maxLength, 100_000);
    assert.equal(schema.properties.continuation_id.format, 'uuid');
    assert.equal(schema.properties.temperature.minimum, 0);
    assert.equal(schema.properties.temperature.maximum, 2);
    assert.equal(schema.properties.model.type, 'string');
    assert.equal(schema.properties.system.type, 'string');
    assert.ok(res.tools.some((t) => t.name === 'threads'));
  });

  it("answers from the provider, with the key as Bearer and a continuation_id line", async function () {
    const client = await open();
    const text = okText(await chat(client, { prompt: 'hello there', temperature: 0.3 }));
    assert.match(text, /^echo: hello there\n\ncontinuation_id: [0-9a-f-]{36}$/);
    const [req] = fake.requests();
    assert.equal(req.authorization, `Bearer ${API_KEY}`);
    assert.equal(req.model, 'fake-model');
    assert.equal(req.stream, true);
    assert.equal(req.temperature, 0.3);
    assert.deepEqual(req.messages, [{ role: 'user', content: 'hello there' }]);
  });

  it('streams the answer as throttled progress frames that add up to the text', async function () {
    const client = await open();
    const chunks = ['one ', 'two ', 'three ', 'four ', 'five'];
    fake.set({ chunks, chunkDelayMs: 150 });
    const res = await chat(client, { prompt: 'count' });
    const text = okText(res);
    assert.ok(text.startsWith('one two three four five\n\ncontinuation_id: '));
    const progress = progressOf(client, res.id);
    assert.ok(progress.length >= 2, `several progress frames: ${JSON.stringify(progress)}`);
    assert.ok(progress.length <= chunks.length, 'never more frames than chunks');
    assert.equal(progress.map((p) => p.message).join(''), chunks.join(''));
  });

  it('continues a conversation: the provider sees the previous turns (system prompt sent, not stored)', async function () {
    const client = await open();
    const first = okText(await chat(client, { prompt: 'my name is Ada', system: 'be brief' }));
    const id = continuationOf(first);
    const second = okText(await chat(client, { prompt: 'what is my name?', continuation_id: id, system: 'be terse' }));
    assert.equal(continuationOf(second), id, 'same thread');
    const reqs = fake.requests();
    assert.deepEqual(reqs[0].messages, [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'my name is Ada' }]);
    assert.deepEqual(reqs[1].messages, [
      { role: 'system', content: 'be terse' },
      { role: 'user', content: 'my name is Ada' },
      { role: 'assistant', content: 'echo: my name is Ada' },
      { role: 'user', content: 'what is my name?' },
    ]);
    // The threads tool lists it.
    client.send({ op: 'call_tool', request_id: 'th-1', name: 'threads', arguments: {} });
    const list = await client.next<CallToolResult>(isResult('th-1'));
    const threads = JSON.parse(okText(list));
    const mine = threads.find((t: any) => t.continuation_id === id);
    assert.ok(mine, JSON.stringify(threads));
    assert.equal(mine.title, 'my name is Ada');
    assert.equal(mine.messages, 4);
  });

  it(`bounds the history sent: at most ${HISTORY_TURNS} turns and ${HISTORY_CHAR_BUDGET} characters, oldest dropped first`, async function () {
    this.timeout(60000);
    const client = await open();
    let id = continuationOf(okText(await chat(client, { prompt: 'turn 0' })));
    for (let i = 1; i <= HISTORY_TURNS + 4; i++) okText(await chat(client, { prompt: `turn ${i}`, continuation_id: id }));
    fake.clearRequests();
    okText(await chat(client, { prompt: 'last', continuation_id: id }));
    let sent = fake.requests()[0].messages;
    assert.equal(sent.length, HISTORY_TURNS * 2 + 1);
    assert.deepEqual(sent[0], { role: 'user', content: `turn ${HISTORY_TURNS + 4 - HISTORY_TURNS + 1}` }, 'starts with the oldest kept question');
    assert.deepEqual(sent.at(-1), { role: 'user', content: 'last' });

    // Characters: three 25k-character turns (each answered with the same length) exceed 60k.
    const big = (c: string) => c.repeat(25_000);
    id = continuationOf(okText(await chat(client, { prompt: big('a') })));
    okText(await chat(client, { prompt: big('b'), continuation_id: id }));
    okText(await chat(client, { prompt: big('c'), continuation_id: id }));
    fake.clearRequests();
    okText(await chat(client, { prompt: 'short', continuation_id: id }));
    sent = fake.requests()[0].messages;
    const historyChars = sent.slice(0, -1).reduce((n, m) => n + m.content.length, 0);
    assert.ok(historyChars <= HISTORY_CHAR_BUDGET, `history ${historyChars} chars`);
    assert.ok(historyChars > 0);
    assert.equal(sent[0].role, 'user');
    assert.ok(sent[0].content.startsWith('c'), 'only the newest turn fits');
    assert.deepEqual(sent.at(-1), { role: 'user', content: 'short' });
  });

  it('cancel aborts the upstream request and answers cancelled', async function () {
    const client = await open();
    fake.set({ chunks: Array.from({ length: 40 }, (_, i) => `c${i} `), chunkDelayMs: 300 });
    client.send({ op: 'call_tool', request_id: 'cancel-me', name: 'chat', arguments: { prompt: 'long answer please' } });
    await client.next((f) => f.op === 'progress' && f.request_id === 'cancel-me', 5000);
    const t0 = Date.now();
    client.send({ op: 'cancel', request_id: 'cancel-me' });
    const ack = await client.next((f) => f.op === 'cancel_ack' && f.request_id === 'cancel-me');
    assert.deepEqual(ack, { op: 'cancel_ack', request_id: 'cancel-me', ok: true });
    const res = await client.next<CallToolResult>(isResult('cancel-me'), 5000);
    assert.equal(errorOf(res).code, 'cancelled');
    const aborted = await fake.waitForAbort(0, 5000);
    assert.equal(aborted.completed, false);
    assert.ok(Date.now() - t0 < 3000, 'promptly');
  });

  it('a rejected key (401) names EXAI_PROVIDER_API_KEY and never echoes the key', async function () {
    const client = await open();
    fake.set({ requireKey: 'sk-some-other-key-000000000000' });
    const err = errorOf(await chat(client, { prompt: 'hi' }));
    assert.equal(err.code, 'provider_key_rejected');
    assert.match(err.message, /rejected the API key \(HTTP 401\); check EXAI_PROVIDER_API_KEY/);
    assert.ok(!err.message.includes(API_KEY));
    assert.equal(fake.requests().length, 1, 'no retry');
  });

  it('rate limiting (429) whose Retry-After does not fit the deadline says so, with the hint, without retrying', async function () {
    const client = await open();
    fake.set({ status: 429, errorHeaders: { 'retry-after': '7' } });
    const err = errorOf(await chat(client, { prompt: 'hi' }));
    assert.equal(err.code, 'rate_limited');
    assert.match(err.message, /rate limiting .*\(HTTP 429\); retry in about 7 s/);
    assert.equal(fake.requests().length, 1);
  });

  it('a provider failure (5xx) and an unknown model (404) give their own sentences', async function () {
    const client = await open();
    fake.set({ status: 503 });
    let err = errorOf(await chat(client, { prompt: 'hi' }));
    assert.equal(err.code, 'provider_unavailable');
    assert.match(err.message, /failed \(HTTP 503\); try again shortly/);
    fake.set({ models: ['fake-model'] });
    err = errorOf(await chat(client, { prompt: 'hi', model: 'no-such-model' }));
    assert.equal(err.code, 'model_not_found');
    assert.match(err.message, /does not know the model "no-such-model" \(HTTP 404\)/);
  });

  it(`times out after EXAI_PROVIDER_TIMEOUT_SECONDS (${TIMEOUT_SEC} s): a silent provider, and a stream that is too slow overall`, async function () {
    const client = await open();
    fake.set({ delayMs: 20_000 });
    let t0 = Date.now();
    let err = errorOf(await chat(client, { prompt: 'hi' }, 10_000));
    assert.equal(err.code, 'provider_timeout');
    assert.match(err.message, new RegExp(`within ${TIMEOUT_SEC} s \\(EXAI_PROVIDER_TIMEOUT_SECONDS\\)`));
    let took = Date.now() - t0;
    assert.ok(took >= TIMEOUT_SEC * 1000 - 200 && took < TIMEOUT_SEC * 1000 + 2500, `took ${took} ms`);
    await fake.waitForAbort(0, 3000);

    // Chunks keep arriving, but the whole answer takes longer than the bound.
    fake.clearRequests();
    fake.set({ chunks: ['a', 'b', 'c', 'd', 'e', 'f'], chunkDelayMs: 1000 });
    t0 = Date.now();
    err = errorOf(await chat(client, { prompt: 'hi' }, 10_000));
    assert.equal(err.code, 'provider_timeout');
    took = Date.now() - t0;
    assert.ok(took < TIMEOUT_SEC * 1000 + 2500, `took ${took} ms`);
    await fake.waitForAbort(0, 3000);
  });

  it('the same prompt twice is two upstream requests (no cache)', async function () {
    const client = await open();
    const a = okText(await chat(client, { prompt: 'same prompt' }));
    const b = okText(await chat(client, { prompt: 'same prompt' }));
    assert.equal(fake.requests().length, 2);
    assert.notEqual(continuationOf(a), continuationOf(b), 'two new conversations');
  });

  it('rejects a continuation_id that is no conversation of this user, without calling the provider', async function () {
    const client = await open();
    const err = errorOf(await chat(client, { prompt: 'hi', continuation_id: '2b1e1c4e-8f0a-4c1d-9e7b-3a5d6f7e8c9d' }));
    assert.equal(err.code, 'thread_not_found');
    assert.match(err.message, /unknown or belongs to another user/);
    const bad = errorOf(await chat(client, { prompt: 'hi', continuation_id: 'not-a-uuid' }));
    assert.equal(bad.code, 'invalid_arguments');
    assert.equal(fake.requests().length, 0);
  });

  it('routes kimi-* models to Kimi and says which key to set for glm-*; without any provider, says what to set', async function () {
    const withKimi = await start({ KIMI_API_KEY: KIMI_KEY, KIMI_API_URL: kimi.baseUrl });
    const client = await open(withKimi);
    const text = okText(await chat(client, { prompt: 'hi kimi', model: 'kimi-k2-0905-preview' }));
    assert.ok(text.startsWith('echo: hi kimi'));
    const [req] = kimi.requests();
    assert.equal(req.authorization, `Bearer ${KIMI_KEY}`);
    assert.equal(req.model, 'kimi-k2-0905-preview');
    let err = errorOf(await chat(client, { prompt: 'hi', model: 'glm-4.5-flash' }));
    assert.equal(err.code, 'provider_not_configured');
    assert.match(err.message, /set GLM_API_KEY/);
    err = errorOf(await chat(client, { prompt: 'hi', model: 'gpt-4o' }));
    assert.equal(err.code, 'provider_not_configured');
    assert.match(err.message, /EXAI_PROVIDER_BASE_URL/);

    const none = await start({});
    const c2 = await open(none);
    err = errorOf(await chat(c2, { prompt: 'hi' }));
    assert.equal(err.code, 'provider_not_configured');
    assert.match(err.message, /run 'EXAI: Set Provider Key'; otherwise set EXAI_PROVIDER_BASE_URL and EXAI_PROVIDER_API_KEY .* or KIMI_API_KEY, or GLM_API_KEY/);
  });
});

describe('chat provider settings (loadConfig)', function () {
  it('reads EXAI_PROVIDER_TIMEOUT_SECONDS (default 120) and the providers', function () {
    assert.equal(loadConfig([], {}).providers.timeoutSec, 120);
    assert.deepEqual(loadConfig([], {}).providers.endpoints, []);
    const c = loadConfig([], {
      EXAI_PROVIDER_TIMEOUT_SECONDS: '45', EXAI_PROVIDER_BASE_URL: 'http://127.0.0.1:1/v1/', EXAI_PROVIDER_API_KEY: ' k1 ',
      KIMI_API_KEY: 'k2', GLM_API_KEY: 'k3', EXAI_DEFAULT_MODEL: 'glm-4.6',
    });
    assert.equal(c.providers.timeoutSec, 45);
    assert.equal(c.providers.defaultModel, 'glm-4.6');
    assert.deepEqual(c.providers.endpoints.map((e) => [e.name, e.baseUrl, e.apiKey]), [
      ['custom', 'http://127.0.0.1:1/v1', 'k1'],
      ['kimi', 'https://api.moonshot.ai/v1', 'k2'],
      ['glm', 'https://api.z.ai/api/paas/v4', 'k3'],
    ]);
    assert.throws(() => loadConfig([], { EXAI_PROVIDER_TIMEOUT_SECONDS: '0' }), /EXAI_PROVIDER_TIMEOUT_SECONDS must be a whole number from 1 to 3600/);
    assert.throws(() => loadConfig([], { EXAI_PROVIDER_API_KEY: 'k' }), /EXAI_PROVIDER_BASE_URL is not/);
    assert.throws(() => loadConfig([], { GLM_API_KEY: 'k', GLM_API_URL: 'ftp://x' }), /GLM_API_URL must start with https:\/\//);
  });

  it('reads the queue and retry bounds (per provider) and the files caps, with their defaults and limits', function () {
    const d = loadConfig([], {});
    assert.deepEqual([d.providers.maxConcurrent, d.providers.queueLength, d.providers.maxRetries], [4, 32, 2]);
    assert.deepEqual(d.files, { maxFileBytes: 256 * 1024, maxCallBytes: 1024 * 1024 });
    const c = loadConfig([], {
      EXAI_PROVIDER_MAX_CONCURRENT: '1', EXAI_PROVIDER_QUEUE_LENGTH: '0', EXAI_PROVIDER_MAX_RETRIES: '5',
      EXAI_FILES_MAX_FILE_BYTES: '1000', EXAI_FILES_MAX_CALL_BYTES: '2048',
    });
    assert.deepEqual([c.providers.maxConcurrent, c.providers.queueLength, c.providers.maxRetries], [1, 0, 5]);
    assert.deepEqual(c.files, { maxFileBytes: 1000, maxCallBytes: 2048 });
    // A call cap below 256 KiB lowers the default per-file cap with it.
    assert.deepEqual(loadConfig([], { EXAI_FILES_MAX_CALL_BYTES: '4096' }).files, { maxFileBytes: 4096, maxCallBytes: 4096 });
    assert.throws(() => loadConfig([], { EXAI_PROVIDER_MAX_CONCURRENT: '0' }), /EXAI_PROVIDER_MAX_CONCURRENT must be a whole number from 1 to 256/);
    assert.throws(() => loadConfig([], { EXAI_PROVIDER_MAX_RETRIES: '6' }), /EXAI_PROVIDER_MAX_RETRIES must be a whole number from 0 to 5/);
    assert.throws(() => loadConfig([], { EXAI_PROVIDER_QUEUE_LENGTH: '-1' }), /EXAI_PROVIDER_QUEUE_LENGTH must be a whole number from 0 to 10000/);
    assert.throws(() => loadConfig([], { EXAI_FILES_MAX_CALL_BYTES: String(4 * 1024 * 1024) }), /EXAI_FILES_MAX_CALL_BYTES must be a whole number from 1024 to 3145728/);
    assert.throws(() => loadConfig([], { EXAI_FILES_MAX_FILE_BYTES: '5000', EXAI_FILES_MAX_CALL_BYTES: '4096' }), /EXAI_FILES_MAX_FILE_BYTES \(5000\) is larger than EXAI_FILES_MAX_CALL_BYTES \(4096\)/);
  });
});

/** How the supabase-mode daemon reaches the thread functions: direct Postgres, or the Data API with each user's token. */
interface Backend {
  /** Daemon environment for this backend, and the `iss` of the users' tokens. */
  start(db: TestDatabase, jwks: JwksServer): Promise<{ env: Record<string, string | undefined>; issuer: string; close(): Promise<void> }>;
}

const BACKENDS: [string, Backend][] = [
  ['direct Postgres (DATABASE_URL)', {
    async start(db, jwks) {
      return { env: { SUPABASE_URL: jwks.url, DATABASE_URL: db.url }, issuer: jwks.issuer, close: async () => {} };
    },
  }],
  ['Supabase Data API (SUPABASE_ANON_KEY, each user\'s own token)', {
    async start(db, jwks) {
      const [anonKey, serviceRoleKey] = await Promise.all([mintAnonKey(LEGACY_SECRET), mintServiceRoleKey(LEGACY_SECRET)]);
      // One base URL serving /auth/v1 (proxied to the JWKS server) and /rest/v1, like a project URL.
      const gateway = await startPostgrest({
        databaseUrl: db.url, jwksUrl: `${jwks.url}${JWKS_PATH}`, jwtSecret: LEGACY_SECRET, anonKey, serviceRoleKey, authUpstream: jwks.url,
      });
      return {
        env: { SUPABASE_URL: gateway.url, SUPABASE_ANON_KEY: anonKey, DATABASE_URL: undefined },
        issuer: `${gateway.url}/auth/v1`,
        close: () => gateway.close(),
      };
    },
  }],
];

for (const [backendName, backend] of BACKENDS) describe(`chat tool: supabase mode, threads through ${backendName}`, function () {
  this.timeout(30000);
  let db: TestDatabase;
  let jwks: JwksServer;
  let fake: FakeOpenAI;
  let daemon: RunningDaemon;
  let issuer: string;
  let closeBackend: () => Promise<void> = async () => {};
  const clients: TestClient[] = [];
  const seen: ServerFrame[] = [];

  const open = async (user: TestUser) => {
    const token = await mintAccessToken({ key: jwks.keys.es256, issuer, user });
    const { client, ack } = await helloClient(daemon.url, token, `vscode-${user.email}`);
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    clients.push(client);
    return client;
  };

  before(async function () {
    [db, jwks, fake] = await Promise.all([createTestDatabase(), startJwksServer(), startFakeOpenAI({ apiKey: API_KEY })]);
    await db.addUser(JAZEEL.id, JAZEEL.email);
    await db.addUser(MICHELLE.id, MICHELLE.email);
    const b = await backend.start(db, jwks);
    issuer = b.issuer;
    closeBackend = b.close;
    daemon = await startDaemon({
      env: {
        ...CLEAN_ENV,
        MCP_ENABLE_MULTI_USER: 'true', EXAI_DAEMON_ID: 'chat-test', ...b.env,
        EXAI_PROVIDER_BASE_URL: fake.baseUrl, EXAI_PROVIDER_API_KEY: API_KEY, EXAI_DEFAULT_MODEL: 'fake-model',
      },
    });
  });

  beforeEach(() => fake.clearRequests());

  afterEach(async function () {
    for (const c of clients.splice(0)) {
      await c.close();
      seen.push(...c.frames);
    }
  });

  after(async function () {
    const frames = JSON.stringify(seen);
    assert.ok(!frames.includes(API_KEY), 'the API key reached a frame');
    if (daemon) {
      assert.ok(!daemon.logs().includes(API_KEY), 'the API key reached the log');
      await daemon.stop();
    }
    await closeBackend();
    await Promise.all([fake?.close(), jwks?.close()]);
    await db?.drop();
  });

  it("keeps each user's conversation to that user: Michelle cannot continue Jazeel's thread", async function () {
    const jazeel = await open(JAZEEL);
    const michelle = await open(MICHELLE);
    const id = continuationOf(okText(await chat(jazeel, { prompt: 'my secret is 42' })));

    const err = errorOf(await chat(michelle, { prompt: 'what is the secret?', continuation_id: id }));
    assert.equal(err.code, 'thread_not_found');
    assert.match(err.message, /unknown or belongs to another user.*Omit continuation_id/);
    assert.equal(fake.requests().length, 1, "Michelle's attempt never reached the provider");

    michelle.send({ op: 'call_tool', request_id: 'th-m', name: 'threads', arguments: {} });
    assert.deepEqual(JSON.parse(okText(await michelle.next<CallToolResult>(isResult('th-m')))), []);

    const next = okText(await chat(jazeel, { prompt: 'and now?', continuation_id: id }));
    assert.equal(continuationOf(next), id);
    assert.deepEqual(fake.requests()[1].messages.map((m) => m.content), ['my secret is 42', 'echo: my secret is 42', 'and now?']);

    const rows = await db.query('select user_id, role, content from public.mcp_thread_messages where thread_id = $1 order by id', [id]);
    assert.deepEqual(rows.map((r) => [r.user_id, r.role]), [[JAZEEL.id, 'user'], [JAZEEL.id, 'assistant'], [JAZEEL.id, 'user'], [JAZEEL.id, 'assistant']]);
    const [thread] = await db.query('select user_id, title from public.mcp_threads where id = $1', [id]);
    assert.deepEqual(thread, { user_id: JAZEEL.id, title: 'my secret is 42' });
  });

  it('never reads its own disk for a caller: a file without content is refused, even an absolute path that exists', async function () {
    const jazeel = await open(JAZEEL);
    const existing = path.resolve(__filename);
    for (const tool of ['chat', 'codereview']) {
      const err = errorOf(await callTool(jazeel, tool, { prompt: 'read it', files: [{ path: existing }] }));
      assert.equal(err.code, 'file_content_required');
      assert.match(err.message, /^The file ".*" has no content: this daemon is hosted \(supabase mode\) and never reads its own disk for a caller\. Send each file's text as content\.$/);
    }
    assert.equal(fake.requests().length, 0);
    // With its content, the same file goes to the model.
    okText(await callTool(jazeel, 'chat', { prompt: 'read it', files: [{ path: existing, content: 'the text' }] }));
    assert.equal(fake.requests()[0].messages[0].content, `<file path="${existing}">\nthe text\n</file>\n\nread it`);
  });

  it('two users sending the same prompt each cause their own upstream request and get their own thread', async function () {
    const jazeel = await open(JAZEEL);
    const michelle = await open(MICHELLE);
    const [a, b] = await Promise.all([chat(jazeel, { prompt: 'identical prompt' }), chat(michelle, { prompt: 'identical prompt' })]);
    const [ta, tb] = [okText(a), okText(b)];
    assert.equal(fake.requests().length, 2);
    assert.notEqual(continuationOf(ta), continuationOf(tb));
    const owners = await db.query('select id, user_id from public.mcp_threads where id = any($1::uuid[])', [[continuationOf(ta), continuationOf(tb)]]);
    assert.deepEqual(new Map(owners.map((r) => [r.id, r.user_id])), new Map([[continuationOf(ta), JAZEEL.id], [continuationOf(tb), MICHELLE.id]]));
  });
});
