// What a person reads when Supabase Auth says no: one sentence saying what happened and what to do,
// and the status of the page that says it. Supabase's own message is never shown as is (it is
// written for developers); an error code this file does not know gets a general sentence.
import { isAuthApiError, isAuthRetryableFetchError, type AuthError } from '@supabase/supabase-js';

export interface Explained {
  status: number;
  message: string;
}

/** Supabase Auth could not be reached (network, timeout, 5xx). */
export function unreachable(supabaseUrl: string): Explained {
  return {
    status: 503,
    message: `The daemon could not reach Supabase Auth at ${supabaseUrl}. Try again in a minute; if this keeps happening, tell the daemon's operator.`,
  };
}

/** For the sign-in forms (password, email code, GitHub). */
export function explainSignInError(error: AuthError, supabaseUrl: string): Explained {
  if (isAuthRetryableFetchError(error) || (error.status ?? 0) >= 500) return unreachable(supabaseUrl);
  switch (error.code) {
    case 'invalid_credentials':
      return { status: 401, message: 'Wrong email or password. Check both and try again, or sign in with a code sent by email.' };
    case 'email_not_confirmed':
      return { status: 401, message: 'This email address is not confirmed yet. Open the confirmation link Supabase sent you, then sign in again.' };
    case 'otp_expired':
      return { status: 401, message: 'That code is wrong or has expired. Check the latest email, or ask for a new code.' };
    case 'otp_disabled':
    case 'signup_disabled':
    case 'user_not_found':
      return { status: 401, message: 'There is no account with this email address here. Sign in with the address of your EXAI account.' };
    case 'user_banned':
      return { status: 403, message: 'This account is banned on the Supabase project. Contact the project owner.' };
    case 'over_request_rate_limit':
    case 'over_email_send_rate_limit':
      return { status: 429, message: 'Too many attempts. Wait a minute, then try again.' };
    case 'provider_disabled':
    case 'validation_failed':
      if (/provider/i.test(error.message)) return { status: 400, message: 'GitHub sign-in is not enabled on this Supabase project. Use your password or a code sent by email.' };
      break;
    case 'flow_state_not_found':
    case 'flow_state_expired':
    case 'bad_code_verifier':
      return { status: 400, message: 'The GitHub sign-in took too long or was started in another browser. Start it again from this page.' };
  }
  if (error.name === 'AuthPKCECodeVerifierMissingError') {
    return { status: 400, message: 'The GitHub sign-in was started in another browser, or this page was restarted in between. Start it again from this page.' };
  }
  return { status: 400, message: 'Supabase Auth refused the sign-in. Try again, or use another way to sign in.' };
}

/** For the calls about one authorization (details, approve, deny). Null: the caller handles it (signed out). */
export function explainAuthorizationError(error: AuthError, supabaseUrl: string): Explained {
  if (isAuthRetryableFetchError(error) || (error.status ?? 0) >= 500) return unreachable(supabaseUrl);
  if (isAuthApiError(error) && (error.code === 'oauth_authorization_not_found' || error.status === 404)) {
    return {
      status: 404,
      message: 'This authorization request is unknown or has expired (a request lasts 10 minutes), or it was started for another account. Go back to the application and connect again.',
    };
  }
  if (isAuthApiError(error) && error.code === 'validation_failed') {
    return {
      status: 400,
      message: 'This authorization request has already been answered. Go back to the application; if it is not connected, connect again.',
    };
  }
  if (isAuthApiError(error) && error.code === 'feature_disabled') {
    return { status: 503, message: "The Supabase project's OAuth server is turned off. Tell the daemon's operator to enable it (Authentication → OAuth Server)." };
  }
  return { status: 502, message: 'Supabase Auth refused to answer this authorization request. Go back to the application and connect again.' };
}

/** For the grants page (list, revoke). */
export function explainGrantError(error: AuthError, supabaseUrl: string): Explained {
  if (isAuthRetryableFetchError(error) || (error.status ?? 0) >= 500) return unreachable(supabaseUrl);
  if (isAuthApiError(error) && (error.code === 'oauth_consent_not_found' || error.status === 404)) {
    return { status: 404, message: 'This application had no access to revoke (it may have been revoked already). The list below is up to date.' };
  }
  return { status: 502, message: 'Supabase Auth refused to list or revoke your applications. Reload the page to try again.' };
}
