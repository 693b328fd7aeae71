// The people signed in on the consent pages: a bounded in-memory map from an opaque random cookie
// value to that browser's Supabase Auth client. The browser never holds a Supabase token; the
// daemon keeps the person's session here, in a storage of its own (no disk, nothing shared between
// two people), and forgets it after `idleMs` without a request, on sign-out, or when evicted.
//
// Bounds (every entry is created by an unauthenticated GET, so a stranger can fill the map):
//   - `maxSessions` entries and `maxBytes` of stored values in all, `maxBytesPerSession` for one;
//   - past a bound the least recently used SIGNED-OUT entry goes first, so a flood of fresh
//     cookies evicts other strangers' sign-in forms before anyone's signed-in session;
//   - idle entries are dropped on the next visit of the map.
import crypto from 'node:crypto';
import type { GoTrueClient, SupportedStorage } from '@supabase/supabase-js';
import { newCsrfToken } from './csrf';

export interface BrowserSessionLimits {
  maxSessions: number;
  maxBytes: number;
  maxBytesPerSession: number;
  idleMs: number;
}

export const DEFAULT_BROWSER_SESSION_LIMITS: BrowserSessionLimits = {
  maxSessions: 1000,
  maxBytes: 16 * 1024 * 1024,
  // A Supabase session (two tokens and the user with its identities) is a few KiB; PKCE verifiers are small.
  maxBytesPerSession: 64 * 1024,
  idleMs: 15 * 60_000,
};

/** Where auth-js keeps the session inside a browser session's storage. */
export const STORAGE_KEY = 'exai-oauth';

/** Makes the Supabase Auth client of one browser session, over that session's storage. */
export type AuthClientFactory = (storage: SupportedStorage, storageKey: string) => GoTrueClient;

export class StorageFull extends Error {
  override name = 'StorageFull';
}

/** One browser's state: its form token, its Supabase session (in `storage`), and a pending email-code sign-in. */
export class BrowserSession {
  /** The form token; a new one with every new cookie value (BrowserSessions.reissue). */
  csrfToken = newCsrfToken();
  /** The address a sign-in code was sent to, shown in the code form (at most MAX_EMAIL_LENGTH, checked by the form). */
  pendingEmail: string | null = null;
  /** A sentence for the next page this browser sees (after a redirect), e.g. "Revoked." */
  flash: string | null = null;
  lastSeen: number;
  private readonly values = new Map<string, string>();
  private size = 0;
  private client: GoTrueClient | null = null;
  readonly storage: SupportedStorage;

  /** The cookie value; changed only by BrowserSessions.reissue. */
  id: string;

  constructor(id: string, private readonly owner: BrowserSessions, now: number) {
    this.id = id;
    this.lastSeen = now;
    this.storage = {
      getItem: (key) => this.values.get(key) ?? null,
      setItem: (key, value) => this.set(key, value),
      removeItem: (key) => this.remove(key),
    };
  }

  /** Bytes held in storage (keys and values, UTF-16 code units ≈ bytes for this ASCII-heavy JSON). */
  get bytes(): number {
    return this.size;
  }

  /** A Supabase session is stored (it may still need a refresh, which the auth client does when used). */
  get signedIn(): boolean {
    return this.values.has(STORAGE_KEY);
  }

  /** This browser's Supabase Auth client, made on first use. */
  get auth(): GoTrueClient {
    this.client ??= this.owner.makeAuth(this.storage, STORAGE_KEY);
    return this.client;
  }

  /** Drops everything this session stored (its tokens included). */
  clear(): void {
    this.owner.accountBytes(-this.bytes);
    this.values.clear();
    this.size = 0;
    this.pendingEmail = null;
  }

  private set(key: string, value: string): void {
    const before = this.values.get(key);
    const delta = key.length + value.length - (before === undefined ? 0 : key.length + before.length);
    if (this.size + delta > this.owner.limits.maxBytesPerSession) {
      throw new StorageFull(`a sign-in may store at most ${this.owner.limits.maxBytesPerSession} bytes`);
    }
    this.values.set(key, value);
    this.size += delta;
    this.owner.accountBytes(delta, this);
  }

  private remove(key: string): void {
    const before = this.values.get(key);
    if (before === undefined) return;
    this.values.delete(key);
    this.size -= key.length + before.length;
    this.owner.accountBytes(-(key.length + before.length));
  }
}

function newCookieValue(): string {
  return crypto.randomBytes(32).toString('base64url');
}

export class BrowserSessions {
  /** Least recently used first (a Map iterates in insertion order; a visit re-inserts). */
  private readonly sessions = new Map<string, BrowserSession>();
  private totalBytes = 0;

  constructor(
    readonly limits: BrowserSessionLimits,
    readonly makeAuth: AuthClientFactory,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** The session of this cookie value, when it exists and has not been idle too long; marks it used. */
  get(id: string | undefined): BrowserSession | null {
    this.dropIdle();
    if (!id) return null;
    const session = this.sessions.get(id);
    if (!session) return null;
    session.lastSeen = this.now();
    this.sessions.delete(id);
    this.sessions.set(id, session);
    return session;
  }

  /** A new session under a fresh random cookie value, evicting others past the count bound. */
  create(): BrowserSession {
    this.dropIdle();
    while (this.sessions.size >= this.limits.maxSessions) this.evictOne(null);
    const session = new BrowserSession(newCookieValue(), this, this.now());
    this.sessions.set(session.id, session);
    return session;
  }

  /**
   * After a sign-in: a new cookie value and form token for the same session, so that a value planted
   * in the browser or seen before the sign-in (session fixation) is worth nothing afterwards.
   */
  reissue(session: BrowserSession): void {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    session.id = newCookieValue();
    session.csrfToken = newCsrfToken();
    this.sessions.set(session.id, session);
  }

  /** Forgets a session (sign-out, or its Supabase session ended). */
  delete(id: string): void {
    const session = this.sessions.get(id);
    if (!session) return;
    session.clear();
    this.sessions.delete(id);
  }

  /** Called by a session's storage when what it holds grows or shrinks. */
  accountBytes(delta: number, grower?: BrowserSession): void {
    this.totalBytes += delta;
    while (grower && this.totalBytes > this.limits.maxBytes && this.sessions.size > 1) {
      if (!this.evictOne(grower)) break;
    }
  }

  private dropIdle(): void {
    const cutoff = this.now() - this.limits.idleMs;
    for (const [id, session] of this.sessions) {
      if (session.lastSeen > cutoff) break; // the rest were used more recently
      this.delete(id);
    }
  }

  /** Evicts the least recently used signed-out session, or else the least recently used one; never `keep`. */
  private evictOne(keep: BrowserSession | null): boolean {
    let victim: BrowserSession | null = null;
    for (const session of this.sessions.values()) {
      if (session === keep) continue;
      if (!session.signedIn) {
        victim = session;
        break;
      }
      victim ??= session;
    }
    if (!victim) return false;
    this.delete(victim.id);
    return true;
  }
}
