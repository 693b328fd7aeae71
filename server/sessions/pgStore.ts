// SessionStore on a direct Postgres connection. The daemon's own role connects; each user-scoped
// call then runs as `authenticated` with the user's JWT claims, as PostgREST would, so the RLS
// policies and the SQL functions in supabase/migrations/ decide what the user may do.
import { Pool, escapeLiteral, type PoolClient, type QueryResult, type QueryResultRow } from 'pg';
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

export interface PgSessionStoreOptions {
  connectionString: string;
  max?: number;
}

export class PgSessionStore implements SessionStore, ThreadStore, UsageStore {
  private readonly pool: Pool;
  /** Clients whose connection failed: released with an error, so the pool closes them. */
  private readonly broken = new WeakSet<PoolClient>();
  private ended = false;

  constructor(options: PgSessionStoreOptions) {
    this.pool = new Pool({
      connectionString: options.connectionString,
      max: options.max ?? 10,
      application_name: 'exai-daemon',
      // Fail (and retry later) instead of hanging when the database host does not answer.
      connectionTimeoutMillis: 10_000,
    });
    // When PostgreSQL restarts or stops, every backend is terminated (57P01) and each client's socket
    // closes. pg then emits 'error' on the client, and an 'error' event nobody listens to kills the
    // process. pg-pool listens only while a client is idle (and re-emits on the pool); a client that
    // is checked out has no listener. So every client gets one for its whole life: it marks the
    // client broken (asUser then drops it instead of reusing it); the query in flight, if any,
    // rejects by itself and becomes StoreUnavailable.
    this.pool.on('connect', (client) => {
      client.on('error', () => this.broken.add(client));
    });
    // The pool's re-emit of an idle client's error: the client is already removed; the next query
    // opens a new connection (or fails with StoreUnavailable while the database is down).
    this.pool.on('error', () => {});
  }

  async recoverAbandoned(daemonId: string): Promise<number> {
    // As the pool's own role (owner/superuser), not as a user: these rows belong to many users.
    try {
      const { rows } = await this.pool.query<{ n: number }>(
        'select public.mcp_disconnect_daemon_sessions($1) as n',
        [daemonId],
      );
      return rows[0].n;
    } catch (err) {
      throw toStoreError(err);
    }
  }

  async claim(caller: Identity, sessionId: string, maxPerUser: number, metadata: SessionMetadata): Promise<ClaimResult> {
    const [row] = await this.asUser<{ claimed: boolean; active: number }>(caller,
      sql`select claimed, active from public.mcp_claim_session(${sessionId}, ${maxPerUser}, ${JSON.stringify(metadata)}::jsonb)`);
    return row.claimed ? { ok: true } : { ok: false, active: row.active };
  }

  async touch(caller: Identity, sessionId: string): Promise<boolean> {
    const [row] = await this.asUser<{ touched: boolean }>(caller, sql`select public.mcp_touch_session(${sessionId}) as touched`);
    return row.touched;
  }

  async close(caller: Identity, sessionId: string, status: 'disconnected' | 'expired'): Promise<void> {
    await this.asUser(caller, sql`select public.mcp_close_session(${sessionId}, ${status})`);
  }

  async listOwn(caller: Identity): Promise<SessionRow[]> {
    const rows = await this.asUser<{
      session_id: string;
      created_at: Date;
      last_active: Date;
      connection_status: StoredStatus | 'stale';
      metadata: Record<string, unknown>;
    }>(caller, sql`select session_id, created_at, last_active, connection_status, metadata from public.mcp_list_sessions()`);
    return rows.map((r) => ({
      session_id: r.session_id,
      created_at: r.created_at.toISOString(),
      last_active: r.last_active.toISOString(),
      connection_status: r.connection_status,
      metadata: r.metadata,
    }));
  }

  // ---------------------------------------------------------------- threads (mcp_thread_* functions)

  async createThread(caller: Identity, title: string | null): Promise<string> {
    const [row] = await this.asUser<{ id: string }>(caller, sql`select public.mcp_thread_create(${title}) as id`);
    return row.id;
  }

  async appendMessage(caller: Identity, threadId: string, role: ThreadRole, content: string): Promise<number> {
    if (!isUuid(threadId)) throw new ThreadNotFound(threadId);
    const [row] = await this.asUser<{ id: string }>(caller, sql`select public.mcp_thread_append(${threadId}, ${role}, ${content}) as id`)
      .catch((err) => { throw threadError(err, threadId); });
    return Number(row.id);
  }

  async threadMessages(caller: Identity, threadId: string, limit: number): Promise<ThreadMessage[]> {
    if (!isUuid(threadId)) throw new ThreadNotFound(threadId);
    const rows = await this.asUser<{ id: string; role: ThreadRole; content: string; created_at: Date }>(caller,
      sql`select id, role, content, created_at from public.mcp_thread_messages(${threadId}, ${limit})`)
      .catch((err) => { throw threadError(err, threadId); });
    return rows.map((r) => ({ id: Number(r.id), role: r.role, content: r.content, created_at: r.created_at.toISOString() }));
  }

  async listThreads(caller: Identity): Promise<ThreadSummary[]> {
    const rows = await this.asUser<{ id: string; title: string | null; created_at: Date; updated_at: Date; message_count: number }>(caller,
      sql`select id, title, created_at, updated_at, message_count from public.mcp_thread_list()`);
    return rows.map((r) => ({
      id: r.id,
      title: r.title,
      created_at: r.created_at.toISOString(),
      updated_at: r.updated_at.toISOString(),
      message_count: r.message_count,
    }));
  }

  // ---------------------------------------------------------------- usage (mcp_usage_* functions)

  async reserveUsage(caller: Identity, request: UsageReservationRequest): Promise<ReserveOutcome> {
    const key = newSettleKey();
    const [row] = await this.asUser<{ reservation_id: string | null; refused: 'budget' | 'calls' | null; used_tokens: string; held_tokens: string; held_calls: number; resets_at: Date }>(caller,
      sql`select reservation_id, refused, used_tokens, held_tokens, held_calls, resets_at from public.mcp_usage_reserve(${request.tool}::text, ${request.model}::text, ${request.tokens}::bigint, ${request.dailyLimit}::bigint, ${request.holdSeconds}::int, ${key}::text)`);
    // bigint arrives as a string; the SQL bounds keep every value far below 2^53.
    const day = { usedTokens: Number(row.used_tokens), heldTokens: Number(row.held_tokens), heldCalls: row.held_calls, resetsAt: row.resets_at.toISOString() };
    if (row.reservation_id === null) return { ok: false, refused: row.refused ?? 'budget', ...day };
    return { ok: true, reservation: { id: Number(row.reservation_id), key }, ...day };
  }

  async settleUsage(caller: Identity, reservation: UsageReservation, counts: UsageCounts): Promise<boolean> {
    const [row] = await this.asUser<{ settled: boolean }>(caller,
      sql`select public.mcp_usage_settle(${reservation.id}::bigint, ${reservation.key}::text, ${counts.inputTokens}::bigint, ${counts.outputTokens}::bigint, ${counts.estimated ? 'true' : 'false'}::boolean) as settled`);
    return row.settled;
  }

  async usageSummary(caller: Identity): Promise<UsageRow[]> {
    const rows = await this.asUser<{ period: 'today' | 'month'; model: string; calls: number; input_tokens: string; output_tokens: string; held_calls: number; held_tokens: string }>(caller,
      sql`select period, model, calls, input_tokens, output_tokens, held_calls, held_tokens from public.mcp_usage_summary()`);
    return rows.map((r) => ({
      period: r.period, model: r.model, calls: r.calls, inputTokens: Number(r.input_tokens), outputTokens: Number(r.output_tokens),
      heldCalls: r.held_calls, heldTokens: Number(r.held_tokens),
    }));
  }

  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.pool.end();
  }

  /**
   * Runs `statement` in one transaction as role `authenticated` with the caller's JWT claims
   * (PostgREST-style), and returns its rows. One round trip: the transaction, the role, the claims,
   * the statement and the commit go to the server as one simple-query message (the values in it
   * escaped by sql`...`), which PostgreSQL runs in order and stops at the first error.
   */
  private async asUser<Row extends QueryResultRow>(caller: Identity, statement: Sql): Promise<Row[]> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw toStoreError(err);
    }
    let releaseError: Error | undefined;
    try {
      // `local`: the role and the claims end with the transaction, so a pooled connection never keeps them.
      // READ COMMITTED even if the server default differs: mcp_claim_session counts after its lock and
      // must see the rows committed by the previous lock holder.
      const results = (await client.query(
        'begin isolation level read committed; set local role authenticated; ' +
        `${sql`select set_config('request.jwt.claims', ${JSON.stringify(caller.claims)}, true)`.text}; ${statement.text}; commit`,
      )) as unknown as QueryResult<Row>[];
      return results[STATEMENT_RESULT].rows;
    } catch (err) {
      // An error leaves the transaction open (aborted); a rollback that fails means the connection is unusable.
      if (!this.broken.has(client)) {
        await client.query('rollback').catch((rollbackError: Error) => { releaseError = rollbackError; });
      }
      throw toStoreError(err);
    } finally {
      // Released with an error, the client is closed instead of handed to the next caller.
      client.release(releaseError ?? (this.broken.has(client) ? new Error('the connection failed') : undefined));
    }
  }
}

/** asUser's message: begin; set local role; set_config(claims); the statement; commit. */
const STATEMENT_RESULT = 3;

/** One SQL statement whose values are already escaped literals (built only by sql`...`). */
interface Sql {
  readonly text: string;
}

/**
 * A statement with its values inlined as SQL literals, for a simple-query message (which takes no
 * bind parameters). Strings go through pg's escapeLiteral; numbers must be finite; null is NULL.
 * Anything else is refused, so no value can ever reach the text unescaped.
 */
export function sql(parts: TemplateStringsArray, ...values: Array<string | number | null>): Sql {
  let text = parts[0];
  values.forEach((value, i) => {
    text += literal(value) + parts[i + 1];
  });
  return { text };
}

function literal(value: unknown): string {
  if (value === null) return 'NULL';
  // A NUL would end the message's query text early; PostgreSQL text cannot hold one anyway (22021).
  if (typeof value === 'string') {
    if (value.includes('\0')) throw new TypeError('PostgreSQL text cannot contain a NUL character (\\u0000); remove it and try again.');
    return escapeLiteral(value);
  }
  // Parenthesized, so a negative number never forms a `--` comment with a minus before it.
  if (typeof value === 'number' && Number.isFinite(value)) return `(${value})`;
  throw new TypeError(`sql: cannot inline a ${typeof value} value`);
}

/** 'thread not found' (P0002, raised by the mcp_thread_* functions) -> ThreadNotFound. */
function threadError(err: unknown, threadId: string): unknown {
  return (err as { code?: unknown } | null)?.code === 'P0002' ? new ThreadNotFound(threadId) : err;
}

// SQLSTATEs meaning "the server is not available to us right now" (the rest are real query errors):
// admin_shutdown (restart or stop), crash_shutdown, cannot_connect_now (starting up or shutting down).
const GOING_AWAY_SQLSTATES = new Set(['57P01', '57P02', '57P03']);
// too_many_connections, insufficient_resources.
const OVERLOADED_SQLSTATES = new Set(['53300', '53400']);
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
]);
// Errors pg and pg-pool raise without a code when the socket closes, a connect times out, or a
// client whose connection already failed is asked for another query (node_modules/pg/lib/client.js).
const LOST_CONNECTION = /^(Connection terminated|timeout exceeded when trying to connect|timeout expired|Client has encountered a connection error)/;
const WILL_RETRY = 'the daemon reconnects by itself once it is back. Try again in a moment.';

/** Maps connection/backend failures to StoreUnavailable; other errors pass through unchanged. */
function toStoreError(err: unknown): unknown {
  if (err instanceof StoreUnavailable || !(err instanceof Error)) return err;
  const raw = (err as Error & { code?: unknown }).code;
  const code = typeof raw === 'string' ? raw : '';
  // Only the code goes into the message: pg's own messages may name the host, user or database.
  if (GOING_AWAY_SQLSTATES.has(code)) {
    return new StoreUnavailable(`The session database is restarting or shutting down (${code}); ${WILL_RETRY}`, err);
  }
  if (OVERLOADED_SQLSTATES.has(code)) {
    return new StoreUnavailable(`The session database has no room for another connection (${code}); ${WILL_RETRY}`, err);
  }
  if (NETWORK_CODES.has(code) || code.startsWith('08')) {
    return new StoreUnavailable(`The session database is unreachable (${code}); ${WILL_RETRY}`, err);
  }
  if (code.startsWith('28') || code === '3D000') {
    return new StoreUnavailable(
      `The session database refused the daemon's connection (${code}); ask the daemon's operator to check its database settings.`,
      err,
    );
  }
  if (LOST_CONNECTION.test(err.message)) {
    return new StoreUnavailable(`The session database is unreachable (connection lost or timed out); ${WILL_RETRY}`, err);
  }
  return err;
}
