// Where the consent page may send a browser next. The URL comes from Supabase Auth (approve, deny,
// or "already consented"), built from the redirect URI the client registered; Supabase refuses
// dangerous schemes at registration, and this check repeats that here so that a bug or a hostile
// upstream can never turn the daemon's origin into a `javascript:` or `data:` redirect.
const DANGEROUS_SCHEMES = new Set([
  'javascript:', 'vbscript:', 'data:', 'file:', 'about:', 'blob:', 'filesystem:', 'view-source:',
  'chrome:', 'chrome-extension:', 'moz-extension:', 'edge:', 'intent:', 'jar:', 'ws:', 'wss:', 'ftp:',
]);
/** A custom scheme as RFC 3986 and CSP scheme-sources write it (`cursor:`, `com.example.app:`). */
const SCHEME = /^[a-z][a-z0-9+.-]*:$/;
/** Longer redirect URLs are refused (a Location header, and a page that shows the origin). */
export const MAX_REDIRECT_URL_LENGTH = 4096;

/**
 * The URL when a browser may be sent there: absolute; http(s) with a host, or a custom scheme that
 * is not one of the dangerous ones; no user name or password in it. Null otherwise.
 */
export function safeClientRedirect(raw: unknown): URL | null {
  if (typeof raw !== 'string' || raw.length > MAX_REDIRECT_URL_LENGTH) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  if (url.username || url.password) return null;
  if (url.protocol === 'http:' || url.protocol === 'https:') return url.host ? url : null;
  return SCHEME.test(url.protocol) && !DANGEROUS_SCHEMES.has(url.protocol) ? url : null;
}

/** What the page shows as "where you will be sent": the origin, or scheme and host of a custom scheme. */
export function displayOrigin(url: URL): string {
  if (url.protocol === 'http:' || url.protocol === 'https:') return url.origin;
  return url.host ? `${url.protocol}//${url.host}` : url.protocol;
}

/**
 * The CSP `form-action` source that lets a form on the page be redirected to this URL (Chromium
 * checks form-action against every redirect of a form submission): its origin, or its scheme.
 */
export function formActionSource(url: URL): string {
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : url.protocol;
}
