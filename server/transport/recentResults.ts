// The results of one connection's finished calls, kept for a while by request_id, so a repeated
// call_tool (a client retrying after a lost reply) gets the first result instead of running twice.
// Per connection only: the original daemon's global dedup dropped another window's handshake.
//
// Bounded in bytes, not only in count: each entry costs its serialized reply (UTF-8 bytes), its
// request_id and a fixed overhead, counted per connection (`maxBytes`) and across all connections of
// the daemon (one shared ResultBudget). Past a bound the oldest results go first. A result that is
// dropped early, or is too big to keep at all, leaves a small marker behind, so a repeat of its
// request_id is told the result is gone (result_unavailable) instead of silently running again.

export const DEDUP_WINDOW_MS = 5 * 60 * 1000;
export const MAX_ENTRIES = 5000;
export const MAX_BYTES_PER_CONNECTION = 8 * 1024 * 1024;
export const MAX_BYTES_PER_DAEMON = 128 * 1024 * 1024;
/** What an entry costs besides its id and reply: the Map slot, the entry object, its timestamps. */
export const ENTRY_OVERHEAD_BYTES = 128;

/** What a repeated request_id finds: its reply (the serialized call_tool_res), or that it was dropped. */
export type Recalled = { kept: true; text: string } | { kept: false };

interface Entry {
  readonly requestId: string;
  /** The serialized reply; null once dropped to stay within a byte bound. */
  text: string | null;
  bytes: number;
  readonly at: number;
  readonly owner: RecentResults;
}

/** The byte budget every connection's RecentResults share: past it, the daemon's oldest results go first. */
export class ResultBudget {
  private used = 0;
  /** Every kept entry of every connection, oldest first. */
  private readonly order = new Set<Entry>();

  constructor(readonly maxBytes = MAX_BYTES_PER_DAEMON) {}

  get bytes(): number {
    return this.used;
  }

  /** @internal RecentResults reports each entry it adds, shrinks or removes. */
  added(entry: Entry): void {
    this.order.add(entry);
    this.used += entry.bytes;
  }

  /** @internal */
  shrunk(bytes: number): void {
    this.used -= bytes;
  }

  /** @internal */
  removed(entry: Entry): void {
    if (this.order.delete(entry)) this.used -= entry.bytes;
  }

  /** @internal Oldest first, the daemon's replies are dropped (their markers stay); if markers alone are still too much, the oldest go. */
  enforce(): void {
    // Checked before iterating: a Set's iterator walks the slots of deleted entries too.
    if (this.used <= this.maxBytes) return;
    for (const entry of this.order) {
      if (this.used <= this.maxBytes) return;
      if (entry.text !== null) entry.owner.evict(entry);
    }
    for (const entry of this.order) {
      if (this.used <= this.maxBytes) return;
      entry.owner.evict(entry);
    }
  }
}

export interface RecentResultsLimits {
  windowMs: number;
  maxEntries: number;
  /** Bytes this connection may keep; a reply bigger than this is never kept. */
  maxBytes: number;
}

export class RecentResults {
  private readonly entries = new Map<string, Entry>();
  /**
   * The entries in insertion order (oldest first) from `head` on; removed ones are skipped and
   * dropped once they reach the front. A Map keeps insertion order too, but its iterator walks the
   * slots of deleted entries, so finding the oldest of a busy connection cost thousands of steps.
   */
  private queue: Entry[] = [];
  private head = 0;
  /** When the oldest entry ages out: nothing needs sweeping before then. */
  private nextExpiry = Infinity;
  private bytesKept = 0;
  private readonly limits: RecentResultsLimits;

  constructor(
    private readonly budget: ResultBudget,
    limits: Partial<RecentResultsLimits> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.limits = { windowMs: DEDUP_WINDOW_MS, maxEntries: MAX_ENTRIES, maxBytes: MAX_BYTES_PER_CONNECTION, ...limits };
  }

  /** What is known of a call that finished less than `windowMs` ago; undefined when nothing is. */
  get(requestId: string): Recalled | undefined {
    const entry = this.entries.get(requestId);
    if (!entry || this.now() - entry.at >= this.limits.windowMs) return undefined;
    return entry.text === null ? { kept: false } : { kept: true, text: entry.text };
  }

  /** Keeps `text` (the serialized reply) for `requestId`, or only a marker when it is too big to keep. */
  set(requestId: string, text: string): void {
    const now = this.now();
    const existing = this.entries.get(requestId);
    if (existing) this.remove(existing);
    const idBytes = ENTRY_OVERHEAD_BYTES + Buffer.byteLength(requestId);
    const textBytes = Buffer.byteLength(text);
    const keep = idBytes + textBytes <= this.limits.maxBytes;
    const entry: Entry = { requestId, text: keep ? text : null, bytes: idBytes + (keep ? textBytes : 0), at: now, owner: this };
    this.entries.set(requestId, entry);
    this.queue.push(entry);
    // Removed entries wait in the queue until they reach its front: bounded by the live ones.
    if (this.queue.length - this.head > 2 * this.entries.size + 1024) {
      this.queue = [...this.live()];
      this.head = 0;
    }
    if (this.entries.size === 1) this.nextExpiry = now + this.limits.windowMs;
    this.bytesKept += entry.bytes;
    this.budget.added(entry);
    this.enforce(now);
    this.budget.enforce();
  }

  /** Forgets everything (the connection closed), giving its bytes back to the daemon's budget. */
  clear(): void {
    for (const entry of [...this.entries.values()]) this.remove(entry);
    this.queue = [];
    this.head = 0;
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.bytesKept;
  }

  /** @internal Drops the reply of `entry` and keeps its marker; a marker is removed entirely. */
  evict(entry: Entry): void {
    if (entry.text === null) return this.remove(entry);
    const freed = entry.bytes - (ENTRY_OVERHEAD_BYTES + Buffer.byteLength(entry.requestId));
    entry.text = null;
    entry.bytes -= freed;
    this.bytesKept -= freed;
    this.budget.shrunk(freed);
  }

  /**
   * Oldest first: entries that aged out or are beyond the count go; then, past the byte bound,
   * replies are dropped (markers stay), then markers if still needed.
   */
  private enforce(now: number): void {
    if (now >= this.nextExpiry || this.entries.size > this.limits.maxEntries) {
      for (let entry = this.oldest(); entry; entry = this.oldest()) {
        if (now - entry.at < this.limits.windowMs && this.entries.size <= this.limits.maxEntries) break;
        this.remove(entry);
      }
      this.nextExpiry = (this.oldest()?.at ?? Infinity) + this.limits.windowMs;
    }
    if (this.bytesKept <= this.limits.maxBytes) return;
    for (const entry of this.live()) {
      if (this.bytesKept <= this.limits.maxBytes) return;
      if (entry.text !== null) this.evict(entry);
    }
    for (const entry of this.live()) {
      if (this.bytesKept <= this.limits.maxBytes) return;
      this.remove(entry);
    }
  }

  /** The oldest entry still kept, dropping removed ones from the front of the queue. */
  private oldest(): Entry | undefined {
    while (this.head < this.queue.length && !this.isKept(this.queue[this.head])) this.head++;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return this.queue[this.head];
  }

  /** The entries still kept, oldest first. */
  private *live(): Generator<Entry> {
    for (let i = this.head; i < this.queue.length; i++) if (this.isKept(this.queue[i])) yield this.queue[i];
  }

  private isKept(entry: Entry): boolean {
    return this.entries.get(entry.requestId) === entry;
  }

  private remove(entry: Entry): void {
    if (this.entries.get(entry.requestId) !== entry) return;
    this.entries.delete(entry.requestId);
    this.bytesKept -= entry.bytes;
    this.budget.removed(entry);
  }
}
