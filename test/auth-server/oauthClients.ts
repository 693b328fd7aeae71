// The OAuth 2.1 server's client registry (dynamic and admin registration, secrets, the client JSON),
// in memory and bounded in count.
//
// Source: supabase/auth bc32168e (after v2.196.0), /work/shared/supabase-auth-facts.md §8:
// - internal/api/oauthserver/service.go: validateRedirectURIList / validateRedirectURI, the
//   registration and update params and their validation order, generateClientSecret (32 random
//   bytes, base64url), hashClientSecret (sha256, base64url), ValidateClientSecret (constant time).
// - internal/api/oauthserver/client_auth.go: DetermineClientType (explicit > inferred from the auth
//   method > confidential), the consistency check, valid auth methods per client type.
// - internal/api/oauthserver/handlers.go oauthServerClientToResponse (`omitempty` fields).
// - internal/models/oauth_client.go FindOAuthServerClientByID: soft-deleted clients are not found.
import crypto from 'node:crypto';
import { AuthHttpError, badRequest } from './errors';

export type ClientType = 'public' | 'confidential';
export type TokenEndpointAuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post';
export type GrantType = 'authorization_code' | 'refresh_token';

const AUTH_METHODS: TokenEndpointAuthMethod[] = ['none', 'client_secret_basic', 'client_secret_post'];
const GRANT_TYPES: GrantType[] = ['authorization_code', 'refresh_token'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface OAuthClientRecord {
  id: string;
  registrationType: 'dynamic' | 'manual';
  clientType: ClientType;
  tokenEndpointAuthMethod: TokenEndpointAuthMethod;
  /** sha256(secret), base64url; null for public clients. */
  secretHash: string | null;
  redirectUris: string[];
  grantTypes: GrantType[];
  clientName: string;
  clientUri: string;
  logoUri: string;
  createdAt: number;
  updatedAt: number;
  deletedAt: number | null;
}

/** The registration body GoTrue reads (OAuthServerClientRegisterParams); anything else is ignored. */
export interface RegisterParams {
  redirect_uris?: string[];
  client_type?: string;
  token_endpoint_auth_method?: string;
  grant_types?: string[];
  client_name?: string;
  client_uri?: string;
  logo_uri?: string;
}

/** OAuthServerClientUpdateParams: only the fields present are changed. */
export interface UpdateParams {
  redirect_uris?: string[];
  grant_types?: string[];
  client_name?: string;
  client_uri?: string;
  logo_uri?: string;
  token_endpoint_auth_method?: string;
}

export const isUuid = (s: string) => UUID.test(s);

/**
 * Decodes a JSON body into the typed fields GoTrue's json.Decoder would accept: a field of the
 * wrong JSON type fails the whole decode (400 bad_json "Invalid JSON body"); null means absent.
 */
export function decodeClientParams(body: Record<string, unknown>, fields: { strings: string[]; lists: string[] }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const invalid = () => badRequest('bad_json', 'Invalid JSON body');
  for (const k of fields.strings) {
    const v = body[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw invalid();
    out[k] = v;
  }
  for (const k of fields.lists) {
    const v = body[k];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw invalid();
    out[k] = v;
  }
  return out;
}

export const REGISTER_FIELDS = { strings: ['client_type', 'token_endpoint_auth_method', 'client_name', 'client_uri', 'logo_uri'], lists: ['redirect_uris', 'grant_types'] };
export const UPDATE_FIELDS = { strings: ['token_endpoint_auth_method', 'client_name', 'client_uri', 'logo_uri'], lists: ['redirect_uris', 'grant_types'] };

/** validateRedirectURI (RFC 6749 §3.1.2, with GoTrue's scheme and http-only-for-loopback rules). */
/** A bound of this test server only (GoTrue stores any length), so 1000 clients stay within ~25 MB. */
export const MAX_REDIRECT_URI_LENGTH = 2048;

function redirectUriProblem(uri: string): string | undefined {
  if (uri === '') return 'redirect URI cannot be empty';
  if (uri.length > MAX_REDIRECT_URI_LENGTH) return `longer than ${MAX_REDIRECT_URI_LENGTH} characters (a bound of this test server)`;
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    // Go's url.Parse takes what WHATWG URL refuses (e.g. a relative path) and finds no scheme or host.
    return /^[a-z][a-z0-9+.-]*:/i.test(uri) ? 'invalid URL format' : 'must have scheme and host';
  }
  const scheme = u.protocol.slice(0, -1);
  if (!scheme || !u.host) return 'must have scheme and host';
  if (['javascript', 'data', 'file', 'vbscript', 'about', 'blob'].includes(scheme.toLowerCase())) {
    return `scheme '${scheme}' is not allowed for security reasons`;
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (scheme === 'http' && host !== 'localhost' && host !== '127.0.0.1' && host !== '::1') return 'HTTP scheme only allowed for localhost';
  if (uri.includes('#') && uri.slice(uri.indexOf('#') + 1) !== '') return 'fragment not allowed in redirect URI';
  return undefined;
}

function validateRedirectUriList(uris: string[] | undefined, required: boolean): void {
  if (required && (!uris || uris.length === 0)) throw badRequest('validation_failed', 'redirect_uris is required');
  if (!uris || uris.length === 0) throw badRequest('validation_failed', 'redirect_uris cannot be empty');
  if (uris.length > 10) throw badRequest('validation_failed', 'redirect_uris cannot exceed 10 items');
  for (const uri of uris) {
    const problem = redirectUriProblem(uri);
    const shown = uri.length > 200 ? `${uri.slice(0, 200)}…` : uri;
    if (problem) throw badRequest('validation_failed', `invalid redirect_uri '${shown}': ${problem}`);
  }
}

function validateGrantTypeList(grantTypes: string[]): void {
  if (grantTypes.length === 0) throw badRequest('validation_failed', 'grant_types cannot be empty');
  if (grantTypes.some((g) => !GRANT_TYPES.includes(g as GrantType))) {
    throw badRequest('validation_failed', "grant_types must only contain 'authorization_code' and/or 'refresh_token'");
  }
}

function validateUriField(name: 'client_uri' | 'logo_uri', value: string | undefined): void {
  if (!value) return;
  if (value.length > 2048) throw badRequest('validation_failed', `${name} cannot exceed 2048 characters`);
  // url.ParseRequestURI: an absolute URI or an absolute path.
  let ok = value.startsWith('/');
  try {
    ok ||= new URL(value).protocol.length > 1;
  } catch {
    // not absolute
  }
  if (!ok) throw badRequest('validation_failed', `${name} must be a valid URL`);
}

function validateClientName(name: string | undefined): void {
  if (name && name.length > 1024) throw badRequest('validation_failed', 'client_name cannot exceed 1024 characters');
}

const inferClientType = (method: string): ClientType => (method === 'none' ? 'public' : 'confidential');

/** OAuthServerClientRegisterParams.validate, in GoTrue's order. */
function validateRegisterParams(p: RegisterParams): void {
  validateRedirectUriList(p.redirect_uris, true);
  if (p.grant_types && p.grant_types.length > 0) validateGrantTypeList(p.grant_types);
  validateClientName(p.client_name);
  validateUriField('client_uri', p.client_uri);
  validateUriField('logo_uri', p.logo_uri);
  if (p.client_type && p.client_type !== 'public' && p.client_type !== 'confidential') {
    throw badRequest('validation_failed', "client_type must be 'public' or 'confidential'");
  }
  if (p.token_endpoint_auth_method && !AUTH_METHODS.includes(p.token_endpoint_auth_method as TokenEndpointAuthMethod)) {
    throw badRequest('validation_failed', `token_endpoint_auth_method must be one of: [${AUTH_METHODS.join(' ')}]`);
  }
  if (p.client_type && p.token_endpoint_auth_method) {
    const expected = inferClientType(p.token_endpoint_auth_method);
    if (p.client_type !== expected) {
      throw badRequest(
        'validation_failed',
        `client_type '${p.client_type}' is inconsistent with token_endpoint_auth_method '${p.token_endpoint_auth_method}' (expected client_type '${expected}')`,
      );
    }
  }
}

function hashSecret(secret: string): string {
  return crypto.createHash('sha256').update(secret).digest('base64url');
}

export class OAuthClientStore {
  private readonly clients = new Map<string, OAuthClientRecord>();

  constructor(
    private readonly now: () => number,
    private readonly maxClients: () => number,
  ) {}

  /**
   * registerOAuthServerClient. Validation errors are 400 validation_failed whose message is the
   * inner HTTPError's Error() ("400: …"), as the register handlers wrap them.
   */
  register(p: RegisterParams, registrationType: 'dynamic' | 'manual'): { client: OAuthClientRecord; secret: string | undefined } {
    try {
      validateRegisterParams(p);
    } catch (err) {
      if (err instanceof AuthHttpError) throw badRequest('validation_failed', `${err.status}: ${err.message}`);
      throw err;
    }
    this.pruneDeleted();
    if (this.clients.size >= this.maxClients()) {
      // A bound of this test server only (GoTrue stores clients in Postgres).
      throw badRequest('validation_failed', `This test server holds at most ${this.maxClients()} OAuth clients; delete some (DELETE /admin/oauth/clients/{id}) or raise oauthServer.limits.clients`);
    }
    const clientType: ClientType = (p.client_type as ClientType) || (p.token_endpoint_auth_method ? inferClientType(p.token_endpoint_auth_method) : 'confidential');
    const method = (p.token_endpoint_auth_method as TokenEndpointAuthMethod) || (clientType === 'public' ? 'none' : 'client_secret_basic');
    const t = this.now();
    const client: OAuthClientRecord = {
      id: crypto.randomUUID(),
      registrationType,
      clientType,
      tokenEndpointAuthMethod: method,
      secretHash: null,
      redirectUris: [...p.redirect_uris!],
      grantTypes: p.grant_types && p.grant_types.length > 0 ? ([...p.grant_types] as GrantType[]) : [...GRANT_TYPES],
      clientName: p.client_name ?? '',
      clientUri: p.client_uri ?? '',
      logoUri: p.logo_uri ?? '',
      createdAt: t,
      updatedAt: t,
      deletedAt: null,
    };
    let secret: string | undefined;
    if (clientType === 'confidential') {
      secret = crypto.randomBytes(32).toString('base64url');
      client.secretHash = hashSecret(secret);
    }
    this.clients.set(client.id, client);
    return { client, secret };
  }

  /** FindOAuthServerClientByID: soft-deleted clients are not found. */
  get(id: string): OAuthClientRecord | undefined {
    const c = this.clients.get(id.toLowerCase());
    return c && c.deletedAt === null ? c : undefined;
  }

  /** Live clients, newest first (OAuthServerClientList: `order created_at desc`). */
  list(): OAuthClientRecord[] {
    return [...this.clients.values()].filter((c) => c.deletedAt === null).reverse();
  }

  /** updateOAuthServerClient (validation errors are returned as they are, without the "400: " prefix). */
  update(client: OAuthClientRecord, p: UpdateParams): OAuthClientRecord {
    if (p.redirect_uris !== undefined) validateRedirectUriList(p.redirect_uris, false);
    if (p.grant_types !== undefined) validateGrantTypeList(p.grant_types);
    if (p.client_name !== undefined) validateClientName(p.client_name);
    if (p.client_uri !== undefined) validateUriField('client_uri', p.client_uri);
    if (p.logo_uri !== undefined) validateUriField('logo_uri', p.logo_uri);
    const method = p.token_endpoint_auth_method;
    if (method !== undefined && !AUTH_METHODS.includes(method as TokenEndpointAuthMethod)) {
      throw badRequest('validation_failed', `invalid token_endpoint_auth_method: must be one of [${AUTH_METHODS.join(' ')}]`);
    }
    if (method !== undefined && inferClientType(method) !== client.clientType) {
      const valid = client.clientType === 'public' ? '[none]' : '[client_secret_basic client_secret_post]';
      throw badRequest('validation_failed', `token_endpoint_auth_method '${method}' is not valid for client_type '${client.clientType}'; valid methods: ${valid}`);
    }
    if (p.redirect_uris !== undefined) client.redirectUris = [...p.redirect_uris];
    if (p.grant_types !== undefined) client.grantTypes = [...p.grant_types] as GrantType[];
    if (p.client_name !== undefined) client.clientName = p.client_name;
    if (p.client_uri !== undefined) client.clientUri = p.client_uri;
    if (p.logo_uri !== undefined) client.logoUri = p.logo_uri;
    if (method !== undefined) client.tokenEndpointAuthMethod = method as TokenEndpointAuthMethod;
    client.updatedAt = this.now();
    return client;
  }

  /** deleteOAuthServerClient: a soft delete (consents and sessions are left alone, as GoTrue does). */
  softDelete(client: OAuthClientRecord): void {
    client.deletedAt = this.now();
    client.updatedAt = client.deletedAt;
  }

  regenerateSecret(client: OAuthClientRecord): string {
    if (client.clientType !== 'confidential') throw badRequest('validation_failed', 'Cannot regenerate secret for public client');
    const secret = crypto.randomBytes(32).toString('base64url');
    client.secretHash = hashSecret(secret);
    client.updatedAt = this.now();
    return secret;
  }

  /** ValidateClientAuthentication: public clients send no secret, confidential ones the right one. */
  static authenticationProblem(client: OAuthClientRecord, providedSecret: string): string | undefined {
    if (client.clientType === 'public') return providedSecret ? 'public clients must not provide client_secret' : undefined;
    if (!providedSecret) return 'confidential clients must provide client_secret';
    const calc = crypto.createHash('sha256').update(providedSecret).digest();
    const stored = Buffer.from(client.secretHash ?? '', 'base64url');
    return stored.length === calc.length && crypto.timingSafeEqual(calc, stored) ? undefined : 'invalid client credentials';
  }

  /** Soft-deleted clients are dropped from memory once the store is full (nothing can use them). */
  private pruneDeleted(): void {
    if (this.clients.size < this.maxClients()) return;
    for (const [id, c] of this.clients) if (c.deletedAt !== null) this.clients.delete(id);
  }
}

/** oauthServerClientToResponse: `omitempty` fields are left out when empty; the secret only when given. */
export function clientJson(c: OAuthClientRecord, secret?: string): Record<string, unknown> {
  const out: Record<string, unknown> = { client_id: c.id };
  if (secret) out.client_secret = secret;
  out.client_type = c.clientType;
  if (c.redirectUris.length) out.redirect_uris = [...c.redirectUris];
  out.token_endpoint_auth_method = c.tokenEndpointAuthMethod;
  if (c.grantTypes.length) out.grant_types = [...c.grantTypes];
  out.response_types = ['code'];
  if (c.clientName) out.client_name = c.clientName;
  if (c.clientUri) out.client_uri = c.clientUri;
  if (c.logoUri) out.logo_uri = c.logoUri;
  out.registration_type = c.registrationType;
  out.created_at = new Date(c.createdAt).toISOString();
  out.updated_at = new Date(c.updatedAt).toISOString();
  return out;
}

/** ClientDetailsResponse, as in the consent details and the grants list. */
export function clientDetails(c: OAuthClientRecord): { id: string; name?: string; uri?: string; logo_uri?: string } {
  return { id: c.id, ...(c.clientName ? { name: c.clientName } : {}), ...(c.clientUri ? { uri: c.clientUri } : {}), ...(c.logoUri ? { logo_uri: c.logoUri } : {}) };
}
