// SessionStore on the Supabase Data API (PostgREST), for a daemon on a user's machine: no database
// password and no service key, only the project's public anon key plus each connection's own access
// token. Every call is `POST <SUPABASE_URL>/rest/v1/rpc/<fn>` with `apikey: <anon key>` (the gateway
// wants it) and `Authorization: Bearer <the caller's access token>`, so PostgREST runs the SQL
// function as role `authenticated` with that user's claims and Supabase enforces RLS itself.
//
// The business rules (per-user limit, liveness, ownership) are in the SQL functions of
// supabase/migrations/; this file only calls them and translates HTTP failures into StoreUnavailable.
// The token is taken from the Identity of each call (connection.ts passes the current one, so a
// token renewed in-band is used from the next call on). It never goes into a message or a log.
//
// While the Data API cannot be reached every call rejects with StoreUnavailable ("unreachable"):
// hellos are refused with 1013, tools answer store_unavailable, and final statuses wait in the
// daemon's queue (pendingEndings.ts, created with needsLiveToken for this store). Each ending is
// written with its user's own token, so one whose token expires before the API is back can never
// be written: it is dropped, not retried, and its row reads `stale` after the liveness bound
// (mcp_session_stale_after()), as the rows of a killed daemon do.
import type { Identity } from '../auth/identity';
import {
  StoreUnavailable,
  ThreadNotFound,
  isUuid,
  type ClaimResult,
  type SessionMetadata,
  type SessionRow,
  type SessionStore,
  type StoredStatus,
  type ThreadMessage,
  type ThreadRole,
  type ThreadStore,
  type ThreadSummary,
  type ReserveOutcome,
  type UsageCounts,
  type UsageReservation,
  type UsageReservationRequest,
  type UsageRow,
  type UsageStore,
  newSettleKey,
} from './store';

export interface DataApiSessionStoreOptions {
  /** The project URL, e.g. https://<ref>.supabase.co (the Data API is under /rest/v1). */
  supabaseUrl: string;
  /** The project's public anon (or sb_publishable_) key; never the service_role key. */
  anonKey: string;
  /** Bound on each request, connect to last byte. Default 10 s. */
  timeoutMs?: number;
  /** For tests. */
  fetch?: typeof fetch;
  /** Sent as X-Client-Info. */
  clientInfo?: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** A PostgREST error body: https://postgrest.org/en/stable/references/errors.html */
interface PostgrestError {
  code?: unknown;
  message?: unknown;
  details?: unknown;
  hint?: unknown;
}

export class DataApiSessionStore implements SessionStore, ThreadStore, UsageStore {
  private readonly restUrl: string;
  private readonly host: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly clientInfo: string;

  constructor(private readonly options: DataApiSessionStoreOptions) {
    const base = options.supabaseUrl.trim().replace(/\/+$/, '');
    this.restUrl = `${base}/rest/v1`;
    this.host = new URL(base).host;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.fetchImpl = options.fetch ?? fetch;
    this.clientInfo = options.clientInfo ?? 'exai-daemon';
  }

  /**
   * Always 0 here. mcp_disconnect_daemon_sessions ends rows of MANY users, so it can only run with
   * the database owner's role (pgStore), never as one user through the Data API, and this daemon
   * holds no key that could. Nothing is lost: liveness is derived, not stored. A row whose daemon
   * was killed stops being refreshed and reads `stale` after mcp_session_stale_after() (45 s), and
   * from then on it no longer counts toward the per-user limit (see supabase/migrations/).
   */
  async recoverAbandoned(_daemonId: string): Promise<number> {
    return 0;
  }

  async claim(caller: Identity, sessionId: string, maxPerUser: number, metadata: SessionMetadata): Promise<ClaimResult> {
    const body = await this.rpc(caller, 'mcp_claim_session', {
      p_session_id: sessionId,
      p_max_per_user: maxPerUser,
      p_metadata: metadata,
    });
    // `returns table (claimed, active)`: a set, so PostgREST answers a JSON array of row objects.
    const row = Array.isArray(body) ? body[0] : undefined;
    if (!isObject(row) || typeof row.claimed !== 'boolean' || typeof row.active !== 'number') throw this.unexpected('mcp_claim_session');
    return row.claimed ? { ok: true } : { ok: false, active: row.active };
  }

  async touch(caller: Identity, sessionId: string): Promise<boolean> {
    const body = await this.rpc(caller, 'mcp_touch_session', { p_session_id: sessionId });
    if (typeof body !== 'boolean') throw this.unexpected('mcp_touch_session');
    return body;
  }

  async close(caller: Identity, sessionId: string, status: 'disconnected' | 'expired'): Promise<void> {
    const body = await this.rpc(caller, 'mcp_close_session', { p_session_id: sessionId, p_status: status });
    if (typeof body !== 'boolean') throw this.unexpected('mcp_close_session');
  }

  async listOwn(caller: Identity): Promise<SessionRow[]> {
    const body = await this.rpc(caller, 'mcp_list_sessions', {});
    if (!Array.isArray(body)) throw this.unexpected('mcp_list_sessions');
    return body.map((r) => {
      if (!isObject(r) || typeof r.session_id !== 'string') throw this.unexpected('mcp_list_sessions');
      return {
        session_id: r.session_id,
        // PostgREST renders timestamptz as Postgres' JSON does (`2026-11-24T10:00:00.123456+00:00`);
        // the store interface promises ISO strings as Date#toISOString writes them.
        created_at: isoTime(r.created_at, () => this.unexpected('mcp_list_sessions')),
        last_active: isoTime(r.last_active, () => this.unexpected('mcp_list_sessions')),
        connection_status: r.connection_status as StoredStatus | 'stale',
        metadata: isObject(r.metadata) ? r.metadata : {},
      };
    });
  }

  // ---------------------------------------------------------------- threads (mcp_thread_* functions)

  async createThread(caller: Identity, title: string | null): Promise<string> {
    const body = await this.rpc(caller, 'mcp_thread_create', { p_title: title });
    if (typeof body !== 'string' || !isUuid(body)) throw this.unexpected('mcp_thread_create');
    return body;
  }

  async appendMessage(caller: Identity, threadId: string, role: ThreadRole, content: string): Promise<number> {
    if (!isUuid(threadId)) throw new ThreadNotFound(threadId);
    const body = await this.rpc(caller, 'mcp_thread_append', { p_thread_id: threadId, p_role: role, p_content: content }, threadId);
    if (typeof body !== 'number') throw this.unexpected('mcp_thread_append');
    return body;
  }

  async threadMessages(caller: Identity, threadId: string, limit: number): Promise<ThreadMessage[]> {
    if (!isUuid(threadId)) throw new ThreadNotFound(threadId);
    const body = await this.rpc(caller, 'mcp_thread_messages', { p_thread_id: threadId, p_limit: limit }, threadId);
    if (!Array.isArray(body)) throw this.unexpected('mcp_thread_messages');
    return body.map((r) => {
      if (!isObject(r) || typeof r.id !== 'number' || typeof r.content !== 'string' || !['system', 'user', 'assistant'].includes(r.role)) {
        throw this.unexpected('mcp_thread_messages');
      }
      return { id: r.id, role: r.role as ThreadRole, content: r.content, created_at: isoTime(r.created_at, () => this.unexpected('mcp_thread_messages')) };
    });
  }

  async listThreads(caller: Identity): Promise<ThreadSummary[]> {
    const body = await this.rpc(caller, 'mcp_thread_list', {});
    if (!Array.isArray(body)) throw this.unexpected('mcp_thread_list');
    return body.map((r) => {
      if (!isObject(r) || typeof r.id !== 'string') throw this.unexpected('mcp_thread_list');
      return {
        id: r.id,
        title: typeof r.title === 'string' ? r.title : null,
        created_at: isoTime(r.created_at, () => this.unexpected('mcp_thread_list')),
        updated_at: isoTime(r.updated_at, () => this.unexpected('mcp_thread_list')),
        message_count: typeof r.message_count === 'number' ? r.message_count : 0,
      };
    });
  }

  // ---------------------------------------------------------------- usage (mcp_usage_* functions)

  async reserveUsage(caller: Identity, request: UsageReservationRequest): Promise<ReserveOutcome> {
    const key = newSettleKey();
    const body = await this.rpc(caller, 'mcp_usage_reserve', {
      p_tool: request.tool, p_model: request.model, p_tokens: request.tokens, p_daily_limit: request.dailyLimit,
      p_hold_seconds: request.holdSeconds, p_settle_key: key,
    });
    const row = Array.isArray(body) ? body[0] : undefined;
    if (!isObject(row) || typeof row.used_tokens !== 'number' || typeof row.held_tokens !== 'number' || typeof row.held_calls !== 'number') {
      throw this.unexpected('mcp_usage_reserve');
    }
    const day = {
      usedTokens: row.used_tokens, heldTokens: row.held_tokens, heldCalls: row.held_calls,
      resetsAt: isoTime(row.resets_at, () => this.unexpected('mcp_usage_reserve')),
    };
    if (typeof row.reservation_id !== 'number') return { ok: false, refused: row.refused === 'calls' ? 'calls' : 'budget', ...day };
    return { ok: true, reservation: { id: row.reservation_id, key }, ...day };
  }

  async settleUsage(caller: Identity, reservation: UsageReservation, counts: UsageCounts): Promise<boolean> {
    const body = await this.rpc(caller, 'mcp_usage_settle', {
      p_reservation_id: reservation.id, p_settle_key: reservation.key,
      p_input_tokens: counts.inputTokens, p_output_tokens: counts.outputTokens, p_estimated: counts.estimated,
    });
    if (typeof body !== 'boolean') throw this.unexpected('mcp_usage_settle');
    return body;
  }

  async usageSummary(caller: Identity): Promise<UsageRow[]> {
    const body = await this.rpc(caller, 'mcp_usage_summary', {});
    if (!Array.isArray(body)) throw this.unexpected('mcp_usage_summary');
    return body.map((r) => {
      if (!isObject(r) || (r.period !== 'today' && r.period !== 'month') || typeof r.model !== 'string') throw this.unexpected('mcp_usage_summary');
      const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
      return {
        period: r.period, model: r.model, calls: n(r.calls), inputTokens: n(r.input_tokens), outputTokens: n(r.output_tokens),
        heldCalls: n(r.held_calls), heldTokens: n(r.held_tokens),
      };
    });
  }

  async end(): Promise<void> {
    // Nothing to release: each call is one HTTP request (fetch's keep-alive sockets are unref'd).
  }

  /**
   * One PostgREST RPC as the caller. Resolves with the parsed JSON body. With `threadId`, the
   * functions' 'thread not found' (SQLSTATE P0002, whatever HTTP status carries it) is ThreadNotFound.
   */
  private async rpc(caller: Identity, fn: string, args: Record<string, unknown>, threadId?: string): Promise<unknown> {
    let res: Response;
    let text: string;
    try {
      res = await this.fetchImpl(`${this.restUrl}/rpc/${fn}`, {
        method: 'POST',
        headers: {
          apikey: this.options.anonKey,
          Authorization: `Bearer ${caller.accessToken}`,
          'Content-Type': 'application/json',
          Accept: 'application/json',
          'X-Client-Info': this.clientInfo,
        },
        body: JSON.stringify(args),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      throw this.unreachable(networkReason(err, this.timeoutMs), err);
    }
    let body: unknown;
    try {
      body = text === '' ? null : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.ok) {
      if (body === undefined) throw this.unexpected(fn);
      return body;
    }
    if (threadId !== undefined && isObject(body) && body.code === 'P0002') throw new ThreadNotFound(threadId);
    throw this.httpError(fn, res.status, isObject(body) ? (body as PostgrestError) : {});
  }

  /** Maps a PostgREST / gateway refusal to one sentence a user can act on. */
  private httpError(fn: string, status: number, body: PostgrestError): StoreUnavailable {
    const code = typeof body.code === 'string' ? body.code : '';
    const message = typeof body.message === 'string' ? body.message : '';
    const cause = { status, code, fn };
    // PostgREST's JWT errors (src/PostgREST/Error.hs): PGRST301 undecodable/bad signature,
    // PGRST302 token required, PGRST303 claims (expired, not yet valid, audience).
    if (/^PGRST30[123]$/.test(code)) return this.tokenRefused(cause);
    // SQLSTATE 42501 insufficient_privilege: PostgREST answers 403 for a signed-in role, 401 for anon.
    if (code === '42501') return this.rlsRefused(cause);
    if (code === 'PGRST202' || (status === 404 && code === '42883')) {
      const what = fn.startsWith('mcp_thread') ? 'mcp_threads' : fn.startsWith('mcp_usage') ? 'mcp_usage' : 'mcp_sessions';
      return new StoreUnavailable(`The ${what} functions are missing on the Supabase project; apply supabase/migrations (supabase db push).`, cause);
    }
    if (status === 401 && !code && /api ?key/i.test(message)) {
      // The gateway (not PostgREST) refused the apikey header.
      return new StoreUnavailable(
        `The Supabase gateway at ${this.host} refused the daemon's API key; set SUPABASE_ANON_KEY to this project's anon (publishable) key.`,
        cause,
      );
    }
    if (status === 401) return this.tokenRefused(cause);
    if (status === 403) return this.rlsRefused(cause);
    if (status >= 500 || status === 429 || status === 408) return this.unreachable(`HTTP ${status}`, cause);
    if (status === 404) {
      return new StoreUnavailable(
        `The Supabase Data API at ${this.host} has no /rest/v1/rpc/${fn} (HTTP 404); check that SUPABASE_URL is the project URL.`,
        cause,
      );
    }
    return new StoreUnavailable(
      `Supabase rejected the ${fn} call (HTTP ${status}${code ? `, ${code}` : ''}); the daemon and the migrations in supabase/migrations may be out of step.`,
      cause,
    );
  }

  private tokenRefused(cause: unknown): StoreUnavailable {
    return new StoreUnavailable("Supabase refused this session's token (expired or revoked); refresh and reconnect.", cause);
  }

  private rlsRefused(cause: unknown): StoreUnavailable {
    return new StoreUnavailable(
      'Supabase refused the request (row-level security); sign in again, and check that supabase/migrations are applied unchanged.',
      cause,
    );
  }

  private unreachable(reason: string, cause: unknown): StoreUnavailable {
    return new StoreUnavailable(`The Supabase Data API at ${this.host} is unreachable (${reason}); the daemon will retry. Try again shortly.`, cause);
  }

  private unexpected(fn: string): StoreUnavailable {
    return new StoreUnavailable(
      `The Supabase Data API at ${this.host} answered ${fn} with something unexpected; check that SUPABASE_URL is the project URL and supabase/migrations are applied.`,
    );
  }
}

/** Why fetch failed, without anything from the request (the headers hold the token). */
function networkReason(err: unknown, timeoutMs: number): string {
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return `no answer within ${Math.round(timeoutMs / 100) / 10} s`;
  // undici: TypeError('fetch failed') with the socket error as `cause` (code ECONNREFUSED, ENOTFOUND, …).
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z_]+$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return 'connection failed';
}

function isoTime(value: unknown, fail: () => Error): string {
  const t = typeof value === 'string' ? Date.parse(value) : NaN;
  if (Number.isNaN(t)) throw fail();
  return new Date(t).toISOString();
}

function isObject(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
