// One daemon per state directory, found through a discovery file that holds its port and, in
// local mode (the embedded default, no Supabase), a random secret: only processes that can read
// the 0600 file (the same OS user) can connect. Supabase-mode daemons take the same lock, so the
// state directory also names the daemon (EXAI_DAEMON_ID's default) without two sharing it.
//
//   <stateDir>/daemon.lock   created with O_EXCL; holds the owner's pid and its start token (below).
//                            Whoever creates it runs.
//   <stateDir>/daemon.json   written atomically once listening: pid, start token, host, port, version, secret.
//
// A pid alone does not name a process: after a crash (or a reboot) the pid in a stale file may
// belong to an unrelated process. So both files also record the process's start token (its start
// time as the OS reports it), and a pid counts as "the same process" only if its start token still
// matches. Nothing is ever decided (or signalled) on a pid alone.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface DiscoveryInfo {
  pid: number;
  host: string;
  port: number;
  version: string;
  /** The local-mode hello token; null in supabase mode (users present their own JWTs). */
  secret: string | null;
  mode: 'local' | 'supabase';
  /** The Supabase project a supabase-mode daemon serves (public URL); null in local mode. */
  supabase_url: string | null;
  started_at: string;
  /** The daemon process's start token (`processStart(pid).token`); filled in by writeDiscovery. Absent in files of older versions. */
  process_start?: string | null;
}

export const discoveryPath = (stateDir: string) => path.join(stateDir, 'daemon.json');
const lockPath = (stateDir: string) => path.join(stateDir, 'daemon.lock');
const takeoverPath = (stateDir: string) => path.join(stateDir, 'daemon.lock.takeover');

export function newLocalSecret(): string {
  return crypto.randomBytes(32).toString('base64url');
}

export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Alive and not a zombie (an exited child nobody has reaped yet still answers kill(pid, 0)). */
export function isProcessRunning(pid: number): boolean {
  if (!isProcessAlive(pid)) return false;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (macOS, Windows): trust kill(pid, 0)
  }
}

export interface ProcessStart {
  /** Equal for the same process, different for a later process with the same pid. */
  token: string;
  /** Wall-clock start time (ms since the epoch), for files that recorded only `started_at`. */
  ms: number;
}

/**
 * When process `pid` started, as the OS reports it; null if it does not run or the OS cannot say.
 * Linux: /proc/<pid>/stat field 22 (clock ticks since boot; USER_HZ is 100) with the boot id, so
 * a pid reused after a reboot differs too. macOS and the BSDs: `ps -o lstart=` (1 s resolution).
 * Windows: null (callers then need other proof).
 */
export function processStart(pid: number, via: 'proc' | 'ps' | 'none' = defaultStartSource()): ProcessStart | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    if (via === 'proc') {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]); // field 22; fields after ')' start at 3
      if (!Number.isSafeInteger(ticks)) return null;
      // Boot time from /proc/uptime (10 ms resolution; /proc/stat's btime is truncated to the second).
      const bootMs = Date.now() - Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
      let bootId = '';
      try {
        bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      } catch {
        /* older kernels: the tick count alone still differs for a later process */
      }
      return { token: `linux:${bootId}:${ticks}`, ms: Math.round(bootMs + ticks * 10) };
    }
    if (via === 'ps') {
      const raw = execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], {
        encoding: 'utf8', timeout: 3000, stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, LC_ALL: 'C', TZ: 'UTC' },
      }).trim().replace(/\s+/g, ' ');
      const ms = Date.parse(`${raw} UTC`);
      return raw && Number.isFinite(ms) ? { token: `ps:${raw}`, ms } : null;
    }
  } catch {
    /* gone, or the OS would not say */
  }
  return null;
}

function defaultStartSource(): 'proc' | 'ps' | 'none' {
  if (process.platform === 'linux') return 'proc';
  return process.platform === 'win32' ? 'none' : 'ps';
}

/** What a file recorded about the process it names. */
export interface RecordedProcess {
  pid: number;
  /** The start token recorded with the pid (daemon.json's process_start, the lock's second line). */
  start?: string | null;
  /** daemon.json's started_at: written while the process ran, so a later process reusing the pid started after it. */
  startedAt?: string | null;
}

/**
 * Is the process running as `recorded.pid` the one the file recorded? 'other': it is gone, or its
 * pid now belongs to a later process. 'unknown': nothing to compare (an older file on an OS that
 * cannot say) — never treat that as 'same' when the answer decides a signal.
 */
export function identifyProcess(recorded: RecordedProcess, via?: 'proc' | 'ps' | 'none'): 'same' | 'other' | 'unknown' {
  if (!isProcessRunning(recorded.pid)) return 'other';
  const now = processStart(recorded.pid, via);
  if (!now) return 'unknown';
  if (recorded.start) return now.token === recorded.start ? 'same' : 'other';
  const writtenAt = recorded.startedAt ? Date.parse(recorded.startedAt) : NaN;
  if (!Number.isFinite(writtenAt)) return 'unknown';
  // The recorded process wrote started_at while it ran; a process that reuses its pid starts later.
  // (Both are wall-clock times; 1 s of slack for small clock corrections in between.)
  return now.ms <= writtenAt + 1000 ? 'same' : 'other';
}

interface LockOwner {
  raw: string;
  pid: number | null;
  start: string | null;
}

function readLockOwner(file: string): LockOwner | null {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const [first = '', second = ''] = raw.split('\n');
  const pid = Number.parseInt(first.trim(), 10);
  return { raw, pid: Number.isInteger(pid) ? pid : null, start: second.trim() || null };
}

export type LockOutcome = { acquired: true; release: () => void } | { acquired: false; ownerPid: number };

/**
 * Takes the single-instance lock of a state directory. A lock whose owner is gone (dead, or its pid
 * reused by another process) is stale: it is removed under a second, short-lived "takeover" lock so
 * two starters cannot both remove it and then both win.
 */
export function acquireInstanceLock(stateDir: string, pid = process.pid): LockOutcome {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const lock = lockPath(stateDir);
  const start = pid === process.pid ? processStart(pid)?.token : undefined; // (tests pass made-up pids)
  const content = start ? `${pid}\n${start}\n` : String(pid);
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const fd = fs.openSync(lock, 'wx', 0o600);
      fs.writeSync(fd, content);
      fs.closeSync(fd);
      return {
        acquired: true,
        release: () => {
          if (readLockOwner(lock)?.raw === content) fs.rmSync(lock, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readLockOwner(lock);
    if (!owner) continue; // removed meanwhile: try again
    // A lock naming our own pid is stale: we have not taken it yet (a container restarted with its
    // state on a volume runs the daemon as pid 1 again).
    if (owner.pid !== null && owner.pid !== pid && ownerIsLive(stateDir, { pid: owner.pid, start: owner.start }, mtimeMs(lock))) {
      return { acquired: false, ownerPid: owner.pid };
    }
    if (owner.pid === null && Date.now() - mtimeMs(lock) < 2000) {
      sleepSync(20); // created a moment ago, pid not written yet
      continue;
    }
    removeStaleLock(stateDir, owner.raw);
  }
  throw new Error(`could not take the daemon lock ${lock}; remove it if no EXAI daemon is running`);
}

/** Does the lock's owner still run, as the same process that took the lock? */
function ownerIsLive(stateDir: string, owner: { pid: number; start: string | null }, lockMtimeMs: number): boolean {
  if (!isProcessAlive(owner.pid)) return false;
  const discovery = readDiscovery(stateDir);
  const described = discovery?.pid === owner.pid ? discovery : null;
  // A lock with no start token and no daemon.json naming its pid 30 s on: a real owner publishes
  // daemon.json within seconds of taking the lock, so this pid is not (or no longer) a daemon, however
  // old the process is.
  if (!owner.start && described === null && Date.now() - lockMtimeMs >= 30_000) return false;
  // A lock of an older version holds only the pid; its owner wrote it while it ran, so the file's
  // mtime serves as a started_at.
  const identity = identifyProcess({
    pid: owner.pid,
    start: owner.start ?? described?.process_start,
    startedAt: described?.started_at ?? new Date(lockMtimeMs).toISOString(),
  });
  if (identity !== 'unknown') return identity === 'same';
  // Nothing to compare (an OS that cannot say when a process started): a real owner publishes
  // daemon.json within seconds of taking the lock.
  return described !== null || Date.now() - lockMtimeMs < 30_000;
}

function removeStaleLock(stateDir: string, staleContent: string): void {
  const takeover = takeoverPath(stateDir);
  try {
    fs.writeFileSync(takeover, String(process.pid), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Someone else is taking over; a takeover lock left by a crash expires after a few seconds.
    if (Date.now() - mtimeMs(takeover) > 5000) fs.rmSync(takeover, { force: true });
    sleepSync(20);
    return;
  }
  try {
    if (readLockOwner(lockPath(stateDir))?.raw === staleContent) fs.rmSync(lockPath(stateDir), { force: true });
  } finally {
    fs.rmSync(takeover, { force: true });
  }
}

function mtimeMs(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Writes daemon.json atomically (temp file + rename), readable by the owner only; records the process's start token. */
export function writeDiscovery(stateDir: string, info: DiscoveryInfo): void {
  const file = discoveryPath(stateDir);
  const tmp = `${file}.${process.pid}.tmp`;
  const recorded: DiscoveryInfo = { ...info, process_start: info.process_start ?? (info.pid === process.pid ? processStart(info.pid)?.token : null) ?? null };
  fs.writeFileSync(tmp, JSON.stringify(recorded, null, 2), { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

export function readDiscovery(stateDir: string): DiscoveryInfo | null {
  try {
    const info = JSON.parse(fs.readFileSync(discoveryPath(stateDir), 'utf8')) as DiscoveryInfo;
    return typeof info.port === 'number' && typeof info.pid === 'number' ? info : null;
  } catch {
    return null;
  }
}

/** Removes daemon.json if it still describes this process (a successor may have replaced it). */
export function removeDiscovery(stateDir: string, pid = process.pid): void {
  if (readDiscovery(stateDir)?.pid === pid) fs.rmSync(discoveryPath(stateDir), { force: true });
}

/** Waits (bounded) for the lock owner to publish its discovery file. */
export async function waitForDiscovery(stateDir: string, ownerPid: number, timeoutMs = 15_000): Promise<DiscoveryInfo | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const info = readDiscovery(stateDir);
    if (info && info.pid === ownerPid) return info;
    if (!isProcessAlive(ownerPid)) return null;
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}
