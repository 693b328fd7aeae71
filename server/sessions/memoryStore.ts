// Local mode's store: one daemon per state directory and one OS user, so the rows live in this
// process. It follows the same rules as the SQL functions (limit counts live rows, own rows only).
import type { Identity } from '../auth/identity';
import type { ClaimResult, SessionMetadata, SessionRow, SessionStore } from './store';

const ENDED_ROWS_KEPT_PER_USER = 50;

interface MemoryRow extends SessionRow {
  user_id: string;
}

export class MemorySessionStore implements SessionStore {
  private readonly rows = new Map<string, MemoryRow>();

  async recoverAbandoned(): Promise<number> {
    return 0; // nothing outlives the process
  }

  async claim(caller: Identity, sessionId: string, maxPerUser: number, metadata: SessionMetadata): Promise<ClaimResult> {
    const active = this.own(caller).filter((r) => r.connection_status === 'connected').length;
    if (active >= maxPerUser) return { ok: false, active };
    const now = new Date().toISOString();
    this.rows.set(sessionId, { user_id: caller.userId, session_id: sessionId, created_at: now, last_active: now, connection_status: 'connected', metadata: { ...metadata } });
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

  private own(caller: Identity): MemoryRow[] {
    return [...this.rows.values()].filter((r) => r.user_id === caller.userId);
  }

  private forgetOldEndedRows(caller: Identity): void {
    const ended = this.own(caller).filter((r) => r.connection_status !== 'connected');
    for (const row of ended.slice(0, Math.max(0, ended.length - ENDED_ROWS_KEPT_PER_USER))) this.rows.delete(row.session_id);
  }
}
