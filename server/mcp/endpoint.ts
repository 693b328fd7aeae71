// MCP Streamable HTTP on the daemon's one port: `/mcp`, and the RFC 9728 metadata at
// `/.well-known/oauth-protected-resource` (and `…/mcp`). This module decides who may do what; the
// SDK's transport (one per session, session.ts) does the JSON-RPC and SSE framing.
//
// Every /mcp request, in this order:
//   1. Host and Origin (DNS rebinding, rebinding.ts)             -> 421 / 403
//   2. no token in the query string                               -> 400
//   3. POST, GET or DELETE                                        -> 405
//   4. an Mcp-Session-Id this daemon does not hold (never had,
//      ended, or its token expired)                               -> 404: the client initializes again
//      (a session whose token expired while calls run: its own client's requests get their 404 once
//      those calls have finished, since VS Code answers a 404 by cancelling every call of the session)
//   5. Authorization: Bearer <token>, verified as `hello` is      -> 401 with WWW-Authenticate (503 when the
//                                                                    signing keys cannot be fetched)
//   6. the session's own user only (another user's token: 404, nothing changes); the same user's
//      fresher token renews the session
//   7. without a session: only POST initialize, which claims a row under the per-user limit
//      (shared with WebSocket connections)                       -> 429 over the limit, 503 store down
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { isInitializeRequest, JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { TokenRejected, type Identity, type TokenVerifier } from '../auth/identity';
import type { Logger } from '../log';
import { ErrorCode } from '../protocol';
import { SessionLease } from '../sessions/lease';
import type { PendingEndings } from '../sessions/pendingEndings';
import { StoreUnavailable, type SessionStore } from '../sessions/store';
import type { ToolRegistry } from '../tools/registry';
import { MCP_PATH, METADATA_PATHS, protectedResourceMetadata, wwwAuthenticate, type ResourceOptions } from './protectedResource';
import { checkRebinding } from './rebinding';
import { McpSession } from './session';
import { readBoundedBody } from '../transport/requestBody';

/** JSON-RPC request ids longer than this are refused: the transport keeps each id while its call runs. */
export const MAX_REQUEST_ID_LENGTH = 128;
const MAX_CLIENT_NAME = 64; // what mcp_claim_session stores
const MAX_CLIENT_VERSION = 64;
/** Seconds a client is asked to wait when the signing keys or the session store are unreachable. */
const RETRY_AFTER_SEC = 5;
/** The longest a request waits for the calls of its expired session to finish before its 404. */
export const MAX_HOLD_MS = 10 * 60_000;

export interface McpEndpointOptions {
  mode: 'local' | 'supabase';
  daemonId: string;
  sessionTimeoutSec: number;
  heartbeatSec: number;
  /** Shared with WebSocket connections: both are rows of the same user in the same store. */
  maxConnectionsPerUser: number;
  maxInflight: number;
  /** Bound on a request body (the daemon's maxPayloadBytes). */
  maxBodyBytes: number;
  /** Bound to loopback, no TLS, not behind a proxy: Host and Origin must name loopback. */
  loopbackOnly: boolean;
  /** For the protected-resource metadata and WWW-Authenticate. */
  resource: ResourceOptions;
}

export interface McpEndpointDeps {
  verifier: TokenVerifier;
  store: SessionStore;
  /** The daemon-wide queue of final statuses (shared with WebSocket connections). */
  endings: PendingEndings;
  tools: ToolRegistry;
  log: Logger;
}

export interface McpEndpoint {
  /** The paths this module answers. */
  serves(path: string): boolean;
  handle(req: http.IncomingMessage, res: http.ServerResponse, hooks?: RequestHooks): void;
  /** Live MCP sessions. */
  count(): number;
  userIds(): string[];
  onCountChange(listener: (count: number) => void): void;
  /** Shutdown: no new sessions; calls in flight finish until `deadline` (ms since epoch); every session ends `disconnected`. */
  drain(deadline: number): Promise<void>;
  /** Ends every session now (calls are cancelled) and waits for the rows. */
  closeNow(): Promise<void>;
}

/** What the HTTP server lends one request: its bounds on strangers (transport/unauthenticated.ts, LogBudget). */
export interface RequestHooks {
  /** Lines caused by requests without a valid bearer; rate-limited daemon-wide. */
  strangerLog?: Logger;
  /** The bearer checked out: this socket no longer counts as unauthenticated (a long SSE stream must not be evicted as one). */
  authenticated?: () => void;
}

/** An answer to a refused request: status, sentence, and the ErrorCode-style reason in `error.data.reason`. */
class Refused extends Error {
  constructor(readonly status: number, message: string, readonly reason: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

export function createMcpEndpoint(deps: McpEndpointDeps, opts: McpEndpointOptions): McpEndpoint {
  const sessions = new Map<string, McpSession>();
  /** Initializes between their first await and their session's registration (drain waits for them). */
  const opening = new Set<Promise<unknown>>();
  const listeners: ((n: number) => void)[] = [];
  let draining = false;
  const log = deps.log.child({ transport: 'mcp' });

  const changed = () => {
    for (const listener of listeners) listener(sessions.size);
  };

  async function serveMcp(req: http.IncomingMessage, res: http.ServerResponse, query: string, hooks: RequestHooks): Promise<void> {
    const rebinding = checkRebinding(req, opts.loopbackOnly);
    if (rebinding) throw new Refused(rebinding.status, rebinding.message, rebinding.status === 421 ? 'misdirected_request' : 'origin_refused');
    if (tokenInQuery(query)) {
      throw new Refused(400, 'Send the access token in the Authorization header (Bearer); a token in the URL is refused, because URLs end up in logs and browser history.', 'token_in_query',
        { 'www-authenticate': wwwAuthenticate(req, opts.resource, { code: 'invalid_request', description: 'The access token must be sent in the Authorization header, not in the URL.' }) });
    }
    if (req.method !== 'POST' && req.method !== 'GET' && req.method !== 'DELETE') {
      throw new Refused(405, `${req.method} is not an MCP method; /mcp takes POST, GET and DELETE.`, 'method_not_allowed', { allow: 'GET, POST, DELETE' });
    }

    const sessionId = req.headers['mcp-session-id'];
    let session: McpSession | undefined;
    if (sessionId !== undefined) {
      session = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
      if (!session?.live) return sessionGone(session, req, res, hooks);
    }

    const identity = await authenticate(req, hooks.strangerLog ?? log);
    hooks.authenticated?.();

    if (session) {
      // The session may have ended while the token was verified.
      if (!session.live) return sessionGone(session, req, res, hooks);
      if (!session.renew(identity)) {
        // Sessions are bound to their user: for anyone else this id does not exist (MCP security best practices).
        log.warn("refused a request on another user's MCP session", { session: session.id, user: identity.userId });
        throw sessionNotFound();
      }
      const body = req.method === 'POST' ? await readMessage(req) : undefined;
      return session.handle(req, res, body);
    }

    if (req.method !== 'POST') throw new Refused(400, 'Bad Request: Mcp-Session-Id header is required (start a session with a POST initialize request).', 'session_required');
    const body = await readMessage(req);
    if (!isInitializeRequest(body)) throw new Refused(400, 'Bad Request: Mcp-Session-Id header is required; only an initialize request may come without one.', 'session_required');
    const opened = open(identity, body.params.clientInfo);
    opening.add(opened);
    let created: McpSession;
    try {
      created = await opened;
    } finally {
      opening.delete(opened);
    }
    await created.handle(req, res, body);
    if (!created.initialized) void created.close('disconnected', 'the initialize request was refused');
  }

  /** Claims a row for a new session and creates it; Refused when over the limit, the store is down or the daemon drains. */
  async function open(identity: Identity, clientInfo: { name: string; version: string }): Promise<McpSession> {
    if (draining) throw new Refused(503, 'The daemon is shutting down; start the session on another daemon (or again once it has restarted).', ErrorCode.shuttingDown, { 'retry-after': String(RETRY_AFTER_SEC) });
    const id = randomUUID();
    const sessionLog = log.child({ session: id });
    const lease = new SessionLease(id, { store: deps.store, endings: deps.endings, log: sessionLog }, {
      daemonId: opts.daemonId,
      maxPerUser: opts.maxConnectionsPerUser,
      idleTimeoutSec: opts.sessionTimeoutSec,
      heartbeatSec: opts.heartbeatSec,
    });
    let claim;
    try {
      claim = await lease.claim(identity, {
        instance: null,
        client_version: clientInfo.version.slice(0, MAX_CLIENT_VERSION),
        client_name: clientInfo.name.slice(0, MAX_CLIENT_NAME),
        transport: 'mcp',
      });
    } catch (err) {
      sessionLog.error('could not record the session', { error: err });
      throw new Refused(503, err instanceof StoreUnavailable ? err.message : 'The daemon could not record this session; try again once its database is back.',
        ErrorCode.storeUnavailable, { 'retry-after': String(RETRY_AFTER_SEC) });
    }
    if (!claim.ok) {
      sessionLog.warn('refused a new MCP session: per-user limit', { user: identity.userId, active: claim.active });
      throw new Refused(429,
        `This account already has ${claim.active} open sessions (the limit is ${opts.maxConnectionsPerUser}, VS Code windows and MCP sessions together). ` +
          'End another MCP session or close a VS Code window, or wait for an idle one to time out.',
        ErrorCode.tooManyConnections);
    }
    if (draining) {
      await lease.end('disconnected');
      throw new Refused(503, 'The daemon is shutting down; start the session on another daemon (or again once it has restarted).', ErrorCode.shuttingDown);
    }
    let session: McpSession;
    try {
      session = await McpSession.open(lease, { tools: deps.tools, store: deps.store, mode: opts.mode, maxInflight: opts.maxInflight, log: sessionLog }, (s) => {
        if (sessions.get(s.id) === s) {
          sessions.delete(s.id);
          changed();
        }
      });
    } catch (err) {
      await lease.end('disconnected'); // never leave a claimed row `connected`
      throw err;
    }
    sessions.set(id, session);
    changed();
    sessionLog.info('mcp session opened', { user: identity.userId, expires_at: identity.expiresAt, client: clientInfo.name.slice(0, MAX_CLIENT_NAME) });
    return session;
  }

  /**
   * 404 for a session this daemon does not hold (any more). But a request of the session's own client
   * (it carries the session's token, now expired) while the session's calls finish waits for them
   * first (bounded): VS Code answers a 404 by cancelling every call of the session, and one of them
   * was about to deliver its result.
   */
  async function sessionGone(session: McpSession | undefined, req: http.IncomingMessage, res: http.ServerResponse, hooks: RequestHooks): Promise<never> {
    if (session && req.method !== 'DELETE' && session.finishingCalls && session.waitingRequests < opts.maxInflight && session.holdsBearer(bearerOf(req))) {
      hooks.authenticated?.(); // it proved it holds the session's token: not a stranger's socket
      session.waitingRequests++;
      let timer: NodeJS.Timeout | undefined;
      try {
        if (req.method === 'POST') await readBody(req, opts.maxBodyBytes); // its message is sent again on the new session
        await Promise.race([
          session.closed,
          new Promise((r) => res.once('close', r)),
          new Promise((r) => (timer = setTimeout(r, MAX_HOLD_MS))),
        ]);
      } finally {
        clearTimeout(timer);
        session.waitingRequests--;
      }
    }
    throw sessionNotFound();
  }

  /** The bearer, verified by the same verifier and rules as a WebSocket hello. */
  async function authenticate(req: http.IncomingMessage, strangerLog: Logger): Promise<Identity> {
    const header = req.headers.authorization;
    const token = bearerOf(req);
    if (token === null) {
      const message = header === undefined
        ? `This MCP endpoint needs Authorization: Bearer <token>: ${opts.mode === 'local' ? 'the secret in the daemon\'s daemon.json' : 'a Supabase access token of your account'}.`
        : 'The Authorization header is not "Bearer <token>".';
      throw new Refused(401, message, ErrorCode.tokenInvalid, {
        'www-authenticate': wwwAuthenticate(req, opts.resource, header === undefined ? undefined : { code: 'invalid_request', description: message }),
      });
    }
    try {
      return await deps.verifier.verify(token);
    } catch (err) {
      const rejected = err instanceof TokenRejected ? err : new TokenRejected('auth_unavailable', 'The daemon could not verify the token right now; try again in a moment.');
      if (!(err instanceof TokenRejected)) log.error('token verification failed unexpectedly', { error: err });
      strangerLog.warn('token refused', { reason: rejected.code, detail: rejected.message });
      if (rejected.code === 'auth_unavailable') throw new Refused(503, rejected.message, rejected.code, { 'retry-after': String(RETRY_AFTER_SEC) });
      throw new Refused(401, rejected.message, rejected.code, {
        'www-authenticate': wwwAuthenticate(req, opts.resource, { code: 'invalid_token', description: rejected.message }),
      });
    }
  }

  /** The POST body: one JSON-RPC message within maxBodyBytes (batches were removed from MCP in 2025-06-18). */
  async function readMessage(req: http.IncomingMessage): Promise<JSONRPCMessage> {
    const text = await readBody(req, opts.maxBodyBytes);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new Refused(400, 'Parse error: the body is not JSON.', 'parse_error');
    }
    if (Array.isArray(value)) throw new Refused(400, 'Invalid Request: JSON-RPC batches are not accepted (MCP 2025-06-18 removed them); send one message per request.', 'invalid_request');
    const parsed = JSONRPCMessageSchema.safeParse(value);
    if (!parsed.success) throw new Refused(400, 'Invalid Request: the body is not a JSON-RPC 2.0 message.', 'invalid_request');
    const id = (parsed.data as { id?: unknown }).id;
    if (typeof id === 'string' && id.length > MAX_REQUEST_ID_LENGTH) {
      throw new Refused(400, `Invalid Request: the id is longer than ${MAX_REQUEST_ID_LENGTH} characters.`, 'invalid_request');
    }
    return parsed.data;
  }

  function serveMetadata(req: http.IncomingMessage, res: http.ServerResponse): void {
    const rebinding = checkRebinding(req, opts.loopbackOnly);
    if (rebinding) throw new Refused(rebinding.status, rebinding.message, 'misdirected_request');
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new Refused(405, 'The protected-resource metadata is read with GET.', 'method_not_allowed', { allow: 'GET' });
    const metadata = protectedResourceMetadata(req, opts.resource);
    if (!metadata) {
      throw new Refused(404, 'This daemon runs in local mode: there is no authorization server. Its bearer token is the secret in daemon.json in the daemon\'s state directory.', 'not_found');
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : JSON.stringify(metadata));
  }

  return {
    serves: (path) => path === MCP_PATH || METADATA_PATHS.includes(path),
    handle(req, res, hooks = {}) {
      const [path, query = ''] = (req.url ?? '/').split('?', 2);
      const work = path === MCP_PATH ? serveMcp(req, res, query, hooks) : Promise.resolve().then(() => serveMetadata(req, res));
      work.catch((err) => {
        if (err instanceof Refused) return refuse(req, res, err);
        log.error('MCP request failed', { error: err });
        refuse(req, res, new Refused(500, 'The daemon failed to handle this MCP request; see its log.', 'internal_error'));
      });
    },
    count: () => sessions.size,
    userIds: () => [...sessions.values()].map((s) => s.userId),
    onCountChange: (listener) => void listeners.push(listener),
    async drain(deadline) {
      draining = true;
      await Promise.allSettled([...opening]);
      await Promise.all([...sessions.values()].map((s) => s.drain(deadline)));
    },
    async closeNow() {
      draining = true;
      await Promise.all([...sessions.values()].map((s) => s.close('disconnected', 'daemon shutting down')));
    },
  };
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
function bearerOf(req: http.IncomingMessage): string | null {
  const header = req.headers.authorization;
  return header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] ?? null;
}

/** RFC 6750's `access_token` parameter, or any value that is a JWT (`eyJ….….…`), however it is named. */
function tokenInQuery(query: string): boolean {
  if (query === '') return false;
  const params = new URLSearchParams(query);
  if (params.has('access_token')) return true;
  for (const value of params.values()) if (/^eyJ[\w-]*\.[\w-]*\.[\w-]*$/.test(value)) return true;
  return false;
}

function sessionNotFound(): Refused {
  return new Refused(404, 'Session not found: this daemon holds no such MCP session (it ended, its token expired, or another daemon holds it). Start a new session with an initialize request.', ErrorCode.sessionEnded);
}

/** Reads the body as text, up to `max` bytes; Refused(413) beyond that. */
function readBody(req: http.IncomingMessage, max: number): Promise<string> {
  return readBoundedBody(req, max, {
    tooLarge: () => new Refused(413, `Payload Too Large: a request body may be at most ${max} bytes.`, 'payload_too_large', { connection: 'close' }),
    cutOff: () => new Refused(400, 'The request body was cut off before its end.', 'invalid_request'),
  });
}

/**
 * A JSON-RPC error body (the shape the SDK's transport answers with), the sentence in `message` and
 * the reason (an ErrorCode where one fits) in `data.reason`. Before the body was read, the
 * connection is closed afterwards rather than reading an unauthenticated body to its end.
 */
function refuse(req: http.IncomingMessage, res: http.ServerResponse, refusal: Refused): void {
  if (res.destroyed) return;
  if (res.headersSent) return void res.end();
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store', ...refusal.headers };
  if (!req.complete) headers.connection = 'close';
  const code = refusal.status === 404 ? -32001 : refusal.reason === 'parse_error' ? -32700 : refusal.reason === 'invalid_request' ? -32600 : -32000;
  res.writeHead(refusal.status, headers);
  res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message: refusal.message, data: { reason: refusal.reason } } }));
}
