// One WebSocket connection's life: awaiting hello -> authenticating -> open -> closed.
// Many calls may be in flight at once; each has an AbortController for cancel. A repeated
// call_tool request_id on THIS connection returns the first result (dedup is never global:
// the original daemon's global dedup dropped another window's handshake).
// Floods are bounded: bytes before hello_ack, the hello's whole duration (verify + claim), replies
// queued for a client that stops reading, kept results (recentResults.ts), and error echoes.
// The session row's life (claim, heartbeat, idle, expiry, final status) is the lease's
// (sessions/lease.ts); this module decides what counts as activity and what each rule does here.
import crypto from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { TokenRejected, type Identity, type TokenVerifier } from '../auth/identity';
import type { Logger } from '../log';
import {
  AuthFrame, CallToolFrame, ClientFrame, CloseCode, ErrorCode, HelloFrame, MAX_BYTES_BEFORE_HELLO_ACK, PROTOCOL_VERSION,
  RequestId, SUPPORTED_PROTOCOL_VERSIONS, shortened, validCallToolFrame, type CallToolResult, type RemoveProviderKeyFrame, type ServerFrame, type SetProviderKeyFrame, type WireError,
} from '../protocol';
import { ProviderKeyRejected, type RuntimeProviderKeys } from '../tools/providerKeys';
import { SessionLease, type FinalStatus } from '../sessions/lease';
import { StoreUnavailable, type SessionStore } from '../sessions/store';
import type { PendingEndings } from '../sessions/pendingEndings';
import type { ToolContext, ToolRegistry } from '../tools/registry';
import { RecentResults, type ResultBudget } from './recentResults';
import { VERSION } from '../version';

const MAX_FRAMES_QUEUED_DURING_HELLO = 100;
/** The abort reason of calls cancelled because the daemon shuts down. */
const SHUTDOWN = 'daemon shutting down';
/** After the drain bound: how long cancelled calls get to deliver their result before the close. */
const CANCEL_GRACE_MS = 1000;
/** A flooding socket we stopped reading gets this long to take its close frame before it is cut off. */
const FLOOD_CLOSE_GRACE_MS = 2000;
/** An unknown op is quoted back only when it is at most this long. */
const MAX_QUOTED_OP_CHARS = 32;
/** Errors of a malformed frame: the first few zod issues are enough to fix it. */
const MAX_ISSUES_REPORTED = 5;

export interface ConnectionOptions {
  mode: 'local' | 'supabase';
  daemonId: string;
  helloTimeoutMs: number;
  sessionTimeoutSec: number;
  heartbeatSec: number;
  maxConnectionsPerUser: number;
  maxInflight: number;
  /** Replies waiting for the client to read them; past this the connection closes with 4010. */
  maxBufferedBytes: number;
}

export interface ConnectionDeps {
  options: ConnectionOptions;
  verifier: TokenVerifier;
  store: SessionStore;
  /** Writes final statuses, retrying daemon-wide while the store is unavailable. */
  endings: PendingEndings;
  tools: ToolRegistry;
  log: Logger;
  /** The daemon-wide byte budget of kept call_tool results, shared by every connection. */
  resultBudget: ResultBudget;
  /** Local mode: provider keys a client may set at run time. Absent (supabase mode): the ops are refused. */
  providerKeys?: RuntimeProviderKeys | null;
}

type State = 'awaiting_hello' | 'authenticating' | 'open' | 'closed';

interface InflightCall {
  readonly id: string;
  readonly controller: AbortController;
  result: Promise<CallToolResult>;
  /** Protocol 3: the ack waits for the end of the turn and is left out when the result came first. */
  ackDue: boolean;
  readonly name: string;
}

export class Connection {
  state: State = 'awaiting_hello';
  readonly sessionId = crypto.randomUUID();
  instance: string | null = null;
  /** The session row, from the claim on (null while the token is still being verified). */
  private lease: SessionLease | null = null;
  private log: Logger;
  private readonly inflight = new Map<string, InflightCall>();
  private readonly completed: RecentResults;
  /** The daemon is shutting down: no new calls. */
  private draining = false;
  private readonly queuedDuringHello: string[] = [];
  private helloTimer: NodeJS.Timeout | null = null;
  /** Resolves once the session row has its final status (or the ending is queued until the store is back). */
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  /** The protocol version the client said hello with. */
  private protocol = PROTOCOL_VERSION;
  /** Replies are corked until the end of the event-loop turn, so the frames of one turn leave in one write. */
  private corked = false;
  /** The end of the turn, while corked: cleared when the turn's last running call answers first. */
  private uncorkAtTurnEnd: NodeJS.Immediate | null = null;
  /** Protocol 3: calls whose ack is sent at the end of the turn unless their result went first. */
  private acksDue: InflightCall[] = [];

  /** Counts raw bytes until hello_ack; removed then (null afterwards). */
  private countBytesBeforeHelloAck: ((chunk: Buffer) => void) | null = null;

  /** `socket` is the raw socket under `ws`, watched until hello_ack so a flood is cut off before ws parses it. */
  constructor(
    private readonly ws: WebSocket,
    private readonly deps: ConnectionDeps,
    private readonly upgradeBearer: string | null,
    private readonly onOpen: (c: Connection) => void,
    private readonly onClosed: (c: Connection) => void,
    private readonly socket: Duplex,
  ) {
    this.log = deps.log.child({ session: this.sessionId });
    this.completed = new RecentResults(deps.resultBudget);
    this.finished = new Promise((r) => (this.resolveFinished = r));
    // One deadline for the whole hello: the frame, the token's verification and the session claim.
    this.helloTimer = setTimeout(() => this.helloDeadlinePassed(), deps.options.helloTimeoutMs);
    this.helloTimer.unref();
    this.watchBytesBeforeHelloAck();
    ws.on('message', (data, isBinary) => this.onMessage(isBinary ? null : data.toString()));
    ws.on('close', (code) => void this.end('disconnected', `client closed (${code})`));
    ws.on('error', (err) => this.log.warn('socket error', { error: err }));
  }

  /**
   * ws buffers a whole frame (up to maxPayload) before it emits 'message', so a size check there is
   * too late. Until hello_ack, this listener — prepended, so it runs before ws's own on each chunk —
   * counts raw bytes and refuses the socket with 1009 once more than MAX_BYTES_BEFORE_HELLO_ACK came.
   * This also bounds, in bytes, the frames queued while the hello is being verified and claimed.
   */
  private watchBytesBeforeHelloAck(): void {
    let received = 0;
    const count = (chunk: Buffer) => {
      received += chunk.length;
      if (received <= MAX_BYTES_BEFORE_HELLO_ACK || this.state === 'closed') return;
      this.log.warn('too many bytes before hello_ack', { bytes: received, limit: MAX_BYTES_BEFORE_HELLO_ACK });
      this.refuse(CloseCode.tooBig, ErrorCode.frameTooLarge,
        `More than ${MAX_BYTES_BEFORE_HELLO_ACK / 1024} KiB arrived before the hello was answered; a hello is far smaller. Send other frames after hello_ack.`);
      this.stopReading();
    };
    this.countBytesBeforeHelloAck = count;
    this.socket.prependListener('data', count);
  }

  private stopWatchingBytes(): void {
    if (this.countBytesBeforeHelloAck) this.socket.off('data', this.countBytesBeforeHelloAck);
    this.countBytesBeforeHelloAck = null;
  }

  /** After a flood: read nothing more, give the close frame a moment to leave, then cut the socket. */
  private stopReading(): void {
    this.ws.pause();
    const cutOff = setTimeout(() => this.ws.terminate(), FLOOD_CLOSE_GRACE_MS);
    cutOff.unref();
    this.ws.once('close', () => clearTimeout(cutOff));
  }

  private helloDeadlinePassed(): void {
    const seconds = this.deps.options.helloTimeoutMs / 1000;
    if (this.state === 'awaiting_hello') return this.refuse(CloseCode.helloTimeout, ErrorCode.helloTimeout, `No hello frame within ${seconds} s.`);
    // Still authenticating: the sign-in service or the session database hangs. A claim that
    // completes later is ended by the lease, so its row never stays `connected`.
    this.log.warn('hello deadline passed', { step: this.lease ? 'claim' : 'verify', deadline_s: seconds });
    if (this.lease) {
      return this.refuse(CloseCode.tryAgainLater, ErrorCode.storeUnavailable,
        `The daemon could not record this session within ${seconds} s (its session database is slow or unreachable); reconnect in a moment.`);
    }
    return this.refuse(CloseCode.tryAgainLater, ErrorCode.authUnavailable,
      `The daemon could not verify the sign-in token within ${seconds} s (the sign-in service is slow or unreachable); reconnect in a moment.`);
  }

  get mode(): 'local' | 'supabase' {
    return this.deps.options.mode;
  }

  get store(): SessionStore {
    return this.deps.store;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** The verified user, once the session row is claimed (null before); follows in-band re-auth. */
  get identity(): Identity | null {
    return this.lease?.holder ?? null;
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
    if (!isObject(frame) || frame.op !== 'hello') return this.refuse(CloseCode.notHello, ErrorCode.helloRequired, 'The first frame must be {"op":"hello", ...}.');
    const tokenFromHeader = HelloFrame.safeParse({ token: this.upgradeBearer ?? undefined, ...frame });
    if (!tokenFromHeader.success) {
      if (!frame.token && !this.upgradeBearer) return this.refuse(CloseCode.tokenInvalid, ErrorCode.tokenInvalid, 'The hello frame carried no token. Sign in, then reconnect.');
      return this.refuse(CloseCode.notHello, ErrorCode.invalidFrame, 'The hello frame is malformed (needs protocol, token and optional client{instance,version}).');
    }
    const hello = tokenFromHeader.data;
    if (!SUPPORTED_PROTOCOL_VERSIONS.includes(hello.protocol)) {
      return this.refuse(CloseCode.protocolUnsupported, ErrorCode.protocolUnsupported,
        `This daemon speaks protocol ${SUPPORTED_PROTOCOL_VERSIONS.join(' or ')}, the client asked for ${hello.protocol}. Update the extension or the daemon so their versions match.`);
    }
    this.protocol = hello.protocol;
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

    const { options } = this.deps;
    const lease = new SessionLease(this.sessionId, { store: this.deps.store, endings: this.deps.endings, log: this.log }, {
      daemonId: options.daemonId,
      maxPerUser: options.maxConnectionsPerUser,
      idleTimeoutSec: options.sessionTimeoutSec,
      heartbeatSec: options.heartbeatSec,
    });
    this.lease = lease;
    let claim: Awaited<ReturnType<SessionLease['claim']>>;
    try {
      claim = await lease.claim(identity, { instance: this.instance, client_version: hello.client?.version ?? null });
    } catch (err) {
      this.log.error('could not record the session', { error: err });
      const message = err instanceof StoreUnavailable ? err.message : 'The daemon could not record this session; it will accept a reconnect once its database is back.';
      return this.refuse(CloseCode.tryAgainLater, ErrorCode.storeUnavailable, message);
    }
    // The socket may have closed while the claim was in flight; the lease then writes the row's final status.
    if ((this.state as State) === 'closed') return;
    if (!claim.ok) {
      return this.refuse(CloseCode.tooManyConnections, ErrorCode.tooManyConnections,
        `This account already has ${claim.active} open connections (the limit is ${this.deps.options.maxConnectionsPerUser}). Close another VS Code window or wait for an idle one to time out.`);
    }
    if (this.isGone()) return void this.end('disconnected', 'client left during hello');

    this.state = 'open';
    this.clearHelloTimer();
    this.stopWatchingBytes();
    this.send({
      op: 'hello_ack', ok: true, session_id: this.sessionId,
      user: { id: identity.userId, email: identity.email },
      expires_at: identity.expiresAt, server: { version: VERSION },
    });
    this.uncork(); // the handshake's answer leaves now, not at the end of the turn
    this.log.info('connected', { user: identity.userId, expires_at: identity.expiresAt });
    lease.start({
      inflight: () => this.inflight.size,
      expiring: (exp) => this.send({ op: 'auth_expiring', expires_at: exp }),
      // Without an in-band re-auth the connection closes at exp, calls in flight or not.
      expired: () => this.close(CloseCode.tokenExpired, 'token expired', 'expired'),
      idle: (idleSeconds) => {
        this.log.info('idle timeout', { idle_s: idleSeconds });
        this.close(CloseCode.idleTimeout, 'idle timeout', 'expired');
      },
      endedElsewhere: () => {
        if (this.state === 'open') this.close(CloseCode.sessionEnded, ErrorCode.sessionEnded, 'disconnected');
      },
    });
    this.onOpen(this);
    for (const queued of this.queuedDuringHello.splice(0)) this.onMessage(queued);
  }

  private dispatch(raw: unknown): void {
    // The common case first, without zod; every other frame (and every invalid one) through ClientFrame.
    const call = validCallToolFrame(raw);
    if (call) {
      this.lease?.activity();
      return this.callTool(call);
    }
    const parsed = ClientFrame.safeParse(raw);
    if (!parsed.success) {
      // Only a valid request_id is echoed back: an oversized or non-string one is left out.
      const requestId = isObject(raw) && RequestId.safeParse(raw.request_id).success ? (raw.request_id as string) : undefined;
      const op = isObject(raw) ? raw.op : undefined;
      const known = typeof op === 'string' && ['hello', 'auth', 'list_tools', 'call_tool', 'cancel', 'ping', 'set_provider_key', 'remove_provider_key'].includes(op);
      const issues = parsed.error.issues.slice(0, MAX_ISSUES_REPORTED).map((i) => `${i.path.join('.') || 'frame'}: ${i.message}`).join('; ');
      const error: WireError = known
        ? { code: ErrorCode.invalidFrame, message: shortened(`Malformed ${op} frame: ${issues}`) }
        : { code: ErrorCode.unknownOp, message: `Unknown op ${describeOp(op)}. Known ops: auth, list_tools, call_tool, cancel, ping, set_provider_key, remove_provider_key.` };
      return this.send({ op: 'error', request_id: requestId, error });
    }
    const frame = parsed.data;
    switch (frame.op) {
      case 'hello':
        return this.send({ op: 'error', error: { code: ErrorCode.invalidFrame, message: 'This connection already said hello; use op "auth" to present a new token.' } });
      case 'auth':
        return void this.reauthenticate(frame);
      // Only work counts as activity: pings and re-auth (the extension sends both by itself) do not.
      case 'list_tools':
        this.lease?.activity();
        return this.send({ op: 'list_tools_res', request_id: frame.request_id, tools: this.deps.tools.list() });
      case 'call_tool':
        this.lease?.activity();
        return this.callTool(frame);
      case 'cancel': {
        const call = this.inflight.get(frame.request_id);
        if (call) this.lease?.activity();
        call?.controller.abort();
        return this.send({ op: 'cancel_ack', request_id: frame.request_id, ok: call !== undefined });
      }
      case 'ping':
        return this.send({ op: 'pong', request_id: frame.request_id });
      case 'set_provider_key':
      case 'remove_provider_key':
        return this.providerKey(frame);
    }
  }

  /** Local mode: this connection proved the local secret in its hello (server/tools/providerKeys.ts). */
  private providerKey(frame: SetProviderKeyFrame | RemoveProviderKeyFrame): void {
    const keys = this.deps.options.mode === 'local' ? this.deps.providerKeys : null;
    if (!keys) {
      this.log.warn('refused a provider key from a client: this daemon keeps its own', { op: frame.op, provider: frame.provider });
      return this.send({ op: 'provider_key_ack', request_id: frame.request_id, ok: false,
        error: { code: ErrorCode.notAllowed, message: 'This daemon is shared (supabase mode) and uses the provider keys of its own environment; a client cannot set them. Ask the daemon\'s operator to configure the provider.' } });
    }
    try {
      const providers = frame.op === 'set_provider_key' ? keys.set(frame.provider, frame.api_key, frame.base_url) : keys.remove(frame.provider);
      this.send({ op: 'provider_key_ack', request_id: frame.request_id, ok: true, providers });
    } catch (err) {
      if (!(err instanceof ProviderKeyRejected)) throw err;
      this.send({ op: 'provider_key_ack', request_id: frame.request_id, ok: false, error: { code: ErrorCode.invalidArguments, message: err.message } });
    }
  }

  // ------------------------------------------------------------------ re-auth

  private async reauthenticate(frame: AuthFrame): Promise<void> {
    let next: Identity;
    try {
      next = await this.deps.verifier.verify(frame.token);
    } catch (err) {
      const rejected = err instanceof TokenRejected ? err : new TokenRejected('token_invalid', 'The token could not be verified.');
      return this.send({ op: 'auth_ack', request_id: frame.request_id, ok: false, error: { code: rejected.code, message: rejected.message } });
    }
    if (this.state !== 'open' || !this.lease) return;
    if (!this.lease.renew(next, 'any')) {
      this.log.warn('re-auth refused: token of another user');
      return this.send({
        op: 'auth_ack', request_id: frame.request_id, ok: false,
        error: { code: ErrorCode.userMismatch, message: 'That token belongs to a different user; this connection stays signed in as before. Reconnect to switch users.' },
      });
    }
    this.log.info('re-authenticated', { expires_at: next.expiresAt });
    this.send({ op: 'auth_ack', request_id: frame.request_id, ok: true, expires_at: next.expiresAt });
  }

  // ------------------------------------------------------------------ tool calls

  private callTool(frame: CallToolFrame): void {
    const id = frame.request_id;
    const done = this.completed.get(id);
    if (done?.kept) return this.sendText(done.text);
    if (done) {
      return this.send({ op: 'call_tool_res', request_id: id, ok: false,
        error: { code: ErrorCode.resultUnavailable, message: `The result of request ${id} is no longer available: the daemon keeps finished results within a memory bound, and this one was too big or was dropped to make room. Send the call again with a new request_id to run it again.` } });
    }
    const running = this.inflight.get(id);
    if (running) {
      this.acknowledge(running);
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
    const call: InflightCall = { id, controller: new AbortController(), result: null!, ackDue: false, name: frame.name };
    this.acknowledge(call);
    call.result = this.deps.tools
      .call(frame.name, frame.arguments, new CallContext(this, call))
      .then((outcome) => {
        const res: CallToolResult = !outcome.ok && call.controller.signal.reason === SHUTDOWN
          ? { op: 'call_tool_res', request_id: id, ok: false,
              error: { code: ErrorCode.shuttingDown, message: `The daemon is shutting down and cancelled this ${frame.name} call, which was still running; run it again once EXAI has reconnected.` } }
          : { op: 'call_tool_res', request_id: id, ...outcome };
        this.answer(call, res);
        return res;
      });
    this.inflight.set(id, call);
  }

  /** The call's result: sent first; the dedup entry is written after, off the round trip. */
  private answer(call: InflightCall, res: CallToolResult): void {
    call.ackDue = false; // the result answers for the ack
    this.inflight.delete(call.id);
    const text = JSON.stringify(res);
    this.sendText(text);
    // The last call of the turn answered (none running, so no ack is due): send now, not at the turn's end.
    if (this.inflight.size === 0) this.uncork();
    if (this.state !== 'closed') this.completed.set(call.id, text);
  }

  /** @internal CallContext.progress: the ack always comes before the call's progress. */
  callProgress(call: InflightCall, message: string): void {
    if (call.controller.signal.aborted) return;
    if (call.ackDue) this.sendAck(call);
    this.send({ op: 'progress', request_id: call.id, message });
  }

  /** @internal CallContext.log: a logger for one call, made only when the call logs. */
  callLogger(call: InflightCall): Logger {
    return this.log.child({ request_id: call.id, tool: call.name });
  }

  /** Protocol 3: at the end of the turn, if the call is still running then; protocol 2: now. */
  private acknowledge(call: InflightCall): void {
    if (this.protocol < 3) return this.sendAck(call);
    call.ackDue = true;
    this.acksDue.push(call);
    this.cork();
  }

  private sendAck(call: InflightCall): void {
    call.ackDue = false;
    this.send({ op: 'call_tool_ack', request_id: call.id, name: call.name });
  }

  // ------------------------------------------------------------------ frames out, closing

  send(frame: ServerFrame): void {
    this.sendText(JSON.stringify(frame));
  }

  /**
   * Holds this turn's frames back until the end of the event-loop turn (setImmediate): then the
   * acks still due are sent (protocol 3) and everything leaves in one write, where each frame was
   * one system call before. The slow-reader bound still counts corked bytes (ws.bufferedAmount).
   */
  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    this.uncorkAtTurnEnd = setImmediate(() => {
      this.uncorkAtTurnEnd = null;
      this.uncork();
    });
  }

  private uncork(): void {
    if (!this.corked) return;
    if (this.uncorkAtTurnEnd) clearImmediate(this.uncorkAtTurnEnd);
    this.uncorkAtTurnEnd = null;
    if (this.acksDue.length > 0) {
      const due = this.acksDue;
      this.acksDue = [];
      for (const call of due) if (call.ackDue && this.state !== 'closed') this.sendAck(call);
    }
    this.corked = false;
    this.socket.uncork();
  }

  /**
   * A client that stops reading must not make the daemon queue replies without bound: when more
   * than maxBufferedBytes already wait in the socket, the connection closes with 4010 instead.
   */
  private sendText(text: string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.cork();
    const waiting = this.ws.bufferedAmount;
    if (waiting > this.deps.options.maxBufferedBytes) {
      this.log.warn('client is not reading its replies', { buffered_bytes: waiting, limit: this.deps.options.maxBufferedBytes });
      this.close(CloseCode.clientNotReading, ErrorCode.clientNotReading, 'disconnected');
      return this.stopReading();
    }
    this.ws.send(text);
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

  close(code: CloseCode, reason: string, status: FinalStatus): void {
    if (this.state === 'closed') return;
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, reason.slice(0, 120));
    void this.end(status, reason);
  }

  private isGone(): boolean {
    return this.state === 'closed' || this.ws.readyState !== this.ws.OPEN;
  }

  /** Runs once: stops the hello and the calls, ends the lease (the row's final status), reports. */
  private async end(status: FinalStatus, reason: string): Promise<void> {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    this.clearHelloTimer();
    this.stopWatchingBytes();
    this.completed.clear();
    for (const call of this.inflight.values()) call.controller.abort();
    if (wasOpen) this.log.info('closed', { status, reason });
    // Waits for a claim still in flight; an ending the store cannot take now waits in the daemon-wide queue.
    await this.lease?.end(status);
    this.onClosed(this);
    this.resolveFinished();
  }

  private clearHelloTimer(): void {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
  }
}

/**
 * What a tool sees of the call and its connection. A class, so a call costs one small object with
 * its accessors on the prototype (an object literal with getters and closures was built per call).
 */
class CallContext implements ToolContext {
  constructor(private readonly connection: Connection, private readonly call: InflightCall) {}

  /** Follows in-band re-auth. */
  get identity(): Identity {
    return this.connection.identity!;
  }

  get sessionId(): string {
    return this.connection.sessionId;
  }

  get instance(): string | null {
    return this.connection.instance;
  }

  get mode(): 'local' | 'supabase' {
    return this.connection.mode;
  }

  get store(): SessionStore {
    return this.connection.store;
  }

  get signal(): AbortSignal {
    return this.call.controller.signal;
  }

  private callLog: Logger | null = null;

  /** Only a call that logs pays for its child logger. */
  get log(): Logger {
    return (this.callLog ??= this.connection.callLogger(this.call));
  }

  progress(message: string): void {
    this.connection.callProgress(this.call, message);
  }
}

/** Resolves when every promise has settled or after `ms`, whichever is first. */
async function settledWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.allSettled(promises), new Promise((r) => (timer = setTimeout(r, Math.max(0, ms))))]);
  clearTimeout(timer);
}

/** An unknown op for an error message: quoted when short, described otherwise (never echoed whole). */
function describeOp(op: unknown): string {
  if (typeof op === 'string') return op.length <= MAX_QUOTED_OP_CHARS ? JSON.stringify(op) : `(a ${op.length}-character string)`;
  if (op === undefined || op === null || typeof op === 'number' || typeof op === 'boolean') return shortened(JSON.stringify(op ?? null), MAX_QUOTED_OP_CHARS);
  return Array.isArray(op) ? '(an array)' : '(an object)';
}

function isObject(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
