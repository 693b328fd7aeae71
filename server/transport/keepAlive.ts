// Protocol-level keep-alive of the daemon's WebSocket connections (RFC 6455 ping/pong).
import type { WebSocket } from 'ws';

export const PING_INTERVAL_MS = 30_000;

/** What KeepAlive uses of a socket. */
type Pingable = Pick<WebSocket, 'on' | 'ping' | 'terminate'>;

/**
 * Protocol-level pings find peers that vanished without a close (sleep, network loss): every
 * PING_INTERVAL_MS each socket that answered the last ping is pinged again, and one that did not is
 * cut off. One timer and two shared listeners for all sockets, not a timer per connection.
 */
export class KeepAlive {
  /** Each watched socket: has it answered (pong) since its last ping? */
  private readonly answered = new Map<Pingable, boolean>();
  private timer: NodeJS.Timeout | null = null;
  // Listeners shared by every socket: `ws` calls them with the socket as `this`.
  private readonly onPong: (this: Pingable) => void;
  private readonly onClose: (this: Pingable) => void;

  constructor(private readonly intervalMs = PING_INTERVAL_MS) {
    const answered = this.answered;
    this.onPong = function () { if (answered.has(this)) answered.set(this, true); };
    this.onClose = function () { answered.delete(this); };
  }

  watch(ws: Pingable): void {
    this.answered.set(ws, true);
    ws.on('pong', this.onPong);
    ws.on('close', this.onClose);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.intervalMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private sweep(): void {
    for (const [ws, answered] of this.answered) {
      if (!answered) {
        this.answered.delete(ws);
        ws.terminate();
        continue;
      }
      this.answered.set(ws, false);
      ws.ping();
    }
  }
}
