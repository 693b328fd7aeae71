// Error shapes of Supabase Auth (GoTrue) and of the Supabase API gateway (Kong), for the test server.
//
// Sources (supabase/auth at v2.196.0, see /work/shared/supabase-auth-facts.md §1 "Error shapes"):
// - internal/api/apierrors/apierrors.go  HTTPError `{"code":<status>,"error_code","msg"}` and
//   OAuthError `{"error","error_description"}` (always HTTP 400).
// - internal/api/errors.go HandleResponseError: when the request carries `X-Supabase-Api-Version`
//   >= 2024-01-01 (supabase-js always sends `2024-01-01`) the body is `{"code":"<error_code>","message"}`
//   and the version header is echoed; `x-sb-error-code` is set in both shapes.
// - The gateway answers 401 `{"message":"No API key found in request","hint":…}` before GoTrue
//   sees a request without an `apikey` (Kong key-auth plugin, as Supabase configures it).
import type http from 'node:http';

/** The error codes this server answers (a subset of internal/api/apierrors/errorcode.go). */
export type ErrorCode =
  | 'unknown'
  | 'unexpected_failure'
  | 'validation_failed'
  | 'bad_json'
  | 'email_exists'
  | 'bad_jwt'
  | 'not_admin'
  | 'no_authorization'
  | 'user_not_found'
  | 'session_not_found'
  | 'refresh_token_not_found'
  | 'refresh_token_already_used'
  | 'flow_state_not_found'
  | 'flow_state_expired'
  | 'flow_state_already_used'
  | 'bad_oauth_state'
  | 'bad_oauth_callback'
  | 'email_not_confirmed'
  | 'user_already_exists'
  | 'otp_expired'
  | 'otp_disabled'
  | 'same_password'
  | 'weak_password'
  | 'invalid_credentials'
  | 'bad_code_verifier'
  | 'conflict'
  | 'over_request_rate_limit'
  | 'feature_disabled'
  | 'oauth_dynamic_client_registration_disabled'
  | 'oauth_client_not_found'
  | 'oauth_authorization_not_found'
  | 'oauth_consent_not_found';

/** GoTrue's HTTPError. */
export class AuthHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    /** Extra top-level body fields (e.g. `weak_password: {reasons}`). */
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** GoTrue's OAuthError: `{error, error_description}`, HTTP 400, no error code. */
export class AuthOAuthError extends Error {
  constructor(readonly error: string, readonly description: string) {
    super(description);
  }
}

export const badRequest = (code: ErrorCode, msg: string) => new AuthHttpError(400, code, msg);
export const forbidden = (code: ErrorCode, msg: string) => new AuthHttpError(403, code, msg);
export const notFound = (code: ErrorCode, msg: string) => new AuthHttpError(404, code, msg);
export const unprocessable = (code: ErrorCode, msg: string) => new AuthHttpError(422, code, msg);

export const API_VERSION_HEADER = 'X-Supabase-Api-Version';

/** internal/api/apiversions.go DetermineClosestAPIVersion: any valid date >= 2024-01-01 selects the new shape. */
function usesApiVersion20240101(req: http.IncomingMessage): boolean {
  const v = req.headers[API_VERSION_HEADER.toLowerCase()];
  const s = Array.isArray(v) ? v[0] : v;
  if (!s || !/^\d{4}-\d{2}-\d{2}$/.test(s)) return false;
  const t = Date.parse(`${s}T00:00:00Z`);
  return Number.isFinite(t) && t >= Date.parse('2024-01-01T00:00:00Z');
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Writes `err` the way GoTrue's HandleResponseError does and returns the error code written (for
 * the test server's counters). Anything that is not an AuthHttpError / AuthOAuthError is a 500
 * `unexpected_failure`.
 */
export function writeAuthError(req: http.IncomingMessage, res: http.ServerResponse, err: unknown): string {
  if (err instanceof AuthOAuthError) {
    sendJson(res, 400, { error: err.error, error_description: err.description });
    return `oauth:${err.error}`;
  }
  const e =
    err instanceof AuthHttpError
      ? err
      : new AuthHttpError(500, 'unexpected_failure', 'Unexpected failure, please check server logs for more information');
  if (!(err instanceof AuthHttpError)) console.error('[auth-server] unhandled error:', err);
  const headers: Record<string, string> = { 'x-sb-error-code': e.code };
  if (usesApiVersion20240101(req)) {
    headers[API_VERSION_HEADER] = '2024-01-01';
    sendJson(res, e.status, { code: e.code, message: e.message, ...e.extra }, headers);
  } else {
    sendJson(res, e.status, { code: e.status, error_code: e.code, msg: e.message, ...e.extra }, headers);
  }
  return e.code;
}

/** The gateway's (Kong's) answers when the `apikey` is missing or not one of the project's keys. */
export function writeGatewayError(res: http.ServerResponse, kind: 'missing' | 'invalid'): string {
  if (kind === 'missing') {
    sendJson(res, 401, { message: 'No API key found in request', hint: 'No `apikey` request header or url param was found.' });
    return 'gateway:no_api_key';
  }
  sendJson(res, 401, { message: 'Invalid API key', hint: 'Double check your Supabase `anon` or `service_role` API key.' });
  return 'gateway:invalid_api_key';
}
