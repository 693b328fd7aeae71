// What every sign-in flow is: given a fresh supabase-js client, yield a session (or throw an
// AuthError / CancelledError). Flows never store anything; Accounts.signIn does.
import type { Session, SupabaseClient } from '@supabase/supabase-js';

export type SignInFlow = (client: SupabaseClient, signal: AbortSignal) => Promise<Session>;

export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor(message = 'Sign-in cancelled.') {
    super(message);
  }
}

/** Resolves with `promise`, or rejects with CancelledError as soon as `signal` aborts. */
export function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new CancelledError(reasonOf(signal)));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new CancelledError(reasonOf(signal)));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

function reasonOf(signal: AbortSignal): string {
  return typeof signal.reason === 'string' ? signal.reason : 'Sign-in cancelled.';
}
