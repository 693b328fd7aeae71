// Session endings the store could not take when they happened (the database was down or
// restarting): one queue for the whole daemon that writes them once the store answers again. Without
// it a window closed during an outage would keep its row `connected`, and keep counting toward its
// user's limit (4008 on their next windows) until the liveness bound passed.
//
// - Bounded: at most `maxEntries` endings and `maxBytes` (each holds the user's identity: claims
//   and access token). Past either bound the OLDEST ending is dropped: it is the closest to the
//   liveness bound, after which its row reads `stale` and no longer counts anyway.
// - One probe at a time: while the store is down one ending is tried per backoff step (doubling,
//   capped), not every ending; after a success the rest follow at once. A failed ending goes to the
//   back, so one that keeps failing cannot hold up the others.
// - Stores that write with the user's own token (the Data API) cannot write an ending once that
//   token has expired: such an ending is dropped (`needsLiveToken`), and its row reads `stale`
//   after the liveness bound, as the row of a killed daemon does.
// - Only StoreUnavailable is retried; any other error means the call itself is wrong, and
//   repeating it cannot help.
import type { Identity } from '../auth/identity';
import type { Logger } from '../log';
import { StoreUnavailable, type SessionStore } from './store';

export type FinalStatus = 'disconnected' | 'expired';

export interface PendingEndingsOptions {
  store: Pick<SessionStore, 'close'>;
  log: Logger;
  /** Default 10 000 endings. */
  maxEntries?: number;
  /** Default 16 MiB (approximate: the length of the identity's strings). */
  maxBytes?: number;
  /** The first wait after a failed write; it doubles after each failure. Default 1 s. */
  firstRetryMs?: number;
  /** The longest wait between two tries. Default 15 s. */
  maxRetryMs?: number;
  /** The store writes with each user's own access token: drop an ending once its token has expired. */
  needsLiveToken?: boolean;
  /** "Still waiting" is logged at most this often. Default 60 s. */
  reportEveryMs?: number;
}

interface Ending {
  identity: Identity;
  sessionId: string;
  status: FinalStatus;
  bytes: number;
}

/** The wait after `failures` failed tries in a row (0: just queued): first, 2×first, 4×first, … at most max. */
export function retryDelayMs(failures: number, firstMs: number, maxMs: number): number {
  return Math.min(maxMs, firstMs * 2 ** Math.min(Math.max(0, failures), 30));
}

export class PendingEndings {
  /** Insertion order is the order of tries; the oldest first. */
  private readonly queue = new Map<string, Ending>();
  private bytes = 0;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** Set by flush(): tries follow each other quickly until then; afterwards nothing is scheduled. */
  private flushUntil: number | null = null;
  private stopped = false;
  private lastReport = 0;
  /** Since the queue last became non-empty: what happened to its endings (logged when it empties). */
  private outage = { written: 0, droppedFull: 0, droppedExpired: 0, droppedError: 0 };
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly firstRetryMs: number;
  private readonly maxRetryMs: number;
  private readonly reportEveryMs: number;
  private emptied: (() => void) | null = null;

  constructor(private readonly options: PendingEndingsOptions) {
    this.maxEntries = options.maxEntries ?? 10_000;
    this.maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.firstRetryMs = options.firstRetryMs ?? 1000;
    this.maxRetryMs = options.maxRetryMs ?? 15_000;
    this.reportEveryMs = options.reportEveryMs ?? 60_000;
  }

  /** Endings waiting for the store. */
  get size(): number {
    return this.queue.size;
  }

  /**
   * Writes a session's final status. When the store is unavailable the ending is queued and this
   * resolves at once: the caller never waits for the database to come back.
   */
  async end(identity: Identity, sessionId: string, status: FinalStatus): Promise<void> {
    const log = this.options.log.child({ session: sessionId });
    if (this.queue.size === 0) {
      try {
        await this.options.store.close(identity, sessionId, status);
        return;
      } catch (err) {
        if (!(err instanceof StoreUnavailable)) {
          log.error('could not write the final session status; the row will read stale after the liveness bound', { status, error: err });
          return;
        }
        if (this.queue.size === 0) {
          log.warn('the session store is unavailable; final session statuses are queued and written once it is back', { status, error: err });
          this.lastReport = Date.now();
        }
      }
    }
    this.add({ identity, sessionId, status, bytes: estimateBytes(identity, sessionId) });
  }

  /** The store answered again (e.g. a heartbeat went through): try the queue now, not after the backoff. */
  retryNow(): void {
    if (this.queue.size === 0 || this.running || this.stopped) return;
    this.failures = 0;
    this.schedule(0);
  }

  /**
   * For a graceful shutdown: tries the queue until it is empty or `withinMs` has passed, then stops
   * retrying. Resolves with the number of endings left unwritten.
   */
  async flush(withinMs: number): Promise<number> {
    if (this.queue.size > 0 && !this.stopped) {
      this.flushUntil = Date.now() + withinMs;
      const empty = new Promise<void>((resolve) => (this.emptied = resolve));
      let timer: NodeJS.Timeout | undefined;
      const timeUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, withinMs))));
      this.failures = 0;
      if (!this.running) this.schedule(0);
      await Promise.race([empty, timeUp]);
      clearTimeout(timer);
    }
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    return this.queue.size;
  }

  private add(ending: Ending): void {
    if (this.queue.has(ending.sessionId)) return;
    if (this.expired(ending)) {
      this.outage.droppedExpired++;
      this.options.log.info("dropped a final session status: the user's token has expired; the row will read stale after the liveness bound",
        { session: ending.sessionId });
      return;
    }
    this.queue.set(ending.sessionId, ending);
    this.bytes += ending.bytes;
    while (this.queue.size > this.maxEntries || (this.bytes > this.maxBytes && this.queue.size > 1)) {
      const oldest = this.queue.values().next().value!;
      this.remove(oldest);
      if (this.outage.droppedFull++ === 0) {
        this.options.log.warn('too many final session statuses are waiting for the session store; dropping the oldest (their rows read stale after the liveness bound)',
          { max_entries: this.maxEntries, max_bytes: this.maxBytes });
      }
    }
    if (!this.running && !this.timer && !this.stopped) this.schedule(this.delay());
  }

  private remove(ending: Ending): void {
    if (this.queue.delete(ending.sessionId)) this.bytes -= ending.bytes;
  }

  private expired(ending: Ending): boolean {
    const exp = ending.identity.expiresAt;
    return this.options.needsLiveToken === true && exp !== null && exp * 1000 <= Date.now();
  }

  private delay(): number {
    const backoff = retryDelayMs(this.failures, this.firstRetryMs, this.maxRetryMs);
    // While a shutdown waits for the queue, try again soon (the flush bound limits the whole).
    return this.flushUntil !== null ? Math.min(backoff, 250) : backoff;
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.run();
    }, ms);
    this.timer.unref(); // a queue waiting for the database never keeps the process alive
  }

  /** Tries the oldest ending; on success goes on with the next, on failure moves it back and waits. */
  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (;;) {
        const ending = this.queue.values().next().value;
        if (!ending) break;
        if (this.expired(ending)) {
          this.remove(ending);
          this.outage.droppedExpired++;
          this.options.log.info("dropped a final session status: the user's token expired while the session store was unavailable; the row will read stale after the liveness bound",
            { session: ending.sessionId });
          continue;
        }
        try {
          await this.options.store.close(ending.identity, ending.sessionId, ending.status);
          this.remove(ending);
          this.outage.written++;
          this.failures = 0;
        } catch (err) {
          if (!(err instanceof StoreUnavailable)) {
            this.remove(ending);
            this.outage.droppedError++;
            this.options.log.error('could not write a queued final session status; the row will read stale after the liveness bound',
              { session: ending.sessionId, error: err });
            continue;
          }
          // To the back of the queue, so that an ending that keeps failing does not block the others.
          this.remove(ending);
          this.queue.set(ending.sessionId, ending);
          this.bytes += ending.bytes;
          this.failures++;
          this.reportWaiting(err);
          break;
        }
      }
    } finally {
      this.running = false;
    }
    if (this.queue.size === 0) return this.reportEmpty();
    if (!this.stopped) this.schedule(this.delay());
  }

  private reportWaiting(err: unknown): void {
    const now = Date.now();
    if (now - this.lastReport < this.reportEveryMs) return;
    this.lastReport = now;
    this.options.log.warn('still waiting for the session store to write final session statuses', {
      pending: this.queue.size, next_try_s: Math.round(this.delay() / 100) / 10, error: err,
    });
  }

  private reportEmpty(): void {
    const { written, droppedFull, droppedExpired, droppedError } = this.outage;
    this.outage = { written: 0, droppedFull: 0, droppedExpired: 0, droppedError: 0 };
    this.failures = 0;
    this.options.log.info(
      written > 0 ? 'the session store is back: wrote the final session statuses queued while it was unavailable' : 'no final session statuses are waiting any more',
      { written, dropped_queue_full: droppedFull, dropped_token_expired: droppedExpired, dropped_error: droppedError },
    );
    this.emptied?.();
    this.emptied = null;
  }
}

/** What an ending keeps in memory, roughly: the identity's strings (the claims as JSON) and the id. */
function estimateBytes(identity: Identity, sessionId: string): number {
  return 256 + sessionId.length + identity.userId.length + identity.accessToken.length
    + (identity.email?.length ?? 0) + (identity.authSessionId?.length ?? 0) + JSON.stringify(identity.claims).length;
}
