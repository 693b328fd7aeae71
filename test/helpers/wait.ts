// Bounded waits for tests. Every wait names what it waits for and gives up after a bound, so a
// hang fails with a sentence (what, how long, what was last seen) instead of mocha's timeout.
import { inspect } from 'node:util';

/** How much of the last value a failed wait shows, and of its `context`. */
const LAST_VALUE_CHARS = 300;
const CONTEXT_CHARS = 2000;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What `waitFor` returns: the check's value, known to be truthy. */
export type Truthy<T> = Exclude<T, false | 0 | 0n | '' | null | undefined>;

export interface WaitOptions {
  /** The pause between two checks (default 50 ms). */
  everyMs?: number;
  /** Called before each check; what it throws ends the wait at once (e.g. "the daemon under test exited"). */
  failFast?: () => void;
  /** More to show when the wait fails, read at that moment (e.g. the last few statuses). */
  context?: () => string;
}

/**
 * Calls `check` until it returns a truthy value, and returns that value. Fails once `ms` have passed
 * with an error naming `what`, the bound and the last value seen.
 */
export async function waitFor<T>(check: () => T | Promise<T>, ms: number, what: string, opts: WaitOptions = {}): Promise<Truthy<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    opts.failFast?.();
    const last = await check();
    if (last) return last as Truthy<T>;
    if (Date.now() > deadline) {
      const context = opts.context ? `; ${clip(opts.context(), CONTEXT_CHARS)}` : '';
      throw new Error(`${what}: not within ${ms} ms (last: ${clip(inspect(last, { depth: 4, breakLength: Infinity }), LAST_VALUE_CHARS)})${context}`);
    }
    await sleep(opts.everyMs ?? 50);
  }
}

/** `p`, or a rejection naming `what` when it has not settled within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))),
  ]);
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}
