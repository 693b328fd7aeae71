// Local mode's store: one daemon per state directory and one OS user, so the rows live in this
// process. It follows the same rules as the SQL functions of supabase/migrations/ (limit counts live
// rows, own rows only, only the daemon's metadata keys kept, 50 ended rows kept per user; threads:
// own threads only, last-N messages oldest first, the same retention bounds as mcp_thread_create /
// mcp_thread_append: the oldest threads and the oldest messages of a long thread are dropped).
import { randomUUID } from 'node:crypto';
import type { Identity } from '../auth/identity';
import {
  ThreadNotFound,
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

interface MemoryRow extends SessionRow {
  user_id: string;
}

export class MemorySessionStore implements SessionStore, ThreadStore {
  private readonly rows = new Map<string, MemoryRow>();
  /** Insertion order = creation order. */
  private readonly threads = new Map<string, MemoryThread>();
  private nextMessageId = 1;

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
