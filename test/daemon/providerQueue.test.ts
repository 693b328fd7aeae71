// Providers under load, end to end: the real daemon against the fake OpenAI-compatible server.
// Per-provider concurrency (EXAI_PROVIDER_MAX_CONCURRENT) with a bounded queue
// (EXAI_PROVIDER_QUEUE_LENGTH): calls past the limit wait and are told their place, past the bound
// they get over_capacity at once; a cancelled waiter never reaches the provider. Retries: only 429
// and 503 with Retry-After, at most EXAI_PROVIDER_MAX_RETRIES times, within the call's deadline.
// Every wait is bounded; no assertion depends on a tight timing.
import assert from 'node:assert/strict';
import type { CallToolResult } from '../../server/protocol';
import { helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { CLEAN_PROVIDER_ENV, callTool, errorOf, isResult, localSecretOf, okText, progressOf } from '../helpers/toolCalls';
import { startFakeOpenAI, type FakeOpenAI } from '../providers/fakeOpenAI';

const KEY = 'sk-queue-test-0123456789abcdefghijkl';
const pick = (o: Record<string, unknown>, keys: string[]) => Object.fromEntries(keys.map((k) => [k, o[k]]));
const TIMEOUT_SEC = 8;

describe('provider concurrency queue and Retry-After retries (real daemon, fake provider)', function () {
  this.timeout(40000);
  let fake: FakeOpenAI;
  let daemon: RunningDaemon;
  const clients: TestClient[] = [];

  const open = async () => {
    const { client, ack } = await helloClient(daemon.url, localSecretOf(daemon), `vscode-queue-${clients.length}`);
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    clients.push(client);
    return client;
  };
  const send = (client: TestClient, id: string, prompt: string) =>
    client.send({ op: 'call_tool', request_id: id, name: 'chat', arguments: { prompt } });
  const result = (client: TestClient, id: string, timeoutMs = 15000) => client.next<CallToolResult>(isResult(id), timeoutMs);
  const progressSeen = (client: TestClient, id: string, re: RegExp) => client.next((f) => f.op === 'progress' && f.request_id === id && re.test(f.message), 10000);

  before(async function () {
    fake = await startFakeOpenAI({ apiKey: KEY });
    daemon = await startDaemon({
      env: {
        ...CLEAN_PROVIDER_ENV,
        EXAI_PROVIDER_BASE_URL: fake.baseUrl, EXAI_PROVIDER_API_KEY: KEY, EXAI_DEFAULT_MODEL: 'fake-model',
        EXAI_PROVIDER_TIMEOUT_SECONDS: String(TIMEOUT_SEC),
        EXAI_PROVIDER_MAX_CONCURRENT: '2', EXAI_PROVIDER_QUEUE_LENGTH: '2', EXAI_PROVIDER_MAX_RETRIES: '2',
      },
    });
  });

  beforeEach(function () {
    fake.set({});
    fake.clearRequests();
  });

  afterEach(async function () {
    for (const c of clients.splice(0)) await c.close();
  });

  after(async function () {
    if (daemon) {
      assert.ok(!daemon.logs().includes(KEY), 'the key reached the log');
      await daemon.stop();
    }
    await fake?.close();
  });

  it('runs 2 at once, queues 2 (telling them their place), and refuses a fifth with over_capacity at once', async function () {
    const client = await open();
    fake.set({ delayMs: 2500 });
    for (const id of ['q1', 'q2', 'q3', 'q4']) send(client, id, id);
    await fake.waitForRequests(2);
    await progressSeen(client, 'q3', /^\[waiting for a free slot of the model provider at 127\.0\.0\.1:\d+: position 1 of \d in its queue, 2 calls running\]$/);
    await progressSeen(client, 'q4', /position 2 of 2 in its queue/);

    send(client, 'q5', 'q5');
    const refused = await result(client, 'q5', 5000);
    const err = errorOf(refused);
    assert.equal(err.code, 'over_capacity');
    assert.match(err.message, /is busy: 2 calls are running \(EXAI_PROVIDER_MAX_CONCURRENT=2\) and 2 are waiting, the most this daemon queues for it \(EXAI_PROVIDER_QUEUE_LENGTH=2\); try again in a moment\./);
    assert.ok(!client.frames.some((f) => f.op === 'call_tool_res' && f.request_id !== 'q5'), 'refused before any queued call finished');

    const results = await Promise.all(['q1', 'q2', 'q3', 'q4'].map((id) => result(client, id)));
    for (const r of results) okText(r);
    assert.equal(fake.requests().length, 4, 'the refused call never reached the provider');
    assert.equal(fake.maxInFlight(), 2, 'never more than 2 upstream requests at once');
    const logs = daemon.logs();
    assert.match(logs, /provider queue full: call refused.*"running":2,"waiting":2/);
    assert.match(logs, /got a provider slot after waiting/);
    // q4 moved up when q3 left the queue.
    assert.ok(progressOf(client, 'q4').some((m) => /position 1 of 1 in its queue/.test(m)), JSON.stringify(progressOf(client, 'q4')));
  });

  it('the queue is per provider and shared by all connections; a cancelled waiter never reaches the provider', async function () {
    const a = await open();
    const b = await open();
    fake.set({ delayMs: 1200 });
    send(a, 'a1', 'a1');
    send(b, 'b1', 'b1');
    await fake.waitForRequests(2);
    send(a, 'a2', 'a2');
    await progressSeen(a, 'a2', /position 1 of 1/);
    a.send({ op: 'cancel', request_id: 'a2' });
    assert.equal(errorOf(await result(a, 'a2', 5000)).code, 'cancelled');
    okText(await result(a, 'a1'));
    okText(await result(b, 'b1'));
    assert.deepEqual(fake.requests().map((r) => r.messages.at(-1)!.content).sort(), ['a1', 'b1']);
    // Nothing leaked: the slots are free again.
    fake.set({});
    okText(await callTool(a, 'chat', { prompt: 'after' }));
  });

  it('retries a 429 with Retry-After within the deadline, and says so as progress', async function () {
    const client = await open();
    fake.enqueue({ status: 429, errorHeaders: { 'retry-after': '1' } });
    const res = await callTool(client, 'chat', { prompt: 'hello' });
    assert.match(okText(res), /^echo: hello\n/);
    const [first, second] = fake.requests();
    assert.equal(fake.requests().length, 2);
    assert.equal(first.status, 429);
    assert.equal(second.status, 200);
    assert.ok(second.at - first.at >= 900, `waited for Retry-After (${second.at - first.at} ms)`);
    assert.ok(progressOf(client, res.id).some((m) => /^\[the model provider at .* answered HTTP 429 with Retry-After 1 s; retrying \(1 of at most 2\)\]$/.test(m)));
    // Operators see it in the log too.
    const line = daemon.logs().split('\n').find((l) => l.includes('provider asked to retry'));
    assert.ok(line, 'the retry is logged');
    assert.deepEqual(pick(JSON.parse(line), ['provider', 'status', 'retry_after_ms', 'retry']), { provider: 'custom', status: 429, retry_after_ms: 1000, retry: 1 });
  });

  it('retries a 503 with Retry-After too (an HTTP date), at most EXAI_PROVIDER_MAX_RETRIES times', async function () {
    const client = await open();
    fake.enqueue({ status: 503, errorHeaders: { 'retry-after': new Date(Date.now() - 1000).toUTCString() } });
    okText(await callTool(client, 'chat', { prompt: 'x' }));
    assert.equal(fake.requests().length, 2);

    fake.clearRequests();
    fake.enqueue(...Array.from({ length: 3 }, () => ({ status: 429, errorHeaders: { 'retry-after': '0' } })));
    const err = errorOf(await callTool(client, 'chat', { prompt: 'x' }));
    assert.equal(err.code, 'rate_limited');
    assert.equal(fake.requests().length, 3, 'the first request and 2 retries');
  });

  it('retries nothing else: 429 or 503 without Retry-After, 500 with it, 401', async function () {
    const client = await open();
    const cases: [Parameters<FakeOpenAI['set']>[0], string][] = [
      [{ status: 429 }, 'rate_limited'],
      [{ status: 503 }, 'provider_unavailable'],
      [{ status: 500, errorHeaders: { 'retry-after': '0' } }, 'provider_unavailable'],
      [{ status: 502, errorHeaders: { 'retry-after': '0' } }, 'provider_unavailable'],
      [{ requireKey: 'sk-another-key-00000000000000' }, 'provider_key_rejected'],
    ];
    for (const [behaviour, code] of cases) {
      fake.clearRequests();
      fake.set(behaviour);
      assert.equal(errorOf(await callTool(client, 'chat', { prompt: 'x' })).code, code, JSON.stringify(behaviour));
      assert.equal(fake.requests().length, 1, `no retry for ${JSON.stringify(behaviour)}`);
    }
  });

  it(`a retry never outlives the call's deadline (EXAI_PROVIDER_TIMEOUT_SECONDS=${TIMEOUT_SEC})`, async function () {
    const client = await open();
    // Retry-After longer than what is left: no retry, the hint is passed on.
    fake.enqueue({ status: 429, errorHeaders: { 'retry-after': String(TIMEOUT_SEC + 3) } });
    let err = errorOf(await callTool(client, 'chat', { prompt: 'x' }));
    assert.equal(err.code, 'rate_limited');
    assert.match(err.message, new RegExp(`retry in about ${TIMEOUT_SEC + 3} s`));
    assert.equal(fake.requests().length, 1);

    // A retry that fits, then an answer too slow for what is left of the same deadline.
    fake.clearRequests();
    fake.enqueue({ status: 429, errorHeaders: { 'retry-after': '2' } }, { delayMs: 10_000 });
    const t0 = Date.now();
    err = errorOf(await callTool(client, 'chat', { prompt: 'x' }));
    assert.equal(err.code, 'provider_timeout');
    assert.equal(fake.requests().length, 2);
    const took = Date.now() - t0;
    assert.ok(took < TIMEOUT_SEC * 1000 + 3000, `one deadline for the whole call (${took} ms)`);
    await fake.waitForAbort(1, 5000);
  });
});
