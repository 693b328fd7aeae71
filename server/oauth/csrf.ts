// Cross-site request forgery defences of the sign-in and consent pages' forms (every POST):
//   1. a random token per browser session (browserSessions.ts), sent back in a hidden form field and
//      compared in constant time: a page on another site cannot read it;
//   2. the browser's own word on where the request comes from: an `Origin` that is not this daemon's,
//      or `Sec-Fetch-Site: cross-site | same-site`, is refused before the token is even looked at.
// SameSite=Lax on the cookie is a third layer (cookies.ts), not one these rely on.
import crypto from 'node:crypto';
import type http from 'node:http';

/** 32 random bytes, base64url: the per-session form token. */
export function newCsrfToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/**
 * True when `given` is the session's token. Both sides are hashed first so the comparison takes
 * the same time whatever the given value's length or content.
 */
export function csrfTokenMatches(expected: string, given: string | null | undefined): boolean {
  if (typeof given !== 'string' || given === '') return false;
  const a = crypto.createHash('sha256').update(expected).digest();
  const b = crypto.createHash('sha256').update(given).digest();
  return crypto.timingSafeEqual(a, b);
}

/**
 * Null when a state-changing request may come from this origin; otherwise the sentence to refuse it
 * with. `ownOrigin` is the daemon's origin as this request reached it (`http(s)://host[:port]`).
 * Requests without either header (curl, a test's fetch) fall back on the form token alone.
 */
export function crossSiteRefusal(req: http.IncomingMessage, ownOrigin: string): string | null {
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== ownOrigin) {
    return 'This form was sent from another web site, so it was refused. Open the page on this daemon and send it from there.';
  }
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return 'This form was sent from another web site, so it was refused. Open the page on this daemon and send it from there.';
  }
  return null;
}
