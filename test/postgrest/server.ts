// A PostgREST-compatible endpoint for tests: node:http on 127.0.0.1 serving /rest/v1 as the Supabase
// gateway + PostgREST do, on a real PostgreSQL, for what the daemon uses:
//   POST /rest/v1/rpc/<fn>             functions, the JSON body's keys as named arguments
//   GET|PATCH|DELETE /rest/v1/<table>?… simple table reads/updates/deletes with `col=eq.value` filters
//   POST /rest/v1/<table>               inserts (a JSON object or an array of objects)
// Tables run exactly like functions: as the role from the JWT, so the grants and RLS decide (a
// missing grant is 42501: 403 for a signed-in role, 401 for anon).
// and, optionally, /auth/v1/* proxied to an auth server so one base URL serves both.
//
//   const rest = await startPostgrest({ databaseUrl: db.url, jwksUrl, jwtSecret, anonKey });
//   new DataApiSessionStore({ supabaseUrl: rest.url, anonKey });
//   rest.requests();  // what arrived: function, body, bearer token, role, status
//   await rest.close();
//
// Followed: PostgREST at commit 4834678902681402a56c490f29947826e7ed5308 (github.com/PostgREST/postgrest)
// - src/library/PostgREST/Auth/Jwt.hs: `role` claim (default key `.role`) picks the database role,
//   no token -> the anon role; exp / nbf / iat checked with a 30 s clock skew; no aud check unless
//   configured.
// - src/library/PostgREST/Query/PreQuery.hs txVarQuery: per transaction set_config of search_path,
//   role, request.jwt.claims (with "role" inserted), request.method, request.path, request.headers.
// - src/library/PostgREST/MainTx.hs: READ COMMITTED; volatile functions read-write, others read-only.
// - src/library/PostgREST/Plan.hs findProc: the function whose parameter names match the body's keys
//   (required ⊆ keys ⊆ all); none -> PGRST202.
// - src/library/PostgREST/Query/QueryBuilder.hs callPlanToQuery + SqlFragment.hs asJsonF: arguments
//   via json_to_record(body) + LATERAL call with `name := pgrst_body.name`; a scalar function answers
//   its JSON value, a set-returning one a JSON array of rows.
// - src/library/PostgREST/Query/QueryBuilder.hs mutatePlanToQuery: INSERT … SELECT from
//   json_populate_recordset(null::<table>, <body as an array>), columns = the first object's keys;
//   DELETE … WHERE <filters>. src/library/PostgREST/Response.hs: POST 201, DELETE/PATCH 204 (or 200
//   and the rows with `Prefer: return=representation`).
// - src/library/PostgREST/Error.hs: JWT errors PGRST301 (decode) / PGRST303 (claims, e.g. "JWT
//   expired") as 401 with WWW-Authenticate; mapSQLtoHTTP for SQLSTATEs (42501 -> 403 when the role is
//   not anon, else 401; 42883 -> 404; P0001 -> 400; 08xxx -> 503; …); body {code,message,details,hint}.
// The gateway part (Kong as Supabase configures it): `apikey` required (401 "No API key found in
// request" / "Invalid API key"), as in test/auth-server/errors.ts.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { Pool, type PoolClient } from 'pg';
import { authenticatorUrl, prepareDatabase } from './database';

export interface PostgrestOptions {
  /** A superuser URL of the database (used once to prepare the `authenticator` role); the server connects as `authenticator`. */
  databaseUrl: string;
  /** The project's anon key: the gateway's accepted `apikey`. */
  anonKey: string;
  /** Also accepted as `apikey` (and as a Bearer, when jwtSecret signs it). */
  serviceRoleKey?: string;
  /** JWKS for asymmetric (ES256/RS256) access tokens, e.g. `${auth.url}/auth/v1/.well-known/jwks.json`. */
  jwksUrl?: string;
  /** The legacy JWT secret for HS256 tokens (the anon / service_role keys and HS256 projects). */
  jwtSecret?: string;
  /** Base URL to which `/auth/v1/*` is proxied (then `url` serves both, like a Supabase project URL). */
  authUpstream?: string;
  /** PostgREST's allowed clock skew for exp / nbf / iat. Default 30 (Auth/Jwt.hs allowedSkewSeconds). */
  clockSkewSec?: number;
  /** db-anon-role. Default `anon` (as on Supabase). */
  anonRole?: string;
  /** db-pool. Default 10. */
  poolSize?: number;
  port?: number;
}

export interface RecordedRequest {
  at: number;
  method: string;
  path: string;
  /** The function of an /rpc/ call. */
  fn: string | null;
  body: unknown;
  /** The raw Bearer token, when one was sent. */
  bearer: string | null;
  /** The `apikey` header as sent. */
  apikey: string | null;
  contentType: string | null;
  /** The database role the request ran as (null when refused before). */
  role: string | null;
  sub: string | null;
  status: number;
  code: string | null;
}

export interface Postgrest {
  /** The project-like base URL, `http://127.0.0.1:PORT` (the Data API is `${url}/rest/v1`). */
  url: string;
  restUrl: string;
  port: number;
  /** Every /rest/v1 request so far, oldest first (status filled in when answered). */
  requests(): RecordedRequest[];
  clearRequests(): void;
  close(): Promise<void>;
}

const IDENT = /^[a-z_][a-z0-9_]*$/;
const SCHEMA = 'public';
const MAX_BODY = 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(String(body.message ?? status));
  }
}

function jwtError(code: 'PGRST301' | 'PGRST303', message: string): HttpError {
  // Error.hs: JwtDecodeErr / JwtClaimsErr -> 401 + `WWW-Authenticate: Bearer error="invalid_token", error_description=…`
  return new HttpError(401, { code, message, details: null, hint: null }, {
    'WWW-Authenticate': `Bearer error="invalid_token", error_description=${JSON.stringify(message)}`,
  });
}

export async function startPostgrest(options: PostgrestOptions): Promise<Postgrest> {
  await prepareDatabase(options.databaseUrl);
  const anonRole = options.anonRole ?? 'anon';
  const skew = options.clockSkewSec ?? 30;
  const pool = new Pool({ connectionString: authenticatorUrl(options.databaseUrl), max: options.poolSize ?? 10, application_name: 'exai-test-postgrest' });
  pool.on('error', () => {});
  const jwks = options.jwksUrl ? createRemoteJWKSet(new URL(options.jwksUrl)) : null;
  const secret = options.jwtSecret ? new TextEncoder().encode(options.jwtSecret) : null;
  const apiKeys = new Set([options.anonKey, options.serviceRoleKey].filter((k): k is string => !!k));
  const records: RecordedRequest[] = [];

  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  /** Auth/Jwt.hs parseToken + validateClaims. */
  async function verify(token: string): Promise<JWTPayload> {
    if (token === '') throw jwtError('PGRST301', 'Empty JWT is sent in Authorization header');
    const parts = token.split('.').length;
    if (parts !== 3) throw jwtError('PGRST301', `Expected 3 parts in JWT; got ${parts}`);
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw jwtError('PGRST301', 'JWT cryptographic operation failed');
    }
    let payload: JWTPayload;
    try {
      if (alg === 'HS256') {
        if (!secret) throw jwtError('PGRST301', 'No suitable key or wrong key type');
        ({ payload } = await jwtVerify(token, secret, { algorithms: ['HS256'], clockTolerance: skew }));
      } else if (alg === 'ES256' || alg === 'RS256') {
        if (!jwks) throw jwtError('PGRST301', 'No suitable key or wrong key type');
        ({ payload } = await jwtVerify(token, jwks, { algorithms: [alg], clockTolerance: skew }));
      } else {
        throw jwtError('PGRST301', 'Wrong or unsupported encoding algorithm');
      }
    } catch (err) {
      if (err instanceof HttpError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw jwtError('PGRST303', 'JWT expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf') throw jwtError('PGRST303', 'JWT not yet valid');
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw jwtError('PGRST303', 'Parsing claims failed');
      if (err instanceof joseErrors.JWKSNoMatchingKey) throw jwtError('PGRST301', 'No suitable key or wrong key type');
      throw jwtError('PGRST301', 'JWT cryptographic operation failed');
    }
    if (typeof payload.iat === 'number' && payload.iat > Date.now() / 1000 + skew) throw jwtError('PGRST303', 'JWT issued at future');
    return payload;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', url);
    // Kong also routes the RFC 8414 path-inserted metadata URLs of Auth's OAuth 2.1 server to Auth.
    const authMetadata = /^\/\.well-known\/(oauth-authorization-server|openid-configuration)\/auth\/v1$/.test(u.pathname);
    if (authMetadata || u.pathname === '/auth/v1' || u.pathname.startsWith('/auth/v1/')) {
      if (options.authUpstream) return proxy(req, res, new URL(u.pathname + u.search, options.authUpstream));
      return send(res, 404, { message: 'no Route matched with those values' });
    }
    if (!u.pathname.startsWith('/rest/v1/')) return send(res, 404, { message: 'no Route matched with those values' }); // Kong
    const rec: RecordedRequest = {
      at: Date.now(), method: req.method ?? 'GET', path: u.pathname, fn: null, body: undefined,
      bearer: null, apikey: typeof req.headers.apikey === 'string' ? req.headers.apikey : null,
      contentType: req.headers['content-type'] ?? null, role: null, sub: null, status: 0, code: null,
    };
    records.push(rec);
    try {
      const rawBody = await readBody(req);
      rec.body = parseJson(rawBody, false);

      // The gateway: an apikey is required before anything reaches PostgREST.
      const header = req.headers.apikey;
      const apikey = (Array.isArray(header) ? header[0] : header) ?? u.searchParams.get('apikey') ?? '';
      if (!apikey) throw new HttpError(401, { message: 'No API key found in request', hint: 'No `apikey` request header or url param was found.' });
      if (!apiKeys.has(apikey)) throw new HttpError(401, { message: 'Invalid API key', hint: 'Double check your Supabase `anon` or `service_role` API key.' });

      // PostgREST: a Bearer token is verified; without one the request runs as the anon role.
      const m = /^Bearer (.*)$/i.exec(String(req.headers.authorization ?? ''));
      let claims: JWTPayload = {};
      if (m) {
        rec.bearer = m[1];
        claims = await verify(m[1].trim());
      }
      const role = typeof claims.role === 'string' && claims.role ? claims.role : anonRole;
      rec.role = role;
      rec.sub = typeof claims.sub === 'string' ? claims.sub : null;
      const ctx: TxContext = { role, claims: { ...claims, role }, method: rec.method, path: u.pathname, headers: req.headers, anon: role === anonRole };

      const rest = u.pathname.slice('/rest/v1/'.length);
      if (rest.startsWith('rpc/')) {
        rec.fn = rest.slice(4);
        if (req.method !== 'POST') throw new HttpError(405, { code: 'PGRST101', message: 'Only POST is supported by this stand-in for RPC', details: null, hint: null });
        const args = parseJson(rawBody, true);
        return sendRaw(res, ...(await callFunction(ctx, rec.fn, args)));
      }
      if (req.method === 'GET') return sendRaw(res, ...(await readTable(ctx, rest, u.searchParams)));
      const representation = /return=representation/.test(String(req.headers.prefer ?? ''));
      if (req.method === 'PATCH') return sendRaw(res, ...(await updateTable(ctx, rest, u.searchParams, parseJson(rawBody, true), representation)));
      if (req.method === 'POST') return sendRaw(res, ...(await insertTable(ctx, rest, parseJson(rawBody, true), representation)));
      if (req.method === 'DELETE') return sendRaw(res, ...(await deleteTable(ctx, rest, u.searchParams, representation)));
      throw new HttpError(405, { code: 'PGRST117', message: `Unsupported HTTP method: ${req.method}`, details: null, hint: null });
    } catch (err) {
      if (err instanceof HttpError) {
        rec.code = typeof err.body.code === 'string' ? err.body.code : null;
        return send(res, err.status, err.body, err.headers);
      }
      console.error('[postgrest] request failed:', err);
      return send(res, 500, { code: 'PGRSTX00', message: 'Internal error', details: null, hint: null });
    } finally {
      rec.status = res.statusCode;
    }
  }

  interface TxContext {
    role: string;
    claims: Record<string, unknown>;
    method: string;
    path: string;
    headers: http.IncomingHttpHeaders;
    anon: boolean;
  }

  /** One transaction on one pooled connection, as PostgREST runs each request. Returns [status, body]. */
  async function inTransaction(ctx: TxContext, readOnly: boolean, fn: (c: PoolClient) => Promise<[number, string]>): Promise<[number, string]> {
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch {
      throw new HttpError(503, { code: 'PGRST000', message: 'Database connection error.', details: null, hint: null });
    }
    let broken = false;
    try {
      await client.query(`begin isolation level read committed${readOnly ? ' read only' : ''}`);
      await client.query(
        `select set_config('search_path', $1, true), set_config('role', $2, true), set_config('request.jwt.claims', $3, true),
                set_config('request.method', $4, true), set_config('request.path', $5, true), set_config('request.headers', $6, true)`,
        [`"${SCHEMA}"`, ctx.role, JSON.stringify(ctx.claims), ctx.method, ctx.path, JSON.stringify(ctx.headers)],
      );
      const result = await fn(client);
      await client.query('commit');
      return result;
    } catch (err) {
      await client.query('rollback').catch(() => (broken = true));
      throw toHttpError(err, ctx.anon);
    } finally {
      client.release(broken);
    }
  }

  /** POST /rpc/<fn>: Plan.hs findProc, QueryBuilder.hs callPlanToQuery. */
  async function callFunction(ctx: TxContext, fn: string, args: unknown): Promise<[number, string]> {
    if (!isObject(args)) throw new HttpError(400, { code: 'PGRST102', message: 'Empty or invalid json', details: null, hint: null });
    const keys = Object.keys(args).sort();
    const noRpc = () =>
      new HttpError(404, {
        code: 'PGRST202',
        message: `Could not find the function ${SCHEMA}.${fn}${keys.length ? `(${keys.join(', ')})` : ' without parameters'} in the schema cache`,
        details: `Searched for the function ${SCHEMA}.${fn}${keys.length ? ` with parameters ${keys.join(', ')}` : ' without parameters'} or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.`,
        hint: null,
      });
    if (!IDENT.test(fn) || keys.some((k) => !IDENT.test(k))) throw noRpc();

    const routine = await findRoutine(fn, new Set(keys));
    if (!routine) throw noRpc();
    const given = routine.params.filter((p) => keys.includes(p.name));
    const callArgs = given.map((p) => `${ident(p.name)} := pgrst_body.${ident(p.name)}`).join(', ');
    const qi = `${ident(SCHEMA)}.${ident(fn)}`;
    const call = routine.scalar ? `(select ${qi}(${callArgs}) pgrst_scalar) pgrst_call` : `${qi}(${callArgs}) pgrst_call`;
    const from = given.length
      ? `json_to_record($1::json) as pgrst_body(${given.map((p) => `${ident(p.name)} ${p.type}`).join(', ')}), lateral ${call}`
      : call;
    // SqlFragment.hs asJsonF / asJsonSingleF.
    const agg = routine.scalar
      ? routine.setof ? "coalesce(json_agg(_postgrest_t.pgrst_scalar), '[]')" : "coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null')"
      : routine.setof ? "coalesce(json_agg(_postgrest_t), '[]')" : "coalesce(json_agg(_postgrest_t)->0, 'null')";
    const sql = `with pgrst_source as (select ${routine.scalar ? 'pgrst_call.pgrst_scalar' : 'pgrst_call.*'} from ${from})
                 select (${agg})::text as body from (select * from pgrst_source) _postgrest_t`;
    return inTransaction(ctx, routine.volatility !== 'v', async (c) => {
      const { rows } = await c.query<{ body: string }>(sql, given.length ? [JSON.stringify(args)] : []);
      if (routine.void) return [204, ''];
      return [200, rows[0].body];
    });
  }

  interface Routine {
    params: { name: string; type: string; required: boolean }[];
    setof: boolean;
    scalar: boolean;
    void: boolean;
    volatility: 'i' | 's' | 'v';
  }

  /** The schema cache's view of `public.<fn>` overloads, and findProc's choice among them. */
  async function findRoutine(fn: string, keys: Set<string>): Promise<Routine | null> {
    let rows: any[];
    try {
      ({ rows } = await pool.query(
        `select p.proretset as setof, coalesce(p.proargnames, '{}') as argnames, coalesce(p.proargmodes::text[], '{}') as argmodes,
                array(select format_type(t, null) from unnest(p.proargtypes) t) as in_types,
                p.pronargs as nargs, p.pronargdefaults as ndefaults, p.provolatile::text as volatility,
                rt.typtype::text as typtype, p.prorettype = 'pg_catalog.record'::regtype as returns_record,
                p.prorettype = 'pg_catalog.void'::regtype as returns_void
           from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_type rt on rt.oid = p.prorettype
          where n.nspname = $1 and p.proname = $2 and p.prokind = 'f'`,
        [SCHEMA, fn],
      ));
    } catch {
      throw new HttpError(503, { code: 'PGRST002', message: 'Could not query the database for the schema cache. Retrying.', details: null, hint: null });
    }
    const matches: Routine[] = [];
    for (const r of rows) {
      const modes: string[] = r.argmodes;
      const names: string[] = r.argnames;
      const inNames = modes.length ? names.filter((_, i) => ['i', 'b', 'v'].includes(modes[i])) : names.slice(0, r.nargs);
      if (inNames.length !== r.nargs || inNames.some((n) => !n)) continue; // unnamed parameters: not callable with named keys
      const params = inNames.map((name, i) => ({ name, type: r.in_types[i] as string, required: i < r.nargs - r.ndefaults }));
      const all = new Set(params.map((p) => p.name));
      const ok = params.every((p) => !p.required || keys.has(p.name)) && [...keys].every((k) => all.has(k));
      if (!ok) continue;
      const composite = r.typtype === 'c' || (r.returns_record && modes.some((m) => m === 'o' || m === 't'));
      matches.push({ params, setof: r.setof, scalar: !composite, void: r.returns_void, volatility: r.volatility });
    }
    if (matches.length > 1) throw new HttpError(300, { code: 'PGRST203', message: `Could not choose the best candidate function for ${SCHEMA}.${fn}`, details: null, hint: null });
    return matches[0] ?? null;
  }

  function filters(params: URLSearchParams, first: number): { where: string; values: string[] } {
    const conds: string[] = [];
    const values: string[] = [];
    for (const [key, value] of params) {
      if (['select', 'apikey', 'order', 'limit'].includes(key)) continue;
      if (!IDENT.test(key) || !value.startsWith('eq.')) {
        throw new HttpError(400, { code: 'PGRST100', message: `"failed to parse filter (${value})" (line 1, column 1)`, details: 'this stand-in supports only `column=eq.value`', hint: null });
      }
      values.push(value.slice(3));
      conds.push(`pgrst_t.${ident(key)} = $${first + values.length - 1}`);
    }
    return { where: conds.length ? ` where ${conds.join(' and ')}` : '', values };
  }

  async function tableExists(table: string): Promise<void> {
    const missing = () => new HttpError(404, { code: 'PGRST205', message: `Could not find the table '${SCHEMA}.${table}' in the schema cache`, details: null, hint: null });
    if (!IDENT.test(table)) throw missing();
    const { rows } = await pool.query('select to_regclass($1) is not null as ok', [`${SCHEMA}.${table}`]);
    if (!rows[0].ok) throw missing();
  }

  /** GET /<table>?select=a,b&col=eq.v[&order=col.desc][&limit=n] */
  async function readTable(ctx: TxContext, table: string, params: URLSearchParams): Promise<[number, string]> {
    await tableExists(table);
    const select = params.get('select') ?? '*';
    const cols = select === '*' ? ['*'] : select.split(',').map((c) => c.trim());
    if (cols.some((c) => c !== '*' && !IDENT.test(c))) {
      throw new HttpError(400, { code: 'PGRST100', message: `"failed to parse select parameter (${select})" (line 1, column 1)`, details: null, hint: null });
    }
    const { where, values } = filters(params, 1);
    let order = '';
    if (params.get('order')) {
      const parts = params.get('order')!.split(',').map((o) => /^([a-z_][a-z0-9_]*)(?:\.(asc|desc))?$/.exec(o));
      if (parts.some((p) => !p)) throw new HttpError(400, { code: 'PGRST100', message: 'failed to parse order', details: null, hint: null });
      order = ` order by ${parts.map((p) => `pgrst_t.${ident(p![1])} ${p![2] ?? 'asc'}`).join(', ')}`;
    }
    const limit = params.get('limit') && /^\d+$/.test(params.get('limit')!) ? ` limit ${Number(params.get('limit'))}` : '';
    const list = cols.map((c) => (c === '*' ? 'pgrst_t.*' : `pgrst_t.${ident(c)}`)).join(', ');
    const sql = `select coalesce(json_agg(_postgrest_t), '[]')::text as body
                   from (select ${list} from ${ident(SCHEMA)}.${ident(table)} pgrst_t${where}${order}${limit}) _postgrest_t`;
    return inTransaction(ctx, true, async (c) => [200, (await c.query<{ body: string }>(sql, values)).rows[0].body]);
  }

  /** PATCH /<table>?col=eq.v with a JSON object body; 204, or 200 with the rows for Prefer: return=representation. */
  async function updateTable(ctx: TxContext, table: string, params: URLSearchParams, body: unknown, representation: boolean): Promise<[number, string]> {
    await tableExists(table);
    if (!isObject(body) || Object.keys(body).length === 0 || Object.keys(body).some((k) => !IDENT.test(k))) {
      throw new HttpError(400, { code: 'PGRST102', message: 'Empty or invalid json', details: null, hint: null });
    }
    const { where, values } = filters(params, 2);
    const sets = Object.keys(body).map((k) => `${ident(k)} = pgrst_body.${ident(k)}`).join(', ');
    const qt = `${ident(SCHEMA)}.${ident(table)}`;
    const sql = `with pgrst_patch as (
                   update ${qt} pgrst_t set ${sets} from json_populate_record(null::${qt}, $1::json) pgrst_body${where} returning pgrst_t.*)
                 select coalesce(json_agg(_postgrest_t), '[]')::text as body from (select * from pgrst_patch) _postgrest_t`;
    return inTransaction(ctx, false, async (c) => {
      const { rows } = await c.query<{ body: string }>(sql, [JSON.stringify(body), ...values]);
      return representation ? [200, rows[0].body] : [204, ''];
    });
  }

  /** POST /<table> with a JSON object or array of objects; 201 (with the rows for Prefer: return=representation). */
  async function insertTable(ctx: TxContext, table: string, body: unknown, representation: boolean): Promise<[number, string]> {
    await tableExists(table);
    const rows = Array.isArray(body) ? body : [body];
    const first = rows[0];
    if (rows.length === 0 || !rows.every(isObject) || !isObject(first) || Object.keys(first).length === 0 || Object.keys(first).some((k) => !IDENT.test(k))) {
      throw new HttpError(400, { code: 'PGRST102', message: 'Empty or invalid json', details: null, hint: null });
    }
    const cols = Object.keys(first).map(ident).join(', ');
    const qt = `${ident(SCHEMA)}.${ident(table)}`;
    const sql = `with pgrst_insert as (
                   insert into ${qt} (${cols})
                   select ${Object.keys(first).map((k) => `pgrst_body.${ident(k)}`).join(', ')}
                     from json_populate_recordset(null::${qt}, $1::json) pgrst_body
                   returning ${qt}.*)
                 select coalesce(json_agg(_postgrest_t), '[]')::text as body from (select * from pgrst_insert) _postgrest_t`;
    return inTransaction(ctx, false, async (c) => {
      const { rows: out } = await c.query<{ body: string }>(sql, [JSON.stringify(rows)]);
      return [201, representation ? out[0].body : ''];
    });
  }

  /** DELETE /<table>?col=eq.v; 204, or 200 with the deleted rows for Prefer: return=representation. */
  async function deleteTable(ctx: TxContext, table: string, params: URLSearchParams, representation: boolean): Promise<[number, string]> {
    await tableExists(table);
    const { where, values } = filters(params, 1);
    const sql = `with pgrst_delete as (delete from ${ident(SCHEMA)}.${ident(table)} pgrst_t${where} returning pgrst_t.*)
                 select coalesce(json_agg(_postgrest_t), '[]')::text as body from (select * from pgrst_delete) _postgrest_t`;
    return inTransaction(ctx, false, async (c) => {
      const { rows } = await c.query<{ body: string }>(sql, values);
      return representation ? [200, rows[0].body] : [204, ''];
    });
  }

  function proxy(req: http.IncomingMessage, res: http.ServerResponse, target: URL): void {
    const upstream = http.request(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) send(res, 502, { message: 'An invalid response was received from the upstream server' });
      else res.destroy();
    });
    req.pipe(upstream);
  }

  server.on('request', (req, res) => {
    handle(req, res).catch((err) => {
      console.error('[postgrest] request failed:', err);
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });

  return {
    url,
    restUrl: `${url}/rest/v1`,
    port,
    requests: () => records.map((r) => ({ ...r })),
    clearRequests: () => void records.splice(0),
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await pool.end();
    },
  };
}

/** Error.hs mapSQLtoHTTP + the PgError body. `anon`: the request ran as the anon role (42501 -> 401). */
function toHttpError(err: unknown, anon: boolean): HttpError {
  if (err instanceof HttpError) return err;
  const e = err as { code?: string; message?: string; detail?: string; hint?: string };
  const code = typeof e.code === 'string' ? e.code : '';
  if (!/^[0-9A-Z]{5}$/.test(code)) {
    // Not a server error: the connection broke (Error.hs: ClientError -> 503 PGRST001).
    return new HttpError(503, { code: 'PGRST001', message: 'Database client error. Retrying the connection.', details: null, hint: null });
  }
  const message = e.message ?? '';
  const status = sqlStateStatus(code, message, anon);
  return new HttpError(status, { code, message, details: e.detail ?? null, hint: e.hint ?? null }, status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {});
}

function sqlStateStatus(code: string, message: string, anon: boolean): number {
  switch (code) {
    case '23503': case '23505': return 409;
    case '25006': return 405;
    case '21000': return /requires a WHERE clause$/.test(message) ? 400 : 500;
    case '22023': return /^role .* does not exist$/.test(message) ? 401 : 400;
    case '53400': return 500;
    case '57P01': return 503;
    case 'P0001': return 400;
    case '42883': return 404;
    case '42P01': return 404;
    case '42P17': return 500;
    case '42501': return anon ? 401 : 403;
  }
  const prefixes: [string, number][] = [
    ['08', 503], ['09', 500], ['0L', 403], ['0P', 403], ['25', 500], ['28', 403], ['2D', 500], ['38', 500], ['39', 500],
    ['3B', 500], ['40', 500], ['53', 503], ['54', 500], ['55', 500], ['57', 500], ['58', 500], ['F0', 500], ['HV', 500],
    ['P0', 500], ['XX', 500],
  ];
  for (const [prefix, status] of prefixes) if (code.startsWith(prefix)) return status;
  return 400;
}

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(raw: string, strict: boolean): unknown {
  if (raw.trim() === '') return strict ? {} : undefined;
  try {
    return JSON.parse(raw);
  } catch {
    if (strict) throw new HttpError(400, { code: 'PGRST102', message: 'Empty or invalid json', details: null, hint: null });
    return raw;
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, { code: 'PGRST102', message: 'Request body too large', details: null, hint: null }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendRaw(res, status, JSON.stringify(body), headers);
}

function sendRaw(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (status === 204 || body === '') {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers }).end(body);
}

/** The payload of a JWT without verifying it (test inspection). */
export function peekClaims(token: string): JWTPayload {
  return decodeJwt(token);
}
