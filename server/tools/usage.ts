// The `usage` tool: the caller's own tokens of the model tools, today and this month (UTC), by model,
// with the calls still running and the daily budget when the daemon has one. Other users' usage is
// never visible (RLS in supabase mode, per user in memory in local mode).
import { z } from 'zod';
import { StoreUnavailable, type UsageRow, type UsageStore } from '../sessions/store';
import { defineTool, ToolError } from './registry';
import { describeReset } from './usageReset';

export { describeReset };

interface Totals {
  calls: number;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
}

/** What the tool answers (JSON): also what the extension's status bar reads. */
export interface UsageReport {
  /** The UTC day and month the figures are for. */
  day: string;
  month: string;
  today: Totals;
  this_month: Totals;
  by_model: { model: string; today: Totals; this_month: Totals }[];
  /** Calls still running today and the tokens they hold against the budget. */
  in_flight: { calls: number; held_tokens: number };
  /** Null: this daemon sets no daily budget. */
  daily_budget: { limit: number; used: number; remaining: number; resets_at: string; resets: string } | null;
}

const zero = (): Totals => ({ calls: 0, input_tokens: 0, output_tokens: 0, total_tokens: 0 });

function add(t: Totals, r: UsageRow): void {
  t.calls += r.calls;
  t.input_tokens += r.inputTokens;
  t.output_tokens += r.outputTokens;
  t.total_tokens += r.inputTokens + r.outputTokens;
}

/** The summary rows as one report; `now` decides the day, the month and the reset. */
export function usageReport(rows: UsageRow[], dailyLimit: number | null, now = Date.now()): UsageReport {
  const day = new Date(now).toISOString().slice(0, 10);
  const report: UsageReport = {
    day, month: day.slice(0, 7), today: zero(), this_month: zero(), by_model: [], in_flight: { calls: 0, held_tokens: 0 }, daily_budget: null,
  };
  const models = new Map<string, { model: string; today: Totals; this_month: Totals }>();
  for (const r of rows) {
    const m = models.get(r.model) ?? { model: r.model, today: zero(), this_month: zero() };
    models.set(r.model, m);
    if (r.period === 'today') {
      add(report.today, r);
      add(m.today, r);
      report.in_flight.calls += r.heldCalls;
      report.in_flight.held_tokens += r.heldTokens;
    } else {
      add(report.this_month, r);
      add(m.this_month, r);
    }
  }
  report.by_model = [...models.values()].sort((a, b) => b.this_month.total_tokens - a.this_month.total_tokens || a.model.localeCompare(b.model));
  if (dailyLimit !== null) {
    const resetsAt = new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString();
    report.daily_budget = {
      limit: dailyLimit,
      used: report.today.total_tokens,
      remaining: Math.max(0, dailyLimit - report.today.total_tokens - report.in_flight.held_tokens),
      resets_at: resetsAt,
      resets: describeReset(resetsAt, now),
    };
  }
  return report;
}

export function createUsageTool(store: UsageStore, dailyLimit: number | null) {
  return defineTool({
    name: 'usage',
    title: 'My token usage',
    annotations: { readOnlyHint: true, openWorldHint: false },
    description:
      "Shows the caller's own token usage of the model tools (chat, thinkdeep, codereview, debug, planner, challenge, consensus): " +
      'today and this month (UTC), in and out, by model, the calls still running, and the daily token budget with when it resets, when the daemon sets one.',
    input: z.object({}).strict(),
    async run(_args, ctx) {
      try {
        return JSON.stringify(usageReport(await store.usageSummary(ctx.identity), dailyLimit), null, 2);
      } catch (err) {
        if (err instanceof StoreUnavailable) throw new ToolError('store_unavailable', err.message);
        throw err;
      }
    },
  });
}
