// The session store: one row per connection in `mcp_sessions`. Two backends implement it
// (pgStore: direct Postgres; dataApiStore: Supabase Data API with the user's own JWT) and local
// mode has an in-memory one. The business rules (per-user limit, liveness, ownership, bounds) live in
// SQL functions in supabase/migrations/, so every backend calls the same rules; users cannot write the
// tables except through those functions (20261201000000_writes_through_functions.sql).
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
