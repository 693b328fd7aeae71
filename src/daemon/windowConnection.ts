// This window's connection to the daemon, as the window's user. It decides where to connect and
// with which token, keeps the token fresh (refresh on a schedule under the account lock, adopt a
// session another window refreshed, send `op:"auth"` so the connection never drops at expiry),
// and turns every state into a Status for the status bar.
import type { Session } from '@supabase/supabase-js';
import { needsRefresh, refreshAheadSec, RefreshUnavailableError, SignedOutError, type Account, type Accounts } from '../auth/accounts';
import type { WindowUser } from '../auth/windowUser';
import type { ExaiConfig } from '../config';
import type { ConfiguredProvider, ProviderKeyName, ToolDescription } from '../../server/protocol';
import { usageTodayOf, type NextAction, type Status, type UsageToday } from '../ui/status';
import { DaemonClient, type CallToolOutcome, type ClientState } from './client';
import type { StoredProviderKey } from './providerKeyStore';
import { CrashGuard, DaemonStartFailed, DaemonVersionMismatch, ensureLocalDaemon, restartLocalDaemon, type LauncherOptions, type LocalDaemon } from './launcher';

export interface WindowConnectionDeps {
  config: ExaiConfig;
  /** null in local mode. */
  accounts: Accounts | null;
  windowUser: WindowUser | null;
  launcher: Omit<LauncherOptions, 'log' | 'supabase'>;
  instance: string;
  version: string;
  log: { info(m: string): void; warn(m: string): void; error(m: string): void; addSecret(v: string | null | undefined): void };
  onStatus(status: Status): void;
  /** A notification the user should see once (sign-out elsewhere, a bad setting). */
  notify(message: string, actions: NextAction[]): void;
  /** The daemon's address as the connection learned it (on every connect); MCP follows it. */
  onDaemonUrl?(url: string): void;
  /** Local mode: the provider keys this window holds, given to the daemon on every connect. */
  providerKeys?: { all(): Promise<[ProviderKeyName, StoredProviderKey][]> };
}

/** Who and where this window's MCP client is, without a token (src/mcp/provider.ts compares these). */
export interface McpIdentity {
  mode: 'local' | 'supabase';
  /** The Supabase project; null in local mode. */
  project: string | null;
  /** The window's account; null in local mode and when the window is signed out. */
  accountId: string | null;
  /** The daemon's ws(s):// address; null while it is not known (signed out, bundled daemon not started). */
  daemonUrl: string | null;
}

/** Where this window's MCP client connects and with which bearer. */
export interface McpBearer {
  daemonUrl: string;
  /** The window user's fresh access token, or the local secret. Never logged. */
  token: string;
  /** For logs and messages: the account's email, or "local". */
  who: string;
}

/** The window cannot offer its MCP server (signed out, a bad setting, a token the daemon refuses): the sentence says what to do. */
export class McpUnavailable extends Error {
  override name = 'McpUnavailable';
  constructor(message: string, readonly action: NextAction) {
    super(message);
  }
}

const REFRESH_RETRY_MS = [5_000, 15_000, 30_000, 60_000];
const SIGNED_OUT_MCP = 'Sign in to EXAI (EXAI: Sign In, or EXAI: Switch User) to use its tools in this window.';
const CLOCK_CHECK_MS = 10_000;
const CLOCK_JUMP_MS = 30_000;

export class WindowConnection {
  private client: DaemonClient | null = null;
  private account: Account | null = null;
  /** The access token the live connection authenticated with (hello or the last auth). */
  private tokenInUse: string | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  private refreshFailures = 0;
  private daemonUrl: string | null = null;
  private readonly crashGuard: CrashGuard;
  private readonly disposables: { dispose(): void }[] = [];
  private clockTimer: NodeJS.Timeout;
  private lastTick = Date.now();
  private stopped = false;
  /** Bumped by every start and stop, so a slower earlier start gives up. */
  private generation = 0;
  /** The window user's usage today, for the status bar tooltip; refreshed on connect and after each call. */
  private usageToday: UsageToday | null = null;
  private usageRefresh: Promise<void> | null = null;
  private usageRefreshAgain = false;
  /** One find-or-spawn at a time for this window: the WebSocket and MCP ask for the daemon at once on start. */
  private ensuring: Promise<LocalDaemon> | null = null;

  constructor(private readonly deps: WindowConnectionDeps) {
    this.crashGuard = new CrashGuard({ logDir: deps.launcher.logDir });
    if (deps.accounts) this.disposables.push(deps.accounts.onDidChange((id) => void this.onStoredSessionChanged(id)));
    if (deps.windowUser) this.disposables.push(deps.windowUser.onDidChange(() => void this.restart('switched user')));
    // Sleep/resume: timers fire late or not at all; a jump in wall-clock time means "re-check now".
    this.clockTimer = setInterval(() => {
      const now = Date.now();
      if (now - this.lastTick > CLOCK_CHECK_MS + CLOCK_JUMP_MS) {
        deps.log.info(`clock jumped ${Math.round((now - this.lastTick) / 1000)} s (sleep/resume?); re-checking the session`);
        // An idle connection stays idle: it reconnects when used, not because the machine woke up.
        void this.refreshNow().then(() => this.client && !['connected', 'idle'].includes(this.client.state.kind) && this.client.reconnectNow());
      }
      this.lastTick = now;
    }, CLOCK_CHECK_MS);
    this.clockTimer.unref?.();
  }

  get mode(): 'local' | 'supabase' {
    return this.deps.config.supabase ? 'supabase' : 'local';
  }

  get clientState(): ClientState | null {
    return this.client?.state ?? null;
  }

  get activeAccount(): Account | null {
    return this.account;
  }

  /** Starts (or restarts) according to the current configuration and window user. */
  async start(): Promise<void> {
    this.stop(); // one client per window, ever: a start replaces whatever ran before
    this.stopped = false;
    const generation = ++this.generation;
    const { config } = this.deps;
    if (config.problems.length) {
      this.deps.onStatus({ kind: 'error', who: null, message: config.problems[0], actions: ['openSettings', 'showLog'] });
      this.deps.notify(config.problems.join(' '), ['openSettings']);
      return;
    }
    if (config.supabase) {
      const account = await this.deps.windowUser!.resolve();
      if (generation !== this.generation) return; // a later start (or stop) took over meanwhile
      this.account = account;
      if (!this.account) {
        this.deps.onStatus({ kind: 'signed_out' });
        return;
      }
    }
    this.connect();
  }

  async restart(why: string): Promise<void> {
    this.deps.log.info(`reconnecting: ${why}`);
    await this.start();
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    this.clearRefreshTimer();
    this.client?.stop();
    this.client = null;
    this.tokenInUse = null;
    this.usageToday = null;
  }

  reconnectNow(): void {
    this.crashGuard.reset();
    if (this.client) this.client.reconnectNow();
    else void this.start();
  }

  async restartDaemon(): Promise<void> {
    const account = this.account;
    this.stop();
    // Supabase mode: the user's token can prove which process the daemon is where nothing else can.
    const userToken = account && this.deps.accounts ? async () => (await this.deps.accounts!.freshSession(account.id)).access_token : undefined;
    const daemon = await restartLocalDaemon({ ...this.deps.launcher, supabase: this.deps.config.supabase, log: (m) => this.deps.log.info(m) }, userToken);
    this.deps.log.info(`daemon restarted (pid ${daemon.pid})`);
    await this.start();
  }

  async listTools(): Promise<ToolDescription[]> {
    if (!this.client) throw new Error('EXAI is not connected. Sign in or reconnect first.');
    return this.client.listTools();
  }

  callTool(name: string, args: Record<string, unknown> = {}, options: { signal?: AbortSignal } = {}): Promise<CallToolOutcome> {
    if (!this.client) return Promise.resolve({ ok: false, error: { code: 'not_connected', message: 'EXAI is not connected. Sign in or reconnect first.' } });
    // Transport failures (connection lost mid-call) reject in the client; callers get one shape.
    return this.client.callTool(name, args, options).catch((err: Error & { code?: string }) => ({
      ok: false as const,
      error: { code: err.code ?? 'connection_lost', message: err.message },
    })).finally(() => {
      if (name !== 'usage') this.refreshUsage();
    });
  }

  /** Asks the daemon for the user's usage today and shows it in the tooltip; one request at a time. */
  private refreshUsage(): void {
    if (this.usageRefresh) {
      this.usageRefreshAgain = true;
      return;
    }
    const client = this.client;
    if (!client || client.state.kind !== 'connected') return;
    this.usageRefresh = client.callTool('usage', {})
      .then((outcome) => {
        // A daemon without the tool (older) or a failed call: the tooltip just has no usage line.
        const usage = outcome.ok ? usageTodayOf(outcome.outputs.map((o) => o.text).join('')) : null;
        // Nothing to say before the first call of the day, unless there is a budget.
        const shown = usage && (usage.calls > 0 || usage.budget) ? usage : null;
        if (client !== this.client || !shown || JSON.stringify(shown) === JSON.stringify(this.usageToday)) return;
        this.usageToday = shown;
        if (client.state.kind === 'connected') this.onClientState(client, client.state);
      }, () => {})
      .finally(() => {
        this.usageRefresh = null;
        if (this.usageRefreshAgain) {
          this.usageRefreshAgain = false;
          this.refreshUsage();
        }
      });
  }

  // ------------------------------------------------------------------ provider keys (local mode)

  /**
   * Gives the daemon one provider's key (null: removes it) and returns its configured providers.
   * Only a daemon on this machine in local mode takes keys from a window; a shared daemon keeps its own.
   */
  async setProviderKey(provider: ProviderKeyName, key: StoredProviderKey | null): Promise<ConfiguredProvider[]> {
    if (this.mode !== 'local') {
      throw new Error('This window uses a shared EXAI daemon (Supabase accounts), which uses the provider keys of its own environment; ask its operator to configure the provider.');
    }
    if (!this.client) throw new Error('EXAI is not running in this window; run \'EXAI: Reconnect\', then set the key again.');
    return this.client.setProviderKey(provider, key);
  }

  /** After each connect: the daemon may be new (spawned, restarted), so it gets every key this window holds. */
  private async pushProviderKeys(client: DaemonClient): Promise<void> {
    const keys = await this.deps.providerKeys?.all().catch((err: Error) => {
      this.deps.log.warn(`could not read the provider keys from VS Code's secret storage: ${err.message}`);
      return [];
    }) ?? [];
    for (const [provider, key] of keys) {
      if (client !== this.client) return;
      this.deps.log.addSecret(key.apiKey);
      try {
        await client.setProviderKey(provider, key);
        this.deps.log.info(`gave the daemon the ${provider} provider key`);
      } catch (err) {
        this.deps.log.warn(`the daemon did not take the ${provider} provider key: ${(err as Error).message} Run 'EXAI: Set Provider Key' to set it again.`);
      }
    }
  }

  // ------------------------------------------------------------------ connecting

  private connect(): void {
    const client = new DaemonClient({
      endpoint: () => this.endpoint(),
      instance: this.deps.instance,
      clientVersion: this.deps.version,
      log: this.deps.log,
      crashGuard: this.mode === 'local' ? this.crashGuard : undefined,
      onTokenExpired: () => this.onTokenExpired(),
    });
    this.client = client;
    client.onState((state) => {
      this.onClientState(client, state);
      if (state.kind === 'connected') this.refreshUsage();
      if (state.kind === 'connected' && this.mode === 'local') void this.pushProviderKeys(client);
    });
    client.onAuthExpiring(() => void this.onAuthExpiring());
    client.start();
  }

  private async endpoint(): Promise<{ url: string; token: string }> {
    const { config } = this.deps;
    if (!config.supabase) {
      const daemon = await this.localDaemon();
      this.tokenInUse = daemon.secret;
      return { url: daemon.url, token: daemon.secret! };
    }
    const session = await this.freshSession();
    const url = await this.daemonAddress();
    this.learnDaemonUrl(url);
    this.tokenInUse = session.access_token;
    return { url, token: session.access_token };
  }

  /**
   * The configured team daemon, or the bundled one (found or started). No team daemon configured in
   * supabase mode: the bundled one, with only the project URL and the public anon key; it acts in the
   * database with each connection's own token.
   */
  private async daemonAddress(): Promise<string> {
    return this.deps.config.daemonUrl ?? (await this.localDaemon()).url;
  }

  private localDaemon(): Promise<LocalDaemon> {
    this.ensuring ??= ensureLocalDaemon({ ...this.deps.launcher, supabase: this.deps.config.supabase, log: (m) => this.deps.log.info(m) })
      .then((daemon) => {
        this.deps.log.addSecret(daemon.secret);
        this.learnDaemonUrl(daemon.url);
        return daemon;
      })
      .finally(() => (this.ensuring = null));
    return this.ensuring;
  }

  private learnDaemonUrl(url: string): void {
    const changed = url !== this.daemonUrl;
    this.daemonUrl = url;
    if (changed) this.deps.onDaemonUrl?.(url);
  }

  // ------------------------------------------------------------------ MCP (src/mcp/provider.ts)

  /**
   * Who and where the window's MCP client would be now. Starts the bundled daemon only for a window
   * that can use it (local mode, or an account), as connecting would.
   */
  async mcpIdentity(): Promise<McpIdentity> {
    const { config } = this.deps;
    const project = config.supabase?.url ?? null;
    if (config.problems.length) return { mode: this.mode, project, accountId: null, daemonUrl: null };
    const account = config.supabase ? await this.deps.windowUser!.resolve() : null;
    if (config.supabase && !account) return { mode: this.mode, project, accountId: null, daemonUrl: config.daemonUrl };
    return { mode: this.mode, project, accountId: account?.id ?? null, daemonUrl: config.daemonUrl ?? this.daemonUrl ?? (await this.localDaemon()).url };
  }

  /**
   * The daemon and a bearer for this window's MCP client: the local secret, or the window user's
   * access token from the same refresh-or-adopt path as the WebSocket (Accounts.freshSession, under
   * the account's lock), so the two never refresh one refresh token independently.
   */
  async mcpBearer(): Promise<McpBearer> {
    const { config } = this.deps;
    if (config.problems.length) throw new McpUnavailable(`EXAI's settings need fixing before its tools can run: ${config.problems[0]}`, 'openSettings');
    if (!config.supabase) {
      const daemon = await this.localDaemon();
      return { daemonUrl: daemon.url, token: daemon.secret!, who: 'local' };
    }
    const account = await this.deps.windowUser!.resolve();
    if (!account) throw new McpUnavailable(SIGNED_OUT_MCP, 'signIn');
    const state = this.client?.state;
    // A token the daemon refuses would meet a 401, which VS Code answers with an OAuth dialog EXAI cannot complete.
    if (account.id === this.account?.id && state?.kind === 'error' && (state.code === 'token_invalid' || state.code === 'token_expired')) {
      throw new McpUnavailable(`The EXAI daemon refused the sign-in of ${account.email}: ${state.message}`, 'signIn');
    }
    const ours = account.id === this.account?.id;
    let session: Session;
    try {
      session = await this.deps.accounts!.freshSession(account.id);
    } catch (err) {
      if (!(err instanceof SignedOutError)) throw err;
      if (ours) this.onSignedOut(err.message);
      throw new McpUnavailable(`${account.email} is signed out. ${SIGNED_OUT_MCP}`, 'signIn');
    }
    // Refreshed here: the window's WebSocket moves to the new token at once too (it would adopt it from the store anyway).
    if (ours) void this.present(session);
    return { daemonUrl: await this.daemonAddress(), token: session.access_token, who: account.email };
  }

  private onClientState(client: DaemonClient, state: ClientState): void {
    if (client !== this.client || this.stopped) return;
    const who = this.mode === 'local' ? null : this.account?.email ?? null;
    switch (state.kind) {
      case 'connecting':
        return this.deps.onStatus({ kind: 'connecting', who, daemon: this.daemonUrl });
      case 'connected':
        return this.deps.onStatus({
          kind: 'connected', who: state.user.email ?? (this.mode === 'local' ? `${state.user.id.replace(/^local:/, '')} (local)` : state.user.id),
          daemon: this.daemonUrl ?? '', sessionId: state.sessionId, tokenExpiresAt: state.expiresAt, serverVersion: state.serverVersion, mode: this.mode,
          usage: this.usageToday,
        });
      case 'reconnecting':
        return this.deps.onStatus({ kind: 'reconnecting', who, attempt: state.attempt, delayMs: state.delayMs, reason: state.reason });
      case 'idle':
        this.deps.log.info('idle: the daemon closed the connection after its idle timeout; it reconnects when next used');
        return this.deps.onStatus({ kind: 'idle', who, daemon: this.daemonUrl });
      case 'error':
        return this.deps.onStatus({ kind: 'error', who, message: state.message, actions: actionsFor(state.code) });
      case 'stopped':
        return;
    }
  }

  // ------------------------------------------------------------------ keeping the token fresh

  /** The window account's session, refreshed (or adopted) if needed, with the next refresh scheduled. */
  private async freshSession(): Promise<Session> {
    const account = this.account!;
    try {
      const session = await this.deps.accounts!.freshSession(account.id);
      this.refreshFailures = 0;
      this.scheduleRefresh(session);
      return session;
    } catch (err) {
      if (err instanceof SignedOutError) this.onSignedOut(err.message);
      throw err;
    }
  }

  private scheduleRefresh(session: Session): void {
    this.clearRefreshTimer();
    const ahead = refreshAheadSec(session);
    // A little jitter so windows sharing an account don't all reach for the lock at once.
    const jitterMs = Math.random() * Math.min(5_000, (ahead * 1000) / 4);
    const delay = Math.max(0, (session.expires_at! - ahead) * 1000 - Date.now() + jitterMs);
    this.refreshTimer = setTimeout(() => void this.refreshNow(), Math.min(delay, 2 ** 31 - 1));
    this.refreshTimer.unref?.();
  }

  private clearRefreshTimer(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  /** Refreshes (or adopts) if due, then presents the newer token on the live connection. */
  async refreshNow(): Promise<void> {
    if (!this.account || !this.deps.accounts || this.stopped) return;
    try {
      const session = await this.freshSession();
      await this.present(session);
    } catch (err) {
      if (err instanceof SignedOutError) return;
      const delay = REFRESH_RETRY_MS[Math.min(this.refreshFailures++, REFRESH_RETRY_MS.length - 1)];
      const message = err instanceof RefreshUnavailableError ? err.message : (err as Error).message;
      this.deps.log.warn(`could not refresh the session of ${this.account.email}: ${message}; retrying in ${delay / 1000} s`);
      // Said once (notify dedupes), with the setting to check; the connection lives on meanwhile.
      if (err instanceof RefreshUnavailableError) this.deps.notify(`${message} Your sign-in is renewed as soon as Supabase answers again.`, ['openSettings']);
      this.clearRefreshTimer();
      this.refreshTimer = setTimeout(() => void this.refreshNow(), delay);
    }
  }

  /** Sends `op:"auth"` with the session's token if the connection still uses an older one. */
  private async present(session: Session): Promise<void> {
    const client = this.client;
    if (!client || client.state.kind !== 'connected' || session.access_token === this.tokenInUse) return;
    const result = await client.reauthenticate(session.access_token);
    if (result.ok) {
      this.tokenInUse = session.access_token;
      this.deps.log.info(`connection re-authenticated; token valid until ${new Date((result.expiresAt ?? 0) * 1000).toISOString()}`);
      const state = client.state;
      if (state.kind === 'connected') this.onClientState(client, { ...state, expiresAt: result.expiresAt });
    } else {
      this.deps.log.warn(`the daemon refused the refreshed token (${result.code}): ${result.message}`);
      if (result.code === 'user_mismatch') void this.restart('the stored session belongs to another user');
    }
  }

  /** Another window (or this one) changed an account's stored session. */
  private async onStoredSessionChanged(accountId: string): Promise<void> {
    if (this.stopped || !this.account || accountId !== this.account.id) return;
    const session = await this.deps.accounts!.readSession(accountId);
    if (!session) return this.onSignedOut(`${this.account.email} was signed out (in this or another window). Sign in again to reconnect.`);
    if (session.access_token !== this.tokenInUse && !needsRefresh(session)) {
      this.deps.log.info('adopting the session another window refreshed');
      this.scheduleRefresh(session);
      await this.present(session);
    }
  }

  private async onAuthExpiring(): Promise<void> {
    // The daemon's notice (60 s before exp) is a hint: adopt a newer stored token if there is one;
    // otherwise the scheduled refresh runs in time. Refreshing on every notice would loop for
    // tokens that live less than 60 s.
    if (!this.account || !this.deps.accounts) return;
    const session = await this.deps.accounts.readSession(this.account.id);
    if (session && session.access_token !== this.tokenInUse) await this.present(session);
    else if (session) this.scheduleRefresh(session);
  }

  private async onTokenExpired(): Promise<void> {
    if (!this.account || !this.deps.accounts || !this.tokenInUse) return;
    try {
      await this.deps.accounts.forceRefresh(this.account.id, this.tokenInUse);
    } catch (err) {
      if (err instanceof SignedOutError) this.onSignedOut(err.message);
      else this.deps.log.warn(`refresh after expiry failed: ${(err as Error).message}`);
    }
  }

  private onSignedOut(message: string): void {
    if (this.stopped) return;
    this.stop();
    this.deps.onStatus({ kind: 'signed_out', reason: message });
    this.deps.notify(message, ['signIn']);
  }

  dispose(): void {
    this.stop();
    clearInterval(this.clockTimer);
    for (const d of this.disposables) d.dispose();
  }
}

function actionsFor(code: string): NextAction[] {
  switch (code) {
    case 'token_invalid':
    case 'token_expired':
      return ['signIn', 'switchUser', 'showLog'];
    case 'too_many_connections':
      return ['showSessions', 'reconnect', 'switchUser'];
    case 'protocol_unsupported':
    case DaemonVersionMismatch.name:
    case 'version_mismatch':
      return ['restartDaemon', 'showLog'];
    case 'insecure_url':
      return ['openSettings'];
    case DaemonStartFailed.name:
    case 'daemon_start_failed':
    case 'daemon_crashed':
      return ['reconnect', 'restartDaemon', 'showLog'];
    default:
      return ['reconnect', 'showLog'];
  }
}
