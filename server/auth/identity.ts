// Who a connection acts as, once its token has been verified.

/** A verified access token (or the local secret in local mode), reduced to what the daemon needs. */
export interface Identity {
  /** auth.users id (a UUID) in supabase mode; `local:<os user>` in local mode. */
  userId: string;
  email: string | null;
  /** The Supabase Auth session the token belongs to (JWT `session_id`); null in local mode. */
  authSessionId: string | null;
  /** Token expiry as unix seconds; null when the credential does not expire (local secret). */
  expiresAt: number | null;
  /** The verified JWT payload, passed to Postgres as `request.jwt.claims` so RLS sees the user. */
  claims: Record<string, unknown>;
  /** The raw access token, needed only by the Data API store. Never log it. */
  accessToken: string;
}

/** Why a token was refused. `code` maps to a close code in transport/connection.ts. */
export class TokenRejected extends Error {
  constructor(
    readonly code: 'token_invalid' | 'token_expired' | 'auth_unavailable',
    message: string,
  ) {
    super(message);
    this.name = 'TokenRejected';
  }
}

export interface TokenVerifier {
  /** Resolves to the identity, or rejects with TokenRejected. */
  verify(token: string): Promise<Identity>;
}
