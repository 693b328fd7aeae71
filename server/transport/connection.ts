// One WebSocket connection's life: awaiting hello -> authenticating -> open -> closed.
// Many calls may be in flight at once; each has an AbortController for cancel. A repeated
// call_tool request_id on THIS connection returns the first result (dedup is never global:
// the original daemon's global dedup dropped another window's handshake).
import crypto from 'node:crypto';
import type { WebSocket } from 'ws';
import { TokenRejected, type Identity, type TokenVerifier } from '../auth/identity';
import type { Logger } from '../log';
import {
  AuthFrame, CallToolFrame, ClientFrame, CloseCode, ErrorCode, HelloFrame, PROTOCOL_VERSION,
  type CallToolResult, type ServerFrame, type WireError,
} from '../protocol';
import { StoreUnavailable, type ClaimResult, type SessionStore } from '../sessions/store';
import type { PendingEndings } from '../sessions/pendingEndings';
import type { ToolRegistry } from '../tools/registry';
import { RecentResults } from './recentResults';
import { VERSION } from '../version';

const EXPIRING_NOTICE_SEC = 60;
const MAX_FRAMES_QUEUED_DURING_HELLO = 100;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** The abort reason of calls cancelled because the daemon shuts down. */
const SHUTDOWN = 'daemon shutting down';
/** After the drain bound: how long cancelled calls get to deliver their result before the close. */
const CANCEL_GRACE_MS = 1000;

export interface ConnectionOptions {
  mode: 'local' | 'supabase';
  daemonId: string;
  helloTimeoutMs: number;
  sessionTimeoutSec: number;
  heartbeatSec: number;
  maxConnectionsPerUser: number;
  maxInflight: number;
}

export interface ConnectionDeps {
  options: ConnectionOptions;
  verifier: TokenVerifier;
  store: SessionStore;
  /** Writes final statuses, retrying daemon-wide while the store is unavailable. */
  endings: PendingEndings;
  tools: ToolRegistry;
  log: Logger;
}

type State = 'awaiting_hello' | 'authenticating' | 'open' | 'closed';

interface InflightCall {
  controller: AbortController;
  result: Promise<CallToolResult>;
}

export class Connection {
  state: State = 'awaiting_hello';
  identity: Identity | null = null;
  readonly sessionId = crypto.randomUUID();
  instance: string | null = null;
  /** The session row's insert, once started; end() waits for it so a row is never left `connected`. */
  private claiming: Promise<ClaimResult> | null = null;
  private log: Logger;
  private lastActivity = Date.now();
  private readonly inflight = new Map<string, InflightCall>();
  private readonly completed = new RecentResults<CallToolResult>();
  /** The daemon is shutting down: no new calls. */
  private draining = false;
  private readonly queuedDuringHello: string[] = [];
  private readonly timers = new Map<'hello' | 'expiring' | 'expiry' | 'idle' | 'heartbeat', NodeJS.Timeout>();
  /** The last heartbeat failed: the next failures are not logged again (an outage would fill the log). */
  private heartbeatFailing = false;
  /** Resolves once the session row has its final status (or the ending is queued until the store is back). */
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  constructor(
    private readonly ws: WebSocket,
    private readonly deps: ConnectionDeps,
    private readonly upgradeBearer: string | null,
    private readonly onOpen: (c: Connection) => void,
    private readonly onClosed: (c: Connection) => void,
  ) {
    this.log = deps.log.child({ session: this.sessionId });
    this.finished = new Promise((r) => (this.resolveFinished = r));
    this.setTimer('hello', deps.options.helloTimeoutMs, () =>
      this.refuse(CloseCode.helloTimeout, ErrorCode.helloTimeout, `No hello frame within ${deps.options.helloTimeoutMs / 1000} s.`),
    );
    ws.on('message', (data, isBinary) => this.onMessage(isBinary ? null : data.toString()));
    ws.on('close', (code) => void this.end('disconnected', `client closed (${code})`));
    ws.on('error', (err) => this.log.warn('socket error', { error: err }));
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Tells the client the daemon is going away; calls in flight continue, new calls are refused. */
  notifyShutdown(message: string): void {
    this.draining = true;
    this.send({ op: 'shutdown', message });
  }

  /**
   * Waits (until `deadline`) for in-flight calls; cancels the ones still running, so their clients
   * get `shutting_down` results before the close; then closes with `goingAway`.
   */
  async drain(deadline: number): Promise<void> {
    this.draining = true;
    await settledWithin([...this.inflight.values()].map((c) => c.result), deadline - Date.now());
    const late = [...this.inflight.values()];
    for (const call of late) call.controller.abort(SHUTDOWN);
    if (late.length > 0) await settledWithin(late.map((c) => c.result), CANCEL_GRACE_MS);
    this.close(CloseCode.goingAway, 'daemon shutting down', 'disconnected');
    await this.finished;
  }

  // ------------------------------------------------------------------ frames in

  private onMessage(text: string | null): void {
    this.lastActivity = Date.now();
    if (this.state === 'closed') return;
    if (this.state === 'authenticating') {
      if (this.queuedDuringHello.length >= MAX_FRAMES_QUEUED_DURING_HELLO) return this.close(CloseCode.notHello, 'too many frames before hello_ack', 'disconnected');
      if (text !== null) this.queuedDuringHello.push(text);
      return;
    }
    let frame: unknown;
    try {
      if (text === null) throw new Error('binary frame');
      frame = JSON.parse(text);
    } catch {
      if (this.state === 'awaiting_hello') return this.refuse(CloseCode.notJson, ErrorCode.invalidJson, 'The first frame was not JSON text.');
      return this.send({ op: 'error', error: { code: ErrorCode.invalidJson, message: 'Frames must be JSON text.' } });
    }
    if (this.state === 'awaiting_hello') return void this.hello(frame);
    this.dispatch(frame);
  }

  private async hello(frame: unknown): Promise<void> {
    this.clearTimer('hello');
    if (!isObject(frame) || frame.op !== 'hello') return this.refuse(CloseCode.notHello, ErrorCode.helloRequired, 'The first frame must be {"op":"hello", ...}.');
    const tokenFromHeader = HelloFrame.safeParse({ token: this.upgradeBearer ?? undefined, ...frame });
    if (!tokenFromHeader.success) {
      if (!frame.token && !this.upgradeBearer) return this.refuse(CloseCode.tokenInvalid, ErrorCode.tokenInvalid, 'The hello frame carried no token. Sign in, then reconnect.');
      return this.refuse(CloseCode.notHello, ErrorCode.invalidFrame, 'The hello frame is malformed (needs protocol, token and optional client{instance,version}).');
    }
    const hello = tokenFromHeader.data;
    if (hello.protocol !== PROTOCOL_VERSION) {
      return this.refuse(CloseCode.protocolUnsupported, ErrorCode.protocolUnsupported,
        `This daemon speaks protocol ${PROTOCOL_VERSION}, the client asked for ${hello.protocol}. Update the extension or the daemon so their versions match.`);
    }
    if (this.upgradeBearer && frame.token && frame.token !== this.upgradeBearer) {
      return this.refuse(CloseCode.tokenInvalid, ErrorCode.tokenInvalid, 'The Authorization header and the hello frame carried different tokens.');
    }
    this.instance = hello.client?.instance ?? null;
    this.log = this.log.child({ instance: this.instance });
    this.state = 'authenticating';

    let identity: Identity;
    try {
      identity = await this.deps.verifier.verify(hello.token);
    } catch (err) {
      return this.refuseToken(err);
    }
    if (this.isGone()) return;

    this.claiming = this.deps.store
      .claim(identity, this.sessionId, this.deps.options.maxConnectionsPerUser, {
        daemon_id: this.deps.options.daemonId,
        instance: this.instance,
        client_version: hello.client?.version ?? null,
        pid: process.pid,
      })
      .then((claim) => {
        if (claim.ok) this.identity = identity;
        return claim;
      });
    let claim: Awaited<typeof this.claiming>;
    try {
      claim = await this.claiming;
    } catch (err) {
      this.log.error('could not record the session', { error: err });
      const message = err instanceof StoreUnavailable ? err.message : 'The daemon could not record this session; it will accept a reconnect once its database is back.';
      return this.refuse(CloseCode.tryAgainLater, ErrorCode.storeUnavailable, message);
    }
    // The socket may have closed while the claim was in flight; end() then writes the row's final status.
    if ((this.state as State) === 'closed') return;
    if (!claim.ok) {
      return this.refuse(CloseCode.tooManyConnections, ErrorCode.tooManyConnections,
        `This account already has ${claim.active} open connections (the limit is ${this.deps.options.maxConnectionsPerUser}). Close another VS Code window or wait for an idle one to time out.`);
    }
    if (this.isGone()) return void this.end('disconnected', 'client left during hello');

    this.state = 'open';
    this.log.info('connected', { user: identity.userId, expires_at: identity.expiresAt });
    this.send({
      op: 'hello_ack', ok: true, session_id: this.sessionId,
      user: { id: identity.userId, email: identity.email },
      expires_at: identity.expiresAt, server: { version: VERSION },
    });
    this.scheduleExpiry();
    this.scheduleIdleCheck();
    const heartbeat = setInterval(() => void this.touch(), this.deps.options.heartbeatSec * 1000);
    heartbeat.unref();
    this.timers.set('heartbeat', heartbeat);
    this.onOpen(this);
    for (const queued of this.queuedDuringHello.splice(0)) this.onMessage(queued);
  }

  private dispatch(raw: unknown): void {
    const requestId = isObject(raw) && typeof raw.request_id === 'string' ? raw.request_id : undefined;
    const op = isObject(raw) ? raw.op : undefined;
    const parsed = ClientFrame.safeParse(raw);
    if (!parsed.success) {
      const known = typeof op === 'string' && ['hello', 'auth', 'list_tools', 'call_tool', 'cancel', 'ping'].includes(op);
      const error: WireError = known
        ? { code: ErrorCode.invalidFrame, message: `Malformed ${op} frame: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'frame'}: ${i.message}`).join('; ')}` }
        : { code: ErrorCode.unknownOp, message: `Unknown op ${JSON.stringify(op ?? null)}. Known ops: auth, list_tools, call_tool, cancel, ping.` };
      return this.send({ op: 'error', request_id: requestId, error });
    }
    const frame = parsed.data;
    switch (frame.op) {
      case 'hello':
        return this.send({ op: 'error', error: { code: ErrorCode.invalidFrame, message: 'This connection already said hello; use op "auth" to present a new token.' } });
      case 'auth':
        return void this.reauthenticate(frame);
      case 'list_tools':
        return this.send({ op: 'list_tools_res', request_id: frame.request_id, tools: this.deps.tools.list() });
      case 'call_tool':
        return this.callTool(frame);
      case 'cancel': {
        const call = this.inflight.get(frame.request_id);
        call?.controller.abort();
        return this.send({ op: 'cancel_ack', request_id: frame.request_id, ok: call !== undefined });
      }
      case 'ping':
        return this.send({ op: 'pong', request_id: frame.request_id });
    }
  }

  // ------------------------------------------------------------------ re-auth and expiry

  private async reauthenticate(frame: AuthFrame): Promise<void> {
    let next: Identity;
    try {
      next = await this.deps.verifier.verify(frame.token);
    } catch (err) {
      const rejected = err instanceof TokenRejected ? err : new TokenRejected('token_invalid', 'The token could not be verified.');
      return this.send({ op: 'auth_ack', request_id: frame.request_id, ok: false, error: { code: rejected.code, message: rejected.message } });
    }
    if (this.state !== 'open' || !this.identity) return;
    if (next.userId !== this.identity.userId) {
      this.log.warn('re-auth refused: token of another user');
      return this.send({
        op: 'auth_ack', request_id: frame.request_id, ok: false,
        error: { code: ErrorCode.userMismatch, message: 'That token belongs to a different user; this connection stays signed in as before. Reconnect to switch users.' },
      });
    }
    this.identity = next;
    this.scheduleExpiry();
    this.log.info('re-authenticated', { expires_at: next.expiresAt });
    this.send({ op: 'auth_ack', request_id: frame.request_id, ok: true, expires_at: next.expiresAt });
  }

  private scheduleExpiry(): void {
    this.clearTimer('expiring');
    this.clearTimer('expiry');
    const exp = this.identity?.expiresAt;
    if (exp == null) return;
    const msLeft = exp * 1000 - Date.now();
    this.setTimer('expiring', msLeft - EXPIRING_NOTICE_SEC * 1000, () => this.send({ op: 'auth_expiring', expires_at: exp }));
    this.setTimer('expiry', msLeft, () => this.close(CloseCode.tokenExpired, 'token expired', 'expired'));
  }

  private scheduleIdleCheck(): void {
    const timeoutMs = this.deps.options.sessionTimeoutSec * 1000;
    this.setTimer('idle', this.lastActivity + timeoutMs - Date.now(), () => {
      const idleFor = Date.now() - this.lastActivity;
      if (idleFor >= timeoutMs && this.inflight.size === 0) {
        this.log.info('idle timeout', { idle_s: Math.round(idleFor / 1000) });
        return this.close(CloseCode.idleTimeout, 'idle timeout', 'expired');
      }
      if (idleFor >= timeoutMs) this.lastActivity = Date.now(); // a long call counts as activity
      this.scheduleIdleCheck();
    });
  }

  private async touch(): Promise<void> {
    if (this.state !== 'open' || !this.identity) return;
    try {
      const stillConnected = await this.deps.store.touch(this.identity, this.sessionId);
      if (this.heartbeatFailing) {
        this.heartbeatFailing = false;
        this.log.info('heartbeat works again');
        this.deps.endings.retryNow(); // the store is back: write the endings queued meanwhile now
      }
      // The row is the source of truth: a session ended elsewhere ends this connection too.
      if (!stillConnected && this.state === 'open') this.close(CloseCode.sessionEnded, ErrorCode.sessionEnded, 'disconnected');
    } catch (err) {
      if (!this.heartbeatFailing) this.log.warn('heartbeat could not update last_active; not logged again until it works', { error: err });
      this.heartbeatFailing = true;
    }
  }

  // ------------------------------------------------------------------ tool calls

  private callTool(frame: CallToolFrame): void {
    const id = frame.request_id;
    const done = this.completed.get(id);
    if (done) return this.send(done);
    const running = this.inflight.get(id);
    if (running) {
      this.send({ op: 'call_tool_ack', request_id: id, name: frame.name });
      return void running.result.then((res) => this.send(res));
    }
    if (this.draining) {
      return this.send({ op: 'call_tool_res', request_id: id, ok: false,
        error: { code: ErrorCode.shuttingDown, message: 'The daemon is shutting down and takes no new calls; run this again once EXAI has reconnected.' } });
    }
    if (this.inflight.size >= this.deps.options.maxInflight) {
      return this.send({ op: 'call_tool_res', request_id: id, ok: false,
        error: { code: ErrorCode.overCapacity, message: `Too many calls in flight on this connection (limit ${this.deps.options.maxInflight}); wait for some to finish.` } });
    }
    const controller = new AbortController();
    const connection = this;
    this.send({ op: 'call_tool_ack', request_id: id, name: frame.name });
    const result = this.deps.tools
      .call(frame.name, frame.arguments, {
        get identity() { return connection.identity!; }, // follows in-band re-auth
        sessionId: this.sessionId,
        instance: this.instance,
        mode: this.deps.options.mode,
        store: this.deps.store,
        log: this.log.child({ request_id: id, tool: frame.name }),
        signal: controller.signal,
        progress: (message) => { if (!controller.signal.aborted) this.send({ op: 'progress', request_id: id, message }); },
      })
      .then((outcome): CallToolResult =>
        !outcome.ok && controller.signal.reason === SHUTDOWN
          ? { op: 'call_tool_res', request_id: id, ok: false,
              error: { code: ErrorCode.shuttingDown, message: `The daemon is shutting down and cancelled this ${frame.name} call, which was still running; run it again once EXAI has reconnected.` } }
          : { op: 'call_tool_res', request_id: id, ...outcome });
    this.inflight.set(id, { controller, result });
    void result.then((res) => {
      this.inflight.delete(id);
      this.completed.set(id, res);
      this.send(res);
    });
  }

  // ------------------------------------------------------------------ frames out, closing

  send(frame: ServerFrame): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(frame));
  }

  private refuseToken(err: unknown): void {
    if (err instanceof TokenRejected) {
      const code = err.code === 'token_expired' ? CloseCode.tokenExpired : err.code === 'auth_unavailable' ? CloseCode.tryAgainLater : CloseCode.tokenInvalid;
      this.log.warn('token refused', { reason: err.code, detail: err.message });
      return this.refuse(code, err.code, err.message);
    }
    this.log.error('token verification failed unexpectedly', { error: err });
    return this.refuse(CloseCode.tryAgainLater, ErrorCode.authUnavailable, 'The daemon could not verify the token right now; reconnect in a moment.');
  }

  /** hello failed: tell the client why, then close with the matching code. */
  private refuse(code: CloseCode, errorCode: string, message: string): void {
    this.send({ op: 'hello_ack', ok: false, error: { code: errorCode, message } });
    this.close(code, errorCode, 'disconnected');
  }

  close(code: CloseCode, reason: string, status: 'disconnected' | 'expired'): void {
    if (this.state === 'closed') return;
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, reason.slice(0, 120));
    void this.end(status, reason);
  }

  private isGone(): boolean {
    return this.state === 'closed' || this.ws.readyState !== this.ws.OPEN;
  }

  /** Runs once: stops timers and calls, writes the row's final status (retrying), reports. */
  private async end(status: 'disconnected' | 'expired', reason: string): Promise<void> {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const call of this.inflight.values()) call.controller.abort();
    if (wasOpen) this.log.info('closed', { status, reason });
    const claimed = this.claiming ? await this.claiming.then((c) => c.ok, () => false) : false;
    if (claimed && this.identity) await this.writeFinalStatus(this.identity, status);
    this.onClosed(this);
    this.resolveFinished();
  }

  private async writeFinalStatus(identity: Identity, status: 'disconnected' | 'expired'): Promise<void> {
    // While the store is down the ending waits in the daemon-wide queue; this does not wait for it.
    await this.deps.endings.end(identity, this.sessionId, status);
  }

  private setTimer(name: 'hello' | 'expiring' | 'expiry' | 'idle', ms: number, fn: () => void): void {
    this.clearTimer(name);
    const timer = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    timer.unref();
    this.timers.set(name, timer);
  }

  private clearTimer(name: 'hello' | 'expiring' | 'expiry' | 'idle' | 'heartbeat'): void {
    const timer = this.timers.get(name);
    if (timer) clearTimeout(timer);
    this.timers.delete(name);
  }
}

/** Resolves when every promise has settled or after `ms`, whichever is first. */
async function settledWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.allSettled(promises), new Promise((r) => (timer = setTimeout(r, Math.max(0, ms))))]);
  clearTimeout(timer);
}

function isObject(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
