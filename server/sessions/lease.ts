// One session's hold on its `mcp_sessions` row, whatever carries the session: a WebSocket
// connection (transport/connection.ts) or an MCP session on /mcp (mcp/session.ts). The one
// definition of the row's rules: the claim under the per-user limit, the heartbeat that keeps the
// row live (and notices a row ended elsewhere), the idle rule, the token's expiry, and the final
// status, written once through the daemon-wide PendingEndings queue so that it survives a store
// outage.
//
// The lease decides WHEN; its owner decides WHAT happens (a WebSocket closes at once with a close
// code, an MCP session lets its calls finish first) through the hooks given to start(), and what
// counts as activity (the owner calls activity()).
import type { Identity } from '../auth/identity';
import type { Logger } from '../log';
import type { FinalStatus, PendingEndings } from './pendingEndings';
import type { ClaimResult, SessionMetadata, SessionStore } from './store';

export type { FinalStatus } from './pendingEndings';

/** Seconds before the token's `exp` that `expiring` fires. */
export const EXPIRING_NOTICE_SEC = 60;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LeaseRules {
  daemonId: string;
  /** Live sessions a user may hold, counted in the store across daemons and transports. */
  maxPerUser: number;
  /** Idle seconds (no activity, nothing in flight) before the `idle` hook fires (MCP_SESSION_TIMEOUT). */
  idleTimeoutSec: number;
  /** How often the row's last_active is refreshed while the session lives. */
  heartbeatSec: number;
}

export interface LeaseDeps {
  store: Pick<SessionStore, 'claim' | 'touch'>;
  /** The daemon-wide queue of final statuses: an ending during a store outage is written once it is back. */
  endings: Pick<PendingEndings, 'end' | 'retryNow'>;
  /** Already tagged with the session (and whatever else the owner logs with). */
  log: Logger;
}

export interface LeaseHooks {
  /** Calls still running: a session busy with a long call is not idle. */
  inflight(): number;
  /** EXPIRING_NOTICE_SEC before the identity's token expires, or at once when less is left (never for a non-expiring identity). */
  expiring(expiresAt: number): void;
  /** The identity's token expired and no fresher one arrived. */
  expired(): void;
  /** Nothing happened for idleTimeoutSec and nothing is in flight. */
  idle(idleSeconds: number): void;
  /** The heartbeat found the row no longer `connected`: it was ended outside this session (another daemon, an admin). */
  endedElsewhere(): void;
}

/** What the row records besides the daemon id and pid (which the lease fills in). */
export type LeaseMetadata = Omit<SessionMetadata, 'daemon_id' | 'pid'>;

/**
 * Whose token may replace the identity, for the same user (another user's token never does):
 * - 'later-only': only a token that expires no earlier (MCP: every request carries a bearer and
 *   requests race, so an older token arriving late must not shorten the session);
 * - 'any': the token presented (WebSocket `auth`: the client chose it, and auth_ack tells it its exp).
 */
export type RenewPolicy = 'later-only' | 'any';

type TimerName = 'expiring' | 'expiry' | 'idle' | 'heartbeat';

export class SessionLease {
  private current: Identity | null = null;
  /** The row's insert, once started; end() waits for it so a row is never left `connected`. */
  private claiming: Promise<ClaimResult> | null = null;
  private hooks: LeaseHooks | null = null;
  private lastActivity = Date.now();
  private readonly timers = new Map<TimerName, NodeJS.Timeout>();
  private ending: Promise<void> | null = null;
  /** The last heartbeat failed: the next failures are not logged again (an outage would fill the log). */
  private heartbeatFailing = false;

  constructor(
    readonly sessionId: string,
    private readonly deps: LeaseDeps,
    private readonly rules: LeaseRules,
  ) {}

  /** The identity the row was claimed with, or the latest token of the same user since (see renew). */
  get identity(): Identity {
    if (!this.current) throw new Error('SessionLease.identity read before a successful claim');
    return this.current;
  }

  /** As `identity`, but null until a claim succeeded. */
  get holder(): Identity | null {
    return this.current;
  }

  get ended(): boolean {
    return this.ending !== null;
  }

  /**
   * Inserts the row when the user holds fewer than `maxPerUser` live sessions. Rejects when the
   * store cannot be reached (StoreUnavailable carries a user-facing sentence). Once only.
   */
  claim(identity: Identity, metadata: LeaseMetadata): Promise<ClaimResult> {
    if (this.claiming) throw new Error('SessionLease.claim called twice');
    this.claiming = this.deps.store
      .claim(identity, this.sessionId, this.rules.maxPerUser, { ...metadata, daemon_id: this.rules.daemonId, pid: process.pid })
      .then((claim) => {
        if (claim.ok) this.current = identity;
        return claim;
      });
    return this.claiming;
  }

  /** After a successful claim: from now on the heartbeat, idle and expiry rules run. */
  start(hooks: LeaseHooks): void {
    if (!this.current || this.ended) return;
    this.hooks = hooks;
    this.lastActivity = Date.now();
    this.scheduleExpiry();
    this.scheduleIdleCheck();
    const heartbeat = setInterval(() => void this.touch(), this.rules.heartbeatSec * 1000);
    heartbeat.unref();
    this.timers.set('heartbeat', heartbeat);
  }

  /** Work the user asked for (the owner decides what counts; keep-alives do not): restarts the idle clock. */
  activity(): void {
    this.lastActivity = Date.now();
  }

  /**
   * Another token was presented. Another user's token changes nothing and returns false. The same
   * user's token replaces the identity as `policy` says (the heartbeat, the final status and tool
   * calls use it from then on) and the expiry is rescheduled.
   */
  renew(next: Identity, policy: RenewPolicy): boolean {
    const now = this.current;
    if (!now || next.userId !== now.userId) return false;
    if (this.ended) return true;
    if (policy === 'later-only' && (now.expiresAt === null || (next.expiresAt !== null && next.expiresAt < now.expiresAt))) return true;
    this.current = next;
    if (this.hooks && next.expiresAt !== now.expiresAt) this.scheduleExpiry();
    return true;
  }

  /** True when the identity's token expires within `seconds` from now. */
  expiresWithin(seconds: number): boolean {
    const exp = this.current?.expiresAt;
    return exp != null && exp * 1000 <= Date.now() + seconds * 1000;
  }

  /** True when the identity's token has expired (the expiry hook may be a moment late). */
  expiredNow(): boolean {
    return this.expiresWithin(0);
  }

  /**
   * Runs once: stops the timers, waits for a claim still in flight (a claim that completes after
   * its session is gone still gets its ending), and writes the row's final status with the latest
   * token. While the store is unavailable the ending waits in the daemon-wide queue and this
   * resolves at once. Later calls return the same promise.
   */
  end(status: FinalStatus): Promise<void> {
    this.ending ??= (async () => {
      for (const timer of this.timers.values()) clearTimeout(timer);
      this.timers.clear();
      const claimed = this.claiming ? await this.claiming.then((c) => c.ok, () => false) : false;
      if (claimed && this.current) await this.deps.endings.end(this.current, this.sessionId, status);
    })();
    return this.ending;
  }

  // ------------------------------------------------------------------ the rules

  private scheduleExpiry(): void {
    this.clearTimer('expiring');
    this.clearTimer('expiry');
    const exp = this.current?.expiresAt;
    if (exp == null) return;
    const msLeft = exp * 1000 - Date.now();
    this.setTimer('expiring', msLeft - EXPIRING_NOTICE_SEC * 1000, () => this.hooks?.expiring(exp));
    this.setTimer('expiry', msLeft, () => this.hooks?.expired());
  }

  private scheduleIdleCheck(): void {
    const timeoutMs = this.rules.idleTimeoutSec * 1000;
    this.setTimer('idle', this.lastActivity + timeoutMs - Date.now(), () => {
      const idleFor = Date.now() - this.lastActivity;
      if (idleFor >= timeoutMs && (this.hooks?.inflight() ?? 0) === 0) return this.hooks?.idle(Math.round(idleFor / 1000));
      if (idleFor >= timeoutMs) this.lastActivity = Date.now(); // a long call counts as activity
      this.scheduleIdleCheck();
    });
  }

  private async touch(): Promise<void> {
    if (this.ended || !this.current) return;
    try {
      const stillConnected = await this.deps.store.touch(this.current, this.sessionId);
      if (this.heartbeatFailing) {
        this.heartbeatFailing = false;
        this.deps.log.info('heartbeat works again');
        this.deps.endings.retryNow(); // the store is back: write the endings queued meanwhile now
      }
      // The row is the source of truth: a session ended elsewhere ends here too.
      if (!stillConnected && !this.ended) this.hooks?.endedElsewhere();
    } catch (err) {
      if (!this.heartbeatFailing) this.deps.log.warn('heartbeat could not update last_active; not logged again until it works', { error: err });
      this.heartbeatFailing = true;
    }
  }

  private setTimer(name: Exclude<TimerName, 'heartbeat'>, ms: number, fn: () => void): void {
    this.clearTimer(name);
    if (this.ended) return;
    const timer = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    timer.unref();
    this.timers.set(name, timer);
  }

  private clearTimer(name: TimerName): void {
    const timer = this.timers.get(name);
    if (timer) clearTimeout(timer);
    this.timers.delete(name);
  }
}
