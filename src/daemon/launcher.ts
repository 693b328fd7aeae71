// Finds the local daemon of a state directory, or starts the bundled one (model: eslint_d's
// lib/launcher.js). Plain Node, no 'vscode': the extension wires the results and errors to the UI.
//
// Who runs is decided by the daemon itself (its O_EXCL lock in <stateDir>/daemon.lock): when two
// windows spawn at once, the loser prints `already_running` with the winner's port and exits, so
// both windows end up on the same daemon.
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { identifyProcess, isProcessRunning, readDiscovery, removeDiscovery, type DiscoveryInfo } from '../../server/auth/localMode';
import type { ClientFrame, HealthBody, ListeningLine, ServerFrame } from '../../server/protocol';
import { PROTOCOL_VERSION } from '../../server/protocolCodes';
import { webSocketClass } from '../lazyModules';

export interface LauncherOptions {
  /** The bundled daemon, dist/server.js. */
  serverJs: string;
  /** The runtime to start it with; in VS Code the extension host's own executable (Electron). */
  nodePath: string;
  stateDir: string;
  logDir: string;
  /** The daemon must report exactly this version; a different one is never used silently. */
  expectedVersion: string;
  /** The spawned daemon exits after this many seconds without a connection (0 = never). */
  idleExitSec: number;
  /**
   * Supabase mode: the project's URL and PUBLIC anon key, nothing else. The daemon then writes
   * session rows through the Data API with each connection's own token. null: local mode.
   */
  supabase?: { url: string; anonKey: string } | null;
  log?: (msg: string) => void;
  /** Bound for the whole start (default 15 s). */
  timeoutMs?: number;
}

export interface LocalDaemon {
  url: string;
  port: number;
  pid: number;
  version: string;
  /** The local-mode token (from daemon.json, mode 0600); null in supabase mode (users send their JWTs). */
  secret: string | null;
  /** true when this call started it. */
  spawned: boolean;
}

/** A daemon of another version runs on this state directory. */
export class DaemonVersionMismatch extends Error {
  override name = 'DaemonVersionMismatch';
  constructor(
    readonly runningVersion: string,
    readonly expectedVersion: string,
    readonly pid: number,
  ) {
    super(
      `An EXAI daemon of version ${runningVersion} (pid ${pid}) is running, but this extension needs version ${expectedVersion}. ` +
        'Restart the daemon to start the matching version (windows still connected to it will reconnect).',
    );
  }
}

/** The daemon exited (or never answered) before it was ready. */
export class DaemonStartFailed extends Error {
  override name = 'DaemonStartFailed';
  constructor(
    message: string,
    /** The daemon's own last stderr line, if it printed one. */
    readonly stderrLine: string | null = null,
    readonly exitCode: number | null = null,
  ) {
    super(message);
  }
}

/**
 * The parent's variables a daemon may inherit. Everything else (tokens, keys, passwords) stays out;
 * provider keys reach it over the window's connection instead (src/ui/providerKeys.ts).
 */
export const ENV_WHITELIST = [
  'PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TMPDIR', 'TEMP', 'TMP',
  'SystemRoot', 'USERPROFILE', 'APPDATA', 'LOCALAPPDATA',
] as const;

const DEFAULT_TIMEOUT_MS = 15_000;
const HEALTH_TIMEOUT_MS = 2_000;
const MAX_STDERR_CHARS = 64 * 1024;

/** The environment of a spawned daemon: the whitelist plus its own settings, nothing else. */
export function daemonEnv(opts: Pick<LauncherOptions, 'stateDir' | 'logDir' | 'idleExitSec' | 'supabase'>, parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ENV_WHITELIST) {
    const value = parent[name];
    if (value !== undefined) env[name] = value;
  }
  return {
    ...env,
    ELECTRON_RUN_AS_NODE: '1', // nodePath is VS Code's Electron binary: run it as plain Node
    EXAI_STATE_DIR: opts.stateDir,
    EXAI_LOG_DIR: opts.logDir,
    EXAI_IDLE_EXIT_SECONDS: String(opts.idleExitSec),
    EXAI_WS_PORT: '0',
    ...(opts.supabase ? { MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: opts.supabase.url, SUPABASE_ANON_KEY: opts.supabase.anonKey } : {}),
  };
}

export async function ensureLocalDaemon(opts: LauncherOptions): Promise<LocalDaemon> {
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;

  const running = await findRunning(opts.stateDir, log);
  if (running) return use(running.info, running.health.version, opts, false);

  for (;;) {
    log(`starting the EXAI daemon (${opts.serverJs}) for ${opts.stateDir}`);
    const line = await spawnDaemon(opts, deadline, log);
    const info = readDiscovery(opts.stateDir);
    if (!info || info.pid !== line.pid) {
      throw new DaemonStartFailed(`The EXAI daemon (pid ${line.pid}) reported it is ${line.event === 'listening' ? 'listening' : 'running'}, but ${path.join(opts.stateDir, 'daemon.json')} does not describe it. Restart the daemon.`);
    }
    if (line.event === 'listening') {
      log(`EXAI daemon ${line.version} started (pid ${line.pid}, port ${line.port})`);
      return use(info, line.version, opts, true);
    }
    // already_running: another window won the race. It may be draining; if so, wait for it to go
    // (rather than spawning again and again), then start a fresh one.
    const health = await getHealth(info.host, info.port);
    if (health?.status === 'ok') {
      log(`another window started the EXAI daemon first (pid ${info.pid}); using it`);
      return use(info, health.version, opts, false);
    }
    log(`the EXAI daemon (pid ${info.pid}) is ${health ? health.status : 'not answering'}; waiting for it to exit`);
    if (!(await waitForExit(info.pid, deadline - Date.now()))) {
      throw new DaemonStartFailed(`The EXAI daemon (pid ${info.pid}) holds ${opts.stateDir} but does not answer on port ${info.port}. Restart the daemon.`);
    }
  }
}

/**
 * Stops the daemon of this state directory (if one runs), then finds or starts the right one.
 * `userToken`: in supabase mode, the window user's access token, asked for only when nothing else
 * can prove which process the daemon is (see identifyDaemon).
 */
export async function restartLocalDaemon(opts: LauncherOptions, userToken?: () => Promise<string | null>): Promise<LocalDaemon> {
  const log = opts.log ?? (() => {});
  const info = readDiscovery(opts.stateDir);
  if (info && isProcessRunning(info.pid)) {
    const identity = await identifyDaemon(info, userToken);
    if (identity === 'ours') {
      await stopDaemon(info, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, log);
    } else if (identity === 'not ours' || (await getHealth(info.host, info.port)) === null) {
      // A stale file whose pid now belongs to another process: never signal that process; drop the
      // file so nobody takes it for a live daemon.
      log(`pid ${info.pid} from daemon.json is not the EXAI daemon that wrote it (${identity === 'not ours' ? 'it started later' : 'unproven, and nothing answers on its port'}); not signalling it, removing the stale file`);
      removeDiscovery(opts.stateDir, info.pid);
    } else {
      throw new DaemonStartFailed(
        `Could not confirm that process ${info.pid} (named in ${path.join(opts.stateDir, 'daemon.json')}) is the EXAI daemon, so it was not stopped. ` +
          "If it is the daemon, end that process yourself, then run 'EXAI: Restart the Daemon' again.",
      );
    }
  }
  return ensureLocalDaemon(opts);
}

/**
 * Is the process daemon.json names the daemon that wrote the file? Decided on proof, never on a
 * pid alone: the process's start token recorded in the file (or, in a file of an older version, a
 * start before the file's started_at). Failing that (Windows cannot say when a process started),
 * the daemon is asked on its port: signed in with the file's local secret (local mode) or the
 * user's token (supabase mode), its own session must name the file's pid.
 */
export async function identifyDaemon(info: DiscoveryInfo, userToken?: () => Promise<string | null>): Promise<'ours' | 'not ours' | 'unproven'> {
  const identity = identifyProcess({ pid: info.pid, start: info.process_start, startedAt: info.started_at });
  if (identity !== 'unknown') return identity === 'same' ? 'ours' : 'not ours';
  const token = info.secret ?? (await userToken?.().catch(() => null)) ?? null;
  if (token && (await daemonReportsPid(info, token))) return 'ours';
  return 'unproven';
}

/** SIGTERM (the daemon drains), then SIGKILL after the bound — each only while the pid is still that daemon. */
async function stopDaemon(info: DiscoveryInfo, timeoutMs: number, log: (m: string) => void): Promise<void> {
  log(`stopping the EXAI daemon (pid ${info.pid})`);
  signal(info.pid, 'SIGTERM');
  // The daemon gives calls in flight up to 10 s to finish; after our bound it is stuck.
  if (await waitForExit(info.pid, timeoutMs)) return;
  // Still running, so still the process we identified (a pid is only reused after its process is gone).
  if (identifyProcess({ pid: info.pid, start: info.process_start, startedAt: info.started_at }) === 'other') return;
  log(`the EXAI daemon (pid ${info.pid}) did not stop; killing it`);
  signal(info.pid, 'SIGKILL');
  await waitForExit(info.pid, 2_000);
}

export interface CrashGuardOptions {
  logDir: string;
  /** Crashes within `windowMs` that stop automatic respawns (default 3). */
  maxCrashes?: number;
  windowMs?: number;
  now?: () => number;
}

/** Bounds automatic respawns: a daemon that keeps crashing is left alone until the user asks again. */
export class CrashGuard {
  private crashes: number[] = [];
  private readonly maxCrashes: number;
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: CrashGuardOptions) {
    this.maxCrashes = opts.maxCrashes ?? 3;
    this.windowMs = opts.windowMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** Records a crash; false once there were maxCrashes within the window (stop respawning). */
  recordCrash(): boolean {
    const now = this.now();
    this.crashes = this.crashes.filter((t) => now - t < this.windowMs);
    this.crashes.push(now);
    return this.crashes.length < this.maxCrashes;
  }

  reset(): void {
    this.crashes = [];
  }

  get message(): string {
    const span = this.windowMs === 60_000 ? 'a minute' : `${Math.round(this.windowMs / 1000)} s`;
    return `The EXAI daemon crashed ${this.maxCrashes} times in ${span}; see its log at ${this.opts.logDir}. Run 'EXAI: Reconnect' to try again.`;
  }
}

// ---------------------------------------------------------------- internals

function use(info: DiscoveryInfo, version: string, opts: LauncherOptions, spawned: boolean): LocalDaemon {
  if (version !== opts.expectedVersion) throw new DaemonVersionMismatch(version, opts.expectedVersion, info.pid);
  const wanted = opts.supabase ? `supabase mode for ${opts.supabase.url}` : 'local mode';
  const running = info.mode === 'supabase' ? `supabase mode for ${info.supabase_url}` : 'local mode';
  const usable = opts.supabase ? info.mode === 'supabase' && info.supabase_url === opts.supabase.url : info.mode === 'local' && typeof info.secret === 'string';
  if (!usable) {
    throw new DaemonStartFailed(`The EXAI daemon on ${opts.stateDir} (pid ${info.pid}) runs in ${running}, but this window needs ${wanted}. Restart the daemon.`);
  }
  const host = info.host.includes(':') ? `[${info.host}]` : info.host;
  return { url: `ws://${host}:${info.port}/`, port: info.port, pid: info.pid, version, secret: info.secret, spawned };
}

async function findRunning(stateDir: string, log: (m: string) => void): Promise<{ info: DiscoveryInfo; health: HealthBody } | null> {
  const info = readDiscovery(stateDir);
  if (!info) return null;
  if (!isProcessRunning(info.pid)) {
    log(`daemon.json names pid ${info.pid}, which is gone; starting a new daemon`);
    return null;
  }
  if (identifyProcess({ pid: info.pid, start: info.process_start, startedAt: info.started_at }) === 'other') {
    log(`daemon.json names pid ${info.pid}, which now belongs to another process; starting a new daemon`);
    return null;
  }
  const health = await getHealth(info.host, info.port);
  if (health?.status !== 'ok') {
    log(`the EXAI daemon (pid ${info.pid}) does not answer /health on port ${info.port}${health ? ` (${health.status})` : ''}`);
    return null;
  }
  return { info, health };
}

/** Spawns the daemon and resolves with its first stdout line; the child is then let go. */
function spawnDaemon(opts: LauncherOptions, deadline: number, log: (m: string) => void): Promise<ListeningLine> {
  const child = spawn(opts.nodePath, [opts.serverJs, '--port', '0', '--mode', opts.supabase ? 'supabase' : 'local'], {
    detached: true, // its own process group: closing the window does not take the daemon down
    stdio: ['ignore', 'pipe', 'pipe'],
    env: daemonEnv(opts),
    windowsHide: true,
  });
  return new Promise<ListeningLine>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // The extension host must not keep the daemon (or its pipes) alive, nor be kept by them.
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.unref();
      outcome();
    };
    const timer = setTimeout(() => {
      settle(() => {
        log(`the EXAI daemon (pid ${child.pid}) did not report within the time limit; stopping it`);
        child.kill('SIGKILL');
        const last = lastSentence(stderr);
        reject(new DaemonStartFailed(`The EXAI daemon did not start within ${Math.round((opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000)} s${last ? `: ${last}` : '.'} See its log in ${opts.logDir}.`, last));
      });
    }, Math.max(0, deadline - Date.now()));

    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const nl = stdout.indexOf('\n');
      if (nl < 0) return;
      const text = stdout.slice(0, nl).trim();
      let line: ListeningLine | null = null;
      try {
        const parsed = JSON.parse(text) as ListeningLine;
        if ((parsed.event === 'listening' || parsed.event === 'already_running') && typeof parsed.port === 'number' && typeof parsed.pid === 'number') line = parsed;
      } catch {
        // fall through: reported below
      }
      settle(() => (line ? resolve(line) : reject(new DaemonStartFailed(`The EXAI daemon printed an unexpected first line (${JSON.stringify(text.slice(0, 200))}); is ${opts.serverJs} the EXAI daemon?`))));
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-MAX_STDERR_CHARS);
    });
    child.on('error', (err) => settle(() => reject(new DaemonStartFailed(`Could not run ${opts.nodePath} to start the EXAI daemon: ${err.message}`))));
    // 'close', not 'exit': by then all of stderr has been read.
    child.on('close', (code, sig) =>
      settle(() => {
        const last = lastSentence(stderr);
        const how = sig ? `was killed by ${sig}` : `exited with code ${code}`;
        reject(new DaemonStartFailed(last ? `The EXAI daemon could not start: ${last}` : `The EXAI daemon ${how} before it was ready; see its log in ${opts.logDir}.`, last, code));
      }),
    );
  });
}

/** The daemon's one clear sentence: its last "exai-daemon: ..." line, else the last line. */
function lastSentence(stderr: string): string | null {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const own = lines.filter((l) => l.startsWith('exai-daemon:'));
  const line = own.length > 0 ? own[own.length - 1] : lines[lines.length - 1];
  return line ? line.replace(/^exai-daemon:\s*/, '') : null;
}

function getHealth(host: string, port: number, timeoutMs = HEALTH_TIMEOUT_MS): Promise<HealthBody | null> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/health', timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text = (text + d).slice(0, 64 * 1024)));
      res.on('end', () => {
        try {
          const body = JSON.parse(text) as HealthBody;
          resolve(typeof body.status === 'string' && typeof body.version === 'string' ? body : null);
        } catch {
          resolve(null);
        }
      });
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/**
 * Does the daemon on daemon.json's port, signed in with `token`, say it runs as daemon.json's pid?
 * (Its `sessions` tool lists this connection with the daemon's pid.) Bounded; never throws.
 */
function daemonReportsPid(info: DiscoveryInfo, token: string, timeoutMs = HEALTH_TIMEOUT_MS * 2): Promise<boolean> {
  return new Promise((resolve) => {
    const host = info.host.includes(':') ? `[${info.host}]` : info.host;
    const ws = new (webSocketClass())(`ws://${host}:${info.port}/`, { handshakeTimeout: timeoutMs, perMessageDeflate: false, maxPayload: 1024 * 1024 });
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ws.readyState === ws.OPEN) ws.close(1000, 'identity check');
      else ws.terminate();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    const send = (frame: ClientFrame) => ws.send(JSON.stringify(frame));
    ws.on('open', () => send({ op: 'hello', protocol: PROTOCOL_VERSION, token, client: { instance: 'exai-restart-identity-check' } }));
    ws.on('message', (data) => {
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(data)) as ServerFrame;
      } catch {
        return done(false);
      }
      if (frame.op === 'hello_ack') {
        if (!frame.ok) return done(false);
        return send({ op: 'call_tool', request_id: 'identity', name: 'sessions', arguments: {} });
      }
      if (frame.op === 'call_tool_res' && frame.request_id === 'identity') {
        if (!frame.ok) return done(false);
        try {
          const rows = JSON.parse(frame.outputs[0]?.text ?? '[]') as { current?: boolean; metadata?: { pid?: unknown } }[];
          done(rows.some((r) => r.current === true && r.metadata?.pid === info.pid));
        } catch {
          done(false);
        }
      }
    });
    ws.on('error', () => done(false));
    ws.on('close', () => done(false));
  });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessRunning(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
