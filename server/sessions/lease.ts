// One session's hold on its `mcp_sessions` row, whatever carries the session (a WebSocket today in
// transport/connection.ts, an MCP session on /mcp in mcp/session.ts): the claim under the per-user
// limit, the heartbeat that keeps the row live, the idle rule, the token's expiry, and the final
// status written once (with retries). The same rules as connection.ts, in one place, so that
// connection.ts can adopt this module and both transports then share one implementation.
//
// The lease decides WHEN; its owner decides WHAT happens (a WebSocket closes at once with a close
// code, an MCP session lets its calls finish first) through the hooks given to start().
import type { Identity } from '../auth/identity';
import type { Logger } from '../log';
import type { ClaimResult, SessionStore } from './store';

/** Seconds before the token's `exp` that `expiring` fires. */
export const EXPIRING_NOTICE_SEC = 60;
const MAX_TIMER_MS = 2 ** 31 - 1;
const FINAL_STATUS_ATTEMPTS = 3;

export type FinalStatus = 'disconnected' | 'expired';

export interface LeaseRules {
  daemonId: string;
  /** Live sessions a user may hold, counted in the store across daemons and transports. */
  maxPerUser: number;
  /** Idle seconds (no activity, nothing in flight) before the session ends `expired` (MCP_SESSION_TIMEOUT). */
  idleTimeoutSec: number;
  /** How often the row's last_active is refreshed while the session lives. */
  heartbeatSec: number;
}

export interface LeaseHooks {
  /** Calls still running: a session busy with a long call is not idle. */
  inflight(): number;
  /** About EXPIRING_NOTICE_SEC before the identity's token expires (never for a non-expiring identity). */
  expiring(expiresAt: number): void;
  /** The identity's token expired and no fresher one arrived. */
  expired(): void;
  /** Nothing happened for idleTimeoutSec and nothing is in flight. */
  idle(idleSeconds: number): void;
  /** The heartbeat found the row no longer `connected`: it was ended outside this daemon. */
  endedElsewhere(): void;
}

/** What the session's row records besides the daemon id and pid (which the lease fills in). */
export interface LeaseMetadata {
  instance: string | null;
  client_version: string | null;
  [key: string]: unknown;
}

type TimerName = 'expiring' | 'expiry' | 'idle' | 'heartbeat';

export class SessionLease {
  private current: Identity | null = null;
  /** The row's insert, once started; end() waits for it so a row is never left `connected`. */
  private claiming: Promise<ClaimResult> | null = null;
  private hooks: LeaseHooks | null = null;
  private lastActivity = Date.now();
  private readonly timers = new Map<TimerName, NodeJS.Timeout>();
  private ending: Promise<void> | null = null;

  constructor(
    readonly sessionId: string,
    private readonly store: SessionStore,
    private readonly rules: LeaseRules,
    private readonly log: Logger,
  ) {}

  /** The identity the row was claimed with, or the freshest token of the same user since (see renew). */
  get identity(): Identity {
    if (!this.current) throw new Error('SessionLease.identity read before a successful claim');
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
    this.claiming = this.store
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

  /** Something the user did (not a keep-alive ping): restarts the idle clock. */
  activity(): void {
    this.lastActivity = Date.now();
  }

  /**
   * A newer token was presented. Another user's token changes nothing and returns false. The same
   * user's token replaces the identity when it expires no earlier than the current one (an older
   * token never shortens the session) and the expiry is rescheduled.
   */
  renew(next: Identity): boolean {
    const now = this.current;
    if (!now || next.userId !== now.userId) return false;
    if (this.ended) return true;
    if (now.expiresAt === null || (next.expiresAt !== null && next.expiresAt < now.expiresAt)) return true;
    const extended = next.expiresAt !== now.expiresAt;
    this.current = next;
    if (extended && this.hooks) {
      this.scheduleExpiry();
      this.log.info('token renewed', { expires_at: next.expiresAt });
    }
    return true;
  }

  /** True when the identity's token expires within `seconds` from now. */
  expiresWithin(seconds: number): boolean {
    const exp = this.current?.expiresAt;
    return exp != null && exp * 1000 <= Date.now() + seconds * 1000;
  }

  /** True when the identity's token has expired (the expiry hook may be a moment late). */
  expiredNow(): boolean {
    const exp = this.current?.expiresAt;
    return exp != null && exp * 1000 <= Date.now();
  }

  /**
   * Runs once: stops the timers, waits for a claim still in flight, and writes the row's final
   * status (retrying; a row never written reads `stale` after the liveness bound). Later calls
   * return the same promise.
   */
  end(status: FinalStatus): Promise<void> {
    this.ending ??= (async () => {
      for (const timer of this.timers.values()) clearTimeout(timer);
      this.timers.clear();
      const claimed = this.claiming ? await this.claiming.then((c) => c.ok, () => false) : false;
      if (claimed && this.current) await this.writeFinalStatus(this.current, status);
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
      const stillConnected = await this.store.touch(this.current, this.sessionId);
      // The row is the source of truth: a session ended elsewhere ends here too.
      if (!stillConnected && !this.ended) this.hooks?.endedElsewhere();
    } catch (err) {
      this.log.warn('heartbeat could not update last_active', { error: err });
    }
  }

  private async writeFinalStatus(identity: Identity, status: FinalStatus): Promise<void> {
    for (let attempt = 1; attempt <= FINAL_STATUS_ATTEMPTS; attempt++) {
      try {
        return await this.store.close(identity, this.sessionId, status);
      } catch (err) {
        this.log.warn('could not write the final session status', { attempt, status, error: err });
        if (attempt < FINAL_STATUS_ATTEMPTS) await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
    // The row stays `connected` in storage but reads as stale once its heartbeat stops (see migrations).
    this.log.error('gave up writing the final session status; the row will read as stale');
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
