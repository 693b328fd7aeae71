// The signed-in accounts of this machine. Each account's Supabase session is one entry in the
// shared store (one encrypted file under globalStorageUri), read live by every window. Refreshes
// happen under a per-account cross-process lock; whoever gets the lock second finds the session
// already refreshed and adopts it, so no window ever sends a refresh token older than the store's.
import path from 'node:path';
import type { Session, SupabaseClient } from '@supabase/supabase-js';
import { withFileLock } from './refreshLock';
import type { SharedStore } from './sharedStore';
import { describeAuthError, ephemeralClient, isTerminalRefreshError, type SupabaseProject } from './supabase';

export interface Account {
  id: string;
  email: string;
}

/** The account's sign-in is gone for good (revoked, signed out elsewhere): sign in again. */
export class SignedOutError extends Error {
  constructor(readonly account: Account | null, message: string) {
    super(message);
    this.name = 'SignedOutError';
  }
}

/** A refresh could not reach Supabase; the session is kept and the refresh retried later. */
export class RefreshUnavailableError extends Error {
  override name = 'RefreshUnavailableError';
}

const PREFIX = 'account-';
const keyOf = (accountId: string) => `${PREFIX}${accountId}`;

/** Seconds before expiry at which a session is refreshed: 2 minutes, or a third of a short lifetime. */
export function refreshAheadSec(session: Pick<Session, 'expires_in'>): number {
  return Math.min(120, Math.max(1, Math.floor((session.expires_in ?? 3600) / 3)));
}

export function secondsLeft(session: Pick<Session, 'expires_at'>, nowMs = Date.now()): number {
  return (session.expires_at ?? 0) - nowMs / 1000;
}

export function needsRefresh(session: Pick<Session, 'expires_at' | 'expires_in'>, nowMs = Date.now()): boolean {
  return secondsLeft(session, nowMs) <= refreshAheadSec(session);
}

export interface AccountsOptions {
  store: SharedStore;
  lockDir: string;
  project: SupabaseProject;
  log: { info(m: string): void; warn(m: string): void };
}

export class Accounts {
  constructor(private readonly opts: AccountsOptions) {}

  get project(): SupabaseProject {
    return this.opts.project;
  }

  async list(): Promise<Account[]> {
    const keys = await this.opts.store.keys(PREFIX);
    const accounts: Account[] = [];
    for (const key of keys) {
      const session = await this.readSession(key.slice(PREFIX.length));
      if (session) accounts.push(toAccount(session));
    }
    return accounts.sort((a, b) => a.email.localeCompare(b.email));
  }

  /** The stored session as it is now (another window may have refreshed it a moment ago). */
  async readSession(accountId: string): Promise<Session | null> {
    const raw = await this.opts.store.getItem(keyOf(accountId));
    if (!raw) return null;
    try {
      const session = JSON.parse(raw) as Session;
      return session.access_token && session.refresh_token && session.user?.id ? session : null;
    } catch {
      return null;
    }
  }

  /** Calls `listener(accountId)` when any window changes an account's stored session. */
  onDidChange(listener: (accountId: string) => void): { dispose(): void } {
    return this.opts.store.watch((key) => {
      if (key.startsWith(PREFIX)) listener(key.slice(PREFIX.length));
    });
  }

  /**
   * A session valid for at least the refresh margin: the stored one if it is fresh, else one
   * refreshed under the account's lock (or adopted from the window that refreshed first).
   */
  async freshSession(accountId: string): Promise<Session> {
    const seen = await this.readSession(accountId);
    if (!seen) throw new SignedOutError(null, 'This account is signed out. Sign in again.');
    if (!needsRefresh(seen)) return seen;
    return withFileLock(this.lockFile(accountId), async () => {
      const current = await this.readSession(accountId);
      if (!current) throw new SignedOutError(toAccount(seen), `${seen.user.email} was signed out. Sign in again.`);
      if (!needsRefresh(current)) return current; // another window refreshed while we waited: adopt
      return this.refreshLocked(current);
    });
  }

  /** Refreshes now even if the stored session looks fresh (e.g. the daemon said the token expired). */
  async forceRefresh(accountId: string, staleAccessToken: string): Promise<Session> {
    return withFileLock(this.lockFile(accountId), async () => {
      const current = await this.readSession(accountId);
      if (!current) throw new SignedOutError(null, 'This account is signed out. Sign in again.');
      if (current.access_token !== staleAccessToken && !needsRefresh(current)) return current;
      return this.refreshLocked(current);
    });
  }

  /** Caller holds the account lock. Exactly one /token request, with the store's current refresh token. */
  private async refreshLocked(current: Session): Promise<Session> {
    const account = toAccount(current);
    const { data, error } = await ephemeralClient(this.opts.project).auth.refreshSession({ refresh_token: current.refresh_token });
    if (error || !data.session) {
      if (error && isTerminalRefreshError(error)) {
        this.opts.log.warn(`refresh for ${account.email} refused (${error.code}); signing the account out`);
        await this.opts.store.removeItem(keyOf(account.id));
        throw new SignedOutError(account, `${account.email} was signed out (${error.code}). Sign in again.`);
      }
      throw new RefreshUnavailableError(describeAuthError(error, this.opts.project));
    }
    await this.save(data.session);
    this.opts.log.info(`refreshed the session of ${account.email}; valid until ${new Date(data.session.expires_at! * 1000).toISOString()}`);
    return data.session;
  }

  /**
   * Runs a sign-in flow on a fresh client and stores the session it yields as that user's account
   * (replacing an older sign-in of the same user, which is signed out on the server).
   */
  async signIn(flow: (client: SupabaseClient) => Promise<Session>): Promise<Account> {
    const session = await flow(ephemeralClient(this.opts.project));
    const account = toAccount(session);
    await withFileLock(this.lockFile(account.id), async () => {
      const previous = await this.readSession(account.id);
      await this.save(session);
      if (previous && previous.refresh_token !== session.refresh_token) void this.revokeOnServer(previous);
    });
    this.opts.log.info(`signed in ${account.email}`);
    return account;
  }

  /** Signs the account out in every window (the stored session goes first), then on the server. */
  async signOut(accountId: string): Promise<void> {
    await withFileLock(this.lockFile(accountId), async () => {
      const session = await this.readSession(accountId);
      await this.opts.store.removeItem(keyOf(accountId));
      if (session) await this.revokeOnServer(session);
    });
  }

  private async revokeOnServer(session: Session): Promise<void> {
    try {
      const { error } = await ephemeralClient(this.opts.project, session).auth.signOut({ scope: 'local' });
      if (error) this.opts.log.warn(`server sign-out of ${session.user.email} failed: ${error.message}`);
    } catch (err) {
      this.opts.log.warn(`server sign-out of ${session.user.email} failed: ${(err as Error).message}`);
    }
  }

  private async save(session: Session): Promise<void> {
    await this.opts.store.setItem(keyOf(session.user.id), JSON.stringify(session));
  }

  private lockFile(accountId: string): string {
    return path.join(this.opts.lockDir, `${keyOf(accountId)}.lock`);
  }
}

function toAccount(session: Session): Account {
  return { id: session.user.id, email: session.user.email ?? session.user.phone ?? session.user.id };
}
