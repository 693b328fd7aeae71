// Every provider call is metered: a reservation before it starts, the provider's counts after it.
//
// The reservation is what the call may spend at most, held against the caller's daily budget
// (EXAI_DAILY_TOKENS_PER_USER) while the call runs, so calls racing on several daemons cannot all
// pass the check on the same remaining tokens (the store takes them one by one under a per-user lock:
// mcp_usage_reserve in supabase/migrations/20261205000000_mcp_usage.sql). A call is admitted while the
// day's settled tokens plus the holds of the calls still running are below the budget; since every
// running call holds at least what it can spend, the day can end above the budget by at most the one
// call admitted last. The bound a call holds:
//   input   the UTF-8 bytes of every message, plus a few tokens per message for the chat template
//           (a token of the byte-level BPE tokenizers these providers use covers at least one byte);
//   output  the max_tokens sent with the request: MAX_OUTPUT_TOKENS_UNDER_BUDGET, only when a budget is set;
//   search  with web search the hold is an allowance, not a bound: the results enter the prompt on the
//           provider's side, out of our sight, and a Kimi search is up to MAX_SEARCH_ROUNDS requests
//           whose prompts grow by the earlier rounds. Each round holds the bound above plus
//           WEB_SEARCH_ALLOWANCE. Plain calls (no web search) hold a true bound.
// After the call the hold is replaced by the provider's counts (`usage` on the last stream chunk), or,
// when a provider reports none, by an estimate from the text (marked as such). Without a budget the
// call is still recorded, and a store that cannot record it does not stop the call (it is logged);
// with a budget a call whose reservation cannot be made is refused: the budget could not be checked.
import {
  StoreUnavailable,
  USAGE_CALLS_PER_DAY,
  USAGE_MAX_TOKENS_PER_CALL,
  type UsageDay,
  type UsageReservation,
  type UsageStore,
} from '../../sessions/store';
import { MAX_SEARCH_ROUNDS, type ChatMessage, type ModelFeatures, type ResolvedModel, type TokenUsage } from '../providers';
import { ToolError, type ToolContext } from '../registry';
import { describeReset } from '../usage';

/** `max_tokens` of every provider request while a daily budget is set: the output bound a call reserves. */
export const MAX_OUTPUT_TOKENS_UNDER_BUDGET = 16_384;
/** Chat-template tokens counted per message and per request on top of the text's bytes. */
const TOKENS_PER_MESSAGE = 16;
const TOKENS_PER_REQUEST = 64;
/** Held per round for web search results the provider adds to the prompt. */
export const WEB_SEARCH_ALLOWANCE = 32_768;
/** Characters per token of an estimate (a provider that reports no usage). */
const CHARS_PER_TOKEN_ESTIMATE = 4;
/** A hold outlives the provider deadline by this much: the settlement comes right after the call. */
const HOLD_SLACK_SECONDS = 60;

export const UsageErrorCode = {
  budgetExhausted: 'budget_exhausted',
  storeUnavailable: 'store_unavailable',
} as const;

export interface UsageMeterOptions {
  store: UsageStore;
  /** EXAI_DAILY_TOKENS_PER_USER; null: unlimited. */
  dailyLimit: number | null;
  /** EXAI_PROVIDER_TIMEOUT_SECONDS: no call runs longer, so no hold needs to last longer (plus slack). */
  providerTimeoutSec: number;
}

/** What one call of `ask` needs to be metered. */
export interface MeteredRequest {
  tool: string;
  resolved: ResolvedModel;
  messages: ChatMessage[];
  features?: ModelFeatures;
}

/** The tokens a call may spend at most, as it is held against the budget. */
export function reservationTokens(messages: ChatMessage[], outputBound: number, resolved: ResolvedModel, features?: ModelFeatures): number {
  const input = TOKENS_PER_REQUEST + messages.reduce((n, m) => n + Buffer.byteLength(m.content, 'utf8') + TOKENS_PER_MESSAGE, 0);
  const webSearch = features?.webSearch === true;
  const rounds = webSearch && resolved.endpoint.name === 'kimi' ? MAX_SEARCH_ROUNDS : 1;
  return Math.min(USAGE_MAX_TOKENS_PER_CALL, rounds * (input + outputBound + (webSearch ? WEB_SEARCH_ALLOWANCE : 0)));
}

const n = (v: number) => v.toLocaleString('en-US');

/** The refusal of a call the budget does not allow: how much is used, what is held, when it resets. */
export function budgetRefusal(limit: number, day: UsageDay, refused: 'budget' | 'calls', now = Date.now()): string {
  const reset = describeReset(day.resetsAt, now);
  if (refused === 'calls') {
    return `You have made ${n(USAGE_CALLS_PER_DAY)} provider calls today, the most one account may make in a UTC day; it resets at ${reset}.`;
  }
  const used = `${n(day.usedTokens)} of your ${n(limit)} tokens for today are used (EXAI_DAILY_TOKENS_PER_USER)`;
  if (day.heldTokens > 0 && day.usedTokens < limit) {
    return `Your daily token budget is taken for now: ${used}, and ${n(day.heldTokens)} are held by ${day.heldCalls} of your calls still running. ` +
      `Try again when they finish (their unused tokens come back), or after it resets at ${reset}.`;
  }
  return `Your daily token budget is spent: ${used}${day.heldTokens > 0 ? `, and ${n(day.heldTokens)} are held by ${day.heldCalls} calls still running` : ''}. It resets at ${reset}.`;
}

export class UsageMeter {
  constructor(private readonly options: UsageMeterOptions) {}

  get dailyLimit(): number | null {
    return this.options.dailyLimit;
  }

  /** max_tokens for every request while a budget is set; undefined: none sent. */
  get maxOutputTokens(): number | undefined {
    return this.options.dailyLimit === null ? undefined : MAX_OUTPUT_TOKENS_UNDER_BUDGET;
  }

  /** Reserves before the call starts; throws a ToolError when the budget refuses it (or cannot be checked). */
  async begin(ctx: ToolContext, request: MeteredRequest): Promise<MeteredCall> {
    const { store, dailyLimit, providerTimeoutSec } = this.options;
    // Without a budget the call still reserves: the reservation is its usage row (the hold then limits nothing).
    const tokens = reservationTokens(request.messages, this.maxOutputTokens ?? MAX_OUTPUT_TOKENS_UNDER_BUDGET, request.resolved, request.features);
    const inputChars = request.messages.reduce((sum, m) => sum + m.content.length, 0);
    let reservation: UsageReservation | null = null;
    try {
      const outcome = await store.reserveUsage(ctx.identity, {
        tool: request.tool,
        model: request.resolved.model.slice(0, 128),
        tokens,
        dailyLimit,
        holdSeconds: Math.min(7200, providerTimeoutSec + HOLD_SLACK_SECONDS),
      });
      if (!outcome.ok) {
        ctx.log.info('call refused by the daily token budget', {
          tool: request.tool, model: request.resolved.model, refused: outcome.refused, used: outcome.usedTokens, held: outcome.heldTokens, limit: dailyLimit,
        });
        throw new ToolError(UsageErrorCode.budgetExhausted, budgetRefusal(dailyLimit ?? 0, outcome, outcome.refused));
      }
      reservation = outcome.reservation;
    } catch (err) {
      if (err instanceof ToolError) throw err;
      if (dailyLimit !== null) {
        const why = err instanceof StoreUnavailable ? err.message : 'the usage store failed (see the daemon log)';
        if (!(err instanceof StoreUnavailable)) ctx.log.error('could not reserve usage', { error: err });
        throw new ToolError(UsageErrorCode.storeUnavailable, `This daemon has a daily token budget and could not check yours, so the call was not made: ${why}`);
      }
      ctx.log.warn('could not record the usage of a provider call; the call goes ahead unrecorded', { tool: request.tool, error: err });
    }
    return new MeteredCall(store, ctx, reservation, inputChars);
  }
}

/** One provider call between its reservation and its settlement. */
export class MeteredCall {
  private reported: TokenUsage | null = null;
  private streamedChars = 0;

  constructor(
    private readonly store: UsageStore, private readonly ctx: ToolContext,
    private readonly reservation: UsageReservation | null, private readonly inputChars: number,
  ) {}

  /** The provider's counts of one upstream request (a call may make several). */
  readonly addUsage = (usage: TokenUsage): void => {
    this.reported = {
      inputTokens: (this.reported?.inputTokens ?? 0) + usage.inputTokens,
      outputTokens: (this.reported?.outputTokens ?? 0) + usage.outputTokens,
    };
  };

  /** Text as it streams: what an estimate counts when the provider reports no usage. */
  readonly addText = (delta: string): void => {
    this.streamedChars += delta.length;
  };

  /**
   * Replaces the hold with the counts. Never throws: a settlement that fails is logged, and the hold
   * lapses at its end (the call's tokens then count for nothing; see docs/protocol.md).
   */
  async settle(): Promise<void> {
    if (!this.reservation) return;
    const counts = this.reported
      ? { ...this.reported, estimated: false }
      : this.streamedChars > 0
        // Nothing reported (a provider without usage, or a stream cut off): estimate what was sent and received.
        ? { inputTokens: Math.ceil(this.inputChars / CHARS_PER_TOKEN_ESTIMATE), outputTokens: Math.ceil(this.streamedChars / CHARS_PER_TOKEN_ESTIMATE), estimated: true }
        // Refused or failed before any answer: nothing was generated.
        : { inputTokens: 0, outputTokens: 0, estimated: false };
    const bounded = {
      ...counts,
      inputTokens: Math.min(counts.inputTokens, USAGE_MAX_TOKENS_PER_CALL),
      outputTokens: Math.min(counts.outputTokens, USAGE_MAX_TOKENS_PER_CALL),
    };
    try {
      const settled = await this.store.settleUsage(this.ctx.identity, this.reservation, bounded);
      if (!settled) this.ctx.log.warn('a usage reservation was no longer there to settle', { reservation: this.reservation.id });
    } catch (err) {
      this.ctx.log.warn('could not settle the usage of a provider call; its hold lapses on its own', { reservation: this.reservation.id, error: err });
    }
  }
}
