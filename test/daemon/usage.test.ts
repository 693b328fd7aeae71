// Usage per user and the daily token budget, end to end: real daemons (dist/server.js) against the
// fake OpenAI-compatible provider (test/providers/fakeOpenAI.ts), which reports usage as real
// providers do. Supabase mode: two daemons on one PostgreSQL database (direct Postgres) with
// EXAI_DAILY_TOKENS_PER_USER; one user's calls racing on both spend exactly the budget, never more
// than one call's worth over; other users are unaffected and see only their own usage. Local mode:
// every provider call recorded for its tool and model (consensus: each model and the synthesis), the
// usage shapes of OpenAI, GLM and Kimi and an estimate when a provider reports none, and the budget.
// Every wait is bounded.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { CallToolResult } from '../../server/protocol';
import { MAX_OUTPUT_TOKENS_UNDER_BUDGET } from '../../server/tools/engine/usageMeter';
import type { UsageReport } from '../../server/tools/usage';
import { helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { mintAccessToken, startJwksServer, type JwksServer, type TestUser } from '../helpers/tokens';
import { CLEAN_PROVIDER_ENV, callTool, errorOf, localSecretOf, okText } from '../helpers/toolCalls';
import { startFakeOpenAI, type FakeOpenAI } from '../providers/fakeOpenAI';

const API_KEY = 'sk-usage-test-0123456789abcdefghijklmn';
const ENV = { ...CLEAN_PROVIDER_ENV, EXAI_DAILY_TOKENS_PER_USER: undefined };

async function usageOf(client: TestClient): Promise<UsageReport> {
  return JSON.parse(okText(await callTool(client, 'usage', {}))) as UsageReport;
}

describe('usage and the daily token budget: two daemons on one database (direct Postgres)', function () {
  this.timeout(60000);
  // Every call costs 3,000 + 2,000 tokens; the budget is ten calls.
  const CALL_TOKENS = 5_000;
  const BUDGET = 50_000;
  let db: TestDatabase;
  let jwks: JwksServer;
  let fake: FakeOpenAI;
  let daemons: [RunningDaemon, RunningDaemon];
  const clients: TestClient[] = [];

  const newUser = async (): Promise<TestUser> => {
    const user = { id: randomUUID(), email: `u-${randomUUID().slice(0, 8)}@example.test` };
    await db.addUser(user.id, user.email);
    return user;
  };
  const open = async (daemon: RunningDaemon, user: TestUser) => {
    const token = await mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, user });
    const { client, ack } = await helloClient(daemon.url, token, `vscode-usage-${clients.length}`);
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    clients.push(client);
    return client;
  };

  before(async function () {
    [db, jwks, fake] = await Promise.all([createTestDatabase(), startJwksServer(), startFakeOpenAI({ apiKey: API_KEY })]);
    const env = (id: string) => ({
      ...ENV, MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: jwks.url, DATABASE_URL: db.url, EXAI_DAEMON_ID: id,
      EXAI_PROVIDER_BASE_URL: fake.baseUrl, EXAI_PROVIDER_API_KEY: API_KEY, EXAI_DEFAULT_MODEL: 'fake-model',
      EXAI_DAILY_TOKENS_PER_USER: String(BUDGET),
    });
    daemons = await Promise.all([startDaemon({ env: env('usage-a') }), startDaemon({ env: env('usage-b') })]) as [RunningDaemon, RunningDaemon];
  });

  beforeEach(function () {
    fake.set({ usage: { prompt_tokens: 3_000, completion_tokens: 2_000 } });
    fake.clearRequests();
  });

  afterEach(async function () {
    for (const c of clients.splice(0)) await c.close();
  });

  after(async function () {
    for (const d of daemons ?? []) {
      if (!d) continue;
      assert.ok(!d.logs().includes(API_KEY), 'the API key reached the log');
      await d.stop();
    }
    await Promise.all([fake?.close(), jwks?.close()]);
    await db?.drop();
  });

  it('asks the provider for its usage (stream_options.include_usage) and bounds the output (max_tokens) while a budget is set', async function () {
    const client = await open(daemons[0], await newUser());
    okText(await callTool(client, 'chat', { prompt: 'hello' }));
    const [request] = fake.requests();
    assert.deepEqual(request.body.stream_options, { include_usage: true });
    assert.equal(request.body.max_tokens, MAX_OUTPUT_TOKENS_UNDER_BUDGET);
  });

  it("one user's calls racing on both daemons spend exactly the budget, never more; each refusal says what is used and when it resets", async function () {
    const user = await newUser();
    const a = await open(daemons[0], user);
    const b = await open(daemons[1], user);
    let answered = 0;
    const refusals: { code: string; message: string }[] = [];
    // Waves of six concurrent calls, three through each daemon, until a whole wave is refused (bounded).
    for (let wave = 0; wave < 30; wave++) {
      const results = await Promise.all([a, b, a, b, a, b].map((c, i) => callTool(c, 'chat', { prompt: `wave ${wave} call ${i}` }, 20000)));
      const ok = results.filter((r) => r.ok).length;
      answered += ok;
      refusals.push(...results.filter((r) => !r.ok).map((r) => errorOf(r)));
      if (ok === 0) break;
    }
    assert.equal(answered, BUDGET / CALL_TOKENS, `exactly ${BUDGET / CALL_TOKENS} calls fit the budget`);
    assert.equal(fake.requests().length, answered, 'a refused call never reaches the provider');
    const [spent] = await db.query<{ tokens: string; calls: string; reserved: string }>(
      `select coalesce(sum(input_tokens + output_tokens), 0) as tokens, count(*) filter (where state = 'settled') as calls,
              count(*) filter (where state = 'reserved') as reserved
         from public.mcp_usage where user_id = $1`, [user.id]);
    assert.equal(Number(spent.tokens), BUDGET, 'exactly the budget is spent');
    assert.equal(Number(spent.calls), answered);
    assert.equal(Number(spent.reserved), 0, 'every reservation was settled');
    assert.ok(refusals.length > 0);
    for (const r of refusals) {
      assert.equal(r.code, 'budget_exhausted', JSON.stringify(r));
      assert.match(r.message, /of your 50,000 tokens for today are used \(EXAI_DAILY_TOKENS_PER_USER\)/);
      assert.match(r.message, /resets at 00:00 UTC, in (\d+ h )?\d+ min/);
    }
    assert.match(refusals.at(-1)!.message, /^Your daily token budget is spent: 50,000 of your 50,000 tokens/);

    const report = await usageOf(b);
    assert.equal(report.today.total_tokens, BUDGET);
    assert.equal(report.today.calls, answered);
    assert.deepEqual(report.in_flight, { calls: 0, held_tokens: 0 });
    assert.equal(report.daily_budget?.limit, BUDGET);
    assert.equal(report.daily_budget?.remaining, 0);
    assert.match(report.daily_budget!.resets, /^00:00 UTC, in (\d+ h )?\d+ min$/);
  });

  it("the budget and the usage are each user's own: another user still gets answers, and sees only their own calls", async function () {
    const spender = await newUser();
    const other = await newUser();
    const s = await open(daemons[0], spender);
    const o = await open(daemons[1], other);
    fake.set({ usage: { prompt_tokens: 30_000, completion_tokens: 25_000 } }); // one call spends the whole budget
    okText(await callTool(s, 'chat', { prompt: 'expensive' }));
    assert.equal(errorOf(await callTool(s, 'chat', { prompt: 'again' })).code, 'budget_exhausted');
    fake.set({ usage: { prompt_tokens: 3, completion_tokens: 2 } });
    okText(await callTool(o, 'chat', { prompt: 'mine' }));

    const mine = await usageOf(o);
    assert.equal(mine.today.calls, 1);
    assert.equal(mine.today.total_tokens, 5);
    assert.deepEqual(mine.by_model.map((m) => [m.model, m.today.total_tokens]), [['fake-model', 5]]);
    assert.equal(mine.daily_budget?.remaining, BUDGET - 5);
    const theirs = await usageOf(s);
    assert.equal(theirs.today.total_tokens, 55_000, 'one call past the budget, then refused');
    assert.equal(theirs.daily_budget?.remaining, 0);
  });
});

describe('usage in local mode: every provider call, the providers\' usage shapes, the budget', function () {
  this.timeout(60000);
  let fake: FakeOpenAI;
  const daemons: RunningDaemon[] = [];
  const clients: TestClient[] = [];

  const start = async (env: Record<string, string> = {}) => {
    const d = await startDaemon({
      env: { ...ENV, EXAI_PROVIDER_BASE_URL: fake.baseUrl, EXAI_PROVIDER_API_KEY: API_KEY, EXAI_DEFAULT_MODEL: 'fake-a', ...env },
    });
    daemons.push(d);
    return d;
  };
  const open = async (d: RunningDaemon) => {
    const { client, ack } = await helloClient(d.url, localSecretOf(d), `vscode-usage-local-${clients.length}`);
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    clients.push(client);
    return client;
  };

  before(async function () {
    fake = await startFakeOpenAI({ apiKey: API_KEY });
  });

  beforeEach(function () {
    fake.set({ usage: { prompt_tokens: 60, completion_tokens: 40 } });
    fake.clearRequests();
  });

  afterEach(async function () {
    for (const c of clients.splice(0)) await c.close();
  });

  after(async function () {
    for (const d of daemons) await d.stop();
    await fake?.close();
  });

  it('records every provider call for its tool and model: a chat, and each model and the synthesis of a consensus', async function () {
    const client = await open(await start());
    okText(await callTool(client, 'chat', { prompt: 'one' }));
    okText(await callTool(client, 'consensus', { prompt: 'two', models: ['fake-a', 'fake-b'], synthesis_model: 'fake-c' }));
    assert.equal(fake.requests().length, 4);
    assert.ok(fake.requests().every((r) => r.body.max_tokens === undefined), 'no budget: max_tokens is not sent');
    const report = await usageOf(client);
    assert.deepEqual(report.today, { calls: 4, input_tokens: 240, output_tokens: 160, total_tokens: 400 });
    assert.deepEqual(report.this_month, report.today);
    assert.deepEqual(report.by_model.map((m) => [m.model, m.today.calls, m.this_month.total_tokens]), [['fake-a', 2, 200], ['fake-b', 1, 100], ['fake-c', 1, 100]]);
    assert.equal(report.daily_budget, null);
    assert.equal(report.day, new Date().toISOString().slice(0, 10));
  });

  it('reads the usage where each provider puts it (OpenAI, GLM, Kimi) and estimates it when a provider reports none', async function () {
    const client = await open(daemons[0] ?? await start());
    const before = (await usageOf(client)).today.total_tokens;
    const shapes: [NonNullable<Parameters<FakeOpenAI['set']>[0]['usagePlacement']>, number][] = [['final-chunk', 3], ['with-finish', 5], ['in-choice', 7]];
    let expected = before;
    for (const [placement, tokens] of shapes) {
      fake.set({ usagePlacement: placement, usage: { prompt_tokens: tokens, completion_tokens: 1 } });
      okText(await callTool(client, 'chat', { prompt: `shape ${placement}` }));
      expected += tokens + 1;
      assert.equal((await usageOf(client)).today.total_tokens, expected, placement);
    }
    // No usage at all: the prompt's 40 characters and the answer's 46 ("echo: " + prompt), 4 per token.
    fake.set({ usagePlacement: 'none' });
    okText(await callTool(client, 'chat', { prompt: 'x'.repeat(40) }));
    const report = await usageOf(client);
    assert.equal(report.today.total_tokens, expected + 10 + 12);
  });

  it('a Kimi web search (two upstream requests) is one call with the tokens of both rounds', async function () {
    const client = await open(await start({ KIMI_API_KEY: API_KEY, KIMI_API_URL: fake.baseUrl }));
    fake.set({ kimiWebSearch: true, usage: { prompt_tokens: 60, completion_tokens: 40 } });
    okText(await callTool(client, 'chat', { prompt: 'search something', model: 'kimi-k2-0905-preview', web_search: true }));
    assert.equal(fake.requests().length, 2);
    const report = await usageOf(client);
    assert.deepEqual(report.today, { calls: 1, input_tokens: 120, output_tokens: 80, total_tokens: 200 });
    assert.deepEqual(report.by_model.map((m) => m.model), ['kimi-k2-0905-preview']);
  });

  it('a budget in local mode: one call past it at most, then refused with what is used and when it resets', async function () {
    const client = await open(await start({ EXAI_DAILY_TOKENS_PER_USER: '150' }));
    okText(await callTool(client, 'chat', { prompt: 'first' }));
    okText(await callTool(client, 'chat', { prompt: 'second' }));
    const refused = errorOf(await callTool(client, 'chat', { prompt: 'third' }));
    assert.equal(refused.code, 'budget_exhausted');
    assert.match(refused.message, /^Your daily token budget is spent: 200 of your 150 tokens for today are used \(EXAI_DAILY_TOKENS_PER_USER\)\. It resets at 00:00 UTC, in (\d+ h )?\d+ min\.$/);
    assert.equal(fake.requests().length, 2);
    const report = await usageOf(client);
    assert.deepEqual(report.daily_budget && { limit: report.daily_budget.limit, used: report.daily_budget.used, remaining: report.daily_budget.remaining }, { limit: 150, used: 200, remaining: 0 });
    const listed = await callTool(client, 'consensus', { prompt: 'x', models: ['fake-a', 'fake-b'] });
    const err = errorOf(listed as CallToolResult);
    assert.equal(err.code, 'consensus_failed');
    assert.match(err.message, /fake-a: Your daily token budget is spent/);
  });
});
