// Sessions and v1 refresh tokens, with GoTrue's rotation and reuse rules, in memory.
//
// Source: supabase/auth v2.196.0 (commit bc32168e)
// - internal/tokens/service.go RefreshTokenGrant (the v1 branch, `anyToken.(*models.RefreshToken)`)
// - internal/models/refresh_token.go GrantRefreshTokenSwap, RevokeTokenFamily, createRefreshToken
// - internal/models/sessions.go FindCurrentlyActiveRefreshToken, Logout, LogoutSession, LogoutAllExceptMe
// - internal/models/user.go FindUserWithRefreshToken
// - migrations/20220811173540_add_sessions_table.up.sql: refresh_tokens.session_id references
//   sessions ON DELETE CASCADE (so signing out deletes the session's refresh tokens too).
// Summarised in /work/shared/supabase-auth-facts.md §3. The rules, in order:
//   0. A token that is not in the table -> 400 refresh_token_not_found. (After a sign-out the
//      cascade has deleted the tokens, so that is also what a signed-out session answers.)
//   1. Unrevoked token -> swap: revoke it (touching updated_at) and create a child (parent = it).
//   2. Revoked token that is the parent of the session's currently active token (the newest,
//      by serial id, unrevoked token of the session) -> return that active token unchanged with a
//      fresh access token, at any age ("the client failed to save the response", auth PR #1278).
//   3. Other revoked token, now <= updated_at + reuse interval -> swap again (a sibling child).
//      The swap touches updated_at, so each such reuse extends the token's window.
//   4. Otherwise -> RevokeTokenFamily: `update refresh_tokens set revoked = true, updated_at = now()
//      where session_id = ? and revoked = false` (the session row is kept, so access tokens already
//      issued still pass GET /user), and answer 400 refresh_token_already_used.
//      Note the consequence of `updated_at = now()`: a token of the family that was active until
//      this moment is, for the next reuse-interval seconds, "a revoked token within the interval"
//      and is swapped again by rule 3. Only after the interval does it fail (rule 4).
// Requests on one session are serialised (GoTrue locks the session and token rows FOR UPDATE).
import crypto from 'node:crypto';
import { badRequest } from './errors';
import type { AmrEntry } from './tokens';

export interface SessionRow {
  id: string;
  userId: string;
  createdAt: number; // ms
  updatedAt: number;
  refreshedAt: number | null;
  aal: 'aal1';
  /** mfa_amr_claims of the session: the sign-in method(s), kept across refreshes. */
  amr: AmrEntry[];
  userAgent: string | null;
  /** sessions.oauth_client_id: the OAuth 2.1 client this session was issued to (oauthServer.ts), else null. */
  oauthClientId: string | null;
  /** sessions.scopes: the scopes granted to that client (space-separated), else null. */
  scopes: string | null;
}

export interface RefreshTokenRow {
  /** Serial primary key (FindCurrentlyActiveRefreshToken orders by it). */
  id: number;
  token: string;
  userId: string;
  parent: string | null;
  sessionId: string;
  revoked: boolean;
  createdAt: number; // ms
  updatedAt: number; // ms; touched on every update (pop sets updated_at)
}

/** What rule decided a refresh (for tests and logs; GoTrue reports similar via response headers). */
export type RefreshOutcome = 'swap' | 'parent-of-active' | 'reuse-within-interval';

/** A simple FIFO mutex (GoTrue's `SELECT … FOR UPDATE` on the session/token rows). */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;
  run<T>(fn: () => Promise<T>): Promise<T> {
    this.waiting++;
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => { this.waiting--; },
      () => { this.waiting--; },
    );
    return result;
  }
  get idle(): boolean {
    return this.waiting === 0;
  }
}

/**
 * v1 refresh token string: crypto.SecureAlphanumeric(12), i.e. 12 characters of lowercase base32
 * (`[a-z2-7]`). FindUserWithRefreshToken treats exactly 12 characters as a v1 token.
 */
function newTokenString(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  return Array.from(crypto.randomBytes(12), (b) => alphabet[b & 31]).join('');
}

export class SessionStore {
  readonly sessions = new Map<string, SessionRow>();
  private readonly tokens = new Map<string, RefreshTokenRow>();
  private nextTokenId = 1;
  private readonly locks = new Map<string, Mutex>();

  constructor(private readonly now: () => number) {}

  /** IssueRefreshToken (v1): a new session and its first refresh token (`oauth` for an OAuth 2.1 client's session). */
  createSession(
    userId: string,
    method: string,
    userAgent: string | null = null,
    oauth?: { clientId: string; scopes: string },
  ): { session: SessionRow; token: RefreshTokenRow } {
    const t = this.now();
    const session: SessionRow = {
      id: crypto.randomUUID(),
      userId,
      createdAt: t,
      updatedAt: t,
      refreshedAt: null,
      aal: 'aal1',
      amr: [{ method, timestamp: Math.floor(t / 1000) }],
      userAgent,
      oauthClientId: oauth?.clientId ?? null,
      scopes: oauth?.scopes ?? null,
    };
    this.sessions.set(session.id, session);
    return { session, token: this.insertToken(userId, session.id, null) };
  }

  private insertToken(userId: string, sessionId: string, parent: string | null): RefreshTokenRow {
    const t = this.now();
    const row: RefreshTokenRow = { id: this.nextTokenId++, token: newTokenString(), userId, parent, sessionId, revoked: false, createdAt: t, updatedAt: t };
    this.tokens.set(row.token, row);
    return row;
  }

  /** FindCurrentlyActiveRefreshToken: the newest (highest id) unrevoked token of the session. */
  activeToken(sessionId: string): RefreshTokenRow | undefined {
    let best: RefreshTokenRow | undefined;
    for (const row of this.tokens.values()) {
      if (row.sessionId === sessionId && !row.revoked && (!best || row.id > best.id)) best = row;
    }
    return best;
  }

  tokenRow(token: string): RefreshTokenRow | undefined {
    return this.tokens.get(token);
  }

  tokensOfSession(sessionId: string): RefreshTokenRow[] {
    return [...this.tokens.values()].filter((r) => r.sessionId === sessionId).sort((a, b) => a.id - b.id);
  }

  private lock(sessionId: string): Mutex {
    let m = this.locks.get(sessionId);
    if (!m) this.locks.set(sessionId, (m = new Mutex()));
    return m;
  }

  /**
   * The v1 branch of RefreshTokenGrant. `issue` runs inside the session lock once the token to
   * return is decided (GoTrue generates the access token inside the same transaction).
   * Throws AuthHttpError refresh_token_not_found / refresh_token_already_used. `checkSession` runs
   * under the lock before any rotation rule (GoTrue's OAuth client consistency check) and may throw.
   */
  async refresh<T>(
    token: string,
    reuseIntervalSec: number,
    issue: (session: SessionRow, refreshToken: string, outcome: RefreshOutcome) => Promise<T>,
    checkSession?: (session: SessionRow) => void,
  ): Promise<T> {
    const first = this.lookup(token);
    const mutex = this.lock(first.session.id);
    try {
      return await mutex.run(async () => {
        // Re-read under the lock (GoTrue re-runs FindUserWithRefreshToken with forUpdate).
        const { row, session } = this.lookup(token);
        checkSession?.(session);
        let issued: string | undefined;
        let outcome: RefreshOutcome = 'swap';
        if (row.revoked) {
          const active = this.activeToken(session.id);
          if (active && active.parent === row.token) {
            issued = active.token; // rule 2
            outcome = 'parent-of-active';
          } else {
            const reuseUntil = row.updatedAt + reuseIntervalSec * 1000;
            if (this.now() > reuseUntil) {
              this.revokeFamily(session.id); // rule 4 (committed although the request fails)
              throw badRequest('refresh_token_already_used', 'Invalid Refresh Token: Already Used');
            }
            outcome = 'reuse-within-interval'; // rule 3
          }
        }
        if (issued === undefined) {
          // GrantRefreshTokenSwap (rules 1 and 3)
          row.revoked = true;
          row.updatedAt = this.now();
          issued = this.insertToken(row.userId, session.id, row.token).token;
        }
        const t = this.now();
        session.refreshedAt = t;
        session.updatedAt = t;
        return issue(session, issued, outcome);
      });
    } finally {
      if (mutex.idle) this.locks.delete(first.session.id);
    }
  }

  private lookup(token: string): { row: RefreshTokenRow; session: SessionRow } {
    // len < 12: "not a valid refresh token"; len > 12 would be a v2 token, which this server never
    // issues, so it cannot parse/verify either. GoTrue answers both as refresh_token_not_found.
    const row = token.length === 12 ? this.tokens.get(token) : undefined;
    if (!row) throw badRequest('refresh_token_not_found', 'Invalid Refresh Token: Refresh Token Not Found');
    const session = this.sessions.get(row.sessionId);
    if (!session) {
      // Unreachable with the cascade, kept for parity with GoTrue (legacy tokens without a session).
      this.tokens.delete(row.token);
      throw badRequest('session_not_found', 'Invalid Refresh Token: No Valid Session Found');
    }
    return { row, session };
  }

  /** RevokeTokenFamily for a token with a session_id. */
  private revokeFamily(sessionId: string): void {
    const t = this.now();
    for (const row of this.tokens.values()) {
      if (row.sessionId === sessionId && !row.revoked) {
        row.revoked = true;
        row.updatedAt = t;
      }
    }
  }

  /** Deletes sessions (and, by the ON DELETE CASCADE, their refresh tokens). */
  private deleteSessions(pred: (s: SessionRow) => boolean): number {
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (!pred(s)) continue;
      this.sessions.delete(s.id);
      n++;
      for (const row of [...this.tokens.values()]) if (row.sessionId === s.id) this.tokens.delete(row.token);
    }
    return n;
  }

  /** models.Logout: every session of the user (scope=global). */
  logoutUser(userId: string): number {
    return this.deleteSessions((s) => s.userId === userId);
  }

  /** models.LogoutSession (scope=local). */
  logoutSession(sessionId: string): number {
    return this.deleteSessions((s) => s.id === sessionId);
  }

  /** models.RevokeOAuthSessions: the user's sessions issued to one OAuth client. */
  logoutOAuthClient(userId: string, clientId: string): number {
    return this.deleteSessions((s) => s.userId === userId && s.oauthClientId === clientId);
  }

  /** models.LogoutAllExceptMe (scope=others). */
  logoutOthers(sessionId: string, userId: string): number {
    return this.deleteSessions((s) => s.userId === userId && s.id !== sessionId);
  }
}
