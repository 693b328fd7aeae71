// One daemon per state directory, found through a discovery file that holds its port and, in
// local mode (the embedded default, no Supabase), a random secret: only processes that can read
// the 0600 file (the same OS user) can connect. Supabase-mode daemons take the same lock, so the
// state directory also names the daemon (EXAI_DAEMON_ID's default) without two sharing it.
//
//   <stateDir>/daemon.lock   created with O_EXCL; holds the owner's pid. Whoever creates it runs.
//   <stateDir>/daemon.json   written atomically once listening: pid, host, port, version, secret.
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

function readPid(file: string): number | null {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) ? pid : null;
  } catch {
    return null;
  }
}

export type LockOutcome = { acquired: true; release: () => void } | { acquired: false; ownerPid: number };

/**
 * Takes the single-instance lock of a state directory. A lock whose pid is dead is stale: it is
 * removed under a second, short-lived "takeover" lock so two starters cannot both remove it and
 * then both win.
 */
export function acquireInstanceLock(stateDir: string, pid = process.pid): LockOutcome {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const lock = lockPath(stateDir);
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const fd = fs.openSync(lock, 'wx', 0o600);
      fs.writeSync(fd, String(pid));
      fs.closeSync(fd);
      return {
        acquired: true,
        release: () => {
          if (readPid(lock) === pid) fs.rmSync(lock, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readPid(lock);
    // A live owner runs the daemon, unless its pid was reused by an unrelated process (after a
    // reboot): a real owner publishes daemon.json within seconds of taking the lock.
    // A lock naming our own pid is stale too: we have not taken it yet (a container restarted with
    // its state on a volume runs the daemon as pid 1 again).
    if (owner !== null && owner !== pid && isProcessAlive(owner) && (readDiscovery(stateDir)?.pid === owner || Date.now() - mtimeMs(lock) < 30_000)) {
      return { acquired: false, ownerPid: owner };
    }
    if (owner === null && Date.now() - mtimeMs(lock) < 2000) {
      sleepSync(20); // created a moment ago, pid not written yet
      continue;
    }
    removeStaleLock(stateDir, owner);
  }
  throw new Error(`could not take the daemon lock ${lock}; remove it if no EXAI daemon is running`);
}

function removeStaleLock(stateDir: string, stalePid: number | null): void {
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
    if (readPid(lockPath(stateDir)) === stalePid) fs.rmSync(lockPath(stateDir), { force: true });
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

/** Writes daemon.json atomically (temp file + rename), readable by the owner only. */
export function writeDiscovery(stateDir: string, info: DiscoveryInfo): void {
  const file = discoveryPath(stateDir);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(info, null, 2), { mode: 0o600 });
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
