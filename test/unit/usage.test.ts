// The pure parts of usage metering: where a stream chunk carries its usage (OpenAI, GLM, Kimi), what
// a call reserves, the refusal and reset wording, the usage tool's report, the setting.
import assert from 'node:assert/strict';
import { ConfigError, loadConfig, type ProviderEndpoint } from '../../server/config';
import type { Logger } from '../../server/log';
import { StoreUnavailable, type UsageCounts, type UsageReservationRequest, type UsageStore } from '../../server/sessions/store';
import { budgetRefusal, MAX_OUTPUT_TOKENS_UNDER_BUDGET, reservationTokens, UsageMeter, WEB_SEARCH_ALLOWANCE } from '../../server/tools/engine/usageMeter';
import { MAX_SEARCH_ROUNDS, tokenUsageOf } from '../../server/tools/providers';
import { ToolError, type ToolContext } from '../../server/tools/registry';
import { describeReset, usageReport } from '../../server/tools/usage';

const endpoint = (name: ProviderEndpoint['name']): ProviderEndpoint =>
  ({ name, baseUrl: 'http://127.0.0.1:1/v1', apiKey: null, keyEnv: 'K', urlEnv: 'U' });

describe('tokenUsageOf (the usage of a stream chunk)', function () {
  it("reads OpenAI's last chunk (choices: [], top-level usage)", function () {
    assert.deepEqual(tokenUsageOf({ choices: [], usage: { prompt_tokens: 19, completion_tokens: 13, total_tokens: 32 } }), { inputTokens: 19, outputTokens: 13 });
  });
  it("reads GLM's finish chunk (usage beside the choice)", function () {
    assert.deepEqual(tokenUsageOf({ choices: [{ index: 0, finish_reason: 'stop', delta: {} }], usage: { prompt_tokens: 18, completion_tokens: 202, total_tokens: 220, prompt_tokens_details: { cached_tokens: 0 } } }),
      { inputTokens: 18, outputTokens: 202 });
  });
  it("reads Kimi's usage inside choices[0]", function () {
    assert.deepEqual(tokenUsageOf({ choices: [{ index: 0, delta: {}, finish_reason: 'stop', usage: { prompt_tokens: 19, completion_tokens: 13, total_tokens: 32 } }] }), { inputTokens: 19, outputTokens: 13 });
  });
  it('ignores chunks without usage, a null usage, and counts that are not whole non-negative numbers', function () {
    assert.equal(tokenUsageOf({ choices: [{ delta: { content: 'x' } }] }), null);
    assert.equal(tokenUsageOf({ choices: [], usage: null }), null);
    assert.equal(tokenUsageOf({ usage: { prompt_tokens: -1, completion_tokens: 2 } }), null);
    assert.equal(tokenUsageOf({ usage: { prompt_tokens: 1.5, completion_tokens: 2 } }), null);
    assert.equal(tokenUsageOf({ usage: { prompt_tokens: '1', completion_tokens: 2 } }), null);
    assert.equal(tokenUsageOf(null), null);
  });
});

describe('reservationTokens (what a call holds against the budget)', function () {
  const messages = [{ role: 'system' as const, content: 'sys' }, { role: 'user' as const, content: 'é'.repeat(100) }];
  it('holds the UTF-8 bytes of every message, a template allowance per message, and the output bound', function () {
    const held = reservationTokens(messages, MAX_OUTPUT_TOKENS_UNDER_BUDGET, { endpoint: endpoint('custom'), model: 'm' });
    assert.equal(held, 64 + (3 + 16) + (200 + 16) + MAX_OUTPUT_TOKENS_UNDER_BUDGET);
  });
  it('holds a web search allowance, and every round of a Kimi web search', function () {
    const plain = reservationTokens(messages, 1000, { endpoint: endpoint('glm'), model: 'glm-4.6' });
    assert.equal(reservationTokens(messages, 1000, { endpoint: endpoint('glm'), model: 'glm-4.6' }, { webSearch: true }), plain + WEB_SEARCH_ALLOWANCE);
    assert.equal(reservationTokens(messages, 1000, { endpoint: endpoint('kimi'), model: 'kimi-k2' }, { webSearch: true }), MAX_SEARCH_ROUNDS * (plain + WEB_SEARCH_ALLOWANCE));
  });
});

describe('the budget wording', function () {
  const now = Date.parse('2026-12-05T20:48:00Z');
  const resetsAt = '2026-12-06T00:00:00.000Z';
  it('says when the day resets: 00:00 UTC and how long until then', function () {
    assert.equal(describeReset(resetsAt, now), '00:00 UTC, in 3 h 12 min');
    assert.equal(describeReset(resetsAt, Date.parse('2026-12-05T23:58:30Z')), '00:00 UTC, in 2 min');
    assert.equal(describeReset(resetsAt, Date.parse('2026-12-05T23:59:59Z')), '00:00 UTC, in 1 min');
  });
  it('a spent budget: how much is used of how much, and when it resets', function () {
    assert.equal(budgetRefusal(100_000, { usedTokens: 104_321, heldTokens: 0, heldCalls: 0, resetsAt }, 'budget', now),
      'Your daily token budget is spent: 104,321 of your 100,000 tokens for today are used (EXAI_DAILY_TOKENS_PER_USER). It resets at 00:00 UTC, in 3 h 12 min.');
  });
  it('a budget held by calls still running: says so, and that their unused tokens come back', function () {
    const message = budgetRefusal(100_000, { usedTokens: 80_000, heldTokens: 33_000, heldCalls: 2, resetsAt }, 'budget', now);
    assert.match(message, /^Your daily token budget is taken for now: 80,000 of your 100,000 tokens for today are used \(EXAI_DAILY_TOKENS_PER_USER\), and 33,000 are held by 2 of your calls still running\./);
    assert.match(message, /Try again when they finish \(their unused tokens come back\), or after it resets at 00:00 UTC, in 3 h 12 min\.$/);
  });
  it('the calls-per-day bound has its own sentence', function () {
    assert.match(budgetRefusal(100, { usedTokens: 0, heldTokens: 0, heldCalls: 0, resetsAt }, 'calls', now), /^You have made 20,000 provider calls today, the most one account may make in a UTC day; it resets at 00:00 UTC, in 3 h 12 min\.$/);
  });
});

describe('usageReport (the usage tool)', function () {
  const now = Date.parse('2026-12-05T20:48:00Z');
  const rows = [
    { period: 'today' as const, model: 'glm-4.6', calls: 2, inputTokens: 100, outputTokens: 50, heldCalls: 1, heldTokens: 17_000 },
    { period: 'month' as const, model: 'glm-4.6', calls: 5, inputTokens: 400, outputTokens: 200, heldCalls: 0, heldTokens: 0 },
    { period: 'month' as const, model: 'kimi-k2', calls: 1, inputTokens: 900, outputTokens: 100, heldCalls: 0, heldTokens: 0 },
  ];
  it('today, this month, by model (most tokens first), in flight; no budget section without a budget', function () {
    const r = usageReport(rows, null, now);
    assert.equal(r.day, '2026-12-05');
    assert.equal(r.month, '2026-12');
    assert.deepEqual(r.today, { calls: 2, input_tokens: 100, output_tokens: 50, total_tokens: 150 });
    assert.deepEqual(r.this_month, { calls: 6, input_tokens: 1300, output_tokens: 300, total_tokens: 1600 });
    assert.deepEqual(r.by_model.map((m) => [m.model, m.today.total_tokens, m.this_month.total_tokens]), [['kimi-k2', 0, 1000], ['glm-4.6', 150, 600]]);
    assert.deepEqual(r.in_flight, { calls: 1, held_tokens: 17_000 });
    assert.equal(r.daily_budget, null);
  });
  it('with a budget: the limit, what is used, what remains after the holds, and the reset', function () {
    assert.deepEqual(usageReport(rows, 20_000, now).daily_budget,
      { limit: 20_000, used: 150, remaining: 2_850, resets_at: '2026-12-06T00:00:00.000Z', resets: '00:00 UTC, in 3 h 12 min' });
    assert.equal(usageReport(rows, 100, now).daily_budget?.remaining, 0);
  });
});

describe('EXAI_DAILY_TOKENS_PER_USER', function () {
  it('unset or empty: unlimited; a whole number from 1: the budget; anything else names the setting', function () {
    assert.equal(loadConfig([], {}).dailyTokensPerUser, null);
    assert.equal(loadConfig([], { EXAI_DAILY_TOKENS_PER_USER: '' }).dailyTokensPerUser, null);
    assert.equal(loadConfig([], { EXAI_DAILY_TOKENS_PER_USER: '250000' }).dailyTokensPerUser, 250_000);
    for (const bad of ['0', '-5', '1.5', 'lots', '1000000000001']) {
      assert.throws(() => loadConfig([], { EXAI_DAILY_TOKENS_PER_USER: bad }),
        (err: unknown) => err instanceof ConfigError && /^EXAI_DAILY_TOKENS_PER_USER must be a whole number from 1 to 1000000000000/.test(err.message), bad);
    }
  });
});

describe('UsageMeter (reserve before, settle after)', function () {
  const identity = { userId: 'u1', email: null, authSessionId: null, expiresAt: null, claims: {}, accessToken: 't' };
  const resolved = { endpoint: endpoint('custom'), model: 'm' };
  const messages = [{ role: 'user' as const, content: 'x'.repeat(40) }];

  function harness(store: Partial<UsageStore>) {
    const lines: { level: string; msg: string }[] = [];
    const log: Logger = {
      debug: (msg) => lines.push({ level: 'debug', msg }), info: (msg) => lines.push({ level: 'info', msg }),
      warn: (msg) => lines.push({ level: 'warn', msg }), error: (msg) => lines.push({ level: 'error', msg }),
      child: () => log,
    };
    const ctx = { identity, log } as unknown as ToolContext;
    return { ctx, lines, store: store as UsageStore };
  }
  const day = { usedTokens: 0, heldTokens: 0, heldCalls: 0, resetsAt: '2026-12-06T00:00:00.000Z' };

  it('with a budget: a store that cannot reserve refuses the call (store_unavailable); without one the call goes ahead, logged', async function () {
    const h = harness({ reserveUsage: async () => { throw new StoreUnavailable('The session database is unreachable (ECONNREFUSED); try again.'); } });
    const strict = new UsageMeter({ store: h.store, dailyLimit: 1000, providerTimeoutSec: 120 });
    await assert.rejects(strict.begin(h.ctx, { tool: 'chat', resolved, messages }), (err: unknown) =>
      err instanceof ToolError && err.code === 'store_unavailable' && /has a daily token budget and could not check yours, so the call was not made: The session database is unreachable/.test(err.message));
    const lenient = new UsageMeter({ store: h.store, dailyLimit: null, providerTimeoutSec: 120 });
    const call = await lenient.begin(h.ctx, { tool: 'chat', resolved, messages });
    await call.settle(); // nothing reserved, nothing to settle
    assert.ok(h.lines.some((l) => l.level === 'warn' && /goes ahead unrecorded/.test(l.msg)));
    assert.equal(lenient.maxOutputTokens, undefined, 'no budget: no max_tokens');
    assert.equal(strict.maxOutputTokens, MAX_OUTPUT_TOKENS_UNDER_BUDGET);
  });

  it('reserves the bound for the provider deadline plus a minute; settles with the reported counts, an estimate, or nothing', async function () {
    const requests: UsageReservationRequest[] = [];
    const settled: UsageCounts[] = [];
    const h = harness({
      reserveUsage: async (_c, r) => { requests.push(r); return { ok: true, reservation: { id: requests.length, key: 'k' }, ...day }; },
      settleUsage: async (_c, _r, counts) => { settled.push(counts); return true; },
    });
    const meter = new UsageMeter({ store: h.store, dailyLimit: 5000, providerTimeoutSec: 120 });
    const reported = await meter.begin(h.ctx, { tool: 'debug', resolved, messages });
    reported.addText('some text');
    reported.addUsage({ inputTokens: 10, outputTokens: 5 });
    reported.addUsage({ inputTokens: 20, outputTokens: 7 });
    await reported.settle();
    const silent = await meter.begin(h.ctx, { tool: 'chat', resolved, messages });
    silent.addText('y'.repeat(46));
    await silent.settle();
    const failed = await meter.begin(h.ctx, { tool: 'chat', resolved, messages });
    await failed.settle();
    assert.deepEqual(requests[0], { tool: 'debug', model: 'm', tokens: reservationTokens(messages, MAX_OUTPUT_TOKENS_UNDER_BUDGET, resolved), dailyLimit: 5000, holdSeconds: 180 });
    assert.deepEqual(settled, [
      { inputTokens: 30, outputTokens: 12, estimated: false },
      { inputTokens: 10, outputTokens: 12, estimated: true },
      { inputTokens: 0, outputTokens: 0, estimated: false },
    ]);
  });

  it('a refusal by the budget is budget_exhausted with the sentence; a settlement that fails is logged, never thrown', async function () {
    const h = harness({
      reserveUsage: async () => ({ ok: false, refused: 'budget', ...day, usedTokens: 1200 }),
    });
    const meter = new UsageMeter({ store: h.store, dailyLimit: 1000, providerTimeoutSec: 120 });
    await assert.rejects(meter.begin(h.ctx, { tool: 'chat', resolved, messages }), (err: unknown) =>
      err instanceof ToolError && err.code === 'budget_exhausted' && /^Your daily token budget is spent: 1,200 of your 1,000 tokens/.test(err.message));
    const h2 = harness({
      reserveUsage: async () => ({ ok: true, reservation: { id: 1, key: 'k' }, ...day }),
      settleUsage: async () => { throw new StoreUnavailable('down'); },
    });
    const call = await new UsageMeter({ store: h2.store, dailyLimit: 1000, providerTimeoutSec: 120 }).begin(h2.ctx, { tool: 'chat', resolved, messages });
    await call.settle();
    assert.ok(h2.lines.some((l) => l.level === 'warn' && /could not settle/.test(l.msg)));
  });
});
