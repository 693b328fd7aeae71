// /mcp as an OAuth protected resource (RFC 9728, RFC 6750), as the MCP authorization spec asks:
// the metadata document that names the Supabase project's Auth as the authorization server, and
// the WWW-Authenticate challenge of a 401 that points clients at that document.
//
// URLs are built from the request's Host (already checked against DNS rebinding) so that they name
// the daemon the way the client reached it; TLS on the daemon or at a reverse proxy makes them https.
import type http from 'node:http';
import type { OAuthProtectedResourceMetadata } from '@modelcontextprotocol/sdk/shared/auth.js';

export const MCP_PATH = '/mcp';
/** RFC 9728 §3: the well-known document, bare and with the resource's path inserted. */
export const METADATA_PATHS = ['/.well-known/oauth-protected-resource', `/.well-known/oauth-protected-resource${MCP_PATH}`];

/** The scopes the daemon's protected-resource metadata names (one of Supabase's five: openid, profile, email, phone, offline_access). */
export const SCOPES_SUPPORTED = ['email'] as const;

export interface ResourceOptions {
  /** `<SUPABASE_URL>` without a trailing slash; null in local mode (no authorization server: the bearer is the local secret). */
  supabaseUrl: string | null;
  /** The client reaches the daemon over https (its own certificate, or a proxy that ends TLS). */
  https: boolean;
}

/** A Host header that is a plain name or IP literal (with a port); anything else never reaches a URL or header. */
const SAFE_HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/i;

/** The daemon's origin as this request reached it (also the consent pages' own origin, server/oauth/). */
export function requestOrigin(req: http.IncomingMessage, opts: Pick<ResourceOptions, 'https'>): string {
  const header = req.headers.host;
  const local = req.socket.localAddress ?? '127.0.0.1';
  const host = header !== undefined && SAFE_HOST.test(header) ? header : `${local.includes(':') ? `[${local}]` : local}:${req.socket.localPort}`;
  return `${opts.https ? 'https' : 'http'}://${host}`;
}

/** The resource identifier: the /mcp URL as the client reached it. */
export function resourceUrl(req: http.IncomingMessage, opts: ResourceOptions): string {
  return `${requestOrigin(req, opts)}${MCP_PATH}`;
}

export function metadataUrl(req: http.IncomingMessage, opts: ResourceOptions): string {
  return `${requestOrigin(req, opts)}${METADATA_PATHS[1]}`;
}

/** The RFC 9728 document; null in local mode, where there is no authorization server to name. */
export function protectedResourceMetadata(req: http.IncomingMessage, opts: ResourceOptions): OAuthProtectedResourceMetadata | null {
  if (!opts.supabaseUrl) return null;
  return {
    resource: resourceUrl(req, opts),
    authorization_servers: [`${opts.supabaseUrl}/auth/v1`],
    // Clients ask for these at authorization (the MCP SDK and Claude Code do). The daemon needs only
    // who the user is, and `email` is Supabase's default scope; `openid` would make Supabase sign an
    // ID token, which fails on projects still on the legacy HS256 secret.
    scopes_supported: [...SCOPES_SUPPORTED],
    bearer_methods_supported: ['header'],
    resource_name: 'EXAI daemon',
  };
}

/**
 * The RFC 6750 challenge. `error` is absent when no token was sent (§3.1). error_description may
 * only hold printable ASCII without `"` and `\`, so the sentence is folded into that set here; the
 * response body carries it unchanged.
 */
export function wwwAuthenticate(req: http.IncomingMessage, opts: ResourceOptions, error?: { code: 'invalid_token' | 'invalid_request'; description: string }): string {
  // `scope`: what to ask for (MCP 2025-11-25 says SHOULD); the SDK prefers it over scopes_supported.
  const params = opts.supabaseUrl ? [`resource_metadata="${metadataUrl(req, opts)}"`, `scope="${SCOPES_SUPPORTED.join(' ')}"`] : ['realm="EXAI local daemon"'];
  if (error) params.push(`error="${error.code}"`, `error_description="${headerSafe(error.description)}"`);
  return `Bearer ${params.join(', ')}`;
}

function headerSafe(text: string): string {
  return text
    .replace(/…/g, '...')
    .replace(/["\\]/g, "'")
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 500);
}
