// Finding and stopping the processes of one `npm start` run, by pid.
//
// Not every process a run starts is its child: the extension spawns the local daemon detached (its
// own process group, so closing a window does not take it down), and a run killed with SIGKILL
// leaves its children to init. So a run is recognised by its directory in the environment instead:
// EXAI_START_RUN=<run dir>, which the start script exports to everything it starts (code-server,
// its extension hosts, Chromium, the test server, the daemon), and EXAI_STATE_DIR=<run dir>/… of
// the daemon the extension spawns (which gets a whitelisted environment only). The environment,
// not the command line: a `tail -f <run dir>/code-server.log` in another terminal is not ours.
// Linux only (/proc), like the rest of the set-up.
import { isProcessRunning } from '../../server/auth/localMode';
import fs from 'node:fs';
import path from 'node:path';

export interface RunProcess {
  pid: number;
  /** The command line, arguments joined by spaces (for messages). */
  cmd: string;
}

/** The NUL-separated strings of /proc/<pid>/<file>, or [] when the process is gone or not ours. */
function procStrings(pid: number, file: 'cmdline' | 'environ'): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** `NAME=<dir>` or `NAME=<dir>/…` (also inside a list such as PATH). */
function namesDir(entry: string, dir: string): boolean {
  return entry.endsWith(`=${dir}`) || entry.includes(`=${dir}/`) || entry.includes(`:${dir}/`) || entry.endsWith(`:${dir}`);
}

/** Every live process (other than this one) whose environment names `runDir` (an absolute path). */
export function processesOf(runDir: string): RunProcess[] {
  if (!path.isAbsolute(runDir) || path.dirname(runDir) === runDir) throw new Error(`processesOf: not a run directory: "${runDir}"`);
  const found: RunProcess[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const cmdline = procStrings(pid, 'cmdline');
    if (cmdline.length === 0) continue; // kernel thread, zombie, or already gone
    if (procStrings(pid, 'environ').some((s) => namesDir(s, runDir))) {
      found.push({ pid, cmd: cmdline.join(' ') });
    }
  }
  return found;
}

/** Alive and not a zombie. */
export const isAlive = isProcessRunning;

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** SIGTERM to each pid, up to `graceMs` for them to exit, then SIGKILL to the rest. */
export async function stopPids(pids: number[], graceMs: number): Promise<void> {
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(100);
  for (const pid of pids.filter(isAlive)) signal(pid, 'SIGKILL');
  const killDeadline = Date.now() + 2000;
  while (pids.some(isAlive) && Date.now() < killDeadline) await sleep(50);
}

/**
 * Stops a process group (a child spawned `detached`): SIGTERM to the group, up to `graceMs` for its
 * leader to exit, then SIGKILL to whatever is left in the group.
 */
export async function stopGroup(pgid: number, graceMs: number): Promise<void> {
  signal(-pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pgid) && Date.now() < deadline) await sleep(100);
  signal(-pgid, 'SIGKILL');
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
