// One provider's concurrency limit with a bounded FIFO queue. A call past the limit waits for a
// slot instead of failing (told its place in the queue each time it changes); past the queue's
// bound it is refused at once, so a burst can never pile up unbounded work or memory. A waiter
// that is cancelled, or whose deadline passes, leaves the queue without taking a slot.

export interface QueuePosition {
  /** 1 = next to run. */
  position: number;
  /** Calls waiting, this one included. */
  waiting: number;
  /** Calls holding a slot. */
  running: number;
}

/** The queue is full: the caller is refused without waiting. */
export class QueueFull extends Error {
  constructor(readonly running: number, readonly waiting: number) {
    super('queue full');
    this.name = 'QueueFull';
  }
}

interface Waiter {
  grant(): void;
  onPosition?: (p: QueuePosition) => void;
  lastPosition: number;
}

export class ProviderQueue {
  private running = 0;
  private readonly waiters: Waiter[] = [];

  constructor(readonly limit: number, readonly queueLength: number) {}

  get stats(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiters.length };
  }

  /**
   * Resolves with a release function once this call holds a slot. Rejects with QueueFull when the
   * queue is full, or with `signal.reason` when `signal` aborts while waiting (the slot is then
   * never taken). Release is idempotent.
   */
  acquire(signal: AbortSignal, onPosition?: (p: QueuePosition) => void): Promise<() => void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.running < this.limit && this.waiters.length === 0) {
      this.running++;
      return Promise.resolve(this.releaser());
    }
    if (this.waiters.length >= this.queueLength) return Promise.reject(new QueueFull(this.running, this.waiters.length));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        this.announce();
        reject(signal.reason);
      };
      const waiter: Waiter = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(this.releaser());
        },
        onPosition,
        lastPosition: 0,
      };
      this.waiters.push(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
      this.announce();
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      // The slot passes straight to the next waiter, so `running` only drops when nobody waits.
      if (next) next.grant();
      else this.running--;
      this.announce();
    };
  }

  /** Tells each waiter its place, when it changed (at most one message per waiter per change). */
  private announce(): void {
    this.waiters.forEach((w, i) => {
      if (w.lastPosition === i + 1) return;
      w.lastPosition = i + 1;
      try {
        w.onPosition?.({ position: i + 1, waiting: this.waiters.length, running: this.running });
      } catch {
        // A progress callback never breaks the queue.
      }
    });
  }
}
