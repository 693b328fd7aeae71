// The session store: one row per connection in `mcp_sessions`. Two backends implement it
// (pgStore: direct Postgres; dataApiStore: Supabase Data API with the user's own JWT) and local
// mode has an in-memory one. The business rules (per-user limit, liveness, ownership, bounds) live in
// SQL functions in supabase/migrations/, so every backend calls the same rules; users cannot write the
// tables except through those functions (20261201000000_writes_through_functions.sql).
import { randomBytes } from 'node:crypto';
import type { Identity } from '../auth/identity';

export type StoredStatus = 'connected' | 'disconnected' | 'expired';

export interface SessionRow {
  session_id: string;
  created_at: string;
  last_active: string;
  /** Derived: a `connected` row whose last_active is older than the liveness bound reads `stale`. */
  connection_status: StoredStatus | 'stale';
  metadata: Record<string, unknown>;
}

export interface SessionMetadata {
  daemon_id: string;
  instance: string | null;
  client_version: string | null;
  pid: number;
  /** Absent: 'websocket'. */
  transport?: 'websocket' | 'mcp';
  /** An MCP client's name (clientInfo.name, at most 64 characters). */
  client_name?: string | null;
}

export type ClaimResult = { ok: true } | { ok: false; active: number };

/** Raised by a store when its backend cannot be reached or refuses; the message is user-facing. */
export class StoreUnavailable extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'StoreUnavailable';
  }
}

export interface SessionStore {
  /** Marks rows that this daemon's previous instance left `connected` as `disconnected`. */
  recoverAbandoned(daemonId: string): Promise<number>;
  /** Inserts the row if the user has fewer than `maxPerUser` live sessions (race-free across daemons). */
  claim(caller: Identity, sessionId: string, maxPerUser: number, metadata: SessionMetadata): Promise<ClaimResult>;
  /** Refreshes last_active of the caller's own row; false when the row is no longer `connected`. */
  touch(caller: Identity, sessionId: string): Promise<boolean>;
  /** Ends the caller's own row with a final status. */
  close(caller: Identity, sessionId: string, status: 'disconnected' | 'expired'): Promise<void>;
  /** The caller's own sessions, newest first. */
  listOwn(caller: Identity): Promise<SessionRow[]>;
  end(): Promise<void>;
}

// ---------------------------------------------------------------- conversation threads

export type ThreadRole = 'system' | 'user' | 'assistant';

export interface ThreadMessage {
  id: number;
  role: ThreadRole;
  content: string;
  /** ISO 8601. */
  created_at: string;
}

export interface ThreadSummary {
  id: string;
  title: string | null;
  /** ISO 8601. */
  created_at: string;
  updated_at: string;
  message_count: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A thread id is a UUID; anything else cannot name a thread (and is not sent to the database). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** The thread does not exist or is another user's (RLS makes the two indistinguishable). */
export class ThreadNotFound extends Error {
  constructor(readonly threadId: string) {
    super(`There is no conversation ${threadId} for this account; it is unknown or belongs to another user. Omit continuation_id to start a new conversation.`);
    this.name = 'ThreadNotFound';
  }
}

/**
 * The chat tool's conversation memory (`mcp_threads` / `mcp_thread_messages`). The same three
 * backends implement it; the rules (ownership, order, limits) are the mcp_thread_* SQL functions in
 * supabase/migrations/ (20261124000200_mcp_threads.sql, bounded by 20261201000000_writes_through_functions.sql),
 * which memoryStore.ts mirrors for local mode.
 */
export interface ThreadStore {
  /** A new thread of the caller; resolves with its id (the continuation_id). */
  createThread(caller: Identity, title: string | null): Promise<string>;
  /** Appends to the caller's own thread; rejects with ThreadNotFound for any other. Resolves with the message id. */
  appendMessage(caller: Identity, threadId: string, role: ThreadRole, content: string): Promise<number>;
  /** The LAST `limit` messages of the caller's own thread, oldest first; ThreadNotFound for any other. */
  threadMessages(caller: Identity, threadId: string, limit: number): Promise<ThreadMessage[]>;
  /** The caller's own threads, newest first. */
  listThreads(caller: Identity): Promise<ThreadSummary[]>;
}

// ---------------------------------------------------------------- token usage and the daily budget

/** Rows one user may add per UTC day; mirrors public.mcp_usage_max_calls_per_day(). */
export const USAGE_CALLS_PER_DAY = 20_000;
/** The most tokens one call may reserve or record (the SQL functions refuse more). */
export const USAGE_MAX_TOKENS_PER_CALL = 1_000_000_000;

export interface UsageReservationRequest {
  tool: string;
  model: string;
  /** What the call may spend at most: held against the budget until the call is settled. */
  tokens: number;
  /** Tokens per user and UTC day (EXAI_DAILY_TOKENS_PER_USER); null: no budget, the call is only recorded. */
  dailyLimit: number | null;
  /** How long the hold lasts if the call is never settled (its daemon died). 1..7200. */
  holdSeconds: number;
}

/** A reservation the daemon settles once the call is over. The key is a secret: never logged, never sent to a client. */
export interface UsageReservation {
  id: number;
  key: string;
}

/** The caller's current UTC day, as the reservation found it (before adding its own hold). */
export interface UsageDay {
  /** Tokens of the day's settled calls. */
  usedTokens: number;
  /** Tokens held by the day's calls still running. */
  heldTokens: number;
  heldCalls: number;
  /** ISO 8601: the next 00:00 UTC, when the day's budget starts again. */
  resetsAt: string;
}

export type ReserveOutcome =
  | ({ ok: true; reservation: UsageReservation } & UsageDay)
  /** `budget`: used + held reached the limit; `calls`: USAGE_CALLS_PER_DAY rows today. */
  | ({ ok: false; refused: 'budget' | 'calls' } & UsageDay);

export interface UsageCounts {
  inputTokens: number;
  outputTokens: number;
  /** True when the provider reported nothing and the daemon estimated the counts. */
  estimated: boolean;
}

/** One model's figures for one period; `held*` only for today. */
export interface UsageRow {
  period: 'today' | 'month';
  model: string;
  calls: number;
  inputTokens: number;
  outputTokens: number;
  heldCalls: number;
  heldTokens: number;
}

/**
 * Tokens per provider call and user (`mcp_usage`), and the optional daily budget. The same three
 * backends implement it; the rules (the per-user lock, what counts toward the day, holds that expire,
 * bounds, own rows only) are the mcp_usage_* SQL functions of
 * supabase/migrations/20261205000000_mcp_usage.sql, which memoryStore.ts mirrors for local mode.
 */
export interface UsageStore {
  /** Holds `tokens` of the caller's day for one call, race-free across daemons, unless the budget or the day's row bound is reached. */
  reserveUsage(caller: Identity, request: UsageReservationRequest): Promise<ReserveOutcome>;
  /** Replaces the hold with the call's counts. False when there was nothing to settle. */
  settleUsage(caller: Identity, reservation: UsageReservation, counts: UsageCounts): Promise<boolean>;
  /** The caller's figures: today and this month (UTC), by model. */
  usageSummary(caller: Identity): Promise<UsageRow[]>;
}

/** A fresh secret that settles one reservation (256 bits). */
export function newSettleKey(): string {
  return randomBytes(32).toString('base64url');
}
