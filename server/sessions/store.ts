// The session store: one row per connection in `mcp_sessions`. Two backends implement it
// (pgStore: direct Postgres; dataApiStore: Supabase Data API with the user's own JWT) and local
// mode has an in-memory one. The business rules (per-user limit, liveness, ownership) live in SQL
// functions in supabase/migrations/, so every backend calls the same rules.
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
  [key: string]: unknown;
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
