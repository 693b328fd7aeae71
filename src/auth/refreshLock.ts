// A cross-process lock file, so only one VS Code window (extension-host process) refreshes an
// account's Supabase session at a time. Refresh tokens rotate, and Supabase Auth revokes the whole
// session family when an old refresh token is reused after 10 s, so two windows refreshing with the
// same token can sign the user out everywhere. After taking the lock, the caller must re-read the
// stored session and adopt a newer one instead of refreshing again.
//
// Plain Node on purpose (no 'vscode' import). Not re-entrant: a second withFileLock on the same file
// from inside fn waits for the first (and times out).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export class LockTimeout extends Error {
  override readonly name = 'LockTimeout';
  constructor(
    readonly lockFile: string,
    readonly timeoutMs: number,
    readonly holderPid?: number,
  ) {
    super(
      `Timed out after ${timeoutMs} ms waiting for the lock ${lockFile}` +
        (holderPid !== undefined ? ` (held by process ${holderPid})` : ''),
    );
  }
}

export interface FileLockOptions {
  /** Give up waiting (LockTimeout) after this long. Default 15000. */
  timeoutMs?: number;
  /** A lock older than this (or whose process is gone) is broken. Default 30000. fn should finish well within it. */
  staleMs?: number;
  /** How often a waiter looks again. Default 25. */
  pollMs?: number;
}

interface Seen {
  raw: string;
  pid?: number;
  at?: number;
  mtimeMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const errnoCode = (err: unknown) => (err as NodeJS.ErrnoException | null)?.code;

/** Runs fn while holding `lockFile` exclusively (across processes); always releases it. */
export async function withFileLock<T>(lockFile: string, fn: () => Promise<T>, opts: FileLockOptions = {}): Promise<T> {
  const mine = await acquire(lockFile, opts.timeoutMs ?? 15_000, opts.staleMs ?? 30_000, Math.max(1, opts.pollMs ?? 25));
  try {
    return await fn();
  } finally {
    // Only if it is still ours: if it was broken as stale and re-taken, the file is someone else's now.
    try {
      removeIfSame(lockFile, mine);
    } catch {
      /* best effort: an unremovable lock turns stale by age */
    }
  }
}

async function acquire(lockFile: string, timeoutMs: number, staleMs: number, pollMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const id = crypto.randomBytes(8).toString('hex'); // makes our content unique, for "is it still ours"
  for (;;) {
    // {pid, at} for waiters' staleness checks.
    const mine = JSON.stringify({ pid: process.pid, at: Date.now(), id });
    if (tryCreate(lockFile, mine)) return mine;
    const seen = readLock(lockFile);
    let wait = pollMs;
    if (!seen) {
      wait = 0; // released between our attempt and the read: try again at once
    } else if (isStale(seen, staleMs)) {
      if (breakStale(lockFile, seen.raw, staleMs)) wait = 0;
    }
    if (Date.now() >= deadline) throw new LockTimeout(lockFile, timeoutMs, seen?.pid);
    // Always yield, even with wait 0, so every iteration lets other work (and the clock) move.
    await sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
  }
}

/** Exclusive create ('wx'). The file is briefly empty before the write; readers treat that as live. */
function tryCreate(file: string, content: string, mkdir = true): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', 0o600);
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    if (errnoCode(err) !== 'ENOENT' || !mkdir) throw err;
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    return tryCreate(file, content, false);
  }
  try {
    fs.writeSync(fd, content);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

function readLock(file: string): Seen | undefined {
  let raw: string;
  let mtimeMs: number;
  try {
    mtimeMs = fs.statSync(file).mtimeMs;
    raw = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const parsed = JSON.parse(raw) as { pid?: unknown; at?: unknown };
    return {
      raw,
      mtimeMs,
      pid: Number.isInteger(parsed.pid) ? (parsed.pid as number) : undefined,
      at: typeof parsed.at === 'number' && Number.isFinite(parsed.at) ? parsed.at : undefined,
    };
  } catch {
    return { raw, mtimeMs }; // empty (holder still writing it) or garbage: judged by its age only
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) !== 'ESRCH'; // EPERM: exists, belongs to someone else
  }
}

function isStale(seen: Seen, staleMs: number): boolean {
  if (seen.pid !== undefined && seen.pid > 0 && !isAlive(seen.pid)) return true;
  return Date.now() - (seen.at ?? seen.mtimeMs) > staleMs;
}

/**
 * Removes the stale lock whose content was `staleRaw`, if it is still there. Breakers take a second
 * lock (`<lockFile>.break`) so two waiters that both saw the same stale lock cannot both break it:
 * the second one then finds a different (new, live) lock, or none, and leaves it alone. Returns
 * true if this call broke it.
 */
function breakStale(lockFile: string, staleRaw: string, staleMs: number): boolean {
  const guard = `${lockFile}.break`;
  const guardContent = JSON.stringify({ pid: process.pid, at: Date.now(), id: crypto.randomBytes(8).toString('hex') });
  if (!tryCreate(guard, guardContent)) {
    // Another waiter is breaking it right now (a few ms). If that waiter died mid-way, clear its guard.
    const g = readLock(guard);
    if (g && isStale(g, Math.min(staleMs, 5_000))) removeIfSame(guard, g.raw);
    return false;
  }
  try {
    const now = readLock(lockFile);
    if (!now || now.raw !== staleRaw) return false; // already broken (and maybe re-taken)
    return removeIfSame(lockFile, staleRaw);
  } finally {
    removeIfSame(guard, guardContent);
  }
}

/**
 * Deletes `file` only if its content is `expected`. There is no compare-and-delete in POSIX, so:
 * rename it aside (atomic), check what we took, and if it is not what we expected put it back with
 * link(), which fails rather than replacing a lock someone created meanwhile.
 */
function removeIfSame(file: string, expected: string): boolean {
  const aside = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.aside`;
  try {
    fs.renameSync(file, aside);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
  let taken: string | undefined;
  try {
    taken = fs.readFileSync(aside, 'utf8');
  } catch {
    taken = undefined;
  }
  try {
    if (taken === expected) return true;
    try {
      fs.linkSync(aside, file);
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'EEXIST' && taken !== undefined) {
        // No hard links on this filesystem: an exclusive copy also never replaces an existing lock.
        try {
          fs.copyFileSync(aside, file, fs.constants.COPYFILE_EXCL);
        } catch {
          /* EEXIST: a newer lock is in place; nothing to put back */
        }
      }
    }
    return false;
  } finally {
    try {
      fs.unlinkSync(aside);
    } catch {
      /* already gone */
    }
  }
}
