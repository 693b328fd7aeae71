// Short-lived supabase-js clients. Each holds its state in memory for one operation (a sign-in
// flow, one refresh, one sign-out); the shared store under globalStorageUri stays the single place
// where an account's session lives. A client with an empty slot never refreshes on its own, so
// every /token request is one we decided to make, under the account's lock, with the newest token.
import type { AuthError, Session, SupabaseClient } from '@supabase/supabase-js';
import { supabaseJs } from '../lazyModules';

export interface SupabaseProject {
  url: string;
  anonKey: string;
}

export function ephemeralClient(project: SupabaseProject, session?: Session): SupabaseClient {
  const memory = new Map<string, string>();
  const storageKey = 'exai-ephemeral';
  if (session) memory.set(storageKey, JSON.stringify(session));
  return supabaseJs().createClient(project.url, project.anonKey, {
    auth: {
      storage: {
        getItem: (k) => memory.get(k) ?? null,
        setItem: (k, v) => void memory.set(k, v),
        removeItem: (k) => void memory.delete(k),
      },
      storageKey,
      persistSession: true,
      autoRefreshToken: false,
      detectSessionInUrl: false,
      flowType: 'pkce',
    },
  });
}

/** Error codes after which a refresh token can never work again: the account must sign in anew. */
const TERMINAL_REFRESH_CODES = new Set([
  'refresh_token_already_used', 'refresh_token_not_found', 'session_not_found', 'session_expired', 'user_banned', 'user_not_found',
]);

export function isTerminalRefreshError(error: AuthError): boolean {
  return supabaseJs().isAuthApiError(error) && TERMINAL_REFRESH_CODES.has(error.code ?? '');
}

/** A sentence for a person: what went wrong and what to do. */
export function describeAuthError(error: unknown, project: SupabaseProject, email?: string): string {
  const e = error as AuthError & { code?: string; status?: number };
  if (supabaseJs().isAuthRetryableFetchError(e) || e?.name === 'TypeError' || /fetch failed|ECONNREFUSED|ENOTFOUND|network/i.test(String(e?.message))) {
    return `Can't reach Supabase at ${project.url}. Check your network connection and the exai.supabase.url setting.`;
  }
  switch (e?.code) {
    case 'invalid_credentials':
      return 'Wrong email or password.';
    case 'email_not_confirmed':
      return `Confirm your email first: open the link Supabase sent to ${email ?? 'your address'}, then sign in again.`;
    case 'user_banned':
      return 'This account is banned on the Supabase project. Contact the project owner.';
    case 'otp_expired':
      return 'That code is wrong or has expired. Request a new code.';
    case 'over_request_rate_limit':
    case 'over_email_send_rate_limit':
      return 'Too many attempts. Wait a minute, then try again.';
    case 'bad_code_verifier':
    case 'flow_state_not_found':
    case 'flow_state_expired':
      return 'The browser sign-in took too long or was started elsewhere. Start the sign-in again.';
    case 'refresh_token_already_used':
    case 'refresh_token_not_found':
    case 'session_not_found':
    case 'session_expired':
      return 'Your sign-in ended (it was revoked or expired). Sign in again.';
    case 'signup_disabled':
    case 'otp_disabled':
      return 'This sign-in method is turned off for the Supabase project. Use another method or ask the project owner.';
  }
  if (e?.status === 401 || /invalid api key|no api key/i.test(String(e?.message))) {
    return "Supabase refused the anon key. Check the exai.supabase.anonKey setting (Project Settings → API → anon key).";
  }
  return `Supabase sign-in failed: ${e?.message ?? String(error)}`;
}
