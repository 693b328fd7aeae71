// Local mode's store: one daemon per state directory and one OS user, so the rows live in this
// process. It follows the same rules as the SQL functions of supabase/migrations/ (limit counts live
// rows, own rows only, only the daemon's metadata keys kept, 50 ended rows kept per user; threads:
// own threads only, last-N messages oldest first, the same retention bounds as mcp_thread_create /
// mcp_thread_append: the oldest threads and the oldest messages of a long thread are dropped; usage:
// as mcp_usage_reserve / _settle / _summary, per UTC day, holds that expire, USAGE_CALLS_PER_DAY).
import { randomUUID } from 'node:crypto';
import type { Identity } from '../auth/identity';
import {
  ThreadNotFound,
  USAGE_CALLS_PER_DAY,
  USAGE_MAX_TOKENS_PER_CALL,
  newSettleKey,
  type ReserveOutcome,
  type UsageCounts,
  type UsageReservation,
  type UsageReservationRequest,
  type UsageRow,
  type UsageStore,
  type ClaimResult,
  type SessionMetadata,
  type SessionRow,
  type SessionStore,
  type ThreadMessage,
  type ThreadRole,
  type ThreadStore,
  type ThreadSummary,
} from './store';

const ENDED_ROWS_KEPT_PER_USER = 50;
export const THREADS_KEPT_PER_USER = 200;
export const MESSAGES_KEPT_PER_THREAD = 200;
/** UTF-8 bytes of content kept per thread (oldest messages dropped first; the newest always stays). */
export const BYTES_KEPT_PER_THREAD = 2_000_000;

interface MemoryThread {
  id: string;
  user_id: string;
  title: string | null;
  created_at: string;
  updated_at: string;
  messages: ThreadMessage[];
  /** UTF-8 bytes of all messages' content. */
  bytes: number;
}

interface MemoryUsage {
  id: number;
  user_id: string;
  /** YYYY-MM-DD, UTC. */
  day: string;
  tool: string;
  model: string;
  state: 'reserved' | 'settled';
  reservedTokens: number;
  holdUntil: number;
  key: string;
  inputTokens: number;
  outputTokens: number;
  estimated: boolean;
}

interface MemoryRow extends SessionRow {
  user_id: string;
}

export class MemorySessionStore implements SessionStore, ThreadStore, UsageStore {
  private readonly rows = new Map<string, MemoryRow>();
  /** Insertion order = creation order. */
  private readonly threads = new Map<string, MemoryThread>();
  private nextMessageId = 1;
  private readonly usage = new Map<number, MemoryUsage>();
  private nextUsageId = 1;

  /** For tests: the clock the usage rules read. */
  constructor(private readonly now: () => number = Date.now) {}

  async recoverAbandoned(): Promise<number> {
    return 0; // nothing outlives the process
  }

  async claim(caller: Identity, sessionId: string, maxPerUser: number, metadata: SessionMetadata): Promise<ClaimResult> {
    const active = this.own(caller).filter((r) => r.connection_status === 'connected').length;
    if (active >= maxPerUser) return { ok: false, active };
    const now = new Date().toISOString();
    // Only the daemon's own keys are kept, as mcp_claim_session does.
    const kept = {
      daemon_id: metadata.daemon_id, instance: metadata.instance ?? null, client_version: metadata.client_version ?? null, pid: metadata.pid ?? null,
      transport: metadata.transport ?? 'websocket', client_name: metadata.client_name ?? null,
    };
    this.rows.set(sessionId, { user_id: caller.userId, session_id: sessionId, created_at: now, last_active: now, connection_status: 'connected', metadata: kept });
    return { ok: true };
  }

  async touch(caller: Identity, sessionId: string): Promise<boolean> {
    const row = this.rows.get(sessionId);
    if (!row || row.user_id !== caller.userId || row.connection_status !== 'connected') return false;
    row.last_active = new Date().toISOString();
    return true;
  }

  async close(caller: Identity, sessionId: string, status: 'disconnected' | 'expired'): Promise<void> {
    const row = this.rows.get(sessionId);
    if (!row || row.user_id !== caller.userId || row.connection_status !== 'connected') return;
    row.connection_status = status;
    row.last_active = new Date().toISOString();
    this.forgetOldEndedRows(caller);
  }

  async listOwn(caller: Identity): Promise<SessionRow[]> {
    return this.own(caller)
      .reverse()
      .map(({ user_id: _ignored, ...row }) => ({ ...row, metadata: { ...row.metadata } }));
  }

  async end(): Promise<void> {}

  // ---------------------------------------------------------------- threads

  async createThread(caller: Identity, title: string | null): Promise<string> {
    const now = new Date().toISOString();
    const id = randomUUID();
    const trimmed = title?.trim().slice(0, 200) || null;
    this.threads.set(id, { id, user_id: caller.userId, title: trimmed, created_at: now, updated_at: now, messages: [], bytes: 0 });
    const own = [...this.threads.values()].filter((t) => t.user_id === caller.userId);
    for (const old of own.slice(0, Math.max(0, own.length - THREADS_KEPT_PER_USER))) this.threads.delete(old.id);
    return id;
  }

  async appendMessage(caller: Identity, threadId: string, role: ThreadRole, content: string): Promise<number> {
    const thread = this.ownThread(caller, threadId);
    const message: ThreadMessage = { id: this.nextMessageId++, role, content, created_at: new Date().toISOString() };
    thread.messages.push(message);
    thread.bytes += Buffer.byteLength(content, 'utf8');
    thread.updated_at = message.created_at;
    while (thread.messages.length > 1 && (thread.messages.length > MESSAGES_KEPT_PER_THREAD || thread.bytes > BYTES_KEPT_PER_THREAD)) {
      thread.bytes -= Buffer.byteLength(thread.messages.shift()!.content, 'utf8');
    }
    return message.id;
  }

  async threadMessages(caller: Identity, threadId: string, limit: number): Promise<ThreadMessage[]> {
    const thread = this.ownThread(caller, threadId);
    const n = Math.min(Math.max(Math.trunc(limit) || 20, 1), 1000);
    return thread.messages.slice(-n).map((m) => ({ ...m }));
  }

  async listThreads(caller: Identity): Promise<ThreadSummary[]> {
    return [...this.threads.values()]
      .filter((t) => t.user_id === caller.userId)
      .reverse()
      .map((t) => ({ id: t.id, title: t.title, created_at: t.created_at, updated_at: t.updated_at, message_count: t.messages.length }));
  }

  // ---------------------------------------------------------------- usage

  async reserveUsage(caller: Identity, request: UsageReservationRequest): Promise<ReserveOutcome> {
    checkLength('tool', request.tool, 64);
    checkLength('model', request.model, 128);
    checkTokens('tokens', request.tokens);
    if (request.dailyLimit !== null && !(Number.isSafeInteger(request.dailyLimit) && request.dailyLimit >= 0)) throw new Error('usage: daily limit must be >= 0 or null');
    if (!(Number.isInteger(request.holdSeconds) && request.holdSeconds >= 1 && request.holdSeconds <= 7200)) throw new Error('usage: hold seconds must be 1-7200');
    // One process, no await between the sum and the insert: nothing can interleave.
    const now = this.now();
    const today = utcDay(now);
    const keepFrom = firstOfPreviousMonth(today);
    for (const row of this.usage.values()) {
      if (row.user_id !== caller.userId) continue;
      if (row.day < keepFrom || (row.state === 'reserved' && row.day < utcDay(Date.parse(`${today}T00:00:00Z`) - 86_400_000))) this.usage.delete(row.id);
    }
    const rows = [...this.usage.values()].filter((r) => r.user_id === caller.userId && r.day === today);
    const live = rows.filter((r) => r.state === 'reserved' && r.holdUntil > now);
    const day = {
      usedTokens: rows.filter((r) => r.state === 'settled').reduce((n, r) => n + r.inputTokens + r.outputTokens, 0),
      heldTokens: live.reduce((n, r) => n + r.reservedTokens, 0),
      heldCalls: live.length,
      resetsAt: new Date(Date.parse(`${today}T00:00:00Z`) + 86_400_000).toISOString(),
    };
    if (rows.length >= USAGE_CALLS_PER_DAY) return { ok: false, refused: 'calls', ...day };
    if (request.dailyLimit !== null && day.usedTokens + day.heldTokens >= request.dailyLimit) return { ok: false, refused: 'budget', ...day };
    const reservation = { id: this.nextUsageId++, key: newSettleKey() };
    this.usage.set(reservation.id, {
      id: reservation.id, user_id: caller.userId, day: today, tool: request.tool, model: request.model, state: 'reserved',
      reservedTokens: request.tokens, holdUntil: now + request.holdSeconds * 1000, key: reservation.key, inputTokens: 0, outputTokens: 0, estimated: false,
    });
    return { ok: true, reservation, ...day };
  }

  async settleUsage(caller: Identity, reservation: UsageReservation, counts: UsageCounts): Promise<boolean> {
    checkTokens('input tokens', counts.inputTokens);
    checkTokens('output tokens', counts.outputTokens);
    const row = this.usage.get(reservation.id);
    if (!row || row.user_id !== caller.userId || row.state !== 'reserved' || row.key !== reservation.key) return false;
    Object.assign(row, { state: 'settled', inputTokens: counts.inputTokens, outputTokens: counts.outputTokens, estimated: counts.estimated });
    return true;
  }

  async usageSummary(caller: Identity): Promise<UsageRow[]> {
    const now = this.now();
    const today = utcDay(now);
    const month = today.slice(0, 7);
    const byKey = new Map<string, UsageRow>();
    for (const r of this.usage.values()) {
      if (r.user_id !== caller.userId || !r.day.startsWith(month)) continue;
      for (const period of r.day === today ? (['today', 'month'] as const) : (['month'] as const)) {
        const key = `${period}\u0000${r.model}`;
        const row = byKey.get(key) ?? { period, model: r.model, calls: 0, inputTokens: 0, outputTokens: 0, heldCalls: 0, heldTokens: 0 };
        if (r.state === 'settled') {
          row.calls++;
          row.inputTokens += r.inputTokens;
          row.outputTokens += r.outputTokens;
        } else if (period === 'today' && r.holdUntil > now) {
          row.heldCalls++;
          row.heldTokens += r.reservedTokens;
        }
        byKey.set(key, row);
      }
    }
    return [...byKey.values()]
      .filter((r) => r.calls > 0 || r.heldCalls > 0)
      .sort((a, b) => (a.period === b.period ? a.model.localeCompare(b.model) : a.period === 'today' ? -1 : 1));
  }

  private ownThread(caller: Identity, threadId: string): MemoryThread {
    const thread = this.threads.get(threadId);
    if (!thread || thread.user_id !== caller.userId) throw new ThreadNotFound(threadId);
    return thread;
  }

  private own(caller: Identity): MemoryRow[] {
    return [...this.rows.values()].filter((r) => r.user_id === caller.userId);
  }

  private forgetOldEndedRows(caller: Identity): void {
    const ended = this.own(caller).filter((r) => r.connection_status !== 'connected');
    for (const row of ended.slice(0, Math.max(0, ended.length - ENDED_ROWS_KEPT_PER_USER))) this.rows.delete(row.session_id);
  }
}

function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function firstOfPreviousMonth(day: string): string {
  const d = new Date(`${day.slice(0, 7)}-01T00:00:00Z`);
  d.setUTCMonth(d.getUTCMonth() - 1);
  return d.toISOString().slice(0, 10);
}

function checkLength(what: string, value: string, max: number): void {
  if (typeof value !== 'string' || value.length < 1 || value.length > max) throw new Error(`usage: ${what} must be 1-${max} characters`);
}

function checkTokens(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > USAGE_MAX_TOKENS_PER_CALL) throw new Error(`usage: ${what} must be 0-${USAGE_MAX_TOKENS_PER_CALL}`);
}
