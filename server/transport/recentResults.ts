// The results of one connection's finished calls, kept for a while by request_id, so a repeated
// call_tool (a client retrying after a lost reply) gets the first result instead of running twice.
// Per connection only: the original daemon's global dedup dropped another window's handshake.

export const DEDUP_WINDOW_MS = 5 * 60 * 1000;
const MAX_ENTRIES = 5000;

export class RecentResults<T> {
  private readonly entries = new Map<string, { value: T; at: number }>();

  constructor(
    private readonly windowMs = DEDUP_WINDOW_MS,
    private readonly maxEntries = MAX_ENTRIES,
    private readonly now: () => number = Date.now,
  ) {}

  /** The stored result, if the call finished less than `windowMs` ago. */
  get(requestId: string): T | undefined {
    const entry = this.entries.get(requestId);
    return entry && this.now() - entry.at < this.windowMs ? entry.value : undefined;
  }

  set(requestId: string, value: T): void {
    const now = this.now();
    // Oldest first (a Map keeps insertion order): drop what aged out, and beyond the bound.
    for (const [key, entry] of this.entries) {
      if (now - entry.at < this.windowMs && this.entries.size < this.maxEntries) break;
      this.entries.delete(key);
    }
    this.entries.delete(requestId);
    this.entries.set(requestId, { value, at: now });
  }

  get size(): number {
    return this.entries.size;
  }
}
