// The WebSocket client of one VS Code window (protocol: docs/protocol.md, shapes: server/protocol.ts).
// Plain Node, no 'vscode': the extension renders `state` and passes the user's actions in.
//
// Every request carries its own request_id and every reply is routed by it, so any number of calls
// may be in flight at once. (The original client read "the next frame" as the answer to its request
// and mixed up concurrent calls.)
import crypto from 'node:crypto';
import type WebSocket from 'ws';
import { CloseCode, PROTOCOL_VERSION } from '../../server/protocolCodes';
import type {
  AuthFrame, CallToolFrame, ClientFrame, ConfiguredProvider, HelloFrame, ProviderKeyName, ServerFrame,
  TextOutput, ToolDescription, WireError, WireUser,
} from '../../server/protocol';
import { isLoopbackHost } from '../../server/net';
import { webSocketClass } from '../lazyModules';
import type { CrashGuard } from './launcher';

export type ClientState =
  | { kind: 'connecting'; attempt: number }
  | { kind: 'connected'; sessionId: string; user: WireUser; expiresAt: number | null; serverVersion: string }
  | { kind: 'reconnecting'; attempt: number; delayMs: number; reason: string }
  /** The daemon closed the connection as idle (4005); the next call reconnects first. */
  | { kind: 'idle'; reason: string }
  | { kind: 'error'; code: string; message: string; closeCode?: number; retrying: boolean }
  | { kind: 'stopped' };

export type CallToolOutcome = { ok: true; outputs: TextOutput[] } | { ok: false; error: WireError };
export type ReauthOutcome = { ok: true; expiresAt: number | null } | { ok: false; code: string; message: string };

export interface Disposable {
  dispose(): void;
}

export interface ClientLog {
  info(m: string): void;
  warn(m: string): void;
  error(m: string): void;
}

export interface DaemonClientOptions {
  /** Where to connect and with which token; called before every attempt (the launcher runs here). */
  endpoint: () => Promise<{ url: string; token: string }>;
  /** Names this window in the daemon's logs. */
  instance: string;
  clientVersion: string;
  log: ClientLog;
  backoff?: { baseMs: number; maxMs: number };
  /** Jitter source, [0, 1). Tests pass a constant. */
  random?: () => number;
  /** Called on close 4004: refresh the token so the next endpoint() returns a fresh one. */
  onTokenExpired?: () => Promise<void>;
  /** Counts daemon crashes (connection lost after hello, failed starts); stops retrying when it trips. */
  crashGuard?: CrashGuard;
  /** Overrides for tests; the defaults are the protocol's. */
  timing?: Partial<Timing>;
}

export interface Timing {
  /** WebSocket upgrade + hello_ack. */
  helloMs: number;
  /** auth_ack, list_tools_res. */
  requestMs: number;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  /**
   * Retry delay after 4008 (too many connections). A killed daemon's rows stop counting 45 s after
   * their last heartbeat (public.mcp_session_stale_after()); retrying every 10 s lets the window in
   * within a minute of the kill, at the cost of one refused hello per 10 s while the user is full.
   */
  slowRetryMs: number;
  /** A call on an idle client waits this long for the reconnect before it fails as not connected. */
  wakeMs: number;
  /** After a cancel, how long to wait for the daemon's `cancelled` result before giving up on it. */
  cancelGraceMs: number;
}

export const DEFAULT_TIMING: Readonly<Timing> = {
  helloMs: 15_000,
  requestMs: 15_000,
  pingIntervalMs: 30_000,
  pongTimeoutMs: 10_000,
  slowRetryMs: 10_000,
  wakeMs: 30_000,
  cancelGraceMs: 5_000,
};

/** A request that never got a reply from the daemon (the daemon's own refusals resolve as ok:false). */
export class DaemonRequestError extends Error {
  override name = 'DaemonRequestError';
  constructor(
    readonly code: 'not_connected' | 'connection_lost' | 'stopped' | 'timeout' | string,
    message: string,
  ) {
    super(message);
  }
}

/** Full jitter: a uniformly random delay in [0, min(maxMs, baseMs * 2^retry)), retry counted from 0. */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random: () => number): number {
  return random() * Math.min(maxMs, baseMs * 2 ** retry);
}


interface Pending {
  onFrame(frame: ServerFrame): void;
  fail(err: DaemonRequestError): void;
}

/** One WebSocket and everything tied to it; events of a link that is no longer current are ignored. */
interface Link {
  ws: WebSocket;
  helloTimer: NodeJS.Timeout | null;
  pingTimer: NodeJS.Timeout | null;
  pongTimer: NodeJS.Timeout | null;
  pingSeq: number;
  awaitingPong: string | null;
  helloError: WireError | null;
  shutdownMessage: string | null;
  /** Why we ended it ourselves (hello timeout, no pong), or the socket error. */
  localReason: string | null;
  connected: boolean;
}

class Emitter<T> {
  private readonly listeners = new Set<(value: T) => void>();
  constructor(private readonly log: ClientLog) {}
  on(listener: (value: T) => void): Disposable {
    this.listeners.add(listener);
    return { dispose: () => void this.listeners.delete(listener) };
  }
  fire(value: T): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(value);
      } catch (err) {
        this.log.error(`a listener failed: ${(err as Error).message}`);
      }
    }
  }
}

export class DaemonClient {
  private current: ClientState = { kind: 'stopped' };
  private running = false;
  /** Bumped by every connect, stop and reconnectNow: a slower async step of an older attempt sees it changed and gives up. */
  private gen = 0;
  private link: Link | null = null;
  private retries = 0; // consecutive failed attempts; reset by a successful hello
  private expiredInARow = 0; // 4004 closes without a successful hello in between
  private retryTimer: NodeJS.Timeout | null = null;
  /** The reconnect an idle client makes for the calls that woke it; they all wait for this one. */
  private waking: Promise<void> | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly stateEmitter: Emitter<ClientState>;
  private readonly expiringEmitter: Emitter<number>;
  private readonly timing: Timing;
  private readonly backoff: { baseMs: number; maxMs: number };
  private readonly random: () => number;

  constructor(private readonly opts: DaemonClientOptions) {
    this.stateEmitter = new Emitter(opts.log);
    this.expiringEmitter = new Emitter(opts.log);
    this.timing = { ...DEFAULT_TIMING, ...opts.timing };
    this.backoff = opts.backoff ?? { baseMs: 500, maxMs: 30_000 };
    this.random = opts.random ?? Math.random;
  }

  get state(): ClientState {
    return this.current;
  }

  onState(listener: (state: ClientState) => void): Disposable {
    return this.stateEmitter.on(listener);
  }

  /** `auth_expiring`: the token expires at `expiresAt` (unix s); call reauthenticate() with a fresh one. */
  onAuthExpiring(listener: (expiresAt: number) => void): Disposable {
    return this.expiringEmitter.on(listener);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.connect();
  }

  /** Closes with 1000 and stays stopped; calls in flight reject. */
  stop(): void {
    this.running = false;
    this.gen++;
    this.clearRetry();
    this.dropLink('EXAI was stopped while this request was in flight; it was not resent.', 'stopped');
    this.setState({ kind: 'stopped' });
  }

  /** The user's "Reconnect": forgets past failures and connects again at once (also after errors that are not retried). */
  reconnectNow(): void {
    this.running = true;
    this.retries = 0;
    this.expiredInARow = 0;
    this.opts.crashGuard?.reset();
    this.clearRetry();
    this.dropLink('The connection was restarted (reconnect requested) while this request was in flight; it was not resent.', 'connection_lost');
    void this.connect();
  }

  // ---------------------------------------------------------------- requests

  /** A call on an idle client reconnects first, then goes through (the call is what "used" means). */
  async callTool(name: string, args: Record<string, unknown> = {}, options: { signal?: AbortSignal; onProgress?: (message: string) => void } = {}): Promise<CallToolOutcome> {
    const { signal, onProgress } = options;
    const cancelledBeforeSent: CallToolOutcome = { ok: false, error: { code: 'cancelled', message: 'The call was cancelled before it was sent.' } };
    if (signal?.aborted) return cancelledBeforeSent;
    if (!this.openLink()) {
      await this.wakeIfIdle();
      if (!this.openLink()) throw this.notConnected();
      if (signal?.aborted) return cancelledBeforeSent;
    }
    // From here on synchronous up to the send: the link checked above is the one the call goes to.

    const requestId = crypto.randomUUID();
    return new Promise<CallToolOutcome>((resolve, reject) => {
      let graceTimer: NodeJS.Timeout | null = null;
      const done = () => {
        this.pending.delete(requestId);
        signal?.removeEventListener('abort', onAbort);
        if (graceTimer) clearTimeout(graceTimer);
      };
      const onAbort = () => {
        this.send({ op: 'cancel', request_id: requestId });
        // The daemon answers a cancel with a `cancelled` result; don't wait forever if it can't.
        graceTimer = setTimeout(() => {
          done();
          resolve({ ok: false, error: { code: 'cancelled', message: 'The call was cancelled (the daemon did not confirm it).' } });
        }, this.timing.cancelGraceMs);
      };
      this.pending.set(requestId, {
        onFrame: (frame) => {
          if (frame.op === 'progress') return onProgress?.(frame.message);
          if (frame.op === 'call_tool_res') {
            done();
            return resolve(frame.ok ? { ok: true, outputs: frame.outputs } : { ok: false, error: frame.error });
          }
          if (frame.op === 'error') {
            done();
            return resolve({ ok: false, error: frame.error });
          }
        },
        fail: (err) => {
          done();
          reject(err);
        },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      const frame: CallToolFrame = { op: 'call_tool', request_id: requestId, name, arguments: args };
      this.send(frame);
    });
  }

  listTools(): Promise<ToolDescription[]> {
    return this.request((request_id) => ({ op: 'list_tools', request_id }), 'list its tools', (frame) =>
      frame.op === 'list_tools_res' ? { value: frame.tools } : undefined, { wake: true });
  }

  /**
   * Local mode: gives the daemon one provider's key (null: removes the key this or another window set).
   * Resolves with the daemon's configured providers (never a key); rejects with the daemon's sentence.
   */
  async setProviderKey(provider: ProviderKeyName, key: { apiKey: string; baseUrl?: string } | null): Promise<ConfiguredProvider[]> {
    const ack = await this.request(
      (request_id): ClientFrame => key
        ? { op: 'set_provider_key', request_id, provider, api_key: key.apiKey, ...(key.baseUrl ? { base_url: key.baseUrl } : {}) }
        : { op: 'remove_provider_key', request_id, provider },
      'answer the provider key', (frame) => (frame.op === 'provider_key_ack' ? { value: frame } : undefined), { wake: true });
    if (!ack.ok) throw new DaemonRequestError(ack.error.code, ack.error.message);
    return ack.providers;
  }

  /** Presents a refreshed token on the open connection (answer to auth_expiring). Never rejects. */
  async reauthenticate(token: string): Promise<ReauthOutcome> {
    const link = this.openLink();
    try {
      const ack = await this.request((request_id): AuthFrame => ({ op: 'auth', request_id, token }), 'answer the re-authentication', (frame) =>
        frame.op === 'auth_ack' ? { value: frame } : undefined);
      if (!ack.ok) return { ok: false, code: ack.error.code, message: ack.error.message };
      if (this.current.kind === 'connected' && this.link === link) this.setState({ ...this.current, expiresAt: ack.expires_at });
      return { ok: true, expiresAt: ack.expires_at };
    } catch (err) {
      const e = err as DaemonRequestError;
      return { ok: false, code: e.code, message: e.message };
    }
  }

  /**
   * Sends one request and settles with the reply routed to its request_id (an `error` frame for it
   * rejects); bounded by the request timeout, and rejected if the connection goes away. `wake`: the
   * request is a use of the connection (not upkeep such as re-authentication), so an idle client
   * reconnects for it.
   */
  private async request<T>(frame: (requestId: string) => ClientFrame, what: string, reply: (frame: ServerFrame) => { value: T } | undefined, opts: { wake?: boolean } = {}): Promise<T> {
    if (!this.openLink() && opts.wake) await this.wakeIfIdle();
    if (!this.openLink()) throw this.notConnected();
    const requestId = crypto.randomUUID();
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new DaemonRequestError('timeout', `The EXAI daemon did not ${what} within ${this.timing.requestMs / 1000} s.`));
      }, this.timing.requestMs);
      const done = () => {
        clearTimeout(timer);
        this.pending.delete(requestId);
      };
      this.pending.set(requestId, {
        onFrame: (f) => {
          const answer = reply(f);
          if (answer) {
            done();
            resolve(answer.value);
          } else if (f.op === 'error') {
            done();
            reject(new DaemonRequestError(f.error.code, f.error.message));
          }
        },
        fail: (err) => {
          done();
          reject(err);
        },
      });
      this.send(frame(requestId));
    });
  }

  // ---------------------------------------------------------------- connecting

  private async connect(): Promise<void> {
    const gen = ++this.gen;
    this.clearRetry();
    this.setState({ kind: 'connecting', attempt: this.retries });

    let endpoint: { url: string; token: string };
    try {
      endpoint = await this.opts.endpoint();
    } catch (err) {
      if (gen === this.gen && this.running) this.onEndpointFailed(err);
      return;
    }
    if (gen !== this.gen || !this.running) return; // stopped or restarted meanwhile

    let url: URL;
    try {
      url = new URL(endpoint.url);
    } catch {
      return this.fail('bad_url', `The EXAI daemon address "${endpoint.url}" is not a valid URL; expected ws://127.0.0.1:<port>/ or wss://<host>/.`, false);
    }
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
      return this.fail('bad_url', `The EXAI daemon address must start with ws:// or wss:// (got ${url.protocol}//${url.host}).`, false);
    }
    if (url.protocol === 'ws:' && !isLoopbackHost(url.hostname)) {
      return this.fail('insecure_url', `Refusing to send your sign-in token over unencrypted ws:// to ${url.hostname}; use wss:// for a remote daemon.`, false);
    }

    const where = `${url.protocol}//${url.host}${url.pathname}`; // never the query or userinfo
    this.opts.log.info(`connecting to ${where} (attempt ${this.retries}, token ${endpoint.token ? 'present' : 'missing'})`);
    const ws = new (webSocketClass())(url, { handshakeTimeout: this.timing.helloMs, perMessageDeflate: false });
    const link: Link = {
      ws, helloTimer: null, pingTimer: null, pongTimer: null, pingSeq: 0, awaitingPong: null,
      helloError: null, shutdownMessage: null, localReason: null, connected: false,
    };
    this.link = link;

    // Bounds the upgrade and the hello_ack together.
    link.helloTimer = setTimeout(() => {
      link.localReason = `The EXAI daemon did not complete the handshake within ${this.timing.helloMs / 1000} s.`;
      ws.terminate();
    }, this.timing.helloMs);

    ws.on('open', () => {
      if (this.link !== link) return;
      const hello: HelloFrame = { op: 'hello', protocol: PROTOCOL_VERSION, token: endpoint.token, client: { instance: this.opts.instance, version: this.opts.clientVersion } };
      this.send(hello);
    });
    ws.on('message', (data, isBinary) => {
      if (this.link !== link || isBinary) return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(data.toString()) as ServerFrame;
      } catch {
        return this.opts.log.warn('the daemon sent a frame that is not JSON; ignored');
      }
      this.onFrame(link, frame);
    });
    ws.on('error', (err) => {
      if (this.link !== link) return;
      link.localReason ??= `Could not talk to the EXAI daemon (${err.message}).`; // 'close' follows
    });
    ws.on('close', (code, reason) => {
      if (this.link !== link) return;
      void this.onClosed(link, code, reason.toString());
    });
  }

  private onFrame(link: Link, frame: ServerFrame): void {
    switch (frame.op) {
      case 'hello_ack':
        if (link.helloTimer) clearTimeout(link.helloTimer);
        link.helloTimer = null;
        if (!frame.ok) {
          link.helloError = frame.error; // the close (and its code) follows
          return;
        }
        link.connected = true;
        this.retries = 0;
        this.expiredInARow = 0;
        this.opts.log.info(`connected: session ${frame.session_id}, daemon ${frame.server.version}`);
        this.setState({ kind: 'connected', sessionId: frame.session_id, user: frame.user, expiresAt: frame.expires_at, serverVersion: frame.server.version });
        this.startHeartbeat(link);
        return;
      case 'pong':
        if (frame.request_id !== undefined && frame.request_id === link.awaitingPong) {
          link.awaitingPong = null;
          if (link.pongTimer) clearTimeout(link.pongTimer);
          link.pongTimer = null;
        }
        return;
      case 'auth_expiring':
        return this.expiringEmitter.fire(frame.expires_at);
      case 'shutdown':
        link.shutdownMessage = frame.message;
        return this.opts.log.info(`daemon: ${frame.message}`);
      case 'cancel_ack':
      case 'call_tool_ack':
        return; // the call's result follows (protocol 3: a call that finishes at once is answered without an ack)
      default: {
        const id = 'request_id' in frame ? frame.request_id : undefined;
        const pending = id !== undefined ? this.pending.get(id) : undefined;
        if (pending) return pending.onFrame(frame);
        if (frame.op === 'error') this.opts.log.warn(`daemon error: ${frame.error.code}: ${frame.error.message}`);
      }
    }
  }

  private startHeartbeat(link: Link): void {
    link.pingTimer = setInterval(() => {
      if (link.awaitingPong) return;
      const id = `ping-${++link.pingSeq}`;
      link.awaitingPong = id;
      this.send({ op: 'ping', request_id: id });
      link.pongTimer = setTimeout(() => {
        link.localReason = `The EXAI daemon did not answer a ping within ${this.timing.pongTimeoutMs / 1000} s.`;
        this.opts.log.warn(link.localReason);
        link.ws.terminate();
      }, this.timing.pongTimeoutMs);
    }, this.timing.pingIntervalMs);
  }

  private async onClosed(link: Link, code: number, reasonText: string): Promise<void> {
    this.link = null;
    clearLinkTimers(link);
    const what = describeClose(code, reasonText, link);
    this.failPending(new DaemonRequestError('connection_lost', `The connection to the EXAI daemon was lost (${what}) while this request was in flight; it was not resent. Run it again once EXAI has reconnected.`));
    if (!this.running) return;
    this.opts.log.info(`connection closed (${code}): ${what}`);
    const daemonSays = link.helloError?.message ?? reasonText;

    switch (code) {
      case CloseCode.tokenInvalid:
        return this.fail('token_invalid', `The EXAI daemon refused your sign-in${daemonSays ? ` (${daemonSays})` : ''}. Sign in again, then run 'EXAI: Reconnect'.`, false, code);
      case CloseCode.tokenExpired:
        return this.onTokenExpired(code);
      case CloseCode.tooManyConnections:
        return this.fail('too_many_connections', `${daemonSays || 'This account has too many open connections to the EXAI daemon; close another window.'} EXAI tries again in ${Math.round(this.timing.slowRetryMs / 1000)} s.`, true, code, this.timing.slowRetryMs);
      case CloseCode.protocolUnsupported:
        return this.fail('protocol_unsupported', daemonSays || 'The EXAI daemon speaks another protocol version; update the extension or restart the daemon so their versions match.', false, code);
      case CloseCode.idleTimeout:
        // Nothing used this window's connection for the daemon's idle timeout: not an error, and no
        // reason to reconnect now (that would only be closed again). The next use reconnects.
        this.retries = 0;
        return this.setState({ kind: 'idle', reason: what });
    }
    // A socket that dies without a close frame after a good hello: the daemon crashed (or hung).
    if (code === 1006 && link.connected && this.opts.crashGuard && !this.opts.crashGuard.recordCrash()) {
      return this.fail('daemon_crashed', this.opts.crashGuard.message, false, code);
    }
    this.scheduleReconnect(what);
  }

  private async onTokenExpired(code: number): Promise<void> {
    this.expiredInARow++;
    if (this.expiredInARow >= 2) {
      return this.fail('token_expired', "Your sign-in expired and refreshing it did not help. Sign in again, then run 'EXAI: Reconnect'.", false, code);
    }
    const gen = this.gen;
    this.setState({ kind: 'reconnecting', attempt: this.retries, delayMs: 0, reason: 'Your sign-in token expired; refreshing it and reconnecting.' });
    if (this.opts.onTokenExpired) {
      try {
        await withTimeout(this.opts.onTokenExpired(), this.timing.requestMs * 2, 'refreshing the token took too long');
      } catch (err) {
        this.opts.log.warn(`refreshing the token failed: ${(err as Error).message}`);
      }
    }
    if (gen === this.gen && this.running) void this.connect();
  }

  private onEndpointFailed(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    const name = err instanceof Error ? err.name : '';
    this.opts.log.warn(`could not get the daemon's address: ${message}`);
    // Another version is running: retrying cannot help; the UI offers "Restart the daemon".
    if (name === 'DaemonVersionMismatch') return this.fail('version_mismatch', message, false);
    if (name === 'DaemonStartFailed') {
      if (this.opts.crashGuard && !this.opts.crashGuard.recordCrash()) return this.fail('daemon_crashed', `${this.opts.crashGuard.message} Last error: ${message}`, false);
      return this.fail('daemon_start_failed', message, true);
    }
    this.fail('endpoint_failed', `Could not reach the EXAI daemon: ${message}`, true);
  }

  // ---------------------------------------------------------------- retry policy

  private scheduleReconnect(reason: string): void {
    const delayMs = backoffDelay(this.retries, this.backoff.baseMs, this.backoff.maxMs, this.random);
    this.retries++;
    this.setState({ kind: 'reconnecting', attempt: this.retries, delayMs, reason });
    this.retryTimer = setTimeout(() => void this.connect(), delayMs);
  }

  /** Error state; when retrying, the next attempt follows after `delayMs` (default: the backoff). */
  private fail(code: string, message: string, retrying: boolean, closeCode?: number, delayMs?: number): void {
    let text = message;
    if (retrying) {
      const delay = delayMs ?? backoffDelay(this.retries, this.backoff.baseMs, this.backoff.maxMs, this.random);
      this.retries++;
      this.retryTimer = setTimeout(() => void this.connect(), delay);
      if (delayMs === undefined) text = `${message} Retrying in ${formatSeconds(delay)}.`;
    }
    this.opts.log.warn(`${code}: ${text}`);
    this.setState({ kind: 'error', code, message: text, ...(closeCode !== undefined ? { closeCode } : {}), retrying });
  }

  // ---------------------------------------------------------------- plumbing

  private openLink(): Link | null {
    return this.link && this.link.connected && this.link.ws.readyState === this.link.ws.OPEN ? this.link : null;
  }

  /** An idle client (or one already waking for another call) reconnects; resolves once that attempt settled. */
  private async wakeIfIdle(): Promise<void> {
    if (!this.running || (this.current.kind !== 'idle' && !this.waking)) return;
    this.waking ??= this.wake();
    await this.waking;
  }

  /** Reconnects and resolves once that attempt settled (connected, failed, or wakeMs passed). */
  private wake(): Promise<void> {
    this.opts.log.info('the idle connection is used again; reconnecting');
    let sub: Disposable | undefined;
    let timer: NodeJS.Timeout | undefined;
    const settled = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.timing.wakeMs);
      sub = this.onState((s) => s.kind !== 'connecting' && resolve());
    });
    void this.connect();
    return settled.finally(() => {
      clearTimeout(timer);
      sub?.dispose();
      this.waking = null;
    });
  }

  private notConnected(): DaemonRequestError {
    const s = this.current;
    const why = s.kind === 'error' ? s.message : s.kind === 'stopped' ? 'EXAI is stopped' : `EXAI is ${s.kind}`;
    return new DaemonRequestError('not_connected', `Not connected to the EXAI daemon (${why}). Try again once it is connected.`);
  }

  private send(frame: ClientFrame): void {
    const ws = this.link?.ws;
    if (ws && ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
  }

  /** Abandons the current socket (its events are ignored from now on) and fails its requests. */
  private dropLink(message: string, code: string): void {
    const link = this.link;
    this.link = null;
    this.failPending(new DaemonRequestError(code, message));
    if (!link) return;
    clearLinkTimers(link);
    if (link.ws.readyState === link.ws.OPEN) link.ws.close(CloseCode.normal, 'client closed');
    else if (link.ws.readyState === link.ws.CONNECTING) link.ws.terminate(); // close() would throw here
  }

  private failPending(err: DaemonRequestError): void {
    for (const pending of [...this.pending.values()]) pending.fail(err);
    this.pending.clear();
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private setState(state: ClientState): void {
    this.current = state;
    this.stateEmitter.fire(state);
  }
}

function clearLinkTimers(link: Link): void {
  if (link.helloTimer) clearTimeout(link.helloTimer);
  if (link.pingTimer) clearInterval(link.pingTimer);
  if (link.pongTimer) clearTimeout(link.pongTimer);
  link.helloTimer = link.pingTimer = link.pongTimer = null;
}

/** A sentence for the user: why the connection ended. */
function describeClose(code: number, reason: string, link: Link): string {
  if (link.helloError) return `${link.helloError.message} (close ${code})`;
  if (code === CloseCode.goingAway) return link.shutdownMessage ?? 'The EXAI daemon is shutting down.';
  if (code === CloseCode.idleTimeout) return 'The daemon closed the connection because nothing used it for its idle timeout.';
  if (code === CloseCode.sessionEnded) return 'This session was ended outside this window.';
  if (code === CloseCode.clientNotReading) return 'The EXAI daemon closed the connection because this window stopped reading its replies (too many piled up, e.g. while VS Code was busy or suspended).';
  if (code === 1006) return link.localReason ? `${link.localReason}` : 'The connection to the EXAI daemon was lost.';
  return `The EXAI daemon closed the connection (${code}${reason ? `: ${reason}` : ''}).`;
}

function formatSeconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
  ]);
}
