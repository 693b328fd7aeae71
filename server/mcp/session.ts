// One MCP session on /mcp: the SDK's Streamable HTTP transport and an McpServer for it, the user it
// belongs to, its calls in flight and its session lease (row, heartbeat, idle, expiry, final status:
// sessions/lease.ts, the one implementation shared with WebSocket connections; this module says what
// each rule does to an MCP session). The endpoint (endpoint.ts) has already checked the request's
// token and that it is this session's user.
//
//   open ──► ending (the token expired: the calls in flight finish; new requests get 404, those of
//            its own client once the calls have finished) ──► closed
//   open ──────────────────────────────────────────────────────────────────────────► closed
//        (DELETE, idle, the row ended elsewhere, shutdown)
import crypto from 'node:crypto';
import type http from 'node:http';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isJSONRPCRequest, type JSONRPCMessage, type RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { Identity } from '../auth/identity';
import type { Logger } from '../log';
import { ErrorCode } from '../protocol';
import { EXPIRING_NOTICE_SEC, type FinalStatus, type SessionLease } from '../sessions/lease';
import type { SessionStore } from '../sessions/store';
import type { ToolOutcome, ToolRegistry } from '../tools/registry';
import { createMcpServer, type McpToolCall } from './server';

/** The abort reason of calls cancelled because the daemon shuts down. */
const SHUTDOWN = 'daemon shutting down';
/** After the drain bound: how long cancelled calls get to deliver their result before the session closes. */
const CANCEL_GRACE_MS = 1000;

export interface McpSessionDeps {
  tools: ToolRegistry;
  store: SessionStore;
  mode: 'local' | 'supabase';
  /** Calls in flight at once on one session. */
  maxInflight: number;
  /** Already tagged with the session id. */
  log: Logger;
}

interface RunningCall {
  controller: AbortController;
  result: Promise<ToolOutcome>;
}

export class McpSession {
  state: 'open' | 'ending' | 'closed' = 'open';
  readonly transport: StreamableHTTPServerTransport;
  private readonly server: McpServer;
  private readonly calls = new Set<RunningCall>();
  /** The daemon is shutting down: no new calls. */
  private draining = false;
  private closing: Promise<void> | null = null;
  /** The token expires soon: told on the server stream, and again when the client opens a new one. */
  private expiringNotice: string | null = null;
  /** Requests of its own client waiting for the calls of this expired session before their 404 (endpoint.ts); bounded like calls. */
  waitingRequests = 0;
  private markClosed!: () => void;
  /** Resolves once the session has closed (the endpoint forgets it at that moment). */
  readonly closed = new Promise<void>((resolve) => (this.markClosed = resolve));

  private constructor(
    readonly lease: SessionLease,
    private readonly deps: McpSessionDeps,
    private readonly onClosed: (session: McpSession) => void,
  ) {
    this.transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => lease.sessionId,
      // DELETE: the answer waits for the row's final status, so a client that saw 200 finds the row ended.
      onsessionclosed: () => this.close('disconnected', 'the client ended the session (DELETE)'),
    });
    // Set before connect(): the SDK chains its own handler after ours.
    this.transport.onclose = () => void this.close('disconnected', 'transport closed');
    // Client mistakes (bad Accept, unknown protocol version, ...) are answered to the client; no need to log them loudly.
    this.transport.onerror = (err) => this.deps.log.debug('mcp transport', { error: err.message.slice(0, 200) });
    this.server = createMcpServer(deps.tools, (call) => this.run(call));
  }

  /** A session for a claimed lease, connected to its transport, its lease rules running. */
  static async open(lease: SessionLease, deps: McpSessionDeps, onClosed: (session: McpSession) => void): Promise<McpSession> {
    const session = new McpSession(lease, deps, onClosed);
    await session.server.connect(session.transport);
    lease.start({
      inflight: () => session.calls.size,
      expiring: (exp) => {
        session.expiringNotice = `Your sign-in expires at ${new Date(exp * 1000).toISOString()}. Send the next request with a refreshed access token to keep this MCP session; otherwise it ends then and the next request gets 404 (initialize again with a fresh token).`;
        session.notify('warning', session.expiringNotice);
      },
      expired: () => void session.endAfterCalls(),
      idle: (idleSeconds) => {
        deps.log.info('idle timeout', { idle_s: idleSeconds });
        void session.close('expired', 'idle timeout');
      },
      endedElsewhere: () => void session.close('disconnected', 'the session row was ended outside this daemon'),
    });
    return session;
  }

  get id(): string {
    return this.lease.sessionId;
  }

  get userId(): string {
    return this.lease.identity.userId;
  }

  /** The transport took an initialize request (a session whose initialize failed is closed at once). */
  get initialized(): boolean {
    return this.transport.sessionId !== undefined;
  }

  get inflightCount(): number {
    return this.calls.size;
  }

  /** Requests are served: open, and its token has not expired (the expiry hook may be a moment late). */
  get live(): boolean {
    return this.state === 'open' && !this.lease.expiredNow();
  }

  /**
   * Its token expired while calls run: they finish first, then it closes. (A request of its own client
   * meanwhile waits for that before its 404: VS Code answers a 404 by cancelling every call of the session.)
   */
  get finishingCalls(): boolean {
    return this.state !== 'closed' && !this.live && this.calls.size > 0;
  }

  /** The bearer this session holds now: a request from the session's own client, even once that token has expired. */
  holdsBearer(token: string | null): boolean {
    if (token === null) return false;
    const digest = (t: string) => crypto.createHash('sha256').update(t).digest();
    return crypto.timingSafeEqual(digest(token), digest(this.lease.identity.accessToken));
  }

  /** False for another user's token (which changes nothing); true when the request may go on. */
  renew(identity: Identity): boolean {
    const expiresAt = this.lease.identity.expiresAt;
    if (!this.lease.renew(identity, 'later-only')) return false;
    if (this.lease.identity.expiresAt !== expiresAt) this.deps.log.info('token renewed', { expires_at: this.lease.identity.expiresAt });
    if (this.expiringNotice && !this.lease.expiresWithin(EXPIRING_NOTICE_SEC)) this.expiringNotice = null;
    return true;
  }

  /** Hands one authenticated request of this session's user to the transport. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, body: JSONRPCMessage | undefined): Promise<void> {
    // Keep-alive pings are not activity: a client that only pings still times out when idle.
    if (!(body && isJSONRPCRequest(body) && body.method === 'ping')) this.lease.activity();
    const handled = this.transport.handleRequest(req, res, body);
    // A notice sent while the client had no server stream open (GET) is repeated on the new one.
    if (req.method === 'GET' && this.expiringNotice) setImmediate(() => this.notify('warning', this.expiringNotice!));
    await handled;
  }

  /** A notifications/message to the client's server stream (GET), subject to its logging/setLevel. */
  notify(level: 'info' | 'warning', message: string): void {
    if (this.state === 'closed') return;
    this.server.server.sendLoggingMessage({ level, logger: 'exai', data: message }, this.id).catch(() => {});
  }

  // ------------------------------------------------------------------ calls

  private async run(call: McpToolCall): Promise<ToolOutcome> {
    if (this.state !== 'open' || this.draining) {
      return fail(ErrorCode.shuttingDown, this.draining
        ? 'The daemon is shutting down and takes no new calls; run this again once your MCP client has started a new session.'
        : 'This MCP session is ending (its token expired) and takes no new calls; start a new session with a fresh token.');
    }
    if (this.calls.size >= this.deps.maxInflight) {
      return fail(ErrorCode.overCapacity, `Too many calls in flight on this MCP session (limit ${this.deps.maxInflight}); wait for some to finish.`);
    }
    const controller = new AbortController();
    const signal = AbortSignal.any([call.signal, controller.signal]);
    const session = this;
    const result = this.deps.tools
      .call(call.name, call.args, {
        get identity() { return session.lease.identity; }, // follows the freshest token of this user
        sessionId: this.id,
        instance: null,
        mode: this.deps.mode,
        store: this.deps.store,
        log: this.deps.log.child({ request_id: String(call.requestId).slice(0, 128), tool: call.name }),
        signal,
        progress: (message) => { if (!signal.aborted) call.progress(message); },
      })
      .then((outcome) =>
        !outcome.ok && controller.signal.reason === SHUTDOWN
          ? fail(ErrorCode.shuttingDown, `The daemon is shutting down and cancelled this ${call.name} call, which was still running; run it again once your MCP client has started a new session.`)
          : outcome);
    const running = { controller, result };
    this.calls.add(running);
    try {
      return await result;
    } finally {
      this.calls.delete(running);
      this.lease.activity(); // the idle clock starts when the last call ends, not when it started
      if (call.signal.aborted) this.releaseCancelled(call.requestId);
    }
  }

  /**
   * notifications/cancelled: the SDK sends no response for the call (as the spec asks), so its SSE
   * stream would stay open, and the transport's request bookkeeping with it. Close that stream, then
   * hand the transport a response for a stream that no longer exists: it drops the bookkeeping and
   * writes nothing (its send() path for an undeliverable response).
   */
  private releaseCancelled(requestId: RequestId): void {
    setImmediate(() => {
      this.transport.closeSSEStream(requestId);
      this.transport
        .send({ jsonrpc: '2.0', id: requestId, error: { code: -32800, message: 'Request cancelled' } })
        .catch(() => {});
    });
  }

  // ------------------------------------------------------------------ ending

  /** The token expired: refuse new requests (404), let calls in flight finish, then end `expired`. */
  private async endAfterCalls(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'ending';
    this.deps.log.info('token expired; the session ends once its calls finish', { inflight: this.calls.size });
    await Promise.allSettled([...this.calls].map((c) => c.result));
    await new Promise((r) => setImmediate(r)); // let the last results reach the transport
    await this.close('expired', 'token expired');
  }

  /**
   * Shutdown: no new calls; calls in flight run until `deadline`, then are cancelled and answered
   * `shutting_down`; then the session closes and its row becomes `disconnected`.
   */
  async drain(deadline: number): Promise<void> {
    this.draining = true;
    this.notify('warning', 'The daemon is shutting down; calls in flight may finish, new calls are refused. Start a new session (with another daemon) afterwards.');
    await settledWithin([...this.calls].map((c) => c.result), deadline - Date.now());
    const late = [...this.calls];
    for (const call of late) call.controller.abort(SHUTDOWN);
    if (late.length > 0) await settledWithin(late.map((c) => c.result), CANCEL_GRACE_MS);
    await new Promise((r) => setImmediate(r));
    await this.close('disconnected', 'daemon shutting down');
  }

  /**
   * Runs once: the endpoint forgets the session (its id gets 404 from now on), calls in flight are
   * cancelled, the transport closes its streams, and the row gets its final status.
   */
  close(status: FinalStatus, reason: string): Promise<void> {
    this.closing ??= this.finish(status, reason);
    return this.closing;
  }

  private async finish(status: FinalStatus, reason: string): Promise<void> {
    await null; // `closing` is set before anything below (transport.close() calls onclose) can call close() again
    this.state = 'closed';
    this.onClosed(this);
    this.markClosed();
    for (const call of this.calls) call.controller.abort();
    this.deps.log.info('mcp session closed', { status, reason });
    await this.transport.close().catch(() => {});
    await this.lease.end(status);
  }
}

function fail(code: string, message: string): ToolOutcome {
  return { ok: false, error: { code, message } };
}

/** Resolves when every promise has settled or after `ms`, whichever is first. */
async function settledWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.allSettled(promises), new Promise((r) => (timer = setTimeout(r, Math.max(0, ms))))]);
  clearTimeout(timer);
}
