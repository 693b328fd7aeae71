// Caps on sockets that have not (yet) authenticated: every TCP connection counts from the moment it
// is accepted until its WebSocket connection sends hello_ack. Plain HTTP requests (/health) never
// authenticate; they count until their socket closes.
//
// Past a cap the OLDEST unauthenticated socket is closed to make room — of the same address when
// that address is over its own cap, otherwise the oldest overall. A slow-loris flood (sockets
// opened and left half-sent) therefore cannot lock real clients out: a newcomer that authenticates
// within the time it takes the flood to open `cap` fresh sockets always gets through, and the
// daemon never holds more than `total` such sockets (file descriptors, parser buffers).
import type net from 'node:net';

export interface UnauthenticatedLimits {
  /** Unauthenticated sockets at once, over all addresses. */
  total: number;
  /** Unauthenticated sockets at once from one address (an IPv6 client: its /64). Null: no per-address cap (behind a proxy every socket comes from the proxy). */
  perAddress: number | null;
}

/** Why a socket was closed, for the (rate-limited) log. */
export interface Eviction {
  address: string;
  cap: 'total' | 'per_address';
  unauthenticated: number;
}

interface Entry {
  socket: net.Socket;
  address: string;
}

export class UnauthenticatedSockets {
  /** Oldest first (a Map iterates in insertion order). Keyed by remote address and port, which a TLS socket shares with the TCP socket under it. */
  private readonly entries = new Map<string, Entry>();
  private readonly byAddress = new Map<string, Set<string>>();

  constructor(private readonly limits: UnauthenticatedLimits, private readonly onEvict: (e: Eviction) => void = () => {}) {}

  get size(): number {
    return this.entries.size;
  }

  /** A new TCP connection (the server's 'connection' event). */
  admit(socket: net.Socket): void {
    const key = socketKey(socket);
    if (key === null) return void socket.destroy(); // already gone
    const address = addressGroup(socket.remoteAddress!);
    this.entries.set(key, { socket, address });
    let keys = this.byAddress.get(address);
    if (!keys) this.byAddress.set(address, (keys = new Set()));
    keys.add(key);
    socket.once('close', () => {
      if (this.entries.get(key)?.socket === socket) this.remove(key);
    });

    if (this.limits.perAddress !== null && keys.size > this.limits.perAddress) this.evict(keys.values().next().value!, 'per_address');
    else if (this.entries.size > this.limits.total) this.evict(this.entries.keys().next().value!, 'total');
  }

  /** The socket under this WebSocket said hello_ack: it no longer counts. Takes the TCP or the TLS socket. */
  authenticated(socket: { remoteAddress?: string; remotePort?: number }): void {
    const key = socketKey(socket);
    if (key !== null) this.remove(key);
  }

  private evict(key: string, cap: Eviction['cap']): void {
    const entry = this.entries.get(key)!;
    this.remove(key);
    entry.socket.destroy();
    this.onEvict({ address: entry.address, cap, unauthenticated: this.entries.size });
  }

  private remove(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    const keys = this.byAddress.get(entry.address)!;
    keys.delete(key);
    if (keys.size === 0) this.byAddress.delete(entry.address);
  }
}

function socketKey(socket: { remoteAddress?: string; remotePort?: number }): string | null {
  return socket.remoteAddress && socket.remotePort ? `${socket.remoteAddress} ${socket.remotePort}` : null;
}

/**
 * What one client counts as: an IPv4 address (also when written IPv4-mapped, ::ffff:a.b.c.d), or
 * the /64 of an IPv6 address — one host usually owns a whole /64 and can pick any address in it.
 */
export function addressGroup(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!address.includes(':')) return address;
  const [head, tail] = address.toLowerCase().split('%')[0].split('::');
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const width = (parts: string[]) => parts.length + (parts.at(-1)?.includes('.') ? 1 : 0); // a trailing a.b.c.d is two groups
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - width(left) - width(right))).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
