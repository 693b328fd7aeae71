// The daemon's entry point: configuration -> store, verifier, tools -> listen -> one JSON line on
// stdout. SIGTERM/SIGINT drain gracefully (a second one exits at once); SIGHUP reopens the log file
// (and re-reads the TLS certificate). Local mode adds the single-instance lock and discovery file.
import os from 'node:os';
import { ConfigError, loadConfig, type DaemonConfig } from './config';
import { SupabaseJwtVerifier, createLocalSecretVerifier } from './auth/verifier';
import type { TokenVerifier } from './auth/identity';
import { acquireInstanceLock, newLocalSecret, removeDiscovery, waitForDiscovery, writeDiscovery } from './auth/localMode';
import { Redactor, createLogger, openLogFile, type Logger } from './log';
import type { ListeningLine } from './protocol';
import { MemorySessionStore } from './sessions/memoryStore';
import { DataApiSessionStore } from './sessions/dataApiStore';
import { PgSessionStore } from './sessions/pgStore';
import { PendingEndings } from './sessions/pendingEndings';
import type { SessionStore, ThreadStore, UsageStore } from './sessions/store';
import { builtinTools } from './tools/builtin';
import { createModelTools } from './tools/family';
import { Providers } from './tools/providers';
import { RuntimeProviderKeys } from './tools/providerKeys';
import { ToolRegistry } from './tools/registry';
import { createMcpEndpoint } from './mcp/endpoint';
import { isLoopbackHost } from './net';
import { createOAuthPages } from './oauth/routes';
import { createDaemonServer, type DaemonServer } from './transport/httpServer';
import { ResultBudget } from './transport/recentResults';
import { loadTls, type LoadedTls } from './transport/tls';
import { VERSION } from './version';

/** A second SIGTERM/SIGINT during the drain: how long to wait for the rows to be marked disconnected. */
const FORCED_EXIT_ROWS_MS = 1000;
/** Past the drain bound, the rest of a graceful stop (rows, database pool, log) gets this long. */
const STOP_SLACK_MS = 5000;
/** Within the slack: how long a graceful stop keeps trying to write endings queued during a store outage. */
const FLUSH_ENDINGS_MS = 3000;

function printLine(line: ListeningLine): void {
  process.stdout.write(JSON.stringify(line) + '\n');
}

function fatal(message: string, exitCode = 1): never {
  process.stderr.write(`exai-daemon: ${message}\n`);
  process.exit(exitCode);
}

async function main(): Promise<void> {
  let config: DaemonConfig;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) fatal(err.message, 2);
    throw err;
  }
  // Read before anything else happens, so a bad certificate or key is a plain start-up error.
  let tls: LoadedTls | null = null;
  try {
    tls = config.tls ? loadTls(config.tls) : null;
  } catch (err) {
    if (err instanceof ConfigError) fatal(err.message, 2);
    throw err;
  }

  // The launcher lets go of our stdout/stderr once we print the listening line; a later write
  // must not crash the daemon with EPIPE.
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});

  let lock: ReturnType<typeof acquireInstanceLock>;
  try {
    lock = acquireInstanceLock(config.stateDir);
  } catch (err) {
    fatal(`cannot use the state directory ${config.stateDir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); set EXAI_STATE_DIR to a writable directory.`);
  }
  if (!lock.acquired) {
    const running = await waitForDiscovery(config.stateDir, lock.ownerPid);
    if (!running) fatal(`another daemon (pid ${lock.ownerPid}) holds ${config.stateDir}/daemon.lock but never published its port; stop it or remove the lock.`);
    printLine({ event: 'already_running', host: running.host, port: running.port, pid: running.pid, version: running.version });
    process.exit(0);
  }
  const releaseLock = lock.release;

  const redactor = new Redactor();
  const secret = config.mode === 'local' ? newLocalSecret() : null;
  redactor.addSecret(secret);
  redactor.addSecret(config.jwtSecret);
  if (config.databaseUrl) redactor.addSecret(safePassword(config.databaseUrl));
  for (const endpoint of config.providers.endpoints) redactor.addSecret(endpoint.apiKey);
  const sink = openLogFile(config.logDir, process.pid, { maxBytes: config.logMaxBytes });
  const log = createLogger(sink, redactor, { daemon_pid: process.pid });

  const store = createStore(config, log);
  // The Data API writes each ending with the user's own token, which can expire while it is down.
  const endings = new PendingEndings({ store, log, needsLiveToken: config.sessionStore === 'data-api' });
  const providers = new Providers(config.providers);
  if (providers.configured) log.info('chat providers', { providers: providers.describe(), default_model: config.providers.defaultModel, timeout_s: config.providers.timeoutSec, max_concurrent: config.providers.maxConcurrent, queue_length: config.providers.queueLength, max_retries: config.providers.maxRetries, daily_tokens_per_user: config.dailyTokensPerUser });
  else log.info('no chat provider configured (set EXAI_PROVIDER_BASE_URL, KIMI_API_KEY or GLM_API_KEY); the chat tool will say so');
  const verifier: TokenVerifier = config.mode === 'local'
    ? createLocalSecretVerifier(secret!, os.userInfo().username)
    : new SupabaseJwtVerifier({ supabaseUrl: config.supabaseUrl!, jwtSecret: config.jwtSecret ?? undefined, allowAnonymous: config.allowAnonymous, oauthClients: config.oauthClients });

  if (config.mode === 'supabase') {
    try {
      const recovered = await store.recoverAbandoned(config.daemonId);
      if (recovered > 0) log.info('marked sessions left by the previous instance as disconnected', { count: recovered });
    } catch (err) {
      // Not fatal: rows left behind read as stale after the liveness bound anyway.
      log.error('could not recover sessions of the previous instance', { error: err });
      process.stderr.write(`exai-daemon: warning: ${(err as Error).message}\n`);
    }
  }

  // One registry, two transports: the WebSocket protocol and MCP on /mcp serve the same tools.
  const tools = new ToolRegistry().register(...builtinTools, ...createModelTools({
    providers, threads: store, usage: store, files: config.files, dailyTokensPerUser: config.dailyTokensPerUser,
  }));
  const mcp = createMcpEndpoint({ verifier, store, endings, tools, log }, {
    mode: config.mode,
    daemonId: config.daemonId,
    sessionTimeoutSec: config.sessionTimeoutSec,
    heartbeatSec: config.heartbeatSec,
    maxConnectionsPerUser: config.maxConnectionsPerUser,
    maxInflight: config.maxInflightPerConnection,
    maxBodyBytes: config.maxPayloadBytes,
    loopbackOnly: isLoopbackHost(config.host) && !tls && !config.behindProxy,
    resource: { supabaseUrl: config.supabaseUrl?.trim().replace(/\/+$/, '') ?? null, https: tls !== null || config.behindProxy },
  });
  const server = createDaemonServer(
    {
      options: {
        mode: config.mode,
        daemonId: config.daemonId,
        helloTimeoutMs: config.helloTimeoutMs,
        sessionTimeoutSec: config.sessionTimeoutSec,
        heartbeatSec: config.heartbeatSec,
        maxConnectionsPerUser: config.maxConnectionsPerUser,
        maxInflight: config.maxInflightPerConnection,
        maxBufferedBytes: config.maxBufferedBytes,
      },
      resultBudget: new ResultBudget(),
      // Local mode only: a hosted daemon keeps the keys of its environment (server/tools/providerKeys.ts).
      providerKeys: config.mode === 'local' ? new RuntimeProviderKeys(providers, redactor, log) : null,
      verifier,
      store,
      endings,
      tools,
      log,
    },
    {
      maxPayloadBytes: config.maxPayloadBytes, mode: config.mode, tls, behindProxy: config.behindProxy, publicHosts: config.publicHosts,
      maxUnauthenticated: config.maxUnauthenticated, maxUnauthenticatedPerAddress: config.maxUnauthenticatedPerAddress, mcp,
      oauth: createOAuthPages({
        mode: config.mode,
        supabaseUrl: config.supabaseUrl?.trim().replace(/\/+$/, '') ?? null,
        anonKey: config.supabaseAnonKey,
        https: tls !== null || config.behindProxy,
      }, log),
    },
  );
  if (tls) {
    log.info('TLS: serving HTTPS and WSS', { cert: config.tls!.certFile, subject: tls.subject, valid_to: tls.validTo.toISOString() });
    if (tls.expired) warnExpired(log, config.tls!.certSetting, tls);
  }

  let address: { host: string; port: number };
  try {
    address = await server.listen(config.host, config.port);
  } catch (err) {
    releaseLock();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') fatal(`port ${config.port} on ${config.host} is already in use; choose another with --port (or EXAI_WS_PORT), or 0 for any free port.`);
    if (code === 'EADDRNOTAVAIL') fatal(`--host ${config.host} is not an address of this machine.`);
    throw err;
  }

  // Installed before the discovery file and the listening line: from then on a SIGTERM must find
  // a handler (without one, Node dies of the signal and leaves daemon.json and daemon.lock behind).
  let stopping = false;
  let exiting = false;
  const exit = async (code: number) => {
    if (exiting) return;
    exiting = true;
    removeDiscovery(config.stateDir);
    releaseLock();
    await withinMs(store.end().catch(() => {}), FORCED_EXIT_ROWS_MS);
    await withinMs(sink.close(), FORCED_EXIT_ROWS_MS);
    process.exit(code);
  };
  /** A second signal during the drain, or a drain that overran: close everything now, exit 1. */
  const forceExit = async (why: string) => {
    if (exiting) return;
    log.warn('exiting without waiting for calls in flight', { why });
    await server.closeNow(FORCED_EXIT_ROWS_MS);
    await exit(1);
  };
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { why, drain_s: config.drainSec });
    setTimeout(() => void forceExit(`the drain did not finish within ${config.drainSec} s + ${STOP_SLACK_MS / 1000} s`), config.drainSec * 1000 + STOP_SLACK_MS);
    await server.drain(config.drainSec * 1000);
    const unwritten = await endings.flush(FLUSH_ENDINGS_MS);
    if (unwritten > 0) {
      log.warn('final session statuses were not written: the session store is still unavailable; those rows read stale after the liveness bound',
        { unwritten });
    }
    await exit(0);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) void forceExit(`second ${signal} during the drain`);
    else void stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // logrotate: `mv` the file, then SIGHUP; new lines go to a fresh file at the same path.
  process.on('SIGHUP', () => {
    sink.reopen();
    log.info('reopened the log file (SIGHUP)', { log_file: sink.file });
    if (config.tls) reloadCertificate(server, config, log);
  });
  writeDiscovery(config.stateDir, { pid: process.pid, host: address.host, port: address.port, version: VERSION, secret, mode: config.mode, supabase_url: config.supabaseUrl, started_at: new Date().toISOString() });
  log.info('listening', { host: address.host, port: address.port, mode: config.mode, version: VERSION, log_file: sink.file, tls: tls !== null, behind_proxy: config.behindProxy, public_hosts: config.publicHosts, drain_s: config.drainSec });
  printLine({ event: 'listening', host: address.host, port: address.port, pid: process.pid, version: VERSION });

  exitWhenUnused(server, config, log, () => void stop(`no connection for ${config.idleExitSec} s`));
}

/** SIGHUP with --tls-cert/--tls-key: a renewed certificate serves new connections; a bad one is logged and the old one kept. */
function reloadCertificate(server: DaemonServer, config: DaemonConfig, log: Logger): void {
  let tls: LoadedTls;
  try {
    tls = loadTls(config.tls!);
  } catch (err) {
    log.error('kept the current TLS certificate: the files could not be used', { error: (err as Error).message });
    process.stderr.write(`exai-daemon: kept the current TLS certificate: ${(err as Error).message}\n`);
    return;
  }
  server.setCertificate(tls.cert, tls.key);
  log.info('TLS: re-read the certificate (SIGHUP)', { cert: config.tls!.certFile, subject: tls.subject, valid_to: tls.validTo.toISOString() });
  if (tls.expired) warnExpired(log, config.tls!.certSetting, tls);
}

function warnExpired(log: Logger, setting: string, tls: LoadedTls): void {
  const message = `the certificate in ${setting} expired on ${tls.validTo.toISOString()}; clients will refuse to connect until it is renewed.`;
  log.warn(message);
  process.stderr.write(`exai-daemon: warning: ${message}\n`);
}

function withinMs(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]).finally(() => clearTimeout(timer));
}

/** A daemon the extension spawned exits on its own once nobody has used it for a while. */
function exitWhenUnused(server: DaemonServer, config: DaemonConfig, log: Logger, stop: () => void): void {
  if (config.idleExitSec <= 0) return;
  let timer: NodeJS.Timeout | null = null;
  const arm = (count: number) => {
    if (timer) clearTimeout(timer);
    timer = count === 0 ? setTimeout(stop, config.idleExitSec * 1000) : null;
  };
  server.onConnectionCountChange(arm);
  arm(0);
  log.info('will exit when unused', { after_s: config.idleExitSec });
}

/** local: in memory; DATABASE_URL: direct Postgres; otherwise the Supabase Data API with each user's own JWT. */
function createStore(config: DaemonConfig, log: Logger): SessionStore & ThreadStore & UsageStore {
  switch (config.sessionStore) {
    case 'memory':
      return new MemorySessionStore();
    case 'postgres':
      if (config.supabaseAnonKey) log.info('DATABASE_URL and SUPABASE_ANON_KEY are both set; sessions use DATABASE_URL (direct Postgres), not the Data API');
      else log.info('sessions are stored through DATABASE_URL (direct Postgres)');
      return new PgSessionStore({ connectionString: config.databaseUrl! });
    case 'data-api':
      log.info("sessions are stored through the Supabase Data API with each user's own token", { supabase_url: config.supabaseUrl });
      return new DataApiSessionStore({ supabaseUrl: config.supabaseUrl!, anonKey: config.supabaseAnonKey!, clientInfo: `exai-daemon/${VERSION}` });
  }
}

function safePassword(databaseUrl: string): string | null {
  try {
    return decodeURIComponent(new URL(databaseUrl).password) || null;
  } catch {
    return null;
  }
}

main().catch((err) => fatal(`unexpected error: ${(err as Error).stack ?? err}`));
