// Command-line flags and environment variables -> one validated DaemonConfig.
// A bad or missing setting becomes ConfigError with one sentence that names the setting.
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { OAuthClients } from './auth/verifier';
import { isLoopbackHost } from './net';

export interface DaemonConfig {
  host: string;
  port: number;
  mode: 'local' | 'supabase';
  supabaseUrl: string | null;
  jwtSecret: string | null;
  databaseUrl: string | null;
  /** The project's public anon (or sb_publishable_) key, for the Data API session store. */
  supabaseAnonKey: string | null;
  /** Where session rows go: in memory (local mode), Postgres directly (DATABASE_URL), or the Supabase Data API with each user's JWT. */
  sessionStore: 'memory' | 'postgres' | 'data-api';
  /** Idle seconds before a connection is closed and its row marked `expired`. */
  sessionTimeoutSec: number;
  /** Live connections one user may hold (supabase mode: counted in Postgres across daemons). */
  maxConnectionsPerUser: number;
  logDir: string;
  stateDir: string;
  /** Identifies this daemon across restarts, so a restart can close the rows its previous instance left. */
  daemonId: string;
  /** Accept tokens of anonymous Supabase users (EXAI_ALLOW_ANONYMOUS; default false). */
  allowAnonymous: boolean;
  /** The clients of the project's OAuth 2.1 server whose tokens are accepted (EXAI_OAUTH_CLIENTS; default none). */
  oauthClients: OAuthClients;
  helloTimeoutMs: number;
  /** How often live connections refresh `last_active` (the liveness heartbeat). */
  heartbeatSec: number;
  maxPayloadBytes: number;
  maxInflightPerConnection: number;
  /** Bytes of replies that may wait for a client that does not read them before its connection closes (4010). */
  maxBufferedBytes: number;
  /** Local mode: exit after this many seconds with no connection (0 = never). */
  idleExitSec: number;
  /** Serve HTTPS + WSS on the one port with these PEM files (null: plain HTTP + WS). */
  tls: TlsSettings | null;
  /** TLS ends at a reverse proxy: X-Forwarded-For is logged as the client address (never used for a decision). */
  behindProxy: boolean;
  /** On SIGTERM/SIGINT: how long calls in flight may run on before they are cancelled. */
  drainSec: number;
  /** The chat tool's OpenAI-compatible model providers. */
  providers: ProviderSettings;
  /** A hosted daemon's public host names (lower case), accepted in the Host header; null: a loopback-only daemon, which answers to loopback names alone. */
  publicHosts: string[] | null;
  /** Unauthenticated sockets (accepted, not yet past hello_ack) at once, in all and from one address. */
  maxUnauthenticated: number;
  maxUnauthenticatedPerAddress: number;
  /** The log file's byte bound (then it moves to `<file>.old`). */
  logMaxBytes: number;
  /** Bounds on the `files` of the model tools. */
  files: FileLimits;
  /** Tokens (in + out) one user may spend per UTC day through the model tools, across every daemon on the database; null: unlimited. */
  dailyTokensPerUser: number | null;
}

/** One OpenAI-compatible endpoint the chat tool may call. */
export interface ProviderEndpoint {
  /** `custom`: EXAI_PROVIDER_BASE_URL; `kimi` (Moonshot) and `glm` (Z.ai / ZhipuAI): the original daemon's two. */
  name: 'custom' | 'kimi' | 'glm';
  baseUrl: string;
  /** Null only for a custom endpoint that needs none (e.g. a local server). Never log it. */
  apiKey: string | null;
  /** The variables that configure it, for error messages. */
  keyEnv: string;
  urlEnv: string;
  /** Set at run time by a local client (set_provider_key), not read from the environment. */
  fromClient?: boolean;
}

export interface ProviderSettings {
  endpoints: ProviderEndpoint[];
  /** The model when a chat call names none (EXAI_DEFAULT_MODEL). */
  defaultModel: string | null;
  /** Bound on one model call: its wait for a slot, its retries and its whole answer (EXAI_PROVIDER_TIMEOUT_SECONDS). */
  timeoutSec: number;
  /** Upstream requests running at once per provider (EXAI_PROVIDER_MAX_CONCURRENT). */
  maxConcurrent: number;
  /** Calls that may wait for a slot per provider; one more is refused with over_capacity (EXAI_PROVIDER_QUEUE_LENGTH). */
  queueLength: number;
  /** Retries of a 429/503 answer that carries Retry-After, within the call's deadline (EXAI_PROVIDER_MAX_RETRIES). */
  maxRetries: number;
}

/** What the model tools accept in `files` (the caller sends each file's text). */
export interface FileLimits {
  /** UTF-8 bytes of one file (EXAI_FILES_MAX_FILE_BYTES). */
  maxFileBytes: number;
  /** UTF-8 bytes of all files of one call (EXAI_FILES_MAX_CALL_BYTES). */
  maxCallBytes: number;
}

export const KIMI_DEFAULT_URL = 'https://api.moonshot.ai/v1';
export const GLM_DEFAULT_URL = 'https://api.z.ai/api/paas/v4';

export interface TlsSettings {
  certFile: string;
  keyFile: string;
  /** How the user named each file (`--tls-cert` or `EXAI_TLS_CERT`), for error messages. */
  certSetting: string;
  keySetting: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const FLAGS = {
  host: { type: 'string' },
  port: { type: 'string' },
  mode: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'behind-proxy': { type: 'boolean' },
  'public-host': { type: 'string', multiple: true },
  help: { type: 'boolean' },
} as const;

export const USAGE = `usage: node dist/server.js [--host 127.0.0.1] [--port 8079] [--mode local|supabase]
  [--tls-cert cert.pem --tls-key key.pem] [--behind-proxy] [--public-host exai.example.com]
environment: EXAI_WS_HOST, EXAI_WS_PORT, MCP_ENABLE_MULTI_USER, SUPABASE_URL, SUPABASE_JWT_SECRET,
  DATABASE_URL, SUPABASE_ANON_KEY, MCP_SESSION_TIMEOUT, MCP_MAX_CONNECTIONS_PER_USER, EXAI_MAX_BUFFERED_BYTES, EXAI_LOG_DIR, EXAI_STATE_DIR,
  EXAI_DAEMON_ID, EXAI_ALLOW_ANONYMOUS, EXAI_OAUTH_CLIENTS, EXAI_IDLE_EXIT_SECONDS, EXAI_TLS_CERT, EXAI_TLS_KEY, EXAI_BEHIND_PROXY, EXAI_DRAIN_SECONDS,
  EXAI_PROVIDER_BASE_URL, EXAI_PROVIDER_API_KEY, EXAI_DEFAULT_MODEL, EXAI_PROVIDER_TIMEOUT_SECONDS,
  EXAI_PROVIDER_MAX_CONCURRENT, EXAI_PROVIDER_QUEUE_LENGTH, EXAI_PROVIDER_MAX_RETRIES,
  EXAI_FILES_MAX_FILE_BYTES, EXAI_FILES_MAX_CALL_BYTES, EXAI_DAILY_TOKENS_PER_USER,
  KIMI_API_KEY, KIMI_API_URL, GLM_API_KEY, GLM_API_URL, EXAI_PUBLIC_HOSTS, EXAI_MAX_UNAUTHENTICATED,
  EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS, EXAI_LOG_MAX_MB`;

/** Hosted default: a fair share of a daemon many users connect to. */
export const DEFAULT_MAX_CONNECTIONS_PER_USER = 5;
/**
 * Local mode: one OS user owns every window, so there is no per-user quota to enforce; this only
 * stops a runaway client from opening sockets without end.
 */
export const LOCAL_MAX_CONNECTIONS_PER_USER = 10_000;
/**
 * The setting's ceiling in supabase mode: public.mcp_claim_session clamps the limit to 1000 (a user
 * calling it directly must not hold more live rows), so a higher setting would be silently ignored.
 * It is a per-account limit; it does not cap a daemon's total (400 users x 5 = 2,000 connections).
 */
export const HOSTED_MAX_CONNECTIONS_PER_USER_CEILING = 1000;
/** Local mode (memory store, one OS user): far above any one machine's windows and agents. */
export const MAX_CONNECTIONS_PER_USER_CEILING = 1_000_000;
export const DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

function integer(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max} (got "${raw}").`);
  return value;
}

/** Stored in each session's metadata; the SQL functions refuse more than 512 characters. */
function daemonId(value: string): string {
  if (value.length > 512) throw new ConfigError(`EXAI_DAEMON_ID is ${value.length} characters long; use at most 512 (it is stored with every session row).`);
  return value;
}

/** `<hostname>:<state dir>`, with the directory hashed when the whole would not fit in 512 characters. */
function defaultDaemonId(stateDir: string): string {
  const id = `${os.hostname()}:${stateDir}`;
  return id.length <= 512 ? id : `${os.hostname().slice(0, 255)}:sha256:${crypto.createHash('sha256').update(stateDir).digest('hex')}`;
}

function boolean(name: string, raw: string | undefined): boolean {
  if (raw === undefined || raw === '' || raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new ConfigError(`${name} must be true or false (got "${raw}").`);
}

function httpUrl(name: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a valid URL (expected something like https://<project-ref>.supabase.co).`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError(`${name} must start with https:// (or http:// for a local project).`);
  return raw.replace(/\/+$/, '');
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): DaemonConfig {
  let flags: { host?: string; port?: string; mode?: string; 'tls-cert'?: string; 'tls-key'?: string; 'behind-proxy'?: boolean; 'public-host'?: string[]; help?: boolean };
  try {
    flags = parseArgs({ args: argv, options: FLAGS, strict: true }).values;
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}. ${USAGE.split('\n')[0]}`);
  }
  if (flags.help) throw new ConfigError(USAGE);

  const host = flags.host ?? env.EXAI_WS_HOST ?? '127.0.0.1';
  if (!host.trim()) throw new ConfigError('--host (EXAI_WS_HOST) must not be empty.');
  const port = integer(flags.port !== undefined ? '--port' : 'EXAI_WS_PORT', flags.port ?? env.EXAI_WS_PORT, 8079, 0, 65535);

  const multiUser = env.MCP_ENABLE_MULTI_USER;
  if (multiUser !== undefined && !['true', 'false', '1', '0', ''].includes(multiUser)) {
    throw new ConfigError(`MCP_ENABLE_MULTI_USER must be true or false (got "${multiUser}").`);
  }
  const modeRaw = flags.mode ?? (multiUser === 'true' || multiUser === '1' ? 'supabase' : 'local');
  if (modeRaw !== 'local' && modeRaw !== 'supabase') throw new ConfigError(`--mode must be local or supabase (got "${modeRaw}").`);
  const mode = modeRaw;

  const supabaseUrl = env.SUPABASE_URL ? httpUrl('SUPABASE_URL', env.SUPABASE_URL) : null;
  const jwtSecret = env.SUPABASE_JWT_SECRET || null;
  const databaseUrl = env.DATABASE_URL || null;
  const supabaseAnonKey = env.SUPABASE_ANON_KEY?.trim() || null;
  if (mode === 'supabase') {
    if (!supabaseUrl) throw new ConfigError('SUPABASE_URL is required in supabase mode (e.g. https://<project-ref>.supabase.co).');
    if (!databaseUrl && !supabaseAnonKey) {
      throw new ConfigError('supabase mode needs DATABASE_URL (direct Postgres, for hosted daemons) or SUPABASE_ANON_KEY (the Supabase Data API with each user\'s own token).');
    }
    if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) throw new ConfigError('DATABASE_URL must be a postgres:// connection string.');
    if (supabaseAnonKey) checkAnonKey(supabaseAnonKey);
    if (jwtSecret !== null && jwtSecret.length < 32) throw new ConfigError('SUPABASE_JWT_SECRET is shorter than 32 characters; copy the full legacy JWT secret from the project settings.');
  } else if (!isLoopbackHost(host)) {
    throw new ConfigError(`--host ${host} is not a loopback address; local mode only listens on 127.0.0.1 or ::1.`);
  }

  const tls = tlsSettings(flags, env);
  const behindProxy = flags['behind-proxy'] === true || boolean('EXAI_BEHIND_PROXY', env.EXAI_BEHIND_PROXY);
  // A token must never cross a network in clear text: off this machine, either the daemon speaks
  // TLS itself or a reverse proxy in front of it does.
  if (mode === 'supabase' && !isLoopbackHost(host) && !tls && !behindProxy) {
    throw new ConfigError(`--host ${host} is not a loopback address, so the daemon needs TLS: give --tls-cert and --tls-key (EXAI_TLS_CERT, EXAI_TLS_KEY), or --behind-proxy (EXAI_BEHIND_PROXY=true) when a reverse proxy in front of it ends TLS.`);
  }

  const stateDir = path.resolve(env.EXAI_STATE_DIR || path.join(os.homedir(), '.exai'));
  const logDir = path.resolve(env.EXAI_LOG_DIR || path.join(stateDir, 'logs'));

  return {
    host,
    port,
    mode,
    supabaseUrl,
    jwtSecret,
    databaseUrl,
    supabaseAnonKey,
    // Both set: DATABASE_URL wins (main.ts logs it).
    sessionStore: mode === 'local' ? 'memory' : databaseUrl ? 'postgres' : 'data-api',
    sessionTimeoutSec: integer('MCP_SESSION_TIMEOUT', env.MCP_SESSION_TIMEOUT, 3600, 1, 30 * 24 * 3600),
    maxConnectionsPerUser: integer('MCP_MAX_CONNECTIONS_PER_USER', env.MCP_MAX_CONNECTIONS_PER_USER,
      mode === 'local' ? LOCAL_MAX_CONNECTIONS_PER_USER : DEFAULT_MAX_CONNECTIONS_PER_USER, 1,
      mode === 'local' ? MAX_CONNECTIONS_PER_USER_CEILING : HOSTED_MAX_CONNECTIONS_PER_USER_CEILING),
    logDir,
    stateDir,
    daemonId: env.EXAI_DAEMON_ID ? daemonId(env.EXAI_DAEMON_ID) : defaultDaemonId(stateDir),
    allowAnonymous: boolean('EXAI_ALLOW_ANONYMOUS', env.EXAI_ALLOW_ANONYMOUS),
    oauthClients: oauthClientsSetting(env.EXAI_OAUTH_CLIENTS),
    helloTimeoutMs: integer('EXAI_HELLO_TIMEOUT_MS', env.EXAI_HELLO_TIMEOUT_MS, 10_000, 100, 600_000),
    // At most a third of the liveness bound (public.mcp_session_stale_after(), 45 s): a live row must
    // survive two missed heartbeats without reading `stale`.
    heartbeatSec: integer('EXAI_HEARTBEAT_SECONDS', env.EXAI_HEARTBEAT_SECONDS, 15, 1, 15),
    maxPayloadBytes: 4 * 1024 * 1024,
    maxInflightPerConnection: 64,
    maxBufferedBytes: integer('EXAI_MAX_BUFFERED_BYTES', env.EXAI_MAX_BUFFERED_BYTES, DEFAULT_MAX_BUFFERED_BYTES, 64 * 1024, 1024 * 1024 * 1024),
    idleExitSec: integer('EXAI_IDLE_EXIT_SECONDS', env.EXAI_IDLE_EXIT_SECONDS, 0, 0, 7 * 24 * 3600),
    tls,
    behindProxy,
    drainSec: integer('EXAI_DRAIN_SECONDS', env.EXAI_DRAIN_SECONDS, 10, 0, 3600),
    providers: providerSettings(env),
    publicHosts: publicHostsSetting(flags['public-host'], env, mode === 'supabase' && (!isLoopbackHost(host) || tls !== null || behindProxy)),
    maxUnauthenticated: integer('EXAI_MAX_UNAUTHENTICATED', env.EXAI_MAX_UNAUTHENTICATED, 512, 1, 100_000),
    maxUnauthenticatedPerAddress: integer('EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS', env.EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS, 128, 1, 100_000),
    logMaxBytes: integer('EXAI_LOG_MAX_MB', env.EXAI_LOG_MAX_MB, 50, 1, 100_000) * 1024 * 1024,
    files: fileLimits(env),
    dailyTokensPerUser: env.EXAI_DAILY_TOKENS_PER_USER?.trim()
      ? integer('EXAI_DAILY_TOKENS_PER_USER', env.EXAI_DAILY_TOKENS_PER_USER, 0, 1, 1_000_000_000_000)
      : null,
  };
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * --public-host (repeatable) or EXAI_PUBLIC_HOSTS, comma-separated: the names a hosted daemon
 * answers to (server/transport/hostCheck.ts). Required when hosted, refused when not.
 */
function publicHostsSetting(flag: string[] | undefined, env: NodeJS.ProcessEnv, hosted: boolean): string[] | null {
  const setting = flag !== undefined ? '--public-host' : 'EXAI_PUBLIC_HOSTS';
  const names = (flag ?? [env.EXAI_PUBLIC_HOSTS ?? '']).join(',').split(',').map((n) => n.trim().toLowerCase()).filter(Boolean);
  if (!hosted) {
    if (names.length > 0) throw new ConfigError(`${setting} is for a hosted daemon (TLS, --behind-proxy or a non-loopback --host in supabase mode); this one serves loopback only and answers to localhost, 127.0.0.1 and [::1], so unset it.`);
    return null;
  }
  if (names.length === 0) {
    throw new ConfigError('A hosted daemon (TLS, --behind-proxy or a non-loopback --host) needs --public-host (EXAI_PUBLIC_HOSTS): the host names clients reach it by, comma-separated (e.g. exai.example.com), so that web pages cannot reach it through DNS rebinding.');
  }
  const bad = names.find((n) => !HOST_NAME.test(n));
  if (bad !== undefined) throw new ConfigError(`${setting} entry "${bad.slice(0, 100)}" is not a host name; list names such as exai.example.com, without scheme or port, separated by commas.`);
  return names;
}

const CLIENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Far more clients than one daemon's operator names by hand; the list is searched per token. */
const MAX_OAUTH_CLIENTS = 1000;

/** EXAI_OAUTH_CLIENTS: unset or empty (no OAuth-issued token), `*`, or a comma list of client ids (UUIDs). */
function oauthClientsSetting(raw: string | undefined): OAuthClients {
  const entries = (raw ?? '').split(',').map((e) => e.trim()).filter(Boolean);
  if (entries.length === 1 && entries[0] === '*') return '*';
  if (entries.includes('*')) throw new ConfigError('EXAI_OAUTH_CLIENTS is either * (every OAuth client of the project) or a list of client ids, not both.');
  if (entries.length > MAX_OAUTH_CLIENTS) throw new ConfigError(`EXAI_OAUTH_CLIENTS lists ${entries.length} client ids; at most ${MAX_OAUTH_CLIENTS} (use * when the project's OAuth server serves only this daemon).`);
  const bad = entries.find((e) => !CLIENT_ID.test(e));
  if (bad !== undefined) {
    throw new ConfigError(`EXAI_OAUTH_CLIENTS entry "${bad.slice(0, 100)}" is not an OAuth client id; list the client ids (UUIDs, from Authentication > OAuth Apps) separated by commas, or set *.`);
  }
  return [...new Set(entries.map((e) => e.toLowerCase()))];
}

/** Files arrive inside a call_tool frame (at most 4 MiB), so a call's files stay well below that. */
export const MAX_FILES_CALL_BYTES_CEILING = 3 * 1024 * 1024;

export function fileLimits(env: NodeJS.ProcessEnv): FileLimits {
  const maxCallBytes = integer('EXAI_FILES_MAX_CALL_BYTES', env.EXAI_FILES_MAX_CALL_BYTES, 1024 * 1024, 1024, MAX_FILES_CALL_BYTES_CEILING);
  const maxFileBytes = integer('EXAI_FILES_MAX_FILE_BYTES', env.EXAI_FILES_MAX_FILE_BYTES, Math.min(256 * 1024, maxCallBytes), 1, MAX_FILES_CALL_BYTES_CEILING);
  if (maxFileBytes > maxCallBytes) {
    throw new ConfigError(`EXAI_FILES_MAX_FILE_BYTES (${maxFileBytes}) is larger than EXAI_FILES_MAX_CALL_BYTES (${maxCallBytes}); one file can never be larger than all files of a call.`);
  }
  return { maxFileBytes, maxCallBytes };
}

/** The chat tool's providers. Keys are trimmed; a key without its endpoint, or a bad URL, is a ConfigError. */
export function providerSettings(env: NodeJS.ProcessEnv): ProviderSettings {
  const endpoints: ProviderEndpoint[] = [];
  const endpointUrl = (name: string, raw: string) => {
    let url: URL;
    try {
      url = new URL(raw.trim());
    } catch {
      throw new ConfigError(`${name} is not a valid URL (expected the OpenAI-compatible base URL, e.g. https://api.example.com/v1).`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError(`${name} must start with https:// (or http:// for a local server).`);
    return raw.trim().replace(/\/+$/, '');
  };
  const customUrl = env.EXAI_PROVIDER_BASE_URL?.trim();
  const customKey = env.EXAI_PROVIDER_API_KEY?.trim() || null;
  if (customUrl) {
    endpoints.push({ name: 'custom', baseUrl: endpointUrl('EXAI_PROVIDER_BASE_URL', customUrl), apiKey: customKey, keyEnv: 'EXAI_PROVIDER_API_KEY', urlEnv: 'EXAI_PROVIDER_BASE_URL' });
  } else if (customKey) {
    throw new ConfigError('EXAI_PROVIDER_API_KEY is set but EXAI_PROVIDER_BASE_URL is not; set it to the OpenAI-compatible endpoint the key belongs to (e.g. https://api.openai.com/v1).');
  }
  const kimiKey = env.KIMI_API_KEY?.trim();
  if (kimiKey) endpoints.push({ name: 'kimi', baseUrl: endpointUrl('KIMI_API_URL', env.KIMI_API_URL?.trim() || KIMI_DEFAULT_URL), apiKey: kimiKey, keyEnv: 'KIMI_API_KEY', urlEnv: 'KIMI_API_URL' });
  const glmKey = env.GLM_API_KEY?.trim();
  if (glmKey) endpoints.push({ name: 'glm', baseUrl: endpointUrl('GLM_API_URL', env.GLM_API_URL?.trim() || GLM_DEFAULT_URL), apiKey: glmKey, keyEnv: 'GLM_API_KEY', urlEnv: 'GLM_API_URL' });
  const defaultModel = env.EXAI_DEFAULT_MODEL?.trim() || null;
  if (defaultModel !== null && defaultModel.length > 128) throw new ConfigError('EXAI_DEFAULT_MODEL is longer than 128 characters; give a model name such as glm-4.5-flash.');
  return {
    endpoints,
    defaultModel,
    timeoutSec: integer('EXAI_PROVIDER_TIMEOUT_SECONDS', env.EXAI_PROVIDER_TIMEOUT_SECONDS, 120, 1, 3600),
    // The original daemon's per-provider limits were 4 (GLM) and 6 (Kimi); one default for every provider.
    maxConcurrent: integer('EXAI_PROVIDER_MAX_CONCURRENT', env.EXAI_PROVIDER_MAX_CONCURRENT, 4, 1, 256),
    queueLength: integer('EXAI_PROVIDER_QUEUE_LENGTH', env.EXAI_PROVIDER_QUEUE_LENGTH, 32, 0, 10_000),
    maxRetries: integer('EXAI_PROVIDER_MAX_RETRIES', env.EXAI_PROVIDER_MAX_RETRIES, 2, 0, 5),
  };
}

/** --tls-cert / --tls-key (or EXAI_TLS_CERT / EXAI_TLS_KEY): both or neither. The files are read by server/transport/tls.ts. */
function tlsSettings(flags: { 'tls-cert'?: string; 'tls-key'?: string }, env: NodeJS.ProcessEnv): TlsSettings | null {
  const cert = flags['tls-cert'] ?? (env.EXAI_TLS_CERT || undefined);
  const key = flags['tls-key'] ?? (env.EXAI_TLS_KEY || undefined);
  const certSetting = flags['tls-cert'] !== undefined ? '--tls-cert' : 'EXAI_TLS_CERT';
  const keySetting = flags['tls-key'] !== undefined ? '--tls-key' : 'EXAI_TLS_KEY';
  if (cert === undefined && key === undefined) return null;
  if (cert !== undefined && !cert.trim()) throw new ConfigError(`${certSetting} must not be empty; give the path of the PEM certificate file.`);
  if (key !== undefined && !key.trim()) throw new ConfigError(`${keySetting} must not be empty; give the path of the PEM private key file.`);
  if (key === undefined) throw new ConfigError(`${certSetting} needs --tls-key (EXAI_TLS_KEY) too: the path of the certificate's PEM private key.`);
  if (cert === undefined) throw new ConfigError(`${keySetting} needs --tls-cert (EXAI_TLS_CERT) too: the path of the PEM certificate (chain) it belongs to.`);
  return { certFile: path.resolve(cert), keyFile: path.resolve(key), certSetting, keySetting };
}


/**
 * SUPABASE_ANON_KEY must be the public key: a legacy anon JWT (`role: anon`) or an sb_publishable_ key.
 * A service_role JWT or an sb_secret_ key bypasses row-level security and never belongs on a user's machine.
 */
function checkAnonKey(key: string): void {
  if (key.startsWith('sb_secret_') || jwtRole(key) === 'service_role') {
    throw new ConfigError("SUPABASE_ANON_KEY holds a service_role (secret) key, and a user's machine never holds the service_role key; set it to the project's anon (publishable) key.");
  }
  if (!key.startsWith('sb_publishable_') && jwtRole(key) === undefined) {
    throw new ConfigError("SUPABASE_ANON_KEY is not a Supabase API key; copy the project's anon (publishable) key from its API settings.");
  }
}

/** The `role` claim of an unverified JWT ('' when it has none); undefined when `token` is not a JWT. */
function jwtRole(token: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (typeof payload !== 'object' || payload === null) return undefined;
    const role = (payload as { role?: unknown }).role;
    return typeof role === 'string' ? role : '';
  } catch {
    return undefined;
  }
}
