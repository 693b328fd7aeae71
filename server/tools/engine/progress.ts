// Streamed text as progress frames: at most one per interval, each carrying the text since the last,
// so together they add up to the answer. Notices (a wait for a provider slot, a retry) go out at
// once as their own frame, after any text still pending.
import type { ToolContext } from '../registry';

export const PROGRESS_INTERVAL_MS = 250;

export interface ProgressStream {
  push(delta: string): void;
  notice(message: string): void;
  /** Sends what is left. */
  flush(): void;
  stop(): void;
}

export function throttledProgress(ctx: ToolContext, intervalMs = PROGRESS_INTERVAL_MS): ProgressStream {
  let pending = '';
  let last = 0;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (pending === '' || ctx.signal.aborted) return;
    last = Date.now();
    const text = pending;
    pending = '';
    ctx.progress(text);
  };
  return {
    push(delta) {
      if (stopped) return;
      pending += delta;
      const wait = last + intervalMs - Date.now();
      if (wait <= 0) flush();
      else timer ??= setTimeout(flush, wait);
    },
    notice(message) {
      if (stopped || ctx.signal.aborted) return;
      flush();
      ctx.progress(message);
    },
    flush,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
